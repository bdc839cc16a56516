//! `copy`: snapshots from another repository into this one.
//!
//! The two repositories have different keys, so every blob ID differs: each blob is
//! loaded from the source (authenticated there) and saved in the destination, which
//! computes its own ID and skips blobs it already has. Chunks are kept as they are
//! when both repositories use the same chunk size parameters; otherwise each file is
//! re-chunked with the destination's chunker, so it deduplicates with what the
//! destination's own backups store. Snapshots already in the destination (same time,
//! host and paths) are skipped, so copy can be run again and again.

use std::collections::HashMap;

use rayon::prelude::*;

use cairn_chunker::{Chunker, ChunkerParams};
use cairn_format::{BlobId, BlobType, Node, NodeType, Tree};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{Repository, SnapshotRef};

use crate::dump::ContentReader;
use crate::OpsError;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CopySummary {
    pub snapshots_copied: Vec<(String, String)>,
    pub snapshots_skipped: u64,
    pub rechunked: bool,
    pub data_added: u64,
}

fn params(r: &Repository) -> ChunkerParams {
    let c = r.config();
    ChunkerParams {
        min_size: c.chunker_min_size as usize,
        avg_size: c.chunker_avg_size as usize,
        max_size: c.chunker_max_size as usize,
    }
}

struct Copier<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    rechunk: Option<Chunker>,
    trees: HashMap<BlobId, BlobId>,
}

impl Copier<'_> {
    fn content(&self, node: &Node) -> Result<Vec<BlobId>, OpsError> {
        if let Some(chunker) = &self.rechunk {
            let mut ids = Vec::new();
            for chunk in chunker.chunks(ContentReader::new(self.src, node)) {
                let chunk = chunk.map_err(|e| {
                    OpsError::Invalid(format!("reading from the source repository: {e}"))
                })?;
                ids.push(match chunk {
                    cairn_chunker::Chunk::Data(d) => {
                        self.dst.save_blob_parts(BlobType::Data, &d.slices())?.0
                    }
                    zeros => self.dst.save_blob(BlobType::Data, &zeros.into_bytes())?.0,
                });
            }
            return Ok(ids);
        }
        node.content
            .par_iter()
            .map(|id| {
                let data = self.src.load_blob(id)?;
                Ok(self.dst.save_blob(BlobType::Data, &data)?.0)
            })
            .collect()
    }

    fn tree(&mut self, id: &BlobId) -> Result<BlobId, OpsError> {
        if let Some(done) = self.trees.get(id) {
            return Ok(*done);
        }
        let t = self.src.load_tree(id)?;
        let mut nodes = Vec::with_capacity(t.nodes.len());
        for mut n in t.nodes {
            crate::walk::check_name(id, &n)?;
            match n.node_type {
                NodeType::File => n.content = self.content(&n)?,
                NodeType::Dir => {
                    if let Some(sub) = n.subtree {
                        n.subtree = Some(self.tree(&sub)?);
                    }
                }
                _ => {}
            }
            nodes.push(n);
        }
        let (new, _) = self.dst.save_tree(&Tree { nodes })?;
        self.trees.insert(*id, new);
        Ok(new)
    }
}

/// The `copy` command: shared locks on both repositories and both indexes, then the
/// snapshots `specs` names (all of them when empty) are copied.
pub fn run(
    src: &std::sync::Arc<Repository>,
    dst: &std::sync::Arc<Repository>,
    specs: &[String],
    progress: &dyn crate::Progress,
) -> Result<CopySummary, OpsError> {
    let _from = Session::begin(src, "copy (source)", Access::Read, LoadIndex::Yes)?;
    let _to = Session::begin(dst, "copy", Access::Add, LoadIndex::Yes)?;
    let snapshots = crate::snapshots::select(src, specs)?;
    copy_with_progress(src, dst, &snapshots, progress)
}

/// Copies `snapshots` of `src` into `dst`. Both indexes must be loaded; the caller
/// holds shared locks on both (see [`run`]).
pub fn copy(
    src: &Repository,
    dst: &Repository,
    snapshots: &[SnapshotRef],
) -> Result<CopySummary, OpsError> {
    copy_with_progress(src, dst, snapshots, &crate::NoProgress)
}

/// What restoring a snapshot would write, as its summary recorded: the progress unit.
fn size(s: &SnapshotRef) -> u64 {
    s.snapshot
        .summary
        .as_ref()
        .map_or(0, |x| x.total_bytes_processed)
}

/// [`copy`], reporting snapshots as the "files" done and their restore size as bytes.
pub fn copy_with_progress(
    src: &Repository,
    dst: &Repository,
    snapshots: &[SnapshotRef],
    progress: &dyn crate::Progress,
) -> Result<CopySummary, OpsError> {
    progress.start(snapshots.len() as u64, snapshots.iter().map(size).sum());
    let r = copy_all(src, dst, snapshots, progress);
    progress.finish();
    r
}

fn copy_all(
    src: &Repository,
    dst: &Repository,
    snapshots: &[SnapshotRef],
    progress: &dyn crate::Progress,
) -> Result<CopySummary, OpsError> {
    let rechunk = params(src) != params(dst);
    let mut c = Copier {
        src,
        dst,
        rechunk: if rechunk {
            Some(Chunker::new(&dst.key().gear_table(), params(dst)).map_err(OpsError::Invalid)?)
        } else {
            None
        },
        trees: HashMap::new(),
    };
    let existing: Vec<SnapshotRef> = dst.list_snapshots()?;
    let mut s = CopySummary {
        rechunked: rechunk,
        ..Default::default()
    };
    for snap in snapshots {
        let already = existing.iter().any(|e| {
            e.snapshot.time == snap.snapshot.time
                && e.snapshot.hostname == snap.snapshot.hostname
                && e.snapshot.paths == snap.snapshot.paths
        });
        progress.current(std::path::Path::new(&snap.id.short()));
        if already {
            s.snapshots_skipped += 1;
            progress.file_done(size(snap));
            continue;
        }
        let tree = c.tree(&snap.snapshot.tree)?;
        // Data and index before the snapshot, as in backup.
        dst.flush()?;
        dst.save_index()?;
        let mut new = snap.snapshot.clone();
        new.tree = tree;
        new.parent = None;
        let id = dst.save_snapshot(&new)?;
        s.snapshots_copied.push((snap.id.to_hex(), id.to_hex()));
        progress.file_done(size(snap));
    }
    s.data_added = dst
        .stats()
        .data_added
        .load(std::sync::atomic::Ordering::Relaxed);
    Ok(s)
}
