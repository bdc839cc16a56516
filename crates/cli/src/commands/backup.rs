use std::path::PathBuf;
use std::sync::Arc;

use cairn_format::CompressionMode;
use cairn_ops::backup::BackupOptions;
use cairn_ops::filter::PathFilter;
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::output::{self, size};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable; commas separate several)
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot
    #[arg(long, value_name = "H")]
    pub host: Option<String>,
    /// Compare with this snapshot instead of the latest of the same host and paths
    #[arg(long, value_name = "SNAP")]
    pub parent: Option<String>,
    /// Exclude paths matching GLOB
    #[arg(short = 'e', long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Like --exclude, ignoring case
    #[arg(long = "iexclude", value_name = "GLOB")]
    pub iexcludes: Vec<String>,
    /// Read exclude patterns from F, one per line
    #[arg(long = "exclude-file", value_name = "F")]
    pub exclude_files: Vec<PathBuf>,
    /// Exclude directories that contain a file named NAME
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Exclude files larger than SIZE (K, M, G, T suffixes)
    #[arg(long, value_name = "SIZE", value_parser = output::parse_size)]
    pub exclude_larger_than: Option<u64>,
    /// Do not cross filesystem boundaries
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Do not use inode numbers to detect unchanged files
    #[arg(long)]
    pub ignore_inode: bool,
    /// Do not use ctime to detect unchanged files
    #[arg(long)]
    pub ignore_ctime: bool,
    /// Read every file, even those the parent snapshot shows unchanged
    #[arg(short, long)]
    pub force: bool,
    /// Do everything but write to the repository
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Back up standard input as one file. cairn cannot tell whether the program feeding
    /// it finished or failed half way; prefer --stdin-from-command
    #[arg(long)]
    pub stdin: bool,
    /// Run the command given after `--` and back up its output as one file; nothing is
    /// saved unless it exits 0 (cairn backup --stdin-from-command -- pg_dump mydb)
    #[arg(long, conflicts_with = "stdin")]
    pub stdin_from_command: bool,
    /// File name for --stdin and --stdin-from-command
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    pub stdin_filename: String,
    /// Compression for this backup (auto, off, max, 1-22)
    #[arg(long, value_name = "MODE", value_parser = CompressionMode::parse)]
    pub compression: Option<CompressionMode>,
    /// Concurrent pack uploads (default 8 for B2, none for a local directory)
    #[arg(long, value_name = "N")]
    pub transfers: Option<usize>,
    /// Seconds between index checkpoints (default 300); for tests of interrupted backups
    #[arg(long, hide = true, value_name = "SECS")]
    pub checkpoint_interval: Option<u64>,
    /// Files read at the same time (default: one per core)
    #[arg(long, value_name = "N")]
    pub read_concurrency: Option<usize>,
    /// Save no snapshot when nothing changed since the parent snapshot
    #[arg(long)]
    pub skip_if_unchanged: bool,
    /// Run at normal CPU and I/O priority (by default backup yields to everything else:
    /// nice 10, best-effort I/O at the lowest level)
    #[arg(long)]
    pub no_nice: bool,
}

pub fn run(g: &GlobalArgs, a: BackupArgs) -> anyhow::Result<ExitCode> {
    if a.stdin && !a.paths.is_empty() {
        return Err(fail(ExitCode::Fatal, "--stdin takes no paths"));
    }
    if a.stdin_from_command && a.paths.is_empty() {
        return Err(fail(ExitCode::Fatal, "--stdin-from-command needs a command after `--`: cairn backup --stdin-from-command -- CMD [ARG...]"));
    }
    if !a.stdin && !a.stdin_from_command && a.paths.is_empty() {
        return Err(fail(
            ExitCode::Fatal,
            "nothing to back up: give at least one PATH (or --stdin)",
        ));
    }
    let opts = backup_options(&a)?;
    if !a.no_nice {
        yield_to_others();
    }
    let compression = a.compression;
    let repo = super::open_repo_with(g, |o| {
        o.dry_run = a.dry_run;
        o.compression = compression;
        if let Some(n) = a.transfers {
            o.transfers = n;
        }
    })?;
    let opts = BackupOptions {
        list_stored: g.verbose >= 2,
        ..opts
    };
    // Unreadable files and files that changed while read were named as they happened.
    let s = cairn_ops::backup::run(&Arc::new(repo), &opts, &output::Bar::new(g))?;
    print_summary(g, &s, a.dry_run)?;
    if !s.errors.is_empty() {
        eprintln!(
            "warning: {} file(s) could not be read; the snapshot was saved without them",
            s.errors.len()
        );
        return Ok(ExitCode::PartialBackup);
    }
    Ok(ExitCode::Ok)
}

