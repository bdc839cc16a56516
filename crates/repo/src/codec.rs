//! How a blob is stored: compressed with zstd where that pays, then sealed.

use cairn_crypto::{MasterKey, NONCE_LEN, TAG_LEN};
use cairn_format::BlobType;

use crate::RepoError;

/// A blob as stored: compressed (zstd at `level`, where the probe says it pays and the
/// result is smaller) and sealed, appended to `out`; returns whether it was compressed.
/// The compressor writes straight into `out`, which is then encrypted in place, so a
/// compressed blob costs no copy and an incompressible one a single copy. `out` needs
/// room for [`sealed_bound`] bytes more, or it grows.
pub fn encode_blob(
    key: &MasterKey,
    blob_type: BlobType,
    level: Option<i32>,
    parts: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<bool, RepoError> {
    let purpose = blob_type.seal_purpose();
    let start = out.len();
    if let Some(level) = level.filter(|_| worth_compressing(parts)) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.reserve(sealed_bound(len));
        out.resize(start + NONCE_LEN, 0);
        if compress_into(level, parts, out).is_ok() && out.len() - start - NONCE_LEN < len {
            key.seal_in_place(purpose, out, start)
                .map_err(|e| crypto("blob", e))?;
            return Ok(true);
        }
        out.truncate(start);
    }
    key.seal_parts_append(purpose, parts, out)
        .map_err(|e| crypto("blob", e))?;
    Ok(false)
}

/// The most bytes [`encode_blob`] appends for `len` bytes of plaintext.
pub fn sealed_bound(len: usize) -> usize {
    NONCE_LEN + zstd::zstd_safe::compress_bound(len).max(len) + TAG_LEN
}

/// Blobs below this size are compressed with their size pledged to zstd, larger ones
/// without ([`compress_into`]): the chunker's default minimum, so every chunk cut out
/// of a large file takes the unpledged context, and only small files, the ends of
/// large ones and trees the pledged one.
const SMALL_BLOB: usize = 512 * 1024;

