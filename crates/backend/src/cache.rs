//! A local cache of a remote repository's small, immutable files.
//!
//! `config`, `keys/`, `index/` and `snapshots/` are read from the remote once and kept
//! in a local directory (files mode 0600; they are as encrypted as on the remote).
//! Every name but `config` is the hash of the content, so a cached copy is served only
//! if it still hashes to its name; `config` only if it matches a fresh listing (SHA1
//! where the store keeps one, as B2 does; else the size), so a repository created anew
//! at the same location is never answered with the old one's config.
//! Listings always go to the remote, so new and deleted files are seen at once.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::{Backend, BackendError, ObjectInfo, WriteOptions};

/// Writes a file only its owner can read, via a temporary name and a rename, creating
/// its directories only its owner can enter (0700). For caches: a failure only costs a
/// later re-download. The temporary name is random and opened with `O_EXCL|O_NOFOLLOW`,
/// so another local user cannot plant a symlink there (a name from the process ID was
/// guessable and opened with truncation).
pub fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let fname = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 8];
    getrandom::getrandom(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(".{fname}.tmp-{}", hex::encode(suffix)));
    let r = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|_| fs::rename(&tmp, path));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    /// Which names are kept: the repository layout decides (`cairn_repo::cacheable`);
    /// this crate knows names, not what they hold.
    cacheable: fn(&str) -> bool,
}

fn hash_named_ok(name: &str, data: &[u8]) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.len() == 64 && blake3::hash(data).to_hex().as_str() == last
}

impl CachedBackend {
    pub fn new(
        inner: Arc<dyn Backend>,
        dir: PathBuf,
        cacheable: fn(&str) -> bool,
    ) -> CachedBackend {
        CachedBackend {
            inner,
            dir,
            cacheable,
        }
    }

    /// Where a name is cached; `None` for a name that is not a safe path (a name from a
    /// hostile listing is never joined onto the cache directory).
    fn path(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        crate::path_bytes(name)
            .ok()
            .map(|p| self.dir.join(std::ffi::OsStr::from_bytes(&p)))
    }

    fn store(&self, name: &str, data: &[u8]) {
        let Some(path) = self.path(name) else { return };
        if let Err(e) = write_private(&path, data) {
            tracing::debug!("cache: could not store {name}: {e}");
        }
    }

    fn cached(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.path(name)?;
        let data = fs::read(&path).ok()?;
        let valid = if name == "config" {
            match self.inner.stat(name) {
                Ok(ObjectInfo {
                    sha1: Some(sha1), ..
                }) => cairn_sha1::hex(&data) == sha1.to_ascii_lowercase(),
                Ok(o) => o.size == data.len() as u64,
                Err(_) => false,
            }
        } else {
            hash_named_ok(name, &data)
        };
        if valid {
            Some(data)
        } else {
            let _ = fs::remove_file(&path);
            None
        }
    }
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }
    fn exists(&self) -> Result<bool, BackendError> {
        self.inner.exists()
    }
    fn list_partial(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list_partial(prefix)
    }
    fn remove_partial(&self, name: &str) -> Result<(), BackendError> {
        self.inner.remove_partial(name)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix)
    }
    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        self.inner.stat(name)
    }
    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        crate::validate_name(name)?;
        if (self.cacheable)(name) {
            if let Some(d) = self.cached(name) {
                return Ok(d);
            }
            let d = self.inner.read(name)?;
            self.store(name, &d);
            return Ok(d);
        }
        self.inner.read(name)
    }
    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        self.inner.read_range(name, offset, length)
    }
    fn write(&self, name: &str, data: &[u8], opts: &WriteOptions) -> Result<(), BackendError> {
        self.inner.write(name, data, opts)?;
        if (self.cacheable)(name) {
            self.store(name, data);
        }
        Ok(())
    }
    fn write_parts(
        &self,
        name: &str,
        parts: &[&[u8]],
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        if (self.cacheable)(name) {
            return self.write(name, &parts.concat(), opts);
        }
        self.inner.write_parts(name, parts, opts)
    }
    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.inner.write_new(name, data)?;
        if (self.cacheable)(name) {
            self.store(name, data);
        }
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
        prefix: &str,
        chosen: &dyn Fn(&str) -> bool,
    ) -> Result<u64, BackendError> {
        self.inner.purge_hidden(prefix, chosen)
    }
    fn can_set_mtime(&self) -> bool {
        self.inner.can_set_mtime()
    }
    fn set_retention(
        &self,
        name: &str,
        retention: &crate::Retention,
    ) -> Result<bool, BackendError> {
        self.inner.set_retention(name, retention)
    }
    fn set_mtime(&self, name: &str, millis: i64, nanos: Option<i64>) -> Result<(), BackendError> {
        self.inner.set_mtime(name, millis, nanos)
    }
    fn hide(&self, name: &str) -> Result<bool, BackendError> {
        if let Some(path) = self.path(name) {
            let _ = fs::remove_file(path);
        }
        self.inner.hide(name)
    }
    fn copy_from(&self, src: &dyn Backend, from: &str, to: &str) -> Result<bool, BackendError> {
        self.inner.copy_from(src, from, to)
    }
    fn versions(&self, prefix: &str) -> Result<Option<Vec<crate::Version>>, BackendError> {
        self.inner.versions(prefix)
    }
    fn read_version(&self, v: &crate::Version) -> Result<Vec<u8>, BackendError> {
        self.inner.read_version(v)
    }
    fn restore_version(&self, v: &crate::Version) -> Result<(), BackendError> {
        if let Some(path) = self.path(&v.name) {
            let _ = fs::remove_file(path);
        }
        self.inner.restore_version(v)
    }
    fn transactions(&self) -> Option<crate::Transactions> {
        self.inner.transactions()
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        self.inner.as_any()
    }
    fn remove(&self, name: &str) -> Result<(), BackendError> {
        if let Some(path) = self.path(name) {
            let _ = fs::remove_file(path);
        }
        self.inner.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    fn snapshots_only(name: &str) -> bool {
        name.starts_with("snapshots/")
    }

    #[test]
    fn serves_valid_copies_and_refetches_damaged_ones() {
        let d = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(d.path().join("remote")));
        inner.create().unwrap();
        let data = b"snapshot bytes".to_vec();
        let name = format!("snapshots/{}", blake3::hash(&data).to_hex());
        inner.write(&name, &data, &WriteOptions::default()).unwrap();
        let c = CachedBackend::new(inner.clone(), d.path().join("cache"), snapshots_only);
        assert_eq!(c.read(&name).unwrap(), data);
        // Served from the cache even when the remote copy is gone...
        fs::remove_file(d.path().join("remote").join(&name)).unwrap();
        assert_eq!(c.read(&name).unwrap(), data);
        // ...but a damaged cache entry is dropped, never served.
        fs::write(d.path().join("cache").join(&name), b"damaged").unwrap();
        assert!(c.read(&name).is_err());
        crate::run_conformance(&CachedBackend::new(
            Arc::new(LocalBackend::new(d.path().join("r2"))),
            d.path().join("c2"),
            snapshots_only,
        ))
        .unwrap();
    }
}
