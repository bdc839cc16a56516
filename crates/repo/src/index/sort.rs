//! Sorting entries by ID: a two-level radix partition on the first two ID bytes (in
//! place, 256 groups at a time, so it stays in cache) and then a comparison sort of each
//! ~150-entry bucket, the buckets spread over the cores. A comparison sort of the whole
//! array was most of the time of opening a large repository (memcmp of 32-byte IDs).

use super::{Entry, BUCKET_BITS};

/// Order of IDs within one bucket (first two bytes equal): the next eight bytes as an
/// integer decide almost always, the rest only between near-twins.
pub(super) fn cmp_in_bucket(a: &[u8; 32], b: &[u8; 32]) -> std::cmp::Ordering {
    let key = |x: &[u8; 32]| u64::from_be_bytes([x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9]]);
    key(a).cmp(&key(b)).then_with(|| a[10..].cmp(&b[10..]))
}

/// Permutes `v` in place so its entries are grouped by ID byte `byte`, in order (one
/// pass of an American flag sort); returns where each of the 256 groups starts, and
/// the end.
fn group_by_byte(v: &mut [Entry], byte: usize) -> [usize; 257] {
    let mut starts = [0usize; 257];
    for e in v.iter() {
        starts[usize::from(e.id[byte]) + 1] += 1;
    }
    for i in 1..257 {
        starts[i] += starts[i - 1];
    }
    let mut next = starts;
    for d in 0..256 {
        while next[d] < starts[d + 1] {
            let i = next[d];
            let t = usize::from(v[i].id[byte]);
            if t == d {
                next[d] += 1;
            } else {
                v.swap(i, next[t]);
                next[t] += 1;
            }
        }
    }
    starts
}

/// Sorts one first-byte group: partition by the second byte, then sort each bucket.
/// Returns where each bucket starts within the group, and the group's end.
fn sort_group(g: &mut [Entry]) -> [usize; 257] {
    let starts = group_by_byte(g, 1);
    for d in 0..256 {
        g[starts[d]..starts[d + 1]].sort_unstable_by(|a, b| cmp_in_bucket(&a.id, &b.id));
    }
    starts
}

/// Sorts entries by ID; the 256 first-byte groups are shared out among the cores.
/// Returns the bucket table (`Index::buckets`): the two partitions found every bucket's
/// bounds, so the sorted array need not be counted again.
pub(super) fn sort_entries(v: &mut [Entry]) -> Vec<u32> {
    let starts = group_by_byte(v, 0);
    let threads = if v.len() < 1 << 16 {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    };
    // Contiguous runs of groups with about the same number of entries each.
    let per_thread = starts[256].div_ceil(threads).max(1);
    let mut shares: Vec<Vec<(usize, &mut [Entry])>> = (0..threads).map(|_| Vec::new()).collect();
    let mut rest = v;
    for d in 0..256 {
        let (g, tail) = rest.split_at_mut(starts[d + 1] - starts[d]);
        shares[(starts[d] / per_thread).min(threads - 1)].push((d, g));
        rest = tail;
    }
    let sort_share = |share: Vec<(usize, &mut [Entry])>| {
        share
            .into_iter()
            .map(|(d, g)| (d, sort_group(g)))
            .collect::<Vec<_>>()
    };
    let sorted: Vec<(usize, [usize; 257])> = if threads == 1 {
        shares.into_iter().flat_map(sort_share).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| s.spawn(move || sort_share(share)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut buckets = vec![0u32; (1 << BUCKET_BITS) + 1];
    for (d, sub) in sorted {
        for (b, start) in sub[..256].iter().enumerate() {
            buckets[(d << 8) | b] = (starts[d] + start) as u32;
        }
    }
    buckets[1 << BUCKET_BITS] = starts[256] as u32;
    buckets
}
