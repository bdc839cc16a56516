//! `ship --lock-days`: files shipped to a B2 bucket with file lock enabled are locked,
//! locks of files still in use are extended as time passes, locked files are not
//! deleted until their lock ends, and a bucket without file lock is one clear error.

use std::fs;

use crate::util::*;

const LOCKED: &str = "locked-bucket";
const PLAIN: &str = "plain-bucket";
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Creates a bucket with the full key, with or without file lock.
fn create_bucket(emu: &Emulator, name: &str, file_lock: bool) {
    let auth = emu.authorize(2);
    let token = auth["authorizationToken"].as_str().unwrap().to_string();
    let (st, b) = emu.call(
        2,
        "b2_create_bucket",
        &token,
        serde_json::json!({"accountId": auth["accountId"], "bucketName": name,
            "bucketType": "allPrivate", "fileLockEnabled": file_lock}),
    );
    assert_eq!(st, 200, "{b}");
}

/// Every live file of the bucket: name and the end of its retention, if any.
fn retention(emu: &Emulator, bucket: &str) -> Vec<(String, Option<i64>)> {
    emu.files(bucket)
        .iter()
        .map(|f| {
            (
                f["fileName"].as_str().unwrap().to_string(),
                f["fileRetention"]["value"]["retainUntilTimestamp"].as_i64(),
            )
        })
        .collect()
}

/// Moves the emulator's clock ahead; returns its time now (ms).
fn advance(emu: &Emulator, days: i64) -> i64 {
    let (st, _, b) = emu.http(
        "POST",
        &format!("/emulator/clock?advance_secs={}", days * 24 * 3600),
        &[],
        b"",
    );
    assert_eq!(st, 200);
    AHEAD.fetch_add(days * 24 * 3600, std::sync::atomic::Ordering::Relaxed);
    serde_json::from_slice::<serde_json::Value>(&b).unwrap()["now"]
        .as_i64()
        .unwrap()
}

