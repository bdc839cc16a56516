//! Every snapshot of a repository as a read-only FUSE filesystem, laid out as restic
//! users know it: `snapshots/<time>/`, `snapshots/latest`, `ids/<short id>/`,
//! `hosts/<host>/<time>/`, `tags/<tag>/<time>/`, each holding the snapshot's tree from
//! `/` down.
//!
//! Design decisions:
//! - Nothing is loaded up front: a directory's tree is loaded the first time it is
//!   looked into, so `ls` of one directory of a huge snapshot costs one tree.
//! - Each path gets its own inode (Linux refuses directories reachable under two
//!   names), except files hardlinked within one snapshot, which share one, so link
//!   counts and link structure look as they did on the source.
//! - A read fetches only the blobs covering the requested range, through a cache
//!   bounded in bytes; the blob after the last one read is fetched ahead on another
//!   thread, so a sequential reader rarely waits for decryption.
//! - The snapshot list is read again when a top-level directory is listed or looked
//!   into, at most every [`REFRESH`]: new backups appear without remounting.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry,
    ReplyXattr, Request,
};

use cairn_format::{BlobId, Node, NodeType, Timestamp};
use cairn_repo::{Repository, SnapshotRef};

/// How often listing a top-level directory may re-read the snapshot list.
pub const REFRESH: Duration = Duration::from_secs(3);
/// Decoded blobs kept for reads.
const CACHE_BYTES: usize = 64 << 20;
/// Attributes of snapshot content never change; virtual directories may.
const TTL_CONTENT: Duration = Duration::from_secs(3600);
const TTL_VIRTUAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount needs /dev/fuse (the fuse kernel module), and this machine has none")]
    NoFuseDevice,
    #[error("mount needs fusermount3 or fusermount on PATH (Debian package fuse3)")]
    NoFusermount,
    #[error("mountpoint {0}: {1}")]
    Mountpoint(String, String),
    #[error("mounting at {0}: {1}")]
    Mount(String, std::io::Error),
    #[error(transparent)]
    Repo(#[from] cairn_repo::RepoError),
}

#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// Let users other than the one mounting see the files (needs `user_allow_other`
    /// in /etc/fuse.conf unless root).
    pub allow_other: bool,
    /// Leave permission checks to the kernel using the stored modes and owners
    /// (restic's default too); off, anyone who can reach the mountpoint reads all.
    pub default_permissions: bool,
}

/// Fails with one clear error when this machine cannot mount FUSE filesystems.
pub fn check_prerequisites() -> Result<(), MountError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuseDevice);
    }
    let on_path = |bin: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
    };
    if !on_path("fusermount3") && !on_path("fusermount") {
        return Err(MountError::NoFusermount);
    }
    Ok(())
}

/// A mounted repository; dropping it unmounts.
pub struct Mounted {
    session: fuser::BackgroundSession,
    mountpoint: std::path::PathBuf,
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the filesystem went away on its own (`fusermount -u`, `umount`).
    pub fn is_finished(&self) -> bool {
        self.session.guard.is_finished()
    }
}

/// Mounts `repo` (index loaded) at `mountpoint` and serves it on a background thread.
pub fn mount(
    repo: Arc<Repository>,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<Mounted, MountError> {
    check_prerequisites()?;
    let shown = mountpoint.display().to_string();
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(MountError::Mountpoint(shown, "not a directory".into())),
        Err(e) => return Err(MountError::Mountpoint(shown, e.to_string())),
    }
    let mut options = vec![
        MountOption::RO,
        MountOption::FSName("cairn".into()),
        MountOption::Subtype("cairn".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.allow_other {
        options.push(MountOption::AllowOther);
    }
    if opts.default_permissions {
        options.push(MountOption::DefaultPermissions);
    }
    let fs = Fs::new(repo)?;
    let session =
        fuser::spawn_mount2(fs, mountpoint, &options).map_err(|e| MountError::Mount(shown, e))?;
    let mountpoint = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    Ok(Mounted {
        session,
        mountpoint,
    })
}

/// Whether `path` is a mount point now (per /proc/self/mounts, where spaces and other
/// awkward bytes are octal escapes).
pub fn is_mounted(path: &Path) -> bool {
    let want = path
        .to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split(' ').nth(1) == Some(want.as_str()))
    })
}

