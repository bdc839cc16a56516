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
}
