use std::sync::Arc;

use cairn_ops::forget::{apply, Duration, RetentionPolicy};
use cairn_ops::prune::{MaxUnused, PruneOptions, PrunePlan, PruneSummary};
use cairn_ops::snapshots::group;
use cairn_repo::{LockKind, Repository};
use serde_json::json;

use crate::args::{ForgetArgs, GlobalArgs, PruneArgs, PruneLimits};
use crate::exit::{fail, ExitCode};
use crate::output::{self, size};

fn prune_options(l: &PruneLimits, dry_run: bool) -> anyhow::Result<PruneOptions> {
    Ok(PruneOptions {
        max_unused: MaxUnused::parse(&l.max_unused).map_err(|e| fail(ExitCode::Fatal, e))?,
        max_repack_bytes: match &l.max_repack_size {
            Some(s) => Some(output::parse_size(s).map_err(|e| fail(ExitCode::Fatal, e))?),
            None => None,
        },
        dry_run,
        ignore_snapshots: Default::default(),
    })
}

fn print_prune(g: &GlobalArgs, s: &PruneSummary) {
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
    if s.temp_files_deleted > 0 {
        println!(
            "{verb} delete {} temporary files of writes that never finished ({})",
            s.temp_files_deleted,
            size(s.temp_bytes_deleted)
        );
    }
    if s.unindexed_packs_kept > 0 {
        println!(
            "kept {} unindexed packs younger than a lock (another command may be using them)",
            s.unindexed_packs_kept
        );
    }
    println!(
        "repository after: {}, of which {} unused",
        size(s.bytes_after),
        size(s.unused_bytes_after)
    );
}

fn run_prune(
    g: &GlobalArgs,
    repo: &Repository,
    opts: &PruneOptions,
) -> anyhow::Result<PruneSummary> {
    let plan = PrunePlan::build(repo, opts)?;
    Ok(plan.execute_with_progress(repo, &output::Bar::new(g))?)
}

pub fn prune(g: &GlobalArgs, a: PruneArgs) -> anyhow::Result<ExitCode> {
    let opts = prune_options(&a.limits, a.dry_run)?;
    let repo = Arc::new(super::open_repo(g)?);
    let _lock = repo.lock(LockKind::Exclusive, "prune")?;
    repo.load_index()?;
    let s = run_prune(g, &repo, &opts)?;
    print_prune(g, &s);
    Ok(ExitCode::Ok)
}

pub fn forget(g: &GlobalArgs, a: ForgetArgs) -> anyhow::Result<ExitCode> {
    let policy = RetentionPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: match &a.keep_within {
            Some(d) => Some(Duration::parse(d).map_err(|e| fail(ExitCode::Fatal, e))?),
            None => None,
        },
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

    let mut remove = Vec::new();
    let mut report = Vec::new();
    // Snapshots named that vanished behind cairn's back: forgetting them acknowledges it.
    let mut acknowledged = Vec::new();
    if !a.snapshots.is_empty() {
        let vanished = crate::seen::vanished();
        for spec in &a.snapshots {
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
    if !policy.is_empty() {
        let filter = a.select.filter();
        let snaps: Vec<_> = repo
            .list_snapshots()?
            .into_iter()
            .filter(|s| filter.matches(s))
            .collect();
        for (key, members) in group(snaps, by) {
            let plan = apply(&members, &policy);
            // A policy that keeps nothing of a group is almost always a mistake (a tag
            // nobody has, a misspelt one): it must not become "remove everything".
            if plan.keep.is_empty() && !plan.remove.is_empty() && !a.unsafe_allow_remove_all {
                return Err(fail(
                    ExitCode::Fatal,
                    format!(
                        "refusing to remove all {} snapshots of group {}: no --keep-* option keeps any of them (does every --keep-tag name a tag they have?); nothing was removed. Pass --unsafe-allow-remove-all if that is what you want",
                        plan.remove.len(),
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
