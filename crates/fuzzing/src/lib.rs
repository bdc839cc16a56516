//! Every decoder that reads bytes someone else may have written: repository files (the
//! storage provider, a thief of the drive) and B2's replies (a hostile or broken
//! server). Both fuzzers drive [`decode`]: cargo-fuzz under `fuzz/` (nightly, for long
//! runs), and this crate's test, which runs each target over the committed seed corpus
//! plus deterministic mutations on stable in CI, under an allocator that fails any
//! single allocation above 256 MiB (a length field trusted too early).
//!
//! A decoder may return any error; it must not panic, loop, or allocate what the input
//! merely claims.

use cairn_format as f;

/// The fuzz targets; each has a seed corpus in `fuzz/corpus/<name>/`.
pub const TARGETS: &[&str] = &[
    "keyfile",
    "config",
    "pack_header",
    "index",
    "tree",
    "snapshot",
    "lock",
    "drill_record",
    "verified_record",
    "sealed",
    "b2_json",
];

/// The fixed key of the `sealed` target (fuzzing needs no secrecy).
pub fn fuzz_key() -> cairn_crypto::MasterKey {
    cairn_crypto::MasterKey::from_bytes(&[7u8; 64]).expect("64 bytes make a master key")
}

/// Feeds `data` to the decoder named `target`. Unknown names do nothing.
pub fn decode(target: &str, data: &[u8]) {
    match target {
        "keyfile" => drop(f::KeyFile::decode(data)),
        "config" => drop(f::Config::decode(data)),
        "pack_header" => {
            // The length a header claims is checked against the blob area it sits after.
            let data_len = data.first().map_or(0, |b| u64::from(*b) << 12);
            drop(f::decode_header(data, data_len));
        }
        "index" => drop(f::IndexFile::decode(data)),
        "tree" => drop(f::Tree::decode(data)),
        "snapshot" => drop(f::Snapshot::decode(data)),
        "lock" => drop(f::Lock::decode(data)),
        "drill_record" => drop(f::DrillRecord::decode(data)),
        "verified_record" => drop(f::VerifiedRecord::decode(data)),
        "sealed" => {
            // Whatever the purpose byte says, opening must fail cleanly or succeed.
            let purpose = data.first().copied().unwrap_or(0);
            let body = data.get(1..).unwrap_or_default();
            if let Ok(plain) = fuzz_key().open(&[purpose], body) {
                drop(f::Tree::decode(&plain));
            }
        }
        "b2_json" => {
            let _ = cairn_b2::decode_replies(data);
        }
        _ => {}
    }
}

/// xorshift64*: deterministic mutations, so a CI failure replays exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// One mutation of `seed` in the manner of libFuzzer's basic mutators: bit flips, byte
/// sets (with the interesting values 0, 0xff, 0x7f, 0x80), truncation, insertion,
/// deletion, splicing in part of `other`, and overwriting 4-byte words with extreme
/// integers (where length fields live).
pub fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = [0, 0xff, 0x7f, 0x80, rng.next_u64() as u8][rng.below(5)];
            }
            2 => d.truncate(rng.below(len + 1)),
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                d.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                d.drain(at..at + n);
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = 1 + rng.below((other.len() - from).min(256));
                let at = rng.below(len + 1);
                d.truncate(at);
                d.extend_from_slice(&other[from..from + n]);
            }
            _ if len >= 4 => {
                let at = rng.below(len - 3);
                let v: u32 = [0, 1, u32::MAX, u32::MAX / 2 + 1, 0xffff, 0x1_0000][rng.below(6)];
                d[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => d.push(rng.next_u64() as u8),
        }
    }
    d
}
