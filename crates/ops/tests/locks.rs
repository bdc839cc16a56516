//! Every command's `run` holds the lock its work needs while that work runs, and
//! releases it after; commands that change what others read refuse while anyone else
//! holds a lock, and change nothing.
//!
//! The work is observed from inside: a `Progress` (or a repair's callback) lists the
//! repository's locks at the moment the command reports that its work has started.

use std::sync::{Arc, Mutex};

use cairn_backend::{Backend, LocalBackend};
use cairn_ops::backup::BackupOptions;
use cairn_ops::Progress;
use cairn_repo::{InitOptions, LockKind, RepoError, Repository};

/// What the locks were when the work started: (exclusive?, command) for each.
#[derive(Default)]
struct SeenLocks {
    repo: Mutex<Option<Arc<Repository>>>,
    seen: Mutex<Vec<Vec<(String, String)>>>,
}

impl SeenLocks {
    fn watching(repo: &Arc<Repository>) -> SeenLocks {
        SeenLocks {
            repo: Mutex::new(Some(Arc::clone(repo))),
            seen: Mutex::default(),
        }
    }

    fn look(&self) {
        let repo = self.repo.lock().unwrap();
        let locks = repo.as_ref().unwrap().list_locks().unwrap();
        let mut now: Vec<(String, String)> = locks
            .into_iter()
            .map(|(_, l)| {
                let l = l.unwrap();
                (l.kind.unwrap_or_default(), l.command)
            })
            .collect();
        now.sort();
        self.seen.lock().unwrap().push(now);
    }

    /// The locks seen at the first `start`.
    fn first(&self) -> Vec<(String, String)> {
        self.seen
            .lock()
            .unwrap()
            .first()
            .cloned()
            .expect("the command never started its work")
    }
}

impl Progress for SeenLocks {
    fn start(&self, _files: u64, _bytes: u64) {
        self.look();
    }
}

fn shared(cmd: &str) -> (String, String) {
    ("read".into(), cmd.to_string())
}

fn adds(cmd: &str) -> (String, String) {
    ("add".into(), cmd.to_string())
}

fn maintenance(cmd: &str) -> (String, String) {
    ("maintenance".into(), cmd.to_string())
}

fn exclusive(cmd: &str) -> (String, String) {
    ("exclusive".into(), cmd.to_string())
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: Arc<Repository>,
    backend: Arc<dyn Backend>,
    source: std::path::PathBuf,
    root: std::path::PathBuf,
}

fn fixture() -> Fixture {
    std::env::set_var(cairn_repo::KDF_ENV, "1");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let source = dir.path().join("src");
    std::fs::create_dir_all(source.join("docs")).unwrap();
    std::fs::write(source.join("docs/a.txt"), b"alpha".repeat(1000)).unwrap();
    std::fs::write(source.join("b.bin"), vec![7u8; 300_000]).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&root));
    let repo =
        Arc::new(Repository::init(Arc::clone(&backend), b"pw", &InitOptions::default()).unwrap());
    let f = Fixture {
        _dir: dir,
        repo,
        backend,
        source,
        root,
    };
    backup(&f, "one");
    f
}

fn backup(f: &Fixture, tag: &str) {
    let opts = BackupOptions {
        paths: vec![f.source.clone()],
        tags: vec![tag.to_string()],
        ..BackupOptions::default()
    };
    cairn_ops::backup::run(&f.repo, &opts, &cairn_ops::NoProgress).unwrap();
}

fn no_locks_left(repo: &Repository) {
    assert!(
        repo.list_locks().unwrap().is_empty(),
        "a lock outlived its command"
    );
}

