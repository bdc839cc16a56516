//! The in-memory index: blob ID -> (pack, offset, length).
//!
//! Design decisions:
//! - Entries live in one sorted `Vec` of 52-byte records (32-byte ID, pack number into a
//!   side table of pack IDs, offset, lengths, flags) and are found by binary search. No
//!   per-entry heap allocation and no hash table overhead: 52 bytes per blob, under the
//!   64-byte budget (measured by benches/index_memory.rs).
//! - Blobs added during a command go to a small `recent` map and are merged into the
//!   sorted vector in one pass by [`Index::merge_recent`], so inserts stay O(1).

use std::collections::HashMap;

use cairn_format::{BlobId, BlobType, IndexFile, PackEntry, PackId};

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Entry {
    id: [u8; 32],
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    /// bit 0: tree blob; bit 1: compressed.
    flags: u8,
}

impl Entry {
    fn new(pack: u32, e: &PackEntry) -> Entry {
        let flags = u8::from(e.blob_type == BlobType::Tree) | (u8::from(e.compressed) << 1);
        Entry { id: e.id.0, pack, offset: e.offset, length: e.length, raw_length: e.raw_length, flags }
    }
}

/// Where one blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedBlob {
    pub pack: PackId,
    pub entry: PackEntry,
}

/// Entries are bucketed by the first 16 bits of their ID: a lookup binary-searches
/// ~150 entries instead of 10 million (a 256 KiB table, whatever the index size).
const BUCKET_BITS: u32 = 16;

#[derive(Default)]
pub struct Index {
    packs: Vec<PackId>,
    pack_sizes: Vec<u64>,
    /// Pack ID -> number, used while loading (to merge repeated packs) and for packs
    /// written by this command; cleared after loading to save ~45 bytes per pack.
    pack_numbers: HashMap<PackId, u32>,
    sorted: Vec<Entry>,
    /// `buckets[b]..buckets[b + 1]` is the range of `sorted` whose IDs start with `b`.
    buckets: Vec<u32>,
    recent: HashMap<[u8; 32], Entry>,
}

fn bucket_of(id: &[u8; 32]) -> usize {
    (usize::from(id[0]) << 8) | usize::from(id[1])
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    fn pack_number(&mut self, id: PackId, size: u64) -> u32 {
        if let Some(&n) = self.pack_numbers.get(&id) {
            return n;
        }
        let n = self.packs.len() as u32;
        self.packs.push(id);
        self.pack_sizes.push(size);
        self.pack_numbers.insert(id, n);
        n
    }

    /// Adds every entry of a loaded index file; call [`Index::finish_loading`] after the last.
    pub fn add_file(&mut self, f: &IndexFile) {
        let total: usize = f.packs.iter().map(|p| p.blobs.len()).sum();
        self.sorted.reserve(total);
        for p in &f.packs {
            let n = self.pack_number(p.id, p.size);
            for e in &p.blobs {
                self.sorted.push(Entry::new(n, e));
            }
        }
    }

    pub fn finish_loading(&mut self) {
        self.sorted.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        self.sorted.shrink_to_fit();
        let mut buckets = vec![0u32; (1 << BUCKET_BITS) + 1];
        for e in &self.sorted {
            buckets[bucket_of(&e.id) + 1] += 1;
        }
        for i in 1..buckets.len() {
            buckets[i] += buckets[i - 1];
        }
        self.buckets = buckets;
        self.pack_numbers = HashMap::new();
        self.packs.shrink_to_fit();
        self.pack_sizes.shrink_to_fit();
    }

    /// Records a blob written during this command.
    pub fn add_recent(&mut self, pack: PackId, pack_size: u64, e: &PackEntry) {
        let n = self.pack_number(pack, pack_size);
        self.recent.entry(e.id.0).or_insert_with(|| Entry::new(n, e));
    }

    pub fn merge_recent(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        self.sorted.extend(self.recent.drain().map(|(_, e)| e));
        self.finish_loading();
    }

    fn find(&self, id: &BlobId) -> Option<&Entry> {
        if !self.buckets.is_empty() {
            let b = bucket_of(&id.0);
            let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
            let slice = &self.sorted[lo..hi];
            if let Ok(i) = slice.binary_search_by(|e| e.id.cmp(&id.0)) {
                return Some(&slice[i]);
            }
        }
        self.recent.get(&id.0)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    pub fn get(&self, id: &BlobId) -> Option<IndexedBlob> {
        self.find(id).map(|e| self.to_blob(e))
    }

    fn to_blob(&self, e: &Entry) -> IndexedBlob {
        IndexedBlob {
            pack: self.packs[e.pack as usize],
            entry: PackEntry {
                blob_type: if e.flags & 1 == 1 { BlobType::Tree } else { BlobType::Data },
                compressed: e.flags & 2 == 2,
                id: BlobId(e.id),
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every indexed blob (loaded and recent), in no particular order.
    pub fn blobs(&self) -> impl Iterator<Item = IndexedBlob> + '_ {
        self.sorted.iter().chain(self.recent.values()).map(|e| self.to_blob(e))
    }

    /// Every pack the index knows, with the size recorded for it.
    pub fn packs(&self) -> impl Iterator<Item = (PackId, u64)> + '_ {
        self.packs.iter().copied().zip(self.pack_sizes.iter().copied())
    }

    /// Heap bytes held by the index, for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        self.sorted.capacity() * std::mem::size_of::<Entry>()
            + self.buckets.capacity() * 4
            + self.packs.capacity() * 32
            + self.pack_sizes.capacity() * 8
            + self.pack_numbers.capacity() * (32 + 4 + 8)
            + self.recent.capacity() * (32 + std::mem::size_of::<Entry>() + 8)
    }

    pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::IndexPack;

    fn pe(id: u8, off: u32) -> PackEntry {
        PackEntry { blob_type: BlobType::Tree, compressed: true, id: BlobId([id; 32]), offset: off, length: 10, raw_length: 20 }
    }

    #[test]
    fn entry_is_compact() {
        assert!(Index::ENTRY_BYTES <= 64);
        assert_eq!(Index::ENTRY_BYTES, 52);
    }

    #[test]
    fn lookup_loaded_and_recent() {
        let mut ix = Index::new();
        ix.add_file(&IndexFile {
            supersedes: vec![],
            packs: vec![IndexPack { id: PackId([9; 32]), size: 100, blobs: vec![pe(3, 0), pe(1, 10)] }],
        });
        ix.finish_loading();
        ix.add_recent(PackId([8; 32]), 50, &pe(2, 0));
        let b = ix.get(&BlobId([1; 32])).unwrap();
        assert_eq!(b.pack, PackId([9; 32]));
        assert_eq!(b.entry, pe(1, 10));
        assert!(ix.contains(&BlobId([2; 32])));
        assert!(!ix.contains(&BlobId([4; 32])));
        ix.merge_recent();
        assert_eq!(ix.get(&BlobId([2; 32])).unwrap().pack, PackId([8; 32]));
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.packs().count(), 2);
    }
}
