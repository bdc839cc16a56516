//! Records of verification, kept (sealed) in the repository so every machine that opens
//! it knows when its data was last proven readable.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::{from_json, to_json};
use crate::FormatError;

/// One `cairn drill`: what was restored and compared, and whether all of it matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecord {
    pub time: DateTime<FixedOffset>,
    pub hostname: String,
    /// The repository drilled (a path or `b2:bucket/prefix`).
    pub location: String,
    /// Full IDs (hex) of the snapshots drawn.
    pub snapshots: Vec<String>,
    pub files_checked: u64,
    pub bytes_checked: u64,
    pub packs_checked: u64,
    pub ok: bool,
    #[serde(default)]
    pub failures: Vec<String>,
    #[serde(default)]
    pub program_version: String,
}

impl DrillRecord {
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
    pub fn decode(b: &[u8]) -> Result<DrillRecord, FormatError> {
        from_json("drill record", b)
    }
}

/// When each pack was last read back whole and found intact, per location: location ->
/// pack ID (hex) -> Unix milliseconds (fine enough to order checks run back to back). Files are merged on reading (the latest time wins), so
/// concurrent writers lose nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedRecord {
    pub locations: BTreeMap<String, BTreeMap<String, i64>>,
}

impl VerifiedRecord {
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
    pub fn decode(b: &[u8]) -> Result<VerifiedRecord, FormatError> {
        from_json("verification record", b)
    }

    /// Takes in `other`, keeping the later time for each pack.
    pub fn merge(&mut self, other: VerifiedRecord) {
        for (loc, packs) in other.locations {
            let mine = self.locations.entry(loc).or_default();
            for (p, t) in packs {
                let e = mine.entry(p).or_insert(t);
                *e = (*e).max(t);
            }
        }
    }
}

/// Snapshots removed on purpose (`forget`, `tag`, `repair snapshots`), written before
/// the snapshot files are deleted, so a snapshot that vanishes without one was deleted
/// by someone else. Never compacted: 32 bytes per forgotten snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgottenRecord {
    pub time: DateTime<FixedOffset>,
    pub hostname: String,
    /// Full IDs (hex).
    pub snapshots: Vec<String>,
}

impl ForgottenRecord {
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
    pub fn decode(b: &[u8]) -> Result<ForgottenRecord, FormatError> {
        from_json("forgotten record", b)
    }
}
