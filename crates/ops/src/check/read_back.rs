//! Reading packs back (`--read-data`): every blob opened, so the check knows which
//! ones a damaged pack hurts.

use std::collections::HashSet;

use cairn_format::{BlobId, PackEntry, PackId};
use cairn_repo::{pack_name, read_pack_header, Repository};

use super::{CheckSummary, Packs};

/// Reads `chosen` back and records what it finds in `s`; returns the intact packs and,
/// per damaged pack, (its line in `s.errors`, its damaged blobs, its blob count).
#[allow(clippy::type_complexity)]
pub(super) fn read_packs_back(
    repo: &Repository,
    chosen: &[PackId],
    p: &Packs,
    s: &mut CheckSummary,
    bad_blobs: &mut HashSet<BlobId>,
    progress: &dyn crate::Progress,
) -> (Vec<PackId>, Vec<(usize, HashSet<BlobId>, usize)>) {
    let mut intact = Vec::new();
    // (index of its line in `errors`, its damaged blobs, its blob count) per damaged pack.
    let mut damaged_lines: Vec<(usize, HashSet<BlobId>, usize)> = Vec::new();
    progress.start(chosen.len() as u64, chosen.iter().map(|k| p.sizes[k]).sum());
    // Packs are read on every core (two at a time per core keeps a disk or a
    // connection busy while the other is verified), results taken in pack order.
    // Across a network more packs are in flight (at most 8 whole packs in memory).
    let results: Vec<_> = crate::in_io_pool(repo.io_threads().min(MAX_PACKS_IN_FLIGHT), || {
        use rayon::prelude::*;
        chosen
            .par_iter()
            .map(|pack| {
                let expected = p.blobs.pack_entries(&repo.index(), pack);
                progress.current(std::path::Path::new(&pack_name(pack)));
                let r = read_pack(repo, pack, &expected);
                progress.file_done(p.sizes[pack]);
                r
            })
            .collect()
    });
    progress.finish();
    for (pack, result) in chosen.iter().zip(results) {
        match result {
            Ok((blobs, bytes)) => {
                intact.push(*pack);
                s.packs_checked += 1;
                s.blobs_checked += blobs;
                s.bytes_read += bytes;
            }
            Err(PackProblems {
                bytes,
                lines: problems,
                bad,
                unreadable,
            }) => {
                s.packs_checked += 1;
                s.bytes_read += bytes;
                // One line per damaged pack (what is at stake is added below, from one
                // walk for all packs); the per-blob detail goes to `details`.
                if !bad.is_empty() {
                    damaged_lines.push((
                        s.errors.len(),
                        bad.iter().copied().collect(),
                        p.blobs.count(pack),
                    ));
                }
                s.errors.push(problems.first().cloned().unwrap_or_default());
                if unreadable {
                    s.unreadable_packs.push(pack_name(pack));
                } else {
                    s.damaged_packs.push(pack_name(pack));
                }
                s.details.extend(problems.into_iter().skip(1));
                bad_blobs.extend(bad);
            }
        }
    }
    (intact, damaged_lines)
}

/// Whole packs read at once by `--read-data` across a network.
const MAX_PACKS_IN_FLIGHT: usize = 8;

/// What went wrong with one pack.
struct PackProblems {
    /// Bytes read of it.
    bytes: u64,
    /// The line for `errors` first, then details.
    lines: Vec<String>,
    /// Its blobs known or taken to be damaged.
    bad: Vec<BlobId>,
    /// The store did not hand it over: nothing is known of its blobs, none is blamed.
    unreadable: bool,
}

impl PackProblems {
    fn damaged(bytes: u64, lines: Vec<String>, bad: Vec<BlobId>) -> PackProblems {
        PackProblems {
            bytes,
            lines,
            bad,
            unreadable: false,
        }
    }
}

/// Reads one pack whole: name hash, header, then every blob against the index.
/// Tries a pack read failed on the network twice more, after a pause: the backend
/// has retried already, but a check that calls a good pack damaged because a link
/// flickered for half a minute sends the user to `repair` for nothing.
fn read_whole_pack(repo: &Repository, name: &str) -> Result<Vec<u8>, cairn_backend::BackendError> {
    let mut tries = 0;
    loop {
        match repo.backend().read(name) {
            Err(e) if e.is_retryable() && tries < 2 => {
                tries += 1;
                tracing::info!("{e}; reading the pack again");
                std::thread::sleep(std::time::Duration::from_secs(tries));
            }
            r => return r,
        }
    }
}

fn read_pack(
    repo: &Repository,
    pack: &PackId,
    expected: &[PackEntry],
) -> Result<(u64, u64), PackProblems> {
    let name = pack_name(pack);
    let all_bad = || expected.iter().map(|e| e.id).collect::<Vec<_>>();
    let data = match read_whole_pack(repo, &name) {
        Ok(d) => d,
        // The network failed, not the pack: nothing is known about its blobs, so none
        // is reported damaged (and `repair` is not suggested); the run still fails.
        Err(e) if e.is_retryable() => {
            return Err(PackProblems {
                bytes: 0,
                lines: vec![format!(
                    "{name}: could not be read ({e}); run check again when the store answers"
                )],
                bad: Vec::new(),
                unreadable: true,
            })
        }
        Err(e) => {
            return Err(PackProblems::damaged(
                0,
                vec![format!("{name}: {e}")],
                all_bad(),
            ))
        }
    };
    let bytes = data.len() as u64;
    if !cairn_repo::pack_matches_name(pack, &data) {
        // The name no longer matches: some bytes changed. Find which blobs are hurt.
        let mut problems = vec![format!(
            "{name}: content does not match its name (hash mismatch)"
        )];
        let bad = check_blobs(repo, &name, &data, expected, &mut problems);
        return Err(PackProblems::damaged(
            bytes,
            problems,
            if bad.is_empty() { all_bad() } else { bad },
        ));
    }
    let header = match read_pack_header(repo.key(), &name, &data) {
        Ok(h) => h,
        Err(e) => {
            return Err(PackProblems::damaged(
                bytes,
                vec![format!("{e}")],
                all_bad(),
            ))
        }
    };
    let mut problems = Vec::new();
    let in_header: HashSet<(BlobId, u32)> = header.iter().map(|e| (e.id, e.offset)).collect();
    for e in expected {
        if !in_header.contains(&(e.id, e.offset)) {
            problems.push(format!(
                "{name}: index lists blob {} that the pack header does not",
                e.id.short()
            ));
        }
    }
    let bad = check_blobs(repo, &name, &data, expected, &mut problems);
    if problems.is_empty() {
        Ok((expected.len() as u64, bytes))
    } else {
        Err(PackProblems::damaged(bytes, problems, bad))
    }
}

fn check_blobs(
    repo: &Repository,
    name: &str,
    data: &[u8],
    expected: &[PackEntry],
    problems: &mut Vec<String>,
) -> Vec<BlobId> {
    let mut bad = Vec::new();
    for e in expected {
        let (start, end) = (e.offset as usize, e.offset as usize + e.length as usize);
        let r = match data.get(start..end) {
            Some(sealed) => repo.open_blob(name, e, sealed).map(|_| ()),
            None => Err(cairn_repo::RepoError::Invalid(format!(
                "blob {} lies outside {name}",
                e.id.short()
            ))),
        };
        if let Err(err) = r {
            problems.push(format!("{err}"));
            bad.push(e.id);
        }
    }
    bad
}
