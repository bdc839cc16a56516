//! The emulator's state: buckets, file versions, unfinished large files. Metadata is
//! one JSON document rewritten atomically after each change (test-sized workloads);
//! contents are files under `blobs/` and `parts/`, streamed in and out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bucket {
    pub id: String,
    pub name: String,
    pub bucket_type: String,
    /// Object Lock: only a bucket created with it may hold retention on its files.
    #[serde(default)]
    pub file_lock_enabled: bool,
    /// Settings kept as given and shown back: bucketInfo, corsRules, lifecycleRules,
    /// defaultRetention, defaultServerSideEncryption.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Bumped by every update (`ifRevisionMatch`).
    #[serde(default = "first_revision")]
    pub revision: u64,
}

fn first_revision() -> u64 {
    1
}

/// Object Lock retention of one file version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Retention {
    /// `governance` (shortened or removed with bypassGovernance) or `compliance`
    /// (only extended).
    pub mode: String,
    /// Milliseconds since the epoch.
    pub until: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Upload,
    Hide,
}

/// One file version (an upload or a hide marker).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    pub seq: u64,
    pub bucket_id: String,
    pub name: String,
    pub action: Action,
    pub size: u64,
    /// 40 hex, `none` for large files, empty for hide markers.
    pub sha1: String,
    pub content_type: String,
    pub info: BTreeMap<String, String>,
    pub upload_timestamp: i64,
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Object Lock legal hold: no delete while on, whatever the retention.
    #[serde(default)]
    pub legal_hold: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Part {
    pub size: u64,
    pub sha1: String,
    pub upload_timestamp: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LargeFile {
    pub id: String,
    pub seq: u64,
    pub bucket_id: String,
    pub name: String,
    pub content_type: String,
    pub info: BTreeMap<String, String>,
    pub upload_timestamp: i64,
    pub parts: BTreeMap<u32, Part>,
    #[serde(default)]
    pub retention: Option<Retention>,
    #[serde(default)]
    pub legal_hold: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub next_seq: u64,
    pub buckets: Vec<Bucket>,
    /// Keyed by (bucket id, name, u64::MAX - seq): name order, newest version first.
    #[serde(with = "versions_as_list")]
    pub versions: BTreeMap<(String, String, u64), Version>,
    pub large: BTreeMap<String, LargeFile>,
}

mod versions_as_list {
    use super::Version;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    type Map = BTreeMap<(String, String, u64), Version>;

    pub fn serialize<S: Serializer>(m: &Map, s: S) -> Result<S::Ok, S::Error> {
        m.values().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        let v: Vec<Version> = Vec::deserialize(d)?;
        Ok(v.into_iter()
            .map(|v| ((v.bucket_id.clone(), v.name.clone(), u64::MAX - v.seq), v))
            .collect())
    }
}

impl State {
    pub fn key(v: &Version) -> (String, String, u64) {
        (v.bucket_id.clone(), v.name.clone(), u64::MAX - v.seq)
    }

    pub fn next_id(&mut self, bucket_id: &str) -> (String, u64) {
        self.next_seq += 1;
        let seq = self.next_seq;
        (format!("4_z{bucket_id}_f{seq:016x}"), seq)
    }

    pub fn bucket_by_name(&self, name: &str) -> Option<&Bucket> {
        self.buckets.iter().find(|b| b.name == name)
    }

    pub fn bucket_by_id(&self, id: &str) -> Option<&Bucket> {
        self.buckets.iter().find(|b| b.id == id)
    }

    pub fn version_by_id(&self, id: &str) -> Option<&Version> {
        self.versions.values().find(|v| v.id == id)
    }

    /// The newest version of a name, if any.
    pub fn newest(&self, bucket_id: &str, name: &str) -> Option<&Version> {
        self.versions
            .range(
                (bucket_id.to_string(), name.to_string(), 0)
                    ..=(bucket_id.to_string(), name.to_string(), u64::MAX),
            )
            .next()
            .map(|(_, v)| v)
    }
}

/// Paths of the on-disk store.
#[derive(Clone, Debug)]
pub struct Disk {
    pub root: PathBuf,
}

impl Disk {
    pub fn new(root: &Path) -> std::io::Result<Disk> {
        std::fs::create_dir_all(root.join("blobs"))?;
        std::fs::create_dir_all(root.join("parts"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Disk {
            root: root.to_path_buf(),
        })
    }

    pub fn blob(&self, file_id: &str) -> PathBuf {
        self.root.join("blobs").join(file_id)
    }

    pub fn part_dir(&self, file_id: &str) -> PathBuf {
        self.root.join("parts").join(file_id)
    }

    pub fn tmp(&self) -> PathBuf {
        let mut b = [0u8; 8];
        rand::Rng::fill(&mut rand::thread_rng(), &mut b);
        self.root.join("tmp").join(hex::encode(b))
    }

    pub fn load(&self) -> std::io::Result<State> {
        match std::fs::read(self.root.join("state.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, s: &State) -> std::io::Result<()> {
        let tmp = self.tmp();
        std::fs::write(&tmp, serde_json::to_vec(s).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, self.root.join("state.json"))
    }
}
