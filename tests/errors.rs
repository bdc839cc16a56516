//! Bad input gets a clear one-line error and the documented exit code.

use std::fs;
use std::path::{Path, PathBuf};
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
    }
    assert!(!env.repo().exists());
}

#[test]
fn no_password_source_without_terminal_exits_1() {
    let env = Env::new();
    let out = env
        .cmd()
        .env_remove("CAIRN_PASSWORD")
        .arg("-r")
        .arg(env.repo())
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--password-file"), "{}", stderr(&out));
    assert!(!env.repo().exists());
}

#[test]
fn password_file_and_command_sources() {
    let env = Env::new();
    let pwf = env.path("pw.txt");
    fs::write(&pwf, "from-file\nsecond line ignored\n").unwrap();
    let out = env
        .cmd()
        .env_remove("CAIRN_PASSWORD")
        .arg("-r")
        .arg(env.repo())
        .arg("--password-file")
        .arg(&pwf)
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("CAIRN_PASSWORD")
        .arg("-r")
        .arg(env.repo())
        .args(["--password-command", "echo from-file", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("CAIRN_PASSWORD")
        .env("CAIRN_PASSWORD_FILE", &pwf)
        .arg("-r")
        .arg(env.repo())
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("CAIRN_PASSWORD")
        .arg("-r")
        .arg(env.repo())
        .args(["--password-command", "false", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
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
    assert!(stderr(&out).contains("cairn unlock"), "{}", stderr(&out));
    drop(guard);
    let out = env.run(&["backup", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
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
    let mut cmd = if is_root() {
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o777)).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_cairn"),
        ]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
    };
    cmd.env("CAIRN_PASSWORD", PASSWORD)
        .env("CAIRN_INSECURE_TEST_KDF", "1")
        .env("HOME", env.dir.path())
        .current_dir(env.dir.path());
    let repo = env.path("repo-nobody");
    let out = cmd.arg("-r").arg(&repo).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut cmd2 = if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_cairn"),
        ]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
    };
    cmd2.env("CAIRN_PASSWORD", PASSWORD)
        .env("HOME", env.dir.path())
        .current_dir(env.dir.path());
    let out = cmd2
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
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("snapshot"),
        "snapshot still saved"
    );
}

