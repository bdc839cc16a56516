//! A real S3 server for tests: moto in server mode on loopback (`CAIRN_MOTO_SERVER`
//! names its binary; .ci/run installs it). Used by this crate's tests and the CLI's.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    pub port: u16,
    /// Serving https with a certificate from a throwaway CA: the CA's PEM file.
    pub ca: Option<std::path::PathBuf>,
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
        Self::start_with(None)
    }

    /// A server on https, its certificate (for 127.0.0.1) issued by a CA made for it
    /// in `dir` with openssl; `ca` is that CA, what AWS_CA_BUNDLE would name.
    pub fn start_tls(dir: &std::path::Path) -> Option<S3Server> {
        std::fs::create_dir_all(dir).unwrap();
        let f = |n: &str| dir.join(n).to_str().unwrap().to_string();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let (ca_key, ca, key, csr, cert, ext) = (
            f("ca.key"),
            f("ca.pem"),
            f("server.key"),
            f("server.csr"),
            f("server.pem"),
            f("ext.cnf"),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=cairn test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
        let mut s = Self::start_with(Some((&cert, &key)))?;
        s.ca = Some(dir.join("ca.pem"));
        Some(s)
    }

    fn start_with(tls: Option<(&str, &str)>) -> Option<S3Server> {
        let bin = std::env::var("CAIRN_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = cairn_backend::testing::free_port()?;
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((cert, key)) = tls {
            cmd.args(["-c", cert, "-k", key]);
        }
        let child = match cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
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
        let s = S3Server {
            child,
            port,
            ca: None,
        };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s)
    }

    /// `PUT /bucket` (moto checks no signature; cairn makes no buckets), through
    /// moto's own Python for https.
    pub fn make_bucket(&self, bucket: &str) {
        if self.ca.is_some() {
            self.python(&format!(
                "import http.client,ssl\nc=http.client.HTTPSConnection('127.0.0.1',{},context=ssl._create_unverified_context())\nc.request('PUT','/{bucket}')\nr=c.getresponse()\nassert r.status==200,r.status",
                self.port
            ));
            return;
        }
        // A server still starting on a busy machine may drop the first connections.
        let put = || -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
            write!(
                s,
                "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.port
            )?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            Ok(reply)
        };
        let mut tries = 0;
        let reply = loop {
            match put() {
                Ok(r) => break r,
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("making bucket {bucket}: {e}; again");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("making bucket {bucket}: {e}"),
            }
        };
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    /// Makes two IAM users with keys, `writer` (every S3 action) and `reader`
    /// (GetObject and ListBucket only), and from then on has moto check every request's
    /// signature and the user's policy. Returns ((id, secret) of the writer, (id,
    /// secret) of the reader).
    ///
    /// moto checks a signed query against the query as sent while SigV4 signers (and
    /// AWS) use its encoded form, so with checks on, OpenDAL's listings (`delimiter=/`)
    /// are refused there: tests set up what they need before calling this.
    #[allow(clippy::type_complexity)]
    pub fn guard(&self) -> ((String, String), (String, String)) {
        let script = format!(
            r#"
import boto3, json, urllib.request
ep = "http://127.0.0.1:{port}"
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
keys = []
for user, actions in [("writer", ["s3:*"]), ("reader", ["s3:GetObject", "s3:ListBucket"])]:
    iam.create_user(UserName=user)
    policy = {{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": actions, "Resource": "*"}}]}}
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName=user)["AccessKey"]
    keys.append([k["AccessKeyId"], k["SecretAccessKey"]])
urllib.request.urlopen(urllib.request.Request(ep + "/moto-api/reset-auth", data=b"0", method="POST", headers={{"Content-Type": "text/plain"}})).read()
print(json.dumps(keys))
"#,
            port = self.port
        );
        let keys: Vec<Vec<String>> = serde_json::from_str(&self.python(&script)).unwrap();
        let pair = |i: usize| (keys[i][0].clone(), keys[i][1].clone());
        (pair(0), pair(1))
    }

    /// Runs `script` in moto's own Python (which has boto3), which must succeed;
    /// returns what it printed. (Debian's rclone and boto3 alike refuse a custom
    /// AWS_CA_BUNDLE that does not fit, so none is passed on.)
    pub fn python(&self, script: &str) -> String {
        let bin = std::env::var("CAIRN_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let python = std::path::Path::new(&bin).with_file_name("python3");
        let out = Command::new(python)
            .args(["-c", script])
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`S3Server::python`] with `s3`, a boto3 client of this (plain http) server.
    pub fn boto(&self, script: &str) -> String {
        self.python(&format!(
            "import boto3, json, datetime\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n{script}",
            self.port
        ))
    }

    /// `s3:http[s]://127.0.0.1:PORT/REST`.
    pub fn location(&self, rest: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("s3:{scheme}://127.0.0.1:{}/{rest}", self.port)
    }
}

/// A TCP relay in front of a server that can be killed and brought back on the same
/// port: from the client's side, the store dies (every connection reset, new ones
/// refused) and restarts with its data intact, as a MinIO or Ceph gateway does.
pub struct Relay {
    pub port: u16,
    target: u16,
    state: std::sync::Arc<RelayState>,
}

#[derive(Default)]
struct RelayState {
    up: std::sync::atomic::AtomicBool,
    /// Bumped on every stop, so the accept loop of an earlier life ends.
    life: std::sync::atomic::AtomicU64,
    conns: std::sync::Mutex<Vec<TcpStream>>,
    /// Request lines seen from clients ("GET /bucket/key?..."), in order.
    requests: std::sync::Mutex<Vec<String>>,
}

impl Relay {
    pub fn start(target: u16) -> Relay {
        let port = cairn_backend::testing::free_port().expect("a free port");
        let r = Relay {
            port,
            target,
            state: Default::default(),
        };
        r.restart();
        r
    }

    /// The requests relayed so far (method and target), and forgets them.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.state.requests.lock().unwrap())
    }

    /// Closes the port and cuts every open connection.
    pub fn kill(&self) {
        use std::sync::atomic::Ordering;
        self.state.up.store(false, Ordering::SeqCst);
        self.state.life.fetch_add(1, Ordering::SeqCst);
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // The accept loop polls every 20 ms; give it time to drop the listener.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Listens again on the same port.
    pub fn restart(&self) {
        use std::sync::atomic::Ordering;
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        listener.set_nonblocking(true).unwrap();
        self.state.up.store(true, Ordering::SeqCst);
        let (state, target) = (std::sync::Arc::clone(&self.state), self.target);
        let life = state.life.load(Ordering::SeqCst);
        std::thread::spawn(move || loop {
            if state.life.load(Ordering::SeqCst) != life {
                return;
            }
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = client.set_nonblocking(false);
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let mut conns = state.conns.lock().unwrap();
            for s in [&client, &server] {
                conns.push(s.try_clone().unwrap());
            }
            drop(conns);
            for (up, mut from, mut to) in [
                (
                    true,
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                ),
                (false, server, client),
            ] {
                let state = std::sync::Arc::clone(&state);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if up {
                            note_requests(&state, &buf[..n]);
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Request lines at the start of lines in what a client sent (bodies are encrypted
/// bytes, where "GET /" at a line start is as good as impossible).
fn note_requests(state: &RelayState, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut seen = state.requests.lock().unwrap();
    for line in text.split("\r\n") {
        for method in ["GET ", "HEAD ", "PUT ", "POST ", "DELETE "] {
            if let Some(rest) = line.strip_prefix(method) {
                if rest.starts_with('/') && rest.ends_with(" HTTP/1.1") {
                    seen.push(line.trim_end_matches(" HTTP/1.1").to_string());
                }
            }
        }
    }
}
