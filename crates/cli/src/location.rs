//! Repository locations as SPEC.md defines them.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_backend::{Backend, LocalBackend};

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};

/// Opens the backend for a location, with the global B2 settings (endpoint, cutoffs).
pub fn open_backend(location: &str, g: &GlobalArgs) -> anyhow::Result<Arc<dyn Backend>> {
    if location.is_empty() {
        return Err(fail(
            ExitCode::Fatal,
            "no repository given: use -r/--repo or set CAIRN_REPOSITORY",
        ));
    }
    if let Some(b) = open_rclone_other(location)? {
        return Ok(b);
    }
    if let Some(b2) = open_b2(location, g)? {
        return Ok(b2);
    }
    if let Some(loc) = cairn_sftp::SftpLocation::parse(location) {
        let loc = loc.map_err(|e| fail(ExitCode::Fatal, e))?;
        return Ok(Arc::new(cairn_sftp::SftpBackend::new(&loc)?));
    }
    if let Some(loc) = cairn_opendal::S3Location::parse(location) {
        let mut loc = loc.map_err(|e| fail(ExitCode::Fatal, e))?;
        loc.path_style |= g.s3_path_style;
        return Ok(Arc::new(cairn_opendal::OpendalBackend::s3(&loc)?));
    }
    refuse_unknown_scheme(location)?;
    let path = PathBuf::from(location.strip_prefix("local:").unwrap_or(location));
    // An absolute path names the repository the same way from any working directory
    // (verification records are kept per location).
    Ok(Arc::new(
        LocalBackend::new(std::fs::canonicalize(&path).unwrap_or(path)).private(),
    ))
}

/// The metadata cache directory for a remote repository: `--cache-dir`/CAIRN_CACHE_DIR,
/// else `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`; one subdirectory per location.
/// None for local repositories (nothing to save) and with `--no-cache`.
pub fn cache_dir(g: &crate::args::GlobalArgs, location: &str) -> Option<PathBuf> {
    if g.no_cache || !is_remote(location) {
        return None;
    }
    Some(cache_root(g)?.join(tag(location)))
}

/// A short, stable file name for any key (a location, a repository): 16 hex digits of
/// its BLAKE3 hash, so paths and bucket names never leak into the cache's layout.
pub fn tag(key: &str) -> String {
    cairn_format::BlobId(cairn_crypto::storage_hash(key.as_bytes())).to_hex()[..16].to_string()
}

/// Where the index of the repository at `location` is kept sorted and mapped (local
/// repositories too: it spares every command decoding all index files); None with
/// `--no-cache`. Beside the metadata cache, under a name no repository file has.
pub fn index_cache(g: &crate::args::GlobalArgs, location: &str) -> Option<PathBuf> {
    if g.no_cache {
        return None;
    }
    Some(cache_root(g)?.join(tag(location)).join("index-cache"))
}

/// `--cache-dir`/CAIRN_CACHE_DIR, else `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`.
pub fn cache_root(g: &crate::args::GlobalArgs) -> Option<PathBuf> {
    g.cache_dir.clone().or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|p| p.join("cairn"))
    })
}

/// Fails, naming the schemes cairn knows, on a location like `s3:...` (see
/// [`unknown_scheme`]).
pub fn refuse_unknown_scheme(location: &str) -> anyhow::Result<()> {
    match unknown_scheme(location) {
        Some(scheme) => Err(fail(
            ExitCode::Fatal,
            format!(
                "{location}: unknown location scheme \"{scheme}:\" (cairn knows b2:BUCKET/PATH, \
                 s3:[https://HOST/]BUCKET/PATH, sftp:[USER@]HOST:PATH, rclone:REMOTE:PATH, local:PATH and plain paths; for a directory whose name \
                 has a colon write ./{location} or local:{location})"
            ),
        )),
        None => Ok(()),
    }
}

/// The scheme of a location that starts like `s3:` or `sftp:` but is none cairn
/// knows: such a location must not become a directory named `s3:http:` in the current
/// directory. A path (`./a:b`, `/x/a:b`) has a `/` before its colon.
fn unknown_scheme(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once(':')?;
    let plausible = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (plausible && !matches!(scheme, "b2" | "s3" | "sftp" | "rclone" | "local")).then_some(scheme)
}

/// Whether the location is reached over the network (B2 directly or via rclone's
/// config, an S3 store, an SSH server).
pub fn is_remote(location: &str) -> bool {
    ["b2:", "rclone:", "s3:", "sftp:"]
        .iter()
        .any(|p| location.starts_with(p))
}

/// The backend for `rclone:REMOTE:PATH` when REMOTE is of type s3 or sftp (None for
/// anything else: B2 remotes go to [`open_b2`]).
fn open_rclone_other(location: &str) -> anyhow::Result<Option<Arc<dyn Backend>>> {
    let Some((remote, path)) = location
        .strip_prefix("rclone:")
        .and_then(|r| r.split_once(':'))
    else {
        return Ok(None);
    };
    let conf = cairn_b2::rclone_remote(remote)
        .map_err(|e| fail(ExitCode::Fatal, format!("{location}: {e}")))?;
    let bad = |e: String| fail(ExitCode::Fatal, format!("{location}: {e}"));
    match conf.get("type").map(String::as_str) {
        Some("s3") => {
            let loc = cairn_opendal::S3Location::from_rclone(remote, path, &conf).map_err(bad)?;
            Ok(Some(Arc::new(cairn_opendal::OpendalBackend::s3(&loc)?)))
        }
        Some("sftp") => {
            let loc = cairn_sftp::SftpLocation::from_rclone(remote, path, &conf).map_err(bad)?;
            Ok(Some(Arc::new(cairn_sftp::SftpBackend::new(&loc)?)))
        }
        _ => Ok(None),
    }
}

/// The B2 backend for a `b2:` or `rclone:` location (None for anything else), kept as
/// its own type so callers can read its transaction counters.
pub fn open_b2(location: &str, g: &GlobalArgs) -> anyhow::Result<Option<Arc<cairn_b2::B2Backend>>> {
    if !(location.starts_with("b2:") || location.starts_with("rclone:")) {
        return Ok(None);
    }
    let loc = cairn_b2::B2Location::parse(location, g.b2_endpoint.as_deref())
        .map_err(|e| fail(ExitCode::Fatal, format!("{location}: {e}")))?;
    // Before any request: Basic auth over plain http would hand the key to the network.
    cairn_b2::check_endpoint(&loc.endpoint, g.insecure_http)
        .map_err(|e| fail(ExitCode::Fatal, format!("{location}: {e}")))?;
    let mut b2 = cairn_b2::B2Backend::new(loc)?;
    let c = b2.client();
    let (cutoff, part, copy) = (
        g.b2_upload_cutoff.unwrap_or(c.upload_cutoff),
        g.b2_chunk_size.unwrap_or(c.part_size),
        g.b2_copy_cutoff.unwrap_or(c.copy_cutoff),
    );
    b2.set_large_file_thresholds(cutoff, part, copy);
    // 0 means unlimited, as in restic and rclone (not zero bytes a second).
    let bytes = |kib: Option<u64>| kib.filter(|k| *k > 0).map(|k| k * 1024);
    b2.set_limits(bytes(g.limit_upload), bytes(g.limit_download));
    Ok(Some(Arc::new(b2)))
}
