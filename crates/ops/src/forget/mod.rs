//! `forget`: remove snapshots by name or by a retention policy, then prune if asked.

mod policy;

pub use policy::{apply, Duration, ForgetPlan, Kept, RetentionPolicy};

use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{Repository, SnapshotRef};

use crate::prune::{PruneOptions, PrunePlan, PruneSummary};
use crate::snapshots::{group, GroupBy, GroupKey, SnapshotFilter};
use crate::OpsError;

/// What to forget.
#[derive(Debug, Default)]
pub struct ForgetOptions {
    /// Snapshots named (IDs or prefixes), removed whatever the policy says.
    pub snapshots: Vec<String>,
    /// Full IDs of snapshots that vanished behind cairn's back: naming one of them
    /// acknowledges it (recorded as forgotten) instead of failing.
    pub vanished: Vec<String>,
    pub policy: RetentionPolicy,
    pub filter: SnapshotFilter,
    pub group_by: GroupBy,
    /// Let the policy empty a group (refused by default: a `--keep-tag` nobody has, or
    /// a typo, would otherwise keep nothing).
    pub allow_remove_all: bool,
    pub dry_run: bool,
    /// Prune afterwards with these options, if anything was removed.
    pub prune: Option<PruneOptions>,
}

/// One group's verdict.
#[derive(Debug)]
pub struct GroupVerdict {
    pub key: GroupKey,
    pub plan: ForgetPlan,
}

#[derive(Debug, Default)]
pub struct ForgetSummary {
    pub groups: Vec<GroupVerdict>,
    /// Removed (or, in a dry run, to be removed), sorted by ID.
    pub removed: Vec<SnapshotRef>,
    pub acknowledged: Vec<String>,
    pub pruned: Option<PruneSummary>,
}

/// The `forget` command: an exclusive lock, the snapshots to remove (refusing a policy
/// that would empty a group before anything is removed), their removal, then prune.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    opts: &ForgetOptions,
    progress: &dyn crate::Progress,
) -> Result<ForgetSummary, OpsError> {
    if !opts.dry_run {
        repo.require_deletes("forget")?;
    }
    let _session = Session::begin(repo, "forget", Access::Maintain, LoadIndex::No)?;
    let (mut removed, acknowledged) = named(repo, &opts.snapshots, &opts.vanished)?;
    let mut groups = Vec::new();
    if !opts.policy.is_empty() {
        groups = by_policy(repo, opts)?;
        removed.extend(groups.iter().flat_map(|g| g.plan.remove.iter().cloned()));
    }
    removed.sort_by_key(|s| s.id);
    removed.dedup_by_key(|s| s.id);
    if !opts.dry_run {
        repo.remove_snapshots(&removed.iter().map(|s| s.id).collect::<Vec<_>>())?;
        if !acknowledged.is_empty() {
            repo.record_forgotten(acknowledged.clone())?;
        }
    }
    let pruned = match &opts.prune {
        Some(prune) if !removed.is_empty() => {
            let mut prune = prune.clone();
            prune.ignore_snapshots = removed.iter().map(|s| s.id).collect();
            Some(PrunePlan::build(repo, &prune)?.execute_with_progress(repo, progress)?)
        }
        _ => None,
    };
    Ok(ForgetSummary {
        groups,
        removed,
        acknowledged,
        pruned,
    })
}

/// The snapshots named; a name that matches only a snapshot that vanished behind
/// cairn's back is returned apart (its full ID), to be acknowledged.
fn named(
    repo: &Repository,
    specs: &[String],
    vanished: &[String],
) -> Result<(Vec<SnapshotRef>, Vec<String>), OpsError> {
    let mut remove = Vec::new();
    let mut acknowledged = Vec::new();
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
    Ok((remove, acknowledged))
}

/// The policy's verdict on each group of the snapshots the filter selects. A group the
/// policy would empty is refused.
fn by_policy(repo: &Repository, opts: &ForgetOptions) -> Result<Vec<GroupVerdict>, OpsError> {
    let snaps: Vec<_> = repo
        .list_snapshots()?
        .into_iter()
        .filter(|s| opts.filter.matches(s))
        .collect();
    let mut out = Vec::new();
    for (key, members) in group(snaps, opts.group_by) {
        let plan = apply(&members, &opts.policy);
        // A policy that keeps nothing of a group is almost always a mistake (a tag
        // nobody has, a misspelt one): it must not become "remove everything".
        if plan.keep.is_empty() && !plan.remove.is_empty() && !opts.allow_remove_all {
            return Err(OpsError::WouldRemoveAll {
                group: serde_json::to_string(&key).unwrap_or_default(),
                snapshots: plan.remove.len(),
            });
        }
        out.push(GroupVerdict { key, plan });
    }
    Ok(out)
}
