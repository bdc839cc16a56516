//! Loading the index files (in parallel, within a memory budget) and saving new ones.

use super::*;

/// Index files read at once: enough to hide a remote backend's latency; decoding them
/// uses every core.
const LOAD_THREADS: usize = 8;

/// Stored bytes of index files read and decoded at once (see `read_index_files`).
const LOAD_BUDGET: u64 = 32 << 20;

/// Index files newer than a mapped cache are held on the heap beside it until they
/// hold more than this share of its entries (1/16: about 3 bytes a blob); then the
/// cache is written again.
const OVERLAY_SHARE: usize = 16;
/// ...or more than this many entries, whatever the cache's size.
const OVERLAY_MIN: usize = 200_000;

/// Where decoded index files go: the heap index, or a cache file being built.
trait PartSink {
    fn take(&mut self, part: IndexPart) -> std::io::Result<()>;
}

impl PartSink for Index {
    fn take(&mut self, part: IndexPart) -> std::io::Result<()> {
        self.add_part(part);
        Ok(())
    }
}

impl PartSink for CacheBuilder {
    fn take(&mut self, part: IndexPart) -> std::io::Result<()> {
        self.add_part(part)
    }
}

/// What one pass over the index files found.
struct IndexLoad {
    /// Files read and decoded.
    read: Vec<IndexId>,
    /// Every file any of them names as superseded.
    superseded: HashSet<IndexId>,
    errors: Vec<RepoError>,
    /// Why the sink (a cache file) could not take a file, if it could not.
    sink_error: Option<std::io::Error>,
}

impl IndexLoad {
    /// Files read that another file read names as superseded: only known to be
    /// unwanted once that other file is read (after an interrupted replacement).
    fn late_superseded(&self) -> Vec<IndexId> {
        self.superseded
            .iter()
            .filter(|id| self.read.contains(id))
            .copied()
            .collect()
    }
}

impl Repository {
    /// Loads every index file into memory (in parallel), skipping superseded ones.
    /// Fails on the first unreadable index file.
    pub fn load_index(&self) -> Result<(), RepoError> {
        match self.load_index_tolerant()?.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Like [`Repository::load_index`], but skips unreadable index files and returns
    /// their errors, for `check` and `repair`.
    pub fn load_index_tolerant(&self) -> Result<Vec<RepoError>, RepoError> {
        // A prune running beside this command replaces index files: one listed and gone
        // before it was read means a newer complete set is there, so look again.
        for _ in 0..4 {
            let errors = self.load_index_once()?;
            let vanished = errors
                .iter()
                .any(|e| matches!(e, RepoError::Backend(b) if b.is_not_found()));
            if !vanished {
                return Ok(errors);
            }
        }
        self.load_index_once()
    }

    fn load_index_once(&self) -> Result<Vec<RepoError>, RepoError> {
        let ids = self.list_files_sized(FileKind::Index)?;
        if let Some(path) = &self.index_cache {
            match self.load_index_cached(path, &ids)? {
                Ok(errors) => return Ok(errors),
                Err(e) => tracing::debug!(
                    "index cache {}: {e}; loading the index into memory",
                    path.display()
                ),
            }
        }
        // A superseded file turning up late means loading again without it.
        let mut skip = HashSet::new();
        loop {
            let mut index = Index::new();
            let load = self.read_index_files(&ids, &skip, &mut index)?;
            let late = load.late_superseded();
            if late.is_empty() {
                index.finish_loading();
                self.install_index(index, load.read.into_iter().chain(skip).collect());
                return Ok(load.errors);
            }
            skip.extend(late);
        }
    }

    /// Loads the index through the cache file at `path`: maps it if it was built from
    /// exactly the files listed, adds files listed since beside it, or builds it again.
    /// The inner error is the cache's (this command then loads into memory).
    fn load_index_cached(
        &self,
        path: &std::path::Path,
        ids: &[(FileId, u64)],
    ) -> Result<std::io::Result<Vec<RepoError>>, RepoError> {
        let key = self.key.local_mac_key(crate::index::MAC_CONTEXT);
        match MappedIndex::open(path, &key) {
            Ok(m) => {
                if let Some(done) = self.extend_cached(m, path, &key, ids)? {
                    return Ok(done.map(|()| Vec::new()));
                }
            }
            Err(e) => tracing::debug!("index cache {}: {e}; building it", path.display()),
        }
        let mut skip = HashSet::new();
        loop {
            let mut builder = match CacheBuilder::create(path) {
                Ok(b) => b,
                Err(e) => return Ok(Err(e)),
            };
            let load = self.read_index_files(ids, &skip, &mut builder)?;
            if let Some(e) = load.sink_error {
                return Ok(Err(e));
            }
            let late = load.late_superseded();
            if late.is_empty() {
                let files: Vec<IndexId> = load.read.into_iter().chain(skip).collect();
                // A load that met damage is not remembered: the next one looks again.
                let keep = load.errors.is_empty().then_some(path);
                let m = match builder.finish(&files, &key, keep) {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(e)),
                };
                self.install_index(Index::mapped(m), files);
                return Ok(Ok(load.errors));
            }
            skip.extend(late);
        }
    }