/// What an inode stands for.
enum Kind {
    Root,
    /// `snapshots/`, `ids/`, `hosts/`, `tags/`, `hosts/<host>/`, `tags/<tag>/`.
    Listing,
    /// `snapshots/latest`, pointing at the newest snapshot's directory name.
    Latest(Vec<u8>),
    /// A snapshot's root directory (the tree of `/`).
    SnapshotRoot {
        tree: BlobId,
        time: SystemTime,
    },
    /// A node of a snapshot's tree.
    Node(Arc<Node>),
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Listing {
    Snapshots,
    Ids,
    Hosts,
    Tags,
    Host(String),
    Tag(String),
}

struct Inode {
    kind: Kind,
    /// Children by name, once loaded.
    children: Option<Vec<(OsString, u64)>>,
    /// The snapshot root this inode lies under (its own number for a root); hardlinks
    /// are shared per snapshot root.
    root: u64,
    /// For files: the start offset of each blob, and the size at the end.
    offsets: Option<Arc<Vec<u64>>>,
}

/// Blobs decoded for reads, evicted oldest first beyond CACHE_BYTES.
#[derive(Default)]
struct BlobCache {
    blobs: HashMap<BlobId, Arc<Vec<u8>>>,
    order: VecDeque<BlobId>,
    bytes: usize,
}

impl BlobCache {
    fn get(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.blobs.get(id).cloned()
    }

