//! One OpenDAL operator behind cairn's blocking `Backend` trait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_backend::{
    check_sha1, sha1_hex, validate_name, Backend, BackendError, ErrorKind, ObjectInfo,
    Transactions, WriteOptions,
};
use opendal::Operator;

use crate::meta::{
    etag_md5, md5_from_base64, md5_hex, metadata, mtime_text, parse_mtime, MD5, MTIME,
};
use crate::S3Location;

/// Attempts per call before an error is reported (rclone's low-level retries).
const ATTEMPTS: usize = 10;
/// Above this a write goes as a multipart upload (a single PUT of a big file is lost
/// whole on a dropped connection); streamed writes always go in parts.
const MULTIPART_ABOVE: usize = 64 << 20;
/// Part size, and parts in flight: at most 64 MiB of a streamed file held at once.
const PART: usize = 16 << 20;
const PARTS_AT_ONCE: usize = 4;

pub struct OpendalBackend {
    rt: tokio::runtime::Runtime,
    op: Operator,
    location: String,
    loc: S3Location,
    /// The calls OpenDAL does not make: Object Lock for `ship --lock-days`, and a
    /// time changed in place for sync.
    signed: crate::signed::Signed,
    /// Requests made, by what they cost: writes (PUT, multipart steps, DELETE), reads
    /// (GET, HEAD), listings (one per page of 1,000). Retries inside OpenDAL are not
    /// seen here.
    calls: [AtomicU64; 3],
}

const WRITES: usize = 0;
const READS: usize = 1;
const LISTS: usize = 2;

