//! Index files: which blobs live in which pack. Binary, because a large repository has
//! tens of millions of entries and opening it must take seconds.
//!
//! Layout (all integers little-endian):
//! `"CAIRNIX1"`, u32 superseded-count, that many 32-byte index ids,
//! u32 pack-count, then per pack: 32-byte pack id, u64 pack size, u32 entry-count, entries.
//!
//! `"CAIRNIX2"` (format 3) is the same followed by the packs prune marked for deletion:
//! u32 marked-count, then per pack: 32-byte pack id, u64 pack size, i64 time it was
//! marked (ms since the epoch), u32 entry-count, entries. A file without marked packs
//! is written as `CAIRNIX1`, byte for byte as before.

use crate::{FormatError, IndexId, PackEntry, PackId, PACK_ENTRY_LEN};

const MAGIC: &[u8; 8] = b"CAIRNIX1";
const MAGIC_MARKED: &[u8; 8] = b"CAIRNIX2";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexPack {
    pub id: PackId,
    /// Full stored size of the pack, checked by `check` against the backend's listing.
    pub size: u64,
    pub blobs: Vec<PackEntry>,
}

/// A pack prune found unused and marked for deletion: its blobs stay readable (a
/// snapshot saved meanwhile may use them, and then a later prune takes the mark back),
/// but no backup stores new references to them, and a later prune deletes it (see
/// docs/format.md, "Prune in two phases").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarkedPack {
    pub pack: IndexPack,
    /// When prune marked it (ms since the epoch).
    pub marked_millis: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files this one replaces (written by prune and repair), deleted after it is stored.
    pub supersedes: Vec<IndexId>,
    pub packs: Vec<IndexPack>,
    pub marked: Vec<MarkedPack>,
}

