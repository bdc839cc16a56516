use cairn_repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    /// The source of a ship is not a repository.
    #[error("{0} is not a repository (no config)")]
    NotARepository(String),
    /// A ship's destination does not exist and was not to be created.
    #[error("{0} does not exist (no such bucket or directory: a typo, or a drive not mounted?); nothing was shipped. Pass --create-bucket to create it")]
    NoDestination(String),
    /// Deletions a ship would make look like the wrong repository or a mistake.
    #[error("refusing to ship: {0}; nothing was written or deleted. Check with --dry-run, then pass --allow-deletes if that is what you want")]
    ShipDeletesRefused(String),
    /// `sync --delete` would empty the destination or remove most of it.
    #[error("refusing to sync with --delete: {0}; nothing was transferred or deleted. Check with --dry-run, then pass --allow-deletes if that is what you want")]
    SyncDeletesRefused(String),
    /// `--verify` after a ship found files missing or of the wrong size.
    #[error("verification failed: {missing} file(s) missing or of the wrong size at {location}, e.g. {example}")]
    ShipNotVerified {
        missing: usize,
        location: String,
        example: String,
    },
    /// A retention policy would remove every snapshot of a group: almost always a
    /// `--keep-tag` nobody has or a typo, so it is refused before anything is removed.
    #[error(
        "refusing to remove {} of group {group}: no --keep-* option keeps any of them (does every --keep-tag name a tag they have?); nothing was removed. Pass --unsafe-allow-remove-all if that is what you want",
        if *snapshots == 1 { "its only snapshot".to_string() } else { format!("all {snapshots} snapshots") }
    )]
    WouldRemoveAll { group: String, snapshots: usize },
    /// A tree entry whose name could escape its directory (`..`, `a/b`): the tree was
    /// forged or damaged, and nothing below it is trusted.
    #[error("{}an entry with an unsafe name {name}; refusing it", tree.as_ref().map(|t| format!("tree {t} holds ")).unwrap_or_default())]
    UnsafeName { tree: Option<String>, name: String },
    /// The repository is damaged in a way this command must not work around; `advice`
    /// says which command comes first.
    #[error("{problem}; run {advice} first")]
    NeedsRepair { problem: String, advice: String },
    /// The store is full; what the command did before is consistent, and `advice`
    /// says how to go on.
    #[error("{location} is full: {source}. {advice}")]
    NoSpace {
        location: String,
        advice: String,
        #[source]
        source: Box<OpsError>,
    },
    /// `--lock-days` to a destination that cannot lock files.
    #[error("cannot lock the files shipped: {0}; nothing was shipped")]
    LockRefused(String),
    /// The source of a sync does not exist (a typo must not empty the destination).
    #[error("the source {0} does not exist; nothing was transferred or deleted")]
    NoSource(String),
    #[error("path {0:?} not found in snapshot")]
    PathNotFound(String),
    /// A relative path that names no path, or several, in a snapshot (the message says which).
    #[error("{0}")]
    RelativePath(String),
    #[error("{0}")]
    Invalid(String),
    /// A copy's destination holds another repository: refused before anything is touched.
    #[error(
        "refusing to ship: {location} holds another repository{} (its config, SHA1 {fingerprint}, is not that of this repository {ours}); \
         nothing was written or deleted. Ship to an empty location, or remove that repository first",
        theirs.as_ref().map(|t| format!(" {t}")).unwrap_or_default()
    )]
    OtherRepository {
        location: String,
        ours: String,
        theirs: Option<String>,
        fingerprint: String,
    },
}

impl OpsError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> OpsError {
        OpsError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
