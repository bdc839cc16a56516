//! [`Repository`]: open or create one, and load and save what it holds.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use cairn_backend::{Backend, ErrorKind, WriteOptions};
use cairn_crypto::{MasterKey, NONCE_LEN, TAG_LEN};
use cairn_format::{
    frame, unframe, BlobId, BlobType, CompressionMode, Config, IndexFile, IndexId, IndexPack,
    KeyId, PackEntry, PackId, Snapshot, SnapshotId, Tree, FORMAT_VERSION,
};

use crate::layout::{id_from_name, pack_name, FileKind, CONFIG, CONFIG_PURPOSE, DATA_DIR};
use crate::packer::{read_pack_header, FinishedPack, PackerPool};
use crate::{keys, unpoison, Index, IndexPart, KeyInfo, RepoError};

/// Settings chosen at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub compression: CompressionMode,
    pub pack_size_mib: u32,
    pub chunker_min_size: u32,
    pub chunker_avg_size: u32,
    pub chunker_max_size: u32,
}

/// 16 MiB: large enough that a 1 TB repository is ~60,000 files (cheap to list, one B2
/// class A call each), small enough that a pack in memory per writer thread stays cheap
/// and a damaged pack loses little. See docs/format.md.
pub const DEFAULT_PACK_SIZE_MIB: u32 = 16;

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            compression: CompressionMode::Auto,
            pack_size_mib: DEFAULT_PACK_SIZE_MIB,
            chunker_min_size: 512 * 1024,
            chunker_avg_size: 1024 * 1024,
            chunker_max_size: 8 * 1024 * 1024,
        }
    }
}

/// What this command added to the repository.
#[derive(Debug, Default)]
pub struct SaveStats {
    pub data_blobs: AtomicU64,
    pub tree_blobs: AtomicU64,
    /// Plaintext bytes of new blobs.
    pub data_added: AtomicU64,
    /// Stored bytes of new blobs (compressed and sealed).
    pub data_added_packed: AtomicU64,
}

/// A snapshot with its id.
#[derive(Clone, Debug)]
pub struct SnapshotRef {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
}

struct Writer {
    /// Blobs accepted this command but not yet in the index (still packing or uploading).
    in_flight: HashSet<BlobId>,
    /// Packs stored but not yet listed by any index file.
    unindexed: Vec<IndexPack>,
    /// Every pack this command stored, checked for before a snapshot is written.
    stored: Vec<PackId>,
    last_index_save: Instant,
}

pub struct Repository {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    key_id: KeyId,
    config: Config,
    compression: Option<i32>,
    dry_run: bool,
    index: RwLock<Index>,
    index_files: Mutex<Vec<IndexId>>,
    /// Where sealed tree blobs of a remote repository are kept locally, if anywhere.
    tree_cache: Option<std::path::PathBuf>,
    /// Concurrent pack uploads, if enabled; otherwise the thread that fills a pack writes it.
    uploader: Option<crate::uploader::Uploader>,
    /// Windowed blob reads across a network (see `read_ahead`), and how many threads
    /// I/O-bound loops (restore, check's pack reads) use; built when the index is loaded.
    remote_reads: Option<usize>,
    read_ahead: RwLock<Option<Arc<crate::read_ahead::ReadAhead>>>,
    /// The lock this process holds on the repository, checked before an index or a
    /// snapshot is written.
    pub(crate) held_lock: Mutex<Option<crate::lock::LockState>>,
    pub(crate) lock_timing: crate::lock::LockTiming,
    writer: Mutex<Writer>,
    data_packers: PackerPool,
    tree_packers: PackerPool,
    stats: SaveStats,
}

fn crypto(object: &str, e: cairn_crypto::CryptoError) -> RepoError {
    RepoError::corrupt(object, e)
}

impl Repository {
    fn assemble(
        backend: Arc<dyn Backend>,
        key: MasterKey,
        key_id: KeyId,
        config: Config,
    ) -> Repository {
        let compression = config.compression.zstd_level();
        let target = config.pack_size_mib as usize * 1024 * 1024;
        Repository {
            backend,
            key,
            key_id,
            config,
            compression,
            dry_run: false,
            index: RwLock::new(Index::new()),
            index_files: Mutex::new(Vec::new()),
            tree_cache: None,
            uploader: None,
            remote_reads: None,
            read_ahead: RwLock::new(None),
            held_lock: Mutex::new(None),
            lock_timing: crate::lock::LockTiming::default(),
            writer: Mutex::new(Writer {
                in_flight: HashSet::new(),
                unindexed: Vec::new(),
                stored: Vec::new(),
                last_index_save: Instant::now(),
            }),
            data_packers: PackerPool::new(BlobType::Data, target, true),
            tree_packers: PackerPool::new(BlobType::Tree, target, false),
            stats: SaveStats::default(),
        }
    }

