//! `cairn drill`, rolling verification, `check --remote-hashes`, and recovery from a
//! bare machine.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Flips one byte in the middle of a file.
fn flip(p: &Path) {
    let mut b = fs::read(p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x40;
    fs::write(p, b).unwrap();
}

fn packs(env: &Env) -> Vec<PathBuf> {
    env.repo_listing()
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("/data/"))
        .collect()
}

/// Small text files and a few large random ones.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    for i in 0..40 {
        fs::write(
            src.join(format!("docs/note{i}.txt")),
            format!("note {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    for i in 0..3u64 {
        fs::write(
            src.join(format!("big{i}.bin")),
            pseudo_random(i + 1, 1_500_000),
        )
        .unwrap();
    }
    src
}

fn drill(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = env
        .cmd()
        .arg("-r")
        .arg(env.repo())
        .args(["drill", "--json"])
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

#[test]
fn a_clean_drill_passes_is_recorded_and_silences_the_warning() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = source(&env);
    env.backup(&[&src], &[]);
    fs::write(src.join("docs/later.txt"), b"later").unwrap();
    env.backup(&[&src], &[]);

    let out = env.run(&["snapshots"]);
    assert!(
        stderr(&out).contains("no restore drill has passed in the last 13 months"),
        "{}",
        stderr(&out)
    );

    let (code, s, err) = drill(
        &env,
        &["--files", "6", "--snapshots", "2", "--compare-source"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["snapshots"], 2, "{s}");
    assert_eq!(s["files_checked"], 12, "{s}");
    assert!(
        s["bytes_checked"].as_u64().unwrap() >= 1_500_000,
        "the size-weighted half draws a big file: {s}"
    );
    assert_eq!(
        s["files_compared_with_source"], 12,
        "the live files are unchanged: {s}"
    );
    assert!(s["packs_checked"].as_u64().unwrap() >= 1, "{s}");

    let out = env.run(&["snapshots"]);
    assert!(
        !stderr(&out).contains("no restore drill"),
        "{}",
        stderr(&out)
    );
    let h = json_last_line(&env.ok(&["drill", "--history", "--json"]));
    assert_eq!(h.as_array().unwrap().len(), 1, "{h}");
    assert_eq!(h[0]["ok"], true);
    assert_eq!(h[0]["files_checked"], 12);
    // The record is sealed like everything else: no plaintext in the repository.
    let rec = env
        .repo_listing()
        .into_keys()
        .find(|p| p.to_string_lossy().contains("/drills/"))
        .expect("a drills/ record");
    assert!(!String::from_utf8_lossy(&fs::read(rec).unwrap()).contains("files_checked"));
    assert_eq!(env.run(&["check", "--read-data"]).status.code(), Some(0));

    // A live file changed behind the tools' backs (same size, same mtime): drill says so.
    let victim = src.join("docs/note7.txt");
    let m = fs::metadata(&victim).unwrap();
    let mut b = fs::read(&victim).unwrap();
    b[0] ^= 1;
    fs::write(&victim, b).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        set_mtime(&victim, m.mtime(), m.mtime_nsec());
    }
    let (code, s, err) = drill(
        &env,
        &["--files", "1000", "--snapshots", "1", "--compare-source"],
    );
    assert_eq!((code, s["ok"].as_bool()), (Some(1), Some(false)), "{s}");
    assert!(
        err.contains("docs/note7.txt") && err.contains("differs from the live file"),
        "{err}"
    );
}

