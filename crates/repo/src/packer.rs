//! Collects sealed blobs of one type into a pack file.
//!
//! Blobs are written in a shuffled order (restic 0.18 does the same): in file order,
//! the sequence of blob sizes in a pack would fingerprint a known file even through
//! encryption. The whole pack is kept in memory until it is full (16 MiB by default),
//! which bounds memory and lets the backend write it in one atomic call.
//!
//! Memory: a thread adding a blob takes a packer of its own out of a [`PackerPool`],
//! so it compresses and seals the blob straight into the pack's buffer (no lock held
//! meanwhile, no buffer per blob, no copy), and writes the pack itself when it is full
//! while the other threads fill packers of their own. So there are as many packs in
//! memory as threads storing blobs, each at most the target size, whatever the amount
//! of data. (A buffer per blob, 0.5 to 8 MiB and freed a pack at a time, fragmented the
//! allocator's heap: resident memory grew with the data backed up.) Buffers of written
//! packs go back to a [`PackBuffers`] pool for the next pack.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use rand::seq::SliceRandom;

use cairn_crypto::MasterKey;
use cairn_format::{encode_header, BlobType, PackEntry, PackId};

use crate::layout::PACK_HEADER_PURPOSE;
use crate::{unpoison, RepoError};

/// Pack buffers made with room for a whole pack, and those of packs that have been
/// written, kept for the next packs. Holds at most [`PackBuffers::KEEP`]: more than the
/// threads filling packs only while uploads to a remote backend hold finished packs.
pub(crate) struct PackBuffers {
    /// Room a new buffer is made with: the target pack size.
    capacity: usize,
    spare: Mutex<Vec<Vec<u8>>>,
}

impl PackBuffers {
    const KEEP: usize = 4;

    fn take(&self) -> Vec<u8> {
        let spare = self.spare.lock().unwrap_or_else(unpoison).pop();
        let mut buf = spare.unwrap_or_default();
        buf.reserve_exact(self.capacity);
        buf
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut spare = self.spare.lock().unwrap_or_else(unpoison);
        if spare.len() < Self::KEEP && buf.capacity() > 0 {
            spare.push(buf);
        }
    }
}

/// The packers of one blob type that no thread is using.
pub(crate) struct PackerPool {
    blob_type: BlobType,
    /// Pack size to aim for.
    target: usize,
    /// Whether pack buffers are made at the target size up front and reused: for data
    /// packs, which fill. Tree packs are small and rare, so theirs grow as needed
    /// (a pooled buffer would stay resident at full size for the whole command).
    buffers: Option<Arc<PackBuffers>>,
    idle: Mutex<Vec<Packer>>,
    /// Packers taken by threads now.
    taken: std::sync::atomic::AtomicUsize,
}

impl PackerPool {
    pub(crate) fn new(blob_type: BlobType, target: usize, reuse_buffers: bool) -> PackerPool {
        let buffers = reuse_buffers.then(|| {
            Arc::new(PackBuffers {
                capacity: target,
                spare: Mutex::new(Vec::new()),
            })
        });
        PackerPool {
            blob_type,
            target,
            buffers,
            idle: Mutex::new(Vec::new()),
            taken: Default::default(),
        }
    }

    pub(crate) fn target(&self) -> usize {
        self.target
    }

    /// A packer for this thread alone, given back when the guard drops: the fullest
    /// idle one, so that a packer made while all were busy fills only while they are
    /// (when threads rarely store at the same moment, as with small files, one pack
    /// fills and the others stay small).
    pub(crate) fn take(&self) -> TakenPacker<'_> {
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(unpoison);
            // Counted under the lock, so `take_unfinished` never misses a packer.
            self.taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let fullest = idle
                .iter()
                .enumerate()
                .max_by_key(|(_, p)| p.size())
                .map(|(i, _)| i);
            fullest.map(|i| idle.swap_remove(i))
        };
        let packer = idle.unwrap_or_else(|| Packer {
            blob_type: self.blob_type,
            data: Vec::new(),
            blobs: Vec::new(),
            buffers: self.buffers.clone(),
        });
        TakenPacker {
            pool: self,
            packer: Some(packer),
        }
    }

    /// Every packer that holds blobs, emptied out of the pool (to be finished). Fails
    /// while a thread is adding a blob: its packer would be missed, and an index or
    /// snapshot written next could name blobs not yet stored.
    pub(crate) fn take_unfinished(&self) -> Result<Vec<Packer>, RepoError> {
        let mut idle = self.idle.lock().unwrap_or_else(unpoison);
        if self.taken.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return Err(RepoError::Internal(
                "packs flushed while blobs are being added",
            ));
        }
        let (full, empty): (Vec<Packer>, Vec<Packer>) = std::mem::take(&mut *idle)
            .into_iter()
            .partition(|p| !p.is_empty());
        *idle = empty;
        Ok(full)
    }
}