    /// Uses the mapped cache `m` if every file it was built from is still listed, with
    /// the files listed since loaded beside it (writing the cache again once they are
    /// many). None if it cannot serve: files were replaced, or one listed since is
    /// unreadable or supersedes others.
    fn extend_cached(
        &self,
        m: MappedIndex,
        path: &std::path::Path,
        key: &[u8; 32],
        ids: &[(FileId, u64)],
    ) -> Result<Option<std::io::Result<()>>, RepoError> {
        let cached: HashSet<IndexId> = m.files().collect();
        let listed: HashSet<IndexId> = ids.iter().map(|(f, _)| IndexId::from(*f)).collect();
        if !cached.is_subset(&listed) {
            return Ok(None);
        }
        let new: Vec<(FileId, u64)> = ids
            .iter()
            .filter(|(f, _)| !cached.contains(&IndexId::from(*f)))
            .copied()
            .collect();
        let mut index = Index::mapped(m);
        let load = self.read_index_files(&new, &HashSet::new(), &mut index)?;
        if !load.superseded.is_empty() || !load.errors.is_empty() {
            return Ok(None);
        }
        index.finish_loading();
        let files: Vec<IndexId> = cached.into_iter().chain(load.read).collect();
        let table = index.len() - index.overlay_len();
        if index.overlay_len() > (table / OVERLAY_SHARE).max(OVERLAY_MIN) {
            let rebuilt = CacheBuilder::create(path).and_then(|mut b| {
                b.add_index(&index)?;
                b.finish(&files, key, Some(path))
            });
            match rebuilt {
                Ok(m) => index = Index::mapped(m),
                Err(e) => tracing::debug!("index cache {}: {e}", path.display()),
            }
        }
        self.install_index(index, files);
        Ok(Some(Ok(())))
    }

    /// Makes `index`, loaded from `files`, the one this command uses.
    fn install_index(&self, index: Index, files: Vec<IndexId>) {
        *self.index.write().unwrap_or_else(unpoison) = index;
        *self.index_files.lock().unwrap_or_else(unpoison) = files;
        if let Some(threads) = self.remote_reads {
            // Two windows per thread: each thread of an I/O pool works its own
            // stretch of the packs, and a file often spans two windows (2 MiB
            // each, so 16 threads hold 64 MiB). One per thread thrashed on
            // 25,000 small files (7.5x the local restore; see read_ahead).
            let sizes = self.index.read().unwrap_or_else(unpoison).packs().collect();
            let ra = crate::read_ahead::ReadAhead::new(threads * 2, sizes);
            *self.read_ahead.write().unwrap_or_else(unpoison) = Some(Arc::new(ra));
        }
    }

