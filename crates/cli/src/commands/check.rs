use cairn_ops::check::ReadData;
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::output::{self, size};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Read and verify every pack
    #[arg(long)]
    pub read_data: bool,
    /// Read a subset of packs: N/M (deterministic), P% or SIZE (random)
    #[arg(long, value_name = "N/M|P%|SIZE")]
    pub read_data_subset: Option<String>,
    /// Also compare the SHA1s B2 stores for a ship destination with this repository's
    /// files, without downloading anything
    #[arg(long, value_name = "LOCATION")]
    pub remote_hashes: Option<String>,
}

/// Damaged paths listed without `-v`: enough to know what is at stake.
const AFFECTED_SHOWN: usize = 20;

pub fn run(g: &GlobalArgs, a: CheckArgs) -> anyhow::Result<ExitCode> {
    let read = match (a.read_data, &a.read_data_subset) {
        (true, Some(_)) => {
            return Err(fail(
                ExitCode::Fatal,
                "--read-data and --read-data-subset exclude each other",
            ))
        }
        (true, None) => ReadData::All,
        (false, Some(s)) => ReadData::parse(s).map_err(|e| fail(ExitCode::Fatal, e))?,
        (false, None) => ReadData::None,
    };
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let location = repo.backend().location();
    let mut s = cairn_ops::check::run(&repo, read, &location, &output::Bar::new(g))?;
    for id in crate::seen::vanished() {
        s.errors.push(format!(
            "snapshot {} vanished without a `cairn forget` record (deleted behind cairn's back)",
            &id[..8]
        ));
    }
    // Packs `repair index` left here are named as such, not as an interrupted
    // command's leftovers.
    let unexplained = crate::repaired::relabel(g, &location, &mut s.info);
    let mut hashes = None;
    if let Some(dest) = &a.remote_hashes {
        let dst = crate::location::open_backend(dest, g)?;
        let h = cairn_ops::ship::compare_hashes(repo.backend().as_ref(), dst.as_ref())?;
        s.errors.extend(h.problems.iter().cloned());
        hashes = Some(h);
    }
    crate::checked::record(
        g,
        &location,
        &crate::checked::LastCheck {
            time: cairn_repo::sys::now(),
            errors: s.errors.len() as u64,
        },
    );
    // Reading packs from a store is download traffic, billed by B2 and AWS: say what
    // this check cost.
    let egress = if crate::location::is_remote(g.repo.as_deref().unwrap_or("")) {
        s.bytes_read
    } else {
        0
    };
    print_summary(
        g,
        &s,
        read,
        (egress, &location),
        hashes.as_ref(),
        a.remote_hashes.as_deref(),
    );
    print_problems(g, &s);
    if s.errors.is_empty() {
        if !g.json && !g.quiet {
            println!("no errors were found");
        }
        Ok(ExitCode::Ok)
    } else {
        advise(g, &s, &location, unexplained);
        Ok(ExitCode::Fatal)
    }
}

fn print_summary(
    g: &GlobalArgs,
    s: &cairn_ops::check::CheckSummary,
    read: ReadData,
    (egress, from): (u64, &str),
    hashes: Option<&cairn_ops::ship::HashReport>,
    remote_hashes: Option<&str>,
) {
    if g.json {
        output::print_json(&json!({
            "message_type": "summary",
            "errors": s.errors.len(),
            "packs_checked": s.packs_checked,
            "blobs_checked": s.blobs_checked,
            "bytes_read": s.bytes_read,
            "egress_bytes": egress,
            "remote_files_compared": hashes.map(|h| h.files_compared),
            "snapshots_checked": s.snapshots_checked,
            "trees_checked": s.trees_checked,
            "error_list": s.errors,
            "info": s.info,
            "affected": s.affected,
            "damaged_packs": s.damaged_packs,
            "unreadable_packs": s.unreadable_packs,
            "details": s.details,
            "temp_files": s.temp_files,
            "temp_bytes": s.temp_bytes,
            "packs_locked": s.packs_locked,
            "first_lock_ends": s.first_lock_ends,
            "packs_marked": s.packs_marked,
        }));
    } else if !g.quiet {
        println!(
            "checked {} snapshots, {} trees",
            s.snapshots_checked, s.trees_checked
        );
        if read != ReadData::None {
            println!(
                "read {} packs ({}), verified {} blobs",
                s.packs_checked,
                size(s.bytes_read),
                s.blobs_checked
            );
            if egress > 0 {
                println!("downloaded {} from {from} (egress)", size(egress));
            }
        }
        if let (Some(h), Some(dest)) = (hashes, remote_hashes) {
            println!(
                "compared {} files ({}) with the SHA1s stored at {dest}, nothing downloaded",
                h.files_compared,
                size(h.bytes_hashed)
            );
        }
        if s.packs_marked > 0 {
            println!(
                "{} packs are marked for deletion by prune (a later prune deletes them)",
                s.packs_marked
            );
        }
        if let Some(end) = s.first_lock_ends {
            let end = cairn_backend::show_millis(end);
            println!(
                "{} packs are under Object Lock; the first lock ends {end}",
                s.packs_locked
            );
        }
        for i in &s.info {
            println!("info: {i}");
        }
    }
}

/// Errors, their per-blob detail (`-v`) and the paths they damage.
fn print_problems(g: &GlobalArgs, s: &cairn_ops::check::CheckSummary) {
    for e in &s.errors {
        eprintln!("error: {e}");
    }
    if g.verbose > 0 {
        for d in &s.details {
            eprintln!("  detail: {d}");
        }
    }
    if !s.affected.is_empty() {
        eprintln!("damaged by these errors:");
        let shown = if g.verbose > 0 {
            s.affected.len()
        } else {
            AFFECTED_SHOWN
        };
        for f in s.affected.iter().take(shown) {
            eprintln!("  {f}");
        }
        if s.affected.len() > shown {
            eprintln!(
                "  ... and {} more (-v lists them all)",
                s.affected.len() - shown
            );
        }
    }
}

/// The one line that says what to do about the errors found.
fn advise(
    g: &GlobalArgs,
    s: &cairn_ops::check::CheckSummary,
    location: &str,
    unexplained_unindexed: bool,
) {
    let dests = crate::shipped::destinations(g, location);
    if let Some(dest) = dests
        .first()
        .filter(|_| !s.damaged_packs.is_empty() || s.errors.iter().any(|e| e.contains("missing")))
    {
        eprintln!(
            "cairn: check found {} error(s); this repository is shipped to {dest}: `cairn repair packs --from {dest}` fetches intact copies of damaged or missing packs from there",
            s.errors.len()
        );
    } else if s.errors.len() == s.unreadable_packs.len() {
        eprintln!(
            "cairn: check could not read {} pack(s) from {location}: nothing found wrong, but they are unchecked; run check again when the store answers",
            s.unreadable_packs.len()
        );
    } else if unexplained_unindexed {
        eprintln!("cairn: check found {} error(s); packs that no index lists are present: `cairn repair index` may restore the missing entries", s.errors.len());
    } else {
        eprintln!(
            "cairn: check found {} error(s); `cairn repair` may recover what is not lost",
            s.errors.len()
        );
    }
}
