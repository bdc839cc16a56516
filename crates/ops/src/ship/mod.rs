//! `ship`: push a repository to another location (a B2 bucket, another disk), uploading
//! only the files the destination lacks.
//!
//! The destination is the last copy, so before anything is written or deleted:
//! - it must exist (a typo in a bucket name is an error, not a new bucket), unless the
//!   user asks for it to be created;
//! - it must hold this same repository (its `config` is byte for byte ours, or opens
//!   with our master key and names our repository ID), or nothing at all;
//! - deletions beyond a small share of it, or of snapshots the source never forgot on
//!   purpose, need `--allow-deletes`.
//!
//! Repository files are immutable and named by their content, so "lacks" is decided by
//! name and size, except for `config` and `keys/`, which are compared by content. The
//! order ([`FileKind::SHIP_ORDER`]) keeps the destination a readable repository at every
//! moment: packs, then index files, keys, config, snapshots; deletions run the same
//! order backwards, so no snapshot or index entry at the destination ever points at
//! something missing. Locks are never shipped.

use std::collections::{BTreeMap, HashSet};

use cairn_backend::{Backend, BackendError, ObjectInfo, WriteOptions};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{FileKind, CONFIG};
use cairn_repo::{RepoError, Repository};

use crate::transfer::{Item, OnError, Transfer};
use crate::OpsError;

mod hashes;
mod lock;
pub use hashes::{compare_hashes, HashReport};

