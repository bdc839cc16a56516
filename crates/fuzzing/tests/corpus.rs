//! The CI fuzz run: every target over its committed seed corpus (`fuzz/corpus/`) plus
//! deterministic mutations (CAIRN_FUZZ_ITERS per target, 20,000 by default; the seed is
//! CAIRN_FUZZ_SEED, printed, so a failure replays). Runs under an allocator that fails
//! any single allocation above 256 MiB. `cargo test -p cairn-fuzzing -- --ignored
//! write_seed_corpus` regenerates the seeds from the encoders.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;

use cairn_fuzzing::{decode, mutate, Rng, TARGETS};

/// Fails (aborts with a message) on any allocation a hostile length field could cause.
struct Capped;

const CAP: usize = 256 << 20;

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > CAP {
            eprintln!(
                "allocation of {} bytes: a decoder trusted a length it was given",
                l.size()
            );
            std::process::abort();
        }
        // SAFETY: the caller's contract for GlobalAlloc::alloc, passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above, for dealloc.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > CAP {
            eprintln!("reallocation to {new} bytes: a decoder trusted a length it was given");
            std::process::abort();
        }
        // SAFETY: as above, for realloc.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the seed corpus is committed)",
                corpus_dir(target).display()
            )
        })
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, d)| d).collect()
}

