//! `drill`: the yearly restore test, as one honest command.
//!
//! Draws snapshots at random from a recent window and files at random from each (half
//! uniformly, half weighted by size, so both the many small files and the few big ones
//! are exercised), restores them with the real restore code into a scratch directory,
//! checks every byte against the blob IDs and every piece of metadata against the tree,
//! optionally compares them with the live files, and reads back a slice of the packs
//! (least recently verified first). The outcome is recorded, encrypted, in `drills/`.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use rand::seq::SliceRandom;
use rand::Rng;

use cairn_format::{DrillRecord, Node, NodeType};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{FileKind, Repository, SnapshotRef};

use crate::check::{check_with_progress, ReadData};
use crate::restore::{restore_with_progress, RestoreOptions};
use crate::walk::{walk_tree, Visit};
use crate::OpsError;

#[derive(Clone, Debug)]
pub struct DrillOptions {
    pub snapshots: usize,
    /// Only snapshots taken after this moment.
    pub since: DateTime<FixedOffset>,
    pub files: usize,
    pub compare_source: bool,
    /// Fraction of packs read back whole (rolling verification order).
    pub pack_fraction: f64,
    /// The repository's location, for the record and the verification log.
    pub location: String,
    /// Scratch directory for the restored files (emptied by the caller).
    pub scratch: PathBuf,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DrillReport {
    pub ok: bool,
    pub snapshots: Vec<String>,
    pub files_checked: u64,
    pub bytes_checked: u64,
    /// Files also compared with the live file (unchanged since the snapshot).
    pub files_compared_with_source: u64,
    pub packs_checked: u64,
    pub failures: Vec<String>,
}

struct Pick {
    path: Vec<u8>,
    node: Node,
}

/// Every regular file of a snapshot, with its absolute path.
fn files_of(repo: &Repository, snap: &SnapshotRef) -> Result<Vec<Pick>, OpsError> {
    let mut out = Vec::new();
    walk_tree(repo, &snap.snapshot.tree, b"/", &mut |path, node| {
        if node.node_type == NodeType::File {
            out.push(Pick {
                path: path.to_vec(),
                node: node.clone(),
            });
        }
        Ok(Visit::Descend)
    })?;
    Ok(out)
}

/// Up to `n` files: half drawn uniformly, the rest weighted by size.
fn choose(mut files: Vec<Pick>, n: usize, rng: &mut impl Rng) -> Vec<Pick> {
    if files.len() <= n {
        return files;
    }
    files.shuffle(rng);
    let uniform = n.div_ceil(2);
    let mut chosen: Vec<Pick> = files.drain(..uniform).collect();
    let weighted: HashSet<usize> = {
        let idx: Vec<usize> = (0..files.len()).collect();
        idx.choose_multiple_weighted(rng, n - uniform, |&i| (files[i].node.size + 1) as f64)
            .map(|it| it.copied().collect())
            .unwrap_or_default()
    };
    chosen.extend(
        files
            .into_iter()
            .enumerate()
            .filter(|(i, _)| weighted.contains(i))
            .map(|(_, p)| p),
    );
    chosen
}

/// Differences between a restored file's metadata and its node.
fn metadata_differences(path: &Path, node: &Node, is_root: bool) -> Vec<String> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return vec![format!("cannot stat the restored file: {e}")],
    };
    let mut d = Vec::new();
    if m.len() != node.size {
        d.push(format!("size {} instead of {}", m.len(), node.size));
    }
    if m.mode() & 0o7777 != node.mode & 0o7777 {
        d.push(format!(
            "mode {:o} instead of {:o}",
            m.mode() & 0o7777,
            node.mode & 0o7777
        ));
    }
    if (m.mtime(), m.mtime_nsec() as u32) != (node.mtime.0, node.mtime.1) {
        d.push("modification time differs".into());
    }
    if is_root && (m.uid(), m.gid()) != (node.uid, node.gid) {
        d.push(format!(
            "owner {}:{} instead of {}:{}",
            m.uid(),
            m.gid(),
            node.uid,
            node.gid
        ));
    }
    d
}

/// Whether two files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(fb.read(&mut bb[..1])? == 0);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// The `drill` command: a shared lock and the index, then the drill.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    opts: &DrillOptions,
    progress: &dyn crate::Progress,
) -> Result<DrillReport, OpsError> {
    let _session = Session::begin(repo, "drill", Access::Read, LoadIndex::Yes)?;
    drill_with_progress(repo, opts, progress)
}

/// Runs a drill. The caller holds a shared lock and has loaded the index.
pub fn drill(repo: &Repository, opts: &DrillOptions) -> Result<DrillReport, OpsError> {
    drill_with_progress(repo, opts, &crate::NoProgress)
}

/// [`drill`], reporting its two phases in turn: the files restored, then the packs read.
pub fn drill_with_progress(
    repo: &Repository,
    opts: &DrillOptions,
    progress: &dyn crate::Progress,
) -> Result<DrillReport, OpsError> {
    let mut rng = rand::thread_rng();
    let mut r = DrillReport::default();
    let recent: Vec<SnapshotRef> = repo
        .list_snapshots()?
        .into_iter()
        .filter(|s| s.snapshot.time >= opts.since)
        .collect();
    if recent.is_empty() {
        return Err(OpsError::Invalid(
            "no snapshot in the drill's time window (see --within)".into(),
        ));
    }
    let snaps: Vec<&SnapshotRef> = recent
        .choose_multiple(&mut rng, opts.snapshots.max(1))
        .collect();
    let is_root = nix::unistd::geteuid().is_root();

    for snap in snaps {
        drill_snapshot(repo, snap, opts, is_root, &mut rng, &mut r, progress);
    }

    let c = check_with_progress(
        repo,
        ReadData::Fraction(opts.pack_fraction),
        &opts.location,
        progress,
    )?;
    r.packs_checked = c.packs_checked;
    r.failures
        .extend(c.errors.iter().map(|e| format!("check: {e}")));
    r.failures
        .extend(c.affected.iter().map(|a| format!("damaged: {a}")));
    r.ok = r.failures.is_empty();
    Ok(r)
}

