//! cairn repositories on B2, against cairn-b2-emulator on loopback.

use std::fs;
use std::process::Output;

use cairn_backend::Backend;

use crate::util::*;

fn ok(out: Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn b2_backend_passes_the_conformance_suite() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--min-part-size", "100000"]);
    let creds = cairn_b2::Credentials {
        key_id: "testkeyid".into(),
        key: "testkey".to_string().into(),
    };
    let loc = cairn_b2::B2Location {
        bucket: "conformance".into(),
        prefix: "some/prefix".into(),
        endpoint: emu.url.clone(),
        creds,
        hard_delete: false,
    };
    // Again with cutoffs small enough that the suite's 2.5 MB stream goes up in parts.
    let mut parts = cairn_b2::B2Backend::new(cairn_b2::B2Location {
        prefix: "in-parts".into(),
        ..loc.clone()
    })
    .unwrap();
    parts.set_large_file_thresholds(1_000_000, 300_000, 700_000);
    cairn_backend::run_conformance(&parts).unwrap();
    let b = cairn_b2::B2Backend::new(loc).unwrap();
    cairn_backend::run_conformance(&b).unwrap();
    // Removing an object deletes every version, an unfinished large file of the same
    // name too (B2 lists it as `start`): nothing is left to pay for.
    b.write("x", b"1", &Default::default()).unwrap();
    b.write("x", b"2", &Default::default()).unwrap();
    let token = emu.authorize(2)["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let bucket = b.client_bucket_for_tests();
    let (st, started) = emu.call(
        2,
        "b2_start_large_file",
        &token,
        serde_json::json!({"bucketId": bucket, "fileName": "some/prefix/x", "contentType": "b2/x-auto"}),
    );
    assert_eq!(st, 200, "{started}");
    let (_, info) = emu.call(
        2,
        "b2_get_file_info",
        &token,
        serde_json::json!({"fileId": started["fileId"]}),
    );
    assert_eq!(info["action"], "start", "{info}");
    let versions = |token: &str| {
        emu.call(
            2,
            "b2_list_file_versions",
            token,
            serde_json::json!({"bucketId": bucket, "prefix": "some/prefix/x"}),
        )
        .1
    };
    let before = versions(&token);
    let actions: Vec<&str> = before["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["start", "upload", "upload"], "{before}");
    b.remove("x").unwrap();
    let v = versions(&token);
    assert_eq!(v["files"].as_array().unwrap().len(), 0, "{v}");
    let (_, unfinished) = emu.call(
        2,
        "b2_list_unfinished_large_files",
        &token,
        serde_json::json!({"bucketId": bucket}),
    );
    assert_eq!(
        unfinished["files"].as_array().unwrap().len(),
        0,
        "{unfinished}"
    );
}

/// Returns the emulator's statistics at the end.
fn round_trip(extra_emu_args: &[&str]) -> serde_json::Value {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), extra_emu_args);
    let repo = "b2:cairn-bucket/backups/laptop";
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..5u64 {
        fs::write(
            src.join(format!("sub/f{i}")),
            pseudo_random(i + 40, 700_000),
        )
        .unwrap();
    }
    fs::write(src.join("small.txt"), b"small").unwrap();
    ok(
        emu.cairn_at(&env, repo)
            .args(["init", "--pack-size", "1"])
            .output()
            .unwrap(),
        "init",
    );
    ok(
        emu.cairn_at(&env, repo)
            .arg("backup")
            .arg(&src)
            .output()
            .unwrap(),
        "backup",
    );
    fs::write(src.join("sub/f0"), pseudo_random(99, 300_000)).unwrap();
    ok(
        emu.cairn_at(&env, repo)
            .arg("backup")
            .arg(&src)
            .output()
            .unwrap(),
        "backup 2",
    );
    let snaps: serde_json::Value = serde_json::from_str(&ok(
        emu.cairn_at(&env, repo)
            .args(["snapshots", "--json"])
            .output()
            .unwrap(),
        "snapshots",
    ))
    .unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    let t = env.path("t");
    ok(
        emu.cairn_at(&env, repo)
            .args([
                "restore",
                "latest",
                "--verify",
                "--target",
                t.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
        "restore",
    );
    assert_same_tree(&src, &t.join(src.strip_prefix("/").unwrap()));
    ok(
        emu.cairn_at(&env, repo)
            .args([
                "forget",
                "--keep-last",
                "1",
                "--prune",
                "--max-unused",
                "0%",
            ])
            .output()
            .unwrap(),
        "forget --prune",
    );
    ok(
        emu.cairn_at(&env, repo)
            .args(["check", "--read-data"])
            .output()
            .unwrap(),
        "check",
    );
    let t2 = env.path("t2");
    ok(
        emu.cairn_at(&env, repo)
            .args(["restore", "latest", "--target", t2.to_str().unwrap()])
            .output()
            .unwrap(),
        "restore 2",
    );
    assert_same_tree(&src, &t2.join(src.strip_prefix("/").unwrap()));
    emu.stats()
}

#[test]
fn backup_restore_prune_check_on_b2() {
    round_trip(&[]);
}

/// Failing calls, replies cut off mid-body (downloads and the replies to uploads,
/// deletes and finishes that did take effect), expiring tokens and latency together.
#[test]
fn backup_restore_prune_check_on_b2_with_faults_cut_connections_and_expiring_tokens() {
    let st = round_trip(&[
        "--fail-rate",
        "0.1",
        "--cut-rate",
        "0.1",
        "--token-ttl-secs",
        "1",
        "--latency-ms",
        "2",
    ]);
    assert!(
        st["faults_injected"].as_u64().unwrap() >= 10,
        "the run went through real faults: {st}"
    );
}

#[test]
fn b2_errors_are_one_clear_line_and_exit_1() {
    let env = Env::new();
    let emu = Emulator::start(
        &env.path("emu"),
        &["--restricted-key", "rkey:rsecret:other-bucket"],
    );
    ok(
        emu.cairn_at(&env, "b2:real-bucket/r")
            .arg("init")
            .output()
            .unwrap(),
        "init",
    );
    let err = |out: Output| {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(
            !e.contains("testkey\n") && !e.contains("emu_"),
            "no secrets or tokens: {e}"
        );
        e
    };
    let e = err(emu
        .cairn_at(&env, "b2:real-bucket/r")
        .env("B2_APPLICATION_KEY", "wrong")
        .arg("snapshots")
        .output()
        .unwrap());
    assert!(e.contains("rejected application key testkeyid"), "{e}");
    let e = err(emu
        .cairn_at(&env, "b2:no-such-bucket/r")
        .arg("snapshots")
        .output()
        .unwrap());
    assert!(e.contains("bucket no-such-bucket does not exist"), "{e}");
    let e = err(emu
        .cairn_at(&env, "b2:real-bucket/r")
        .env("B2_APPLICATION_KEY_ID", "rkey")
        .env("B2_APPLICATION_KEY", "rsecret")
        .arg("snapshots")
        .output()
        .unwrap());
    assert!(
        e.contains("other-bucket") && e.contains("real-bucket"),
        "{e}"
    );
    let e = err(env
        .cmd()
        .args(["-r", "b2:real-bucket/r", "snapshots"])
        .output()
        .unwrap());
    assert!(e.contains("B2_APPLICATION_KEY_ID"), "{e}");
    // A missing repository inside an existing bucket is exit 10, as locally.
    let out = emu
        .cairn_at(&env, "b2:real-bucket/elsewhere")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10));
    // No drive to mount on B2: the hint names the bucket and path instead.
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        e.contains("check the bucket and path") && !e.contains("drive"),
        "{e}"
    );
}

