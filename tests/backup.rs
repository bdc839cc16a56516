//! Backup behaviour: excludes, parent snapshots, stdin, dry runs, resuming.

use std::fs;
use std::path::Path;

use crate::util::*;

fn ls_paths(env: &Env, snap: &str) -> Vec<String> {
    env.ok(&["ls", snap]).lines().map(str::to_owned).collect()
}

#[test]
fn exclude_flags() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    for d in ["keep", "cache", "node_modules/x", "tagged", "Photos"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("keep/a.txt"), b"a").unwrap();
    fs::write(src.join("keep/b.tmp"), b"b").unwrap();
    fs::write(src.join("cache/c"), b"c").unwrap();
    fs::write(src.join("node_modules/x/d"), b"d").unwrap();
    fs::write(src.join("tagged/.nobackup"), b"").unwrap();
    fs::write(src.join("tagged/e"), b"e").unwrap();
    fs::write(src.join("Photos/IMG.JPG"), b"f").unwrap();
    fs::write(src.join("Photos/ok.png"), b"g").unwrap();
    fs::write(src.join("big"), vec![1u8; 5000]).unwrap();
    let exfile = env.path("excludes");
    fs::write(&exfile, "# comment\n\n**/node_modules\n").unwrap();
    let cache = src.join("cache");
    env.backup(
        &[&src],
        &[
            "--exclude",
            "*.tmp",
            "--exclude",
            cache.to_str().unwrap(),
            "--exclude-file",
            exfile.to_str().unwrap(),
            "--exclude-if-present",
            ".nobackup",
            "--iexclude",
            "*.jpg",
            "--exclude-larger-than",
            "4K",
        ],
    );
    let paths = ls_paths(&env, "latest");
    let rel: Vec<String> = paths
        .iter()
        .filter_map(|p| p.strip_prefix(src.to_str().unwrap()).map(str::to_owned))
        .collect();
    assert_eq!(
        rel,
        vec!["", "/Photos", "/Photos/ok.png", "/keep", "/keep/a.txt"],
        "{paths:?}"
    );
}

#[test]
fn parent_snapshot_skips_unchanged_files() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for i in 0..50 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i, 20_000)).unwrap();
    }
    let first = env.backup(&[&src], &[]);
    assert_eq!(first["files_new"], 50);
    let second = env.backup(&[&src], &[]);
    assert_eq!(second["files_unmodified"], 50, "{second}");
    assert_eq!(second["data_blobs"], 0);
    fs::write(src.join("f3"), b"changed").unwrap();
    fs::write(src.join("new"), b"new").unwrap();
    let third = env.backup(&[&src], &[]);
    assert_eq!(
        (
            third["files_changed"].as_u64(),
            third["files_new"].as_u64(),
            third["files_unmodified"].as_u64()
        ),
        (Some(1), Some(1), Some(49)),
        "{third}"
    );
    // --skip-if-unchanged: nothing changed below the source, so no snapshot; then a
    // change, and one is saved.
    let skipped = env.backup(&[&src], &["--skip-if-unchanged"]);
    assert_eq!(
        (
            skipped["skipped_unchanged"].as_bool(),
            skipped["snapshot_id"].as_str()
        ),
        (Some(true), Some("")),
        "{skipped}"
    );
    let text = env.ok(&["backup", "--skip-if-unchanged", src.to_str().unwrap()]);
    assert!(text.contains("nothing changed since snapshot"), "{text}");
    fs::write(src.join("f4"), b"changed too").unwrap();
    let saved = env.backup(&[&src], &["--skip-if-unchanged"]);
    assert_eq!(saved["skipped_unchanged"], false, "{saved}");
    assert_eq!(saved["files_changed"], 1, "{saved}");
    let forced = env.backup(&[&src], &["--force"]);
    assert_eq!(forced["files_unmodified"], 0);
    assert_eq!(forced["data_blobs"], 0, "forced re-read still deduplicates");
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 5);
    assert_eq!(snaps[1]["parent"], snaps[0]["id"]);
    for key in [
        "id", "short_id", "time", "hostname", "username", "paths", "tags", "tree", "parent",
        "summary",
    ] {
        assert!(snaps[0].get(key).is_some(), "snapshots --json lacks {key}");
    }
}

