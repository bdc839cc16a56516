//! Walking the trees of a snapshot: shared by ls, restore, find and diff.

use cairn_format::{BlobId, Node, NodeType, Timestamp};
use cairn_repo::Repository;

use crate::OpsError;

/// What the visitor wants done with a directory it was shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    Descend,
    Skip,
}

/// Joins a parent path (`/` or `/a/b`) and a name into an absolute snapshot path.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Visits every node below `tree` depth-first, parents before children, in name order.
/// `base` is the absolute path of `tree` itself.
pub fn walk_tree(
    repo: &Repository,
    tree: &BlobId,
    base: &[u8],
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<Visit, OpsError>,
) -> Result<(), OpsError> {
    let t = repo.load_tree(tree)?;
    for node in &t.nodes {
        check_name(tree, node)?;
        let path = join(base, node.name.as_slice());
        let what = visit(&path, node)?;
        if what == Visit::Descend && node.node_type == NodeType::Dir {
            if let Some(sub) = &node.subtree {
                walk_tree(repo, sub, &path, visit)?;
            }
        }
    }
    Ok(())
}

/// Refuses a node whose name could escape its directory (`..`, `a/b`, ...): such a tree
/// was forged or corrupted, and nothing below it is trusted.
pub fn check_name(tree: &BlobId, node: &Node) -> Result<(), OpsError> {
    if node.has_safe_name() {
        return Ok(());
    }
    Err(OpsError::UnsafeName {
        tree: Some(tree.short()),
        name: format!("{:?}", node.name),
    })
}

/// A node standing for the snapshot's root directory.
pub fn root_node(tree: BlobId, time: Timestamp) -> Node {
    let mut n = Node::new("/".into(), NodeType::Dir);
    n.subtree = Some(tree);
    n.mode = 0o755;
    n.mtime = time;
    n
}

/// Finds the node at absolute `path` (`/` is the root) below the root tree.
pub fn find_node(
    repo: &Repository,
    root: &BlobId,
    path: &str,
    root_time: Timestamp,
) -> Result<Node, OpsError> {
    let mut node = root_node(*root, root_time);
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let Some(sub) = node.subtree.filter(|_| node.node_type == NodeType::Dir) else {
            return Err(OpsError::PathNotFound(path.to_string()));
        };
        let t = repo.load_tree(&sub)?;
        node = t
            .find(comp.as_bytes())
            .cloned()
            .ok_or_else(|| OpsError::PathNotFound(path.to_string()))?;
    }
    Ok(node)
}

/// [`find_node`], with a path the tree does not have as None.
pub fn node_at(
    repo: &Repository,
    root: &BlobId,
    path: &str,
    root_time: Timestamp,
) -> Result<Option<Node>, OpsError> {
    match find_node(repo, root, path, root_time) {
        Ok(n) => Ok(Some(n)),
        Err(OpsError::PathNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The node at `path` in the snapshot, and that path made absolute. Paths inside a
/// snapshot are absolute, but a restic habit is `restore latest:Documents`: a relative
/// path is tried below each backed-up path (`/home/me` + `Documents`) and beside it
/// (`me/Documents`), and used when exactly one of those exists.
pub fn find_path(
    repo: &Repository,
    snap: &cairn_repo::SnapshotRef,
    path: &str,
) -> Result<(String, Node), OpsError> {
    let t = snap.snapshot.time;
    let time = Timestamp(t.timestamp(), t.timestamp_subsec_nanos());
    if path.starts_with('/') || path.is_empty() {
        let abs = if path.is_empty() { "/" } else { path };
        return Ok((
            abs.to_string(),
            find_node(repo, &snap.snapshot.tree, abs, time)?,
        ));
    }
    let rel = path.trim_end_matches('/');
    let mut candidates: Vec<String> = Vec::new();
    for root in &snap.snapshot.paths {
        let root = root.trim_end_matches('/');
        candidates.push(format!("{root}/{rel}"));
        let (parent, last) = root.rsplit_once('/').unwrap_or(("", root));
        if rel == last || rel.starts_with(&format!("{last}/")) {
            candidates.push(format!("{parent}/{rel}"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|c| seen.insert(c.clone()));
    let mut found = Vec::new();
    for c in &candidates {
        if let Some(n) = node_at(repo, &snap.snapshot.tree, c, time)? {
            found.push((c.clone(), n));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(OpsError::RelativePath(format!(
            "path {path:?} not found in snapshot: paths inside a snapshot are absolute, and none of {} exists",
            if candidates.is_empty() { "the backed-up paths".to_string() } else { candidates.join(", ") }
        ))),
        _ => Err(OpsError::RelativePath(format!(
            "path {path:?} is ambiguous in this snapshot: give one of {} in full",
            found.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Why the given snapshots cannot all be restored from what the index lists, if they
/// cannot: the first blob one uses that no index lists, or a tree that cannot be read.
/// Reads only, and stops at the first. Ship asks before deleting packs at a copy,
/// `repair snapshots` before giving data up.
pub fn first_missing_blob(
    repo: &Repository,
    snapshots: &[cairn_repo::SnapshotRef],
) -> Result<Option<String>, OpsError> {
    let mut seen = std::collections::HashSet::new();
    for s in snapshots {
        if !seen.insert(s.snapshot.tree) {
            continue;
        }
        let mut missing = None;
        let walked = walk_tree(repo, &s.snapshot.tree, b"/", &mut |_, node| {
            if let Some(b) = node.content.iter().find(|b| !repo.index().contains(b)) {
                missing = Some(format!(
                    "blob {} is used by snapshot {} but no index lists it",
                    b.short(),
                    s.id.short()
                ));
                return Err(OpsError::Invalid(String::new()));
            }
            match node.subtree {
                Some(t) if !seen.insert(t) => Ok(Visit::Skip),
                _ => Ok(Visit::Descend),
            }
        });
        match (missing, walked) {
            (Some(why), _) => return Ok(Some(why)),
            (None, Err(e)) => {
                return Ok(Some(format!(
                    "snapshot {} cannot be read ({e})",
                    s.id.short()
                )))
            }
            (None, Ok(())) => {}
        }
    }
    Ok(None)
}