impl std::fmt::Debug for OpendalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpendalBackend")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl OpendalBackend {
    /// The backend for an S3 location. Nothing is sent until the first call.
    pub fn s3(loc: &S3Location) -> Result<OpendalBackend, BackendError> {
        let location = loc.display();
        let bad = |e: opendal::Error| BackendError::new(ErrorKind::Other, &location, e.to_string());
        let client = crate::transport::client(&location)?;
        let transport =
            opendal::HttpTransporter::new(crate::transport::Transport::new(client.clone()));
        let signed = crate::signed::Signed::new(loc, client, transport.clone());
        let op = Operator::new(loc.builder())
            .map_err(bad)?
            .with_context(opendal::OperationContext::new().with_http_transport(transport))
            // The timeout inside the retries: each attempt gets its own minute, rather
            // than one minute for all of them.
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_io_timeout(Duration::from_secs(60)),
            )
            // Pauses capped at 5 s as the B2 client's: a store that is down is
            // reported within a minute, one restarting is waited for.
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_max_times(ATTEMPTS)
                    .with_jitter()
                    .with_max_delay(Duration::from_secs(5)),
            );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError::io(&location, e))?;
        Ok(OpendalBackend {
            rt,
            op,
            location,
            loc: loc.clone(),
            signed,
            calls: Default::default(),
        })
    }

    /// Locks a file just written when the write asked for retention. S3 takes
    /// retention in a call of its own: a ship stopped between the two leaves the file
    /// unlocked, and the next ship's lock pass (which reads each file's date) locks it.
    fn lock_written(&self, name: &str, opts: &WriteOptions) -> Result<(), BackendError> {
        match &opts.retention {
            Some(r) => self.set_retention(name, r).map(drop),
            None => Ok(()),
        }
    }

    fn count(&self, class: usize, n: u64) {
        self.calls[class].fetch_add(n, Ordering::Relaxed);
    }

    /// Requests a write of `len` bytes makes: one PUT, or initiate + parts + complete.
    fn count_write(&self, len: usize, multipart: bool) {
        let n = if multipart {
            2 + len.div_ceil(PART).max(1)
        } else {
            1
        };
        self.count(WRITES, n as u64);
    }

    fn err(&self, name: &str, e: opendal::Error) -> BackendError {
        let message = summary(&e);
        let kind = match e.kind() {
            _ if message.starts_with("NoSuchBucket") => ErrorKind::NotFound,
            _ if message.starts_with("AccessDenied")
                || message.starts_with("InvalidAccessKeyId")
                || message.starts_with("SignatureDoesNotMatch") =>
            {
                ErrorKind::Unauthorized
            }
            opendal::ErrorKind::NotFound => ErrorKind::NotFound,
            opendal::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            opendal::ErrorKind::ConditionNotMatch | opendal::ErrorKind::AlreadyExists => {
                ErrorKind::AlreadyExists
            }
            opendal::ErrorKind::RateLimited => ErrorKind::Transient,
            _ if e.is_temporary() => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        // A refused HEAD has no body to say why.
        let message = match kind {
            ErrorKind::PermissionDenied | ErrorKind::Unauthorized
                if message.trim_start().starts_with('(') =>
            {
                "access denied: check the access key and its secret, and that the key may do this in this bucket".to_string()
            }
            _ => message,
        };
        let object = if name.is_empty() {
            self.location.clone()
        } else {
            format!("{}/{name}", self.location)
        };
        BackendError::new(kind, object, message)
    }

    /// One PUT, or a multipart upload above [`MULTIPART_ABOVE`]; either way the object
    /// appears whole or not at all.
    async fn put(
        &self,
        name: &str,
        data: cairn_backend::Bytes,
        opts: &WriteOptions,
    ) -> opendal::Result<()> {
        self.count_write(data.len(), data.len() > MULTIPART_ABOVE);
        if data.len() <= MULTIPART_ABOVE {
            let (meta, content_type) = metadata(opts);
            return self
                .op
                .write_with(name, data)
                .user_metadata(meta)
                .content_type(content_type)
                .await
                .map(drop);
        }
        // A multipart upload's ETag is no MD5: rclone's Md5chksum carries it instead.
        let opts = &WriteOptions {
            md5: opts.md5.clone().or_else(|| Some(md5_hex(&data))),
            ..opts.clone()
        };
        let mut w = self.multipart(name, opts).await?;
        if let Err(e) = w.write(data).await {
            let _ = w.abort().await;
            return Err(e);
        }
        w.close().await.map(drop)
    }

    /// A multipart upload of `name` with `opts`' metadata: [`PART`]-sized parts,
    /// [`PARTS_AT_ONCE`] in flight.
    async fn multipart(&self, name: &str, opts: &WriteOptions) -> opendal::Result<opendal::Writer> {
        let (meta, content_type) = metadata(opts);
        self.op
            .writer_with(name)
            .chunk(PART)
            .concurrent(PARTS_AT_ONCE)
            .user_metadata(meta)
            .content_type(content_type)
            .await
    }

    /// A listing's entry carries the upload time; a stat's also the file's own time
    /// (`X-Amz-Meta-Mtime`), which wins where present.
    fn info(name: String, m: &opendal::Metadata) -> ObjectInfo {
        let own = m
            .user_metadata()
            .and_then(|u| u.get(MTIME))
            .and_then(parse_mtime);
        let md5 = m.etag().and_then(etag_md5).or_else(|| {
            m.user_metadata()
                .and_then(|u| u.get(MD5))
                .and_then(md5_from_base64)
        });
        ObjectInfo {
            name,
            size: m.content_length(),
            mtime_millis: own
                .map(|ns| ns.div_euclid(1_000_000))
                .or_else(|| m.last_modified().map(|t| t.into_inner().as_millisecond())),
            mtime_nanos: own,
            sha1: None,
            md5,
            retain_until_millis: None,
        }
    }
}

