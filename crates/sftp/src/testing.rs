//! A real OpenSSH server for tests: `sshd` on loopback with its own config, host key
//! and a throwaway client key, serving SFTP as any NAS does. .ci/run installs
//! openssh-server; where it is missing outside CI the tests say so and skip.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SshServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    /// The login name (whoever runs the tests).
    pub user: String,
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SshServer {
    /// A fresh server with its files in `dir`, or `None` (saying why) where sshd is
    /// not installed; under CI (`CI` set) a missing sshd is a failure.
    pub fn start(dir: &Path) -> Option<SshServer> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() || Command::new("ssh-keygen").arg("-?").output().is_err() {
            assert!(
                std::env::var("CI").is_err(),
                "sshd or ssh-keygen is missing: .ci/run must install openssh-server"
            );
            eprintln!("skipped: no sshd here (Debian package openssh-server)");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        for key in ["host_key", "client_key"] {
            let _ = std::fs::remove_file(dir.join(key));
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key)));
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let port = cairn_backend::testing::free_port().expect("a free port");
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
            ),
        )
        .unwrap();
        // Privilege separation wants its empty directory when sshd runs as root.
        if nix_is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let mut s = SshServer {
            child: None,
            port,
            dir: dir.to_path_buf(),
            user,
        };
        s.restart();
        Some(s)
    }

    /// Starts sshd (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills sshd and every session it serves: to the client the server is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_children(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The command line for `CAIRN_SFTP_COMMAND`: the real ssh with the throwaway key,
    /// this server's port and a known-hosts file of its own (nothing of the user's).
    pub fn command(&self) -> String {
        let d = self.dir.display();
        format!(
            "ssh -F /dev/null -p {} -i {d}/client_key -o IdentitiesOnly=yes -o IdentityAgent=none \
             -o UserKnownHostsFile={d}/known_hosts -o StrictHostKeyChecking=accept-new \
             -o BatchMode=yes -o LogLevel=ERROR {}@127.0.0.1 -s sftp",
            self.port, self.user
        )
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// SIGKILLs every descendant of `pid` (sshd's per-connection processes), found by
/// their parent in /proc.
fn kill_children(pid: u32) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(child) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so read after the ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(pid) {
            kill_children(child);
            let _ = Command::new("kill")
                .args(["-KILL", &child.to_string()])
                .output();
        }
    }
}
