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

/// What `find` asks of an entry besides matching a pattern (restic's `-i`, `--oldest`,
/// `--newest`).
#[derive(Clone, Copy, Debug, Default)]
pub struct FindOptions {
    /// Patterns match whatever the case.
    pub ignore_case: bool,
    /// Only entries modified at or after this moment (ms since the epoch).
    pub oldest: Option<i64>,
    /// Only entries modified at or before this moment (ms since the epoch).
    pub newest: Option<i64>,
}

impl FindOptions {
    fn in_time(&self, node: &Node) -> bool {
        let ms = node.mtime.0.saturating_mul(1000) + i64::from(node.mtime.1 / 1_000_000);
        self.oldest.is_none_or(|o| ms >= o) && self.newest.is_none_or(|n| ms <= n)
    }
}

/// The `find` command: the index (no lock), then the snapshots `specs` names (all when
/// none) are searched.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    specs: &[String],
    patterns: &[String],
    opts: &FindOptions,
) -> Result<Vec<Found>, OpsError> {
    let _session = Session::begin(repo, "find", Access::Browse, LoadIndex::Yes)?;
    find(
        repo,
        &crate::snapshots::select(repo, specs)?,
        patterns,
        opts,
    )
}

/// Searches `snapshots` (oldest first) for nodes matching any of `patterns`.
pub fn find(
    repo: &Repository,
    snapshots: &[SnapshotRef],
    patterns: &[String],
    opts: &FindOptions,
) -> Result<Vec<Found>, OpsError> {
    let filter = if opts.ignore_case {
        PathFilter::new(&[], patterns)?
    } else {
        PathFilter::new(patterns, &[])?
    };
    let mut out = Vec::new();
    for s in snapshots {
        let mut matches = Vec::new();
        walk_tree(repo, &s.snapshot.tree, b"/", &mut |path, node| {
            if opts.in_time(node) && filter.matches(&String::from_utf8_lossy(path)) {
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
