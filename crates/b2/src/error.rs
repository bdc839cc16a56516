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
    /// Bytes sent do not hash to the SHA1 announced for them (the source changed or is
    /// damaged): nothing was stored.
    #[error("SHA1 mismatch: expected {want}, got {got}")]
    Sha1Mismatch { want: String, got: String },
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

    /// The server's Retry-After, in seconds, if it sent one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            B2Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Worth another try after backing off.
    pub fn is_transient(&self) -> bool {
        match self {
            B2Error::Api { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            B2Error::Network(_) => true,
            B2Error::Invalid(_) | B2Error::Sha1Mismatch { .. } => false,
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
            // 403 is also B2's answer to a key that may not do this (access_denied);
            // only the cap codes mean a cap.
            B2Error::Api {
                status: 403, code, ..
            } if code.ends_with("cap_exceeded") => ErrorKind::QuotaExceeded,
            B2Error::Api { status: 403, .. } => ErrorKind::PermissionDenied,
            B2Error::Api { status: 416, .. } | B2Error::Sha1Mismatch { .. } => ErrorKind::Corrupt,
            e if e.is_transient() => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        let message = match (&self, kind) {
            (_, ErrorKind::QuotaExceeded) => {
                format!("{self} (a B2 cap was reached: raise it in the Backblaze account settings)")
            }
            (_, ErrorKind::PermissionDenied) => {
                format!("{self} (the application key may not do this: check its capabilities and its bucket and prefix restrictions)")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> B2Error {
        B2Error::Api {
            status,
            code: code.into(),
            message: "m".into(),
            retry_after: None,
        }
    }

    /// What each B2 answer means to the rest of cairn: the kind decides retrying,
    /// exit codes and the advice printed.
    #[test]
    fn b2_errors_map_to_backend_kinds() {
        let table = [
            (api(400, "bad_request"), ErrorKind::Other),
            (api(400, "file_not_present"), ErrorKind::NotFound),
            (api(400, "no_such_file"), ErrorKind::NotFound),
            (api(404, "not_found"), ErrorKind::NotFound),
            (api(401, "unauthorized"), ErrorKind::Unauthorized),
            (api(401, "bad_auth_token"), ErrorKind::Unauthorized),
            (api(403, "cap_exceeded"), ErrorKind::QuotaExceeded),
            (api(403, "storage_cap_exceeded"), ErrorKind::QuotaExceeded),
            (
                api(403, "transaction_cap_exceeded"),
                ErrorKind::QuotaExceeded,
            ),
            (api(403, "download_cap_exceeded"), ErrorKind::QuotaExceeded),
            (api(403, "access_denied"), ErrorKind::PermissionDenied),
            (api(416, "range_not_satisfiable"), ErrorKind::Corrupt),
            (api(408, "request_timeout"), ErrorKind::Transient),
            (api(429, "too_many_requests"), ErrorKind::Transient),
            (api(500, "internal_error"), ErrorKind::Transient),
            (api(503, "service_unavailable"), ErrorKind::Transient),
            (B2Error::Network("reset".into()), ErrorKind::Transient),
            (B2Error::Invalid("bad json".into()), ErrorKind::Other),
        ];
        for (e, want) in table {
            let shown = e.to_string();
            assert_eq!(e.into_backend("x").kind, want, "{shown}");
        }
        let denied = api(403, "access_denied").into_backend("x").message;
        assert!(
            denied.contains("may not do this") && !denied.contains("cap was reached"),
            "{denied}"
        );
    }
}
