//! A command's hold on its repository: its lock, then its index, in that order.
//!
//! Every command (`cairn_ops::<command>::run`, and mount) starts here, so the rule lives
//! in one place. The lock comes
//! first because prune decides what it may delete from the locks it finds: a command
//! that read the index before its lock was visible could be using what prune deletes.
//!
//! The ops functions a `run` calls (`backup_with_progress`, `check_with_progress`, …) take
//! no lock, so one command can do another's work under its own lock: `drill` runs
//! check's and restore's.

use std::sync::Arc;

use crate::{LockGuard, LockKind, RepoError, Repository};

/// What a command does to the repository, which decides the lock it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads blobs through the index (ls, find, diff, dump, stats): no lock, as restic
    /// with `--no-lock`; a prune meanwhile can at worst make the command fail a read.
    Browse,
    /// Reads every blob it touches and must find them (check, restore, drill, ship,
    /// mount): a shared lock keeps prune away.
    Read,
    /// Adds blobs and snapshots next to others doing the same (backup, copy): a shared
    /// lock. A dry run writes nothing and takes none.
    Add,
    /// Removes snapshots and data no snapshot uses (forget, prune), beside backups and
    /// readers, one at a time; prune deletes only what none of them can be using (see
    /// "Prune in two phases" in docs/format.md).
    Maintain,
    /// Rewrites what others rely on (tag, key changes, repair): an exclusive lock.
    Change,
}

/// Whether the command needs the index loaded before its work starts. `check` and
/// `repair index` load it themselves, tolerating damaged index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadIndex {
    Yes,
    No,
}

/// Held for the whole of a command; dropping it removes the lock file.
#[derive(Debug)]
#[must_use = "the lock is released when this is dropped"]
pub struct Session {
    _lock: Option<LockGuard>,
}

impl Session {
    /// Takes the lock `access` calls for under the name `command` (shown to whoever
    /// finds the repository locked), then loads the index if asked.
    pub fn begin(
        repo: &Arc<Repository>,
        command: &str,
        access: Access,
        index: LoadIndex,
    ) -> Result<Session, RepoError> {
        let kind = match access {
            Access::Browse => None,
            Access::Add if repo.is_dry_run() => None,
            Access::Read => Some(LockKind::Shared),
            Access::Add => Some(LockKind::Add),
            Access::Maintain => Some(LockKind::Maintenance),
            Access::Change => Some(LockKind::Exclusive),
        };
        let lock = match kind {
            Some(kind) => Some(repo.lock(kind, command)?),
            None => None,
        };
        if index == LoadIndex::Yes {
            repo.load_index()?;
        }
        Ok(Session { _lock: lock })
    }
}
