//! `repair index` and `repair snapshots`: bring a damaged repository back to a state
//! `check` accepts, keeping everything that can still be read.
//!
//! repair index reads every pack whole. Intact packs (content matches the name) are
//! indexed from their headers. From a damaged pack, every blob that still decrypts and
//! hashes correctly is copied into a new pack; the damaged pack is left in place but
//! unindexed (check reports it as information; prune removes it). Then one complete
//! index is written and the old index files are deleted.
//!
//! repair snapshots rewrites each snapshot whose trees reference blobs the index lacks:
//! files with missing content are dropped, unreadable directories become empty. The
//! new snapshot carries the tag `repaired` and replaces the old one; every lost path
//! is reported.

use std::collections::HashMap;

use cairn_format::{BlobId, IndexFile, IndexPack, NodeType, SnapshotId, Tree};
use cairn_repo::{pack_id_from_name, read_pack_header, FileKind, Repository, DATA_DIR};

use crate::OpsError;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairIndexSummary {
    pub packs_indexed: u64,
    pub packs_damaged: u64,
    pub blobs_salvaged: u64,
    pub blobs_lost: u64,
    pub index_files_replaced: u64,
    pub problems: Vec<String>,
}

pub fn repair_index(repo: &Repository) -> Result<RepairIndexSummary, OpsError> {
    let mut s = RepairIndexSummary::default();
    // Every index file, readable or not: all are replaced by the rebuilt index.
    let old = repo.list_files(FileKind::Index)?;
    let mut packs: Vec<IndexPack> = Vec::new();
    for obj in repo.backend().list(DATA_DIR).map_err(cairn_repo::RepoError::from)? {
        let Some(id) = pack_id_from_name(&obj.name) else { continue };
        let data = match repo.backend().read(&obj.name) {
            Ok(d) => d,
            Err(e) => {
                s.problems.push(format!("{}: {e}", obj.name));
                s.packs_damaged += 1;
                continue;
            }
        };
        let header = read_pack_header(repo.key(), &obj.name, &data);
        if cairn_crypto::storage_hash(&data) == id.0 {
            match header {
                Ok(blobs) => {
                    packs.push(IndexPack { id, size: data.len() as u64, blobs });
                    s.packs_indexed += 1;
                }
                Err(e) => {
                    s.problems.push(format!("{e}"));
                    s.packs_damaged += 1;
                }
            }
            continue;
        }
        s.packs_damaged += 1;
        s.problems.push(format!("{}: content does not match its name; salvaging readable blobs", obj.name));
        let Ok(blobs) = header else {
            s.problems.push(format!("{}: header unreadable; its blobs are lost", obj.name));
            continue;
        };
        for e in blobs {
            let sealed = data.get(e.offset as usize..(e.offset as usize + e.length as usize));
            match sealed.map(|b| (b, repo.open_blob(&obj.name, &e, b))) {
                Some((b, Ok(_))) => {
                    repo.save_sealed_blob(e, b)?;
                    s.blobs_salvaged += 1;
                }
                _ => s.blobs_lost += 1,
            }
        }
    }
    repo.flush()?;
    packs.extend(repo.take_unindexed());
    let mut written = std::collections::HashSet::new();
    for chunk in packs.chunks(2000) {
        let f = IndexFile { supersedes: Vec::new(), packs: chunk.to_vec() };
        written.insert(repo.save_file(FileKind::Index, &f.encode())?);
    }
    for hex in old {
        if !written.contains(&hex) {
            repo.remove_file(FileKind::Index, &hex)?;
            s.index_files_replaced += 1;
        }
    }
    repo.load_index()?;
    Ok(s)
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairSnapshotsSummary {
    /// (old id, new id) of each rewritten snapshot.
    pub rewritten: Vec<(SnapshotId, SnapshotId)>,
    /// "snapshot-short-id: /path" for each file or directory that could not be kept.
    pub lost: Vec<String>,
}

struct Rewriter<'a> {
    repo: &'a Repository,
    /// Rewritten tree for each original tree, so shared subtrees are rewritten once.
    done: HashMap<BlobId, (BlobId, Vec<String>)>,
}

impl Rewriter<'_> {
    /// Returns the repaired tree's id and the paths (relative to `base`) lost below it.
    fn tree(&mut self, id: &BlobId, base: &str) -> Result<(BlobId, Vec<String>), OpsError> {
        if let Some((new, lost)) = self.done.get(id) {
            return Ok((*new, lost.iter().map(|l| format!("{base}{l}")).collect()));
        }
        let mut lost_rel = Vec::new();
        let tree = match self.repo.load_tree(id) {
            Ok(t) => t,
            Err(_) => {
                lost_rel.push("/ (directory contents unreadable)".to_string());
                Tree::default()
            }
        };
        let mut nodes = Vec::new();
        for mut n in tree.nodes {
            if !n.has_safe_name() {
                lost_rel.push(format!("/{} (unsafe name)", n.name.display()));
                continue;
            }
            let rel = format!("/{}", n.name.display());
            match n.node_type {
                NodeType::File if n.content.iter().any(|b| !self.repo.index().contains(b)) => {
                    lost_rel.push(rel);
                    continue;
                }
                NodeType::Dir => {
                    let sub = n.subtree.unwrap_or_default();
                    let (new, lost) = self.tree(&sub, &rel)?;
                    lost_rel.extend(lost);
                    n.subtree = Some(new);
                }
                _ => {}
            }
            nodes.push(n);
        }
        let mut t = Tree { nodes };
        t.sort();
        let (new, _) = self.repo.save_tree(&t)?;
        self.done.insert(*id, (new, lost_rel.clone()));
        Ok((new, lost_rel.iter().map(|l| format!("{base}{l}")).collect()))
    }
}

pub fn repair_snapshots(repo: &Repository, dry_run: bool) -> Result<RepairSnapshotsSummary, OpsError> {
    let mut s = RepairSnapshotsSummary::default();
    let mut rw = Rewriter { repo, done: HashMap::new() };
    for snap in repo.list_snapshots()? {
        let (tree, lost) = rw.tree(&snap.snapshot.tree, "")?;
        if lost.is_empty() {
            continue;
        }
        s.lost.extend(lost.iter().map(|l| format!("snapshot {}: {l}", snap.id.short())));
        let mut new = snap.snapshot.clone();
        new.tree = tree;
        if !new.tags.iter().any(|t| t == "repaired") {
            new.tags.push("repaired".into());
        }
        if dry_run {
            continue;
        }
        repo.flush()?;
        repo.save_index()?;
        let id = repo.replace_snapshot(&snap.id, &new)?;
        s.rewritten.push((snap.id, id));
    }
    repo.flush()?;
    repo.save_index()?;
    Ok(s)
}
