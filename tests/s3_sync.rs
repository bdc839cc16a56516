//! `cairn sync` to and from an S3 store, interchangeable with rclone's s3 remote:
//! times travel in rclone's `X-Amz-Meta-Mtime`, so after either tool the other finds
//! nothing to do (issue 25).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::*;

use cairn_opendal::testing::S3Server;

fn cairn(env: &Env) -> Command {
    let mut c = env.cmd();
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE");
    c
}

/// `cairn --json sync ARGS`: exit code and summary.
fn sync(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = cairn(env)
        .args(["--json", "sync"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = match stdout.trim() {
        "" => serde_json::Value::Null,
        _ => json_last_line(&stdout),
    };
    (out.status.code(), v, stderr(&out))
}

/// rclone with remote `s:` on the test server; None where rclone is missing (outside CI).
/// Debian's rclone 1.60 refuses an s3 remote while AWS_CA_BUNDLE is set.
fn rclone(s3: &S3Server) -> Option<Command> {
    if Command::new("rclone").arg("version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "rclone is missing: .ci/run must install it"
        );
        return None;
    }
    let mut c = Command::new("rclone");
    c.env("RCLONE_CONFIG", "/dev/null")
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_S_TYPE", "s3")
        .env("RCLONE_CONFIG_S_PROVIDER", "Other")
        .env(
            "RCLONE_CONFIG_S_ENDPOINT",
            format!("http://127.0.0.1:{}", s3.port),
        )
        .env("RCLONE_CONFIG_S_ACCESS_KEY_ID", "testing")
        .env("RCLONE_CONFIG_S_SECRET_ACCESS_KEY", "testing")
        .stdin(std::process::Stdio::null());
    Some(c)
}

/// rclone ARGS, which must succeed; its log (-v) is returned.
fn rclone_ok(s3: &S3Server, args: &[&str]) -> String {
    let out = rclone(s3).unwrap().arg("-v").args(args).output().unwrap();
    assert!(out.status.success(), "rclone {args:?}: {}", stderr(&out));
    stderr(&out)
}

/// rclone ARGS, which must succeed; its output.
fn rclone_ok_stdout(s3: &S3Server, args: &[&str]) -> String {
    let out = rclone(s3).unwrap().args(args).output().unwrap();
    assert!(out.status.success(), "rclone {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names, bytes and modification times (to the nanosecond) of two local trees agree.
fn same_files(a: &Path, b: &Path) {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut Vec<(std::path::PathBuf, Vec<u8>, std::time::SystemTime)>,
    ) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(root, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                out.push((rel, fs::read(e.path()).unwrap(), m.modified().unwrap()));
            }
        }
    }
    let list = |root: &Path| {
        let mut v = Vec::new();
        walk(root, root, &mut v);
        v.sort();
        v
    };
    assert_eq!(list(a), list(b));
}

