//! The daily job: profiles filling in flags, and the example systemd unit run end to end.

use std::fs;

use crate::util::*;

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
            "repository = {:?}\npassword_file = {:?}\n\n[backup]\npaths = [{:?}]\nexclude = [\"cache\"]\ntags = [\"daily\"]\n\n[forget]\nkeep_last = 2\nkeep_tag = [\"precious\"]\nprune = true\n\n[ship]\ndestination = {:?}\n",
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
    // The first snapshot is tagged precious: the profile's keep_tag keeps it.
    ok(&["backup", "--tag", "precious"]);
    for _ in 0..3 {
        ok(&["backup"]);
        ok(&["forget"]);
        ok(&["ship"]);
    }
    let snaps: serde_json::Value = serde_json::from_str(&ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        3,
        "forget kept the profile's 2 and the precious one: {snaps}"
    );
    assert_eq!(snaps[0]["tags"][0], "precious");
    assert_eq!(snaps[1]["tags"][0], "daily");
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
