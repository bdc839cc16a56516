#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("truncated {what}: needed {needed} bytes, found {found}")]
    Truncated {
        what: &'static str,
        needed: usize,
        found: usize,
    },
    #[error("bad magic in {0}")]
    BadMagic(&'static str),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("malformed {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("decompression failed: {0}")]
    Decompress(#[source] std::io::Error),
    #[error("unsupported format version {found} (this build reads up to {supported})")]
    Version { found: u32, supported: u32 },
}

impl FormatError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> FormatError {
        FormatError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}

/// Parses JSON for the named kind of document.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    b: &[u8],
) -> Result<T, FormatError> {
    serde_json::from_slice(b).map_err(|source| FormatError::Json { what, source })
}

/// Serialising our own types to JSON cannot fail (no maps with non-string keys).
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}
