use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::{from_json, to_json};
use crate::{BlobId, FormatError, SnapshotId};

/// What a backup did; stored in the snapshot so `snapshots` can show it later.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotSummary {
    pub backup_start: Option<DateTime<FixedOffset>>,
    pub backup_end: Option<DateTime<FixedOffset>>,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    pub data_added: u64,
    pub data_added_packed: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
    pub errors: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: DateTime<FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    pub tree: BlobId,
    pub paths: Vec<String>,
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub program_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
}

impl Snapshot {
    /// A snapshot with the required fields; the rest empty, to be filled by the caller.
    pub fn new(
        time: DateTime<FixedOffset>,
        tree: BlobId,
        paths: Vec<String>,
        hostname: String,
    ) -> Snapshot {
        Snapshot {
            time,
            parent: None,
            tree,
            paths,
            hostname,
            username: String::new(),
            uid: 0,
            gid: 0,
            tags: Vec::new(),
            program_version: String::new(),
            summary: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
    pub fn decode(b: &[u8]) -> Result<Snapshot, FormatError> {
        from_json("snapshot", b)
    }
}
