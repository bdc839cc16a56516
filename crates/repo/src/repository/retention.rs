//! A repository created with `init --lock-days`: its files are locked as they are
//! written (see [`cairn_backend::Retaining`]), and kept locked while they are stored.

use super::*;

/// What [`Repository::extend_locks`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct LockExtension {
    /// Files whose lock was extended.
    pub extended: u64,
    /// The new end of their locks (ms since the epoch).
    pub until_millis: Option<i64>,
}

impl Repository {
    /// Extends the lock of every stored file (but locks) whose lock ends within the
    /// margin of [`cairn_backend::LockPeriod::due`], so everything a snapshot may use
    /// stays locked as it ages, even a pack written years ago. A file removed meanwhile
    /// is no longer listed and ages out. One listing per kind; on B2 each extension is
    /// one class A call (`b2_update_file_retention`), and the listing supplies the IDs.
    pub fn extend_locks(&self) -> Result<LockExtension, RepoError> {
        let Some(period) = self.config.lock.map(super::lock_period) else {
            return Ok(LockExtension::default());
        };
        let now = cairn_backend::now_millis();
        let mut due = Vec::new();
        for kind in FileKind::SHIP_ORDER {
            for o in self.backend.list(kind.dir())? {
                let ours = match kind {
                    FileKind::Config => o.name == CONFIG,
                    _ => crate::layout::canonical_id(kind, &o.name).is_some(),
                };
                if ours && period.due(now, o.retain_until_millis) {
                    due.push(o.name);
                }
            }
        }
        let retention = period.retention(now);
        let done = AtomicU64::new(0);
        cairn_parallel::try_for_each(&due, self.io_threads(), |name| {
            if self.backend.set_retention(name, &retention)? {
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), RepoError>(())
        })?;
        let extended = done.into_inner();
        Ok(LockExtension {
            extended,
            until_millis: (extended > 0).then_some(retention.until_millis),
        })
    }
}
