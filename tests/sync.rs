//! `cairn sync` against the emulator, interchangeable with the real rclone.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::util::*;

fn sync(env: &Env, emu: &Emulator, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = env
        .cmd()
        .env("B2_APPLICATION_KEY_ID", "testkeyid")
        .env("B2_APPLICATION_KEY", "testkey")
        .env("CAIRN_B2_ENDPOINT", &emu.url)
        .arg("sync")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("null"),
    )
    .unwrap_or(serde_json::Value::Null);
    (out.status.code(), v, stderr(&out))
}

fn sync_owned(
    env: &Env,
    emu: &Emulator,
    args: &[String],
) -> (Option<i32>, serde_json::Value, String) {
    sync(
        env,
        emu,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

pub(crate) fn tree(root: &Path) {
    fs::create_dir_all(root.join("sub dir/ünï")).unwrap();
    fs::write(root.join("a.txt"), b"alpha").unwrap();
    fs::write(root.join("sub dir/b c+d#%.bin"), pseudo_random(3, 100_000)).unwrap();
    fs::write(root.join("sub dir/ünï/€uro"), b"euro").unwrap();
    fs::write(root.join("back\\slash"), b"bs").unwrap();
    fs::write(root.join("tab\tname"), b"tab").unwrap();
    set_mtime(&root.join("a.txt"), 1_600_000_000, 987_654_321);
}

#[test]
fn cairn_and_rclone_take_turns_on_one_bucket() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let Some(_) = rclone(&emu) else { return };
    let dir = env.path("dir");
    tree(&dir);
    let d = dir.to_str().unwrap();
    let (code, s, err) = sync(&env, &emu, &[d, "b2:sync-bucket/path"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["files_uploaded"], 5, "{s}");
    // rclone finds the same names, sizes, hashes and times: nothing differs, nothing to do.
    let out = rclone(&emu)
        .unwrap()
        .args(["check", d, "t:sync-bucket/path"])
        .output()
        .unwrap();
    assert!(out.status.success(), "rclone check: {}", stderr(&out));
    let before = emu.stats()["calls"].clone();
    let out = rclone(&emu)
        .unwrap()
        .args(["sync", d, "t:sync-bucket/path"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let after = emu.stats()["calls"].clone();
    for call in [
        "b2_upload_file",
        "b2_copy_file",
        "b2_hide_file",
        "b2_start_large_file",
    ] {
        assert_eq!(
            before.get(call),
            after.get(call),
            "rclone made {call} calls after cairn sync"
        );
    }

    // The other way round: rclone uploads (one file over its 5 MiB cutoff), cairn then has nothing to do.
    let dir2 = env.path("dir2");
    tree(&dir2);
    fs::write(dir2.join("large.bin"), pseudo_random(8, 11_000_000)).unwrap();
    let d2 = dir2.to_str().unwrap();
    let out = rclone(&emu)
        .unwrap()
        .args([
            "sync",
            d2,
            "t:sync-bucket/other",
            "--b2-upload-cutoff",
            "5M",
            "--b2-chunk-size",
            "5M",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, s, err) = sync(&env, &emu, &[d2, "b2:sync-bucket/other"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["files_uploaded"], 0, "{s}");
    let (_, s, _) = sync(
        &env,
        &emu,
        &["--compare", "checksum", d2, "b2:sync-bucket/other"],
    );
    assert_eq!(
        s["files_uploaded"], 0,
        "checksums come from the listing, large_file_sha1 included: {s}"
    );
    assert_eq!(
        s["transactions"]["class_b"], 0,
        "no download to compare checksums: {s}"
    );

    // Download: bytes and millisecond mtimes come back.
    let back = env.path("back");
    let (code, _, err) = sync(
        &env,
        &emu,
        &["b2:sync-bucket/other", back.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    for rel in [
        "a.txt",
        "sub dir/b c+d#%.bin",
        "sub dir/ünï/€uro",
        "back\\slash",
        "tab\tname",
        "large.bin",
    ] {
        assert_eq!(
            fs::read(back.join(rel)).unwrap(),
            fs::read(dir2.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let m = fs::metadata(back.join("a.txt")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 987_000_000));
}

/// Same files, same bytes, modification times equal to the millisecond (what sync keeps).
fn assert_synced(a: &Path, b: &Path) {
    let (ta, tb) = (snapshot_tree(a), snapshot_tree(b));
    let files = |t: &std::collections::BTreeMap<Vec<u8>, Meta>| {
        t.iter()
            .filter(|(_, m)| m.kind == "file")
            .map(|(k, m)| {
                (
                    k.clone(),
                    (m.content_hash.clone(), m.mtime.0, m.mtime.1 / 1_000_000),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(files(&ta), files(&tb));
}

#[test]
fn delete_newer_and_local_to_local() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let dir = env.path("dir");
    tree(&dir);
    let d = dir.to_str().unwrap();
    sync(&env, &emu, &[d, "b2:del-bucket/p"]);
    fs::remove_file(dir.join("a.txt")).unwrap();
    let (code, s, err) = sync(&env, &emu, &["--delete", d, "b2:del-bucket/p"]);
    assert_eq!(
        (code, s["files_deleted"].as_u64()),
        (Some(0), Some(1)),
        "{err}"
    );
    let token = emu.authorize(2)["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, b) = emu.call(
        2,
        "b2_list_buckets",
        &token,
        serde_json::json!({"accountId": "emu0account", "bucketName": "del-bucket"}),
    );
    let bucket = b["buckets"][0]["bucketId"].as_str().unwrap().to_string();
    let versions = |prefix: &str| {
        let (_, v) = emu.call(
            2,
            "b2_list_file_versions",
            &token,
            serde_json::json!({"bucketId": bucket, "prefix": prefix}),
        );
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["action"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        versions("p/a.txt"),
        vec!["hide", "upload"],
        "plain --delete hides, as rclone does"
    );
    fs::remove_file(dir.join("tab\tname")).unwrap();
    sync(&env, &emu, &["--hard-delete", d, "b2:del-bucket/p"]);
    assert!(
        versions("p/tab").is_empty(),
        "--hard-delete removes every version"
    );

    // A newer destination file is an error unless told otherwise; nothing is deleted then.
    let local = env.path("local-copy");
    let (code, _, err) = sync(&env, &emu, &[d, local.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_synced(&dir, &local);
    // Between two local trees times are kept to the nanosecond (as rclone's local backend),
    // and a time that moved by a nanosecond only is set, not copied.
    let ns = |p: &Path| {
        fs::metadata(p)
            .map(|m| (m.mtime(), m.mtime_nsec()))
            .unwrap()
    };
    assert_eq!(ns(&local.join("back\\slash")), ns(&dir.join("back\\slash")));
    set_mtime(&dir.join("back\\slash"), 1_600_000_000, 987_654_322);
    let (code, s, err) = sync(&env, &emu, &[d, local.to_str().unwrap()]);
    assert_eq!(
        (
            code,
            s["files_uploaded"].as_u64(),
            s["files_touched"].as_u64()
        ),
        (Some(0), Some(0), Some(1)),
        "{err} {s}"
    );
    assert_eq!(ns(&local.join("back\\slash")), (1_600_000_000, 987_654_322));
    fs::write(local.join("sub dir/ünï/€uro"), b"edited later").unwrap();
    set_mtime(&local.join("sub dir/ünï/€uro"), 2_000_000_000, 0);
    fs::write(local.join("extra"), b"x").unwrap();
    let (code, _, err) = sync(&env, &emu, &["--delete", d, local.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("destination is newer") && err.contains("nothing was deleted"),
        "{err}"
    );
    assert!(local.join("extra").exists());
    let (code, s, _) = sync(&env, &emu, &["--skip-newer", d, local.to_str().unwrap()]);
    assert_eq!(
        (code, s["files_skipped"].as_u64().unwrap() > 0),
        (Some(0), true)
    );
    let (code, _, _) = sync(
        &env,
        &emu,
        &["--replace-newer", "--delete", d, local.to_str().unwrap()],
    );
    assert_eq!(code, Some(0));
    assert_synced(&dir, &local);
    // Include/exclude regexes on the relative path.
    let only = env.path("only");
    sync(
        &env,
        &emu,
        &[
            "--include",
            "^sub dir/",
            "--exclude",
            r"\.bin$",
            d,
            only.to_str().unwrap(),
        ],
    );
    assert!(
        only.join("sub dir/ünï/€uro").exists()
            && !only.join("sub dir/b c+d#%.bin").exists()
            && !only.join("back\\slash").exists()
    );
}

#[test]
fn b2_to_b2_copies_server_side() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let dir = env.path("dir");
    tree(&dir);
    sync(&env, &emu, &[dir.to_str().unwrap(), "b2:from-bucket/a"]);
    emu.http("POST", "/emulator/stats/reset", &[], b"");
    let (code, s, err) = sync(&env, &emu, &["b2:from-bucket/a", "b2:to-bucket/b"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["files_uploaded"], 5, "{s}");
    let st = emu.stats();
    assert_eq!(st["calls"]["b2_copy_file"], 5, "{st}");
    assert_eq!(st["class_b"], 0, "nothing was downloaded: {st}");
    assert_eq!(st["calls"].get("b2_upload_file"), None, "{st}");
    let (_, again, _) = sync(&env, &emu, &["b2:from-bucket/a", "b2:to-bucket/b"]);
    assert_eq!(
        again["files_uploaded"], 0,
        "copies keep the source's mtime and SHA1: {again}"
    );
    let back = env.path("back");
    sync(&env, &emu, &["b2:to-bucket/b", back.to_str().unwrap()]);
    assert_synced(&dir, &back);
}

#[test]
fn large_files_stream_in_parts_and_mtimes_are_fixed_up_without_transfers() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let dir = env.path("dir");
    fs::create_dir_all(&dir).unwrap();
    // Over sync's streaming threshold (64 MiB) and over the cutoffs set below.
    let big = pseudo_random(21, 70 << 20);
    fs::write(dir.join("big.bin"), &big).unwrap();
    fs::write(dir.join("small.txt"), b"small").unwrap();
    set_mtime(&dir.join("big.bin"), 1_500_000_000, 123_000_000);
    let d = dir.to_str().unwrap();
    let cut = [
        "--b2-upload-cutoff",
        "20M",
        "--b2-chunk-size",
        "10M",
        "--b2-copy-cutoff",
        "30M",
    ];
    let with = |rest: &[&str]| {
        cut.iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect::<Vec<String>>()
    };

    emu.http("POST", "/emulator/stats/reset", &[], b"");
    let (code, s, err) = sync_owned(&env, &emu, &with(&[d, "b2:big-bucket/a"]));
    assert_eq!(
        (code, s["files_uploaded"].as_u64()),
        (Some(0), Some(2)),
        "{err}"
    );
    let st = emu.stats();
    assert_eq!(st["calls"]["b2_start_large_file"], 1, "{st}");
    assert!(
        st["calls"]["b2_upload_part"].as_u64().unwrap() >= 7,
        "streamed in 10 MiB parts: {st}"
    );
    if let Some(mut rc) = rclone(&emu) {
        let out = rc.args(["check", d, "t:big-bucket/a"]).output().unwrap();
        assert!(
            out.status.success(),
            "rclone check (large_file_sha1, mtime): {}",
            stderr(&out)
        );
    }

    // B2 to B2 above the copy cutoff: b2_copy_part, nothing through this machine.
    emu.http("POST", "/emulator/stats/reset", &[], b"");
    let (code, s, err) = sync_owned(&env, &emu, &with(&["b2:big-bucket/a", "b2:big-bucket/b"]));
    assert_eq!(
        (code, s["files_uploaded"].as_u64()),
        (Some(0), Some(2)),
        "{err}"
    );
    let st = emu.stats();
    assert_eq!(
        st["calls"]["b2_copy_part"], 3,
        "70 MiB in 30 MiB parts: {st}"
    );
    assert_eq!(st["class_b"], 0, "nothing downloaded: {st}");
    assert_eq!(st["calls"].get("b2_upload_part"), None, "{st}");

    // Down again, streamed to a temporary file and checked against large_file_sha1.
    let back = env.path("back");
    let (code, _, err) = sync_owned(
        &env,
        &emu,
        &with(&["b2:big-bucket/b", back.to_str().unwrap()]),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        fs::read(back.join("big.bin")).unwrap() == big,
        "big.bin came back different"
    );
    assert_synced(&dir, &back);

    // Only the times change: rclone's fix-up (a server-side copy onto itself with the new
    // time, b2_copy_part for the large file), no upload; rclone then agrees.
    set_mtime(&dir.join("small.txt"), 1_700_000_000, 5_000_000);
    set_mtime(&dir.join("big.bin"), 1_700_000_001, 0);
    emu.http("POST", "/emulator/stats/reset", &[], b"");
    let (code, s, err) = sync_owned(&env, &emu, &with(&[d, "b2:big-bucket/a"]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (s["files_uploaded"].as_u64(), s["files_touched"].as_u64()),
        (Some(0), Some(2)),
        "{s}"
    );
    let st = emu.stats();
    assert_eq!(st["calls"]["b2_copy_file"], 1, "{st}");
    assert!(st["calls"]["b2_copy_part"].as_u64().unwrap() >= 1, "{st}");
    for call in ["b2_upload_file", "b2_upload_part"] {
        assert_eq!(st["calls"].get(call), None, "{call}: {st}");
    }
    if let Some(mut rc) = rclone(&emu) {
        let out = rc.args(["check", d, "t:big-bucket/a"]).output().unwrap();
        assert!(
            out.status.success(),
            "rclone check after the fix-up: {}",
            stderr(&out)
        );
    }
    // The same toward a local destination: the file's time is set, nothing is copied.
    let (code, s, err) = sync_owned(
        &env,
        &emu,
        &with(&["b2:big-bucket/a", back.to_str().unwrap()]),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (s["files_uploaded"].as_u64(), s["files_touched"].as_u64()),
        (Some(0), Some(2)),
        "{s}"
    );
    assert_synced(&dir, &back);
}

#[test]
fn hard_delete_from_rclone_config() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let dir = env.path("dir");
    tree(&dir);
    let conf = env.path("rclone.conf");
    fs::write(&conf, format!("[r]\ntype = b2\naccount = testkeyid\nkey = testkey\nendpoint = {}\nhard_delete = true\n", emu.url)).unwrap();
    let run = |args: &[&str]| {
        let out = env
            .cmd()
            .env("RCLONE_CONFIG", &conf)
            .arg("sync")
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        json_last_line(&String::from_utf8_lossy(&out.stdout))
    };
    let d = dir.to_str().unwrap();
    run(&[d, "rclone:r:hd-bucket/p"]);
    fs::remove_file(dir.join("a.txt")).unwrap();
    let s = run(&["--delete", d, "rclone:r:hd-bucket/p"]);
    assert_eq!(s["files_deleted"], 1, "{s}");
    let token = emu.authorize(2)["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, b) = emu.call(
        2,
        "b2_list_buckets",
        &token,
        serde_json::json!({"accountId": "emu0account", "bucketName": "hd-bucket"}),
    );
    let bucket = b["buckets"][0]["bucketId"].as_str().unwrap().to_string();
    let (_, v) = emu.call(
        2,
        "b2_list_file_versions",
        &token,
        serde_json::json!({"bucketId": bucket, "prefix": "p/a.txt"}),
    );
    assert_eq!(
        v["files"].as_array().unwrap().len(),
        0,
        "hard_delete = true deletes instead of hiding: {v}"
    );
}

#[test]
fn names_that_are_not_utf8_travel_as_rclone_spells_them() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let dir = env.path("dir");
    fs::create_dir_all(dir.join(OsStr::from_bytes(b"d\xe9j\xe0"))).unwrap();
    fs::write(
        dir.join(OsStr::from_bytes(b"d\xe9j\xe0/latin1 \xff.txt")),
        b"latin-1",
    )
    .unwrap();
    fs::write(dir.join("plain"), b"plain").unwrap();
    let d = dir.to_str().unwrap();
    let (code, s, err) = sync(&env, &emu, &[d, "b2:utf-bucket/a"]);
    assert_eq!(
        (code, s["files_uploaded"].as_u64()),
        (Some(0), Some(2)),
        "{err}"
    );
    if let Some(mut rc) = rclone(&emu) {
        let out = rc.args(["check", d, "t:utf-bucket/a"]).output().unwrap();
        assert!(
            out.status.success(),
            "rclone sees the same names: {}",
            stderr(&out)
        );
        // rclone's own upload of the same tree lands on the same names: cairn has nothing to do.
        let out = rclone(&emu)
            .unwrap()
            .args(["sync", d, "t:utf-bucket/r"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let (_, s, _) = sync(&env, &emu, &[d, "b2:utf-bucket/r"]);
        assert_eq!(s["files_uploaded"], 0, "{s}");
    }
    // A literal quote (the escape character) in a name round-trips too. (rclone 1.60
    // itself cannot open such a local file, so it is left out of the rclone checks.)
    fs::write(dir.join("quote \u{201B}x and \u{201B}41"), b"quote").unwrap();
    let (code, s, err) = sync(&env, &emu, &[d, "b2:utf-bucket/a"]);
    assert_eq!(
        (code, s["files_uploaded"].as_u64()),
        (Some(0), Some(1)),
        "{err}"
    );
    let back = env.path("back");
    let (code, _, err) = sync(&env, &emu, &["b2:utf-bucket/a", back.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_synced(&dir, &back);
    assert_eq!(
        fs::read(back.join(OsStr::from_bytes(b"d\xe9j\xe0/latin1 \xff.txt"))).unwrap(),
        b"latin-1"
    );
}

#[test]
fn sync_under_failing_calls_and_expiring_tokens_gives_identical_results() {
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
            "--min-part-size",
            "100000",
        ],
    );
    let dir = env.path("dir");
    tree(&dir);
    // Over the cutoffs below: a large file in parts, and a server-side copy in parts.
    fs::write(dir.join("big.bin"), pseudo_random(31, 3_000_000)).unwrap();
    let d = dir.to_str().unwrap();
    let cut = [
        "--b2-upload-cutoff",
        "1M",
        "--b2-chunk-size",
        "500K",
        "--b2-copy-cutoff",
        "1M",
    ];
    let args = |rest: &[&str]| {
        cut.iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect::<Vec<String>>()
    };
    let (code, s, err) = sync_owned(&env, &emu, &args(&[d, "b2:fault-bucket/a"]));
    assert_eq!(
        (code, s["files_uploaded"].as_u64()),
        (Some(0), Some(6)),
        "{err}"
    );
    let (code, s, err) = sync_owned(
        &env,
        &emu,
        &args(&["b2:fault-bucket/a", "b2:fault-bucket/b"]),
    );
    assert_eq!(
        (code, s["files_uploaded"].as_u64()),
        (Some(0), Some(6)),
        "{err}"
    );
    let back = env.path("back");
    let (code, _, err) = sync_owned(
        &env,
        &emu,
        &args(&["b2:fault-bucket/b", back.to_str().unwrap()]),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_synced(&dir, &back);
    // And nothing left to do afterwards, in either direction.
    let (_, s, _) = sync_owned(
        &env,
        &emu,
        &args(&["--compare", "checksum", d, "b2:fault-bucket/b"]),
    );
    assert_eq!(s["files_uploaded"], 0, "{s}");
    let st = emu.stats();
    assert!(st["calls"]["b2_copy_part"].as_u64().unwrap() >= 3, "{st}");
    assert!(
        st["faults_injected"].as_u64().unwrap() >= 10,
        "the runs went through real failures: {st}"
    );
}

/// Issue 19.1: object names planted in a bucket through the B2 API (not through cairn)
/// that would decode or resolve outside the destination. Before, `x/‛2E‛2E/‛2E‛2E/pwned.txt`
/// synced down was written two levels above the destination. Now nothing lands outside
/// it, each unsafe name is named in a warning and the JSON summary, and the exit code is 3.
#[test]
fn names_planted_in_a_bucket_never_escape_a_local_destination() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok.txt"), b"fine").unwrap();
    let b2 = |c: &mut std::process::Command| {
        emu.credentials(c);
    };
    let mut c = env.cmd();
    b2(&mut c);
    let out = c
        .args(["sync", src.to_str().unwrap(), "b2:plant-bucket/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let q = '\u{201B}';
    let planted = [
        format!("x/{q}2E{q}2E/{q}2E{q}2E/pwned1.txt"),
        format!("x/{q}2E{q}2E{q}2F{q}2E{q}2E{q}2Fpwned2.txt"),
        format!("x/{q}2Fetc{q}2Fpwned3.txt"),
        "x/../../pwned4.txt".to_string(),
        "x/a/../../../pwned5.txt".to_string(),
        format!("x/nul{q}00pwned6.txt"),
    ];
    let mut accepted = 0;
    for name in &planted {
        if emu.plant("plant-bucket", name, b"planted") == 200 {
            accepted += 1;
        }
    }
    assert!(
        accepted >= 4,
        "the emulator took {accepted} of the planted names"
    );
    let dest = env.path("a/b/dest");
    fs::create_dir_all(&dest).unwrap();
    let mut c = env.cmd();
    b2(&mut c);
    let out = c
        .args([
            "sync",
            "b2:plant-bucket/x",
            dest.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    // Nothing anywhere but inside the destination.
    let mut stray = Vec::new();
    for entry in all_paths(env.dir.path()) {
        let n = entry.file_name().unwrap().to_string_lossy().into_owned();
        if n.contains("pwned") && !entry.starts_with(&dest) {
            stray.push(entry);
        }
    }
    assert!(
        stray.is_empty(),
        "written outside the destination: {stray:?}"
    );
    assert!(dest.join("ok.txt").exists());
    let e = stderr(&out);
    let v = json_last_line(&String::from_utf8_lossy(&out.stdout));
    let skipped = v["unsafe_names"].as_array().map_or(0, Vec::len);
    // The literal `..` names cannot be a path and are skipped; the escaped ones decode to
    // plain text inside the destination (only bytes of 0x80 and up are escapes).
    assert!(
        skipped >= 1 && out.status.code() == Some(3),
        "exit {:?}, {v}: {e}",
        out.status.code()
    );
    assert!(
        e.contains("pwned4.txt") && e.contains("not a safe path"),
        "{e}"
    );
}

/// Every file version in `bucket`, as (name, action), to compare before and after.
fn bucket_versions(emu: &Emulator, bucket: &str) -> Vec<(String, String)> {
    let token = emu.authorize(2)["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, b) = emu.call(
        2,
        "b2_list_buckets",
        &token,
        serde_json::json!({"accountId": "emu0account", "bucketName": bucket}),
    );
    let id = b["buckets"][0]["bucketId"].as_str().unwrap().to_string();
    let (_, v) = emu.call(
        2,
        "b2_list_file_versions",
        &token,
        serde_json::json!({"bucketId": id, "maxFileCount": 1000}),
    );
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fileName"].as_str().unwrap().to_string(),
                f["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Issue 20.1: `sync --delete` from a source that does not exist (a typo, an unmounted
/// drive, a wrong B2 prefix) fails with exit 1 and touches nothing; an empty source, or
/// one that would delete more than 10% of the destination, needs --allow-deletes.
#[test]
fn sync_delete_never_follows_a_missing_or_empty_source() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let dir = env.path("dir");
    tree(&dir);
    let d = dir.to_str().unwrap();
    let (code, _, err) = sync(&env, &emu, &[d, "b2:keep-bucket/p"]);
    assert_eq!(code, Some(0), "{err}");
    let before_bucket = bucket_versions(&emu, "keep-bucket");
    let before_dir = snapshot_tree(&dir);
    let missing = env.path("does-not-exist");
    let m = missing.to_str().unwrap();

    for (src, dst) in [
        (m, d),
        ("b2:keep-bucket/typo", d),
        (m, "b2:keep-bucket/p"),
        ("b2:no-such-bucket/p", d),
    ] {
        for flags in [
            &["--delete"][..],
            &["--delete", "--allow-deletes"][..],
            &["--hard-delete"][..],
        ] {
            let mut args = flags.to_vec();
            args.extend([src, dst]);
            let (code, s, err) = sync(&env, &emu, &args);
            assert_eq!(code, Some(1), "{args:?}: {s} {err}");
            assert!(err.contains("does not exist"), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        }
    }
    assert_eq!(
        snapshot_tree(&dir),
        before_dir,
        "the local destination is untouched"
    );
    assert_eq!(
        bucket_versions(&emu, "keep-bucket"),
        before_bucket,
        "nothing hidden or deleted in the bucket"
    );

    // An empty source exists, but emptying the destination needs saying so.
    let empty = env.path("empty");
    fs::create_dir_all(&empty).unwrap();
    let e = empty.to_str().unwrap();
    let (code, _, err) = sync(&env, &emu, &["--delete", e, d]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("holds no files") && err.contains("--allow-deletes"),
        "{err}"
    );
    assert_eq!(snapshot_tree(&dir), before_dir);

    // More than 10% (and more than 10 files) of the destination: refused, listed by a dry run.
    let many = env.path("many");
    let big = env.path("big");
    for i in 0..30 {
        fs::create_dir_all(&many).unwrap();
        fs::create_dir_all(&big).unwrap();
        fs::write(many.join(format!("f{i:02}")), format!("{i}")).unwrap();
        fs::write(big.join(format!("f{i:02}")), format!("{i}")).unwrap();
    }
    for i in 0..20 {
        fs::remove_file(many.join(format!("f{i:02}"))).unwrap();
    }
    let (mn, bg) = (many.to_str().unwrap(), big.to_str().unwrap());
    let (code, _, err) = sync(&env, &emu, &["--delete", mn, bg]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("20 of the destination's 30 files"), "{err}");
    assert_eq!(fs::read_dir(&big).unwrap().count(), 30);
    let out = env
        .cmd()
        .args(["sync", "--delete", "--dry-run", mn, bg])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "a dry run shows what would go: {}",
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("would delete f"))
            .count(),
        20,
        "{text}"
    );
    assert!(
        text.contains("stop: it would delete 20") && text.contains("--allow-deletes"),
        "{text}"
    );
    let (code, s, err) = sync(&env, &emu, &["--delete", "--allow-deletes", mn, bg]);
    assert_eq!(
        (code, s["files_deleted"].as_u64()),
        (Some(0), Some(20)),
        "{err}"
    );
    assert_eq!(s["deleted"].as_array().unwrap().len(), 20, "{s}");
    let (code, _, err) = sync(&env, &emu, &["--delete", "--allow-deletes", e, bg]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        fs::read_dir(&big).unwrap().count(),
        0,
        "with --allow-deletes an empty source empties the destination"
    );
}

/// Issue 20.2: a source and destination where one holds the other are refused (rclone's
/// "overlapping remotes"), locally (symlinks resolved) and on B2 (bucket and prefix).
#[test]
fn sync_refuses_overlapping_locations() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let m1 = env.path("m1");
    fs::create_dir_all(m1.join("photos")).unwrap();
    fs::write(m1.join("photos/p.jpg"), b"photo").unwrap();
    fs::write(m1.join("q.txt"), b"unrelated").unwrap();
    std::os::unix::fs::symlink(&m1, env.path("link")).unwrap();
    let before = snapshot_tree(&m1);
    let (photos, whole, link, link_photos) = (
        m1.join("photos"),
        m1.clone(),
        env.path("link"),
        env.path("link/photos/new"),
    );
    let cases: Vec<[String; 2]> = vec![
        [photos.display().to_string(), whole.display().to_string()],
        [whole.display().to_string(), photos.display().to_string()],
        [photos.display().to_string(), link.display().to_string()],
        [
            whole.display().to_string(),
            link_photos.display().to_string(),
        ],
        [photos.display().to_string(), photos.display().to_string()],
    ];
    for [src, dst] in &cases {
        let (code, _, err) = sync_owned(&env, &emu, &["--delete".into(), src.clone(), dst.clone()]);
        assert_eq!(code, Some(1), "{src} -> {dst}: {err}");
        assert!(err.contains("one holds the other"), "{err}");
    }
    assert_eq!(snapshot_tree(&m1), before, "nothing deleted or written");
    assert!(!link_photos.exists());

    let (code, _, err) = sync(
        &env,
        &emu,
        &[photos.to_str().unwrap(), "b2:ov-bucket/photos"],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = sync(&env, &emu, &[m1.to_str().unwrap(), "b2:ov-bucket/other"]);
    assert_eq!(code, Some(0), "{err}");
    let before = bucket_versions(&emu, "ov-bucket");
    for [src, dst] in [
        ["b2:ov-bucket/photos", "b2:ov-bucket"],
        ["b2:ov-bucket", "b2:ov-bucket/other/x"],
        ["b2:ov-bucket/other", "b2:ov-bucket/other"],
    ] {
        let (code, _, err) = sync(&env, &emu, &["--hard-delete", src, dst]);
        assert_eq!(code, Some(1), "{src} -> {dst}: {err}");
        assert!(err.contains("one holds the other"), "{err}");
    }
    assert_eq!(bucket_versions(&emu, "ov-bucket"), before);
    // Neighbours are not overlaps.
    let (code, _, err) = sync(
        &env,
        &emu,
        &["b2:ov-bucket/photos", "b2:ov-bucket/photos-copy"],
    );
    assert_eq!(code, Some(0), "{err}");
}
