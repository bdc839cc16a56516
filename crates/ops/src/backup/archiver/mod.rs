//! The archiver: files to blobs, directories to trees, in parallel. This file is the
//! walk (layout, directories, entries, the parent snapshot's shortcut); `content.rs`
//! saves one file's content; `read_slots.rs` bounds how many files are read at once.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use cairn_chunker::{Chunk, Chunker, Dense, Sparse};
use cairn_format::{BlobId, BlobType, Node, NodeType, RawBytes, Timestamp, Tree};
use cairn_repo::{sys, Repository};

use super::layout::{Entry, Layout};
use super::BackupOptions;
use crate::meta::{node_from_metadata, NameCache};
use crate::OpsError;

/// Chunks of one file hashed, compressed and sealed in parallel at a time. Bounds the
/// memory a single large file can hold (two batches plus the chunker's buffer).
const BATCH_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct Counters {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unmodified: AtomicU64,
    pub dirs_new: AtomicU64,
    pub dirs_changed: AtomicU64,
    pub dirs_unmodified: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub struct Archiver<'a> {
    repo: &'a Repository,
    progress: &'a dyn crate::Progress,
    chunker: Chunker,
    opts: &'a BackupOptions,
    parent_root: Option<BlobId>,
    names: NameCache,
    counters: Counters,
    errors: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
    /// The ID of the chunk every long run of zeros is cut into, once stored.
    zero_blob: Mutex<Option<BlobId>>,
    /// Files being read now (`--read-concurrency`).
    reading: ReadSlots,
}

enum FileOutcome {
    Saved,
    Failed,
}

mod content;
mod read_slots;

use content::ContentError;
use read_slots::ReadSlots;

impl<'a> Archiver<'a> {
    pub fn new(
        repo: &'a Repository,
        chunker: Chunker,
        opts: &'a BackupOptions,
        parent_root: Option<BlobId>,
        progress: &'a dyn crate::Progress,
    ) -> Self {
        Archiver {
            repo,
            progress,
            chunker,
            opts,
            parent_root,
            names: NameCache::default(),
            counters: Counters::default(),
            errors: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            zero_blob: Mutex::new(None),
            reading: ReadSlots::new(opts.read_concurrency),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn take_errors(&self) -> Vec<String> {
        let mut v = std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()));
        v.sort();
        v
    }

