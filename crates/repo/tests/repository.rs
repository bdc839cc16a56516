use std::sync::Arc;

use cairn_backend::{Backend, LocalBackend};
use cairn_format::BlobType;
use cairn_repo::{FileKind, InitOptions, LockKind, RepoError, Repository};

fn setup() -> (tempfile::TempDir, Arc<dyn Backend>) {
    std::env::set_var(cairn_repo::KDF_ENV, "1");
    let d = tempfile::tempdir().unwrap();
    let b: Arc<dyn Backend> = Arc::new(LocalBackend::new(d.path().join("repo")));
    (d, b)
}

#[test]
fn init_open_save_load() {
    let (_d, b) = setup();
    let opts = InitOptions {
        pack_size_mib: 1,
        ..Default::default()
    };
    let repo = Repository::init(b.clone(), b"pw", &opts).unwrap();
    assert!(matches!(
        Repository::init(b.clone(), b"pw", &opts),
        Err(RepoError::AlreadyExists(_))
    ));
    let blobs: Vec<Vec<u8>> = (0..40u32)
        .map(|i| vec![i as u8; 100_000 + i as usize])
        .collect();
    let mut ids = Vec::new();
    for bl in &blobs {
        let (id, new) = repo.save_blob(BlobType::Data, bl).unwrap();
        assert!(new);
        assert!(
            !repo.save_blob(BlobType::Data, bl).unwrap().1,
            "second save deduplicates"
        );
        ids.push(id);
    }
    repo.flush().unwrap();
    repo.save_index().unwrap();

    let again = Repository::open(b.clone(), b"pw").unwrap();
    again.load_index().unwrap();
    assert_eq!(again.index().len(), 40);
    for (id, bl) in ids.iter().zip(&blobs) {
        assert_eq!(&again.load_blob(id).unwrap(), bl);
    }
    assert!(matches!(
        Repository::open(b.clone(), b"wrong"),
        Err(RepoError::WrongPassword { tried: 1 })
    ));
}

/// Whole files by typed ID: saved, found, loaded back, removed; a file whose bytes do
/// not hash to its name is refused.
#[test]
fn whole_files_by_kind_and_id() {
    let (_d, b) = setup();
    let repo = Repository::init(b.clone(), b"pw", &InitOptions::default()).unwrap();
    let id = repo.save_file(FileKind::Drill, b"a record").unwrap();
    assert!(repo.exists(FileKind::Drill, &id).unwrap());
    assert!(
        !repo.exists(FileKind::Verified, &id).unwrap(),
        "kinds are apart"
    );
    assert_eq!(repo.load_file(FileKind::Drill, &id).unwrap(), b"a record");
    assert_eq!(repo.list_files(FileKind::Drill).unwrap(), vec![id]);
    let other = cairn_format::FileId([7; 32]);
    let stored = b.read(&FileKind::Drill.file_name(&id)).unwrap();
    b.write(
        &FileKind::Drill.file_name(&other),
        &stored,
        &Default::default(),
    )
    .unwrap();
    let e = repo.load_file(FileKind::Drill, &other).unwrap_err();
    assert!(e.to_string().contains("does not match its name"), "{e}");
    repo.remove_file(FileKind::Drill, &id).unwrap();
    assert!(!repo.exists(FileKind::Drill, &id).unwrap());
}

#[test]
fn missing_repository() {
    let (_d, b) = setup();
    assert!(matches!(
        Repository::open(b, b"pw"),
        Err(RepoError::NoRepository(_))
    ));
}

#[test]
fn second_password_opens_same_repository() {
    let (_d, b) = setup();
    let repo = Repository::init(b.clone(), b"one", &InitOptions::default()).unwrap();
    repo.add_key(b"two").unwrap();
    let r2 = Repository::open(b.clone(), b"two").unwrap();
    assert_eq!(r2.config().id, repo.config().id);
    assert_eq!(r2.list_keys().unwrap().len(), 2);
}

