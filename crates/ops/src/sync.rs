//! `sync SRC DST`: make DST hold what SRC holds, transferring only what differs, the
//! way `rclone sync` does, so the two tools can take turns on the same bucket.
//!
//! Each side is a `Backend`, which says how it spells a path (`encode_path`: rclone's
//! encoding on B2) and how it deletes (`hide` on B2, unless `--hard-delete`). Comparison is by size
//! and modification time (1 ms window, as rclone), by size only, or by the hash both
//! sides know (SHA1 on B2, MD5 on S3, either computed for a local file; never by
//! downloading). Deletions happen only
//! after every transfer succeeded. A transfer writes the whole object through the
//! backend, which never leaves a half-written file under its final name.

use std::collections::BTreeMap;

use cairn_backend::{Backend, HashKind, WriteOptions};

use crate::transfer::{Item, OnError, Transfer};
use crate::OpsError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compare {
    #[default]
    ModTime,
    Size,
    Checksum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Newer {
    /// A destination file newer than the source is an error for that file.
    #[default]
    Error,
    Skip,
    Replace,
}

#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    pub compare: Compare,
    pub newer: Newer,
    pub delete: bool,
    pub hard_delete: bool,
    pub transfers: usize,
    pub includes: Vec<regex::Regex>,
    pub excludes: Vec<regex::Regex>,
    pub dry_run: bool,
    /// Delete even when the source is empty, or more than the share in
    /// [`crate::delete_limit`] of the destination would go.
    pub allow_deletes: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncSummary {
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
    pub files_deleted: u64,
    /// Each path deleted (in a dry run: that would be).
    pub deleted: Vec<String>,
    /// In a dry run: why a real run would refuse to delete without `--allow-deletes`.
    pub refusal: Option<String>,
    pub files_skipped: u64,
    /// Unchanged files whose destination time was set to the source's (no transfer).
    pub files_touched: u64,
    pub errors: Vec<String>,
    /// Names in a listing that cannot be a safe path (`..`, an absolute path, NUL):
    /// skipped on both sides.
    pub unsafe_names: Vec<String>,
    /// What the user should know about how files were compared (one line each).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug)]
struct Entry {
    storage_name: String,
    size: u64,
    mtime: Option<i64>,
    mtime_ns: Option<i64>,
    sha1: Option<String>,
    md5: Option<String>,
}

fn wanted(opts: &SyncOptions, path: &str) -> bool {
    (opts.includes.is_empty() || opts.includes.iter().any(|r| r.is_match(path)))
        && !opts.excludes.iter().any(|r| r.is_match(path))
}

/// The side's files by path, and the names that cannot be a path on any side (a bucket
/// holds `x/../y` or `/etc/x` as easily as anything): those are left out, never written
/// or deleted anywhere, and reported. For the source (`must_exist`), a side that does
/// not exist is an error, as rclone's "directory not found": read as empty, a typo in
/// its name would make `--delete` empty the destination. A bucket has no empty
/// directories, so a B2 source with no files at all counts as missing too. A
/// destination that does not exist yet is empty.
fn list(
    side: &dyn Backend,
    opts: &SyncOptions,
    must_exist: bool,
) -> Result<(BTreeMap<String, Entry>, Vec<String>), OpsError> {
    let missing = || OpsError::NoSource(side.location());
    let objs = match side.list("") {
        Ok(o) if must_exist && o.is_empty() && !side.is_local() => return Err(missing()),
        Ok(o) => o,
        Err(e) if e.is_not_found() && must_exist => return Err(missing()),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(cairn_repo::RepoError::from(e).into()),
    };
    let mut unsafe_names = Vec::new();
    let mut out = BTreeMap::new();
    // A time that is only the upload's (S3's listing) is no file's time: left unknown
    // until `fill_modtimes` reads the real one.
    let listed_times = side.listing_has_modtimes();
    for o in objs {
        let path = side.decode_path(&o.name);
        if !cairn_backend::is_safe_name(&path) {
            unsafe_names.push(o.name);
            continue;
        }
        if wanted(opts, &path) {
            out.insert(
                path,
                Entry {
                    storage_name: o.name,
                    size: o.size,
                    mtime: o.mtime_millis.filter(|_| listed_times),
                    mtime_ns: o.mtime_nanos.filter(|_| listed_times),
                    sha1: o.sha1,
                    md5: o.md5,
                },
            );
        }
    }
    Ok((out, unsafe_names))
}

/// The hash both sides state without a download, best first, as rclone's common hash
/// type: SHA1 between B2 and a directory, MD5 between S3 and a directory, none with
/// SFTP or between B2 and S3.
fn common_hash(src: &dyn Backend, dst: &dyn Backend) -> Option<HashKind> {
    src.hashes()
        .iter()
        .copied()
        .find(|k| dst.hashes().contains(k))
}

/// An entry's hash of `kind`: from the listing; for a local file by reading it; else
/// from a stat where the listing lacks it (an S3 multipart upload keeps its MD5 in
/// metadata). None where the store has none for this file.
fn hash_of(side: &dyn Backend, e: &Entry, kind: HashKind) -> Option<String> {
    let pick = |sha1: &Option<String>, md5: &Option<String>| match kind {
        HashKind::Sha1 => sha1.clone(),
        HashKind::Md5 => md5.clone(),
    };
    if let Some(h) = pick(&e.sha1, &e.md5) {
        return Some(h.to_ascii_lowercase());
    }
    let name = &e.storage_name;
    if side.is_local() {
        return match kind {
            HashKind::Sha1 => cairn_backend::object_sha1(side, name, e.size),
            HashKind::Md5 => cairn_backend::object_md5(side, name, e.size),
        }
        .ok();
    }
    let o = side.stat(name).ok()?;
    pick(&o.sha1, &o.md5).map(|h| h.to_ascii_lowercase())
}

/// Whether the two files hold the same bytes by their common hash; None where there
/// is no common hash or either file lacks it.
///
/// The side whose hash is cheap (listed) is asked first, so a local file is not read
/// when the store has no hash for its copy.
fn same_content(src: &dyn Backend, dst: &dyn Backend, e: &Entry, d: &Entry) -> Option<bool> {
    let kind = common_hash(src, dst)?;
    let (first, second) = match dst.is_local() {
        true => ((src, e), (dst, d)),
        false => ((dst, d), (src, e)),
    };
    let a = hash_of(first.0, first.1, kind)?;
    Some(a == hash_of(second.0, second.1, kind)?)
}

/// Go's MIME table for common extensions (what rclone sends as Content-Type).
pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain; charset=utf-8",
        "htm" | "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "xml" => "text/xml; charset=utf-8",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "avif" => "image/avif",
        _ => "application/octet-stream",
    }
}

