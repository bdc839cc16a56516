//! The outcome of this machine's last `check` of each repository, kept beside the cache
//! (`<cache root>/checked/`) like the ship records: a ship from a repository whose last
//! check found damage deletes nothing at its destination, since the destination may
//! hold the only intact copy of what is damaged here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::args::GlobalArgs;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LastCheck {
    pub time: chrono::DateTime<chrono::FixedOffset>,
    pub errors: u64,
    /// Packs it found damaged or missing.
    pub damaged_packs: Vec<String>,
}

fn file(g: &GlobalArgs, repository: &str) -> Option<PathBuf> {
    if g.no_cache {
        return None;
    }
    Some(crate::location::cache_root(g)?.join("checked").join(format!("{}.json", crate::location::tag(repository))))
}

pub fn load(g: &GlobalArgs, repository: &str) -> Option<LastCheck> {
    file(g, repository).and_then(|p| std::fs::read(p).ok()).and_then(|b| serde_json::from_slice(&b).ok())
}

/// Failing to record is only a warning: the check itself is done.
pub fn record(g: &GlobalArgs, repository: &str, check: &LastCheck) {
    let Some(path) = file(g, repository) else { return };
    let written = serde_json::to_vec_pretty(check).map_err(std::io::Error::other).and_then(|b| cairn_backend::write_private(&path, &b));
    if let Err(e) = written {
        eprintln!("warning: could not note this check in {}: {e}", path.display());
    }
}
