//! `ship`: push a repository to another location (a B2 bucket, another disk), uploading
//! only the files the destination lacks.
//!
//! Repository files are immutable and named by their content, so "lacks" is decided by
//! name and size alone, and nothing needs decrypting. The order keeps the destination a
//! readable repository at every moment: data packs, then index files, then keys and
//! config, then snapshots; only then are files the source no longer has deleted
//! (snapshots first, then index files, then packs), so no snapshot or index entry at the
//! destination ever points at something missing. Locks are never shipped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cairn_backend::{Backend, BackendError, ObjectInfo, WriteOptions};

use crate::OpsError;

#[derive(Clone, Debug, Default)]
pub struct ShipOptions {
    pub transfers: usize,
    pub dry_run: bool,
    /// Compare the destination's listing with the source afterwards.
    pub verify: bool,
    /// Also upload this binary and RECOVERY.txt beside the repository.
    pub with_binary: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ShipSummary {
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
    pub files_deleted: u64,
    pub files_skipped: u64,
    /// With --dry-run: what would be uploaded and deleted.
    pub plan: Vec<String>,
    pub verified: bool,
}

/// Upload phases, in the order that keeps the destination consistent. Drill and
/// verification records come last; they are merged, never deleted, at the destination
/// (a drill or check run there writes its own).
const PHASES: [&str; 8] = ["data/", "index/", "keys/", "config", "forgotten/", "snapshots/", "drills/", "verified/"];

fn is_record(name: &str) -> bool {
    name.starts_with("drills/") || name.starts_with("verified/")
}

fn phase_of(name: &str) -> Option<usize> {
    PHASES.iter().position(|p| if p.ends_with('/') { name.starts_with(p) } else { name == *p })
}

/// Repository files of a store by name (locks and anything else left out).
fn listing(b: &dyn Backend) -> Result<BTreeMap<String, ObjectInfo>, OpsError> {
    Ok(b.list("")
        .map_err(cairn_repo::RepoError::from)?
        .into_iter()
        .filter(|o| phase_of(&o.name).is_some())
        .map(|o| (o.name.clone(), o))
        .collect())
}

/// Ships `src` to `dst`. Each file keeps the modification time the source lists for
/// it, as rclone would record it.
pub fn ship(src: &dyn Backend, dst: &dyn Backend, opts: &ShipOptions, progress: &dyn crate::Progress) -> Result<ShipSummary, OpsError> {
    let have = listing(src)?;
    if !have.contains_key("config") {
        return Err(OpsError::Invalid(format!("{} is not a repository (no config)", src.location())));
    }
    if !opts.dry_run {
        dst.create().map_err(cairn_repo::RepoError::from)?;
    }
    let mut s = ShipSummary::default();
    let there = match listing(dst) {
        Ok(l) => l,
        // A dry run creates nothing, so a destination that does not exist yet is empty.
        Err(e) if opts.dry_run => {
            s.plan.push(format!("create the destination ({e})"));
            BTreeMap::new()
        }
        Err(e) => return Err(e),
    };
    let mut phases: Vec<Vec<&ObjectInfo>> = vec![Vec::new(); PHASES.len()];
    for (name, o) in &have {
        if there.get(name).map(|t| t.size) == Some(o.size) {
            s.files_skipped += 1;
        } else if let Some(p) = phase_of(name) {
            phases[p].push(o);
        }
    }
    let mut deletions: Vec<String> = there.keys().filter(|n| !have.contains_key(*n) && !is_record(n)).cloned().collect();
    // Snapshots first, then index files, then everything else (packs, keys).
    deletions.sort_by_key(|n| match phase_of(n) {
        Some(4) => 0,
        Some(1) => 1,
        _ => 2,
    });

    if opts.dry_run {
        for (p, files) in phases.iter().enumerate() {
            let bytes: u64 = files.iter().map(|f| f.size).sum();
            if !files.is_empty() {
                s.plan.push(format!("upload {} {} file(s), {bytes} bytes", files.len(), PHASES[p]));
            }
            s.files_uploaded += files.len() as u64;
            s.bytes_uploaded += bytes;
        }
        if !deletions.is_empty() {
            s.plan.push(format!("delete {} file(s) the source no longer has", deletions.len()));
        }
        s.files_deleted = deletions.len() as u64;
        return Ok(s);
    }

    let uploaded = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    progress.start(phases.iter().map(|p| p.len() as u64).sum(), phases.iter().flatten().map(|f| f.size).sum());
    for files in &phases {
        let next = AtomicU64::new(0);
        let error: Mutex<Option<BackendError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..opts.transfers.max(1).min(files.len().max(1)) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= files.len() || error.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        return;
                    }
                    let o = files[i];
                    let r = src.read(&o.name).and_then(|data| {
                        let wo = WriteOptions { mtime_millis: o.mtime_millis, ..Default::default() };
                        dst.write(&o.name, &data, &wo)
                    });
                    match r {
                        Ok(()) => {
                            uploaded.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(o.size, Ordering::Relaxed);
                        }
                        Err(e) => {
                            error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        }
                    }
                    progress.file_done(o.size);
                });
            }
        });
        // A phase must be complete before the next starts: that is the consistency rule.
        if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            progress.finish();
            return Err(cairn_repo::RepoError::from(e).into());
        }
    }
    progress.finish();
    s.files_uploaded = uploaded.load(Ordering::Relaxed);
    s.bytes_uploaded = bytes.load(Ordering::Relaxed);

    for name in &deletions {
        match dst.remove(name) {
            Ok(()) => s.files_deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(cairn_repo::RepoError::from(e).into()),
        }
    }

    if let Some(bin) = &opts.with_binary {
        let data = std::fs::read(bin).map_err(|e| OpsError::io(bin, e))?;
        dst.write("RECOVERY/cairn", &data, &WriteOptions::default()).map_err(cairn_repo::RepoError::from)?;
        dst.write("RECOVERY.txt", RECOVERY_TEXT.as_bytes(), &WriteOptions::default()).map_err(cairn_repo::RepoError::from)?;
    }

    if opts.verify {
        let now = listing(dst)?;
        let missing: Vec<&String> = have.iter().filter(|(n, o)| now.get(*n).map(|t| t.size) != Some(o.size)).map(|(n, _)| n).collect();
        if !missing.is_empty() {
            return Err(OpsError::Invalid(format!(
                "verification failed: {} file(s) missing or of the wrong size at {}, e.g. {}",
                missing.len(),
                dst.location(),
                missing[0]
            )));
        }
        s.verified = true;
    }
    Ok(s)
}