pub fn sync(
    src: &dyn Backend,
    dst: &dyn Backend,
    opts: &SyncOptions,
    progress: &dyn crate::Progress,
) -> Result<SyncSummary, OpsError> {
    // Checksums where the two sides share none: rclone falls back to sizes alone,
    // which passes a same-size change as unchanged; cairn compares as by default
    // (size and time) instead, and says so.
    let fallback = opts.compare == Compare::Checksum && common_hash(src, dst).is_none();
    let adjusted;
    let opts = if fallback {
        adjusted = SyncOptions {
            compare: Compare::ModTime,
            ..opts.clone()
        };
        &adjusted
    } else {
        opts
    };
    let (mut from, unsafe_src) = list(src, opts, true)?;
    // A destination that does not exist yet is created (empty, so nothing in it can be
    // deleted below); one that does is left as it is until the checks pass.
    if !opts.dry_run {
        dst.create().map_err(cairn_repo::RepoError::from)?;
    }
    let (mut to, unsafe_dst) = list(dst, opts, false)?;
    if !src.listing_has_modtimes() {
        // Every file's time: a compared one is compared, a copied one keeps it.
        let paths = from.keys().cloned().collect();
        fill_modtimes(src, &mut from, paths, opts.transfers)?;
    }
    if !dst.listing_has_modtimes() && opts.compare == Compare::ModTime {
        let paths = to
            .keys()
            .filter(|p| from.contains_key(*p))
            .cloned()
            .collect();
        fill_modtimes(dst, &mut to, paths, opts.transfers)?;
    }
    let doomed: Vec<&String> = if opts.delete {
        to.keys().filter(|p| !from.contains_key(*p)).collect()
    } else {
        Vec::new()
    };
    let refusal = check_deletions(src, opts, &from, &to, &doomed)?;
    let mut s = SyncSummary {
        unsafe_names: [unsafe_src, unsafe_dst].concat(),
        refusal,
        ..Default::default()
    };
    if fallback {
        s.notes.push(format!(
            "{} and {} have no checksum in common: files were compared by size and modification time",
            src.location(),
            dst.location()
        ));
    }
    let (todo, touch) = plan(src, dst, opts, &from, &to, &mut s);
    if opts.dry_run {
        s.files_touched = touch.len() as u64;
        s.files_uploaded = todo.len() as u64;
        s.bytes_uploaded = todo.iter().map(|(_, e)| e.size).sum();
        s.files_deleted = doomed.len() as u64;
        s.deleted = doomed.into_iter().cloned().collect();
        return Ok(s);
    }

    for (path, e, d) in touch {
        match dst.set_mtime(&d.storage_name, e.mtime.unwrap_or_default(), e.mtime_ns) {
            Ok(()) => s.files_touched += 1,
            Err(e) => s
                .errors
                .push(format!("{path}: setting the modification time failed: {e}")),
        }
    }
    transfer_all(src, dst, opts, &todo, progress, &mut s);
    // As rclone: no deletions after any error, so a failed run never loses the only copy.
    if s.errors.is_empty() {
        for path in doomed {
            let d = &to[path];
            // Hidden where the store keeps old versions (B2), unless asked to delete.
            let r = match opts.hard_delete {
                false => dst.hide(&d.storage_name),
                true => Ok(false),
            }
            .and_then(|hidden| {
                if hidden {
                    Ok(())
                } else {
                    dst.remove(&d.storage_name)
                }
            });
            match r {
                Ok(()) => {
                    s.files_deleted += 1;
                    s.deleted.push(path.clone());
                }
                Err(e) => s.errors.push(format!("{path}: delete failed: {e}")),
            }
        }
    }
    Ok(s)
}

