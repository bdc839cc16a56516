use super::*;
use proptest::prelude::*;

/// xorshift64*: a fixed generator, so golden vectors do not depend on any crate's RNG.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn test_gear() -> Vec<u64> {
    pseudo_random(42, 2048)
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn small_params() -> ChunkerParams {
    ChunkerParams {
        min_size: 2048,
        avg_size: 8192,
        max_size: 65536,
    }
}

fn lengths(c: &Chunker, data: &[u8]) -> Vec<usize> {
    c.chunks(data).map(|r| r.unwrap().len()).collect()
}

#[test]
fn golden_boundaries_default_params() {
    let c = Chunker::new(&test_gear(), ChunkerParams::DEFAULT).unwrap();
    let data = pseudo_random(7, 12 * 1024 * 1024);
    let l = lengths(&c, &data);
    assert_eq!(l.iter().sum::<usize>(), data.len());
    assert_eq!(
        l, GOLDEN,
        "chunk boundaries changed: existing repositories would stop deduplicating"
    );
}
const GOLDEN: [usize; 11] = [
    573390, 1478053, 614811, 1595240, 576967, 2141530, 656709, 1000678, 1925733, 614202, 1405599,
];

#[test]
fn different_gear_gives_different_boundaries() {
    let data = pseudo_random(3, 4 * 1024 * 1024);
    let a = Chunker::new(&test_gear(), small_params()).unwrap();
    let mut g = test_gear();
    g.reverse();
    let b = Chunker::new(&g, small_params()).unwrap();
    assert_ne!(lengths(&a, &data), lengths(&b, &data));
}

#[test]
fn empty_and_tiny_inputs() {
    let c = Chunker::new(&test_gear(), small_params()).unwrap();
    assert!(lengths(&c, &[]).is_empty());
    assert_eq!(lengths(&c, &[1, 2, 3]), vec![3]);
}

#[test]
fn bad_params_rejected() {
    let p = ChunkerParams {
        min_size: 10,
        avg_size: 8,
        max_size: 4,
    };
    assert!(Chunker::new(&test_gear(), p).is_err());
}

/// Hands out its bytes in reads of the sizes given, in turn.
struct Uneven<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: Vec<usize>,
    i: usize,
}

impl Read for Uneven<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes[self.i % self.sizes.len()];
        self.i += 1;
        let n = buf.len().min(want).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn golden_boundaries_with_one_byte_reads() {
    let c = Chunker::new(&test_gear(), small_params()).unwrap();
    let data = pseudo_random(11, 300_000);
    let ones = Uneven {
        data: &data,
        pos: 0,
        sizes: vec![1, 2, 3],
        i: 0,
    };
    let l: Vec<usize> = c.chunks(ones).map(|r| r.unwrap().len()).collect();
    assert_eq!(l, lengths(&c, &data));
}

/// Bytes with some zero ranges declared as holes.
struct Holey {
    data: Vec<u8>,
    holes: Vec<(u64, u64)>,
    pos: usize,
    skipped: u64,
}

impl Read for Holey {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos).min(100_000);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Sparse for Holey {
    fn next_hole(&mut self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        Ok(self.holes.iter().copied().find(|&(_, e)| e > offset))
    }
    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.skipped += n;
        self.pos += n as usize;
        assert!(
            self.data[self.pos - n as usize..self.pos]
                .iter()
                .all(|&b| b == 0),
            "skipped data that is not a hole"
        );
        Ok(())
    }
}

