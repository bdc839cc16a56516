//! SHA1, the content hash B2 requires with every upload and keeps for every file.
//!
//! It is the largest CPU cost of a ship: every byte is hashed once by the client and
//! once more by the server, and on a machine that is also running the server (the
//! emulator, in tests and benchmarks) both share the same cores. The pure-Rust `sha1`
//! crate reaches 1.1 GB/s with the SHA instructions here; AWS-LC's assembly (OpenSSL's,
//! as rustls also ships it) 2.0 GB/s. SHA1 is not used for anything secret: repository
//! integrity rests on keyed BLAKE3.

use aws_lc_rs::digest;

/// An incremental SHA1.
pub struct Sha1(digest::Context);

impl Sha1 {
    pub fn new() -> Sha1 {
        Sha1(digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The 40 lowercase hex digits B2 uses.
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

impl Default for Sha1 {
    fn default() -> Self {
        Sha1::new()
    }
}

/// The 40 lowercase hex digits of `data`'s SHA1.
pub fn hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::Digest;

    #[test]
    fn agrees_with_the_reference_on_known_and_split_inputs() {
        assert_eq!(hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 31 % 251) as u8).collect();
        let want = hex::encode(sha1::Sha1::digest(&data));
        assert_eq!(hex(&data), want);
        for split in [0, 1, 63, 64, 65, 4096, 999_999] {
            let mut h = Sha1::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.finish_hex(), want, "split at {split}");
        }
    }
}