#[test]
fn rclone_location_reads_rclone_config() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let conf = env.path("rclone.conf");
    fs::write(&conf, format!("[other]\ntype = local\n\n[b2remote]\ntype = b2\naccount = testkeyid\nkey = testkey\nendpoint = {}\n", emu.url)).unwrap();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"via rclone config").unwrap();
    let run = |args: &[&str]| {
        ok(
            env.cmd()
                .env("RCLONE_CONFIG", &conf)
                .arg("-r")
                .arg("rclone:b2remote:rc-bucket/repo")
                .args(args)
                .output()
                .unwrap(),
            "rclone location",
        )
    };
    run(&["init"]);
    run(&["backup", src.to_str().unwrap()]);
    let t = env.path("t");
    run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(
        fs::read(t.join(src.strip_prefix("/").unwrap()).join("a")).unwrap(),
        b"via rclone config"
    );
}

#[test]
fn metadata_cache_makes_repeated_browsing_download_free() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let repo = "b2:cache-bucket/r";
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/a"), b"cached").unwrap();
    let cache = env.path("cache");
    let cmd = |args: &[&str]| {
        let mut c = emu.cairn_at(&env, repo);
        c.arg("--cache-dir").arg(&cache).args(args);
        ok(c.output().unwrap(), "cached command")
    };
    cmd(&["init"]);
    cmd(&["backup", src.to_str().unwrap()]);
    let listing = cmd(&["snapshots"]);
    // A repository on B2 is the offsite copy itself: no talk of ships.
    let status = listing.lines().last().unwrap_or_default();
    assert!(
        status.contains("no passing drill") && !status.contains("ship"),
        "{status}"
    );
    cmd(&["ls", "latest"]);
    emu.http("POST", "/emulator/stats/reset", &[], b"");
    let first = cmd(&["ls", "latest"]);
    cmd(&["snapshots"]);
    let s = emu.stats();
    assert!(
        s["calls"].get("b2_download_file_by_name").is_none(),
        "no downloads on an unchanged repository: {s}"
    );
    assert_eq!(s["class_b"], 0);
    // Cached files are private; and --no-cache still works (and downloads).
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![cache.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                assert_eq!(m.permissions().mode() & 0o077, 0, "{}", e.path().display());
            }
        }
    }
    let uncached = ok(
        emu.cairn_at(&env, repo)
            .args(["--no-cache", "ls", "latest"])
            .output()
            .unwrap(),
        "no cache",
    );
    assert_eq!(first, uncached);
    assert!(emu.stats()["class_b"].as_u64().unwrap() > 0);
}

