//! A dry run as a wrapper: reads go to the store, and nothing that would change it
//! reaches it. A command given `--dry-run` runs its real code over this, so no write
//! path, present or future, can forget to check a flag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{
    Backend, BackendError, ErrorKind, ObjectInfo, RangeSource, Transactions, WriteOptions,
};

/// Reads from `inner`; every write, removal, time change and hide succeeds without
/// touching it, and is counted.
pub struct DryRun {
    inner: Arc<dyn Backend>,
    writes: AtomicU64,
    bytes: AtomicU64,
    removals: AtomicU64,
}

impl DryRun {
    pub fn new(inner: Arc<dyn Backend>) -> DryRun {
        DryRun {
            inner,
            writes: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            removals: AtomicU64::new(0),
        }
    }

    /// Objects and bytes that would have been written, and objects removed.
    pub fn would(&self) -> (u64, u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.removals.load(Ordering::Relaxed),
        )
    }

    fn wrote(&self, name: &str, size: u64) -> Result<(), BackendError> {
        crate::validate_name(name)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }
}

impl Backend for DryRun {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn exists(&self) -> Result<bool, BackendError> {
        self.inner.exists()
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix)
    }

    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        self.inner.stat(name)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        self.inner.read(name)
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        self.inner.read_range(name, offset, length)
    }

    fn write(&self, name: &str, data: &[u8], _opts: &WriteOptions) -> Result<(), BackendError> {
        self.wrote(name, data.len() as u64)
    }

    fn write_parts(
        &self,
        name: &str,
        parts: &[&[u8]],
        _opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.wrote(name, parts.iter().map(|p| p.len() as u64).sum())
    }

    fn write_stream(
        &self,
        name: &str,
        size: u64,
        _source: &RangeSource<'_>,
        _opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.wrote(name, size)
    }

    /// Still refuses a name that is taken, as the real write would.
    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        match self.inner.stat(name) {
            Ok(_) => Err(BackendError::new(
                ErrorKind::AlreadyExists,
                name,
                "already exists",
            )),
            Err(e) if e.is_not_found() => self.wrote(name, data.len() as u64),
            Err(e) => Err(e),
        }
    }

    fn remove(&self, name: &str) -> Result<(), BackendError> {
        crate::validate_name(name)?;
        self.removals.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn encode_path(&self, path: &str) -> String {
        self.inner.encode_path(path)
    }

    fn decode_path(&self, name: &str) -> String {
        self.inner.decode_path(name)
    }

    crate::forward_store_properties!();

    fn delete_refused(&self) -> Option<String> {
        self.inner.delete_refused()
    }

    fn lock_refused(&self) -> Option<String> {
        self.inner.lock_refused()
    }

    fn purge_hidden(
        &self,
        _prefix: &str,
        _chosen: &dyn Fn(&str) -> bool,
    ) -> Result<u64, BackendError> {
        Ok(0)
    }

    fn can_set_mtime(&self) -> bool {
        self.inner.can_set_mtime()
    }

    fn set_retention(
        &self,
        name: &str,
        _retention: &crate::Retention,
    ) -> Result<bool, BackendError> {
        crate::validate_name(name)?;
        Ok(true)
    }

    fn set_mtime(&self, name: &str, _millis: i64, _nanos: Option<i64>) -> Result<(), BackendError> {
        crate::validate_name(name)
    }

    /// Counted as a removal; reported as hidden so nobody deletes instead.
    fn hide(&self, name: &str) -> Result<bool, BackendError> {
        self.remove(name)?;
        Ok(true)
    }

    /// Counted as a write; reported as done so nobody copies the bytes instead.
    fn copy_from(&self, src: &dyn Backend, from: &str, to: &str) -> Result<bool, BackendError> {
        let size = src.stat(from)?.size;
        self.wrote(to, size)?;
        Ok(true)
    }

    fn versions(&self, prefix: &str) -> Result<Option<Vec<crate::Version>>, BackendError> {
        self.inner.versions(prefix)
    }

    fn read_version(&self, v: &crate::Version) -> Result<Vec<u8>, BackendError> {
        self.inner.read_version(v)
    }

    /// Counted as a write.
    fn restore_version(&self, v: &crate::Version) -> Result<(), BackendError> {
        self.wrote(&v.name, v.size)
    }

    fn transactions(&self) -> Option<Transactions> {
        self.inner.transactions()
    }

    fn list_partial(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list_partial(prefix)
    }

    fn remove_partial(&self, name: &str) -> Result<(), BackendError> {
        crate::validate_name(name)?;
        self.removals.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    /// Every call that could change the store leaves it byte for byte and time for
    /// time as it was.
    #[test]
    fn nothing_reaches_the_store() {
        let d = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(d.path().join("r")));
        inner.create().unwrap();
        let wo = WriteOptions::default();
        inner.write("keep/a", b"original", &wo).unwrap();
        inner.write("keep/b", b"other", &wo).unwrap();
        let before = inner.list("").unwrap();

        let dry = DryRun::new(Arc::clone(&inner));
        dry.create().unwrap();
        dry.write("keep/a", b"changed", &wo).unwrap();
        dry.write("new/x", b"new", &wo).unwrap();
        dry.write_parts("new/y", &[b"p", b"q"], &wo).unwrap();
        let source = |_: u64, n: u64| Ok(vec![1u8; n as usize]);
        dry.write_stream("new/z", 10, &source, &wo).unwrap();
        dry.write_new("new/w", b"w").unwrap();
        assert_eq!(
            dry.write_new("keep/a", b"w").unwrap_err().kind,
            ErrorKind::AlreadyExists
        );
        dry.remove("keep/b").unwrap();
        assert!(dry.hide("keep/a").unwrap());
        dry.set_mtime("keep/a", 1, None).unwrap();
        assert!(dry.copy_from(inner.as_ref(), "keep/b", "new/c").unwrap());
        assert!(dry.write("../escape", b"x", &wo).is_err());

        assert_eq!(inner.list("").unwrap(), before);
        assert_eq!(inner.read("keep/a").unwrap(), b"original");
        assert_eq!(dry.read("keep/b").unwrap(), b"other");
        assert_eq!(dry.would(), (6, 7 + 3 + 2 + 10 + 1 + 5, 2));
    }
}
