//! A repository in a local directory (USB SSD, NAS mount).
//!
//! Writes go to a hidden temporary file in the target directory, are fsync'd, renamed
//! over the final name, and the directory is fsync'd; a crash leaves either no object
//! or the whole object, plus at most a `.tmp-` file that listings skip.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{check_sha1, Backend, BackendError, ErrorKind, ObjectInfo, RangeSource, WriteOptions};

const TMP_MARKER: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    /// Files 0600 and directories 0700 (a repository: only its owner should even see
    /// the key files and sizes); otherwise the umask decides (a folder `sync` writes).
    private: bool,
    /// Shared by clones.
    open_files: Arc<OpenFiles>,
}

/// Files recently opened by `read_range`, kept open: restore, check and mount read many
/// blobs from each pack, and opening the file for every blob cost a path walk and three
/// syscalls per blob (restoring 50,000 small files opened packs 50,000 times). Objects
/// do not change under a name; this backend's own writes and removals drop the handle
/// of the name they touch.
#[derive(Debug, Default)]
struct OpenFiles(Mutex<std::collections::VecDeque<(String, Arc<File>, u64)>>);

/// Handles kept: enough for the packs a few reader threads are working through.
const KEEP_OPEN: usize = 16;

impl OpenFiles {
    fn get(&self, name: &str) -> Option<(Arc<File>, u64)> {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = q.iter().position(|(n, _, _)| n == name)?;
        let hit = q.remove(i)?;
        let out = (hit.1.clone(), hit.2);
        q.push_front(hit);
        Some(out)
    }