/// Seconds the emulator's clock (and so cairn's, for locks) runs ahead.
static AHEAD: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn ship(env: &Env, emu: &Emulator, dest: &str, extra: &[&str]) -> std::process::Output {
    let mut c = env.cmd();
    c.env(
        "CAIRN_TEST_CLOCK_OFFSET_SECS",
        AHEAD.load(std::sync::atomic::Ordering::Relaxed).to_string(),
    );
    emu.credentials(&mut c)
        .arg("-r")
        .arg(env.repo())
        .args(["ship", dest, "--json"])
        .args(extra)
        .output()
        .unwrap()
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(out));
    json_last_line(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn shipped_files_stay_locked_while_in_use_and_go_after() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    create_bucket(&emu, LOCKED, true);
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("old"), pseudo_random(1, 2_000_000)).unwrap();
    env.backup(&[&src], &[]);
    let dest = format!("b2:{LOCKED}/repo");
    let lock = ["--lock-days", "30"];

    let s = summary(&ship(&env, &emu, &dest, &lock));
    let start = advance(&emu, 0);
    assert!(s["files_uploaded"].as_u64().unwrap() > 0, "{s}");
    let until = s["locked_until"].as_i64().unwrap();
    assert!((until - (start + 30 * DAY_MS)).abs() < 60_000, "{s}");
    let files = retention(&emu, LOCKED);
    assert!(files.iter().all(|(_, u)| *u == Some(until)), "{files:?}");

    // Whoever holds a key that may delete still cannot delete a locked file.
    let auth = emu.authorize(2);
    let token = auth["authorizationToken"].as_str().unwrap().to_string();
    let object = emu
        .files(LOCKED)
        .into_iter()
        .find(|f| f["fileName"].as_str().unwrap().contains("/data/"))
        .unwrap();
    let pack = object["fileName"].as_str().unwrap().to_string();
    let file_id = object["fileId"].as_str().unwrap().to_string();
    let (st, e) = emu.call(
        2,
        "b2_delete_file_version",
        &token,
        serde_json::json!({"fileName": pack, "fileId": file_id}),
    );
    assert_eq!(st, 401, "{e}");
    let (st, e) = emu.call(
        2,
        "b2_update_file_retention",
        &token,
        serde_json::json!({"fileName": pack, "fileId": file_id,
            "fileRetention": {"mode": "governance", "retainUntilTimestamp": start}}),
    );
    assert_eq!(st, 401, "shortening needs bypassGovernance: {e}");

    // 25 days on, a ship extends every lock that would end within 10 days.
    let now = advance(&emu, 25);
    fs::write(src.join("new"), pseudo_random(2, 500_000)).unwrap();
    env.backup(&[&src], &[]);
    let s = summary(&ship(&env, &emu, &dest, &lock));
    assert_eq!(
        s["locks_extended"].as_u64().unwrap(),
        files.len() as u64,
        "{s}"
    );
    let extended = retention(&emu, LOCKED);
    assert!(
        extended
            .iter()
            .all(|(_, u)| u.unwrap() >= now + 29 * DAY_MS),
        "{extended:?}"
    );

    // The old data is forgotten here; offsite it stays until its lock ends.
    fs::remove_file(src.join("old")).unwrap();
    env.backup(&[&src], &[]);
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    let out = ship(&env, &emu, &dest, &lock);
    let s = summary(&out);
    let held = s["deletions_left"].as_array().unwrap().len();
    assert!(held > 0, "{s}");
    assert!(
        s["deletions_left"][0]
            .as_str()
            .unwrap()
            .contains("kept until"),
        "{s}"
    );
    assert!(stderr(&out).contains("still locked"), "{}", stderr(&out));
    let target = env.path("restored");
    let mut c = env.cmd();
    let out = emu
        .credentials(&mut c)
        .args(["-r", &dest, "restore", "latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    let mut c = env.cmd();
    let out = emu
        .credentials(&mut c)
        .args(["-r", &dest, "check", "--json"])
        .output()
        .unwrap();
    let c = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(c["packs_locked"].as_u64().unwrap() > 0, "{c}");
    assert!(c["first_lock_ends"].as_i64().is_some(), "{c}");

    // Once the locks have run out, the next ship deletes what is no longer used.
    advance(&emu, 31);
    let s = summary(&ship(&env, &emu, &dest, &lock));
    assert!(s["files_deleted"].as_u64().unwrap() >= held as u64, "{s}");
    assert!(s["deletions_left"].as_array().unwrap().is_empty(), "{s}");
    let mut c = env.cmd();
    let out = emu
        .credentials(&mut c)
        .args(["-r", &dest, "check", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_bucket_without_file_lock_is_one_clear_error() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    create_bucket(&emu, PLAIN, false);
    env.ok(&["init"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    env.backup(&[&src], &[]);
    let out = ship(
        &env,
        &emu,
        &format!("b2:{PLAIN}/repo"),
        &["--lock-days", "7"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        e.contains("file lock") && e.contains(PLAIN) && e.contains("nothing was shipped"),
        "{e}"
    );
    assert!(retention(&emu, PLAIN).is_empty(), "nothing was written");
    // A local destination cannot lock either.
    let out = ship(
        &env,
        &emu,
        env.path("usb2").to_str().unwrap(),
        &["--lock-days", "7", "--create-bucket"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot lock files"),
        "{}",
        stderr(&out)
    );
}

/// A key without writeFileRetentions cannot lock: cairn says so before shipping, and
/// the emulator refuses retention headers from it as B2 does.
#[test]
fn a_key_that_cannot_lock_is_refused_up_front() {
    let env = Env::new();
    let emu = Emulator::start(
        &env.path("emu"),
        &[
            "--restricted-key",
            &format!("nolock:nolocksecret:{LOCKED}:listBuckets,readBuckets,listFiles,readFiles,writeFiles"),
        ],
    );
    create_bucket(&emu, LOCKED, true);
    env.ok(&["init"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    env.backup(&[&src], &[]);
    let mut c = env.cmd();
    let out = emu
        .credentials(&mut c)
        .env("B2_APPLICATION_KEY_ID", "nolock")
        .env("B2_APPLICATION_KEY", "nolocksecret")
        .arg("-r")
        .arg(env.repo())
        .args(["ship", &format!("b2:{LOCKED}/repo"), "--lock-days", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("writeFileRetentions"),
        "{}",
        stderr(&out)
    );
    assert!(emu.files(LOCKED).is_empty(), "nothing was shipped");

    let (_, a) = emu.authorize_key("nolock", "nolocksecret");
    let token = a["authorizationToken"].as_str().unwrap().to_string();
    let bucket = a["allowed"]["bucketId"].clone();
    let (path, up_token) = emu.upload_url(&token, &bucket);
    let (st, _, b) = emu.http(
        "POST",
        &path,
        &[
            ("Authorization", &up_token),
            ("X-Bz-File-Name", "x"),
            ("Content-Type", "b2/x-auto"),
            (
                "X-Bz-Content-Sha1",
                "87acec17cd9dcd20a716cc2cf67417b71c8a7016",
            ),
            ("X-Bz-File-Retention-Mode", "governance"),
            (
                "X-Bz-File-Retention-Retain-Until-Timestamp",
                "4102444800000",
            ),
        ],
        b"0123456789",
    );
    assert_eq!(st, 401, "{}", String::from_utf8_lossy(&b));
}