#[test]
fn stdin_backup_roundtrip() {
    let env = Env::new();
    env.init();
    let data = pseudo_random(5, 3_000_000);
    let mut child = env
        .cmd()
        .arg("-r")
        .arg(env.repo())
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "db.sql",
            "--tag",
            "db",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&data).unwrap();
    }
    assert!(child.wait_with_output().unwrap().status.success());
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(fs::read(t.join("db.sql")).unwrap(), data);
    let snaps: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", "db"])).unwrap();
    assert_eq!(snaps[0]["paths"][0], "/db.sql");
}

#[test]
fn concurrent_uploads_store_everything() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let (src, _) = random_source(&env);
    let s = env.backup(&[&src], &["--transfers", "4"]);
    assert_eq!(s["files_new"], 40);
    env.ok(&["check", "--read-data"]);
    let t = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&src, &t.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn dry_run_writes_nothing() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), pseudo_random(1, 100_000)).unwrap();
    let before = env.repo_listing();
    let s = env.backup(&[&src], &["--dry-run"]);
    assert_eq!(s["files_new"], 1);
    assert_eq!(env.repo_listing(), before);
    // -vv lists each file it would store (restic's habit), and still writes nothing.
    env.backup(&[&src], &[]);
    fs::write(src.join("a"), b"edited").unwrap();
    fs::write(src.join("b"), b"new").unwrap();
    let before = env.repo_listing();
    let out = env.ok(&["backup", "--dry-run", "-vv", src.to_str().unwrap()]);
    let a = src.join("a").display().to_string();
    let b = src.join("b").display().to_string();
    assert!(
        out.lines().any(|l| l == format!("modified  {a}"))
            && out.lines().any(|l| l == format!("new       {b}")),
        "{out}"
    );
    assert_eq!(env.repo_listing(), before);
}

#[test]
fn multiple_paths_tags_host_and_latest() {
    let env = Env::new();
    env.init();
    let a = env.path("a");
    let b = env.path("b/deeper");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("1"), b"1").unwrap();
    fs::write(b.join("2"), b"2").unwrap();
    env.backup(&[&a, &b], &["--tag", "x,y", "--host", "laptop"]);
    env.backup(&[&a], &["--host", "laptop"]);
    env.backup(&[&a], &["--host", "desktop"]);
    let all: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--host", "laptop"])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let tagged: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", "x,y"])).unwrap();
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(tagged[0]["tags"], serde_json::json!(["x", "y"]));
    let latest: serde_json::Value = serde_json::from_str(&env.ok(&[
        "snapshots",
        "--json",
        "--latest",
        "1",
        "--group-by",
        "host",
    ]))
    .unwrap();
    assert_eq!(latest.as_array().unwrap().len(), 2);
    let t = env.path("t");
    let tagged_id = tagged[0]["short_id"].as_str().unwrap();
    env.ok(&["restore", tagged_id, "--target", t.to_str().unwrap()]);
    assert_eq!(
        fs::read(t.join(b.strip_prefix("/").unwrap()).join("2")).unwrap(),
        b"2"
    );
    assert_eq!(
        fs::read(t.join(a.strip_prefix("/").unwrap()).join("1")).unwrap(),
        b"1"
    );
}

fn count(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                n += count(&e.path());
            } else if !e.file_name().to_string_lossy().contains(".tmp-") {
                n += 1;
            }
        }
    }
    n
}

/// Starts a backup of 160 MiB of random data in 1 MiB packs, waits until `ready` says
/// enough is stored, then kills it with `signal`.
fn interrupt_backup(
    env: &Env,
    src: &Path,
    extra: &[&str],
    signal: &str,
    ready: impl Fn() -> bool,
) -> std::process::Output {
    let mut child = env
        .cmd()
        .arg("-r")
        .arg(env.repo())
        .arg("backup")
        .args(extra)
        .arg(src)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        if ready() {
            std::process::Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .unwrap();
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.wait_with_output().unwrap()
}

fn random_source(env: &Env) -> (std::path::PathBuf, u64) {
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for i in 0..40u64 {
        fs::write(
            src.join(format!("f{i:02}")),
            pseudo_random(i + 100, 4_000_000),
        )
        .unwrap();
    }
    (src, 40 * 4_000_000)
}

fn assert_resumes(env: &Env, src: &Path, total: u64) {
    assert_eq!(
        count(&env.repo().join("snapshots")),
        0,
        "no snapshot from the interrupted run"
    );
    let s = env.backup(&[src], &[]);
    let added = s["data_added"].as_u64().unwrap();
    assert!(
        added < total,
        "resumed backup stored {added} of {total} bytes again"
    );
    let t = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(src, &t.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn interrupted_backup_resumes_from_index_checkpoint() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let (src, total) = random_source(&env);
    let index = env.repo().join("index");
    let out = interrupt_backup(&env, &src, &["--checkpoint-interval", "0"], "KILL", || {
        count(&index) >= 2
    });
    assert_eq!(out.status.code(), None, "killed by SIGKILL");
    assert_resumes(&env, &src, total);
}

#[test]
fn interrupted_backup_reuses_packs_written_after_the_last_checkpoint() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let (src, total) = random_source(&env);
    let data = env.repo().join("data");
    // Default checkpoint interval (5 minutes): no index file exists when it is killed.
    let out = interrupt_backup(&env, &src, &[], "KILL", || count(&data) >= 20);
    assert_eq!(out.status.code(), None);
    assert_eq!(count(&env.repo().join("index")), 0);
    assert_resumes(&env, &src, total);
}

#[test]
fn sigint_exits_130_and_releases_the_lock() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let (src, total) = random_source(&env);
    let data = env.repo().join("data");
    let out = interrupt_backup(&env, &src, &[], "INT", || count(&data) >= 5);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert_eq!(
        count(&env.repo().join("locks")),
        0,
        "lock removed on interrupt"
    );
    assert_resumes(&env, &src, total);
}

