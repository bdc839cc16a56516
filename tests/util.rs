//! Helpers for the CLI tests: a scratch directory, the real `cairn` binary with a clean
//! environment, and a tree snapshotter that compares contents and metadata.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("cairn-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// `cairn` with every CAIRN_* and B2_* variable cleared, then the test password
    /// and cheap key derivation set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CAIRN_") || k.starts_with("B2_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.env("CAIRN_PASSWORD", PASSWORD)
            .env("CAIRN_INSECURE_TEST_KDF", "1")
            .env("CAIRN_CACHE_DIR", self.dir.path().join("cache-default"))
            .current_dir(self.dir.path());
        c.stdin(Stdio::null());
        c
    }

    /// `cairn -r REPO`, arguments to follow.
    pub fn repo_cmd(&self) -> Command {
        let mut c = self.cmd();
        c.arg("-r").arg(self.repo());
        c
    }

    /// Runs `cairn -r REPO args...`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.repo_cmd().args(args).output().unwrap()
    }

    /// Runs and asserts the exit code; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "cairn {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn init(&self) {
        self.ok(&["init"]);
    }

    /// Backs up `paths`, returns the JSON summary.
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> serde_json::Value {
        let mut args: Vec<&str> = vec!["backup", "--json"];
        args.extend_from_slice(extra);
        let ps: Vec<String> = paths
            .iter()
            .map(|p| p.to_str().unwrap().to_string())
            .collect();
        args.extend(ps.iter().map(String::as_str));
        let out = self.ok(&args);
        json_last_line(&out)
    }

    /// The repository's pack files, largest first: where tests do their damage.
    pub fn packs_largest_first(&self) -> Vec<PathBuf> {
        let mut packs: Vec<(PathBuf, u64)> = self
            .repo_listing()
            .into_iter()
            .filter(|(p, _)| p.to_string_lossy().contains("/data/"))
            .collect();
        packs.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
        packs.into_iter().map(|(p, _)| p).collect()
    }

    /// Repository files with their sizes, to prove a command wrote nothing.
    pub fn repo_listing(&self) -> BTreeMap<PathBuf, u64> {
        let mut m = BTreeMap::new();
        list_files(&self.repo(), &mut m);
        m
    }
}

fn list_files(dir: &Path, m: &mut BTreeMap<PathBuf, u64>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                list_files(&p, m);
            } else {
                m.insert(p, meta.len());
            }
        }
    }
}

/// Copies a directory tree (files and directories only).
/// Every path below `dir` (symlinks not followed): to prove nothing was written where
/// it should not be.
pub fn all_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(all_paths(&p));
        }
        out.push(p);
    }
    out
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// `strace STRACE_ARGS cairn` with the environment `env.cmd()` gives cairn; cairn's own
/// arguments follow.
pub fn strace_cairn(env: &Env, strace_args: &[&str]) -> Command {
    let mut c = wrapping_cairn(env, "strace");
    c.args(strace_args).arg(env!("CARGO_BIN_EXE_cairn"));
    c
}