    fn put(&self, name: &str, f: Arc<File>, size: u64) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.retain(|(n, _, _)| n != name);
        q.push_front((name.to_owned(), f, size));
        q.truncate(KEEP_OPEN);
    }

    fn forget(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(n, _, _)| n != name);
    }
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend {
            root: root.into(),
            private: false,
            open_files: Arc::default(),
        }
    }

    /// The same backend, creating what it writes readable by the owner only.
    pub fn private(mut self) -> LocalBackend {
        self.private = true;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf, BackendError> {
        use std::os::unix::ffi::OsStrExt;
        Ok(self
            .root
            .join(std::ffi::OsStr::from_bytes(&crate::path_bytes(name)?)))
    }

    fn err(&self, name: &str, e: std::io::Error) -> BackendError {
        BackendError::io(self.root.join(name).display().to_string(), e)
    }

    /// Creates the directories between the root and `dir`, never the root itself, so a
    /// missing repository (an unmounted drive) is an error, not a new empty repository.
    fn ensure_dir(&self, dir: &Path) -> Result<(), BackendError> {
        if dir.is_dir() {
            return Ok(());
        }
        if !self.root.is_dir() {
            return Err(BackendError::new(
                ErrorKind::NotFound,
                self.root.display().to_string(),
                "repository directory does not exist",
            ));
        }
        let rel = dir.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let mut cur = self.root.clone();
        for comp in rel.components() {
            let parent = cur.clone();
            cur.push(comp);
            let made = if self.private {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new().mode(0o700).create(&cur)
            } else {
                fs::create_dir(&cur)
            };
            match made {
                Ok(()) => sync_dir(&parent)
                    .map_err(|e| BackendError::io(parent.display().to_string(), e))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(BackendError::io(cur.display().to_string(), e)),
            }
        }
        Ok(())
    }

    /// Sets an object's modification time, in nanoseconds (what `sync` does when only the
    /// time differs).
    fn set_mtime_nanos(&self, name: &str, mtime_nanos: i64) -> Result<(), BackendError> {
        let p = self.path(name)?;
        File::open(&p)
            .and_then(|f| f.set_modified(time_from_nanos(mtime_nanos)))
            .map_err(|e| self.err(name, e))
    }

    /// Opens a stored object for reading: a regular file only, never through a symlink
    /// (`O_NOFOLLOW`) and never blocking on a fifo (`O_NONBLOCK`), so a pack replaced by
    /// a link to /dev/zero or by a pipe fails at once with a clear error instead of
    /// reading forever. Returns the file and its size.
    fn open_regular(&self, name: &str) -> Result<(File, u64), BackendError> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.path(name)?;
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&p)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => BackendError::new(
                    ErrorKind::Corrupt,
                    p.display().to_string(),
                    "is a symbolic link, not a stored file",
                ),
                _ => self.err(name, e),
            })?;
        let meta = f.metadata().map_err(|e| self.err(name, e))?;
        if !meta.is_file() {
            return Err(BackendError::new(
                ErrorKind::Corrupt,
                p.display().to_string(),
                "not a regular file (a device, pipe or directory where a stored file should be)",
            ));
        }
        Ok((f, meta.len()))
    }

    /// The one way a file gets written: into a hidden temporary file beside it, with the
    /// requested mtime, fsync'd, renamed over the name, directory fsync'd. On any error
    /// (including one from `fill`) the temporary file is removed.
    fn write_with(
        &self,
        name: &str,
        opts: &WriteOptions,
        fill: &mut dyn FnMut(&mut File) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.write_into_place(name, opts, true, fill)
    }

    /// Writes a temporary file, syncs it, then renames it to `name` (with `replace`
    /// false, only if `name` does not exist: `RENAME_NOREPLACE`, or a hard link where a
    /// filesystem lacks it) and syncs the directory.
    fn write_into_place(
        &self,
        name: &str,
        opts: &WriteOptions,
        replace: bool,
        fill: &mut dyn FnMut(&mut File) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let p = self.path(name)?;
        let dir = p.parent().unwrap_or(&self.root).to_path_buf();
        self.ensure_dir(&dir)?;
        let fname = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{fname}{TMP_MARKER}{}", random_suffix()));
        let result = (|| {
            let mut f = {
                use std::os::unix::fs::OpenOptionsExt;
                let mut o = OpenOptions::new();
                o.write(true).create_new(true);
                if self.private {
                    o.mode(0o600);
                }
                o.open(&tmp).map_err(|e| self.err(name, e))?
            };
            fill(&mut f)?;
            let io = (|| {
                match (opts.mtime_nanos, opts.mtime_millis) {
                    (Some(ns), _) => f.set_modified(time_from_nanos(ns))?,
                    (None, Some(ms)) => f.set_modified(time_from_millis(ms))?,
                    (None, None) => {}
                }
                f.sync_all()?;
                drop(f);
                self.open_files.forget(name);
                if replace {
                    fs::rename(&tmp, &p)?;
                } else {
                    rename_noreplace(&tmp, &p)?;
                }
                sync_dir(&dir)
            })();
            io.map_err(|e| self.err(name, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Objects under `dir` whose names start with `prefix`; with `partial`, instead, the
    /// temporary files of writes that never finished.
    fn walk(
        &self,
        dir: &Path,
        rel: &str,
        prefix: &str,
        partial: bool,
        out: &mut Vec<ObjectInfo>,
    ) -> Result<(), BackendError> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(BackendError::io(dir.display().to_string(), e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| BackendError::io(dir.display().to_string(), e))?;
            let fname = {
                use std::os::unix::ffi::OsStrExt;
                crate::escape_os_name(entry.file_name().as_bytes())
            };
            let temp = is_temp_name(&fname);
            let name = if rel.is_empty() {
                fname.clone()
            } else {
                format!("{rel}/{fname}")
            };
            // Prune directories that cannot contain a match.
            if !(name.starts_with(prefix) || prefix.starts_with(&format!("{name}/"))) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Renamed or removed since the directory was read (another process
                // finishing a write, or a prune): not there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BackendError::io(entry.path().display().to_string(), e)),
            };
            if meta.is_dir() && !temp {
                self.walk(&entry.path(), &name, prefix, partial, out)?;
            } else if meta.is_file() && name.starts_with(prefix) && temp == partial {
                out.push(ObjectInfo {
                    name,
                    size: meta.len(),
                    mtime_millis: mtime_millis(&meta),
                    mtime_nanos: mtime_nanos(&meta),
                    sha1: None,
                    md5: None,
                    retain_until_millis: None,
                });
            }
        }
        Ok(())
    }
}

/// Our own partial writes: `.NAME.tmp-` followed by 16 hex digits. Anything else, even
/// a user's file containing `.tmp-`, is a real object.
fn is_temp_name(fname: &str) -> bool {
    fname.starts_with('.')
        && fname.rsplit_once(TMP_MARKER).is_some_and(|(_, suffix)| {
            suffix.len() == 16 && suffix.bytes().all(|c| c.is_ascii_hexdigit())
        })
}

fn time_from_millis(ms: i64) -> std::time::SystemTime {
    time_from_nanos(ms.saturating_mul(1_000_000))
}

fn time_from_nanos(ns: i64) -> std::time::SystemTime {
    if ns >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_nanos(ns.unsigned_abs())
    }
}

fn mtime_nanos(meta: &fs::Metadata) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(meta.mtime_nsec()))
}

