//! A repository on B2 created with `init --lock-days`: every file it stores is locked,
//! backups keep what is stored locked as it ages, forget and prune hide what they may
//! not delete yet and delete it once its lock ends, and an attacker holding the daily
//! (append-only) key who hides and overwrites files cannot destroy a snapshot:
//! `repair versions` brings everything back.

use std::cell::Cell;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::util::*;

const BUCKET: &str = "locked-repo-bucket";
const DAILY_CAPS: &str =
    "listBuckets,readBuckets,listFiles,readFiles,writeFiles,readFileRetentions,writeFileRetentions";
const DAY_MS: i64 = 24 * 3600 * 1000;
const REPO: &str = "b2:locked-repo-bucket/repo";

/// The emulator, a bucket with file lock, and a clock both it and cairn follow.
struct World {
    env: Env,
    emu: Emulator,
    /// Seconds the clocks run ahead of the system's.
    ahead: Cell<i64>,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let emu = Emulator::start(
            &env.path("emu"),
            &[
                "--restricted-key",
                &format!("daily:dailysecret:{BUCKET}:{DAILY_CAPS}"),
            ],
        );
        for (name, lock) in [(BUCKET, true), ("plain-bucket-1", false)] {
            let auth = emu.authorize(2);
            let (st, b) = emu.call(
                2,
                "b2_create_bucket",
                auth["authorizationToken"].as_str().unwrap(),
                serde_json::json!({"accountId": auth["accountId"], "bucketName": name,
                    "bucketType": "allPrivate", "fileLockEnabled": lock}),
            );
            assert_eq!(st, 200, "{b}");
        }
        World {
            env,
            emu,
            ahead: Cell::new(0),
        }
    }

    /// `cairn -r LOCATION` with the full key, on the shared clock.
    fn strong(&self, location: &str) -> Command {
        let mut c = self.emu.cairn_at(&self.env, location);
        c.env("CAIRN_TEST_CLOCK_OFFSET_SECS", self.ahead.get().to_string());
        c
    }

    /// `cairn -r REPO` with the daily key (no deleteFiles), on the shared clock.
    fn daily(&self) -> Command {
        let mut c = self.strong(REPO);
        c.env("B2_APPLICATION_KEY_ID", "daily")
            .env("B2_APPLICATION_KEY", "dailysecret");
        c
    }

    /// Moves both clocks ahead; returns the emulator's time now (ms).
    fn advance(&self, days: i64) -> i64 {
        let (st, _, b) = self.emu.http(
            "POST",
            &format!("/emulator/clock?advance_secs={}", days * 24 * 3600),
            &[],
            b"",
        );
        assert_eq!(st, 200);
        self.ahead.set(self.ahead.get() + days * 24 * 3600);
        serde_json::from_slice::<serde_json::Value>(&b).unwrap()["now"]
            .as_i64()
            .unwrap()
    }

    /// Every live file of the repository, with the end of its lock.
    fn locks(&self) -> Vec<(String, Option<i64>)> {
        self.emu
            .files(BUCKET)
            .iter()
            .map(|f| {
                (
                    f["fileName"].as_str().unwrap().to_string(),
                    f["fileRetention"]["value"]["retainUntilTimestamp"].as_i64(),
                )
            })
            .collect()
    }
}

fn ok(out: Output, what: &str) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or_default()
}

fn write_source(src: &Path, round: u64) {
    fs::create_dir_all(src).unwrap();
    fs::write(
        src.join(format!("f{round}")),
        pseudo_random(round, 1_200_000),
    )
    .unwrap();
}

/// A copy of the flat directory `from` with the same contents and times: what a
/// snapshot of it must restore to after `from` changes.
fn keep_as_it_is(from: &Path, to: &Path) {
    use std::os::unix::fs::MetadataExt;
    fs::create_dir_all(to).unwrap();
    let times = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
        let (s, n) = times(&e.path());
        set_mtime(&to.join(e.file_name()), s, n);
    }
    let (s, n) = times(from);
    set_mtime(to, s, n);
}

