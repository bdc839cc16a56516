//! Snapshots: saved only when every pack this command stored is still there; listed,
//! and found by ID prefix or `latest`.

use super::*;

impl Repository {
    pub fn save_snapshot(&self, s: &Snapshot) -> Result<SnapshotId, RepoError> {
        if !self.dry_run {
            self.check_stored_packs()?;
        }
        Ok(self.save_file(FileKind::Snapshot, &s.encode())?.into())
    }

    /// Fails unless every pack this command stored is still in the repository: a
    /// snapshot must never point at data that is not stored, and a prune elsewhere that
    /// took this command's lock for stale may have deleted packs it had not indexed yet.
    /// A few packs are looked at one by one, more with one listing.
    pub(super) fn check_stored_packs(&self) -> Result<(), RepoError> {
        let stored = self.writer.lock().unwrap_or_else(unpoison).stored.clone();
        let missing: Vec<String> = if stored.len() <= 64 {
            let mut gone = Vec::new();
            for id in &stored {
                match self.backend.stat(&pack_name(id)) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => gone.push(pack_name(id)),
                    Err(e) => return Err(e.into()),
                }
            }
            gone
        } else {
            let there: HashSet<String> = self
                .backend
                .list(DATA_DIR)?
                .into_iter()
                .map(|o| o.name)
                .collect();
            stored
                .iter()
                .map(pack_name)
                .filter(|n| !there.contains(n))
                .collect()
        };
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(RepoError::LockLost {
                what: "the snapshot".into(),
                why: format!("{} pack(s) this command stored are gone from the repository (first {first}); was a prune run elsewhere while this lock looked stale?", missing.len()),
            }),
        }
    }

    /// Every snapshot, oldest first.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotRef>, RepoError> {
        let ids = self.list_files(FileKind::Snapshot)?;
        let snaps = parallel_map(&ids, 8, |file| -> Result<Option<SnapshotRef>, RepoError> {
            let b = match self.load_file(FileKind::Snapshot, file) {
                Ok(b) => b,
                // Removed since the listing (a forget beside this command): gone.
                Err(RepoError::Backend(e)) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
            let s = Snapshot::decode(&b)
                .map_err(|e| RepoError::format(FileKind::Snapshot.file_name(file), e))?;
            Ok(Some(SnapshotRef {
                id: (*file).into(),
                snapshot: s,
            }))
        })?;
        let mut snaps: Vec<SnapshotRef> = snaps.into_iter().flatten().collect();
        snaps.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
        Ok(snaps)
    }

    /// Resolves `latest` or a unique id prefix of at least 4 hex digits.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotRef, RepoError> {
        let all = self.list_snapshots()?;
        if spec == "latest" {
            return all
                .into_iter()
                .last()
                .ok_or_else(|| RepoError::SnapshotNotFound(spec.into()));
        }
        if spec.len() < 4 || !spec.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(RepoError::SnapshotNotFound(spec.into()));
        }
        let spec_l = spec.to_ascii_lowercase();
        let mut matches: Vec<SnapshotRef> = all
            .into_iter()
            .filter(|s| s.id.to_hex().starts_with(&spec_l))
            .collect();
        match matches.len() {
            0 => Err(RepoError::SnapshotNotFound(spec.into())),
            1 => Ok(matches.remove(0)),
            _ => Err(RepoError::AmbiguousSnapshot(spec.into())),
        }
    }
}
