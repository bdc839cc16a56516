//! The restore plan: what to create where, decided before anything is written.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cairn_format::{BlobId, Node, NodeType};
use cairn_repo::{Repository, SnapshotRef};

use super::RestoreOptions;
use crate::walk::{check_name, join};
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
    /// For `--delete`: the restored directories whose extra entries may go.
    pub delete_scopes: Vec<DeleteScope>,
}

/// A restored directory at or below one of the snapshot's backed-up paths: `--delete`
/// may remove its entries the snapshot lacks, if the filters select them. Directories
/// above the backed-up paths (`/`, `/home` for a backup of `/home/me`) are never
/// scopes, so `restore --target / --delete` touches nothing beside what was backed up.
pub struct DeleteScope {
    pub dest: PathBuf,
    /// The directory's path in the snapshot, for the include and exclude patterns.
    pub snap_path: Vec<u8>,
    pub names: HashSet<OsString>,
    /// Whether the directory itself is selected (no includes, or one matched it or a
    /// directory above it): then every extra entry is, unless excluded.
    pub included: bool,
}

struct Builder<'a> {
    repo: &'a Repository,
    opts: &'a RestoreOptions,
    plan: RestorePlan,
    links: HashMap<(u64, u64), PathBuf>,
    /// The snapshot's backed-up paths, absolute, without a trailing `/`.
    backed_up: Vec<Vec<u8>>,
}

impl Builder<'_> {
    /// Whether `path` is one of the backed-up paths or lies below one. A snapshot that
    /// records no paths (stdin) has only what it holds.
    fn backed_up(&self, path: &[u8]) -> bool {
        self.backed_up.is_empty()
            || self.backed_up.iter().any(|b| {
                path == b.as_slice()
                    || b.is_empty()
                    || (path.starts_with(b) && path.get(b.len()) == Some(&b'/'))
            })
    }

    fn scope(
        &self,
        dest: &Path,
        snap_path: &[u8],
        names: HashSet<OsString>,
        included: bool,
    ) -> Option<DeleteScope> {
        (self.opts.delete && self.opts.only.is_none() && self.backed_up(snap_path)).then(|| {
            DeleteScope {
                dest: dest.to_path_buf(),
                snap_path: snap_path.to_vec(),
                names,
                included,
            }
        })
    }
}

impl RestorePlan {
    pub fn build(
        repo: &Repository,
        snap: &SnapshotRef,
        opts: &RestoreOptions,
    ) -> Result<RestorePlan, OpsError> {
        let (sub, start) =
            crate::walk::find_path(repo, snap, opts.subpath.as_deref().unwrap_or("/"))?;
        let sub = sub.as_str();
        let backed_up = snap
            .snapshot
            .paths
            .iter()
            .map(|p| {
                let p = p.trim_end_matches('/');
                if p.starts_with('/') {
                    p.as_bytes().to_vec()
                } else {
                    format!("/{p}").into_bytes()
                }
            })
            .map(|p| if p == b"/" { Vec::new() } else { p })
            .collect();
        let mut b = Builder {
            repo,
            opts,
            plan: RestorePlan::default(),
            links: HashMap::new(),
            backed_up,
        };
        let base: Vec<u8> = if sub == "/" {
            b"/".to_vec()
        } else {
            sub.trim_end_matches('/').as_bytes().to_vec()
        };
        match (start.node_type, start.subtree) {
            (NodeType::Dir, Some(tree)) => {
                let mut selected = Vec::new();
                let included = b.opts.includes.is_empty();
                let (_, names) = b.dir(&tree, &base, &opts.target, included, &mut selected)?;
                let root = if base == b"/" { &b""[..] } else { &base[..] };
                b.plan
                    .delete_scopes
                    .extend(b.scope(&opts.target, root, names, included));
                b.commit(selected);
            }
            _ => {
                // A single file (or symlink...) restored into the target directory.
                if !start.has_safe_name() {
                    return Err(OpsError::UnsafeName {
                        tree: None,
                        name: format!("{:?}", start.name),
                    });
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
    Dir(Item, Option<DeleteScope>),
    File(Item),
    Link(PathBuf, PathBuf),
    Other(Item),
}

impl Builder<'_> {
    fn commit(&mut self, items: Vec<Planned>) {
        for p in items {
            match p {
                Planned::Dir(i, scope) => {
                    self.plan.delete_scopes.extend(scope);
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
        let names: HashSet<OsString> = t
            .nodes
            .iter()
            .map(|n| OsStr::from_bytes(n.name.as_slice()).to_owned())
            .collect();
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
                    let scope = self.scope(&child_dest, &path, sub_names, inc);
                    out.push(Planned::Dir(
                        Item {
                            dest: child_dest,
                            node,
                        },
                        scope,
                    ));
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

/// What `--delete` removed (or, in a dry run, would remove).
#[derive(Default)]
pub(super) struct Deleted {
    pub files: u64,
    pub dirs: u64,
    /// Each entry removed, directories with a trailing `/` and what they held.
    pub paths: Vec<String>,
}

/// Removes (when `remove`; else only lists) the entries of the delete scopes that the
/// snapshot lacks and the filters select, never the repository, its cache, or a
/// directory that holds either (`opts.protect`).
pub(super) fn delete_extraneous(
    target: &super::TargetDir,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    remove: bool,
    err: &dyn Fn(&Path, String),
) -> Deleted {
    use super::target;
    let mut out = Deleted::default();
    for scope in &plan.delete_scopes {
        // In a dry run a directory may not exist yet: nothing in it to delete.
        let Ok(fd) = target.dir(&scope.dest) else {
            continue;
        };
        let real = target.real(&scope.dest);
        if opts.protect.iter().any(|p| real.starts_with(p)) {
            continue;
        }
        let mut entries = match target::list_at(&fd) {
            Ok(e) => e,
            Err(e) => {
                err(&scope.dest, format!("could not list for --delete: {e}"));
                continue;
            }
        };
        entries.sort();
        for name in entries {
            if scope.names.contains(&name) {
                continue;
            }
            let snap_path = join(&scope.snap_path, name.as_bytes());
            let pstr = String::from_utf8_lossy(&snap_path);
            if opts.excludes.matches(&pstr) || !(scope.included || opts.includes.matches(&pstr)) {
                continue;
            }
            let p = scope.dest.join(&name);
            let candidate = real.join(&name);
            if opts.protect.iter().any(|k| k.starts_with(&candidate)) {
                tracing::warn!(
                    "not deleting {}: it holds this repository or its cache",
                    p.display()
                );
                continue;
            }
            match target::stat_at(&fd, &name) {
                Ok(Some(st)) if target::is_dir(&st) => {
                    match target::walk_tree_at(&fd, &name, remove) {
                        Ok((f, d)) => {
                            out.files += f;
                            out.dirs += d;
                            out.paths.push(format!(
                                "{}/ ({}, {})",
                                p.display(),
                                crate::size::count(f, "file", "files"),
                                crate::size::count(d, "directory", "directories")
                            ));
                        }
                        Err(e) => err(&p, format!("could not delete: {e}")),
                    }
                }
                Ok(Some(_)) => match if remove {
                    target::remove_at(&fd, &name)
                } else {
                    Ok(())
                } {
                    Ok(()) => {
                        out.files += 1;
                        out.paths.push(p.display().to_string());
                    }
                    Err(e) => err(&p, format!("could not delete: {e}")),
                },
                Ok(None) => {}
                Err(e) => err(&p, format!("could not delete: {e}")),
            }
        }
    }
    out
}