/// A packer taken out of its [`PackerPool`] by one thread.
pub(crate) struct TakenPacker<'a> {
    pool: &'a PackerPool,
    packer: Option<Packer>,
}

impl std::ops::Deref for TakenPacker<'_> {
    type Target = Packer;
    fn deref(&self) -> &Packer {
        self.packer
            .as_ref()
            .expect("a taken packer is present until dropped")
    }
}

impl std::ops::DerefMut for TakenPacker<'_> {
    fn deref_mut(&mut self) -> &mut Packer {
        self.packer
            .as_mut()
            .expect("a taken packer is present until dropped")
    }
}

impl Drop for TakenPacker<'_> {
    fn drop(&mut self) {
        let mut idle = self.pool.idle.lock().unwrap_or_else(unpoison);
        if let Some(p) = self.packer.take() {
            idle.push(p);
        }
        self.pool
            .taken
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub struct Packer {
    blob_type: BlobType,
    /// Sealed blobs in the order they came.
    data: Vec<u8>,
    blobs: Vec<(PackEntry, Range<usize>)>,
    /// Where a new pack's buffer comes from (none: it grows as blobs come).
    buffers: Option<Arc<PackBuffers>>,
}

/// A finished pack, ready to store: its blobs in pack order, then the sealed header
/// and its length. Kept in pieces so that no second copy of the pack is made in memory
/// ([`cairn_backend::Backend::write_parts`]). Its buffer goes back to the pool when it
/// is dropped, written or not.
pub struct FinishedPack {
    pub id: PackId,
    data: Vec<u8>,
    /// Ranges of `data` in pack order.
    order: Vec<Range<usize>>,
    tail: Vec<u8>,
    pub size: u64,
    pub entries: Vec<PackEntry>,
    buffers: Option<Arc<PackBuffers>>,
}

impl FinishedPack {
    pub fn slices(&self) -> Vec<&[u8]> {
        self.order
            .iter()
            .map(|r| &self.data[r.clone()])
            .chain([&self.tail[..]])
            .collect()
    }
}

impl Drop for FinishedPack {
    fn drop(&mut self) {
        if let Some(pool) = &self.buffers {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

impl Packer {
    pub fn blob_type(&self) -> BlobType {
        self.blob_type
    }

    /// Adds a blob that `write` appends to the pack's buffer, returning whether it
    /// is compressed (`entry.compressed` is set from it; `entry.offset` and
    /// `entry.length` are assigned when the pack is finished). If `write` fails, the
    /// pack is left as it was. Returns the blob's stored length.
    pub fn add_with<E>(
        &mut self,
        mut entry: PackEntry,
        write: impl FnOnce(&mut Vec<u8>) -> Result<bool, E>,
    ) -> Result<usize, E> {
        if self.data.capacity() == 0 {
            if let Some(pool) = &self.buffers {
                self.data = pool.take();
            }
        }
        let start = self.data.len();
        match write(&mut self.data) {
            Ok(compressed) => {
                entry.compressed = compressed;
                self.blobs.push((entry, start..self.data.len()));
                Ok(self.data.len() - start)
            }
            Err(e) => {
                self.data.truncate(start);
                Err(e)
            }
        }
    }

    /// Adds an already sealed blob as it is.
    pub fn add(&mut self, entry: PackEntry, sealed: &[u8]) {
        let compressed = entry.compressed;
        let _ = self.add_with(entry, |buf| {
            buf.extend_from_slice(sealed);
            Ok::<_, std::convert::Infallible>(compressed)
        });
    }

    pub fn size(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Takes the collected blobs and lays out the pack; the packer is empty afterwards.
    pub fn finish(&mut self, key: &MasterKey) -> Result<FinishedPack, RepoError> {
        let data = std::mem::take(&mut self.data);
        let mut blobs = std::mem::take(&mut self.blobs);
        let buffers = self.buffers.clone();
        if data.len() > u32::MAX as usize {
            return Err(RepoError::TooLarge("pack"));
        }
        blobs.shuffle(&mut rand::thread_rng());
        let mut offset = 0usize;
        let mut entries = Vec::with_capacity(blobs.len());
        let mut order = Vec::with_capacity(blobs.len());
        for (mut e, r) in blobs {
            e.offset = offset as u32;
            e.length = r.len() as u32;
            offset += r.len();
            entries.push(e);
            order.push(r);
        }
        let mut pack = FinishedPack {
            id: PackId([0; 32]),
            data,
            order,
            tail: Vec::new(),
            size: 0,
            entries,
            buffers,
        };
        pack.tail = key.seal(PACK_HEADER_PURPOSE, &encode_header(&pack.entries))?;
        let header_len = (pack.tail.len() as u32).to_le_bytes();
        pack.tail.extend_from_slice(&header_len);
        pack.size = (offset + pack.tail.len()) as u64;
        pack.id = PackId(cairn_crypto::storage_hash_parts(pack.slices()));
        Ok(pack)
    }
}

/// Reads and authenticates the header at the end of a pack's bytes.
pub fn read_pack_header(
    key: &MasterKey,
    name: &str,
    data: &[u8],
) -> Result<Vec<PackEntry>, RepoError> {
    if data.len() < 4 {
        return Err(RepoError::corrupt(name, "too short for a pack"));
    }
    let n = data.len();
    let hlen = u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]) as usize;
    if hlen + 4 > n {
        return Err(RepoError::corrupt(name, "header length exceeds pack size"));
    }
    let start = n - 4 - hlen;
    let plain = key
        .open(PACK_HEADER_PURPOSE, &data[start..n - 4])
        .map_err(|e| RepoError::corrupt(name, e))?;
    cairn_format::decode_header(&plain, start as u64).map_err(|e| RepoError::format(name, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Data,
            compressed: false,
            id: cairn_format::BlobId([i; 32]),
            offset: 0,
            length: 0,
            raw_length: 1,
        }
    }

    /// A failed write leaves the pack as it was; the finished pack lists every blob at
    /// the offset its bytes lie at; a flush while a packer is taken is refused.
    #[test]
    fn packs_lay_out_their_blobs_and_failed_writes_leave_no_trace() {
        let key = MasterKey::generate().unwrap();
        let pool = PackerPool::new(BlobType::Data, 1 << 20, true);
        {
            let mut p = pool.take();
            p.add(entry(1), b"first blob");
            let failed = p.add_with(entry(2), |buf| {
                buf.extend_from_slice(b"half written");
                Err::<bool, &str>("sealing failed")
            });
            assert_eq!(failed, Err("sealing failed"));
            assert_eq!(p.size(), 10);
            p.add(entry(3), b"third");
            assert!(
                pool.take_unfinished().is_err(),
                "a taken packer must not be missed"
            );
        }
        let mut unfinished = pool.take_unfinished().unwrap();
        assert_eq!(unfinished.len(), 1);
        let pack = unfinished[0].finish(&key).unwrap();
        let bytes: Vec<u8> = pack.slices().concat();
        assert_eq!(bytes.len() as u64, pack.size);
        assert_eq!(pack.entries.len(), 2);
        for e in &pack.entries {
            let want: &[u8] = if e.id.0[0] == 1 {
                b"first blob"
            } else {
                b"third"
            };
            assert_eq!(
                &bytes[e.offset as usize..(e.offset + e.length) as usize],
                want
            );
        }
        assert_eq!(
            read_pack_header(&key, "pack", &bytes).unwrap(),
            pack.entries
        );
        assert!(pool.take_unfinished().unwrap().is_empty());
    }
}
