//! cairn-b2-emulator against the real rclone (Debian's 1.60.1, which speaks API v1)
//! and against raw requests for the shapes and errors other clients rely on.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use crate::util::*;

fn run(mut c: std::process::Command, args: &[&str]) -> Output {
    let out = c.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rclone {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Names rclone must carry unchanged (or encode, for the backslash) through B2.
fn build_source(src: &Path) {
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("a.txt"), b"hello").unwrap();
    fs::write(src.join("sub/b c+d#.bin"), pseudo_random(1, 200_000)).unwrap();
    fs::write(src.join("sub/deeper/ünïcødé €.txt"), b"unicode").unwrap();
    fs::write(src.join("back\\slash"), b"backslash").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    set_mtime(&src.join("a.txt"), 1_600_000_000, 123_456_789);
}

#[test]
fn rclone_sync_copy_check_versions_cleanup_delete() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let Some(_) = rclone(&emu) else { return };
    let rc = || rclone(&emu).unwrap();
    let src = env.path("src");
    build_source(&src);
    // 11 MB over a 5 MiB cutoff: rclone's large-file path (parts sent concurrently).
    fs::write(src.join("large.bin"), pseudo_random(2, 11_000_000)).unwrap();
    let s = src.to_str().unwrap();
    run(
        rc(),
        &[
            "sync",
            s,
            "t:bucket-one/path",
            "--b2-upload-cutoff",
            "5M",
            "--b2-chunk-size",
            "5M",
        ],
    );
    let stats = emu.stats();
    assert_eq!(stats["calls"]["b2_finish_large_file"], 1, "{stats}");
    assert!(stats["calls"]["b2_upload_part"].as_u64().unwrap() >= 3);

    let lsl = stdout(&run(rc(), &["lsl", "t:bucket-one/path"]));
    assert!(
        lsl.contains("        5 2020-09-13 12:26:40.123000000 a.txt"),
        "mtime kept to the millisecond: {lsl}"
    );
    assert!(
        lsl.contains("200000") && lsl.contains("sub/b c+d#.bin"),
        "{lsl}"
    );
    assert!(
        lsl.contains("11000000 ") && lsl.contains("large.bin"),
        "{lsl}"
    );
    run(rc(), &["check", s, "t:bucket-one/path"]);
    // An unchanged re-sync transfers nothing.
    let before = emu.stats()["calls"]["b2_upload_file"].clone();
    run(rc(), &["sync", s, "t:bucket-one/path"]);
    assert_eq!(emu.stats()["calls"]["b2_upload_file"], before);

    // Download everything back: bytes and (millisecond) mtimes.
    let back = env.path("back");
    run(rc(), &["copy", "t:bucket-one/path", back.to_str().unwrap()]);
    for rel in [
        "a.txt",
        "sub/b c+d#.bin",
        "sub/deeper/ünïcødé €.txt",
        "back\\slash",
        "empty",
        "large.bin",
    ] {
        assert_eq!(
            fs::read(back.join(rel)).unwrap(),
            fs::read(src.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let m = fs::metadata(back.join("a.txt")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 123_000_000));

    // Change, touch and delete: new versions, a server-side copy for the mtime, a hide marker.
    fs::write(src.join("a.txt"), b"hello again").unwrap();
    set_mtime(&src.join("empty"), 1_500_000_000, 0);
    fs::remove_file(src.join("large.bin")).unwrap();
    run(rc(), &["sync", s, "t:bucket-one/path"]);
    assert_eq!(emu.stats()["calls"]["b2_copy_file"], 1);
    assert_eq!(emu.stats()["calls"]["b2_hide_file"], 1);
    let versions = stdout(&run(rc(), &["ls", "t:bucket-one/path", "--b2-versions"]));
    assert!(
        versions
            .lines()
            .any(|l| l.contains("a-v") && l.ends_with(".txt")),
        "{versions}"
    );
    assert!(
        versions.lines().any(|l| l.contains("large-v")),
        "{versions}"
    );
    let current = stdout(&run(rc(), &["ls", "t:bucket-one/path"]));
    assert!(
        !current.contains("large"),
        "hidden files are not listed: {current}"
    );
    run(rc(), &["check", s, "t:bucket-one/path"]);

    run(rc(), &["cleanup", "t:bucket-one"]);
    let versions = stdout(&run(rc(), &["ls", "t:bucket-one/path", "--b2-versions"]));
    assert!(
        !versions.contains("-v20"),
        "old versions removed: {versions}"
    );
    run(
        rc(),
        &["delete", "t:bucket-one/path/a.txt", "--b2-hard-delete"],
    );
    let current = stdout(&run(rc(), &["ls", "t:bucket-one/path"]));
    assert!(!current.contains("a.txt"), "{current}");
}

#[test]
fn state_survives_restart_and_faults_are_survivable() {
    let env = Env::new();
    let data = env.path("emu");
    let src = env.path("src");
    build_source(&src);
    let s = src.to_str().unwrap();
    {
        let emu = Emulator::start(&data, &[]);
        let Some(c) = rclone(&emu) else { return };
        run(c, &["sync", s, "t:bkt-restart/p"]);
        emu.stop();
    }
    // Same data directory, new process: everything is still there.
    let emu = Emulator::start(&data, &["--fail-rate", "0.15"]);
    run(
        rclone(&emu).unwrap(),
        &[
            "check",
            s,
            "t:bkt-restart/p",
            "--low-level-retries",
            "20",
            "--retries",
            "5",
        ],
    );
    // With 15% of calls failing and uploads failing on demand, rclone still converges.
    fs::write(src.join("new.bin"), pseudo_random(9, 300_000)).unwrap();
    run(
        rclone(&emu).unwrap(),
        &[
            "sync",
            s,
            "t:bkt-restart/p",
            "--b2-test-mode",
            "fail_some_uploads",
            "--low-level-retries",
            "20",
            "--retries",
            "5",
        ],
    );
    let st = emu.stats();
    assert!(st["class_a"].as_u64().unwrap() > 0);
    drop(emu);
    let emu = Emulator::start(&data, &[]);
    run(rclone(&emu).unwrap(), &["check", s, "t:bkt-restart/p"]);
}

#[test]
fn api_shapes_errors_and_stats() {
    let env = Env::new();
    let emu = Emulator::start(
        &env.path("emu"),
        &["--restricted-key", "rkey:rsecret:other-bucket"],
    );
    // Authorize shapes: v1 flat with `allowed`; v4 with apiInfo.storageApi.allowed.
    let v1 = emu.authorize(1);
    assert_eq!(v1["apiUrl"], emu.url.as_str());
    assert!(v1["allowed"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "writeFiles"));
    let v4 = emu.authorize(4);
    assert_eq!(v4["apiInfo"]["storageApi"]["downloadUrl"], emu.url.as_str());
    assert!(v4["apiInfo"]["storageApi"]["allowed"]
        .get("buckets")
        .is_some());
    assert!(v4.get("allowed").is_none());
    let token = v4["authorizationToken"].as_str().unwrap().to_string();

    let (st, b) = emu.call(2, "b2_create_bucket", &token, serde_json::json!({"accountId": v4["accountId"], "bucketName": "shapes-bucket", "bucketType": "allPrivate"}));
    assert_eq!(st, 200, "{b}");
    let bucket = b["bucketId"].as_str().unwrap().to_string();
    let (st, b) = emu.call(
        2,
        "b2_create_bucket",
        &token,
        serde_json::json!({"accountId": v4["accountId"], "bucketName": "shapes-bucket"}),
    );
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("duplicate_bucket_name"))
    );

    // Upload with a wrong SHA1: 400; with the right one: stored; listings by version.
    let (up_path, up_tok) = emu.upload_url(&token, &serde_json::json!(bucket));
    let body = b"0123456789";
    let sha = "87acec17cd9dcd20a716cc2cf67417b71c8a7016";
    let upload = |sha1: &str, name: &str| {
        emu.http(
            "POST",
            &up_path,
            &[
                ("Authorization", &up_tok),
                ("X-Bz-File-Name", name),
                ("Content-Type", "b2/x-auto"),
                ("X-Bz-Content-Sha1", sha1),
                ("X-Bz-Info-src_last_modified_millis", "1000"),
            ],
            body,
        )
    };
    let (st, _, b) = upload("0000000000000000000000000000000000000000", "dir/f.txt");
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&b));
    let (st, _, b) = upload(sha, "dir/f.txt");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    let (st, _, _) = upload(sha, "dir/f.txt");
    assert_eq!(st, 200);
    let (_, l1) = emu.call(
        1,
        "b2_list_file_names",
        &token,
        serde_json::json!({"bucketId": bucket}),
    );
    assert_eq!(l1["files"][0]["size"], 10, "v1 listings carry size: {l1}");
    assert_eq!(
        l1["files"].as_array().unwrap().len(),
        1,
        "one entry per name"
    );
    let (_, l2) = emu.call(
        2,
        "b2_list_file_versions",
        &token,
        serde_json::json!({"bucketId": bucket}),
    );
    assert_eq!(l2["files"].as_array().unwrap().len(), 2, "{l2}");
    assert!(l2["files"][0].get("size").is_none());
    assert_eq!(l2["files"][0]["contentSha1"], sha);
    assert_eq!(
        l2["files"][0]["fileInfo"]["src_last_modified_millis"],
        "1000"
    );
    let (_, folders) = emu.call(
        1,
        "b2_list_file_names",
        &token,
        serde_json::json!({"bucketId": bucket, "delimiter": "/"}),
    );
    assert_eq!(folders["files"][0]["action"], "folder");
    assert_eq!(folders["files"][0]["fileName"], "dir/");

    // Ranged download by name; 404 for a missing name; HEAD without a body.
    let (st, hs, b) = emu.http(
        "GET",
        "/file/shapes-bucket/dir/f.txt",
        &[("Authorization", &token), ("Range", "bytes=2-5")],
        b"",
    );
    assert_eq!((st, b.as_slice()), (206, &b"2345"[..]));
    assert!(hs.iter().any(|(k, v)| k == "x-bz-content-sha1" && v == sha));
    assert!(
        hs.iter().any(|(k, _)| k == "date"),
        "every reply carries Date"
    );
    let (st, _, _) = emu.http(
        "GET",
        "/file/shapes-bucket/missing",
        &[("Authorization", &token)],
        b"",
    );
    assert_eq!(st, 404);

    // Errors: bad key, bad token, restricted key on another bucket, injected faults.
    let (st, _, b) = emu.http(
        "GET",
        "/b2api/v1/b2_authorize_account",
        &[("Authorization", "Basic dGVzdGtleWlkOndyb25n")],
        b"",
    );
    assert_eq!(st, 401, "{}", String::from_utf8_lossy(&b));
    let (st, b) = emu.call(
        1,
        "b2_list_buckets",
        "not-a-token",
        serde_json::json!({"accountId": "x"}),
    );
    assert_eq!((st, b["code"].as_str()), (401, Some("bad_auth_token")));
    let (_, _, rb) = emu.http(
        "GET",
        "/b2api/v1/b2_authorize_account",
        &[("Authorization", "Basic cmtleTpyc2VjcmV0")],
        b"",
    );
    let rtok = serde_json::from_slice::<serde_json::Value>(&rb).unwrap()["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, b) = emu.call(
        1,
        "b2_list_file_names",
        &rtok,
        serde_json::json!({"bucketId": bucket}),
    );
    assert_eq!(st, 401, "{b}");
    let (st, _, _) = emu.http(
        "POST",
        "/b2api/v1/b2_list_buckets",
        &[
            ("Authorization", &token),
            ("X-Bz-Test-Mode", "force_cap_exceeded"),
        ],
        b"{}",
    );
    assert_eq!(st, 403);

    // Stats: calls and billing classes; reset zeroes them.
    let s = emu.stats();
    assert!(
        s["class_a"].as_u64().unwrap() >= 3
            && s["class_b"].as_u64().unwrap() >= 2
            && s["class_c"].as_u64().unwrap() >= 4,
        "{s}"
    );
    emu.http("POST", "/emulator/stats/reset", &[], b"");
    assert_eq!(emu.stats()["class_c"], 0);
}

