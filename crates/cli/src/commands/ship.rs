use std::sync::Arc;

use cairn_ops::ship::ShipOptions;
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;
use crate::location;
use crate::output::{self, size};

#[derive(Args, Debug)]
pub struct ShipArgs {
    /// Destination location, of any kind a repository can be at (or the profile's ship.destination)
    pub dest: Option<String>,
    /// Concurrent uploads (default 16 for B2, 4 otherwise)
    #[arg(long, value_name = "N")]
    pub transfers: Option<usize>,
    /// Print what would be uploaded and deleted
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Compare the destination's listing with the repository afterwards
    #[arg(long)]
    pub verify: bool,
    /// Also upload this cairn binary and RECOVERY.txt beside the repository
    #[arg(long)]
    pub with_binary: bool,
    /// Create the destination bucket (or directory) if it does not exist; without it a
    /// missing destination is an error, so a typo creates nothing
    #[arg(long, visible_alias = "create")]
    pub create_bucket: bool,
    /// Allow deleting more than 10% of the destination's files, or snapshots this
    /// repository never forgot (profile: ship.allow_deletes = true)
    #[arg(long)]
    pub allow_deletes: bool,
    /// Object Lock: lock every file shipped for N days (the bucket needs file lock
    /// enabled), and extend the lock of files still in use before it runs out
    /// (profile: ship.lock_days)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub lock_days: Option<u32>,
    /// governance (a key with bypassGovernance can lift it) or compliance (nobody can)
    #[arg(long, value_name = "MODE", default_value = "governance", value_parser = cairn_backend::LockMode::parse, requires = "lock_days")]
    pub lock_mode: cairn_backend::LockMode,
    /// Forget this machine's record of ships to DEST (a destination no longer used), so
    /// `snapshots` stops reporting it; ships nothing
    #[arg(long, conflicts_with_all = ["dry_run", "verify", "with_binary", "create_bucket", "allow_deletes"])]
    pub forget_destination: bool,
}

pub fn run(g: &GlobalArgs, a: ShipArgs) -> anyhow::Result<ExitCode> {
    let src_loc = g.repo.clone().unwrap_or_default();
    let Some(dest) = a.dest.clone() else {
        return Err(crate::exit::fail(ExitCode::Fatal, "ship needs a destination: `cairn ship b2:BUCKET/PREFIX`, or ship.destination in a profile"));
    };
    if a.forget_destination {
        return forget_destination(g, &src_loc, &dest);
    }
    // The source is opened with its password so its lock can be taken; the files
    // themselves are shipped as they are, still encrypted.
    let repo = Arc::new(super::open_repo(g)?);
    let src = location::open_backend(&src_loc, g)?;
    let dst = location::open_backend(&dest, g)?;
    let remote = location::is_remote(&dest);
    let default_transfers = if remote { 16 } else { 4 };
    // What the destination holds may be the only intact copy of what is damaged here.
    let damaged = crate::checked::load(g, &repo.backend().location()).filter(|c| c.errors > 0);
    if let Some(c) = &damaged {
        eprintln!(
            "warning: the last check of this repository ({}) found {} error(s): nothing will be deleted at {dest}{}",
            c.time.format("%Y-%m-%d %H:%M"),
            c.errors,
            if a.allow_deletes { " unless --allow-deletes (given)" } else { " until a check passes (--allow-deletes overrides)" }
        );
    }
    let opts = ShipOptions {
        transfers: a.transfers.unwrap_or(default_transfers),
        dry_run: a.dry_run,
        verify: a.verify,
        with_binary: if a.with_binary {
            std::env::current_exe().ok()
        } else {
            None
        },
        create: a.create_bucket,
        allow_deletes: a.allow_deletes,
        keep_all: damaged.is_some() && !a.allow_deletes,
        lock: a.lock_days.map(|days| cairn_backend::LockPeriod {
            mode: a.lock_mode,
            days,
        }),
    };
    // Listed before the ship: each snapshot named here is in the copy once it is done.
    let snapshots: Vec<String> = repo
        .list_files(cairn_repo::FileKind::Snapshot)
        .unwrap_or_default()
        .iter()
        .map(|id| id.to_hex())
        .collect();
    let bar = output::Bar::new(g);
    let s = cairn_ops::ship::run(&repo, src.as_ref(), dst.as_ref(), &opts, &bar)
        .map_err(|e| name_the_other_repository(g, &dst, e))?;
    let t = dst.transactions().unwrap_or_default();
    if !a.dry_run {
        let entry = crate::shipped::ShipEntry {
            time: cairn_repo::sys::now(),
            files_uploaded: s.files_uploaded,
            bytes_uploaded: s.bytes_uploaded,
            verified: s.verified,
            snapshots,
        };
        crate::shipped::record(g, &repo.backend().location(), &dst.location(), entry);
    }
    let costs = if remote {
        output::cost_lines(&[dst.as_ref()])
    } else {
        Vec::new()
    };
    print_summary(g, &s, a.dry_run, t, &dst.location(), &costs);
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    for n in &s.unsafe_names {
        eprintln!(
            "warning: skipped {n:?}: under a repository directory but not a repository file name"
        );
    }
    // Files damaged here, or names that are not repository files, were not shipped: the
    // copy is complete but for them. Deletions an append-only key left: complete, but
    // holding more than the source until a ship with a stronger key.
    let left_for_key = s.cannot_delete.is_some() && !s.deletions_left.is_empty();
    Ok(
        if s.damaged_here.is_empty() && s.unsafe_names.is_empty() && !left_for_key {
            ExitCode::Ok
        } else {
            ExitCode::PartialBackup
        },
    )
}

