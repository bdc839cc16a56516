use std::collections::HashSet;
use std::sync::Arc;

use cairn_ops::OpsError;
use cairn_repo::Repository;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::{location, output};

#[derive(Args, Debug)]
pub struct RepairArgs {
    #[command(subcommand)]
    pub command: RepairCommand,
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the packs, salvaging readable blobs of damaged packs
    Index {
        /// Go on although a ship destination holds an intact copy of a damaged pack
        /// (try `repair packs --from` first)
        #[arg(long)]
        force: bool,
    },
    /// Write copies of damaged snapshots without the files whose data is lost (tagged
    /// "repaired"); the originals stay unless --forget
    Snapshots {
        /// Only list what would be lost
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Remove the damaged originals (recorded as forgotten)
        #[arg(long)]
        forget: bool,
        /// Go on although a ship destination holds packs this repository lacks (try
        /// `repair packs --from` first)
        #[arg(long)]
        force: bool,
    },
    /// Bring back, on a B2 bucket, every repository file hidden or overwritten since a
    /// moment: the version it had then, checked against its name (after malware hid or
    /// overwrote files of a locked copy). Deletes nothing; needs no password
    Versions {
        /// The moment: 2026-11-30, "2026-11-30 08:00", an RFC 3339 time, or a duration
        /// before now such as 3d
        #[arg(long, value_name = "MOMENT")]
        before: String,
        /// Only list what would be brought back
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Fetch intact copies of damaged or missing packs from another copy of this
    /// repository (a ship destination), verify them and put them back
    Packs {
        /// The other copy: b2:BUCKET/PREFIX, rclone:..., or a directory
        #[arg(long, value_name = "LOCATION")]
        from: String,
    },
}

pub fn run(g: &GlobalArgs, a: RepairArgs) -> anyhow::Result<ExitCode> {
    if let RepairCommand::Versions { before, dry_run } = &a.command {
        return versions(g, before, *dry_run);
    }
    let dry_run = matches!(a.command, RepairCommand::Snapshots { dry_run: true, .. });
    let repo = Arc::new(super::open_repo_with(g, |o| o.dry_run = dry_run)?);
    match a.command {
        RepairCommand::Index { force } => index(g, &repo, force),
        RepairCommand::Snapshots { forget, force, .. } => {
            snapshots(g, &repo, dry_run, forget, force)
        }
        RepairCommand::Packs { from } => packs(g, &repo, &from),
        RepairCommand::Versions { .. } => unreachable!("handled above"),
    }
}

/// Refuses (before anything is given up) when a destination this machine ships the
/// repository to holds a pack name `wanted` accepts; also when a destination cannot be
/// looked at, since then nobody knows. `--force` skips this.
fn refuse_if_offsite_has(
    g: &GlobalArgs,
    repo: &Repository,
    wanted: &dyn Fn(&str) -> bool,
    what: &dyn Fn(usize) -> String,
) -> Result<(), OpsError> {
    for dest in crate::shipped::destinations(g, &repo.backend().location()) {
        let found = location::open_backend(&dest, g)
            .map_err(|e| e.to_string())
            .and_then(|b| b.list(cairn_repo::DATA_DIR).map_err(|e| e.to_string()))
            .map(|l| l.iter().filter(|o| wanted(&o.name)).count());
        match found {
            Ok(0) => {}
            Ok(n) => {
                return Err(OpsError::Invalid(format!(
                    "refusing to repair: {dest} (where this repository is shipped) holds {}; \
                     run `cairn repair packs --from {dest}` first, or add --force to give that data up",
                    what(n)
                )))
            }
            Err(e) => {
                return Err(OpsError::Invalid(format!(
                    "refusing to repair: could not look at {dest} (where this repository is shipped) for intact copies: {e}; \
                     add --force to repair without it"
                )))
            }
        }
    }
    Ok(())
}

/// `repair index`; a damaged pack whose intact copy is offsite is fetched rather than
/// given up (unless `--force`).
fn index(g: &GlobalArgs, repo: &Arc<Repository>, force: bool) -> anyhow::Result<ExitCode> {
    // A damaged pack whose intact copy is offsite: fetch it rather than give up
    // its blobs.
    let guard = |damaged: &[String]| -> Result<(), OpsError> {
        if force || damaged.is_empty() {
            return Ok(());
        }
        let wanted: HashSet<&str> = damaged.iter().map(String::as_str).collect();
        refuse_if_offsite_has(g, repo, &|name| wanted.contains(name), &|n| {
            format!("intact copies of {n} damaged pack(s)")
        })
    };
    let s = cairn_ops::repair::index(repo, &guard)?;
    crate::repaired::remember(g, &repo.backend().location(), &s.damaged_packs);
    for p in &s.problems {
        eprintln!("warning: {p}");
    }
    if g.json {
        output::print_json(&json!({"message_type": "summary", "repair_index": s}));
    } else if !g.quiet {
        println!(
            "indexed {} packs; {} damaged packs, {} blobs salvaged, {} lost; replaced {} index files",
            s.packs_indexed, s.packs_damaged, s.blobs_salvaged, s.blobs_lost, s.index_files_replaced
        );
        if s.blobs_lost > 0 {
            println!("run `cairn repair snapshots` to write copies of the snapshots without the files that lost data");
        }
    }

    Ok(ExitCode::Ok)
}

/// `repair snapshots`; refused while a pack offsite that the index here lacks may hold
/// what would be dropped (or be a pruned pack not yet deleted there: then `--force`).
fn snapshots(
    g: &GlobalArgs,
    repo: &Arc<Repository>,
    dry_run: bool,
    forget: bool,
    force: bool,
) -> anyhow::Result<ExitCode> {
    // A pack offsite that the index here lacks may hold what is lost (or be a
    // pruned pack not yet deleted there: then --force).
    let guard = |indexed: &HashSet<String>| -> Result<(), OpsError> {
        if force {
            return Ok(());
        }
        refuse_if_offsite_has(g, repo, &|name| !indexed.contains(name), &|n| {
            format!("{n} pack(s) this repository's index lacks")
        })
    };
    let s = cairn_ops::repair::snapshots(repo, dry_run, forget, &guard)?;
    if g.json {
        let rw: Vec<_> = s
            .rewritten
            .iter()
            .map(|(o, n)| json!({"old": o.to_hex(), "new": n.to_hex()}))
            .collect();
        output::print_json(
            &json!({"message_type": "summary", "rewritten": rw, "lost": s.lost, "dry_run": dry_run, "originals_kept": !forget}),
        );
    } else if !g.quiet {
        for l in &s.lost {
            println!("lost: {l}");
        }
        for (o, n) in &s.rewritten {
            if forget {
                println!(
                    "snapshot {} replaced by {} (tagged \"repaired\")",
                    o.short(),
                    n.short()
                );
            } else {
                println!("snapshot {} repaired as {} (tagged \"repaired\"); the original stays (--forget removes it)", o.short(), n.short());
            }
        }
        if s.lost.is_empty() {
            println!("no snapshot needed repair");
        }
    }

    Ok(ExitCode::Ok)
}

/// `repair packs --from`: intact copies of damaged or missing packs from another copy.
fn packs(g: &GlobalArgs, repo: &Arc<Repository>, from: &str) -> anyhow::Result<ExitCode> {
    let src = location::open_backend(from, g)?;
    let s = cairn_ops::repair::packs(repo, src.as_ref(), &output::Bar::new(g))?;
    if g.json {
        output::print_json(&json!({"message_type": "summary", "repair_packs": s}));
    } else if !g.quiet {
        for f in &s.fetched {
            println!("fetched {f} from {}", src.location());
        }
        println!(
            "{} packs intact here, {} fetched and verified ({} indexed again), {} without an intact copy",
            s.packs_intact,
            s.fetched.len(),
            s.reindexed,
            s.unavailable.len()
        );
    }
    for u in &s.unavailable {
        eprintln!("error: {u}");
    }
    if !s.unavailable.is_empty() {
        return Err(fail(
            ExitCode::Fatal,
            format!("{} damaged or missing pack(s) have no intact copy at {}; try another copy, then `cairn repair index`", s.unavailable.len(), src.location()),
        ));
    }
    if !s.fetched.is_empty() && !g.quiet && !g.json {
        println!("run `cairn check --read-data` to confirm");
    }

    Ok(ExitCode::Ok)
}

/// `repair versions --before MOMENT`: on the store alone, since the key files or the
/// config may be what was hidden.
fn versions(g: &GlobalArgs, before: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let before = cairn_ops::repair::parse_moment(before, cairn_backend::now_millis())
        .map_err(|e| fail(ExitCode::Fatal, e))?;
    let store = location::open_backend(g.repo.as_deref().unwrap_or(""), g)?;
    let s = cairn_ops::repair::versions(store.as_ref(), before, dry_run)?;
    if g.json {
        output::print_json(&json!({"message_type": "summary", "repair_versions": s}));
    } else if !g.quiet {
        let verb = if dry_run {
            "would bring back"
        } else {
            "brought back"
        };
        for r in &s.restored {
            println!("{verb} {r}");
        }
        // A moment long ago makes every file newer: a few names say which kind.
        for n in s.newer.iter().take(5) {
            println!("newer than the moment, left as it is: {n}");
        }
        if s.newer.len() > 5 {
            println!(
                "... and {} more newer (--json lists all)",
                s.newer.len() - 5
            );
        }
        println!(
            "{} file(s) {verb}, {} as they were, {} newer left as they are, {} without an intact version",
            s.restored.len(),
            s.unchanged,
            s.newer.len(),
            s.unrestorable.len()
        );
        if !s.restored.is_empty() && !dry_run {
            println!("run `cairn check --read-data` next");
        }
    }
    for u in &s.unrestorable {
        eprintln!("warning: {u}");
    }
    Ok(if s.unrestorable.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Fatal
    })
}
