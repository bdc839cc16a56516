//! Between the filesystem and tree nodes: reading metadata into a [`Node`] and applying
//! a node's metadata to a restored file.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use cairn_format::{Node, NodeType, RawBytes, Timestamp, Xattr};
use cairn_repo::sys;

pub fn node_type(meta: &Metadata) -> NodeType {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    if ft.is_dir() {
        NodeType::Dir
    } else if ft.is_symlink() {
        NodeType::Symlink
    } else if ft.is_fifo() {
        NodeType::Fifo
    } else if ft.is_char_device() {
        NodeType::Chardev
    } else if ft.is_block_device() {
        NodeType::Blockdev
    } else if ft.is_socket() {
        NodeType::Socket
    } else {
        NodeType::File
    }
}

/// Caches uid/gid <-> name lookups, which hit NSS (files, LDAP) and would dominate the
/// cost of scanning or restoring many small files (uncached, a restore as root read
/// /etc/passwd and /etc/group for every file: ten syscalls and two parses each).
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
    uids: Mutex<HashMap<String, Option<u32>>>,
    gids: Mutex<HashMap<String, Option<u32>>>,
}

fn cached<K: std::hash::Hash + Eq + Clone, V: Clone>(
    m: &Mutex<HashMap<K, V>>,
    k: &K,
    look: impl FnOnce() -> V,
) -> V {
    let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
    m.entry(k.clone()).or_insert_with(look).clone()
}

impl NameCache {
    pub fn user(&self, uid: u32) -> String {
        cached(&self.users, &uid, || {
            sys::user_name(uid).unwrap_or_default()
        })
    }
    pub fn group(&self, gid: u32) -> String {
        cached(&self.groups, &gid, || {
            sys::group_name(gid).unwrap_or_default()
        })
    }
    /// The uid this system gives `name`, if any.
    pub fn uid(&self, name: &str) -> Option<u32> {
        cached(&self.uids, &name.to_owned(), || sys::uid_of(name))
    }
    pub fn gid(&self, name: &str) -> Option<u32> {
        cached(&self.gids, &name.to_owned(), || sys::gid_of(name))
    }
}

/// Builds a node from `lstat` data and the path's extended attributes. Content, subtree
/// and link target are filled in by the caller. `previous` is the same entry in the
/// parent snapshot: when its inode and ctime (to the nanosecond) are unchanged, so are
/// its extended attributes, since setting or removing one changes ctime, and they are
/// taken from it instead of being listed again (an unchanged re-backup of 50,000 files
/// made 50,000 llistxattr calls for nothing).
pub fn node_from_metadata(
    name: &[u8],
    path: &Path,
    meta: &Metadata,
    names: &NameCache,
    previous: Option<&Node>,
) -> Node {
    let mut n = Node::new(RawBytes(name.to_vec()), node_type(meta));
    n.mode = meta.mode() & 0o7777;
    n.uid = meta.uid();
    n.gid = meta.gid();
    n.user = names.user(n.uid);
    n.group = names.group(n.gid);
    n.mtime = Timestamp(meta.mtime(), meta.mtime_nsec() as u32);
    n.atime = Timestamp(meta.atime(), meta.atime_nsec() as u32);
    n.ctime = Timestamp(meta.ctime(), meta.ctime_nsec() as u32);
    n.inode = meta.ino();
    n.device = meta.dev();
    n.links = meta.nlink();
    if matches!(n.node_type, NodeType::Chardev | NodeType::Blockdev) {
        n.rdev = meta.rdev();
    }
    if n.node_type == NodeType::File {
        n.size = meta.len();
    }
    n.xattrs = match previous {
        Some(p)
            if p.node_type == n.node_type
                && p.inode == n.inode
                && p.device == n.device
                && p.ctime == n.ctime =>
        {
            p.xattrs.clone()
        }
        _ => read_xattrs(path),
    };
    n
}

