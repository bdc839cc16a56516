//! The index: blob ID -> (pack, offset, length).
//!
//! Design decisions:
//! - Entries are 52-byte records (32-byte ID, pack number into a table of packs, offset,
//!   lengths, flags) in one array sorted by ID, found through 65,536 buckets on the first
//!   two ID bytes and a binary search of ~150 entries. No per-entry heap allocation and
//!   no hash table overhead (measured by benches/index_memory.rs).
//! - That array and the pack table live either on the heap or, where the command has a
//!   cache directory, in a memory-mapped file built from the index files (`cache.rs`):
//!   then a backup, restore, check or mount of a repository of 100 million blobs holds
//!   no per-blob heap, only the pages of the file it touches.
//! - Index files newer than the mapped file, and blobs stored by this command once
//!   merged, live beside the array in a small sorted `overlay`; blobs just stored go to
//!   a `recent` map first, so inserts stay O(1).
//! - Loading decodes each index file straight into entries ([`IndexPart`], on the
//!   loading threads) and appends them; there is no intermediate `IndexFile`, which at
//!   10 million blobs would double the memory of the load.

mod cache;
mod sort;

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};
use cairn_format::{BlobId, BlobType, FormatError, IndexId, IndexVisitor, PackEntry, PackId};

pub(crate) use cache::{CacheBuilder, MappedIndex, MAC_CONTEXT};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct Entry {
    id: [u8; 32],
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    /// bit 0: tree blob; bit 1: compressed.
    flags: u8,
    _pad: [u8; 3],
}

impl Entry {
    fn new(pack: u32, e: &PackEntry) -> Entry {
        let flags = u8::from(e.blob_type == BlobType::Tree) | (u8::from(e.compressed) << 1);
        Entry {
            id: e.id.0,
            pack,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
            flags,
            _pad: [0; 3],
        }
    }
}

/// One pack: its ID, stored size, and when prune marked it for deletion
/// ([`NOT_MARKED`] if it did not).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct PackRecord {
    id: [u8; 32],
    size: u64,
    marked: i64,
}

const NOT_MARKED: i64 = i64::MIN;

impl PackRecord {
    fn new(id: PackId, size: u64, marked: Option<i64>) -> PackRecord {
        PackRecord {
            id: id.0,
            size,
            marked: marked.unwrap_or(NOT_MARKED),
        }
    }