#[derive(Clone, Debug, Default)]
pub struct HashReport {
    pub files_compared: u64,
    pub bytes_hashed: u64,
    pub problems: Vec<String>,
}

/// Compares the SHA1s a destination stores (B2 keeps one per file) with the source's
/// repository files, hashing the source only: nothing is downloaded. Drill and
/// verification records are left out (each side writes its own).
pub fn compare_hashes(src: &dyn Backend, dst: &dyn Backend) -> Result<HashReport, OpsError> {
    let have = listing(src)?;
    let there = listing(dst)?;
    let mut r = HashReport::default();
    for (name, o) in have.iter().filter(|(n, _)| !is_record(n)) {
        let Some(t) = there.get(name) else {
            r.problems.push(format!("{}/{name}: missing", dst.location()));
            continue;
        };
        if t.size != o.size {
            r.problems.push(format!("{}/{name}: size {} differs from the local {}", dst.location(), t.size, o.size));
            continue;
        }
        let Some(remote) = &t.sha1 else {
            r.problems.push(format!("{}/{name}: the destination keeps no SHA1 for it", dst.location()));
            continue;
        };
        let local = cairn_backend::object_sha1(src, name, o.size).map_err(cairn_repo::RepoError::from)?;
        r.files_compared += 1;
        r.bytes_hashed += o.size;
        if !local.eq_ignore_ascii_case(remote) {
            r.problems.push(format!("{}/{name}: SHA1 {remote} differs from the local file's {local}", dst.location()));
        }
    }
    Ok(r)
}

const RECOVERY_TEXT: &str = "This is a cairn backup repository.\n\
To recover on a bare machine: download RECOVERY/cairn (a Linux x86-64 binary), make it executable,\n\
set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY, then run\n\
  ./cairn -r b2:BUCKET/PREFIX snapshots\n\
  ./cairn -r b2:BUCKET/PREFIX restore latest --target /restore\n\
with the repository password. Everything in this bucket is encrypted; without the password it cannot be read.\n";
