//! `repair index` and `repair snapshots`: bring a damaged repository back to a state
//! `check` accepts, keeping everything that can still be read.
//!
//! repair index reads every pack whole. Intact packs (content matches the name) are
//! indexed from their headers. From a damaged pack, every blob that still decrypts and
//! hashes correctly is copied into a new pack; the damaged pack is left in place but
//! unindexed (check reports it as information; prune removes it). Then one complete
//! index is written and the old index files are deleted.
//!
//! repair snapshots writes, for each snapshot whose trees reference blobs the index
//! lacks, a copy without what is lost: files with missing content are dropped,
//! unreadable directories become empty. The copy carries the tag `repaired`; the
//! original stays (as restic keeps it) unless asked to forget it, since an intact copy
//! of the damaged pack may still be fetched from elsewhere. Every lost path is reported.
//!
//! repair versions (in `versions.rs`) brings back old versions of files a versioned
//! store (B2) still keeps: the way back after files were hidden or overwritten.
//!
//! repair packs fetches, from another copy of the same repository (a ship destination),
//! every pack that is missing here or whose content no longer matches its name, checks
//! the copy against its name, and puts it back; a pack that `repair index` had left
//! unindexed is indexed again.

use std::collections::HashMap;

use cairn_format::{BlobId, IndexFile, IndexPack, NodeType, SnapshotId, Tree};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{read_pack_header, FileKind, Repository};

use crate::OpsError;

mod versions;
pub use crate::moment::parse_moment;
pub use versions::{versions, RepairVersionsSummary};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairIndexSummary {
    pub packs_indexed: u64,
    pub packs_damaged: u64,
    pub blobs_salvaged: u64,
    pub blobs_lost: u64,
    pub index_files_replaced: u64,
    pub problems: Vec<String>,
    /// The damaged packs left in place, unindexed (prune removes them), by name.
    pub damaged_packs: Vec<String>,
}

/// `repair index` under the exclusive lock: see [`repair_index`].
pub fn index(
    repo: &std::sync::Arc<Repository>,
    before_commit: &dyn Fn(&[String]) -> Result<(), OpsError>,
) -> Result<RepairIndexSummary, OpsError> {
    // The index files it replaces are deleted.
    repo.require_deletes("repair index")?;
    let _session = Session::begin(repo, "repair", Access::Change, LoadIndex::No)?;
    repair_index(repo, before_commit)
}

/// `repair snapshots` under the exclusive lock. When the repair would drop data (not in
/// a dry run), `before_loss` first sees the names of the packs the index lists and may
/// stop it: a pack elsewhere that is not among them may hold what would be lost.
pub fn snapshots(
    repo: &std::sync::Arc<Repository>,
    dry_run: bool,
    forget: bool,
    before_loss: &dyn Fn(&std::collections::HashSet<String>) -> Result<(), OpsError>,
) -> Result<RepairSnapshotsSummary, OpsError> {
    if forget {
        repo.require_deletes("repair snapshots --forget")?;
    }
    let _session = Session::begin(repo, "repair", Access::Change, LoadIndex::Yes)?;
    if !dry_run && crate::walk::first_missing_blob(repo, &repo.list_snapshots()?)?.is_some() {
        let indexed = repo
            .index()
            .packs()
            .map(|(p, _)| cairn_repo::pack_name(&p))
            .collect();
        before_loss(&indexed)?;
    }
    repair_snapshots(repo, dry_run, forget)
}

/// `repair packs` under the exclusive lock: see [`repair_packs`].
pub fn packs(
    repo: &std::sync::Arc<Repository>,
    from: &dyn cairn_backend::Backend,
    progress: &dyn crate::Progress,
) -> Result<RepairPacksSummary, OpsError> {
    let _session = Session::begin(repo, "repair", Access::Change, LoadIndex::Yes)?;
    repair_packs(repo, from, progress)
}

/// Rebuilds the index. `before_commit` sees the damaged packs' names before anything is
/// written and may stop the repair there: the caller's chance to say that an intact
/// copy exists elsewhere.
pub fn repair_index(
    repo: &Repository,
    before_commit: &dyn Fn(&[String]) -> Result<(), OpsError>,
) -> Result<RepairIndexSummary, OpsError> {
    let mut s = RepairIndexSummary::default();
    // Every index file, readable or not: all are replaced by the rebuilt index.
    let old = repo.list_files(FileKind::Index)?;
    let (mut packs, damaged, salvage) = survey_packs(repo, &mut s)?;
    // Nothing is written before the caller has had its say (an intact copy elsewhere
    // makes salvaging pointless); damaged packs are read again, intact ones are not.
    before_commit(&damaged)?;
    s.damaged_packs = damaged;
    salvage_blobs(repo, salvage, &mut s)?;
    repo.flush()?;
    packs.extend(repo.take_unindexed());
    replace_index_files(repo, &packs, old, &mut s)?;
    repo.load_index()?;
    Ok(s)
}