#[test]
fn cairn_and_rclone_take_turns_on_an_s3_bucket() {
    let Some(s3) = S3Server::start() else { return };
    let Some(_) = rclone(&s3) else { return };
    s3.make_bucket("turns");
    let env = Env::new();
    let dir = env.path("dir");
    crate::sync::tree(&dir);
    let d = dir.to_str().unwrap();
    let dest = s3.location("turns/path");

    let (code, s, err) = sync(&env, &[d, &dest]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["files_uploaded"], 5, "{s}");
    // rclone finds the same names, sizes and hashes, and the same times: it has
    // nothing to copy and no time to fix.
    rclone_ok(&s3, &["check", d, "s:turns/path"]);
    let log = rclone_ok(&s3, &["sync", d, "s:turns/path"]);
    assert!(
        !log.contains("Copied"),
        "rclone copied after cairn sync: {log}"
    );
    assert!(
        !log.contains("modification time"),
        "rclone fixed times: {log}"
    );
    // cairn again: nothing to do.
    let (code, s, err) = sync(&env, &[d, &dest]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (s["files_uploaded"].as_u64(), s["files_skipped"].as_u64()),
        (Some(0), Some(5)),
        "{s}"
    );

    // The other way round: rclone writes, cairn finds nothing to do.
    let dir2 = env.path("dir2");
    crate::sync::tree(&dir2);
    fs::write(dir2.join("later.bin"), pseudo_random(4, 300_000)).unwrap();
    set_mtime(&dir2.join("later.bin"), 1_700_000_000, 123_456_789);
    let d2 = dir2.to_str().unwrap();
    rclone_ok(&s3, &["sync", d2, "s:turns/other"]);
    let (code, s, err) = sync(&env, &[d2, &s3.location("turns/other")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (s["files_uploaded"].as_u64(), s["files_skipped"].as_u64()),
        (Some(0), Some(6)),
        "{s}"
    );

    // Down from S3 to a directory: bytes and times as the source's; rclone agrees.
    let back = env.path("back");
    let (code, s, err) = sync(&env, &[&s3.location("turns/other"), back.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["files_uploaded"], 6, "{s}");
    same_files(&dir2, &back);
    rclone_ok(&s3, &["check", back.to_str().unwrap(), "s:turns/other"]);

    // A change and a deletion with --delete: rclone still sees the same tree.
    fs::write(dir.join("a.txt"), b"alpha, longer now").unwrap();
    fs::remove_file(dir.join("tab\tname")).unwrap();
    let (code, s, err) = sync(&env, &["--delete", d, &dest]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (s["files_uploaded"].as_u64(), s["files_deleted"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    rclone_ok(&s3, &["check", d, "s:turns/path"]);
    // The neighbour prefix was not touched by the deletion.
    rclone_ok(&s3, &["check", d2, "s:turns/other"]);
}

/// A file whose time changed but whose bytes did not has its time set in place (a
/// copy onto itself, as rclone), keeping its Content-Type; `--compare checksum` finds
/// nothing to do by MD5; a file uploaded in parts carries rclone's Md5chksum, which
/// rclone reads back and which a time change keeps.
#[test]
fn times_change_in_place_and_checksums_compare_by_md5() {
    let Some(s3) = S3Server::start() else { return };
    let Some(_) = rclone(&s3) else { return };
    s3.make_bucket("hashes");
    let env = Env::new();
    let dir = env.path("dir");
    crate::sync::tree(&dir);
    // Above the 64 MiB multipart cutoff, so its ETag is no MD5.
    let big = pseudo_random(9, (70 << 20) + 5);
    fs::write(dir.join("big.bin"), &big).unwrap();
    let d = dir.to_str().unwrap();
    let dest = s3.location("hashes/p");
    let (code, s, err) = sync(&env, &[d, &dest]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["files_uploaded"], 6, "{s}");
    let md5sum = |path: &str| {
        let out = rclone_ok_stdout(&s3, &["md5sum", &format!("s:hashes/p/{path}")]);
        out.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let want = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(&big))
    };
    assert_eq!(
        md5sum("big.bin"),
        want,
        "rclone reads the multipart upload's MD5"
    );

    // Same bytes, new times: nothing uploaded, two times set, and rclone agrees.
    set_mtime(&dir.join("a.txt"), 1_650_000_000, 250_000_000);
    set_mtime(&dir.join("big.bin"), 1_650_000_100, 0);
    let (code, s, err) = sync(&env, &[d, &dest]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (
            s["files_uploaded"].as_u64(),
            s["files_touched"].as_u64(),
            s["files_skipped"].as_u64()
        ),
        (Some(0), Some(2), Some(4)),
        "{s}"
    );
    let log = rclone_ok(&s3, &["sync", d, "s:hashes/p"]);
    assert!(!log.contains("Copied"), "rclone copied: {log}");
    assert!(
        !log.contains("modification time"),
        "rclone fixed times: {log}"
    );
    rclone_ok(&s3, &["check", d, "s:hashes/p"]);
    assert_eq!(md5sum("big.bin"), want, "the copy kept Md5chksum");
    let meta = rclone_ok_stdout(&s3, &["lsjson", "--stat", "-M", "s:hashes/p/a.txt"]);
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["MimeType"], "text/plain; charset=utf-8", "{meta}");
    assert_eq!(meta["ModTime"], "2022-04-15T05:20:00.250000000Z", "{meta}");

    // By MD5: all six are the same; a same-size change is found.
    let (code, s, err) = sync(&env, &["--compare", "checksum", d, &dest]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (s["files_uploaded"].as_u64(), s["files_skipped"].as_u64()),
        (Some(0), Some(6)),
        "{s}"
    );
    assert!(!err.contains("compared by size only"), "{err}");
    let a = fs::read(dir.join("a.txt")).unwrap();
    let mut flipped = a.clone();
    flipped[0] ^= 1;
    fs::write(dir.join("a.txt"), &flipped).unwrap();
    set_mtime(&dir.join("a.txt"), 1_650_000_000, 250_000_000);
    let (code, s, err) = sync(&env, &["--compare", "checksum", d, &dest]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["files_uploaded"], 1, "{s}");
    rclone_ok(&s3, &["check", d, "s:hashes/p"]);
}

/// A stored file S3 has no MD5 for (uploaded in parts by rclone told not to keep one)
/// is never passed as unchanged by `--compare checksum`: a same-size change to it is
/// sent, where a size-only fallback would have kept the stale copy.
#[test]
fn checksum_sync_sends_a_file_the_store_has_no_md5_for() {
    let Some(s3) = S3Server::start() else { return };
    let Some(_) = rclone(&s3) else { return };
    s3.make_bucket("nohash");
    let env = Env::new();
    let dir = env.path("dir");
    fs::create_dir_all(&dir).unwrap();
    let mut data = pseudo_random(11, 6 << 20);
    fs::write(dir.join("v.bin"), &data).unwrap();
    let d = dir.to_str().unwrap();
    rclone_ok(
        &s3,
        &[
            "copy",
            "--s3-disable-checksum",
            "--s3-upload-cutoff",
            "5M",
            "--s3-chunk-size",
            "5M",
            d,
            "s:nohash/p",
        ],
    );
    assert_eq!(
        rclone_ok_stdout(&s3, &["md5sum", "s:nohash/p/v.bin"]).trim(),
        "v.bin",
        "rclone stored an MD5 after all: the test needs a file without one"
    );
    data[100] ^= 0xff;
    fs::write(dir.join("v.bin"), &data).unwrap();
    let (code, s, err) = sync(
        &env,
        &["--compare", "checksum", d, &s3.location("nohash/p")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["files_uploaded"], 1, "{s}");
    let back = env.path("back");
    let (code, _, err) = sync(&env, &[&s3.location("nohash/p"), back.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(fs::read(back.join("v.bin")).unwrap(), data);
}

/// A source and destination in one bucket where one holds the other are refused, as
/// for B2; the same prefix on another server is not the same place.
#[test]
fn overlapping_s3_prefixes_are_refused() {
    let Some(s3) = S3Server::start() else { return };
    s3.make_bucket("overlap");
    let env = Env::new();
    let dir = env.path("dir");
    crate::sync::tree(&dir);
    let (code, _, err) = sync(&env, &[dir.to_str().unwrap(), &s3.location("overlap/a/b")]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = sync(
        &env,
        &[
            "--delete",
            &s3.location("overlap/a/b"),
            &s3.location("overlap/a"),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("one holds the other"), "{err}");
    // Side by side they are fine, and the cost line of each names its prefix.
    let out = cairn(&env)
        .args([
            "sync",
            &s3.location("overlap/a/b"),
            &s3.location("overlap/c"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for (side, line) in [
        ("a/b", "0 writes and deletes"),
        ("c", "5 writes and deletes"),
    ] {
        let want = format!("S3 requests: {line}");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&want) && l.ends_with(&format!("/overlap/{side})"))),
            "{text}"
        );
    }
}
