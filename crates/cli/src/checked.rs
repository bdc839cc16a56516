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
}

fn file(g: &GlobalArgs, repository: &str) -> Option<PathBuf> {
    crate::state::file(g, "checked", repository, ".json")
}

pub fn load(g: &GlobalArgs, repository: &str) -> Option<LastCheck> {
    crate::state::load_json(&file(g, repository)?)
}

/// Failing to record is only a warning: the check itself is done.
pub fn record(g: &GlobalArgs, repository: &str, check: &LastCheck) {
    let Some(path) = file(g, repository) else {
        return;
    };
    if let Err(e) = crate::state::save_json(&path, check) {
        eprintln!(
            "warning: could not note this check in {}: {e}",
            path.display()
        );
    }
}