/// The backup's options from its arguments (exclude files read here).
fn backup_options(a: &BackupArgs) -> anyhow::Result<BackupOptions> {
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_files {
        excludes.extend(PathFilter::read_pattern_file(f)?);
    }
    let exclude_larger_than = a.exclude_larger_than;
    let opts = BackupOptions {
        paths: if a.stdin_from_command {
            Vec::new()
        } else {
            a.paths.clone()
        },
        tags: a
            .tags
            .iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        host: a.host.clone(),
        parent: a.parent.clone(),
        force: a.force,
        excludes: PathFilter::new(&excludes, &a.iexcludes)?,
        exclude_if_present: a.exclude_if_present.clone(),
        exclude_larger_than,
        one_file_system: a.one_file_system,
        ignore_inode: a.ignore_inode,
        ignore_ctime: a.ignore_ctime,
        stdin_filename: (a.stdin || a.stdin_from_command).then(|| a.stdin_filename.clone()),
        stdin_command: a
            .stdin_from_command
            .then(|| a.paths.iter().map(|p| p.clone().into_os_string()).collect()),
        read_concurrency: a.read_concurrency.unwrap_or(0),
        skip_if_unchanged: a.skip_if_unchanged,
        ..BackupOptions::default()
    };
    let opts = match a.checkpoint_interval {
        Some(secs) => BackupOptions {
            checkpoint_interval: std::time::Duration::from_secs(secs),
            ..opts
        },
        None => opts,
    };
    Ok(opts)
}

fn print_summary(
    g: &GlobalArgs,
    s: &cairn_ops::backup::BackupSummary,
    dry_run: bool,
) -> anyhow::Result<()> {
    let id = s.snapshot_id.map(|i| i.to_hex()).unwrap_or_default();
    let c = &s.counts;
    if g.json {
        let mut v = serde_json::to_value(&s.counts)?;
        if let Some(m) = v.as_object_mut() {
            m.remove("backup_start");
            m.remove("backup_end");
            m.insert("message_type".into(), json!("summary"));
            m.insert("snapshot_id".into(), json!(id));
            m.insert("total_duration".into(), json!(s.total_duration));
            m.insert("dry_run".into(), json!(dry_run));
            m.insert("locks_extended".into(), json!(s.locks.extended));
            m.insert("skipped_unchanged".into(), json!(s.skipped_unchanged));
        }
        output::print_json(&v);
    } else if !g.quiet {
        if let Some(p) = s.parent {
            println!("using parent snapshot {}", p.short());
        }
        // A file that could not be read is processed but neither new nor kept.
        let unread = c
            .total_files_processed
            .saturating_sub(c.files_new + c.files_changed + c.files_unmodified);
        let unread = if unread > 0 {
            format!(", {unread} not read (see above)")
        } else {
            String::new()
        };
        println!(
            "Files:       {} new, {} changed, {} unmodified{unread}",
            c.files_new, c.files_changed, c.files_unmodified
        );
        println!(
            "Dirs:        {} new, {} changed, {} unmodified",
            c.dirs_new, c.dirs_changed, c.dirs_unmodified
        );
        println!(
            "Added to the repository: {} ({} stored)",
            size(c.data_added),
            size(c.data_added_packed)
        );
        println!(
            "processed {} files, {} in {:.1}s",
            c.total_files_processed,
            size(c.total_bytes_processed),
            s.total_duration
        );
        if dry_run {
            println!("dry run: nothing was written");
        } else if s.skipped_unchanged {
            let parent = s.parent.map(|p| p.short()).unwrap_or_default();
            println!("nothing changed since snapshot {parent}; no snapshot saved");
        } else {
            println!("snapshot {} saved", &id[..8.min(id.len())]);
        }
        if let Some(until) = s.locks.until_millis {
            println!(
                "locks of {} file(s) extended until {}",
                s.locks.extended,
                cairn_backend::show_millis(until)
            );
        }
    }
    Ok(())
}

/// Lowers this process's CPU priority (nice 10) and I/O priority (best-effort, level 7,
/// the lowest that still makes progress), so a laptop stays responsive while a backup
/// runs; on an idle machine it is as fast. Failing to is not an error.
fn yield_to_others() {
    // SAFETY: setpriority and the ioprio_set syscall take plain integers.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_BE: libc::c_long = 2;
        let _ = libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            (IOPRIO_CLASS_BE << 13) | 7,
        );
    }
}
