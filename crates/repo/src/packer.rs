//! Collects sealed blobs of one type into a pack file.
//!
//! Blobs are written in a shuffled order (restic 0.18 does the same): in file order,
//! the sequence of blob sizes in a pack would fingerprint a known file even through
//! encryption. The whole pack is kept in memory until it is full (16 MiB by default),
//! which bounds memory and lets the backend write it in one atomic call.

use rand::seq::SliceRandom;

use cairn_crypto::MasterKey;
use cairn_format::{encode_header, BlobType, PackEntry, PackId};

use crate::layout::PACK_HEADER_PURPOSE;
use crate::RepoError;

pub struct Packer {
    blob_type: BlobType,
    blobs: Vec<(PackEntry, Vec<u8>)>,
    bytes: usize,
}

/// A finished pack, ready to store: its blobs in pack order, then the sealed header
/// and its length. Kept in pieces so that no second copy of the pack is made in memory
/// ([`cairn_backend::Backend::write_parts`]).
pub struct FinishedPack {
    pub id: PackId,
    pub parts: Vec<Vec<u8>>,
    pub size: u64,
    pub entries: Vec<PackEntry>,
}

impl FinishedPack {
    pub fn slices(&self) -> Vec<&[u8]> {
        self.parts.iter().map(Vec::as_slice).collect()
    }
}

impl Packer {
    pub fn new(blob_type: BlobType) -> Packer {
        Packer { blob_type, blobs: Vec::new(), bytes: 0 }
    }

    pub fn blob_type(&self) -> BlobType {
        self.blob_type
    }

    /// `entry.offset` is ignored; it is assigned when the pack is finished.
    pub fn add(&mut self, entry: PackEntry, sealed: Vec<u8>) {
        self.bytes += sealed.len();
        self.blobs.push((entry, sealed));
    }

    pub fn size(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Takes the collected blobs and lays out the pack; the packer is empty afterwards.
    pub fn finish(&mut self, key: &MasterKey) -> Result<FinishedPack, RepoError> {
        let mut blobs = std::mem::take(&mut self.blobs);
        self.bytes = 0;
        blobs.shuffle(&mut rand::thread_rng());
        let mut offset = 0usize;
        let mut entries = Vec::with_capacity(blobs.len());
        let mut parts = Vec::with_capacity(blobs.len() + 1);
        for (mut e, b) in blobs {
            e.offset = u32::try_from(offset).map_err(|_| RepoError::Invalid("pack larger than 4 GiB".into()))?;
            e.length = b.len() as u32;
            offset += b.len();
            entries.push(e);
            parts.push(b);
        }
        let mut tail = key
            .seal(PACK_HEADER_PURPOSE, &encode_header(&entries))
            .map_err(|e| RepoError::Invalid(e.to_string()))?;
        let header_len = (tail.len() as u32).to_le_bytes();
        tail.extend_from_slice(&header_len);
        let size = (offset + tail.len()) as u64;
        parts.push(tail);
        let id = PackId(cairn_crypto::storage_hash_parts(parts.iter().map(Vec::as_slice)));
        Ok(FinishedPack { id, parts, size, entries })
    }
}

/// Reads and authenticates the header at the end of a pack's bytes.
pub fn read_pack_header(key: &MasterKey, name: &str, data: &[u8]) -> Result<Vec<PackEntry>, RepoError> {
    if data.len() < 4 {
        return Err(RepoError::corrupt(name, "too short for a pack"));
    }
    let n = data.len();
    let hlen = u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]) as usize;
    if hlen + 4 > n {
        return Err(RepoError::corrupt(name, "header length exceeds pack size"));
    }
    let start = n - 4 - hlen;
    let plain = key.open(PACK_HEADER_PURPOSE, &data[start..n - 4]).map_err(|e| RepoError::corrupt(name, e))?;
    cairn_format::decode_header(&plain, start as u64).map_err(|e| RepoError::format(name, e))
}
