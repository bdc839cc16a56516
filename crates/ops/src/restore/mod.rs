//! `restore`: recreate a snapshot (or part of one) under a target directory.
//!
//! Algorithm: first a plan (walk the trees, apply include/exclude, pair hardlinks), then
//! execution in phases: directories (created owner-writable), file contents in
//! parallel, hardlinks, symlinks and special files, then metadata of files, and last
//! the metadata of directories from the deepest up, because creating entries inside a
//! directory changes its mtime and a read-only mode would block the creation.
//!
//! Safety: every tree entry's name is checked before use (no `/`, `.`, `..` or NUL), so
//! nothing is created outside the target; everything below the target is reached
//! through directory descriptors opened with `O_NOFOLLOW` ([`target`]), so a symlink in
//! the way is replaced, never followed, wherever it sits.

mod file;
mod plan;
mod target;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use cairn_format::{Node, NodeType};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{Repository, SnapshotRef};

use crate::filter::PathFilter;
use crate::meta::{apply_metadata, NameCache, Target};
use crate::OpsError;
use file::{restore_file, FileResult, BLOBS_PER_BATCH};
pub use plan::{Item, RestorePlan};
use target::TargetDir;
pub use verify::file_matches;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    #[default]
    Always,
    /// Skip files whose existing content already matches the snapshot.
    IfChanged,
    Never,
}

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Absolute path inside the snapshot whose contents go directly into the target.
    pub subpath: Option<String>,
    pub includes: PathFilter,
    pub excludes: PathFilter,
    pub verify: bool,
    pub overwrite: Overwrite,
    /// Remove entries the snapshot does not have from restored directories at or below
    /// its backed-up paths, among those the include and exclude patterns select.
    pub delete: bool,
    /// Never deleted by `delete`, nor any directory holding one: the open repository
    /// and its cache (canonical paths).
    pub protect: Vec<PathBuf>,
    pub dry_run: bool,
    /// Restore only these files (absolute snapshot paths, exact bytes) and the
    /// directories above them: how `drill` restores its sample.
    pub only: Option<std::sync::Arc<std::collections::HashSet<Vec<u8>>>>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub files_restored: u64,
    pub bytes_restored: u64,
    pub dirs_restored: u64,
    pub files_skipped: u64,
    pub files_deleted: u64,
    pub dirs_deleted: u64,
    /// Every entry `--delete` removed (in a dry run: would remove).
    pub deleted: Vec<String>,
    pub files_verified: u64,
    /// One line per file or directory that was not restored exactly.
    pub errors: Vec<String>,
}

struct Errors(Mutex<Vec<String>>);

impl Errors {
    fn add(&self, path: &Path, e: impl std::fmt::Display) {
        let msg = format!("{}: {e}", path.display());
        tracing::debug!("{msg}");
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(msg);
    }
}

/// The `restore` command: a shared lock and the index, then the snapshot `spec` names
/// is restored. Returns the snapshot with the summary.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    spec: &str,
    opts: &RestoreOptions,
    progress: &dyn crate::Progress,
) -> Result<(SnapshotRef, RestoreSummary), OpsError> {
    let _session = Session::begin(repo, "restore", Access::Read, LoadIndex::Yes)?;
    let snap = repo.find_snapshot(spec)?;
    let s = restore_with_progress(repo, &snap, opts, progress)?;
    Ok((snap, s))
}

/// Restores `snap` as `opts` says. The caller holds a shared lock and has loaded the
/// index (see [`run`]).
pub fn restore(
    repo: &Repository,
    snap: &SnapshotRef,
    opts: &RestoreOptions,
) -> Result<RestoreSummary, OpsError> {
    restore_with_progress(repo, snap, opts, &crate::NoProgress)
}

/// [`restore`], reporting the planned files and bytes, then each file as it is done.
pub fn restore_with_progress(
    repo: &Repository,
    snap: &SnapshotRef,
    opts: &RestoreOptions,
    progress: &dyn crate::Progress,
) -> Result<RestoreSummary, OpsError> {
    let plan = RestorePlan::build(repo, snap, opts)?;
    progress.start(
        plan.files.len() as u64,
        plan.files.iter().map(|i| i.node.size).sum(),
    );
    let result = crate::in_io_pool(repo.io_threads(), || execute(repo, plan, opts, progress));
    progress.finish();
    result
}

