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
        f.debug_struct("KeyFile")
            .field("created", &self.created)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// The most memory a key file may ask Argon2id for: 1 GiB.
pub const MAX_KDF_MEMORY_KIB: u32 = 1024 * 1024;
/// The most memory times passes: 2 GiB-passes, 8 times cairn's default (32 MiB x 8),
/// so trying any one key file costs at most a few seconds.
pub const MAX_KDF_WORK_KIB: u64 = 2 * 1024 * 1024;

impl KeyFile {
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
    pub fn decode(b: &[u8]) -> Result<KeyFile, FormatError> {
        let k: KeyFile = from_json("key file", b)?;
        if k.kdf != "argon2id" {
            return Err(FormatError::invalid(
                "key file",
                format!("unknown kdf {:?}", k.kdf),
            ));
        }
        // Refuse parameters that would let a planted key file exhaust memory or time:
        // trying a key with 1 GiB and 40 passes made every `snapshots` take 45 s at
        // 1 GiB. A real key needs far less than these caps (cairn writes 32 MiB x 8).
        let work = u64::from(k.memory_kib) * u64::from(k.iterations);
        if k.memory_kib > MAX_KDF_MEMORY_KIB
            || k.iterations == 0
            || work > MAX_KDF_WORK_KIB
            || k.parallelism == 0
            || k.parallelism > 16
        {
            return Err(FormatError::invalid(
                "key file",
                format!(
                    "Argon2id parameters out of range (m = {} KiB, t = {}, p = {})",
                    k.memory_kib, k.iterations, k.parallelism
                ),
            ));
        }
        if k.salt.len() < 32 {
            return Err(FormatError::invalid(
                "key file",
                "salt shorter than 16 bytes",
            ));
        }
        Ok(k)
    }
}
