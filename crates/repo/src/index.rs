//! The in-memory index: blob ID -> (pack, offset, length).
//!
//! Design decisions:
//! - Entries live in one sorted `Vec` of 52-byte records (32-byte ID, pack number into a
//!   side table of pack IDs, offset, lengths, flags) and are found by binary search. No
//!   per-entry heap allocation and no hash table overhead: 52 bytes per blob, under the
//!   64-byte budget (measured by benches/index_memory.rs).
//! - Blobs added during a command go to a small `recent` map and are merged into the
//!   sorted vector in one pass by [`Index::merge_recent`], so inserts stay O(1).
//! - Loading decodes each index file straight into entries ([`IndexPart`], on the
//!   loading threads) and appends them; there is no intermediate `IndexFile`, which at
//!   10 million blobs would double the memory of the load.
//! - Sorting is a two-level radix partition on the first two ID bytes (in place, 256
//!   groups at a time, so it stays in cache) and then a comparison sort of each
//!   ~150-entry bucket, the buckets spread over the cores. A comparison sort of the whole
//!   array was most of the time of opening a large repository (memcmp of 32-byte IDs).

use std::collections::HashMap;

use cairn_format::{BlobId, BlobType, FormatError, IndexId, IndexVisitor, PackEntry, PackId};

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Entry {
    id: [u8; 32],
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    /// bit 0: tree blob; bit 1: compressed.
    flags: u8,
}

impl Entry {
    fn new(pack: u32, e: &PackEntry) -> Entry {
        let flags = u8::from(e.blob_type == BlobType::Tree) | (u8::from(e.compressed) << 1);
        Entry {
            id: e.id.0,
            pack,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
            flags,
        }
    }
}

/// Where one blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedBlob {
    pub pack: PackId,
    pub entry: PackEntry,
}

/// Entries are bucketed by the first 16 bits of their ID: a lookup binary-searches
/// ~150 entries instead of 10 million (a 256 KiB table, whatever the index size).
const BUCKET_BITS: u32 = 16;

#[derive(Default)]
pub struct Index {
    packs: Vec<PackId>,
    pack_sizes: Vec<u64>,
    /// For each pack number: when prune marked it for deletion, if it did. Blobs there
    /// are read as any others but never deduplicated against (see
    /// docs/format.md, "Prune in two phases").
    pack_marked: Vec<Option<i64>>,
    /// The marked packs by ID (few), built when loading finishes.
    marked_ids: HashMap<PackId, i64>,
    /// Pack ID -> number, used while loading (to merge repeated packs) and for packs
    /// written by this command; cleared after loading to save ~45 bytes per pack.
    pack_numbers: HashMap<PackId, u32>,
    sorted: Vec<Entry>,
    /// `buckets[b]..buckets[b + 1]` is the range of `sorted` whose IDs start with `b`.
    buckets: Vec<u32>,
    recent: HashMap<[u8; 32], Entry>,
}