fn execute(
    repo: &Repository,
    plan: RestorePlan,
    opts: &RestoreOptions,
    progress: &dyn crate::Progress,
) -> Result<RestoreSummary, OpsError> {
    let mut summary = RestoreSummary {
        dirs_restored: plan.dirs.len() as u64,
        ..Default::default()
    };
    if opts.dry_run {
        describe(&plan, opts, &mut summary)?;
        return Ok(summary);
    }
    let errors = Errors(Mutex::new(Vec::new()));
    // Ownership is restored when running as root, names resolved once each.
    let names = NameCache::default();
    let owners = nix::unistd::geteuid().is_root().then_some(&names);
    let target = TargetDir::open(&opts.target).map_err(|e| OpsError::io(&opts.target, e))?;
    let failed_dirs = create_dirs(&target, &plan, &errors);
    let failed_dirs = failed_dirs.as_slice();
    let outcomes = restore_files(
        repo,
        &target,
        &plan,
        opts,
        owners,
        failed_dirs,
        &errors,
        progress,
    );
    for o in &outcomes {
        match o {
            FileResult::Written(n) => {
                summary.files_restored += 1;
                summary.bytes_restored += n;
            }
            FileResult::Identical | FileResult::Kept => summary.files_skipped += 1,
            FileResult::Failed => {}
        }
    }
    summary.files_restored += links_and_specials(&target, &plan, opts, failed_dirs, &errors);
    file_metadata(&target, &plan, &outcomes, owners, failed_dirs, &errors);
    if opts.delete {
        let d = plan::delete_extraneous(&target, &plan, opts, true, &errors_sink(&errors));
        (summary.files_deleted, summary.dirs_deleted, summary.deleted) = (d.files, d.dirs, d.paths);
    }
    dir_metadata(&target, &plan, owners, failed_dirs, &errors);
    if opts.verify {
        summary.files_verified = verify_files(repo, &target, &plan, failed_dirs, &errors);
    }
    summary.errors = errors.0.into_inner().unwrap_or_else(|p| p.into_inner());
    summary.errors.sort();
    summary.errors.dedup();
    Ok(summary)
}

/// Whether `p` lies in a directory whose creation failed (its contents are not tried).
fn under(failed_dirs: &[&Path], p: &Path) -> bool {
    failed_dirs.iter().any(|f| p.starts_with(f))
}

/// `--dry-run`: what would be restored and, with `--delete`, deleted.
fn describe(
    plan: &RestorePlan,
    opts: &RestoreOptions,
    summary: &mut RestoreSummary,
) -> Result<(), OpsError> {
    summary.files_restored = (plan.files.len() + plan.hardlinks.len() + plan.others.len()) as u64;
    summary.bytes_restored = plan.files.iter().map(|i| i.node.size).sum();
    if opts.delete {
        if let Some(target) =
            TargetDir::open_existing(&opts.target).map_err(|e| OpsError::io(&opts.target, e))?
        {
            let errors = Errors(Mutex::new(Vec::new()));
            let d = plan::delete_extraneous(&target, plan, opts, false, &errors_sink(&errors));
            (summary.files_deleted, summary.dirs_deleted, summary.deleted) =
                (d.files, d.dirs, d.paths);
            summary.errors = errors.0.into_inner().unwrap_or_else(|p| p.into_inner());
        }
    }
    Ok(())
}

/// Creates the directories; returns those whose creation failed.
fn create_dirs<'p>(target: &TargetDir, plan: &'p RestorePlan, errors: &Errors) -> Vec<&'p Path> {
    let mut failed_dirs: Vec<&Path> = Vec::new();
    for d in &plan.dirs {
        if under(&failed_dirs, &d.dest) {
            continue;
        }
        if let Err(e) = ensure_dir(target, &d.dest) {
            errors.add(&d.dest, e);
            failed_dirs.push(&d.dest);
        }
    }
    failed_dirs
}