impl Backend for OpendalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    /// A prefix in a bucket exists as soon as something is under it; the bucket itself
    /// is made with the provider's tools (its settings, such as versioning and object
    /// lock, are the owner's choice): a missing one is reported.
    fn create(&self) -> Result<(), BackendError> {
        if self.exists()? {
            return Ok(());
        }
        Err(BackendError::new(
            ErrorKind::NotFound,
            &self.location,
            "the bucket does not exist (or these credentials cannot see it): create it with your provider's console or CLI",
        ))
    }

    fn exists(&self) -> Result<bool, BackendError> {
        self.count(LISTS, 1);
        match self
            .rt
            .block_on(async { self.op.list_with("").limit(1).await })
        {
            Ok(_) => Ok(true),
            Err(e) => match self.err("", e) {
                e if e.kind == ErrorKind::NotFound => Ok(false),
                e => Err(e),
            },
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let entries = self
            .rt
            .block_on(async { self.op.list_with(prefix).recursive(true).await })
            .map_err(|e| self.err(prefix, e))?;
        self.count(LISTS, 1 + entries.len() as u64 / 1000);
        Ok(entries
            .into_iter()
            .filter(|e| !e.path().ends_with('/') && e.path().starts_with(prefix))
            .map(|e| Self::info(e.path().to_string(), e.metadata()))
            .collect())
    }

    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        validate_name(name)?;
        self.count(READS, 1);
        let m = self
            .rt
            .block_on(self.op.stat(name))
            .map_err(|e| self.err(name, e))?;
        Ok(Self::info(name.to_string(), &m))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        validate_name(name)?;
        self.count(READS, 1);
        let b = self
            .rt
            .block_on(self.op.read(name))
            .map_err(|e| self.err(name, e))?;
        Ok(b.to_vec())
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        validate_name(name)?;
        self.count(READS, 1);
        let end = offset.checked_add(length).ok_or_else(|| {
            BackendError::new(ErrorKind::Corrupt, name, "range past the end of any file")
        })?;
        let b = self
            .rt
            .block_on(async { self.op.read_with(name).range(offset..end).await })
            .map_err(|e| match e.kind() {
                // A range starting at or past the end, or one the object ends inside.
                opendal::ErrorKind::RangeNotSatisfied => {
                    BackendError::new(ErrorKind::Corrupt, name, "short read: range past the end")
                }
                opendal::ErrorKind::Unexpected if e.message().contains("too little data") => {
                    BackendError::new(
                        ErrorKind::Corrupt,
                        name,
                        "short read: the object ends inside the range",
                    )
                }
                _ => self.err(name, e),
            })?;
        if b.len() as u64 != length {
            return Err(BackendError::new(
                ErrorKind::Corrupt,
                name,
                format!("short read: {} of {length} bytes", b.len()),
            ));
        }
        Ok(b.to_vec())
    }

    /// One PUT, or a multipart upload when large: S3 shows the new object whole or not at all.
    fn write(&self, name: &str, data: &[u8], opts: &WriteOptions) -> Result<(), BackendError> {
        // The request body must own its bytes.
        self.write_bytes(name, cairn_backend::Bytes::copy_from_slice(data), opts)
    }

    /// The body shares the caller's bytes (ship's read buffer) instead of copying them.
    fn write_bytes(
        &self,
        name: &str,
        data: cairn_backend::Bytes,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        validate_name(name)?;
        if let Some(want) = &opts.sha1 {
            check_sha1(name, &sha1_hex(&data), want)?;
        }
        self.rt
            .block_on(self.put(name, data, opts))
            .map_err(|e| self.err(name, e))?;
        self.lock_written(name, opts)
    }

    /// Piece by piece into a multipart upload, hashing as it goes: memory stays at a few
    /// parts whatever the size, and a source whose bytes do not match `opts.sha1` or
    /// `opts.md5` (or that fails) aborts the upload, so nothing is stored.
    fn write_stream(
        &self,
        name: &str,
        size: u64,
        source: &cairn_backend::RangeSource<'_>,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        validate_name(name)?;
        self.rt.block_on(async {
            let mut w = self
                .multipart(name, opts)
                .await
                .map_err(|e| self.err(name, e))?;
            let mut h = cairn_sha1::Sha1::new();
            let mut m = <md5::Md5 as md5::Digest>::new();
            let mut off = 0u64;
            let mut fail = None;
            while off < size && fail.is_none() {
                match source(off, cairn_backend::STREAM_PIECE.min(size - off)) {
                    Ok(piece) if piece.is_empty() => {
                        fail = Some(BackendError::new(
                            ErrorKind::Corrupt,
                            name,
                            "source ended early",
                        ))
                    }
                    Ok(piece) => {
                        h.update(&piece);
                        md5::Digest::update(&mut m, &piece);
                        off += piece.len() as u64;
                        if let Err(e) = w.write(piece).await {
                            fail = Some(self.err(name, e));
                        }
                    }
                    Err(e) => fail = Some(e),
                }
            }
            if fail.is_none() {
                if let Some(want) = &opts.sha1 {
                    fail = check_sha1(name, &h.finish_hex(), want).err();
                }
                // The MD5 stored beside the file was read before it: a file that
                // changed since would be stored under a false one.
                let got = hex::encode(md5::Digest::finalize(m));
                if let Some(want) = opts
                    .md5
                    .as_deref()
                    .filter(|w| !w.eq_ignore_ascii_case(&got))
                {
                    fail.get_or_insert(BackendError::new(
                        ErrorKind::Corrupt,
                        name,
                        format!("MD5 mismatch: expected {want}, got {got}"),
                    ));
                }
            }
            if let Some(e) = fail {
                let _ = w.abort().await;
                return Err(e);
            }
            self.count_write(size as usize, true);
            w.close().await.map(drop).map_err(|e| self.err(name, e))
        })?;
        self.lock_written(name, opts)
    }

    fn transactions(&self) -> Option<Transactions> {
        let n = |c: usize| self.calls[c].load(Ordering::Relaxed);
        Some(Transactions {
            class_a: n(WRITES),
            class_b: n(READS),
            class_c: n(LISTS),
        })
    }

    /// A conditional PUT (`If-None-Match: *`): of two racing writers exactly one wins.
    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        validate_name(name)?;
        self.count(WRITES, 1);
        self.rt
            .block_on(async {
                self.op
                    .write_with(name, data.to_vec())
                    .if_not_exists(true)
                    .await
            })
            .map(drop)
            .map_err(|e| self.err(name, e))
    }

    /// S3 deletes a missing key without complaint; cairn's contract reports it, so a
    /// removal that found nothing (someone else's, or a wrong name) is not mistaken for
    /// one that happened.
    fn remove(&self, name: &str) -> Result<(), BackendError> {
        self.stat(name)?;
        self.count(WRITES, 1);
        self.rt
            .block_on(self.op.delete(name))
            .map_err(|e| self.err(name, e))
    }

    fn is_local(&self) -> bool {
        false
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    /// Asks the bucket's Object Lock setting (one read).
    fn lock_refused(&self) -> Option<String> {
        self.count(READS, 1);
        self.rt.block_on(self.signed.refused())
    }

    /// Reads the current version's date (a HEAD) and sets a later one where needed
    /// (a PUT ?retention): a lock is never shortened.
    fn set_retention(
        &self,
        name: &str,
        retention: &cairn_backend::Retention,
    ) -> Result<bool, BackendError> {
        validate_name(name)?;
        self.count(READS, 1);
        if self.rt.block_on(self.signed.set(name, retention))? {
            self.count(WRITES, 1);
        }
        Ok(true)
    }

    /// Bucket names are unique per endpoint (AWS's across all of AWS).
    fn bucket(&self) -> Option<(String, String)> {
        let store = self.loc.endpoint.as_deref().unwrap_or("aws");
        Some((
            format!("s3:{store}/{}", self.loc.bucket),
            self.loc.prefix.clone(),
        ))
    }

    /// A listing gives the upload time; the file's own is one HEAD away.
    fn listing_has_modtimes(&self) -> bool {
        false
    }

    /// The ETag of a single-part upload, or a multipart upload's Md5chksum (a HEAD).
    fn hashes(&self) -> &'static [cairn_backend::HashKind] {
        &[cairn_backend::HashKind::Md5]
    }

    fn can_set_mtime(&self) -> bool {
        true
    }

    /// A copy onto itself with the new time (a HEAD and a CopyObject, no bytes moved).
    fn set_mtime(&self, name: &str, millis: i64, nanos: Option<i64>) -> Result<(), BackendError> {
        validate_name(name)?;
        let text = mtime_text(nanos.unwrap_or(millis.saturating_mul(1_000_000)));
        self.count(READS, 1);
        self.count(WRITES, 1);
        self.rt.block_on(self.signed.set_mtime(name, &text))
    }
}

