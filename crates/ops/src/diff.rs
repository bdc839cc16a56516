//! `diff`: what changed between two snapshots. Identical subtrees (same tree ID) are
//! skipped without being read, so comparing two daily snapshots reads only what changed.

use cairn_format::{BlobId, Node, NodeType, Tree};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{Repository, SnapshotRef};

use crate::walk::join;
use crate::OpsError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    /// Content differs (files) or the target differs (symlinks).
    Modified,
    /// Same content, different mode, owner, times or extended attributes.
    Metadata,
    /// Same name, different kind (a file became a directory...).
    TypeChanged,
}

impl Change {
    pub fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
            Change::TypeChanged => 'T',
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DiffSummary {
    pub changes: Vec<(String, Change)>,
    pub files_added: u64,
    pub files_removed: u64,
    pub files_modified: u64,
    pub dirs_added: u64,
    pub dirs_removed: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

/// The `diff` command: the index (no lock), then the snapshots `first` and `second` name
/// are compared. Returns both with the differences.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    first: &str,
    second: &str,
) -> Result<(SnapshotRef, SnapshotRef, DiffSummary), OpsError> {
    let _session = Session::begin(repo, "diff", Access::Browse, LoadIndex::Yes)?;
    let (x, y) = (repo.find_snapshot(first)?, repo.find_snapshot(second)?);
    let d = diff(repo, &x.snapshot.tree, &y.snapshot.tree)?;
    Ok((x, y, d))
}

pub fn diff(repo: &Repository, a: &BlobId, b: &BlobId) -> Result<DiffSummary, OpsError> {
    let mut s = DiffSummary::default();
    diff_trees(repo, Some(*a), Some(*b), b"/", &mut s)?;
    Ok(s)
}

fn load(repo: &Repository, t: Option<BlobId>) -> Result<Tree, OpsError> {
    Ok(match t {
        Some(id) => repo.load_tree(&id)?,
        None => Tree::default(),
    })
}

fn diff_trees(
    repo: &Repository,
    a: Option<BlobId>,
    b: Option<BlobId>,
    base: &[u8],
    s: &mut DiffSummary,
) -> Result<(), OpsError> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (load(repo, a)?, load(repo, b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let na = ta.nodes.get(i);
        let nb = tb.nodes.get(j);
        let order = match (na, nb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let n = na.unwrap_or_else(|| unreachable!());
                gone_or_new(repo, n, base, Change::Removed, s)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let n = nb.unwrap_or_else(|| unreachable!());
                gone_or_new(repo, n, base, Change::Added, s)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (
                    na.unwrap_or_else(|| unreachable!()),
                    nb.unwrap_or_else(|| unreachable!()),
                );
                compare(repo, x, y, base, s)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn path_of(base: &[u8], n: &Node) -> (Vec<u8>, String) {
    let p = join(base, n.name.as_slice());
    let mut shown = String::from_utf8_lossy(&p).into_owned();
    if n.node_type == NodeType::Dir {
        shown.push('/');
    }
    (p, shown)
}

/// Records a node (and, for a directory, everything below it) as added or removed.
fn gone_or_new(
    repo: &Repository,
    n: &Node,
    base: &[u8],
    c: Change,
    s: &mut DiffSummary,
) -> Result<(), OpsError> {
    let (p, shown) = path_of(base, n);
    s.changes.push((shown, c));
    let added = c == Change::Added;
    match n.node_type {
        NodeType::Dir => {
            if added {
                s.dirs_added += 1
            } else {
                s.dirs_removed += 1
            }
            let (a, b) = if added {
                (None, n.subtree)
            } else {
                (n.subtree, None)
            };
            diff_trees(repo, a, b, &p, s)?;
        }
        _ => {
            if added {
                s.files_added += 1;
                s.bytes_added += n.size;
            } else {
                s.files_removed += 1;
                s.bytes_removed += n.size;
            }
        }
    }
    Ok(())
}

fn same_metadata(x: &Node, y: &Node) -> bool {
    x.mode == y.mode
        && x.uid == y.uid
        && x.gid == y.gid
        && x.mtime == y.mtime
        && x.xattrs == y.xattrs
}

fn compare(
    repo: &Repository,
    x: &Node,
    y: &Node,
    base: &[u8],
    s: &mut DiffSummary,
) -> Result<(), OpsError> {
    let (p, shown) = path_of(base, y);
    if x.node_type != y.node_type {
        s.changes.push((shown, Change::TypeChanged));
        return Ok(());
    }
    match y.node_type {
        NodeType::Dir => {
            if !same_metadata(x, y) {
                s.changes.push((shown, Change::Metadata));
            }
            diff_trees(repo, x.subtree, y.subtree, &p, s)?;
        }
        _ => {
            if x.content != y.content || x.link_target != y.link_target || x.rdev != y.rdev {
                s.changes.push((shown, Change::Modified));
                s.files_modified += 1;
                s.bytes_added += y.size;
                s.bytes_removed += x.size;
            } else if !same_metadata(x, y) {
                s.changes.push((shown, Change::Metadata));
            }
        }
    }
    Ok(())
}
