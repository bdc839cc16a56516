//! Memory and time of the real `cairn` binary on a repository of N blobs (default
//! 10 million; give several: `cargo bench --bench scale -- 10000000 50000000`).
//!
//! For each N: a repository in $BENCH_DIR (default the system temp dir: use a real
//! disk, not tmpfs) holds one real snapshot of a small source tree (2,000 files) and
//! N synthetic blobs listed in index files, 128 to a pack. Their packs are not written:
//! open, backup and restore never read them; prune plans with `--dry-run`, then runs
//! for real and retires them all (marks them in a new index, deletes them, writes the
//! index again). Each command's peak anonymous
//! memory (RssAnon, the heap: what the index must not grow) and peak total RSS (mapped
//! cache pages included, which the kernel can drop) are sampled from /proc every 5 ms.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_backend::{Backend, LocalBackend};
use cairn_format::{BlobId, BlobType, IndexFile, IndexPack, PackEntry, PackId};
use cairn_repo::{FileKind, OpenOptions, Repository};

const BLOBS_PER_PACK: usize = 128;
const PACKS_PER_FILE: usize = 2_000;

struct Run {
    secs: f64,
    anon_kib: u64,
    rss_kib: u64,
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs cairn with `args`, sampling its memory until it exits.
fn run(env: &Env, args: &[&str]) -> Run {
    let t = Instant::now();
    let mut child = env.cairn().args(args).spawn().expect("spawn cairn");
    let (mut anon, mut rss) = (0, 0);
    loop {
        anon = anon.max(status_kib(child.id(), "RssAnon:").unwrap_or(0));
        rss = rss.max(status_kib(child.id(), "VmRSS:").unwrap_or(0));
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "cairn {args:?} failed: {st}");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Run {
        secs: t.elapsed().as_secs_f64(),
        anon_kib: anon,
        rss_kib: rss,
    }
}

struct Env {
    dir: PathBuf,
}

impl Env {
    fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }

    fn cairn(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.arg("-r")
            .arg(self.repo())
            .arg("--quiet")
            .env("CAIRN_PASSWORD", "bench")
            .env("CAIRN_INSECURE_TEST_KDF", "1")
            .env("HOME", self.dir.join("home"))
            .env("XDG_CACHE_HOME", self.dir.join("home/.cache"))
            .stdout(std::process::Stdio::null());
        c
    }
}

/// 2,000 files of 4-64 KiB of random-looking bytes.
fn make_source(dir: &Path) {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for d in 0..20 {
        let sub = dir.join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for f in 0..100 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 4096 + (x % 61_440) as usize;
            let data: Vec<u8> = (0..len)
                .map(|i| (x.rotate_left(i as u32 % 64) >> 3) as u8 ^ i as u8)
                .collect();
            std::fs::write(sub.join(format!("f{f:03}")), data).expect("write");
        }
    }
}

/// Index files listing `n` synthetic blobs, written through the library.
fn add_synthetic_blobs(env: &Env, n: usize) {
    std::env::set_var("CAIRN_INSECURE_TEST_KDF", "1");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(env.repo()));
    let repo = Repository::open_with(backend, b"bench", &OpenOptions::default()).expect("open");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut made = 0;
    while made < n {
        let mut f = IndexFile::default();
        while made < n && f.packs.len() < PACKS_PER_FILE {
            let mut pid = [0u8; 32];
            for c in pid.chunks_mut(8) {
                c.copy_from_slice(&next().to_le_bytes());
            }
            let count = BLOBS_PER_PACK.min(n - made);
            let blobs = (0..count)
                .map(|i| {
                    let mut id = [0u8; 32];
                    for c in id.chunks_mut(8) {
                        c.copy_from_slice(&next().to_le_bytes());
                    }
                    PackEntry {
                        blob_type: BlobType::Data,
                        compressed: true,
                        id: BlobId(id),
                        offset: (i * 100_000) as u32,
                        length: 90_000,
                        raw_length: 100_000,
                    }
                })
                .collect();
            f.packs.push(IndexPack {
                id: PackId(pid),
                size: (count * 100_000) as u64,
                blobs,
            });
            made += count;
        }
        repo.save_file(FileKind::Index, &f.encode())
            .expect("index file");
    }
}

fn report(what: &str, n: usize, r: &Run) {
    println!(
        "{what:<34} {:>7.2} s  RssAnon {:>8.1} MiB ({:>5.2} B/blob)  RSS {:>8.1} MiB",
        r.secs,
        r.anon_kib as f64 / 1024.0,
        r.anon_kib as f64 * 1024.0 / n as f64,
        r.rss_kib as f64 / 1024.0
    );
}

fn bench(n: usize) {
    let base =
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let env = Env {
        dir: dir.path().to_path_buf(),
    };
    let src = env.dir.join("src");
    make_source(&src);
    let st = env.cairn().arg("init").status().expect("init");
    assert!(st.success());
    let t = Instant::now();
    add_synthetic_blobs(&env, n);
    println!(
        "\n{n} synthetic blobs written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let src_s = src.display().to_string();
    let one = format!("{src_s}/d07/f042");
    let target = env.dir.join("restored");
    let target_s = target.display().to_string();
    let restore = [
        "restore",
        "latest",
        "--target",
        &target_s,
        "--include",
        &one,
    ];

    report(
        "first backup (builds the cache)",
        n,
        &run(&env, &["backup", &src_s]),
    );
    report(
        "unchanged backup (warm)",
        n,
        &run(&env, &["backup", &src_s]),
    );
    report("restore one file (warm)", n, &run(&env, &restore));
    report(
        "restore one file (--no-cache: heap)",
        n,
        &run(&env, &[&["--no-cache"][..], &restore[..]].concat()),
    );
    std::fs::remove_dir_all(env.dir.join("home/.cache")).expect("drop cache");
    report("restore one file (cold cache)", n, &run(&env, &restore));
    report("prune --dry-run", n, &run(&env, &["prune", "--dry-run"]));
    // Every synthetic pack is unused: prune marks them all in a new index, deletes
    // them (nothing else runs) and writes the index again without them.
    report(
        "prune (retires every synthetic pack)",
        n,
        &run(&env, &["prune"]),
    );
    report("restore one file after prune", n, &run(&env, &restore));
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    for n in if sizes.is_empty() {
        vec![10_000_000]
    } else {
        sizes
    } {
        bench(n);
    }
}