/// Restores the regular files in parallel; one outcome per planned file, in order.
#[allow(clippy::too_many_arguments)]
fn restore_files(
    repo: &Repository,
    target: &TargetDir,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    owners: Option<&NameCache>,
    failed_dirs: &[&Path],
    errors: &Errors,
    progress: &dyn crate::Progress,
) -> Vec<FileResult> {
    // On an I/O pool (a remote repository) many files are restored at once already, and
    // the read-ahead fetches ahead of them: a smaller batch each keeps memory near what a
    // local restore holds (16 threads with 8 blobs each held 175 MiB). Worked out once,
    // not per file (the core count is a few syscalls).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let batch_len =
        (BLOBS_PER_BATCH * cores / rayon::current_num_threads()).clamp(2, BLOBS_PER_BATCH);
    let outcomes: Vec<FileResult> = plan
        .files
        .par_iter()
        .map(|item| {
            if under(failed_dirs, &item.dest) {
                return FileResult::Failed;
            }
            progress.current(&item.dest);
            let r = restore_file(
                repo,
                target,
                item,
                opts.overwrite,
                owners,
                errors,
                batch_len,
            )
            .unwrap_or_else(|e| {
                errors.add(&item.dest, e);
                FileResult::Failed
            });
            progress.file_done(item.node.size);
            r
        })
        .collect();
    outcomes
}

/// Hardlinks within the snapshot and special files; returns how many were made.
fn links_and_specials(
    target: &TargetDir,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    failed_dirs: &[&Path],
    errors: &Errors,
) -> u64 {
    let mut made = 0;
    for (dest, source) in &plan.hardlinks {
        let r = link(target, source, dest);
        match r {
            Ok(()) => made += 1,
            Err(e) => errors.add(dest, format!("hardlink to {}: {e}", source.display())),
        }
    }

    for item in &plan.others {
        if under(failed_dirs, &item.dest) {
            continue;
        }
        match create_special(target, &item.dest, &item.node, opts.overwrite) {
            Ok(true) => made += 1,
            Ok(false) => {}
            Err(e) => errors.add(&item.dest, e),
        }
    }

    made
}

/// Metadata of files and specials not written by this restore (files written have
/// theirs already, set before they were closed; files kept under `--overwrite never`
/// are left exactly as they were).
fn file_metadata(
    target: &TargetDir,
    plan: &RestorePlan,
    outcomes: &[FileResult],
    owners: Option<&NameCache>,
    failed_dirs: &[&Path],
    errors: &Errors,
) {
    let done: std::collections::HashSet<&Path> = plan
        .files
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, FileResult::Kept | FileResult::Written(_)))
        .map(|(i, _)| i.dest.as_path())
        .collect();
    plan.files
        .par_iter()
        .chain(plan.others.par_iter())
        .for_each(|item| {
            if item.node.node_type == NodeType::Socket
                || under(failed_dirs, &item.dest)
                || done.contains(item.dest.as_path())
            {
                return;
            }
            if let Err(e) = metadata_of_existing(target, item, owners) {
                errors.add(&item.dest, format!("metadata: {e}"));
            }
        });
}

/// Directory metadata, deepest first, after everything inside them is in place.
fn dir_metadata(
    target: &TargetDir,
    plan: &RestorePlan,
    owners: Option<&NameCache>,
    failed_dirs: &[&Path],
    errors: &Errors,
) {
    for d in plan.dirs.iter().rev() {
        if under(failed_dirs, &d.dest) {
            continue;
        }
        let dir = target
            .dir(&d.dest)
            .and_then(|fd| fd.try_clone())
            .map(std::fs::File::from);
        if let Err(e) = dir.and_then(|f| apply_metadata(Target::File(&f), &d.node, owners)) {
            errors.add(&d.dest, format!("metadata: {e}"));
        }
    }
}

/// `--verify`: reads every restored file back against the snapshot; returns how many
/// matched.
fn verify_files(
    repo: &Repository,
    target: &TargetDir,
    plan: &RestorePlan,
    failed_dirs: &[&Path],
    errors: &Errors,
) -> u64 {
    let verified: Vec<bool> = plan
        .files
        .par_iter()
        .filter(|i| !under(failed_dirs, &i.dest))
        .map(|item| match verify_at(repo, target, item) {
            Ok(true) => true,
            Ok(false) => {
                errors.add(
                    &item.dest,
                    "verification failed: content differs from the snapshot",
                );
                false
            }
            Err(e) => {
                errors.add(&item.dest, format!("verification failed: {e}"));
                false
            }
        })
        .collect();
    verified.iter().filter(|v| **v).count() as u64
}

