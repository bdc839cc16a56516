//! The one way files move from one backend to another, for `ship` and `sync`: on
//! `--transfers` threads, within one memory budget, server-side where the destination
//! can copy, streamed piece by piece above a size, and checked before a byte is written
//! where the caller can say what a file must hold.
//!
//! `copy` is not a file transfer (it moves blobs between two repositories with
//! different keys: read, decrypt, maybe re-chunk, seal and pack again) and goes through
//! the repository's write path instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cairn_backend::{Backend, BackendError, ErrorKind, WriteOptions};

/// Bytes of file content held in memory at once by all transfers together.
const MEMORY_BUDGET: u64 = 512 * 1024 * 1024;
/// Files above this are streamed piece by piece rather than read whole (unless their
/// content must be checked first).
const STREAM_ABOVE: u64 = 64 * 1024 * 1024;
/// What one streamed transfer may hold at once (a B2 large file keeps four 100 MB parts
/// in flight), charged against the budget instead of the file's size.
const STREAM_MEMORY: u64 = 400 * 1024 * 1024;

/// Read buffers kept for the next file, all together at most this many bytes of
/// capacity: a fresh buffer for every file faults in its pages anew, which on a 2-core
/// machine cost a ship as much kernel time as reading the files.
const POOL_BYTES: usize = (MEMORY_BUDGET / 2) as usize;

/// One file to move.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// Its name at the source.
    pub from: &'a str,
    /// Its name at the destination.
    pub to: String,
    /// Its size in the source's listing; bytes read must agree.
    pub size: u64,
    /// Modification time, content type and SHA1 for the destination to record (and,
    /// for the SHA1, to check).
    pub write: WriteOptions,
}

/// Whether a file's whole content may be written: ship refuses a repository file whose
/// bytes do not hash to its name (damaged here, so it must not overwrite a good copy).
pub type Accept<'f> = &'f (dyn Fn(&str, &[u8]) -> bool + Sync);

/// What to do when a file fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Start nothing more and return the error (ship: a phase must be complete before
    /// the next one starts).
    Stop,
    /// Go on with the others and report each failure (sync, as rclone).
    Continue,
}

#[derive(Debug, Default)]
pub struct Report {
    pub files: u64,
    pub bytes: u64,
    /// Files [`Accept`] refused, by source name.
    pub refused: Vec<String>,
    /// Files that failed (with [`OnError::Continue`]), by source name.
    pub failed: Vec<(String, BackendError)>,
}