    /// Creates a new repository: the first key file, then the config. The config is
    /// written last, so an interrupted init leaves no half repository behind.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
    ) -> Result<Repository, RepoError> {
        if opts.pack_size_mib == 0 || opts.pack_size_mib > 1024 {
            return Err(RepoError::Invalid(format!(
                "pack size must be 1..1024 MiB, not {}",
                opts.pack_size_mib
            )));
        }
        // Create the container (directory, bucket) first: on B2 a missing bucket is an
        // error for every other command, but init makes it.
        backend.create()?;
        match backend.stat(CONFIG) {
            Ok(_) => return Err(RepoError::AlreadyExists(backend.location())),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let key = MasterKey::generate().map_err(|e| RepoError::Invalid(e.to_string()))?;
        let mut rid = [0u8; 16];
        cairn_crypto::fill_random(&mut rid).map_err(|e| RepoError::Invalid(e.to_string()))?;
        let config = Config {
            version: FORMAT_VERSION,
            id: hex::encode(rid),
            chunker_min_size: opts.chunker_min_size,
            chunker_avg_size: opts.chunker_avg_size,
            chunker_max_size: opts.chunker_max_size,
            compression: opts.compression,
            pack_size_mib: opts.pack_size_mib,
        };
        let key_id = keys::add_key(backend.as_ref(), &key, password)?;
        let sealed = key
            .seal(CONFIG_PURPOSE, &frame(&config.encode(), None))
            .map_err(|e| crypto(CONFIG, e))?;
        // Only one of two racing inits creates the config; the other takes back its key
        // file, so the location holds one repository and only its keys.
        if let Err(e) = backend.write_new(CONFIG, &sealed) {
            let _ = backend.remove(&FileKind::Key.name(&key_id.to_hex()));
            return Err(match e.kind {
                ErrorKind::AlreadyExists => RepoError::AlreadyExists(backend.location()),
                _ => e.into(),
            });
        }
        Ok(Repository::assemble(backend, key, key_id, config))
    }

    /// Opens an existing repository with a password. Writes nothing.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository, RepoError> {
        Repository::open_preferring(backend, password, None)
    }

    /// [`Repository::open`], trying the key file `preferred` first (the one that opened
    /// this location last time), so key files planted in `keys/` cost nothing.
    pub fn open_preferring(
        backend: Arc<dyn Backend>,
        password: &[u8],
        preferred: Option<KeyId>,
    ) -> Result<Repository, RepoError> {
        match backend.stat(CONFIG) {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(RepoError::NoRepository(backend.location()))
            }
            Err(e) => return Err(e.into()),
        }
        let sealed = backend.read(CONFIG)?;
        // A key whose master key cannot open the config belongs to another repository
        // (left by an init that lost a race, or planted): the next key is tried.
        let (key, key_id) =
            keys::open_master(backend.as_ref(), password, preferred, &|k: &MasterKey| {
                k.open(CONFIG_PURPOSE, &sealed).is_ok()
            })?;
        let plain = key
            .open(CONFIG_PURPOSE, &sealed)
            .map_err(|e| crypto(CONFIG, e))?;
        let config = Config::decode(&unframe(&plain).map_err(|e| RepoError::format(CONFIG, e))?)
            .map_err(|e| RepoError::format(CONFIG, e))?;
        Ok(Repository::assemble(backend, key, key_id, config))
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The repository ID inside another location's sealed `config`, if this repository's
    /// master key opens it; `None` if it does not (another repository, or damage). This
    /// is how a copy proves it holds the same repository before it deletes anything.
    pub fn id_in_config(&self, sealed: &[u8]) -> Option<String> {
        let plain = self.key.open(CONFIG_PURPOSE, sealed).ok()?;
        Config::decode(&unframe(&plain).ok()?).ok().map(|c| c.id)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn stats(&self) -> &SaveStats {
        &self.stats
    }

    /// Overrides the repository's compression for blobs this command writes.
    pub fn set_compression(&mut self, mode: CompressionMode) {
        self.compression = mode.zstd_level();
    }

    /// Uploads packs on `transfers` threads (for remote backends, where an upload waits
    /// on the network, not the disk). Ignored in dry-run mode.
    pub fn set_transfers(&mut self, transfers: usize) {
        if !self.dry_run && transfers > 1 {
            self.uploader = Some(crate::uploader::Uploader::new(
                Arc::clone(&self.backend),
                transfers,
            ));
        }
    }

    /// For a repository across a network: blobs are read a window of their pack at a time
    /// and I/O-bound loops run on `threads` threads, so many fetches are in flight.
    pub fn set_remote_reads(&mut self, threads: usize) {
        self.remote_reads = Some(threads.max(1));
    }

    /// Threads for loops that wait on storage rather than the CPU: the cores for a local
    /// repository, more across a network (see [`Repository::set_remote_reads`]).
    pub fn io_threads(&self) -> usize {
        self.remote_reads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Keeps tree blobs (sealed, as stored) under `dir`, so browsing a remote repository
    /// downloads each tree once.
    pub fn set_tree_cache(&mut self, dir: std::path::PathBuf) {
        self.tree_cache = Some(dir);
    }

    /// In dry-run mode nothing is written; saves only compute IDs and statistics.
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    /// Shorter lock refreshes and patience, so a test sees a failing refresh stop the
    /// writer in seconds; everyone else keeps the defaults (5 and 25 minutes).
    pub fn set_lock_timing(&mut self, timing: crate::lock::LockTiming) {
        self.lock_timing = timing;
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn add_key(&self, password: &[u8]) -> Result<KeyId, RepoError> {
        keys::add_key(self.backend.as_ref(), &self.key, password)
    }

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, RepoError> {
        keys::list_keys(self.backend.as_ref())
    }

    /// Removes a key file. Refuses the key this session opened with (use `key passwd`)
    /// and the last key, since without a key the repository can never be opened again.
    pub fn remove_key(&self, id: &KeyId) -> Result<(), RepoError> {
        if *id == self.key_id {
            return Err(RepoError::Invalid(format!(
                "key {} is the one in use; remove it with another password, or change it with `key passwd`",
                id.short()
            )));
        }
        let keys = self.list_keys()?;
        if !keys.iter().any(|k| k.id == *id) {
            return Err(RepoError::Invalid(format!("no key {}", id.short())));
        }
        // Counted under the exclusive lock, and the key in use must still be there:
        // removing another key when this session's own went meanwhile would leave none.
        if keys.len() < 2 || !keys.iter().any(|k| k.id == self.key_id) {
            return Err(RepoError::Invalid("refusing to remove the last key".into()));
        }
        self.backend.remove(&FileKind::Key.name(&id.to_hex()))?;
        Ok(())
    }

    /// Resolves a key id prefix.
    pub fn find_key(&self, prefix: &str) -> Result<KeyId, RepoError> {
        let p = prefix.to_ascii_lowercase();
        let matches: Vec<KeyId> = self
            .list_keys()?
            .into_iter()
            .map(|k| k.id)
            .filter(|id| id.to_hex().starts_with(&p))
            .collect();
        match matches.as_slice() {
            [one] if !p.is_empty() => Ok(*one),
            [] => Err(RepoError::Invalid(format!("no key matches {prefix:?}"))),
            _ => Err(RepoError::Invalid(format!(
                "key prefix {prefix:?} is ambiguous"
            ))),
        }
    }

    /// Replaces the password this session opened with: the new key file is stored
    /// before the old one is removed, so an interruption leaves two working keys.
    pub fn change_password(&self, new_password: &[u8]) -> Result<KeyId, RepoError> {
        // The key this session opened with may have been removed meanwhile (by another
        // password's `key remove`): then removing it below would be a no-op, but the
        // caller should know the repository changed under it.
        if !self.list_keys()?.iter().any(|k| k.id == self.key_id) {
            return Err(RepoError::Invalid(format!(
                "key {} was removed meanwhile; open the repository again",
                self.key_id.short()
            )));
        }
        let new = self.add_key(new_password)?;
        self.backend
            .remove(&FileKind::Key.name(&self.key_id.to_hex()))?;
        Ok(new)
    }

    /// Deletes one repository file by kind and id.
    pub fn remove_file(&self, kind: FileKind, hex: &str) -> Result<(), RepoError> {
        if !self.dry_run {
            self.backend.remove(&kind.name(hex))?;
        }
        Ok(())
    }

    /// Stores `new` and then removes the snapshot `old` (tags changed, repaired): at
    /// every moment at least one of the two exists.
    pub fn replace_snapshot(
        &self,
        old: &SnapshotId,
        new: &Snapshot,
    ) -> Result<SnapshotId, RepoError> {
        let id = self.save_snapshot(new)?;
        if id != *old {
            self.remove_snapshots(&[*old])?;
        }
        Ok(id)
    }

    /// Removes snapshots on purpose: a sealed `forgotten/` record of them is stored
    /// first, so their absence is never mistaken for a deletion behind cairn's back.
    pub fn remove_snapshots(&self, ids: &[SnapshotId]) -> Result<(), RepoError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.record_forgotten(ids.iter().map(SnapshotId::to_hex).collect())?;
        for id in ids {
            self.remove_file(FileKind::Snapshot, &id.to_hex())?;
        }
        Ok(())
    }

    /// Stores a record that these snapshots (full hex IDs) were removed on purpose.
    pub fn record_forgotten(&self, snapshots: Vec<String>) -> Result<(), RepoError> {
        let rec = cairn_format::ForgottenRecord {
            time: crate::sys::now(),
            hostname: crate::sys::hostname(),
            snapshots,
        };
        self.save_file(FileKind::Forgotten, &rec.encode())
            .map(|_| ())
    }

    /// Every snapshot ID (hex) any `forgotten/` record names. Garbage there must not
    /// brick every command: an unreadable record counts as absent (so the snapshots it
    /// names look deleted behind cairn's back, the safe reading), named in a warning;
    /// `check` reports it through [`Repository::forgotten_records`].
    pub fn forgotten_snapshots(&self) -> Result<std::collections::HashSet<String>, RepoError> {
        let (ids, unreadable) = self.forgotten_records()?;
        for (name, e) in unreadable {
            tracing::warn!("ignoring {name}: {e}");
        }
        Ok(ids)
    }

    /// The snapshot IDs the readable `forgotten/` records name, and each unreadable
    /// record's name with its error.
    pub fn forgotten_records(
        &self,
    ) -> Result<(std::collections::HashSet<String>, Vec<(String, RepoError)>), RepoError> {
        let mut ids = std::collections::HashSet::new();
        let mut unreadable = Vec::new();
        for hex in self.list_files(FileKind::Forgotten)? {
            let name = FileKind::Forgotten.name(&hex);
            let rec = self.load_file(FileKind::Forgotten, &hex).and_then(|b| {
                cairn_format::ForgottenRecord::decode(&b)
                    .map_err(|e| RepoError::format(name.clone(), e))
            });
            match rec {
                Ok(rec) => ids.extend(rec.snapshots),
                Err(e) => unreadable.push((name, e)),
            }
        }
        Ok((ids, unreadable))
    }

    // ---- whole files (index, snapshot, lock) ----

    /// Frames, seals and stores a file under the hash of its stored bytes; returns the hex id.
    pub fn save_file(&self, kind: FileKind, payload: &[u8]) -> Result<String, RepoError> {
        // An index or snapshot may point at packs a prune elsewhere deletes once this
        // command's lock looks stale: check the lock is still ours first.
        if matches!(kind, FileKind::Index | FileKind::Snapshot) && !self.dry_run {
            let held = self.held_lock.lock().unwrap_or_else(unpoison).clone();
            if let Some(lock) = held {
                lock.check(
                    self.backend.as_ref(),
                    if kind == FileKind::Index {
                        "an index file"
                    } else {
                        "the snapshot"
                    },
                )?;
            }
        }
        let sealed = self
            .key
            .seal(kind.seal_purpose(), &frame(payload, Some(3)))
            .map_err(|e| crypto(kind.dir(), e))?;
        let hex = hex::encode(cairn_crypto::storage_hash(&sealed));
        if !self.dry_run {
            self.backend
                .write(&kind.name(&hex), &sealed, &WriteOptions::default())?;
        }
        Ok(hex)
    }

    /// Loads a file, verifying its name (storage hash) and its seal.
    pub fn load_file(&self, kind: FileKind, hex: &str) -> Result<Vec<u8>, RepoError> {
        let name = kind.name(hex);
        let sealed = self.backend.read(&name)?;
        if hex::encode(cairn_crypto::storage_hash(&sealed)) != hex {
            return Err(RepoError::corrupt(
                name,
                "content does not match its name (hash mismatch)",
            ));
        }
        let plain = self
            .key
            .open(kind.seal_purpose(), &sealed)
            .map_err(|e| crypto(&name, e))?;
        unframe(&plain).map_err(|e| RepoError::format(name, e))
    }

    /// Ids (hex) of every file of `kind`.
    pub fn list_files(&self, kind: FileKind) -> Result<Vec<String>, RepoError> {
        Ok(self
            .list_files_sized(kind)?
            .into_iter()
            .map(|(hex, _)| hex)
            .collect())
    }

    /// Ids (hex) of every file of `kind`, with their stored sizes.
    fn list_files_sized(&self, kind: FileKind) -> Result<Vec<(String, u64)>, RepoError> {
        let mut out = Vec::new();
        for o in self.backend.list(kind.dir())? {
            match crate::layout::canonical_id(kind, &o.name) {
                Some(hex) => out.push((hex.to_owned(), o.size)),
                None => tracing::warn!("skipping {}: not the name of a repository file", o.name),
            }
        }
        Ok(out)
    }

    // ---- index ----

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
        let ids = self.list_files_sized(FileKind::Index)?;
        // Files are added to the index as they arrive; a file that another one names as
        // superseded is only known to be unwanted once that other file is read, so when
        // one turns up (only after an interrupted replacement) the load runs again
        // without it.
        let mut skip = HashSet::new();
        loop {
            let load = self.read_index_files(&ids, &skip)?;
            let late: Vec<IndexId> = load
                .superseded
                .iter()
                .filter(|id| load.read.contains(id))
                .copied()
                .collect();
            if late.is_empty() {
                let mut files: Vec<IndexId> = load.read;
                files.extend(skip);
                *self.index.write().unwrap_or_else(unpoison) = load.index;
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
                return Ok(load.errors);
            }
            skip.extend(late);
        }
    }

    /// Reads, unseals and decodes the index files in `ids` (name, stored size) but those
    /// in `skip` on loading threads, building the index from each as it arrives, so only
    /// the files in flight are held beside the index: at most [`LOAD_BUDGET`] stored
    /// bytes of them (each costs about four times that while it is opened and decoded).
    fn read_index_files(
        &self,
        ids: &[(String, u64)],
        skip: &HashSet<IndexId>,
    ) -> Result<IndexLoad, RepoError> {
        let budget = Budget::new(LOAD_BUDGET);
        let mut load = IndexLoad {
            index: Index::new(),
            read: Vec::new(),
            superseded: HashSet::new(),
            errors: Vec::new(),
        };
        let mut errors = Vec::new();
        // A decoded file travels with the budget it holds, given back once it is indexed.
        let read = |(hex, size): &(String, u64)| {
            let id = match hex.parse::<IndexId>() {
                Ok(id) if skip.contains(&id) => return None,
                Ok(id) => id,
                Err(e) => return Some(Err(RepoError::corrupt(FileKind::Index.name(hex), e))),
            };
            let held = budget.take(*size);
            let r = self.load_file(FileKind::Index, hex).and_then(|bytes| {
                IndexPart::decode(&bytes)
                    .map_err(|e| RepoError::format(FileKind::Index.name(hex), e))
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
                load.index.add_part(part);
                budget.give(held);
            }
            Err(e) => errors.push((i, e)),
        });
        load.index.finish_loading();
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
            supersedes: Vec::new(),
            packs,
        };
        match self.save_file(FileKind::Index, &file.encode()) {
            Ok(hex) => Ok(hex.parse().ok()),
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
        for obj in self.backend.list(DATA_DIR)? {
            let Some(id) = id_from_name(&obj.name).and_then(|h| h.parse::<PackId>().ok()) else {
                continue;
            };
            if known.contains(&id) {
                continue;
            }
            let data = match self.backend.read(&obj.name) {
                Ok(d) => d,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            if cairn_crypto::storage_hash(&data) != id.0 {
                tracing::warn!("{}: content does not match its name; not reused", obj.name);
                continue;
            }
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

    /// Whether the blob is stored or being stored by this command.
    pub fn has_blob(&self, id: &BlobId) -> bool {
        self.index().contains(id)
            || self
                .writer
                .lock()
                .unwrap_or_else(unpoison)
                .in_flight
                .contains(id)
    }

    /// Stores a blob unless it is already there; returns its id and whether it was new.
    /// Safe to call from many threads; full packs are written by the thread that filled them.
    pub fn save_blob(
        &self,
        blob_type: BlobType,
        plaintext: &[u8],
    ) -> Result<(BlobId, bool), RepoError> {
        self.save_blob_parts(blob_type, &[plaintext])
    }

    /// [`Repository::save_blob`] of the concatenation of `parts` (a chunk as it was read).
    pub fn save_blob_parts(
        &self,
        blob_type: BlobType,
        parts: &[&[u8]],
    ) -> Result<(BlobId, bool), RepoError> {
        let id = BlobId(self.key.blob_id_parts(parts));
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let raw_length =
            u32::try_from(len).map_err(|_| RepoError::Invalid("blob larger than 4 GiB".into()))?;
        if !self.claim(&id, true) {
            return Ok((id, false));
        }
        let entry = PackEntry {
            blob_type,
            compressed: false,
            id,
            offset: 0,
            length: 0,
            raw_length,
        };
        let stored = self.add_to_pack(entry, sealed_bound(len), |buf| {
            encode_blob(&self.key, blob_type, self.compression, parts, buf)
        })?;
        let counter = match blob_type {
            BlobType::Data => &self.stats.data_blobs,
            BlobType::Tree => &self.stats.tree_blobs,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats
            .data_added
            .fetch_add(len as u64, Ordering::Relaxed);
        self.stats
            .data_added_packed
            .fetch_add(stored as u64, Ordering::Relaxed);
        Ok((id, true))
    }

    /// Puts an already sealed blob into a new pack, as it is (no re-encryption): for
    /// prune's repacking and for repair. `entry.offset` and `entry.length` are ignored.
    /// Returns false if this command already stored the blob.
    pub fn save_sealed_blob(&self, entry: PackEntry, sealed: &[u8]) -> Result<bool, RepoError> {
        if !self.claim(&entry.id, false) {
            return Ok(false);
        }
        self.add_to_pack(entry, sealed.len(), |buf| {
            buf.extend_from_slice(sealed);
            Ok(entry.compressed)
        })?;
        Ok(true)
    }

    /// Makes this thread the one that stores blob `id`, unless it is stored already
    /// (`in_index`: or listed in the index) or another thread is storing it. Claiming
    /// before sealing means a chunk seen twice at once is sealed once.
    fn claim(&self, id: &BlobId, in_index: bool) -> bool {
        // The index lock is held across the claim (index, then writer, as in
        // `index_stored`), so a blob cannot move from in flight to the index between
        // the two checks.
        let index = self.index();
        if in_index && index.contains(id) {
            return false;
        }
        self.writer
            .lock()
            .unwrap_or_else(unpoison)
            .in_flight
            .insert(*id)
    }

    /// Seals a claimed blob into a packer of this thread's own (`write` appends at most
    /// `bound` bytes), writing the pack first if the blob would take it past the target
    /// and afterwards if the blob filled it. Returns the blob's stored length. On error
    /// the claim is given up.
    fn add_to_pack(
        &self,
        entry: PackEntry,
        bound: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<bool, RepoError>,
    ) -> Result<usize, RepoError> {
        let pool = match entry.blob_type {
            BlobType::Data => &self.data_packers,
            BlobType::Tree => &self.tree_packers,
        };
        let id = entry.id;
        let mut packer = pool.take();
        let add = || -> Result<usize, RepoError> {
            if !packer.is_empty() && packer.size() + bound > pool.target() {
                self.store_pack(packer.finish(&self.key)?)?;
            }
            let stored = packer.add_with(entry, write)?;
            if packer.size() >= pool.target() {
                self.store_pack(packer.finish(&self.key)?)?;
            }
            Ok(stored)
        };
        let added = add();
        if added.is_err() {
            self.writer
                .lock()
                .unwrap_or_else(unpoison)
                .in_flight
                .remove(&id);
        }
        added
    }

    /// Packs stored by this command that no index file lists yet; the caller takes
    /// over writing them into an index (prune writes one complete index).
    pub fn take_unindexed(&self) -> Vec<IndexPack> {
        let _ = self.index_uploaded();
        std::mem::take(&mut self.writer.lock().unwrap_or_else(unpoison).unindexed)
    }

    fn store_pack(&self, mut pack: FinishedPack) -> Result<(), RepoError> {
        if self.dry_run {
            return Ok(());
        }
        if let Some(up) = &self.uploader {
            up.submit(pack)?;
            return self.index_uploaded();
        }
        if let Err(e) = self.backend.write_parts(
            &pack_name(&pack.id),
            &pack.slices(),
            &WriteOptions::default(),
        ) {
            // Its blobs are not stored: nothing may take them for stored from now on.
            let mut w = self.writer.lock().unwrap_or_else(unpoison);
            for b in &pack.entries {
                w.in_flight.remove(&b.id);
            }
            return Err(e.into());
        }
        self.index_stored(vec![(
            pack.id,
            pack.size,
            std::mem::take(&mut pack.entries),
        )]);
        Ok(())
    }

    /// Moves packs the upload threads finished into the index.
    fn index_uploaded(&self) -> Result<(), RepoError> {
        if let Some(up) = &self.uploader {
            let done = up.take_done()?;
            if !done.is_empty() {
                self.index_stored(done);
            }
        }
        Ok(())
    }

    fn index_stored(&self, packs: Vec<crate::uploader::Done>) {
        let mut index = self.index.write().unwrap_or_else(unpoison);
        let mut w = self.writer.lock().unwrap_or_else(unpoison);
        for (id, size, entries) in packs {
            for e in &entries {
                index.add_recent(id, size, e);
                w.in_flight.remove(&e.id);
            }
            w.unindexed.push(IndexPack {
                id,
                size,
                blobs: entries,
            });
            w.stored.push(id);
        }
    }

    /// Writes out partly filled packs. Call before saving the final index.
    pub fn flush(&self) -> Result<(), RepoError> {
        // Called with no blob being added, so every packer is idle in its pool.
        for pool in [&self.data_packers, &self.tree_packers] {
            for mut packer in pool.take_unfinished()? {
                let pack = packer.finish(&self.key)?;
                self.store_pack(pack)?;
            }
        }
        if let Some(up) = &self.uploader {
            up.wait_idle()?;
        }
        self.index_uploaded()
    }

    /// Loads a blob and verifies it is the blob asked for.
    pub fn load_blob(&self, id: &BlobId) -> Result<Vec<u8>, RepoError> {
        let found = self
            .index()
            .get(id)
            .ok_or_else(|| RepoError::BlobNotFound(id.to_hex()))?;
        let name = pack_name(&found.pack);
        let e = found.entry;
        let cached = match (&self.tree_cache, e.blob_type) {
            (Some(dir), BlobType::Tree) => Some(dir.join(id.to_hex())),
            _ => None,
        };
        if let Some(path) = &cached {
            if let Ok(sealed) = std::fs::read(path) {
                match self.open_blob_owned(&name, &e, sealed) {
                    Ok(b) => return Ok(b),
                    Err(_) => {
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
        }
        let read_ahead = self
            .read_ahead
            .read()
            .unwrap_or_else(crate::unpoison)
            .clone();
        // Trees too: a restore's plan walks thousands of them, and they sit together in
        // tree packs.
        let sealed = match &read_ahead {
            Some(ra) => ra.read(self.backend.as_ref(), &name, &found.pack, &e)?,
            None => self
                .backend
                .read_range(&name, u64::from(e.offset), u64::from(e.length))?,
        };
        if let Some(path) = &cached {
            let plain = self.open_blob(&name, &e, &sealed)?;
            let _ = cairn_backend::write_private(path, &sealed);
            return Ok(plain);
        }
        self.open_blob_owned(&name, &e, sealed)
    }

    /// Decrypts, decompresses and verifies one blob's stored bytes.
    pub fn open_blob(
        &self,
        pack: &str,
        e: &PackEntry,
        sealed: &[u8],
    ) -> Result<Vec<u8>, RepoError> {
        self.open_blob_owned(pack, e, sealed.to_vec())
    }

    /// [`Repository::open_blob`] of a buffer it may decrypt in place: a restore then
    /// costs one buffer per blob read (two if compressed), not a copy per step.
    pub fn open_blob_owned(
        &self,
        pack: &str,
        e: &PackEntry,
        mut sealed: Vec<u8>,
    ) -> Result<Vec<u8>, RepoError> {
        let what = || format!("blob {} in {pack}", e.id.short());
        let plain = self
            .key
            .open_in_place(e.blob_type.seal_purpose(), &mut sealed)
            .map_err(|err| RepoError::corrupt(what(), err))?;
        let data = if e.compressed {
            // One-shot into a buffer of exactly the authenticated length: no zeroing of
            // the output (the streaming reader's read_to_end cleared every byte first,
            // 5% of a restore), and a blob that would decompress larger is an error.
            decompress(&sealed[plain], e.raw_length as usize)
                .map_err(|err| RepoError::corrupt(what(), err))?
        } else {
            sealed.truncate(plain.end);
            sealed.drain(..plain.start);
            sealed
        };
        if data.len() != e.raw_length as usize {
            return Err(RepoError::corrupt(what(), "length differs from index"));
        }
        if self.key.blob_id(&data) != e.id.0 {
            return Err(RepoError::corrupt(what(), "content does not match its id"));
        }
        Ok(data)
    }

    pub fn load_tree(&self, id: &BlobId) -> Result<Tree, RepoError> {
        let b = self.load_blob(id)?;
        Tree::decode(&b).map_err(|e| RepoError::format(format!("tree {}", id.short()), e))
    }

    pub fn save_tree(&self, tree: &Tree) -> Result<(BlobId, bool), RepoError> {
        self.save_blob(BlobType::Tree, &tree.encode())
    }

    /// Reads a pack whole and returns its authenticated header entries.
    pub fn load_pack_header(&self, pack: &PackId) -> Result<Vec<PackEntry>, RepoError> {
        let name = pack_name(pack);
        let data = self.backend.read(&name)?;
        read_pack_header(&self.key, &name, &data)
    }

    // ---- snapshots ----

    pub fn save_snapshot(&self, s: &Snapshot) -> Result<SnapshotId, RepoError> {
        if !self.dry_run {
            self.check_stored_packs()?;
        }
        let hex = self.save_file(FileKind::Snapshot, &s.encode())?;
        hex.parse().map_err(|e| RepoError::Invalid(format!("{e}")))
    }

    /// Fails unless every pack this command stored is still in the repository: a
    /// snapshot must never point at data that is not stored, and a prune elsewhere that
    /// took this command's lock for stale may have deleted packs it had not indexed yet.
    /// A few packs are looked at one by one, more with one listing.
    fn check_stored_packs(&self) -> Result<(), RepoError> {
        let stored = self.writer.lock().unwrap_or_else(unpoison).stored.clone();
        let missing: Vec<String> = if stored.len() <= 64 {
            let mut gone = Vec::new();
            for id in &stored {
                match self.backend.stat(&pack_name(id)) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => gone.push(pack_name(id)),
                    Err(e) => return Err(e.into()),
                }
            }
            gone
        } else {
            let there: HashSet<String> = self
                .backend
                .list(DATA_DIR)?
                .into_iter()
                .map(|o| o.name)
                .collect();
            stored
                .iter()
                .map(pack_name)
                .filter(|n| !there.contains(n))
                .collect()
        };
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(RepoError::LockLost {
                what: "the snapshot".into(),
                why: format!("{} pack(s) this command stored are gone from the repository (first {first}); was a prune run elsewhere while this lock looked stale?", missing.len()),
            }),
        }
    }

    /// Every snapshot, oldest first.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotRef>, RepoError> {
        let ids = self.list_files(FileKind::Snapshot)?;
        let snaps = parallel_map(&ids, 8, |hex| {
            let b = self.load_file(FileKind::Snapshot, hex)?;
            let s = Snapshot::decode(&b)
                .map_err(|e| RepoError::format(FileKind::Snapshot.name(hex), e))?;
            let id: SnapshotId = hex
                .parse()
                .map_err(|e| RepoError::corrupt(hex.clone(), e))?;
            Ok(SnapshotRef { id, snapshot: s })
        })?;
        let mut snaps = snaps;
        snaps.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
        Ok(snaps)
    }

    /// Resolves `latest` or a unique id prefix of at least 4 hex digits.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotRef, RepoError> {
        let all = self.list_snapshots()?;
        if spec == "latest" {
            return all
                .into_iter()
                .last()
                .ok_or_else(|| RepoError::SnapshotNotFound(spec.into()));
        }
        if spec.len() < 4 || !spec.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(RepoError::SnapshotNotFound(spec.into()));
        }
        let spec_l = spec.to_ascii_lowercase();
        let mut matches: Vec<SnapshotRef> = all
            .into_iter()
            .filter(|s| s.id.to_hex().starts_with(&spec_l))
            .collect();
        match matches.len() {
            0 => Err(RepoError::SnapshotNotFound(spec.into())),
            1 => Ok(matches.remove(0)),
            _ => Err(RepoError::AmbiguousSnapshot(spec.into())),
        }
    }
}

/// Index files read at once: enough to hide a remote backend's latency; decoding them
/// uses every core.
const LOAD_THREADS: usize = 8;

/// Stored bytes of index files read and decoded at once (see `read_index_files`).
const LOAD_BUDGET: u64 = 32 << 20;

/// Bytes that threads take before holding something large in memory and give back
/// after; one taker may always proceed, so an item larger than the whole is not stuck.
struct Budget {
    free: Mutex<u64>,
    returned: std::sync::Condvar,
    total: u64,
}

impl Budget {
    fn new(total: u64) -> Budget {
        Budget {
            free: Mutex::new(total),
            returned: std::sync::Condvar::new(),
            total,
        }
    }

    /// Waits until `want` (at most the whole budget) is free, takes it and returns it.
    fn take(&self, want: u64) -> u64 {
        let want = want.min(self.total);
        let mut free = self.free.lock().unwrap_or_else(unpoison);
        while *free < want {
            free = self.returned.wait(free).unwrap_or_else(unpoison);
        }
        *free -= want;
        want
    }

    fn give(&self, n: u64) {
        *self.free.lock().unwrap_or_else(unpoison) += n;
        self.returned.notify_all();
    }
}

/// What one pass over the index files found.
struct IndexLoad {
    index: Index,
    /// Files read and decoded.
    read: Vec<IndexId>,
    /// Every file any of them names as superseded.
    superseded: HashSet<IndexId>,
    errors: Vec<RepoError>,
}

/// Maps `f` over `items` on up to `threads` threads, keeping order; the first error wins.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, RepoError> + Sync,
) -> Result<Vec<R>, RepoError> {
    if items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    let mut results: Vec<Option<Result<R, RepoError>>> = (0..items.len()).map(|_| None).collect();
    parallel_stream(
        items,
        threads,
        |item| Some(f(item)),
        |i, r| results[i] = Some(r),
    );
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(RepoError::Invalid("worker lost".into()))))
        .collect()
}

