//! [`B2Backend`]: a repository in a B2 bucket, behind the synchronous `Backend` trait.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use cairn_backend::{
    check_sha1, sha1_hex, validate_name, Backend, BackendError, ErrorKind, ObjectInfo, RangeSource,
    Retention, Version, WriteOptions,
};

use crate::client::Client;
use crate::location::B2Location;
use crate::B2Error;

mod server_side;
mod versions;

pub struct B2Backend {
    rt: tokio::runtime::Runtime,
    client: std::sync::Arc<Client>,
    loc: B2Location,
    bucket_id: OnceLock<String>,
    /// `exists` just found no bucket: `create` need not ask again (a class C call)
    /// before creating it; a bucket made in between is found by `create_bucket`.
    found_absent: std::sync::atomic::AtomicBool,
    /// File IDs of the newest versions the last listings saw, so a retention update
    /// after a listing (ship's lock extensions) needs no class C lookup per file.
    listed_ids: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl std::fmt::Debug for B2Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2Backend")
            .field("location", &self.loc.display())
            .finish_non_exhaustive()
    }
}

impl B2Backend {
    pub fn new(loc: B2Location) -> Result<B2Backend, BackendError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError::io(loc.display(), e))?;
        let client = std::sync::Arc::new(
            Client::new(&loc.endpoint, loc.creds.clone())
                .map_err(|e| e.into_backend(&loc.display()))?,
        );
        Ok(B2Backend {
            rt,
            client,
            loc,
            bucket_id: OnceLock::new(),
            found_absent: Default::default(),
            listed_ids: Default::default(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Objects above `cutoff` bytes go up as large files in parts of `part_size`
    /// (defaults: rclone's 200 MiB cutoff, B2's recommended 100 MB parts).
    /// Server-side copies above `copy_cutoff` go in parts of that size (rclone's 4 GiB).
    pub fn set_large_file_thresholds(&mut self, cutoff: u64, part_size: u64, copy_cutoff: u64) {
        if let Some(c) = std::sync::Arc::get_mut(&mut self.client) {
            c.upload_cutoff = cutoff;
            c.part_size = part_size.max(1);
            c.copy_cutoff = copy_cutoff.max(1);
        }
    }

    /// Bandwidth limits in bytes per second for uploads and downloads (None: unlimited).
    /// Bytes a second for all uploads and all downloads; `None` or 0 is unlimited.
    pub fn set_limits(&mut self, upload: Option<u64>, download: Option<u64>) {
        let (upload, download) = (upload.filter(|r| *r > 0), download.filter(|r| *r > 0));
        if let Some(c) = std::sync::Arc::get_mut(&mut self.client) {
            c.upload_limit = upload.map(|r| std::sync::Arc::new(crate::RateLimit::new(r)));
            c.download_limit = download.map(|r| std::sync::Arc::new(crate::RateLimit::new(r)));
        }
    }

    /// Whether `other` is reached with the same endpoint and key, so a server-side copy
    /// between the two is possible.
    pub fn same_account(&self, other: &B2Backend) -> bool {
        self.loc.endpoint == other.loc.endpoint && self.loc.creds.key_id == other.loc.creds.key_id
    }

    /// The newest version of `name` (one class C listing), or `NotFound`.
    pub(crate) fn newest(&self, name: &str) -> Result<crate::client::FileVersion, BackendError> {
        let full = self.full(name)?;
        let bucket_id = self.bucket_id()?;
        self.rt
            .block_on(self.client.find_name(&bucket_id, &full))
            .map_err(|e| self.err(name, e))?
            .ok_or_else(|| {
                BackendError::new(
                    ErrorKind::NotFound,
                    format!("{}/{name}", self.loc.display()),
                    "no such object",
                )
            })
    }

    /// Runs an async client call on this backend's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The bucket's ID, looked up on first use.
    pub fn client_bucket_for_tests(&self) -> String {
        self.bucket_id().unwrap_or_default()
    }

    /// The `src_last_modified_millis` to record: the source's time, else now (as rclone).
    fn mtime_or_now(&self, opts: &WriteOptions) -> i64 {
        opts.mtime_millis.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        })
    }

    fn full(&self, name: &str) -> Result<String, BackendError> {
        validate_name(name)?;
        Ok(if self.loc.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.loc.prefix)
        })
    }

    fn err(&self, name: &str, e: B2Error) -> BackendError {
        e.into_backend(&format!("{}/{name}", self.loc.display()))
    }

    /// The bucket's ID, or `None` when B2 lists no bucket of that name for this key.
    fn find_bucket(&self) -> Result<Option<String>, BackendError> {
        if let Some(id) = self.bucket_id.get() {
            return Ok(Some(id.clone()));
        }
        match self.rt.block_on(self.client.bucket_id(&self.loc.bucket)) {
            Ok(Some(id)) => {
                let _ = self.bucket_id.set(id.clone());
                Ok(Some(id))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.err("", e)),
        }
    }

    fn bucket_id(&self) -> Result<String, BackendError> {
        match self.find_bucket()? {
            Some(id) => Ok(id),
            None => Err(BackendError::new(
                ErrorKind::Other,
                self.loc.display(),
                format!(
                    "bucket {} does not exist (or this key cannot see it)",
                    self.loc.bucket
                ),
            )),
        }
    }
}