fn bucket_of(id: &[u8; 32]) -> usize {
    (usize::from(id[0]) << 8) | usize::from(id[1])
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    fn pack_number(&mut self, id: PackId, size: u64) -> u32 {
        if let Some(&n) = self.pack_numbers.get(&id) {
            return n;
        }
        let n = self.packs.len() as u32;
        self.packs.push(id);
        self.pack_sizes.push(size);
        self.pack_marked.push(None);
        self.pack_numbers.insert(id, n);
        n
    }

    /// Adds every entry of a decoded index file; call [`Index::finish_loading`] after the last.
    pub fn add_part(&mut self, part: IndexPart) {
        let numbers: Vec<u32> = part
            .packs
            .iter()
            .map(|&(id, size, marked)| {
                let n = self.pack_number(id, size);
                // A pack any index file marks is marked (the latest mark counts).
                if let Some(m) = marked {
                    let slot = &mut self.pack_marked[n as usize];
                    *slot = Some(slot.map_or(m, |old| old.max(m)));
                }
                n
            })
            .collect();
        // Exact growth: doubling would leave up to twice the final size resident while
        // loading, and growing a large allocation exactly is a cheap remap, not a copy.
        self.sorted.reserve_exact(part.entries.len());
        self.sorted.extend(part.entries.into_iter().map(|mut e| {
            e.pack = numbers[e.pack as usize];
            e
        }));
    }

    pub fn finish_loading(&mut self) {
        self.buckets = sort_entries(&mut self.sorted);
        self.sorted.shrink_to_fit();
        self.pack_numbers = HashMap::new();
        self.packs.shrink_to_fit();
        self.pack_sizes.shrink_to_fit();
        self.pack_marked.shrink_to_fit();
        self.marked_ids = self.marked_packs().map(|(id, _, m)| (id, m)).collect();
    }

    /// Records a blob written during this command.
    pub fn add_recent(&mut self, pack: PackId, pack_size: u64, e: &PackEntry) {
        let n = self.pack_number(pack, pack_size);
        self.recent
            .entry(e.id.0)
            .or_insert_with(|| Entry::new(n, e));
    }

    pub fn merge_recent(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        self.sorted.extend(self.recent.drain().map(|(_, e)| e));
        self.finish_loading();
    }

    /// The blob's entry, one in a pack not marked for deletion where there is one.
    fn find(&self, id: &BlobId) -> Option<&Entry> {
        if !self.buckets.is_empty() {
            let b = bucket_of(&id.0);
            let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
            let slice = &self.sorted[lo..hi];
            if let Ok(i) = slice.binary_search_by(|e| cmp_in_bucket(&e.id, &id.0)) {
                // A blob stored twice (repacked, or stored again instead of a marked
                // copy) has neighbours with its ID.
                let first = slice[..i]
                    .iter()
                    .rposition(|e| e.id != id.0)
                    .map_or(0, |p| p + 1);
                let same = slice[first..].iter().take_while(|e| e.id == id.0);
                let mut found = &slice[i];
                for e in same {
                    if !self.entry_marked(e) {
                        found = e;
                        break;
                    }
                }
                if !self.entry_marked(found) {
                    return Some(found);
                }
                return Some(self.recent.get(&id.0).unwrap_or(found));
            }
        }
        self.recent.get(&id.0)
    }

    fn entry_marked(&self, e: &Entry) -> bool {
        self.pack_marked[e.pack as usize].is_some()
    }

    /// Whether the blob can be read from some pack.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    /// Whether the blob is stored in a pack not marked for deletion: what a backup may
    /// deduplicate against. A blob only in marked packs is stored again.
    pub fn stores(&self, id: &BlobId) -> bool {
        self.find(id).is_some_and(|e| !self.entry_marked(e))
    }

    /// When prune marked `pack` for deletion, if it did.
    pub fn marked(&self, pack: &PackId) -> Option<i64> {
        self.marked_ids.get(pack).copied()
    }

    /// Every pack marked for deletion, with its size and when it was marked.
    pub fn marked_packs(&self) -> impl Iterator<Item = (PackId, u64, i64)> + '_ {
        self.pack_marked
            .iter()
            .enumerate()
            .filter_map(|(n, m)| Some((self.packs[n], self.pack_sizes[n], (*m)?)))
    }

    pub fn get(&self, id: &BlobId) -> Option<IndexedBlob> {
        self.find(id).map(|e| self.to_blob(e))
    }

    fn to_blob(&self, e: &Entry) -> IndexedBlob {
        IndexedBlob {
            pack: self.packs[e.pack as usize],
            entry: PackEntry {
                blob_type: if e.flags & 1 == 1 {
                    BlobType::Tree
                } else {
                    BlobType::Data
                },
                compressed: e.flags & 2 == 2,
                id: BlobId(e.id),
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every indexed blob (loaded and recent), in no particular order.
    pub fn blobs(&self) -> impl Iterator<Item = IndexedBlob> + '_ {
        self.sorted
            .iter()
            .chain(self.recent.values())
            .map(|e| self.to_blob(e))
    }

    /// Every pack the index knows, with the size recorded for it.
    pub fn packs(&self) -> impl Iterator<Item = (PackId, u64)> + '_ {
        self.packs
            .iter()
            .copied()
            .zip(self.pack_sizes.iter().copied())
    }

    /// Heap bytes held by the index, for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        self.sorted.capacity() * std::mem::size_of::<Entry>()
            + self.buckets.capacity() * 4
            + self.packs.capacity() * 32
            + self.pack_sizes.capacity() * 8
            + self.pack_marked.capacity() * 16
            + self.pack_numbers.capacity() * (32 + 4 + 8)
            + self.recent.capacity() * (32 + std::mem::size_of::<Entry>() + 8)
    }

    pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
}

/// One index file decoded into index entries, on a loading thread; `Entry::pack` is the
/// position in `packs` until [`Index::add_part`] renumbers it.
#[derive(Default)]
pub struct IndexPart {
    supersedes: Vec<IndexId>,
    /// Each pack with its size and, if prune marked it, when.
    packs: Vec<(PackId, u64, Option<i64>)>,
    entries: Vec<Entry>,
}

impl IndexPart {
    pub fn decode(bytes: &[u8]) -> Result<IndexPart, FormatError> {
        let mut part = IndexPart::default();
        cairn_format::visit_index(bytes, &mut part)?;
        Ok(part)
    }

    /// Index files this one replaces.
    pub fn supersedes(&self) -> &[IndexId] {
        &self.supersedes
    }
}

impl IndexVisitor for IndexPart {
    fn supersedes(&mut self, id: IndexId) {
        self.supersedes.push(id);
    }

