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

/// Caches uid/gid -> name lookups, which hit NSS (files, LDAP) and would dominate the
/// cost of scanning many small files.
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl NameCache {
    pub fn user(&self, uid: u32) -> String {
        let mut m = self.users.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(uid).or_insert_with(|| sys::user_name(uid).unwrap_or_default()).clone()
    }
    pub fn group(&self, gid: u32) -> String {
        let mut m = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(gid).or_insert_with(|| sys::group_name(gid).unwrap_or_default()).clone()
    }
}

/// Builds a node from `lstat` data and the path's extended attributes. Content, subtree
/// and link target are filled in by the caller.
pub fn node_from_metadata(name: &[u8], path: &Path, meta: &Metadata, names: &NameCache) -> Node {
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
    n.xattrs = read_xattrs(path);
    n
}

/// Extended attributes of `path` itself (symlinks not followed); unsupported
/// filesystems simply have none.
pub fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else { return Vec::new() };
    let mut out: Vec<Xattr> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some(Xattr { name: RawBytes(name.as_bytes().to_vec()), value: RawBytes(value) })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn timespec(t: Timestamp) -> nix::sys::time::TimeSpec {
    nix::sys::time::TimeSpec::new(t.secs(), i64::from(t.nanos()))
}

/// Applies ownership (when running as root), permissions, extended attributes and
/// times, in that order: chown clears setuid bits and writing xattrs can touch ctime,
/// so times come last. Returns the first failure but attempts every step.
pub fn apply_metadata(path: &Path, node: &Node, is_root: bool) -> Result<(), std::io::Error> {
    use nix::fcntl::AtFlags;
    use nix::sys::stat::UtimensatFlags;
    let mut first_err: Option<std::io::Error> = None;
    let mut note = |r: Result<(), std::io::Error>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    if is_root {
        let uid = sys::uid_of(&node.user).filter(|_| !node.user.is_empty()).unwrap_or(node.uid);
        let gid = sys::gid_of(&node.group).filter(|_| !node.group.is_empty()).unwrap_or(node.gid);
        note(
            nix::unistd::fchownat(None, path, Some(uid.into()), Some(gid.into()), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(std::io::Error::from),
        );
    }
    if node.node_type != NodeType::Symlink {
        use std::os::unix::fs::PermissionsExt;
        note(std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777)));
    }
    for x in &node.xattrs {
        note(xattr::set(path, OsStr::from_bytes(x.name.as_slice()), x.value.as_slice()));
    }
    note(
        nix::sys::stat::utimensat(
            None,
            path,
            &timespec(node.atime),
            &timespec(node.mtime),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(std::io::Error::from),
    );
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