    fn marked(&self) -> Option<i64> {
        (self.marked != NOT_MARKED).then_some(self.marked)
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

/// The sorted entries, their bucket table and the packs they number.
enum Table {
    Heap {
        sorted: Vec<Entry>,
        /// `buckets[b]..buckets[b + 1]` is the range of `sorted` whose IDs start with `b`.
        buckets: Vec<u32>,
        packs: Vec<PackRecord>,
    },
    Mapped(MappedIndex),
}

impl Table {
    fn entries(&self) -> &[Entry] {
        match self {
            Table::Heap { sorted, .. } => sorted,
            Table::Mapped(m) => m.entries(),
        }
    }

    fn buckets(&self) -> &[u32] {
        match self {
            Table::Heap { buckets, .. } => buckets,
            Table::Mapped(m) => m.buckets(),
        }
    }

    fn packs(&self) -> &[PackRecord] {
        match self {
            Table::Heap { packs, .. } => packs,
            Table::Mapped(m) => m.packs(),
        }
    }
}

impl Default for Table {
    fn default() -> Table {
        Table::Heap {
            sorted: Vec::new(),
            buckets: Vec::new(),
            packs: Vec::new(),
        }
    }
}

#[derive(Default)]
pub struct Index {
    table: Table,
    /// Packs numbered after the table's: those of index files loaded beside a mapped
    /// table, and those this command stored.
    extra_packs: Vec<PackRecord>,
    /// Entries not in the table, sorted by ID once loading finishes.
    overlay: Vec<Entry>,
    /// The marked packs by ID (few), built when loading finishes. Blobs there are read
    /// as any others but never deduplicated against (see docs/format.md, "Prune in two
    /// phases").
    marked_ids: HashMap<PackId, i64>,
    /// Pack ID -> number, used while loading (to merge repeated packs) and for packs
    /// written by this command; cleared after loading to save ~45 bytes per pack.
    pack_numbers: HashMap<PackId, u32>,
    recent: HashMap<[u8; 32], Entry>,
}

fn bucket_of(id: &[u8; 32]) -> usize {
    (usize::from(id[0]) << 8) | usize::from(id[1])
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// An index over a mapped file; index files it does not hold are added with
    /// [`Index::add_part`] (then [`Index::finish_loading`]).
    pub(crate) fn mapped(m: MappedIndex) -> Index {
        let mut ix = Index {
            table: Table::Mapped(m),
            ..Index::default()
        };
        ix.finish_loading();
        ix
    }

    /// Whether the entries live in a mapped file (the index cache) rather than on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.table, Table::Mapped(_))
    }

    /// Entries held on the heap beside a mapped table (index files newer than it).
    pub fn overlay_len(&self) -> usize {
        self.overlay.len()
    }

    fn pack_number(&mut self, id: PackId, size: u64) -> u32 {
        if let Some(&n) = self.pack_numbers.get(&id) {
            return n;
        }
        let n = (self.table.packs().len() + self.extra_packs.len()) as u32;
        self.extra_packs.push(PackRecord::new(id, size, None));
        self.pack_numbers.insert(id, n);
        n
    }

    fn pack(&self, n: u32) -> &PackRecord {
        let table = self.table.packs();
        match table.get(n as usize) {
            Some(p) => p,
            None => &self.extra_packs[n as usize - table.len()],
        }
    }

    /// Adds every entry of a decoded index file; call [`Index::finish_loading`] after the last.
    pub fn add_part(&mut self, part: IndexPart) {
        let base = self.table.packs().len();
        let numbers: Vec<u32> = part
            .packs
            .iter()
            .map(|&(id, size, marked)| {
                let n = self.pack_number(id, size);
                // A pack any index file marks is marked (the latest mark counts).
                if let (Some(m), Some(p)) = (marked, self.extra_packs.get_mut(n as usize - base)) {
                    p.marked = p.marked().map_or(m, |old| old.max(m));
                }
                n
            })
            .collect();
        // Exact growth: doubling would leave up to twice the final size resident while
        // loading, and growing a large allocation exactly is a cheap remap, not a copy.
        self.overlay.reserve_exact(part.entries.len());
        self.overlay.extend(part.entries.into_iter().map(|mut e| {
            e.pack = numbers[e.pack as usize];
            e
        }));
    }

    pub fn finish_loading(&mut self) {
        match &mut self.table {
            Table::Heap {
                sorted,
                buckets,
                packs,
            } => {
                // Overlay entries number packs from the table's end, where the extra
                // packs now go.
                if sorted.is_empty() {
                    *sorted = std::mem::take(&mut self.overlay);
                } else {
                    sorted.append(&mut self.overlay);
                }
                packs.append(&mut self.extra_packs);
                *buckets = sort::sort_entries(sorted);
                sorted.shrink_to_fit();
                packs.shrink_to_fit();
            }
            Table::Mapped(_) => self.overlay.sort_unstable_by_key(|e| e.id),
        }
        self.overlay.shrink_to_fit();
        self.extra_packs.shrink_to_fit();
        self.pack_numbers = HashMap::new();
        self.marked_ids = self.marked_packs().map(|(id, _, m)| (id, m)).collect();
    }

    /// Records a blob written during this command.
    pub fn add_recent(&mut self, pack: PackId, pack_size: u64, e: &PackEntry) {
        let n = self.pack_number(pack, pack_size);
        self.recent
            .entry(e.id.0)
            .or_insert_with(|| Entry::new(n, e));
    }

    pub fn merge_recent(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        self.overlay.extend(self.recent.drain().map(|(_, e)| e));
        self.finish_loading();
    }

    /// The blob's entry, one in a pack not marked for deletion where there is one.
    fn find(&self, id: &BlobId) -> Option<&Entry> {
        let buckets = self.table.buckets();
        let in_table: &[Entry] = if buckets.is_empty() {
            &[]
        } else {
            let b = bucket_of(&id.0);
            let slice = &self.table.entries()[buckets[b] as usize..buckets[b + 1] as usize];
            // A blob stored twice (repacked, or stored again instead of a marked copy)
            // has neighbours with its ID.
            let lo = slice.partition_point(|e| sort::cmp_in_bucket(&e.id, &id.0).is_lt());
            same_id(&slice[lo..], id)
        };
        let lo = self.overlay.partition_point(|e| e.id < id.0);
        let in_overlay = same_id(&self.overlay[lo..], id);
        let mut any = None;
        for e in in_table.iter().chain(in_overlay) {
            if !self.entry_marked(e) {
                return Some(e);
            }
            any = any.or(Some(e));
        }
        self.recent.get(&id.0).or(any)
    }

    fn entry_marked(&self, e: &Entry) -> bool {
        self.pack(e.pack).marked != NOT_MARKED
    }

    /// Whether the blob can be read from some pack.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    /// Whether the blob is stored in a pack not marked for deletion: what a backup may
    /// deduplicate against. A blob only in marked packs is stored again.
    pub fn stores(&self, id: &BlobId) -> bool {
        self.find(id).is_some_and(|e| !self.entry_marked(e))
    }

    /// When prune marked `pack` for deletion, if it did.
    pub fn marked(&self, pack: &PackId) -> Option<i64> {
        self.marked_ids.get(pack).copied()
    }

    fn pack_records(&self) -> impl Iterator<Item = &PackRecord> + '_ {
        self.table.packs().iter().chain(&self.extra_packs)
    }

