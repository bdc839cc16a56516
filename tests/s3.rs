//! Repositories on an S3-compatible store (issue 25), against a real S3 server on
//! loopback: moto in server mode, which .ci/run installs (`CAIRN_MOTO_SERVER`).

use std::process::Command;

use crate::util::*;

use cairn_opendal::testing::S3Server;

/// `cairn` with the test server's credentials.
fn cairn(env: &Env) -> Command {
    let mut c = env.cmd();
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE");
    c
}

/// The round trip on S3: init, backup, restore compared byte for byte and metadata for
/// metadata, check --read-data, forget and prune, check again.
#[test]
fn a_repository_on_s3_round_trips() {
    let Some(s3) = S3Server::start() else { return };
    s3.make_bucket("roundtrip");
    let env = Env::new();
    let repo = s3.location("roundtrip/cairn");
    let src = env.path("src");
    crate::roundtrip::build_rich_tree(&src);
    let run = |args: &[&str]| succeeds(cairn(&env).arg("-r").arg(&repo).args(args));
    run(&["init"]);
    run(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("later.txt"), b"second generation").unwrap();
    run(&["backup", src.to_str().unwrap()]);
    restore_latest_matches(cairn(&env), &repo, &src, &env.path("restored"));
    run(&["check", "--read-data"]);
    run(&["forget", "--keep-last", "1", "--prune"]);
    run(&["check", "--read-data"]);
    let snaps: serde_json::Value = serde_json::from_str(&run(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
}

/// The 3-2-1 job with S3 as the offsite copy: ship from the USB repository, then a
/// bare machine restores from the S3 copy alone.
#[test]
fn ship_to_s3_and_restore_from_it() {
    let Some(s3) = S3Server::start() else { return };
    s3.make_bucket("offsite");
    let env = Env::new();
    env.init();
    let src = env.path("src");
    crate::roundtrip::build_rich_tree(&src);
    env.backup(&[&src], &[]);
    let dest = s3.location("offsite/cairn");
    succeeds(cairn(&env).arg("-r").arg(env.repo()).args(["ship", &dest]));
    // Again: nothing new to send.
    let again = succeeds(
        cairn(&env)
            .arg("-r")
            .arg(env.repo())
            .args(["ship", &dest, "--json"]),
    );
    let last: serde_json::Value = serde_json::from_str(again.lines().last().unwrap()).unwrap();
    assert_eq!(last["files_uploaded"], 0, "{last}");
    // What the second, unchanged ship costs: no write, a few reads (proving the
    // destination holds this repository) and a listing or two.
    let t = &last["transactions"];
    assert_eq!(t["class_a"], 0, "{last}");
    assert!(t["class_b"].as_u64().unwrap() <= 5, "{last}");
    assert!(t["class_c"].as_u64().unwrap() <= 3, "{last}");
    restore_latest_matches(cairn(&env), &dest, &src, &env.path("bare-machine"));
}

/// A bucket that does not exist: one line naming it, exit 1, nothing created.
#[test]
fn a_missing_bucket_is_one_line() {
    let Some(s3) = S3Server::start() else { return };
    let env = Env::new();
    let out = cairn(&env)
        .arg("-r")
        .arg(s3.location("nosuchbucket/cairn"))
        .arg("init")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!err.contains("testing"), "{err}");
}

/// `rclone:REMOTE:BUCKET/PREFIX` for a remote of type s3: endpoint and keys from
/// rclone.conf (none in the environment), and rclone itself sees what cairn wrote.
#[test]
fn an_rclone_s3_remote_is_a_repository_location() {
    let Some(s3) = S3Server::start() else { return };
    s3.make_bucket("viarclone");
    let env = Env::new();
    let conf = env.path("rclone.conf");
    std::fs::write(
        &conf,
        format!(
            "[office]\ntype = s3\nprovider = Other\nendpoint = http://127.0.0.1:{}\naccess_key_id = fromrclone\nsecret_access_key = rclonesecret\n",
            s3.port
        ),
    )
    .unwrap();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"through rclone.conf").unwrap();
    let run = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("RCLONE_CONFIG", &conf)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .args(["-r", "rclone:office:viarclone/cairn"])
            .args(args);
        succeeds(&mut c)
    };
    run(&["init"]);
    run(&["backup", src.to_str().unwrap()]);
    let dumped = run(&["dump", "latest", src.join("a").to_str().unwrap()]);
    assert_eq!(dumped, "through rclone.conf");
    // rclone lists the repository cairn wrote (rclone 1.60 refuses AWS_CA_BUNDLE).
    if let Ok(out) = Command::new("rclone")
        .env("RCLONE_CONFIG", &conf)
        .env_remove("AWS_CA_BUNDLE")
        .args(["lsf", "office:viarclone/cairn"])
        .output()
    {
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(listed.lines().any(|l| l == "config"), "{listed}");
        assert!(listed.lines().any(|l| l == "data/"), "{listed}");
    }
}