#[derive(Clone, Debug, Default)]
pub struct ShipOptions {
    pub transfers: usize,
    pub dry_run: bool,
    /// Compare the destination's listing with the source afterwards.
    pub verify: bool,
    /// Also upload this binary and RECOVERY.txt beside the repository.
    pub with_binary: Option<std::path::PathBuf>,
    /// Create the destination (bucket, directory) when it does not exist.
    pub create: bool,
    /// Allow deletions past the share above, and of snapshots the source never forgot.
    pub allow_deletes: bool,
    /// Delete nothing at the destination (the source's last check found damage): what
    /// the destination still holds may be the only intact copy.
    pub keep_all: bool,
    /// Object Lock for every file uploaded, and extended on the files still in use.
    pub lock: Option<cairn_backend::LockPeriod>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ShipSummary {
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
    pub files_deleted: u64,
    pub files_skipped: u64,
    /// With --dry-run: what would be uploaded and deleted.
    pub plan: Vec<String>,
    /// Every file deleted (or, in a dry run, that would be), in deletion order.
    pub deletions: Vec<String>,
    /// Whether the destination already held this repository (false: it was empty).
    pub same_repository: bool,
    pub repository_id: String,
    pub verified: bool,
    /// Deletions not made, and why (the source is damaged, or its last check failed,
    /// or the destination's key may not delete).
    pub deletions_left: Vec<String>,
    /// Why the destination's credentials may not delete (an append-only key), when
    /// deletions were left for that reason.
    pub cannot_delete: Option<String>,
    /// Files at the destination whose lock was extended (`--lock-days`).
    pub locks_extended: u64,
    /// Until when (ms) the files this ship locked or extended stay locked.
    pub locked_until: Option<i64>,
    /// Files not uploaded because their content here no longer matches their name:
    /// damaged here, so the destination's copy is kept.
    pub damaged_here: Vec<String>,
    /// Degraded, not failed: each also counted above.
    pub warnings: Vec<String>,
    /// Names under a repository directory that are not repository files (either side):
    /// neither copied nor deleted.
    pub unsafe_names: Vec<String>,
}

/// Repository files of a store by name (locks and anything else left out), and the
/// names under a repository directory that are not what the layout writes (planted in
/// a bucket, say `data/‛2E‛2E/x`): those are never copied or deleted, only reported.
fn listing_checked(
    b: &dyn Backend,
) -> Result<(BTreeMap<String, ObjectInfo>, Vec<String>), OpsError> {
    let mut files = BTreeMap::new();
    let mut odd = Vec::new();
    for o in b.list("").map_err(RepoError::from)? {
        match FileKind::of(&o.name) {
            None | Some(FileKind::Lock) => {}
            Some(FileKind::Config) => {
                files.insert(o.name.clone(), o);
            }
            Some(kind) if cairn_repo::canonical_id(kind, &o.name).is_some() => {
                files.insert(o.name.clone(), o);
            }
            Some(_) => odd.push(o.name),
        }
    }
    Ok((files, odd))
}

fn listing(b: &dyn Backend) -> Result<BTreeMap<String, ObjectInfo>, OpsError> {
    Ok(listing_checked(b)?.0)
}

fn backend_err(e: BackendError) -> OpsError {
    RepoError::from(e).into()
}

/// Whether `dst` holds `repo` (true), nothing of a repository (false), or another
/// repository (an error naming both, before anything is touched).
fn same_repository(
    repo: &Repository,
    src: &dyn Backend,
    dst: &dyn Backend,
    there: &BTreeMap<String, ObjectInfo>,
) -> Result<bool, OpsError> {
    let ours = repo.config().id.clone();
    if !there.contains_key(CONFIG) {
        // Files but no config: an interrupted first ship of ours writes config after
        // packs, index and keys; anything else is caught by the deletion limits.
        return Ok(false);
    }
    let mine = src.read(CONFIG).map_err(backend_err)?;
    if same_bytes(&mine, dst, &there[CONFIG])? {
        return Ok(true);
    }
    let theirs = dst.read(CONFIG).map_err(backend_err)?;
    match repo.id_in_config(&theirs) {
        Some(id) if id == ours => Ok(true),
        id => Err(OpsError::OtherRepository {
            location: dst.location(),
            ours,
            theirs: id,
            fingerprint: cairn_backend::sha1_hex(&theirs)[..12].to_string(),
        }),
    }
}

/// Whether a file the destination has must be uploaded again: absent, another size,
/// or (for the few small files that are not named by their content) other bytes.
fn differs(
    src: &dyn Backend,
    dst: &dyn Backend,
    o: &ObjectInfo,
    there: Option<&ObjectInfo>,
) -> Result<bool, OpsError> {
    let Some(t) = there else { return Ok(true) };
    if t.size != o.size {
        return Ok(true);
    }
    if matches!(
        FileKind::of(&o.name),
        Some(FileKind::Config | FileKind::Key)
    ) {
        return Ok(!same_bytes(
            &src.read(&o.name).map_err(backend_err)?,
            dst,
            t,
        )?);
    }
    Ok(false)
}

/// Whether the destination's file holds `mine`: by the SHA1 its listing carries (B2:
/// no download, so an unchanged ship stays free of class B calls), else by reading it.
fn same_bytes(mine: &[u8], dst: &dyn Backend, there: &ObjectInfo) -> Result<bool, OpsError> {
    match &there.sha1 {
        Some(sha1) => Ok(cairn_backend::sha1_hex(mine).eq_ignore_ascii_case(sha1)),
        None => Ok(dst.read(&there.name).map_err(backend_err)? == mine),
    }
}

/// The `ship` command: a shared lock on `repo` keeps prune away while its files are
/// copied (as they are, still encrypted), then the ship.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    src: &dyn Backend,
    dst: &dyn Backend,
    opts: &ShipOptions,
    progress: &dyn crate::Progress,
) -> Result<ShipSummary, OpsError> {
    let _session = Session::begin(repo, "ship", Access::Read, LoadIndex::No)?;
    let inherited = lock::inherit(repo, dst, opts);
    let mut s = ship(repo, src, dst, inherited.as_ref().unwrap_or(opts), progress)?;
    if inherited.is_none() && opts.lock.is_none() && repo.config().lock.is_some() {
        s.warnings.push(format!(
            "this repository locks its files (init --lock-days), but {} cannot: the copy there is not locked",
            dst.location()
        ));
    }
    Ok(s)
}