impl Backend for B2Backend {
    fn location(&self) -> String {
        self.loc.display()
    }

    fn encode_path(&self, path: &str) -> String {
        cairn_backend::Encoding::B2.encode_path(path)
    }

    fn decode_path(&self, name: &str) -> String {
        cairn_backend::Encoding::B2.decode_path(name)
    }

    fn hashes(&self) -> &'static [cairn_backend::HashKind] {
        &[cairn_backend::HashKind::Sha1]
    }

    fn can_set_mtime(&self) -> bool {
        true
    }

    fn set_mtime(&self, name: &str, millis: i64, _nanos: Option<i64>) -> Result<(), BackendError> {
        self.set_mtime_millis(name, millis)
    }

    /// A key without `deleteFiles` (an append-only key) cannot delete; it can still hide,
    /// which needs only `writeFiles`. Unknown (authorization failed) counts as able:
    /// the delete itself will then say what is wrong.
    fn delete_refused(&self) -> Option<String> {
        match self.rt.block_on(self.client.capabilities()) {
            Ok(Some(caps)) if !caps.iter().any(|c| c == "deleteFiles") => Some(format!(
                "the B2 application key {} cannot delete files (it lacks the deleteFiles capability)",
                self.loc.creds.key_id
            )),
            _ => None,
        }
    }

    /// Files can be locked in a bucket created with file lock enabled, by a key with
    /// `writeFileRetentions`.
    fn lock_refused(&self) -> Option<String> {
        let bucket = &self.loc.bucket;
        match self.rt.block_on(self.client.capabilities()) {
            Ok(Some(caps)) if !caps.iter().any(|c| c == "writeFileRetentions") => {
                return Some(format!(
                    "the B2 application key {} cannot lock files (it lacks the writeFileRetentions capability)",
                    self.loc.creds.key_id
                ))
            }
            Err(e) => return Some(e.to_string()),
            _ => {}
        }
        match self.rt.block_on(self.client.file_lock_enabled(bucket)) {
            Ok(Some(true)) => None,
            Ok(Some(false)) => Some(format!(
                "bucket {bucket} does not have file lock (Object Lock) enabled: enable it in the bucket's settings on backblaze.com, or ship to a bucket created with it (`b2 bucket create --file-lock-enabled NAME allPrivate`)"
            )),
            Ok(None) => Some(format!(
                "the B2 application key {} may not read whether bucket {bucket} has file lock enabled (it lacks readBuckets)",
                self.loc.creds.key_id
            )),
            Err(e) => Some(e.to_string()),
        }
    }

    fn set_retention(&self, name: &str, retention: &Retention) -> Result<bool, BackendError> {
        let full = self.full(name)?;
        let listed = self
            .listed_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&full)
            .cloned();
        let id = match listed {
            Some(id) => id,
            None => self.newest(name)?.id,
        };
        self.rt
            .block_on(self.client.update_file_retention(&id, &full, retention))
            .map_err(|e| self.err(name, e))?;
        Ok(true)
    }

    /// Hidden files are whole names whose newest version is a hide marker; each goes
    /// with all its versions, but a version still locked stays (and so does the name).
    fn purge_hidden(
        &self,
        prefix: &str,
        chosen: &dyn Fn(&str) -> bool,
    ) -> Result<u64, BackendError> {
        self.purge_hidden_under(prefix, chosen)
    }

    fn versions(&self, prefix: &str) -> Result<Option<Vec<Version>>, BackendError> {
        self.list_versions_under(prefix).map(Some)
    }

    fn read_version(&self, v: &Version) -> Result<Vec<u8>, BackendError> {
        self.read_version_by_id(v)
    }

    fn restore_version(&self, v: &Version) -> Result<(), BackendError> {
        self.restore_version_by_id(v)
    }

    /// Hides, unless the rclone remote says `hard_delete = true`: then the caller deletes.
    fn hide(&self, name: &str) -> Result<bool, BackendError> {
        if self.loc.hard_delete {
            return Ok(false);
        }
        self.hide_file(name).map(|_| true)
    }

    /// Server-side, when `src` is a B2 location reached with the same endpoint and key.
    fn copy_from(&self, src: &dyn Backend, from: &str, to: &str) -> Result<bool, BackendError> {
        match src.as_any().and_then(|a| a.downcast_ref::<B2Backend>()) {
            Some(s) if self.same_account(s) => self.copy_from_b2(s, from, to).map(|_| true),
            _ => Ok(false),
        }
    }

    fn transactions(&self) -> Option<cairn_backend::Transactions> {
        Some(self.client.transactions())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    /// Bucket names are global on B2: the same name is the same bucket.
    fn bucket(&self) -> Option<(String, String)> {
        Some((format!("b2:{}", self.loc.bucket), self.loc.prefix.clone()))
    }

    fn create(&self) -> Result<(), BackendError> {
        if !self.found_absent.load(Ordering::Relaxed) && self.find_bucket()?.is_some() {
            return Ok(());
        }
        let id = self
            .rt
            .block_on(self.client.create_bucket(&self.loc.bucket))
            .map_err(|e| self.err("", e))?;
        let _ = self.bucket_id.set(id);
        Ok(())
    }

    /// The bucket is the store: a prefix in B2 exists as soon as a file is under it.
    fn exists(&self) -> Result<bool, BackendError> {
        if self.bucket_id.get().is_some() {
            return Ok(true);
        }
        match self.rt.block_on(self.client.bucket_id(&self.loc.bucket)) {
            Ok(Some(id)) => {
                let _ = self.bucket_id.set(id);
                Ok(true)
            }
            Ok(None) => {
                self.found_absent.store(true, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(self.err("", e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let bucket_id = self.bucket_id()?;
        let root = if self.loc.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.loc.prefix)
        };
        let files = self
            .rt
            .block_on(
                self.client
                    .list_names(&bucket_id, &format!("{root}{prefix}")),
            )
            .map_err(|e| self.err(prefix, e))?;
        self.listed_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(files.iter().map(|f| (f.name.clone(), f.id.clone())));
        Ok(files
            .into_iter()
            .filter_map(|f| {
                let name = f.name.strip_prefix(&root)?.to_string();
                let mtime_millis = f
                    .info
                    .get("src_last_modified_millis")
                    .and_then(|v| v.parse().ok())
                    .or(Some(f.upload_timestamp));
                Some(ObjectInfo {
                    name,
                    size: f.size,
                    mtime_millis,
                    mtime_nanos: None,
                    sha1: f.sha1,
                    md5: None,
                    retain_until_millis: f.retain_until,
                })
            })
            .collect())
    }

    /// A one-entry listing rather than a HEAD: a class C call, never a download.
    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        let f = self.newest(name)?;
        Ok(ObjectInfo {
            name: name.to_string(),
            size: f.size,
            mtime_millis: Some(f.upload_timestamp),
            mtime_nanos: None,
            sha1: f.sha1,
            md5: None,
            retain_until_millis: f.retain_until,
        })
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        let full = self.full(name)?;
        self.rt
            .block_on(self.client.download(&self.loc.bucket, &full, None))
            .map_err(|e| self.err(name, e))
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        let full = self.full(name)?;
        if length == 0 {
            return Ok(Vec::new());
        }
        let data = self
            .rt
            .block_on(
                self.client
                    .download(&self.loc.bucket, &full, Some((offset, length))),
            )
            .map_err(|e| self.err(name, e))?;
        if data.len() as u64 != length {
            return Err(BackendError::new(
                ErrorKind::Corrupt,
                format!("{}/{name}", self.loc.display()),
                format!(
                    "short read: wanted {length} bytes at {offset}, got {}",
                    data.len()
                ),
            ));
        }
        Ok(data)
    }

    fn write(&self, name: &str, data: &[u8], opts: &WriteOptions) -> Result<(), BackendError> {
        // The HTTP body must own its bytes.
        self.write_bytes(name, bytes::Bytes::copy_from_slice(data), opts)
    }

    fn write_bytes(
        &self,
        name: &str,
        data: bytes::Bytes,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        let full = self.full(name)?;
        let bucket_id = self.bucket_id()?;
        let info = [(
            "src_last_modified_millis",
            self.mtime_or_now(opts).to_string(),
        )];
        self.rt
            .block_on(
                self.client.upload(
                    &bucket_id,
                    &full,
                    data,
                    opts.content_type
                        .as_deref()
                        .unwrap_or("application/octet-stream"),
                    &info,
                    opts.retention.as_ref(),
                ),
            )
            .map_err(|e| self.err(name, e))?;
        Ok(())
    }

    /// B2 has no conditional upload, so: upload, then list the name's versions since it
    /// was last hidden. The earliest upload wins (ties by file ID, which both racers
    /// see alike); a later one deletes its own version and reports `AlreadyExists`. A
    /// racer's listing always shows the earlier upload, since that finished first.
    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        match self.stat(name) {
            Ok(_) => {
                return Err(BackendError::new(
                    ErrorKind::AlreadyExists,
                    format!("{}/{name}", self.loc.display()),
                    "already exists",
                ))
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let full = self.full(name)?;
        let bucket_id = self.bucket_id()?;
        let info = [(
            "src_last_modified_millis",
            self.mtime_or_now(&WriteOptions::default()).to_string(),
        )];
        let mine = self
            .rt
            .block_on(self.client.upload(
                &bucket_id,
                &full,
                bytes::Bytes::copy_from_slice(data),
                "application/octet-stream",
                &info,
                None,
            ))
            .map_err(|e| self.err(name, e))?;
        let versions = self
            .rt
            .block_on(self.client.list_versions(&bucket_id, &full))
            .map_err(|e| self.err(name, e))?;
        // Newest first within a name: uploads until the latest hide marker count.
        let first = versions
            .iter()
            .filter(|v| v.name == full)
            .take_while(|v| v.action != "hide")
            .filter(|v| v.action == "upload")
            .min_by(|a, b| (a.upload_timestamp, &a.id).cmp(&(b.upload_timestamp, &b.id)));
        // An earlier version with these very bytes is this call's own upload, retried
        // after a reply was lost (sealed bytes carry a random nonce: no other writer
        // makes them).
        let ours = |f: &crate::client::FileVersion| {
            f.id == mine.id
                || f.sha1
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&sha1_hex(data)))
        };
        match first {
            Some(f) if !ours(f) => {
                self.rt
                    .block_on(self.client.delete_version(&full, &mine.id))
                    .map_err(|e| self.err(name, e))?;
                Err(BackendError::new(
                    ErrorKind::AlreadyExists,
                    format!("{}/{name}", self.loc.display()),
                    "another writer stored it first",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Above the upload cutoff: a large file whose parts are fetched from `source` and
    /// sent LARGE_FILE_CONCURRENCY at a time, so memory holds a few parts, never the file.
    /// The whole-file SHA1 is computed as parts arrive (in order) and must match
    /// `opts.sha1` before the file is finished; otherwise it is cancelled.
    fn write_stream(
        &self,
        name: &str,
        size: u64,
        source: &RangeSource<'_>,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        if size <= self.client.upload_cutoff {
            let data = source(0, size)?;
            if let Some(want) = &opts.sha1 {
                check_sha1(name, &sha1_hex(&data), want)?;
            }
            return self.write(name, &data, opts);
        }
        let full = self.full(name)?;
        let bucket_id = self.bucket_id()?;
        let sha1 = match &opts.sha1 {
            Some(s) => s.to_ascii_lowercase(),
            None => cairn_backend::source_sha1(size, source)?,
        };
        let info = [(
            "src_last_modified_millis",
            self.mtime_or_now(opts).to_string(),
        )];
        let ct = opts
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        // The source is read on a thread of its own, outside this backend's runtime
        // (reading may block, or block on another backend's runtime), and handed over
        // part by part: memory holds the parts in flight, never the file.
        let part = self.client.part_size;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, B2Error>>(1);
        let failed = std::sync::Mutex::new(None::<BackendError>);
        let result = std::thread::scope(|scope| {
            let failed = &failed;
            // The sender moves into the thread, so the stream ends when the thread does;
            // the receiver moves into the stream, so a failed upload frees the thread.
            scope.spawn(move || {
                for off in (0..size).step_by(part as usize) {
                    let fetched = source(off, part.min(size - off));
                    let piece = fetched.map(bytes::Bytes::from).map_err(|e| {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        B2Error::Invalid("reading the source failed".into())
                    });
                    let stop = piece.is_err();
                    if tx.blocking_send(piece).is_err() || stop {
                        return;
                    }
                }
            });
            let parts = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            self.rt
                .block_on(self.client.upload_large(
                    crate::upload::NewLargeFile {
                        bucket_id: &bucket_id,
                        name: &full,
                        content_type: ct,
                        info: &info,
                        sha1: &sha1,
                        retention: opts.retention.as_ref(),
                    },
                    parts,
                ))
                .map_err(|e| self.err(name, e))
        });
        // The source's own error (its kind and object) is the one that counts.
        match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => result.map(|_| ()),
        }
    }

    /// Deletes every version of the object: a hidden file still costs storage.
    fn remove(&self, name: &str) -> Result<(), BackendError> {
        self.remove_all_versions(name)
    }
}
