//! The archiver: files to blobs, directories to trees, in parallel.

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
        tracing::debug!("{msg}");
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
    }

    fn warning(&self, msg: String) {
        tracing::debug!("{msg}");
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

    fn file(
        &self,
        path: &Path,
        node: &mut Node,
        parent: Option<&Node>,
    ) -> Result<FileOutcome, OpsError> {
        self.progress.current(path);
        let outcome = self.file_inner(path, node, parent);
        // Bytes were reported as they were read (or at once for an unchanged file).
        self.progress.file_done(0);
        outcome
    }

    fn file_inner(
        &self,
        path: &Path,
        node: &mut Node,
        parent: Option<&Node>,
    ) -> Result<FileOutcome, OpsError> {
        inc(&self.counters.files);
        self.counters.bytes.fetch_add(node.size, Ordering::Relaxed);
        if let Some(content) = self.unchanged(node, parent) {
            self.progress.bytes_done(node.size);
            node.content = content;
            inc(&self.counters.files_unmodified);
            return Ok(FileOutcome::Saved);
        }
        let _slot = self.reading.acquire();
        let f = match open_noatime(path) {
            Ok(f) => f,
            Err(e) => {
                self.error(path, e);
                return Ok(FileOutcome::Failed);
            }
        };
        // Only a file with fewer blocks than bytes can have holes worth asking about.
        let sparse = node.size >= 2 * self.chunker.params().max_size as u64
            && f.metadata().is_ok_and(|m| m.blocks() * 512 < m.len());
        let saved = if sparse {
            self.save_content(
                SparseFile {
                    file: &f,
                    offset: 0,
                },
                node.size,
            )
        } else {
            self.save_content(Dense(&f), node.size)
        };
        let (content, read) = match saved {
            Ok(x) => x,
            Err(ContentError::Read(e)) => {
                self.error(path, e);
                return Ok(FileOutcome::Failed);
            }
            Err(ContentError::Repo(e)) => return Err(e),
        };
        if let Ok(after) = f.metadata() {
            let mtime = Timestamp(after.mtime(), after.mtime_nsec() as u32);
            if after.len() != node.size || read != node.size || mtime != node.mtime {
                self.warning(format!(
                    "{}: changed during backup; stored as read ({read} bytes)",
                    path.display()
                ));
            }
        }
        node.size = read;
        node.content = content;
        if parent.is_some_and(|p| p.node_type == NodeType::File) {
            inc(&self.counters.files_changed);
        } else {
            inc(&self.counters.files_new);
        }
        self.repo.checkpoint_index(self.opts.checkpoint_interval)?;
        Ok(FileOutcome::Saved)
    }

    /// Chunks a stream and stores its blobs; returns blob ids in order and bytes read.
    /// Above one batch (`size_hint`), a reader thread chunks the next batch while this
    /// one is hashed, compressed and sealed on every core, so no core waits for the
    /// disk or the chunker; at most two batches of one file are in memory. (The reader
    /// hands a batch over only when the last is stored: chunking is several times
    /// faster than sealing, so a third batch waiting in between bought no speed and
    /// cost ~10 MiB per file being read.)
    fn save_content(
        &self,
        reader: impl Sparse + Send,
        size_hint: u64,
    ) -> Result<(Vec<BlobId>, u64), ContentError> {
        let mut ids = Vec::new();
        let mut read = 0u64;
        let store = |batch: Vec<Chunk>,
                     ids: &mut Vec<BlobId>,
                     read: &mut u64|
         -> Result<(), ContentError> {
            let bytes = batch.iter().map(|c| c.len() as u64).sum::<u64>();
            *read += bytes;
            let saved: Vec<BlobId> = batch
                .par_iter()
                .map(|c| match c {
                    Chunk::Data(d) => self
                        .repo
                        .save_blob_parts(BlobType::Data, &d.slices())
                        .map(|(id, _)| id),
                    Chunk::Zeros(n) => self.zero_blob(*n),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| ContentError::Repo(e.into()))?;
            ids.extend(saved);
            self.progress.bytes_done(bytes);
            Ok(())
        };
        if size_hint <= BATCH_BYTES as u64 {
            // A small file: no thread to start; it is one batch (or grew meanwhile).
            let mut batch = Batch::default();
            for chunk in self.chunker.chunks_sparse(reader) {
                if let Some(full) = batch.push(chunk.map_err(ContentError::Read)?) {
                    store(full, &mut ids, &mut read)?;
                }
            }
            store(batch.chunks, &mut ids, &mut read)?;
            return Ok((ids, read));
        }
        let chunker = &self.chunker;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<Chunk>>>(0);
            scope.spawn(move || {
                let mut batch = Batch::default();
                for chunk in chunker.chunks_sparse(reader) {
                    match chunk {
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                        Ok(c) => {
                            // The receiver is gone only after an error: stop reading.
                            if let Some(full) = batch.push(c) {
                                if tx.send(Ok(full)).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
                let _ = tx.send(Ok(batch.chunks));
            });
            for batch in rx {
                store(batch.map_err(ContentError::Read)?, &mut ids, &mut read)?;
            }
            Ok((ids, read))
        })
    }

    /// The blob of `n` zero bytes, stored once per backup and then only referenced.
    fn zero_blob(&self, n: usize) -> Result<BlobId, cairn_repo::RepoError> {
        let mut known = self.zero_blob.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = *known {
            return Ok(id);
        }
        let (id, _) = self.repo.save_blob(BlobType::Data, &vec![0; n])?;
        *known = Some(id);
        Ok(id)
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

/// At most `limit` files read at once (0: no limit).
///
/// Files are read on rayon workers, and a worker waiting for its file's blobs to be
/// sealed (a nested `par_iter`) runs other jobs meanwhile, another file among them. A
/// worker that already holds a slot therefore never waits for one: its own slot is
/// given back only when it returns to the frame below, so waiting could deadlock
/// (every worker holding a slot and waiting for another). Such a nested file reads
/// beside the one it interrupted, so the limit can be passed while that happens.
struct ReadSlots {
    limit: usize,
    count: Mutex<usize>,
    freed: std::sync::Condvar,
}

thread_local! {
    /// Read slots this thread holds.
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl ReadSlots {
    fn new(limit: usize) -> ReadSlots {
        ReadSlots {
            limit,
            count: Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Waits for a slot (unless this thread holds one); it is given back when the
    /// guard drops.
    fn acquire(&self) -> Option<ReadSlot<'_>> {
        if self.limit == 0 {
            return None;
        }
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        if HELD.get() == 0 {
            while *n >= self.limit {
                n = self.freed.wait(n).unwrap_or_else(|p| p.into_inner());
            }
        }
        *n += 1;
        HELD.set(HELD.get() + 1);
        Some(ReadSlot(self))
    }
}

/// A slot of [`ReadSlots`].
struct ReadSlot<'a>(&'a ReadSlots);

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        HELD.set(HELD.get() - 1);
        *self.0.count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// Chunks gathered for one parallel store: up to BATCH_BYTES of data (zero chunks from
/// holes hold no memory, so they only count towards a cap on their number).
#[derive(Default)]
struct Batch {
    chunks: Vec<Chunk>,
    bytes: usize,
}

impl Batch {
    /// Adds a chunk; returns the batch to store when it is full.
    fn push(&mut self, c: Chunk) -> Option<Vec<Chunk>> {
        if let Chunk::Data(d) = &c {
            self.bytes += d.len();
        }
        self.chunks.push(c);
        if self.bytes >= BATCH_BYTES || self.chunks.len() >= 4096 {
            self.bytes = 0;
            return Some(std::mem::take(&mut self.chunks));
        }
        None
    }
}

/// A file read with `pread` at its own offset, its holes found with SEEK_HOLE/SEEK_DATA
/// (which move only the descriptor's offset, never ours).
struct SparseFile<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for SparseFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Sparse for SparseFile<'_> {
    fn next_hole(&mut self, offset: u64) -> std::io::Result<Option<(u64, u64)>> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        let size = self.file.metadata()?.len();
        let seek = |off: u64, whence| -> std::io::Result<Option<u64>> {
            // SAFETY: lseek on a descriptor we own; no memory is passed.
            let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
            if r >= 0 {
                return Ok(Some(r as u64));
            }
            match std::io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
                e => Err(e),
            }
        };
        let mut at = offset;
        loop {
            let Some(start) = seek(at, libc::SEEK_HOLE)? else {
                return Ok(None);
            };
            if start >= size {
                return Ok(None); // the implicit hole at the end of every file
            }
            let end = seek(start, libc::SEEK_DATA)?.unwrap_or(size).min(size);
            if end > offset {
                return Ok(Some((start, end)));
            }
            at = end;
        }
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.offset += n;
        Ok(())
    }
}

enum ContentError {
    Read(std::io::Error),
    Repo(OpsError),
}

/// Opens for reading without updating the access time where the kernel allows it
/// (only the owner or root may), so a backup does not disturb atime-based tools.
fn open_noatime(path: &Path) -> std::io::Result<File> {
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::ReadSlots;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A thread holding a slot takes another without waiting (waiting would deadlock
    /// it), while a thread holding none waits until a slot is given back.
    #[test]
    fn read_slots_limit_other_threads_but_never_block_a_holder() {
        // A thread of its own that is not joined, so a deadlock fails the test
        // instead of hanging it.
        let slots = std::sync::Arc::new(ReadSlots::new(1));
        let (tx, rx) = std::sync::mpsc::channel();
        let held = std::sync::Arc::clone(&slots);
        std::thread::spawn(move || {
            let outer = held.acquire();
            let inner = held.acquire();
            tx.send(()).unwrap();
            drop(inner);
            drop(outer);
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a nested acquire must not wait for the holder's own slot");
        while *slots.count.lock().unwrap() != 0 {
            std::thread::yield_now();
        }

        let first = slots.acquire();
        let got = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (slots, got) = (&slots, &got);
            s.spawn(move || {
                let _second = slots.acquire();
                got.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !got.load(Ordering::SeqCst),
                "a second thread took a slot beyond the limit"
            );
            drop(first);
        });
        assert!(got.load(Ordering::SeqCst));
        assert!(ReadSlots::new(0).acquire().is_none(), "0 means no limit");
    }
}
