//! Living with a repository: check, forget, prune, repair, copy.

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
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    // The damaged pack repair left is called what it is, and the advice is not the
    // repair just run.
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    let both = format!("{so}{se}");
    assert!(
        both.contains("damaged; `repair index` copied what it could")
            && !both.contains("left by an interrupted command")
            && !both.contains("`cairn repair index` may restore"),
        "{both}"
    );
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
    // Killed two hours ago: prune leaves a temporary file alone for an hour, since a
    // write in progress (even a lock's own) has one too.
    let killed = chrono::Utc::now().timestamp() - 7200;
    set_mtime(&leftover, killed, 0);
    set_mtime(&idx_leftover, killed, 0);
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

/// Writes the lock of a backup on another host, `age_minutes` old.
fn plant_lock(env: &Env, age_minutes: i64) {
    let backend: std::sync::Arc<dyn cairn_backend::Backend> =
        std::sync::Arc::new(cairn_backend::LocalBackend::new(env.repo()));
    let repo = cairn_repo::Repository::open(backend, PASSWORD.as_bytes()).unwrap();
    let time = (chrono::Utc::now() - chrono::Duration::minutes(age_minutes)).fixed_offset();
    let lock = cairn_format::Lock {
        started: Some(time),
        kind: Some("add".into()),
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
/// packs, half-written files) is deleted only when no live command can own it. Prune
/// runs beside another host's backup (issue 23) but deletes nothing it may be writing
/// or adopting; a lock nobody has refreshed for 30 minutes no longer protects anything.
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
    let packs = |env: &Env| -> Vec<std::path::PathBuf> {
        env.repo_listing()
            .into_keys()
            .filter(|p| p.starts_with("data"))
            .collect()
    };
    let before = packs(&env);
    let out = env.run(&["prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        packs(&env),
        before,
        "nothing deleted while another host's backup runs"
    );
    assert!(temp.exists() && unindexed.exists());
    env.ok(&["check", "--read-data"]);

    env.ok(&["unlock", "--remove-all"]);
    plant_lock(&env, 45);
    // A write that died an hour ago (a file being written now has a fresh time).
    let hour_ago = chrono::Utc::now().timestamp() - 3700;
    set_mtime(&temp, hour_ago, 0);
    let out = env.ok(&["prune"]);
    assert!(
        out.contains("1 unindexed packs") && out.contains("1 temporary files"),
        "{out}"
    );
    assert!(!unindexed.exists() && !temp.exists());
    env.ok(&["check", "--read-data"]);
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