/// The fault mix B2 shows (503 with Retry-After, 500, 429 asking for a pause), a fifth
/// of all calls: rclone syncs 200 files through it, and the copy checks out clean.
#[test]
fn rclone_sync_of_200_files_survives_the_fault_mix() {
    let env = Env::new();
    let data = env.path("emu");
    let src = env.path("many");
    fs::create_dir_all(&src).unwrap();
    for i in 0..200u64 {
        let dir = src.join(format!("d{}", i % 10));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("f{i}.bin")),
            pseudo_random(i, 1000 + i as usize * 37),
        )
        .unwrap();
    }
    let s = src.to_str().unwrap();
    {
        let emu = Emulator::start(&data, &["--fail-rate", "0.2"]);
        let Some(c) = rclone(&emu) else { return };
        run(c, &["mkdir", "t:fault-mix"]);
        run(
            rclone(&emu).unwrap(),
            &[
                "sync",
                s,
                "t:fault-mix/p",
                "--transfers",
                "8",
                "--low-level-retries",
                "30",
                "--retries",
                "5",
            ],
        );
        let st = emu.stats();
        assert!(st["faults_injected"].as_u64().unwrap() > 10, "{st}");
    }
    let emu = Emulator::start(&data, &[]);
    run(rclone(&emu).unwrap(), &["check", s, "t:fault-mix/p"]);
}

