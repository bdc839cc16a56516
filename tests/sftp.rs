//! Repositories on an SSH server (issue 25): a real sshd on loopback with a throwaway
//! key (.ci/run installs openssh-server), reached through the real ssh client.

use std::fs;
use std::process::Command;

use crate::util::*;

use cairn_sftp::testing::SshServer;

/// `cairn` that reaches `ssh`'s server through its own ssh command line.
fn cairn(env: &Env, ssh: &SshServer) -> Command {
    let mut c = env.cmd();
    c.env("CAIRN_SFTP_COMMAND", ssh.command());
    c
}

fn location(ssh: &SshServer, path: &std::path::Path) -> String {
    format!("sftp:{}@127.0.0.1:{}", ssh.user, path.display())
}

/// init, backup, restore compared byte for byte and metadata for metadata, check
/// --read-data, forget with prune, check again; the store holds no leftovers.
#[test]
fn a_repository_over_sftp_round_trips() {
    let env = Env::new();
    let Some(ssh) = SshServer::start(&env.path("sshd")) else {
        return;
    };
    let store = env.path("nas/cairn");
    let repo = location(&ssh, &store);
    let src = env.path("src");
    crate::roundtrip::build_rich_tree(&src);
    let run = |args: &[&str]| succeeds(cairn(&env, &ssh).arg("-r").arg(&repo).args(args));
    run(&["init"]);
    run(&["backup", src.to_str().unwrap()]);
    fs::write(src.join("later.txt"), b"second generation").unwrap();
    run(&["backup", src.to_str().unwrap()]);
    restore_latest_matches(cairn(&env, &ssh), &repo, &src, &env.path("restored"));
    run(&["check", "--read-data"]);
    run(&["forget", "--keep-last", "1", "--prune"]);
    run(&["check", "--read-data"]);
    let snaps: serde_json::Value = serde_json::from_str(&run(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    // What the server holds is the repository, nothing half-written beside it.
    let mut stack = vec![store.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".cairn-tmp-"), "{}", e.path().display());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// USB repository → SSH server, then a bare machine restores from the server alone;
/// a second ship sends nothing.
#[test]
fn ship_to_sftp_and_restore_from_it() {
    let env = Env::new();
    let Some(ssh) = SshServer::start(&env.path("sshd")) else {
        return;
    };
    env.init();
    let src = env.path("src");
    crate::roundtrip::build_rich_tree(&src);
    env.backup(&[&src], &[]);
    let dest = location(&ssh, &env.path("nas/offsite"));
    succeeds(
        cairn(&env, &ssh)
            .arg("-r")
            .arg(env.repo())
            .args(["ship", &dest, "--create-bucket"]),
    );
    let again = succeeds(
        cairn(&env, &ssh)
            .arg("-r")
            .arg(env.repo())
            .args(["ship", &dest, "--json"]),
    );
    let last: serde_json::Value = serde_json::from_str(again.lines().last().unwrap()).unwrap();
    assert_eq!(last["files_uploaded"], 0, "{last}");
    restore_latest_matches(cairn(&env, &ssh), &dest, &src, &env.path("bare-machine"));
    succeeds(
        cairn(&env, &ssh)
            .arg("-r")
            .arg(&dest)
            .args(["check", "--read-data"]),
    );
}

/// sshd and every session it serves are killed mid-backup and come back 3 s later:
/// the backup rides it out or fails in one line and the next run finishes; check
/// --read-data passes and the restore is byte for byte.
#[test]
fn the_ssh_server_dying_mid_backup_loses_nothing() {
    let env = Env::new();
    let Some(mut ssh) = SshServer::start(&env.path("sshd")) else {
        return;
    };
    let repo = location(&ssh, &env.path("nas/cairn"));
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..6u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 70, 40_000_000)).unwrap();
    }
    succeeds(cairn(&env, &ssh).arg("-r").arg(&repo).arg("init"));
    let command = ssh.command();
    let cairn = || {
        let mut c = env.cmd();
        c.env("CAIRN_SFTP_COMMAND", &command);
        c
    };
    backup_through_outage(&env, &cairn, &repo, &src, || {
        ssh.kill();
        std::thread::sleep(std::time::Duration::from_secs(3));
        ssh.restart();
    });
}

