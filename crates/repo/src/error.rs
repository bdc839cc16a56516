use cairn_backend::BackendError;
use cairn_format::FormatError;

/// Repository errors; the CLI maps the first four to the contract's exit codes.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Exit code 10.
    #[error("repository does not exist at {0}")]
    NoRepository(String),
    /// Exit code 11.
    #[error("repository is locked by {0}")]
    Locked(String),
    /// Exit code 12.
    #[error("wrong password: none of the {tried} key(s) in the repository fit")]
    WrongPassword { tried: usize },
    #[error("repository already exists at {0}")]
    AlreadyExists(String),
    #[error("{object} is corrupt: {reason}")]
    Corrupt { object: String, reason: String },
    #[error("blob {0} is not in the index")]
    BlobNotFound(String),
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    #[error("snapshot prefix {0:?} is ambiguous")]
    AmbiguousSnapshot(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// This command's lock is gone or went stale: another command may have deleted what
    /// it wrote, so it stops before writing an index or snapshot that could point at it.
    #[error("stopped before writing {what}: {why}; nothing this command wrote is referenced, run it again")]
    LockLost { what: String, why: String },
    /// `key remove` of the key this session opened with.
    #[error("key {0} is the one in use; remove it with another password, or change it with `key passwd`")]
    KeyInUse(String),
    #[error("no key {0}")]
    NoSuchKey(String),
    #[error("no key matches {0:?}")]
    KeyNotFound(String),
    #[error("key prefix {0:?} is ambiguous")]
    AmbiguousKey(String),
    /// Without a key the repository could never be opened again.
    #[error("refusing to remove the last key")]
    LastKey,
    /// A command that must delete, run with credentials that may not (an append-only
    /// key): refused before anything is changed.
    #[error("{command} must delete files, and {why}; nothing was changed. Run it with a key that may delete (see \"Offsite copies malware cannot destroy\" in docs/guide.md)")]
    CannotDelete { command: String, why: String },
    /// `init --lock-days` where files cannot be locked: refused before anything is
    /// written.
    #[error("cannot lock the repository's files: {0}; nothing was written")]
    LockRefused(String),
    /// This session's key was removed by another password's `key remove`.
    #[error("key {0} was removed meanwhile; open the repository again")]
    KeyRemoved(String),
    /// The format's 32-bit lengths bound a blob and a pack.
    #[error("{0} larger than 4 GiB")]
    TooLarge(&'static str),
    /// Sealing, key generation or the system's random source failed.
    #[error(transparent)]
    Crypto(#[from] cairn_crypto::CryptoError),
    /// A bug in cairn or a command used against its contract: not the data's fault.
    #[error("internal error: {0}")]
    Internal(&'static str),
    #[error("{0}")]
    Invalid(String),
}

impl RepoError {
    pub(crate) fn corrupt(object: impl Into<String>, reason: impl std::fmt::Display) -> RepoError {
        RepoError::Corrupt {
            object: object.into(),
            reason: reason.to_string(),
        }
    }

    pub fn format(object: impl Into<String>, e: FormatError) -> RepoError {
        RepoError::corrupt(object, e)
    }
}
