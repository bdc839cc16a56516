//! Repository locks: shared for commands that add data, exclusive for those that delete.
//!
//! A lock is a sealed file in `locks/`, refreshed (rewritten under a new name, then the
//! old one removed) every 5 minutes while the command runs. A lock is stale, and ignored,
//! when it has not been refreshed for 30 minutes or its process is gone from this host.
//! After writing its own lock a process looks again, so two that raced both see each
//! other and the later one backs off.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cairn_backend::Backend;
use cairn_format::Lock;

use crate::layout::FileKind;
use crate::{sys, unpoison, RepoError, Repository};

pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// What a lock's holder does, which decides whom it keeps out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Reads every blob it touches (check, restore, ship, mount): keeps out exclusive
    /// commands, and keeps a prune from deleting packs while it runs.
    Shared,
    /// Adds packs, index files and snapshots (backup, copy): keeps out exclusive
    /// commands; a prune runs beside it and deletes only packs it cannot be using.
    Add,
    /// forget and prune: one at a time, beside any backup or reader.
    Maintenance,
    /// Rewrites what others rely on (tag, key changes, repair): alone.
    Exclusive,
}

impl LockKind {
    fn name(self) -> &'static str {
        match self {
            LockKind::Shared => "read",
            LockKind::Add => "add",
            LockKind::Maintenance => "maintenance",
            LockKind::Exclusive => "exclusive",
        }
    }

    /// What a stored lock's holder does (see [`cairn_format::Lock::kind`]).
    pub fn of(lock: &Lock) -> LockKind {
        match lock.kind.as_deref() {
            Some("add") => LockKind::Add,
            Some("maintenance") => LockKind::Maintenance,
            Some("read") => LockKind::Shared,
            _ if lock.exclusive => LockKind::Exclusive,
            // Unknown kinds (a newer build) count as exclusive: the safe reading.
            Some(_) => LockKind::Exclusive,
            None => LockKind::Shared,
        }
    }

    fn conflicts(self, other: LockKind) -> bool {
        use LockKind::*;
        matches!(
            (self, other),
            (Exclusive, _) | (_, Exclusive) | (Maintenance, Maintenance)
        )
    }
}

/// Locks this process holds, so a signal handler can remove them before exiting.
type Held = (Arc<dyn Backend>, Arc<Mutex<String>>);
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

/// Removes every lock file this process holds. For the CLI's signal handler: after an
/// interrupt the repository is consistent, and it should not stay locked either.
pub fn release_held_locks() {
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(unpoison));
    for (backend, name) in held {
        let name = name.lock().unwrap_or_else(unpoison).clone();
        let _ = cairn_backend::remove_or_hide(backend.as_ref(), &name);
    }
}

/// Refreshes stop counting this long before the stale threshold: a lock whose last
/// refresh is older than `STALE_AFTER - STALE_MARGIN` may already look stale to another
/// host, whose prune may then delete what this command wrote but has not indexed.
pub const STALE_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How often a held lock is rewritten, and how long a writer goes on without a
/// successful refresh. Only tests shorten these (to see a refresh fail in seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTiming {
    pub refresh: Duration,
    pub give_up: Duration,
    /// How long to keep trying while another command holds a conflicting lock
    /// (`--retry-lock`, as restic has it); zero fails at once.
    pub retry: Duration,
}

impl Default for LockTiming {
    fn default() -> LockTiming {
        LockTiming {
            refresh: REFRESH_INTERVAL,
            give_up: STALE_AFTER.saturating_sub(STALE_MARGIN),
            retry: Duration::ZERO,
        }
    }
}

/// What a repository knows of the lock it holds, to check before it writes an index or
/// a snapshot (see [`LockState::check`]).
#[derive(Clone)]
pub(crate) struct LockState {
    pub(crate) name: Arc<Mutex<String>>,
    pub(crate) refreshed: Arc<Mutex<std::time::Instant>>,
    pub(crate) give_up: Duration,
}

impl LockState {
    /// Fails when the lock could not be refreshed for too long, or its file is gone
    /// (`unlock --remove-all` from another shell): restic's rule, and the only safe one.
    pub(crate) fn check(&self, backend: &dyn Backend, what: &str) -> Result<(), RepoError> {
        let age = self.refreshed.lock().unwrap_or_else(unpoison).elapsed();
        let lost = |why: String| RepoError::LockLost {
            what: what.to_string(),
            why,
        };
        if age > self.give_up {
            return Err(lost(format!("the repository lock could not be refreshed for {} (storage unreachable, or the machine slept)", minutes(age))));
        }
        let name = self.name.lock().unwrap_or_else(unpoison).clone();
        match backend.stat(&name) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Err(lost(format!("the repository lock {name} was removed by someone else (`cairn unlock --remove-all`?)"))),
            Err(e) => Err(e.into()),
        }
    }
}