#[test]
fn one_file_system_and_device_nodes() {
    // /dev is devtmpfs with character devices; /dev/shm and /dev/pts are other filesystems.
    let env = Env::new();
    env.init();
    env.backup(&[Path::new("/dev")], &["--one-file-system"]);
    let long = env.ok(&["ls", "--long", "latest", "/dev"]);
    assert!(
        long.lines()
            .any(|l| l.starts_with('c') && l.ends_with("/dev/null")),
        "{long}"
    );
    assert!(
        !long.lines().any(|l| l.ends_with("/dev/shm")),
        "--one-file-system must skip /dev/shm: {long}"
    );
    if is_root() {
        let t = env.path("t");
        let out = env.run(&[
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
            "--include",
            "/dev/null",
            "--include",
            "/dev/zero",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = fs::symlink_metadata(t.join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), fs::metadata("/dev/null").unwrap().rdev());
    }
}

#[test]
fn path_below_a_symlinked_directory_is_stored_under_its_real_path() {
    let env = Env::new();
    env.init();
    let real = env.path("real/docs");
    fs::create_dir_all(&real).unwrap();
    fs::write(real.join("a"), b"a").unwrap();
    std::os::unix::fs::symlink(env.path("real"), env.path("alias")).unwrap();
    env.backup(&[&env.path("alias/docs")], &[]);
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    let real_canon = fs::canonicalize(&real).unwrap();
    assert_eq!(
        fs::read(t.join(real_canon.strip_prefix("/").unwrap()).join("a")).unwrap(),
        b"a"
    );
}

/// A source tree with everything awkward at once: symlink loops (relative, absolute,
/// to itself), a path of 4,000 bytes under 250-byte names, a name that is not UTF-8, a
/// socket, and files created, deleted and grown by another process while the backup
/// reads. The backup finishes (exit 0, or 3 naming only the churning files), `check
/// --read-data` passes, and the restore matches: links as links, the long path exact,
/// the socket recorded but not recreated (a socket belongs to a live process), a grown
/// file restored as a prefix of what it became, a churned file with exactly the bytes
/// written for its name.
#[test]
fn awkward_and_changing_source_trees() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("links/dir")).unwrap();
    symlink("loop_b", src.join("links/loop_a")).unwrap();
    symlink("loop_a", src.join("links/loop_b")).unwrap();
    symlink("self", src.join("links/self")).unwrap();
    symlink("..", src.join("links/dir/up")).unwrap();
    symlink(&src, src.join("links/dir/root")).unwrap();
    let mut deep = src.join("deep");
    for i in 0..15 {
        deep.push(format!("{i:02}{}", "d".repeat(248)));
    }
    fs::create_dir_all(&deep).unwrap();
    let long_file = deep.join("f".repeat(230));
    assert_eq!(
        long_file.strip_prefix(&src).unwrap().as_os_str().len(),
        4000,
        "path length"
    );
    fs::write(&long_file, b"at the bottom").unwrap();
    fs::write(raw_path(&src, b"latin1-\xe9t\xe9"), b"not utf-8").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("app.sock")).unwrap();
    fs::create_dir_all(src.join("many")).unwrap();
    for i in 0..3000u64 {
        fs::write(src.join(format!("many/{i:04}")), pseudo_random(i, 2000)).unwrap();
    }
    fs::create_dir_all(src.join("churn")).unwrap();
    let churn_content = |n: u64| pseudo_random(n + 10_000, 5000 + (n as usize % 7) * 1000);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let churner = {
        let (src, stop) = (src.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(src.join("grow.log"))
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                fs::write(src.join(format!("churn/{n}")), churn_content(n)).unwrap();
                if n >= 3 {
                    let _ = fs::remove_file(src.join(format!("churn/{}", n - 3)));
                }
                writeln!(log, "line {n}").unwrap();
                n += 1;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let out = env.run(&["backup", src.to_str().unwrap()]);
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    let err = stderr(&out);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for l in err.lines().filter(|l| l.starts_with("error:")) {
        assert!(l.contains("/churn/"), "only churning files may fail: {l}");
    }
    env.ok(&["check", "--read-data"]);
    let ls = env.ok(&["ls", "-l", "latest"]);
    assert!(
        ls.lines()
            .any(|l| l.contains("app.sock") && l.starts_with('s')),
        "socket recorded: {ls}"
    );

    let target = env.path("t");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let back = target.join(src.strip_prefix("/").unwrap());
    let volatile = |k: &Vec<u8>| {
        k.starts_with(b"churn/") || k.as_slice() == b"grow.log" || k.as_slice() == b"app.sock"
    };
    let mut want = snapshot_tree(&src);
    let mut got = snapshot_tree(&back);
    want.retain(|k, _| !volatile(k) && k.as_slice() != b"churn");
    got.retain(|k, _| !volatile(k) && k.as_slice() != b"churn");
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (k, m) in &want {
        // No hardlinks here; link groups count positions among the entries left out.
        let (a, b) = (
            Meta {
                link_group: 0,
                ..m.clone()
            },
            Meta {
                link_group: 0,
                ..got[k].clone()
            },
        );
        assert_eq!(a, b, "{:?}", String::from_utf8_lossy(k));
    }
    assert!(!back.join("app.sock").exists(), "sockets are not recreated");
    assert_eq!(
        fs::read(back.join(long_file.strip_prefix(&src).unwrap())).unwrap(),
        b"at the bottom"
    );
    assert_eq!(fs::read_link(back.join("links/dir/root")).unwrap(), src);
    let grown = fs::read(back.join("grow.log")).unwrap();
    assert!(
        fs::read(src.join("grow.log")).unwrap().starts_with(&grown),
        "a grown file restores as what was read"
    );
    for e in fs::read_dir(back.join("churn")).unwrap().flatten() {
        let n: u64 = std::str::from_utf8(e.file_name().as_bytes())
            .unwrap()
            .parse()
            .unwrap();
        let data = fs::read(e.path()).unwrap();
        assert!(
            churn_content(n).starts_with(&data),
            "churn/{n} restored with bytes never written"
        );
    }
}

/// Progress as a user sees it: under a terminal (`script`) backup and restore draw a bar
/// with bytes, files, rate, ETA and the current file; `--no-progress`, `--json` and a
/// pipe draw nothing.
#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), pseudo_random(8, 40 << 20)).unwrap();
    let on_terminal = |args: &str| {
        let cmd = format!(
            "{} -r {} {args}",
            env!("CARGO_BIN_EXE_cairn"),
            env.repo().display()
        );
        let out = wrapping_cairn(&env, "script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .expect("script (bsdutils) runs the command under a terminal");
        assert!(
            out.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).replace('\r', "\n")
    };
    let shown = on_terminal(&format!("backup {}", src.display()));
    // (The current file shows between redraws; a run this short may not catch one.)
    assert!(
        shown.contains("ETA") && shown.contains("/1 files") && shown.contains("40.00 MiB"),
        "{shown}"
    );
    let target = env.path("t");
    let shown = on_terminal(&format!("restore latest --target {}", target.display()));
    assert!(
        shown.contains("ETA") && shown.contains("/1 files") && shown.contains("40.00 MiB"),
        "{shown}"
    );
    let quiet = on_terminal(&format!("--no-progress backup --force {}", src.display()));
    assert!(!quiet.contains("ETA"), "{quiet}");
    let piped = env.run(&["backup", "--force", src.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("ETA"));
}

/// Backup yields to everything else by default (nice 10, best-effort I/O at level 7) and
/// runs at normal priority with --no-nice; --read-concurrency changes how many files are
/// read at once, never what is stored.
#[test]
fn backup_is_nice_by_default_and_read_concurrency_changes_nothing_stored() {
    let env = Env::new();
    env.init();
    let priority = |extra: &[&str]| {
        // Reading standard input that stays open keeps the backup running to look at.
        let mut child = env
            .repo_cmd()
            .args(["backup", "--stdin"])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let t = std::time::Instant::now();
        let nice = loop {
            // Once reading, the main thread has lowered itself: field 19 of stat is nice.
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let nice: i64 = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .nth(16)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            if (nice != 0 || !extra.is_empty())
                && (wchan.contains("pipe") || t.elapsed() > std::time::Duration::from_secs(2))
            {
                break nice;
            }
            assert!(t.elapsed() < std::time::Duration::from_secs(20));
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let io = std::process::Command::new("ionice")
            .args(["-p", &pid.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        (nice, io)
    };
    let (nice, io) = priority(&[]);
    assert_eq!(nice, 10);
    if !io.is_empty() {
        assert_eq!(io, "best-effort: prio 7");
    }
    let (nice, _) = priority(&["--no-nice"]);
    assert_eq!(nice, 0);

    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..40u64 {
        fs::write(
            src.join(format!("f{i}")),
            pseudo_random(i, 100_000 + i as usize * 1000),
        )
        .unwrap();
    }
    let snap = |extra: &[&str]| {
        env.backup(&[&src], &[&["--force"], extra].concat())["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (one, all) = (snap(&["--read-concurrency", "1"]), snap(&[]));
    // Nothing below the source differs (the directories above it, which hold the test's
    // cache, may have changed in between).
    let d = json_last_line(&env.ok(&["diff", &one[..8], &all[..8], "--json"]));
    let s = src.to_str().unwrap();
    let inside: Vec<_> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["path"].as_str().unwrap().starts_with(&format!("{s}/")))
        .collect();
    assert!(inside.is_empty(), "{inside:?}");
    assert_eq!(
        json_last_line(&env.ok(&["stats", "--json", &one[..8]]))["total_size"],
        json_last_line(&env.ok(&["stats", "--json", &all[..8]]))["total_size"]
    );
}

/// Issue 20.5: plain `--stdin` cannot know that its producer failed half way and saves
/// what arrived; `--stdin-from-command` runs the producer and saves nothing unless it
/// exits 0 (a failure or a kill is exit 1, one line naming it, no snapshot).
#[test]
fn stdin_from_command_saves_only_what_a_successful_producer_wrote() {
    let env = Env::new();
    env.init();
    let snapshots = || {
        json_last_line(&env.ok(&["--json", "snapshots"]))
            .as_array()
            .unwrap()
            .len()
    };
    let data = pseudo_random(9, 3_000_000);
    fs::write(env.path("dump.bin"), &data).unwrap();
    let cat = format!("cat '{}'", env.path("dump.bin").display());
    for (script, why) in [
        (format!("{cat}; exit 3"), "exited with status 3"),
        (
            format!(
                "head -c 1000000 '{}'; kill -9 $$",
                env.path("dump.bin").display()
            ),
            "killed by signal 9",
        ),
        (
            "exec /no/such/program".to_string(),
            "exited with status 127",
        ),
    ] {
        let out = env.run(&[
            "backup",
            "--stdin-from-command",
            "--stdin-filename",
            "db.dump",
            "--",
            "sh",
            "-c",
            &script,
        ]);
        assert_eq!(out.status.code(), Some(1), "{script}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(why) && err.contains("no snapshot was saved"),
            "{script}: {err}"
        );
        assert_eq!(snapshots(), 0, "{script}: nothing saved");
    }
    let out = env.run(&["backup", "--stdin-from-command", "--", "/no/such/program"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot run `/no/such/program`"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["backup", "--stdin-from-command"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("needs a command"), "{}", stderr(&out));

    env.ok(&[
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "db.dump",
        "--",
        "sh",
        "-c",
        &cat,
    ]);
    assert_eq!(snapshots(), 1);
    let out = env
        .repo_cmd()
        .args(["dump", "latest", "/db.dump"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "the dump restores byte for byte");
    // The producer's environment holds no secret of cairn's.
    let seen = env.path("producer-env");
    env.ok(&[
        "backup",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        &format!("env > '{}'", seen.display()),
    ]);
    assert!(!fs::read_to_string(&seen).unwrap().contains(PASSWORD));
}