/// Reads each of `paths`' own modification time where the side's listing lacks it (a
/// HEAD per file on S3, as rclone does), `threads` at a time. A file that cannot be
/// asked fails the sync before anything is transferred or deleted.
fn fill_modtimes(
    side: &dyn Backend,
    entries: &mut BTreeMap<String, Entry>,
    paths: Vec<String>,
    threads: usize,
) -> Result<(), OpsError> {
    let times = cairn_parallel::map(&paths, threads.max(1), |path| {
        side.stat(&entries[path].storage_name)
            .map(|info| (info.mtime_millis, info.mtime_nanos))
    })
    .map_err(cairn_repo::RepoError::from)?;
    for (path, (mtime, mtime_ns)) in paths.iter().zip(times) {
        if let Some(e) = entries.get_mut(path) {
            e.mtime = mtime;
            e.mtime_ns = mtime_ns;
        }
    }
    Ok(())
}

/// Refuses a `--delete` that would empty the destination or remove most of it, unless
/// `--allow-deletes`; a dry run reports the refusal instead.
fn check_deletions(
    src: &dyn Backend,
    opts: &SyncOptions,
    from: &BTreeMap<String, Entry>,
    to: &BTreeMap<String, Entry>,
    doomed: &[&String],
) -> Result<Option<String>, OpsError> {
    let mut refusal = None;
    if !doomed.is_empty() && !opts.allow_deletes {
        let why = if from.is_empty() {
            Some(format!(
                "the source {} holds no files, so every file at the destination would go",
                src.location()
            ))
        } else {
            crate::delete_limit::share_refusal(doomed.len() as u64, to.len() as u64)
        };
        match why {
            Some(why) if opts.dry_run => {
                refusal = Some(format!(
                    "{why}: a real run stops here without --allow-deletes"
                ))
            }
            Some(why) => return Err(OpsError::SyncDeletesRefused(why)),
            None => {}
        }
    }
    Ok(refusal)
}

