//! `backup`: turn directories into trees and blobs, then record a snapshot.
//!
//! The order of writes is what makes an interruption harmless: every blob goes into a
//! pack that is stored before any index lists it, the index is stored (at least every
//! checkpoint interval, and at the end) before the snapshot, and the snapshot is last.
//! A second run after an interruption finds the blobs of the checkpointed packs in the
//! index and does not store them again.

mod archiver;
mod layout;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cairn_chunker::{Chunker, ChunkerParams};
use cairn_format::{Snapshot, SnapshotId, SnapshotSummary};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{sys, Repository, SnapshotRef};

use crate::filter::PathFilter;
use crate::OpsError;

pub use archiver::Counters;

#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    pub host: Option<String>,
    /// Snapshot to compare with; by default the latest with the same host and paths.
    pub parent: Option<String>,
    /// Read every file even if the parent says it is unchanged.
    pub force: bool,
    pub excludes: PathFilter,
    pub exclude_if_present: Vec<String>,
    pub exclude_larger_than: Option<u64>,
    pub one_file_system: bool,
    pub ignore_inode: bool,
    pub ignore_ctime: bool,
    /// Back up standard input as a single file of this name.
    pub stdin_filename: Option<String>,
    /// With `stdin_filename`: run this program (and arguments) and back up its standard
    /// output instead of cairn's standard input, saving nothing unless it exits 0.
    pub stdin_command: Option<Vec<std::ffi::OsString>>,
    /// How often an index is written while the backup runs.
    pub checkpoint_interval: Duration,
    /// Files read at the same time; 0 means one per core.
    pub read_concurrency: usize,
    /// Save no snapshot when the tree is the parent's (restic's `--skip-if-unchanged`).
    pub skip_if_unchanged: bool,
    /// Name each file read and stored, new or modified, as it is (`backup -vv`, with
    /// `--dry-run`: what would be stored).
    pub list_stored: bool,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            paths: Vec::new(),
            tags: Vec::new(),
            host: None,
            parent: None,
            force: false,
            excludes: PathFilter::default(),
            exclude_if_present: Vec::new(),
            exclude_larger_than: None,
            one_file_system: false,
            ignore_inode: false,
            ignore_ctime: false,
            stdin_filename: None,
            stdin_command: None,
            checkpoint_interval: Duration::from_secs(5 * 60),
            read_concurrency: 0,
            skip_if_unchanged: false,
            list_stored: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct BackupSummary {
    pub snapshot_id: Option<SnapshotId>,
    pub parent: Option<SnapshotId>,
    /// The counters, as also stored in the snapshot.
    pub counts: SnapshotSummary,
    pub total_duration: f64,
    /// Files and directories that could not be read; the snapshot lacks them.
    pub errors: Vec<String>,
    /// Files that changed while being read; stored as read.
    pub warnings: Vec<String>,
    /// A repository with a lock period (`init --lock-days`): files whose lock this
    /// backup extended, and until when.
    pub locks: cairn_repo::LockExtension,
    /// With `skip_if_unchanged`: nothing changed since the parent, so no snapshot was
    /// saved (`snapshot_id` is None).
    pub skipped_unchanged: bool,
}

