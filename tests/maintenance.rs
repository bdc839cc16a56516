//! Living with a repository: check, forget, prune, key, tag, unlock.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Two snapshots with changes between them, 1 MiB packs so prune has work to do.
/// Returns the source and a copy of it as of the second (kept) snapshot.
fn two_generations(env: &Env) -> (PathBuf, PathBuf) {
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..6u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 10, 900_000)).unwrap();
    }
    fs::write(src.join("sub/text"), "same text\n".repeat(10_000)).unwrap();
    env.backup(&[&src], &[]);
    for i in 0..3u64 {
        fs::remove_file(src.join(format!("f{i}"))).unwrap();
    }
    fs::write(src.join("f3"), pseudo_random(99, 500_000)).unwrap();
    fs::write(src.join("new"), pseudo_random(98, 700_000)).unwrap();
    env.backup(&[&src], &[]);
    (src.clone(), src)
}

fn repo_bytes(env: &Env) -> u64 {
    env.repo_listing().values().sum()
}

fn check_ok(env: &Env) {
    let out = env.run(&["check", "--read-data", "--json"]);
    assert_eq!(out.status.code(), Some(0), "check failed: {}", stderr(&out));
    let s = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(s["errors"], 0);
}

fn restore_latest_matches(env: &Env, src: &Path, name: &str) {
    let t = env.path(name);
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(src, &t.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn forget_prune_end_to_end() {
    let env = Env::new();
    let (src, _) = two_generations(&env);
    check_ok(&env);
    let before = repo_bytes(&env);
    let out = env.ok(&["forget", "--keep-last", "1", "--prune", "--json"]);
    let v = json_last_line(&out);
    assert_eq!(v["removed"].as_array().unwrap().len(), 1);
    assert_eq!(v["groups"][0]["keep"][0]["reasons"][0], "last snapshot");
    let after = repo_bytes(&env);
    assert!(
        after + 2_000_000 < before,
        "prune freed too little: {before} -> {after}"
    );
    check_ok(&env);
    restore_latest_matches(&env, &src, "t1");
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
}

#[test]
fn forget_requires_a_policy_and_dry_run_changes_nothing() {
    let env = Env::new();
    two_generations(&env);
    let out = env.run(&["forget"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no policy"));
    let before = env.repo_listing();
    let out = env.ok(&["forget", "--keep-last", "1", "--prune", "--dry-run"]);
    assert!(out.contains("would remove 1 snapshot"), "{out}");
    assert!(out.contains("would delete"), "{out}");
    assert_eq!(env.repo_listing(), before);
    let out = env.ok(&["prune", "--dry-run"]);
    assert!(out.contains("would delete 0 unused packs"), "{out}");
}

#[test]
fn prune_interrupted_at_each_step_leaves_a_checkable_repository() {
    for point in [
        "after-room",
        "after-repack",
        "after-index",
        "during-index-delete",
        "during-pack-delete",
    ] {
        let env = Env::new();
        let (src, _) = two_generations(&env);
        env.ok(&["forget", "--keep-last", "1"]);
        let out = env
            .cmd()
            .env("CAIRN_TEST_CRASH_AT", point)
            .arg("-r")
            .arg(env.repo())
            .args(["prune", "--max-unused", "0%"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            None,
            "{point}: prune should have been killed: {}",
            stderr(&out)
        );
        check_ok(&env);
        restore_latest_matches(&env, &src, "t1");
        // The next prune finishes the job.
        env.ok(&["prune", "--max-unused", "0%"]);
        check_ok(&env);
        restore_latest_matches(&env, &src, "t2");
    }
}

#[test]
fn check_reports_damage_with_snapshots_and_files() {
    let env = Env::new();
    let (src, _) = two_generations(&env);
    // Damage every blob of the pack holding f4 (present in both snapshots): a byte
    // flipped every 64 KiB of the blob area.
    let listing = env.repo_listing();
    let packs: Vec<&PathBuf> = listing
        .keys()
        .filter(|p| p.to_string_lossy().contains("/data/"))
        .collect();
    let mut damaged = false;
    let flip = |b: &mut Vec<u8>| {
        let hlen = u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap()) as usize;
        let blob_area = b.len() - 4 - hlen;
        for i in (50..blob_area).step_by(65536) {
            b[i] ^= 1;
        }
    };
    for p in &packs {
        let mut b = fs::read(p).unwrap();
        flip(&mut b);
        fs::write(p, &b).unwrap();
        let out = env.run(&["check", "--read-data"]);
        let err = stderr(&out);
        if err.contains("/src/f4") {
            assert_eq!(out.status.code(), Some(1));
            assert!(err.contains("hash mismatch"), "{err}");
            assert_eq!(
                err.matches("/src/f4").count(),
                2,
                "both snapshots name the file: {err}"
            );
            damaged = true;
            break;
        }
        flip(&mut b);
        fs::write(p, &b).unwrap();
    }
    assert!(damaged, "no pack held f4");
    // Structure-only check does not read data, so it still passes.
    assert_eq!(env.run(&["check"]).status.code(), Some(0));

    // A missing pack is a structural error.
    let victim = packs
        .iter()
        .find(|p| fs::read(p).unwrap().len() > 500_000)
        .unwrap();
    fs::remove_file(victim).unwrap();
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    let _ = src;
}

#[test]
fn check_subsets_and_truncated_index() {
    let env = Env::new();
    two_generations(&env);
    let mut total = 0;
    for n in 1..=3 {
        let out = env.ok(&["check", "--read-data-subset", &format!("{n}/3"), "--json"]);
        total += json_last_line(&out)["packs_checked"].as_u64().unwrap();
    }
    let all = json_last_line(&env.ok(&["check", "--read-data", "--json"]))["packs_checked"]
        .as_u64()
        .unwrap();
    assert_eq!(total, all, "1/3 + 2/3 + 3/3 cover every pack once");
    let half = json_last_line(&env.ok(&["check", "--read-data-subset", "50%", "--json"]))
        ["packs_checked"]
        .as_u64()
        .unwrap();
    assert_eq!(half, all.div_ceil(2));
    assert_eq!(
        env.run(&["check", "--read-data-subset", "4/3"])
            .status
            .code(),
        Some(1)
    );

    let index = env
        .repo_listing()
        .into_keys()
        .find(|p| p.to_string_lossy().contains("/index/"))
        .unwrap();
    let b = fs::read(&index).unwrap();
    fs::write(&index, &b[..b.len() / 2]).unwrap();
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("index"), "{}", stderr(&out));
}

#[test]
fn keys_add_remove_passwd() {
    let env = Env::new();
    env.init();
    let pw2 = env.path("pw2");
    fs::write(&pw2, "second password\n").unwrap();
    env.ok(&["key", "add", "--new-password-file", pw2.to_str().unwrap()]);
    let keys: serde_json::Value =
        serde_json::from_str(&env.ok(&["key", "list", "--json"])).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let current = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The key in use cannot be removed; the other can, with the second password it works.
    let out = env.run(&["key", "remove", &current[..8]]);
    assert_eq!(out.status.code(), Some(1));
    let with_pw2 = |args: &[&str]| {
        env.cmd()
            .env("CAIRN_PASSWORD", "second password")
            .arg("-r")
            .arg(env.repo())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(with_pw2(&["snapshots"]).status.success());
    assert!(with_pw2(&["key", "remove", &current[..8]]).status.success());
    assert_eq!(
        env.run(&["snapshots"]).status.code(),
        Some(12),
        "first password is gone"
    );
    // The last key cannot be removed; passwd replaces it.
    assert_eq!(
        with_pw2(&["key", "remove", &other[..8]]).status.code(),
        Some(1)
    );
    let pw3 = env.path("pw3");
    fs::write(&pw3, "third\n").unwrap();
    assert!(with_pw2(&[
        "key",
        "passwd",
        "--new-password-file",
        pw3.to_str().unwrap()
    ])
    .status
    .success());
    assert_eq!(with_pw2(&["snapshots"]).status.code(), Some(12));
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "third")
        .arg("-r")
        .arg(env.repo())
        .args(["key", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
}

#[test]
fn tags_and_unlock() {
    let env = Env::new();
    env.init();
    env.backup(&[Path::new("/etc/hostname")], &["--tag", "a"]);
    env.ok(&["tag", "latest", "--add", "b,c", "--remove", "a"]);
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "the old snapshot file is replaced"
    );
    assert_eq!(snaps[0]["tags"], serde_json::json!(["b", "c"]));
    env.ok(&["tag", "latest", "--set", "only"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", "only"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(env.run(&["tag", "latest"]).status.code(), Some(1));

    // A lock left by a killed process on this host is stale: unlock removes it.
    let out = env
        .cmd()
        .env("CAIRN_TEST_CRASH_AT", "after-index")
        .arg("-r")
        .arg(env.repo())
        .args(["prune", "--max-unused", "0%"])
        .output()
        .unwrap();
    let _ = out;
    let locks = env.repo().join("locks");
    let n = fs::read_dir(&locks).map(|r| r.count()).unwrap_or(0);
    assert_eq!(n, 1, "the aborted prune left its lock behind");
    let out = env.ok(&["unlock", "--json"]);
    assert_eq!(
        json_last_line(&out)["locks_removed"].as_u64().unwrap() as usize,
        n
    );
    assert_eq!(fs::read_dir(&locks).map(|r| r.count()).unwrap_or(0), 0);
}

#[test]
fn repair_recovers_from_flipped_byte_deleted_pack_and_truncated_index() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for i in 0..8u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 500, 700_000)).unwrap();
    }
    fs::write(src.join("small"), b"small file").unwrap();
    env.backup(&[&src], &[]);
    let data_packs = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = env
            .repo_listing()
            .into_iter()
            .filter(|(p, s)| p.to_string_lossy().contains("/data/") && *s > 600_000)
            .map(|(p, _)| p)
            .collect();
        v.sort();
        v
    };
    let packs = data_packs();
    assert!(packs.len() >= 3);
    // Damage: one flipped byte in a blob, one pack gone, one index file cut short.
    let mut b = fs::read(&packs[0]).unwrap();
    b[100] ^= 0x01;
    fs::write(&packs[0], b).unwrap();
    fs::remove_file(&packs[1]).unwrap();
    let index = env
        .repo_listing()
        .into_keys()
        .find(|p| p.to_string_lossy().contains("/index/"))
        .unwrap();
    let ib = fs::read(&index).unwrap();
    fs::write(&index, &ib[..ib.len() - 10]).unwrap();

    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));

    let out = env.ok(&["repair", "index", "--json"]);
    let r = json_last_line(&out);
    assert!(
        r["repair_index"]["packs_damaged"].as_u64().unwrap() >= 1,
        "{r}"
    );
    // Lost: the file with the flipped byte, and the files of the deleted pack (a 1 MiB
    // pack holds one or two of these 700 KB files, and maybe the small one).
    let count = |env: &Env| {
        serde_json::from_str::<serde_json::Value>(&env.ok(&["snapshots", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let before = count(&env);
    let out = env.ok(&["repair", "snapshots", "--json"]);
    let r = json_last_line(&out);
    let lost: Vec<String> = r["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!((2..=5).contains(&lost.len()), "{lost:?}");
    // The damaged originals stay beside their repaired copies (issue 18.4, as restic
    // does), so check still names them; --forget removes them.
    let rewritten = r["rewritten"].as_array().unwrap().len();
    assert!(rewritten >= 1, "{r}");
    assert_eq!(count(&env), before + rewritten);
    assert_eq!(env.run(&["check"]).status.code(), Some(1));
    let out = env.ok(&["repair", "snapshots", "--forget", "--json"]);
    assert_eq!(
        json_last_line(&out)["lost"].as_array().unwrap().len(),
        lost.len()
    );
    check_ok(&env);

    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert!(snaps[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "repaired"));
    let t = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    let restored = t.join(src.strip_prefix("/").unwrap());
    let mut kept = 0;
    for i in 0..8u64 {
        let name = format!("f{i}");
        let p = restored.join(&name);
        if lost.iter().any(|l| l.ends_with(&format!("/{name}"))) {
            assert!(!p.exists());
        } else {
            assert_eq!(
                fs::read(&p).unwrap(),
                pseudo_random(i + 500, 700_000),
                "{name}"
            );
            kept += 1;
        }
    }
    if lost.iter().any(|l| l.ends_with("/small")) {
        assert!(!restored.join("small").exists());
    } else {
        assert_eq!(fs::read(restored.join("small")).unwrap(), b"small file");
        kept += 1;
    }
    assert_eq!(
        kept,
        9 - lost.len(),
        "every file not reported lost is restored exactly"
    );
}

#[test]
fn copy_between_repositories_with_and_without_rechunking() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big"), pseudo_random(77, 5_000_000)).unwrap();
    fs::write(src.join("small"), b"small").unwrap();
    env.init();
    env.backup(&[&src], &["--tag", "orig"]);
    let from = env.repo().display().to_string();
    let pwfile = env.path("pw");
    fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    for (name, init_extra) in [
        ("same", vec![]),
        ("other", vec!["--chunker-sizes", "256,512,2048"]),
    ] {
        let dst = env.path(name);
        let run = |args: &[&str]| {
            let out = env
                .cmd()
                .env("CAIRN_PASSWORD", "dst password")
                .arg("-r")
                .arg(&dst)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let mut init = vec!["init"];
        init.extend(init_extra.iter().copied());
        run(&init);
        let v = json_last_line(&run(&[
            "copy",
            "--from-repo",
            &from,
            "--from-password-file",
            pwfile.to_str().unwrap(),
            "--json",
        ]));
        assert_eq!(v["copied"].as_array().unwrap().len(), 1, "{name}");
        assert_eq!(v["rechunked"], name == "other");
        let again = json_last_line(&run(&[
            "copy",
            "--from-repo",
            &from,
            "--from-password-file",
            pwfile.to_str().unwrap(),
            "--json",
        ]));
        assert_eq!(again["skipped"], 1);
        assert_eq!(again["data_added"], 0);
        let t = env.path(&format!("t-{name}"));
        run(&[
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
            "--verify",
        ]);
        assert_same_tree(&src, &t.join(src.strip_prefix("/").unwrap()));
        let snaps: serde_json::Value =
            serde_json::from_str(&run(&["snapshots", "--json"])).unwrap();
        assert_eq!(snaps[0]["tags"][0], "orig");
        run(&["check", "--read-data"]);
    }
}

/// `--profile NAME` reads NAME.toml from CAIRN_CONFIG_DIR: the daily job is three short
/// commands; flags override the profile; a bad profile names the file, line and key.
#[test]
fn profiles_run_the_daily_job_and_flags_win() {
    let env = Env::new();
    let conf = env.path("conf");
    fs::create_dir_all(&conf).unwrap();
    let src = env.path("home");
    fs::create_dir_all(src.join("cache")).unwrap();
    fs::write(src.join("notes.txt"), b"keep me").unwrap();
    fs::write(src.join("cache/junk"), b"skip me").unwrap();
    fs::write(env.path("pw"), PASSWORD).unwrap();
    let offsite = env.path("offsite");
    fs::write(
        conf.join("home.toml"),
        format!(
            "repository = {:?}\npassword_file = {:?}\n\n[backup]\npaths = [{:?}]\nexclude = [\"cache\"]\ntags = [\"daily\"]\n\n[forget]\nkeep_last = 2\nprune = true\n\n[ship]\ndestination = {:?}\n",
            env.repo(), env.path("pw"), src, offsite
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut c = env.cmd();
        c.env_remove("CAIRN_PASSWORD")
            .env("CAIRN_CONFIG_DIR", &conf)
            .args(["--profile", "home"])
            .args(args);
        c.output().unwrap()
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    env.init();
    fs::create_dir_all(&offsite).unwrap();
    for _ in 0..3 {
        ok(&["backup"]);
        ok(&["forget"]);
        ok(&["ship"]);
    }
    let snaps: serde_json::Value = serde_json::from_str(&ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        2,
        "forget kept the profile's 2"
    );
    assert_eq!(snaps[0]["tags"][0], "daily");
    let ls = ok(&["ls", "latest"]);
    assert!(
        ls.contains("notes.txt") && !ls.contains("junk"),
        "the profile's exclude applied: {ls}"
    );
    assert!(
        offsite.join("config").exists(),
        "shipped to the profile's destination"
    );
    // Flags win: another tag, no exclude given means the profile's stays; keep-last 1.
    ok(&["backup", "--tag", "manual"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(&["snapshots", "--json", "latest"])).unwrap();
    assert_eq!(snaps[0]["tags"], serde_json::json!(["manual"]));
    ok(&["forget", "--keep-last", "1"]);
    let snaps: serde_json::Value = serde_json::from_str(&ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    // A typo names the file, the line and the key.
    fs::write(
        conf.join("bad.toml"),
        "repository = \"/x\"\n\n[backup]\nexclued = [\"a\"]\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .env("CAIRN_CONFIG_DIR", &conf)
        .args(["--profile", "bad", "backup"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("line 4") && err.contains("exclued"),
        "{err}"
    );
    fs::write(
        conf.join("typed.toml"),
        "[forget]\nkeep_daily = \"seven\"\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .env("CAIRN_CONFIG_DIR", &conf)
        .args(["--profile", "typed", "forget"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("typed.toml") && err.contains("line 2") && err.contains("keep_daily"),
        "{err}"
    );
    let out = env
        .cmd()
        .env("CAIRN_CONFIG_DIR", &conf)
        .args(["--profile", "missing", "snapshots"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

/// Issue 18.6: the example unit's daily job. Its ExecStart is run as systemd would (one
/// command, `%h` for the home directory) with an unreadable file in the source: the
/// backup saves its snapshot and exits 3, forget and ship still run, and the job's exit
/// code is one the unit's SuccessExitStatus accepts.
#[test]
fn the_example_daily_unit_ships_even_when_a_file_is_unreadable() {
    use std::os::unix::fs::PermissionsExt;
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/cairn-daily.service"
    ))
    .unwrap();
    let exec: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(
        exec.len(),
        1,
        "one command, so a step's exit 3 cannot stop the rest: {exec:?}"
    );
    let success: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("SuccessExitStatus="))
        .flat_map(|l| l.split_whitespace())
        .collect();
    assert!(success.contains(&"3"), "{success:?}");
    let env = Env::new();
    let home = env.path("home");
    let bin = home.join(".cargo/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_cairn"), bin.join("cairn")).unwrap();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("notes.txt"), b"keep me").unwrap();
    fs::write(src.join("secret"), b"no access").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let conf = env.path("conf");
    fs::create_dir_all(&conf).unwrap();
    fs::write(env.path("pw"), PASSWORD).unwrap();
    let offsite = env.path("offsite");
    fs::create_dir_all(&offsite).unwrap();
    fs::write(
        conf.join("home.toml"),
        format!(
            "repository = {:?}\npassword_file = {:?}\n\n[backup]\npaths = [{:?}]\n\n[forget]\nkeep_last = 1\nprune = true\n\n[ship]\ndestination = {:?}\n",
            env.repo(), env.path("pw"), src, offsite
        ),
    )
    .unwrap();
    // As root nothing is unreadable: run the job as an unprivileged user.
    let root = is_root();
    if root {
        for p in [env.dir.path(), &src, &home, &bin, &conf, &offsite] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
        }
        fs::set_permissions(env.path("pw"), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let run = |args: &[String]| {
        let mut c = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .args(args);
            c
        } else {
            let mut c = std::process::Command::new(&args[0]);
            c.args(&args[1..]);
            c
        };
        for (k, _) in std::env::vars() {
            if k.starts_with("CAIRN_") || k.starts_with("B2_") {
                c.env_remove(k);
            }
        }
        c.env("HOME", &home)
            .env("CAIRN_CONFIG_DIR", &conf)
            .env("CAIRN_INSECURE_TEST_KDF", "1")
            .current_dir(env.dir.path());
        c.output().unwrap()
    };
    let cmdline: Vec<String> = exec[0]
        .split_whitespace()
        .map(|w| w.replace("%h", home.to_str().unwrap()))
        .collect();
    let init: Vec<String> = vec![
        cmdline[0].clone(),
        "--profile".into(),
        "home".into(),
        "init".into(),
    ];
    let out = run(&init);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for day in 0..2 {
        fs::write(src.join("notes.txt"), format!("day {day}")).unwrap();
        let out = run(&cmdline);
        assert_eq!(out.status.code(), Some(3), "day {day}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("secret"),
            "the unreadable file is named: {}",
            stderr(&out)
        );
    }
    // Both days were forgotten down to one snapshot and shipped.
    let out = env
        .cmd()
        .arg("-r")
        .arg(&offsite)
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    let out = env
        .cmd()
        .arg("-r")
        .arg(&offsite)
        .args(["dump", "latest"])
        .arg(src.join("notes.txt"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "day 1",
        "{}",
        stderr(&out)
    );
}

/// A tmpfs of a given size mounted for one test (unmounted when dropped); `None` where
/// this process may not mount.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, bytes: u64) -> Option<SmallDisk> {
        fs::create_dir_all(at).unwrap();
        let ok = is_root()
            && std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                .arg(at)
                .status()
                .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn du_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            du_bytes(&e.path()) + 4096
        } else {
            m.len().div_ceil(4096) * 4096
        };
    }
    total
}

/// Issue 18.6: a full USB drive. Prune used to repack before it deleted anything and
/// failed with ENOSPC; now it deletes whole unused packs first (behind an index that no
/// longer lists them), so the repack has room. Where even that is not enough, the error
/// says what to do and the repository stays consistent.
#[test]
fn prune_on_a_full_drive_deletes_before_it_repacks() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let (z, a) = (env.path("z"), env.path("a"));
    fs::create_dir_all(&z).unwrap();
    fs::create_dir_all(&a).unwrap();
    for i in 0..100u64 {
        fs::write(z.join(format!("z{i}")), pseudo_random(i + 10_000, 30_000)).unwrap();
        fs::write(a.join(format!("a{i}")), pseudo_random(i + 20_000, 30_000)).unwrap();
    }
    let snap_z = env.backup(&[&z], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let snap_a1 = env.backup(&[&a], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in (0..100).step_by(2) {
        fs::remove_file(a.join(format!("a{i}"))).unwrap();
    }
    env.backup(&[&a], &[]);
    let kept = env.path("kept");
    copy_tree(&env.repo(), &kept);

    // The order, read off the kernel: every unused pack is gone before the first new
    // pack is written.
    let trace = env.path("prune.trace");
    let out = strace_cairn(
        &env,
        &[
            "-f",
            "-qq",
            "-e",
            "trace=unlink,unlinkat,rename,renameat,renameat2",
            "-o",
            trace.to_str().unwrap(),
        ],
    )
    .arg("-r")
    .arg(env.repo())
    .args(["forget", &snap_z, &snap_a1, "--prune", "--max-unused", "0%"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = fs::read_to_string(&trace).unwrap();
    let data = format!("{}/data/", fs::canonicalize(env.repo()).unwrap().display());
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&data) && !l.contains("= -1"))
        .map(|l| {
            if l.contains("unlink") {
                "delete"
            } else {
                "write"
            }
        })
        .collect();
    let first_write = events
        .iter()
        .position(|e| *e == "write")
        .expect("a repack wrote a pack");
    let deletes_before = events[..first_write]
        .iter()
        .filter(|e| **e == "delete")
        .count();
    assert!(
        deletes_before >= 2,
        "unused packs deleted before the repack: {events:?}"
    );

    // On a drive with room for the repository and a quarter of a pack more: done.
    let repo = kept.clone();
    let Some(disk) = SmallDisk::mount(&env.path("usb"), du_bytes(&repo) + 256 * 1024) else {
        eprintln!("not root: the full-drive half of this test needs mount");
        return;
    };
    let usb_repo = disk.0.join("repo");
    copy_tree(&repo, &usb_repo);
    let on_usb = |args: &[&str]| {
        env.cmd()
            .arg("-r")
            .arg(&usb_repo)
            .args(args)
            .output()
            .unwrap()
    };
    let out = on_usb(&["forget", &snap_z, &snap_a1, "--prune", "--max-unused", "0%"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = on_usb(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let t = env.path("t");
    let out = on_usb(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same_tree(&a, &t.join(a.strip_prefix("/").unwrap()));
    drop(disk);

    // Nothing unused to delete first, and no room to repack: a clear error, the
    // repository checks, and a prune that only deletes goes through.
    let Some(disk) = SmallDisk::mount(&env.path("usb2"), du_bytes(&repo) + 64 * 1024) else {
        panic!("mounted once, not twice")
    };
    let usb_repo = disk.0.join("repo");
    copy_tree(&repo, &usb_repo);
    let on_usb = |args: &[&str]| {
        env.cmd()
            .arg("-r")
            .arg(&usb_repo)
            .args(args)
            .output()
            .unwrap()
    };
    let out = on_usb(&["forget", &snap_a1, "--prune", "--max-unused", "0%"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("is full") && e.contains("--max-repack-size 0"),
        "{e}"
    );
    let out = on_usb(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = on_usb(&["prune", "--max-repack-size", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Issue 18.6: a backup killed while writing packs leaves `.NAME.tmp-XXXX` files. Before,
/// prune reported "0 unindexed packs" and check "no errors" while megabytes sat in
/// `data/`. Check reports them with count and size; prune removes them (and nothing else).
#[test]
fn temporary_files_of_killed_writes_are_reported_and_pruned() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(1, 200_000)).unwrap();
    env.backup(&[&src], &[]);
    let dir = env.repo().join("data/ab");
    fs::create_dir_all(&dir).unwrap();
    let leftover = dir.join(format!(".{}.tmp-0123456789abcdef", "ab".repeat(32)));
    fs::write(&leftover, vec![7u8; 4 << 20]).unwrap();
    let idx_leftover = env
        .repo()
        .join(format!("index/.{}.tmp-fedcba9876543210", "cd".repeat(32)));
    fs::write(&idx_leftover, vec![1u8; 1000]).unwrap();
    let check = json_last_line(&env.ok(&["check", "--json"]));
    assert_eq!(check["temp_files"], 2, "{check}");
    assert_eq!(check["temp_bytes"], (4 << 20) + 1000, "{check}");
    let human = env.ok(&["check"]);
    assert!(
        human.contains("2 temporary file(s)") && human.contains("prune removes them"),
        "{human}"
    );
    let plan = env.ok(&["prune", "--dry-run"]);
    assert!(plan.contains("would delete 2 temporary files"), "{plan}");
    assert!(leftover.exists(), "a dry run deletes nothing");
    let done = env.ok(&["prune"]);
    assert!(done.contains("did delete 2 temporary files"), "{done}");
    assert!(!leftover.exists() && !idx_leftover.exists());
    let check = json_last_line(&env.ok(&["check", "--read-data", "--json"]));
    assert_eq!(check["temp_files"], 0, "{check}");
}

/// Issue 18.6: one damaged pack is one line (what is wrong, how many blobs, what is at
/// stake), not one per blob (444 lines for two packs before); `-v` gives the detail.
#[test]
fn check_prints_one_line_per_damaged_pack() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..60u64 {
        fs::write(
            src.join(format!("f{i:02}")),
            pseudo_random(i + 40_000, 5_000),
        )
        .unwrap();
    }
    env.backup(&[&src], &[]);
    let victim = &env.packs_largest_first()[0];
    let mut bytes = fs::read(victim).unwrap();
    // Damage every blob: the whole blob area, header left alone at the end.
    let header_at = bytes.len() * 2 / 3;
    for b in &mut bytes[..header_at] {
        *b ^= 0x55;
    }
    fs::write(victim, bytes).unwrap();
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        lines[0].contains(&name)
            && lines[0].contains("blobs damaged")
            && lines[0].contains("snapshot(s)"),
        "{err}"
    );
    assert!(err.lines().count() < 40, "{err}");
    assert!(err.contains("more (-v lists them all)"), "{err}");
    let out = env.run(&["check", "--read-data", "-v"]);
    let err = stderr(&out);
    assert!(
        err.lines().filter(|l| l.contains("detail:")).count() >= 20,
        "{err}"
    );
}

/// Writes a shared lock as a command on another host would, `age_minutes` old.
fn plant_lock(env: &Env, age_minutes: i64) {
    let backend: std::sync::Arc<dyn cairn_backend::Backend> =
        std::sync::Arc::new(cairn_backend::LocalBackend::new(env.repo()));
    let repo = cairn_repo::Repository::open(backend, PASSWORD.as_bytes()).unwrap();
    let time = (chrono::Utc::now() - chrono::Duration::minutes(age_minutes)).fixed_offset();
    let lock = cairn_format::Lock {
        time,
        exclusive: false,
        hostname: "another-host".into(),
        username: "u".into(),
        pid: 4242,
        command: "backup".into(),
    };
    repo.save_file(cairn_repo::FileKind::Lock, &lock.encode())
        .unwrap();
}

/// Issue 18.6, the destructive side: what prune deletes outside the index (unindexed
/// packs, half-written files) is deleted only when no live command can own it. A fresh
/// lock of another host's backup keeps prune out altogether (exit 11, nothing deleted);
/// a lock nobody has refreshed for 30 minutes no longer protects anything.
#[test]
fn prune_deletes_leftovers_only_when_no_live_command_can_own_them() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(5, 100_000)).unwrap();
    env.backup(&[&src], &[]);
    let unindexed = env.repo().join("data/cd").join("cd".repeat(32));
    fs::create_dir_all(unindexed.parent().unwrap()).unwrap();
    fs::write(&unindexed, b"a pack another host is writing").unwrap();
    let temp = env
        .repo()
        .join("data/cd")
        .join(format!(".{}.tmp-0123456789abcdef", "ce".repeat(32)));
    fs::write(&temp, b"half a pack").unwrap();

    plant_lock(&env, 1);
    let before = env.repo_listing();
    let out = env.run(&["prune"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert_eq!(
        env.repo_listing(),
        before,
        "nothing deleted while another host's backup runs"
    );
    assert!(temp.exists());

    env.ok(&["unlock", "--remove-all"]);
    plant_lock(&env, 45);
    let out = env.ok(&["prune"]);
    assert!(
        out.contains("1 unindexed packs") && out.contains("1 temporary files"),
        "{out}"
    );
    assert!(!unindexed.exists() && !temp.exists());
    env.ok(&["check", "--read-data"]);
}

/// Issue 20.4: two `key remove` at once, each removing the other's key, both passed the
/// "not the last key" check and left none. Key changes now hold the exclusive lock and
/// check under it: whatever the interleaving, a key remains that opens the repository.
/// On a local directory and on B2 with 30 ms of latency per call.
#[test]
fn racing_key_removes_always_leave_a_working_key() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--latency-ms", "30"]);
    let (pw1, pw2) = (env.path("pw1"), env.path("pw2"));
    fs::write(&pw1, "first password\n").unwrap();
    fs::write(&pw2, "second password\n").unwrap();
    let local = env.repo().to_str().unwrap().to_string();
    for location in [local.as_str(), "b2:keys-bucket/r"] {
        let run = |pw: &Path, args: &[&str]| {
            emu.cairn_at(&env, location)
                .env_remove("CAIRN_PASSWORD")
                .arg("--password-file")
                .arg(pw)
                .args(args)
                .output()
                .unwrap()
        };
        let out = run(&pw1, &["init"]);
        assert!(out.status.success(), "{}", stderr(&out));
        for round in 0..4 {
            // Both passwords present (one of them was removed by the last round), then
            // each process removes the other's key.
            let keys = |pw: &Path| {
                let out = run(pw, &["--json", "key", "list"]);
                out.status.success().then(|| {
                    json_last_line(&String::from_utf8_lossy(&out.stdout))
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
            };
            for (have, want) in [(&pw1, &pw2), (&pw2, &pw1)] {
                if keys(have).is_some() && keys(want).is_none() {
                    let out = run(
                        have,
                        &["key", "add", "--new-password-file", want.to_str().unwrap()],
                    );
                    assert!(out.status.success(), "{}", stderr(&out));
                }
            }
            let list = keys(&pw1).unwrap();
            let current = |pw: &Path| {
                keys(pw)
                    .unwrap()
                    .iter()
                    .find(|k| k["current"] == true)
                    .map(|k| k["id"].as_str().unwrap().to_string())
                    .unwrap()
            };
            let (id1, id2) = (current(&pw1), current(&pw2));
            assert_eq!(list.len(), 2, "round {round}: {list:?}");
            let spawn = |pw: &Path, id: &str| {
                emu.cairn_at(&env, location)
                    .env_remove("CAIRN_PASSWORD")
                    .arg("--password-file")
                    .arg(pw)
                    .args(["key", "remove", id])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            let (a, b) = (spawn(&pw1, &id2), spawn(&pw2, &id1));
            let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            // 0: removed; 1: refused as the last key; 11: the other holds the lock; 12:
            // the other already removed this one's key, so its password opens nothing.
            for o in [&a, &b] {
                assert!(
                    matches!(o.status.code(), Some(0 | 1 | 11 | 12)),
                    "{location} round {round}: {:?} {}",
                    o.status,
                    stderr(o)
                );
            }
            let opens = [&pw1, &pw2]
                .iter()
                .filter(|pw| run(pw, &["snapshots"]).status.success())
                .count();
            assert!(
                opens >= 1,
                "{location} round {round}: no password opens the repository any more ({} / {})",
                stderr(&a),
                stderr(&b)
            );
            assert!(
                !(a.status.success() && b.status.success()),
                "{location} round {round}: both removes succeeded"
            );
        }
    }
}

/// Issue 20.4: two `cairn init` at once on one location both reported success with
/// different repository IDs, and the location then opened with neither. Now exactly one
/// wins (the config is created only if absent: RENAME_NOREPLACE locally, first upload
/// on B2), the other fails with exit 1 and takes back its key file, and the repository
/// opens and checks.
#[test]
fn racing_inits_leave_one_repository() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--latency-ms", "30"]);
    for round in 0..4 {
        let local = env.path(&format!("r{round}"));
        let b2 = format!("b2:init-bucket/r{round}");
        for location in [local.to_str().unwrap(), b2.as_str()] {
            let spawn = || {
                emu.cairn_at(&env, location)
                    .arg("init")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            let (a, b) = (spawn(), spawn());
            let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            let codes = [a.status.code(), b.status.code()];
            assert!(
                codes.contains(&Some(0)) && codes.contains(&Some(1)),
                "{location}: one wins, one fails: {codes:?} {} / {}",
                stderr(&a),
                stderr(&b)
            );
            let loser = if a.status.success() { &b } else { &a };
            assert!(stderr(loser).contains("already"), "{}", stderr(loser));
            let keys = json_last_line(&String::from_utf8_lossy(
                &emu.cairn_at(&env, location)
                    .args(["--json", "key", "list"])
                    .output()
                    .unwrap()
                    .stdout,
            ))
            .as_array()
            .unwrap()
            .len();
            assert_eq!(keys, 1, "{location}: the loser took back its key file");
            let out = emu.cairn_at(&env, location).arg("check").output().unwrap();
            assert!(out.status.success(), "{location}: {}", stderr(&out));
        }
    }
}

/// Issue 20.5: `forget --keep-tag nosuch` kept nothing and so removed every snapshot of
/// the group, exit 0. A policy that keeps nothing of a group is refused (exit 1, nothing
/// removed) unless --unsafe-allow-remove-all says so.
#[test]
fn a_keep_rule_that_keeps_nothing_removes_nothing() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..3 {
        fs::write(src.join("f"), format!("{i}")).unwrap();
        env.backup(&[&src], &["--tag", "daily"]);
    }
    let count = || {
        json_last_line(&env.ok(&["--json", "snapshots"]))
            .as_array()
            .unwrap()
            .len()
    };
    for args in [
        &["forget", "--keep-tag", "nosuch"][..],
        &["forget", "--keep-tag", "nosuch", "--dry-run"][..],
        &["forget", "--keep-tag", "Daily", "--prune"][..],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("refusing to remove all 3 snapshots")
                && err.contains("--unsafe-allow-remove-all"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert_eq!(count(), 3, "{args:?}: nothing removed");
    }
    env.ok(&["forget", "--keep-tag", "daily"]);
    assert_eq!(count(), 3, "a tag they have keeps them");
    env.ok(&["forget", "--keep-tag", "nosuch", "--keep-last", "1"]);
    assert_eq!(count(), 1, "another rule keeping something is fine");
    env.ok(&[
        "forget",
        "--keep-tag",
        "nosuch",
        "--unsafe-allow-remove-all",
    ]);
    assert_eq!(count(), 0, "said so explicitly");
}
