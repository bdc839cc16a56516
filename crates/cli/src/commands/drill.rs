//! `cairn drill`: restore a random sample and prove it is intact; `--history` lists
//! past drills.

use cairn_ops::drill::{self, DrillOptions};
use cairn_ops::forget::Duration;
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::output::{self, size};

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// Files drawn from each snapshot (half at random, half weighted by size)
    #[arg(long, default_value_t = 20)]
    pub files: usize,
    /// Snapshots drawn
    #[arg(long, default_value_t = 3)]
    pub snapshots: usize,
    /// Draw snapshots taken within this long before now
    #[arg(long, default_value = "1y", value_name = "DURATION", value_parser = Duration::parse)]
    pub within: Duration,
    /// Drill this repository (e.g. the offsite copy) instead of -r; the record is kept in both
    #[arg(long, value_name = "LOCATION")]
    pub from: Option<String>,
    /// Also compare restored files with the live files that are unchanged since the snapshot
    #[arg(long)]
    pub compare_source: bool,
    /// List past drills instead of running one
    #[arg(long)]
    pub history: bool,
}

pub fn run(g: &GlobalArgs, a: DrillArgs) -> anyhow::Result<ExitCode> {
    let within = a.within;
    let home = g.repo.clone().filter(|r| !r.is_empty());
    let target = a.from.clone().or_else(|| home.clone()).unwrap_or_default();
    let tg = GlobalArgs {
        repo: Some(target.clone()),
        ..g.clone()
    };
    let repo = super::open_repo(&tg)?;
    let location = repo.backend().location();
    if a.history {
        return history(g, &repo);
    }
    let repo = std::sync::Arc::new(repo);
    let scratch = tempfile::Builder::new()
        .prefix("cairn-drill-")
        .tempdir()
        .map_err(|e| {
            fail(
                ExitCode::Fatal,
                format!("cannot create a scratch directory: {e}"),
            )
        })?;
    let opts = DrillOptions {
        snapshots: a.snapshots,
        since: within.before(chrono::Local::now().fixed_offset()),
        files: a.files,
        compare_source: a.compare_source,
        pack_fraction: 0.01,
        location: location.clone(),
        scratch: scratch.path().to_path_buf(),
    };
    let r = drill::run(&repo, &opts, &output::Bar::new(g))?;
    let host = cairn_repo::sys::hostname();
    // The record goes into the repository drilled, and into -r too when it was another
    // (so the local repository knows its offsite copy was drilled).
    drill::record(&repo, &r, &location, &host)?;
    if let (Some(from), Some(home)) = (&a.from, &home) {
        if from != home {
            let hg = GlobalArgs {
                repo: Some(home.clone()),
                ..g.clone()
            };
            let home_repo = super::open_repo(&hg)?;
            drill::record(&home_repo, &r, &location, &host)?;
        }
    }
    for f in &r.failures {
        eprintln!("error: {f}");
    }
    print_summary(g, &r, &location, a.compare_source);
    if r.ok {
        Ok(ExitCode::Ok)
    } else {
        // Damage here, an intact copy offsite: name the command that brings it back.
        let other = match (&a.from, &home) {
            (Some(from), Some(home)) if from != home => Some(home.clone()),
            _ => crate::shipped::destinations(g, &repo.backend().location())
                .into_iter()
                .next(),
        };
        let fix = other.map(|o| format!("; `cairn -r {location} repair packs --from {o}` fetches intact copies of damaged packs")).unwrap_or_default();
        eprintln!("cairn: drill failed: {} problem(s); run `cairn check --read-data` to see the whole damage{fix}", r.failures.len());
        Ok(ExitCode::Fatal)
    }
}

/// `--history`: the drill records, which need no index (on B2: no index download).
fn history(g: &GlobalArgs, repo: &cairn_repo::Repository) -> anyhow::Result<ExitCode> {
    let h = drill::history(repo)?;
    if g.json {
        output::print_json(&serde_json::to_value(&h)?);
    } else {
        for d in &h {
            println!(
                "{}  {}  {} snapshot(s), {} files ({}), {} packs read  {}  [{}]",
                d.time.format("%Y-%m-%d %H:%M"),
                if d.ok { "passed" } else { "FAILED" },
                d.snapshots.len(),
                d.files_checked,
                size(d.bytes_checked),
                d.packs_checked,
                d.location,
                d.hostname
            );
        }
        println!("{} drill(s)", h.len());
    }
    Ok(ExitCode::Ok)
}

fn print_summary(g: &GlobalArgs, r: &drill::DrillReport, location: &str, compare_source: bool) {
    if g.json {
        output::print_json(&json!({
            "message_type": "summary",
            "ok": r.ok,
            "files_checked": r.files_checked,
            "bytes_checked": r.bytes_checked,
            "snapshots": r.snapshots.len(),
            "snapshot_ids": r.snapshots,
            "files_compared_with_source": r.files_compared_with_source,
            "packs_checked": r.packs_checked,
            "failures": r.failures,
        }));
    } else if !g.quiet {
        println!(
            "drilled {} at {}",
            if r.snapshots.len() == 1 {
                "1 snapshot".to_string()
            } else {
                format!("{} snapshots", r.snapshots.len())
            },
            location
        );
        for id in &r.snapshots {
            println!("  snapshot {}", &id[..8.min(id.len())]);
        }
        println!(
            "restored and verified {} files ({}) byte for byte and metadata for metadata",
            r.files_checked,
            size(r.bytes_checked)
        );
        if compare_source {
            println!(
                "{} of them also matched the live files",
                r.files_compared_with_source
            );
        }
        println!("read back {} packs whole", r.packs_checked);
        println!("{}", if r.ok { "drill passed" } else { "DRILL FAILED" });
    }
}