/// The offsite copy is the last copy: a different repository shipped to an S3 prefix
/// that holds one (a new USB drive, same password) is refused before anything is
/// written or deleted, even with --allow-deletes; the old copy still restores.
#[test]
fn ship_to_s3_refuses_a_prefix_holding_another_repository() {
    let Some(s3) = S3Server::start() else { return };
    s3.make_bucket("lastcopy");
    let dest = s3.location("lastcopy/cairn");
    let (old, new) = (Env::new(), Env::new());
    let mut srcs = Vec::new();
    for (env, name) in [(&old, "old"), (&new, "new")] {
        env.init();
        let src = env.path("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("f"), name.repeat(10_000)).unwrap();
        env.backup(&[&src], &[]);
        srcs.push(src);
    }
    succeeds(cairn(&old).arg("-r").arg(old.repo()).args(["ship", &dest]));
    let listing = |env: &Env| {
        let out = succeeds(
            cairn(env)
                .arg("-r")
                .arg(&dest)
                .args(["snapshots", "--json"]),
        );
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let before = listing(&old);
    assert_ship_refused_as_another_repository(&|extra| {
        cairn(&new)
            .arg("-r")
            .arg(new.repo())
            .args(["ship", &dest])
            .args(extra)
            .output()
            .unwrap()
    });
    assert_eq!(
        listing(&old),
        before,
        "the old copy's snapshots are untouched"
    );
    restore_latest_matches(cairn(&old), &dest, &srcs[0], &old.path("restored"));
    succeeds(
        cairn(&old)
            .arg("-r")
            .arg(&dest)
            .args(["check", "--read-data"]),
    );
}

/// A store whose certificate comes from the user's own CA (a company's, a self-hosted
/// MinIO's): refused without AWS_CA_BUNDLE, trusted with it, as the AWS CLI does; a
/// bundle that cannot be read is one line naming it.
#[test]
fn aws_ca_bundle_is_honoured() {
    let env = Env::new();
    let Some(s3) = S3Server::start_tls(&env.path("tls")) else {
        return;
    };
    s3.make_bucket("tls");
    let repo = s3.location("tls/cairn");
    let with = |bundle: Option<&std::path::Path>| {
        let mut c = cairn(&env);
        c.env_remove("AWS_CA_BUNDLE").arg("-r").arg(&repo);
        if let Some(b) = bundle {
            c.env("AWS_CA_BUNDLE", b);
        }
        c
    };
    let out = with(None).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = with(Some(&env.path("nowhere.pem")))
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("AWS_CA_BUNDLE=") && err.contains("nowhere.pem"),
        "{err}"
    );

    let ca = s3.ca.clone().unwrap();
    succeeds(with(Some(&ca)).arg("init"));
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), pseudo_random(3, 200_000)).unwrap();
    succeeds(with(Some(&ca)).args(["backup", src.to_str().unwrap()]));
    let target = env.path("restored");
    succeeds(with(Some(&ca)).args(["restore", "latest", "--target", target.to_str().unwrap()]));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

/// The store dies mid-backup (every connection cut, the port closed) and comes back
/// three seconds later with its data: the backup rides it out on its retries, or fails
/// in one line and the next run finishes; either way check --read-data passes and the
/// restore is byte for byte.
#[test]
fn the_store_restarting_mid_backup_loses_nothing() {
    let Some(s3) = S3Server::start() else { return };
    s3.make_bucket("restart");
    let relay = cairn_opendal::testing::Relay::start(s3.port);
    let env = Env::new();
    let repo = format!("s3:http://127.0.0.1:{}/restart/cairn", relay.port);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6u64 {
        std::fs::write(src.join(format!("f{i}")), pseudo_random(i + 40, 50_000_000)).unwrap();
    }
    succeeds(cairn(&env).arg("-r").arg(&repo).arg("init"));
    backup_through_outage(&env, &|| cairn(&env), &repo, &src, || {
        relay.kill();
        std::thread::sleep(std::time::Duration::from_secs(3));
        relay.restart();
    });
}

/// The metadata cache serves S3 as it serves B2: a second `snapshots` and `ls` on an
/// unchanged repository download nothing (listings only).
#[test]
fn the_metadata_cache_spares_s3_downloads() {
    let Some(s3) = S3Server::start() else { return };
    s3.make_bucket("cached");
    let relay = cairn_opendal::testing::Relay::start(s3.port);
    let env = Env::new();
    let repo = format!("s3:http://127.0.0.1:{}/cached/cairn", relay.port);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"cached").unwrap();
    let cache = env.path("cache");
    let run = |args: &[&str]| {
        succeeds(
            cairn(&env)
                .arg("-r")
                .arg(&repo)
                .arg("--cache-dir")
                .arg(&cache)
                .args(args),
        )
    };
    run(&["init"]);
    run(&["backup", src.to_str().unwrap()]);
    run(&["snapshots"]);
    let first = run(&["ls", "latest"]);
    relay.take_requests();
    assert_eq!(run(&["ls", "latest"]), first);
    run(&["snapshots"]);
    let reads: Vec<String> = relay
        .take_requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && !r.contains("list-type"))
        .collect();
    assert!(
        reads.is_empty(),
        "downloads on an unchanged repository: {reads:?}"
    );
    // Without the cache the same commands download.
    succeeds(
        cairn(&env)
            .arg("-r")
            .arg(&repo)
            .args(["--no-cache", "ls", "latest"]),
    );
    assert!(relay
        .take_requests()
        .iter()
        .any(|r| r.starts_with("GET ") && !r.contains("list-type")));
}

