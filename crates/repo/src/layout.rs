//! Where each kind of file lives in the backend.

use cairn_format::PackId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Key,
    Index,
    Snapshot,
    Lock,
    /// `drills/`: one record per `cairn drill`.
    Drill,
    /// `verified/`: when packs were last read back intact (rolling verification).
    Verified,
    Forgotten,
}

impl FileKind {
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Key => "keys/",
            FileKind::Index => "index/",
            FileKind::Snapshot => "snapshots/",
            FileKind::Lock => "locks/",
            FileKind::Drill => "drills/",
            FileKind::Verified => "verified/",
            FileKind::Forgotten => "forgotten/",
        }
    }

    /// Associated data bound into each file's seal, so one kind cannot pose as another.
    pub fn seal_purpose(self) -> &'static [u8] {
        match self {
            FileKind::Key => b"cairn v1 key",
            FileKind::Index => b"cairn v1 index",
            FileKind::Snapshot => b"cairn v1 snapshot",
            FileKind::Lock => b"cairn v1 lock",
            FileKind::Drill => b"cairn v1 drill",
            FileKind::Verified => b"cairn v1 verified",
            FileKind::Forgotten => b"cairn v1 forgotten",
        }
    }

    pub fn name(self, hex: &str) -> String {
        format!("{}{hex}", self.dir())
    }
}

pub const CONFIG: &str = "config";
pub const CONFIG_PURPOSE: &[u8] = b"cairn v1 config";
pub const PACK_HEADER_PURPOSE: &[u8] = b"cairn v1 pack header";
pub const DATA_DIR: &str = "data/";

/// `data/XX/<id>`: two hex digits of fan-out keep directories small on any filesystem.
pub fn pack_name(id: &PackId) -> String {
    let h = id.to_hex();
    format!("data/{}/{h}", &h[..2])
}

/// The hex id at the end of a storage name, if it is one.
pub fn id_from_name(name: &str) -> Option<&str> {
    let last = name.rsplit('/').next()?;
    (last.len() == 64 && last.bytes().all(|c| c.is_ascii_hexdigit())).then_some(last)
}

/// The pack ID of a `data/XX/<id>` name.
pub fn pack_id_from_name(name: &str) -> Option<PackId> {
    name.strip_prefix(DATA_DIR)?;
    id_from_name(name)?.parse().ok()
}
