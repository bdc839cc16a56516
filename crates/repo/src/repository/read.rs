//! Reading blobs back: from the pack (or the read-ahead window), verified against their ID.

use super::*;

/// Whether `data` is what the pack `id` must hold: a pack is named by the BLAKE3 hash of
/// its stored bytes, so any change to them shows here.
pub fn pack_matches_name(id: &PackId, data: &[u8]) -> bool {
    cairn_crypto::storage_hash(data) == id.0
}

/// Pack `id` from `backend`, read whole and checked against its name. A pack whose bytes
/// no longer match is [`RepoError::Corrupt`] naming it; a missing one is the backend's
/// `NotFound`. For reading a pack from another copy (`repair packs --from`).
pub fn read_pack_verified(backend: &dyn Backend, id: &PackId) -> Result<Vec<u8>, RepoError> {
    let name = pack_name(id);
    let data = backend.read(&name)?;
    if !pack_matches_name(id, &data) {
        return Err(RepoError::corrupt(
            name,
            "content does not match its name (hash mismatch)",
        ));
    }
    Ok(data)
}

impl Repository {
    /// Every stored pack with its listing entry; names under `data/` that are not a pack
    /// ID are left out.
    pub fn list_packs(&self) -> Result<Vec<(PackId, cairn_backend::ObjectInfo)>, RepoError> {
        Ok(self
            .backend
            .list(DATA_DIR)?
            .into_iter()
            .filter_map(|o| Some((crate::layout::pack_id_from_name(&o.name)?, o)))
            .collect())
    }

    /// Pack `id`, read whole and checked against its name: what check, prune, repair and
    /// the adoption of unindexed packs each read before they trust a pack's bytes.
    pub fn load_pack_verified(&self, id: &PackId) -> Result<Vec<u8>, RepoError> {
        read_pack_verified(self.backend.as_ref(), id)
    }

    /// Loads a blob and verifies it is the blob asked for.
    pub fn load_blob(&self, id: &BlobId) -> Result<Vec<u8>, RepoError> {
        let found = self
            .index()
            .get(id)
            .ok_or_else(|| RepoError::BlobNotFound(id.to_hex()))?;
        let name = pack_name(&found.pack);
        let e = found.entry;
        let cached = match (&self.tree_cache, e.blob_type) {
            (Some(dir), BlobType::Tree) => Some(dir.join(id.to_hex())),
            _ => None,
        };
        if let Some(path) = &cached {
            if let Ok(sealed) = std::fs::read(path) {
                match self.open_blob_owned(&name, &e, sealed) {
                    Ok(b) => return Ok(b),
                    Err(_) => {
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
        }
        let read_ahead = self
            .read_ahead
            .read()
            .unwrap_or_else(crate::unpoison)
            .clone();
        // Trees too: a restore's plan walks thousands of them, and they sit together in
        // tree packs.
        let sealed = match &read_ahead {
            Some(ra) => ra.read(self.backend.as_ref(), &name, &found.pack, &e)?,
            None => self
                .backend
                .read_range(&name, u64::from(e.offset), u64::from(e.length))?,
        };
        if let Some(path) = &cached {
            let plain = self.open_blob(&name, &e, &sealed)?;
            let _ = cairn_backend::write_private(path, &sealed);
            return Ok(plain);
        }
        self.open_blob_owned(&name, &e, sealed)
    }

    /// Decrypts, decompresses and verifies one blob's stored bytes.
    pub fn open_blob(
        &self,
        pack: &str,
        e: &PackEntry,
        sealed: &[u8],
    ) -> Result<Vec<u8>, RepoError> {
        self.open_blob_owned(pack, e, sealed.to_vec())
    }

    /// [`Repository::open_blob`] of a buffer it may decrypt in place: a restore then
    /// costs one buffer per blob read (two if compressed), not a copy per step.
    pub fn open_blob_owned(
        &self,
        pack: &str,
        e: &PackEntry,
        mut sealed: Vec<u8>,
    ) -> Result<Vec<u8>, RepoError> {
        let what = || format!("blob {} in {pack}", e.id.short());
        let plain = self
            .key
            .open_in_place(e.blob_type.seal_purpose(), &mut sealed)
            .map_err(|err| RepoError::corrupt(what(), err))?;
        let data = if e.compressed {
            // One-shot into a buffer of exactly the authenticated length: no zeroing of
            // the output (the streaming reader's read_to_end cleared every byte first,
            // 5% of a restore), and a blob that would decompress larger is an error.
            decompress(&sealed[plain], e.raw_length as usize)
                .map_err(|err| RepoError::corrupt(what(), err))?
        } else {
            sealed.truncate(plain.end);
            sealed.drain(..plain.start);
            sealed
        };
        if data.len() != e.raw_length as usize {
            return Err(RepoError::corrupt(what(), "length differs from index"));
        }
        if self.key.blob_id(&data) != e.id.0 {
            return Err(RepoError::corrupt(what(), "content does not match its id"));
        }
        Ok(data)
    }

    pub fn load_tree(&self, id: &BlobId) -> Result<Tree, RepoError> {
        let b = self.load_blob(id)?;
        Tree::decode(&b).map_err(|e| RepoError::format(format!("tree {}", id.short()), e))
    }

    pub fn save_tree(&self, tree: &Tree) -> Result<(BlobId, bool), RepoError> {
        self.save_blob(BlobType::Tree, &tree.encode())
    }

    /// Reads a pack whole and returns its authenticated header entries.
    pub fn load_pack_header(&self, pack: &PackId) -> Result<Vec<PackEntry>, RepoError> {
        let name = pack_name(pack);
        let data = self.backend.read(&name)?;
        read_pack_header(&self.key, &name, &data)
    }

    // ---- snapshots ----
}
