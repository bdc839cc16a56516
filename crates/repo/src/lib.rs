//! The cairn repository: everything between "bytes in a backend" and "trees and
//! snapshots": keys, config, locks, the in-memory index, packing, and loading and
//! saving of blobs and files.
//!
//! Design decisions:
//! - Every repository file but `config` is named by the BLAKE3 hash of its stored bytes;
//!   loads verify that name, so storage corruption is caught before decryption.
//! - Order of writes is packs, then index, then snapshot: an interruption at any moment
//!   leaves at worst packs no index mentions (harmless, reclaimed by prune), never a
//!   snapshot pointing at missing data.
//! - Blob loads verify the blob ID after decryption, so a valid blob moved to another
//!   blob's place is detected.

mod codec;
mod error;
mod index;
mod keys;
mod layout;
mod lock;
mod packer;
mod read_ahead;
mod repository;
pub mod session;
pub mod sys;
mod uploader;

pub use codec::encode_blob;
pub use error::RepoError;
pub use index::{Index, IndexPart, IndexedBlob};
pub use keys::{KeyInfo, KDF_ENV};
pub use layout::{
    cacheable, canonical_id, id_from_name, pack_id_from_name, pack_name, FileKind, CONFIG,
    DATA_DIR, LOCK_DIR,
};
pub use lock::{is_stale, release_held_locks, LockGuard, LockKind, LockTiming};
pub use packer::read_pack_header;
pub use packer::Packer;
pub use repository::{
    lock_period, pack_matches_name, read_pack_verified, InitOptions, LockExtension, OpenOptions,
    Repository, SaveStats, SnapshotRef,
};

/// A lock whose holder panicked is taken as it is: every lock here guards state that
/// is consistent between statements, and the panic itself is reported.
pub(crate) fn unpoison<T>(p: std::sync::PoisonError<T>) -> T {
    p.into_inner()
}