#[test]
fn client_large_files_copies_listings_and_transaction_counts() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--min-part-size", "100000"]);
    let creds = cairn_b2::Credentials {
        key_id: "testkeyid".into(),
        key: "testkey".to_string().into(),
    };
    let loc = cairn_b2::B2Location {
        bucket: "client-bucket".into(),
        prefix: "p".into(),
        endpoint: emu.url.clone(),
        creds,
        hard_delete: false,
    };
    let mut b = cairn_b2::B2Backend::new(loc).unwrap();
    b.set_large_file_thresholds(1_000_000, 300_000, 700_000);
    b.create().unwrap();
    emu.http("POST", "/emulator/stats/reset", &[], b"");
    let t0 = b.client().transactions();
    // Over the cutoff: start, four parts, finish; the large_file_sha1 is recorded.
    let big = pseudo_random(5, 1_100_000);
    b.write("dir/big", &big, &Default::default()).unwrap();
    assert_eq!(b.read("dir/big").unwrap(), big);
    assert_eq!(
        b.read_range("dir/big", 999_990, 20).unwrap(),
        big[999_990..1_000_010]
    );
    let listed = b.list("dir/").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].sha1.as_deref(),
        Some(&*{
            use sha1::Digest;
            hex::encode(sha1::Sha1::digest(&big))
        })
    );
    let s = emu.stats();
    assert_eq!(s["calls"]["b2_upload_part"], 4, "{s}");
    assert_eq!(s["calls"]["b2_finish_large_file"], 1);

    let bucket_id = b.client_bucket_for_tests();
    let c = b.client();
    b.write("dir/sub/small", b"small", &Default::default())
        .unwrap();
    let folders = b
        .block_on(c.list_names_delimited(&bucket_id, "p/dir/", Some("/")))
        .unwrap();
    let names: Vec<(&str, &str)> = folders
        .iter()
        .map(|f| (f.name.as_str(), f.action.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![("p/dir/big", "upload"), ("p/dir/sub/", "folder")]
    );
    // Server-side copy with replaced metadata, then file info of the copy.
    let src = b
        .block_on(c.find_name(&bucket_id, "p/dir/sub/small"))
        .unwrap()
        .unwrap();
    let info = [("src_last_modified_millis", "1234".to_string())];
    let copy = b
        .block_on(c.copy_file(&src.id, "p/dir/copy", None, Some(("text/plain", &info))))
        .unwrap();
    let got = b.block_on(c.get_file_info(&copy.id)).unwrap();
    assert_eq!(
        got.info.get("src_last_modified_millis").map(String::as_str),
        Some("1234")
    );
    assert_eq!(b.read("dir/copy").unwrap(), b"small");
    assert!(b
        .block_on(c.list_unfinished(&bucket_id, "p/"))
        .unwrap()
        .is_empty());

    // Both sides count the same transactions by billing class.
    let t = c.transactions();
    let s = emu.stats();
    let delta = (
        t.class_a - t0.class_a,
        t.class_b - t0.class_b,
        t.class_c - t0.class_c,
    );
    assert_eq!(
        delta,
        (
            s["class_a"].as_u64().unwrap(),
            s["class_b"].as_u64().unwrap(),
            s["class_c"].as_u64().unwrap()
        ),
        "{s}"
    );
}

