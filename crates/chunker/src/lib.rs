//! Content-defined chunking: FastCDC (2020) over a secret gear table.
//!
//! Design decisions:
//! - The gear table is 256 secret 64-bit values derived from the repository key
//!   (`cairn_crypto::MasterKey::gear_table`), not the public table XORed with a seed:
//!   with a public table, the sizes of stored blobs fingerprint known files.
//! - We drive `fastcdc::v2020::cut_gear` from our own buffered reader so the table can be
//!   fully custom and the buffer is reused (one `2 * max_size` allocation per stream).
//! - Sizes default to 512 KiB / 1 MiB / 8 MiB (see docs/format.md for why).

use std::io::{self, Read};

use fastcdc::v2020::{cut_gear, select_masks, Normalization};

/// Chunk size bounds in bytes; persisted in the repository config so every client of a
/// repository cuts the same boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min_size: usize,
    pub avg_size: usize,
    pub max_size: usize,
}

impl ChunkerParams {
    pub const DEFAULT: ChunkerParams =
        ChunkerParams { min_size: 512 * 1024, avg_size: 1024 * 1024, max_size: 8 * 1024 * 1024 };

    /// Rejects parameters FastCDC cannot honour, so a corrupt config never panics the chunker.
    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020::*;
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.min_size % 2 == 0
            && self.avg_size % 2 == 0
            && self.max_size % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "unsupported chunker sizes min={} avg={} max={}",
                self.min_size, self.avg_size, self.max_size
            ))
        }
    }
}

/// A chunker configured for one repository; cheap to share between threads.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    /// [`Chunker::zero_run_chunk`].
    zero_len: usize,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker").field("params", &self.params).field("gear", &"***").finish()
    }
}