    /// Every pack marked for deletion, with its size and when it was marked.
    pub fn marked_packs(&self) -> impl Iterator<Item = (PackId, u64, i64)> + '_ {
        self.pack_records()
            .filter_map(|p| Some((PackId(p.id), p.size, p.marked()?)))
    }

    pub fn get(&self, id: &BlobId) -> Option<IndexedBlob> {
        self.find(id).map(|e| self.to_blob(e))
    }

    fn to_blob(&self, e: &Entry) -> IndexedBlob {
        IndexedBlob {
            pack: PackId(self.pack(e.pack).id),
            entry: PackEntry {
                blob_type: if e.flags & 1 == 1 {
                    BlobType::Tree
                } else {
                    BlobType::Data
                },
                compressed: e.flags & 2 == 2,
                id: BlobId(e.id),
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.table.entries().len() + self.overlay.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.table
            .entries()
            .iter()
            .chain(&self.overlay)
            .chain(self.recent.values())
    }

    /// Every indexed blob (loaded and recent), in no particular order.
    pub fn blobs(&self) -> impl Iterator<Item = IndexedBlob> + '_ {
        self.entries().map(|e| self.to_blob(e))
    }

    /// Where `id` first appears in [`Index::blobs`] order: a number below
    /// [`Index::len`] for bitmaps over the index (prune's used set costs a bit a blob,
    /// not a hashed ID). None if it is not indexed, or only stored by this command.
    pub fn position(&self, id: &BlobId) -> Option<usize> {
        let buckets = self.table.buckets();
        if !buckets.is_empty() {
            let b = bucket_of(&id.0);
            let lo = buckets[b] as usize;
            let slice = &self.table.entries()[lo..buckets[b + 1] as usize];
            let i = slice.partition_point(|e| sort::cmp_in_bucket(&e.id, &id.0).is_lt());
            if slice.get(i).is_some_and(|e| e.id == id.0) {
                return Some(lo + i);
            }
        }
        let i = self.overlay.partition_point(|e| e.id < id.0);
        self.overlay
            .get(i)
            .filter(|e| e.id == id.0)
            .map(|_| self.table.entries().len() + i)
    }

    /// [`Index::blobs`], each with its position and the position where its ID first
    /// appears (see [`Index::position`]); in one pass over the sorted table, so a
    /// bitmap over the index can be filled without a lookup a blob.
    pub fn blobs_with_first(&self) -> impl Iterator<Item = (usize, usize, IndexedBlob)> + '_ {
        let table = self.table.entries();
        let mut run = (0usize, [0u8; 32]);
        let in_table = table.iter().enumerate().map(move |(pos, e)| {
            if pos == 0 || e.id != run.1 {
                run = (pos, e.id);
            }
            (pos, run.0, self.to_blob(e))
        });
        let rest = self
            .overlay
            .iter()
            .chain(self.recent.values())
            .enumerate()
            .map(move |(i, e)| {
                let pos = table.len() + i;
                let first = self.position(&BlobId(e.id)).unwrap_or(pos);
                (pos, first, self.to_blob(e))
            });
        in_table.chain(rest)
    }

    /// The blob at `pos` in [`Index::blobs`] order.
    pub fn blob_at(&self, pos: usize) -> Option<IndexedBlob> {
        let table = self.table.entries();
        let e = match table.get(pos) {
            Some(e) => e,
            None => self.overlay.get(pos - table.len())?,
        };
        Some(self.to_blob(e))
    }

    /// Every pack the index knows, with the size recorded for it. A pack listed by an
    /// index file newer than a mapped table and by the table too appears twice.
    pub fn packs(&self) -> impl Iterator<Item = (PackId, u64)> + '_ {
        self.pack_records().map(|p| (PackId(p.id), p.size))
    }

    /// Heap bytes held by the index, for the memory benchmark (a mapped table is not
    /// heap: its pages belong to the file).
    pub fn heap_bytes(&self) -> usize {
        let (sorted, buckets, packs) = match &self.table {
            Table::Heap {
                sorted,
                buckets,
                packs,
            } => (sorted.capacity(), buckets.capacity(), packs.capacity()),
            Table::Mapped(_) => (0, 0, 0),
        };
        (sorted + self.overlay.capacity()) * std::mem::size_of::<Entry>()
            + buckets * 4
            + (packs + self.extra_packs.capacity()) * std::mem::size_of::<PackRecord>()
            + self.marked_ids.capacity() * (32 + 8 + 8)
            + self.pack_numbers.capacity() * (32 + 4 + 8)
            + self.recent.capacity() * (32 + std::mem::size_of::<Entry>() + 8)
    }

    pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
}

