//! Rolling verification: which packs were last read back intact, and when, per location.
//!
//! `check --read-data-subset` and `drill` read never-verified packs first, then the
//! least recently verified, so a year of small checks covers every pack instead of
//! sampling the same ones again. A pack that failed is not recorded, so it stays at the
//! front of the queue and every later check reads it again until it is repaired.

use rand::seq::SliceRandom;

use cairn_format::{PackId, VerifiedRecord};
use cairn_repo::{FileKind, Repository};

use crate::OpsError;

/// All verification records of a repository, merged.
pub struct VerificationLog {
    merged: VerifiedRecord,
    /// The files merged, removed once a new merged file is stored.
    files: Vec<cairn_format::FileId>,
}

impl VerificationLog {
    /// Reads every record; unreadable ones are skipped (they only cost re-verification).
    pub fn load(repo: &Repository) -> Result<VerificationLog, OpsError> {
        let mut merged = VerifiedRecord::default();
        let mut files = Vec::new();
        for hex in repo.list_files(FileKind::Verified)? {
            match repo.load_file(FileKind::Verified, &hex).and_then(|b| {
                VerifiedRecord::decode(&b).map_err(|e| {
                    cairn_repo::RepoError::format(FileKind::Verified.file_name(&hex), e)
                })
            }) {
                Ok(r) => {
                    merged.merge(r);
                    files.push(hex);
                }
                Err(e) => tracing::warn!("ignoring verification record: {e}"),
            }
        }
        Ok(VerificationLog { merged, files })
    }

    /// Unix milliseconds when `pack` was last verified at `location`.
    pub fn last_verified(&self, location: &str, pack: &PackId) -> Option<i64> {
        self.merged
            .locations
            .get(location)?
            .get(&pack.to_hex())
            .copied()
    }

    /// Each location with the packs verified there (hex) and when (ms), for reports.
    pub fn locations(
        &self,
    ) -> impl Iterator<Item = (&str, &std::collections::BTreeMap<String, i64>)> {
        self.merged.locations.iter().map(|(l, m)| (l.as_str(), m))
    }

    /// `packs` in the order to verify them at `location`: never verified first (in
    /// random order), then oldest verification first.
    pub fn order(&self, location: &str, mut packs: Vec<PackId>) -> Vec<PackId> {
        packs.shuffle(&mut rand::thread_rng());
        packs.sort_by_key(|p| self.last_verified(location, p).unwrap_or(i64::MIN));
        packs
    }

    /// Records `packs` as verified at `location` at `now`: one new file holding every
    /// record so far, then the files it replaces are removed (a concurrent writer's new
    /// file is never among them, so nothing is lost).
    pub fn record(
        mut self,
        repo: &Repository,
        location: &str,
        packs: &[PackId],
        now: i64,
    ) -> Result<(), OpsError> {
        if packs.is_empty() {
            return Ok(());
        }
        let mine = self
            .merged
            .locations
            .entry(location.to_string())
            .or_default();
        for p in packs {
            mine.insert(p.to_hex(), now);
        }
        // Forget packs that no longer exist (pruned) so the record does not grow forever.
        let live: std::collections::HashSet<String> =
            repo.index().packs().map(|(p, _)| p.to_hex()).collect();
        if !live.is_empty() {
            for m in self.merged.locations.values_mut() {
                m.retain(|p, _| live.contains(p));
            }
        }
        let new = repo.save_file(FileKind::Verified, &self.merged.encode())?;
        // With an append-only key the old records stay (they are merged on reading);
        // the next check with a key that may delete removes them.
        if repo.backend().delete_refused().is_some() {
            return Ok(());
        }
        for old in self.files.iter().filter(|f| **f != new) {
            repo.remove_file(FileKind::Verified, old)?;
        }
        Ok(())
    }
}
