//! Keys, tags and locks: adding, removing and changing keys (also racing), tags, unlock,
//! and racing inits.

use std::fs;
use std::path::Path;

use crate::util::*;

#[test]
fn keys_add_remove_passwd() {
    let env = Env::new();
    env.init();
    let pw2 = env.path("pw2");
    fs::write(&pw2, "second password\n").unwrap();
    env.ok(&["key", "add", "--new-password-file", pw2.to_str().unwrap()]);
    let keys: serde_json::Value =
        serde_json::from_str(&env.ok(&["key", "list", "--json"])).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let current = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The key in use cannot be removed; the other can, with the second password it works.
    let out = env.run(&["key", "remove", &current[..8]]);
    assert_eq!(out.status.code(), Some(1));
    let with_pw2 = |args: &[&str]| {
        env.cmd()
            .env("CAIRN_PASSWORD", "second password")
            .arg("-r")
            .arg(env.repo())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(with_pw2(&["snapshots"]).status.success());
    assert!(with_pw2(&["key", "remove", &current[..8]]).status.success());
    assert_eq!(
        env.run(&["snapshots"]).status.code(),
        Some(12),
        "first password is gone"
    );
    // The last key cannot be removed; passwd replaces it.
    assert_eq!(
        with_pw2(&["key", "remove", &other[..8]]).status.code(),
        Some(1)
    );
    let pw3 = env.path("pw3");
    fs::write(&pw3, "third\n").unwrap();
    assert!(with_pw2(&[
        "key",
        "passwd",
        "--new-password-file",
        pw3.to_str().unwrap()
    ])
    .status
    .success());
    assert_eq!(with_pw2(&["snapshots"]).status.code(), Some(12));
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "third")
        .arg("-r")
        .arg(env.repo())
        .args(["key", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
}

#[test]
fn tags_and_unlock() {
    let env = Env::new();
    env.init();
    env.backup(&[Path::new("/etc/hostname")], &["--tag", "a"]);
    env.ok(&["tag", "latest", "--add", "b,c", "--remove", "a"]);
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "the old snapshot file is replaced"
    );
    assert_eq!(snaps[0]["tags"], serde_json::json!(["b", "c"]));
    env.ok(&["tag", "latest", "--set", "only"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", "only"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(env.run(&["tag", "latest"]).status.code(), Some(1));

    // A lock left by a killed process on this host is stale: unlock removes it.
    let out = env
        .cmd()
        .env("CAIRN_TEST_CRASH_AT", "after-index")
        .arg("-r")
        .arg(env.repo())
        .args(["prune", "--max-unused", "0%"])
        .output()
        .unwrap();
    let _ = out;
    let locks = env.repo().join("locks");
    let n = fs::read_dir(&locks).map(|r| r.count()).unwrap_or(0);
    assert_eq!(n, 1, "the aborted prune left its lock behind");
    let out = env.ok(&["unlock", "--json"]);
    assert_eq!(
        json_last_line(&out)["locks_removed"].as_u64().unwrap() as usize,
        n
    );
    assert_eq!(fs::read_dir(&locks).map(|r| r.count()).unwrap_or(0), 0);
}

/// Issue 20.4: two `key remove` at once, each removing the other's key, both passed the
/// "not the last key" check and left none. Key changes now hold the exclusive lock and
/// check under it: whatever the interleaving, a key remains that opens the repository.
/// On a local directory and on B2 with 30 ms of latency per call.
#[test]
fn racing_key_removes_always_leave_a_working_key() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--latency-ms", "30"]);
    let (pw1, pw2) = (env.path("pw1"), env.path("pw2"));
    fs::write(&pw1, "first password\n").unwrap();
    fs::write(&pw2, "second password\n").unwrap();
    let local = env.repo().to_str().unwrap().to_string();
    for location in [local.as_str(), "b2:keys-bucket/r"] {
        let run = |pw: &Path, args: &[&str]| {
            emu.cairn_at(&env, location)
                .env_remove("CAIRN_PASSWORD")
                .arg("--password-file")
                .arg(pw)
                .args(args)
                .output()
                .unwrap()
        };
        let out = run(&pw1, &["init"]);
        assert!(out.status.success(), "{}", stderr(&out));
        for round in 0..4 {
            // Both passwords present (one of them was removed by the last round), then
            // each process removes the other's key.
            let keys = |pw: &Path| {
                let out = run(pw, &["--json", "key", "list"]);
                out.status.success().then(|| {
                    json_last_line(&String::from_utf8_lossy(&out.stdout))
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
            };
            for (have, want) in [(&pw1, &pw2), (&pw2, &pw1)] {
                if keys(have).is_some() && keys(want).is_none() {
                    let out = run(
                        have,
                        &["key", "add", "--new-password-file", want.to_str().unwrap()],
                    );
                    assert!(out.status.success(), "{}", stderr(&out));
                }
            }
            let list = keys(&pw1).unwrap();
            let current = |pw: &Path| {
                keys(pw)
                    .unwrap()
                    .iter()
                    .find(|k| k["current"] == true)
                    .map(|k| k["id"].as_str().unwrap().to_string())
                    .unwrap()
            };
            let (id1, id2) = (current(&pw1), current(&pw2));
            assert_eq!(list.len(), 2, "round {round}: {list:?}");
            let spawn = |pw: &Path, id: &str| {
                emu.cairn_at(&env, location)
                    .env_remove("CAIRN_PASSWORD")
                    .arg("--password-file")
                    .arg(pw)
                    .args(["key", "remove", id])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            let (a, b) = (spawn(&pw1, &id2), spawn(&pw2, &id1));
            let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            // 0: removed; 1: refused as the last key; 11: the other holds the lock; 12:
            // the other already removed this one's key, so its password opens nothing.
            for o in [&a, &b] {
                assert!(
                    matches!(o.status.code(), Some(0 | 1 | 11 | 12)),
                    "{location} round {round}: {:?} {}",
                    o.status,
                    stderr(o)
                );
            }
            let opens = [&pw1, &pw2]
                .iter()
                .filter(|pw| run(pw, &["snapshots"]).status.success())
                .count();
            assert!(
                opens >= 1,
                "{location} round {round}: no password opens the repository any more ({} / {})",
                stderr(&a),
                stderr(&b)
            );
            assert!(
                !(a.status.success() && b.status.success()),
                "{location} round {round}: both removes succeeded"
            );
        }
    }
}

/// Issue 20.4: two `cairn init` at once on one location both reported success with
/// different repository IDs, and the location then opened with neither. Now exactly one
/// wins (the config is created only if absent: RENAME_NOREPLACE locally, first upload
/// on B2), the other fails with exit 1 and takes back its key file, and the repository
/// opens and checks.
#[test]
fn racing_inits_leave_one_repository() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--latency-ms", "30"]);
    for round in 0..4 {
        let local = env.path(&format!("r{round}"));
        let b2 = format!("b2:init-bucket/r{round}");
        for location in [local.to_str().unwrap(), b2.as_str()] {
            let spawn = || {
                emu.cairn_at(&env, location)
                    .arg("init")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            let (a, b) = (spawn(), spawn());
            let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            let codes = [a.status.code(), b.status.code()];
            assert!(
                codes.contains(&Some(0)) && codes.contains(&Some(1)),
                "{location}: one wins, one fails: {codes:?} {} / {}",
                stderr(&a),
                stderr(&b)
            );
            let loser = if a.status.success() { &b } else { &a };
            assert!(stderr(loser).contains("already"), "{}", stderr(loser));
            let keys = json_last_line(&String::from_utf8_lossy(
                &emu.cairn_at(&env, location)
                    .args(["--json", "key", "list"])
                    .output()
                    .unwrap()
                    .stdout,
            ))
            .as_array()
            .unwrap()
            .len();
            assert_eq!(keys, 1, "{location}: the loser took back its key file");
            let out = emu.cairn_at(&env, location).arg("check").output().unwrap();
            assert!(out.status.success(), "{location}: {}", stderr(&out));
        }
    }
}
