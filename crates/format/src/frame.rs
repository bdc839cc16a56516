//! Framing of the plaintext of standalone repository files (config, index, snapshot,
//! lock): one byte saying how the payload is compressed, then the payload.

use std::io::Read;

use crate::FormatError;

const RAW: u8 = 0;
const ZSTD: u8 = 1;

/// Upper bound on a decompressed frame: protects against decompression bombs in files
/// an attacker with storage access could plant.
pub const MAX_FRAME_LEN: u64 = 1 << 30;

/// Compresses `payload` with zstd at `level` unless that does not make it smaller.
pub fn frame(payload: &[u8], level: Option<i32>) -> Vec<u8> {
    if let Some(level) = level {
        if let Ok(c) = zstd::bulk::compress(payload, level) {
            if c.len() < payload.len() {
                let mut out = Vec::with_capacity(c.len() + 1);
                out.push(ZSTD);
                out.extend_from_slice(&c);
                return out;
            }
        }
    }
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(RAW);
    out.extend_from_slice(payload);
    out
}

pub fn unframe(data: &[u8]) -> Result<Vec<u8>, FormatError> {
    match data.first() {
        Some(&RAW) => Ok(data[1..].to_vec()),
        Some(&ZSTD) => {
            let mut out = Vec::new();
            let dec =
                zstd::stream::read::Decoder::new(&data[1..]).map_err(FormatError::Decompress)?;
            dec.take(MAX_FRAME_LEN + 1)
                .read_to_end(&mut out)
                .map_err(FormatError::Decompress)?;
            if out.len() as u64 > MAX_FRAME_LEN {
                return Err(FormatError::invalid(
                    "frame",
                    "decompressed size exceeds 1 GiB",
                ));
            }
            Ok(out)
        }
        Some(other) => Err(FormatError::invalid(
            "frame",
            format!("unknown compression tag {other}"),
        )),
        None => Err(FormatError::Truncated {
            what: "frame",
            needed: 1,
            found: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn roundtrip_and_bad_tag() {
        let text = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(10);
        let f = super::frame(&text, Some(3));
        assert_eq!(f[0], 1);
        assert_eq!(super::unframe(&f).unwrap(), text);
        let f = super::frame(b"x", Some(3));
        assert_eq!(f, vec![0, b'x']);
        assert!(super::unframe(&[9, 1, 2]).is_err());
        assert!(super::unframe(&[]).is_err());
        assert!(super::unframe(&[1, 1, 2, 3]).is_err());
    }
}
