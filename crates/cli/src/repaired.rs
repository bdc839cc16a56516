//! The damaged packs `repair index` left in place on this machine's repositories, so
//! `check` calls them what they are instead of leftovers of an interrupted command
//! (and does not suggest the repair that was just run).

use std::collections::BTreeSet;

use crate::args::GlobalArgs;

/// Adds `packs` (names) to what this machine knows `repair index` left at `location`.
pub fn remember(g: &GlobalArgs, location: &str, packs: &[String]) {
    if packs.is_empty() {
        return;
    }
    let Some(path) = crate::state::file(g, "repaired", location, ".json") else {
        return;
    };
    let mut known: BTreeSet<String> = crate::state::load_json(&path).unwrap_or_default();
    known.extend(packs.iter().cloned());
    if let Err(e) = crate::state::save_json(&path, &known) {
        tracing::warn!("could not record the packs repair left: {e}");
    }
}

/// Names the packs `repair index` left among `check`'s notes about unindexed packs.
/// Returns whether any unindexed pack remains that it did not leave.
pub fn relabel(g: &GlobalArgs, location: &str, info: &mut [String]) -> bool {
    let known: BTreeSet<String> = crate::state::file(g, "repaired", location, ".json")
        .and_then(|p| crate::state::load_json(&p))
        .unwrap_or_default();
    let mut others = false;
    for line in info.iter_mut() {
        let Some((name, _)) = line.split_once(": not in any index") else {
            continue;
        };
        if known.contains(name) {
            *line = format!(
                "{name}: damaged; `repair index` copied what it could still read and left it unindexed (prune removes it)"
            );
        } else {
            others = true;
        }
    }
    others
}