thread_local! {
    /// One zstd context per thread, reused for every blob: a fresh context per blob was
    /// an allocation of several MiB each time. Its size is not pledged: zstd sizes its
    /// workspace (~3.7 MiB at level 3) by the pledged size and reallocates it whenever
    /// blobs of another size class come, and those reallocations of a few MiB each
    /// fragmented the heap until a backup's resident memory grew with the data backed up
    /// (mixed, first backup: 76 MiB at 2 GiB, 88 MiB at 8 GiB; unpledged, 80 at both).
    /// At these sizes the ratio is the same either way.
    static ZSTD: std::cell::RefCell<zstd::zstd_safe::CCtx<'static>> = std::cell::RefCell::new(zstd::zstd_safe::CCtx::create());
    /// For small blobs (small files, trees), whose pledged size lets zstd use small
    /// tables: a level-3 workspace for each of 50,000 4 KiB files would be wasted.
    static ZSTD_SMALL: std::cell::RefCell<zstd::zstd_safe::CCtx<'static>> = std::cell::RefCell::new(zstd::zstd_safe::CCtx::create());
    /// Likewise for decompression: creating a context per blob was 5% of restoring
    /// many small files, and more in malloc.
    static UNZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// One-shot decompression into a buffer of exactly `len` bytes at most, with this
/// thread's reused context.
pub(crate) fn decompress(data: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
    UNZSTD.with(|d| {
        let mut d = d.borrow_mut();
        let d = match &mut *d {
            Some(d) => d,
            none => none.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress(data, len)
    })
}

/// Appends one zstd frame of the concatenation of `parts` to `out`, which must have
/// room for `compress_bound` of it.
fn compress_into(level: i32, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), ()> {
    use zstd::zstd_safe::{
        zstd_sys::ZSTD_EndDirective, CParameter, InBuffer, OutBuffer, ResetDirective,
    };
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let context = if len < SMALL_BLOB { &ZSTD_SMALL } else { &ZSTD };
    context.with(|cctx| {
        let mut cctx = cctx.borrow_mut();
        cctx.reset(ResetDirective::SessionAndParameters)
            .map_err(drop)?;
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .map_err(drop)?;
        if len < SMALL_BLOB {
            cctx.set_pledged_src_size(Some(len as u64)).map_err(drop)?;
        }
        let pos = out.len();
        let mut output = OutBuffer::around_pos(out, pos);
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.iter().enumerate() {
            let mut input = InBuffer::around(part);
            let end = if i == last {
                ZSTD_EndDirective::ZSTD_e_end
            } else {
                ZSTD_EndDirective::ZSTD_e_continue
            };
            loop {
                let left = cctx
                    .compress_stream2(&mut output, &mut input, end)
                    .map_err(drop)?;
                // The output has room for the whole frame, so only input can be left.
                let done = if i == last {
                    left == 0
                } else {
                    input.pos == part.len()
                };
                if done {
                    break;
                }
                if output.pos() == output.capacity() {
                    return Err(());
                }
            }
        }
        if parts.is_empty() {
            cctx.compress_stream2(
                &mut output,
                &mut InBuffer::around(&[]),
                ZSTD_EndDirective::ZSTD_e_end,
            )
            .map_err(drop)?;
        }
        Ok(())
    })
}

/// Whether zstd is worth running on a blob: three 8 KiB samples (start, middle, end)
/// compressed at the fastest level must shrink by at least 5%. Random or already
/// compressed data (media, archives) then costs one cheap probe instead of a full
/// zstd pass that would be thrown away; small blobs are always tried.
fn worth_compressing(parts: &[&[u8]]) -> bool {
    const SAMPLE: usize = 8 * 1024;
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len <= 4 * SAMPLE {
        return true;
    }
    let mut sample = Vec::with_capacity(3 * SAMPLE);
    for start in [0, len / 2 - SAMPLE / 2, len - SAMPLE] {
        copy_range(parts, start, SAMPLE, &mut sample);
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(sample.len()));
    match compress_into(1, &[&sample], &mut out) {
        Ok(()) => out.len() * 100 < sample.len() * 95,
        Err(()) => true,
    }
}

/// Appends bytes `start..start + len` of the concatenation of `parts` to `out`.
fn copy_range(parts: &[&[u8]], mut start: usize, mut len: usize, out: &mut Vec<u8>) {
    for p in parts {
        if start >= p.len() {
            start -= p.len();
            continue;
        }
        let take = len.min(p.len() - start);
        out.extend_from_slice(&p[start..start + take]);
        len -= take;
        start = 0;
        if len == 0 {
            return;
        }
    }
}

/// A sealing or opening failure of `object`, as a corrupt-object error.
pub(crate) fn crypto(object: &str, e: cairn_crypto::CryptoError) -> RepoError {
    RepoError::corrupt(object, e)
}

#[cfg(test)]
mod probe_tests {
    #[test]
    fn probe_skips_random_data_and_keeps_text() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!super::worth_compressing(&[&random]));
        let text = b"2026-11-22 INFO request GET /index.html 200 1234us\n".repeat(20_000);
        assert!(super::worth_compressing(&[&text]));
        // Random at both ends but text in the middle: the middle sample keeps zstd.
        let mut mixed = random.clone();
        mixed[300_000..700_000].copy_from_slice(&text[..400_000]);
        assert!(super::worth_compressing(&[
            &mixed[..500_000],
            &mixed[500_000..]
        ]));
        assert!(
            super::worth_compressing(&[&random[..1000]]),
            "small blobs are always tried"
        );
    }

    /// A blob sealed from pieces opens to the pieces' concatenation, however it was split,
    /// compressed or not, and compresses as well as in one piece. Every blob is appended
    /// to one buffer, as in a pack, so the blobs before it must not leak into it.
    #[test]
    fn blobs_encode_from_pieces() {
        let key = cairn_crypto::MasterKey::generate().unwrap();
        let text = b"2026-11-22 INFO request GET /index.html 200 1234us\n".repeat(30_000);
        let mut x = 7u64;
        let random: Vec<u8> = (0..1_500_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut out = Vec::new();
        let mut encode = |parts: &[&[u8]]| {
            // Appended behind what is there, as in a pack.
            let start = out.len();
            let compressed =
                super::encode_blob(&key, cairn_format::BlobType::Data, Some(3), parts, &mut out)
                    .unwrap();
            assert!(out.len() - start <= super::sealed_bound(parts.iter().map(|p| p.len()).sum()));
            (compressed, out[start..].to_vec())
        };
        let whole =
            |data: &[u8], encode: &mut dyn FnMut(&[&[u8]]) -> (bool, Vec<u8>)| encode(&[data]);
        for data in [&text[..], &random[..], &text[..10], &[][..]] {
            let (one_compressed, one) = whole(data, &mut encode);
            for cuts in [
                vec![],
                vec![1],
                vec![data.len() / 3, data.len() / 2],
                vec![data.len().saturating_sub(1)],
            ] {
                let mut parts = Vec::new();
                let mut at = 0;
                for c in cuts.iter().copied().chain([data.len()]) {
                    let c = c.clamp(at, data.len());
                    parts.push(&data[at..c]);
                    at = c;
                }
                let (compressed, sealed) = encode(&parts);
                assert_eq!(compressed, one_compressed);
                assert!(
                    sealed.len() <= one.len() + 64,
                    "pieces compress as well as the whole"
                );
                let plain = key
                    .open(cairn_format::BlobType::Data.seal_purpose(), &sealed)
                    .unwrap();
                let plain = if compressed {
                    zstd::bulk::decompress(&plain, data.len()).unwrap()
                } else {
                    plain
                };
                assert_eq!(plain, data);
            }
        }
        assert!(whole(&text, &mut encode).0 && !whole(&random, &mut encode).0);
    }
}