/// Restores a sample of `snap`'s files into the scratch directory and compares them,
/// content and metadata, with the snapshot (and with the live files if asked).
fn drill_snapshot(
    repo: &Repository,
    snap: &SnapshotRef,
    opts: &DrillOptions,
    is_root: bool,
    rng: &mut impl Rng,
    r: &mut DrillReport,
    progress: &dyn crate::Progress,
) {
    let short = snap.id.short();
    r.snapshots.push(snap.id.to_hex());
    let picks = match files_of(repo, snap) {
        Ok(f) => choose(f, opts.files, rng),
        Err(e) => {
            r.failures
                .push(format!("snapshot {short}: cannot read its trees: {e}"));
            return;
        }
    };
    if picks.is_empty() {
        return;
    }
    let target = opts.scratch.join(&short);
    let only: HashSet<Vec<u8>> = picks.iter().map(|p| p.path.clone()).collect();
    let ro = RestoreOptions {
        target: target.clone(),
        verify: true,
        only: Some(Arc::new(only)),
        ..Default::default()
    };
    let summary = match restore_with_progress(repo, snap, &ro, progress) {
        Ok(s) => s,
        Err(e) => {
            r.failures
                .push(format!("snapshot {short}: restore failed: {e}"));
            return;
        }
    };
    // Restore names the scratch path; the user wants the path in the snapshot.
    let scratch = target.display().to_string();
    let mut failed: HashSet<Vec<u8>> = HashSet::new();
    for e in &summary.errors {
        let msg = e.strip_prefix(&scratch).unwrap_or(e);
        r.failures.push(format!("snapshot {short}: {msg}"));
        if let Some((p, _)) = msg.split_once(": ") {
            failed.insert(p.as_bytes().to_vec());
        }
    }
    for p in &picks {
        if !failed.contains(String::from_utf8_lossy(&p.path).as_bytes()) {
            check_restored(p, &target, &short, opts.compare_source, is_root, r);
        }
    }
    let _ = std::fs::remove_dir_all(&target);
}

/// One restored file: its metadata as the snapshot has it, and with `compare_source`
/// its bytes as the live file's when that is unchanged.
fn check_restored(
    p: &Pick,
    target: &Path,
    short: &str,
    compare_source: bool,
    is_root: bool,
    r: &mut DrillReport,
) {
    let shown = String::from_utf8_lossy(&p.path).into_owned();
    let restored = target.join(std::ffi::OsStr::from_bytes(&p.path[1..]));
    let diffs = metadata_differences(&restored, &p.node, is_root);
    if !diffs.is_empty() {
        r.failures
            .push(format!("snapshot {short}: {shown}: {}", diffs.join(", ")));
        return;
    }
    r.files_checked += 1;
    r.bytes_checked += p.node.size;
    if compare_source {
        let live = Path::new(std::ffi::OsStr::from_bytes(&p.path));
        let unchanged = std::fs::symlink_metadata(live).is_ok_and(|m| {
            m.is_file()
                && m.len() == p.node.size
                && (m.mtime(), m.mtime_nsec() as u32) == (p.node.mtime.0, p.node.mtime.1)
        });
        if unchanged {
            match same_bytes(&restored, live) {
            Ok(true) => r.files_compared_with_source += 1,
            Ok(false) => r.failures.push(format!(
                "snapshot {short}: {shown}: differs from the live file although size and modification time match (silent corruption on one side)"
            )),
            Err(e) => r.failures.push(format!("snapshot {short}: {shown}: cannot compare with the live file: {e}")),
        }
        }
    }
}

/// Stores the drill's outcome in `drills/`.
pub fn record(
    repo: &Repository,
    r: &DrillReport,
    location: &str,
    hostname: &str,
) -> Result<(), OpsError> {
    let rec = DrillRecord {
        time: chrono::Local::now().fixed_offset(),
        hostname: hostname.to_string(),
        location: location.to_string(),
        snapshots: r.snapshots.clone(),
        files_checked: r.files_checked,
        bytes_checked: r.bytes_checked,
        packs_checked: r.packs_checked,
        ok: r.ok,
        failures: r.failures.iter().take(100).cloned().collect(),
        program_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    repo.save_file(FileKind::Drill, &rec.encode())?;
    Ok(())
}

/// Every recorded drill, oldest first; unreadable records are skipped with a warning.
pub fn history(repo: &Repository) -> Result<Vec<DrillRecord>, OpsError> {
    let mut out = Vec::new();
    for hex in repo.list_files(FileKind::Drill)? {
        match repo.load_file(FileKind::Drill, &hex).and_then(|b| {
            DrillRecord::decode(&b)
                .map_err(|e| cairn_repo::RepoError::format(FileKind::Drill.file_name(&hex), e))
        }) {
            Ok(d) => out.push(d),
            Err(e) => tracing::warn!("ignoring drill record: {e}"),
        }
    }
    out.sort_by_key(|d| d.time);
    Ok(out)
}