#[test]
fn holes_chunk_exactly_as_read_without_being_read() {
    let c = Chunker::new(&test_gear(), small_params()).unwrap();
    let z = c.zero_run_chunk();
    assert!((2048..=65536).contains(&z));
    let mut data = pseudo_random(9, 3_000_000);
    let holes = vec![
        (100_000u64, 1_100_000u64),
        (1_100_000 + 777, 2_000_000),
        (2_900_000, 3_000_000),
    ];
    for &(s, e) in &holes {
        data[s as usize..e as usize].fill(0);
    }
    let dense: Vec<usize> = lengths(&c, &data);
    let mut src = Holey {
        data: data.clone(),
        holes,
        pos: 0,
        skipped: 0,
    };
    let sparse: Vec<Chunk> = c.chunks_sparse(&mut src).map(|r| r.unwrap()).collect();
    assert_eq!(sparse.iter().map(Chunk::len).collect::<Vec<_>>(), dense);
    let zeros = sparse
        .iter()
        .filter(|c| matches!(c, Chunk::Zeros(_)))
        .count();
    assert!(zeros > 20, "long holes came out as zero chunks ({zeros})");
    let joined: Vec<u8> = sparse.into_iter().flat_map(Chunk::into_bytes).collect();
    assert_eq!(joined, data);
    assert!(
        src.skipped > 1_000_000,
        "holes were skipped, not read ({} bytes)",
        src.skipped
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Inserting bytes near the start disturbs only the chunks around the insertion:
    /// the stream re-synchronises and later boundaries are the same.
    #[test]
    fn boundaries_resync_after_insertion(seed in any::<u64>(), insert in proptest::collection::vec(any::<u8>(), 1..5000), at in 0usize..20000) {
        let c = Chunker::new(&test_gear(), small_params()).unwrap();
        let data = pseudo_random(seed, 600 * 1024);
        let mut edited = data[..at].to_vec();
        edited.extend_from_slice(&insert);
        edited.extend_from_slice(&data[at..]);
        let ends = |d: &[u8]| { let mut e = 0; lengths(&c, d).into_iter().map(|l| { e += l; e }).collect::<Vec<_>>() };
        let orig: std::collections::HashSet<usize> = ends(&data).into_iter().filter(|&e| e > at + 200_000).collect();
        let moved: std::collections::HashSet<usize> = ends(&edited).into_iter().filter(|&e| e > at + insert.len() + 200_000).map(|e| e - insert.len()).collect();
        prop_assert!(!orig.is_empty());
        prop_assert_eq!(orig, moved);
    }

    /// The piecewise scan makes exactly the cuts of fastcdc's `cut_gear` on whole
    /// buffers, however the reads split the stream (odd sizes, single bytes, pairs
    /// split across reads, cuts inside an earlier piece).
    #[test]
    fn piecewise_cuts_equal_whole_buffer_cuts(seed in any::<u64>(), len in 0usize..400_000, reads in proptest::collection::vec(1usize..70_000, 1..8), zeros in any::<bool>()) {
        let c = Chunker::new(&test_gear(), small_params()).unwrap();
        let mut data = pseudo_random(seed, len);
        if zeros {
            // Long runs without a cut: chunks of exactly max_size.
            let n = data.len() / 2;
            data[n / 2..n].fill(0);
        }
        let mut whole = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = c.cut(rest);
            whole.push(n);
            rest = &rest[n..];
        }
        let reader = Uneven { data: &data, pos: 0, sizes: reads, i: 0 };
        let chunks: Vec<Chunk> = c.chunks(reader).map(|r| r.unwrap()).collect();
        prop_assert_eq!(chunks.iter().map(Chunk::len).collect::<Vec<_>>(), whole);
        let joined: Vec<u8> = chunks.into_iter().flat_map(Chunk::into_bytes).collect();
        prop_assert_eq!(joined, data);
    }

    #[test]
    fn chunks_concatenate_to_input(seed in any::<u64>(), len in 0usize..300_000) {
        let c = Chunker::new(&test_gear(), small_params()).unwrap();
        let data = pseudo_random(seed, len);
        let joined: Vec<u8> = c.chunks(&data[..]).flat_map(|r| r.unwrap().into_bytes()).collect();
        prop_assert_eq!(joined, data);
        for l in lengths(&c, &pseudo_random(seed, len)).iter().rev().skip(1) {
            prop_assert!(*l >= 2048 && *l <= 65536);
        }
    }
}