/// Ships `src` (the files of `repo`) to `dst`; the caller holds a shared lock on `repo`. Each file keeps the modification time the
/// source lists for it, as rclone would record it.
pub fn ship(
    repo: &Repository,
    src: &dyn Backend,
    dst: &dyn Backend,
    opts: &ShipOptions,
    progress: &dyn crate::Progress,
) -> Result<ShipSummary, OpsError> {
    let (have, odd_here) = listing_checked(src)?;
    if !have.contains_key(CONFIG) {
        return Err(OpsError::NotARepository(src.location()));
    }
    let mut s = ShipSummary {
        repository_id: repo.config().id.clone(),
        unsafe_names: odd_here,
        ..Default::default()
    };
    let there = open_destination(dst, opts, &mut s)?;
    lock::check_lockable(dst, opts)?;
    s.same_repository = same_repository(repo, src, dst, &there)?;
    if opts.dry_run {
        s.plan.push(if s.same_repository {
            format!(
                "ship to {}, which holds this repository ({})",
                dst.location(),
                s.repository_id
            )
        } else {
            format!("ship to {}, which holds no repository yet", dst.location())
        });
    }
    let phases = plan_uploads(src, dst, &have, &there, &mut s)?;
    let deletions = plan_deletions_kept(repo, dst, &have, &there, opts, &mut s)?;
    if opts.dry_run {
        describe_plan(&phases, &deletions, &mut s);
        return Ok(s);
    }
    upload(src, dst, &phases, opts, progress, &mut s)?;
    let uploaded: HashSet<&str> = phases.values().flatten().map(|o| o.name.as_str()).collect();
    lock::extend(dst, &have, &there, &uploaded, opts, &mut s)?;
    delete(dst, &deletions, &mut s)?;
    if let Some(bin) = &opts.with_binary {
        let data = std::fs::read(bin).map_err(|e| OpsError::io(bin, e))?;
        dst.write("RECOVERY/cairn", &data, &WriteOptions::default())
            .map_err(backend_err)?;
        let text = recovery_text(&dst.location());
        dst.write("RECOVERY.txt", text.as_bytes(), &WriteOptions::default())
            .map_err(backend_err)?;
        s.files_uploaded += 2;
        s.bytes_uploaded += (data.len() + text.len()) as u64;
    }
    if opts.verify {
        let now = listing(dst)?;
        let missing: Vec<&String> = have
            .iter()
            .filter(|(n, o)| now.get(*n).map(|t| t.size) != Some(o.size))
            .map(|(n, _)| n)
            .collect();
        if !missing.is_empty() {
            return Err(OpsError::ShipNotVerified {
                missing: missing.len(),
                location: dst.location(),
                example: missing[0].clone(),
            });
        }
        s.verified = true;
    }
    Ok(s)
}

/// The destination's listing; a destination that does not exist is created with
/// `--create-bucket` only (a typo or an unmounted drive must not get a new repository).
fn open_destination(
    dst: &dyn Backend,
    opts: &ShipOptions,
    s: &mut ShipSummary,
) -> Result<BTreeMap<String, ObjectInfo>, OpsError> {
    let there = if dst.exists().map_err(backend_err)? {
        let (there, odd_there) = listing_checked(dst)?;
        s.unsafe_names.extend(odd_there);
        there
    } else if opts.dry_run {
        s.plan.push(format!(
            "stop: {} does not exist{}",
            dst.location(),
            if opts.create {
                " (it would be created)"
            } else {
                "; a ship creates it only with --create-bucket"
            }
        ));
        BTreeMap::new()
    } else if opts.create {
        dst.create().map_err(backend_err)?;
        BTreeMap::new()
    } else {
        return Err(OpsError::NoDestination(dst.location()));
    };
    Ok(there)
}

/// The files to upload, grouped by their phase in [`FileKind::SHIP_ORDER`]; a file the
/// destination already holds unchanged is skipped.
fn plan_uploads<'a>(
    src: &dyn Backend,
    dst: &dyn Backend,
    have: &'a BTreeMap<String, ObjectInfo>,
    there: &BTreeMap<String, ObjectInfo>,
    s: &mut ShipSummary,
) -> Result<BTreeMap<usize, Vec<&'a ObjectInfo>>, OpsError> {
    let mut phases: BTreeMap<usize, Vec<&ObjectInfo>> = BTreeMap::new();
    for (name, o) in have {
        let Some(kind) = FileKind::of(name) else {
            continue;
        };
        if differs(src, dst, o, there.get(name))? {
            let phase = FileKind::SHIP_ORDER
                .iter()
                .position(|k| *k == kind)
                .unwrap_or(FileKind::SHIP_ORDER.len());
            phases.entry(phase).or_default().push(o);
        } else {
            s.files_skipped += 1;
        }
    }
    Ok(phases)
}

