//! `prune`: delete what no snapshot needs, plan first, then execute in a safe order.
//!
//! Plan: walk every snapshot to find the blobs in use (as bitmaps over the index, so a
//! repository of 100 million blobs prunes in bits a blob: `usage.rs`); classify each indexed pack as
//! fully used (kept), unused (deleted) or partly used (repacked while the unused share
//! is above `max_unused`, within `max_repack_bytes`). Packs no index lists are deleted
//! too, unless they are younger than the oldest lock (a backup on another machine may
//! be about to index them).
//!
//! Execute: (0) when there is something to repack, first free what can be freed without
//! writing a pack: delete the unindexed packs and retire the unused ones (a full drive
//! is when prune is needed most, and repacking needs room); (1) copy the used blobs of
//! repacked packs into new packs, sealed bytes as they are; (2) retire the unused and
//! the repacked packs. An interruption before (2) leaves only unindexed new packs.
//!
//! Retiring runs in two phases, so prune needs no lock that keeps backups out (see
//! `retire.rs` and docs/format.md, "Prune in two phases"): the packs are first marked
//! in a complete new index (their blobs stay readable; no backup deduplicates against
//! them any more), and deleted, from an index without them, only once no command that
//! could still be using them runs; otherwise a later prune deletes them. At no moment
//! does an index entry point at a deleted pack.

use std::collections::{HashMap, HashSet};

use cairn_format::{FileId, IndexPack, PackEntry, PackId};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{pack_name, read_pack_header, FileKind, Repository, DATA_DIR};

use crate::pack_blobs::PackBlobs;
use crate::OpsError;
use index_writer::IndexWriter;
use usage::{pack_uses, PackUse, Usage};

mod index_writer;
mod retire;
mod usage;

#[derive(Clone, Copy, Debug)]
pub enum MaxUnused {
    /// Fraction 0..=1 of the repository size.
    Fraction(f64),
    Bytes(u64),
}

impl MaxUnused {
    pub fn parse(s: &str) -> Result<MaxUnused, String> {
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid --max-unused {s:?}"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("invalid --max-unused {s:?}: percent must be 0-100"));
            }
            return Ok(MaxUnused::Fraction(p / 100.0));
        }
        crate::size::parse_size(s)
            .map(MaxUnused::Bytes)
            .map_err(|_| format!("invalid --max-unused {s:?}: expected P% or a size"))
    }
}

