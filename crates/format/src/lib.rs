//! cairn's on-disk types and their byte encodings; no I/O and no cryptography.
//!
//! Design decisions (the full format is in docs/format.md):
//! - Binary encodings where volume matters (pack headers, index files: millions of
//!   entries, fixed 46-byte records), JSON where humans and forward compatibility matter
//!   (trees, snapshots, config, key files, locks). JSON readers ignore unknown fields so
//!   newer writers can add fields without breaking older readers.
//! - Every decoder takes untrusted bytes and returns an error, never panics, and checks
//!   counts against the bytes actually present before allocating.
//! - One id newtype per kind, so a snapshot id cannot be passed where a blob id belongs.

mod bytes;
mod config;
mod error;
mod frame;
mod id;
mod index;
mod keyfile;
mod lock;
mod pack;
mod record;
mod snapshot;
mod tree;

pub use bytes::RawBytes;
pub use config::{
    CompressionMode, Config, LockSettings, RetentionMode, FORMAT_VERSION, FORMAT_VERSION_UNLOCKED,
    MAX_LOCK_DAYS,
};
pub use error::FormatError;
pub use frame::{frame, unframe, MAX_FRAME_LEN};
pub use id::{BlobId, FileId, IndexId, KeyId, LockId, PackId, SnapshotId, ID_LEN};
pub use index::{visit as visit_index, IndexFile, IndexPack, IndexVisitor, MarkedPack};
pub use keyfile::KeyFile;
pub use lock::Lock;
pub use pack::{decode_header, encode_header, BlobType, PackEntry, PACK_ENTRY_LEN};
pub use record::{DrillRecord, ForgottenRecord, VerifiedRecord};
pub use snapshot::{Snapshot, SnapshotSummary};
pub use tree::{Node, NodeType, Timestamp, Tree, Xattr};
