//! Prune never asks the store to delete a pack under Object Lock: the pack stays,
//! listed as kept, and a prune after its lock ends deletes it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use cairn_backend::{Backend, BackendError, ErrorKind, LocalBackend, ObjectInfo, WriteOptions};
use cairn_ops::backup::BackupOptions;
use cairn_repo::{InitOptions, Repository};

/// A local store whose `data/` files are locked until `unlock_all`, refusing (and
/// counting) any attempt to delete one, as B2 does.
struct LockedStore {
    inner: LocalBackend,
    locked: Mutex<bool>,
    refused: Mutex<HashSet<String>>,
}

const UNTIL: i64 = 4_102_444_800_000; // 2100-01-01

impl LockedStore {
    fn is_locked(&self, name: &str) -> bool {
        *self.locked.lock().unwrap() && name.starts_with("data/")
    }
}

impl Backend for LockedStore {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let mut l = self.inner.list(prefix)?;
        for o in &mut l {
            if self.is_locked(&o.name) {
                o.retain_until_millis = Some(UNTIL);
            }
        }
        Ok(l)
    }
    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        self.inner.stat(name)
    }
    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        self.inner.read(name)
    }
    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        self.inner.read_range(name, offset, length)
    }
    fn write(&self, name: &str, data: &[u8], opts: &WriteOptions) -> Result<(), BackendError> {
        self.inner.write(name, data, opts)
    }
    fn write_new(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.inner.write_new(name, data)
    }
    fn remove(&self, name: &str) -> Result<(), BackendError> {
        if self.is_locked(name) {
            self.refused.lock().unwrap().insert(name.to_string());
            return Err(BackendError::new(ErrorKind::Unauthorized, name, "locked"));
        }
        self.inner.remove(name)
    }
}

#[test]
fn locked_packs_wait_for_their_lock_to_end() {
    std::env::set_var(cairn_repo::KDF_ENV, "1");
    let d = tempfile::tempdir().unwrap();
    let store = Arc::new(LockedStore {
        inner: LocalBackend::new(d.path().join("repo")),
        locked: Mutex::new(false),
        refused: Mutex::new(HashSet::new()),
    });
    let backend: Arc<dyn Backend> = store.clone();
    let opts = InitOptions {
        pack_size_mib: 1,
        ..Default::default()
    };
    let repo = Arc::new(Repository::init(Arc::clone(&backend), b"pw", &opts).unwrap());
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("gone"), &data).unwrap();
    let backup = |repo: &Arc<Repository>| {
        let o = BackupOptions {
            paths: vec![src.clone()],
            ..BackupOptions::default()
        };
        cairn_ops::backup::run(repo, &o, &cairn_ops::NoProgress).unwrap();
    };
    backup(&repo);
    std::fs::remove_file(src.join("gone")).unwrap();
    std::fs::write(src.join("kept"), b"small").unwrap();
    backup(&repo);
    let packs_before = store.inner.list("data/").unwrap().len();
    *store.locked.lock().unwrap() = true;

    let forget = cairn_ops::forget::ForgetOptions {
        policy: cairn_ops::forget::RetentionPolicy {
            last: 1,
            ..Default::default()
        },
        group_by: cairn_ops::snapshots::GroupBy::parse("host").unwrap(),
        prune: Some(cairn_ops::prune::PruneOptions::default()),
        ..Default::default()
    };
    let s = cairn_ops::forget::run(&repo, &forget, &cairn_ops::NoProgress).unwrap();
    let pruned = s.pruned.unwrap();
    assert!(!pruned.locked_kept.is_empty(), "{pruned:?}");
    assert!(pruned.locked_kept[0].contains("kept until 2100-01-01"));
    assert!(
        store.refused.lock().unwrap().is_empty(),
        "a locked pack was asked to go"
    );
    assert_eq!(store.inner.list("data/").unwrap().len(), packs_before);
    let repo = Arc::new(Repository::open(Arc::clone(&backend), b"pw").unwrap());
    let c = cairn_ops::check::run(
        &repo,
        cairn_ops::check::ReadData::All,
        "here",
        &cairn_ops::NoProgress,
    )
    .unwrap();
    assert!(c.errors.is_empty(), "{:?}", c.errors);

    // The lock ends: the next prune deletes what waited.
    *store.locked.lock().unwrap() = false;
    let s = cairn_ops::prune::run(
        &repo,
        &cairn_ops::prune::PruneOptions::default(),
        &cairn_ops::NoProgress,
    )
    .unwrap();
    assert!(s.locked_kept.is_empty());
    assert!(s.unindexed_packs_deleted > 0, "{s:?}");
    assert!(store.inner.list("data/").unwrap().len() < packs_before);
    let repo = Arc::new(Repository::open(Arc::clone(&backend), b"pw").unwrap());
    let c = cairn_ops::check::run(
        &repo,
        cairn_ops::check::ReadData::All,
        "here",
        &cairn_ops::NoProgress,
    )
    .unwrap();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
}