/// The leading run of `sorted` (which starts at or after `id`) with `id`.
fn same_id<'a>(sorted: &'a [Entry], id: &BlobId) -> &'a [Entry] {
    let n = sorted.iter().take_while(|e| e.id == id.0).count();
    &sorted[..n]
}

/// One index file decoded into index entries, on a loading thread; `Entry::pack` is the
/// position in `packs` until [`Index::add_part`] renumbers it.
#[derive(Default)]
pub struct IndexPart {
    supersedes: Vec<IndexId>,
    /// Each pack with its size and, if prune marked it, when.
    packs: Vec<(PackId, u64, Option<i64>)>,
    entries: Vec<Entry>,
}

impl IndexPart {
    pub fn decode(bytes: &[u8]) -> Result<IndexPart, FormatError> {
        let mut part = IndexPart::default();
        cairn_format::visit_index(bytes, &mut part)?;
        Ok(part)
    }

    /// Index files this one replaces.
    pub fn supersedes(&self) -> &[IndexId] {
        &self.supersedes
    }
}

impl IndexVisitor for IndexPart {
    fn supersedes(&mut self, id: IndexId) {
        self.supersedes.push(id);
    }

    fn pack(&mut self, id: PackId, size: u64, blobs: usize) {
        self.packs.push((id, size, None));
        self.entries.reserve(blobs);
    }

    fn marked_pack(&mut self, id: PackId, size: u64, blobs: usize, marked_millis: i64) {
        self.packs.push((id, size, Some(marked_millis)));
        self.entries.reserve(blobs);
    }

