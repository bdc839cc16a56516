//! Whole files (index, snapshot, lock, records): sealed, named by their hash, and the
//! records of what was removed on purpose.

use super::*;

impl Repository {
    /// Deletes one repository file by kind and id.
    pub fn remove_file(&self, kind: FileKind, id: &FileId) -> Result<(), RepoError> {
        Ok(self.backend.remove(&kind.file_name(id))?)
    }

    /// Whether the file of `kind` with `id` is stored (a missing file is `false`, any
    /// other failure to look is an error).
    pub fn exists(&self, kind: FileKind, id: &FileId) -> Result<bool, RepoError> {
        match self.backend.stat(&kind.file_name(id)) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `new` and then removes the snapshot `old` (tags changed, repaired): at
    /// every moment at least one of the two exists.
    pub fn replace_snapshot(
        &self,
        old: &SnapshotId,
        new: &Snapshot,
    ) -> Result<SnapshotId, RepoError> {
        let id = self.save_snapshot(new)?;
        if id != *old {
            self.remove_snapshots(&[*old])?;
        }
        Ok(id)
    }

    /// Removes snapshots on purpose: a sealed `forgotten/` record of them is stored
    /// first, so their absence is never mistaken for a deletion behind cairn's back.
    pub fn remove_snapshots(&self, ids: &[SnapshotId]) -> Result<(), RepoError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.record_forgotten(ids.iter().map(SnapshotId::to_hex).collect())?;
        for id in ids {
            self.remove_file(FileKind::Snapshot, &FileId::from(*id))?;
        }
        Ok(())
    }

    /// Stores a record that these snapshots (full hex IDs) were removed on purpose.
    pub fn record_forgotten(&self, snapshots: Vec<String>) -> Result<(), RepoError> {
        let rec = cairn_format::ForgottenRecord {
            time: crate::sys::now(),
            hostname: crate::sys::hostname(),
            snapshots,
        };
        self.save_file(FileKind::Forgotten, &rec.encode())
            .map(|_| ())
    }

    /// Every snapshot ID (hex) any `forgotten/` record names. Garbage there must not
    /// brick every command: an unreadable record counts as absent (so the snapshots it
    /// names look deleted behind cairn's back, the safe reading), named in a warning;
    /// `check` reports it through [`Repository::forgotten_records`].
    pub fn forgotten_snapshots(&self) -> Result<std::collections::HashSet<String>, RepoError> {
        let (ids, unreadable) = self.forgotten_records()?;
        for (name, e) in unreadable {
            tracing::warn!("ignoring {name}: {e}");
        }
        Ok(ids)
    }

    /// The snapshot IDs the readable `forgotten/` records name, and each unreadable
    /// record's name with its error.
    pub fn forgotten_records(
        &self,
    ) -> Result<(std::collections::HashSet<String>, Vec<(String, RepoError)>), RepoError> {
        let mut ids = std::collections::HashSet::new();
        let mut unreadable = Vec::new();
        for id in self.list_files(FileKind::Forgotten)? {
            let name = FileKind::Forgotten.file_name(&id);
            let rec = self.load_file(FileKind::Forgotten, &id).and_then(|b| {
                cairn_format::ForgottenRecord::decode(&b)
                    .map_err(|e| RepoError::format(name.clone(), e))
            });
            match rec {
                Ok(rec) => ids.extend(rec.snapshots),
                Err(e) => unreadable.push((name, e)),
            }
        }
        Ok((ids, unreadable))
    }

    // ---- whole files (index, snapshot, lock) ----

    /// Frames, seals and stores a file under the hash of its stored bytes; returns its ID.
    pub fn save_file(&self, kind: FileKind, payload: &[u8]) -> Result<FileId, RepoError> {
        // An index or snapshot may point at packs a prune elsewhere deletes once this
        // command's lock looks stale: check the lock is still ours first (a dry run's
        // lock was never stored, and nothing it writes is either).
        if matches!(kind, FileKind::Index | FileKind::Snapshot) && !self.dry_run {
            let held = self.held_lock.lock().unwrap_or_else(unpoison).clone();
            if let Some(lock) = held {
                lock.check(
                    self.backend.as_ref(),
                    if kind == FileKind::Index {
                        "an index file"
                    } else {
                        "the snapshot"
                    },
                )?;
            }
        }
        let sealed = self
            .key
            .seal(kind.seal_purpose(), &frame(payload, Some(3)))
            .map_err(|e| crypto(kind.dir(), e))?;
        let id = FileId(cairn_crypto::storage_hash(&sealed));
        self.backend
            .write(&kind.file_name(&id), &sealed, &WriteOptions::default())?;
        Ok(id)
    }

    /// Loads a file, verifying its name (storage hash) and its seal.
    pub fn load_file(&self, kind: FileKind, id: &FileId) -> Result<Vec<u8>, RepoError> {
        let name = kind.file_name(id);
        let sealed = self.backend.read(&name)?;
        if cairn_crypto::storage_hash(&sealed) != id.0 {
            return Err(RepoError::corrupt(
                name,
                "content does not match its name (hash mismatch)",
            ));
        }
        let plain = self
            .key
            .open(kind.seal_purpose(), &sealed)
            .map_err(|e| crypto(&name, e))?;
        unframe(&plain).map_err(|e| RepoError::format(name, e))
    }

    /// IDs of every file of `kind`.
    pub fn list_files(&self, kind: FileKind) -> Result<Vec<FileId>, RepoError> {
        Ok(self
            .list_files_sized(kind)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// IDs of every file of `kind`, with their stored sizes.
    pub(super) fn list_files_sized(&self, kind: FileKind) -> Result<Vec<(FileId, u64)>, RepoError> {
        let mut out = Vec::new();
        for o in self.backend.list(kind.dir())? {
            let id = crate::layout::canonical_id(kind, &o.name).and_then(|h| h.parse().ok());
            match id {
                Some(id) => out.push((id, o.size)),
                None => tracing::warn!("skipping {}: not the name of a repository file", o.name),
            }
        }
        Ok(out)
    }

    // ---- index ----
}
