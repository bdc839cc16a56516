//! [`Repository`]: open or create one, and load and save what it holds.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use cairn_backend::{Backend, ErrorKind, WriteOptions};
use cairn_crypto::MasterKey;
use cairn_format::{
    frame, unframe, BlobId, BlobType, CompressionMode, Config, FileId, IndexFile, IndexId,
    IndexPack, KeyId, PackEntry, PackId, Snapshot, SnapshotId, Tree,
};

use crate::codec::*;
use crate::index::{CacheBuilder, MappedIndex};
use crate::layout::{pack_name, FileKind, CONFIG, CONFIG_PURPOSE, DATA_DIR};
use crate::packer::{read_pack_header, FinishedPack, PackerPool};
use crate::{keys, unpoison, Index, IndexPart, KeyInfo, RepoError};
use cairn_parallel::{map as parallel_map, stream as parallel_stream, Budget};

/// How a repository is opened: everything that changes how this command reads and
/// writes, decided once.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The key file tried first: the one that opened this location last time.
    pub preferred_key: Option<KeyId>,
    /// Nothing is written: the store is wrapped in [`cairn_backend::DryRun`], so the
    /// command runs its real code and saves compute IDs and statistics only.
    pub dry_run: bool,
    /// Packs are uploaded on this many threads (a store across a network); 0 or 1
    /// writes each where it is finished.
    pub transfers: usize,
    /// For a store across a network: blobs are read a window of their pack at a time,
    /// and storage-bound loops run on this many threads.
    pub remote_reads: Option<usize>,
    /// Tree blobs are kept here (sealed, as stored), so browsing a remote repository
    /// downloads each tree once.
    pub tree_cache: Option<std::path::PathBuf>,
    /// The index is kept sorted in this file and mapped, instead of built on the heap
    /// by every command (see `index/cache.rs`).
    pub index_cache: Option<std::path::PathBuf>,
    /// Compression for the blobs this command writes, instead of the repository's.
    pub compression: Option<CompressionMode>,
    /// Lock refreshes and patience; only tests shorten them.
    pub lock_timing: crate::lock::LockTiming,
}

/// Settings chosen at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub compression: CompressionMode,
    pub pack_size_mib: u32,
    pub chunker_min_size: u32,
    pub chunker_avg_size: u32,
    pub chunker_max_size: u32,
    /// `init --lock-days`: every file stored is locked (B2 Object Lock).
    pub lock: Option<cairn_format::LockSettings>,
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
            lock: None,
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
    /// Where the index is cached, mapped, if anywhere.
    index_cache: Option<std::path::PathBuf>,
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

mod files;
mod index_io;
mod read;
mod retention;
pub use read::{pack_matches_name, read_pack_verified};
pub use retention::LockExtension;
mod snapshots;
mod write;

/// Every repository stores through [`cairn_backend::Retaining`]: one with a lock
/// period locks every file (locks exempt: they must go the moment a command ends), and
/// any, where a file it removes is locked (a copy `ship --lock-days` made), hides it.
fn retaining(
    backend: Arc<dyn Backend>,
    lock: Option<cairn_format::LockSettings>,
) -> Arc<dyn Backend> {
    Arc::new(cairn_backend::Retaining::new(
        backend,
        lock.map(lock_period),
        &[crate::layout::LOCK_DIR],
    ))
}

