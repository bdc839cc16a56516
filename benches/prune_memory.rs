//! Peak memory of `cairn prune` on a repository of N blobs (default 1 million).
//! Run: `cargo bench --bench prune_memory [-- N]`.
//!
//! Builds the repository through the library (N distinct 64-byte data blobs in
//! directories of 1,000 files, one blob per file), keeps two snapshots, one with
//! every file and one with half, forgets the first, then runs the real `cairn prune`
//! binary under /usr/bin/time and reports its peak RSS and wall time.

use std::sync::Arc;
use std::time::Instant;

use cairn_backend::{Backend, LocalBackend};
use cairn_format::{BlobType, Node, NodeType, Snapshot, Tree};
use cairn_repo::{InitOptions, Repository};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repo");
    std::env::set_var("CAIRN_INSECURE_TEST_KDF", "1");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&path));
    let repo = Repository::init(backend, b"bench", &InitOptions::default()).expect("init");
    let t = Instant::now();
    let mut dirs_all = Vec::new();
    let mut dirs_half = Vec::new();
    let per_dir = 1000;
    for d in 0..n.div_ceil(per_dir) {
        let mut nodes = Vec::new();
        for f in 0..per_dir.min(n - d * per_dir) {
            let i = d * per_dir + f;
            let mut data = [0u8; 64];
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let (id, _) = repo.save_blob(BlobType::Data, &data).expect("blob");
            let mut node = Node::new(format!("f{f:04}").as_str().into(), NodeType::File);
            node.mode = 0o644;
            node.size = 64;
            node.content = vec![id];
            nodes.push(node);
        }
        let half: Vec<Node> = nodes
            .iter()
            .filter(|n| n.name.as_slice().last().is_some_and(|c| c % 2 == 0))
            .cloned()
            .collect();
        for (list, ns) in [(&mut dirs_all, nodes), (&mut dirs_half, half)] {
            let (tid, _) = repo.save_tree(&Tree { nodes: ns }).expect("tree");
            let mut dn = Node::new(format!("d{d:05}").as_str().into(), NodeType::Dir);
            dn.mode = 0o755;
            dn.subtree = Some(tid);
            list.push(dn);
        }
    }
    let mut ids = Vec::new();
    for nodes in [dirs_all, dirs_half] {
        let (root, _) = repo.save_tree(&Tree { nodes }).expect("root");
        repo.flush().expect("flush");
        repo.save_index().expect("index");
        let snap = Snapshot::new(
            chrono::Local::now().fixed_offset(),
            root,
            vec!["/bench".into()],
            "bench".into(),
        );
        ids.push(repo.save_snapshot(&snap).expect("snapshot"));
    }
    repo.remove_file(cairn_repo::FileKind::Snapshot, &ids[0].into())
        .expect("forget");
    println!(
        "built repository with {n} data blobs in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(&path)
        .args(["prune", "--json"])
        .args(
            std::env::var("PRUNE_EXTRA")
                .ok()
                .as_deref()
                .map(|a| vec![a])
                .unwrap_or_default(),
        )
        .env("CAIRN_PASSWORD", "bench")
        .output()
        .expect("run cairn prune (is /usr/bin/time installed?)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or("");
    let mut it = last.split_whitespace();
    let secs: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let kib: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    println!("prune: {}", String::from_utf8_lossy(&out.stdout).trim());
    println!(
        "prune of {n} blobs (half unused): {secs:.1} s, peak RSS {:.1} MiB ({:.0} bytes/blob)",
        kib as f64 / 1024.0,
        kib as f64 * 1024.0 / n as f64
    );
}
