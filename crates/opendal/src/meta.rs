//! What S3 keeps beside an object's bytes, in rclone's conventions so the two tools
//! read each other's files: the file's time (`X-Amz-Meta-Mtime`), a multipart upload's
//! MD5 (`X-Amz-Meta-Md5chksum`), and the MD5 a single-part upload's ETag states.

use cairn_backend::WriteOptions;

/// The user metadata key rclone keeps a file's modification time under
/// (`X-Amz-Meta-Mtime`), so the two tools read each other's times.
pub(crate) const MTIME: &str = "mtime";
/// Where rclone keeps a multipart upload's MD5 (`X-Amz-Meta-Md5chksum`, base64).
pub(crate) const MD5: &str = "md5chksum";

/// The user metadata and Content-Type a write carries: the modification time in
/// rclone's form, seconds since the epoch with up to nine decimals.
pub(crate) fn metadata(opts: &WriteOptions) -> (Vec<(String, String)>, &str) {
    let nanos = opts
        .mtime_nanos
        .or(opts.mtime_millis.map(|ms| ms.saturating_mul(1_000_000)));
    let mut meta: Vec<(String, String)> = nanos
        .map(|ns| (MTIME.to_string(), mtime_text(ns)))
        .into_iter()
        .collect();
    if let Some(b64) = opts.md5.as_deref().and_then(md5_to_base64) {
        meta.push((MD5.to_string(), b64));
    }
    let content_type = opts
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    (meta, content_type)
}

/// rclone's text form of a time: seconds since the epoch with up to nine decimals.
pub(crate) fn mtime_text(ns: i64) -> String {
    let (secs, frac) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let text = format!("{secs}.{frac:09}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub(crate) fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// The MD5 an ETag states: a single-part upload's is the hex MD5 (quoted); a
/// multipart upload's ends in `-PARTS` and states none.
pub(crate) fn etag_md5(etag: &str) -> Option<String> {
    let t = etag.trim().trim_matches('"');
    (t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

/// Hex from a base64 MD5 (rclone's Md5chksum); None unless it is 16 bytes.
pub(crate) fn md5_from_base64(v: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()?;
    (raw.len() == 16).then(|| hex::encode(raw))
}

fn md5_to_base64(digest: &str) -> Option<String> {
    use base64::Engine;
    let raw = hex::decode(digest).ok()?;
    (raw.len() == 16).then(|| base64::engine::general_purpose::STANDARD.encode(raw))
}

/// Nanoseconds since the epoch from rclone's `X-Amz-Meta-Mtime` ("1614159563.5",
/// "1614159563"); None for anything else, which a store may hold from any writer.
pub(crate) fn parse_mtime(v: &str) -> Option<i64> {
    let (secs, frac) = v.trim().split_once('.').unwrap_or((v.trim(), ""));
    let secs: i64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: i64 = format!("{frac:0<9}").parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rclone's X-Amz-Meta-Mtime both ways: nine decimals at most, trailing zeros cut.
    #[test]
    fn md5_from_etags_and_rclone_metadata() {
        let hex = "9e107d9d372bb6826bd81d3542a419d6";
        assert_eq!(etag_md5(&format!("\"{hex}\"")).as_deref(), Some(hex));
        assert_eq!(etag_md5(&hex.to_uppercase()).as_deref(), Some(hex));
        // A multipart upload's ETag states no MD5; nor does anything else.
        assert_eq!(etag_md5(&format!("\"{hex}-3\"")), None);
        assert_eq!(etag_md5("\"zz107d9d372bb6826bd81d3542a419d6\""), None);
        let b64 = md5_to_base64(hex).unwrap();
        assert_eq!(b64, "nhB9nTcrtoJr2B01QqQZ1g==");
        assert_eq!(md5_from_base64(&b64).as_deref(), Some(hex));
        assert_eq!(md5_from_base64("AAAA"), None);
        assert_eq!(md5_to_base64("abc"), None);
        assert_eq!(md5_hex(b"The quick brown fox jumps over the lazy dog"), hex);
    }

    #[test]
    fn mtime_in_rclone_form() {
        let text = |nanos: i64| {
            let o = WriteOptions {
                mtime_nanos: Some(nanos),
                ..Default::default()
            };
            metadata(&o).0[0].1.clone()
        };
        assert_eq!(text(1_614_159_563_123_456_789), "1614159563.123456789");
        assert_eq!(text(1_614_159_563_500_000_000), "1614159563.5");
        assert_eq!(text(1_614_159_563_000_000_000), "1614159563");
        for ns in [1_614_159_563_123_456_789, 1_614_159_563_500_000_000, 0, 7] {
            assert_eq!(parse_mtime(&text(ns)), Some(ns));
        }
        assert_eq!(parse_mtime("1614159563.1234567891"), None);
        assert_eq!(parse_mtime("x"), None);
        assert_eq!(parse_mtime("1.-5"), None);
    }
}
