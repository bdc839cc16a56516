//! `ship --lock-days`: every file shipped is locked (B2 Object Lock) for N days, the
//! lock of every file still in use is extended before it runs out, and a file still
//! locked is never asked to be deleted: it waits for a later ship.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_backend::{Backend, ObjectInfo};

use super::{backend_err, ShipLock, ShipOptions, ShipSummary};
use crate::OpsError;

/// Refuses, before anything is written, a destination that cannot lock files.
pub(super) fn check_lockable(dst: &dyn Backend, opts: &ShipOptions) -> Result<(), OpsError> {
    match (opts.lock, dst.lock_refused()) {
        (Some(_), Some(why)) => Err(OpsError::LockRefused(why)),
        _ => Ok(()),
    }
}

/// Extends the lock of the files the source still holds (so kept snapshots stay
/// locked as they age) whose lock would end within the margin; files uploaded by this
/// ship were locked as they were written.
pub(super) fn extend(
    dst: &dyn Backend,
    have: &BTreeMap<String, ObjectInfo>,
    there: &BTreeMap<String, ObjectInfo>,
    uploaded: &HashSet<&str>,
    opts: &ShipOptions,
    s: &mut ShipSummary,
) -> Result<(), OpsError> {
    let Some(lock) = opts.lock else {
        return Ok(());
    };
    let now = now_millis();
    let retention = lock.retention(now);
    let due: Vec<&String> = there
        .iter()
        .filter(|(n, o)| {
            have.contains_key(*n)
                && !uploaded.contains(n.as_str())
                && lock.due(now, o.retain_until_millis)
        })
        .map(|(n, _)| n)
        .collect();
    let done = AtomicU64::new(0);
    cairn_parallel::try_for_each(&due, opts.transfers, |name| {
        if dst.set_retention(name, &retention)? {
            done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })
    .map_err(backend_err)?;
    s.locks_extended = done.into_inner();
    if s.locks_extended > 0 {
        s.locked_until = s.locked_until.max(Some(retention.until_millis));
    }
    Ok(())
}

/// Takes out of `deletions` the files still locked at the destination: B2 refuses to
/// delete them, so they wait, listed, for a ship after their lock ends.
pub(super) fn hold_locked(
    deletions: &mut Vec<String>,
    there: &BTreeMap<String, ObjectInfo>,
    s: &mut ShipSummary,
) {
    let now = now_millis();
    let locked_until = |n: &String| {
        there
            .get(n)
            .and_then(|o| o.retain_until_millis)
            .filter(|u| *u > now)
    };
    let held: Vec<(String, i64)> = deletions
        .iter()
        .filter_map(|n| locked_until(n).map(|u| (n.clone(), u)))
        .collect();
    if held.is_empty() {
        return;
    }
    deletions.retain(|n| locked_until(n).is_none());
    let last = held.iter().map(|(_, u)| *u).max().unwrap_or(now);
    s.warnings.push(format!(
        "{} file(s) no longer used are still locked, kept until {} at the latest; a later ship deletes them",
        held.len(),
        show(last)
    ));
    s.deletions_left.extend(
        held.into_iter()
            .map(|(n, u)| format!("{n} (kept until {})", show(u))),
    );
}

/// Test builds move this clock with `CAIRN_TEST_CLOCK_OFFSET_SECS`, in step with the
/// emulator's `/emulator/clock`, so a test can let locks age; release builds ignore it.
pub(super) fn now_millis() -> i64 {
    let offset = if cfg!(debug_assertions) {
        std::env::var("CAIRN_TEST_CLOCK_OFFSET_SECS")
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    } else {
        0
    };
    cairn_repo::sys::now().timestamp_millis() + offset.saturating_mul(1000)
}

fn show(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

impl ShipLock {
    const DAY_MS: i64 = 24 * 3600 * 1000;

    /// The retention a file shipped at `now` gets.
    pub(super) fn retention(self, now: i64) -> cairn_backend::Retention {
        cairn_backend::Retention {
            mode: self.mode,
            until_millis: now + i64::from(self.days) * Self::DAY_MS,
        }
    }

    /// A file still in use is locked again when less than a third of the period (at
    /// least a day) is left: each file is extended about every two thirds of it, and a
    /// daily ship never lets a lock run out.
    fn due(self, now: i64, until: Option<i64>) -> bool {
        let margin = (i64::from(self.days) * Self::DAY_MS / 3).max(Self::DAY_MS);
        until.is_none_or(|u| u < now + margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_extended_only_near_its_end() {
        let lock = ShipLock {
            mode: cairn_backend::LockMode::Governance,
            days: 30,
        };
        let day = ShipLock::DAY_MS;
        assert!(lock.due(0, None));
        assert!(lock.due(0, Some(9 * day)));
        assert!(!lock.due(0, Some(11 * day)));
        let short = ShipLock { days: 1, ..lock };
        assert!(short.due(0, Some(day - 1)));
        assert_eq!(lock.retention(5).until_millis, 5 + 30 * day);
    }
}
