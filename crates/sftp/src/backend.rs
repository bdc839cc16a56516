//! One SFTP session over the user's ssh behind cairn's blocking `Backend` trait.

use std::io::SeekFrom;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_backend::{
    check_sha1, sha1_hex, validate_name, Backend, BackendError, ErrorKind, ObjectInfo, WriteOptions,
};
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::{Error as SftpError, Sftp, SftpOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::SftpLocation;

/// Attempts per call when the connection fails (ssh is started again each time).
const ATTEMPTS: u32 = 8;
/// What a temporary file's name starts with: never a repository name, so listings
/// leave it out and `list_partial` finds it.
const TEMP: &str = ".cairn-tmp-";
/// Directory depth a listing descends to (a repository is two deep): a server with a
/// loop of directories cannot keep it walking.
const MAX_DEPTH: usize = 8;
/// The largest file read whole (packs are far smaller; bigger files go by ranges).
const MAX_WHOLE_READ: u64 = 4 << 30;

/// A live session: the SFTP client and the ssh process it talks through.
struct Session {
    sftp: Sftp,
    /// Killed when the session goes (`kill_on_drop`).
    _ssh: tokio::process::Child,
}

pub struct SftpBackend {
    rt: tokio::runtime::Runtime,
    loc: SftpLocation,
    session: Mutex<Option<Arc<Session>>>,
    /// Makes temporary names unique within this process.
    counter: AtomicU64,
}

impl std::fmt::Debug for SftpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpBackend")
            .field("location", &self.loc.display())
            .finish_non_exhaustive()
    }
}

/// Why a call failed: on the server (a missing file, a refusal: final), or on the way
/// there (ssh died, the link dropped: worth a new session).
enum Failure {
    Server(BackendError),
    Link(String),
}

