//! Snapshots that vanish. Whoever holds the storage can delete a snapshot file, and
//! nothing inside the repository can prove it was there: a deletion leaves no trace
//! the same person cannot also remove. So this machine remembers the snapshots it has
//! seen in each repository (a list of IDs beside the cache, per location), and cairn
//! records every snapshot it removes on purpose in a sealed `forgotten/` file first
//! (`forget`, `tag`, `repair snapshots`; records cannot be forged without the key). A
//! snapshot seen before, now gone, and named in no record was deleted behind cairn's
//! back: every command warns, `check` fails, until `cairn forget ID` acknowledges it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use cairn_repo::{FileKind, Repository};

use crate::args::GlobalArgs;

/// What the last [`watch`] of this process found.
static VANISHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Snapshots (hex) found vanished when the repository was opened.
pub fn vanished() -> Vec<String> {
    VANISHED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Where this machine keeps the list for the repository with config ID `repo_id` at
/// `location`: under the cache root (so `--no-cache` and a machine with no home
/// directory keep none). The ID is part of the key: a new repository created where an
/// old one was deleted (a reformatted drive) starts a list of its own.
fn list_file(g: &GlobalArgs, location: &str, repo_id: &str) -> Option<PathBuf> {
    let key = if crate::location::is_remote(location) {
        location.to_string()
    } else {
        std::fs::canonicalize(location)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| location.to_string())
    };
    crate::state::file(g, "seen", &format!("{repo_id}\0{key}"), "")
}

/// Compares the repository's snapshots with the ones seen before, warns about each one
/// that vanished, and remembers the current set (plus the vanished, until forgotten).
/// Failing to keep the list is not an error: it only weakens this one check.
pub fn watch(g: &GlobalArgs, location: &str, repo: &Repository) -> anyhow::Result<()> {
    let Some(path) = list_file(g, location, &repo.config().id) else {
        return Ok(());
    };
    let now: BTreeSet<String> = repo
        .list_files(FileKind::Snapshot)?
        .iter()
        .map(|id| id.to_hex())
        .collect();
    let before: BTreeSet<String> = std::fs::read_to_string(&path)
        .map(|s| {
            s.lines()
                .map(str::to_owned)
                .filter(|l| l.len() == 64)
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<&String> = before.difference(&now).collect();
    let mut vanished = Vec::new();
    if !missing.is_empty() {
        let forgotten = repo.forgotten_snapshots()?;
        vanished = missing
            .into_iter()
            .filter(|id| !forgotten.contains(*id))
            .cloned()
            .collect();
    }
    for id in &vanished {
        eprintln!(
            "warning: snapshot {} was in {location} when this machine last looked and is gone, and no `cairn forget` recorded removing it: someone with access to the storage deleted it; restore it from another copy, or acknowledge with `cairn forget {}`",
            &id[..8],
            &id[..8]
        );
    }
    let keep: BTreeSet<String> = now.iter().chain(&vanished).cloned().collect();
    if keep != before {
        let mut text: String = keep.iter().map(|id| format!("{id}\n")).collect();
        if text.is_empty() {
            text.push('\n');
        }
        let _ = cairn_backend::write_private(&path, text.as_bytes());
    }
    *VANISHED.lock().unwrap_or_else(|p| p.into_inner()) = vanished;
    Ok(())
}
