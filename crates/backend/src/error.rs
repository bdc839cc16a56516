use std::fmt;

/// What went wrong, in the terms callers act on: retry, report missing, stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    Unauthorized,
    QuotaExceeded,
    NoSpace,
    /// Worth retrying: timeouts, resets, 5xx, throttling.
    Transient,
    /// The object is there but not what was asked for (short read, bad checksum).
    Corrupt,
    InvalidName,
    /// [`crate::Backend::write_new`] found the name taken.
    AlreadyExists,
    /// The object is under retention (Object Lock): deleting it is refused until then.
    Locked,
    Other,
}

#[derive(Debug)]
pub struct BackendError {
    pub kind: ErrorKind,
    /// The object (or location) at fault.
    pub object: String,
    pub message: String,
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    pub fn new(
        kind: ErrorKind,
        object: impl Into<String>,
        message: impl Into<String>,
    ) -> BackendError {
        BackendError {
            kind,
            object: object.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Classifies an I/O error on `object`.
    pub fn io(object: impl Into<String>, e: std::io::Error) -> BackendError {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::PermissionDenied | K::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
            K::StorageFull | K::QuotaExceeded => ErrorKind::NoSpace,
            K::Interrupted | K::TimedOut | K::WouldBlock => ErrorKind::Transient,
            K::UnexpectedEof => ErrorKind::Corrupt,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            _ => ErrorKind::Other,
        };
        BackendError {
            kind,
            object: object.into(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