    fn pack(&mut self, id: PackId, size: u64, blobs: usize) {
        self.packs.push((id, size, None));
        self.entries.reserve(blobs);
    }

    fn marked_pack(&mut self, id: PackId, size: u64, blobs: usize, marked_millis: i64) {
        self.packs.push((id, size, Some(marked_millis)));
        self.entries.reserve(blobs);
    }

    fn blob(&mut self, e: PackEntry) {
        let pack = self.packs.len().saturating_sub(1) as u32;
        self.entries.push(Entry::new(pack, &e));
    }
}

/// Order of IDs within one bucket (first two bytes equal): the next eight bytes as an
/// integer decide almost always, the rest only between near-twins.
fn cmp_in_bucket(a: &[u8; 32], b: &[u8; 32]) -> std::cmp::Ordering {
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
fn sort_entries(v: &mut [Entry]) -> Vec<u32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::{IndexFile, IndexPack};

    fn pe(id: u8, off: u32) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Tree,
            compressed: true,
            id: BlobId([id; 32]),
            offset: off,
            length: 10,
            raw_length: 20,
        }
    }

    #[test]
    fn entry_is_compact() {
        const { assert!(Index::ENTRY_BYTES <= 64) };
        assert_eq!(Index::ENTRY_BYTES, 52);
    }

    proptest::proptest! {
           /// The radix partition and bucket sorts give the order of a plain sort of the
           /// IDs, for IDs that share prefixes of every length, and every entry is found.
           #[test]
           fn loading_sorts_like_a_plain_sort(seeds in proptest::collection::vec((proptest::prelude::any::<[u8; 32]>(), 0usize..33), 0..3000)) {
               let base = [7u8; 32];
               let ids: Vec<[u8; 32]> = seeds.iter().map(|(r, shared)| {
                   let mut id = *r;
                   id[..*shared].copy_from_slice(&base[..*shared]);
                   id
               }).collect();
               let f = IndexFile {
    marked: Vec::new(),
                   supersedes: vec![],
                   packs: ids.chunks(7).enumerate().map(|(i, c)| IndexPack {
                       id: PackId([i as u8; 32]),
                       size: 1000,
                       blobs: c.iter().map(|id| PackEntry { id: BlobId(*id), ..pe(0, 0) }).collect(),
                   }).collect(),
               };
               let mut ix = Index::new();
               ix.add_part(IndexPart::decode(&f.encode()).unwrap());
               ix.finish_loading();
               let got: Vec<[u8; 32]> = ix.blobs().map(|b| b.entry.id.0).collect();
               let mut want = ids.clone();
               want.sort_unstable();
               proptest::prop_assert_eq!(got, want);
               for id in &ids {
                   proptest::prop_assert!(ix.contains(&BlobId(*id)));
               }
           }
       }

    /// Above the threading threshold the groups are sorted on several threads.
    #[test]
    fn large_loads_sort_across_threads() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut v: Vec<Entry> = (0..200_000)
            .map(|_| {
                let mut id = [0u8; 32];
                for c in id.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    c.copy_from_slice(&x.to_le_bytes());
                }
                Entry {
                    id,
                    pack: 0,
                    offset: 0,
                    length: 0,
                    raw_length: 0,
                    flags: 0,
                }
            })
            .collect();
        let buckets = sort_entries(&mut v);
        assert!(v.windows(2).all(|w| w[0].id <= w[1].id));
        assert_eq!(
            (buckets[0], buckets[1 << BUCKET_BITS] as usize),
            (0, v.len())
        );
        for b in 0..1usize << BUCKET_BITS {
            assert!(
                v[buckets[b] as usize..buckets[b + 1] as usize]
                    .iter()
                    .all(|e| bucket_of(&e.id) == b),
                "bucket {b}"
            );
        }
    }

    #[test]
    fn lookup_loaded_and_recent() {
        let mut ix = Index::new();
        let f = IndexFile {
            marked: Vec::new(),
            supersedes: vec![],
            packs: vec![IndexPack {
                id: PackId([9; 32]),
                size: 100,
                blobs: vec![pe(3, 0), pe(1, 10)],
            }],
        };
        ix.add_part(IndexPart::decode(&f.encode()).unwrap());
        ix.finish_loading();
        ix.add_recent(PackId([8; 32]), 50, &pe(2, 0));
        let b = ix.get(&BlobId([1; 32])).unwrap();
        assert_eq!(b.pack, PackId([9; 32]));
        assert_eq!(b.entry, pe(1, 10));
        assert!(ix.contains(&BlobId([2; 32])));
        assert!(!ix.contains(&BlobId([4; 32])));
        ix.merge_recent();
        assert_eq!(ix.get(&BlobId([2; 32])).unwrap().pack, PackId([8; 32]));
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.packs().count(), 2);
    }
}
