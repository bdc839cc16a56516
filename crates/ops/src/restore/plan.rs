//! The restore plan: what to create where, decided before anything is written.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cairn_format::{BlobId, Node, NodeType, Timestamp};
use cairn_repo::{Repository, SnapshotRef};

use super::RestoreOptions;
use crate::walk::{check_name, find_node, join};
use crate::OpsError;

#[derive(Clone, Debug)]
pub struct Item {
    pub dest: PathBuf,
    pub node: Node,
}

#[derive(Default)]
pub struct RestorePlan {
    /// Parents before children.
    pub dirs: Vec<Item>,
    pub files: Vec<Item>,
    /// (link to create, existing file it points at)
    pub hardlinks: Vec<(PathBuf, PathBuf)>,
    pub others: Vec<Item>,
    /// For `--delete`: each restored directory and the names the snapshot has in it.
    pub dir_names: Vec<(PathBuf, HashSet<OsString>)>,
}

fn ts(t: chrono::DateTime<chrono::FixedOffset>) -> Timestamp {
    Timestamp(t.timestamp(), t.timestamp_subsec_nanos())
}

struct Builder<'a> {
    repo: &'a Repository,
    opts: &'a RestoreOptions,
    plan: RestorePlan,
    links: HashMap<(u64, u64), PathBuf>,
}

impl RestorePlan {
    pub fn build(repo: &Repository, snap: &SnapshotRef, opts: &RestoreOptions) -> Result<RestorePlan, OpsError> {
        let sub = opts.subpath.as_deref().unwrap_or("/");
        let start = find_node(repo, &snap.snapshot.tree, sub, ts(snap.snapshot.time))?;
        let mut b = Builder { repo, opts, plan: RestorePlan::default(), links: HashMap::new() };
        let base: Vec<u8> = if sub == "/" { b"/".to_vec() } else { sub.trim_end_matches('/').as_bytes().to_vec() };
        match (start.node_type, start.subtree) {
            (NodeType::Dir, Some(tree)) => {
                let mut selected = Vec::new();
                let included = b.opts.includes.is_empty();
                let (_, names) = b.dir(&tree, &base, &opts.target, included, &mut selected)?;
                b.plan.dir_names.push((opts.target.clone(), names));
                b.commit(selected);
            }
            _ => {
                // A single file (or symlink...) restored into the target directory.
                if !start.has_safe_name() {
                    return Err(OpsError::Invalid(format!("unsafe name {:?}", start.name)));
                }
                let dest = opts.target.join(OsStr::from_bytes(start.name.as_slice()));
                let mut selected = Vec::new();
                b.leaf(start, dest, &mut selected);
                b.commit(selected);
            }
        }
        Ok(b.plan)
    }
}

enum Planned {
    Dir(Item, HashSet<OsString>),
    File(Item),
    Link(PathBuf, PathBuf),
    Other(Item),
}

impl Builder<'_> {
    fn commit(&mut self, items: Vec<Planned>) {
        for p in items {
            match p {
                Planned::Dir(i, names) => {
                    self.plan.dir_names.push((i.dest.clone(), names));
                    self.plan.dirs.push(i);
                }
                Planned::File(i) => self.plan.files.push(i),
                Planned::Link(a, b) => self.plan.hardlinks.push((a, b)),
                Planned::Other(i) => self.plan.others.push(i),
            }
        }
    }

    fn leaf(&mut self, node: Node, dest: PathBuf, out: &mut Vec<Planned>) {
        match node.node_type {
            NodeType::File => {
                if node.links > 1 && node.inode != 0 {
                    let key = (node.device, node.inode);
                    if let Some(first) = self.links.get(&key) {
                        out.push(Planned::Link(dest, first.clone()));
                        return;
                    }
                    self.links.insert(key, dest.clone());
                }
                out.push(Planned::File(Item { dest, node }));
            }
            _ => out.push(Planned::Other(Item { dest, node })),
        }
    }

    /// Plans one directory's contents into `out`; returns whether anything was selected,
    /// and the names the directory holds in the snapshot (for `--delete`).
    fn dir(
        &mut self,
        tree: &BlobId,
        base: &[u8],
        dest: &Path,
        included: bool,
        out: &mut Vec<Planned>,
    ) -> Result<(bool, HashSet<OsString>), OpsError> {
        let t = self.repo.load_tree(tree)?;
        let names: HashSet<OsString> = t.nodes.iter().map(|n| OsStr::from_bytes(n.name.as_slice()).to_owned()).collect();
        let mut any = false;
        for node in t.nodes {
            check_name(tree, &node)?;
            let path = join(base, node.name.as_slice());
            let pstr = String::from_utf8_lossy(&path);
            if self.opts.excludes.matches(&pstr) {
                continue;
            }
            let inc = match &self.opts.only {
                Some(only) => only.contains(&path),
                None => included || self.opts.includes.matches(&pstr),
            };
            let child_dest = dest.join(OsStr::from_bytes(node.name.as_slice()));
            if node.node_type == NodeType::Dir {
                let mut sub_out = Vec::new();
                let (sub_any, sub_names) = match node.subtree {
                    Some(sub) => self.dir(&sub, &path, &child_dest, inc, &mut sub_out)?,
                    None => (false, HashSet::new()),
                };
                if inc || sub_any {
                    out.push(Planned::Dir(Item { dest: child_dest, node }, sub_names));
                    out.extend(sub_out);
                    any = true;
                }
            } else if inc {
                self.leaf(node, child_dest, out);
                any = true;
            }
        }
        Ok((any, names))
    }
}

/// Removes entries of restored directories that the snapshot lacks; returns how many.
pub(super) fn delete_extraneous(target: &super::TargetDir, plan: &RestorePlan, err: &dyn Fn(&Path, String)) -> Result<u64, OpsError> {
    use super::target;
    let mut n = 0;
    for (dir, names) in &plan.dir_names {
        let Ok(fd) = target.dir(dir) else { continue };
        let Ok(entries) = target::list_at(&fd) else { continue };
        for name in entries {
            if names.contains(&name) {
                continue;
            }
            let p = dir.join(&name);
            let r = match target::stat_at(&fd, &name) {
                Ok(Some(st)) if target::is_dir(&st) => target::walk_tree_at(&fd, &name, true).map(|_| ()),
                Ok(Some(_)) => target::remove_at(&fd, &name),
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => n += 1,
                Err(e) => err(&p, format!("could not delete: {e}")),
            }
        }
    }
    Ok(n)
}
