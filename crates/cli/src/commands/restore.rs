use std::path::PathBuf;

use cairn_ops::filter::PathFilter;
use cairn_ops::restore::{Overwrite, RestoreOptions};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;
use crate::output::{self, size};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OverwriteArg {
    Always,
    IfChanged,
    Never,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SNAP or SNAP:/path/inside
    pub snapshot: String,
    /// Directory to restore into
    #[arg(short, long, value_name = "DIR")]
    pub target: PathBuf,
    /// Only restore paths matching GLOB (and what is below them)
    #[arg(short, long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Like --include, ignoring case
    #[arg(long = "iinclude", value_name = "GLOB")]
    pub iincludes: Vec<String>,
    /// Do not restore paths matching GLOB
    #[arg(short, long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Like --exclude, ignoring case
    #[arg(long = "iexclude", value_name = "GLOB")]
    pub iexcludes: Vec<String>,
    /// Read back every restored file and check it against the snapshot
    #[arg(long)]
    pub verify: bool,
    /// What to do with files that already exist in the target
    #[arg(long, value_enum, default_value = "always")]
    pub overwrite: OverwriteArg,
    /// Delete what the snapshot does not have from the restored directories: only at or
    /// below the backed-up paths, only what --include/--exclude select, never this
    /// repository or its cache. Each deletion is listed; look first with --dry-run
    #[arg(long)]
    pub delete: bool,
    /// Show what would be restored without writing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub latest: crate::args::LatestFilter,
}

pub fn run(g: &GlobalArgs, a: RestoreArgs) -> anyhow::Result<ExitCode> {
    // SNAP:/sub/path restores the contents of that directory directly into the target.
    let (spec, subpath) = match a.snapshot.split_once(':') {
        // A relative path is resolved against the snapshot's backed-up paths.
        Some((s, p)) => (s.to_string(), Some(p.to_string())),
        None => (a.snapshot.clone(), None),
    };
    let opts = RestoreOptions {
        only: None,
        target: a.target.clone(),
        subpath,
        includes: PathFilter::new(&a.includes, &a.iincludes)?,
        excludes: PathFilter::new(&a.excludes, &a.iexcludes)?,
        verify: a.verify,
        overwrite: match a.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        },
        delete: a.delete,
        protect: protected_paths(g),
        dry_run: a.dry_run,
    };
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let spec = a.latest.resolve(&repo, &spec)?;
    let (snap, s) = cairn_ops::restore::run(&repo, &spec, &opts, &output::Bar::new(g))?;
    for e in &s.errors {
        eprintln!("error: {e}");
    }
    print_summary(g, &s, &a, &snap.id.short());
    if !s.errors.is_empty() {
        eprintln!(
            "cairn: {} file(s) could not be restored exactly (listed above)",
            s.errors.len()
        );
        return Ok(ExitCode::Fatal);
    }
    Ok(ExitCode::Ok)
}

fn print_summary(
    g: &GlobalArgs,
    s: &cairn_ops::restore::RestoreSummary,
    a: &RestoreArgs,
    snap: &str,
) {
    if g.json {
        output::print_json(&json!({
            "message_type": "summary",
            "files_restored": s.files_restored,
            "bytes_restored": s.bytes_restored,
            "dirs_restored": s.dirs_restored,
            "files_skipped": s.files_skipped,
            "files_deleted": s.files_deleted,
            "dirs_deleted": s.dirs_deleted,
            "deleted": s.deleted,
            "files_verified": s.files_verified,
            "errors": s.errors.len(),
        }));
    } else if !g.quiet {
        let verb = if a.dry_run {
            "would restore"
        } else {
            "restored"
        };
        println!(
            "{verb} {} files ({}) and {} directories from snapshot {} to {}",
            s.files_restored,
            size(s.bytes_restored),
            s.dirs_restored,
            snap,
            a.target.display()
        );
        if s.files_skipped > 0 {
            println!("skipped {} existing files", s.files_skipped);
        }
        let deleted = if a.dry_run { "would delete" } else { "deleted" };
        for p in &s.deleted {
            println!("{deleted} {p}");
        }
        if !s.deleted.is_empty() {
            println!(
                "{deleted} {} and {} not in the snapshot",
                cairn_ops::size::count(s.files_deleted, "file", "files"),
                cairn_ops::size::count(s.dirs_deleted, "directory", "directories")
            );
        }
        if a.verify {
            // Only regular files are read back; say what the other count holds.
            let others = s.files_restored.saturating_sub(s.files_verified);
            if others > 0 {
                println!(
                    "verified {} regular files byte for byte; the other {others} (symlinks, hard links, special files) are not read back",
                    s.files_verified
                );
            } else {
                println!("verified {} files byte for byte", s.files_verified);
            }
        }
    }
}

/// What `--delete` must never remove, even inside the restored tree: the repository
/// being read (a local one) and cairn's cache. A repository kept in `~` and left out of
/// the backup of `~` is the common case.
fn protected_paths(g: &GlobalArgs) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Some(loc) = g.repo.as_deref().filter(|l| !crate::location::is_remote(l)) {
        out.push(std::path::PathBuf::from(
            loc.strip_prefix("local:").unwrap_or(loc),
        ));
    }
    out.extend(crate::location::cache_root(g));
    out.into_iter()
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect()
}
