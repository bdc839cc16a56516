//! Trees: one JSON document per directory, nodes sorted by raw name bytes.
//!
//! Nodes keep everything `lstat` reports that a restore or a `diff` can use. Fields
//! that are empty or zero are omitted to keep trees small; readers treat a missing
//! field as its default.

use serde::{Deserialize, Serialize};

use crate::error::{from_json, to_json};
use crate::{BlobId, FormatError, RawBytes};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    File,
    Dir,
    Symlink,
    Fifo,
    Chardev,
    Blockdev,
    Socket,
}

impl NodeType {
    pub fn name(self) -> &'static str {
        match self {
            NodeType::File => "file",
            NodeType::Dir => "dir",
            NodeType::Symlink => "symlink",
            NodeType::Fifo => "fifo",
            NodeType::Chardev => "chardev",
            NodeType::Blockdev => "blockdev",
            NodeType::Socket => "socket",
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch; seconds may be negative (before 1970).
/// Encoded as a two-element array `[secs, nanos]`, exact for every value `stat` returns.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64, pub u32);

impl Timestamp {
    pub fn secs(&self) -> i64 {
        self.0
    }
    pub fn nanos(&self) -> u32 {
        self.1
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: RawBytes,
    pub value: RawBytes,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: RawBytes,
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// Permission bits and setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub mtime: Timestamp,
    #[serde(default)]
    pub atime: Timestamp,
    #[serde(default)]
    pub ctime: Timestamp,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inode: u64,
    /// Device holding the file (`st_dev`): detects hardlinks and filesystem boundaries.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device: u64,
    /// For character and block devices, the device number they stand for (`st_rdev`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub rdev: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub links: u64,
    /// Data blobs in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    #[serde(default, skip_serializing_if = "RawBytes::is_empty")]
    pub link_target: RawBytes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

impl Node {
    pub fn new(name: RawBytes, node_type: NodeType) -> Node {
        Node {
            name,
            node_type,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            device: 0,
            rdev: 0,
            size: 0,
            links: 0,
            content: Vec::new(),
            subtree: None,
            link_target: RawBytes::default(),
            xattrs: Vec::new(),
        }
    }

    /// A name is safe to create under a directory: not empty, not `.` or `..`, no `/`
    /// and no NUL. Restore refuses anything else, so a forged tree cannot escape the
    /// restore target.
    pub fn has_safe_name(&self) -> bool {
        let n = self.name.as_slice();
        !n.is_empty() && n != b"." && n != b".." && !n.contains(&b'/') && !n.contains(&0)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts nodes by name so equal directories encode to equal bytes (and deduplicate).
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }

    pub fn decode(b: &[u8]) -> Result<Tree, FormatError> {
        let t: Tree = from_json("tree", b)?;
        if t.nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(FormatError::invalid(
                "tree",
                "nodes not sorted or names repeated",
            ));
        }
        Ok(t)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_non_utf8_and_pre_epoch() {
        let mut n = Node::new(RawBytes(vec![0xff, b'a', b'\n']), NodeType::File);
        n.mtime = Timestamp(-86_400 * 365, 123_456_789);
        n.content = vec![BlobId([3; 32])];
        n.xattrs = vec![Xattr {
            name: "user.x".into(),
            value: RawBytes(vec![0, 1, 255]),
        }];
        let mut d = Node::new("dir".into(), NodeType::Dir);
        d.subtree = Some(BlobId([4; 32]));
        let mut t = Tree { nodes: vec![n, d] };
        t.sort();
        let back = Tree::decode(&t.encode()).unwrap();
        assert_eq!(back, t);
        assert!(back.find(b"dir").is_some());
    }

    #[test]
    fn unsorted_or_duplicate_rejected() {
        let t = Tree {
            nodes: vec![
                Node::new("b".into(), NodeType::File),
                Node::new("a".into(), NodeType::File),
            ],
        };
        assert!(Tree::decode(&t.encode()).is_err());
        let t = Tree {
            nodes: vec![
                Node::new("a".into(), NodeType::File),
                Node::new("a".into(), NodeType::File),
            ],
        };
        assert!(Tree::decode(&t.encode()).is_err());
    }

    #[test]
    fn unsafe_names() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0"] {
            assert!(!Node::new(RawBytes(bad.to_vec()), NodeType::File).has_safe_name());
        }
        assert!(Node::new("...".into(), NodeType::File).has_safe_name());
    }
}
