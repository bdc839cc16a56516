use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_backend::{Backend, LocalBackend};
use cairn_ops::sync::{sync, Compare, Newer, SyncOptions};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::location;
use crate::output::{self, size};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompareArg {
    Modtime,
    Size,
    Checksum,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Copy from: a directory, b2:BUCKET/PATH, s3:[https://HOST/]BUCKET/PATH, sftp:[USER@]HOST:PATH or rclone:REMOTE:PATH
    pub src: String,
    /// Copy to (made the same as SRC; with --delete, what SRC lacks is removed)
    pub dst: String,
    /// Delete files in DST that SRC lacks (on B2: hide them), after all transfers succeeded
    #[arg(long)]
    pub delete: bool,
    /// Like --delete, but delete every version on B2
    #[arg(long)]
    pub hard_delete: bool,
    /// Let --delete empty the destination when the source is empty, or delete more than
    /// 10% of its files (once that is more than 10)
    #[arg(long)]
    pub allow_deletes: bool,
    /// How files are compared: size and modification time; size only; or size and the
    /// checksum both sides know without a download (SHA1 on B2, MD5 on S3; as modtime
    /// where they share none)
    #[arg(long, value_enum, default_value = "modtime")]
    pub compare: CompareArg,
    /// Concurrent transfers (default 16 with B2, 4 otherwise)
    #[arg(long, value_name = "N")]
    pub transfers: Option<usize>,
    /// Only paths matching REGEX (relative path)
    #[arg(long = "include", value_name = "REGEX")]
    pub includes: Vec<String>,
    /// Skip paths matching REGEX (relative path)
    #[arg(long = "exclude", value_name = "REGEX")]
    pub excludes: Vec<String>,
    /// Leave destination files that are newer alone
    #[arg(long, conflicts_with = "replace_newer")]
    pub skip_newer: bool,
    /// Overwrite destination files even when they are newer
    #[arg(long)]
    pub replace_newer: bool,
    /// Show what would be transferred
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

struct Side {
    backend: Arc<dyn Backend>,
    local: Option<Arc<LocalBackend>>,
    /// For a bucket: which one (store and name) and the prefix inside it.
    bucket: Option<(String, String)>,
}

fn open_side(g: &GlobalArgs, loc: &str) -> anyhow::Result<Side> {
    if location::is_remote(loc) {
        let backend = location::open_backend(loc, g)?;
        return Ok(Side {
            bucket: backend.bucket(),
            backend,
            local: None,
        });
    }
    location::refuse_unknown_scheme(loc)?;
    let l = Arc::new(LocalBackend::new(loc.strip_prefix("local:").unwrap_or(loc)));
    Ok(Side {
        backend: l.clone(),
        local: Some(l),
        bucket: None,
    })
}

fn regexes(v: &[String]) -> anyhow::Result<Vec<regex::Regex>> {
    v.iter()
        .map(|r| {
            regex::Regex::new(r)
                .map_err(|e| fail(ExitCode::Fatal, format!("invalid regex {r:?}: {e}")))
        })
        .collect()
}

/// Where a local location really is, for one that may not exist yet: its nearest
/// existing ancestor with symlinks resolved, and the rest appended.
fn real_path(p: &Path) -> PathBuf {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut rest = Vec::new();
    let mut cur = p.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            return rest.iter().rev().fold(real, |acc: PathBuf, c| acc.join(c));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return p,
        }
    }
}