fn encode_pack(out: &mut Vec<u8>, p: &IndexPack, marked: Option<i64>) {
    out.extend_from_slice(&p.id.0);
    out.extend_from_slice(&p.size.to_le_bytes());
    if let Some(m) = marked {
        out.extend_from_slice(&m.to_le_bytes());
    }
    out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
    for b in &p.blobs {
        b.encode_into(out);
    }
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        let marked = self.marked.iter().map(|m| &m.pack);
        let blobs: usize = self.packs.iter().chain(marked).map(|p| p.blobs.len()).sum();
        let packs = self.packs.len() + self.marked.len();
        let mut out = Vec::with_capacity(
            20 + 32 * self.supersedes.len() + 52 * packs + blobs * PACK_ENTRY_LEN,
        );
        out.extend_from_slice(if self.marked.is_empty() {
            MAGIC
        } else {
            MAGIC_MARKED
        });
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(&s.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            encode_pack(&mut out, p, None);
        }
        if !self.marked.is_empty() {
            out.extend_from_slice(&(self.marked.len() as u32).to_le_bytes());
            for m in &self.marked {
                encode_pack(&mut out, &m.pack, Some(m.marked_millis));
            }
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<IndexFile, FormatError> {
        let mut f = IndexFile::default();
        visit(b, &mut f)?;
        Ok(f)
    }
}

/// Receives an index file's contents as [`visit`] decodes them, so a reader that only
/// wants the entries in its own layout (the in-memory index, tens of millions of them)
/// need not build an [`IndexFile`] first: at that size the intermediate copy costs as
/// much memory as the index itself.
pub trait IndexVisitor {
    fn supersedes(&mut self, id: IndexId);
    /// Called for each pack before its `blobs` entries.
    fn pack(&mut self, id: PackId, size: u64, blobs: usize);
    /// Called for each marked pack before its `blobs` entries.
    fn marked_pack(&mut self, id: PackId, size: u64, blobs: usize, marked_millis: i64);
    fn blob(&mut self, e: PackEntry);
}

impl IndexVisitor for IndexFile {
    fn supersedes(&mut self, id: IndexId) {
        self.supersedes.push(id);
    }

    fn pack(&mut self, id: PackId, size: u64, blobs: usize) {
        self.packs.push(IndexPack {
            id,
            size,
            blobs: Vec::with_capacity(blobs),
        });
    }

    fn marked_pack(&mut self, id: PackId, size: u64, blobs: usize, marked_millis: i64) {
        self.marked.push(MarkedPack {
            pack: IndexPack {
                id,
                size,
                blobs: Vec::with_capacity(blobs),
            },
            marked_millis,
        });
    }

    fn blob(&mut self, e: PackEntry) {
        let last = match self.marked.last_mut() {
            Some(m) => Some(&mut m.pack),
            None => self.packs.last_mut(),
        };
        if let Some(p) = last {
            p.blobs.push(e);
        }
    }
}

/// Decodes an index file into `v`, checking everything [`IndexFile::decode`] checks. On
/// error `v` may have seen part of the file; callers discard it.
pub fn visit(b: &[u8], v: &mut impl IndexVisitor) -> Result<(), FormatError> {
    let mut r = Reader::new(b, "index");
    let with_marked = match r.take(8)? {
        m if m == MAGIC => false,
        m if m == MAGIC_MARKED => true,
        _ => return Err(FormatError::BadMagic("index")),
    };
    let ns = r.count(32)?;
    for _ in 0..ns {
        v.supersedes(IndexId::from_slice(r.take(32)?)?);
    }
    let np = r.count(44)?;
    for _ in 0..np {
        visit_pack(&mut r, v, false)?;
    }
    if with_marked {
        let nm = r.count(52)?;
        for _ in 0..nm {
            visit_pack(&mut r, v, true)?;
        }
    }
    r.finish()
}

fn visit_pack(r: &mut Reader, v: &mut impl IndexVisitor, marked: bool) -> Result<(), FormatError> {
    let id = PackId::from_slice(r.take(32)?)?;
    let size = r.u64()?;
    let marked_millis = if marked { Some(r.u64()? as i64) } else { None };
    let n = r.u32()? as usize;
    let bytes = r.take(n.saturating_mul(PACK_ENTRY_LEN))?;
    match marked_millis {
        Some(m) => v.marked_pack(id, size, n, m),
        None => v.pack(id, size, n),
    }
    for rec in bytes.chunks_exact(PACK_ENTRY_LEN) {
        let e = PackEntry::decode(rec)?;
        if u64::from(e.offset) + u64::from(e.length) > size {
            return Err(FormatError::invalid(
                "index",
                format!("blob {} lies outside pack {}", e.id.short(), id.short()),
            ));
        }
        v.blob(e);
    }
    Ok(())
}

/// Bounds-checked little-endian reader shared by the binary decoders.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8], what: &'static str) -> Self {
        Reader { b, pos: 0, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let left = self.b.len() - self.pos;
        if n > left {
            return Err(FormatError::Truncated {
                what: self.what,
                needed: n,
                found: left,
            });
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, FormatError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a u32 count of records at least `min_record` bytes each, refusing counts
    /// the remaining bytes cannot hold (no huge allocations from a forged count).
    pub(crate) fn count(&mut self, min_record: usize) -> Result<usize, FormatError> {
        let n = self.u32()? as usize;
        let left = self.b.len() - self.pos;
        if n.saturating_mul(min_record) > left {
            return Err(FormatError::Truncated {
                what: self.what,
                needed: n.saturating_mul(min_record),
                found: left,
            });
        }
        Ok(n)
    }

    pub(crate) fn entries(&mut self, n: usize) -> Result<Vec<PackEntry>, FormatError> {
        let bytes = self.take(n.saturating_mul(PACK_ENTRY_LEN))?;
        bytes
            .chunks_exact(PACK_ENTRY_LEN)
            .map(PackEntry::decode)
            .collect()
    }

    pub(crate) fn finish(&self) -> Result<(), FormatError> {
        if self.pos != self.b.len() {
            return Err(FormatError::invalid(
                self.what,
                format!("{} trailing bytes", self.b.len() - self.pos),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlobId, BlobType};
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = PackEntry> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<[u8; 32]>(),
            0u32..1000,
            0u32..1000,
            any::<u32>(),
        )
            .prop_map(|(t, c, id, offset, length, raw_length)| PackEntry {
                blob_type: if t { BlobType::Tree } else { BlobType::Data },
                compressed: c,
                id: BlobId(id),
                offset,
                length,
                raw_length,
            })
    }

    proptest! {
        #[test]
        fn index_roundtrip(packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(entry(), 0..20)), 0..10),
                           marked in proptest::collection::vec((any::<[u8; 32]>(), any::<i64>(), proptest::collection::vec(entry(), 0..20)), 0..4),
                           sup in proptest::collection::vec(any::<[u8; 32]>(), 0..3)) {
            let f = IndexFile {
                supersedes: sup.into_iter().map(IndexId).collect(),
                packs: packs.into_iter().map(|(id, blobs)| IndexPack { id: PackId(id), size: 2000, blobs }).collect(),
                marked: marked.into_iter().map(|(id, at, blobs)| MarkedPack {
                    pack: IndexPack { id: PackId(id), size: 2000, blobs },
                    marked_millis: at,
                }).collect(),
            };
            let enc = f.encode();
            // Without marked packs the file is format 1's, byte for byte.
            let magic: &[u8] = if f.marked.is_empty() { MAGIC } else { MAGIC_MARKED };
            prop_assert_eq!(&enc[..8], magic);
            prop_assert_eq!(IndexFile::decode(&enc).unwrap(), f);
            // Every truncation is an error, never a panic.
            for cut in 0..enc.len() {
                prop_assert!(IndexFile::decode(&enc[..cut]).is_err());
            }
        }

        #[test]
        fn header_roundtrip(entries in proptest::collection::vec(entry(), 0..50)) {
            let enc = crate::encode_header(&entries);
            prop_assert_eq!(crate::decode_header(&enc, 2000).unwrap(), entries);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = IndexFile::decode(&b);
            let _ = crate::decode_header(&b, 1 << 20);
        }
    }

    #[test]
    fn forged_count_is_refused_without_allocating() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(IndexFile::decode(&b).is_err());
    }

    #[test]
    fn entry_outside_pack_is_refused() {
        let e = PackEntry {
            blob_type: BlobType::Data,
            compressed: false,
            id: BlobId([1; 32]),
            offset: 10,
            length: 100,
            raw_length: 1,
        };
        let f = IndexFile {
            supersedes: vec![],
            packs: vec![IndexPack {
                id: PackId([2; 32]),
                size: 50,
                blobs: vec![e],
            }],
            marked: vec![],
        };
        assert!(IndexFile::decode(&f.encode()).is_err());
        assert!(crate::decode_header(&crate::encode_header(&[e]), 50).is_err());
    }
}
