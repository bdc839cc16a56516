//! The inode table: what each inode stands for, the virtual directories (`snapshots/`,
//! `ids/`, `hosts/`, `tags/`), and a snapshot's tree loaded one directory at a time.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType};

use cairn_format::{BlobId, Node, NodeType, Timestamp};
use cairn_repo::{Repository, SnapshotRef};

use crate::content::BlobCache;
use crate::{MountError, REFRESH, TTL_CONTENT, TTL_VIRTUAL};

/// What an inode stands for.
pub(crate) enum Kind {
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
pub(crate) enum Listing {
    Snapshots,
    Ids,
    Hosts,
    Tags,
    Host(String),
    Tag(String),
}

pub(crate) struct Inode {
    pub(crate) kind: Kind,
    /// Children by name, once loaded.
    pub(crate) children: Option<Vec<(OsString, u64)>>,
    /// The snapshot root this inode lies under (its own number for a root); hardlinks
    /// are shared per snapshot root.
    pub(crate) root: u64,
    /// For files: the start offset of each blob, and the size at the end.
    pub(crate) offsets: Option<Arc<Vec<u64>>>,
}

pub(crate) struct Fs {
    pub(crate) repo: Arc<Repository>,
    pub(crate) inodes: Vec<Inode>,
    /// Stable inodes for virtual entries and snapshot roots: (parent, name) -> inode.
    pub(crate) named: HashMap<(u64, OsString), u64>,
    /// Hardlinked files: (snapshot root inode, device, inode on the source) -> inode.
    pub(crate) links: HashMap<(u64, u64, u64), u64>,
    pub(crate) snapshots: Vec<SnapshotRef>,
    pub(crate) refreshed: Option<Instant>,
    pub(crate) cache: Arc<Mutex<BlobCache>>,
    pub(crate) prefetching: Arc<AtomicUsize>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mounted_at: SystemTime,
    /// Only the snapshots this accepts are shown.
    pub(crate) only: Option<crate::SnapshotFilter>,
}

/// The SystemTime that fuser turns into the kernel's (seconds, nanoseconds) = `t`.
/// Before 1970 fuser sends (-whole seconds before the epoch, their nanoseconds) as
/// they are, so a stored (-2000000000 s, 999999999 ns) must be handed over as that
/// many seconds and nanoseconds *before* the epoch, not as the instant it denotes.
pub(crate) fn to_system_time(t: Timestamp) -> SystemTime {
    if t.0 >= 0 {
        UNIX_EPOCH + Duration::new(t.0 as u64, t.1)
    } else {
        UNIX_EPOCH - Duration::new(t.0.unsigned_abs(), t.1)
    }
}

pub(crate) fn file_type(t: NodeType) -> FileType {
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
pub(crate) fn time_name(s: &SnapshotRef) -> String {
    s.snapshot.time.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

impl Fs {
    pub(crate) fn new(
        repo: Arc<Repository>,
        only: Option<crate::SnapshotFilter>,
    ) -> Result<Fs, MountError> {
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
            only,
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

    pub(crate) fn add(&mut self, kind: Kind, root: u64) -> u64 {
        self.inodes.push(Inode {
            kind,
            children: None,
            root,
            offsets: None,
        });
        (self.inodes.len() - 1) as u64
    }

    /// The inode of a virtual entry or snapshot root `name` under `parent`, made once.
    pub(crate) fn named(&mut self, parent: u64, name: &str, make: impl FnOnce() -> Kind) -> u64 {
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
    pub(crate) fn refresh(&mut self, force: bool) -> Result<(), MountError> {
        if !force && self.refreshed.is_some_and(|t| t.elapsed() < REFRESH) {
            return Ok(());
        }
        let mut snaps = self.repo.list_snapshots()?;
        if let Some(only) = &self.only {
            snaps.retain(|s| only(s));
        }
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

    pub(crate) fn snapshot_root(&mut self, parent: u64, name: &str, s: &SnapshotRef) -> u64 {
        let time = SystemTime::from(s.snapshot.time);
        let tree = s.snapshot.tree;
        let ino = self.named(parent, &format!("{name}\0{}", s.id.to_hex()), || {
            Kind::SnapshotRoot { tree, time }
        });
        self.inodes[ino as usize].root = ino;
        ino
    }

    /// Snapshots by time name, duplicates told apart by a suffix.
    pub(crate) fn by_time(&mut self, parent: u64, snaps: &[&SnapshotRef]) -> Vec<(OsString, u64)> {
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

    pub(crate) fn listing_children(
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
    pub(crate) fn children(&mut self, ino: u64) -> Result<Vec<(OsString, u64)>, i32> {
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

    pub(crate) fn attr(&self, ino: u64) -> Option<(FileAttr, Duration)> {
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

    pub(crate) fn node(&self, ino: u64) -> Option<&Arc<Node>> {
        match &self.inodes.get(ino as usize)?.kind {
            Kind::Node(n) => Some(n),
            _ => None,
        }
    }
}

pub(crate) fn nix_uid() -> u32 {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    unsafe { libc::getuid() }
}

pub(crate) fn nix_gid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::getgid() }
}
