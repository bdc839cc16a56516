//! `stats`: how big the snapshots are, and how much deduplication and compression save.

use std::collections::HashSet;

use cairn_format::{BlobId, NodeType};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{Repository, SnapshotRef};

use crate::walk::{walk_tree, Visit};
use crate::OpsError;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub snapshots: u64,
    /// restore-size: what restoring every snapshot would write.
    pub total_file_count: u64,
    pub restore_size: u64,
    /// raw-data: the distinct blobs the snapshots reference.
    pub blob_count: u64,
    pub raw_data_size: u64,
    pub stored_size: u64,
    /// restore_size / raw_data_size
    pub deduplication_ratio: f64,
    /// raw_data_size / stored_size
    pub compression_ratio: f64,
}

/// The `stats` command: the index (no lock), then the snapshots `specs` names (all when
/// none) are measured.
pub fn run(repo: &std::sync::Arc<Repository>, specs: &[String]) -> Result<Stats, OpsError> {
    let _session = Session::begin(repo, "stats", Access::Browse, LoadIndex::Yes)?;
    stats(repo, &crate::snapshots::select(repo, specs)?)
}

pub fn stats(repo: &Repository, snapshots: &[SnapshotRef]) -> Result<Stats, OpsError> {
    let mut s = Stats {
        snapshots: snapshots.len() as u64,
        ..Default::default()
    };
    let mut blobs: HashSet<BlobId> = HashSet::new();
    for snap in snapshots {
        blobs.insert(snap.snapshot.tree);
        walk_tree(repo, &snap.snapshot.tree, b"/", &mut |_, n| {
            if n.node_type == NodeType::File {
                s.total_file_count += 1;
                s.restore_size += n.size;
            }
            blobs.extend(n.content.iter().copied());
            if let Some(t) = n.subtree {
                blobs.insert(t);
            }
            Ok(Visit::Descend)
        })?;
    }
    let index = repo.index();
    for id in &blobs {
        if let Some(b) = index.get(id) {
            s.blob_count += 1;
            s.raw_data_size += u64::from(b.entry.raw_length);
            s.stored_size += u64::from(b.entry.length);
        }
    }
    s.deduplication_ratio = ratio(s.restore_size, s.raw_data_size);
    s.compression_ratio = ratio(s.raw_data_size, s.stored_size);
    Ok(s)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f64 / b as f64 * 100.0).round() / 100.0
    }
}