/// What to transfer, and whose time only to set; skips and newer-destination errors
/// are counted in `s`.
#[allow(clippy::type_complexity)]
fn plan<'a>(
    src: &dyn Backend,
    dst: &dyn Backend,
    opts: &SyncOptions,
    from: &'a BTreeMap<String, Entry>,
    to: &'a BTreeMap<String, Entry>,
    s: &mut SyncSummary,
) -> (
    Vec<(&'a String, &'a Entry)>,
    Vec<(&'a String, &'a Entry, &'a Entry)>,
) {
    let mut todo: Vec<(&String, &Entry)> = Vec::new();
    // (path, source, destination) whose destination only needs the source's time.
    let mut touch: Vec<(&String, &Entry, &Entry)> = Vec::new();
    for (path, e) in from {
        let Some(d) = to.get(path) else {
            todo.push((path, e));
            continue;
        };
        let same = match same_file(src, dst, opts.compare, e, d) {
            Same::Yes => true,
            Same::No => false,
            // Same content, another time: as rclone, set the time rather than transfer
            // the bytes again.
            Same::OnlyTime => {
                touch.push((path, e, d));
                continue;
            }
        };
        if same {
            s.files_skipped += 1;
            continue;
        }
        let dst_newer = opts.compare == Compare::ModTime
            && matches!((e.mtime, d.mtime), (Some(a), Some(b)) if b > a);
        match (dst_newer, opts.newer) {
            (true, Newer::Skip) => s.files_skipped += 1,
            (true, Newer::Error) => s.errors.push(format!("{path}: destination is newer than the source (use --replace-newer or --skip-newer)")),
            _ => todo.push((path, e)),
        }
    }
    (todo, touch)
}

/// Whether the destination's file already matches the source's.
enum Same {
    Yes,
    No,
    /// The same bytes under another modification time, which the destination can set.
    OnlyTime,
}

fn same_file(src: &dyn Backend, dst: &dyn Backend, compare: Compare, e: &Entry, d: &Entry) -> Same {
    let same = match compare {
        Compare::Size => d.size == e.size,
        // A file whose hash cannot be had (unreadable here, or stored without one) is
        // sent again rather than passed as unchanged unseen.
        Compare::Checksum => d.size == e.size && same_content(src, dst, e, d) == Some(true),
        Compare::ModTime => {
            let window = src
                .mtime_precision_millis()
                .max(dst.mtime_precision_millis());
            d.size == e.size
                && match (e.mtime, d.mtime) {
                    // The window is the coarser precision of the two sides, as rclone's:
                    // a nanosecond between two local trees, a second with SFTP, a
                    // millisecond otherwise.
                    _ if e.mtime_ns.is_some()
                        && d.mtime_ns.is_some()
                        && e.mtime_ns == d.mtime_ns =>
                    {
                        true
                    }
                    (Some(a), Some(b))
                        if (a - b).abs() < window
                            && (e.mtime_ns.is_none() || d.mtime_ns.is_none()) =>
                    {
                        true
                    }
                    _ if same_content(src, dst, e, d) == Some(true) => {
                        if e.mtime.is_some() && dst.can_set_mtime() {
                            return Same::OnlyTime;
                        }
                        true
                    }
                    _ => false,
                }
        }
    };
    if same {
        Same::Yes
    } else {
        Same::No
    }
}

/// Transfers `todo` on `--transfers` threads; a file that fails is reported and the
/// others go on, as rclone.
fn transfer_all(
    src: &dyn Backend,
    dst: &dyn Backend,
    opts: &SyncOptions,
    todo: &[(&String, &Entry)],
    progress: &dyn crate::Progress,
    s: &mut SyncSummary,
) {
    let items: Vec<Item> = todo
        .iter()
        .map(|(path, e)| Item {
            from: &e.storage_name,
            to: dst.encode_path(path),
            size: e.size,
            write: WriteOptions {
                mtime_millis: e.mtime,
                mtime_nanos: e.mtime_ns,
                sha1: e.sha1.clone(),
                md5: e.md5.clone(),
                content_type: Some(content_type(path).to_string()),
                ..Default::default()
            },
        })
        .collect();
    progress.start(items.len() as u64, items.iter().map(|i| i.size).sum());
    let transfer = Transfer::new(src, dst, opts.transfers);
    let done = transfer.run(&items, OnError::Continue, progress);
    progress.finish();
    // With OnError::Continue every failure is in the report, never returned.
    let done = done.unwrap_or_default();
    s.files_uploaded = done.files;
    s.bytes_uploaded = done.bytes;
    let path_of: std::collections::HashMap<&str, &String> = todo
        .iter()
        .map(|(p, e)| (e.storage_name.as_str(), *p))
        .collect();
    for (name, err) in done.failed {
        let path = path_of
            .get(name.as_str())
            .map_or(name.as_str(), |p| p.as_str());
        s.errors.push(format!("{path}: {err}"));
    }
}
