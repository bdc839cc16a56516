use serde::{Deserialize, Serialize};

use crate::error::{from_json, to_json};
use crate::FormatError;

/// The newest repository format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "level")]
pub enum CompressionMode {
    Off,
    /// zstd level 3: about 400 MB/s per core, most of the gain of higher levels.
    Auto,
    /// zstd level 19.
    Max,
    Level(i32),
}

impl CompressionMode {
    pub fn zstd_level(self) -> Option<i32> {
        match self {
            CompressionMode::Off => None,
            CompressionMode::Auto => Some(3),
            CompressionMode::Max => Some(19),
            CompressionMode::Level(l) => Some(l.clamp(1, 22)),
        }
    }

    pub fn parse(s: &str) -> Result<CompressionMode, String> {
        match s {
            "off" => Ok(CompressionMode::Off),
            "auto" => Ok(CompressionMode::Auto),
            "max" => Ok(CompressionMode::Max),
            n => match n.parse::<i32>() {
                Ok(l) if (1..=22).contains(&l) => Ok(CompressionMode::Level(l)),
                _ => Err(format!(
                    "invalid compression {s:?}: expected auto, off, max or a level 1-22"
                )),
            },
        }
    }
}

/// Repository-wide settings; sealed under the master key at `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// Random, hex: tells repositories apart (locks, caches, ship destinations).
    pub id: String,
    pub chunker_min_size: u32,
    pub chunker_avg_size: u32,
    pub chunker_max_size: u32,
    pub compression: CompressionMode,
    pub pack_size_mib: u32,
}

impl Config {
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }
    pub fn decode(b: &[u8]) -> Result<Config, FormatError> {
        let c: Config = from_json("config", b)?;
        if c.version == 0 || c.version > FORMAT_VERSION {
            return Err(FormatError::Version {
                found: c.version,
                supported: FORMAT_VERSION,
            });
        }
        if c.pack_size_mib == 0 || c.pack_size_mib > 1024 {
            return Err(FormatError::invalid(
                "config",
                format!("pack size {} MiB", c.pack_size_mib),
            ));
        }
        Ok(c)
    }
}
