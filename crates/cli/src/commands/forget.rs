//! `cairn forget`: remove snapshots by ID or by a retention policy.

use std::sync::Arc;

use cairn_ops::forget::{apply, Duration, RetentionPolicy};
use cairn_ops::snapshots::group;
use cairn_repo::LockKind;
use clap::Args;
use serde_json::json;

use super::prune::{print_prune, prune_options, run_prune, PruneLimits};
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
    let by = a.select.group_by().map_err(|e| fail(ExitCode::Fatal, e))?;
    let prune_opts = prune_options(&a.prune_limits, a.dry_run)?;
    let repo = Arc::new(super::open_repo(g)?);
    let _lock = repo.lock(LockKind::Exclusive, "forget")?;

    // Snapshots named that vanished behind cairn's back: forgetting them acknowledges it.
    let (mut remove, acknowledged) = named_snapshots(&repo, &a.snapshots)?;
    let mut report = Vec::new();
    if !policy.is_empty() {
        let (by_policy, groups) = by_policy(g, &repo, &a, &policy, by)?;
        remove.extend(by_policy);
        report = groups;
    }
    remove.sort_by_key(|s| s.id);
    remove.dedup_by_key(|s| s.id);
    if !a.dry_run {
        repo.remove_snapshots(&remove.iter().map(|s| s.id).collect::<Vec<_>>())?;
        if !acknowledged.is_empty() {
            repo.record_forgotten(acknowledged.clone())?;
        }
    }
    if !g.json && !g.quiet {
        let verb = if a.dry_run { "would remove" } else { "removed" };
        println!("{verb} {} snapshot(s)", remove.len());
    }
    let pruned = if a.prune && !remove.is_empty() {
        repo.load_index()?;
        let mut prune_opts = prune_opts;
        prune_opts.ignore_snapshots = remove.iter().map(|s| s.id).collect();
        Some(run_prune(g, &repo, &prune_opts)?)
    } else {
        None
    };
    if g.json {
        output::print_json(&json!({
            "message_type": "summary",
            "groups": report,
            "removed": remove.iter().map(|s| s.id.to_hex()).collect::<Vec<_>>(),
            "dry_run": a.dry_run,
            "prune": pruned,
        }));
    } else if let Some(s) = &pruned {
        print_prune(g, s);
    }
    Ok(ExitCode::Ok)
}

/// The snapshots named on the command line; a name that matches only a snapshot that
/// vanished behind cairn's back is returned apart (its full ID), to be acknowledged.
fn named_snapshots(
    repo: &cairn_repo::Repository,
    specs: &[String],
) -> anyhow::Result<(Vec<cairn_repo::SnapshotRef>, Vec<String>)> {
    let mut remove = Vec::new();
    let mut acknowledged = Vec::new();
    if !specs.is_empty() {
        let vanished = crate::seen::vanished();
        for spec in specs {
            match repo.find_snapshot(spec) {
                Ok(s) => remove.push(s),
                Err(e) => match vanished
                    .iter()
                    .filter(|v| spec.len() >= 4 && v.starts_with(spec.as_str()))
                    .collect::<Vec<_>>()[..]
                {
                    [v] => acknowledged.push(v.clone()),
                    _ => return Err(e.into()),
                },
            }
        }
    }
    Ok((remove, acknowledged))
}

/// The snapshots the policy removes, group by group (printed as it goes), and the
/// JSON report of each group. A group the policy would empty is refused.
fn by_policy(
    g: &GlobalArgs,
    repo: &cairn_repo::Repository,
    a: &ForgetArgs,
    policy: &RetentionPolicy,
    by: cairn_ops::snapshots::GroupBy,
) -> anyhow::Result<(Vec<cairn_repo::SnapshotRef>, Vec<serde_json::Value>)> {
    let mut remove = Vec::new();
    let mut report = Vec::new();
    let filter = a.select.filter();
    let snaps: Vec<_> = repo
        .list_snapshots()?
        .into_iter()
        .filter(|s| filter.matches(s))
        .collect();
    for (key, members) in group(snaps, by) {
        let plan = apply(&members, policy);
        // A policy that keeps nothing of a group is almost always a mistake (a tag
        // nobody has, a misspelt one): it must not become "remove everything".
        if plan.keep.is_empty() && !plan.remove.is_empty() && !a.unsafe_allow_remove_all {
            return Err(fail(
                ExitCode::Fatal,
                format!(
                    "refusing to remove {} of group {}: no --keep-* option keeps any of them (does every --keep-tag name a tag they have?); nothing was removed. Pass --unsafe-allow-remove-all if that is what you want",
                    match plan.remove.len() {
                        1 => "its only snapshot".to_string(),
                        n => format!("all {n} snapshots"),
                    },
                    serde_json::to_string(&key).unwrap_or_default()
                ),
            ));
        }
        if !g.json && !g.quiet {
            println!(
                "snapshots for {}:",
                serde_json::to_string(&key).unwrap_or_default()
            );
            println!("keep {} snapshots:", plan.keep.len());
            for k in &plan.keep {
                println!(
                    "  {}  {}  {}",
                    k.snapshot.id.short(),
                    k.snapshot.snapshot.time.format("%Y-%m-%d %H:%M:%S"),
                    k.reasons.join(", ")
                );
            }
            println!("remove {} snapshots:", plan.remove.len());
            for r in &plan.remove {
                println!(
                    "  {}  {}",
                    r.id.short(),
                    r.snapshot.time.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
        report.push(json!({
            "group": key,
            "keep": plan.keep.iter().map(|k| json!({"id": k.snapshot.id.to_hex(), "reasons": k.reasons})).collect::<Vec<_>>(),
            "remove": plan.remove.iter().map(|r| r.id.to_hex()).collect::<Vec<_>>(),
        }));
        remove.extend(plan.remove);
    }

    Ok((remove, report))
}