/// b2_create_key, b2_list_keys, b2_delete_key: a created key authorizes with what it
/// was given and no more, is listed without its secret, and stops working once deleted.
#[test]
fn created_keys_are_enforced_listed_and_deleted() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let auth = emu.authorize(2);
    let master = auth["authorizationToken"].as_str().unwrap().to_string();
    let account = auth["accountId"].clone();
    assert!(
        auth["allowed"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "bypassGovernance"),
        "the master key has every capability: {auth}"
    );
    let (_, b) = emu.call(
        2,
        "b2_create_bucket",
        &master,
        serde_json::json!({"accountId": account, "bucketName": "keys-bucket", "bucketType": "allPrivate"}),
    );
    let bucket_id = b["bucketId"].as_str().unwrap().to_string();
    let caps = ["listBuckets", "listFiles", "readFiles", "writeFiles"];
    let (st, bad) = emu.call(
        2,
        "b2_create_key",
        &master,
        serde_json::json!({"accountId": account, "keyName": "x", "capabilities": ["deleteEverything"]}),
    );
    assert_eq!(st, 400, "{bad}");
    let (st, k) = emu.call(
        2,
        "b2_create_key",
        &master,
        serde_json::json!({"accountId": account, "keyName": "laptop-daily", "capabilities": caps, "bucketId": bucket_id}),
    );
    assert_eq!(st, 200, "{k}");
    let (id, secret) = (
        k["applicationKeyId"].as_str().unwrap().to_string(),
        k["applicationKey"].as_str().unwrap().to_string(),
    );

    let (st, a) = emu.authorize_key(&id, &secret);
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["allowed"]["capabilities"], serde_json::json!(caps));
    assert_eq!(a["allowed"]["bucketName"], "keys-bucket");
    let token = a["authorizationToken"].as_str().unwrap().to_string();
    let (st, _) = emu.call(
        2,
        "b2_list_file_names",
        &token,
        serde_json::json!({"bucketId": bucket_id}),
    );
    assert_eq!(st, 200);
    let (st, e) = emu.call(
        2,
        "b2_delete_file_version",
        &token,
        serde_json::json!({"fileName": "x", "fileId": "y"}),
    );
    assert_eq!(st, 401, "no deleteFiles: {e}");
    let (st, e) = emu.call(
        2,
        "b2_create_key",
        &token,
        serde_json::json!({"accountId": account, "keyName": "more", "capabilities": caps}),
    );
    assert_eq!(st, 401, "no writeKeys: {e}");
    assert_eq!(emu.authorize_key(&id, "wrong").0, 401);

    let (_, l) = emu.call(
        2,
        "b2_list_keys",
        &master,
        serde_json::json!({"accountId": account}),
    );
    let keys = l["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{l}");
    assert_eq!(keys[0]["keyName"], "laptop-daily");
    assert!(
        keys[0].get("applicationKey").is_none(),
        "secrets are shown once: {l}"
    );

    let (st, _) = emu.call(
        2,
        "b2_delete_key",
        &master,
        serde_json::json!({"applicationKeyId": id}),
    );
    assert_eq!(st, 200);
    assert_eq!(emu.authorize_key(&id, &secret).0, 401);
    let (st, _) = emu.call(
        2,
        "b2_list_file_names",
        &token,
        serde_json::json!({"bucketId": bucket_id}),
    );
    assert_eq!(st, 401, "a deleted key's tokens stop working");
}