/// `cairn sync` to the server and rclone's sftp remote on the same files: rclone check
/// finds no difference, rclone sync has nothing to do, and the reverse; the remote
/// also works as `rclone:REMOTE:PATH` for cairn.
#[test]
fn cairn_and_rclone_take_turns_over_sftp() {
    let env = Env::new();
    let Some(ssh) = SshServer::start(&env.path("sshd")) else {
        return;
    };
    if Command::new("rclone").arg("version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "rclone is missing");
        return;
    }
    let key = env.path("sshd/client_key");
    let conf = env.path("rclone.conf");
    fs::write(
        &conf,
        format!(
            "[nas]\ntype = sftp\nhost = 127.0.0.1\nport = {}\nuser = {}\nkey_file = {}\nknown_hosts_file = {}\n",
            ssh.port,
            ssh.user,
            key.display(),
            env.path("sshd/known_hosts").display()
        ),
    )
    .unwrap();
    let rclone = |args: &[&str]| {
        let out = Command::new("rclone")
            .env("RCLONE_CONFIG", &conf)
            .arg("-v")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "rclone {args:?}: {}", stderr(&out));
        stderr(&out)
    };
    let dir = env.path("dir");
    crate::sync::tree(&dir);
    let d = dir.to_str().unwrap();
    let store = env.path("nas/files");
    let dest = location(&ssh, &store);
    let sync = |args: &[&str]| -> serde_json::Value {
        let out = succeeds(
            cairn(&env, &ssh)
                .env("RCLONE_CONFIG", &conf)
                .args(["--json", "sync"])
                .args(args),
        );
        json_last_line(&out)
    };
    let s = sync(&[d, &dest]);
    assert_eq!(s["files_uploaded"], 5, "{s}");
    let remote = format!("nas:{}", store.display());
    rclone(&["check", d, &remote]);
    let log = rclone(&["sync", d, &remote]);
    assert!(
        !log.contains("Copied"),
        "rclone copied after cairn sync: {log}"
    );
    let s = sync(&[d, &dest]);
    assert_eq!(s["files_uploaded"], 0, "{s}");

    // rclone writes, cairn (through the rclone remote) has nothing to do.
    fs::write(dir.join("later.bin"), pseudo_random(5, 200_000)).unwrap();
    let other = env.path("nas/other");
    rclone(&["sync", d, &format!("nas:{}", other.display())]);
    let s = sync(&[d, &format!("rclone:nas:{}", other.display())]);
    assert_eq!(
        (s["files_uploaded"].as_u64(), s["files_skipped"].as_u64()),
        (Some(0), Some(6)),
        "{s}"
    );

    // SFTP states no checksum: --compare checksum compares sizes and times instead
    // (not sizes alone, which would keep a same-size change out), and says so: the new
    // file and the changed one go, the four others stay.
    fs::write(dir.join("a.txt"), b"ALPHA").unwrap();
    let out = cairn(&env, &ssh)
        .args(["--json", "sync", "--compare", "checksum", d, &dest])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (s["files_uploaded"].as_u64(), s["files_skipped"].as_u64()),
        (Some(2), Some(4)),
        "{s}"
    );
    assert_eq!(fs::read(store.join("a.txt")).unwrap(), b"ALPHA");
    assert!(
        stderr(&out)
            .contains("no checksum in common: files were compared by size and modification time"),
        "{}",
        stderr(&out)
    );
}

/// The offsite copy is the last copy: another repository shipped to a directory on
/// the server that holds one is refused before anything is written or deleted (also
/// with --allow-deletes), and a sync --delete from inside that directory to the
/// directory itself is refused as overlapping; afterwards the server holds exactly
/// the files it held, and the old copy checks.
#[test]
fn sftp_destinations_holding_a_repository_are_not_destroyed() {
    let (old, new) = (Env::new(), Env::new());
    let Some(ssh) = SshServer::start(&old.path("sshd")) else {
        return;
    };
    let store = old.path("nas/offsite");
    let dest = location(&ssh, &store);
    for (env, name) in [(&old, "old"), (&new, "new")] {
        env.init();
        let src = env.path("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("f"), name.repeat(10_000)).unwrap();
        env.backup(&[&src], &[]);
    }
    succeeds(
        cairn(&old, &ssh)
            .arg("-r")
            .arg(old.repo())
            .args(["ship", &dest, "--create-bucket"]),
    );
    let files = || {
        let mut v = Vec::new();
        let mut stack = vec![store.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    v.push((e.path(), fs::read(e.path()).unwrap()));
                }
            }
        }
        v.sort();
        v
    };
    let before = files();
    assert_ship_refused_as_another_repository(&|extra| {
        cairn(&new, &ssh)
            .arg("-r")
            .arg(new.repo())
            .args(["ship", &dest])
            .args(extra)
            .output()
            .unwrap()
    });
    let inner = location(&ssh, &store.join("data"));
    let out = cairn(&new, &ssh)
        .args(["sync", "--delete", "--allow-deletes", &inner, &dest])
        .output()
        .unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("one holds the other"), "{e}");
    assert_eq!(files(), before, "the server's copy changed");
    succeeds(
        cairn(&old, &ssh)
            .arg("-r")
            .arg(&dest)
            .args(["check", "--read-data"]),
    );
}
