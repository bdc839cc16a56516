//! The index cache: the sorted index kept in a file on this machine and mapped into
//! memory, so opening a repository of 100 million blobs costs neither 5 GiB of heap
//! nor decoding every index file again.
//!
//! Layout (docs/format.md, "The index cache"), little-endian:
//! - header, 4,096 bytes: magic `CAIRNIXC`, version (u32), entry size (u32), entries,
//!   packs and index files (u64 each), MAC (32 bytes), zeros;
//! - the entries (52 bytes each, sorted by blob ID), padded to 8 bytes;
//! - the bucket table (65,537 u32: where each two-byte ID prefix starts), padded to 8;
//! - the packs (ID, size, marked-at; 48 bytes each);
//! - the IDs of the index files it was built from, sorted.
//!
//! The MAC is keyed BLAKE3, with a key derived from the repository's master key, over
//! the header fields before it and everything after the header: a file written for
//! another repository, damaged on disk, or planted by someone without the key is
//! rebuilt, never used. The file is only ever replaced whole (written under a temporary
//! name and renamed), so a process that has it mapped keeps reading the old one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_format::{IndexId, PackId};
use memmap2::{Mmap, MmapMut};

use super::{sort, Entry, Index, IndexPart, PackRecord, BUCKET_BITS};

const MAGIC: &[u8; 8] = b"CAIRNIXC";
const VERSION: u32 = 1;
const HEADER: usize = 4096;
/// Where the MAC sits in the header; the fields before it are covered by it.
const MAC_AT: usize = 40;
const BUCKETS: usize = (1 << BUCKET_BITS) + 1;
/// Derives the MAC key from the master key (see `MasterKey::local_mac_key`).
pub(crate) const MAC_CONTEXT: &str = "cairn 2026-12 index cache v1";
/// Temporary files of a build this old were left by a killed process.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Byte ranges of the parts of a cache file.
#[derive(Clone, Debug)]
struct Layout {
    entries: Range<usize>,
    buckets: Range<usize>,
    packs: Range<usize>,
    files: Range<usize>,
}

impl Layout {
    /// The layout for these counts; None if it would not fit in memory (a damaged or
    /// hostile header must not make arithmetic overflow).
    fn new(entries: u64, packs: u64, files: u64) -> Option<Layout> {
        let span = |at: usize, n: u64, size: usize| -> Option<Range<usize>> {
            let len = usize::try_from(n).ok()?.checked_mul(size)?;
            Some(at..at.checked_add(len)?)
        };
        let pad8 = |x: usize| x.checked_add(7).map(|y| y & !7);
        let entries = span(HEADER, entries, std::mem::size_of::<Entry>())?;
        let buckets = span(pad8(entries.end)?, BUCKETS as u64, 4)?;
        let packs = span(pad8(buckets.end)?, packs, std::mem::size_of::<PackRecord>())?;
        let files = span(packs.end, files, 32)?;
        Some(Layout {
            entries,
            buckets,
            packs,
            files,
        })
    }
}

/// A verified cache file, mapped read-only.
pub(crate) struct MappedIndex {
    map: Mmap,
    layout: Layout,
}

impl MappedIndex {
    /// Maps and verifies the cache file at `path`. Any failure is a reason to rebuild,
    /// given as text for the debug log.
    pub(crate) fn open(path: &Path, key: &[u8; 32]) -> Result<MappedIndex, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: the file is only ever replaced by rename, never changed in place, so
        // the mapped bytes do not change under us (see the module documentation).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| e.to_string())?;
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err("not an index cache".into());
        }
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().unwrap_or([0; 8]));
        if u32_at(8) != VERSION || u32_at(12) as usize != std::mem::size_of::<Entry>() {
            return Err("written by another version".into());
        }
        let layout = Layout::new(u64_at(16), u64_at(24), u64_at(32)).ok_or("impossible sizes")?;
        if layout.files.end != map.len() {
            return Err("truncated or overlong".into());
        }
        if mac(key, &map) != map[MAC_AT..MAC_AT + 32] {
            return Err("does not verify (another repository, or damaged)".into());
        }
        let m = MappedIndex { map, layout };
        // Cheap checks of what lookups index with, beyond the MAC.
        let b = m.buckets();
        let sorted = b.windows(2).all(|w| w[0] <= w[1]);
        if b[0] != 0 || b[BUCKETS - 1] as usize != m.entries().len() || !sorted {
            return Err("bucket table out of order".into());
        }
        Ok(m)
    }

    fn part<T: bytemuck::Pod>(&self, r: &Range<usize>) -> &[T] {
        bytemuck::try_cast_slice(&self.map[r.clone()]).unwrap_or(&[])
    }

    pub(super) fn entries(&self) -> &[Entry] {
        self.part(&self.layout.entries)
    }

    pub(super) fn buckets(&self) -> &[u32] {
        self.part(&self.layout.buckets)
    }

    pub(super) fn packs(&self) -> &[PackRecord] {
        self.part(&self.layout.packs)
    }

    /// The index files the cache was built from.
    pub(crate) fn files(&self) -> impl Iterator<Item = IndexId> + '_ {
        self.map[self.layout.files.clone()]
            .chunks_exact(32)
            .map(|c| IndexId(c.try_into().unwrap_or([0; 32])))
    }
}

