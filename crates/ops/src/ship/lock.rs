//! `ship --lock-days`: every file shipped is locked (B2 Object Lock) for N days, the
//! lock of every file still in use is extended before it runs out, and a file still
//! locked is never asked to be deleted: it waits for a later ship.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_backend::{now_millis, show_millis as show, Backend, ObjectInfo};

use super::{backend_err, ShipOptions, ShipSummary};
use crate::OpsError;

/// Refuses, before anything is written, a destination that cannot lock files.
pub(super) fn check_lockable(dst: &dyn Backend, opts: &ShipOptions) -> Result<(), OpsError> {
    // Asked only when locking: on B2 the answer costs a class C call.
    match opts.lock.and_then(|_| dst.lock_refused()) {
        Some(why) => Err(OpsError::LockRefused(why)),
        None => Ok(()),
    }
}

/// A repository with a lock period of its own (`init --lock-days`) ships locked for
/// that period unless told otherwise, wherever the destination can lock; the options to
/// use then, or `None` to use `opts` as they are.
pub(super) fn inherit(
    repo: &cairn_repo::Repository,
    dst: &dyn Backend,
    opts: &ShipOptions,
) -> Option<ShipOptions> {
    let own = repo.config().lock.map(cairn_repo::lock_period)?;
    if opts.lock.is_some() || dst.lock_refused().is_some() {
        return None;
    }
    Some(ShipOptions {
        lock: Some(own),
        ..opts.clone()
    })
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
