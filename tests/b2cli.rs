//! The official b2 CLI and rclone drive the emulator's bucket, key, retention and
//! download-authorization calls, and cairn works with a key the CLI made.

use std::fs;
use std::process::Output;

use crate::util::*;

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// GET of a URL the emulator handed out: status and body.
fn get(emu: &Emulator, url: &str) -> (u16, Vec<u8>) {
    let path = url.trim().strip_prefix(&emu.url).unwrap_or(url.trim());
    let (st, _, b) = emu.http("GET", path, &[], b"");
    (st, b)
}

#[test]
fn the_b2_cli_and_rclone_drive_keys_buckets_retention_and_links() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let Some(_) = b2_cli(&env, &emu) else { return };
    let b2 = |args: &[&str]| {
        ok(
            b2_cli(&env, &emu).unwrap().args(args).output().unwrap(),
            &format!("b2 {args:?}"),
        )
    };
    b2(&["account", "authorize", "testkeyid", "testkey"]);
    b2(&[
        "bucket",
        "create",
        "--file-lock-enabled",
        "cli-vault",
        "allPrivate",
    ]);
    let rule = r#"{"fileNamePrefix": "", "daysFromHidingToDeleting": 30, "daysFromUploadingToHiding": null}"#;
    let updated = b2(&[
        "bucket",
        "update",
        "--lifecycle-rule",
        rule,
        "cli-vault",
        "allPrivate",
    ]);
    let updated: serde_json::Value = serde_json::from_str(&updated).unwrap();
    assert_eq!(updated["revision"], 2, "{updated}");
    assert_eq!(updated["lifecycleRules"][0]["daysFromHidingToDeleting"], 30);

    // A daily key made with the CLI: cairn backs up with it, and refuses to forget.
    let made = b2(&[
        "key",
        "create",
        "--bucket",
        "cli-vault",
        "laptop-daily",
        "listBuckets,listFiles,readFiles,writeFiles",
    ]);
    let (key_id, key) = made.trim().split_once(' ').unwrap();
    assert!(b2(&["key", "list"]).contains("laptop-daily"));
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), pseudo_random(3, 100_000)).unwrap();
    let cairn = |args: &[&str]| {
        let mut c = emu.cairn_at(&env, "b2:cli-vault/repo");
        c.env("B2_APPLICATION_KEY_ID", key_id)
            .env("B2_APPLICATION_KEY", key)
            .args(args)
            .output()
            .unwrap()
    };
    ok(
        emu.cairn_at(&env, "b2:cli-vault/repo")
            .arg("init")
            .output()
            .unwrap(),
        "init",
    );
    ok(
        cairn(&["backup", src.to_str().unwrap()]),
        "backup with the CLI's key",
    );
    let out = cairn(&["forget", "--keep-last", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("deleteFiles"), "{}", stderr(&out));

    // Retention set and read back through the CLI.
    let file = env.path("hello.txt");
    fs::write(&file, b"hello").unwrap();
    b2(&[
        "file",
        "upload",
        "--no-progress",
        "cli-vault",
        file.to_str().unwrap(),
        "hello.txt",
    ]);
    let until = (chrono::Utc::now().timestamp() + 86_400) * 1000;
    b2(&[
        "file",
        "update",
        "--file-retention-mode",
        "governance",
        "--retain-until",
        &until.to_string(),
        "b2://cli-vault/hello.txt",
    ]);
    let info: serde_json::Value =
        serde_json::from_str(&b2(&["file", "info", "b2://cli-vault/hello.txt"])).unwrap();
    assert_eq!(info["fileRetention"]["mode"], "governance", "{info}");
    assert_eq!(info["fileRetention"]["retainUntilTimestamp"], until);

    // A legal hold keeps a file from being deleted until it is lifted.
    b2(&[
        "file",
        "upload",
        "--no-progress",
        "cli-vault",
        file.to_str().unwrap(),
        "held.txt",
    ]);
    b2(&[
        "file",
        "update",
        "--legal-hold",
        "on",
        "b2://cli-vault/held.txt",
    ]);
    let held: serde_json::Value =
        serde_json::from_str(&b2(&["file", "info", "b2://cli-vault/held.txt"])).unwrap();
    assert_eq!(held["legalHold"], "on", "{held}");
    let token = emu.authorize(2)["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let delete = || {
        emu.call(
            2,
            "b2_delete_file_version",
            &token,
            serde_json::json!({"fileName": "held.txt", "fileId": held["fileId"]}),
        )
        .0
    };
    assert_eq!(delete(), 401, "held: not even the full key deletes it");
    b2(&[
        "file",
        "update",
        "--legal-hold",
        "off",
        "b2://cli-vault/held.txt",
    ]);
    assert_eq!(delete(), 200);

    // A link with its own download authorization, from the CLI and from rclone.
    let url = b2(&["file", "url", "--with-auth", "b2://cli-vault/hello.txt"]);
    assert_eq!(get(&emu, &url), (200, b"hello".to_vec()), "{url}");
    let bare = url.trim().split('?').next().unwrap().to_string();
    assert_eq!(
        get(&emu, &bare).0,
        401,
        "a private bucket needs the authorization"
    );
    if let Some(mut rc) = rclone(&emu) {
        let link = ok(
            rc.args(["link", "t:cli-vault/hello.txt"]).output().unwrap(),
            "rclone link",
        );
        assert_eq!(get(&emu, &link), (200, b"hello".to_vec()), "{link}");
    }
    b2(&["bucket", "update", "cli-vault", "allPublic"]);
    assert_eq!(
        get(&emu, &bare),
        (200, b"hello".to_vec()),
        "public buckets serve anyone"
    );

    b2(&["key", "delete", key_id]);
    let out = cairn(&["snapshots"]);
    assert_eq!(out.status.code(), Some(1), "a deleted key no longer works");
}
