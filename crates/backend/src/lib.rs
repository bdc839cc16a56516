//! The storage seam: a small object store over validated relative names.
//!
//! Design decisions:
//! - Synchronous on purpose. The engine is threads and bounded channels; the B2 backend
//!   wraps its async client behind this same trait with its own runtime.
//! - `write` takes the whole object. Repository objects are at most a pack (tens of MiB),
//!   and having the bytes in hand makes a retry free and a SHA1 cheap.
//! - Names are checked once, here, at the boundary ([`validate_name`]); backends never
//!   see `..` or absolute paths.
//! - The repository layout (`config`, `keys/`, `data/XX/`) lives in the repo crate; a
//!   backend only knows names.

/// The store's properties (how it lists times and hashes, whether it is local) for a
/// wrapper around another backend (`self.inner`): a wrapper that forgot one would make
/// an S3 listing's upload times look like file times.
macro_rules! forward_store_properties {
    () => {
        fn listing_has_modtimes(&self) -> bool {
            self.inner.listing_has_modtimes()
        }

        fn mtime_precision_millis(&self) -> i64 {
            self.inner.mtime_precision_millis()
        }

        fn hashes(&self) -> &'static [$crate::HashKind] {
            self.inner.hashes()
        }

        fn is_local(&self) -> bool {
            self.inner.is_local()
        }
    };
}
pub(crate) use forward_store_properties;

mod cache;
mod conformance;
mod dry_run;
mod error;
mod local;
mod rclone_names;
mod retention;
pub mod secret_env;
pub mod testing;

pub use cache::{write_private, CachedBackend};
pub use conformance::run_conformance;
pub use dry_run::DryRun;
pub use error::{BackendError, ErrorKind};
pub use local::LocalBackend;
pub use rclone_names::Encoding;
pub use retention::{now_millis, show_millis, LockPeriod, Retaining};

/// One stored object as a listing reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative name with `/` separators, e.g. `data/ab/ab12...`.
    pub name: String,
    pub size: u64,
    /// Modification time in milliseconds since the epoch, where the store keeps one.
    pub mtime_millis: Option<i64>,
    /// The same to the nanosecond, where the store keeps that (local files).
    pub mtime_nanos: Option<i64>,
    /// Hex SHA1 of the content, where the store keeps one (B2 does).
    pub sha1: Option<String>,
    /// Hex MD5 of the content, where the store keeps one (S3: the ETag of a single-part
    /// upload, or rclone's `X-Amz-Meta-Md5chksum` of a multipart one).
    pub md5: Option<String>,
    /// Until when (milliseconds since the epoch) the store refuses to delete or change
    /// it (B2 Object Lock), where the store says.
    pub retain_until_millis: Option<i64>,
}

/// How strictly a file is locked: governance retention can be lifted by a key with
/// `bypassGovernance`; compliance retention by nobody, only extended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LockMode {
    #[default]
    Governance,
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }

    pub fn parse(s: &str) -> Result<LockMode, String> {
        match s {
            "governance" => Ok(LockMode::Governance),
            "compliance" => Ok(LockMode::Compliance),
            other => Err(format!(
                "invalid lock mode {other:?}: expected governance or compliance"
            )),
        }
    }
}

/// Object Lock retention for a file: nobody deletes or overwrites it before `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    /// Milliseconds since the epoch.
    pub until_millis: i64,
}

/// One stored version of an object, where the store keeps old versions (B2): what an
/// overwrite or a hide leaves behind, and what `repair versions` brings back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The object's name, as [`Backend::list`] gives names.
    pub name: String,
    /// The store's own ID of this version.
    pub id: String,
    /// A hide marker (the object looks deleted from here on), not content.
    pub hidden: bool,
    pub size: u64,
    pub uploaded_millis: i64,
    /// SHA1 of the bytes, where the store keeps one: equal for a copy of a version.
    pub sha1: Option<String>,
    /// Object Lock on this version, if the key may see it.
    pub retention: Option<Retention>,
}