/// `--forget-destination`: needs neither the password nor the destination's
/// credentials, since it only edits this machine's record.
fn forget_destination(g: &GlobalArgs, src_loc: &str, dest: &str) -> anyhow::Result<ExitCode> {
    let src = location::open_backend(src_loc, g)?.location();
    let dst = location::open_backend(dest, g)
        .map(|d| d.location())
        .unwrap_or_else(|_| dest.to_string());
    let forgot = crate::shipped::forget(g, &src, &[dst.as_str(), dest])?;
    if !g.quiet {
        match forgot {
            Some(d) => println!("forgot the ships of {src} to {d}"),
            None => println!("no ship of {src} to {dst} was recorded; nothing to forget"),
        }
    }
    Ok(ExitCode::Ok)
}

fn print_summary(
    g: &GlobalArgs,
    s: &cairn_ops::ship::ShipSummary,
    dry_run: bool,
    t: cairn_backend::Transactions,
    dst: &str,
    costs: &[String],
) {
    if g.json {
        let mut v = output::transfer_summary(
            s.files_uploaded,
            s.bytes_uploaded,
            s.files_deleted,
            s.files_skipped,
            dry_run,
            t,
        );
        v["verified"] = json!(s.verified);
        v["same_repository"] = json!(s.same_repository);
        v["repository_id"] = json!(s.repository_id);
        v["deletions"] = json!(s.deletions);
        v["deletions_left"] = json!(s.deletions_left);
        v["cannot_delete"] = json!(s.cannot_delete);
        v["locks_extended"] = json!(s.locks_extended);
        v["locked_until"] = json!(s.locked_until);
        v["damaged_here"] = json!(s.damaged_here);
        v["warnings"] = json!(s.warnings);
        v["unsafe_names"] = json!(s.unsafe_names);
        output::print_json(&v);
    } else if !g.quiet {
        for p in &s.plan {
            println!("would {p}");
        }
        if !dry_run && g.verbose > 0 {
            for d in &s.deletions {
                println!("deleted {d}");
            }
        }
        let (verb, deleted) = if dry_run {
            ("would upload", "would delete")
        } else {
            ("uploaded", "deleted")
        };
        println!(
            "{verb} {} files ({}), {deleted} {}, {} already at {}",
            s.files_uploaded,
            size(s.bytes_uploaded),
            s.files_deleted,
            s.files_skipped,
            dst
        );
        if let Some(until) = s.locked_until.filter(|_| !dry_run) {
            let until = chrono::DateTime::from_timestamp_millis(until)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            println!(
                "locked until {until}: {} file(s) uploaded, {} lock(s) extended",
                s.files_uploaded, s.locks_extended
            );
        }
        if s.verified {
            println!("verified: every repository file is at the destination with its size");
        }
        for line in costs {
            println!("{line}");
        }
    }
}

/// Names the other repository too when this password opens it (a new drive set up with
/// the same password is the usual way to get here).
fn name_the_other_repository(
    g: &GlobalArgs,
    dst: &Arc<dyn cairn_backend::Backend>,
    e: cairn_ops::OpsError,
) -> cairn_ops::OpsError {
    match e {
        cairn_ops::OpsError::OtherRepository {
            location,
            ours,
            theirs: None,
            fingerprint,
        } => {
            let theirs = crate::password::given(g)
                .and_then(|pw| cairn_repo::Repository::open(dst.clone(), pw.as_bytes()).ok())
                .map(|r| r.config().id.clone());
            cairn_ops::OpsError::OtherRepository {
                location,
                ours,
                theirs,
                fingerprint,
            }
        }
        e => e,
    }
}
