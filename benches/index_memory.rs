//! Memory and load time of the in-memory index with N synthetic blobs (default 10
//! million). Run: `cargo bench --bench index_memory [-- N]`.
//!
//! Reports heap bytes per blob held by `Index`, the process's peak RSS, how long
//! decoding the index files and building the index takes, and then the whole real
//! path: the same index files sealed into a local repository (in $BENCH_DIR, default
//! the system temp dir), opened with the real key derivation and loaded from disk
//! (read, hash-checked, unsealed, decompressed, decoded, built).

use std::sync::Arc;
use std::time::Instant;

use cairn_backend::{Backend, LocalBackend};
use cairn_format::{BlobId, BlobType, IndexFile, IndexPack, PackEntry, PackId};
use cairn_repo::{FileKind, Index, IndexPart, InitOptions, Repository};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // The allocator as cairn's own main sets it, so peaks are what the binary would see.
    cairn_cli::one_malloc_arena();
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    const BLOBS_PER_PACK: usize = 16;
    const PACKS_PER_FILE: usize = 20_000;
    // Synthetic index files as a backup would write them: 16 blobs per pack (1 MiB
    // average blobs in 16 MiB packs), random-looking IDs.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut files = Vec::new();
    let mut made = 0usize;
    while made < n {
        let mut f = IndexFile::default();
        while made < n && f.packs.len() < PACKS_PER_FILE {
            let mut pid = [0u8; 32];
            pid[..8].copy_from_slice(&next().to_le_bytes());
            let mut blobs = Vec::with_capacity(BLOBS_PER_PACK);
            for i in 0..BLOBS_PER_PACK.min(n - made) {
                let mut id = [0u8; 32];
                for c in id.chunks_mut(8) {
                    c.copy_from_slice(&next().to_le_bytes());
                }
                blobs.push(PackEntry {
                    blob_type: BlobType::Data,
                    compressed: true,
                    id: BlobId(id),
                    offset: (i * 1_048_576) as u32,
                    length: 1_000_000,
                    raw_length: 1_048_576,
                });
                made += 1;
            }
            f.packs.push(IndexPack {
                id: PackId(pid),
                size: 17 << 20,
                blobs,
            });
        }
        files.push(f.encode());
    }
    let encoded: usize = files.iter().map(Vec::len).sum();
    let rss_before = vm_hwm_kib();

    let t = Instant::now();
    let mut index = Index::new();
    for bytes in &files {
        index.add_part(IndexPart::decode(bytes).expect("decode"));
    }
    index.finish_loading();
    let load = t.elapsed();

    let t = Instant::now();
    let mut hits = 0;
    let mut probe: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..1_000_000 {
        probe ^= probe << 13;
        probe ^= probe >> 7;
        probe ^= probe << 17;
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&probe.to_le_bytes());
        hits += usize::from(index.contains(&BlobId(id)));
    }
    let lookup = t.elapsed();

    let heap = index.heap_bytes();
    let blobs = index.len();
    drop(index);

    // The real path: the same files as a repository's index/ directory.
    let dir = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .expect("tempdir");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let repo = Repository::init(backend.clone(), b"bench", &InitOptions::default()).expect("init");
    for bytes in &files {
        repo.save_file(FileKind::Index, bytes)
            .expect("save index file");
    }
    drop(files);
    drop(repo);
    let hwm_before_open = vm_hwm_kib();
    // Reset the peak (Linux: "5" to clear_refs) so the load's own peak is measured.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_floor = vm_hwm_kib();
    let t = Instant::now();
    let repo = Repository::open(backend, b"bench").expect("open");
    let opened = t.elapsed();
    repo.load_index().expect("load index");
    let open_load = t.elapsed();
    let loaded = repo.index().len();
    let load_peak = vm_hwm_kib();

    println!("blobs:                 {blobs}");
    println!("entry size:            {} bytes", Index::ENTRY_BYTES);
    println!(
        "index heap:            {:.1} MiB = {:.1} bytes/blob",
        heap as f64 / 1048576.0,
        heap as f64 / blobs as f64
    );
    println!(
        "encoded index files:   {:.1} MiB ({} files)",
        encoded as f64 / 1048576.0,
        n.div_ceil(BLOBS_PER_PACK * PACKS_PER_FILE)
    );
    println!("decode + build + sort: {:.2} s (files already in memory; decoding on one thread, sorting on all cores)", load.as_secs_f64());
    println!(
        "1M random lookups:     {:.2} s ({hits} hits)",
        lookup.as_secs_f64()
    );
    println!(
        "peak RSS (in memory):  {:.1} MiB (of which {:.1} MiB were the encoded files)",
        hwm_before_open as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    println!(
        "open repository:       {:.2} s (key derivation)",
        opened.as_secs_f64()
    );
    println!(
        "open + load index:     {:.2} s ({loaded} blobs from disk: read, unseal, decode, build)",
        open_load.as_secs_f64()
    );
    println!(
        "peak RSS of the load:  {:.1} MiB above the {:.1} MiB before it",
        load_peak.saturating_sub(rss_floor) as f64 / 1024.0,
        rss_floor as f64 / 1024.0
    );
}
