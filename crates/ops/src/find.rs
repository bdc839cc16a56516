//! `find`: which snapshots hold files whose name (or path) matches a pattern.

use cairn_format::Node;
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{Repository, SnapshotRef};

use crate::filter::PathFilter;
use crate::walk::{walk_tree, Visit};
use crate::OpsError;

#[derive(Clone, Debug)]
pub struct Found {
    pub snapshot: SnapshotRef,
    pub matches: Vec<(Vec<u8>, Node)>,
}

/// The `find` command: the index (no lock), then the snapshots `specs` names (all when
/// none) are searched.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    specs: &[String],
    patterns: &[String],
) -> Result<Vec<Found>, OpsError> {
    let _session = Session::begin(repo, "find", Access::Browse, LoadIndex::Yes)?;
    find(repo, &crate::snapshots::select(repo, specs)?, patterns)
}

/// Searches `snapshots` (oldest first) for nodes matching any of `patterns`.
pub fn find(
    repo: &Repository,
    snapshots: &[SnapshotRef],
    patterns: &[String],
) -> Result<Vec<Found>, OpsError> {
    let filter = PathFilter::new(patterns, &[])?;
    let mut out = Vec::new();
    for s in snapshots {
        let mut matches = Vec::new();
        walk_tree(repo, &s.snapshot.tree, b"/", &mut |path, node| {
            if filter.matches(&String::from_utf8_lossy(path)) {
                matches.push((path.to_vec(), node.clone()));
            }
            Ok(Visit::Descend)
        })?;
        if !matches.is_empty() {
            out.push(Found {
                snapshot: s.clone(),
                matches,
            });
        }
    }
    Ok(out)
}