/// A content hash a store can state without its bytes being downloaded: what sync
/// compares two sides by when it is one both know (as rclone's common hash type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKind {
    Sha1,
    Md5,
}

/// Extra metadata for stores that keep it (B2, rclone compatibility); local ignores it.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub mtime_millis: Option<i64>,
    /// Preferred over `mtime_millis` by stores that keep nanoseconds.
    pub mtime_nanos: Option<i64>,
    pub sha1: Option<String>,
    /// Hex MD5 of the bytes, where the writer knows it: S3 keeps it for a multipart
    /// upload in rclone's `X-Amz-Meta-Md5chksum`, since such an upload's ETag is no MD5.
    pub md5: Option<String>,
    /// MIME type for stores that keep one (B2); `application/octet-stream` otherwise.
    pub content_type: Option<String>,
    /// Object Lock retention from the moment the file is stored, where the store has
    /// it (see [`Backend::lock_refused`]).
    pub retention: Option<Retention>,
}

/// Calls made to a store that bills per call, by Backblaze's billing classes (A: writes
/// and deletes, B: downloads, C: listings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transactions {
    pub class_a: u64,
    pub class_b: u64,
    pub class_c: u64,
}

impl std::ops::AddAssign for Transactions {
    fn add_assign(&mut self, o: Transactions) {
        self.class_a += o.class_a;
        self.class_b += o.class_b;
        self.class_c += o.class_c;
    }
}

/// The owned, shareable bytes [`Backend::write_bytes`] takes.
pub use bytes::Bytes;

/// A store of immutable named objects. Every method's contract holds for every backend;
/// `run_conformance` checks it.
pub trait Backend: Send + Sync {
    /// Where this is, for humans; never contains a secret.
    fn location(&self) -> String;

    /// Creates the store itself (directory, bucket prefix). Only `init` calls this, so a
    /// missing repository is never created by accident.
    fn create(&self) -> Result<(), BackendError>;