fn errors_sink(errors: &Errors) -> impl Fn(&Path, String) + '_ {
    move |p, e| errors.add(p, e)
}

/// Makes `dest` a real directory: an existing directory is kept, anything else in the
/// way (a file, a symlink that might point outside the target) is removed first.
fn ensure_dir(target: &TargetDir, dest: &Path) -> std::io::Result<()> {
    let (dir, name) = target.parent(dest)?;
    match target::stat_at(&dir, name)? {
        Some(st) if target::is_dir(&st) => return Ok(()),
        Some(_) => target::remove_at(&dir, name)?,
        None => {}
    }
    target.forget(dest);
    nix::sys::stat::mkdirat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&*dir)),
        name,
        nix::sys::stat::Mode::from_bits_truncate(0o700),
    )?;
    Ok(())
}

/// Makes `dest` another name of the file already restored at `source`.
fn link(target: &TargetDir, source: &Path, dest: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (sdir, sname) = target.parent(source)?;
    let (ddir, dname) = target.parent(dest)?;
    target::remove_at(&ddir, dname)?;
    // Without AT_SYMLINK_FOLLOW: a symlink put where the source was is not followed.
    nix::unistd::linkat(
        Some(sdir.as_raw_fd()),
        sname,
        Some(ddir.as_raw_fd()),
        dname,
        nix::fcntl::AtFlags::empty(),
    )?;
    Ok(())
}

/// Sets the metadata of a file or special that this run did not write (`--overwrite
/// if-changed` found it identical) or created without it (symlinks, fifos, devices).
fn metadata_of_existing(
    target: &TargetDir,
    item: &Item,
    owners: Option<&NameCache>,
) -> std::io::Result<()> {
    let (dir, name) = target.parent(&item.dest)?;
    if target::stat_at(&dir, name)?.is_none() {
        return Ok(());
    }
    if item.node.node_type == NodeType::File {
        let f = target::open_file_at(&dir, name)?;
        return apply_metadata(Target::File(&f), &item.node, owners);
    }
    apply_metadata(Target::At(&dir, name), &item.node, owners)
}

/// `--verify` of one restored file, read through the target's descriptors.
fn verify_at(repo: &Repository, target: &TargetDir, item: &Item) -> Result<bool, OpsError> {
    let (dir, name) = target
        .parent(&item.dest)
        .map_err(|e| OpsError::io(&item.dest, e))?;
    let f = target::open_file_at(&dir, name).map_err(|e| OpsError::io(&item.dest, e))?;
    verify::file_matches(repo, &f, &item.dest, &item.node)
}

/// Creates a symlink, fifo or device node. Sockets are skipped (a socket belongs to a
/// running process; restic skips them too). Returns whether something was created.
fn create_special(
    target: &TargetDir,
    dest: &Path,
    node: &Node,
    overwrite: Overwrite,
) -> Result<bool, String> {
    use nix::sys::stat::{mknodat, Mode, SFlag};
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    if node.node_type == NodeType::Socket {
        return Ok(false);
    }
    let (dir, name) = target.parent(dest).map_err(|e| e.to_string())?;
    if target::stat_at(&dir, name)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        if overwrite == Overwrite::Never {
            return Ok(false);
        }
        target::remove_at(&dir, name).map_err(|e| e.to_string())?;
    }
    let mode = Mode::from_bits_truncate(node.mode & 0o7777);
    let fd = Some(dir.as_raw_fd());
    match node.node_type {
        NodeType::Symlink => nix::unistd::symlinkat(
            std::ffi::OsStr::from_bytes(node.link_target.as_slice()),
            fd,
            name,
        )
        .map_err(|e| e.to_string())?,
        NodeType::Fifo => nix::unistd::mkfifoat(fd, name, mode).map_err(|e| e.to_string())?,
        NodeType::Chardev | NodeType::Blockdev => {
            let kind = if node.node_type == NodeType::Chardev {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            mknodat(fd, name, kind, mode, node.rdev as libc::dev_t)
                .map_err(|e| format!("cannot create device node: {e}"))?
        }
        _ => return Ok(false),
    }
    Ok(true)
}
