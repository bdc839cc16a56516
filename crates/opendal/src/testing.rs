//! A real S3 server for tests: moto in server mode on loopback (`CAIRN_MOTO_SERVER`
//! names its binary; .ci/run installs it). Used by this crate's tests and the CLI's.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// A fresh server, or `None` (saying why) where moto is not installed; under CI
    /// (`CI` set) a missing server is a failure, not a skip.
    pub fn start() -> Option<S3Server> {
        let bin = std::env::var("CAIRN_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
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

    /// `PUT /bucket` (moto checks no signature; cairn makes no buckets).
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

    /// `s3:http://127.0.0.1:PORT/REST`.
    pub fn location(&self, rest: &str) -> String {
        format!("s3:http://127.0.0.1:{}/{rest}", self.port)
    }
}