/// The deletions this ship may make: refused outright when the plan looks like the
/// wrong repository, left when the last check found damage, and never a pack or index
/// file the destination may still need.
fn plan_deletions_kept(
    repo: &Repository,
    dst: &dyn Backend,
    have: &BTreeMap<String, ObjectInfo>,
    there: &BTreeMap<String, ObjectInfo>,
    opts: &ShipOptions,
    s: &mut ShipSummary,
) -> Result<Vec<String>, OpsError> {
    let (mut deletions, refusal) = plan_deletions(repo, have, there, opts.allow_deletes)?;
    lock::hold_locked(&mut deletions, there, s);
    // An append-only key deletes nothing, so nothing it could delete by mistake needs
    // refusing: the uploads go ahead and the deletions are left for a stronger key.
    if let Some(why) = dst.delete_refused().filter(|_| !deletions.is_empty()) {
        s.warnings.push(format!(
            "{} deletion(s) left at {}: {why}; a ship with a key that may delete makes them",
            deletions.len(),
            dst.location()
        ));
        s.cannot_delete = Some(why);
        s.deletions_left.append(&mut deletions);
        return Ok(deletions);
    }
    match refusal {
        Some(why) if opts.dry_run => s.plan.push(format!("stop: {why}")),
        Some(why) => return Err(OpsError::ShipDeletesRefused(why)),
        None => {}
    }
    if opts.keep_all && !deletions.is_empty() {
        s.warnings.push(format!(
            "{} deletion(s) left at {}: the last check of this repository found damage",
            deletions.len(),
            dst.location()
        ));
        s.deletions_left.append(&mut deletions);
    } else {
        let (why, kept) = protect_data(repo, &mut deletions)?;
        if let Some(why) = why {
            s.warnings.push(format!(
                "{} index file(s) and pack(s) left at {}: {why}",
                kept.len(),
                dst.location()
            ));
        }
        s.deletions_left.extend(kept);
    }
    s.deletions = deletions.clone();
    Ok(deletions)
}

/// `--dry-run`: what would be uploaded, phase by phase, and deleted.
fn describe_plan(
    phases: &BTreeMap<usize, Vec<&ObjectInfo>>,
    deletions: &[String],
    s: &mut ShipSummary,
) {
    for (p, files) in phases {
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        let what = FileKind::SHIP_ORDER.get(*p).map_or("other", |k| k.dir());
        s.plan.push(format!(
            "upload {} {what} file(s), {bytes} bytes",
            files.len()
        ));
        s.files_uploaded += files.len() as u64;
        s.bytes_uploaded += bytes;
    }
    for name in deletions {
        s.plan
            .push(format!("delete {name} (the source no longer has it)"));
    }
    s.files_deleted = deletions.len() as u64;
}

/// Uploads phase by phase; a phase is complete before the next starts. Files damaged
/// here are not uploaded (they would overwrite a good copy there) but reported.
fn upload(
    src: &dyn Backend,
    dst: &dyn Backend,
    phases: &BTreeMap<usize, Vec<&ObjectInfo>>,
    opts: &ShipOptions,
    progress: &dyn crate::Progress,
    s: &mut ShipSummary,
) -> Result<(), OpsError> {
    progress.start(
        phases.values().map(|p| p.len() as u64).sum(),
        phases.values().flatten().map(|f| f.size).sum(),
    );
    let accept = |name: &str, data: &[u8]| matches_its_name(name, data);
    let retention = opts.lock.map(|l| l.retention(cairn_backend::now_millis()));
    if let Some(r) = retention {
        s.locked_until = Some(r.until_millis);
    }
    let transfer = Transfer::new(src, dst, opts.transfers).checked(&accept);
    for files in phases.values() {
        let items: Vec<Item> = files
            .iter()
            .map(|o| Item {
                from: &o.name,
                to: o.name.clone(),
                size: o.size,
                write: WriteOptions {
                    mtime_millis: o.mtime_millis,
                    retention,
                    ..Default::default()
                },
            })
            .collect();
        // A phase must be complete before the next starts: that is the consistency rule.
        let done = transfer.run(&items, OnError::Stop, progress);
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                progress.finish();
                return Err(backend_err(e));
            }
        };
        s.files_uploaded += done.files;
        s.bytes_uploaded += done.bytes;
        s.damaged_here.extend(done.refused);
    }
    progress.finish();
    if !s.damaged_here.is_empty() {
        s.damaged_here.sort();
        s.warnings.push(format!(
            "{} file(s) not shipped because they are damaged here (content does not match the name), e.g. {}; \
             `cairn repair packs --from {}` can fetch an intact copy",
            s.damaged_here.len(),
            s.damaged_here[0],
            dst.location()
        ));
    }
    Ok(())
}

/// Deletes, in the order planned (snapshots before what they use).
fn delete(dst: &dyn Backend, deletions: &[String], s: &mut ShipSummary) -> Result<(), OpsError> {
    for name in deletions {
        match dst.remove(name) {
            Ok(()) => s.files_deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(backend_err(e)),
        }
    }
    Ok(())
}

