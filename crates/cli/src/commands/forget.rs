//! `cairn forget`: remove snapshots by ID or by a retention policy.

use std::sync::Arc;

use cairn_ops::forget::{Duration, ForgetOptions, GroupVerdict, RetentionPolicy};
use clap::Args;
use serde_json::json;

use super::prune::{print_prune, prune_options, PruneLimits};
use crate::args::{GlobalArgs, SnapshotSelect};
use crate::exit::{fail, ExitCode};
use crate::output::{self};

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove (IDs or prefixes), in addition to the policy
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(
        short = 'l',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_last: i64,
    /// Keep the newest snapshot of each of the last N hours (-1: all)
    #[arg(
        short = 'H',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_hourly: i64,
    /// Keep the newest snapshot of each of the last N days
    #[arg(
        short = 'd',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_daily: i64,
    /// Keep the newest snapshot of each of the last N weeks
    #[arg(
        short = 'w',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_weekly: i64,
    /// Keep the newest snapshot of each of the last N months
    #[arg(
        short = 'm',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_monthly: i64,
    /// Keep the newest snapshot of each of the last N years
    #[arg(
        short = 'y',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_yearly: i64,
    /// Keep every snapshot within DURATION of the newest (e.g. 1y6m2d)
    #[arg(long, value_name = "DURATION", value_parser = Duration::parse)]
    pub keep_within: Option<Duration>,
    /// Keep every snapshot with this tag
    #[arg(long = "keep-tag", value_name = "T")]
    pub keep_tags: Vec<String>,
    /// Let the policy remove every snapshot of a group (by default that is refused: a
    /// --keep-tag nobody has, or a typo, would otherwise keep nothing)
    #[arg(long, visible_alias = "allow-empty-keep")]
    pub unsafe_allow_remove_all: bool,
    #[command(flatten)]
    pub select: SnapshotSelect,
    /// Run prune afterwards
    #[arg(long)]
    pub prune: bool,
    /// Show what would be removed
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub prune_limits: PruneLimits,
}

pub fn run(g: &GlobalArgs, a: ForgetArgs) -> anyhow::Result<ExitCode> {
    let policy = RetentionPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within,
        tags: a
            .keep_tags
            .iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    if policy.is_empty() && a.snapshots.is_empty() {
        return Err(fail(ExitCode::Fatal, "no policy given: name snapshots or give at least one --keep-* option (nothing was removed)"));
    }
    let group_by = a.select.group_by().map_err(|e| fail(ExitCode::Fatal, e))?;
    let prune = prune_options(&a.prune_limits, a.dry_run)?;
    // Opening notices snapshots that vanished since this machine last looked.
    let repo = Arc::new(super::open_repo(g)?);
    let opts = ForgetOptions {
        snapshots: a.snapshots.clone(),
        vanished: crate::seen::vanished(),
        policy,
        filter: a.select.filter(),
        group_by,
        allow_remove_all: a.unsafe_allow_remove_all,
        dry_run: a.dry_run,
        prune: a.prune.then_some(prune),
    };
    let s = cairn_ops::forget::run(&repo, &opts, &output::Bar::new(g))?;
    if g.json {
        let groups: Vec<_> = s.groups.iter().map(group_json).collect();
        output::print_json(&json!({
            "message_type": "summary",
            "groups": groups,
            "removed": s.removed.iter().map(|s| s.id.to_hex()).collect::<Vec<_>>(),
            "dry_run": a.dry_run,
            "prune": s.pruned,
        }));
        return Ok(ExitCode::Ok);
    }
    if !g.quiet {
        s.groups.iter().for_each(print_group);
        let verb = if a.dry_run { "would remove" } else { "removed" };
        println!("{verb} {} snapshot(s)", s.removed.len());
    }
    if let Some(p) = &s.pruned {
        print_prune(g, p);
    }
    Ok(ExitCode::Ok)
}

fn print_group(v: &GroupVerdict) {
    println!(
        "snapshots for {}:",
        serde_json::to_string(&v.key).unwrap_or_default()
    );
    println!("keep {} snapshots:", v.plan.keep.len());
    for k in &v.plan.keep {
        println!(
            "  {}  {}  {}",
            k.snapshot.id.short(),
            k.snapshot.snapshot.time.format("%Y-%m-%d %H:%M:%S"),
            k.reasons.join(", ")
        );
    }
    println!("remove {} snapshots:", v.plan.remove.len());
    for r in &v.plan.remove {
        println!(
            "  {}  {}",
            r.id.short(),
            r.snapshot.time.format("%Y-%m-%d %H:%M:%S")
        );
    }
}

fn group_json(v: &GroupVerdict) -> serde_json::Value {
    json!({
        "group": v.key,
        "keep": v.plan.keep.iter().map(|k| json!({"id": k.snapshot.id.to_hex(), "reasons": k.reasons})).collect::<Vec<_>>(),
        "remove": v.plan.remove.iter().map(|r| r.id.to_hex()).collect::<Vec<_>>(),
    })
}