/// Runs `f` over `items` on up to `threads` threads and hands each result, with the
/// item's position, to `take` on the calling thread as it arrives; `f` returning `None`
/// hands nothing. At most two results wait to be taken, so a slow `take` holds the
/// workers back instead of letting their results pile up in memory.
pub(crate) fn parallel_stream<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Option<R> + Sync,
    mut take: impl FnMut(usize, R),
) {
    let next = AtomicU64::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, R)>(2);
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()) {
            let (tx, next, f) = (tx.clone(), &next, &f);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(item) = items.get(i) else { return };
                if let Some(r) = f(item) {
                    if tx.send((i, r)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            take(i, r);
        }
    });
}

/// A blob as stored: compressed (zstd at `level`, where the probe says it pays and the
/// result is smaller) and sealed, appended to `out`; returns whether it was compressed.
/// The compressor writes straight into `out`, which is then encrypted in place, so a
/// compressed blob costs no copy and an incompressible one a single copy. `out` needs
/// room for [`sealed_bound`] bytes more, or it grows.
pub fn encode_blob(
    key: &MasterKey,
    blob_type: BlobType,
    level: Option<i32>,
    parts: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<bool, RepoError> {
    let purpose = blob_type.seal_purpose();
    let start = out.len();
    if let Some(level) = level.filter(|_| worth_compressing(parts)) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.reserve(sealed_bound(len));
        out.resize(start + NONCE_LEN, 0);
        if compress_into(level, parts, out).is_ok() && out.len() - start - NONCE_LEN < len {
            key.seal_in_place(purpose, out, start)
                .map_err(|e| crypto("blob", e))?;
            return Ok(true);
        }
        out.truncate(start);
    }
    key.seal_parts_append(purpose, parts, out)
        .map_err(|e| crypto("blob", e))?;
    Ok(false)
}

