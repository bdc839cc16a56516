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