/// Runs cairn under a pseudo-terminal (util-linux `script`), typing `lines` at its prompts.
fn on_terminal(env: &Env, args: &str, lines: &[&str]) -> std::process::Output {
    use std::io::Write;
    let cmd = format!(
        "{} -r {} {args}",
        env!("CARGO_BIN_EXE_cairn"),
        env.repo().display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .current_dir(env.dir.path())
        .env("CAIRN_INSECURE_TEST_KDF", "1");
    for k in [
        "CAIRN_PASSWORD",
        "CAIRN_PASSWORD_FILE",
        "CAIRN_PASSWORD_COMMAND",
        "CAIRN_REPOSITORY",
    ] {
        c.env_remove(k);
    }
    let mut p = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = p.stdin.take().unwrap();
    for l in lines {
        std::thread::sleep(std::time::Duration::from_millis(400));
        let _ = writeln!(stdin, "{l}");
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    drop(stdin);
    p.wait_with_output().unwrap()
}

#[test]
fn password_prompt_on_a_terminal() {
    let env = Env::new();
    let out = on_terminal(&env, "init", &["typed secret", "typed secret"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enter password"));
    let out = on_terminal(&env, "snapshots", &["typed secret"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = on_terminal(&env, "snapshots", &["not it"]);
    assert_eq!(out.status.code(), Some(12));
    let env2 = Env::new();
    let out = on_terminal(&env2, "init", &["one", "two"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("do not match"));
    assert!(!env2.repo().exists());
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

/// Secrets never reach the output: a B2 run at `-vvv` that authorizes, uploads, fails on
/// a wrong password and on a bad key prints no password, no application key and no
/// auth token. Repository files and directories are the owner's only.
#[test]
fn secrets_stay_out_of_the_output_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let (key_id, key) = ("0051secretkeyid", "K005TopSecretApplicationKeyValue");
    let emu = Emulator::start(&env.path("emu"), &["--key-id", key_id, "--key", key]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let run = |creds: (&str, &str), password: &str, args: &[&str]| {
        let out = env
            .cmd()
            .env("B2_APPLICATION_KEY_ID", creds.0)
            .env("B2_APPLICATION_KEY", creds.1)
            .env("CAIRN_B2_ENDPOINT", &emu.url)
            .env("CAIRN_PASSWORD", password)
            .args(["-vvv", "-r", "b2:secret-bucket/r"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let mut all = String::new();
    for (creds, pw, args, code) in [
        ((key_id, key), PASSWORD, vec!["init"], Some(0)),
        (
            (key_id, key),
            PASSWORD,
            vec!["backup", src.to_str().unwrap()],
            Some(0),
        ),
        (
            (key_id, key),
            "the wrong password",
            vec!["snapshots"],
            Some(12),
        ),
        (
            (key_id, "K005NotTheKeyAtAllButSecretToo"),
            PASSWORD,
            vec!["snapshots"],
            Some(1),
        ),
    ] {
        let (got, out) = run(creds, pw, &args);
        assert_eq!(got, code, "{args:?}: {out}");
        all.push_str(&out);
    }
    assert!(
        all.len() > 1000,
        "-vvv printed the trace: {} bytes",
        all.len()
    );
    for secret in [
        PASSWORD,
        "the wrong password",
        key,
        "K005NotTheKeyAtAllButSecretToo",
        "emu_",
    ] {
        assert!(!all.contains(secret), "{secret:?} appears in the output");
    }

    env.init();
    env.backup(&[&src], &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The metadata cache of the B2 repository above: directories 0700, files 0600, no
    // temporary file left (issue 19.5).
    let cache = env.path("cache-default");
    for p in all_paths(&cache) {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
        assert!(!p.to_string_lossy().contains(".tmp-"), "{}", p.display());
    }
    assert!(all_paths(&cache).len() > 3, "the cache was used");
    assert_eq!(mode(&env.repo()), 0o700);
    for (p, _) in env.repo_listing() {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        assert_eq!(mode(p.parent().unwrap()), 0o700, "{}", p.display());
    }
}

/// Someone with the storage but not the key edits the repository: flipped bits and
/// truncations in every kind of file, packs swapped between names, a renamed snapshot.
/// The first command that reads the damaged file fails with a clear error (or, for a
/// damaged data pack, restores the rest and names the file); nothing panics, nothing is
/// written outside the restore target.
#[test]
fn hostile_edits_of_every_kind_of_file_are_detected() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 50, 700_000)).unwrap();
    }
    env.backup(&[&src], &[]);
    let pristine = env.path("pristine");
    copy_tree(&env.repo(), &pristine);
    let files: Vec<PathBuf> = env.repo_listing().into_keys().collect();
    let rel = |p: &Path| p.strip_prefix(env.repo()).unwrap().to_path_buf();
    let of_kind = |k: &str| {
        files
            .iter()
            .filter(|p| rel(p).starts_with(k))
            .cloned()
            .collect::<Vec<_>>()
    };
    let packs = of_kind("data");
    let mut cases: Vec<(String, Box<dyn Fn(&Path)>)> = Vec::new();
    for kind in ["config", "keys", "index", "snapshots", "data"] {
        let victim = rel(&of_kind(kind)[0]);
        let v = victim.clone();
        cases.push((
            format!("flipped bit in {}", v.display()),
            Box::new(move |r: &Path| {
                let p = r.join(&v);
                let mut b = fs::read(&p).unwrap();
                let i = b.len() / 3;
                b[i] ^= 0x10;
                fs::write(&p, b).unwrap();
            }),
        ));
        let v = victim.clone();
        cases.push((
            format!("truncated {}", v.display()),
            Box::new(move |r: &Path| {
                let p = r.join(&v);
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
        ));
    }
    let (a, b) = (rel(&packs[0]), rel(&packs[1]));
    cases.push((
        "two packs swapped".into(),
        Box::new(move |r: &Path| {
            let (pa, pb) = (r.join(&a), r.join(&b));
            let (da, db) = (fs::read(&pa).unwrap(), fs::read(&pb).unwrap());
            fs::write(&pa, db).unwrap();
            fs::write(&pb, da).unwrap();
        }),
    ));
    let s = rel(&of_kind("snapshots")[0]);
    cases.push((
        "snapshot renamed".into(),
        Box::new(move |r: &Path| {
            let p = r.join(&s);
            fs::rename(&p, p.with_file_name("00".repeat(32))).unwrap();
        }),
    ));

    for (what, edit) in &cases {
        let repo = env.path("hostile");
        let _ = fs::remove_dir_all(&repo);
        copy_tree(&pristine, &repo);
        edit(&repo);
        let target = env.path("target");
        let _ = fs::remove_dir_all(&target);
        let restore = env
            .cmd()
            .arg("-r")
            .arg(&repo)
            .args(["restore", "latest", "--target"])
            .arg(&target)
            .output()
            .unwrap();
        let check = env
            .cmd()
            .arg("-r")
            .arg(&repo)
            .args(["check", "--read-data"])
            .output()
            .unwrap();
        for (cmd, out) in [("restore", &restore), ("check", &check)] {
            let err = stderr(out);
            assert!(!err.contains("panicked"), "{what}: {cmd} panicked: {err}");
            assert_ne!(
                out.status.code(),
                Some(0),
                "{what}: {cmd} did not notice: {err}"
            );
            assert!(
                err.lines()
                    .any(|l| l.starts_with("cairn: ") || l.starts_with("error: ")),
                "{what}: {cmd} gave no clear error: {err}"
            );
        }
        // Nothing outside the target: the environment holds only what the test made.
        let mut top: Vec<String> = fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        top.retain(|n| {
            ![
                "cache-default",
                "hostile",
                "pristine",
                "repo",
                "src",
                "target",
            ]
            .contains(&n.as_str())
        });
        assert!(top.is_empty(), "{what}: unexpected files {top:?}");
    }
}

/// An attacker replays an old index (the newer index file deleted): the snapshot that
/// needs the newer data fails to restore with a clear error, `check` names what is
/// missing, and `repair index` rebuilds the index from the packs themselves.
#[test]
fn a_replayed_old_index_is_detected_and_repaired() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("old"), pseudo_random(61, 600_000)).unwrap();
    env.backup(&[&src], &[]);
    let old_index: Vec<PathBuf> = env
        .repo_listing()
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("/index/"))
        .collect();
    fs::write(src.join("new"), pseudo_random(62, 600_000)).unwrap();
    env.backup(&[&src], &[]);
    for p in env
        .repo_listing()
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("/index/") && !old_index.contains(p))
    {
        fs::remove_file(p).unwrap();
    }
    let target = env.path("t");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not in the index") && stderr(&out).contains("repair index"),
        "says what and what to do: {}",
        stderr(&out)
    );
    env.ok(&["repair", "index"]);
    env.ok(&["check", "--read-data"]);
    let _ = fs::remove_dir_all(&target);
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

/// An attacker without the key swaps the sealed bytes of two tree blobs of the same
/// length inside a pack: each still decrypts, so only the blob ID (a keyed hash of the
/// plaintext) can tell. `ls`, `restore` and `check` each refuse with a clear error.
#[test]
fn a_tree_blob_replaced_by_another_valid_blob_is_detected() {
    use cairn_backend::Backend;
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    // Twenty directories whose trees differ only in a content ID: same plaintext length.
    for i in 0..20u64 {
        let d = src.join(format!("dir{i:02}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("x"), pseudo_random(i + 700, 1000)).unwrap();
        set_mtime(&d.join("x"), 1_700_000_000, 0);
        set_mtime(&d, 1_700_000_000, 0);
    }
    env.backup(&[&src], &[]);
    let backend: std::sync::Arc<dyn Backend> =
        std::sync::Arc::new(cairn_backend::LocalBackend::new(env.repo()));
    let repo = cairn_repo::Repository::open(backend.clone(), PASSWORD.as_bytes()).unwrap();
    let mut swapped = false;
    for obj in backend.list("data/").unwrap() {
        let Some(pack) = cairn_repo::pack_id_from_name(&obj.name) else {
            continue;
        };
        let entries = repo.load_pack_header(&pack).unwrap();
        let trees: Vec<_> = entries
            .iter()
            .filter(|e| e.blob_type == cairn_format::BlobType::Tree)
            .collect();
        // Equal stored and plaintext lengths, so only the ID check can tell (trees are
        // JSON, so an inode or ctime with one more digit makes one a byte longer).
        let same = |a: &cairn_format::PackEntry, b: &cairn_format::PackEntry| {
            a.length == b.length && a.raw_length == b.raw_length && a.id != b.id
        };
        let pair = trees
            .iter()
            .enumerate()
            .find_map(|(i, a)| trees[i + 1..].iter().find(|b| same(a, b)).map(|b| (*a, *b)));
        if let Some((a, b)) = pair {
            let path = env.repo().join(&obj.name);
            let mut bytes = fs::read(&path).unwrap();
            let (ra, rb) = (
                a.offset as usize..(a.offset + a.length) as usize,
                b.offset as usize..(b.offset + b.length) as usize,
            );
            let (da, db) = (bytes[ra.clone()].to_vec(), bytes[rb.clone()].to_vec());
            bytes[ra].copy_from_slice(&db);
            bytes[rb].copy_from_slice(&da);
            fs::write(&path, bytes).unwrap();
            swapped = true;
            break;
        }
    }
    assert!(swapped, "no two tree blobs of one length in one pack");
    let target = env.path("t");
    for args in [
        vec!["ls", "-l", "latest"],
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
        vec!["check"],
    ] {
        let out = env.run(&args);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{args:?} did not notice");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.contains("does not match its id"),
            "{args:?} says what is wrong: {err}"
        );
    }
}

/// Someone with the storage deletes a snapshot file. Nothing in the repository can
/// show it, so this machine's list of snapshots it has seen does: every command warns
/// naming it, `check` fails, and `forget ID` acknowledges it. Snapshots removed by
/// `forget` and `tag` (on any machine: sealed `forgotten/` records) raise nothing.
#[test]
fn a_deleted_snapshot_is_noticed_and_can_be_acknowledged() {
    let env = Env::new();
    env.ok(&["init"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"one").unwrap();
    let first = env.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::write(src.join("a"), b"two").unwrap();
    env.backup(&[&src], &[]);
    fs::write(src.join("a"), b"three").unwrap();
    let third = env.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Removed on purpose: forget, and tag (which replaces a snapshot): no warning.
    env.ok(&["forget", &third[..8]]);
    env.ok(&["tag", "--add", "kept", &first[..8]]);
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("was in"), "{}", stderr(&out));
    env.ok(&["check"]);
    // Deleted behind cairn's back.
    let listed: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&env.ok(&["snapshots", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(listed.len(), 2);
    let victim = &listed[1];
    fs::remove_file(env.repo().join("snapshots").join(victim)).unwrap();
    for args in [vec!["snapshots"], vec!["ls", "latest"]] {
        let out = env.run(&args);
        assert!(
            stderr(&out).contains(&format!("snapshot {} was in", &victim[..8]))
                && stderr(&out).contains("cairn forget"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("vanished"), "{}", stderr(&out));
    // Acknowledged: quiet again, check passes.
    env.ok(&["forget", &victim[..8]]);
    let out = env.run(&["snapshots"]);
    assert!(!stderr(&out).contains("was in"), "{}", stderr(&out));
    env.ok(&["check"]);
    // A new repository where this one was (a reformatted drive) is another repository:
    // the old one's snapshots are not reported missing from it.
    fs::remove_dir_all(env.repo()).unwrap();
    env.ok(&["init"]);
    env.backup(&[&src], &[]);
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("was in"), "{}", stderr(&out));
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

/// Issue 19.5: an empty password is refused from every source, naming it, and nothing
/// is created (before, `init` with `CAIRN_PASSWORD=` made a repository; an empty one from
/// a command was reported as a wrong password).
#[test]
fn empty_passwords_are_refused_from_every_source() {
    let env = Env::new();
    let empty = env.path("empty.pw");
    fs::write(&empty, b"\n").unwrap();
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str)> = vec![
        (vec!["init"], vec![("CAIRN_PASSWORD", "")], "CAIRN_PASSWORD"),
        (
            vec!["--password-file", empty.to_str().unwrap(), "init"],
            vec![],
            "password file",
        ),
        (
            vec!["--password-command", "true", "init"],
            vec![],
            "--password-command",
        ),
    ];
    for (args, vars, source) in cases {
        let mut c = env.cmd();
        c.env_remove("CAIRN_PASSWORD");
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.arg("-r").arg(env.repo()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(e.contains("empty password") && e.contains(source), "{e}");
        assert!(!env.repo().exists(), "{args:?}: nothing created");
    }
    env.init();
    let out = env.run(&["key", "add", "--new-password-file", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("empty password"), "{}", stderr(&out));
    assert_eq!(
        json_last_line(&env.ok(&["key", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1,
        "no key was added"
    );
}

/// Issue 19.5: children inherit none of cairn's secrets. `main` takes the password and
/// B2 keys out of the environment before anything runs, so every child (the password
/// command's `sh` here; `fusermount3` when not root) starts without them.
#[test]
fn children_inherit_no_secrets() {
    let env = Env::new();
    env.init();
    let seen = env.path("child-env");
    let cmd = format!("env > '{}'; echo '{PASSWORD}'", seen.display());
    let out = env
        .cmd()
        .env("CAIRN_FROM_PASSWORD", "from-secret")
        .env("B2_APPLICATION_KEY", "b2-key-secret")
        .env("B2_ACCOUNT_KEY", "b2-account-secret")
        .arg("-r")
        .arg(env.repo())
        .args(["--password-command", &cmd, "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let child = fs::read_to_string(&seen).unwrap();
    assert!(
        child.contains("CAIRN_INSECURE_TEST_KDF=1"),
        "the child keeps the rest of the environment: {child}"
    );
    for secret in [
        "CAIRN_PASSWORD=",
        "CAIRN_FROM_PASSWORD=",
        "B2_APPLICATION_KEY=",
        "B2_ACCOUNT_KEY=",
        PASSWORD,
        "from-secret",
        "b2-key-secret",
        "b2-account-secret",
    ] {
        assert!(
            !child.contains(secret),
            "the password command inherited {secret}"
        );
    }
}

/// A key file as someone with write access to `keys/` would plant it, named by its hash
/// and, by trying `created` values, listed before every other key file.
fn plant_key_file(env: &Env, memory_kib: u32, iterations: u32, salt_bytes: usize) -> String {
    let first_real = fs::read_dir(env.repo().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .min()
        .unwrap();
    for n in 0..10_000u32 {
        let body = serde_json::json!({
            "version": 1, "created": format!("2026-01-01T00:00:{:02}.{n:09}Z", n % 60), "hostname": "h", "username": "u",
            "kdf": "argon2id", "memory_kib": memory_kib, "iterations": iterations, "parallelism": 1,
            "salt": "ab".repeat(salt_bytes), "data": "cd".repeat(72),
        })
        .to_string();
        let hex = hex::encode(cairn_crypto::storage_hash(body.as_bytes()));
        if hex < first_real {
            fs::write(env.repo().join("keys").join(&hex), body).unwrap();
            return hex;
        }
    }
    panic!("no name sorted first");
}

/// Issue 19.2: a planted key file must not make every command slow and huge (1 GiB,
/// 40 passes made `snapshots` take 45.5 s at 1.03 GiB). Out-of-range ones are refused
/// by name; an expensive one within range is tried after the keys cairn writes.
#[test]
fn planted_key_files_cost_nothing() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.init();
    env.backup(&[&src], &[]);
    let huge = plant_key_file(&env, 1024 * 1024, 40, 16);
    let short_salt = plant_key_file(&env, 256, 1, 8);
    let dear = plant_key_file(&env, 512 * 1024, 4, 16);
    let start = std::time::Instant::now();
    let out = env.run(&["snapshots"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains(&huge) && e.contains("out of range"),
        "the huge key file is named: {e}"
    );
    assert!(e.contains(&short_salt) && e.contains("salt"), "{e}");
    assert!(
        took < std::time::Duration::from_millis(1000),
        "{took:?}: the 512 MiB key file was tried first ({dear})"
    );
    // `key list` still lists the real key and the one within range, naming the others.
    let out = env.run(&["key", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let keys = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
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

/// Issue 19.5: garbage in `forgotten/` or `locks/` does not brick the repository: every
/// command goes on (warning with the file's name), prune still takes its lock, and
/// `check` reports both files as errors.
#[test]
fn garbage_in_forgotten_and_locks_does_not_brick_the_repository() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    env.backup(&[&src], &[]);
    for dir in ["forgotten", "locks"] {
        fs::create_dir_all(env.repo().join(dir)).unwrap();
        fs::write(env.repo().join(dir).join("ab".repeat(32)), b"garbage").unwrap();
    }
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    env.backup(&[&src], &[]);
    // Prune's exclusive lock is not refused by the garbage lock; the file is named.
    let out = env.run(&["prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("locks/{}", "ab".repeat(32))),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("unreadable lock") && e.contains("unreadable forgotten record"),
        "{e}"
    );
    env.ok(&["unlock", "--remove-all"]);
    fs::remove_file(env.repo().join("forgotten").join("ab".repeat(32))).unwrap();
    env.ok(&["check"]);
}

/// Issue 19.5: the local backend reads only regular files: a pack replaced by a symlink
/// to /dev/zero, or by a fifo nobody writes to, fails at once naming the file, in
/// bounded memory (before, reading the link never ended and the fifo blocked forever).
#[test]
fn a_pack_replaced_by_a_device_link_or_a_fifo_fails_at_once() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..3u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 60, 700_000)).unwrap();
    }
    env.backup(&[&src], &[]);
    let packs = env.packs_largest_first();
    fs::remove_file(&packs[0]).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &packs[0]).unwrap();
    fs::remove_file(&packs[1]).unwrap();
    nix::unistd::mkfifo(&packs[1], nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for args in [
        vec!["check", "--read-data"],
        vec!["restore", "latest", "--target", "t"],
    ] {
        let start = std::time::Instant::now();
        let mut c = wrapping_cairn(&env, "timeout");
        c.args(["60", env!("CARGO_BIN_EXE_cairn"), "-r"])
            .arg(env.repo())
            .args(&args);
        let out = c.output().unwrap();
        assert_ne!(out.status.code(), Some(124), "{args:?} hung");
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let e = stderr(&out);
        // check's listing leaves out what is not a regular file ("missing"); a read of
        // it says what is there instead.
        assert!(
            e.contains("symbolic link")
                || e.contains("not a regular file")
                || e.contains("missing (listed in the index)"),
            "{args:?}: {e}"
        );
        let name = packs[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            e.contains(&name[..16]) || args[0] == "restore",
            "{args:?}: {e}"
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{args:?}"
        );
    }
}