#[derive(Clone, Debug)]
pub struct PruneOptions {
    pub max_unused: MaxUnused,
    pub max_repack_bytes: Option<u64>,
    pub dry_run: bool,
    /// Snapshots to treat as already removed (`forget --prune --dry-run`).
    pub ignore_snapshots: HashSet<cairn_format::SnapshotId>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Fraction(0.05),
            max_repack_bytes: None,
            dry_run: false,
            ignore_snapshots: HashSet::new(),
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PruneSummary {
    pub packs_before: u64,
    pub bytes_before: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub unindexed_packs_deleted: u64,
    pub unindexed_packs_kept: u64,
    /// Temporary files of writes that never finished (a killed backup's half packs).
    pub temp_files_deleted: u64,
    pub temp_bytes_deleted: u64,
    pub bytes_deleted: u64,
    pub bytes_repacked: u64,
    pub bytes_after: u64,
    pub unused_bytes_after: u64,
    pub dry_run: bool,
    /// Packs no longer used but under Object Lock: never asked to be deleted, each
    /// "NAME (kept until DATE)"; a prune after the date deletes them.
    pub locked_kept: Vec<String>,
    /// Lock files an append-only key hid (it may not delete) whose versions this prune
    /// deleted.
    pub hidden_locks_purged: u64,
    /// Index and snapshot files removed while locked (so only hidden) whose locks have
    /// ended, deleted now, every version.
    pub hidden_files_purged: u64,
    /// Packs marked for deletion and left for a later prune: a backup or reader that
    /// could be using them was running (they are counted in `packs_deleted` too).
    pub packs_marked: u64,
    /// Packs an earlier prune marked that a snapshot saved since uses: taken back.
    pub packs_recovered: u64,
}

/// What prune will do; built without writing anything.
pub struct PrunePlan {
    keep: Vec<PackId>,
    delete: Vec<PackId>,
    repack: Vec<PackId>,
    unindexed_delete: Vec<(String, u64)>,
    partial_delete: Vec<String>,
    /// Each pack's use (counts), and which entries are the used copies.
    usage: Usage,
    /// The index's entries grouped by pack, built when the plan is carried out.
    blobs: Option<PackBlobs>,
    /// Packs under Object Lock now, by name, with the end of their lock (ms).
    locked: HashMap<String, i64>,
    /// The snapshots the plan was made for: one saved since may use what it retires.
    snapshots: HashSet<cairn_format::SnapshotId>,
    /// Unused packs left marked, taken out of the deletion counts once.
    not_deleted: HashSet<PackId>,
    pub summary: PruneSummary,
}

/// The `prune` command: an exclusive lock and the index, then the plan is built and
/// carried out (a dry run stops after the plan).
pub fn run(
    repo: &std::sync::Arc<Repository>,
    opts: &PruneOptions,
    progress: &dyn crate::Progress,
) -> Result<PruneSummary, OpsError> {
    if !opts.dry_run {
        repo.require_deletes("prune")?;
    }
    // The plan loads the index itself, after listing the snapshots.
    let _session = Session::begin(repo, "prune", Access::Maintain, LoadIndex::No)?;
    let mut summary = PrunePlan::build(repo, opts)?.execute_with_progress(repo, progress)?;
    if !opts.dry_run {
        summary.hidden_files_purged = purge_hidden_files(repo)?;
    }
    Ok(summary)
}

/// Deletes what removals of locked files could only hide, once the locks have ended:
/// every hidden index file (this prune just proved the visible index covers every
/// snapshot), and the hidden snapshot files a `forgotten/` record names. A snapshot
/// hidden with no record was not removed by cairn: it is kept for `repair versions`.
fn purge_hidden_files(repo: &Repository) -> Result<u64, OpsError> {
    let forgotten = repo.forgotten_snapshots()?;
    let backend = repo.backend();
    let index = backend
        .purge_hidden(FileKind::Index.dir(), &|_| true)
        .map_err(cairn_repo::RepoError::from)?;
    let snapshots = backend
        .purge_hidden(FileKind::Snapshot.dir(), &|name| {
            cairn_repo::canonical_id(FileKind::Snapshot, name)
                .is_some_and(|id| forgotten.contains(id))
        })
        .map_err(cairn_repo::RepoError::from)?;
    Ok(index + snapshots)
}

impl PrunePlan {
    /// The index must be loaded and the caller must hold an exclusive lock.
    pub fn build(repo: &Repository, opts: &PruneOptions) -> Result<PrunePlan, OpsError> {
        let (usage, snapshots) = pack_uses(repo, opts)?;
        let uses = &usage.packs;
        let mut s = PruneSummary {
            dry_run: opts.dry_run,
            ..Default::default()
        };
        s.packs_recovered = uses
            .iter()
            .filter(|(id, u)| u.used > 0 && repo.index().marked(id).is_some())
            .count() as u64;
        let (keep, delete, repack) = classify(uses, opts, &mut s);
        // One listing of the packs serves the leftovers and the locks.
        let listed = repo.list_packs()?;
        let now = cairn_repo::sys::now().timestamp_millis();
        let locked = listed
            .iter()
            .filter_map(|(id, o)| {
                Some((pack_name(id), o.retain_until_millis.filter(|u| *u > now)?))
            })
            .collect();
        let (unindexed_delete, partial_delete) = leftovers(repo, listed, uses, &mut s)?;
        s.packs_deleted = delete.len() as u64;
        s.packs_repacked = repack.len() as u64;
        Ok(PrunePlan {
            keep,
            delete,
            repack,
            unindexed_delete,
            partial_delete,
            usage,
            blobs: None,
            locked,
            snapshots,
            not_deleted: HashSet::new(),
            summary: s,
        })
    }

    /// Carries the plan out in the order described in the module documentation.
    pub fn execute(self, repo: &Repository) -> Result<PruneSummary, OpsError> {
        self.execute_with_progress(repo, &crate::NoProgress)
    }

    /// [`PrunePlan::execute`], reporting the packs it repacks (the long part).
    pub fn execute_with_progress(
        mut self,
        repo: &Repository,
        progress: &dyn crate::Progress,
    ) -> Result<PruneSummary, OpsError> {
        progress.start(
            self.repack.len() as u64,
            self.repack.iter().map(|p| self.usage.packs[p].size).sum(),
        );
        let r = self.run(repo, progress);
        progress.finish();
        r
    }

