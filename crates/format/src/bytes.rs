//! Raw bytes that are usually text: file names, symlink targets, xattrs.
//!
//! Unix names are bytes, not strings. In JSON they are written as a plain string when
//! they are valid UTF-8 (readable, and the common case), and as `{"hex": "..."}`
//! otherwise, so a name that is not UTF-8 survives a round trip exactly.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RawBytes(pub Vec<u8>);

impl RawBytes {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Lossy text for messages only; never used to rebuild a path.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl From<&[u8]> for RawBytes {
    fn from(b: &[u8]) -> Self {
        RawBytes(b.to_vec())
    }
}

impl From<&str> for RawBytes {
    fn from(s: &str) -> Self {
        RawBytes(s.as_bytes().to_vec())
    }
}

impl std::fmt::Debug for RawBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Hex { hex: String },
}

impl Serialize for RawBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => Repr::Text(t.to_owned()).serialize(s),
            Err(_) => Repr::Hex {
                hex: hex::encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(RawBytes(t.into_bytes())),
            Repr::Hex { hex } => hex::decode(hex)
                .map(RawBytes)
                .map_err(serde::de::Error::custom),
        }
    }
}
