//! The SFTP backend against a real OpenSSH server on loopback (CI installs
//! openssh-server): the conformance suite every backend passes, and what a user meets
//! first when ssh refuses.

use cairn_backend::{run_conformance, Backend, ErrorKind};
use cairn_sftp::testing::SshServer;
use cairn_sftp::{SftpBackend, SftpLocation};

fn backend(ssh: &SshServer, path: &str) -> SftpBackend {
    let loc = SftpLocation::parse(&format!("sftp:{}@127.0.0.1:{path}", ssh.user))
        .unwrap()
        .unwrap()
        .with_command(&ssh.command());
    SftpBackend::new(&loc).unwrap()
}

#[test]
fn conformance_against_sshd() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ssh) = SshServer::start(&dir.path().join("sshd")) else {
        return;
    };
    let repo = dir.path().join("store/repo");
    let b = backend(&ssh, repo.to_str().unwrap());
    assert!(!b.exists().unwrap());
    run_conformance(&b).unwrap();
    // Nothing half-written is left behind, and what is there is plain files.
    let names: Vec<_> = walk(&repo);
    assert!(
        names.iter().all(|n| !n.contains(".cairn-tmp-")),
        "{names:?}"
    );
    assert!(b.list_partial("").unwrap().is_empty());
    // Removing leftovers cannot reach a repository file, whatever the name says.
    b.write("config", b"cfg", &Default::default()).unwrap();
    for name in ["config", "data/.cairn-tmp-x/../../config", "../config"] {
        assert_eq!(
            b.remove_partial(name).unwrap_err().kind,
            ErrorKind::InvalidName,
            "{name}"
        );
    }
    assert_eq!(b.read("config").unwrap(), b"cfg");
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_refused_key_is_final_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ssh) = SshServer::start(&dir.path().join("sshd")) else {
        return;
    };
    // Another key than the server knows.
    std::fs::remove_file(dir.path().join("sshd/authorized_keys")).unwrap();
    std::fs::write(dir.path().join("sshd/authorized_keys"), "").unwrap();
    let b = backend(&ssh, dir.path().join("r").to_str().unwrap());
    let t = std::time::Instant::now();
    let e = b.exists().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("Permission denied"), "{e}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "retried a refusal"
    );
}

#[test]
fn a_dead_server_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut ssh) = SshServer::start(&dir.path().join("sshd")) else {
        return;
    };
    let b = backend(&ssh, dir.path().join("r").to_str().unwrap());
    b.create().unwrap();
    b.write("config", b"one", &Default::default()).unwrap();
    ssh.kill();
    let waiter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        ssh.restart();
        ssh
    });
    // The session died with the server: a new one is started, and the read succeeds.
    assert_eq!(b.read("config").unwrap(), b"one");
    drop(waiter.join().unwrap());
}