fn minutes(d: Duration) -> String {
    match d.as_secs() / 60 {
        0 => format!("{} seconds", d.as_secs()),
        1 => "1 minute".to_string(),
        m => format!("{m} minutes"),
    }
}

/// Holds a lock until dropped; dropping removes the lock file.
pub struct LockGuard {
    current: Arc<Mutex<String>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    repo: Arc<Repository>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

/// A lock nobody holds any more: older than the stale threshold (never refreshed), or
/// left on this host by a process that is gone. Taking a lock ignores these, and so
/// does prune's rule for what a live command may still be writing.
pub fn is_stale(lock: &Lock) -> bool {
    let age = sys::now().signed_duration_since(lock.time);
    if age.to_std().is_ok_and(|a| a > STALE_AFTER) {
        return true;
    }
    lock.hostname == sys::hostname() && !sys::process_alive(lock.pid)
}

fn describe(lock: &Lock) -> String {
    let kind = LockKind::of(lock).name();
    let article = if kind.starts_with(['a', 'e']) {
        "an"
    } else {
        "a"
    };
    format!(
        "{article} {kind} lock held by {}@{} (pid {}, `{}`) since {}; if that process is gone, run `cairn unlock`",
        lock.username,
        lock.hostname,
        lock.pid,
        lock.command,
        lock.time.format("%Y-%m-%d %H:%M:%S")
    )
}

impl Repository {
    /// One attempt at the lock: its file name and start, or who holds a conflicting one.
    #[allow(clippy::type_complexity)]
    fn try_lock(
        &self,
        kind: LockKind,
        command: &str,
    ) -> Result<Result<(String, chrono::DateTime<chrono::FixedOffset>), String>, RepoError> {
        if let Some(who) = self.conflicting_lock(kind, None)? {
            return Ok(Err(who));
        }
        let started = sys::now();
        let name = self.write_lock(kind, command, started)?;
        if let Some(who) = self.conflicting_lock(kind, Some(&name))? {
            let _ = cairn_backend::remove_or_hide(self.backend().as_ref(), &name);
            return Ok(Err(who));
        }
        Ok(Ok((name, started)))
    }

    /// The name of the lock file this repository handle holds now, if any.
    pub fn own_lock(&self) -> Option<String> {
        let held = self.held_lock.lock().unwrap_or_else(unpoison);
        held.as_ref()
            .map(|l| l.name.lock().unwrap_or_else(unpoison).clone())
    }

    /// Every lock file currently in the repository with its decoded content.
    pub fn list_locks(&self) -> Result<Vec<(String, Result<Lock, RepoError>)>, RepoError> {
        let mut out = Vec::new();
        for obj in self.backend().list(FileKind::Lock.dir())? {
            // Only names this layout writes: `unlock --remove-all` removes by these names,
            // from the store and from the metadata cache.
            let id = crate::layout::canonical_id(FileKind::Lock, &obj.name)
                .and_then(|hex| hex.parse::<cairn_format::FileId>().ok());
            let Some(id) = id else {
                tracing::warn!("skipping {}: not the name of a lock file", obj.name);
                continue;
            };
            let lock = self.load_file(FileKind::Lock, &id).and_then(|b| {
                Lock::decode(&b).map_err(|e| RepoError::corrupt(obj.name.clone(), e))
            });
            // Released (or refreshed under a new name) since the listing: gone.
            if matches!(&lock, Err(RepoError::Backend(e)) if e.is_not_found()) {
                continue;
            }
            out.push((obj.name, lock));
        }
        Ok(out)
    }

    fn conflicting_lock(
        &self,
        kind: LockKind,
        own: Option<&str>,
    ) -> Result<Option<String>, RepoError> {
        for (name, lock) in self.list_locks()? {
            if Some(name.as_str()) == own {
                continue;
            }
            match lock {
                Ok(l) if is_stale(&l) => continue,
                Ok(l) if kind.conflicts(LockKind::of(&l)) => return Ok(Some(describe(&l))),
                Ok(_) => continue,
                // Garbage in locks/ must not lock everyone out for good (every key
                // opens every lock, and lock files are written whole): it counts as
                // absent, named here, and `check` reports it.
                Err(e) => {
                    tracing::warn!("ignoring unreadable lock {name}: {e}");
                    continue;
                }
            }
        }
        Ok(None)
    }

