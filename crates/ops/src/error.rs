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