    /// Reads, unseals and decodes the index files in `ids` (name, stored size) but those
    /// in `skip` on loading threads, handing each to `sink` as it arrives, so only
    /// the files in flight are held beside the index: at most [`LOAD_BUDGET`] stored
    /// bytes of them (each costs about four times that while it is opened and decoded).
    fn read_index_files(
        &self,
        ids: &[(FileId, u64)],
        skip: &HashSet<IndexId>,
        sink: &mut dyn PartSink,
    ) -> Result<IndexLoad, RepoError> {
        let budget = Budget::new(LOAD_BUDGET);
        let mut load = IndexLoad {
            read: Vec::new(),
            superseded: HashSet::new(),
            errors: Vec::new(),
            sink_error: None,
        };
        let mut errors = Vec::new();
        // A decoded file travels with the budget it holds, given back once it is indexed.
        let read = |(file, size): &(FileId, u64)| {
            let id = IndexId::from(*file);
            if skip.contains(&id) {
                return None;
            }
            let held = budget.take(*size);
            let r = self.load_file(FileKind::Index, file).and_then(|bytes| {
                IndexPart::decode(&bytes)
                    .map_err(|e| RepoError::format(FileKind::Index.file_name(file), e))
            });
            if r.is_err() {
                budget.give(held);
            }
            Some(r.map(|part| (id, part, held)))
        };
        parallel_stream(ids, LOAD_THREADS, read, |i, r| match r {
            Ok((id, part, held)) => {
                load.superseded.extend(part.supersedes().iter().copied());
                load.read.push(id);
                if load.sink_error.is_none() {
                    load.sink_error = sink.take(part).err();
                }
                budget.give(held);
            }
            Err(e) => errors.push((i, e)),
        });
        // The first error in listing order, whatever order the threads finished in.
        errors.sort_by_key(|(i, _)| *i);
        load.errors = errors.into_iter().map(|(_, e)| e).collect();
        Ok(load)
    }

    /// Index files read by the last load (superseded ones included): what a new,
    /// complete index file written by prune or repair replaces.
    pub fn loaded_index_files(&self) -> Vec<IndexId> {
        self.index_files.lock().unwrap_or_else(unpoison).clone()
    }

    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(unpoison)
    }

    /// Writes one index file listing every pack stored since the last one.
    pub fn save_index(&self) -> Result<Option<IndexId>, RepoError> {
        self.index_uploaded()?;
        let packs = {
            let mut w = self.writer.lock().unwrap_or_else(unpoison);
            w.last_index_save = Instant::now();
            std::mem::take(&mut w.unindexed)
        };
        if packs.is_empty() {
            return Ok(None);
        }
        let file = IndexFile {
            marked: Vec::new(),
            supersedes: Vec::new(),
            packs,
        };
        match self.save_file(FileKind::Index, &file.encode()) {
            Ok(id) => Ok(Some(id.into())),
            Err(e) => {
                // Keep the packs for the next attempt rather than forgetting them.
                self.writer
                    .lock()
                    .unwrap_or_else(unpoison)
                    .unindexed
                    .extend(file.packs);
                Err(e)
            }
        }
    }

    /// Saves an index file if `interval` has passed since the last one, so an interrupted
    /// long backup can resume without storing again what it already stored.
    pub fn checkpoint_index(&self, interval: Duration) -> Result<(), RepoError> {
        let due = self
            .writer
            .lock()
            .unwrap_or_else(unpoison)
            .last_index_save
            .elapsed()
            >= interval;
        if due {
            self.save_index()?;
        }
        Ok(())
    }

    // ---- blobs ----

    /// Indexes packs that an interrupted command stored but never listed in an index
    /// (those written after its last checkpoint), so their blobs are reused instead of
    /// stored again. Each pack is read whole and checked against its name first; packs
    /// that fail are left for `check` to report. Returns how many packs were adopted.
    pub fn adopt_unindexed_packs(&self) -> Result<usize, RepoError> {
        let known: HashSet<PackId> = self.index().packs().map(|(id, _)| id).collect();
        let mut adopted = 0;
        for (id, obj) in self.list_packs()? {
            if known.contains(&id) {
                continue;
            }
            let data = match self.load_pack_verified(&id) {
                Ok(d) => d,
                Err(RepoError::Backend(e)) if e.is_not_found() => continue,
                Err(RepoError::Corrupt { .. }) => {
                    tracing::warn!("{}: content does not match its name; not reused", obj.name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let entries = match read_pack_header(&self.key, &obj.name, &data) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("{e}; not reused");
                    continue;
                }
            };
            let size = data.len() as u64;
            let mut index = self.index.write().unwrap_or_else(unpoison);
            for e in &entries {
                index.add_recent(id, size, e);
            }
            drop(index);
            self.writer
                .lock()
                .unwrap_or_else(unpoison)
                .unindexed
                .push(IndexPack {
                    id,
                    size,
                    blobs: entries,
                });
            adopted += 1;
        }
        if adopted > 0 {
            tracing::info!("reusing {adopted} pack(s) stored by an interrupted command");
        }
        Ok(adopted)
    }
}