impl SftpBackend {
    /// The backend for `loc`. Nothing is started until the first call.
    pub fn new(loc: &SftpLocation) -> Result<SftpBackend, BackendError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError::io(loc.display(), e))?;
        Ok(SftpBackend {
            rt,
            loc: loc.clone(),
            session: Mutex::new(None),
            counter: AtomicU64::new(0),
        })
    }

    /// The server-side path of `name` (the repository's directory for "").
    fn full(&self, name: &str) -> String {
        join(&self.loc.path, name)
    }

    /// Starts ssh and the SFTP session over it. A refusal ssh states (a key, a host
    /// key) is final; a connection that could not be made is worth another try.
    async fn connect(&self) -> Result<Session, Failure> {
        let argv = self.loc.argv();
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            Failure::Server(BackendError::new(
                ErrorKind::Other,
                self.loc.display(),
                format!("cannot start {}: {e}", argv[0]),
            ))
        })?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let mut stderr = child.stderr.take();
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            return Err(Failure::Link("ssh started without pipes".into()));
        };
        match Sftp::new(stdin, stdout, SftpOptions::default()).await {
            Ok(sftp) => {
                // ssh's own messages after this (a warning, a dropped link) go to the
                // log, never to the pipe, which would fill and stall ssh.
                if let Some(mut e) = stderr.take() {
                    tokio::spawn(async move {
                        let mut text = String::new();
                        let _ = e.read_to_string(&mut text).await;
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            tracing::info!("ssh: {line}");
                        }
                    });
                }
                Ok(Session { sftp, _ssh: child })
            }
            Err(e) => {
                let _ = child.wait().await;
                let mut said = String::new();
                if let Some(mut err) = stderr {
                    let _ = err.read_to_string(&mut said).await;
                }
                let said = said
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("the SFTP session did not start: {e}"));
                Err(classify_ssh(&self.loc.display(), said))
            }
        }
    }

    async fn session(&self) -> Result<Arc<Session>, Failure> {
        if let Some(s) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(s);
        }
        let s = Arc::new(self.connect().await?);
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&s));
        Ok(s)
    }

    /// Runs `op` on a session; when the link fails, starts a new session and runs it
    /// again (the operations are all safe to repeat), with pauses up to 5 s.
    fn call<T, F, Fut>(&self, name: &str, op: F) -> Result<T, BackendError>
    where
        F: Fn(Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SftpError>>,
    {
        self.rt.block_on(async {
            let mut attempt = 0;
            loop {
                let failure = match self.session().await {
                    Ok(s) => match op(s).await {
                        Ok(v) => return Ok(v),
                        Err(e) => self.failure(name, e),
                    },
                    Err(f) => f,
                };
                let why = match failure {
                    Failure::Server(e) => return Err(e),
                    Failure::Link(why) => why,
                };
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
                attempt += 1;
                if attempt >= ATTEMPTS {
                    return Err(BackendError::new(
                        ErrorKind::Transient,
                        self.object(name),
                        why,
                    ));
                }
                tracing::info!(
                    "{}: {why}; attempt {attempt} of {ATTEMPTS} failed, connecting again",
                    self.object(name)
                );
                tokio::time::sleep(Duration::from_millis((250u64 << attempt.min(5)).min(5000)))
                    .await;
            }
        })
    }

    /// How `name` is shown in an error: the location, then the name.
    fn object(&self, name: &str) -> String {
        join(&self.loc.display(), name)
    }

    /// Removes the file at `name` (already checked by the caller).
    fn remove_file(&self, name: &str) -> Result<(), BackendError> {
        let full = self.full(name);
        self.call(name, |s| {
            let full = full.clone();
            async move { s.sftp.fs().remove_file(&full).await }
        })
    }

    fn failure(&self, name: &str, e: SftpError) -> Failure {
        let object = self.object(name);
        match e {
            SftpError::SftpError(kind, msg) => {
                let kind = match kind {
                    SftpErrorKind::NoSuchFile => ErrorKind::NotFound,
                    SftpErrorKind::PermDenied => ErrorKind::PermissionDenied,
                    _ => ErrorKind::Other,
                };
                let text = msg.to_string();
                let text = match kind {
                    ErrorKind::NotFound => "no such file".to_string(),
                    ErrorKind::PermissionDenied => format!(
                        "permission denied ({text}): the SSH user may not do this in this directory"
                    ),
                    _ => text,
                };
                Failure::Server(BackendError::new(kind, object, text))
            }
            SftpError::UnsupportedExtension(ext) => Failure::Server(BackendError::new(
                ErrorKind::Other,
                object,
                format!("the SFTP server lacks the {ext} extension (OpenSSH has it)"),
            )),
            other => Failure::Link(other.to_string()),
        }
    }

    /// `mkdir -p` of `dir` (a full path): each missing component made, one that is
    /// there (made by a racing writer too) is fine.
    async fn make_dirs(s: &Session, dir: &str) -> Result<(), SftpError> {
        let mut fs = s.sftp.fs();
        if fs.metadata(dir).await.is_ok() {
            return Ok(());
        }
        let mut at = String::new();
        for (i, part) in dir.split('/').enumerate() {
            if i > 0 {
                at.push('/');
            }
            at.push_str(part);
            if part.is_empty() || part == "." {
                continue;
            }
            if let Err(e) = fs.create_dir(&at).await {
                if fs.metadata(&at).await.is_err() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn temp_name(&self, full: &str) -> String {
        let dir = full.rsplit_once('/').map_or("", |(d, _)| d);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let base = format!("{TEMP}{:x}-{n:x}-{nanos:x}", std::process::id());
        if dir.is_empty() {
            base
        } else {
            format!("{dir}/{base}")
        }
    }

    /// Writes `data` under a temporary name beside `full`, on the disk before it
    /// returns; the caller then renames or links it into place.
    async fn write_temp(
        s: &Session,
        temp: &str,
        data: &[u8],
        mtime_millis: Option<i64>,
    ) -> Result<(), SftpError> {
        let open = || async {
            s.sftp
                .options()
                .write(true)
                .create_new(true)
                .open(temp)
                .await
        };
        let mut f = match open().await {
            Ok(f) => f,
            Err(SftpError::SftpError(SftpErrorKind::NoSuchFile, _)) => {
                if let Some((dir, _)) = temp.rsplit_once('/') {
                    Self::make_dirs(s, dir).await?;
                }
                open().await?
            }
            Err(e) => return Err(e),
        };
        let written = async {
            f.write_all(data).await?;
            // The file's time where the caller has one (sync), to the second as SFTP
            // keeps it; rclone's sftp remote does the same.
            let secs = mtime_millis
                .map(|ms| ms.div_euclid(1000))
                .and_then(|s| u32::try_from(s).ok())
                .and_then(openssh_sftp_client::UnixTimeStamp::from_raw);
            if let Some(t) = secs {
                f.set_metadata(
                    openssh_sftp_client::metadata::MetaDataBuilder::new()
                        .time(t, t)
                        .create(),
                )
                .await?;
            }
            if s.sftp.support_fsync() {
                f.sync_all().await?;
            }
            Ok::<_, SftpError>(())
        }
        .await;
        let closed = f.close().await;
        match written.and(closed) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = s.sftp.fs().remove_file(temp).await;
                Err(e)
            }
        }
    }

    /// Reads `length` bytes at `offset` of the open file, piece by piece at offsets it
    /// sets itself; `None` when the file ends first.
    async fn read_at(
        f: &mut openssh_sftp_client::file::File,
        offset: u64,
        length: u64,
    ) -> Result<Option<Vec<u8>>, SftpError> {
        let mut out = Vec::with_capacity(length.min(64 << 20) as usize);
        let mut at = offset;
        let end = offset + length;
        while at < end {
            f.seek(SeekFrom::Start(at)).await?;
            // The client caps a request at the server's limit; each piece is placed by
            // the offset set above, whatever its length.
            let want = (end - at).min(1 << 20) as u32;
            match f.read(want, bytes::BytesMut::new()).await? {
                Some(piece) if !piece.is_empty() => {
                    let got = (piece.len() as u64).min(end - at);
                    out.extend_from_slice(&piece[..got as usize]);
                    at += got;
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    fn info(name: String, m: &openssh_sftp_client::metadata::MetaData) -> ObjectInfo {
        ObjectInfo {
            name,
            size: m.len().unwrap_or(0),
            mtime_millis: m
                .modified()
                .map(|t| i64::from(t.into_raw()).saturating_mul(1000)),
            mtime_nanos: None,
            sha1: None,
            md5: None,
            retain_until_millis: None,
        }
    }

    /// Every regular file under `dir` (relative `rel`), temporary ones in `temps`.
    async fn walk(
        s: &Session,
        dir: String,
        rel: String,
        out: &mut Vec<ObjectInfo>,
        temps: &mut Vec<ObjectInfo>,
    ) -> Result<(), SftpError> {
        use futures_util::StreamExt;
        let mut pending = vec![(dir, rel, 0usize)];
        while let Some((dir, rel, depth)) = pending.pop() {
            let d = match s.sftp.fs().open_dir(&dir).await {
                Ok(d) => d,
                Err(SftpError::SftpError(SftpErrorKind::NoSuchFile, _)) => continue,
                Err(e) => return Err(e),
            };
            let mut entries = Box::pin(d.read_dir());
            while let Some(entry) = entries.next().await {
                let entry = entry?;
                let Some(file_name) = entry.filename().to_str().map(str::to_string) else {
                    continue;
                };
                if file_name == "." || file_name == ".." {
                    continue;
                }
                let name = if rel.is_empty() {
                    file_name.clone()
                } else {
                    format!("{rel}/{file_name}")
                };
                let meta = entry.metadata();
                match meta.file_type() {
                    Some(t) if t.is_dir() && depth < MAX_DEPTH => {
                        pending.push((format!("{dir}/{file_name}"), name, depth + 1));
                    }
                    Some(t) if t.is_file() => {
                        if file_name.starts_with(TEMP) {
                            temps.push(Self::info(name, &meta));
                        } else if validate_name(&name).is_ok() {
                            out.push(Self::info(name, &meta));
                        }
                    }
                    // Links and devices are no repository's files.
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Files under `prefix` (and temporary leftovers there), starting at the deepest
    /// directory the prefix names.
    fn list_all(&self, prefix: &str) -> Result<(Vec<ObjectInfo>, Vec<ObjectInfo>), BackendError> {
        let start = prefix.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        let dir = self.full(&start);
        let (mut files, mut temps) = self.call(prefix, |s| {
            let (dir, start) = (dir.clone(), start.clone());
            async move {
                let (mut files, mut temps) = (Vec::new(), Vec::new());
                Self::walk(&s, dir, start, &mut files, &mut temps).await?;
                Ok((files, temps))
            }
        })?;
        files.retain(|o| o.name.starts_with(prefix));
        temps.retain(|o| o.name.starts_with(prefix));
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((files, temps))
    }
}

/// `base/name`, or `base` alone for the empty name.
fn join(base: &str, name: &str) -> String {
    if name.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// What ssh said when it could not start a session, as an error: its last line, which
/// names the cause ("Permission denied (publickey).", "Host key verification failed.",
/// "connect to host ... Connection refused").
fn classify_ssh(location: &str, said: String) -> Failure {
    let said = said.strip_prefix("ssh: ").unwrap_or(&said).to_string();
    let lower = said.to_ascii_lowercase();
    let final_kind = if lower.contains("permission denied") {
        Some(ErrorKind::Unauthorized)
    } else if lower.contains("host key")
        || lower.contains("could not resolve")
        || lower.contains("subsystem request failed")
        || lower.contains("cannot start")
    {
        Some(ErrorKind::Other)
    } else {
        None
    };
    match final_kind {
        Some(kind) => Failure::Server(BackendError::new(kind, location, format!("ssh: {said}"))),
        None => Failure::Link(format!("ssh: {said}")),
    }
}

impl Backend for SftpBackend {
    fn location(&self) -> String {
        self.loc.display()
    }

    fn create(&self) -> Result<(), BackendError> {
        let dir = self.full("");
        self.call("", |s| {
            let dir = dir.clone();
            async move { Self::make_dirs(&s, &dir).await }
        })
    }

    fn exists(&self) -> Result<bool, BackendError> {
        let dir = self.full("");
        let r = self.call("", |s| {
            let dir = dir.clone();
            async move { s.sftp.fs().metadata(&dir).await }
        });
        match r {
            Ok(m) => Ok(m.file_type().is_some_and(|t| t.is_dir())),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        Ok(self.list_all(prefix)?.0)
    }

    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        validate_name(name)?;
        let full = self.full(name);
        let m = self.call(name, |s| {
            let full = full.clone();
            async move { s.sftp.fs().metadata(&full).await }
        })?;
        if !m.file_type().is_some_and(|t| t.is_file()) {
            return Err(BackendError::new(
                ErrorKind::NotFound,
                self.object(name),
                "not a file",
            ));
        }
        Ok(Self::info(name.to_string(), &m))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        validate_name(name)?;
        let full = self.full(name);
        let data = self.call(name, |s| {
            let full = full.clone();
            async move {
                let mut f = s.sftp.open(&full).await?;
                let len = f.metadata().await?.len().unwrap_or(0);
                if len > MAX_WHOLE_READ {
                    return Ok(Err(len));
                }
                let data = Self::read_at(&mut f, 0, len).await?;
                let _ = f.close().await;
                Ok(Ok(data))
            }
        })?;
        match data {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(BackendError::new(
                ErrorKind::Corrupt,
                self.object(name),
                "short read: the file shrank while it was read",
            )),
            Err(len) => Err(BackendError::new(
                ErrorKind::Corrupt,
                self.object(name),
                format!("{len} bytes: larger than any repository file"),
            )),
        }
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        validate_name(name)?;
        offset.checked_add(length).ok_or_else(|| {
            BackendError::new(ErrorKind::Corrupt, name, "range past the end of any file")
        })?;
        let full = self.full(name);
        let data = self.call(name, |s| {
            let full = full.clone();
            async move {
                let mut f = s.sftp.open(&full).await?;
                let d = Self::read_at(&mut f, offset, length).await?;
                let _ = f.close().await;
                Ok(d)
            }
        })?;
        data.ok_or_else(|| {
            BackendError::new(
                ErrorKind::Corrupt,
                self.object(name),
                "short read: the file ends inside the range",
            )
        })
    }

    /// To a temporary name, flushed to disk, then renamed over `name` in one step.
    fn write(&self, name: &str, data: &[u8], opts: &WriteOptions) -> Result<(), BackendError> {
        validate_name(name)?;
        if let Some(want) = &opts.sha1 {
            check_sha1(name, &sha1_hex(data), want)?;
        }
        let full = self.full(name);
        let mtime = opts
            .mtime_millis
            .or(opts.mtime_nanos.map(|ns| ns.div_euclid(1_000_000)));
        self.call(name, |s| {
            let (full, temp) = (full.clone(), self.temp_name(&full));
            async move {
                Self::write_temp(&s, &temp, data, mtime).await?;
                let r = s.sftp.fs().rename(&temp, &full).await;
                if r.is_err() {
                    let _ = s.sftp.fs().remove_file(&temp).await;
                }
                r
            }
        })
    }

    /// To a temporary name, then hard-linked to `name`, which fails if `name` exists:
    /// of two racing writers exactly one wins, and nobody sees half a file.
    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        validate_name(name)?;
        let full = self.full(name);
        let linked = self.call(name, |s| {
            let (full, temp) = (full.clone(), self.temp_name(&full));
            async move {
                Self::write_temp(&s, &temp, data, None).await?;
                let mut fs = s.sftp.fs();
                let r = fs.hard_link(&temp, &full).await;
                let _ = fs.remove_file(&temp).await;
                match r {
                    Ok(()) => Ok(true),
                    // SFTP v3 has no "exists" status: a failed link to a name that is
                    // there is the name taken.
                    Err(SftpError::SftpError(SftpErrorKind::Failure, _))
                        if fs.metadata(&full).await.is_ok() =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            }
        })?;
        if linked {
            Ok(())
        } else {
            Err(BackendError::new(
                ErrorKind::AlreadyExists,
                self.object(name),
                "already exists",
            ))
        }
    }

    fn remove(&self, name: &str) -> Result<(), BackendError> {
        validate_name(name)?;
        self.remove_file(name)
    }

    fn is_local(&self) -> bool {
        false
    }

    fn list_partial(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        Ok(self.list_all(prefix)?.1)
    }

    fn remove_partial(&self, name: &str) -> Result<(), BackendError> {
        let base = name.rsplit('/').next().unwrap_or(name);
        if !base.starts_with(TEMP) || name.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(BackendError::new(
                ErrorKind::InvalidName,
                name,
                "not a leftover of an unfinished write",
            ));
        }
        self.remove_file(name)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    /// One server's file tree is one bucket. (A relative path and an absolute one
    /// may be the same directory: compared without the leading `/`, such a pair is
    /// taken to overlap, which refuses too much rather than too little.)
    fn bucket(&self) -> Option<(String, String)> {
        Some((
            format!("sftp:{}", self.loc.destination),
            self.loc.path.trim_start_matches('/').to_string(),
        ))
    }

    fn mtime_precision_millis(&self) -> i64 {
        1000
    }

    /// Names as rclone's sftp remote spells them (control characters as their
    /// Unicode pictures), so `sync` and rclone take turns on one server.
    fn encode_path(&self, path: &str) -> String {
        cairn_backend::Encoding::SFTP.encode_path(path)
    }

    fn decode_path(&self, name: &str) -> String {
        cairn_backend::Encoding::SFTP.decode_path(name)
    }
}
