//! Throughput of cairn's own backup path and of each stage alone, on one core:
//! chunking (FastCDC with the secret gear table), keyed BLAKE3, zstd at cairn's level
//! (3), XChaCha20-Poly1305 sealing, and the whole chunk -> hash -> probe/compress ->
//! seal pass, on random (incompressible) and on log-like (compressible) data.
//! `cargo bench --bench pipeline`; benches/compare.sh multiplies by the cores for the
//! raw single-pass limit it reports.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const LEN: usize = 32 << 20;

fn random(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn logs(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "{} INFO worker-{} GET /api/v1/item/{} 200 {}us\n",
                1_700_000_000 + i,
                i % 16,
                i * 7919 % 100_000,
                i * 31 % 9000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn stages(c: &mut Criterion) {
    let key = cairn_crypto::MasterKey::generate().unwrap();
    let chunker =
        cairn_chunker::Chunker::new(&key.gear_table(), cairn_chunker::ChunkerParams::DEFAULT)
            .unwrap();
    for (name, data) in [("random", random(LEN)), ("logs", logs(LEN))] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(LEN as u64));
        g.sample_size(10);
        g.bench_function(BenchmarkId::new("chunk", name), |b| {
            b.iter(|| chunker.chunks(&data[..]).count())
        });
        g.bench_function(BenchmarkId::new("blake3", name), |b| {
            b.iter(|| key.blob_id(&data))
        });
        g.bench_function(BenchmarkId::new("zstd3", name), |b| {
            b.iter(|| zstd::bulk::compress(&data, 3).unwrap().len())
        });
        g.bench_function(BenchmarkId::new("seal", name), |b| {
            b.iter(|| key.seal(b"bench", &data).unwrap().len())
        });
        g.bench_function(BenchmarkId::new("whole_path", name), |b| {
            b.iter(|| {
                let (mut stored, mut out) = (0, Vec::new());
                for chunk in chunker.chunks(&data[..]) {
                    let cairn_chunker::Chunk::Data(pieces) = chunk.unwrap() else {
                        continue;
                    };
                    let parts = pieces.slices();
                    let _id = key.blob_id_parts(&parts);
                    out.clear();
                    cairn_repo::encode_blob(
                        &key,
                        cairn_format::BlobType::Data,
                        Some(3),
                        &parts,
                        &mut out,
                    )
                    .unwrap();
                    stored += out.len();
                }
                stored
            })
        });
        g.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
