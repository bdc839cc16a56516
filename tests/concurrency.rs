//! Issue 23.1: three machines back up into one repository while a forget+prune loop
//! and a check loop run beside them, every command killed (SIGKILL) now and then.
//! No command waits, and none is refused for a lock: backups, checks and forget+prune
//! run side by side. (A lock left by a killed command whose process ID the system gave
//! to a new process looks alive until it is 30 minutes old; a command that meets one
//! refuses at once with exit 11 and changes nothing: counted, not a failure.) Every
//! other failure is a bug. Afterwards `check --read-data` passes and every snapshot left
//! restores exactly the tree it was taken of. `CAIRN_STRESS_SECS` sets how long the loops run (default 20; the closing
//! note's long runs used 300).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::util::*;

const HOSTS: [&str; 3] = ["laptop", "desktop", "nas"];

/// What one loop did.
#[derive(Default, Debug)]
struct Tally {
    ok: u32,
    killed: u32,
    /// Refused at once (exit 11) by a lock that looked alive.
    refused: u32,
    /// Commands that failed on their own: each is a bug.
    failures: Vec<String>,
    longest: Duration,
}

/// A small deterministic generator: the kills differ between loops, not between runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Runs `make(round)` until `deadline`, killing one command in four after a random
/// moment; `before(round)` runs before each command is started.
fn run_loop(
    name: &str,
    seed: u64,
    deadline: Instant,
    mut before: impl FnMut(u32),
    make: impl Fn(u32) -> Command,
) -> Tally {
    let mut t = Tally::default();
    let mut rng = Rng(seed);
    let mut round = 0;
    while Instant::now() < deadline {
        round += 1;
        before(round);
        let start = Instant::now();
        let mut child = make(round)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if rng.next().is_multiple_of(4) {
            std::thread::sleep(Duration::from_millis(rng.next() % 400));
            let _ = child.kill();
            let _ = child.wait_with_output();
            t.killed += 1;
            continue;
        }
        let out = child.wait_with_output().unwrap();
        t.longest = t.longest.max(start.elapsed());
        if out.status.success() {
            t.ok += 1;
        } else if out.status.code() == Some(11) {
            // A killed command's lock whose process ID was reused looks alive.
            t.refused += 1;
            if t.refused == 1 {
                eprintln!(
                    "stress: {name} refused: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        } else {
            t.failures.push(format!(
                "{name} round {round}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    t
}

/// Changes a source tree a little, as a day of work would.
fn change(src: &Path, host: usize, round: u32) {
    let r = round as usize;
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(
        src.join(format!("f{}", r % 7)),
        pseudo_random((host * 1000 + r) as u64, 20_000 + r * 300),
    )
    .unwrap();
    let _ = fs::remove_file(src.join(format!("f{}", (r + 3) % 7)));
    fs::write(src.join("sub/note"), format!("{host} {round}")).unwrap();
}

fn stress(env: &Env, cairn: &(dyn Fn() -> Command + Sync)) {
    let secs: u64 = std::env::var("CAIRN_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let sources: Vec<PathBuf> = HOSTS
        .iter()
        .map(|h| env.path(&format!("src-{h}")))
        .collect();
    // (host, round) -> the tree that round's backup was taken of.
    let expected: Mutex<HashMap<(usize, u32), BTreeMap<Vec<u8>, Meta>>> = Mutex::default();
    let tallies: Vec<(String, Tally)> = std::thread::scope(|s| {
        let mut loops = Vec::new();
        for (i, host) in HOSTS.iter().enumerate() {
            let src = &sources[i];
            let expected = &expected;
            loops.push(s.spawn(move || {
                let t = run_loop(
                    &format!("backup {host}"),
                    i as u64 + 1,
                    deadline,
                    |round| {
                        change(src, i, round);
                        expected
                            .lock()
                            .unwrap()
                            .insert((i, round), snapshot_tree(src));
                    },
                    |round| {
                        let mut c = cairn();
                        c.args(["backup", "--host", host, "--tag", &format!("r{round}")])
                            .arg(src);
                        c
                    },
                );
                (format!("backup {host}"), t)
            }));
        }
        loops.push(s.spawn(|| {
            let t = run_loop(
                "forget --prune",
                7,
                deadline,
                |_| {},
                |_| {
                    let mut c = cairn();
                    c.args(["forget", "--keep-last", "2", "--prune"]);
                    c
                },
            );
            ("forget --prune".to_string(), t)
        }));
        loops.push(s.spawn(|| {
            let t = run_loop(
                "check",
                11,
                deadline,
                |_| {},
                |_| {
                    let mut c = cairn();
                    c.arg("check");
                    c
                },
            );
            ("check".to_string(), t)
        }));
        loops.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (name, t) in &tallies {
        eprintln!(
            "stress: {name}: {} done, {} killed, {} refused, longest {:.1}s",
            t.ok,
            t.killed,
            t.refused,
            t.longest.as_secs_f64()
        );
    }
    let failures: Vec<&String> = tallies.iter().flat_map(|(_, t)| &t.failures).collect();
    for f in &failures {
        eprintln!(
            "stress failure: {}",
            f.chars().take(600).collect::<String>()
        );
    }
    assert!(
        tallies.iter().all(|(_, t)| t.ok > 0),
        "every loop got work done"
    );

    let out = cairn().args(["check", "--read-data"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cairn().args(["snapshots", "--json"]).output().unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = expected.into_inner().unwrap();
    for snap in snaps.as_array().unwrap() {
        let host = HOSTS.iter().position(|h| snap["hostname"] == *h).unwrap();
        let round: u32 = snap["tags"][0].as_str().unwrap()[1..].parse().unwrap();
        let id = snap["id"].as_str().unwrap();
        let target = env.path(&format!("restored-{id}"));
        let out = cairn()
            .args(["restore", id, "--target", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let src = &sources[host];
        let got = snapshot_tree(&target.join(src.strip_prefix("/").unwrap()));
        assert!(
            got == expected[&(host, round)],
            "snapshot {id} ({} r{round}) restores what it was taken of",
            HOSTS[host]
        );
    }
    assert!(
        failures.is_empty(),
        "{} commands failed (above)",
        failures.len()
    );
}

#[test]
fn backups_prune_and_check_run_together_and_lose_nothing() {
    let env = Env::new();
    env.init();
    let repo = env.repo();
    stress(&env, &|| {
        let mut c = env.cmd();
        c.arg("-r").arg(&repo);
        c
    });
}

#[test]
fn backups_prune_and_check_run_together_on_b2() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let location = "b2:stress-bucket/repo";
    let out = emu.cairn_at(&env, location).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stress(&env, &|| emu.cairn_at(&env, location));
}