/// Keyed BLAKE3 of a cache file's header fields and body.
fn mac(key: &[u8; 32], file: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&file[..MAC_AT]);
    h.update_rayon(&file[HEADER..]);
    *h.finalize().as_bytes()
}

/// Writes a cache file from index parts (or a loaded index) as they come, so building
/// it holds no per-blob heap: entries go straight to the file, and are sorted there.
pub(crate) struct CacheBuilder {
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    packs: Vec<PackRecord>,
    numbers: HashMap<PackId, u32>,
    entries: u64,
}

impl CacheBuilder {
    /// Starts a build of the cache file `path`, under a temporary name beside it.
    pub(crate) fn create(path: &Path) -> std::io::Result<CacheBuilder> {
        let dir = path.parent().unwrap_or(Path::new("."));
        // Only its owner may enter the cache (it lists pack names and blob sizes).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        remove_stale_temps(dir, path);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(
            "{name}.tmp-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut out = BufWriter::with_capacity(1 << 20, private_file(&tmp)?);
        out.write_all(&[0u8; HEADER])?;
        Ok(CacheBuilder {
            tmp,
            out: Some(out),
            packs: Vec::new(),
            numbers: HashMap::new(),
            entries: 0,
        })
    }

    fn number(&mut self, p: &PackRecord) -> u32 {
        if let Some(&n) = self.numbers.get(&PackId(p.id)) {
            let old = &mut self.packs[n as usize];
            // A pack any index file marks is marked (the latest mark counts).
            old.marked = old.marked.max(p.marked);
            return n;
        }
        let n = self.packs.len() as u32;
        self.packs.push(*p);
        self.numbers.insert(PackId(p.id), n);
        n
    }

    fn write(&mut self, e: &Entry) -> std::io::Result<()> {
        self.entries += 1;
        match &mut self.out {
            Some(out) => out.write_all(bytemuck::bytes_of(e)),
            None => Ok(()),
        }
    }

    pub(crate) fn add_part(&mut self, part: IndexPart) -> std::io::Result<()> {
        let numbers: Vec<u32> = part
            .packs
            .iter()
            .map(|&(id, size, marked)| self.number(&PackRecord::new(id, size, marked)))
            .collect();
        for mut e in part.entries {
            e.pack = numbers[e.pack as usize];
            self.write(&e)?;
        }
        Ok(())
    }

    /// Adds every entry of `index` (its mapped table and what is loaded beside it).
    pub(crate) fn add_index(&mut self, index: &Index) -> std::io::Result<()> {
        let numbers: Vec<u32> = index.pack_records().map(|p| self.number(p)).collect();
        for e in index.entries() {
            let mut e = *e;
            e.pack = numbers[e.pack as usize];
            self.write(&e)?;
        }
        Ok(())
    }

    /// Sorts and seals the file; it becomes the cache at `keep_as` (or is removed once
    /// mapped, for a load that found damage and must not be remembered).
    pub(crate) fn finish(
        mut self,
        files: &[IndexId],
        key: &[u8; 32],
        keep_as: Option<&Path>,
    ) -> std::io::Result<MappedIndex> {
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let layout = Layout::new(self.entries, self.packs.len() as u64, files.len() as u64)
            .ok_or_else(|| invalid("index too large to map"))?;
        let mut out = self.out.take().ok_or_else(|| invalid("finished twice"))?;
        out.seek(SeekFrom::Start(layout.buckets.start as u64))?;
        out.write_all(&vec![0u8; layout.packs.start - layout.buckets.start])?;
        out.write_all(bytemuck::cast_slice(&self.packs))?;
        let mut ids: Vec<[u8; 32]> = files.iter().map(|f| f.0).collect();
        ids.sort_unstable();
        out.write_all(ids.as_flattened())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        // SAFETY: the temporary file is this process's own until it is renamed.
        let mut map = unsafe { MmapMut::map_mut(&file) }?;
        let entries: &mut [Entry] = bytemuck::try_cast_slice_mut(&mut map[layout.entries.clone()])
            .map_err(|_| invalid("misaligned entries"))?;
        let buckets = sort::sort_entries(entries);
        map[layout.buckets.clone()].copy_from_slice(bytemuck::cast_slice(&buckets));
        map[..8].copy_from_slice(MAGIC);
        map[8..12].copy_from_slice(&VERSION.to_le_bytes());
        map[12..16].copy_from_slice(&(std::mem::size_of::<Entry>() as u32).to_le_bytes());
        map[16..24].copy_from_slice(&self.entries.to_le_bytes());
        map[24..32].copy_from_slice(&(self.packs.len() as u64).to_le_bytes());
        map[32..40].copy_from_slice(&(files.len() as u64).to_le_bytes());
        let m = mac(key, &map);
        map[MAC_AT..MAC_AT + 32].copy_from_slice(&m);
        let map = map.make_read_only()?;
        match keep_as {
            Some(path) => std::fs::rename(&self.tmp, path)?,
            None => std::fs::remove_file(&self.tmp)?,
        }
        Ok(MappedIndex { map, layout })
    }
}

impl Drop for CacheBuilder {
    fn drop(&mut self) {
        // Renamed or removed by `finish`; left here only by a build that failed.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Removes temporary files of builds killed long ago beside `path`.
fn remove_stale_temps(dir: &Path, path: &Path) {
    let Some(name) = path
        .file_name()
        .map(|n| format!("{}.tmp-", n.to_string_lossy()))
    else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP);
        if old && e.file_name().to_string_lossy().starts_with(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
