//! Every command's `--json` output, as docs/json.md documents it: each line of stdout
//! is one JSON document (progress lines, if any, then the summary or the listing), and
//! the fields each document promises are there.

use std::fs;

use crate::util::*;

/// Runs `cairn -r REPO --json args`, asserts success and that every stdout line is JSON;
/// returns the documents.
fn json_lines(env: &Env, args: &[&str]) -> Vec<serde_json::Value> {
    let out = env.repo_cmd().arg("--json").args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {l}"))
        })
        .collect();
    assert!(!docs.is_empty(), "{args:?} printed nothing");
    docs
}

fn has(v: &serde_json::Value, keys: &[&str], what: &str) {
    for k in keys {
        assert!(v.get(k).is_some(), "{what}: no {k:?} in {v}");
    }
}

#[test]
fn every_command_speaks_json() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/a.txt"), b"alpha").unwrap();
    fs::write(src.join("b.bin"), pseudo_random(1, 200_000)).unwrap();
    let init = json_lines(&env, &["init"]);
    has(&init[0], &["message_type", "id", "repository"], "init");
    let b1 = json_lines(&env, &["backup", src.to_str().unwrap()]);
    has(
        b1.last().unwrap(),
        &[
            "message_type",
            "snapshot_id",
            "files_new",
            "data_added",
            "total_duration",
        ],
        "backup",
    );
    // Progress streams as status lines before the summary.
    let status: Vec<_> = b1
        .iter()
        .filter(|d| d["message_type"] == "status")
        .collect();
    assert!(
        status.len() >= 2,
        "a status line when the work is known and one at the end: {b1:?}"
    );
    has(
        status[0],
        &[
            "percent_done",
            "files_done",
            "total_files",
            "bytes_done",
            "total_bytes",
            "seconds_elapsed",
        ],
        "status",
    );
    assert_eq!(status.last().unwrap()["files_done"], 2, "{b1:?}");
    assert_eq!(b1.last().unwrap()["message_type"], "summary");
    fs::write(src.join("d/a.txt"), b"alpha, again").unwrap();
    let b2 = json_lines(&env, &["backup", "--tag", "second", src.to_str().unwrap()]);
    let (first, second) = (
        b1.last().unwrap()["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string(),
        b2.last().unwrap()["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let snaps = json_lines(&env, &["snapshots"]);
    assert_eq!(snaps[0].as_array().unwrap().len(), 2);
    has(
        &snaps[0][0],
        &[
            "id", "short_id", "time", "hostname", "username", "paths", "tags", "tree", "summary",
        ],
        "snapshots",
    );
    let ls = json_lines(&env, &["ls", "latest"]);
    assert!(
        ls[0]["nodes"].as_array().unwrap().len() > 3,
        "ls: every entry"
    );
    has(
        &ls[0]["nodes"][1],
        &["name", "type", "path", "mode", "mtime", "size"],
        "ls",
    );
    has(
        &json_lines(&env, &["find", "*.txt"])[0][0],
        &["snapshot", "matches"],
        "find",
    );
    has(
        json_lines(&env, &["diff", &first[..8], &second[..8]])
            .last()
            .unwrap(),
        &["message_type", "changes"],
        "diff",
    );
    has(&json_lines(&env, &["stats"])[0], &["total_size"], "stats");
    has(
        &json_lines(&env, &["key", "list"])[0][0],
        &["id", "current", "created"],
        "key list",
    );
    let pw = env.path("pw2");
    fs::write(&pw, "second password").unwrap();
    has(
        &json_lines(
            &env,
            &["key", "add", "--new-password-file", pw.to_str().unwrap()],
        )[0],
        &["message_type", "key_id"],
        "key add",
    );
    has(
        &json_lines(&env, &["tag", "--add", "x", &first[..8]])[0],
        &["message_type"],
        "tag",
    );
    let t = env.path("t");
    has(
        json_lines(
            &env,
            &["restore", "latest", "--target", t.to_str().unwrap()],
        )
        .last()
        .unwrap(),
        &[
            "message_type",
            "files_restored",
            "bytes_restored",
            "files_deleted",
            "dirs_deleted",
            "deleted",
            "errors",
        ],
        "restore",
    );
    has(
        json_lines(&env, &["check", "--read-data"]).last().unwrap(),
        &[
            "message_type",
            "errors",
            "packs_checked",
            "blobs_checked",
            "bytes_read",
        ],
        "check",
    );
    has(
        json_lines(&env, &["drill", "--files", "2"]).last().unwrap(),
        &[
            "message_type",
            "ok",
            "files_checked",
            "bytes_checked",
            "snapshots",
            "failures",
        ],
        "drill",
    );
    has(
        &json_lines(&env, &["drill", "--history"])[0],
        &[],
        "drill --history",
    );
    let offsite = env.path("offsite");
    has(
        json_lines(
            &env,
            &["ship", offsite.to_str().unwrap(), "--create-bucket"],
        )
        .last()
        .unwrap(),
        &[
            "message_type",
            "files_uploaded",
            "bytes_uploaded",
            "files_deleted",
            "files_skipped",
            "transactions",
        ],
        "ship",
    );
    let mirror = env.path("mirror");
    has(
        json_lines(
            &env,
            &["sync", src.to_str().unwrap(), mirror.to_str().unwrap()],
        )
        .last()
        .unwrap(),
        &[
            "message_type",
            "files_uploaded",
            "files_touched",
            "deleted",
            "unsafe_names",
            "notes",
            "transactions",
        ],
        "sync",
    );
    let other = env.path("other");
    assert!(env
        .cmd()
        .arg("-r")
        .arg(&other)
        .arg("init")
        .output()
        .unwrap()
        .status
        .success());
    let copy = env
        .cmd()
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .arg("-r")
        .arg(&other)
        .args(["--json", "copy", "--from-repo"])
        .arg(env.repo())
        .output()
        .unwrap();
    assert_eq!(copy.status.code(), Some(0), "copy: {}", stderr(&copy));
    let v: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&copy.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    has(&v, &["message_type", "copied", "skipped"], "copy");
    has(
        json_lines(&env, &["forget", "--keep-last", "1"])
            .last()
            .unwrap(),
        &[],
        "forget",
    );
    let prune = json_lines(&env, &["prune"]);
    has(prune.last().unwrap(), &["message_type"], "prune");
    // A check that reads no pack, a prune that repacks none: their last status line
    // says done, not 0%.
    let check = json_lines(&env, &["check"]);
    for (what, lines) in [("check", &check), ("prune", &prune)] {
        let last = lines
            .iter()
            .rev()
            .find(|d| d["message_type"] == "status")
            .unwrap_or_else(|| panic!("{what}: no status line: {lines:?}"));
        assert_eq!(last["percent_done"], 1.0, "{what}: {last}");
    }
    has(
        &json_lines(&env, &["repair", "index"])[0],
        &["message_type"],
        "repair index",
    );
    has(
        &json_lines(&env, &["repair", "snapshots"])[0],
        &["message_type", "rewritten", "lost"],
        "repair snapshots",
    );
    has(
        &json_lines(&env, &["unlock"])[0],
        &["message_type"],
        "unlock",
    );
}

/// Issue 24: `snapshots --json` says, per snapshot, which destinations this machine
/// last shipped it to and which drills restored from it; a snapshot made after the
/// ship is in no copy yet.
#[test]
fn snapshots_json_names_ships_and_drills() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"first").unwrap();
    env.backup(&[&src], &[]);
    let dest = env.path("offsite");
    env.ok(&["ship", dest.to_str().unwrap(), "--create-bucket"]);
    env.ok(&["drill"]);
    fs::write(src.join("a"), b"second").unwrap();
    env.backup(&[&src], &[]);
    let out = env.ok(&["snapshots", "--json"]);
    let list: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{out}");
    let (old, new) = (&list[0], &list[1]);
    let shipped = old["shipped"].as_array().unwrap();
    assert_eq!(shipped.len(), 1, "{old}");
    assert!(
        shipped[0]["destination"]
            .as_str()
            .unwrap()
            .ends_with("offsite"),
        "{old}"
    );
    assert!(shipped[0]["time"].is_string());
    let drills = old["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 1, "{old}");
    assert_eq!(drills[0]["ok"], true);
    assert_eq!(new["shipped"], serde_json::json!([]), "{new}");
    assert_eq!(new["drills"], serde_json::json!([]), "{new}");
}
