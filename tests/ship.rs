//! `cairn ship` to B2 (the emulator), checked with cairn itself and with the real rclone.

use std::fs;

use crate::util::*;

fn with_b2(mut c: std::process::Command, emu: &Emulator) -> std::process::Command {
    c.env("B2_APPLICATION_KEY_ID", "testkeyid").env("B2_APPLICATION_KEY", "testkey").env("CAIRN_B2_ENDPOINT", &emu.url);
    c
}

fn ship(env: &Env, emu: &Emulator, dest: &str, extra: &[&str]) -> serde_json::Value {
    let mut c = with_b2(env.cmd(), emu);
    c.arg("-r").arg(env.repo()).args(["ship", dest, "--json"]).args(extra);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "ship: {}", stderr(&out));
    json_last_line(&String::from_utf8_lossy(&out.stdout))
}

fn remote(env: &Env, emu: &Emulator, repo: &str, args: &[&str]) -> std::process::Output {
    let mut c = with_b2(env.cmd(), emu);
    c.arg("-r").arg(repo).args(args).output().unwrap()
}

fn local_repo(env: &Env) -> std::path::PathBuf {
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..4u64 {
        fs::write(src.join(format!("d/f{i}")), pseudo_random(i + 300, 600_000)).unwrap();
    }
    env.backup(&[&src], &[]);
    src
}