#[test]
fn a_drill_over_a_corrupted_pack_names_the_file_and_fails() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = source(&env);
    env.backup(&[&src], &[]);
    let before = packs(&env);
    // The second backup's only new data is the victim's: its packs hold nothing else.
    fs::write(src.join("docs/victim.bin"), pseudo_random(77, 600_000)).unwrap();
    env.backup(&[&src], &[]);
    let new: Vec<PathBuf> = packs(&env)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    let data_pack = new
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    flip(data_pack);

    let (code, s, err) = drill(&env, &["--files", "1000", "--snapshots", "5"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(s["ok"], false);
    assert!(
        err.contains("docs/victim.bin"),
        "the damaged file is named: {err}"
    );
    assert!(!err.contains("note3.txt"), "only the damaged file: {err}");
    let h = json_last_line(&env.ok(&["drill", "--history", "--json"]));
    assert_eq!(h[0]["ok"], false, "a failed drill is recorded too: {h}");
    assert!(env.run(&["snapshots"]).status.success());
    assert!(stderr(&env.run(&["snapshots"])).contains("no restore drill has passed"));
}

#[test]
fn subset_checks_read_the_least_recently_verified_packs_first() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..8u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 30, 1_100_000)).unwrap();
    }
    env.backup(&[&src], &[]);
    // 8.8 MB in 1 MiB packs: 7 to 9 packs, depending on where chunks fall.
    let n = packs(&env).len();
    assert!(n >= 4, "enough packs for four quarters: {n}");
    // Four runs of a quarter cover every pack exactly once.
    let mut total = 0;
    for _ in 0..4 {
        let s = json_last_line(&env.ok(&["check", "--read-data-subset", "25%", "--json"]));
        total += s["packs_checked"].as_u64().unwrap();
    }
    assert_eq!(total as usize, n.div_ceil(4) * 4);
    // A damaged pack is never recorded as verified: once found, every later subset finds it.
    let victim = packs(&env)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    flip(&victim);
    let runs: Vec<bool> = (0..5)
        .map(|_| {
            env.run(&["check", "--read-data-subset", "25%"])
                .status
                .code()
                == Some(1)
        })
        .collect();
    let first = runs
        .iter()
        .position(|r| *r)
        .expect("the damaged pack is read within four runs");
    assert!(first < 4, "{runs:?}");
    assert!(
        runs[first..].iter().all(|r| *r),
        "and again every time after: {runs:?}"
    );
}

fn b2(env: &Env, emu: &Emulator) -> std::process::Command {
    let mut c = env.cmd();
    emu.credentials(&mut c);
    c
}

#[test]
fn remote_hashes_compare_without_downloading() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    env.ok(&["init", "--pack-size", "1"]);
    env.backup(&[&source(&env)], &[]);
    let out = b2(&env, &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["ship", "b2:hash-bucket/r", "--create-bucket"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    emu.http("POST", "/emulator/stats/reset", &[], b"");
    let out = b2(&env, &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["check", "--remote-hashes", "b2:hash-bucket/r", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(s["remote_files_compared"].as_u64().unwrap() > 5, "{s}");
    assert_eq!(emu.stats()["class_b"], 0, "nothing downloaded");
    // The two copies differ: named, exit 1.
    let victim = packs(&env).into_iter().next().unwrap();
    flip(&victim);
    let out = b2(&env, &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["check", "--remote-hashes", "b2:hash-bucket/r"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr(&out).contains(&name) && stderr(&out).contains("SHA1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn recovery_from_a_bare_machine_and_a_drill_of_the_offsite_copy() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    env.ok(&["init", "--pack-size", "1"]);
    let src = source(&env);
    env.backup(&[&src], &[]);
    let out = b2(&env, &emu)
        .arg("-r")
        .arg(env.repo())
        .args(["ship", "b2:bare-bucket/home", "--create-bucket"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // The offsite copy drilled from the laptop: recorded in both repositories.
    let out = b2(&env, &emu)
        .arg("-r")
        .arg(env.repo())
        .args([
            "drill",
            "--from",
            "b2:bare-bucket/home",
            "--files",
            "4",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let h = json_last_line(&env.ok(&["drill", "--history", "--json"]));
    assert_eq!(h[0]["location"], "b2:bare-bucket/home", "{h}");
    // Reading packs from B2 costs egress, and check says how much.
    let out = b2(&env, &emu)
        .args([
            "-r",
            "b2:bare-bucket/home",
            "check",
            "--read-data-subset",
            "50%",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let c = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert!(
        c["egress_bytes"].as_u64().unwrap() > 0 && c["egress_bytes"] == c["bytes_read"],
        "{c}"
    );

    // A new machine: empty HOME, no cache, no config; only the B2 key and the password.
    let home = env.path("bare-home");
    fs::create_dir_all(&home).unwrap();
    let target = env.path("restored");
    let bare = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("B2_APPLICATION_KEY_ID", "testkeyid")
            .env("B2_APPLICATION_KEY", "testkey")
            .env("CAIRN_B2_ENDPOINT", &emu.url)
            .env("CAIRN_PASSWORD", PASSWORD)
            .env("CAIRN_INSECURE_TEST_KDF", "1")
            .current_dir(&home)
            .args(["-r", "b2:bare-bucket/home"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "cairn {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(bare(&["snapshots"]).contains("1 snapshots"));
    bare(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}
