//! What the kept snapshots use of each pack, in memory that grows by bits a blob.
//!
//! A repository of 100 million blobs must be prunable on the machine that backs it up.
//! So the used set is a bitmap over the index's positions ([`Index::position`]: where
//! an ID first appears), not a set of IDs; which copy of a blob stored twice counts as
//! the used one is a second bitmap; packs carry counts, not their entries. The entries
//! of a pack are fetched from the index when they are needed, through
//! [`crate::pack_blobs::PackBlobs`] (4 bytes a blob), built only to execute.

use std::collections::{HashMap, HashSet};

use cairn_format::{BlobId, PackId, SnapshotId};
use cairn_repo::Repository;

use super::PruneOptions;
use crate::walk::{walk_tree, Visit};
use crate::OpsError;

/// One bit per index position.
pub(super) struct Bitmap(Vec<u64>);

impl Bitmap {
    fn new(bits: usize) -> Bitmap {
        Bitmap(vec![0; bits.div_ceil(64)])
    }

    pub(super) fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Sets bit `i`; returns whether it was set already.
    fn test_and_set(&mut self, i: usize) -> bool {
        let was = self.get(i);
        self.0[i / 64] |= 1 << (i % 64);
        was
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// How much of one pack the kept snapshots use.
pub(super) struct PackUse {
    pub size: u64,
    /// Blobs counted as used here (a blob stored twice counts in one pack only).
    pub used: u64,
    pub unused_bytes: u64,
}

/// Every indexed pack's use, and which entries are the used copies.
pub(super) struct Usage {
    pub packs: HashMap<PackId, PackUse>,
    /// By index position: the entry that counts as its blob's used copy.
    pub claimed: Bitmap,
}

/// Lists the snapshots, loads the index, and counts what each pack holds that the
/// kept snapshots use. Returns it with every snapshot listed (those `opts` ignores
/// too: a snapshot saved later is one not in this set).
pub(super) fn pack_uses(
    repo: &Repository,
    opts: &PruneOptions,
) -> Result<(Usage, HashSet<SnapshotId>), OpsError> {
    // Snapshots before the index: a backup beside this prune stores its index files
    // before its snapshot, so every snapshot listed here finds its blobs.
    let all = repo.list_snapshots()?;
    repo.load_index()?;
    let listed = all.iter().map(|s| s.id).collect();
    let mut snapshots = all;
    snapshots.retain(|s| !opts.ignore_snapshots.contains(&s.id));
    let mut used = used_positions(repo, &snapshots)?;
    let index = repo.index();
    let mut packs: HashMap<PackId, PackUse> = index
        .packs()
        .map(|(id, size)| {
            let u = PackUse {
                size,
                used: 0,
                unused_bytes: 0,
            };
            (id, u)
        })
        .collect();
    let mut claimed = Bitmap::new(index.len());
    // Packs not marked first: a blob also in a marked pack counts where it stays, so
    // the marked pack can go.
    for marked in [false, true] {
        for (pos, first, b) in index.blobs_with_first() {
            if index.marked(&b.pack).is_some() != marked {
                continue;
            }
            let Some(u) = packs.get_mut(&b.pack) else {
                continue;
            };
            if used.get(first) {
                used.clear(first);
                claimed.test_and_set(pos);
                u.used += 1;
            } else {
                u.unused_bytes += u64::from(b.entry.length);
            }
        }
    }
    Ok((Usage { packs, claimed }, listed))
}

/// The index positions of every blob the snapshots use. A data blob the index does
/// not list means the repository needs repair first; a missing tree fails the walk.
fn used_positions(
    repo: &Repository,
    snapshots: &[cairn_repo::SnapshotRef],
) -> Result<Bitmap, OpsError> {
    let mut used = Bitmap::new(repo.index().len());
    let mut missing: Option<BlobId> = None;
    for s in snapshots {
        let root = repo.index().position(&s.snapshot.tree);
        if root.is_some_and(|p| used.test_and_set(p)) {
            continue;
        }
        walk_tree(repo, &s.snapshot.tree, b"/", &mut |_, node| {
            let index = repo.index();
            for id in &node.content {
                match index.position(id) {
                    Some(p) => {
                        used.test_and_set(p);
                    }
                    None => missing = missing.or(Some(*id)),
                }
            }
            match node.subtree.and_then(|t| index.position(&t)) {
                Some(p) if used.test_and_set(p) => Ok(Visit::Skip),
                _ => Ok(Visit::Descend),
            }
        })
        .map_err(|e| OpsError::Invalid(format!("snapshot {}: {e}", s.id.short())))?;
    }
    match missing {
        Some(id) => Err(OpsError::NeedsRepair {
            problem: format!(
                "blob {} is used by a snapshot but missing from the index",
                id.short()
            ),
            advice: "`cairn check` and `cairn repair index`".into(),
        }),
        None => Ok(used),
    }
}
