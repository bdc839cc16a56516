//! `cairn ship` to B2 (the emulator), checked with cairn itself and with the real rclone.

use std::fs;

use crate::util::*;

fn with_b2(mut c: std::process::Command, emu: &Emulator) -> std::process::Command {
    emu.credentials(&mut c);
    c
}

fn ship(env: &Env, emu: &Emulator, dest: &str, extra: &[&str]) -> serde_json::Value {
    let mut c = with_b2(env.cmd(), emu);
    c.arg("-r")
        .arg(env.repo())
        .args(["ship", dest, "--json"])
        .args(extra);
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

/// What docs/b2.md tells rclone users to pass when they check or sync a shipped copy:
/// the records each side keeps for itself, and the lock files of running commands.
const SHIPPED_COPY_FILTERS: &[&str] = &[
    "--exclude",
    "verified/**",
    "--exclude",
    "drills/**",
    "--exclude",
    "locks/**",
    "--exclude",
    "/RECOVERY.txt",
    "--exclude",
    "/RECOVERY/**",
];

#[test]
fn ship_uploads_only_what_is_new_and_rclone_agrees() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let src = local_repo(&env);
    let dest = "b2:ship-bucket/offsite";
    let first = ship(
        &env,
        &emu,
        dest,
        &["--verify", "--create-bucket", "--with-binary"],
    );
    assert!(first["files_uploaded"].as_u64().unwrap() > 5, "{first}");
    assert_eq!(first["verified"], true);
    // The offsite copy is a repository cairn can check and restore from.
    let out = remote(&env, &emu, dest, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let t = env.path("t");
    let out = remote(
        &env,
        &emu,
        dest,
        &["restore", "latest", "--target", t.to_str().unwrap()],
    );
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
        // A drill here writes a record only here; RECOVERY* is only there: the flags
        // docs/b2.md gives leave out what each side keeps for itself.
        env.ok(&["drill"]);
        let mut plain = rclone(&emu).unwrap();
        let out = plain
            .args(["check", repo.to_str().unwrap(), "t:ship-bucket/offsite"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "without the flags the records differ"
        );
        let out = rc
            .args(["check", repo.to_str().unwrap(), "t:ship-bucket/offsite"])
            .args(SHIPPED_COPY_FILTERS)
            .output()
            .unwrap();
        assert!(out.status.success(), "rclone check: {}", stderr(&out));
        let uploads = emu.stats()["calls"]["b2_upload_file"].clone();
        let out = rclone(&emu)
            .unwrap()
            .args(["sync", repo.to_str().unwrap(), "t:ship-bucket/offsite"])
            .args(SHIPPED_COPY_FILTERS)
            .output()
            .unwrap();
        assert!(out.status.success(), "rclone sync: {}", stderr(&out));
        assert_eq!(
            emu.stats()["calls"]["b2_upload_file"],
            uploads,
            "rclone found nothing to upload"
        );
        assert_eq!(
            emu.stats()["calls"].get("b2_copy_file"),
            None,
            "rclone did not even fix a modification time"
        );

        // And the other way: a repository pushed by rclone needs nothing from ship.
        let out = rclone(&emu)
            .unwrap()
            .args(["sync", repo.to_str().unwrap(), "t:rclone-bucket/repo"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let after_rclone = ship(&env, &emu, "b2:rclone-bucket/repo", &[]);
        assert_eq!(after_rclone["files_uploaded"], 0, "{after_rclone}");
        let out = remote(
            &env,
            &emu,
            "b2:rclone-bucket/repo",
            &["check", "--read-data"],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    // Prune locally, ship: the offsite copy follows, deletions last, still checkable.
    fs::remove_file(src.join("d/f0")).unwrap();
    env.backup(&[&src], &[]);
    env.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--max-unused",
        "0%",
    ]);
    let third = ship(&env, &emu, dest, &["--verify"]);
    assert!(third["files_deleted"].as_u64().unwrap() > 0, "{third}");
    let out = remote(&env, &emu, dest, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snaps = remote(&env, &emu, dest, &["snapshots", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&snaps.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn ship_survives_faults_and_interruptions() {
    let env = Env::new();
    let emu = Emulator::start(
        &env.path("emu"),
        &[
            "--fail-rate",
            "0.2",
            "--cut-rate",
            "0.1",
            "--token-ttl-secs",
            "1",
            "--latency-ms",
            "20",
        ],
    );
    let src = local_repo(&env);
    let dest = "b2:fault-bucket/r";
    ship(&env, &emu, dest, &["--verify", "--create-bucket"]);
    let check = || {
        let out = remote(&env, &emu, dest, &["check", "--read-data"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    check();
    // A second generation, shipped with a SIGKILL part-way: the copy stays checkable.
    for i in 0..6u64 {
        fs::write(
            src.join(format!("d/new{i}")),
            pseudo_random(i + 900, 500_000),
        )
        .unwrap();
    }
    env.backup(&[&src], &[]);
    let mut c = with_b2(env.cmd(), &emu);
    let mut child = c
        .arg("-r")
        .arg(env.repo())
        .args(["ship", dest, "--transfers", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let _ = child.kill();
    let _ = child.wait();
    check();
    let done = ship(&env, &emu, dest, &["--verify"]);
    assert_eq!(done["verified"], true);
    check();
    let snaps = remote(&env, &emu, dest, &["snapshots", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&snaps.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn ship_dry_run_and_with_binary() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    local_repo(&env);
    let dest = "b2:dry-bucket/r";
    let plan = ship(&env, &emu, dest, &["--dry-run"]);
    assert!(plan["files_uploaded"].as_u64().unwrap() > 0);
    assert_eq!(
        emu.stats()["calls"].get("b2_upload_file"),
        None,
        "dry run uploads nothing"
    );
    let s = ship(&env, &emu, dest, &["--with-binary", "--create-bucket"]);
    // The binary and RECOVERY.txt are counted with the rest.
    let binary = fs::metadata(env!("CARGO_BIN_EXE_cairn")).unwrap().len();
    assert!(s["bytes_uploaded"].as_u64().unwrap() > binary, "{s}");
    let token = emu.authorize(1)["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _, body) = emu.http(
        "GET",
        "/file/dry-bucket/r/RECOVERY.txt",
        &[("Authorization", &token)],
        b"",
    );
    assert_eq!(st, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("./cairn -r b2:dry-bucket/r restore latest") && !text.contains("BUCKET"),
        "{text}"
    );
    let (st, _, bin) = emu.http(
        "GET",
        "/file/dry-bucket/r/RECOVERY/cairn",
        &[("Authorization", &token)],
        b"",
    );
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
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains("never shipped from this machine") && last.contains("no passing drill"),
        "{last}"
    );
    let dest = env.path("offsite");
    let d = dest.to_str().unwrap();
    env.ok(&["ship", d, "--create-bucket"]);
    let out = env.run(&["snapshots"]);
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains(&format!(
            "last ship to {}",
            fs::canonicalize(&dest).unwrap().display()
        )) && last.contains("ago"),
        "{last}"
    );
    assert!(
        !stderr(&out).contains("last ship to"),
        "fresh: no warning: {}",
        stderr(&out)
    );
    let out = env.run(&["snapshots", "--warn-ship-age", "0d"]);
    assert!(
        stderr(&out).contains("warning: the last ship to") && stderr(&out).contains("cairn ship"),
        "{}",
        stderr(&out)
    );
    // The note lives beside the cache, not in the repository: nothing new to upload.
    let again = json_last_line(&env.ok(&["ship", d, "--json"]));
    assert_eq!(again["files_uploaded"], 0, "{again}");
    env.ok(&["drill", "--files", "2"]);
    let out = env.run(&["snapshots"]);
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("last passing drill"), "{last}");
    assert!(
        !stderr(&out).contains("no restore drill"),
        "{}",
        stderr(&out)
    );
}

fn ship_out(env: &Env, emu: &Emulator, dest: &str, extra: &[&str]) -> std::process::Output {
    let mut c = with_b2(env.cmd(), emu);
    c.arg("-r")
        .arg(env.repo())
        .args(["ship", dest])
        .args(extra)
        .output()
        .unwrap()
}

/// Issue 18.1: the USB drive died, a new repository was made, and the daily job ships
/// it to the old offsite copy. Before, that deleted every file of the old copy (and
/// skipped `config` because both were 223 bytes). Now nothing is touched.
#[test]
fn ship_refuses_a_destination_holding_another_repository() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    local_repo(&env);
    let newer = Env::new();
    local_repo(&newer);
    let local_dest = env.path("offsite");
    for dest in [local_dest.to_str().unwrap(), "b2:old-bucket/cairn"] {
        ship(&env, &emu, dest, &["--create-bucket"]);
        let before = if dest.starts_with('/') {
            snapshot_tree(&local_dest)
        } else {
            Default::default()
        };
        let calls = |emu: &Emulator| emu.stats()["calls"].clone();
        let calls_before = calls(&emu);
        assert_ship_refused_as_another_repository(&|extra| ship_out(&newer, &emu, dest, extra));
        if dest.starts_with('/') {
            assert_eq!(
                snapshot_tree(&local_dest),
                before,
                "the old copy is untouched"
            );
        } else {
            let after = calls(&emu);
            for call in [
                "b2_upload_file",
                "b2_delete_file_version",
                "b2_hide_file",
                "b2_get_upload_url",
            ] {
                assert_eq!(after.get(call), calls_before.get(call), "{call}: {after}");
            }
        }
        // The old copy still opens, checks and lists its snapshot.
        let out = remote(&env, &emu, dest, &["check", "--read-data"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

/// Issue 18.2: deletions run the upload order backwards. Before, snapshots fell into
/// the last group (a stale position in a list of strings) and packs went first. The
/// order is read off the kernel: strace of the unlinks at a local destination.
#[test]
fn ship_deletes_snapshots_before_index_files_before_packs() {
    let env = Env::new();
    let src = local_repo(&env);
    let dest = env.path("offsite");
    env.ok(&["ship", dest.to_str().unwrap(), "--create-bucket"]);
    for i in 0..3u64 {
        fs::write(src.join(format!("d/f{i}")), pseudo_random(i + 700, 600_000)).unwrap();
        env.backup(&[&src], &[]);
    }
    env.ok(&["ship", dest.to_str().unwrap()]);
    env.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--max-unused",
        "0%",
    ]);
    let trace = env.path("unlinks.trace");
    let out = strace_cairn(
        &env,
        &[
            "-f",
            "-qq",
            "-e",
            "trace=unlink,unlinkat",
            "-o",
            trace.to_str().unwrap(),
        ],
    )
    .arg("-r")
    .arg(env.repo())
    .args(["ship", dest.to_str().unwrap(), "--allow-deletes"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let root = format!("{}/", fs::canonicalize(&dest).unwrap().display());
    let mut kinds = Vec::new();
    for line in fs::read_to_string(&trace).unwrap().lines() {
        let Some(at) = line.find(&root) else { continue };
        let rel = &line[at + root.len()..];
        for kind in ["snapshots/", "index/", "data/"] {
            if rel.starts_with(kind) && !line.contains("= -1") {
                kinds.push(kind);
            }
        }
    }
    for kind in ["snapshots/", "index/", "data/"] {
        assert!(
            kinds.contains(&kind),
            "a {kind} deletion to order: {kinds:?}"
        );
    }
    let last = |k: &str| kinds.iter().rposition(|x| *x == k).unwrap();
    let first = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        last("snapshots/") < first("index/") && last("index/") < first("data/"),
        "{kinds:?}"
    );
    let out = env
        .cmd()
        .arg("-r")
        .arg(&dest)
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Issue 18.3: a destination that does not exist is a typo until the user says
/// otherwise; nothing is created, and a dry run says so. `--limit-upload 0` is
/// unlimited (it was zero bytes a second).
#[test]
fn ship_to_a_missing_bucket_or_directory_creates_nothing() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    local_repo(&env);
    let out = ship_out(&env, &emu, "b2:nc-bakup/cairn", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not exist") && stderr(&out).contains("--create-bucket"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        emu.stats()["calls"].get("b2_create_bucket"),
        None,
        "no bucket was made"
    );
    let out = ship_out(&env, &emu, "b2:nc-bakup/cairn", &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        emu.stats()["calls"].get("b2_create_bucket"),
        None,
        "no bucket was made"
    );
    let missing = env.path("usb-bakup/cairn");
    let out = ship_out(&env, &emu, missing.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!env.path("usb-bakup").exists(), "no directory was made");
    // Asked for, with both limits at 0: done, not stalled.
    let mut c = with_b2(wrapping_cairn(&env, "timeout"), &emu);
    c.args([
        "120",
        env!("CARGO_BIN_EXE_cairn"),
        "--limit-upload",
        "0",
        "--limit-download",
        "0",
        "-r",
    ])
    .arg(env.repo());
    let out = c
        .args(["ship", "b2:nc-bakup/cairn", "--create-bucket", "--verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Issue 18.1: deletions the source cannot explain need `--allow-deletes`: a snapshot
/// the repository never forgot, and more than a small share of the destination.
#[test]
fn ship_asks_before_large_or_unexplained_deletions() {
    let env = Env::new();
    let src = local_repo(&env);
    let dest = env.path("offsite");
    let d = dest.to_str().unwrap();
    for i in 0..12u64 {
        fs::write(src.join(format!("d/n{i}")), pseudo_random(i + 500, 50_000)).unwrap();
        env.backup(&[&src], &[]);
    }
    env.ok(&["ship", d, "--create-bucket"]);
    // A snapshot file gone from the source without a forget (damage, a stray rm).
    let snap = fs::read_dir(env.repo().join("snapshots"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let name = snap.file_name().into_string().unwrap();
    fs::remove_file(snap.path()).unwrap();
    let out = env.run(&["ship", d]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("never forgot") && stderr(&out).contains("--allow-deletes"),
        "{}",
        stderr(&out)
    );
    assert!(
        dest.join("snapshots").join(&name).exists(),
        "kept at the destination"
    );
    let plan = env.ok(&["ship", d, "--dry-run"]);
    assert!(
        plan.contains(&format!("delete snapshots/{name}"))
            && plan.contains("holds this repository"),
        "{plan}"
    );
    let done = json_last_line(&env.ok(&["ship", d, "--allow-deletes", "--json"]));
    assert_eq!(done["files_deleted"], 1, "{done}");
    assert_eq!(done["deletions"][0], format!("snapshots/{name}"));
    assert!(!dest.join("snapshots").join(&name).exists());

    // A forget of most snapshots and a prune: allowed snapshot by snapshot (forgotten
    // on purpose), but more than 10% of the files at once needs the flag.
    env.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--max-unused",
        "0%",
    ]);
    let before = snapshot_tree(&dest);
    let out = env.run(&["ship", d]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("more than 10%"), "{}", stderr(&out));
    assert_eq!(snapshot_tree(&dest), before, "nothing written or deleted");
    env.ok(&["ship", d, "--allow-deletes"]);
    let out = env
        .cmd()
        .arg("-r")
        .arg(&dest)
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Issue 18.3: a destination no longer used can be dropped from `snapshots`' last-ship line.
#[test]
fn ship_forget_destination_drops_the_last_ship_line() {
    let env = Env::new();
    local_repo(&env);
    let dest = env.path("old-drive");
    env.ok(&["ship", dest.to_str().unwrap(), "--create-bucket"]);
    let shown = |env: &Env| String::from_utf8_lossy(&env.run(&["snapshots"]).stdout).into_owned();
    assert!(shown(&env).contains("old-drive"), "{}", shown(&env));
    fs::remove_dir_all(&dest).unwrap();
    let out = env.ok(&["ship", dest.to_str().unwrap(), "--forget-destination"]);
    assert!(out.contains("forgot"), "{out}");
    assert!(!shown(&env).contains("old-drive"), "{}", shown(&env));
    assert!(!dest.exists(), "forgetting ships nothing");
}

/// Issue 18.4, the whole story: a local pack is damaged, the offsite copy holds it
/// intact. Before, repair removed the original snapshots, prune deleted the damaged pack
/// and the next ship hard-deleted the intact copy: the file was gone from both. Now the
/// damaged file is never shipped over the good one, check and repair point at the
/// offsite copy and refuse to give data up, ship deletes nothing while the repository is
/// damaged, and `repair packs --from` puts the pack back.
#[test]
fn damage_here_is_repaired_from_the_offsite_copy_and_never_shipped() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let src = local_repo(&env);
    let dest = "b2:keep-bucket/cairn";
    ship(&env, &emu, dest, &["--create-bucket"]);
    // Truncate the largest pack here: its size changes, so a ship by name and size
    // would have uploaded the damaged version.
    let victim = env.packs_largest_first()[0].clone();
    let name = format!(
        "data/{}",
        victim
            .strip_prefix(env.repo().join("data"))
            .unwrap()
            .display()
    );
    let len = fs::metadata(&victim).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&victim).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);

    let out = ship_out(&env, &emu, dest, &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "damaged here: not shipped: {}",
        stderr(&out)
    );
    let s = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(s["damaged_here"][0], name.as_str(), "{s}");
    let out = remote(&env, &emu, dest, &["check", "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the offsite copy is intact: {}",
        stderr(&out)
    );

    let out = with_b2(env.cmd(), &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("repair packs --from {dest}")),
        "{}",
        stderr(&out)
    );
    // repair index would give up the damaged pack's blobs: refused, the offsite copy named.
    let out = with_b2(env.cmd(), &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["repair", "index"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to repair") && stderr(&out).contains(dest),
        "{}",
        stderr(&out)
    );
    // Forced, then snapshots: refused as well while the offsite copy has what is lost here.
    let out = with_b2(env.cmd(), &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["repair", "index", "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with_b2(env.cmd(), &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["repair", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("repair packs --from"),
        "{}",
        stderr(&out)
    );
    let out = with_b2(env.cmd(), &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["repair", "snapshots", "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snaps = |env: &Env| -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&env.ok(&["snapshots", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let all = snaps(&env);
    assert_eq!(
        all.len(),
        2,
        "the original stays beside the repaired copy: {all:?}"
    );
    assert!(all.iter().any(|s| s["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "repaired"))));

    // A ship now uploads the repaired snapshot but deletes no index file or pack.
    let out = ship_out(&env, &emu, dest, &["--json", "--allow-deletes"]);
    let s = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(
        s["deletions"].as_array().unwrap().iter().all(|d| !d
            .as_str()
            .unwrap()
            .starts_with("data/")
            && !d.as_str().unwrap().starts_with("index/")),
        "{s}"
    );
    let out = remote(&env, &emu, dest, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The good copy comes back.
    let out = with_b2(env.cmd(), &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["repair", "packs", "--from", dest, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["repair_packs"]["fetched"][0], name.as_str(), "{r}");
    assert_eq!(r["repair_packs"]["reindexed"], 1, "{r}");
    env.ok(&["check", "--read-data"]);
    let original = all
        .iter()
        .find(|s| {
            !s["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "repaired"))
        })
        .unwrap();
    let t = env.path("t");
    env.ok(&[
        "restore",
        original["id"].as_str().unwrap(),
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &t.join(src.strip_prefix("/").unwrap()));

    // Another repository is never a source of packs.
    let other = Env::new();
    local_repo(&other);
    let out = env.run(&["repair", "packs", "--from", other.repo().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not hold this repository"),
        "{}",
        stderr(&out)
    );
}

/// Issue 18.5: reading a remote repository keeps many fetches in flight (one blob per
/// request, two at a time, before: 73.6 s for 4,304 small files from the emulator on
/// loopback against 0.87 s from a USB drive). Restore, check --read-data and drill
/// --from each keep at least 8 requests at the emulator at once, with 20 ms of latency
/// on every call, and the restore is exact.
#[test]
fn restore_check_and_drill_from_b2_keep_many_fetches_in_flight() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--latency-ms", "20"]);
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    for d in 0..12u64 {
        fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..100u64 {
            fs::write(
                src.join(format!("d{d}/f{f}")),
                pseudo_random(d * 1000 + f, 25_000 + (f as usize) * 100),
            )
            .unwrap();
        }
    }
    env.backup(&[&src], &[]);
    let dest = "b2:fetch-bucket/r";
    ship(&env, &emu, dest, &["--create-bucket"]);
    let in_flight = |args: &[&str]| {
        emu.http("POST", "/emulator/stats/reset", &[], b"");
        let out = remote(&env, &emu, dest, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        emu.stats()["max_in_flight"].as_u64().unwrap()
    };
    let t = env.path("t");
    let n = in_flight(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert!(n >= 8, "restore: {n} fetches in flight at most");
    assert_same_tree(&src, &t.join(src.strip_prefix("/").unwrap()));
    let n = in_flight(&["check", "--read-data"]);
    assert!(n >= 8, "check --read-data: {n} fetches in flight at most");
    let n = in_flight(&["drill", "--files", "200", "--snapshots", "1"]);
    assert!(n >= 8, "drill: {n} fetches in flight at most");
}

/// Issue 19.1: names planted through the B2 API under `data/`, `locks/` and `snapshots/`
/// of a repository: opening it with the metadata cache, `unlock --remove-all` (which
/// removes cached copies by name) and a ship down to a local directory neither write
/// nor remove anything outside the cache or the destination; ship names each odd name
/// and exits 3, and the copy is a good repository.
#[test]
fn names_planted_in_a_repository_bucket_stay_inside() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let src = local_repo(&env);
    let repo = "b2:plant-repo/r";
    ship(&env, &emu, repo, &["--create-bucket"]);
    let hex = "ab".repeat(32);
    // Where `locks/../../../<hex>` lands from the cache directory of this repository.
    let sentinel = env.path(&hex);
    fs::write(&sentinel, b"keep me").unwrap();
    let q = '\u{201B}';
    for name in [
        format!("r/locks/../../../{hex}"),
        format!("r/locks/{q}2E{q}2E/{q}2E{q}2E/{q}2E{q}2E/{hex}"),
        format!("r/data/{q}2E{q}2E/{q}2E{q}2E/pwned-a-{hex}"),
        format!("r/data/ab/../../../pwned-b-{hex}"),
        format!("r/snapshots/../../pwned-c-{hex}"),
        format!("r/snapshots/{q}2E{q}2E{q}2F{q}2E{q}2E{q}2Fpwned-d-{hex}"),
    ] {
        emu.plant("plant-repo", &name, b"planted");
    }
    let out = remote(&env, &emu, repo, &["snapshots"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = remote(&env, &emu, repo, &["unlock", "--remove-all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        fs::read(&sentinel).unwrap(),
        b"keep me",
        "nothing outside the cache was removed"
    );
    let dest = env.path("down/dest");
    fs::create_dir_all(&dest).unwrap();
    let out = remote(
        &env,
        &emu,
        repo,
        &["ship", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(v["unsafe_names"].as_array().unwrap().len() >= 4, "{v}");
    assert!(stderr(&out).contains("pwned-a"), "{}", stderr(&out));
    let stray: Vec<_> = all_paths(env.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("pwned") && !p.starts_with(&dest))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let out = env
        .cmd()
        .arg("-r")
        .arg(&dest)
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let t = env.path("t");
    env.cmd()
        .arg("-r")
        .arg(&dest)
        .args(["restore", "latest", "--target", t.to_str().unwrap()])
        .output()
        .unwrap();
    assert_same_tree(&src, &t.join(src.strip_prefix("/").unwrap()));
}

/// Issue 18.4, the destructive side: a pack this repository's index still lists but that
/// went missing here is never deleted at the destination, however the deletion limits
/// are set: it may be the last copy of what the snapshots need.
#[test]
fn ship_never_deletes_a_pack_the_index_still_needs() {
    let env = Env::new();
    let src = local_repo(&env);
    let dest = env.path("offsite");
    let d = dest.to_str().unwrap();
    env.ok(&["ship", d, "--create-bucket"]);
    let lost = env.packs_largest_first()[0].clone();
    let name = format!(
        "data/{}",
        lost.strip_prefix(env.repo().join("data"))
            .unwrap()
            .display()
    );
    fs::remove_file(&lost).unwrap();
    let s = json_last_line(&env.ok(&["ship", d, "--allow-deletes", "--json"]));
    assert_eq!(s["files_deleted"], 0, "{s}");
    assert_eq!(s["deletions_left"][0], name.as_str(), "{s}");
    assert!(dest.join(&name).exists());
    let out = env
        .cmd()
        .arg("-r")
        .arg(&dest)
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // ...and it comes back from there.
    env.ok(&["repair", "packs", "--from", d]);
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t.join(src.strip_prefix("/").unwrap()));
}