#[test]
fn every_decoder_survives_its_corpus_and_mutations() {
    let iters: usize = std::env::var("CAIRN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("CAIRN_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    eprintln!("CAIRN_FUZZ_SEED={seed} CAIRN_FUZZ_ITERS={iters}");
    let mut total = 0usize;
    for target in TARGETS {
        let corpus = seeds(target);
        assert!(!corpus.is_empty(), "{target}: empty seed corpus");
        let mut rng = Rng(seed ^ target.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
        for s in &corpus {
            decode(target, s);
        }
        for _ in 0..iters {
            let a = &corpus[rng.below(corpus.len())];
            let b = &corpus[rng.below(corpus.len())];
            let input = mutate(&mut rng, a, b);
            let run = std::panic::catch_unwind(|| decode(target, &input));
            if run.is_err() {
                let path = std::env::temp_dir().join(format!("cairn-fuzz-crash-{target}"));
                std::fs::write(&path, &input).unwrap();
                panic!(
                    "{target}: decoder panicked on the input saved at {}",
                    path.display()
                );
            }
        }
        total += corpus.len() + iters;
    }
    eprintln!("{total} inputs decoded without a panic");
}

/// Writes `fuzz/corpus/<target>/seed-N` from the encoders (valid inputs the mutations
/// start from). Run by hand when a format changes; the files are committed.
#[test]
#[ignore]
fn write_seed_corpus() {
    use cairn_format::*;
    let time = chrono::DateTime::parse_from_rfc3339("2026-11-22T07:00:00.123456789+01:00").unwrap();
    let id = |b: u8| [b; ID_LEN];
    let entry = |b: u8, off: u32, t: BlobType| PackEntry {
        blob_type: t,
        compressed: b.is_multiple_of(2),
        id: BlobId(id(b)),
        offset: off,
        length: 100,
        raw_length: 80,
    };
    let mut file = Node::new(RawBytes(b"file.txt".to_vec()), NodeType::File);
    file.size = 12345;
    file.content = vec![BlobId(id(1)), BlobId(id(2))];
    file.mtime = Timestamp(1_700_000_000, 5);
    let mut dir = Node::new(RawBytes(b"sub\xff".to_vec()), NodeType::Dir);
    dir.subtree = Some(BlobId(id(3)));
    let mut link = Node::new(RawBytes(b"link".to_vec()), NodeType::Symlink);
    link.link_target = RawBytes(b"../x".to_vec());
    link.xattrs = vec![Xattr {
        name: RawBytes(b"user.a".to_vec()),
        value: RawBytes(b"v".to_vec()),
    }];
    let tree = Tree {
        nodes: vec![file, dir, link],
    };
    let mut snap = Snapshot::new(
        time,
        BlobId(id(9)),
        vec!["/home/me".into()],
        "laptop".into(),
    );
    snap.tags = vec!["daily".into()];
    snap.parent = Some(SnapshotId(id(8)));
    let keyfile = KeyFile {
        version: 1,
        created: time,
        hostname: "laptop".into(),
        username: "me".into(),
        kdf: "argon2id".into(),
        memory_kib: 65536,
        iterations: 3,
        parallelism: 1,
        salt: "00".repeat(16),
        data: "ab".repeat(104),
    };
    let config = Config {
        version: FORMAT_VERSION,
        id: "cd".repeat(32),
        chunker_min_size: 512 << 10,
        chunker_avg_size: 1 << 20,
        chunker_max_size: 8 << 20,
        compression: CompressionMode::Auto,
        pack_size_mib: 16,
        lock: Some(cairn_format::LockSettings {
            days: 30,
            mode: cairn_format::RetentionMode::Governance,
        }),
    };
    let index = IndexFile {
        marked: Vec::new(),
        supersedes: vec![IndexId(id(4))],
        packs: vec![IndexPack {
            id: PackId(id(5)),
            size: 4096,
            blobs: vec![entry(1, 0, BlobType::Data), entry(2, 100, BlobType::Tree)],
        }],
    };
    let lock = Lock {
        started: None,
        kind: None,
        time,
        exclusive: true,
        hostname: "laptop".into(),
        username: "me".into(),
        pid: 4242,
        command: "prune".into(),
    };
    let drill = DrillRecord {
        time,
        hostname: "laptop".into(),
        location: "b2:bucket/prefix".into(),
        snapshots: vec!["ef".repeat(32)],
        files_checked: 20,
        bytes_checked: 1 << 30,
        packs_checked: 3,
        ok: false,
        failures: vec!["snapshot ab: /x: differs".into()],
        program_version: "cairn 0.1.0".into(),
    };
    let mut verified = VerifiedRecord::default();
    verified
        .locations
        .entry("/mnt/ssd/repo".into())
        .or_default()
        .insert("12".repeat(32), 1_795_000_000_000);
    let key = cairn_fuzzing::fuzz_key();
    let sealed = |purpose: u8, plain: &[u8]| {
        let mut v = vec![purpose];
        v.extend(key.seal(&[purpose], plain).unwrap());
        v
    };
    let b2 = [
        r#"{"fileId":"4_z1","fileName":"data/ab/abcd","contentLength":123,"contentSha1":"unverified:A9993E364706816ABA3E25717850C26C9CD0D89D","action":"upload","uploadTimestamp":1700000000000,"fileInfo":{"src_last_modified_millis":"1700000000123"},"contentType":"application/octet-stream"}"#,
        r#"{"files":[{"fileId":"4_z2","fileName":"big","size":9000000000,"contentSha1":"none","action":"upload","fileInfo":{"large_file_sha1":"a9993e364706816aba3e25717850c26c9cd0d89d"}},{"fileName":"gone","action":"hide"},{"fileName":"dir/","action":"folder"}],"nextFileName":"h","nextFileId":null}"#,
        r#"{"status":503,"code":"service_unavailable","message":"busy"}"#,
    ];
    let corpus: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("keyfile", vec![keyfile.encode()]),
        ("config", vec![config.encode()]),
        (
            "pack_header",
            vec![
                encode_header(&[entry(1, 0, BlobType::Data), entry(2, 100, BlobType::Tree)]),
                encode_header(&[]),
            ],
        ),
        ("index", vec![index.encode(), IndexFile::default().encode()]),
        ("tree", vec![tree.encode(), Tree { nodes: vec![] }.encode()]),
        ("snapshot", vec![snap.encode()]),
        ("lock", vec![lock.encode()]),
        ("drill_record", vec![drill.encode()]),
        ("verified_record", vec![verified.encode()]),
        ("sealed", vec![sealed(1, &tree.encode()), sealed(2, b"")]),
        (
            "b2_json",
            b2.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ),
    ];
    for (target, seeds) in corpus {
        assert!(TARGETS.contains(&target));
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
}