/// The most bytes [`encode_blob`] appends for `len` bytes of plaintext.
pub fn sealed_bound(len: usize) -> usize {
    NONCE_LEN + zstd::zstd_safe::compress_bound(len).max(len) + TAG_LEN
}

/// Blobs below this size are compressed with their size pledged to zstd, larger ones
/// without ([`compress_into`]): the chunker's default minimum, so every chunk cut out
/// of a large file takes the unpledged context, and only small files, the ends of
/// large ones and trees the pledged one.
const SMALL_BLOB: usize = 512 * 1024;

thread_local! {
    /// One zstd context per thread, reused for every blob: a fresh context per blob was
    /// an allocation of several MiB each time. Its size is not pledged: zstd sizes its
    /// workspace (~3.7 MiB at level 3) by the pledged size and reallocates it whenever
    /// blobs of another size class come, and those reallocations of a few MiB each
    /// fragmented the heap until a backup's resident memory grew with the data backed up
    /// (mixed, first backup: 76 MiB at 2 GiB, 88 MiB at 8 GiB; unpledged, 80 at both).
    /// At these sizes the ratio is the same either way.
    static ZSTD: std::cell::RefCell<zstd::zstd_safe::CCtx<'static>> = std::cell::RefCell::new(zstd::zstd_safe::CCtx::create());
    /// For small blobs (small files, trees), whose pledged size lets zstd use small
    /// tables: a level-3 workspace for each of 50,000 4 KiB files would be wasted.
    static ZSTD_SMALL: std::cell::RefCell<zstd::zstd_safe::CCtx<'static>> = std::cell::RefCell::new(zstd::zstd_safe::CCtx::create());
    /// Likewise for decompression: creating a context per blob was 5% of restoring
    /// many small files, and more in malloc.
    static UNZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// One-shot decompression into a buffer of exactly `len` bytes at most, with this
/// thread's reused context.
fn decompress(data: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
    UNZSTD.with(|d| {
        let mut d = d.borrow_mut();
        let d = match &mut *d {
            Some(d) => d,
            none => none.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress(data, len)
    })
}

/// Appends one zstd frame of the concatenation of `parts` to `out`, which must have
/// room for `compress_bound` of it.
fn compress_into(level: i32, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), ()> {
    use zstd::zstd_safe::{
        zstd_sys::ZSTD_EndDirective, CParameter, InBuffer, OutBuffer, ResetDirective,
    };
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let context = if len < SMALL_BLOB { &ZSTD_SMALL } else { &ZSTD };
    context.with(|cctx| {
        let mut cctx = cctx.borrow_mut();
        cctx.reset(ResetDirective::SessionAndParameters)
            .map_err(drop)?;
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .map_err(drop)?;
        if len < SMALL_BLOB {
            cctx.set_pledged_src_size(Some(len as u64)).map_err(drop)?;
        }
        let pos = out.len();
        let mut output = OutBuffer::around_pos(out, pos);
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.iter().enumerate() {
            let mut input = InBuffer::around(part);
            let end = if i == last {
                ZSTD_EndDirective::ZSTD_e_end
            } else {
                ZSTD_EndDirective::ZSTD_e_continue
            };
            loop {
                let left = cctx
                    .compress_stream2(&mut output, &mut input, end)
                    .map_err(drop)?;
                // The output has room for the whole frame, so only input can be left.
                let done = if i == last {
                    left == 0
                } else {
                    input.pos == part.len()
                };
                if done {
                    break;
                }
                if output.pos() == output.capacity() {
                    return Err(());
                }
            }
        }
        if parts.is_empty() {
            cctx.compress_stream2(
                &mut output,
                &mut InBuffer::around(&[]),
                ZSTD_EndDirective::ZSTD_e_end,
            )
            .map_err(drop)?;
        }
        Ok(())
    })
}

/// Whether zstd is worth running on a blob: three 8 KiB samples (start, middle, end)
/// compressed at the fastest level must shrink by at least 5%. Random or already
/// compressed data (media, archives) then costs one cheap probe instead of a full
/// zstd pass that would be thrown away; small blobs are always tried.
fn worth_compressing(parts: &[&[u8]]) -> bool {
    const SAMPLE: usize = 8 * 1024;
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len <= 4 * SAMPLE {
        return true;
    }
    let mut sample = Vec::with_capacity(3 * SAMPLE);
    for start in [0, len / 2 - SAMPLE / 2, len - SAMPLE] {
        copy_range(parts, start, SAMPLE, &mut sample);
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(sample.len()));
    match compress_into(1, &[&sample], &mut out) {
        Ok(()) => out.len() * 100 < sample.len() * 95,
        Err(()) => true,
    }
}

/// Appends bytes `start..start + len` of the concatenation of `parts` to `out`.
fn copy_range(parts: &[&[u8]], mut start: usize, mut len: usize, out: &mut Vec<u8>) {
    for p in parts {
        if start >= p.len() {
            start -= p.len();
            continue;
        }
        let take = len.min(p.len() - start);
        out.extend_from_slice(&p[start..start + take]);
        len -= take;
        start = 0;
        if len == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod probe_tests {
    #[test]
    fn probe_skips_random_data_and_keeps_text() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!super::worth_compressing(&[&random]));
        let text = b"2026-11-22 INFO request GET /index.html 200 1234us\n".repeat(20_000);
        assert!(super::worth_compressing(&[&text]));
        // Random at both ends but text in the middle: the middle sample keeps zstd.
        let mut mixed = random.clone();
        mixed[300_000..700_000].copy_from_slice(&text[..400_000]);
        assert!(super::worth_compressing(&[
            &mixed[..500_000],
            &mixed[500_000..]
        ]));
        assert!(
            super::worth_compressing(&[&random[..1000]]),
            "small blobs are always tried"
        );
    }

    /// A blob sealed from pieces opens to the pieces' concatenation, however it was split,
    /// compressed or not, and compresses as well as in one piece. Every blob is appended
    /// to one buffer, as in a pack, so the blobs before it must not leak into it.
    #[test]
    fn blobs_encode_from_pieces() {
        let key = cairn_crypto::MasterKey::generate().unwrap();
        let text = b"2026-11-22 INFO request GET /index.html 200 1234us\n".repeat(30_000);
        let mut x = 7u64;
        let random: Vec<u8> = (0..1_500_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut out = Vec::new();
        let mut encode = |parts: &[&[u8]]| {
            // Appended behind what is there, as in a pack.
            let start = out.len();
            let compressed =
                super::encode_blob(&key, cairn_format::BlobType::Data, Some(3), parts, &mut out)
                    .unwrap();
            assert!(out.len() - start <= super::sealed_bound(parts.iter().map(|p| p.len()).sum()));
            (compressed, out[start..].to_vec())
        };
        let whole =
            |data: &[u8], encode: &mut dyn FnMut(&[&[u8]]) -> (bool, Vec<u8>)| encode(&[data]);
        for data in [&text[..], &random[..], &text[..10], &[][..]] {
            let (one_compressed, one) = whole(data, &mut encode);
            for cuts in [
                vec![],
                vec![1],
                vec![data.len() / 3, data.len() / 2],
                vec![data.len().saturating_sub(1)],
            ] {
                let mut parts = Vec::new();
                let mut at = 0;
                for c in cuts.iter().copied().chain([data.len()]) {
                    let c = c.clamp(at, data.len());
                    parts.push(&data[at..c]);
                    at = c;
                }
                let (compressed, sealed) = encode(&parts);
                assert_eq!(compressed, one_compressed);
                assert!(
                    sealed.len() <= one.len() + 64,
                    "pieces compress as well as the whole"
                );
                let plain = key
                    .open(cairn_format::BlobType::Data.seal_purpose(), &sealed)
                    .unwrap();
                let plain = if compressed {
                    zstd::bulk::decompress(&plain, data.len()).unwrap()
                } else {
                    plain
                };
                assert_eq!(plain, data);
            }
        }
        assert!(whole(&text, &mut encode).0 && !whole(&random, &mut encode).0);
    }
}