/// What B2 refuses, the emulator refuses: a name that is not UTF-8, an unknown bucket
/// type or `b2-` info key, a bogus `startFileId` or `metadataDirective`, and a key
/// restricted to one bucket listing them all.
#[test]
fn strict_validation_refuses_what_b2_refuses() {
    let env = Env::new();
    let emu = Emulator::start(
        &env.path("emu"),
        &["--restricted-key", "rk:rsecret:strict-bucket"],
    );
    let auth = emu.authorize(2);
    let token = auth["authorizationToken"].as_str().unwrap().to_string();
    let account = auth["accountId"].clone();
    let create = |name: &str, kind: &str| {
        emu.call(
            2,
            "b2_create_bucket",
            &token,
            serde_json::json!({"accountId": account, "bucketName": name, "bucketType": kind}),
        )
    };
    let (st, e) = create("strict-other", "allSecret");
    assert_eq!(st, 400, "{e}");
    let (st, b) = create("strict-bucket", "allPrivate");
    assert_eq!(st, 200, "{b}");
    let bucket = b["bucketId"].as_str().unwrap().to_string();

    let (path, up_tok) = emu.upload_url(&token, &serde_json::json!(bucket));
    let upload = |name: &str, extra: (&str, &str)| {
        emu.http(
            "POST",
            &path,
            &[
                ("Authorization", &up_tok),
                ("X-Bz-File-Name", name),
                ("Content-Type", "b2/x-auto"),
                (
                    "X-Bz-Content-Sha1",
                    "87acec17cd9dcd20a716cc2cf67417b71c8a7016",
                ),
                extra,
            ],
            b"0123456789",
        )
        .0
    };
    assert_eq!(upload("bad%FF%FEname", ("X-Bz-Info-a", "1")), 400);
    assert_eq!(upload("ok.txt", ("X-Bz-Info-b2-made-up", "1")), 400);
    assert_eq!(
        upload("ok.txt", ("X-Bz-Info-b2-cache-control", "max-age=1")),
        200
    );
    assert_eq!(upload("caf%C3%A9.txt", ("X-Bz-Info-a", "1")), 200);

    let (st, e) = emu.call(
        2,
        "b2_list_file_versions",
        &token,
        serde_json::json!({"bucketId": bucket, "startFileName": "ok.txt", "startFileId": "bogus"}),
    );
    assert_eq!(st, 400, "{e}");
    let (_, l) = emu.call(
        2,
        "b2_list_file_names",
        &token,
        serde_json::json!({"bucketId": bucket}),
    );
    let id = l["files"][0]["fileId"].as_str().unwrap().to_string();
    let (st, e) = emu.call(
        2,
        "b2_copy_file",
        &token,
        serde_json::json!({"sourceFileId": id, "fileName": "copy.txt", "metadataDirective": "MOVE"}),
    );
    assert_eq!(st, 400, "{e}");

    let (st, a) = emu.authorize_key("rk", "rsecret");
    assert_eq!(st, 200, "{a}");
    let rtoken = a["authorizationToken"].as_str().unwrap().to_string();
    let (st, e) = emu.call(
        2,
        "b2_list_buckets",
        &rtoken,
        serde_json::json!({"accountId": account}),
    );
    assert_eq!(st, 401, "{e}");
    let (st, _) = emu.call(
        2,
        "b2_list_buckets",
        &rtoken,
        serde_json::json!({"accountId": account, "bucketName": "strict-bucket"}),
    );
    assert_eq!(st, 200);
}