/// Reads every pack: the intact ones with their blobs, the names of the damaged ones,
/// and of those whose header still reads (their blobs may be salvaged).
#[allow(clippy::type_complexity)]
fn survey_packs(
    repo: &Repository,
    s: &mut RepairIndexSummary,
) -> Result<(Vec<IndexPack>, Vec<String>, Vec<String>), OpsError> {
    let mut damaged: Vec<String> = Vec::new();
    let mut salvage: Vec<String> = Vec::new();
    let mut packs: Vec<IndexPack> = Vec::new();
    for (id, obj) in repo.list_packs()? {
        let data = match repo.backend().read(&obj.name) {
            Ok(d) => d,
            Err(e) => {
                s.problems.push(format!("{}: {e}", obj.name));
                s.packs_damaged += 1;
                damaged.push(obj.name.clone());
                continue;
            }
        };
        let header = read_pack_header(repo.key(), &obj.name, &data);
        if cairn_repo::pack_matches_name(&id, &data) {
            match header {
                Ok(blobs) => {
                    packs.push(IndexPack {
                        id,
                        size: data.len() as u64,
                        blobs,
                    });
                    s.packs_indexed += 1;
                }
                Err(e) => {
                    s.problems.push(format!("{e}"));
                    s.packs_damaged += 1;
                    damaged.push(obj.name.clone());
                }
            }
            continue;
        }
        s.packs_damaged += 1;
        damaged.push(obj.name.clone());
        s.problems.push(format!(
            "{}: content does not match its name; salvaging readable blobs",
            obj.name
        ));
        match header {
            Ok(_) => salvage.push(obj.name.clone()),
            Err(_) => s.problems.push(format!(
                "{}: header unreadable; its blobs are lost",
                obj.name
            )),
        }
    }
    Ok((packs, damaged, salvage))
}

/// Stores again, in new packs, the blobs of damaged packs that still open.
fn salvage_blobs(
    repo: &Repository,
    salvage: Vec<String>,
    s: &mut RepairIndexSummary,
) -> Result<(), OpsError> {
    for name in salvage {
        let data = repo
            .backend()
            .read(&name)
            .map_err(cairn_repo::RepoError::from)?;
        let Ok(blobs) = read_pack_header(repo.key(), &name, &data) else {
            continue;
        };
        for e in blobs {
            let sealed = data.get(e.offset as usize..(e.offset as usize + e.length as usize));
            match sealed.map(|b| (b, repo.open_blob(&name, &e, b))) {
                Some((b, Ok(_))) => {
                    repo.save_sealed_blob(e, b)?;
                    s.blobs_salvaged += 1;
                }
                _ => s.blobs_lost += 1,
            }
        }
    }
    Ok(())
}