/// Whether the entries at `paths` (and so everything below them) are the same in the
/// two root trees.
fn same_below(
    repo: &Repository,
    old: &cairn_format::BlobId,
    new: &cairn_format::BlobId,
    paths: &[String],
) -> Result<bool, OpsError> {
    let t = cairn_format::Timestamp(0, 0);
    for p in paths {
        let at = |root| crate::walk::node_at(repo, root, p, t);
        if at(old)? != at(new)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Makes a path absolute and clean: `.`/`..` removed and symlinks among the parent
/// directories resolved (so the stored layout holds real directories), while the last
/// component is kept as named: backing up a symlink stores the symlink.
fn absolute(p: &std::path::Path) -> Result<PathBuf, OpsError> {
    let abs = std::path::absolute(p).map_err(|e| OpsError::io(p, e))?;
    let mut clean = PathBuf::from("/");
    for c in abs.components() {
        match c {
            std::path::Component::Normal(n) => clean.push(n),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    match (clean.parent(), clean.file_name()) {
        (Some(parent), Some(name)) => {
            let real = std::fs::canonicalize(parent).map_err(|e| OpsError::io(parent, e))?;
            Ok(real.join(name))
        }
        _ => Ok(clean),
    }
}

fn find_parent(
    repo: &Repository,
    opts: &BackupOptions,
    host: &str,
    paths: &[String],
) -> Result<Option<SnapshotRef>, OpsError> {
    if let Some(spec) = &opts.parent {
        return Ok(Some(repo.find_snapshot(spec)?));
    }
    let mut sorted = paths.to_vec();
    sorted.sort();
    Ok(repo.list_snapshots()?.into_iter().rev().find(|s| {
        let mut p = s.snapshot.paths.clone();
        p.sort();
        s.snapshot.hostname == host && p == sorted
    }))
}

/// The `backup` command: a shared lock (none in a dry run), the index, then the backup.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    opts: &BackupOptions,
    progress: &dyn crate::Progress,
) -> Result<BackupSummary, OpsError> {
    let _session = Session::begin(repo, "backup", Access::Add, LoadIndex::Yes)?;
    let mut summary = backup_with_progress(repo, opts, progress)?;
    // The daily job keeps what is stored locked as it ages. The snapshot is saved
    // already, so a failure here is a warning: the next backup tries again.
    if !repo.is_dry_run() {
        match repo.extend_locks() {
            Ok(locks) => summary.locks = locks,
            Err(e) => summary
                .warnings
                .push(format!("could not extend the repository's locks: {e}")),
        }
    }
    Ok(summary)
}

/// Runs a backup. The caller holds the lock and has loaded the index (see [`run`]).
pub fn backup(repo: &Repository, opts: &BackupOptions) -> Result<BackupSummary, OpsError> {
    backup_with_progress(repo, opts, &crate::NoProgress)
}

/// Counts what the backup will read, on its own thread, while the backup runs (as
/// restic's scanner does): files and bytes below `paths` that the excludes leave in,
/// so a progress bar has a total and an ETA without delaying the first byte.
fn scan(
    paths: &[PathBuf],
    opts: &BackupOptions,
    progress: &dyn crate::Progress,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if opts.excludes.matches(&p.to_string_lossy()) {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if m.is_file() {
            progress.add_total(1, m.len());
        }
    }
    progress.total_known();
}

/// Backs up what `argv` writes to its standard output, as the file `name`. Plain
/// `--stdin` cannot know whether its producer finished (`pg_dump | cairn backup --stdin`
/// sees the same end of input when pg_dump fails half way); here the producer's exit
/// status decides: anything but 0 (or a signal) fails the backup before a snapshot
/// exists. The blobs already stored stay for the next backup to reuse.
fn from_command(
    arch: &archiver::Archiver<'_>,
    name: &str,
    argv: &[std::ffi::OsString],
) -> Result<cairn_format::BlobId, OpsError> {
    use std::process::{Command, Stdio};
    let Some((program, args)) = argv.split_first() else {
        return Err(OpsError::Invalid("--stdin-from-command needs a command: cairn backup --stdin-from-command -- CMD [ARG...]".into()));
    };
    let shown = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            OpsError::Invalid(format!("--stdin-from-command: cannot run `{shown}`: {e}"))
        })?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| OpsError::Invalid("--stdin-from-command: no output pipe".into()))?;
    let tree = arch.stdin_tree(name, out);
    // Reaped whatever happened, so no zombie outlives a failed read.
    let status = child.wait().map_err(|e| {
        OpsError::Invalid(format!("--stdin-from-command: waiting for `{shown}`: {e}"))
    });
    let tree = tree?;
    let status = status?;
    if !status.success() {
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "failed".to_string(),
        };
        return Err(OpsError::Invalid(format!("--stdin-from-command: `{shown}` {how}; its output may be incomplete, so no snapshot was saved")));
    }
    Ok(tree)
}

/// [`backup`], reporting files as they are done (and the scanner's totals).
pub fn backup_with_progress(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn crate::Progress,
) -> Result<BackupSummary, OpsError> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    // The total grows as the scanner finds files.
    progress.start(0, 0);
    let result = std::thread::scope(|scope| {
        if opts.stdin_filename.is_none() && progress.wants_totals() {
            let paths: Vec<PathBuf> = opts.paths.iter().filter_map(|p| absolute(p).ok()).collect();
            let stop = &stop;
            scope.spawn(move || scan(&paths, opts, progress, stop));
        }
        let r = run_backup(repo, opts, progress);
        stop.store(true, Ordering::Relaxed);
        r
    });
    if result.is_ok() {
        progress.completed();
    }
    progress.finish();
    result
}

/// The paths to back up, absolute, each checked to exist, with their names as the
/// snapshot records them.
fn absolute_paths(given: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<String>), OpsError> {
    let mut abs = Vec::new();
    for p in given {
        let a = absolute(p)?;
        std::fs::symlink_metadata(&a).map_err(|e| OpsError::io(&a, e))?;
        abs.push(a);
    }
    let paths = abs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    Ok((abs, paths))
}