    fn run(
        &mut self,
        repo: &Repository,
        progress: &dyn crate::Progress,
    ) -> Result<PruneSummary, OpsError> {
        if self.summary.dry_run {
            let repack_unused: u64 = self
                .repack
                .iter()
                .map(|p| self.usage.packs[p].unused_bytes)
                .sum();
            self.summary.bytes_after = self
                .summary
                .bytes_before
                .saturating_sub(self.summary.bytes_deleted + repack_unused);
            return Ok(std::mem::take(&mut self.summary));
        }
        self.blobs = Some(PackBlobs::build(&repo.index())?);
        let mut old_index_files: Vec<FileId> = repo
            .loaded_index_files()
            .iter()
            .map(|id| FileId::from(*id))
            .collect();
        // (0) Room first: what killed writes left, and the lock files append-only keys
        // could only hide.
        self.summary.hidden_locks_purged = repo
            .backend()
            .purge_hidden(FileKind::Lock.dir(), &|_| true)
            .map_err(cairn_repo::RepoError::from)?;
        for name in std::mem::take(&mut self.partial_delete) {
            match repo.backend().remove_partial(&name) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(cairn_repo::RepoError::from(e).into()),
            }
        }
        // A pack no index listed when the plan was made may be listed by an index file
        // a backup stored since: then it is in use, and stays for a later prune.
        let indexed_since = repo
            .list_files(FileKind::Index)?
            .iter()
            .any(|f| !old_index_files.contains(f));
        if indexed_since {
            let s = &mut self.summary;
            for (_, size) in std::mem::take(&mut self.unindexed_delete) {
                s.unindexed_packs_deleted -= 1;
                s.unindexed_packs_kept += 1;
                s.bytes_deleted -= size;
            }
        }
        for (name, _) in self.unindexed_delete.clone() {
            self.remove_pack(repo, &name)?;
        }
        self.unindexed_delete.clear();
        if !self.repack.is_empty() && !self.delete.is_empty() {
            let normal: Vec<PackId> = self.keep.iter().chain(&self.repack).copied().collect();
            let doomed = std::mem::take(&mut self.delete);
            let (files, staying) =
                self.retire(repo, &normal, Vec::new(), &doomed, &old_index_files)?;
            // Still marked: the next index must list them too.
            (old_index_files, self.delete) = (files, staying);
            crash_point("after-room");
        }
        self.repack_packs(repo, progress)
            .map_err(|e| no_space_advice(repo, e))?;
        let new_packs = repo.take_unindexed();
        crash_point("after-repack");

        // (2) Unused and repacked packs: marked, then deleted where nothing can use them.
        let doomed: Vec<PackId> = self.delete.iter().chain(&self.repack).copied().collect();
        let keep = self.keep.clone();
        self.retire(repo, &keep, new_packs, &doomed, &old_index_files)?;
        self.summary.bytes_after = repo
            .backend()
            .list(DATA_DIR)
            .map_err(cairn_repo::RepoError::from)?
            .iter()
            .map(|o| o.size)
            .sum();
        // The in-memory index still lists the deleted packs: reload before reusing `repo`.
        Ok(std::mem::take(&mut self.summary))
    }

    /// (1) Copies the used blobs of the packs to repack into new packs.
    fn repack_packs(
        &self,
        repo: &Repository,
        progress: &dyn crate::Progress,
    ) -> Result<(), OpsError> {
        for pack in &self.repack {
            let name = pack_name(pack);
            progress.current(std::path::Path::new(&name));
            let data = match repo.load_pack_verified(pack) {
                Err(cairn_repo::RepoError::Corrupt { .. }) => {
                    return Err(OpsError::NeedsRepair {
                        problem: format!("{name} is corrupt (hash mismatch)"),
                        advice: "`cairn check --read-data`".into(),
                    });
                }
                r => r?,
            };
            read_pack_header(repo.key(), &name, &data)?;
            // Collected first: storing a blob takes the index's write lock.
            let used: Vec<PackEntry> = self
                .entries(repo, pack)
                .into_iter()
                .filter(|(pos, _)| self.usage.claimed.get(*pos))
                .map(|(_, e)| e)
                .collect();
            for e in &used {
                let sealed = &data[e.offset as usize..(e.offset + e.length) as usize];
                // Authenticate before copying, so repacking never spreads damage.
                repo.open_blob(&name, e, sealed)?;
                repo.save_sealed_blob(*e, sealed)?;
            }
            progress.file_done(data.len() as u64);
        }
        repo.flush()?;
        Ok(())
    }

