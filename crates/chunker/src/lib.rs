//! Content-defined chunking: FastCDC (2020) over a secret gear table.
//!
//! Design decisions:
//! - The gear table is 256 secret 64-bit values derived from the repository key
//!   (`cairn_crypto::MasterKey::gear_table`), not the public table XORed with a seed:
//!   with a public table, the sizes of stored blobs fingerprint known files.
//! - The cut search is FastCDC's `cut_gear`, run piece by piece over the buffers as
//!   they are read (`Scan`), so chunks are never copied out of one big buffer; the
//!   crate's `cut_gear` on whole buffers is the reference the tests hold it to. The
//!   gear table is fully custom.
//! - Sizes default to 512 KiB / 1 MiB / 8 MiB (see docs/format.md for why).

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};
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
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min_size: 512 * 1024,
        avg_size: 1024 * 1024,
        max_size: 8 * 1024 * 1024,
    };

    /// Rejects parameters FastCDC cannot honour, so a corrupt config never panics the chunker.
    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020::*;
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.min_size.is_multiple_of(2)
            && self.avg_size.is_multiple_of(2)
            && self.max_size.is_multiple_of(2);
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
        f.debug_struct("Chunker")
            .field("params", &self.params)
            .field("gear", &"***")
            .finish()
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
        let mut c = Chunker {
            gear: g,
            gear_ls: gl,
            params,
            mask_s,
            mask_l,
            zero_len: 0,
        };
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
        Chunks {
            chunker: self,
            reader: source,
            carry: None,
            read_size: READ_MIN,
            pos: 0,
            eof: false,
            hole: None,
            hole_checked_to: 0,
        }
    }
}

/// One chunk of a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Data(Pieces),
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

    /// The bytes themselves in one buffer (zeros materialised).
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Chunk::Data(d) => d.to_vec(),
            Chunk::Zeros(n) => vec![0; n],
        }
    }
}

/// A chunk's bytes as the pieces they were read in. Chunks are cut out of the read
/// buffers without being copied (the buffers are shared, `bytes::Bytes`): the copy out
/// of one large buffer and the shifting of that buffer's unread tail were two passes
/// over every byte backed up, and the buffer itself was 16 MiB per file being read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pieces {
    parts: Vec<Bytes>,
    len: usize,
}

impl Pieces {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn slices(&self) -> Vec<&[u8]> {
        self.parts.iter().map(|b| &b[..]).collect()
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.parts.concat()
    }