    fn blob(&mut self, e: PackEntry) {
        let pack = self.packs.len().saturating_sub(1) as u32;
        self.entries.push(Entry::new(pack, &e));
    }
}

#[cfg(test)]
mod tests {
    use super::sort::sort_entries;
    use super::*;
    use cairn_format::{IndexFile, IndexPack};

    fn pe(id: u8, off: u32) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Tree,
            compressed: true,
            id: BlobId([id; 32]),
            offset: off,
            length: 10,
            raw_length: 20,
        }
    }

    #[test]
    fn entry_is_compact() {
        const { assert!(Index::ENTRY_BYTES <= 64) };
        assert_eq!(Index::ENTRY_BYTES, 52);
    }

    proptest::proptest! {
           /// The radix partition and bucket sorts give the order of a plain sort of the
           /// IDs, for IDs that share prefixes of every length, and every entry is found.
           #[test]
           fn loading_sorts_like_a_plain_sort(seeds in proptest::collection::vec((proptest::prelude::any::<[u8; 32]>(), 0usize..33), 0..3000)) {
               let base = [7u8; 32];
               let ids: Vec<[u8; 32]> = seeds.iter().map(|(r, shared)| {
                   let mut id = *r;
                   id[..*shared].copy_from_slice(&base[..*shared]);
                   id
               }).collect();
               let f = IndexFile {
    marked: Vec::new(),
                   supersedes: vec![],
                   packs: ids.chunks(7).enumerate().map(|(i, c)| IndexPack {
                       id: PackId([i as u8; 32]),
                       size: 1000,
                       blobs: c.iter().map(|id| PackEntry { id: BlobId(*id), ..pe(0, 0) }).collect(),
                   }).collect(),
               };
               let mut ix = Index::new();
               ix.add_part(IndexPart::decode(&f.encode()).unwrap());
               ix.finish_loading();
               let got: Vec<[u8; 32]> = ix.blobs().map(|b| b.entry.id.0).collect();
               let mut want = ids.clone();
               want.sort_unstable();
               proptest::prop_assert_eq!(&got, &want);
               for id in &ids {
                   proptest::prop_assert!(ix.contains(&BlobId(*id)));
                   // Positions for bitmaps: where the ID first appears in `blobs()`.
                   let first = got.iter().position(|g| g == id);
                   proptest::prop_assert_eq!(ix.position(&BlobId(*id)), first);
               }
               for (pos, first, b) in ix.blobs_with_first() {
                   proptest::prop_assert_eq!(Some(first), ix.position(&b.entry.id));
                   proptest::prop_assert_eq!(ix.blob_at(pos), Some(b));
               }
           }
       }

    /// Above the threading threshold the groups are sorted on several threads.
    #[test]
    fn large_loads_sort_across_threads() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut v: Vec<Entry> = (0..200_000)
            .map(|_| {
                let mut id = [0u8; 32];
                for c in id.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    c.copy_from_slice(&x.to_le_bytes());
                }
                Entry {
                    id,
                    pack: 0,
                    offset: 0,
                    length: 0,
                    raw_length: 0,
                    flags: 0,
                    _pad: [0; 3],
                }
            })
            .collect();
        let buckets = sort_entries(&mut v);
        assert!(v.windows(2).all(|w| w[0].id <= w[1].id));
        assert_eq!(
            (buckets[0], buckets[1 << BUCKET_BITS] as usize),
            (0, v.len())
        );
        for b in 0..1usize << BUCKET_BITS {
            assert!(
                v[buckets[b] as usize..buckets[b + 1] as usize]
                    .iter()
                    .all(|e| bucket_of(&e.id) == b),
                "bucket {b}"
            );
        }
    }

    #[test]
    fn lookup_loaded_and_recent() {
        let mut ix = Index::new();
        let f = IndexFile {
            marked: Vec::new(),
            supersedes: vec![],
            packs: vec![IndexPack {
                id: PackId([9; 32]),
                size: 100,
                blobs: vec![pe(3, 0), pe(1, 10)],
            }],
        };
        ix.add_part(IndexPart::decode(&f.encode()).unwrap());
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