/// Moves files from `src` to `dst`.
pub struct Transfer<'a> {
    src: &'a dyn Backend,
    dst: &'a dyn Backend,
    threads: usize,
    accept: Option<Accept<'a>>,
    budget: cairn_parallel::Budget,
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl<'a> Transfer<'a> {
    pub fn new(src: &'a dyn Backend, dst: &'a dyn Backend, threads: usize) -> Transfer<'a> {
        Transfer {
            src,
            dst,
            threads: threads.max(1),
            accept: None,
            budget: cairn_parallel::Budget::new(MEMORY_BUDGET),
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// Reads each file whole and lets `accept` see it before it is written. Files are
    /// then never streamed nor copied server-side (neither shows the bytes first).
    pub fn checked(mut self, accept: Accept<'a>) -> Transfer<'a> {
        self.accept = Some(accept);
        self
    }

    /// Moves `items`, reporting each file done to `progress` (whose `start` and
    /// `finish` are the caller's: ship's phases are one job).
    pub fn run(
        &self,
        items: &[Item],
        on_error: OnError,
        progress: &dyn crate::Progress,
    ) -> Result<Report, BackendError> {
        let (files, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
        let refused = Mutex::new(Vec::new());
        let failed = Mutex::new(Vec::new());
        let one = |item: &Item| -> Result<(), BackendError> {
            let r = self.retried(item);
            progress.file_done(item.size);
            match r {
                Ok(true) => {
                    files.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(item.size, Ordering::Relaxed);
                }
                Ok(false) => lock(&refused).push(item.from.to_string()),
                Err(e) if on_error == OnError::Continue => {
                    lock(&failed).push((item.from.to_string(), e))
                }
                Err(e) => return Err(e),
            }
            Ok(())
        };
        match on_error {
            OnError::Stop => cairn_parallel::try_for_each(items, self.threads, one)?,
            OnError::Continue => cairn_parallel::for_each(items, self.threads, |i| {
                let _ = one(i);
            }),
        }
        let mut refused = refused.into_inner().unwrap_or_else(|p| p.into_inner());
        refused.sort();
        Ok(Report {
            files: files.into_inner(),
            bytes: bytes.into_inner(),
            refused,
            failed: failed.into_inner().unwrap_or_else(|p| p.into_inner()),
        })
    }

    /// [`Transfer::one`] within the memory budget; a file that changed while it was
    /// read, or whose bytes were damaged on the way (a SHA1 mismatch), is tried once
    /// more before it is reported.
    fn retried(&self, item: &Item) -> Result<bool, BackendError> {
        let need = if self.streams(item) {
            STREAM_MEMORY
        } else {
            item.size
        };
        // A file larger than the whole budget runs alone.
        let _held = self.budget.hold(need);
        match self.one(item) {
            Err(e) if e.kind == ErrorKind::Corrupt => self.one(item),
            r => r,
        }
    }

    /// `item.write`, with the MD5 a streamed upload to S3 should carry where S3 cannot
    /// state it itself: a multipart upload's ETag is no MD5, so rclone reads a local
    /// file once more beforehand to store its MD5 in metadata, and so does this (the
    /// upload then checks the bytes it sends against it).
    fn with_md5(&self, item: &Item) -> Result<WriteOptions, BackendError> {
        let mut write = item.write.clone();
        if write.md5.is_none()
            && self.src.is_local()
            && self.dst.hashes().contains(&cairn_backend::HashKind::Md5)
        {
            write.md5 = Some(cairn_backend::object_md5(self.src, item.from, item.size)?);
        }
        Ok(write)
    }

    fn streams(&self, item: &Item) -> bool {
        self.accept.is_none() && item.size > STREAM_ABOVE
    }

    /// Moves one file; `false` when [`Accept`] refused it (nothing written).
    fn one(&self, item: &Item) -> Result<bool, BackendError> {
        if self.accept.is_none() && self.dst.copy_from(self.src, item.from, &item.to)? {
            // A server-side copy carries no retention of its own: lock it after.
            if let Some(r) = &item.write.retention {
                self.dst.set_retention(&item.to, r)?;
            }
            return Ok(true);
        }
        if self.streams(item) {
            let source = |off: u64, len: u64| self.src.read_range(item.from, off, len);
            let write = self.with_md5(item)?;
            self.dst
                .write_stream(&item.to, item.size, &source, &write)?;
            return Ok(true);
        }
        let mut data = lock(&self.buffers).pop().unwrap_or_default();
        let read = self.src.read_into(item.from, &mut data);
        let written = read.and_then(|()| {
            if data.len() as u64 != item.size {
                return Err(BackendError::new(
                    ErrorKind::Corrupt,
                    item.from,
                    "changed while being read",
                ));
            }
            if let Some(accept) = self.accept {
                if !accept(item.from, &data) {
                    return Ok(false);
                }
            }
            let shared = cairn_backend::Bytes::from(std::mem::take(&mut data));
            let r = self.dst.write_bytes(&item.to, shared.clone(), &item.write);
            // Back when the destination kept no reference (an HTTP body is dropped
            // once sent); otherwise the next file allocates anew.
            if let Ok(mine) = shared.try_into_mut() {
                data = mine.into();
            }
            r.map(|()| true)
        });
        self.give_back(data);
        written
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        let mut pool = lock(&self.buffers);
        let held: usize = pool.iter().map(Vec::capacity).sum();
        if buf.capacity() > 0 && held + buf.capacity() <= POOL_BYTES {
            buf.clear();
            pool.push(buf);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_backend::LocalBackend;

    fn item<'a>(from: &'a str, size: u64) -> Item<'a> {
        Item {
            from,
            to: format!("out/{from}"),
            size,
            write: WriteOptions::default(),
        }
    }

    fn sides() -> (tempfile::TempDir, LocalBackend, LocalBackend) {
        let d = tempfile::tempdir().unwrap();
        let src = LocalBackend::new(d.path().join("src"));
        let dst = LocalBackend::new(d.path().join("dst"));
        src.create().unwrap();
        dst.create().unwrap();
        for (name, data) in [("a", &b"good"[..]), ("b", b"bad!"), ("c", b"also good")] {
            src.write(name, data, &WriteOptions::default()).unwrap();
        }
        (d, src, dst)
    }

    #[test]
    fn refused_files_are_not_written_and_the_rest_are() {
        let (_d, src, dst) = sides();
        let accept = |_: &str, data: &[u8]| !data.starts_with(b"bad");
        let t = Transfer::new(&src, &dst, 2).checked(&accept);
        let items = [item("a", 4), item("b", 4), item("c", 9)];
        let r = t.run(&items, OnError::Stop, &crate::NoProgress).unwrap();
        assert_eq!((r.files, r.bytes), (2, 13));
        assert_eq!(r.refused, vec!["b".to_string()]);
        assert_eq!(dst.read("out/a").unwrap(), b"good");
        assert_eq!(dst.read("out/c").unwrap(), b"also good");
        assert!(dst.read("out/b").unwrap_err().is_not_found());
    }

    #[test]
    fn a_failure_stops_or_is_reported_as_asked() {
        let (_d, src, dst) = sides();
        // "gone" is missing at the source; "c" is listed at the wrong size (it changed
        // after the listing): neither may be written.
        let items = [item("gone", 3), item("c", 5), item("a", 4)];
        let t = Transfer::new(&src, &dst, 1);
        assert!(t.run(&items, OnError::Stop, &crate::NoProgress).is_err());
        assert!(
            dst.read("out/a").unwrap_err().is_not_found(),
            "nothing starts after the first failure"
        );
        let r = t
            .run(&items, OnError::Continue, &crate::NoProgress)
            .unwrap();
        assert_eq!(r.files, 1);
        let failed: Vec<&str> = r.failed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(failed, ["gone", "c"]);
        assert_eq!(r.failed[1].1.kind, ErrorKind::Corrupt);
        assert!(dst.read("out/c").unwrap_err().is_not_found());
        assert_eq!(dst.read("out/a").unwrap(), b"good");
    }
}
