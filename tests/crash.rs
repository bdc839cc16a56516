//! Crash consistency. Three suites:
//!
//! - SIGKILL at random moments during backup, prune, forget, key passwd and ship (the
//!   real binary), then: `check --read-data` passes, every snapshot that was complete
//!   before restores byte for byte and metadata for metadata, and the next run of the
//!   same command succeeds. 10 kill points per command here; `CAIRN_CRASH_POINTS=50`
//!   for the long run, `CAIRN_CRASH_SEED` to replay one.
//! - A power cut at every write boundary of a backup and a prune (in process, through a
//!   backend wrapper that refuses every write after the cut), checked the same way.
//! - The local backend's durability discipline as the kernel sees it (strace): every
//!   file renamed into a repository was fsync'd first, and its directory after.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_backend::{
    Backend, BackendError, ErrorKind, LocalBackend, ObjectInfo, RangeSource, WriteOptions,
};

use crate::util::*;

fn points() -> usize {
    std::env::var("CAIRN_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// xorshift64*, seeded from CAIRN_CRASH_SEED or the clock (printed, to replay a failure).
struct Rng(u64);

impl Rng {
    fn new(what: &str) -> Rng {
        let seed = std::env::var("CAIRN_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{what}: CAIRN_CRASH_SEED={seed}");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

type Tree = BTreeMap<Vec<u8>, Meta>;

/// A repository, its source tree, and what each snapshot must restore to.
struct Harness {
    env: Env,
    src: PathBuf,
    expected: BTreeMap<String, Tree>,
    rng: Rng,
    generation: u64,
    /// Kill points that landed while the command was running (not before it started
    /// doing anything observable, not after it had finished).
    killed_mid_run: usize,
    /// Kill attempts, including those that came after the command had finished.
    attempts: usize,
    /// How long an uninterrupted run of the command under test takes.
    typical: Duration,
}

impl Harness {
    fn new(what: &str) -> Harness {
        let env = Env::new();
        env.ok(&["init", "--pack-size", "1"]);
        let src = env.path("src");
        fs::create_dir_all(src.join("d")).unwrap();
        let mut h = Harness {
            env,
            src,
            expected: BTreeMap::new(),
            rng: Rng::new(what),
            generation: 0,
            killed_mid_run: 0,
            attempts: 0,
            typical: Duration::from_millis(200),
        };
        h.grow();
        h
    }

    /// Changes the source: new files, one rewritten, one removed, so every backup has
    /// new packs to write and every prune has something to repack or delete.
    fn grow(&mut self) {
        self.generation += 1;
        let g = self.generation;
        for i in 0..3 {
            let len = 200_000 + self.rng.below(600_000) as usize;
            fs::write(
                self.src.join(format!("d/g{g}-{i}")),
                pseudo_random(g * 10 + i, len),
            )
            .unwrap();
        }
        fs::write(
            self.src.join("d/changing"),
            pseudo_random(g + 5000, 300_000),
        )
        .unwrap();
        if g > 2 {
            let _ = fs::remove_file(self.src.join(format!("d/g{}-0", g - 2)));
        }
    }

    fn snapshot_ids(&self, cmd: &mut Command) -> Vec<String> {
        let out = cmd.args(["snapshots", "--json"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "snapshots: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn local(&self) -> Command {
        self.env.repo_cmd()
    }

    /// Records snapshots the repository has and `expected` does not: the source has not
    /// changed since they were taken.
    fn adopt_new_snapshots(&mut self) {
        let now = snapshot_tree(&self.src);
        for id in self.snapshot_ids(&mut self.local()) {
            self.expected.entry(id).or_insert_with(|| now.clone());
        }
    }

    fn backup(&mut self) {
        self.env.backup(&[&self.src], &[]);
        self.adopt_new_snapshots();
    }

    /// Runs `cmd`, SIGKILLs it at a random moment in [0, typical run time].
    fn kill_during(&mut self, cmd: &mut Command) {
        self.attempts += 1;
        let delay = Duration::from_micros(self.rng.below(self.typical.as_micros() as u64));
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !finished {
            self.killed_mid_run += 1;
        }
    }

    /// Times an uninterrupted run that must succeed (the "next run").
    fn rerun(&mut self, what: &str, cmd: &mut Command) {
        let t = Instant::now();
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what} after a crash: {}",
            stderr(&out)
        );
        self.typical = (self.typical + t.elapsed()) / 2;
    }

    /// `check --read-data` passes on the repository `cmd` names, and the snapshots it
    /// lists that we know restore exactly (the newest three and three at random, so the
    /// long run stays linear; `check --read-data` has read every blob of all of them).
    fn verify(&mut self, what: &str, cmd: &dyn Fn(&Env) -> Command) {
        let cmd = || cmd(&self.env);
        let out = cmd().args(["check", "--read-data"]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what}: check --read-data after a crash: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        let ids: Vec<String> = self
            .snapshot_ids(&mut cmd())
            .into_iter()
            .filter(|id| self.expected.contains_key(id))
            .collect();
        let mut pick: Vec<&String> = ids.iter().rev().take(3).collect();
        let random: Vec<usize> = (0..3)
            .map(|_| self.rng.below(ids.len() as u64) as usize)
            .collect();
        if !ids.is_empty() {
            pick.extend(random.into_iter().map(|i| &ids[i]));
        }
        pick.sort();
        pick.dedup();
        for id in pick {
            let target = self.env.path("restored");
            let _ = fs::remove_dir_all(&target);
            let out = cmd()
                .args(["restore", id, "--target"])
                .arg(&target)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what}: restore {id}: {}",
                stderr(&out)
            );
            let got = snapshot_tree(&target.join(self.src.strip_prefix("/").unwrap()));
            let want = &self.expected[id];
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{what}: snapshot {id} restores other paths"
            );
            for (k, m) in want {
                assert_eq!(
                    &got[k],
                    m,
                    "{what}: snapshot {id}: {:?} differs",
                    String::from_utf8_lossy(k)
                );
            }
            fs::remove_dir_all(&target).unwrap();
        }
    }

    /// Whether to go on: until `n` kills have landed while the command ran (a kill that
    /// comes after it finished tests nothing), within 4n attempts.
    fn more(&self, n: usize) -> bool {
        self.killed_mid_run < n && self.attempts < 4 * n
    }

    fn report(&self, what: &str, n: usize) {
        eprintln!(
            "{what}: {} kill points landed while it ran, of {} attempts",
            self.killed_mid_run, self.attempts
        );
        assert!(
            self.killed_mid_run >= n,
            "{what}: only {} of {} kills landed mid-run",
            self.killed_mid_run,
            self.attempts
        );
    }
}

#[test]
fn sigkill_during_backup() {
    let mut h = Harness::new("backup");
    h.backup();
    let n = points();
    while h.more(n) {
        h.grow();
        let src = h.src.clone();
        h.kill_during(h.local().arg("backup").arg(&src));
        h.adopt_new_snapshots();
        h.verify("backup", &Env::repo_cmd);
        h.rerun("backup", h.local().arg("backup").arg(&src));
        h.adopt_new_snapshots();
    }
    h.report("backup", n);
}

#[test]
fn sigkill_during_prune() {
    let mut h = Harness::new("prune");
    h.backup();
    let n = points();
    while h.more(n) {
        h.grow();
        h.backup();
        h.grow();
        h.backup();
        // Forget all but the newest two; what prune may delete is then known.
        let out = h
            .local()
            .args(["forget", "--keep-last", "2"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let kept = h.snapshot_ids(&mut h.local());
        h.expected.retain(|id, _| kept.contains(id));
        h.kill_during(h.local().args(["prune", "--max-unused", "0%"]));
        h.verify("prune", &Env::repo_cmd);
        h.rerun("prune", h.local().args(["prune", "--max-unused", "0%"]));
        h.verify("prune (rerun)", &Env::repo_cmd);
    }
    h.report("prune", n);
}

#[test]
fn sigkill_during_forget() {
    let mut h = Harness::new("forget");
    h.backup();
    let n = points();
    while h.more(n) {
        for _ in 0..2 {
            h.grow();
            h.backup();
        }
        let before = h.snapshot_ids(&mut h.local());
        h.kill_during(h.local().args(["forget", "--keep-last", "3"]));
        let after = h.snapshot_ids(&mut h.local());
        // Only forgotten snapshots may have gone; the three newest are all there.
        assert!(
            after.iter().all(|id| before.contains(id)),
            "forget added snapshots?"
        );
        // `snapshots` lists oldest first.
        let newest: Vec<String> = before.iter().rev().take(3).cloned().collect();
        for id in &newest {
            assert!(after.contains(id), "forget lost kept snapshot {id}");
        }
        h.expected.retain(|id, _| after.contains(id));
        h.verify("forget", &Env::repo_cmd);
        h.rerun("forget", h.local().args(["forget", "--keep-last", "3"]));
        assert_eq!(h.snapshot_ids(&mut h.local()).len(), 3);
        h.expected.retain(|id, _| newest.contains(id));
    }
    h.report("forget", n);
}

#[test]
fn sigkill_during_key_passwd() {
    let mut h = Harness::new("key passwd");
    h.backup();
    let n = points();
    let mut current = PASSWORD.to_string();
    let mut i = 0;
    while h.more(n) {
        i += 1;
        let next = format!("password number {i}");
        let file = h.env.path("newpw");
        fs::write(&file, &next).unwrap();
        let with = |env: &Env, pw: &str| {
            let mut c = env.cmd();
            c.env("CAIRN_PASSWORD", pw).arg("-r").arg(env.repo());
            c
        };
        h.kill_during(
            with(&h.env, &current)
                .args(["key", "passwd", "--new-password-file"])
                .arg(&file),
        );
        let opens = |env: &Env, pw: &str| {
            with(env, pw)
                .args(["snapshots", "--json"])
                .output()
                .unwrap()
                .status
                .code()
                == Some(0)
        };
        let (old_ok, new_ok) = (opens(&h.env, &current), opens(&h.env, &next));
        assert!(
            old_ok || new_ok,
            "key passwd killed: neither the old nor the new password opens the repository"
        );
        if new_ok {
            current = next;
        }
        let pw = current.clone();
        h.verify("key passwd", &|env: &Env| with(env, &pw));
        let again = format!("password number {i} again");
        fs::write(&file, &again).unwrap();
        h.rerun(
            "key passwd",
            with(&h.env, &current)
                .args(["key", "passwd", "--new-password-file"])
                .arg(&file),
        );
        current = again;
        assert!(opens(&h.env, &current));
    }
    h.report("key passwd", n);
}

#[test]
fn sigkill_during_ship() {
    let mut h = Harness::new("ship");
    let emu = Emulator::start(&h.env.path("emu"), &[]);
    let dest = "b2:crash-bucket/offsite";
    let b2 = |env: &Env, emu: &Emulator| {
        let mut c = env.cmd();
        emu.credentials(&mut c);
        c
    };
    h.backup();
    // The first ship creates the copy; from then on it must be readable at every moment.
    let out = b2(&h.env, &emu)
        .arg("-r")
        .arg(h.env.repo())
        .args(["ship", dest, "--create-bucket"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let n = points();
    while h.more(n) {
        h.grow();
        h.backup();
        h.kill_during(
            b2(&h.env, &emu)
                .arg("-r")
                .arg(h.env.repo())
                .args(["ship", dest]),
        );
        // The offsite copy is readable at every moment: whatever it lists restores.
        h.verify("ship", &|env: &Env| {
            let mut c = b2(env, &emu);
            c.args(["-r", dest]);
            c
        });
        h.rerun(
            "ship",
            b2(&h.env, &emu)
                .arg("-r")
                .arg(h.env.repo())
                .args(["ship", dest, "--verify"]),
        );
        let mut remote = b2(&h.env, &emu);
        remote.args(["-r", dest]);
        assert_eq!(
            h.snapshot_ids(&mut remote),
            h.snapshot_ids(&mut h.local()),
            "after a full ship the copy has every snapshot"
        );
    }
    h.report("ship", n);
}

/// A backend that stops accepting writes after `left` more of them, as if the power
/// went: whatever a write or delete returned before the cut is on disk (the local
/// backend's fsyncs, checked by `local_backend_fsyncs_file_then_directory`); nothing
/// after it happens.
struct PowerCut {
    inner: LocalBackend,
    left: AtomicI64,
}

impl PowerCut {
    fn spend(&self, name: &str) -> Result<(), BackendError> {
        if self.left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(BackendError::new(ErrorKind::Other, name, "power cut"));
        }
        Ok(())
    }
}

impl Backend for PowerCut {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), BackendError> {
        self.spend("")?;
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix)
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
        self.spend(name)?;
        self.inner.write(name, data, opts)
    }
    fn write_stream(
        &self,
        name: &str,
        size: u64,
        source: &RangeSource<'_>,
        opts: &WriteOptions,
    ) -> Result<(), BackendError> {
        self.spend(name)?;
        self.inner.write_stream(name, size, source, opts)
    }
    fn remove(&self, name: &str) -> Result<(), BackendError> {
        self.spend(name)?;
        self.inner.remove(name)
    }
}

/// Runs `op` against a copy of `pristine` whose backend loses power after `budget`
/// writes; returns whether `op` finished before the cut, and the copy's path.
fn with_power_cut(
    h: &Harness,
    pristine: &Path,
    budget: i64,
    op: &dyn Fn(&Arc<cairn_repo::Repository>) -> anyhow::Result<()>,
) -> bool {
    let _ = fs::remove_dir_all(h.env.repo());
    copy_tree(pristine, &h.env.repo());
    let backend = PowerCut {
        inner: LocalBackend::new(h.env.repo()),
        left: AtomicI64::new(budget),
    };
    let repo = cairn_repo::Repository::open(Arc::new(backend), PASSWORD.as_bytes()).unwrap();
    repo.load_index().unwrap();
    let finished = op(&Arc::new(repo)).is_ok();
    // After the power comes back the lock holders are gone: their lock files are stale.
    for e in fs::read_dir(h.env.repo().join("locks"))
        .into_iter()
        .flatten()
        .flatten()
    {
        fs::remove_file(e.path()).unwrap();
    }
    finished
}

#[test]
fn power_cut_at_every_write_of_backup_and_prune() {
    use cairn_repo::LockKind;
    let mut h = Harness::new("power cut");
    h.backup();
    h.grow();
    h.backup();
    let pristine = h.env.path("pristine");
    let mut cuts = 0;

    // backup: cut after 0, 1, 2, ... writes until one run finishes.
    h.grow();
    copy_tree(&h.env.repo(), &pristine);
    let src = h.src.clone();
    let backup = |repo: &Arc<cairn_repo::Repository>| -> anyhow::Result<()> {
        let _lock = repo.lock(LockKind::Shared, "backup")?;
        let opts = cairn_ops::backup::BackupOptions {
            paths: vec![src.clone()],
            host: Some("crash".into()),
            ..Default::default()
        };
        let s = cairn_ops::backup::backup(repo, &opts)?;
        anyhow::ensure!(s.errors.is_empty(), "{:?}", s.errors);
        Ok(())
    };
    let before = h.expected.clone();
    for budget in 0.. {
        let finished = with_power_cut(&h, &pristine, budget, &backup);
        cuts += 1;
        h.expected = before.clone();
        h.adopt_new_snapshots();
        assert!(h.expected.len() <= before.len() + 1);
        if finished {
            // A finished backup reported its snapshot saved: it must be there.
            assert_eq!(
                h.expected.len(),
                before.len() + 1,
                "backup finished but its snapshot is gone"
            );
        }
        h.verify(&format!("backup cut after {budget} writes"), &Env::repo_cmd);
        if finished {
            break;
        }
        assert!(budget < 500, "backup never finished");
    }

    // prune after forgetting the oldest snapshot: cut at every write again.
    let out = h
        .local()
        .args(["forget", "--keep-last", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let kept = h.snapshot_ids(&mut h.local());
    h.expected.retain(|id, _| kept.contains(id));
    let _ = fs::remove_dir_all(&pristine);
    copy_tree(&h.env.repo(), &pristine);
    let prune = |repo: &Arc<cairn_repo::Repository>| -> anyhow::Result<()> {
        let _lock = repo.lock(LockKind::Exclusive, "prune")?;
        let opts = cairn_ops::prune::PruneOptions {
            max_unused: cairn_ops::prune::MaxUnused::parse("0%").unwrap(),
            ..Default::default()
        };
        cairn_ops::prune::PrunePlan::build(repo, &opts)?.execute(repo)?;
        Ok(())
    };
    let mut prune_writes = 0;
    for budget in 0.. {
        let finished = with_power_cut(&h, &pristine, budget, &prune);
        cuts += 1;
        assert_eq!(
            h.snapshot_ids(&mut h.local()),
            kept,
            "prune changed the snapshot list"
        );
        h.verify(&format!("prune cut after {budget} writes"), &Env::repo_cmd);
        // And the next prune, with the power back, finishes.
        let out = h
            .local()
            .args(["prune", "--max-unused", "0%"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "prune after a cut at {budget}: {}",
            stderr(&out)
        );
        if finished {
            prune_writes = budget;
            break;
        }
        assert!(budget < 500, "prune never finished");
    }
    assert!(
        prune_writes >= 4,
        "prune made only {prune_writes} writes: nothing was tested"
    );
    eprintln!("power cut: {cuts} cut points tried");
}

/// Every rename into the repository follows an fsync of the file renamed, and is
/// followed by an fsync of its directory before the command exits (strace -f -y).
#[test]
fn local_backend_fsyncs_file_then_directory() {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "strace is missing: .ci/run must install it"
        );
        eprintln!("skipped: strace is not installed here (Debian package strace)");
        return;
    }
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i, 700_000)).unwrap();
    }
    // One log per thread (-ff): the write path runs on one thread, so each log is in
    // program order and no call is split into "unfinished" and "resumed" halves.
    let logs = env.path("strace");
    fs::create_dir_all(&logs).unwrap();
    let mut c = strace_cairn(
        &env,
        &[
            "-ff",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
            "-o",
            logs.join("t").to_str().unwrap(),
        ],
    );
    c.arg("-r").arg(env.repo()).arg("backup").arg(&src);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let repo = fs::canonicalize(env.repo())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut checked = 0;
    for log in fs::read_dir(&logs).unwrap().flatten() {
        let text = fs::read_to_string(log.path()).unwrap();
        // (line number, fsync'd path) and (line number, from, to).
        let mut fsyncs: Vec<(usize, String)> = Vec::new();
        let mut renames: Vec<(usize, String, String)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            if line.starts_with("fsync(") || line.starts_with("fdatasync(") {
                if let (Some(a), Some(b)) = (line.find('<'), line.find(">)")) {
                    fsyncs.push((n, line[a + 1..b].to_string()));
                }
            } else if line.starts_with("rename") && line.ends_with("= 0") && quoted.len() >= 2 {
                let abs = |p: &str| {
                    if p.starts_with('/') {
                        p.to_string()
                    } else {
                        format!("{}/{p}", env.dir.path().display())
                    }
                };
                renames.push((n, abs(quoted[0]), abs(quoted[1])));
            }
        }
        for (n, from, to) in renames.iter().filter(|(_, _, to)| to.starts_with(&repo)) {
            checked += 1;
            assert!(
                fsyncs.iter().any(|(m, p)| m < n && p == from),
                "{to}: renamed from {from} without an fsync of it first\n{text}"
            );
            let dir = Path::new(to)
                .parent()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(
                fsyncs.iter().any(|(m, p)| m > n && *p == dir),
                "{to}: its directory {dir} was not fsync'd after the rename\n{text}"
            );
        }
    }
    assert!(
        checked >= 5,
        "expected pack, index, snapshot and lock renames, saw {checked}"
    );
}