#[test]
fn key_without_delete_capability_fails_prune_with_one_clear_line() {
    let env = Env::new();
    let caps = "listBuckets,listFiles,readFiles,writeFiles";
    let emu = Emulator::start(
        &env.path("emu"),
        &[
            "--restricted-key",
            &format!("nodelete:secret:cap-bucket:{caps}"),
        ],
    );
    let repo = "b2:cap-bucket/r";
    ok(
        emu.cairn_at(&env, repo).arg("init").output().unwrap(),
        "init with the full key",
    );
    let limited = |args: &[&str]| {
        emu.cairn_at(&env, repo)
            .env("B2_APPLICATION_KEY_ID", "nodelete")
            .env("B2_APPLICATION_KEY", "secret")
            .args(args)
            .output()
            .unwrap()
    };
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    // Backup needs no deletes: its own lock is hidden, not deleted.
    let out = limited(&["backup", src.to_str().unwrap()]);
    ok(out, "backup with an append-only key");
    let out = limited(&["forget", "--keep-last", "0", "latest"]);
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    // One error line, naming the key and what it lacks.
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        e.starts_with("cairn: forget must delete files")
            && e.contains("nodelete cannot delete files (it lacks the deleteFiles capability)"),
        "{e}"
    );
    assert!(
        !e.contains('\u{1b}'),
        "no terminal colours when stderr is not a terminal: {e:?}"
    );
}

