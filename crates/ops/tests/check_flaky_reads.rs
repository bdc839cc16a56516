//! `check --read-data` against a store whose link fails: a pack that reads after a
//! failure or two is intact, and one that cannot be read at all is reported as
//! unreadable, never as damaged blobs (which would send the user to `repair`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_backend::{Backend, BackendError, ErrorKind, LocalBackend, ObjectInfo, WriteOptions};
use cairn_ops::backup::BackupOptions;
use cairn_repo::{InitOptions, Repository};

/// A local store whose whole-pack reads fail with a network error, `fails` times per
/// pack.
struct FlakyStore {
    inner: LocalBackend,
    fails: Mutex<Option<u32>>,
    failed: Mutex<HashMap<String, u32>>,
}

impl Backend for FlakyStore {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix)
    }
    fn stat(&self, name: &str) -> Result<ObjectInfo, BackendError> {
        self.inner.stat(name)
    }
    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        if let Some(fails) = *self.fails.lock().unwrap() {
            if name.starts_with("data/") {
                let mut failed = self.failed.lock().unwrap();
                let n = failed.entry(name.to_string()).or_default();
                if *n < fails {
                    *n += 1;
                    return Err(BackendError::new(
                        ErrorKind::Transient,
                        name,
                        "lost the connection: end of file before message length reached",
                    ));
                }
            }
        }
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
        self.inner.remove(name)
    }
}

#[test]
fn network_failures_are_not_damage() {
    std::env::set_var(cairn_repo::KDF_ENV, "1");
    let d = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore {
        inner: LocalBackend::new(d.path().join("repo")),
        fails: Mutex::new(None),
        failed: Mutex::new(HashMap::new()),
    });
    let backend: Arc<dyn Backend> = store.clone();
    let repo = Arc::new(Repository::init(backend, b"pw", &InitOptions::default()).unwrap());
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), vec![7u8; 100_000]).unwrap();
    let o = BackupOptions {
        paths: vec![src.clone()],
        ..BackupOptions::default()
    };
    cairn_ops::backup::run(&repo, &o, &cairn_ops::NoProgress).unwrap();
    let check = || {
        cairn_ops::check::run(
            &repo,
            cairn_ops::check::ReadData::All,
            "here",
            &cairn_ops::NoProgress,
        )
        .unwrap()
    };

    // Two failures per pack: read on the third try, all intact.
    *store.fails.lock().unwrap() = Some(2);
    let c = check();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert!(c.packs_checked > 0);

    // Always failing: an error naming the pack as unreadable, no damaged blob.
    store.failed.lock().unwrap().clear();
    *store.fails.lock().unwrap() = Some(u32::MAX);
    let c = check();
    assert!(!c.errors.is_empty());
    assert!(
        c.errors.iter().all(|e| e.contains("could not be read")),
        "{:?}",
        c.errors
    );
    assert!(c.affected.is_empty(), "{:?}", c.affected);
}
