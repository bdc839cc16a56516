//! Bad input gets a clear one-line error and the documented exit code.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::util::*;

#[test]
fn wrong_password_exits_12_and_writes_nothing() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    env.backup(&[&src], &[]);
    let before = env.repo_listing();
    for args in [
        vec!["backup", src.to_str().unwrap()],
        vec!["snapshots"],
        vec!["ls", "latest"],
    ] {
        let out = env
            .cmd()
            .env("CAIRN_PASSWORD", "wrong")
            .arg("-r")
            .arg(env.repo())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(12), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("wrong password") && err.lines().count() == 1,
            "{err}"
        );
        assert!(!err.contains("wrong\n") && !err.contains(PASSWORD));
    }
    assert_eq!(env.repo_listing(), before, "a failed open must not write");
}

#[test]
fn missing_repository_exits_10_and_is_not_created() {
    let env = Env::new();
    for args in [
        vec!["snapshots"],
        vec!["backup", "/etc/hostname"],
        vec!["restore", "latest", "--target", "t"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(10), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("does not exist"));
        assert!(stderr(&out).contains("is the drive mounted?"));
    }
    assert!(!env.repo().exists());
}

/// A location with a scheme cairn does not know is an error naming the ones it knows,
/// not a directory called `gs:http:` in the current directory; a directory whose name
/// has a colon is still reachable as `./name` or `local:name`.
#[test]
fn unknown_location_schemes_are_refused_and_create_nothing() {
    let env = Env::new();
    let work = env.path("work");
    fs::create_dir(&work).unwrap();
    for args in [
        vec!["-r", "gs:http://127.0.0.1:9000/bucket/repo", "init"],
        vec!["-r", "webdav:me@host:/srv/repo", "snapshots"],
        vec!["sync", "azure:bucket/a", "somewhere"],
    ] {
        let out = env.cmd().current_dir(&work).args(&args).output().unwrap();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {e}");
        assert!(
            e.contains("unknown location scheme") && e.contains("b2:BUCKET/PATH"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
    assert_eq!(fs::read_dir(&work).unwrap().count(), 0, "nothing created");
    for loc in ["./odd:name", "local:other:name"] {
        let out = env
            .cmd()
            .current_dir(&work)
            .args(["-r", loc, "init"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{loc}: {}", stderr(&out));
    }
    assert!(work.join("odd:name/config").exists());
    assert!(work.join("other:name/config").exists());
}

#[test]
fn init_twice_refuses() {
    let env = Env::new();
    env.init();
    let out = env.run(&["init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"));
}

#[test]
fn flipped_byte_in_pack_names_damaged_file_and_restores_the_rest() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    // Random content: each file lands in its own pack (1 MiB packs), none compresses.
    for i in 0..6u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 1, 1_100_000)).unwrap();
    }
    env.backup(&[&src], &[]);
    // Damage the largest data pack somewhere in its blob area.
    let victim = &env.packs_largest_first()[0];
    let mut bytes = fs::read(victim).unwrap();
    bytes[1000] ^= 0x40;
    fs::write(victim, bytes).unwrap();

    let target = env.path("t");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    let damaged: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(damaged.len(), 1, "exactly one file is damaged: {err}");
    assert!(damaged[0].contains("/src/f"), "{err}");
    let restored = target.join(src.strip_prefix("/").unwrap());
    let mut intact = 0;
    for i in 0..6u64 {
        let name = format!("f{i}");
        if damaged[0].contains(&format!("/src/{name}:")) {
            continue;
        }
        assert_eq!(
            fs::read(restored.join(&name)).unwrap(),
            pseudo_random(i + 1, 1_100_000),
            "{name}"
        );
        intact += 1;
    }
    assert_eq!(intact, 5);
}

#[test]
fn held_exclusive_lock_exits_11() {
    let env = Env::new();
    env.init();
    std::env::set_var("CAIRN_INSECURE_TEST_KDF", "1");
    let backend: Arc<dyn cairn_backend::Backend> =
        Arc::new(cairn_backend::LocalBackend::new(env.repo()));
    let repo = Arc::new(cairn_repo::Repository::open(backend, PASSWORD.as_bytes()).unwrap());
    let guard = repo.lock(cairn_repo::LockKind::Exclusive, "prune").unwrap();
    let out = env.run(&["backup", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    let line = stderr(&out);
    assert!(
        line.contains("repository is locked by an exclusive lock held by")
            && line.contains("`prune`")
            && line.contains("cairn unlock"),
        "{line}"
    );
    // --retry-lock: still held when the wait ends, the same exit, after the wait.
    let t = std::time::Instant::now();
    let out = env.run(&["--retry-lock", "2s", "backup", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(t.elapsed() >= std::time::Duration::from_millis(1400));
    // Released while it waits: the backup goes ahead.
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        drop(guard);
    });
    let out = env.run(&["--retry-lock", "1m", "backup", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    release.join().unwrap();
    let out = env.run(&["--retry-lock", "soon", "backup", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid duration"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unreadable_file_is_reported_snapshot_saved_exit_3() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("readable"), b"fine").unwrap();
    fs::write(src.join("secret"), b"no access").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    // As root nothing is unreadable, so run cairn as an unprivileged user.
    if is_root() {
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let cairn = || {
        let mut c = if is_root() {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            c.arg(env!("CARGO_BIN_EXE_cairn"));
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        };
        c.env("CAIRN_PASSWORD", PASSWORD)
            .env("CAIRN_INSECURE_TEST_KDF", "1")
            .env("HOME", env.dir.path())
            .current_dir(env.dir.path());
        c
    };
    let repo = env.path("repo-nobody");
    let out = cairn().arg("-r").arg(&repo).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cairn()
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("secret") && err.contains("Permission denied"),
        "{err}"
    );
    // Named once, as it happened (above any bar), not again at the end.
    assert_eq!(err.matches("Permission denied").count(), 1, "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("snapshot"), "snapshot still saved");
    // The counts add up: the file not read is counted as such.
    assert!(
        stdout.contains("Files:       1 new, 0 changed, 0 unmodified, 1 not read")
            && stdout.contains("processed 2 files"),
        "{stdout}"
    );
    // The scan counted the file that could not be read; the backup still finished, so
    // its last status line says done (it stopped at the share read) and its counts agree.
    let out = cairn()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--json", "--force"])
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["message_type"] == "status")
        .unwrap_or_else(|| panic!("no status line: {stdout}"));
    assert_eq!(last["percent_done"], 1.0, "{last}");
    assert_eq!(last["files_done"], last["total_files"], "{last}");
    assert_eq!(last["bytes_done"], last["total_bytes"], "{last}");
}

#[test]
fn full_disk_fails_cleanly_and_keeps_earlier_snapshots() {
    let env = Env::new();
    let mnt = env.path("small-disk");
    fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root); full-disk behaviour not exercised");
        return;
    }
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    let repo = mnt.join("repo");
    let run = |args: &[&str]| env.cmd().arg("-r").arg(&repo).args(args).output().unwrap();
    assert!(run(&["init"]).status.success());
    let small = env.path("small");
    fs::create_dir(&small).unwrap();
    fs::write(small.join("a"), b"precious").unwrap();
    assert!(run(&["backup", small.to_str().unwrap()]).status.success());
    let big = env.path("big");
    fs::create_dir(&big).unwrap();
    fs::write(big.join("b"), pseudo_random(3, 8 << 20)).unwrap();
    let out = run(&["backup", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.to_lowercase().contains("no space left on device") && err.contains("small-disk/repo/"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The same through the concurrent uploader: the failure surfaces, nothing is saved.
    let out = run(&["backup", "--transfers", "3", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The earlier snapshot is intact and restorable; no partial snapshot appeared.
    let snaps: serde_json::Value =
        serde_json::from_slice(&run(&["snapshots", "--json"]).stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let t = env.path("t");
    let out = run(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(t.join(small.strip_prefix("/").unwrap()).join("a")).unwrap(),
        b"precious"
    );
}

#[test]
fn file_that_changes_while_read_is_stored_as_read_and_reported() {
    // procfs files report size 0 to lstat but have content when read.
    let env = Env::new();
    env.init();
    let out = env.run(&["backup", "/proc/self/status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("changed during backup; stored as read"),
        "{}",
        stderr(&out)
    );
    let listing = env.ok(&["ls", "--long", "latest"]);
    let line = listing.lines().find(|l| l.ends_with("/status")).unwrap();
    let size: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(size > 0, "{line}");
}

/// `init` under /mnt (or /media, /run/media) where nothing is mounted refuses, names
/// the likely cause, and creates nothing; `--force` overrides. No other command ever
/// creates a repository (`missing_repository_exits_10_and_is_not_created`).
#[test]
fn init_refuses_an_unmounted_drive() {
    use std::os::unix::fs::MetadataExt;
    if !is_root()
        || fs::metadata("/mnt").map(|m| m.dev()).ok() != fs::metadata("/").map(|m| m.dev()).ok()
    {
        eprintln!("skipped: needs root and a /mnt on the root filesystem");
        return;
    }
    let env = Env::new();
    let name = env
        .dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let drive = Path::new("/mnt").join(&name);
    fs::create_dir_all(&drive).unwrap(); // the empty mountpoint an unmounted drive leaves
    let repo = drive.join("cairn");
    let out = env.cmd().arg("-r").arg(&repo).arg("init").output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("probably not mounted") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!repo.exists(), "nothing created");
    let out = env
        .cmd()
        .arg("-r")
        .arg(&repo)
        .args(["init", "--force"])
        .output()
        .unwrap();
    let ok = out.status.code() == Some(0) && repo.join("config").exists();
    fs::remove_dir_all(&drive).unwrap();
    assert!(ok, "--force creates it: {}", stderr(&out));
}

/// Issue 19.4 (and 20.5): a backup whose lock file was removed while it ran (`unlock
/// --remove-all` from another shell, after which a prune may delete its unindexed packs)
/// stops before writing its index or snapshot: exit 1, one clear line, no snapshot.
#[test]
fn a_backup_whose_lock_was_removed_saves_no_snapshot() {
    use std::io::Write;
    let env = Env::new();
    env.init();
    let mut child = env
        .repo_cmd()
        .args(["backup", "--stdin", "--stdin-filename", "stream.bin"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&pseudo_random(7, 3_000_000)).unwrap();
    let locks = env.repo().join("locks");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let lock = loop {
        if let Some(e) = fs::read_dir(&locks).into_iter().flatten().flatten().next() {
            break e.path();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    fs::remove_file(&lock).unwrap();
    stdin.write_all(&pseudo_random(8, 1_000_000)).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("removed by someone else")
            && e.lines().filter(|l| l.starts_with("cairn:")).count() == 1,
        "{e}"
    );
    assert_eq!(
        fs::read_dir(env.repo().join("snapshots")).map_or(0, |d| d.count()),
        0,
        "no snapshot was saved"
    );
    env.ok(&["check"]);
}