/// Restores `snapshot` (of the directory `src`) and compares it with `expected`.
fn restores_exactly(w: &World, snapshot: &str, src: &Path, expected: &Path) {
    let target = w
        .env
        .path(&format!("restored-{snapshot}-{}", w.ahead.get()));
    ok(
        w.daily()
            .args(["restore", snapshot, "--target", target.to_str().unwrap()])
            .output()
            .unwrap(),
        "restore",
    );
    assert_same_tree(expected, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn a_locked_repository_keeps_its_files_locked_and_lets_them_go_after() {
    let w = World::new();
    // A place that cannot lock is refused before anything is made there.
    for place in [
        "b2:plain-bucket-1/repo",
        w.env.path("disk").to_str().unwrap(),
    ] {
        let out = w
            .strong(place)
            .args(["init", "--lock-days", "30"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{place}");
        let e = stderr(&out);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(
            e.contains("cannot lock") && e.contains("nothing was written"),
            "{e}"
        );
    }
    assert!(w.emu.files("plain-bucket-1").is_empty());
    assert!(!w.env.path("disk").exists());

    let start = w.advance(0);
    ok(
        w.strong(REPO)
            .args(["init", "--lock-days", "30"])
            .output()
            .unwrap(),
        "init",
    );
    let src = w.env.path("src");
    write_source(&src, 0);
    let s = ok(
        w.daily()
            .args(["backup", "--json", src.to_str().unwrap()])
            .output()
            .unwrap(),
        "backup",
    );
    assert_eq!(s["locks_extended"], 0, "{s}");
    // Every file but the locks is locked 30 days ahead.
    let files = w.locks();
    assert!(files.iter().any(|(n, _)| n.contains("/data/")), "{files:?}");
    for (name, until) in &files {
        let until = until.unwrap_or_else(|| panic!("{name} is not locked"));
        assert!((until - (start + 30 * DAY_MS)).abs() < 120_000, "{name}");
    }

    // Its copies are locked for the same period wherever they can be, and a copy on a
    // disk says it is not.
    let s = ok(
        w.daily()
            .args(["ship", "b2:locked-repo-bucket/offsite", "--json"])
            .output()
            .unwrap(),
        "ship",
    );
    assert_eq!(
        s["files_uploaded"].as_u64(),
        Some(files.len() as u64),
        "{s}"
    );
    for (name, until) in w.locks().iter().filter(|(n, _)| n.starts_with("offsite/")) {
        assert!(
            until.is_some_and(|u| u > start + 29 * DAY_MS),
            "{name} locked"
        );
    }
    let disk = w.env.path("usb");
    fs::create_dir(&disk).unwrap();
    let out = w
        .daily()
        .args(["ship", disk.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the copy there is not locked"),
        "{}",
        stderr(&out)
    );

    // After 25 days the daily backup extends every lock; a file added now is new.
    let now = w.advance(25);
    write_source(&src, 1);
    let s = ok(
        w.daily()
            .args(["backup", "--json", src.to_str().unwrap()])
            .output()
            .unwrap(),
        "backup",
    );
    assert_eq!(
        s["locks_extended"].as_u64(),
        Some(files.len() as u64),
        "{s}"
    );
    for (name, until) in w
        .locks()
        .into_iter()
        .filter(|(n, _)| n.starts_with("repo/"))
    {
        assert!(until.unwrap() > now + 29 * DAY_MS, "{name} extended");
    }
    let kept_src = w.env.path("kept");
    keep_as_it_is(&src, &kept_src);

    // The strong key forgets the first snapshot: its file is locked, so it is hidden,
    // and its data is kept, unindexed, while locked.
    let first = ok(
        w.daily().args(["snapshots", "--json"]).output().unwrap(),
        "snapshots",
    )[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = ok(
        w.strong(REPO)
            .args(["forget", "--keep-last", "1", "--prune", "--json"])
            .output()
            .unwrap(),
        "forget",
    );
    assert_eq!(s["removed"].as_array().map(Vec::len), Some(1), "{s}");
    let snapshot_versions = || w.emu.versions(BUCKET, "repo/snapshots/");
    let hidden = snapshot_versions();
    assert!(
        hidden
            .iter()
            .any(|v| v["action"] == "hide" && v["fileName"].as_str().unwrap().ends_with(&first)),
        "{hidden:?}"
    );
    let listed = ok(
        w.daily().args(["snapshots", "--json"]).output().unwrap(),
        "snapshots",
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    ok(
        w.daily().args(["check", "--read-data"]).output().unwrap(),
        "check",
    );
    restores_exactly(&w, "latest", &src, &kept_src);

    // A snapshot file hidden behind cairn's back (no forgotten record names it) is
    // not cairn's to purge: it stays for `repair versions`.
    let stranger = format!("repo/snapshots/{}", "ab".repeat(32));
    assert_eq!(w.emu.plant(BUCKET, &stranger, b"someone's"), 200);
    let (token, bucket_id) = w.emu.bucket(BUCKET);
    let (st, _) = w.emu.call(
        2,
        "b2_hide_file",
        &token,
        serde_json::json!({"bucketId": bucket_id, "fileName": stranger}),
    );
    assert_eq!(st, 200);

    // Once the locks have ended, a prune deletes every version of what was removed.
    w.advance(31);
    let s = ok(
        w.strong(REPO).args(["prune", "--json"]).output().unwrap(),
        "prune",
    );
    assert!(
        s["prune"]["hidden_files_purged"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert!(
        !snapshot_versions()
            .iter()
            .any(|v| v["fileName"].as_str().unwrap().ends_with(&first)),
        "the forgotten snapshot is gone, every version"
    );
    assert_eq!(w.emu.versions(BUCKET, &stranger).len(), 2, "left alone");
    ok(
        w.daily().args(["check", "--read-data"]).output().unwrap(),
        "check after",
    );
    restores_exactly(&w, "latest", &src, &kept_src);
}

#[test]
fn an_attacker_with_the_daily_key_cannot_destroy_a_locked_repository() {
    let w = World::new();
    ok(
        w.strong(REPO)
            .args(["init", "--lock-days", "30"])
            .output()
            .unwrap(),
        "init",
    );
    let src = w.env.path("src");
    write_source(&src, 0);
    ok(
        w.daily()
            .args(["backup", src.to_str().unwrap()])
            .output()
            .unwrap(),
        "backup",
    );
    let first_src = w.env.path("first");
    keep_as_it_is(&src, &first_src);
    write_source(&src, 1);
    ok(
        w.daily()
            .args(["backup", src.to_str().unwrap()])
            .output()
            .unwrap(),
        "backup",
    );

    // A day later, malware holding the daily key attacks.
    let moment = w.advance(1) - DAY_MS / 2;
    w.advance(1);
    let (st, auth) = w.emu.authorize_key("daily", "dailysecret");
    assert_eq!(st, 200);
    let token = auth["authorizationToken"].as_str().unwrap().to_string();
    let (_, bucket_id) = w.emu.bucket(BUCKET);
    let names: Vec<String> = w.locks().into_iter().map(|(n, _)| n).collect();
    let mut attacked = 0;
    for name in &names {
        let dir = name.split('/').nth(1).unwrap_or("");
        if matches!(dir, "snapshots" | "index" | "keys") {
            // Hide every snapshot, index and key file...
            let (st, b) = w.emu.call(
                2,
                "b2_hide_file",
                &token,
                serde_json::json!({"bucketId": bucket_id, "fileName": name}),
            );
            assert_eq!(st, 200, "{b}");
        } else {
            // ...and overwrite every pack and the config with garbage.
            assert_eq!(w.emu.plant_with(&token, &bucket_id, name, b"ransom"), 200);
        }
        attacked += 1;
        // Deleting the locked version is refused, to this key and to every other.
        let v = &w
            .emu
            .versions(BUCKET, name)
            .into_iter()
            .find(|v| v["action"] == "upload" && v["contentLength"] != 6)
            .unwrap();
        let (st, _) = w.emu.call(
            2,
            "b2_delete_file_version",
            &token,
            serde_json::json!({"fileName": name, "fileId": v["fileId"]}),
        );
        assert_eq!(st, 401);
    }
    assert!(attacked >= 6);
    let out = w.daily().args(["snapshots"]).output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "the attack broke the repository"
    );

    // The way back: every file as it was before the attack, with the daily key itself.
    let when = chrono::DateTime::from_timestamp_millis(moment)
        .unwrap()
        .to_rfc3339();
    let dry = ok(
        w.daily()
            .args([
                "repair",
                "versions",
                "--before",
                &when,
                "--dry-run",
                "--json",
            ])
            .output()
            .unwrap(),
        "repair dry run",
    );
    assert_eq!(
        dry["repair_versions"]["restored"].as_array().unwrap().len(),
        attacked,
        "{dry}"
    );
    assert_ne!(
        w.daily()
            .args(["snapshots"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    let s = ok(
        w.daily()
            .args(["repair", "versions", "--before", &when, "--json"])
            .output()
            .unwrap(),
        "repair",
    );
    let r = &s["repair_versions"];
    assert_eq!(r["restored"].as_array().unwrap().len(), attacked, "{s}");
    assert_eq!(r["unrestorable"].as_array().unwrap().len(), 0, "{s}");
    ok(
        w.daily().args(["check", "--read-data"]).output().unwrap(),
        "check",
    );
    restores_exactly(&w, "latest", &src, &src);
    let snaps = ok(
        w.daily().args(["snapshots", "--json"]).output().unwrap(),
        "snapshots",
    );
    let oldest = snaps[0]["id"].as_str().unwrap().to_string();
    restores_exactly(&w, &oldest, &src, &first_src);
    // A second run finds nothing left to do.
    let again = ok(
        w.daily()
            .args(["repair", "versions", "--before", &when, "--json"])
            .output()
            .unwrap(),
        "repair again",
    );
    assert_eq!(
        again["repair_versions"]["restored"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "{again}"
    );
}

/// The pruning key runs forget and prune straight against a copy `ship --lock-days`
/// locked: a locked snapshot or index file is hidden, not refused, and goes for good at
/// the first prune after its lock ends.
#[test]
fn forget_and_prune_work_on_a_copy_ship_locked() {
    let w = World::new();
    w.env.ok(&["init", "--pack-size", "1"]);
    let src = w.env.path("src");
    write_source(&src, 0);
    w.env.backup(&[&src], &[]);
    write_source(&src, 1);
    w.env.backup(&[&src], &[]);
    let kept = w.env.path("kept");
    keep_as_it_is(&src, &kept);
    let copy = "b2:locked-repo-bucket/copy";
    ok(
        w.strong(w.env.repo().to_str().unwrap())
            .args(["ship", copy, "--lock-days", "30"])
            .output()
            .unwrap(),
        "ship",
    );
    let s = ok(
        w.strong(copy)
            .args(["forget", "--keep-last", "1", "--prune", "--json"])
            .output()
            .unwrap(),
        "forget at the copy",
    );
    assert_eq!(s["removed"].as_array().map(Vec::len), Some(1), "{s}");
    let hidden = || {
        w.emu
            .versions(BUCKET, "copy/snapshots/")
            .iter()
            .filter(|v| v["action"] == "hide")
            .count()
    };
    assert_eq!(hidden(), 1);
    let listed = ok(
        w.strong(copy)
            .args(["snapshots", "--json"])
            .output()
            .unwrap(),
        "snapshots",
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    ok(
        w.strong(copy)
            .args(["check", "--read-data"])
            .output()
            .unwrap(),
        "check",
    );

    w.advance(31);
    let s = ok(
        w.strong(copy).args(["prune", "--json"]).output().unwrap(),
        "prune",
    );
    assert!(
        s["prune"]["hidden_files_purged"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert_eq!(hidden(), 0);
    ok(
        w.strong(copy)
            .args(["check", "--read-data"])
            .output()
            .unwrap(),
        "check after",
    );
    let target = w.env.path("restored");
    ok(
        w.strong(copy)
            .args(["restore", "latest", "--target", target.to_str().unwrap()])
            .output()
            .unwrap(),
        "restore",
    );
    assert_same_tree(&kept, &target.join(src.strip_prefix("/").unwrap()));
}
