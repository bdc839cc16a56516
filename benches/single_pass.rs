//! The raw single-pass limit of a first backup on this machine: every file of a tree
//! read once, cut into 1 MiB blocks, each block hashed (keyed BLAKE3), compressed where
//! the probe says so (zstd level 3, cairn's policy) and sealed (XChaCha20-Poly1305), on
//! all cores, with nothing stored and no chunking. A backup cannot be faster than this
//! with the same algorithms; issue 7 asks cairn's first backup to be within 1.5x of it.
//!
//! Run: `cargo bench --bench single_pass -- DIR [--mode blocks|chunk]`
//! (benches/compare.sh times `--mode blocks` as the `single pass` line of its table).
//! Prints seconds and MiB/s for fixed blocks, and with FastCDC chunking instead
//! (`chunk`), which is cairn's real path minus storage.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

fn files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args
        .iter()
        .position(|a| a == "--mode")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let Some(dir) = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--mode"))
        .map(|(_, a)| PathBuf::from(a))
    else {
        eprintln!("usage: cargo bench --bench single_pass -- DIR [--mode blocks|chunk]");
        std::process::exit(2);
    };
    let modes: Vec<&str> = match mode.as_deref() {
        Some(m) => vec![if m == "chunk" { "chunk" } else { "blocks" }],
        None => vec!["blocks", "chunk"],
    };
    let key = cairn_crypto::MasterKey::generate().expect("key");
    let chunker =
        cairn_chunker::Chunker::new(&key.gear_table(), cairn_chunker::ChunkerParams::DEFAULT)
            .expect("chunker");
    let list = files(&dir);
    let encode = |parts: &[&[u8]]| {
        let _id = key.blob_id_parts(parts);
        // One output buffer per thread, as cairn's backup keeps.
        thread_local!(static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
        OUT.with(|out| {
            let mut out = out.borrow_mut();
            out.clear();
            cairn_repo::encode_blob(&key, cairn_format::BlobType::Data, Some(3), parts, &mut out)
                .expect("seal");
            out.len() as u64
        })
    };
    for mode in modes {
        let bytes = AtomicU64::new(0);
        let start = Instant::now();
        list.par_iter().for_each(|path| {
            let Ok(f) = std::fs::File::open(path) else {
                return;
            };
            if mode == "blocks" {
                let mut f = std::io::BufReader::with_capacity(1 << 20, f);
                let mut block = vec![0u8; 1 << 20];
                loop {
                    let mut n = 0;
                    while n < block.len() {
                        match f.read(&mut block[n..]) {
                            Ok(0) => break,
                            Ok(k) => n += k,
                            Err(_) => return,
                        }
                    }
                    if n == 0 {
                        break;
                    }
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                    encode(&[&block[..n]]);
                }
            } else {
                // Chunks of a file in parallel batches, as backup stores them.
                let chunks: Vec<_> = chunker.chunks(f).filter_map(Result::ok).collect();
                chunks.par_iter().for_each(|c| {
                    if let cairn_chunker::Chunk::Data(p) = c {
                        bytes.fetch_add(p.len() as u64, Ordering::Relaxed);
                        encode(&p.slices());
                    }
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let mib = bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
        println!(
            "single_pass {mode}: {} files, {mib:.0} MiB in {secs:.2} s = {:.0} MiB/s",
            list.len(),
            mib / secs
        );
    }
}
