//! `tag`: change the tags of snapshots (each changed snapshot is saved anew under a new
//! ID and the old one removed, as restic does).

use cairn_format::SnapshotId;
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::Repository;

use crate::OpsError;

/// Tags to add and remove, after replacing the whole list by `set` if given (an empty
/// `set` clears every tag).
#[derive(Debug, Default, Clone)]
pub struct TagChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub set: Option<Vec<String>>,
}

impl TagChange {
    fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out = self.set.clone().unwrap_or_else(|| tags.to_vec());
        for t in &self.add {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out.retain(|t| !self.remove.contains(t));
        out
    }
}

/// The `tag` command: an exclusive lock (a snapshot is replaced, and a reader holding
/// the old ID must not find it gone mid-read), then each snapshot `specs` names whose
/// tags change is replaced. Returns (old, new) for each.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    specs: &[String],
    change: &TagChange,
) -> Result<Vec<(SnapshotId, SnapshotId)>, OpsError> {
    // A snapshot is replaced: the old one is deleted.
    repo.require_deletes("tag")?;
    let _session = Session::begin(repo, "tag", Access::Change, LoadIndex::No)?;
    let targets = specs
        .iter()
        .map(|s| repo.find_snapshot(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut changed = Vec::new();
    for s in targets {
        let tags = change.apply(&s.snapshot.tags);
        if tags == s.snapshot.tags {
            continue;
        }
        let mut snap = s.snapshot.clone();
        snap.tags = tags;
        changed.push((s.id, repo.replace_snapshot(&s.id, &snap)?));
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn set_then_add_then_remove() {
        let c = TagChange {
            add: tags(&["b", "c"]),
            remove: tags(&["a"]),
            set: Some(tags(&["a", "x"])),
        };
        assert_eq!(c.apply(&tags(&["old"])), tags(&["x", "b", "c"]));
        let keep = TagChange {
            add: tags(&["old"]),
            ..Default::default()
        };
        assert_eq!(keep.apply(&tags(&["old"])), tags(&["old"]));
        let clear = TagChange {
            set: Some(Vec::new()),
            ..Default::default()
        };
        assert!(clear.apply(&tags(&["old"])).is_empty());
    }
}
