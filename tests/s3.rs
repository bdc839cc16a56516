//! Repositories on an S3-compatible store (issue 25), against a real S3 server on
//! loopback: moto in server mode, which .ci/run installs (`CAIRN_MOTO_SERVER`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// A fresh server, or `None` (saying why) where moto is not installed.
    pub fn start() -> Option<S3Server> {
        let bin = std::env::var("CAIRN_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = match Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("CI").is_err(),
                    "{bin}: {e}: .ci/run must install moto (CAIRN_MOTO_SERVER)"
                );
                eprintln!("skipped: no S3 server ({bin}: {e})");
                return None;
            }
        };
        let s = S3Server { child, port };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s)
    }

    /// `PUT /bucket`: buckets are made with the provider's tools, not by cairn.
    pub fn make_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    pub fn location(&self, rest: &str) -> String {
        format!("s3:http://127.0.0.1:{}/{rest}", self.port)
    }

    /// `cairn` with this server's credentials.
    pub fn cairn(&self, env: &Env) -> Command {
        let mut c = env.cmd();
        c.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE");
        c
    }
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{c:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    let run = |args: &[&str]| ok(s3.cairn(&env).arg("-r").arg(&repo).args(args));
    run(&["init"]);
    run(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("later.txt"), b"second generation").unwrap();
    run(&["backup", src.to_str().unwrap()]);
    let target = env.path("restored");
    run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
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
    ok(s3
        .cairn(&env)
        .arg("-r")
        .arg(env.repo())
        .args(["ship", &dest]));
    // Again: nothing new to send.
    let again = ok(s3
        .cairn(&env)
        .arg("-r")
        .arg(env.repo())
        .args(["ship", &dest, "--json"]));
    let last: serde_json::Value = serde_json::from_str(again.lines().last().unwrap()).unwrap();
    assert_eq!(last["files_uploaded"], 0, "{last}");
    // What the second, unchanged ship costs: no write, a few reads (proving the
    // destination holds this repository) and a listing or two.
    let t = &last["transactions"];
    assert_eq!(t["class_a"], 0, "{last}");
    assert!(t["class_b"].as_u64().unwrap() <= 5, "{last}");
    assert!(t["class_c"].as_u64().unwrap() <= 3, "{last}");
    let target = env.path("bare-machine");
    ok(s3.cairn(&env).arg("-r").arg(&dest).args([
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

/// A bucket that does not exist: one line naming it, exit 1, nothing created.
#[test]
fn a_missing_bucket_is_one_line() {
    let Some(s3) = S3Server::start() else { return };
    let env = Env::new();
    let out = s3
        .cairn(&env)
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
