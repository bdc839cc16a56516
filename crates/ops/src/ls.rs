//! `ls`: the nodes of a snapshot with their absolute paths.

use cairn_format::{Node, NodeType, Timestamp};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{Repository, SnapshotRef};

use crate::walk::{find_node, walk_tree, Visit};
use crate::OpsError;

#[derive(Clone, Debug)]
pub struct LsEntry {
    /// Absolute path in the snapshot, as raw bytes.
    pub path: Vec<u8>,
    pub node: Node,
}

/// The `ls` command: the index (no lock), then the snapshot `spec` names is listed as
/// [`ls`] does. Returns the snapshot with its entries.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    spec: &str,
    path: Option<&str>,
    recursive: bool,
) -> Result<(SnapshotRef, Vec<LsEntry>), OpsError> {
    let _session = Session::begin(repo, "ls", Access::Browse, LoadIndex::Yes)?;
    let snap = repo.find_snapshot(spec)?;
    let entries = ls(repo, &snap, path, recursive)?;
    Ok((snap, entries))
}

/// Lists the whole snapshot when `path` is `None`; otherwise the node at `path`, or the
/// contents of that directory (all levels with `recursive`).
pub fn ls(
    repo: &Repository,
    snap: &SnapshotRef,
    path: Option<&str>,
    recursive: bool,
) -> Result<Vec<LsEntry>, OpsError> {
    let mut out = Vec::new();
    let time = Timestamp(
        snap.snapshot.time.timestamp(),
        snap.snapshot.time.timestamp_subsec_nanos(),
    );
    let (start, base, recursive) = match path {
        None | Some("/") | Some("") => (
            find_node(repo, &snap.snapshot.tree, "/", time)?,
            b"/".to_vec(),
            path.is_none() || recursive,
        ),
        Some(p) => {
            let (p, node) = crate::walk::find_path(repo, snap, p.trim_end_matches('/'))?;
            let p = p.as_str();
            if node.node_type != NodeType::Dir {
                out.push(LsEntry {
                    path: p.as_bytes().to_vec(),
                    node,
                });
                return Ok(out);
            }
            (node, p.as_bytes().to_vec(), recursive)
        }
    };
    if let Some(tree) = start.subtree {
        walk_tree(repo, &tree, &base, &mut |p, n| {
            out.push(LsEntry {
                path: p.to_vec(),
                node: n.clone(),
            });
            Ok(if recursive {
                Visit::Descend
            } else {
                Visit::Skip
            })
        })?;
    }
    Ok(out)
}