    /// Keeps the first `len` bytes; returns the rest. The rest is one piece unless the
    /// cut fell in an earlier piece (a byte pair split across two reads), which is
    /// rare and then costs a copy of under one read.
    fn split_off(&mut self, len: usize) -> Bytes {
        let mut rest = Vec::new();
        while self.len > len {
            let Some(mut last) = self.parts.pop() else {
                break;
            };
            self.len -= last.len();
            if self.len < len {
                let keep = last.split_to(len - self.len);
                self.len += keep.len();
                self.parts.push(keep);
            }
            rest.push(last);
        }
        match rest.len() {
            0 => Bytes::new(),
            1 => rest.pop().unwrap_or_default(),
            _ => rest
                .iter()
                .rev()
                .map(|b| &b[..])
                .collect::<Vec<_>>()
                .concat()
                .into(),
        }
    }

    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.parts.push(b);
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

/// FastCDC's cut search (`fastcdc::v2020::cut_gear`) fed a chunk's bytes piece by
/// piece as they are read, so that no chunk has to be contiguous in memory. It makes
/// exactly the cuts `cut_gear` makes on the whole (`Chunker::cut`, which the tests
/// hold it to): byte pairs `(a, a + 1)` from `min_size` on, the even byte tested with
/// the shifted masks, the small masks below `avg_size` and the large ones above, and a
/// pair is only tested once both its bytes are there (at the end of a stream an odd
/// last byte is never tested, as in `cut_gear`).
#[derive(Clone, Copy)]
struct Scan {
    /// Bytes of the chunk fed so far.
    seen: usize,
    /// Chunk offset of the next pair to test.
    next: usize,
    hash: u64,
    /// The last byte fed, for a pair split between two pieces.
    last: u8,
}

impl Scan {
    fn new(params: &ChunkerParams) -> Scan {
        Scan {
            seen: 0,
            next: params.min_size,
            hash: 0,
            last: 0,
        }
    }
}

impl Chunker {
    /// Feeds the chunk's next bytes; returns the chunk's length once it is known.
    fn feed(&self, s: &mut Scan, data: &[u8]) -> Option<usize> {
        let p = &self.params;
        let start = s.seen;
        s.seen += data.len();
        let stop = s.seen.min(p.max_size);
        let mask_for = |a: usize| {
            if a < p.avg_size {
                self.mask_s
            } else {
                self.mask_l
            }
        };
        // A pair whose first byte ended the previous piece.
        if s.next < start && s.next + 1 < stop {
            let a = s.next;
            let mask = mask_for(a);
            s.hash = (s.hash << 2).wrapping_add(self.gear_ls[s.last as usize]);
            if s.hash & (mask << 1) == 0 {
                return Some(a);
            }
            s.hash = s.hash.wrapping_add(self.gear[data[0] as usize]);
            if s.hash & mask == 0 {
                return Some(a + 1);
            }
            s.next += 2;
        }
        // Pairs wholly in `data`, below `avg_size` with the small masks, then the large.
        let (mut a, mut hash) = (s.next, s.hash);
        for (limit, mask) in [(p.avg_size.min(stop), self.mask_s), (stop, self.mask_l)] {
            let mask_ls = mask << 1;
            while a + 1 < limit {
                let i = a - start;
                hash = (hash << 2).wrapping_add(self.gear_ls[data[i] as usize]);
                if hash & mask_ls == 0 {
                    return Some(a);
                }
                hash = hash.wrapping_add(self.gear[data[i + 1] as usize]);
                if hash & mask == 0 {
                    return Some(a + 1);
                }
                a += 2;
            }
        }
        (s.next, s.hash) = (a, hash);
        if let Some(&b) = data.last() {
            s.last = b;
        }
        (s.next >= p.max_size).then_some(p.max_size)
    }
}

/// Largest read: big enough that syscalls do not matter, small enough that a piece
/// shared by two chunks keeps little memory alive.
const READ_MAX: usize = 256 * 1024;
/// First read of a stream; reads double from here while they come back full, so a
/// 4 KiB file allocates and zeroes 16 KiB, not a whole `READ_MAX`.
const READ_MIN: usize = 16 * 1024;

/// Iterator over the chunks of one stream.
pub struct Chunks<'a, R> {
    chunker: &'a Chunker,
    reader: R,
    /// Bytes read past the last cut: the start of the next chunk, not yet scanned.
    carry: Option<Bytes>,
    /// Size of the next read.
    read_size: usize,
    /// Stream offset of the next chunk's first byte.
    pos: u64,
    eof: bool,
    /// The next hole at or after `pos`, as far as the source has said.
    hole: Option<(u64, u64)>,
    /// Offset up to which `hole` is known to be the next hole.
    hole_checked_to: u64,
}

impl<R: Sparse> Chunks<'_, R> {
    /// The next piece of the stream: what was carried over, else a new read; `None` at
    /// the end of the stream.
    fn piece(&mut self) -> io::Result<Option<Bytes>> {
        if let Some(b) = self.carry.take() {
            return Ok(Some(b));
        }
        while !self.eof {
            let mut buf = BytesMut::zeroed(self.read_size);
            match self.reader.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    if n == buf.len() {
                        self.read_size = (self.read_size * 2).min(READ_MAX);
                    }
                    buf.truncate(n);
                    return Ok(Some(buf.freeze()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
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

    /// Consumes `n` bytes of hole: what is carried over first, then the source skips the rest.
    fn consume_hole(&mut self, n: usize) -> io::Result<()> {
        let carried = self.carry.as_ref().map_or(0, Bytes::len);
        if n < carried {
            if let Some(c) = &mut self.carry {
                let _ = c.split_to(n);
            }
        } else {
            self.carry = None;
            self.reader.skip((n - carried) as u64)?;
        }
        self.pos += n as u64;
        Ok(())
    }

    fn next_data(&mut self) -> io::Result<Option<Pieces>> {
        let mut chunk = Pieces::default();
        let mut scan = Scan::new(&self.chunker.params);
        while let Some(piece) = self.piece()? {
            let cut = self.chunker.feed(&mut scan, &piece);
            chunk.push(piece);
            if let Some(len) = cut {
                let rest = chunk.split_off(len);
                if !rest.is_empty() {
                    self.carry = Some(rest);
                }
                break;
            }
        }
        self.pos += chunk.len() as u64;
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

impl<R: Sparse> Iterator for Chunks<'_, R> {
    type Item = io::Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        let step = match self.in_long_hole() {
            Ok(true) => {
                let n = self.chunker.zero_len;
                self.consume_hole(n).map(|()| Some(Chunk::Zeros(n)))
            }
            Ok(false) => self.next_data().map(|d| d.map(Chunk::Data)),
            Err(e) => Err(e),
        };
        match step {
            Ok(c) => c.map(Ok),
            Err(e) => {
                self.eof = true;
                self.carry = None;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests;
