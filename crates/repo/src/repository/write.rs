//! The blob write path: claim a blob, add it to a pack, store full packs, flush the rest,
//! and take back packs an interrupted command left unindexed.

use super::*;

impl Repository {
    /// Whether the blob is stored (outside packs marked for deletion) or being stored by
    /// this command.
    pub fn has_blob(&self, id: &BlobId) -> bool {
        self.index().stores(id)
            || self
                .writer
                .lock()
                .unwrap_or_else(unpoison)
                .in_flight
                .contains(id)
    }

    /// Stores a blob unless it is already there; returns its id and whether it was new.
    /// Safe to call from many threads; full packs are written by the thread that filled them.
    pub fn save_blob(
        &self,
        blob_type: BlobType,
        plaintext: &[u8],
    ) -> Result<(BlobId, bool), RepoError> {
        self.save_blob_parts(blob_type, &[plaintext])
    }

    /// [`Repository::save_blob`] of the concatenation of `parts` (a chunk as it was read).
    pub fn save_blob_parts(
        &self,
        blob_type: BlobType,
        parts: &[&[u8]],
    ) -> Result<(BlobId, bool), RepoError> {
        let id = BlobId(self.key.blob_id_parts(parts));
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let raw_length = u32::try_from(len).map_err(|_| RepoError::TooLarge("blob"))?;
        if !self.claim(&id, true) {
            return Ok((id, false));
        }
        let entry = PackEntry {
            blob_type,
            compressed: false,
            id,
            offset: 0,
            length: 0,
            raw_length,
        };
        let stored = self.add_to_pack(entry, sealed_bound(len), |buf| {
            encode_blob(&self.key, blob_type, self.compression, parts, buf)
        })?;
        let counter = match blob_type {
            BlobType::Data => &self.stats.data_blobs,
            BlobType::Tree => &self.stats.tree_blobs,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats
            .data_added
            .fetch_add(len as u64, Ordering::Relaxed);
        self.stats
            .data_added_packed
            .fetch_add(stored as u64, Ordering::Relaxed);
        Ok((id, true))
    }

    /// Puts an already sealed blob into a new pack, as it is (no re-encryption): for
    /// prune's repacking and for repair. `entry.offset` and `entry.length` are ignored.
    /// Returns false if this command already stored the blob.
    pub fn save_sealed_blob(&self, entry: PackEntry, sealed: &[u8]) -> Result<bool, RepoError> {
        if !self.claim(&entry.id, false) {
            return Ok(false);
        }
        self.add_to_pack(entry, sealed.len(), |buf| {
            buf.extend_from_slice(sealed);
            Ok(entry.compressed)
        })?;
        Ok(true)
    }

    /// Makes this thread the one that stores blob `id`, unless it is stored already
    /// (`in_index`: or listed in the index) or another thread is storing it. Claiming
    /// before sealing means a chunk seen twice at once is sealed once.
    pub(super) fn claim(&self, id: &BlobId, in_index: bool) -> bool {
        // The index lock is held across the claim (index, then writer, as in
        // `index_stored`), so a blob cannot move from in flight to the index between
        // the two checks.
        let index = self.index();
        // A blob only in packs prune marked is stored again: no new reference to a
        // marked pack is ever made, so a later prune may delete it.
        if in_index && index.stores(id) {
            return false;
        }
        self.writer
            .lock()
            .unwrap_or_else(unpoison)
            .in_flight
            .insert(*id)
    }

    /// Seals a claimed blob into a packer of this thread's own (`write` appends at most
    /// `bound` bytes), writing the pack first if the blob would take it past the target
    /// and afterwards if the blob filled it. Returns the blob's stored length. On error
    /// the claim is given up.
    pub(super) fn add_to_pack(
        &self,
        entry: PackEntry,
        bound: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<bool, RepoError>,
    ) -> Result<usize, RepoError> {
        let pool = match entry.blob_type {
            BlobType::Data => &self.data_packers,
            BlobType::Tree => &self.tree_packers,
        };
        let id = entry.id;
        let mut packer = pool.take();
        let add = || -> Result<usize, RepoError> {
            if !packer.is_empty() && packer.size() + bound > pool.target() {
                self.store_pack(packer.finish(&self.key)?)?;
            }
            let stored = packer.add_with(entry, write)?;
            if packer.size() >= pool.target() {
                self.store_pack(packer.finish(&self.key)?)?;
            }
            Ok(stored)
        };
        let added = add();
        if added.is_err() {
            self.writer
                .lock()
                .unwrap_or_else(unpoison)
                .in_flight
                .remove(&id);
        }
        added
    }

    /// Packs stored by this command that no index file lists yet; the caller takes
    /// over writing them into an index (prune writes one complete index).
    pub fn take_unindexed(&self) -> Vec<IndexPack> {
        let _ = self.index_uploaded();
        std::mem::take(&mut self.writer.lock().unwrap_or_else(unpoison).unindexed)
    }

    pub(super) fn store_pack(&self, mut pack: FinishedPack) -> Result<(), RepoError> {
        if let Some(up) = &self.uploader {
            up.submit(pack)?;
            return self.index_uploaded();
        }
        if let Err(e) = self.backend.write_parts(
            &pack_name(&pack.id),
            &pack.slices(),
            &WriteOptions::default(),
        ) {
            // Its blobs are not stored: nothing may take them for stored from now on.
            let mut w = self.writer.lock().unwrap_or_else(unpoison);
            for b in &pack.entries {
                w.in_flight.remove(&b.id);
            }
            return Err(e.into());
        }
        self.index_stored(vec![(
            pack.id,
            pack.size,
            std::mem::take(&mut pack.entries),
        )]);
        Ok(())
    }

    /// Moves packs the upload threads finished into the index.
    pub(super) fn index_uploaded(&self) -> Result<(), RepoError> {
        if let Some(up) = &self.uploader {
            let done = up.take_done()?;
            if !done.is_empty() {
                self.index_stored(done);
            }
        }
        Ok(())
    }

    pub(super) fn index_stored(&self, packs: Vec<crate::uploader::Done>) {
        let mut index = self.index.write().unwrap_or_else(unpoison);
        let mut w = self.writer.lock().unwrap_or_else(unpoison);
        for (id, size, entries) in packs {
            for e in &entries {
                index.add_recent(id, size, e);
                w.in_flight.remove(&e.id);
            }
            w.unindexed.push(IndexPack {
                id,
                size,
                blobs: entries,
            });
            w.stored.push(id);
        }
    }

    /// Writes out partly filled packs. Call before saving the final index.
    pub fn flush(&self) -> Result<(), RepoError> {
        // Called with no blob being added, so every packer is idle in its pool.
        for pool in [&self.data_packers, &self.tree_packers] {
            for mut packer in pool.take_unfinished()? {
                let pack = packer.finish(&self.key)?;
                self.store_pack(pack)?;
            }
        }
        if let Some(up) = &self.uploader {
            up.wait_idle()?;
        }
        self.index_uploaded()
    }
}
