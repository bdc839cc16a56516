use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::{from_json, to_json};
use crate::FormatError;

/// A password's key file: the Argon2id parameters and salt in the clear (they are
/// needed before any key exists), and the master key sealed under the derived key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: DateTime<FixedOffset>,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    pub kdf: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hex-encoded 16-byte random salt.
    pub salt: String,
    /// Hex-encoded sealed master key.
    pub data: String,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("created", &self.created).field("hostname", &self.hostname).finish_non_exhaustive()
    }
}

impl KeyFile {
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
    pub fn decode(b: &[u8]) -> Result<KeyFile, FormatError> {
        let k: KeyFile = from_json("key file", b)?;
        if k.kdf != "argon2id" {
            return Err(FormatError::invalid("key file", format!("unknown kdf {:?}", k.kdf)));
        }
        // Refuse parameters that would let a planted key file exhaust memory or time.
        if k.memory_kib > 4 * 1024 * 1024 || k.iterations > 100 || k.parallelism == 0 || k.parallelism > 64 {
            return Err(FormatError::invalid("key file", "Argon2id parameters out of range"));
        }
        Ok(k)
    }
}