    fn put(&mut self, id: BlobId, data: Arc<Vec<u8>>) {
        if self.blobs.contains_key(&id) {
            return;
        }
        self.bytes += data.len();
        self.blobs.insert(id, data);
        self.order.push_back(id);
        while self.bytes > CACHE_BYTES && self.order.len() > 1 {
            if let Some(old) = self.order.pop_front() {
                if let Some(d) = self.blobs.remove(&old) {
                    self.bytes -= d.len();
                }
            }
        }
    }
}

struct Fs {
    repo: Arc<Repository>,
    inodes: Vec<Inode>,
    /// Stable inodes for virtual entries and snapshot roots: (parent, name) -> inode.
    named: HashMap<(u64, OsString), u64>,
    /// Hardlinked files: (snapshot root inode, device, inode on the source) -> inode.
    links: HashMap<(u64, u64, u64), u64>,
    snapshots: Vec<SnapshotRef>,
    refreshed: Option<Instant>,
    cache: Arc<Mutex<BlobCache>>,
    prefetching: Arc<AtomicUsize>,
    uid: u32,
    gid: u32,
    mounted_at: SystemTime,
}

/// The SystemTime that fuser turns into the kernel's (seconds, nanoseconds) = `t`.
/// Before 1970 fuser sends (-whole seconds before the epoch, their nanoseconds) as
/// they are, so a stored (-2000000000 s, 999999999 ns) must be handed over as that
/// many seconds and nanoseconds *before* the epoch, not as the instant it denotes.
fn to_system_time(t: Timestamp) -> SystemTime {
    if t.0 >= 0 {
        UNIX_EPOCH + Duration::new(t.0 as u64, t.1)
    } else {
        UNIX_EPOCH - Duration::new(t.0.unsigned_abs(), t.1)
    }
}

fn file_type(t: NodeType) -> FileType {
    match t {
        NodeType::Dir => FileType::Directory,
        NodeType::Symlink => FileType::Symlink,
        NodeType::Fifo => FileType::NamedPipe,
        NodeType::Chardev => FileType::CharDevice,
        NodeType::Blockdev => FileType::BlockDevice,
        NodeType::Socket => FileType::Socket,
        NodeType::File => FileType::RegularFile,
    }
}

/// The directory name of a snapshot: its time as restic shows it.
fn time_name(s: &SnapshotRef) -> String {
    s.snapshot.time.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

impl Fs {
    fn new(repo: Arc<Repository>) -> Result<Fs, MountError> {
        let mut fs = Fs {
            repo,
            inodes: Vec::new(),
            named: HashMap::new(),
            links: HashMap::new(),
            snapshots: Vec::new(),
            refreshed: None,
            cache: Arc::default(),
            prefetching: Arc::default(),
            uid: nix_uid(),
            gid: nix_gid(),
            mounted_at: SystemTime::now(),
        };
        // Inode 0 is unused; 1 is the root (FUSE_ROOT_ID).
        fs.inodes.push(Inode {
            kind: Kind::Root,
            children: Some(Vec::new()),
            root: 0,
            offsets: None,
        });
        fs.inodes.push(Inode {
            kind: Kind::Root,
            children: None,
            root: 0,
            offsets: None,
        });
        fs.refresh(true)?;
        Ok(fs)
    }

    fn add(&mut self, kind: Kind, root: u64) -> u64 {
        self.inodes.push(Inode {
            kind,
            children: None,
            root,
            offsets: None,
        });
        (self.inodes.len() - 1) as u64
    }

    /// The inode of a virtual entry or snapshot root `name` under `parent`, made once.
    fn named(&mut self, parent: u64, name: &str, make: impl FnOnce() -> Kind) -> u64 {
        let key = (parent, OsString::from(name));
        if let Some(&ino) = self.named.get(&key) {
            return ino;
        }
        let ino = self.add(make(), 0);
        self.named.insert(key, ino);
        ino
    }

    /// Re-reads the snapshot list (at most every REFRESH unless `force`) and rebuilds
    /// the children of every virtual directory. Inodes of entries that stay keep their
    /// numbers.
    fn refresh(&mut self, force: bool) -> Result<(), MountError> {
        if !force && self.refreshed.is_some_and(|t| t.elapsed() < REFRESH) {
            return Ok(());
        }
        let snaps = self.repo.list_snapshots()?;
        let ids = |l: &[SnapshotRef]| l.iter().map(|s| s.id).collect::<Vec<_>>();
        if self.refreshed.is_some() && ids(&snaps) != ids(&self.snapshots) {
            // New snapshots refer to blobs in index files written since the mount.
            self.repo.load_index()?;
        }
        self.snapshots = snaps;
        self.refreshed = Some(Instant::now());
        let snaps = self.snapshots.clone();
        let mut top = Vec::new();
        for (name, listing) in [
            ("snapshots", Listing::Snapshots),
            ("ids", Listing::Ids),
            ("hosts", Listing::Hosts),
            ("tags", Listing::Tags),
        ] {
            let ino = self.named(1, name, || Kind::Listing);
            top.push((OsString::from(name), ino));
            let children = self.listing_children(ino, &listing, &snaps);
            self.inodes[ino as usize].children = Some(children);
        }
        self.inodes[1].children = Some(top);
        Ok(())
    }

    fn snapshot_root(&mut self, parent: u64, name: &str, s: &SnapshotRef) -> u64 {
        let time = SystemTime::from(s.snapshot.time);
        let tree = s.snapshot.tree;
        let ino = self.named(parent, &format!("{name}\0{}", s.id.to_hex()), || {
            Kind::SnapshotRoot { tree, time }
        });
        self.inodes[ino as usize].root = ino;
        ino
    }

    /// Snapshots by time name, duplicates told apart by a suffix.
    fn by_time(&mut self, parent: u64, snaps: &[&SnapshotRef]) -> Vec<(OsString, u64)> {
        let mut out = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for s in snaps {
            let base = time_name(s);
            let n = seen.entry(base.clone()).or_default();
            let name = if *n == 0 { base } else { format!("{base}-{n}") };
            *n += 1;
            let ino = self.snapshot_root(parent, &name, s);
            out.push((OsString::from(name), ino));
        }
        out
    }

    fn listing_children(
        &mut self,
        ino: u64,
        listing: &Listing,
        snaps: &[SnapshotRef],
    ) -> Vec<(OsString, u64)> {
        match listing {
            Listing::Snapshots => {
                let all: Vec<&SnapshotRef> = snaps.iter().collect();
                let mut out = self.by_time(ino, &all);
                if let Some((newest, _)) = out.last().cloned() {
                    let target = newest.into_vec();
                    let latest = self.named(ino, "latest", || Kind::Latest(target.clone()));
                    self.inodes[latest as usize].kind = Kind::Latest(target);
                    out.push((OsString::from("latest"), latest));
                }
                out
            }
            Listing::Ids => snaps
                .iter()
                .map(|s| {
                    let name = s.id.short();
                    (OsString::from(&name), self.snapshot_root(ino, &name, s))
                })
                .collect(),
            Listing::Hosts | Listing::Tags => {
                let mut names: Vec<String> = match listing {
                    Listing::Hosts => snaps.iter().map(|s| s.snapshot.hostname.clone()).collect(),
                    _ => snaps.iter().flat_map(|s| s.snapshot.tags.clone()).collect(),
                };
                names.sort();
                names.dedup();
                names
                    .into_iter()
                    .filter(|n| !n.is_empty() && !n.contains('/'))
                    .map(|n| {
                        let sub = if matches!(listing, Listing::Hosts) {
                            Listing::Host(n.clone())
                        } else {
                            Listing::Tag(n.clone())
                        };
                        let child = self.named(ino, &n, || Kind::Listing);
                        let grand = self.listing_children(child, &sub, snaps);
                        self.inodes[child as usize].children = Some(grand);
                        (OsString::from(n), child)
                    })
                    .collect()
            }
            Listing::Host(h) => {
                let mine: Vec<&SnapshotRef> =
                    snaps.iter().filter(|s| &s.snapshot.hostname == h).collect();
                self.by_time(ino, &mine)
            }
            Listing::Tag(t) => {
                let mine: Vec<&SnapshotRef> = snaps
                    .iter()
                    .filter(|s| s.snapshot.tags.contains(t))
                    .collect();
                self.by_time(ino, &mine)
            }
        }
    }

    /// The children of a directory inode, loading its tree the first time.
    fn children(&mut self, ino: u64) -> Result<Vec<(OsString, u64)>, i32> {
        let i = self.inodes.get(ino as usize).ok_or(libc::ENOENT)?;
        let top_level = matches!(i.kind, Kind::Root | Kind::Listing);
        if top_level {
            if let Err(e) = self.refresh(false) {
                tracing::warn!("re-reading the snapshot list: {e}");
            }
        }
        let i = &self.inodes[ino as usize];
        if let Some(c) = &i.children {
            return Ok(c.clone());
        }
        let (tree, root) = match &i.kind {
            Kind::SnapshotRoot { tree, .. } => (*tree, i.root),
            Kind::Node(n) if n.node_type == NodeType::Dir => match n.subtree {
                Some(t) => (t, i.root),
                None => return Ok(Vec::new()),
            },
            Kind::Node(_) | Kind::Latest(_) => return Err(libc::ENOTDIR),
            Kind::Root | Kind::Listing => return Ok(Vec::new()),
        };
        let tree = self.repo.load_tree(&tree).map_err(|e| {
            tracing::warn!("{e}");
            libc::EIO
        })?;
        let mut out = Vec::with_capacity(tree.nodes.len());
        for node in tree.nodes {
            let name = OsString::from_vec(node.name.0.clone());
            let hardlink = (node.node_type == NodeType::File && node.links > 1).then_some((
                root,
                node.device,
                node.inode,
            ));
            let child = match hardlink.and_then(|k| self.links.get(&k).copied()) {
                Some(ino) => ino,
                None => {
                    let ino = self.add(Kind::Node(Arc::new(node)), root);
                    if let Some(k) = hardlink {
                        self.links.insert(k, ino);
                    }
                    ino
                }
            };
            out.push((name, child));
        }
        self.inodes[ino as usize].children = Some(out.clone());
        Ok(out)
    }

    fn attr(&self, ino: u64) -> Option<(FileAttr, Duration)> {
        let i = self.inodes.get(ino as usize)?;
        let dir = |time: SystemTime| FileAttr {
            ino,
            size: 0,
            blocks: 0,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        Some(match &i.kind {
            Kind::Root | Kind::Listing => {
                let newest = self
                    .snapshots
                    .last()
                    .map_or(self.mounted_at, |s| SystemTime::from(s.snapshot.time));
                (dir(newest), TTL_VIRTUAL)
            }
            Kind::Latest(target) => {
                let newest = self
                    .snapshots
                    .last()
                    .map_or(self.mounted_at, |s| SystemTime::from(s.snapshot.time));
                (
                    FileAttr {
                        kind: FileType::Symlink,
                        perm: 0o777,
                        nlink: 1,
                        size: target.len() as u64,
                        ..dir(newest)
                    },
                    TTL_VIRTUAL,
                )
            }
            Kind::SnapshotRoot { time, .. } => (dir(*time), TTL_CONTENT),
            Kind::Node(n) => {
                let size = match n.node_type {
                    NodeType::File => n.size,
                    NodeType::Symlink => n.link_target.0.len() as u64,
                    _ => 0,
                };
                let nlink = match n.node_type {
                    NodeType::Dir => 2,
                    _ => n.links.clamp(1, u64::from(u32::MAX)) as u32,
                };
                (
                    FileAttr {
                        ino,
                        size,
                        blocks: size.div_ceil(512),
                        atime: to_system_time(n.atime),
                        mtime: to_system_time(n.mtime),
                        ctime: to_system_time(n.ctime),
                        crtime: to_system_time(n.mtime),
                        kind: file_type(n.node_type),
                        perm: (n.mode & 0o7777) as u16,
                        nlink,
                        uid: n.uid,
                        gid: n.gid,
                        rdev: n.rdev as u32,
                        blksize: 4096,
                        flags: 0,
                    },
                    TTL_CONTENT,
                )
            }
        })
    }

    fn node(&self, ino: u64) -> Option<&Arc<Node>> {
        match &self.inodes.get(ino as usize)?.kind {
            Kind::Node(n) => Some(n),
            _ => None,
        }
    }

    /// Start offsets of the file's blobs, with its size at the end.
    fn offsets(&mut self, ino: u64) -> Result<Arc<Vec<u64>>, i32> {
        if let Some(o) = &self.inodes[ino as usize].offsets {
            return Ok(Arc::clone(o));
        }
        let node = self.node(ino).ok_or(libc::EISDIR)?.clone();
        let mut offsets = Vec::with_capacity(node.content.len() + 1);
        let mut at = 0u64;
        for id in &node.content {
            offsets.push(at);
            let len = self
                .repo
                .index()
                .get(id)
                .map(|b| u64::from(b.entry.raw_length))
                .ok_or_else(|| {
                    tracing::warn!(
                        "blob {} of {} is not in the index",
                        id.short(),
                        String::from_utf8_lossy(&node.name.0)
                    );
                    libc::EIO
                })?;
            at += len;
        }
        offsets.push(at);
        let o = Arc::new(offsets);
        self.inodes[ino as usize].offsets = Some(Arc::clone(&o));
        Ok(o)
    }

    fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>, i32> {
        if let Some(b) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(b);
        }
        let data = Arc::new(self.repo.load_blob(id).map_err(|e| {
            tracing::warn!("{e}");
            libc::EIO
        })?);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(*id, Arc::clone(&data));
        Ok(data)
    }

    /// Fetches `id` into the cache on another thread (at most two at a time).
    fn prefetch(&self, id: BlobId) {
        if self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .is_some()
        {
            return;
        }
        if self.prefetching.fetch_add(1, Ordering::SeqCst) >= 2 {
            self.prefetching.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let (repo, cache, busy) = (
            Arc::clone(&self.repo),
            Arc::clone(&self.cache),
            Arc::clone(&self.prefetching),
        );
        std::thread::spawn(move || {
            if let Ok(data) = repo.load_blob(&id) {
                cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(id, Arc::new(data));
            }
            busy.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn read_range(&mut self, ino: u64, offset: u64, size: u64) -> Result<Vec<u8>, i32> {
        let offsets = self.offsets(ino)?;
        let node = self.node(ino).ok_or(libc::EISDIR)?.clone();
        let total = *offsets.last().unwrap_or(&0);
        let end = offset.saturating_add(size).min(total);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        if offset >= end {
            return Ok(out);
        }
        // The blob holding `offset`: the last one starting at or before it.
        let mut i = offsets.partition_point(|&s| s <= offset) - 1;
        let mut pos = offset;
        while pos < end && i < node.content.len() {
            let data = self.blob(&node.content[i])?;
            let start = offsets[i];
            let from = (pos - start) as usize;
            let to = ((end - start) as usize).min(data.len());
            if from >= to {
                return Err(libc::EIO);
            }
            out.extend_from_slice(&data[from..to]);
            pos = start + to as u64;
            i += 1;
        }
        if let Some(next) = node.content.get(i) {
            self.prefetch(*next);
        }
        Ok(out)
    }
}

fn nix_uid() -> u32 {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    unsafe { libc::getuid() }
}

fn nix_gid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::getgid() }
}

impl Filesystem for Fs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let children = match self.children(parent) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        match children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, ino)| self.attr(*ino))
        {
            Some((attr, ttl)) => reply.entry(&ttl, &attr, 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some((attr, ttl)) => reply.attr(&ttl, &attr),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.inodes.get(ino as usize).map(|i| &i.kind) {
            Some(Kind::Latest(t)) => reply.data(t),
            Some(Kind::Node(n)) if n.node_type == NodeType::Symlink => reply.data(&n.link_target.0),
            _ => reply.error(libc::EINVAL),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        match self.read_range(ino, offset.max(0) as u64, u64::from(size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let children = match self.children(ino) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let mut entries = vec![
            (OsString::from("."), ino, FileType::Directory),
            (OsString::from(".."), ino, FileType::Directory),
        ];
        for (name, child) in children {
            let kind = self
                .attr(child)
                .map_or(FileType::RegularFile, |(a, _)| a.kind);
            entries.push((name, child, kind));
        }
        for (i, (name, child, kind)) in entries.into_iter().enumerate().skip(offset.max(0) as usize)
        {
            if reply.add(child, (i + 1) as i64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        let Some(node) = self.node(ino) else {
            return reply.error(libc::ENODATA);
        };
        match node.xattrs.iter().find(|x| x.name.0 == name.as_bytes()) {
            None => reply.error(libc::ENODATA),
            Some(x) if size == 0 => reply.size(x.value.0.len() as u32),
            Some(x) if x.value.0.len() > size as usize => reply.error(libc::ERANGE),
            Some(x) => reply.data(&x.value.0),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let mut list = Vec::new();
        if let Some(node) = self.node(ino) {
            for x in &node.xattrs {
                list.extend_from_slice(&x.name.0);
                list.push(0);
            }
        }
        if size == 0 {
            reply.size(list.len() as u32);
        } else if list.len() > size as usize {
            reply.error(libc::ERANGE);
        } else {
            reply.data(&list);
        }
    }
}