    /// Every entry the index lists for `pack` (with its position), in pack order.
    fn entries(&self, repo: &Repository, pack: &PackId) -> Vec<(usize, PackEntry)> {
        match &self.blobs {
            Some(b) => b.entries(&repo.index(), pack),
            None => Vec::new(),
        }
    }

    /// The pack as an index lists it: every blob.
    fn index_pack(&self, repo: &Repository, id: &PackId) -> IndexPack {
        IndexPack {
            id: *id,
            size: self.usage.packs.get(id).map_or(0, |u| u.size),
            blobs: self.entries(repo, id).into_iter().map(|(_, e)| e).collect(),
        }
    }

    /// Writes index files listing `packs` (every blob of each: a backup beside this
    /// prune may have just deduplicated against one no snapshot used yet; the space of
    /// unused ones comes back when the pack is repacked), the new packs and the
    /// `marked` ones (with when they were marked); returns the names written. Packs
    /// are fetched from the index a file at a time, so only one file's worth is held.
    fn write_index(
        &self,
        repo: &Repository,
        packs: &[PackId],
        new_packs: Vec<IndexPack>,
        marked: &[(PackId, i64)],
    ) -> Result<HashSet<FileId>, OpsError> {
        let mut out = IndexWriter::new(repo);
        for id in packs {
            out.add(self.index_pack(repo, id), None)?;
        }
        for p in new_packs {
            out.add(p, None)?;
        }
        for (id, at) in marked {
            out.add(self.index_pack(repo, id), Some(*at))?;
        }
        out.finish()
    }
}

/// Deletes the index files in `old` that were not just written again.
fn remove_index_files(
    repo: &Repository,
    old: &[FileId],
    written: &HashSet<FileId>,
) -> Result<(), OpsError> {
    for id in old {
        if !written.contains(id) {
            repo.remove_file(FileKind::Index, id)?;
            crash_point("during-index-delete");
        }
    }
    Ok(())
}

/// A full drive while repacking: say what was already freed and what to do.
fn no_space_advice(repo: &Repository, e: OpsError) -> OpsError {
    let full = matches!(&e, OpsError::Repo(cairn_repo::RepoError::Backend(b)) if b.kind == cairn_backend::ErrorKind::NoSpace);
    if !full {
        return e;
    }
    OpsError::NoSpace {
        location: repo.backend().location(),
        advice: "Prune could not repack, but deleted unused packs first and the repository is consistent; \
                 free some space, or run `cairn prune --max-repack-size 0` (deletes only, writes no new pack)"
            .into(),
        source: Box::new(e),
    }
}

impl PrunePlan {
    /// Deletes a pack no longer indexed, unless it is under Object Lock: then it stays,
    /// unindexed, listed as kept, for a prune after its lock ends.
    fn remove_pack(&mut self, repo: &Repository, name: &str) -> Result<(), OpsError> {
        let Some(until) = self.locked.get(name).copied() else {
            return remove_if_present(repo, name);
        };
        // Kept, so not counted as deleted.
        let s = &mut self.summary;
        let id = cairn_repo::pack_id_from_name(name);
        if let Some(u) = id
            .filter(|id| self.delete.contains(id))
            .and_then(|id| self.usage.packs.get(&id))
        {
            s.packs_deleted = s.packs_deleted.saturating_sub(1);
            s.bytes_deleted = s.bytes_deleted.saturating_sub(u.size);
        } else if let Some((_, size)) = self.unindexed_delete.iter().find(|(n, _)| n == name) {
            s.unindexed_packs_deleted = s.unindexed_packs_deleted.saturating_sub(1);
            s.bytes_deleted = s.bytes_deleted.saturating_sub(*size);
        }
        s.locked_kept.push(format!(
            "{name} (kept until {})",
            cairn_backend::show_millis(until)
        ));
        Ok(())
    }
}

fn remove_if_present(repo: &Repository, name: &str) -> Result<(), OpsError> {
    match repo.backend().remove(name) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(cairn_repo::RepoError::from(e).into()),
    }
}

