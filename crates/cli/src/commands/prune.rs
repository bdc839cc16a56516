//! `cairn prune`: delete data no snapshot needs (also run by `forget --prune`).

use std::sync::Arc;

use cairn_ops::prune::{MaxUnused, PruneOptions, PruneSummary};
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;
use crate::output::{self, size};

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub limits: PruneLimits,
    /// Show what would be deleted and repacked, without changing anything
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// How much unused space prune tolerates and how much it repacks (also `forget --prune`).
#[derive(Args, Debug, Clone)]
pub struct PruneLimits {
    /// Tolerated unused space: a percentage of the repository or a SIZE
    #[arg(long, default_value = "5%", value_name = "PERCENT%|SIZE", value_parser = MaxUnused::parse)]
    pub max_unused: MaxUnused,
    /// Repack at most this much data in one run
    #[arg(long, value_name = "SIZE", value_parser = output::parse_size)]
    pub max_repack_size: Option<u64>,
}

pub(super) fn prune_options(l: &PruneLimits, dry_run: bool) -> anyhow::Result<PruneOptions> {
    Ok(PruneOptions {
        max_unused: l.max_unused,
        max_repack_bytes: l.max_repack_size,
        dry_run,
        ignore_snapshots: Default::default(),
    })
}

pub(super) fn print_prune(g: &GlobalArgs, s: &PruneSummary) {
    if g.json {
        output::print_json(&json!({"message_type": "summary", "prune": s}));
        return;
    }
    if g.quiet {
        return;
    }
    let verb = if s.dry_run { "would" } else { "did" };
    println!(
        "repository: {} packs, {}",
        s.packs_before,
        size(s.bytes_before)
    );
    println!(
        "{verb} delete {} unused packs and {} unindexed packs ({})",
        s.packs_deleted,
        s.unindexed_packs_deleted,
        size(s.bytes_deleted)
    );
    println!(
        "{verb} repack {} packs ({})",
        s.packs_repacked,
        size(s.bytes_repacked)
    );
    if !s.locked_kept.is_empty() {
        println!(
            "kept {} unused packs under Object Lock; a prune after their lock ends deletes them",
            s.locked_kept.len()
        );
        if g.verbose > 0 {
            for k in &s.locked_kept {
                println!("  {k}");
            }
        }
    }
    if s.packs_marked > 0 {
        println!(
            "marked {} packs for deletion: another command was running; a later prune deletes them",
            s.packs_marked
        );
    }
    if s.packs_recovered > 0 {
        println!(
            "took back {} packs an earlier prune marked: a snapshot saved since uses them",
            s.packs_recovered
        );
    }
    if s.temp_files_deleted > 0 {
        println!(
            "{verb} delete {} temporary files of writes that never finished ({})",
            s.temp_files_deleted,
            size(s.temp_bytes_deleted)
        );
    }
    if s.unindexed_packs_kept > 0 {
        println!(
            "kept {} unindexed packs while another command runs (it may be writing or reusing them)",
            s.unindexed_packs_kept
        );
    }
    println!(
        "repository after: {}, of which {} unused",
        size(s.bytes_after),
        size(s.unused_bytes_after)
    );
}

pub fn run(g: &GlobalArgs, a: PruneArgs) -> anyhow::Result<ExitCode> {
    let opts = prune_options(&a.limits, a.dry_run)?;
    let repo = Arc::new(super::open_repo(g)?);
    let s = cairn_ops::prune::run(&repo, &opts, &output::Bar::new(g))?;
    print_prune(g, &s);
    Ok(ExitCode::Ok)
}