#[test]
fn exclusive_lock_excludes() {
    let (_d, b) = setup();
    let repo = Arc::new(Repository::init(b.clone(), b"pw", &InitOptions::default()).unwrap());
    let shared = repo.lock(LockKind::Shared, "backup").unwrap();
    let shared2 = repo.lock(LockKind::Shared, "backup").unwrap();
    let err = repo.lock(LockKind::Exclusive, "prune").unwrap_err();
    assert!(matches!(err, RepoError::Locked(_)), "{err}");
    drop(shared);
    drop(shared2);
    let ex = repo.lock(LockKind::Exclusive, "prune").unwrap();
    assert!(repo.lock(LockKind::Shared, "backup").is_err());
    drop(ex);
    assert!(b.list("locks/").unwrap().is_empty());
}

#[test]
fn corrupt_pack_byte_is_detected() {
    let (d, b) = setup();
    let repo = Repository::init(b.clone(), b"pw", &InitOptions::default()).unwrap();
    let (id, _) = repo.save_blob(BlobType::Data, &[5u8; 5000]).unwrap();
    repo.flush().unwrap();
    repo.save_index().unwrap();
    let pack = b.list("data/").unwrap().remove(0);
    let path = d.path().join("repo").join(&pack.name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let again = Repository::open(b, b"pw").unwrap();
    again.load_index().unwrap();
    assert!(matches!(
        again.load_blob(&id),
        Err(RepoError::Corrupt { .. })
    ));
}

#[test]
fn stale_locks_are_ignored() {
    let (_d, b) = setup();
    let repo = Arc::new(Repository::init(b.clone(), b"pw", &InitOptions::default()).unwrap());
    let write = |pid: u32, host: &str, age_minutes: i64| {
        let lock = cairn_format::Lock {
            started: None,
            kind: None,
            time: cairn_repo::sys::now() - chrono::Duration::minutes(age_minutes),
            exclusive: true,
            hostname: host.into(),
            username: "x".into(),
            pid,
            command: "prune".into(),
        };
        repo.save_file(cairn_repo::FileKind::Lock, &lock.encode())
            .unwrap();
    };
    // A live lock from another host blocks...
    write(1, "elsewhere", 1);
    assert!(matches!(
        repo.lock(LockKind::Shared, "backup"),
        Err(RepoError::Locked(_))
    ));
    assert_eq!(repo.unlock(false).unwrap(), 0, "a fresh lock is not stale");
    assert_eq!(repo.unlock(true).unwrap(), 1);
    // ...but not once it has gone 31 minutes without a refresh,
    write(1, "elsewhere", 31);
    drop(repo.lock(LockKind::Exclusive, "prune").unwrap());
    // nor when its process is gone from this host.
    write(u32::MAX - 1, &cairn_repo::sys::hostname(), 0);
    drop(repo.lock(LockKind::Exclusive, "prune").unwrap());
    assert_eq!(repo.unlock(false).unwrap(), 2);
}

/// Index files load in parallel, each added as it arrives: a file another one names as
/// superseded is left out (its packs too), wherever it falls in the listing, and a
/// corrupt file is reported by name while the rest still load.
#[test]
fn index_loading_skips_superseded_and_reports_corrupt_files() {
    use cairn_format::{BlobId, IndexFile, IndexPack, PackEntry, PackId};
    use cairn_repo::FileKind;
    let (_d, b) = setup();
    let repo = Repository::init(b.clone(), b"pw", &InitOptions::default()).unwrap();
    let entry = |i: u8| PackEntry {
        blob_type: BlobType::Data,
        compressed: false,
        id: BlobId([i; 32]),
        offset: 0,
        length: 10,
        raw_length: 10,
    };
    let pack = |i: u8| IndexPack {
        id: PackId([i; 32]),
        size: 100,
        blobs: vec![entry(i)],
    };
    // Twenty ordinary files, one old file and the file that replaces it.
    let mut ordinary = Vec::new();
    for i in 1..=20u8 {
        ordinary.push(
            repo.save_file(
                FileKind::Index,
                &IndexFile {
                    marked: Vec::new(),
                    supersedes: vec![],
                    packs: vec![pack(i)],
                }
                .encode(),
            )
            .unwrap(),
        );
    }
    let old = repo
        .save_file(
            FileKind::Index,
            &IndexFile {
                marked: Vec::new(),
                supersedes: vec![],
                packs: vec![pack(100), pack(101)],
            }
            .encode(),
        )
        .unwrap();
    let new = IndexFile {
        marked: Vec::new(),
        supersedes: vec![old.into()],
        packs: vec![pack(101)],
    };
    repo.save_file(FileKind::Index, &new.encode()).unwrap();

    let again = Repository::open(b.clone(), b"pw").unwrap();
    again.load_index().unwrap();
    let ix = again.index();
    assert_eq!(ix.len(), 21);
    for i in 1..=20u8 {
        assert_eq!(ix.get(&BlobId([i; 32])).unwrap().pack, PackId([i; 32]));
    }
    assert!(ix.contains(&BlobId([101; 32])));
    assert!(
        !ix.contains(&BlobId([100; 32])),
        "a superseded file's blobs are not indexed"
    );
    assert!(
        !ix.packs().any(|(id, _)| id == PackId([100; 32])),
        "nor its packs"
    );
    drop(ix);
    assert_eq!(
        again.loaded_index_files().len(),
        22,
        "superseded files are still reported as read"
    );

    // Damage one ordinary file: the tolerant load names it and keeps the others.
    let victim = FileKind::Index.file_name(&ordinary[7]);
    let mut bytes = b.read(&victim).unwrap();
    bytes[40] ^= 1;
    b.remove(&victim).unwrap();
    b.write(&victim, &bytes, &Default::default()).unwrap();
    let errors = again.load_index_tolerant().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains(&ordinary[7].to_hex()),
        "{}",
        errors[0]
    );
    assert_eq!(again.index().len(), 20);
    assert!(again.load_index().is_err());
}

