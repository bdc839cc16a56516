//! Small records this machine keeps about repositories, beside the cache and never in a
//! repository (so its files stay exactly those `rclone sync` would copy): ships, the
//! last check, the key that opened a location, the snapshots seen. One file each,
//! written privately; none under `--no-cache`, where losing them only weakens a warning.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::args::GlobalArgs;

/// `<cache root>/<dir>/<tag of key><ext>`, or `None` under `--no-cache` or with no home.
pub fn file(g: &GlobalArgs, dir: &str, key: &str, ext: &str) -> Option<PathBuf> {
    if g.no_cache {
        return None;
    }
    Some(
        crate::location::cache_root(g)?
            .join(dir)
            .join(format!("{}{ext}", crate::location::tag(key))),
    )
}

/// A JSON record, if it is there and reads.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

pub fn save_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    serde_json::to_vec_pretty(value)
        .map_err(std::io::Error::other)
        .and_then(|b| cairn_backend::write_private(path, &b))
}