#[test]
fn ship_uploads_only_what_is_new_and_rclone_agrees() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let src = local_repo(&env);
    let dest = "b2:ship-bucket/offsite";
    let first = ship(&env, &emu, dest, &["--verify"]);
    assert!(first["files_uploaded"].as_u64().unwrap() > 5, "{first}");
    assert_eq!(first["verified"], true);
    // The offsite copy is a repository cairn can check and restore from.
    let out = remote(&env, &emu, dest, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let t = env.path("t");
    let out = remote(&env, &emu, dest, &["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same_tree(&src, &t.join(src.strip_prefix("/").unwrap()));

    // Nothing new: no upload at all, and only listing calls.
    let again = ship(&env, &emu, dest, &[]);
    assert_eq!(again["files_uploaded"], 0);
    assert_eq!(again["transactions"]["class_b"], 0);
    eprintln!("unchanged ship transactions: {}", again["transactions"]);

    // rclone sees the same files, with the same metadata: nothing to check or transfer.
    if let Some(mut rc) = rclone(&emu) {
        let repo = env.repo();
        // (The `check --read-data` above recorded, at the destination, which packs it
        // verified there: a file the local repository does not have, and ship keeps.)
        let out = rc.args(["check", repo.to_str().unwrap(), "t:ship-bucket/offsite", "--exclude", "verified/**"]).output().unwrap();
        assert!(out.status.success(), "rclone check: {}", stderr(&out));
        let uploads = emu.stats()["calls"]["b2_upload_file"].clone();
        let out = rclone(&emu).unwrap().args(["sync", repo.to_str().unwrap(), "t:ship-bucket/offsite"]).output().unwrap();
        assert!(out.status.success(), "rclone sync: {}", stderr(&out));
        assert_eq!(emu.stats()["calls"]["b2_upload_file"], uploads, "rclone found nothing to upload");
        assert_eq!(emu.stats()["calls"].get("b2_copy_file"), None, "rclone did not even fix a modification time");

        // And the other way: a repository pushed by rclone needs nothing from ship.
        let out = rclone(&emu).unwrap().args(["sync", repo.to_str().unwrap(), "t:rclone-bucket/repo"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let after_rclone = ship(&env, &emu, "b2:rclone-bucket/repo", &[]);
        assert_eq!(after_rclone["files_uploaded"], 0, "{after_rclone}");
        let out = remote(&env, &emu, "b2:rclone-bucket/repo", &["check", "--read-data"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    // Prune locally, ship: the offsite copy follows, deletions last, still checkable.
    fs::remove_file(src.join("d/f0")).unwrap();
    env.backup(&[&src], &[]);
    env.ok(&["forget", "--keep-last", "1", "--prune", "--max-unused", "0%"]);
    let third = ship(&env, &emu, dest, &["--verify"]);
    assert!(third["files_deleted"].as_u64().unwrap() > 0, "{third}");
    let out = remote(&env, &emu, dest, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snaps = remote(&env, &emu, dest, &["snapshots", "--json"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&snaps.stdout).unwrap().as_array().unwrap().len(), 1);
}

#[test]
fn ship_survives_faults_and_interruptions() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--fail-rate", "0.2", "--cut-rate", "0.1", "--token-ttl-secs", "1", "--latency-ms", "20"]);
    let src = local_repo(&env);
    let dest = "b2:fault-bucket/r";
    ship(&env, &emu, dest, &["--verify"]);
    let check = || {
        let out = remote(&env, &emu, dest, &["check", "--read-data"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    check();
    // A second generation, shipped with a SIGKILL part-way: the copy stays checkable.
    for i in 0..6u64 {
        fs::write(src.join(format!("d/new{i}")), pseudo_random(i + 900, 500_000)).unwrap();
    }
    env.backup(&[&src], &[]);
    let mut c = with_b2(env.cmd(), &emu);
    let mut child = c.arg("-r").arg(env.repo()).args(["ship", dest, "--transfers", "1"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let _ = child.kill();
    let _ = child.wait();
    check();
    let done = ship(&env, &emu, dest, &["--verify"]);
    assert_eq!(done["verified"], true);
    check();
    let snaps = remote(&env, &emu, dest, &["snapshots", "--json"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&snaps.stdout).unwrap().as_array().unwrap().len(), 2);
}

#[test]
fn ship_dry_run_and_with_binary() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    local_repo(&env);
    let dest = "b2:dry-bucket/r";
    let plan = ship(&env, &emu, dest, &["--dry-run"]);
    assert!(plan["files_uploaded"].as_u64().unwrap() > 0);
    assert_eq!(emu.stats()["calls"].get("b2_upload_file"), None, "dry run uploads nothing");
    ship(&env, &emu, dest, &["--with-binary"]);
    let token = emu.authorize(1)["authorizationToken"].as_str().unwrap().to_string();
    let (st, _, body) = emu.http("GET", "/file/dry-bucket/r/RECOVERY.txt", &[("Authorization", &token)], b"");
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("restore latest"));
    let (st, _, bin) = emu.http("GET", "/file/dry-bucket/r/RECOVERY/cairn", &[("Authorization", &token)], b"");
    assert_eq!(st, 200);
    assert_eq!(bin, fs::read(env!("CARGO_BIN_EXE_cairn")).unwrap());
}

/// `snapshots` ends with when each destination last got a complete copy and when a drill
/// last passed, and warns when either is older than its limit (7 days and 13 months by
/// default, `--warn-ship-age`/`--warn-drill-age` or CAIRN_WARN_* to change).
#[test]
fn snapshots_reports_the_last_ship_and_drill() {
    let env = Env::new();
    local_repo(&env);
    let out = env.run(&["snapshots"]);
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    assert!(last.contains("never shipped from this machine") && last.contains("no passing drill"), "{last}");
    let dest = env.path("offsite");
    let d = dest.to_str().unwrap();
    env.ok(&["ship", d]);
    let out = env.run(&["snapshots"]);
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    assert!(last.contains(&format!("last ship to {}", fs::canonicalize(&dest).unwrap().display())) && last.contains("ago"), "{last}");
    assert!(!stderr(&out).contains("last ship to"), "fresh: no warning: {}", stderr(&out));
    let out = env.run(&["snapshots", "--warn-ship-age", "0d"]);
    assert!(stderr(&out).contains("warning: the last ship to") && stderr(&out).contains("cairn ship"), "{}", stderr(&out));
    // The note lives beside the cache, not in the repository: nothing new to upload.
    let again = json_last_line(&env.ok(&["ship", d, "--json"]));
    assert_eq!(again["files_uploaded"], 0, "{again}");
    env.ok(&["drill", "--files", "2"]);
    let out = env.run(&["snapshots"]);
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    assert!(last.contains("last passing drill"), "{last}");
    assert!(!stderr(&out).contains("no restore drill"), "{}", stderr(&out));
}