/// Several threads saving overlapping blobs at once, as a backup's workers do: each
/// blob is sealed and stored once, every pack stays within the target (no blob here is
/// larger), every blob reads back as saved, and what the stats count matches the packs.
#[test]
fn concurrent_saves_store_each_blob_once_within_the_pack_target() {
    let (_d, b) = setup();
    let opts = InitOptions {
        pack_size_mib: 1,
        ..Default::default()
    };
    let repo = Repository::init(b.clone(), b"pw", &opts).unwrap();
    let blob = |i: u32| -> Vec<u8> {
        let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let len = 20_000 + (i as usize * 7919) % 300_000;
        if i.is_multiple_of(3) {
            // Compressible, so some blobs take the compressed path.
            format!("line {i} of a log that repeats\n")
                .into_bytes()
                .repeat(len / 30)
        } else {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        }
    };
    let blobs: Vec<Vec<u8>> = (0..120).map(blob).collect();
    let new = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4usize {
            let (repo, blobs, new) = (&repo, &blobs, &new);
            s.spawn(move || {
                // Every thread saves every blob, each starting elsewhere.
                for k in 0..blobs.len() {
                    let bl = &blobs[(k + t * 30) % blobs.len()];
                    if repo.save_blob(BlobType::Data, bl).unwrap().1 {
                        new.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(
        new.into_inner(),
        blobs.len(),
        "each blob is new exactly once"
    );
    repo.flush().unwrap();
    repo.save_index().unwrap();
    let packed = repo
        .stats()
        .data_added_packed
        .load(std::sync::atomic::Ordering::Relaxed);

    let again = Repository::open(b.clone(), b"pw").unwrap();
    again.load_index().unwrap();
    assert_eq!(again.index().len(), blobs.len());
    let in_packs: u64 = again
        .index()
        .blobs()
        .map(|e| u64::from(e.entry.length))
        .sum();
    assert_eq!(in_packs, packed);
    let packs: Vec<(cairn_format::PackId, u64)> = again.index().packs().collect();
    assert!(
        packs.len() >= 4,
        "{} packs for ~13 MiB at 1 MiB each",
        packs.len()
    );
    for (id, size) in packs {
        let on_disk = b.stat(&cairn_repo::pack_name(&id)).unwrap().size;
        assert_eq!(on_disk, size);
        // The target bounds the blobs; the header (46 bytes a blob, sealed) comes on top.
        assert!(size <= 1024 * 1024 + 64 * 1024, "pack {id} is {size} bytes");
    }
    for bl in &blobs {
        let id = cairn_format::BlobId(again.key().blob_id(bl));
        assert_eq!(&again.load_blob(&id).unwrap(), bl);
    }
}

/// A store whose lock writes fail once `fail_locks` is set: storage that went away for
/// lock refreshes (B2 refusing writes, a drive gone read-only) while data still lands.
struct FailingLocks {
    inner: LocalBackend,
    fail_locks: std::sync::atomic::AtomicBool,
}

impl Backend for FailingLocks {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), cairn_backend::BackendError> {
        self.inner.create()
    }
    fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<cairn_backend::ObjectInfo>, cairn_backend::BackendError> {
        self.inner.list(prefix)
    }
    fn stat(&self, name: &str) -> Result<cairn_backend::ObjectInfo, cairn_backend::BackendError> {
        self.inner.stat(name)
    }
    fn read(&self, name: &str) -> Result<Vec<u8>, cairn_backend::BackendError> {
        self.inner.read(name)
    }
    fn read_range(
        &self,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, cairn_backend::BackendError> {
        self.inner.read_range(name, offset, length)
    }
    fn write(
        &self,
        name: &str,
        data: &[u8],
        opts: &cairn_backend::WriteOptions,
    ) -> Result<(), cairn_backend::BackendError> {
        if name.starts_with("locks/") && self.fail_locks.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(cairn_backend::BackendError::new(
                cairn_backend::ErrorKind::Other,
                name,
                "storage refuses writes",
            ));
        }
        self.inner.write(name, data, opts)
    }
    fn remove(&self, name: &str) -> Result<(), cairn_backend::BackendError> {
        self.inner.remove(name)
    }
}

/// Issue 19.4: when the lock cannot be refreshed for longer than the writer's patience
/// (25 minutes; 1 second here), a prune elsewhere may take it for stale and delete packs
/// this command wrote. The writer stops before its index and its snapshot, and the
/// packs it wrote stay unreferenced (prune's business), never half-referenced. While
/// refreshes succeed, the same wait is harmless.
#[test]
fn a_writer_whose_lock_refreshes_fail_stops_before_index_and_snapshot() {
    let d = tempfile::tempdir().unwrap();
    std::env::set_var(cairn_repo::KDF_ENV, "1");
    let store = Arc::new(FailingLocks {
        inner: LocalBackend::new(d.path().join("repo")),
        fail_locks: false.into(),
    });
    let b: Arc<dyn Backend> = store.clone();
    Repository::init(b.clone(), b"pw", &InitOptions::default()).unwrap();
    let timing = cairn_repo::LockTiming {
        refresh: std::time::Duration::from_millis(100),
        give_up: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    for fail in [false, true] {
        let opts = cairn_repo::OpenOptions {
            lock_timing: timing,
            ..Default::default()
        };
        let repo = Arc::new(Repository::open_with(b.clone(), b"pw", &opts).unwrap());
        repo.load_index().unwrap();
        let _lock = repo.lock(LockKind::Shared, "backup").unwrap();
        store
            .fail_locks
            .store(fail, std::sync::atomic::Ordering::SeqCst);
        repo.save_blob(
            BlobType::Data,
            format!("data while refreshes fail: {fail}").as_bytes(),
        )
        .unwrap();
        repo.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let saved = repo.save_index();
        let snapshot = repo.save_file(cairn_repo::FileKind::Snapshot, b"{}");
        store
            .fail_locks
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if !fail {
            saved.unwrap();
            snapshot.unwrap();
            continue;
        }
        for e in [saved.unwrap_err(), snapshot.unwrap_err()] {
            assert!(matches!(e, RepoError::LockLost { .. }), "{e:?}");
            assert!(e.to_string().contains("could not be refreshed"), "{e}");
        }
    }
    let snapshots = b.list("snapshots/").unwrap();
    assert_eq!(
        snapshots.len(),
        1,
        "only the run whose lock held saved a snapshot"
    );
}

/// Issue 20.5: a snapshot never points at data that is not stored. A pack this command
/// stored that vanished before the snapshot (a prune elsewhere that took the lock for
/// stale) stops the snapshot, which is then not written.
#[test]
fn a_snapshot_is_not_written_when_a_pack_this_command_stored_is_gone() {
    let (_d, b) = setup();
    let repo = Repository::init(b.clone(), b"pw", &InitOptions::default()).unwrap();
    let (id, _) = repo
        .save_blob(BlobType::Data, b"content of a file")
        .unwrap();
    repo.flush().unwrap();
    repo.save_index().unwrap();
    let pack = repo.index().get(&id).unwrap().pack;
    b.remove(&cairn_repo::pack_name(&pack)).unwrap();
    let snap = cairn_format::Snapshot {
        time: chrono::Utc::now().fixed_offset(),
        parent: None,
        tree: id,
        paths: vec!["/x".into()],
        hostname: "h".into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        program_version: "test".into(),
        summary: None,
    };
    let e = repo.save_snapshot(&snap).unwrap_err();
    assert!(
        matches!(e, RepoError::LockLost { .. }) && e.to_string().contains("are gone"),
        "{e}"
    );
    assert!(
        b.list("snapshots/").unwrap().is_empty(),
        "no snapshot written"
    );
}

/// A command takes its lock before it reads the index: an index read first could name
/// packs a prune deletes before the lock is granted. So a command that cannot get its
/// lock has read no index, and one that can has it loaded under the lock.
#[test]
fn a_session_locks_before_it_loads_the_index() {
    use cairn_repo::session::{Access, LoadIndex, Session};
    let (_d, b) = setup();
    let repo = Repository::init(b.clone(), b"pw", &InitOptions::default()).unwrap();
    repo.save_blob(BlobType::Data, b"some data").unwrap();
    repo.flush().unwrap();
    repo.save_index().unwrap();

    let pruner = Arc::new(Repository::open(b.clone(), b"pw").unwrap());
    let prune = pruner.lock(LockKind::Exclusive, "prune").unwrap();
    let backup = Arc::new(Repository::open(b.clone(), b"pw").unwrap());
    let e = Session::begin(&backup, "backup", Access::Add, LoadIndex::Yes).unwrap_err();
    assert!(matches!(e, RepoError::Locked(_)), "{e}");
    assert!(
        backup.index().is_empty(),
        "the index was read before the lock"
    );
    // Browsing takes no lock, so it is not kept out.
    let browse = Session::begin(&backup, "ls", Access::Browse, LoadIndex::Yes).unwrap();
    assert_eq!(backup.index().len(), 1);
    drop((browse, prune));

    let fresh = Arc::new(Repository::open(b.clone(), b"pw").unwrap());
    let held = Session::begin(&fresh, "backup", Access::Add, LoadIndex::Yes).unwrap();
    assert_eq!(fresh.index().len(), 1);
    let locks = fresh.list_locks().unwrap();
    assert_eq!(locks.len(), 1);
    assert!(!locks[0].1.as_ref().unwrap().exclusive);
    drop(held);
    assert!(fresh.list_locks().unwrap().is_empty());

    // A dry run writes nothing, so it locks nothing.
    let dry = Arc::new(
        Repository::open_with(
            b.clone(),
            b"pw",
            &cairn_repo::OpenOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let _held = Session::begin(&dry, "backup", Access::Add, LoadIndex::Yes).unwrap();
    assert!(fresh.list_locks().unwrap().is_empty());
}