#[test]
fn each_command_holds_its_lock_while_it_works() {
    let f = fixture();
    let repo = &f.repo;

    let seen = SeenLocks::watching(repo);
    let opts = BackupOptions {
        paths: vec![f.source.clone()],
        ..BackupOptions::default()
    };
    cairn_ops::backup::run(repo, &opts, &seen).unwrap();
    assert_eq!(seen.first(), vec![adds("backup")]);
    no_locks_left(repo);

    let seen = SeenLocks::watching(repo);
    let s = cairn_ops::check::run(repo, cairn_ops::check::ReadData::All, "here", &seen).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(seen.first(), vec![shared("check")]);
    no_locks_left(repo);

    let seen = SeenLocks::watching(repo);
    let target = f.root.with_file_name("restored");
    let opts = cairn_ops::restore::RestoreOptions {
        target: target.clone(),
        ..Default::default()
    };
    let (_, s) = cairn_ops::restore::run(repo, "latest", &opts, &seen).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(seen.first(), vec![shared("restore")]);
    no_locks_left(repo);

    let seen = SeenLocks::watching(repo);
    let scratch = tempfile::tempdir().unwrap();
    let opts = cairn_ops::drill::DrillOptions {
        snapshots: 1,
        since: chrono::DateTime::UNIX_EPOCH.fixed_offset(),
        files: 2,
        compare_source: false,
        pack_fraction: 1.0,
        location: "here".into(),
        scratch: scratch.path().to_path_buf(),
    };
    cairn_ops::drill::run(repo, &opts, &seen).unwrap();
    assert_eq!(seen.first(), vec![shared("drill")]);
    no_locks_left(repo);

    let seen = SeenLocks::watching(repo);
    let opts = cairn_ops::prune::PruneOptions {
        dry_run: true,
        ..Default::default()
    };
    cairn_ops::prune::run(repo, &opts, &seen).unwrap();
    assert_eq!(seen.first(), vec![maintenance("prune")]);
    no_locks_left(repo);
}

#[test]
fn ship_and_copy_lock_their_repositories() {
    let f = fixture();
    let dest = f.root.with_file_name("offsite");
    std::fs::create_dir_all(&dest).unwrap();
    let dst = LocalBackend::new(&dest);
    let seen = SeenLocks::watching(&f.repo);
    let opts = cairn_ops::ship::ShipOptions {
        transfers: 2,
        ..Default::default()
    };
    let s = cairn_ops::ship::run(&f.repo, f.backend.as_ref(), &dst, &opts, &seen).unwrap();
    assert!(s.files_uploaded > 0);
    assert_eq!(seen.first(), vec![shared("ship")]);
    no_locks_left(&f.repo);
    // The ship's own lock file was taken after the listing it ships from: it is not
    // among the files shipped.
    assert!(std::fs::read_dir(dest.join("locks")).map_or(true, |d| d.count() == 0));

    let other = f.root.with_file_name("other");
    let other: Arc<dyn Backend> = Arc::new(LocalBackend::new(&other));
    let dst = Arc::new(Repository::init(other, b"pw2", &InitOptions::default()).unwrap());
    let seen_src = SeenLocks::watching(&f.repo);
    let s = cairn_ops::copy::run(&f.repo, &dst, &[], &seen_src).unwrap();
    assert_eq!(s.snapshots_copied.len(), 1);
    assert_eq!(seen_src.first(), vec![shared("copy (source)")]);
    let seen_dst = SeenLocks::watching(&dst);
    cairn_ops::copy::run(&f.repo, &dst, &[], &seen_dst).unwrap();
    assert_eq!(seen_dst.first(), vec![adds("copy")]);
    no_locks_left(&f.repo);
    no_locks_left(&dst);
}

#[test]
fn forget_holds_the_maintenance_lock_and_repair_the_exclusive_one() {
    let f = fixture();
    backup(&f, "two");
    let seen = SeenLocks::watching(&f.repo);
    let opts = cairn_ops::forget::ForgetOptions {
        policy: cairn_ops::forget::RetentionPolicy {
            last: 1,
            ..Default::default()
        },
        group_by: cairn_ops::snapshots::GroupBy::parse("host").unwrap(),
        prune: Some(cairn_ops::prune::PruneOptions::default()),
        ..Default::default()
    };
    let s = cairn_ops::forget::run(&f.repo, &opts, &seen).unwrap();
    assert_eq!(s.removed.len(), 1);
    assert!(s.pruned.is_some());
    assert_eq!(seen.first(), vec![maintenance("forget")]);
    no_locks_left(&f.repo);

    let during = SeenLocks::watching(&f.repo);
    cairn_ops::repair::index(&f.repo, &|_| {
        during.look();
        Ok(())
    })
    .unwrap();
    assert_eq!(during.first(), vec![exclusive("repair")]);
    no_locks_left(&f.repo);
}