/// b2_create_bucket keeps what it is given, and b2_update_bucket changes it, once per
/// revision (ifRevisionMatch), file lock only ever on.
#[test]
fn bucket_settings_are_kept_and_updated() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let auth = emu.authorize(2);
    let token = auth["authorizationToken"].as_str().unwrap().to_string();
    let account = auth["accountId"].clone();
    let rules = serde_json::json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": 30, "daysFromUploadingToHiding": null}]);
    let (st, b) = emu.call(
        2,
        "b2_create_bucket",
        &token,
        serde_json::json!({"accountId": account, "bucketName": "settings-bucket", "bucketType": "allPrivate",
            "bucketInfo": {"owner": "me"}, "lifecycleRules": rules}),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["lifecycleRules"], rules);
    assert_eq!(b["bucketInfo"]["owner"], "me");
    assert_eq!(b["revision"], 1);
    let id = b["bucketId"].clone();
    let update = |body: serde_json::Value| emu.call(2, "b2_update_bucket", &token, body);
    let (st, u) = update(
        serde_json::json!({"accountId": account, "bucketId": id, "ifRevisionMatch": 1,
        "bucketType": "allPublic", "fileLockEnabled": true,
        "defaultRetention": {"mode": "governance", "period": {"duration": 7, "unit": "days"}}}),
    );
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["revision"], 2);
    assert_eq!(u["bucketType"], "allPublic");
    assert_eq!(u["lifecycleRules"], rules, "untouched settings stay");
    assert_eq!(
        u["fileLockConfiguration"]["value"]["isFileLockEnabled"],
        true
    );
    assert_eq!(
        u["fileLockConfiguration"]["value"]["defaultRetention"]["mode"],
        "governance"
    );
    let (st, e) = update(
        serde_json::json!({"accountId": account, "bucketId": id, "ifRevisionMatch": 1, "bucketType": "allPrivate"}),
    );
    assert_eq!(st, 409, "a stale revision is refused: {e}");
    let (st, e) =
        update(serde_json::json!({"accountId": account, "bucketId": id, "fileLockEnabled": false}));
    assert_eq!(st, 400, "file lock stays on: {e}");
    let (_, l) = emu.call(
        2,
        "b2_list_buckets",
        &token,
        serde_json::json!({"accountId": account, "bucketName": "settings-bucket"}),
    );
    assert_eq!(l["buckets"][0]["revision"], 2, "{l}");
}

/// `--cut-rate` cuts a small JSON reply after its status line and headers, part way
/// through the body, as a dropped connection does: the client sees a 200 that breaks
/// off, never a clean short reply.
#[test]
fn cut_replies_break_off_after_the_headers() {
    use std::io::{Read, Write};
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--cut-rate", "1"]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", emu.port())).unwrap();
    s.write_all(b"GET /b2api/v2/b2_authorize_account HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dGVzdGtleWlkOnRlc3RrZXk=\r\nConnection: close\r\n\r\n")
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    assert!(
        !body.is_empty() && body.len() < length,
        "{} of {length}: {text}",
        body.len()
    );
}
