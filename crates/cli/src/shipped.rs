//! When this machine last finished a ship of each repository to each destination, for
//! the line `snapshots` ends with. Kept beside the cache (`<cache root>/shipped/`), not
//! in the repository: the repository's files stay exactly those `rclone sync` would
//! copy, so rclone and cairn still agree file for file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::args::GlobalArgs;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShipEntry {
    pub time: chrono::DateTime<chrono::FixedOffset>,
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
    pub verified: bool,
    /// Full IDs of the snapshots the source held when the ship began: each of them is
    /// in this copy (`snapshots --json` says which copies hold a snapshot). Absent in
    /// records from before it was kept.
    #[serde(default)]
    pub snapshots: Vec<String>,
}

/// Destination -> its last complete ship.
pub type Ships = BTreeMap<String, ShipEntry>;

fn file(g: &GlobalArgs, repository: &str) -> Option<PathBuf> {
    crate::state::file(g, "shipped", repository, ".json")
}

/// The ships recorded for `repository` (its location as the backend names it).
pub fn load(g: &GlobalArgs, repository: &str) -> Ships {
    file(g, repository)
        .and_then(|p| crate::state::load_json(&p))
        .unwrap_or_default()
}

/// Records a finished ship; failing to is only a warning (the copy itself is done).
pub fn record(g: &GlobalArgs, repository: &str, destination: &str, entry: ShipEntry) {
    let Some(path) = file(g, repository) else {
        return;
    };
    let mut ships = load(g, repository);
    ships.insert(destination.to_string(), entry);
    if let Err(e) = crate::state::save_json(&path, &ships) {
        eprintln!(
            "warning: shipped, but could not note it in {}: {e}",
            path.display()
        );
    }
}

/// Drops the record of a destination no longer used (`ship DEST --forget-destination`),
/// given as any of `names`; the one forgotten, if any was recorded.
pub fn forget(g: &GlobalArgs, repository: &str, names: &[&str]) -> anyhow::Result<Option<String>> {
    let Some(path) = file(g, repository) else {
        return Ok(None);
    };
    let mut ships = load(g, repository);
    let Some(found) = names
        .iter()
        .find(|n| ships.contains_key(**n))
        .map(|n| n.to_string())
    else {
        return Ok(None);
    };
    ships.remove(&found);
    crate::state::save_json(&path, &ships)
        .map_err(|e| anyhow::anyhow!("could not update {}: {e}", path.display()))?;
    Ok(Some(found))
}

/// Every destination this machine has shipped `repository` to, as its location reads
/// (a form `-r` and `--from` accept).
pub fn destinations(g: &GlobalArgs, repository: &str) -> Vec<String> {
    load(g, repository).into_keys().collect()
}
