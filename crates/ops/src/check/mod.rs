//! `check`: is everything a snapshot needs present and intact?
//!
//! Structure first (cheap, reads only metadata): keys, index files, the pack listing
//! against the index, and every snapshot's trees, with every referenced blob looked up.
//! Then, if asked, data: whole packs read back and every blob authenticated and hashed.
//! Every problem found is mapped back to the snapshots and file paths it damages, so
//! the user knows what is at stake, not just which pack is bad.

use std::collections::{HashMap, HashSet};

use cairn_format::{BlobId, NodeType, PackId};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::{pack_name, Repository, SnapshotRef};

use crate::walk::{walk_tree, Visit};
use crate::OpsError;

mod read_back;
use read_back::read_packs_back;

/// Which packs `--read-data*` reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// Subset `n` of `m` (1-based): packs whose first ID byte modulo `m` is `n - 1`.
    /// Deterministic, so `1/12` .. `12/12` over a year reads every pack once.
    Subset(u32, u32),
    /// A fraction (0..=1) of the packs: never-verified, then least recently verified first.
    Fraction(f64),
    /// Packs up to this many bytes, in the same order.
    Bytes(u64),
}

impl ReadData {
    /// Parses `N/M`, `P%` or a SIZE (K/M/G/T suffixes).
    pub fn parse(s: &str) -> Result<ReadData, String> {
        let bad =
            || format!("invalid --read-data-subset {s:?}: expected N/M, P% or a size like 500M");
        if let Some((n, m)) = s.split_once('/') {
            let (n, m): (u32, u32) = (
                n.trim().parse().map_err(|_| bad())?,
                m.trim().parse().map_err(|_| bad())?,
            );
            if n == 0 || m == 0 || n > m {
                return Err(bad());
            }
            return Ok(ReadData::Subset(n, m));
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) || p.is_nan() {
                return Err(bad());
            }
            return Ok(ReadData::Fraction(p / 100.0));
        }
        crate::size::parse_size(s)
            .map(ReadData::Bytes)
            .map_err(|_| bad())
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckSummary {
    /// Problems; any makes `check` fail.
    pub errors: Vec<String>,
    /// Worth knowing, not wrong (e.g. packs no index lists, left by an interruption).
    pub info: Vec<String>,
    /// Snapshots and paths damaged by the errors, as "snapshot-short-id: /path".
    pub affected: Vec<String>,
    pub snapshots_checked: u64,
    pub trees_checked: u64,
    pub packs_checked: u64,
    pub blobs_checked: u64,
    pub bytes_read: u64,
    /// Temporary files of writes that never finished (not an error: prune removes them).
    pub temp_files: u64,
    pub temp_bytes: u64,
    /// Packs read back damaged or missing, by name.
    pub damaged_packs: Vec<String>,
    /// Packs the store did not hand over (network failures after every retry): not
    /// known to be damaged, so `repair` is not suggested for them.
    pub unreadable_packs: Vec<String>,
    /// Per-blob detail of the damaged packs (`-v`).
    pub details: Vec<String>,
    /// Packs under Object Lock now (a B2 copy shipped with `--lock-days`), and when the
    /// first of those locks ends (ms since the epoch).
    pub packs_locked: u64,
    pub first_lock_ends: Option<i64>,
    /// Packs prune marked for deletion and has not deleted yet (see "Prune in two
    /// phases" in docs/format.md).
    pub packs_marked: u64,
}

/// The `check` command: a shared lock, then the check (which loads the index itself,
/// reporting damaged index files rather than stopping at them).
pub fn run(
    repo: &std::sync::Arc<Repository>,
    read: ReadData,
    location: &str,
    progress: &dyn crate::Progress,
) -> Result<CheckSummary, OpsError> {
    let _session = Session::begin(repo, "check", Access::Read, LoadIndex::No)?;
    check_with_progress(repo, read, location, progress)
}

/// Checks the repository; packs read back intact are recorded as verified at
/// `location` (rolling verification), and a subset reads the least recently verified.
pub fn check(repo: &Repository, read: ReadData, location: &str) -> Result<CheckSummary, OpsError> {
    check_with_progress(repo, read, location, &crate::NoProgress)
}

/// [`check`], reporting the packs it reads back (the long part) as files and bytes.
pub fn check_with_progress(
    repo: &Repository,
    read: ReadData,
    location: &str,
    progress: &dyn crate::Progress,
) -> Result<CheckSummary, OpsError> {
    let mut s = CheckSummary::default();
    // Snapshots before the index: a backup running beside this check stores its index
    // files before its snapshot, so every snapshot listed here finds its blobs.
    let listed = repo.list_snapshots();
    check_records(repo, &mut s)?;
    let packs = Packs::load(repo, &mut s)?;
    let mut bad_blobs = check_packs_present(repo, &packs, &mut s);
    check_temp_files(repo, &mut s);
    note_unindexed_packs(&packs, &mut s);
    let snapshots = check_snapshots(repo, listed, &mut s);

    // Data: read packs back.
    let log = match read {
        ReadData::None => None,
        _ => Some(crate::verified::VerificationLog::load(repo)?),
    };
    let chosen = choose_packs(read, log.as_ref(), location, &packs);
    let (intact, damaged_lines) =
        read_packs_back(repo, &chosen, &packs, &mut s, &mut bad_blobs, progress);
    if let Some(log) = log {
        // Best effort: a read-only repository can still be checked.
        if let Err(e) = log.record(
            repo,
            location,
            &intact,
            chrono::Utc::now().timestamp_millis(),
        ) {
            s.info
                .push(format!("could not record which packs were verified: {e}"));
        }
    }
    if !bad_blobs.is_empty() {
        mark_what_is_at_stake(repo, &snapshots, &bad_blobs, damaged_lines, &mut s);
    }
    Ok(s)
}

/// Keys, locks, forgotten records and index files: what other commands read and then
/// ignore when damaged is reported here.
fn check_records(repo: &Repository, s: &mut CheckSummary) -> Result<(), OpsError> {
    if let Err(e) = repo.list_keys() {
        s.errors.push(format!("keys: {e}"));
    }
    for (name, lock) in repo.list_locks()? {
        if let Err(e) = lock {
            s.errors.push(format!(
                "{name}: unreadable lock ({e}); `cairn unlock --remove-all` removes it"
            ));
        }
    }
    for (name, e) in repo.forgotten_records()?.1 {
        s.errors
            .push(format!("{name}: unreadable forgotten record ({e})"));
    }
    for e in repo.load_index_tolerant()? {
        s.errors.push(format!("index: {e}"));
    }

    Ok(())
}

/// The packs the index lists and those stored, with the blobs the index places in each.
struct Packs {
    listed: HashMap<PackId, u64>,
    /// The end of each pack's Object Lock, where it has one still running.
    locked: HashMap<PackId, i64>,
    /// The index's entries by pack (positions: 4 bytes a blob, not 48).
    blobs: crate::pack_blobs::PackBlobs,
    sizes: HashMap<PackId, u64>,
}

impl Packs {
    fn load(repo: &Repository, s: &mut CheckSummary) -> Result<Packs, OpsError> {
        let packs = repo.list_packs()?;
        let now = cairn_backend::now_millis();
        let locked: HashMap<PackId, i64> = packs
            .iter()
            .filter_map(|(id, o)| o.retain_until_millis.map(|u| (*id, u)))
            .filter(|(_, u)| *u > now)
            .collect();
        s.packs_locked = locked.len() as u64;
        s.packs_marked = repo.index().marked_packs().count() as u64;
        s.first_lock_ends = locked.values().copied().min();
        let listed: HashMap<PackId, u64> = packs.into_iter().map(|(id, o)| (id, o.size)).collect();
        let blobs = crate::pack_blobs::PackBlobs::build(&repo.index())?;
        let sizes: HashMap<PackId, u64> = repo.index().packs().collect();
        Ok(Packs {
            listed,
            locked,
            blobs,
            sizes,
        })
    }
}

/// Every indexed pack present with its recorded size; returns the blobs of those that
/// are not.
fn check_packs_present(repo: &Repository, p: &Packs, s: &mut CheckSummary) -> HashSet<BlobId> {
    let mut bad_blobs: HashSet<BlobId> = HashSet::new();
    for (pack, size) in &p.sizes {
        let problem = match p.listed.get(pack) {
            // A prune beside this check deleted a pack it had marked: nothing uses it.
            None if repo.index().marked(pack).is_some() => {
                s.info.push(format!(
                    "{}: marked for deletion, and deleted by a prune meanwhile",
                    pack_name(pack)
                ));
                continue;
            }
            None => "missing (listed in the index)".to_string(),
            Some(actual) if actual != size => {
                format!("size {actual} differs from the index ({size})")
            }
            Some(_) => continue,
        };
        s.errors.push(format!("{}: {problem}", pack_name(pack)));
        bad_blobs.extend(
            p.blobs
                .pack_entries(&repo.index(), pack)
                .iter()
                .map(|e| e.id),
        );
    }
    bad_blobs
}

/// Stored packs no index lists: worth knowing, not wrong.
fn note_unindexed_packs(p: &Packs, s: &mut CheckSummary) {
    for pack in p.listed.keys().filter(|k| !p.sizes.contains_key(k)) {
        s.info.push(match p.locked.get(pack) {
            Some(until) => format!(
                "{}: no longer used, kept under Object Lock until {}; a prune after that removes it",
                pack_name(pack),
                cairn_backend::show_millis(*until)
            ),
            None => format!(
                "{}: not in any index (left by an interrupted command; prune removes it)",
                pack_name(pack)
            ),
        });
    }
}

/// Temporary files of writes that never finished: not an error, prune removes them.
fn check_temp_files(repo: &Repository, s: &mut CheckSummary) {
    match repo.backend().list_partial("") {
        Ok(partial) if !partial.is_empty() => {
            s.temp_files = partial.len() as u64;
            s.temp_bytes = partial.iter().map(|o| o.size).sum();
            s.info.push(format!(
                "{} temporary file(s) of writes that never finished ({} bytes, e.g. {}); prune removes them",
                s.temp_files, s.temp_bytes, partial[0].name
            ));
        }
        Ok(_) => {}
        Err(e) => s.errors.push(format!("listing temporary files: {e}")),
    }
}

/// Every snapshot's trees readable and every blob they reference indexed; returns the
/// snapshots read.
fn check_snapshots(
    repo: &Repository,
    listed: Result<Vec<SnapshotRef>, cairn_repo::RepoError>,
    s: &mut CheckSummary,
) -> Vec<SnapshotRef> {
    let snapshots = match listed {
        Ok(v) => v,
        Err(e) => {
            s.errors.push(format!("snapshots: {e}"));
            return Vec::new();
        }
    };
    let mut trees_seen: HashSet<BlobId> = HashSet::new();
    for snap in &snapshots {
        s.snapshots_checked += 1;
        let short = snap.id.short();
        if !trees_seen.insert(snap.snapshot.tree) {
            continue;
        }
        if let Err(e) = repo.load_tree(&snap.snapshot.tree) {
            s.errors.push(format!(
                "snapshot {short}: root tree {}: {e}",
                snap.snapshot.tree.short()
            ));
            continue;
        }
        s.trees_checked += 1;
        let mut errors = Vec::new();
        let r = walk_tree(repo, &snap.snapshot.tree, b"/", &mut |path, node| {
            let p = String::from_utf8_lossy(path);
            for id in &node.content {
                if !repo.index().contains(id) {
                    errors.push(format!(
                        "snapshot {short}: {p}: data blob {} is missing",
                        id.short()
                    ));
                }
            }
            if node.node_type == NodeType::Dir {
                match node.subtree {
                    Some(t) if !trees_seen.insert(t) => return Ok(Visit::Skip),
                    Some(t) => match repo.load_tree(&t) {
                        Ok(_) => s.trees_checked += 1,
                        Err(e) => {
                            errors.push(format!("snapshot {short}: {p}: tree {}: {e}", t.short()));
                            return Ok(Visit::Skip);
                        }
                    },
                    None => errors.push(format!("snapshot {short}: {p}: directory without a tree")),
                }
            }
            Ok(Visit::Descend)
        });
        if let Err(e) = r {
            errors.push(format!("snapshot {short}: {e}"));
        }
        s.errors.extend(errors);
    }
    snapshots
}

/// The packs `--read-data` and its variants ask to read back, the least recently
/// verified first where only part is read.
fn choose_packs(
    read: ReadData,
    log: Option<&crate::verified::VerificationLog>,
    location: &str,
    p: &Packs,
) -> Vec<PackId> {
    let mut packs: Vec<PackId> = p
        .sizes
        .keys()
        .copied()
        .filter(|k| p.listed.contains_key(k))
        .collect();
    packs.sort();
    match (read, log) {
        (ReadData::None, _) | (_, None) => Vec::new(),
        (ReadData::All, _) => packs,
        (ReadData::Subset(n, m), _) => packs
            .into_iter()
            .filter(|k| u32::from(k.0[0]) % m == n - 1)
            .collect(),
        (ReadData::Fraction(f), Some(log)) => {
            let mut packs = log.order(location, packs);
            let k = ((packs.len() as f64) * f).ceil() as usize;
            packs.truncate(k.min(packs.len()));
            packs
        }
        (ReadData::Bytes(limit), Some(log)) => {
            let packs = log.order(location, packs);
            let mut total = 0;
            packs
                .into_iter()
                .take_while(|k| {
                    total += p.sizes[k];
                    total <= limit || total == p.sizes[k]
                })
                .collect()
        }
    }
}

/// Adds to each damaged pack's line what is at stake (blobs, snapshots, paths) and
/// lists the affected paths, from one walk for all packs.
fn mark_what_is_at_stake(
    repo: &Repository,
    snapshots: &[SnapshotRef],
    bad_blobs: &HashSet<BlobId>,
    damaged_lines: Vec<(usize, HashSet<BlobId>, usize)>,
    s: &mut CheckSummary,
) {
    let hits = affected_files(repo, snapshots, bad_blobs);
    for (i, bad, total) in damaged_lines {
        let at_stake: Vec<&String> = hits
            .iter()
            .filter(|(_, h)| h.iter().any(|b| bad.contains(b)))
            .map(|(line, _)| line)
            .collect();
        let snaps: HashSet<&str> = at_stake
            .iter()
            .filter_map(|a| a.split(':').next())
            .collect();
        s.errors[i].push_str(&format!(
            "; {} of its {total} blobs damaged, used by {} snapshot(s) and {} path(s)",
            bad.len(),
            snaps.len(),
            at_stake.len()
        ));
    }
    s.affected = hits.into_iter().map(|(line, _)| line).collect();
}

/// Every snapshot path whose content or tree includes a bad blob, with the bad blobs it
/// holds (so one walk tells each damaged pack what it puts at stake).
fn affected_files(
    repo: &Repository,
    snapshots: &[cairn_repo::SnapshotRef],
    bad: &HashSet<BlobId>,
) -> Vec<(String, Vec<BlobId>)> {
    let mut out = Vec::new();
    for snap in snapshots {
        let short = snap.id.short();
        if bad.contains(&snap.snapshot.tree) {
            out.push((
                format!("snapshot {short}: / (root tree)"),
                vec![snap.snapshot.tree],
            ));
            continue;
        }
        let _ = walk_tree(repo, &snap.snapshot.tree, b"/", &mut |path, node| {
            let hits: Vec<BlobId> = node
                .content
                .iter()
                .chain(node.subtree.as_ref())
                .filter(|id| bad.contains(*id))
                .copied()
                .collect();
            if !hits.is_empty() {
                out.push((
                    format!("snapshot {short}: {}", String::from_utf8_lossy(path)),
                    hits,
                ));
            }
            Ok(if node.subtree.is_some_and(|t| bad.contains(&t)) {
                Visit::Skip
            } else {
                Visit::Descend
            })
        });
    }
    out
}