/// Extended attributes of `path` itself (symlinks not followed); unsupported
/// filesystems simply have none.
pub fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some(Xattr {
                name: RawBytes(name.as_bytes().to_vec()),
                value: RawBytes(value),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn timespec(t: Timestamp) -> nix::sys::time::TimeSpec {
    nix::sys::time::TimeSpec::new(t.secs(), i64::from(t.nanos()))
}

/// Where [`apply_metadata`] writes: never a path looked up from the top, so nothing is
/// set through a symlink someone put in a parent's place.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// An open file or directory: a file still open from writing its content needs no
    /// lookups at all (setting metadata before closing it saved a third of the syscalls
    /// of restoring many small files).
    File(&'a std::fs::File),
    /// A name inside an open directory, not followed if it is a symlink: restore's
    /// symlinks, fifos and device nodes, which cannot be opened safely to set theirs.
    At(&'a std::os::fd::OwnedFd, &'a OsStr),
}

/// Ownership by name where the name resolves here, else by the recorded number.
fn set_owner(target: Target<'_>, node: &Node, names: &NameCache) -> Result<(), std::io::Error> {
    use nix::fcntl::AtFlags;
    use std::os::fd::AsRawFd;
    let uid = Some(
        names
            .uid(&node.user)
            .filter(|_| !node.user.is_empty())
            .unwrap_or(node.uid)
            .into(),
    );
    let gid = Some(
        names
            .gid(&node.group)
            .filter(|_| !node.group.is_empty())
            .unwrap_or(node.gid)
            .into(),
    );
    match target {
        Target::File(f) => nix::unistd::fchown(f.as_raw_fd(), uid, gid),
        Target::At(d, n) => nix::unistd::fchownat(
            Some(d.as_raw_fd()),
            n,
            uid,
            gid,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ),
    }
    .map_err(std::io::Error::from)
}

/// Applies ownership (when `owners` is given: running as root, names resolved through
/// it), permissions, extended attributes and times, in that order: chown clears setuid
/// bits and writing xattrs can touch ctime, so times come last. Returns the first
/// failure but attempts every step.
pub fn apply_metadata(
    target: Target<'_>,
    node: &Node,
    owners: Option<&NameCache>,
) -> Result<(), std::io::Error> {
    use nix::sys::stat::UtimensatFlags;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    let mut first_err: Option<std::io::Error> = None;
    let mut note = |r: Result<(), std::io::Error>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    if let Some(names) = owners {
        note(set_owner(target, node, names));
    }
    if node.node_type != NodeType::Symlink {
        let mode = std::fs::Permissions::from_mode(node.mode & 0o7777);
        note(match target {
            Target::File(f) => f.set_permissions(mode),
            Target::At(d, n) => chmod_at(d, n, node.mode & 0o7777),
        });
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(x.name.as_slice());
        note(match target {
            Target::File(f) => xattr::FileExt::set_xattr(f, name, x.value.as_slice()),
            // lsetxattr through the directory's descriptor: the last name is not followed.
            Target::At(d, n) => xattr::set(
                Path::new(&format!("/proc/self/fd/{}", d.as_raw_fd())).join(n),
                name,
                x.value.as_slice(),
            ),
        });
    }
    let (atime, mtime) = (timespec(node.atime), timespec(node.mtime));
    note(
        match target {
            Target::File(f) => nix::sys::stat::futimens(f.as_raw_fd(), &atime, &mtime),
            Target::At(d, n) => nix::sys::stat::utimensat(
                Some(d.as_raw_fd()),
                n,
                &atime,
                &mtime,
                UtimensatFlags::NoFollowSymlink,
            ),
        }
        .map_err(std::io::Error::from),
    );
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// chmod of `name` in `dir` without following a symlink. Kernels before 6.6 cannot do
/// that directly for every file type; then the name is checked not to be a symlink
/// first (restore only asks this of fifos and device nodes it just made).
fn chmod_at(dir: &std::os::fd::OwnedFd, name: &OsStr, mode: u32) -> Result<(), std::io::Error> {
    use nix::sys::stat::{fchmodat, FchmodatFlags, Mode, SFlag};
    use std::os::fd::AsRawFd;
    let mode = Mode::from_bits_truncate(mode as libc::mode_t);
    match fchmodat(
        Some(dir.as_raw_fd()),
        name,
        mode,
        FchmodatFlags::NoFollowSymlink,
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::ENOSYS) => {
            let st = nix::sys::stat::fstatat(
                Some(dir.as_raw_fd()),
                name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK {
                return Ok(());
            }
            Ok(fchmodat(
                Some(dir.as_raw_fd()),
                name,
                mode,
                FchmodatFlags::FollowSymlink,
            )?)
        }
        Err(e) => Err(e.into()),
    }
}