/// The config's lock settings in the storage layer's terms.
pub fn lock_period(l: cairn_format::LockSettings) -> cairn_backend::LockPeriod {
    cairn_backend::LockPeriod {
        days: l.days,
        mode: match l.mode {
            cairn_format::RetentionMode::Governance => cairn_backend::LockMode::Governance,
            cairn_format::RetentionMode::Compliance => cairn_backend::LockMode::Compliance,
        },
    }
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
            index_cache: None,
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
        if let Some(l) = opts.lock {
            if l.days == 0 || l.days > cairn_format::MAX_LOCK_DAYS {
                return Err(RepoError::Invalid(format!(
                    "lock period must be 1..{} days, not {}",
                    cairn_format::MAX_LOCK_DAYS,
                    l.days
                )));
            }
        }
        // A locked repository needs a place that can lock before anything is made
        // there (a bucket init would create could not: file lock is set at creation).
        if let (Some(_), Some(why)) = (opts.lock, backend.lock_refused()) {
            return Err(RepoError::LockRefused(why));
        }
        // Create the container (directory, bucket) first: on B2 a missing bucket is an
        // error for every other command, but init makes it.
        backend.create()?;
        let backend = retaining(backend, opts.lock);
        match backend.stat(CONFIG) {
            Ok(_) => return Err(RepoError::AlreadyExists(backend.location())),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let key = MasterKey::generate()?;
        let mut rid = [0u8; 16];
        cairn_crypto::fill_random(&mut rid)?;
        let config = Config {
            version: Config::version_for(opts.lock),
            id: hex::encode(rid),
            chunker_min_size: opts.chunker_min_size,
            chunker_avg_size: opts.chunker_avg_size,
            chunker_max_size: opts.chunker_max_size,
            compression: opts.compression,
            pack_size_mib: opts.pack_size_mib,
            lock: opts.lock,
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
        Repository::open_with(backend, password, &OpenOptions::default())
    }

    /// [`Repository::open`] with everything that changes how this command reads and
    /// writes decided at once, so no setting depends on the order of others.
    pub fn open_with(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &OpenOptions,
    ) -> Result<Repository, RepoError> {
        let mut repo = Repository::open_preferring(backend, password, opts.preferred_key)?;
        if opts.dry_run {
            repo.backend = Arc::new(cairn_backend::DryRun::new(Arc::clone(&repo.backend)));
            repo.dry_run = true;
        }
        if let Some(mode) = opts.compression {
            repo.compression = mode.zstd_level();
        }
        // Nothing is uploaded in a dry run, so no upload threads either.
        if !opts.dry_run && opts.transfers > 1 {
            repo.uploader = Some(crate::uploader::Uploader::new(
                Arc::clone(&repo.backend),
                opts.transfers,
            ));
        }
        repo.remote_reads = opts.remote_reads.map(|t| t.max(1));
        repo.tree_cache = opts.tree_cache.clone();
        repo.index_cache = opts.index_cache.clone();
        repo.lock_timing = opts.lock_timing;
        Ok(repo)
    }

    /// Opens with the key file `preferred` tried first (the one that opened this
    /// location last time), so key files planted in `keys/` cost nothing.
    fn open_preferring(
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
        let backend = retaining(backend, config.lock);
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
    /// Threads for loops that wait on storage rather than the CPU: the cores for a local
    /// repository, more across a network (see [`OpenOptions::remote_reads`]).
    pub fn io_threads(&self) -> usize {
        self.remote_reads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// Fails with [`RepoError::CannotDelete`] when this repository's credentials may not
    /// delete (an append-only B2 key), so `command`, which must, changes nothing.
    pub fn require_deletes(&self, command: &str) -> Result<(), RepoError> {
        match self.backend.delete_refused() {
            Some(why) if !self.dry_run => Err(RepoError::CannotDelete {
                command: command.to_string(),
                why,
            }),
            _ => Ok(()),
        }
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
            return Err(RepoError::KeyInUse(id.short()));
        }
        let keys = self.list_keys()?;
        if !keys.iter().any(|k| k.id == *id) {
            return Err(RepoError::NoSuchKey(id.short()));
        }
        // Counted under the exclusive lock, and the key in use must still be there:
        // removing another key when this session's own went meanwhile would leave none.
        if keys.len() < 2 || !keys.iter().any(|k| k.id == self.key_id) {
            return Err(RepoError::LastKey);
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
            [] => Err(RepoError::KeyNotFound(prefix.to_string())),
            _ => Err(RepoError::AmbiguousKey(prefix.to_string())),
        }
    }

    /// Replaces the password this session opened with: the new key file is stored
    /// before the old one is removed, so an interruption leaves two working keys.
    pub fn change_password(&self, new_password: &[u8]) -> Result<KeyId, RepoError> {
        // The key this session opened with may have been removed meanwhile (by another
        // password's `key remove`): then removing it below would be a no-op, but the
        // caller should know the repository changed under it.
        if !self.list_keys()?.iter().any(|k| k.id == self.key_id) {
            return Err(RepoError::KeyRemoved(self.key_id.short()));
        }
        let new = self.add_key(new_password)?;
        self.backend
            .remove(&FileKind::Key.name(&self.key_id.to_hex()))?;
        Ok(new)
    }
}