/// Writes the rebuilt index, then removes the index files it replaces.
fn replace_index_files(
    repo: &Repository,
    packs: &[IndexPack],
    old: Vec<cairn_format::FileId>,
    s: &mut RepairIndexSummary,
) -> Result<(), OpsError> {
    let mut written = std::collections::HashSet::new();
    for chunk in packs.chunks(2000) {
        let f = IndexFile {
            marked: Vec::new(),
            supersedes: Vec::new(),
            packs: chunk.to_vec(),
        };
        written.insert(repo.save_file(FileKind::Index, &f.encode())?);
    }
    for hex in old {
        if !written.contains(&hex) {
            repo.remove_file(FileKind::Index, &hex)?;
            s.index_files_replaced += 1;
        }
    }
    Ok(())
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

/// Writes a repaired copy of each damaged snapshot; with `forget`, the original is
/// removed (with a `forgotten/` record), else it stays beside the copy.
pub fn repair_snapshots(
    repo: &Repository,
    dry_run: bool,
    forget: bool,
) -> Result<RepairSnapshotsSummary, OpsError> {
    let mut s = RepairSnapshotsSummary::default();
    let mut rw = Rewriter {
        repo,
        done: HashMap::new(),
    };
    let all = repo.list_snapshots()?;
    for snap in &all {
        let (tree, lost) = rw.tree(&snap.snapshot.tree, "")?;
        if lost.is_empty() {
            continue;
        }
        s.lost.extend(
            lost.iter()
                .map(|l| format!("snapshot {}: {l}", snap.id.short())),
        );
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
        // A repair run before (originals kept) already wrote this copy: seals carry a
        // random nonce, so saving it again would make a second snapshot of it.
        let id = match all.iter().find(|o| o.snapshot == new) {
            Some(existing) => {
                if forget {
                    repo.remove_snapshots(&[snap.id])?;
                }
                existing.id
            }
            None if forget => repo.replace_snapshot(&snap.id, &new)?,
            None => repo.save_snapshot(&new)?,
        };
        s.rewritten.push((snap.id, id));
    }
    repo.flush()?;
    repo.save_index()?;
    Ok(s)
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairPacksSummary {
    /// Packs read here whose content matched their name.
    pub packs_intact: u64,
    /// Packs fetched from the other copy, verified and put back.
    pub fetched: Vec<String>,
    /// Of those, packs no index listed, now indexed again.
    pub reindexed: u64,
    /// Damaged or missing packs the other copy lacks too, or holds damaged.
    pub unavailable: Vec<String>,
}

/// Puts back, from `from` (another copy of this repository), every pack missing here or
/// damaged here. The copy must prove it is the same repository (its config opens with
/// this key and names this repository's ID), and every fetched pack must match its name
/// before it replaces anything. The index must be loaded.
pub fn repair_packs(
    repo: &Repository,
    from: &dyn cairn_backend::Backend,
    progress: &dyn crate::Progress,
) -> Result<RepairPacksSummary, OpsError> {
    use cairn_repo::pack_name;
    same_repository(repo, from)?;
    let mut s = RepairPacksSummary::default();
    let listed: HashMap<cairn_format::PackId, u64> = repo
        .list_packs()?
        .into_iter()
        .map(|(id, o)| (id, o.size))
        .collect();
    let indexed: HashMap<cairn_format::PackId, u64> = repo.index().packs().collect();
    let mut wanted: Vec<cairn_format::PackId> = indexed
        .keys()
        .filter(|p| !listed.contains_key(p))
        .copied()
        .collect();
    let damaged = damaged_here(repo, &listed, progress);
    s.packs_intact = (listed.len() - damaged.len()) as u64;
    wanted.extend(damaged);
    wanted.sort();
    let mut unindexed = Vec::new();
    for pack in wanted {
        let name = pack_name(&pack);
        let fetched = match cairn_repo::read_pack_verified(from, &pack) {
            Ok(d) => d,
            Err(cairn_repo::RepoError::Corrupt { .. }) => {
                s.unavailable
                    .push(format!("{name}: damaged at {} too", from.location()));
                continue;
            }
            Err(cairn_repo::RepoError::Backend(e)) if e.is_not_found() => {
                s.unavailable
                    .push(format!("{name}: not at {}", from.location()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let header = read_pack_header(repo.key(), &name, &fetched)?;
        repo.backend()
            .write(&name, &fetched, &cairn_backend::WriteOptions::default())
            .map_err(cairn_repo::RepoError::from)?;
        if !indexed.contains_key(&pack) {
            unindexed.push(IndexPack {
                id: pack,
                size: fetched.len() as u64,
                blobs: header,
            });
        }
        s.fetched.push(name);
    }
    if !unindexed.is_empty() {
        s.reindexed = unindexed.len() as u64;
        let f = IndexFile {
            marked: Vec::new(),
            supersedes: Vec::new(),
            packs: unindexed,
        };
        repo.save_file(FileKind::Index, &f.encode())?;
        repo.load_index()?;
    }
    Ok(s)
}

/// Refuses a source that does not hold this repository.
fn same_repository(repo: &Repository, from: &dyn cairn_backend::Backend) -> Result<(), OpsError> {
    use cairn_repo::CONFIG;
    let ours = repo.config().id.clone();
    let theirs = from.read(CONFIG).map_err(cairn_repo::RepoError::from)?;
    match repo.id_in_config(&theirs) {
        Some(id) if id == ours => {}
        _ => {
            return Err(OpsError::Invalid(format!(
                "{} does not hold this repository ({ours}); packs are fetched only from a copy of the same repository",
                from.location()
            )))
        }
    }
    Ok(())
}

/// The packs here whose content does not hash to their name, each read whole.
fn damaged_here(
    repo: &Repository,
    listed: &HashMap<cairn_format::PackId, u64>,
    progress: &dyn crate::Progress,
) -> Vec<cairn_format::PackId> {
    use cairn_repo::pack_name;
    // Every pack here is read and hashed: damage is found by content, not by a listing.
    let mut here: Vec<cairn_format::PackId> = listed.keys().copied().collect();
    here.sort();
    progress.start(here.len() as u64, here.iter().map(|p| listed[p]).sum());
    let damaged: Vec<cairn_format::PackId> = {
        use rayon::prelude::*;
        here.par_iter()
            .filter(|p| {
                progress.current(std::path::Path::new(&pack_name(p)));
                let ok = repo.load_pack_verified(p).is_ok();
                progress.file_done(listed[p]);
                !ok
            })
            .copied()
            .collect()
    };
    progress.finish();
    damaged
}