    fn write_lock(
        &self,
        kind: LockKind,
        command: &str,
        started: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<String, RepoError> {
        let lock = Lock {
            time: sys::now(),
            exclusive: kind == LockKind::Exclusive,
            hostname: sys::hostname(),
            username: sys::username(),
            pid: std::process::id(),
            command: command.to_string(),
            started: Some(started),
            kind: Some(kind.name().to_string()),
        };
        let id = self.save_file(FileKind::Lock, &lock.encode())?;
        Ok(FileKind::Lock.file_name(&id))
    }

    /// Takes a lock of `kind` for the command named `command`, or fails with
    /// [`RepoError::Locked`] describing who holds the conflicting one.
    pub fn lock(self: &Arc<Self>, kind: LockKind, command: &str) -> Result<LockGuard, RepoError> {
        let deadline = std::time::Instant::now() + self.lock_timing.retry;
        let mut pause = Duration::from_millis(500);
        let (name, started) = loop {
            match self.try_lock(kind, command)? {
                Ok(taken) => break taken,
                Err(who) if std::time::Instant::now() + pause <= deadline => {
                    tracing::info!("repository is locked by {who}; trying again in {pause:?}");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                Err(who) => return Err(RepoError::Locked(who)),
            }
        };
        let current = Arc::new(Mutex::new(name));
        let refreshed = Arc::new(Mutex::new(std::time::Instant::now()));
        let (tx, rx) = mpsc::channel::<()>();
        let repo = Arc::clone(self);
        let cur = Arc::clone(&current);
        let fresh = Arc::clone(&refreshed);
        let command = command.to_string();
        let timing = self.lock_timing;
        let thread = std::thread::spawn(move || loop {
            match rx.recv_timeout(timing.refresh) {
                Err(RecvTimeoutError::Timeout) => match repo.write_lock(kind, &command, started) {
                    Ok(new) => {
                        *fresh.lock().unwrap_or_else(unpoison) = std::time::Instant::now();
                        let mut c = cur.lock().unwrap_or_else(unpoison);
                        let old = std::mem::replace(&mut *c, new);
                        let _ = cairn_backend::remove_or_hide(repo.backend().as_ref(), &old);
                    }
                    Err(e) => tracing::warn!("could not refresh repository lock (the command stops before its next index or snapshot if this lasts): {e}"),
                },
                _ => return,
            }
        });
        *self.held_lock.lock().unwrap_or_else(unpoison) = Some(LockState {
            name: Arc::clone(&current),
            refreshed,
            give_up: timing.give_up,
        });
        HELD.lock()
            .unwrap_or_else(unpoison)
            .push((Arc::clone(self.backend()), Arc::clone(&current)));
        Ok(LockGuard {
            current,
            stop: Some(tx),
            thread: Some(thread),
            repo: Arc::clone(self),
        })
    }

    /// Removes stale locks (or all with `all`); returns how many were removed. With an
    /// append-only key stale locks are hidden, but removing live ones is refused: that
    /// key must not be able to take a running prune's lock away.
    pub fn unlock(&self, all: bool) -> Result<usize, RepoError> {
        if all {
            self.require_deletes("unlock --remove-all")?;
        }
        let mut n = 0;
        for (name, lock) in self.list_locks()? {
            let remove = all || matches!(&lock, Ok(l) if is_stale(l));
            if remove {
                cairn_backend::remove_or_hide(self.backend().as_ref(), &name)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        HELD.lock()
            .unwrap_or_else(unpoison)
            .retain(|(_, c)| !Arc::ptr_eq(c, &self.current));
        let mut held = self.repo.held_lock.lock().unwrap_or_else(unpoison);
        if held
            .as_ref()
            .is_some_and(|h| Arc::ptr_eq(&h.name, &self.current))
        {
            *held = None;
        }
        drop(held);
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let name = self.current.lock().unwrap_or_else(unpoison).clone();
        if let Err(e) = cairn_backend::remove_or_hide(self.repo.backend().as_ref(), &name) {
            tracing::warn!("could not remove lock {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_backend::{LocalBackend, WriteOptions};

    /// Issue 19.4: a lock not refreshed for longer than the stale threshold minus the
    /// margin, or whose file is gone, stops the writer.
    #[test]
    fn a_lock_that_went_stale_or_vanished_stops_the_writer() {
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path());
        b.create().unwrap();
        b.write("locks/l", b"x", &WriteOptions::default()).unwrap();
        let st = LockState {
            name: Arc::new(Mutex::new("locks/l".into())),
            refreshed: Arc::new(Mutex::new(std::time::Instant::now())),
            give_up: LockTiming::default().give_up,
        };
        st.check(&b, "the snapshot").unwrap();
        let long_ago = std::time::Instant::now()
            .checked_sub(STALE_AFTER - STALE_MARGIN + Duration::from_secs(60));
        if let Some(t) = long_ago {
            *st.refreshed.lock().unwrap() = t;
            let e = st.check(&b, "the snapshot").unwrap_err().to_string();
            assert!(
                e.contains("could not be refreshed") && e.contains("the snapshot"),
                "{e}"
            );
            *st.refreshed.lock().unwrap() = std::time::Instant::now();
        }
        b.remove("locks/l").unwrap();
        let e = st.check(&b, "an index").unwrap_err().to_string();
        assert!(e.contains("was removed by someone else"), "{e}");
    }
}
