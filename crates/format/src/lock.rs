use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::{from_json, to_json};
use crate::FormatError;

/// A lock held by one process; sealed under the master key in `locks/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Last refresh; a lock not refreshed for 30 minutes is stale.
    pub time: DateTime<FixedOffset>,
    pub exclusive: bool,
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    pub pid: u32,
    #[serde(default)]
    pub command: String,
    /// When the command took the lock (`time` moves with each refresh). Absent in locks
    /// of builds before format 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<FixedOffset>>,
    /// What the holder does: `read`, `add`, `maintenance` (forget, prune) or
    /// `exclusive`. Absent in locks of builds before format 3: then `exclusive` decides,
    /// and a shared lock counts as `read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
    pub fn decode(b: &[u8]) -> Result<Lock, FormatError> {
        from_json("lock", b)
    }
}
