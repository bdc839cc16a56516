//! The index's entries grouped by pack, at 4 bytes a blob.
//!
//! Check and prune work pack by pack, but the index is sorted by blob ID; holding each
//! pack's entries would cost 48 bytes a blob (5 GiB at 100 million). Instead every
//! index position is kept, grouped by pack, and a pack's entries are read from the
//! index (mapped, where there is a cache) when it is its turn.

use std::collections::HashMap;

use cairn_format::{PackEntry, PackId};
use cairn_repo::Index;

use crate::OpsError;

pub struct PackBlobs {
    positions: Vec<u32>,
    /// Each pack's (start, count) in `positions`.
    ranges: HashMap<PackId, (usize, usize)>,
}

impl PackBlobs {
    /// Groups the index's entries by pack: a count of each pack's entries, then a pass
    /// placing each position (a counting sort). The index must hold nothing stored by
    /// this command that was not merged (such entries have no position).
    pub fn build(index: &Index) -> Result<PackBlobs, OpsError> {
        if index.len() > u32::MAX as usize {
            return Err(OpsError::Invalid(format!(
                "{} blobs: at most {} per repository",
                index.len(),
                u32::MAX
            )));
        }
        let mut ranges: HashMap<PackId, (usize, usize)> = HashMap::new();
        for b in index.blobs() {
            ranges.entry(b.pack).or_insert((0, 0)).1 += 1;
        }
        let mut at = 0;
        for r in ranges.values_mut() {
            let n = r.1;
            *r = (at, 0);
            at += n;
        }
        let mut positions = vec![0u32; at];
        // Positions are the order of `blobs()` (see `Index::position`).
        for (pos, b) in index.blobs().enumerate() {
            if let Some((start, filled)) = ranges.get_mut(&b.pack) {
                if let Some(slot) = positions.get_mut(*start + *filled) {
                    *slot = pos as u32;
                    *filled += 1;
                }
            }
        }
        Ok(PackBlobs { positions, ranges })
    }

    /// How many entries the index lists for `pack`.
    pub fn count(&self, pack: &PackId) -> usize {
        self.ranges.get(pack).map_or(0, |r| r.1)
    }

    /// The entries of `pack` with their index positions, in pack order.
    pub fn entries(&self, index: &Index, pack: &PackId) -> Vec<(usize, PackEntry)> {
        let Some(&(start, n)) = self.ranges.get(pack) else {
            return Vec::new();
        };
        let mut v: Vec<(usize, PackEntry)> = self.positions[start..start + n]
            .iter()
            .filter_map(|&p| Some((p as usize, index.blob_at(p as usize)?.entry)))
            .collect();
        v.sort_by_key(|(_, e)| e.offset);
        v
    }

    /// [`PackBlobs::entries`] without the positions.
    pub fn pack_entries(&self, index: &Index, pack: &PackId) -> Vec<PackEntry> {
        self.entries(index, pack)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}
