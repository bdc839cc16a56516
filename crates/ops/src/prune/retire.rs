//! Retiring packs in two phases: marked first, deleted when nothing can be using them.
//!
//! Prune holds no lock that keeps backups or readers out. A backup that loaded the
//! index before a pack was marked may deduplicate against it and save a snapshot that
//! uses it; a reader (check, restore, ship, mount) may be reading it. So a pack is
//!
//! 1. marked, in a complete new index written before the old index files go: its blobs
//!    stay readable, and from then on no backup deduplicates against them (it stores
//!    such a blob again, see `Index::stores`); then
//! 2. deleted, from an index written without it, only if at that moment no reader
//!    runs, every running backup started at least [`MARK_GRACE`] after the pack was
//!    marked (so it listed the index files after the marking index was stored, with
//!    room for clocks that differ between hosts), and no snapshot was saved since the
//!    plan was made (it may use the pack: the next prune sees it and takes the mark
//!    back). Otherwise the pack stays marked, and a later prune deletes it.
//!
//! The invariant, in docs/format.md: no snapshot ever points at a deleted pack.

use std::collections::HashSet;
use std::time::Duration;

use cairn_format::{FileId, IndexPack, PackId};
use cairn_repo::{pack_name, LockKind, Repository};

use super::{crash_point, remove_index_files, PrunePlan};
use crate::OpsError;

/// How long after its marking a pack may be deleted beside a running backup: the
/// marking index must be stored, and lock times come from other hosts' clocks.
pub const MARK_GRACE: Duration = Duration::from_secs(5 * 60);

impl PrunePlan {
    /// Marks `doomed` in a new index (with `normal` packs and `new_packs`), removes the
    /// index files `old`, then deletes those of `doomed` nothing can be using, from an
    /// index without them. Returns the index files now in place, and the packs left
    /// marked: every later index prune writes must list them until they are deleted.
    pub(super) fn retire(
        &mut self,
        repo: &Repository,
        normal: &[PackId],
        new_packs: Vec<IndexPack>,
        doomed: &[PackId],
        old: &[FileId],
    ) -> Result<(Vec<FileId>, Vec<PackId>), OpsError> {
        let marked = marks(repo, doomed);
        let first = self.write_index(repo, normal, new_packs.clone(), &marked)?;
        crash_point("after-index");
        remove_index_files(repo, old, &first)?;
        let deletable = self.deletable(repo, &marked)?;
        let (go, stay): (Vec<(PackId, i64)>, Vec<(PackId, i64)>) = marked
            .into_iter()
            .partition(|(id, _)| deletable.contains(id));
        self.summary.packs_marked = stay.len() as u64;
        // An unused pack left marked was not deleted after all.
        for (id, _) in &stay {
            let Some(u) = self.usage.packs.get(id) else {
                continue;
            };
            if u.used == 0 && self.not_deleted.insert(*id) {
                self.summary.packs_deleted = self.summary.packs_deleted.saturating_sub(1);
                self.summary.bytes_deleted = self.summary.bytes_deleted.saturating_sub(u.size);
            }
        }
        let staying: Vec<PackId> = stay.iter().map(|(id, _)| *id).collect();
        if go.is_empty() {
            return Ok((first.into_iter().collect(), staying));
        }
        // The packs go while the index still lists them marked: a backup deduplicates
        // against no marked pack, and takes no marked pack for a leftover of its own to
        // adopt (`adopt_unindexed_packs` skips packs any index lists). Only then is the
        // index written without them.
        for (id, _) in go {
            self.remove_pack(repo, &pack_name(&id))?;
            crash_point("during-pack-delete");
        }
        let second = self.write_index(repo, normal, new_packs, &stay)?;
        let current: Vec<FileId> = first.into_iter().collect();
        remove_index_files(repo, &current, &second)?;
        Ok((second.into_iter().collect(), staying))
    }

    /// The marked packs nothing can be using now (see the module documentation).
    fn deletable(
        &self,
        repo: &Repository,
        marked: &[(PackId, i64)],
    ) -> Result<HashSet<PackId>, OpsError> {
        let own = repo.own_lock();
        let mut earliest_backup: Option<i64> = None;
        for (name, lock) in repo.list_locks()? {
            let Ok(l) = lock else { continue };
            if cairn_repo::is_stale(&l) || Some(&name) == own.as_ref() {
                continue;
            }
            match (LockKind::of(&l), l.started) {
                (LockKind::Add, Some(t)) => {
                    let t = t.timestamp_millis();
                    earliest_backup = Some(earliest_backup.map_or(t, |e| e.min(t)));
                }
                // A reader, or a lock that does not say when it started: keep all.
                _ => return Ok(HashSet::new()),
            }
        }
        let saved_since = repo
            .list_snapshots()?
            .iter()
            .any(|s| !self.snapshots.contains(&s.id));
        if saved_since {
            return Ok(HashSet::new());
        }
        let grace = MARK_GRACE.as_millis() as i64;
        Ok(marked
            .iter()
            .filter(|(_, at)| earliest_backup.is_none_or(|b| b > at + grace))
            .map(|(id, _)| *id)
            .collect())
    }
}

/// Each of `doomed` with when it was marked: now, or when an earlier prune marked it.
fn marks(repo: &Repository, doomed: &[PackId]) -> Vec<(PackId, i64)> {
    // The clock lock files are stamped with, which marks are compared against.
    let now = cairn_repo::sys::now().timestamp_millis();
    let index = repo.index();
    doomed
        .iter()
        .map(|id| (*id, index.marked(id).unwrap_or(now)))
        .collect()
}