/// Test hook: aborts the process (as a power cut or SIGKILL would, no cleanup) when
/// `CAIRN_TEST_CRASH_AT` names this point. Lets the test suite prove that prune
/// interrupted at each step leaves a repository `check` accepts.
fn crash_point(name: &str) {
    if std::env::var("CAIRN_TEST_CRASH_AT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

/// Sorts packs into kept, deleted (nothing used) and repacked (the most wasteful first,
/// until the unused share is within `--max-unused` and `--max-repack-size`).
fn classify(
    uses: &HashMap<PackId, PackUse>,
    opts: &PruneOptions,
    s: &mut PruneSummary,
) -> (Vec<PackId>, Vec<PackId>, Vec<PackId>) {
    let (mut keep, mut delete, mut partial) = (Vec::new(), Vec::new(), Vec::new());
    for (id, u) in uses {
        s.packs_before += 1;
        s.bytes_before += u.size;
        if u.used == 0 {
            delete.push(*id);
            s.bytes_deleted += u.size;
        } else if u.unused_bytes == 0 {
            keep.push(*id);
        } else {
            partial.push(*id);
        }
    }
    delete.sort();
    // Repack the most wasteful packs first until the unused share is acceptable.
    partial.sort_by(|a, b| {
        let ra = uses[a].unused_bytes as f64 / uses[a].size.max(1) as f64;
        let rb = uses[b].unused_bytes as f64 / uses[b].size.max(1) as f64;
        rb.partial_cmp(&ra)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    });
    let mut unused: u64 = partial.iter().map(|p| uses[p].unused_bytes).sum();
    let total_after_delete = s.bytes_before - s.bytes_deleted;
    let limit = match opts.max_unused {
        MaxUnused::Fraction(f) => (total_after_delete as f64 * f) as u64,
        MaxUnused::Bytes(b) => b,
    };
    let mut repack = Vec::new();
    for p in partial {
        let u = &uses[&p];
        let within_budget = opts
            .max_repack_bytes
            .is_none_or(|m| s.bytes_repacked + u.size <= m);
        if unused > limit && within_budget {
            unused -= u.unused_bytes;
            s.bytes_repacked += u.size;
            repack.push(p);
        } else {
            keep.push(p);
        }
    }
    s.unused_bytes_after = unused;
    (keep, delete, repack)
}

/// Packs no index lists (of `listed`, the repository's packs) and half-written files of
/// killed commands: deleted unless a live command may still index or finish them.
/// Returns (packs with their sizes, temporary files).
#[allow(clippy::type_complexity)]
fn leftovers(
    repo: &Repository,
    listed: Vec<(PackId, cairn_backend::ObjectInfo)>,
    uses: &HashMap<PackId, PackUse>,
    s: &mut PruneSummary,
) -> Result<(Vec<(String, u64)>, Vec<String>), OpsError> {
    let oldest_lock_ms = repo
        .list_locks()?
        .into_iter()
        .filter_map(|(_, l)| l.ok())
        .filter(|l| l.pid != std::process::id() || l.hostname != cairn_repo::sys::hostname())
        // A killed command's lock: nothing of its can still be written.
        .filter(|l| !cairn_repo::is_stale(l))
        // Since the command started: a backup may leave a pack unindexed for as long as
        // it runs (locks of older builds give only their last refresh).
        .map(|l| l.started.unwrap_or(l.time).timestamp_millis())
        .min();
    // While any other command runs, nothing unindexed goes: a backup may be writing it,
    // or adopting it (`adopt_unindexed_packs` indexes packs an interrupted command left).
    let young = |_mtime_millis: Option<i64>| oldest_lock_ms.is_some();
    let mut unindexed_delete = Vec::new();
    for (id, obj) in listed {
        if uses.contains_key(&id) {
            continue;
        }
        if young(obj.mtime_millis) {
            s.unindexed_packs_kept += 1;
        } else {
            s.unindexed_packs_deleted += 1;
            s.bytes_deleted += obj.size;
            unindexed_delete.push((obj.name, obj.size));
        }
    }
    // Half-written files of killed commands, by the same rule: a live command may
    // still be writing one.
    let mut partial_delete = Vec::new();
    for obj in repo
        .backend()
        .list_partial("")
        .map_err(cairn_repo::RepoError::from)?
    {
        // A file being written now has a fresh time: an hour without a change is a
        // write that died, even where no lock covers the writer (a lock's own file is
        // written before the lock exists).
        let stale = obj
            .mtime_millis
            .is_some_and(|m| m < cairn_repo::sys::now().timestamp_millis() - 3_600_000);
        if stale && !young(obj.mtime_millis) {
            s.temp_files_deleted += 1;
            s.temp_bytes_deleted += obj.size;
            partial_delete.push(obj.name);
        }
    }
    Ok((unindexed_delete, partial_delete))
}
