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
}

impl OpsError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> OpsError {
        OpsError::Io { path: path.as_ref().display().to_string(), source }
    }
}