/// Whether two prefixes in one bucket overlap: one is the other or lies inside it.
fn prefixes_overlap(a: &str, b: &str) -> bool {
    let inside = |x: &str, y: &str| {
        y.is_empty() || x == y || x.strip_prefix(y).is_some_and(|r| r.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

/// Refuses a source and destination where one holds the other (as rclone does
/// "overlapping remotes"): the destination's deletions would take the source's own
/// files, or its neighbours, with them.
fn refuse_overlap(src: &Side, dst: &Side, a: &SyncArgs) -> anyhow::Result<()> {
    let overlap = match (&src.bucket, &dst.bucket, &src.local, &dst.local) {
        (Some((s, sp)), Some((d, dp)), _, _) => s == d && prefixes_overlap(sp, dp),
        (_, _, Some(s), Some(d)) => {
            let (s, d) = (real_path(s.root()), real_path(d.root()));
            s.starts_with(&d) || d.starts_with(&s)
        }
        _ => false,
    };
    if overlap {
        return Err(fail(
            ExitCode::Fatal,
            format!("refusing to sync {} to {}: one holds the other, so the sync would delete or rewrite its own source; nothing was transferred or deleted", a.src, a.dst),
        ));
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, a: SyncArgs) -> anyhow::Result<ExitCode> {
    let (src, dst) = (open_side(g, &a.src)?, open_side(g, &a.dst)?);
    refuse_overlap(&src, &dst, &a)?;
    let remote = src.local.is_none() || dst.local.is_none();
    let opts = sync_options(&a, remote)?;
    let bar = output::Bar::new(g);
    let s = sync(src.backend.as_ref(), dst.backend.as_ref(), &opts, &bar)?;
    let mut t = cairn_backend::Transactions::default();
    for b in [&src.backend, &dst.backend] {
        t += b.transactions().unwrap_or_default();
    }
    let costs = output::cost_lines(&[src.backend.as_ref(), dst.backend.as_ref()]);
    for e in &s.errors {
        eprintln!("error: {e}");
    }
    for n in &s.unsafe_names {
        eprintln!("warning: skipped {n:?}: not a safe path (.., an absolute path or NUL)");
    }
    print_summary(g, &s, a.dry_run, t, &costs);
    if !s.errors.is_empty() {
        eprintln!(
            "cairn: {} file(s) failed{}",
            s.errors.len(),
            if opts.delete {
                "; nothing was deleted"
            } else {
                ""
            }
        );
        return Ok(ExitCode::Fatal);
    }
    // Done, but not all of it: as a backup with unreadable files.
    if !s.unsafe_names.is_empty() {
        eprintln!("cairn: {} name(s) skipped as unsafe", s.unsafe_names.len());
        return Ok(ExitCode::PartialBackup);
    }
    Ok(ExitCode::Ok)
}

fn sync_options(a: &SyncArgs, remote: bool) -> anyhow::Result<SyncOptions> {
    let opts = SyncOptions {
        compare: match a.compare {
            CompareArg::Modtime => Compare::ModTime,
            CompareArg::Size => Compare::Size,
            CompareArg::Checksum => Compare::Checksum,
        },
        newer: if a.skip_newer {
            Newer::Skip
        } else if a.replace_newer {
            Newer::Replace
        } else {
            Newer::Error
        },
        delete: a.delete || a.hard_delete,
        // (rclone's `hard_delete = true` on the destination remote: B2Backend::hide
        // declines, and the file is deleted.)
        hard_delete: a.hard_delete,
        transfers: a.transfers.unwrap_or(if remote { 16 } else { 4 }),
        includes: regexes(&a.includes)?,
        excludes: regexes(&a.excludes)?,
        dry_run: a.dry_run,
        allow_deletes: a.allow_deletes,
    };
    Ok(opts)
}

fn print_summary(
    g: &GlobalArgs,
    s: &cairn_ops::sync::SyncSummary,
    dry_run: bool,
    t: cairn_backend::Transactions,
    costs: &[String],
) {
    for n in &s.notes {
        eprintln!("note: {n}");
    }
    if g.json {
        let mut v = output::transfer_summary(
            s.files_uploaded,
            s.bytes_uploaded,
            s.files_deleted,
            s.files_skipped,
            dry_run,
            t,
        );
        v["errors"] = json!(s.errors.len());
        v["unsafe_names"] = json!(s.unsafe_names);
        v["files_touched"] = json!(s.files_touched);
        v["deleted"] = json!(s.deleted);
        v["notes"] = json!(s.notes);
        if let Some(why) = &s.refusal {
            v["refusal"] = json!(why);
        }
        output::print_json(&v);
    } else if !g.quiet {
        if dry_run {
            for p in &s.deleted {
                println!("would delete {p}");
            }
            if let Some(why) = &s.refusal {
                println!("stop: {why}");
            }
        }
        let verb = if dry_run {
            "would transfer"
        } else {
            "transferred"
        };
        println!(
            "{verb} {} files ({}), deleted {}, {} unchanged",
            s.files_uploaded,
            size(s.bytes_uploaded),
            s.files_deleted,
            s.files_skipped
        );
        if s.files_touched > 0 {
            println!(
                "{} unchanged files had only their modification time updated",
                s.files_touched
            );
        }
        for line in costs {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefixes_overlap;

    #[test]
    fn prefixes_overlap_by_whole_components() {
        assert!(prefixes_overlap("photos", ""));
        assert!(prefixes_overlap("", "x"));
        assert!(prefixes_overlap("photos", "photos"));
        assert!(prefixes_overlap("photos/2024", "photos"));
        assert!(prefixes_overlap("photos", "photos/2024"));
        assert!(!prefixes_overlap("photos", "photos-old"));
        assert!(!prefixes_overlap("a/b", "a/c"));
    }
}
