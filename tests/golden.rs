//! The frozen repository in tests/fixtures/repo-v1, written by cairn 0.1.0 (format 1).
//! Every later build must open it and restore exactly the tree below. Regenerate it only
//! when adding a new fixture version, never to make this test pass:
//! `CAIRN_WRITE_FIXTURE=1 cargo test --test tests golden::write_fixture -- --ignored`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

const FIXTURE_PASSWORD: &str = "cairn-golden-v1";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1")
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
    let env = Env::new();
    let expected = env.path("expected");
    build_source(&expected);
    // Work on a copy: commands take locks, and the checked-in fixture must stay pristine.
    let dir = env.path("repo-v1");
    copy_tree(&fixture_dir(), &dir);
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
    assert_eq!(snaps[0]["tags"][0], "v1");
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
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "wrong")
        .arg("-r")
        .arg(&dir)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12));
}
