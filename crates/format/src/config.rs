use serde::{Deserialize, Serialize};

use crate::error::{from_json, to_json};
use crate::FormatError;

/// The newest repository format this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

/// The format a repository without a lock period is written in: version 1 builds read
/// it. Version 2 adds only [`Config::lock`], so a build that would store unlocked files
/// (or delete) in a locked repository refuses it instead.
pub const FORMAT_VERSION_UNLOCKED: u32 = 1;

/// Object Lock mode, as the config records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    Governance,
    Compliance,
}

/// `init --lock-days N --lock-mode M`: every file the repository stores is locked for
/// `days` from when it is written, and kept locked while it is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSettings {
    pub days: u32,
    pub mode: RetentionMode,
}

/// Longest lock period accepted: 10 years, far past any backup plan, short of
/// arithmetic trouble.
pub const MAX_LOCK_DAYS: u32 = 3650;

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
    /// Object Lock for every stored file (format 2); absent in format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockSettings>,
}

impl Config {
    /// The format version a config with `lock` is written in.
    pub fn version_for(lock: Option<LockSettings>) -> u32 {
        match lock {
            Some(_) => FORMAT_VERSION,
            None => FORMAT_VERSION_UNLOCKED,
        }
    }

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
        if let Some(l) = c.lock {
            if c.version < 2 || l.days == 0 || l.days > MAX_LOCK_DAYS {
                return Err(FormatError::invalid(
                    "config",
                    format!("lock of {} days in format {}", l.days, c.version),
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: u32, lock: Option<LockSettings>) -> Config {
        Config {
            version,
            id: "00".repeat(16),
            chunker_min_size: 1,
            chunker_avg_size: 2,
            chunker_max_size: 4,
            compression: CompressionMode::Auto,
            pack_size_mib: 16,
            lock,
        }
    }

    /// A config without a lock is byte for byte what version 1 wrote; a lock needs
    /// version 2, and a sane number of days.
    #[test]
    fn the_lock_is_version_2_only() {
        let plain = config(1, None);
        let text = String::from_utf8(plain.encode()).unwrap();
        assert!(!text.contains("lock"), "{text}");
        assert_eq!(Config::decode(text.as_bytes()).unwrap(), plain);
        let lock = LockSettings {
            days: 30,
            mode: RetentionMode::Compliance,
        };
        let locked = config(Config::version_for(Some(lock)), Some(lock));
        let text = String::from_utf8(locked.encode()).unwrap();
        assert!(
            text.contains(r#""lock":{"days":30,"mode":"compliance"}"#),
            "{text}"
        );
        assert_eq!(Config::decode(text.as_bytes()).unwrap(), locked);
        assert!(Config::decode(&config(1, Some(lock)).encode()).is_err());
        for days in [0, MAX_LOCK_DAYS + 1] {
            let bad = config(2, Some(LockSettings { days, ..lock }));
            assert!(Config::decode(&bad.encode()).is_err());
        }
        assert!(Config::decode(&config(3, None).encode()).is_err());
    }
}