/// One line for a person: the store's own error code and message where S3 sent one
/// ("NoSuchBucket: The specified bucket does not exist"), else OpenDAL's kind and
/// message, without the request context (headers, URIs with query strings) it carries.
fn summary(e: &opendal::Error) -> String {
    let m = e.message();
    let field = |key: &str| {
        let start = m.find(&format!("{key}: \""))? + key.len() + 3;
        let len = m[start..].find('"')?;
        Some(m[start..start + len].to_string())
    };
    match (field("code"), field("message")) {
        (Some(code), Some(text)) if !code.is_empty() => format!("{code}: {text}"),
        _ if innermost(e).contains("signing credential") => {
            "no usable S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (see docs/s3.md)".to_string()
        }
        _ if crate::transport::tls_refused(e) => {
            let cause = innermost(e);
            let hint = if cause.contains("corrupt message") {
                "the endpoint does not answer in TLS: is it http rather than https?"
            } else {
                "the store's certificate is not trusted (if it comes from your own CA, set AWS_CA_BUNDLE to that CA's PEM file)"
            };
            format!("{cause}: {hint}")
        }
        _ if e.kind() == opendal::ErrorKind::Unexpected
            && std::error::Error::source(e).is_some() =>
        {
            format!("{}: {}", m.lines().next().unwrap_or(""), innermost(e))
        }
        _ => format!("{} ({})", m.lines().next().unwrap_or(""), e.kind()),
    }
}

/// The root cause under an error (connection refused, a certificate's fault), not
/// the layers' "send http request".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}