impl Chunker {
    /// `gear` must hold 256 values; anything else is a programming error upstream, so
    /// missing values are padded with zeros rather than panicking.
    pub fn new(gear: &[u64], params: ChunkerParams) -> Result<Chunker, String> {
        params.validate()?;
        let mut g = Box::new([0u64; 256]);
        for (dst, src) in g.iter_mut().zip(gear) {
            *dst = *src;
        }
        let mut gl = Box::new([0u64; 256]);
        for (dst, src) in gl.iter_mut().zip(g.iter()) {
            *dst = src << 1;
        }
        let (mask_s, mask_l) = select_masks(params.avg_size, Normalization::Level1);
        let mut c = Chunker { gear: g, gear_ls: gl, params, mask_s, mask_l, zero_len: 0 };
        c.zero_len = c.cut(&vec![0; params.max_size]);
        Ok(c)
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data`, which must hold at least `max_size` bytes or
    /// everything up to end of input.
    pub fn cut(&self, data: &[u8]) -> usize {
        let p = &self.params;
        let (_, n) = cut_gear(
            data,
            p.min_size,
            p.avg_size,
            p.max_size,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        if n == 0 {
            data.len()
        } else {
            n
        }
    }

    /// Length of every chunk that starts inside a run of zeros at least `max_size` long:
    /// the cut depends only on the `max_size` bytes after a chunk's start, so it is the
    /// same everywhere in such a run. This lets holes of sparse files be chunked without
    /// being read, with exactly the boundaries reading them would give.
    pub fn zero_run_chunk(&self) -> usize {
        self.zero_len
    }

    /// Splits a reader into chunks; the iterator yields owned buffers so callers can hand
    /// them to other threads.
    pub fn chunks<R: Read>(&self, reader: R) -> Chunks<'_, Dense<R>> {
        self.chunks_sparse(Dense(reader))
    }

    /// As [`Chunker::chunks`], for a source that knows its holes: a chunk lying wholly in
    /// a hole comes out as [`Chunk::Zeros`] and is neither read nor scanned, so a 20 GiB
    /// sparse file costs what its data costs.
    pub fn chunks_sparse<S: Sparse>(&self, source: S) -> Chunks<'_, S> {
        Chunks { chunker: self, reader: source, buf: Vec::new(), start: 0, pos: 0, eof: false, hole: None, hole_checked_to: 0 }
    }
}

/// One chunk of a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Data(Vec<u8>),
    /// This many zero bytes from a hole ([`Chunker::zero_run_chunk`] of them).
    Zeros(usize),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Data(d) => d.len(),
            Chunk::Zeros(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes themselves (zeros materialised).
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Chunk::Data(d) => d,
            Chunk::Zeros(n) => vec![0; n],
        }
    }
}

/// A readable stream that may know where its holes are.
pub trait Sparse: Read {
    /// The first hole `(start, end)` with `end > offset`, if the source knows one. A hole
    /// reads as zeros; `end` is at most the stream's length.
    fn next_hole(&mut self, offset: u64) -> io::Result<Option<(u64, u64)>>;
    /// Moves the read position `n` bytes forward without reading (only ever across a hole).
    fn skip(&mut self, n: u64) -> io::Result<()>;
}

impl<S: Sparse + ?Sized> Sparse for &mut S {
    fn next_hole(&mut self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).next_hole(offset)
    }
    fn skip(&mut self, n: u64) -> io::Result<()> {
        (**self).skip(n)
    }
}

/// A stream with no known holes.
pub struct Dense<R>(pub R);

impl<R: Read> Read for Dense<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Sparse for Dense<R> {
    fn next_hole(&mut self, _offset: u64) -> io::Result<Option<(u64, u64)>> {
        Ok(None)
    }
    fn skip(&mut self, n: u64) -> io::Result<()> {
        io::copy(&mut (&mut self.0).take(n), &mut io::sink()).map(|_| ())
    }
}

/// Iterator over the chunks of one stream.
pub struct Chunks<'a, R> {
    chunker: &'a Chunker,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    /// Stream offset of `buf[start]`.
    pos: u64,
    eof: bool,
    /// The next hole at or after `pos`, as far as the source has said.
    hole: Option<(u64, u64)>,
    /// Offset up to which `hole` is known to be the next hole.
    hole_checked_to: u64,
}

impl<R: Sparse> Chunks<'_, R> {
    fn fill(&mut self) -> io::Result<()> {
        let max = self.chunker.params.max_size;
        if self.start > 0 && self.buf.len() - self.start < max {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        while !self.eof && self.buf.len() - self.start < max {
            // Grow with what the stream has shown so far (doubling from 64 KiB up to two
            // maximal chunks): a 4 KiB file must not pay for zeroing a 16 MiB buffer, which
            // dominated backups of many small files.
            let old = self.buf.len();
            let want = (old + old.max(64 * 1024)).min(self.start + 2 * max).max(old + 64 * 1024);
            self.buf.resize(want, 0);
            match self.reader.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(old + n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Whether the chunk starting at `pos` lies in a hole with `max_size` zeros after it.
    fn in_long_hole(&mut self) -> io::Result<bool> {
        let max = self.chunker.params.max_size as u64;
        if self.hole.is_none_or(|(_, end)| end <= self.pos) && self.hole_checked_to <= self.pos {
            self.hole = self.reader.next_hole(self.pos)?;
            self.hole_checked_to = self.hole.map_or(u64::MAX, |(_, end)| end);
        }
        Ok(matches!(self.hole, Some((start, end)) if start <= self.pos && self.pos + max <= end))
    }

    /// Consumes `n` bytes of hole: what is buffered first, then the source skips the rest.
    fn consume_hole(&mut self, n: usize) -> io::Result<()> {
        let buffered = self.buf.len() - self.start;
        if n <= buffered {
            self.start += n;
        } else {
            self.start = self.buf.len();
            self.reader.skip((n - buffered) as u64)?;
        }
        self.pos += n as u64;
        Ok(())
    }
}

impl<R: Sparse> Iterator for Chunks<'_, R> {
    type Item = io::Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        let fail = |me: &mut Self, e| {
            me.eof = true;
            me.buf.clear();
            me.start = 0;
            Some(Err(e))
        };
        match self.in_long_hole() {
            Ok(true) => {
                let n = self.chunker.zero_len;
                return match self.consume_hole(n) {
                    Ok(()) => Some(Ok(Chunk::Zeros(n))),
                    Err(e) => fail(self, e),
                };
            }
            Ok(false) => {}
            Err(e) => return fail(self, e),
        }
        if let Err(e) = self.fill() {
            return fail(self, e);
        }
        let avail = &self.buf[self.start..];
        if avail.is_empty() {
            return None;
        }
        let n = self.chunker.cut(avail);
        let chunk = avail[..n].to_vec();
        self.start += n;
        self.pos += n as u64;
        Some(Ok(Chunk::Data(chunk)))
    }
}

#[cfg(test)]
mod tests {
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
        pseudo_random(42, 2048).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    fn small_params() -> ChunkerParams {
        ChunkerParams { min_size: 2048, avg_size: 8192, max_size: 65536 }
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
        assert_eq!(l, GOLDEN, "chunk boundaries changed: existing repositories would stop deduplicating");
    }
    const GOLDEN: [usize; 11] =
        [573390, 1478053, 614811, 1595240, 576967, 2141530, 656709, 1000678, 1925733, 614202, 1405599];

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
        let p = ChunkerParams { min_size: 10, avg_size: 8, max_size: 4 };
        assert!(Chunker::new(&test_gear(), p).is_err());
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
            assert!(self.data[self.pos - n as usize..self.pos].iter().all(|&b| b == 0), "skipped data that is not a hole");
            Ok(())
        }
    }

    #[test]
    fn holes_chunk_exactly_as_read_without_being_read() {
        let c = Chunker::new(&test_gear(), small_params()).unwrap();
        let z = c.zero_run_chunk();
        assert!((2048..=65536).contains(&z));
        let mut data = pseudo_random(9, 3_000_000);
        let holes = vec![(100_000u64, 1_100_000u64), (1_100_000 + 777, 2_000_000), (2_900_000, 3_000_000)];
        for &(s, e) in &holes {
            data[s as usize..e as usize].fill(0);
        }
        let dense: Vec<usize> = lengths(&c, &data);
        let mut src = Holey { data: data.clone(), holes, pos: 0, skipped: 0 };
        let sparse: Vec<Chunk> = c.chunks_sparse(&mut src).map(|r| r.unwrap()).collect();
        assert_eq!(sparse.iter().map(Chunk::len).collect::<Vec<_>>(), dense);
        let zeros = sparse.iter().filter(|c| matches!(c, Chunk::Zeros(_))).count();
        assert!(zeros > 20, "long holes came out as zero chunks ({zeros})");
        let joined: Vec<u8> = sparse.into_iter().flat_map(Chunk::into_bytes).collect();
        assert_eq!(joined, data);
        assert!(src.skipped > 1_000_000, "holes were skipped, not read ({} bytes)", src.skipped);
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
}