    pub fn take_warnings(&self) -> Vec<String> {
        let mut v = std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()));
        v.sort();
        v
    }

    fn error(&self, path: &Path, e: impl std::fmt::Display) {
        let msg = format!("{}: {e}", path.display());
        self.progress.note(&format!("error: {msg}"));
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
    }

    fn warning(&self, msg: String) {
        self.progress.note(&format!("warning: {msg}"));
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
    }

    /// A parent tree that fails to load only costs speed (files are re-read), so it is
    /// a warning, not an error.
    fn load_parent(&self, id: Option<BlobId>) -> Option<Tree> {
        let id = id?;
        match self.repo.load_tree(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                self.warning(format!(
                    "parent tree {} unreadable, re-reading files: {e}",
                    id.short()
                ));
                None
            }
        }
    }

    fn save_tree(&self, mut tree: Tree) -> Result<BlobId, OpsError> {
        tree.sort();
        Ok(self.repo.save_tree(&tree)?.0)
    }

    /// Archives the root layout; returns the root tree id.
    pub fn archive_layout(&self, layout: &Layout) -> Result<BlobId, OpsError> {
        let root = Path::new("/");
        if layout.root_is_real {
            let meta = fs::symlink_metadata(root).map_err(|e| OpsError::io(root, e))?;
            return self.dir_tree(root, self.parent_root, meta.dev());
        }
        self.layout_tree(layout, self.parent_root)
    }

    fn layout_tree(&self, layout: &Layout, parent: Option<BlobId>) -> Result<BlobId, OpsError> {
        let parent_tree = self.load_parent(parent);
        let find = |name: &[u8]| parent_tree.as_ref().and_then(|t| t.find(name));
        let mut nodes = Vec::new();
        for (name, entry) in &layout.children {
            let name = name.as_bytes();
            match entry {
                Entry::Real(path) => {
                    let meta = fs::symlink_metadata(path).map_err(|e| OpsError::io(path, e))?;
                    if let Some(n) = self.entry(path, name, find(name), meta.dev())? {
                        nodes.push(n);
                    }
                }
                Entry::Above(path, sub) => {
                    let meta = fs::symlink_metadata(path).map_err(|e| OpsError::io(path, e))?;
                    let mut node = node_from_metadata(name, path, &meta, &self.names, find(name));
                    let parent_sub = find(name)
                        .filter(|n| n.node_type == NodeType::Dir)
                        .and_then(|n| n.subtree);
                    node.subtree = Some(self.layout_tree(sub, parent_sub)?);
                    nodes.push(node);
                }
            }
        }
        self.save_tree(Tree { nodes })
    }

    /// Archives one directory's contents; returns its tree id.
    fn dir_tree(&self, path: &Path, parent: Option<BlobId>, dev: u64) -> Result<BlobId, OpsError> {
        let parent_tree = self.load_parent(parent);
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        match fs::read_dir(path) {
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => names.push(e.file_name()),
                        Err(e) => self.error(path, e),
                    }
                }
            }
            Err(e) => self.error(path, e),
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|name| {
                let n = name.as_bytes();
                self.entry(
                    &path.join(name),
                    n,
                    parent_tree.as_ref().and_then(|t| t.find(n)),
                    dev,
                )
            })
            .collect::<Result<_, _>>()?;
        self.save_tree(Tree {
            nodes: nodes.into_iter().flatten().collect(),
        })
    }

    /// Archives one directory entry; `None` when it is excluded or unreadable.
    fn entry(
        &self,
        path: &Path,
        name: &[u8],
        parent: Option<&Node>,
        dev: u64,
    ) -> Result<Option<Node>, OpsError> {
        if self.opts.excludes.matches(&path.to_string_lossy()) {
            return Ok(None);
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.warning(format!("{}: vanished during backup", path.display()));
                return Ok(None);
            }
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        let mut node = node_from_metadata(name, path, &meta, &self.names, parent);
        match node.node_type {
            NodeType::File => {
                if self
                    .opts
                    .exclude_larger_than
                    .is_some_and(|limit| meta.len() > limit)
                {
                    return Ok(None);
                }
                if let FileOutcome::Failed = self.file(path, &mut node, parent)? {
                    return Ok(None);
                }
            }
            NodeType::Dir => {
                if self.opts.one_file_system && meta.dev() != dev {
                    return Ok(None);
                }
                if self
                    .opts
                    .exclude_if_present
                    .iter()
                    .any(|f| fs::symlink_metadata(path.join(f)).is_ok())
                {
                    return Ok(None);
                }
                let parent_sub = parent
                    .filter(|p| p.node_type == NodeType::Dir)
                    .and_then(|p| p.subtree);
                let sub = self.dir_tree(path, parent_sub, dev)?;
                match parent_sub {
                    Some(p) if p == sub => inc(&self.counters.dirs_unmodified),
                    Some(_) => inc(&self.counters.dirs_changed),
                    None => inc(&self.counters.dirs_new),
                }
                node.subtree = Some(sub);
            }
            NodeType::Symlink => match fs::read_link(path) {
                Ok(t) => node.link_target = RawBytes(t.as_os_str().as_bytes().to_vec()),
                Err(e) => {
                    self.error(path, e);
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some(node))
    }

    fn unchanged(&self, node: &Node, parent: Option<&Node>) -> Option<Vec<BlobId>> {
        if self.opts.force {
            return None;
        }
        let p = parent?;
        let same = p.node_type == NodeType::File
            && p.size == node.size
            && p.mtime == node.mtime
            && (self.opts.ignore_inode || p.inode == node.inode)
            && (self.opts.ignore_ctime || p.ctime == node.ctime);
        // Reuse only content that is really stored: a snapshot must never point at
        // blobs the repository lacks.
        (same && p.content.iter().all(|id| self.repo.has_blob(id))).then(|| p.content.clone())
    }

    /// The root tree for `backup --stdin`: one file holding standard input.
    pub fn stdin_tree(&self, name: &str, input: impl Read + Send) -> Result<BlobId, OpsError> {
        let (content, read) = self
            .save_content(Dense(input), u64::MAX)
            .map_err(|e| match e {
                ContentError::Read(e) => OpsError::io("standard input", e),
                ContentError::Repo(e) => e,
            })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ts = Timestamp(now.as_secs() as i64, now.subsec_nanos());
        let mut node = Node::new(name.into(), NodeType::File);
        node.mode = 0o644;
        node.uid = nix::unistd::getuid().as_raw();
        node.gid = nix::unistd::getgid().as_raw();
        node.user = sys::username();
        node.group = self.names.group(node.gid);
        node.mtime = ts;
        node.atime = ts;
        node.ctime = ts;
        node.size = read;
        node.links = 1;
        node.content = content;
        inc(&self.counters.files);
        inc(&self.counters.files_new);
        self.counters.bytes.fetch_add(read, Ordering::Relaxed);
        self.save_tree(Tree { nodes: vec![node] })
    }
}