/// Whether a repository file's bytes still hash to its name (all but `config` are named
/// by the hash of their stored bytes): damage here must not overwrite a good copy there.
fn matches_its_name(name: &str, data: &[u8]) -> bool {
    match cairn_repo::id_from_name(name) {
        Some(hex) => hex::encode(cairn_crypto::storage_hash(data)) == hex.to_ascii_lowercase(),
        None => true,
    }
}

/// Takes out of `deletions` the index files and packs the destination may still need:
/// every pack this repository's index lists (it may be missing or damaged here), and,
/// when a snapshot here uses a blob no index here lists (the source is damaged), every
/// index file and pack. Returns why, and what was kept back.
fn protect_data(
    repo: &Repository,
    deletions: &mut Vec<String>,
) -> Result<(Option<String>, Vec<String>), OpsError> {
    let data_kinds = |n: &String| matches!(FileKind::of(n), Some(FileKind::Pack | FileKind::Index));
    if !deletions.iter().any(data_kinds) {
        return Ok((None, Vec::new()));
    }
    repo.load_index()?;
    let mut kept = Vec::new();
    if let Some(why) = crate::walk::first_missing_blob(repo, &repo.list_snapshots()?)? {
        deletions.retain(|n| {
            let keep = data_kinds(n);
            if keep {
                kept.push(n.clone());
            }
            !keep
        });
        return Ok((Some(why), kept));
    }
    let indexed: HashSet<String> = repo
        .index()
        .packs()
        .map(|(p, _)| cairn_repo::pack_name(&p))
        .collect();
    deletions.retain(|n| {
        let keep = indexed.contains(n);
        if keep {
            kept.push(n.clone());
        }
        !keep
    });
    let why = (!kept.is_empty()).then(|| {
        "this repository's index lists them, but they are missing or damaged here".to_string()
    });
    Ok((why, kept))
}

/// The destination's files the source no longer has, in [`FileKind::ship_delete_order`],
/// and why they may not be deleted without `--allow-deletes`, if they may not: the limits
/// that keep a mistake from emptying the last copy.
fn plan_deletions(
    repo: &Repository,
    have: &BTreeMap<String, ObjectInfo>,
    there: &BTreeMap<String, ObjectInfo>,
    allow: bool,
) -> Result<(Vec<String>, Option<String>), OpsError> {
    let gone: Vec<(&String, FileKind)> = there
        .keys()
        .filter(|n| !have.contains_key(*n))
        .filter_map(|n| Some((n, FileKind::of(n)?)))
        .filter(|(_, k)| !k.is_record())
        .collect();
    let mut deletions = Vec::with_capacity(gone.len());
    for kind in FileKind::ship_delete_order() {
        deletions.extend(
            gone.iter()
                .filter(|(_, k)| *k == kind)
                .map(|(n, _)| (*n).clone()),
        );
    }
    if deletions.is_empty() || allow {
        return Ok((deletions, None));
    }
    let forgotten: HashSet<String> = repo.forgotten_snapshots()?;
    let unexplained: Vec<&String> = gone
        .iter()
        .filter(|(n, k)| {
            *k == FileKind::Snapshot
                && cairn_repo::id_from_name(n).is_none_or(|id| !forgotten.contains(id))
        })
        .map(|(n, _)| *n)
        .collect();
    if let Some(first) = unexplained.first() {
        let why = format!("it would delete {} snapshot(s) at the destination that this repository never forgot (e.g. {first})", unexplained.len());
        return Ok((deletions, Some(why)));
    }
    let total = there
        .keys()
        .filter(|n| FileKind::of(n).is_some_and(|k| !k.is_record()))
        .count() as u64;
    let why = crate::delete_limit::share_refusal(deletions.len() as u64, total);
    Ok((deletions, why))
}

/// RECOVERY.txt beside a shipped copy: how to get the files back with nothing but the
/// binary next to it, the key and the password, at this copy's real location.
fn recovery_text(location: &str) -> String {
    let location = location.trim_end_matches('/');
    format!(
        "This is a cairn backup repository.\n\
         To recover on a bare machine: download RECOVERY/cairn (a Linux x86-64 binary), make it executable,\n\
         set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY, then run\n  \
         ./cairn -r {location} snapshots\n  \
         ./cairn -r {location} restore latest --target /restore\n\
         with the repository password. Everything in this bucket is encrypted; without the password it cannot be read.\n"
    )
}