    /// Whether the store itself (directory, bucket) exists, so a destination named with
    /// a typo is reported instead of created. The default asks for a listing.
    fn exists(&self) -> Result<bool, BackendError> {
        match self.list("config") {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every object whose name starts with `prefix`, in no particular order. Objects being
    /// written are not listed.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError>;

    /// Size (and, where kept, mtime/SHA1) of one object; `NotFound` if absent.
    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError>;

    /// The whole object.
    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError>;

    /// [`Backend::read`] into `buf`, replacing what it held: a caller moving many files
    /// reuses one allocation instead of faulting in fresh pages for each (on a 2-core
    /// machine, that cost as much kernel time as the copy itself).
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> Result<(), BackendError> {
        *buf = self.read(name)?;
        Ok(())
    }

    /// Exactly `length` bytes at `offset`; fewer bytes is an error of kind `Corrupt`.
    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError>;

    /// Stores `data` under `name` atomically: readers see the old object (or none) or the
    /// whole new one, never a part, and it is durable when this returns.
    fn write(&self, name: &str, data: &[u8], opts: &WriteOptions) -> Result<(), BackendError>;

    /// [`Backend::write`] of bytes the caller gives up: a backend that needs them past
    /// the call (an HTTP body) shares them instead of copying, and the caller can take
    /// the allocation back afterwards (`Bytes::try_into_mut`) for its next file.
    fn write_bytes(
        &self,
        name: &str,
        data: bytes::Bytes,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.write(name, &data, opts)
    }

    /// [`Backend::write`] of the concatenation of `parts`. A new pack is a few hundred
    /// sealed blobs; writing them where they lie saves holding a second, contiguous
    /// copy of every pack (16 MiB of a backup's peak memory, more when two threads
    /// finish packs at once). Where `opts.sha1` is given the bytes are checked against
    /// it first, as [`Backend::write_stream`] does. The default concatenates; backends
    /// that can write pieces override it.
    fn write_parts(
        &self,
        name: &str,
        parts: &[&[u8]],
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        let data = parts.concat();
        if let Some(want) = &opts.sha1 {
            check_sha1(name, &sha1_hex(&data), want)?;
        }
        self.write(name, &data, opts)
    }

    /// Stores `size` bytes that `source(offset, length)` hands out piece by piece, with
    /// the same atomicity as [`Backend::write`], so a file larger than memory can be
    /// copied without holding it whole. Where `opts.sha1` is given the stored bytes are
    /// checked against it and a mismatch is a `Corrupt` error that stores nothing.
    /// The default reads everything first; backends that can do better override it.
    fn write_stream(
        &self,
        name: &str,
        size: u64,
        source: &RangeSource<'_>,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        let data = source(0, size)?;
        if let Some(want) = &opts.sha1 {
            check_sha1(name, &sha1_hex(&data), want)?;
        }
        self.write(name, &data, opts)
    }

    /// Stores `data` under `name` only if nothing is stored there yet: of two racing
    /// calls exactly one succeeds, and the other fails with `AlreadyExists` and leaves
    /// nothing behind. How `init` keeps two inits from both creating a repository in
    /// one place. The default looks, then writes (not atomic); every backend cairn ships
    /// overrides it.
    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        match self.stat(name) {
            Ok(_) => Err(BackendError::new(
                ErrorKind::AlreadyExists,
                name,
                "already exists",
            )),
            Err(e) if e.is_not_found() => self.write(name, data, &WriteOptions::default()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the object; `NotFound` if it was not there.
    fn remove(&self, name: &str) -> Result<(), BackendError>;

    // ---- optional abilities: the defaults say the store has none ----

    /// How a file tree's relative path is spelled as an object name here, so a sync
    /// and rclone name files alike (rclone's encoding on B2). Repository names need no
    /// encoding: they are the same under every spelling.
    fn encode_path(&self, path: &str) -> String {
        path.to_string()
    }

    /// The path an object name here stands for: the inverse of [`Backend::encode_path`].
    fn decode_path(&self, name: &str) -> String {
        name.to_string()
    }

    /// A store on this machine's disks: reading a whole object costs no transfer (a
    /// sync may compute a SHA1 by reading), and an empty directory is still a place.
    fn is_local(&self) -> bool {
        false
    }

    /// Why these credentials may not delete objects here (a B2 application key without
    /// `deleteFiles`: an append-only key), or `None` when they may. Commands that must
    /// delete ask first and refuse before changing anything.
    fn delete_refused(&self) -> Option<String> {
        None
    }

    /// Why files cannot be put under retention here (a store without object lock, a B2
    /// bucket created without file lock, a key without `writeFileRetentions`), or
    /// `None` when they can.
    fn lock_refused(&self) -> Option<String> {
        Some(format!(
            "{} cannot lock files (only a B2 bucket with file lock enabled, or an S3 bucket with Object Lock, can)",
            self.location()
        ))
    }

    /// Deletes every version of the files under `prefix` that are hidden (a hide marker
    /// newest: what `remove_or_hide` leaves with a key that may not delete, or a removal
    /// of a locked file) and that `chosen` picks by name, unless a version is still
    /// locked; returns how many files went. Stores without hiding have none.
    fn purge_hidden(
        &self,
        _prefix: &str,
        _chosen: &dyn Fn(&str) -> bool,
    ) -> Result<u64, BackendError> {
        Ok(0)
    }

    /// Sets (or extends) a stored file's retention; `Ok(false)` where the store has no
    /// object lock.
    fn set_retention(&self, _name: &str, _retention: &Retention) -> Result<bool, BackendError> {
        Ok(false)
    }

    /// Every version of the objects under `prefix`, newest first within a name, with
    /// hide markers; `None` where the store keeps no old versions.
    fn versions(&self, _prefix: &str) -> Result<Option<Vec<Version>>, BackendError> {
        Ok(None)
    }

    /// The bytes of one version [`Backend::versions`] listed.
    fn read_version(&self, v: &Version) -> Result<Vec<u8>, BackendError> {
        Err(BackendError::new(
            ErrorKind::Other,
            &v.name,
            "this store keeps no old versions",
        ))
    }

    /// Makes version `v` the object's newest again, as a new version (nothing is
    /// deleted, so a key that may only write can do it).
    fn restore_version(&self, v: &Version) -> Result<(), BackendError> {
        Err(BackendError::new(
            ErrorKind::Other,
            &v.name,
            "this store keeps no old versions",
        ))
    }

    /// For a store of buckets: which bucket (named with its store, so two stores'
    /// buckets never compare equal) and the prefix inside it, without leading or
    /// trailing `/`. Sync refuses a source and destination where one holds the other.
    /// `None` for a local directory (compared by its real path instead).
    fn bucket(&self) -> Option<(String, String)> {
        None
    }

    /// Whether [`Backend::list`] gives each file's own modification time. Where it
    /// does not (S3 lists the upload time and keeps the file's in its metadata),
    /// [`Backend::stat`] does, one call per file: sync asks only where it must.
    fn listing_has_modtimes(&self) -> bool {
        true
    }

    /// The hashes [`Backend::list`] (or, where it lacks one, [`Backend::stat`]) gives
    /// without the bytes being read from the store, best first. A local directory
    /// computes either by reading its own disk.
    fn hashes(&self) -> &'static [HashKind] {
        &[]
    }

    /// How finely the store keeps modification times, in milliseconds: sync counts
    /// two times closer than the coarser side's precision as equal (SFTP keeps
    /// seconds).
    fn mtime_precision_millis(&self) -> i64 {
        1
    }

    /// Whether [`Backend::set_mtime`] works here.
    fn can_set_mtime(&self) -> bool {
        false
    }

    /// Sets a stored object's modification time (milliseconds, and nanoseconds where the
    /// caller has them) without rewriting its bytes: how a sync fixes a time when the
    /// content already matches.
    fn set_mtime(&self, name: &str, _millis: i64, _nanos: Option<i64>) -> Result<(), BackendError> {
        Err(BackendError::new(
            ErrorKind::Other,
            name,
            "this store keeps no modification times",
        ))
    }

    /// Hides the object (the store keeps it as an old version) instead of deleting it;
    /// `Ok(false)` where the store cannot, or is configured not to, and the caller deletes.
    fn hide(&self, _name: &str) -> Result<bool, BackendError> {
        Ok(false)
    }

    /// Copies `src`'s object `from` to `to` here without the bytes passing through this
    /// machine; `Ok(false)` when this pair of stores cannot, and the caller copies.
    fn copy_from(&self, _src: &dyn Backend, _from: &str, _to: &str) -> Result<bool, BackendError> {
        Ok(false)
    }

    /// Calls made so far, where the store bills per call.
    fn transactions(&self) -> Option<Transactions> {
        None
    }

    /// The concrete store, for abilities that need both ends to be of one kind (a
    /// server-side copy between two B2 buckets of one account).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// What writes that never finished left behind (a process killed mid-write): never
    /// objects, never in [`Backend::list`], but they take space. Only a store that keeps
    /// such leftovers under names of its own lists any.
    fn list_partial(&self, _prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        Ok(Vec::new())
    }

    /// Deletes one leftover [`Backend::list_partial`] named; refuses any other name.
    fn remove_partial(&self, name: &str) -> Result<(), BackendError> {
        Err(BackendError::new(
            ErrorKind::InvalidName,
            name,
            "this store keeps no partial writes",
        ))
    }
}

/// Removes `name`, or, where these credentials may not delete, hides it (on B2 a hide
/// marker, which needs only `writeFiles`; listings no longer show the file). How a
/// command with an append-only key removes its own lock.
pub fn remove_or_hide(b: &dyn Backend, name: &str) -> Result<(), BackendError> {
    match b.delete_refused() {
        None => b.remove(name),
        Some(why) => match b.hide(name)? {
            true => Ok(()),
            false => Err(BackendError::new(ErrorKind::PermissionDenied, name, why)),
        },
    }
}

/// Hands out `length` bytes at `offset` of the object being copied.
pub type RangeSource<'a> = dyn Fn(u64, u64) -> Result<Vec<u8>, BackendError> + Sync + 'a;

/// Pieces [`Backend::write_stream`] asks a source for: big enough to keep a disk or a
/// connection busy, small enough that a few in flight stay far below memory.
pub const STREAM_PIECE: u64 = 16 * 1024 * 1024;

pub fn sha1_hex(data: &[u8]) -> String {
    cairn_sha1::hex(data)
}

/// Hex SHA1 of `size` bytes a source hands out, read in STREAM_PIECE ranges (never
/// whole in memory).
pub fn source_sha1(size: u64, source: &RangeSource<'_>) -> Result<String, BackendError> {
    let mut h = cairn_sha1::Sha1::new();
    let mut off = 0;
    while off < size {
        let piece = source(off, STREAM_PIECE.min(size - off))?;
        if piece.is_empty() {
            return Err(BackendError::new(
                ErrorKind::Corrupt,
                "source",
                "ended early",
            ));
        }
        h.update(&piece);
        off += piece.len() as u64;
    }
    Ok(h.finish_hex())
}

/// Hex SHA1 of a stored object of `size` bytes.
pub fn object_sha1(b: &dyn Backend, name: &str, size: u64) -> Result<String, BackendError> {
    source_sha1(size, &|off, len| b.read_range(name, off, len))
}

/// Hex MD5 of a stored object of `size` bytes, read in STREAM_PIECE ranges.
pub fn object_md5(b: &dyn Backend, name: &str, size: u64) -> Result<String, BackendError> {
    use md5::Digest;
    let mut h = md5::Md5::new();
    let mut off = 0;
    while off < size {
        let piece = b.read_range(name, off, STREAM_PIECE.min(size - off))?;
        if piece.is_empty() {
            return Err(BackendError::new(ErrorKind::Corrupt, name, "ended early"));
        }
        h.update(&piece);
        off += piece.len() as u64;
    }
    Ok(hex::encode(h.finalize()))
}

/// A `Corrupt` error unless the two hex SHA1s agree (case aside).
pub fn check_sha1(name: &str, got: &str, want: &str) -> Result<(), BackendError> {
    if got.eq_ignore_ascii_case(want) {
        return Ok(());
    }
    Err(BackendError::new(
        ErrorKind::Corrupt,
        name,
        format!("SHA1 mismatch: expected {want}, got {got}"),
    ))
}

/// The quote that marks escapes in object names of local files (rclone's U+201B).
pub const NAME_QUOTE: char = '\u{201B}';

/// The object name of a local file name that may not be UTF-8: each byte that is not
/// part of valid UTF-8 becomes the quote and two hex digits (rclone's spelling of such
/// bytes on B2), and a literal quote is doubled, so [`os_name`] gives the bytes back.
pub fn escape_os_name(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == NAME_QUOTE {
                out.push(NAME_QUOTE);
            }
            out.push(c);
        }
        for b in chunk.invalid() {
            out.push(NAME_QUOTE);
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// The file-name bytes for an object name ([`escape_os_name`] reversed). Only what
/// [`escape_os_name`] writes is decoded: a doubled quote, and a quote with two hex digits
/// of a byte that cannot start or continue UTF-8 on its own (0x80 and up). Any other
/// quote stands for itself, so `‛2E‛2E` (`..`), `‛2F` (`/`) and `‛00` (NUL) planted in
/// a bucket stay the harmless text they are.
pub fn os_name(name: &str) -> std::borrow::Cow<'_, [u8]> {
    if !name.contains(NAME_QUOTE) {
        return std::borrow::Cow::Borrowed(name.as_bytes());
    }
    let mut out = Vec::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find(NAME_QUOTE) {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let after = &rest[i + NAME_QUOTE.len_utf8()..];
        if let Some(tail) = after.strip_prefix(NAME_QUOTE) {
            out.extend_from_slice(NAME_QUOTE.to_string().as_bytes());
            rest = tail;
        } else if let Some(b) = after
            .get(..2)
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .filter(|b| *b >= 0x80)
        {
            out.push(b);
            rest = &after[2..];
        } else {
            out.extend_from_slice(NAME_QUOTE.to_string().as_bytes());
            rest = after;
        }
    }
    out.extend_from_slice(rest.as_bytes());
    std::borrow::Cow::Owned(out)
}

/// The file-name bytes of an object name, relative to a store's root, checked after
/// decoding: the one place a name becomes a path (local stores, the metadata cache).
/// Every component is non-empty, not `.` or `..`, without NUL, and no escape made a `/`.
pub fn path_bytes(name: &str) -> Result<std::borrow::Cow<'_, [u8]>, BackendError> {
    validate_name(name)?;
    let raw = os_name(name);
    let components = raw.split(|b| *b == b'/');
    let bad = raw.first() == Some(&b'/')
        || raw.contains(&0)
        || name.split('/').count() != raw.split(|b| *b == b'/').count()
        || components
            .clone()
            .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(BackendError::new(
            ErrorKind::InvalidName,
            name,
            "object name is not a safe path",
        ));
    }
    Ok(raw)
}

/// Whether a name read from a store can become a path without leaving the root.
pub fn is_safe_name(name: &str) -> bool {
    path_bytes(name).is_ok()
}

/// Accepts relative names made of non-empty components without `.`/`..` or NUL, so no
/// name can reach outside the store's root. (A backslash is an ordinary character in a
/// Unix file name; `sync` must carry it.)
pub fn validate_name(name: &str) -> Result<(), BackendError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\0')
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(BackendError::new(
            ErrorKind::InvalidName,
            name,
            "invalid object name",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_names_round_trip() {
        for raw in [
            &b"plain"[..],
            b"bad\xfe\xffbyte",
            "quote\u{201B}41".as_bytes(),
            b"\xe2\x80",
            "\u{201B}".as_bytes(),
        ] {
            let name = escape_os_name(raw);
            assert_eq!(&*os_name(&name), raw, "{name:?}");
        }
        assert_eq!(escape_os_name(b"bad\xfe"), "bad\u{201B}FE");
        assert_eq!(&*os_name("lone\u{201B}x"), "lone\u{201B}x".as_bytes());
    }

    /// Issue 19.1: escapes of ASCII planted in a bucket decode to nothing but text.
    #[test]
    fn escapes_cannot_make_dots_slashes_or_nul() {
        let q = NAME_QUOTE;
        for (name, raw) in [
            (
                format!("x/{q}2E{q}2E/{q}2E{q}2E/pwned.txt"),
                format!("x/{q}2E{q}2E/{q}2E{q}2E/pwned.txt"),
            ),
            (format!("a{q}2Fb"), format!("a{q}2Fb")),
            (format!("nul{q}00"), format!("nul{q}00")),
            (
                format!("{q}2Fetc{q}2Fpasswd"),
                format!("{q}2Fetc{q}2Fpasswd"),
            ),
        ] {
            assert_eq!(&*os_name(&name), raw.as_bytes(), "{name}");
            let p = path_bytes(&name).unwrap();
            assert!(
                !p.split(|b| *b == b'/')
                    .any(|c| c == b".." || c == b"." || c.contains(&0)),
                "{name}"
            );
        }
        assert_eq!(&*os_name(&format!("bad{q}FE")), b"bad\xfe");
        for bad in ["../x", "a/../b", "/abs", "a//b", "a/\0"] {
            assert!(!is_safe_name(bad), "{bad}");
        }
        assert!(is_safe_name("data/ab/cd") && is_safe_name(&format!("{q}2E{q}2E")));
    }

    #[test]
    fn names() {
        for ok in ["config", "data/ab/abcd", "keys/x", "back\\slash"] {
            assert!(super::validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "data/../x",
            "a//b",
            "a/",
            "a/./b",
            "a/\0",
        ] {
            assert!(super::validate_name(bad).is_err(), "{bad}");
        }
    }
}
