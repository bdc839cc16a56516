//! Selecting snapshots the way restic users expect: by host, tag and path, grouped.

use std::collections::BTreeMap;

use cairn_repo::{Repository, SnapshotRef};

use crate::OpsError;

/// The snapshots `specs` names (IDs or prefixes, `latest`), or all of them when none.
pub fn select(repo: &Repository, specs: &[String]) -> Result<Vec<SnapshotRef>, OpsError> {
    if specs.is_empty() {
        return Ok(repo.list_snapshots()?);
    }
    Ok(specs
        .iter()
        .map(|s| repo.find_snapshot(s))
        .collect::<Result<_, _>>()?)
}

#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    /// Each entry is a comma-separated list of tags that must all be present; entries
    /// are alternatives (`--tag a,b --tag c` means (a and b) or c).
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &SnapshotRef) -> bool {
        let snap = &s.snapshot;
        let host_ok = self.hosts.is_empty() || self.hosts.contains(&snap.hostname);
        let tag_ok = self.tags.is_empty()
            || self.tags.iter().any(|group| {
                group
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .all(|t| snap.tags.iter().any(|x| x == t))
            });
        let path_ok = self.paths.is_empty()
            || self.paths.iter().all(|p| {
                snap.paths
                    .iter()
                    .any(|x| x == p.trim_end_matches('/') || x == p)
            });
        host_ok && tag_ok && path_ok
    }
}

/// How snapshots are grouped for `--latest` and `forget`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl GroupBy {
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        let mut g = GroupBy::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                other => {
                    return Err(format!(
                        "invalid group-by field {other:?}: expected host, paths or tags"
                    ))
                }
            }
        }
        Ok(g)
    }

    pub fn key(&self, s: &SnapshotRef) -> GroupKey {
        let mut paths = s.snapshot.paths.clone();
        paths.sort();
        let mut tags = s.snapshot.tags.clone();
        tags.sort();
        GroupKey {
            host: self.host.then(|| s.snapshot.hostname.clone()),
            paths: self.paths.then_some(paths),
            tags: self.tags.then_some(tags),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct GroupKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// Groups snapshots (each group oldest first), groups in key order.
pub fn group(snaps: Vec<SnapshotRef>, by: GroupBy) -> BTreeMap<GroupKey, Vec<SnapshotRef>> {
    let mut m: BTreeMap<GroupKey, Vec<SnapshotRef>> = BTreeMap::new();
    for s in snaps {
        m.entry(by.key(&s)).or_default().push(s);
    }
    for v in m.values_mut() {
        v.sort_by_key(|a| a.snapshot.time);
    }
    m
}