#[test]
fn key_restricted_to_a_name_prefix() {
    let env = Env::new();
    let emu = Emulator::start(
        &env.path("emu"),
        &["--restricted-key", "pkey:psecret:pre-bucket::mine/"],
    );
    ok(
        emu.cairn_at(&env, "b2:pre-bucket/theirs")
            .arg("init")
            .output()
            .unwrap(),
        "init with the full key",
    );
    let as_pkey = |repo: &str, args: &[&str]| {
        emu.cairn_at(&env, repo)
            .env("B2_APPLICATION_KEY_ID", "pkey")
            .env("B2_APPLICATION_KEY", "psecret")
            .args(args)
            .output()
            .unwrap()
    };
    ok(
        as_pkey("b2:pre-bucket/mine/repo", &["init"]),
        "init inside the prefix",
    );
    ok(
        as_pkey("b2:pre-bucket/mine/repo", &["backup", "/etc/hostname"]),
        "backup inside the prefix",
    );
    let out = as_pkey("b2:pre-bucket/theirs", &["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("restricted to names starting with mine/"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--limit-upload` and `--limit-download` (KiB/s, all transfers together) hold B2
/// traffic under the rate: 2 MiB at 1 MiB/s cannot take less than about 1.5 s either
/// way (a lower bound, so a slow machine cannot make this fail), and the data arrives
/// intact.
#[test]
fn bandwidth_limits_hold_transfers_under_the_rate() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("two-mib"), pseudo_random(3, 2 << 20)).unwrap();
    let dest = "b2:limit-bucket/copy";
    let timed = |args: &[&str]| {
        let t = std::time::Instant::now();
        ok(
            emu.cairn_at(&env, dest).args(args).output().unwrap(),
            &format!("{args:?}"),
        );
        t.elapsed()
    };
    let up = timed(&[
        "sync",
        "--limit-upload",
        "1024",
        src.to_str().unwrap(),
        dest,
    ]);
    assert!(
        up >= std::time::Duration::from_millis(1500),
        "2 MiB uploaded in {up:?} under a 1 MiB/s limit"
    );
    let back = env.path("back");
    let down = timed(&[
        "sync",
        "--limit-download",
        "1024",
        dest,
        back.to_str().unwrap(),
    ]);
    assert!(
        down >= std::time::Duration::from_millis(1500),
        "2 MiB downloaded in {down:?} under a 1 MiB/s limit"
    );
    assert_eq!(
        fs::read(back.join("two-mib")).unwrap(),
        fs::read(src.join("two-mib")).unwrap()
    );
    let fast = timed(&[
        "sync",
        "--compare",
        "checksum",
        src.to_str().unwrap(),
        "b2:limit-bucket/fast",
    ]);
    eprintln!("limited: up {up:?}, down {down:?}; unlimited up {fast:?}");
}

/// Issue 19.3: a plain-http endpoint off this machine would carry the application key
/// in clear (Basic auth). Refused in one line before any request, whether it comes from
/// the flag, CAIRN_B2_ENDPOINT or rclone.conf; the loopback emulator needs no flag.
#[test]
fn plain_http_endpoints_off_this_machine_are_refused_before_any_request() {
    let env = Env::new();
    let conf = env.path("rclone.conf");
    std::fs::write(
        &conf,
        "[far]\ntype = b2\naccount = farkeyid\nkey = farsecret\nendpoint = http://192.0.2.1:9\n",
    )
    .unwrap();
    let runs: Vec<(&str, Vec<(&str, &str)>, Vec<&str>)> = vec![
        (
            "b2:b/r",
            vec![
                ("B2_APPLICATION_KEY_ID", "id"),
                ("B2_APPLICATION_KEY", "farsecret"),
            ],
            vec!["--b2-endpoint", "http://192.0.2.1:9"],
        ),
        (
            "b2:b/r",
            vec![
                ("B2_APPLICATION_KEY_ID", "id"),
                ("B2_APPLICATION_KEY", "farsecret"),
                ("CAIRN_B2_ENDPOINT", "http://example.com"),
            ],
            vec![],
        ),
        (
            "rclone:far:b/r",
            vec![("RCLONE_CONFIG", conf.to_str().unwrap())],
            vec![],
        ),
    ];
    for (repo, vars, flags) in runs {
        let start = std::time::Instant::now();
        let mut c = env.cmd();
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c
            .args(flags)
            .args(["-r", repo, "snapshots"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{repo}: {}", stderr(&out));
        let e = stderr(&out);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(
            e.contains("refusing to send the B2 application key in clear")
                && e.contains("--insecure-http"),
            "{e}"
        );
        assert!(!e.contains("farsecret"), "{e}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "no connection was attempted"
        );
    }
}

/// Issue 19.5: a listing whose cursor does not move on (`--stuck-cursor`) is an error,
/// not an endless loop of requests.
#[test]
fn a_listing_cursor_that_does_not_advance_is_an_error() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--stuck-cursor"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        std::fs::write(src.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    let sync = || {
        let mut c = wrapping_cairn(&env, "timeout");
        emu.credentials(&mut c);
        c.args([
            "60",
            env!("CARGO_BIN_EXE_cairn"),
            "sync",
            src.to_str().unwrap(),
            "b2:stuck-bucket/x",
        ]);
        c.output().unwrap()
    };
    // The first sync lists an empty bucket (one page); the second must page.
    let out = sync();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = sync();
    assert_ne!(out.status.code(), Some(124), "paged forever");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cursor did not advance"),
        "{}",
        stderr(&out)
    );
}

/// Issue 19.5: a reply body is read to the length asked for, no more: ranged downloads
/// that run on past the range (`--oversize-bodies`) are refused from their length, with
/// one clear line, before the rest is read.
#[test]
fn a_reply_longer_than_asked_for_is_refused() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--oversize-bodies"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // Several MiB in one pack: its windows and blobs end before the pack does.
    std::fs::write(src.join("a"), pseudo_random(3, 3_000_000)).unwrap();
    std::fs::write(src.join("b"), pseudo_random(4, 3_000_000)).unwrap();
    let b2 = |args: &[&str]| {
        emu.cairn_at(&env, "b2:long-bucket/r")
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(b2(&["init"]).status.code(), Some(0));
    let out = b2(&["backup", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = b2(&["dump", "latest", src.join("a").to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let e = stderr(&out);
    assert!(e.contains("asked for"), "{e}");
    assert!(
        out.stdout.len() < 3_000_000,
        "the file was not passed off as good"
    );
}