fn mtime_millis(meta: &fs::Metadata) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000)
}

/// Makes a rename or a new entry in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    hex::encode(b)
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<(), BackendError> {
        let existed = self.root.is_dir();
        fs::create_dir_all(&self.root)
            .map_err(|e| BackendError::io(self.root.display().to_string(), e))?;
        if self.private && !existed {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
                .map_err(|e| BackendError::io(self.root.display().to_string(), e))?;
        }
        Ok(())
    }

    fn exists(&self) -> Result<bool, BackendError> {
        Ok(self.root.is_dir())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        if !self.root.is_dir() {
            return Err(BackendError::new(
                ErrorKind::NotFound,
                self.root.display().to_string(),
                "repository directory does not exist",
            ));
        }
        let mut out = Vec::new();
        self.walk(&self.root, "", prefix, false, &mut out)?;
        Ok(out)
    }

    fn list_partial(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let mut out = Vec::new();
        if self.root.is_dir() {
            self.walk(&self.root, "", prefix, true, &mut out)?;
        }
        Ok(out)
    }

    fn remove_partial(&self, name: &str) -> Result<(), BackendError> {
        let fname = name.rsplit('/').next().unwrap_or(name);
        if !is_temp_name(fname) {
            return Err(BackendError::new(
                ErrorKind::InvalidName,
                name,
                "not the temporary file of a write",
            ));
        }
        let p = self.path(name)?;
        fs::remove_file(&p).map_err(|e| self.err(name, e))
    }

    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        let p = self.path(name)?;
        let meta = fs::metadata(&p).map_err(|e| self.err(name, e))?;
        if !meta.is_file() {
            return Err(BackendError::new(
                ErrorKind::NotFound,
                p.display().to_string(),
                "not a regular file",
            ));
        }
        Ok(ObjectInfo {
            name: name.to_string(),
            size: meta.len(),
            mtime_millis: mtime_millis(&meta),
            mtime_nanos: mtime_nanos(&meta),
            sha1: None,
            md5: None,
            retain_until_millis: None,
        })
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        let mut v = Vec::new();
        self.read_into(name, &mut v)?;
        Ok(v)
    }

    fn read_into(&self, name: &str, v: &mut Vec<u8>) -> Result<(), BackendError> {
        let (f, size) = self.open_regular(name)?;
        // No more than the size the file had when opened: a file that grows as it is
        // read cannot make this allocate without bound.
        v.clear();
        v.reserve_exact(size as usize);
        (&f).take(size)
            .read_to_end(v)
            .map_err(|e| self.err(name, e))?;
        if (v.len() as u64) < size {
            return Err(BackendError::new(
                ErrorKind::Corrupt,
                name,
                format!("short read: {} of {size} bytes", v.len()),
            ));
        }
        Ok(())
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        let p = self.path(name)?;
        let (f, size) = match self.open_files.get(name) {
            Some(hit) => hit,
            None => {
                let (f, size) = self.open_regular(name)?;
                let f = Arc::new(f);
                self.open_files.put(name, f.clone(), size);
                (f, size)
            }
        };
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(BackendError::new(
                ErrorKind::Corrupt,
                p.display().to_string(),
                format!("short read: wanted {length} bytes at {offset}, object has {size}"),
            ));
        }
        let mut v = vec![0u8; length as usize];
        f.read_exact_at(&mut v, offset)
            .map_err(|e| self.err(name, e))?;
        Ok(v)
    }

    /// `opts.mtime_millis`, when given, becomes the file's modification time (sync
    /// downloads keep the source's times); the file appears under its name only whole.
    fn write(&self, name: &str, data: &[u8], opts: &WriteOptions) -> Result<(), BackendError> {
        self.write_parts(name, &[data], opts)
    }

    fn write_parts(
        &self,
        name: &str,
        parts: &[&[u8]],
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.write_with(name, opts, &mut |f| {
            if let Some(want) = &opts.sha1 {
                let mut h = cairn_sha1::Sha1::new();
                parts.iter().for_each(|p| h.update(p));
                check_sha1(name, &h.finish_hex(), want)?;
            }
            write_all_parts(f, parts).map_err(|e| self.err(name, e))
        })
    }

    /// Copies piece by piece into the temporary file, hashing as it goes.
    fn write_stream(
        &self,
        name: &str,
        size: u64,
        source: &RangeSource<'_>,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.write_with(name, opts, &mut |f| {
            let mut h = cairn_sha1::Sha1::new();
            let mut off = 0;
            while off < size {
                let piece = source(off, crate::STREAM_PIECE.min(size - off))?;
                h.update(&piece);
                f.write_all(&piece).map_err(|e| self.err(name, e))?;
                off += piece.len() as u64;
            }
            match &opts.sha1 {
                Some(want) => check_sha1(name, &h.finish_hex(), want),
                None => Ok(()),
            }
        })
    }

    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.write_into_place(name, &WriteOptions::default(), false, &mut |f| {
            write_all_parts(f, &[data]).map_err(|e| self.err(name, e))
        })
    }

    fn is_local(&self) -> bool {
        true
    }

    fn hashes(&self) -> &'static [crate::HashKind] {
        &[crate::HashKind::Sha1, crate::HashKind::Md5]
    }

    fn can_set_mtime(&self) -> bool {
        true
    }

    fn set_mtime(&self, name: &str, millis: i64, nanos: Option<i64>) -> Result<(), BackendError> {
        self.set_mtime_nanos(name, nanos.unwrap_or(millis.saturating_mul(1_000_000)))
    }

    fn remove(&self, name: &str) -> Result<(), BackendError> {
        let p = self.path(name)?;
        self.open_files.forget(name);
        fs::remove_file(&p).map_err(|e| self.err(name, e))?;
        if let Some(dir) = p.parent() {
            sync_dir(dir).map_err(|e| BackendError::io(dir.display().to_string(), e))?;
        }
        Ok(())
    }
}

/// Writes the concatenation of `parts` with as few syscalls as the kernel allows
/// (writev, up to 1,024 pieces at a time): a pack of a thousand small blobs was a
/// thousand writes.
fn write_all_parts(f: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::IoSlice;
    for group in parts.chunks(1024) {
        let mut slices: Vec<IoSlice<'_>> = group.iter().map(|p| IoSlice::new(p)).collect();
        let mut left = &mut slices[..];
        IoSlice::advance_slices(&mut left, 0);
        while !left.is_empty() {
            match f.write_vectored(left) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "wrote nothing",
                    ))
                }
                Ok(n) => IoSlice::advance_slices(&mut left, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`, and `from` stays for
/// the caller to remove). `RENAME_NOREPLACE` where the filesystem has it; elsewhere
/// (some FUSE and network filesystems) a hard link, which fails the same way.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths, resolved from the working directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests;