/// Commands that replace or remove what others read wait for nobody: they refuse at
/// once while another command holds a lock, and leave everything as it was.
#[test]
fn changes_are_refused_while_another_command_holds_a_lock() {
    let f = fixture();
    let other = Arc::new(Repository::open(Arc::clone(&f.backend), b"pw").unwrap());
    let held = other.lock(LockKind::Shared, "backup").unwrap();
    let snaps_before = f.repo.list_snapshots().unwrap();
    let keys_before = f.repo.list_keys().unwrap().len();
    let locked = |e: cairn_ops::OpsError| {
        assert!(
            matches!(e, cairn_ops::OpsError::Repo(RepoError::Locked(_))),
            "{e}"
        )
    };

    let change = cairn_ops::tag::TagChange {
        add: vec!["new".into()],
        ..Default::default()
    };
    locked(cairn_ops::tag::run(&f.repo, &["latest".into()], &change).unwrap_err());
    let add = cairn_ops::key::KeyChange::Add { password: b"x" };
    locked(cairn_ops::key::change(&f.repo, add).unwrap_err());
    locked(cairn_ops::repair::index(&f.repo, &|_| Ok(())).unwrap_err());

    let after: Vec<_> = f
        .repo
        .list_snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let before: Vec<_> = snaps_before.into_iter().map(|s| s.id).collect();
    assert_eq!(after, before);
    assert_eq!(f.repo.list_keys().unwrap().len(), keys_before);
    // prune waits for nobody either, and runs beside it (issue 23).
    let prune = cairn_ops::prune::PruneOptions::default();
    cairn_ops::prune::run(&f.repo, &prune, &cairn_ops::NoProgress).unwrap();
    drop(held);

    // With the other command gone, the same change goes through.
    let changed = cairn_ops::tag::run(&f.repo, &["latest".into()], &change).unwrap();
    assert_eq!(changed.len(), 1);
    no_locks_left(&f.repo);
}

/// Prune in two phases (issue 23): where a backup runs, the packs prune retires are
/// only marked (still readable, never deduplicated against: the backup stores such a
/// blob again); with nobody left that could use them, the next prune deletes them.
#[test]
fn prune_beside_a_backup_marks_and_a_later_prune_deletes() {
    let f = fixture();
    std::fs::write(f.source.join("b.bin"), vec![8u8; 300_000]).unwrap();
    backup(&f, "two");
    let forget = cairn_ops::forget::ForgetOptions {
        snapshots: vec![f.repo.list_snapshots().unwrap()[0].id.to_hex()],
        ..Default::default()
    };
    cairn_ops::forget::run(&f.repo, &forget, &cairn_ops::NoProgress).unwrap();
    let packs = || -> Vec<String> {
        let mut v: Vec<String> = f
            .backend
            .list(cairn_repo::DATA_DIR)
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        v.sort();
        v
    };
    let before = packs();

    // Another host's backup runs.
    let other = Arc::new(Repository::open(Arc::clone(&f.backend), b"pw").unwrap());
    let held = other.lock(LockKind::Add, "backup").unwrap();
    let s = cairn_ops::prune::run(&f.repo, &Default::default(), &cairn_ops::NoProgress).unwrap();
    assert!(s.packs_marked > 0, "{s:?}");
    let now = packs();
    assert!(
        before.iter().all(|p| now.contains(p)),
        "nothing deleted beside a backup"
    );
    let fresh = Arc::new(Repository::open(Arc::clone(&f.backend), b"pw").unwrap());
    fresh.load_index().unwrap();
    let marked: Vec<String> = fresh
        .index()
        .marked_packs()
        .map(|(id, _, _)| cairn_repo::pack_name(&id))
        .collect();
    assert_eq!(marked.len() as u64, s.packs_marked);
    let c = cairn_ops::check::run(
        &fresh,
        cairn_ops::check::ReadData::All,
        "here",
        &cairn_ops::NoProgress,
    )
    .unwrap();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.packs_marked, s.packs_marked);

    // A backup of the forgotten content stores it again rather than use a marked pack.
    std::fs::write(f.source.join("b.bin"), vec![7u8; 300_000]).unwrap();
    let opts = BackupOptions {
        paths: vec![f.source.clone()],
        ..BackupOptions::default()
    };
    let b = cairn_ops::backup::backup(&fresh, &opts).unwrap();
    assert!(b.counts.data_added > 0, "stored again: {:?}", b.counts);
    drop(held);

    // Nobody could be using the marked packs now: the next prune deletes them.
    let again = Arc::new(Repository::open(Arc::clone(&f.backend), b"pw").unwrap());
    let s2 = cairn_ops::prune::run(&again, &Default::default(), &cairn_ops::NoProgress).unwrap();
    assert_eq!(s2.packs_marked, 0, "{s2:?}");
    let after = packs();
    assert!(marked.iter().all(|m| !after.contains(m)), "{after:?}");
    let last = Arc::new(Repository::open(Arc::clone(&f.backend), b"pw").unwrap());
    let c = cairn_ops::check::run(
        &last,
        cairn_ops::check::ReadData::All,
        "here",
        &cairn_ops::NoProgress,
    )
    .unwrap();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.packs_marked, 0);
    no_locks_left(&f.repo);
}
