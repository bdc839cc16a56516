//! Pack files: sealed blobs back to back, then the sealed header, then the header's
//! length as 4 little-endian bytes. The header is at the end so a pack can be written
//! in one streaming pass; its entries are fixed-size binary records.

use crate::{BlobId, FormatError, ID_LEN};

/// Bytes per encoded [`PackEntry`].
pub const PACK_ENTRY_LEN: usize = 1 + 1 + ID_LEN + 4 + 4 + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobType {
    Data,
    Tree,
}

impl BlobType {
    pub fn code(self) -> u8 {
        match self {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        }
    }
    pub fn from_code(c: u8) -> Result<BlobType, FormatError> {
        match c {
            0 => Ok(BlobType::Data),
            1 => Ok(BlobType::Tree),
            _ => Err(FormatError::invalid("blob type", format!("code {c}"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
    /// Associated data bound into each blob's seal, so a data blob cannot stand in for
    /// a tree blob even if an attacker rearranges packs.
    pub fn seal_purpose(self) -> &'static [u8] {
        match self {
            BlobType::Data => b"cairn v1 data blob",
            BlobType::Tree => b"cairn v1 tree blob",
        }
    }
}

/// Where one blob lives inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub blob_type: BlobType,
    /// Whether the sealed plaintext is zstd-compressed.
    pub compressed: bool,
    pub id: BlobId,
    pub offset: u32,
    /// Stored (sealed) length, nonce and tag included.
    pub length: u32,
    /// Length of the blob's plaintext after decompression.
    pub raw_length: u32,
}

impl PackEntry {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.blob_type.code());
        out.push(u8::from(self.compressed));
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_length.to_le_bytes());
    }

    /// Decodes one record; `b` must be exactly [`PACK_ENTRY_LEN`] bytes.
    pub fn decode(b: &[u8]) -> Result<PackEntry, FormatError> {
        if b.len() != PACK_ENTRY_LEN {
            return Err(FormatError::Truncated {
                what: "pack entry",
                needed: PACK_ENTRY_LEN,
                found: b.len(),
            });
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let compressed = match b[1] {
            0 => false,
            1 => true,
            f => return Err(FormatError::invalid("pack entry", format!("flags {f}"))),
        };
        Ok(PackEntry {
            blob_type: BlobType::from_code(b[0])?,
            compressed,
            id: BlobId::from_slice(&b[2..2 + ID_LEN])?,
            offset: u32_at(2 + ID_LEN),
            length: u32_at(6 + ID_LEN),
            raw_length: u32_at(10 + ID_LEN),
        })
    }
}

const HEADER_MAGIC: &[u8; 8] = b"CAIRNPH1";

/// Plaintext of a pack header: magic, entry count, entries.
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + entries.len() * PACK_ENTRY_LEN);
    out.extend_from_slice(HEADER_MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        e.encode_into(&mut out);
    }
    out
}

/// Decodes a header and checks every entry lies inside the first `data_len` bytes of
/// the pack, so later reads cannot run past the blob area.
pub fn decode_header(b: &[u8], data_len: u64) -> Result<Vec<PackEntry>, FormatError> {
    let mut r = crate::index::Reader::new(b, "pack header");
    if r.take(8)? != HEADER_MAGIC {
        return Err(FormatError::BadMagic("pack header"));
    }
    let n = r.u32()? as usize;
    let entries = r.entries(n)?;
    r.finish()?;
    for e in &entries {
        if u64::from(e.offset) + u64::from(e.length) > data_len {
            return Err(FormatError::invalid(
                "pack header",
                format!("blob {} extends past the blob area", e.id.short()),
            ));
        }
    }
    Ok(entries)
}
