use std::fmt;
use std::str::FromStr;

use crate::FormatError;

pub const ID_LEN: usize = 32;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            pub fn from_slice(b: &[u8]) -> Result<Self, FormatError> {
                let arr: [u8; ID_LEN] = b
                    .try_into()
                    .map_err(|_| FormatError::invalid(stringify!($name), format!("length {}", b.len())))?;
                Ok($name(arr))
            }
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, as shown to users.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = FormatError;
            fn from_str(s: &str) -> Result<Self, FormatError> {
                let v = hex::decode(s).map_err(|e| FormatError::invalid(stringify!($name), e.to_string()))?;
                Self::from_slice(&v)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a blob's plaintext.
    BlobId
);
id_type!(
    /// BLAKE3 of a pack file's bytes; also its storage name.
    PackId
);
id_type!(
    /// BLAKE3 of a snapshot file's bytes; also its storage name.
    SnapshotId
);
id_type!(
    /// BLAKE3 of an index file's bytes; also its storage name.
    IndexId
);
id_type!(
    /// BLAKE3 of a key file's bytes; also its storage name.
    KeyId
);
id_type!(
    /// BLAKE3 of a lock file's bytes; also its storage name.
    LockId
);
id_type!(
    /// BLAKE3 of any whole repository file's stored bytes (index, snapshot, lock,
    /// record): its storage name. The kind-specific IDs convert to and from it.
    FileId
);

macro_rules! file_id_conversions {
    ($($name:ident),*) => {$(
        impl From<FileId> for $name {
            fn from(f: FileId) -> $name {
                $name(f.0)
            }
        }
        impl From<$name> for FileId {
            fn from(i: $name) -> FileId {
                FileId(i.0)
            }
        }
    )*};
}

file_id_conversions!(SnapshotId, IndexId, LockId, KeyId);