/// With the server checking signatures and policies: a wrong secret, an unknown key
/// and no key at all are each one line, exit 1, naming no secret.
#[test]
fn bad_credentials_are_one_line() {
    let Some(s3) = S3Server::start() else { return };
    s3.make_bucket("guarded");
    let env = Env::new();
    let repo = s3.location("guarded/cairn");
    succeeds(cairn(&env).arg("-r").arg(&repo).arg("init"));
    let ((wid, wsecret), (_, rsecret)) = s3.guard();
    let refused = |id: &str, secret: &str| {
        let out = env
            .cmd()
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env_remove("AWS_PROFILE")
            .arg("-r")
            .arg(&repo)
            .arg("snapshots")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("access denied"), "{err}");
        for s in [&wsecret, &rsecret] {
            assert!(!err.contains(s.as_str()), "{err}");
        }
    };
    refused(&wid, "not-the-secret");
    refused("AKIANOSUCHKEY0000000", "whatever");
    // No credentials anywhere (and no instance metadata service): said, and how to
    // give them, at once rather than after a minute of retries.
    let out = env
        .cmd()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("HOME", env.path("home"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["-r", &repo, "snapshots"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
}

/// `ship --lock-days` to a bucket with S3 Object Lock: every shipped file's version is
/// locked (GOVERNANCE) until then, and a delete of that version without the bypass
/// permission is refused by the store; a second ship keeps the locks (extends them);
/// a bucket without Object Lock is refused in one line before anything is written.
#[test]
fn ship_lock_days_locks_every_version_on_s3() {
    let Some(s3) = S3Server::start() else { return };
    let boto = |script: &str| s3.boto(script);
    boto("s3.create_bucket(Bucket='locked', ObjectLockEnabledForBucket=True)");
    s3.make_bucket("plain");
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), pseudo_random(9, 300_000)).unwrap();
    env.backup(&[&src], &[]);
    let ship = |dest: &str| {
        cairn(&env)
            .arg("-r")
            .arg(env.repo())
            .args(["--json", "ship", dest, "--lock-days", "2"])
            .output()
            .unwrap()
    };

    // No Object Lock on the bucket: refused, nothing written.
    let out = ship(&s3.location("plain/cairn"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("Object Lock"), "{err}");
    let listed = boto("print(s3.list_objects_v2(Bucket='plain').get('KeyCount', 0))");
    assert_eq!(listed.trim(), "0");

    let out = ship(&s3.location("locked/cairn"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(s["locked_until"].as_i64().is_some(), "{s}");
    // Every version is locked for about two days, and the store refuses its deletion.
    // (moto answers GetObjectRetention with a 500; HEAD of the version carries the
    // same two fields.)
    let report = boto(
        "now = datetime.datetime.now(datetime.timezone.utc)\n\
         for v in s3.list_object_versions(Bucket='locked')['Versions']:\n    \
         h = s3.head_object(Bucket='locked', Key=v['Key'], VersionId=v['VersionId'])\n    \
         r = {'Mode': h.get('ObjectLockMode'), 'RetainUntilDate': h.get('ObjectLockRetainUntilDate', now)}\n    \
         days = (r['RetainUntilDate'] - now).total_seconds() / 86400\n    \
         try:\n        s3.delete_object(Bucket='locked', Key=v['Key'], VersionId=v['VersionId']); deleted = True\n    \
         except Exception:\n        deleted = False\n    \
         print(json.dumps([v['Key'], r['Mode'], round(days, 2), deleted]))",
    );
    let rows: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() > 3, "{report}");
    for r in &rows {
        let key = r[0].as_str().unwrap();
        if key.starts_with("cairn/locks/") {
            continue;
        }
        assert_eq!(r[1], "GOVERNANCE", "{r}");
        let days = r[2].as_f64().unwrap();
        assert!((1.9..=2.01).contains(&days), "{r}");
        assert_eq!(r[3], false, "a locked version was deleted: {r}");
    }
    // Again: nothing to upload, the locks stay (extended, never shortened), and the
    // copy restores.
    let out = ship(&s3.location("locked/cairn"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(s["files_uploaded"], 0, "{s}");
    restore_latest_matches(
        cairn(&env),
        s3.location("locked/cairn"),
        &src,
        &env.path("restored"),
    );
}