/// The snapshot's summary from the archiver's and the repository's counters.
fn snapshot_counts(
    c: &archiver::Counters,
    repo: &Repository,
    start_time: chrono::DateTime<chrono::FixedOffset>,
    errors: usize,
) -> SnapshotSummary {
    let st = repo.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    SnapshotSummary {
        backup_start: Some(start_time),
        backup_end: Some(sys::now()),
        files_new: load(&c.files_new),
        files_changed: load(&c.files_changed),
        files_unmodified: load(&c.files_unmodified),
        dirs_new: load(&c.dirs_new),
        dirs_changed: load(&c.dirs_changed),
        dirs_unmodified: load(&c.dirs_unmodified),
        data_blobs: load(&st.data_blobs),
        tree_blobs: load(&st.tree_blobs),
        data_added: load(&st.data_added),
        data_added_packed: load(&st.data_added_packed),
        total_files_processed: load(&c.files),
        total_bytes_processed: load(&c.bytes),
        errors: errors as u64,
    }
}

fn run_backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn crate::Progress,
) -> Result<BackupSummary, OpsError> {
    let start = Instant::now();
    let start_time = sys::now();
    let cfg = repo.config();
    let params = ChunkerParams {
        min_size: cfg.chunker_min_size as usize,
        avg_size: cfg.chunker_avg_size as usize,
        max_size: cfg.chunker_max_size as usize,
    };
    let chunker = Chunker::new(&repo.key().gear_table(), params).map_err(OpsError::Invalid)?;
    let host = opts.host.clone().unwrap_or_else(sys::hostname);
    if !repo.is_dry_run() {
        repo.adopt_unindexed_packs()?;
    }

    let (paths, tree, parent, arch) = if let Some(name) = &opts.stdin_filename {
        if name.is_empty() || name.contains('/') {
            return Err(OpsError::Invalid(format!(
                "invalid --stdin-filename {name:?}: must be a plain file name"
            )));
        }
        let arch = archiver::Archiver::new(repo, chunker, opts, None, progress);
        let tree = match &opts.stdin_command {
            None => arch.stdin_tree(name, std::io::stdin())?,
            Some(argv) => from_command(&arch, name, argv)?,
        };
        (vec![format!("/{name}")], tree, None, arch)
    } else {
        if opts.paths.is_empty() {
            return Err(OpsError::Invalid(
                "nothing to back up: give at least one path".into(),
            ));
        }
        let (abs, paths) = absolute_paths(&opts.paths)?;
        let parent = if opts.force {
            None
        } else {
            find_parent(repo, opts, &host, &paths)?
        };
        let parent_tree = parent.as_ref().map(|p| p.snapshot.tree);
        let arch = archiver::Archiver::new(repo, chunker, opts, parent_tree, progress);
        let root = layout::Layout::new(&abs);
        let tree = arch.archive_layout(&root)?;
        (paths, tree, parent.map(|p| (p.id, p.snapshot.tree)), arch)
    };
    let parent_id = parent.map(|(id, _)| id);

    repo.flush()?;
    repo.save_index()?;
    let errors = arch.take_errors();
    let counts = snapshot_counts(arch.counters(), repo, start_time, errors.len());
    let snap = Snapshot {
        time: start_time,
        parent: parent_id,
        tree,
        paths,
        hostname: host,
        username: sys::username(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        tags: opts.tags.clone(),
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        summary: Some(counts.clone()),
    };
    let mut summary = BackupSummary {
        snapshot_id: None,
        parent: parent_id,
        counts,
        total_duration: 0.0,
        errors,
        warnings: arch.take_warnings(),
        locks: Default::default(),
        skipped_unchanged: false,
    };
    // Everything at and below the backed-up paths as in the parent (same host and
    // paths, by how the parent is found): nothing to record. The directories above
    // them are not compared: their times change with anything beside the source (a
    // repository or cache kept there). Blobs stored anyway are indexed, and unused.
    let unchanged = match parent {
        Some((_, old)) if opts.skip_if_unchanged && summary.errors.is_empty() => {
            same_below(repo, &old, &tree, &snap.paths)?
        }
        _ => false,
    };
    if unchanged {
        summary.skipped_unchanged = true;
        summary.total_duration = start.elapsed().as_secs_f64();
        return Ok(summary);
    }
    summary.snapshot_id = Some(repo.save_snapshot(&snap)?);
    summary.total_duration = start.elapsed().as_secs_f64();
    Ok(summary)
}
