//! An append-only B2 key (no `deleteFiles`): the daily work goes on, commands that must
//! delete refuse up front and change nothing, ship leaves its deletions for a stronger
//! key, and locks are hidden rather than left behind.

use std::fs;
use std::process::{Command, Output};

use crate::util::*;

const BUCKET: &str = "vault-bucket";
const DAILY_CAPS: &str = "listBuckets,listFiles,readFiles,writeFiles";

fn emulator(env: &Env) -> Emulator {
    Emulator::start(
        &env.path("emu"),
        &[
            "--restricted-key",
            &format!("daily:dailysecret:{BUCKET}:{DAILY_CAPS}"),
        ],
    )
}

/// `cairn` with the append-only key.
fn daily(env: &Env, emu: &Emulator, location: &str) -> Command {
    let mut c = emu.cairn_at(env, location);
    c.env("B2_APPLICATION_KEY_ID", "daily")
        .env("B2_APPLICATION_KEY", "dailysecret");
    c
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeds(out: Output, what: &str) -> String {
    assert_eq!(code(&out), Some(0), "{what}: {}", err(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every live (not hidden) name in the bucket, through the full key.
fn names(emu: &Emulator) -> Vec<String> {
    emu.files(BUCKET)
        .iter()
        .map(|f| f["fileName"].as_str().unwrap().to_string())
        .collect()
}

fn refused_in_one_line(out: &Output, command: &str) {
    assert_eq!(code(out), Some(1), "{command}: {}", err(out));
    let e = err(out);
    let lines: Vec<&str> = e.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{command}: one line, got {e:?}");
    assert!(
        lines[0].starts_with(&format!("cairn: {command} must delete files"))
            && lines[0].contains("lacks the deleteFiles capability")
            && lines[0].contains("nothing was changed"),
        "{e}"
    );
}

#[test]
fn a_repository_on_b2_with_an_append_only_key() {
    let env = Env::new();
    let emu = emulator(&env);
    let repo = format!("b2:{BUCKET}/repo");
    succeeds(
        emu.cairn_at(&env, &repo).arg("init").output().unwrap(),
        "init with the full key",
    );
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), pseudo_random(1, 200_000)).unwrap();
    let run = |args: &[&str]| daily(&env, &emu, &repo).args(args).output().unwrap();
    for round in 0..3 {
        fs::write(
            src.join(format!("r{round}")),
            pseudo_random(round + 2, 50_000),
        )
        .unwrap();
        succeeds(run(&["backup", src.to_str().unwrap()]), "backup");
    }
    succeeds(run(&["check", "--read-data"]), "check");
    succeeds(run(&["check", "--read-data"]), "a second check");
    succeeds(run(&["snapshots"]), "snapshots");
    let target = env.path("restored");
    succeeds(
        run(&["restore", "latest", "--target", target.to_str().unwrap()]),
        "restore",
    );
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    succeeds(run(&["drill"]), "drill");
    // Every command removed its lock: hidden, since this key cannot delete.
    assert!(
        !names(&emu).iter().any(|n| n.starts_with("repo/locks/")),
        "{:?}",
        names(&emu)
    );

    let before = names(&emu);
    let snaps = run(&["snapshots", "--json"]);
    for args in [
        &["forget", "--keep-last", "1"][..],
        &["forget", "--keep-last", "1", "--prune"],
        &["prune"],
        &["tag", "--add", "x", "latest"],
        &["unlock", "--remove-all"],
    ] {
        let command = match args[0] {
            "unlock" => "unlock --remove-all",
            c => c,
        };
        refused_in_one_line(&run(args), command);
    }
    assert_eq!(names(&emu), before, "a refused command changed nothing");
    assert_eq!(run(&["snapshots", "--json"]).stdout, snaps.stdout);
    // A dry run deletes nothing, so it may show what a stronger key would do.
    succeeds(run(&["forget", "--keep-last", "1", "--dry-run"]), "dry run");

    // The daily key hid its locks; every version is still stored.
    let lock_versions = || emu.versions(BUCKET, "repo/locks/").len();
    assert!(lock_versions() > 0);
    // Hidden files that are not this repository's locks must survive the purge.
    let (token, bucket_id) = emu.bucket(BUCKET);
    for name in [
        "repo/locks-elsewhere/x",
        "repo/snapshots-note",
        "other/locks/x",
    ] {
        assert_eq!(emu.plant(BUCKET, name, b"keep"), 200);
        let (st, h) = emu.call(
            2,
            "b2_hide_file",
            &token,
            serde_json::json!({"bucketId": bucket_id, "fileName": name}),
        );
        assert_eq!(st, 200, "{h}");
    }

    // The pruning key (kept elsewhere) does what the daily one may not, and clears the
    // hidden locks.
    let strong = |args: &[&str]| emu.cairn_at(&env, &repo).args(args).output().unwrap();
    let out = succeeds(
        strong(&["forget", "--keep-last", "1", "--prune", "--json"]),
        "prune",
    );
    let s = json_last_line(&out);
    assert!(
        s["prune"]["hidden_locks_purged"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert_eq!(lock_versions(), 0, "no lock version is left to pay for");
    for prefix in ["repo/locks-elsewhere/", "repo/snapshots-note", "other/"] {
        assert_eq!(
            emu.versions(BUCKET, prefix).len(),
            2,
            "{prefix} was left alone"
        );
    }
    succeeds(strong(&["check", "--read-data"]), "check after prune");
}

#[test]
fn ship_with_an_append_only_key_leaves_deletions_for_a_stronger_one() {
    let env = Env::new();
    let emu = emulator(&env);
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let dest = format!("b2:{BUCKET}/offsite");
    let ship = |key: &str| {
        let mut c = if key == "daily" {
            daily(&env, &emu, env.repo().to_str().unwrap())
        } else {
            emu.cairn_at(&env, env.repo().to_str().unwrap())
        };
        c.args(["ship", &dest, "--json"]).output().unwrap()
    };
    // The bucket is made once with the full key; the daily job never needs to.
    succeeds(
        emu.cairn_at(&env, env.repo().to_str().unwrap())
            .args(["ship", &dest, "--create-bucket"])
            .output()
            .unwrap(),
        "first ship",
    );
    for round in 0..3u64 {
        fs::write(
            src.join(format!("f{round}")),
            pseudo_random(round, 1_500_000),
        )
        .unwrap();
        env.backup(&[&src], &[]);
        let out = ship("daily");
        let s = json_last_line(&succeeds(out, "daily ship"));
        assert!(s["files_uploaded"].as_u64().unwrap() > 0);
    }
    let complete = names(&emu);

    // The laptop prunes its USB repository; the daily ship cannot delete offsite.
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    let out = ship("daily");
    assert_eq!(code(&out), Some(3), "{}", err(&out));
    let s = json_last_line(&String::from_utf8_lossy(&out.stdout));
    let left = s["deletions_left"].as_array().unwrap();
    assert!(!left.is_empty(), "{s}");
    assert_eq!(s["files_deleted"], 0);
    assert!(s["cannot_delete"].as_str().unwrap().contains("deleteFiles"));
    assert!(err(&out).contains("deletion(s) left"), "{}", err(&out));
    let now = names(&emu);
    for n in &complete {
        if !n.starts_with("offsite/locks/") {
            assert!(now.contains(n), "{n} went missing offsite");
        }
    }
    // What the source holds now is all there: restore from the copy with the daily key.
    let target = env.path("restored");
    succeeds(
        daily(&env, &emu, &dest)
            .args(["restore", "latest", "--target", target.to_str().unwrap()])
            .output()
            .unwrap(),
        "restore offsite",
    );
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));

    // The stronger key makes the deletions the daily one left.
    let out = ship("full");
    let s = json_last_line(&succeeds(out, "ship with the full key"));
    assert_eq!(
        s["files_deleted"].as_u64().unwrap(),
        left.len() as u64,
        "{s}"
    );
    succeeds(
        emu.cairn_at(&env, &dest)
            .args(["check", "--read-data"])
            .output()
            .unwrap(),
        "check offsite",
    );
}
