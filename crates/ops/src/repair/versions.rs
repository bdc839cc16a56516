//! `repair versions --before MOMENT`: undo what was done to a versioned store (B2)
//! since a moment, by bringing back, for every repository file changed since then, the
//! version it had at that moment.
//!
//! This is the way back after malware holding the laptop's key hid or overwrote files
//! of a locked copy: Object Lock keeps the old versions, and B2 lets a key that may
//! only write make an old version the newest again (a server-side copy). Nothing is
//! deleted, so the repair itself can be undone the same way. Every file cairn writes
//! is named by the hash of its bytes (but `config`), so each version brought back is
//! first read and checked against its name; a version that fails is passed over for
//! an older one. Files that appeared after the moment are left as they are and listed.
//!
//! It works on the store alone, without the password: the attacker may have hidden the
//! key files or the config, and then the repository cannot be opened until this ran.

use cairn_backend::{Backend, Version};
use cairn_repo::{canonical_id, FileKind, CONFIG};

use crate::OpsError;

/// At most this many old versions of one name are read looking for an intact one.
const MAX_TRIED: usize = 16;
/// No repository file is larger than a pack (at most 1 GiB, see docs/format.md): a
/// listed size beyond that is not read.
const MAX_SIZE: u64 = 1 << 30;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairVersionsSummary {
    /// Each file brought back: "NAME (version of DATE)".
    pub restored: Vec<String>,
    /// Files as they were at the moment.
    pub unchanged: u64,
    /// Files that appeared after the moment, left as they are.
    pub newer: Vec<String>,
    /// Files changed since the moment with no intact version from before it.
    pub unrestorable: Vec<String>,
    pub dry_run: bool,
}

/// `--before`: RFC 3339 (`2026-11-30T08:00:00Z`), a local date and time
/// (`2026-11-30 08:00`), a local date (its midnight), or a duration before now (`3d`).
/// Returns ms since the epoch.
pub fn parse_moment(s: &str, now_millis: i64) -> Result<i64, String> {
    use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let local = |n: NaiveDateTime| {
        Local
            .from_local_datetime(&n)
            .earliest()
            .map(|t| t.timestamp_millis())
    };
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Some(t) = NaiveDateTime::parse_from_str(s, f).ok().and_then(local) {
            return Ok(t);
        }
    }
    if let Some(t) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(local)
    {
        return Ok(t);
    }
    let d = crate::forget::Duration::parse(s).map_err(|_| {
        format!("invalid moment {s:?}: expected 2026-11-30, \"2026-11-30 08:00\", an RFC 3339 time, or a duration before now such as 3d")
    })?;
    let now = chrono::DateTime::from_timestamp_millis(now_millis)
        .ok_or_else(|| format!("invalid moment {s:?}"))?
        .fixed_offset();
    Ok(d.before(now).timestamp_millis())
}

/// Brings back, in `store`, every repository file changed since `before_millis` (ms since
/// the epoch) to the version it had then. Lock files are left alone.
pub fn versions(
    store: &dyn Backend,
    before_millis: i64,
    dry_run: bool,
) -> Result<RepairVersionsSummary, OpsError> {
    let mut s = RepairVersionsSummary {
        dry_run,
        ..Default::default()
    };
    for kind in FileKind::SHIP_ORDER {
        let Some(mut all) = store
            .versions(kind.dir())
            .map_err(cairn_repo::RepoError::from)?
        else {
            return Err(OpsError::Invalid(format!(
                "{} keeps no old versions; repair versions works on a B2 bucket",
                store.location()
            )));
        };
        // Newest first within a name, whatever order the store lists in.
        all.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then(b.uploaded_millis.cmp(&a.uploaded_millis))
        });
        for history in all.chunk_by(|a, b| a.name == b.name) {
            if belongs(kind, &history[0].name) {
                repair_one(store, history, before_millis, dry_run, &mut s)?;
            }
        }
    }
    Ok(s)
}

/// Whether `name` is a file of `kind` as cairn names it.
fn belongs(kind: FileKind, name: &str) -> bool {
    match kind {
        FileKind::Config => name == CONFIG,
        _ => canonical_id(kind, name).is_some(),
    }
}

/// One name's versions, newest first.
fn repair_one(
    store: &dyn Backend,
    history: &[Version],
    before: i64,
    dry_run: bool,
    s: &mut RepairVersionsSummary,
) -> Result<(), OpsError> {
    let name = &history[0].name;
    let old: Vec<&Version> = history
        .iter()
        .filter(|v| v.uploaded_millis < before)
        .collect();
    let Some(then) = old.first() else {
        if !history[0].hidden {
            s.newer.push(name.clone());
        }
        return Ok(());
    };
    // Hidden at the moment: nothing to bring back (a later upload is newer work). A
    // newer upload of the same bytes (a ship that sent a file again, an earlier repair)
    // is as good.
    let current = &history[0];
    let same_bytes = !current.hidden && current.sha1.is_some() && current.sha1 == then.sha1;
    if then.hidden
        || current.id == then.id
        || same_bytes
        || (*name != CONFIG && intact(store, current)?)
    {
        s.unchanged += 1;
        return Ok(());
    }
    for v in old.iter().filter(|v| !v.hidden).take(MAX_TRIED) {
        if !intact(store, v)? {
            continue;
        }
        if !dry_run {
            store
                .restore_version(v)
                .map_err(cairn_repo::RepoError::from)?;
        }
        s.restored.push(format!(
            "{name} (version of {})",
            cairn_backend::show_millis(v.uploaded_millis)
        ));
        return Ok(());
    }
    s.unrestorable
        .push(format!("{name}: no intact version from before the moment"));
    Ok(())
}

/// Whether version `v` holds the bytes its name promises (a hide marker holds none).
/// `config` is not named by its bytes: any version of it from before the moment counts,
/// since cairn never rewrites it.
fn intact(store: &dyn Backend, v: &Version) -> Result<bool, OpsError> {
    if v.hidden || v.size > MAX_SIZE {
        return Ok(false);
    }
    if v.name == CONFIG {
        return Ok(true);
    }
    let Some(hex) = cairn_repo::id_from_name(&v.name) else {
        return Ok(false);
    };
    let data = match store.read_version(v) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(cairn_repo::RepoError::from(e).into()),
    };
    Ok(hex::encode(cairn_crypto::storage_hash(&data)) == hex)
}

#[cfg(test)]
mod tests {
    use super::parse_moment;

    #[test]
    fn moments_in_every_spelling() {
        let now = 1_800_000_000_000;
        assert_eq!(
            parse_moment("2026-11-30T08:00:00Z", now),
            Ok(1_796_025_600_000)
        );
        assert_eq!(parse_moment("3d", now), Ok(now - 3 * 86_400_000));
        assert!(parse_moment("2026-11-30", now).is_ok());
        assert!(parse_moment("2026-11-30 08:00", now).is_ok());
        assert!(parse_moment("yesterday", now)
            .unwrap_err()
            .contains("invalid moment"));
    }
}
