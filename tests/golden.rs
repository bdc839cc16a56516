//! The frozen repositories in tests/fixtures: repo-v1, written by cairn 0.1.0 (format
//! 1), and repo-v2-locked, a repository created with `init --lock-days` on B2 (format
//! 2), copied to a directory by `ship`. Every later build must open them and restore
//! exactly the tree below. Regenerate one only when adding a new fixture version, never
//! to make this test pass:
//! `CAIRN_WRITE_FIXTURE=1 cargo test --test tests golden::write_fixture -- --ignored`
//! (and `golden::write_fixture_v2`, `golden::write_fixture_v3`). repo-v3-marked holds
//! index files of format 3 (`CAIRNIX2`): a prune stopped after marking packs for
//! deletion and before deleting them.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

const FIXTURE_PASSWORD: &str = "cairn-golden-v1";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1")
}

fn fixture_v3_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v3-marked")
}

fn fixture_v2_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v2-locked")
}

/// The source tree, rebuilt identically on every run (contents, modes, mtimes).
fn build_source(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(root.join("docs/empty")).unwrap();
    fs::write(
        root.join("docs/readme.txt"),
        "cairn golden fixture\n".repeat(100),
    )
    .unwrap();
    fs::write(root.join("docs/random.bin"), pseudo_random(2026, 3 << 20)).unwrap();
    fs::write(root.join("docs/empty-file"), b"").unwrap();
    fs::write(raw_path(root, b"docs/non-utf8-\xff"), b"bytes").unwrap();
    std::os::unix::fs::symlink("readme.txt", root.join("docs/link")).unwrap();
    fs::set_permissions(
        root.join("docs/random.bin"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for (i, p) in [
        "docs/readme.txt",
        "docs/random.bin",
        "docs/empty-file",
        "docs/link",
        "docs/empty",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(p), 1_700_000_000 + i as i64, 123_000 * i as i64);
    }
    set_mtime(&raw_path(root, b"docs/non-utf8-\xff"), -1, 5);
    set_mtime(&root.join("docs"), 1_600_000_000, 0);
}

#[test]
#[ignore]
fn write_fixture() {
    if std::env::var("CAIRN_WRITE_FIXTURE").is_err() {
        return;
    }
    let env = Env::new();
    let src = env.path("golden");
    build_source(&src);
    let dir = fixture_dir();
    let _ = fs::remove_dir_all(&dir);
    let run = |args: &[&str]| {
        let out = env
            .cmd()
            .env("CAIRN_PASSWORD", FIXTURE_PASSWORD)
            .env_remove("CAIRN_INSECURE_TEST_KDF")
            .arg("-r")
            .arg(&dir)
            .args(args)
            .current_dir(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init", "--pack-size", "1"]);
    // Relative path "docs" so the snapshot does not depend on the temp directory's name.
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", FIXTURE_PASSWORD)
        .arg("-r")
        .arg(&dir)
        .args(["backup", "--host", "golden", "--tag", "v1", "docs"])
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn golden_repository_v1_opens_and_restores() {
    opens_and_restores(&Env::new(), &fixture_dir(), "v1");
}

/// Format 2: the config records a lock period. On a directory (which cannot lock) the
/// repository still reads, restores and checks; a write is refused in one line.
#[test]
fn golden_repository_v2_opens_and_restores() {
    let env = Env::new();
    let dir = opens_and_restores(&env, &fixture_v2_dir(), "v2");
    let unlocked = |d: &Path| -> Vec<PathBuf> {
        all_paths(d)
            .into_iter()
            .filter(|p| !p.starts_with(d.join("locks")))
            .collect()
    };
    let before = unlocked(&dir);
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", FIXTURE_PASSWORD)
        .arg("-r")
        .arg(&dir)
        .args(["backup", env.path("expected").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("init --lock-days") && e.contains("cannot lock files"),
        "{e}"
    );
    assert_eq!(unlocked(&dir), before, "nothing but a lock was written");
}

/// Opens a copy of the fixture `fixture` (snapshot tagged `tag`), restores it and
/// compares; returns the copy.
fn opens_and_restores(env: &Env, fixture: &Path, tag: &str) -> PathBuf {
    let expected = env.path("expected");
    build_source(&expected);
    // Work on a copy: commands take locks, and the checked-in fixture must stay pristine.
    let dir = env.path(&format!("repo-{tag}"));
    copy_tree(fixture, &dir);
    let run = |args: &[&str]| {
        let out = env
            .cmd()
            .env("CAIRN_PASSWORD", FIXTURE_PASSWORD)
            .arg("-r")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let snaps: serde_json::Value = serde_json::from_str(&run(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(snaps[0]["hostname"], "golden");
    assert_eq!(snaps[0]["tags"][0], tag);
    let path = snaps[0]["paths"][0].as_str().unwrap().to_string();
    let t = env.path("t");
    run(&[
        "restore",
        &format!("latest:{path}"),
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&expected.join("docs"), &t);
    run(&["check", "--read-data"]);
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "wrong")
        .arg("-r")
        .arg(&dir)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12));
    dir
}

#[test]
#[ignore]
fn write_fixture_v2() {
    if std::env::var("CAIRN_WRITE_FIXTURE").is_err() {
        return;
    }
    let env = Env::new();
    let src = env.path("golden");
    build_source(&src);
    let emu = Emulator::start(&env.path("emu"), &[]);
    let auth = emu.authorize(2);
    let (st, b) = emu.call(
        2,
        "b2_create_bucket",
        auth["authorizationToken"].as_str().unwrap(),
        serde_json::json!({"accountId": auth["accountId"], "bucketName": "golden-locked",
            "bucketType": "allPrivate", "fileLockEnabled": true}),
    );
    assert_eq!(st, 200, "{b}");
    let dir = fixture_v2_dir();
    let _ = fs::remove_dir_all(&dir);
    let run = |args: &[&str]| {
        let out = emu
            .cairn_at(&env, "b2:golden-locked/repo")
            .env("CAIRN_PASSWORD", FIXTURE_PASSWORD)
            .env_remove("CAIRN_INSECURE_TEST_KDF")
            .args(args)
            .current_dir(&src)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    run(&["init", "--pack-size", "1", "--lock-days", "1"]);
    run(&["backup", "--host", "golden", "--tag", "v2", "docs"]);
    run(&["ship", dir.to_str().unwrap(), "--create-bucket"]);
}

/// Format 3: an index file with packs marked for deletion. The repository reads,
/// restores and checks; check counts the marked packs, and a prune deletes them.
#[test]
fn golden_repository_v3_opens_and_restores() {
    let env = Env::new();
    let dir = opens_and_restores(&env, &fixture_v3_dir(), "v3");
    let run = |args: &[&str]| {
        let out = env
            .cmd()
            .env("CAIRN_PASSWORD", FIXTURE_PASSWORD)
            .arg("-r")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        json_last_line(&String::from_utf8_lossy(&out.stdout))
    };
    assert!(run(&["check", "--json"])["packs_marked"].as_u64().unwrap() > 0);
    run(&["prune", "--json"]);
    assert_eq!(run(&["check", "--read-data", "--json"])["packs_marked"], 0);
}

#[test]
#[ignore]
fn write_fixture_v3() {
    if std::env::var("CAIRN_WRITE_FIXTURE").is_err() {
        return;
    }
    let env = Env::new();
    let src = env.path("golden");
    build_source(&src);
    fs::create_dir_all(src.join("junk")).unwrap();
    fs::write(src.join("junk/j"), pseudo_random(7, 300_000)).unwrap();
    let dir = fixture_v3_dir();
    let _ = fs::remove_dir_all(&dir);
    let run = |args: &[&str], crash: Option<&str>| {
        let mut c = env.cmd();
        c.env("CAIRN_PASSWORD", FIXTURE_PASSWORD)
            .env_remove("CAIRN_INSECURE_TEST_KDF")
            .arg("-r")
            .arg(&dir)
            .args(args)
            .current_dir(&src);
        if let Some(at) = crash {
            c.env("CAIRN_TEST_CRASH_AT", at);
        }
        c.output().unwrap()
    };
    assert!(run(&["init", "--pack-size", "1"], None).status.success());
    assert!(run(
        &["backup", "--host", "golden", "--tag", "junk", "junk"],
        None
    )
    .status
    .success());
    assert!(
        run(&["backup", "--host", "golden", "--tag", "v3", "docs"], None)
            .status
            .success()
    );
    let out = run(&["snapshots", "--json", "--tag", "junk"], None);
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let junk = snaps[0]["id"].as_str().unwrap().to_string();
    let out = run(&["forget", &junk], None);
    assert!(out.status.success(), "{}", stderr(&out));
    // Stopped after the marking index is stored, before anything is deleted.
    let out = run(&["prune"], Some("after-index"));
    assert!(!out.status.success());
    let _ = fs::remove_dir_all(dir.join("locks"));
}
