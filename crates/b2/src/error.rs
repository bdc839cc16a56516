use cairn_backend::{BackendError, ErrorKind};

/// A B2 reply that was not a success, or a transport failure.
#[derive(Debug, thiserror::Error)]
pub enum B2Error {
    #[error("B2 {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<u64>,
    },
    #[error("network error talking to B2: {0}")]
    Network(String),
    #[error("{0}")]
    Invalid(String),
}

impl B2Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            B2Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            B2Error::Api { code, .. } => code,
            _ => "",
        }
    }

    /// Worth another try after backing off.
    pub fn is_transient(&self) -> bool {
        match self {
            B2Error::Api { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            B2Error::Network(_) => true,
            B2Error::Invalid(_) => false,
        }
    }

    /// The token is no longer good: authorize again, then repeat.
    pub fn needs_reauth(&self) -> bool {
        matches!(self, B2Error::Api { status: 401, code, .. } if code == "expired_auth_token" || code == "bad_auth_token")
    }

    /// As a backend error about `object`, with the kind callers act on.
    pub fn into_backend(self, object: &str) -> BackendError {
        let kind = match &self {
            B2Error::Api { status: 404, .. } => ErrorKind::NotFound,
            B2Error::Api { code, .. }
                if code == "file_not_present" || code == "no_such_file" || code == "not_found" =>
            {
                ErrorKind::NotFound
            }
            B2Error::Api { status: 401, .. } => ErrorKind::Unauthorized,
            B2Error::Api { status: 403, .. } => ErrorKind::QuotaExceeded,
            B2Error::Api { status: 416, .. } => ErrorKind::Corrupt,
            e if e.is_transient() => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        let message = match (&self, kind) {
            (_, ErrorKind::QuotaExceeded) => {
                format!("{self} (a B2 cap was reached: raise it in the Backblaze account settings)")
            }
            (_, ErrorKind::Unauthorized) => {
                format!("{self} (check the application key and that it may access this bucket)")
            }
            _ => self.to_string(),
        };
        BackendError {
            kind,
            object: object.to_string(),
            message,
            source: None,
        }
    }
}