/// `program` (strace, script) set up to run cairn: the environment and working
/// directory `env.cmd()` would give cairn itself.
pub fn wrapping_cairn(env: &Env, program: &str) -> Command {
    let cairn = env.cmd();
    let mut c = Command::new(program);
    for (k, v) in cairn.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.current_dir(env.dir.path()).stdin(Stdio::null());
    c
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json_last_line(s: &str) -> serde_json::Value {
    let line = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Everything about one filesystem entry a restore must reproduce.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Meta {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub nlink: u64,
    pub link_target: Option<Vec<u8>>,
    pub content_hash: Option<String>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Index of the first path (in name order) sharing this inode: hardlink structure.
    pub link_group: usize,
}

/// Records every entry below `root` (relative raw-byte paths), directories included.
pub fn snapshot_tree(root: &Path) -> BTreeMap<Vec<u8>, Meta> {
    let mut raw = BTreeMap::new();
    walk(root, root, &mut raw);
    let mut first_by_inode: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (i, (path, (mut meta, dev, ino))) in raw.into_iter().enumerate() {
        meta.link_group = *first_by_inode.entry((dev, ino)).or_insert(i);
        out.insert(path, meta);
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, (Meta, u64, u64)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_file() {
            "file"
        } else {
            "device"
        };
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = xattr::list(&p)
            .map(|l| {
                l.filter_map(|n| {
                    xattr::get(&p, &n)
                        .ok()
                        .flatten()
                        .map(|v| (n.as_bytes().to_vec(), v))
                })
                .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        let meta = Meta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: if ft.is_file() { m.len() } else { 0 },
            mtime: (m.mtime(), m.mtime_nsec()),
            nlink: if ft.is_dir() { 0 } else { m.nlink() },
            link_target: ft.is_symlink().then(|| {
                std::fs::read_link(&p)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            }),
            content_hash: ft.is_file().then(|| hash_file(&p)),
            xattrs,
            link_group: 0,
        };
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        out.insert(rel, (meta, m.dev(), m.ino()));
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

fn hash_file(p: &Path) -> String {
    // Reading is done with O_NOATIME-free plain reads; atime is not compared.
    let data = std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    blake3::hash(&data).to_hex().to_string()
}

/// Asserts two trees are equal entry by entry, naming the first difference.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let ta = snapshot_tree(a);
    let tb = snapshot_tree(b);
    let ka: Vec<_> = ta.keys().collect();
    let kb: Vec<_> = tb.keys().collect();
    if ka != kb {
        let only_a: Vec<_> = ta
            .keys()
            .filter(|k| !tb.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .take(10)
            .collect();
        let only_b: Vec<_> = tb
            .keys()
            .filter(|k| !ta.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .take(10)
            .collect();
        panic!("entries differ: only in source {only_a:?}, only in restore {only_b:?}");
    }
    for (k, ma) in &ta {
        let mb = &tb[k];
        assert_eq!(
            ma,
            mb,
            "metadata of {:?} differs",
            String::from_utf8_lossy(k)
        );
    }
}

pub fn raw_path(base: &Path, name: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(name))
}

pub fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let ts = nix::sys::time::TimeSpec::new(secs, nanos);
    nix::sys::stat::utimensat(
        None,
        p,
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    // 2*seed+1: distinct seeds give distinct non-zero states.
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A `cairn-b2-emulator` process on loopback, stopped (SIGTERM) when dropped.
pub struct Emulator {
    pub url: String,
    child: std::process::Child,
}

impl Emulator {
    /// `cairn -r LOCATION` with this emulator's endpoint and default key: a B2
    /// location, or a local one when a test runs the same steps on both.
    pub fn cairn_at(&self, env: &Env, location: &str) -> Command {
        let mut c = env.cmd();
        self.credentials(&mut c).arg("-r").arg(location);
        c
    }

    /// Gives `c` (a cairn command) this emulator's endpoint and its default key.
    pub fn credentials<'c>(&self, c: &'c mut Command) -> &'c mut Command {
        c.env("B2_APPLICATION_KEY_ID", "testkeyid")
            .env("B2_APPLICATION_KEY", "testkey")
            .env("CAIRN_B2_ENDPOINT", &self.url)
    }

    pub fn start(data: &Path, extra: &[&str]) -> Emulator {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-b2-emulator"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Emulator { url, child }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// A raw HTTP/1.1 request (Connection: close); returns status, headers, body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&resp[..split]).into_owned();
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let hs: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        let mut body = resp[split + 4..].to_vec();
        if hs
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        (status, hs, body)
    }

    /// POSTs JSON to an API call with a token; returns status and parsed body.
    pub fn call(
        &self,
        version: u32,
        op: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let (st, _, b) = self.http(
            "POST",
            &format!("/b2api/v{version}/{op}"),
            &[("Authorization", token)],
            body.to_string().as_bytes(),
        );
        (
            st,
            serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Authorizes with the default test key on `version`; returns the reply.
    pub fn authorize(&self, version: u32) -> serde_json::Value {
        let (st, _, b) = self.http(
            "GET",
            &format!("/b2api/v{version}/b2_authorize_account"),
            &[("Authorization", "Basic dGVzdGtleWlkOnRlc3RrZXk=")],
            b"",
        );
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).unwrap()
    }

    /// The live (not hidden) file objects of `bucket`, through the default key.
    pub fn files(&self, bucket: &str) -> Vec<serde_json::Value> {
        self.listing("b2_list_file_names", bucket, "")
    }

    /// Every version (uploads, hide markers, unfinished large files) under `prefix`.
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<serde_json::Value> {
        self.listing("b2_list_file_versions", bucket, prefix)
    }

    fn listing(&self, op: &str, bucket: &str, prefix: &str) -> Vec<serde_json::Value> {
        let (token, id) = self.bucket(bucket);
        let (_, l) = self.call(
            2,
            op,
            &token,
            serde_json::json!({"bucketId": id, "prefix": prefix, "maxFileCount": 10000}),
        );
        l["files"].as_array().cloned().unwrap_or_default()
    }

    /// A token of the default key, and the ID of `bucket`.
    pub fn bucket(&self, bucket: &str) -> (String, String) {
        let auth = self.authorize(2);
        let token = auth["authorizationToken"].as_str().unwrap().to_string();
        let (_, buckets) = self.call(
            2,
            "b2_list_buckets",
            &token,
            serde_json::json!({"accountId": auth["accountId"], "bucketName": bucket}),
        );
        let id = buckets["buckets"][0]["bucketId"]
            .as_str()
            .unwrap()
            .to_string();
        (token, id)
    }

    /// An upload URL for `bucket_id` with `token`: its path on this emulator, and the
    /// upload token.
    pub fn upload_url(&self, token: &str, bucket_id: &serde_json::Value) -> (String, String) {
        let (_, up) = self.call(
            2,
            "b2_get_upload_url",
            token,
            serde_json::json!({"bucketId": bucket_id}),
        );
        let path = up["uploadUrl"]
            .as_str()
            .unwrap()
            .strip_prefix(&self.url)
            .unwrap()
            .to_string();
        (path, up["authorizationToken"].as_str().unwrap().to_string())
    }

    /// Authorizes key `id` with `secret` (v2); returns the status and the reply.
    pub fn authorize_key(&self, id: &str, secret: &str) -> (u16, serde_json::Value) {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let (st, _, b) = self.http(
            "GET",
            "/b2api/v2/b2_authorize_account",
            &[("Authorization", &format!("Basic {basic}"))],
            b"",
        );
        (st, serde_json::from_slice(&b).unwrap_or_default())
    }

    /// Uploads `body` under `name` straight through the B2 API (not through cairn), as
    /// an attacker with the bucket's key would; returns the HTTP status.
    pub fn plant(&self, bucket: &str, name: &str, body: &[u8]) -> u16 {
        let (token, bucket_id) = self.bucket(bucket);
        self.plant_with(&token, &bucket_id, name, body)
    }

    /// [`Emulator::plant`] with any key's `token`, into the bucket with ID `bucket_id`.
    pub fn plant_with(&self, token: &str, bucket_id: &str, name: &str, body: &[u8]) -> u16 {
        use sha1::Digest;
        let (path, up_token) = self.upload_url(token, &serde_json::json!(bucket_id));
        let encoded: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let sha = hex::encode(sha1::Sha1::digest(body));
        let (st, _, _) = self.http(
            "POST",
            &path,
            &[
                ("Authorization", &up_token),
                ("X-Bz-File-Name", &encoded),
                ("Content-Type", "b2/x-auto"),
                ("X-Bz-Content-Sha1", &sha),
            ],
            body,
        );
        st
    }

    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_slice(&self.http("GET", "/emulator/stats", &[], b"").2).unwrap()
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGTERM, then SIGKILL if the emulator has not exited within 10 s: a test must not
    /// hang on shutdown (seen once, when a test returned right after starting it).
    fn terminate(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("the emulator did not stop on SIGTERM within 10 s; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}

/// rclone configured for `emu` through environment variables (remote name `t`), or
/// None when rclone is not installed (outside CI, where .ci/run installs it).
pub fn rclone(emu: &Emulator) -> Option<Command> {
    if Command::new("rclone").arg("version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "rclone is missing: .ci/run must install it"
        );
        eprintln!("skipped: rclone is not installed here (Debian package rclone)");
        return None;
    }
    let mut c = Command::new("rclone");
    c.env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_T_TYPE", "b2")
        .env("RCLONE_CONFIG_T_ACCOUNT", "testkeyid")
        .env("RCLONE_CONFIG_T_KEY", "testkey")
        .env("RCLONE_CONFIG_T_ENDPOINT", &emu.url)
        .stdin(Stdio::null());
    Some(c)
}

/// The official b2 command-line tool (PyPI package `b2`) pointed at `emu`, with its
/// account file under `env`: `CAIRN_B2_CLI` names it (.ci/run installs it), else `b2`
/// on PATH; None when neither exists (outside CI).
pub fn b2_cli(env: &Env, emu: &Emulator) -> Option<Command> {
    let bin = std::env::var("CAIRN_B2_CLI").unwrap_or_else(|_| "b2".into());
    if Command::new(&bin).arg("version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "the b2 CLI is missing: .ci/run must install it"
        );
        eprintln!("skipped: the b2 CLI is not installed here (pip install b2; CAIRN_B2_CLI)");
        return None;
    }
    let mut c = Command::new(bin);
    c.env("B2_ACCOUNT_INFO", env.path("b2-account.sqlite"))
        .env("B2_ENVIRONMENT", &emu.url)
        .env_remove("B2_APPLICATION_KEY_ID")
        .env_remove("B2_APPLICATION_KEY")
        .stdin(Stdio::null());
    Some(c)
}

/// Backs up `src` to `repo` with `cairn()` while `outage` (called once the backup is
/// under way) takes the store away and brings it back. The backup must ride it out or
/// fail in one line; then the next run finishes, `check --read-data` passes and the
/// restore is byte for byte.
pub fn backup_through_outage(
    env: &Env,
    cairn: &dyn Fn() -> Command,
    repo: &str,
    src: &Path,
    outage: impl FnOnce(),
) {
    let run = |args: &[&str]| {
        let out = cairn().arg("-r").arg(repo).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    };
    let mut child = cairn()
        .arg("-r")
        .arg(repo)
        .args(["backup", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup ended before the outage"
    );
    outage();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let err = stderr(&out);
        eprintln!("the backup stopped: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        run(&["backup", src.to_str().unwrap()]);
    }
    run(&["check", "--read-data"]);
    restore_latest_matches(cairn(), repo, src, &env.path("restored-after-outage"));
}

/// Runs `c` and asserts it succeeded; its stdout.
pub fn succeeds(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{c:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `restore latest` of `repo` through `c` into `target`, which must then hold `src`
/// (under its absolute path) byte for byte and metadata for metadata.
pub fn restore_latest_matches(
    mut c: Command,
    repo: impl AsRef<std::ffi::OsStr>,
    src: &Path,
    target: &Path,
) {
    succeeds(
        c.arg("-r")
            .arg(repo)
            .args(["restore", "latest", "--target"])
            .arg(target),
    );
    assert_same_tree(src, &target.join(src.strip_prefix("/").unwrap()));
}

/// The offsite copy is the last copy: `ship(extra)` (another repository's ship to a
/// destination that holds one) is refused in one line, exit 1, naming both
/// repositories and saying nothing was written or deleted: as a dry run, as it is,
/// with `--allow-deletes` and with `--create-bucket` too.
pub fn assert_ship_refused_as_another_repository(ship: &dyn Fn(&[&str]) -> Output) {
    for extra in [
        &["--dry-run"][..],
        &[],
        &["--allow-deletes"],
        &["--allow-deletes", "--create-bucket"],
    ] {
        let out = ship(extra);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(
            e.contains("refusing to ship")
                && e.contains("another repository")
                && e.contains("nothing was written or deleted"),
            "{e}"
        );
        // The same password opens the old copy: both repository IDs are named.
        let theirs = e.split("another repository ").nth(1).unwrap_or("");
        assert!(
            theirs.len() > 32 && theirs[..32].bytes().all(|c| c.is_ascii_hexdigit()),
            "{e}"
        );
    }
}
