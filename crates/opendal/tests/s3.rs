//! The S3 backend against a real S3 server on loopback (moto in server mode, which CI
//! installs; `CAIRN_MOTO_SERVER` names its binary): the conformance suite every
//! backend passes, and the errors a user meets first.

use cairn_backend::{run_conformance, Backend, ErrorKind};
use cairn_opendal::testing::S3Server;
use cairn_opendal::{OpendalBackend, S3Location};

fn moto() -> Option<S3Server> {
    let s = S3Server::start()?;
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    Some(s)
}

fn backend(port: u16, rest: &str) -> OpendalBackend {
    let loc = S3Location::parse(&format!("s3:http://127.0.0.1:{port}/{rest}"))
        .unwrap()
        .unwrap();
    OpendalBackend::s3(&loc).unwrap()
}

#[test]
fn conformance_against_a_real_s3_server() {
    let Some(m) = moto() else { return };
    m.make_bucket("conform");
    let b = backend(m.port, "conform/some/prefix");
    run_conformance(&b).unwrap();
    // Another prefix in the same bucket sees none of it.
    let other = backend(m.port, "conform/other");
    assert!(other.list("").unwrap().is_empty());
}

#[test]
fn a_missing_bucket_is_one_clear_error() {
    let Some(m) = moto() else { return };
    let b = backend(m.port, "no-such-bucket/r");
    assert!(!b.exists().unwrap());
    let e = b.create().unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!e.to_string().contains("testing"), "{e}");
}

/// Big writes go as multipart uploads (whole, or not at all), streamed writes in
/// parts with bounded memory; a stream whose bytes do not match its SHA1 is aborted
/// and leaves nothing.
#[test]
fn large_and_streamed_writes_go_in_parts() {
    let Some(m) = moto() else { return };
    m.make_bucket("parts");
    let b = backend(m.port, "parts/r");
    let big: Vec<u8> = (0..70u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    b.write("data/aa/big", &big, &Default::default()).unwrap();
    assert_eq!(b.read("data/aa/big").unwrap(), big);
    let source = |off: u64, len: u64| Ok(big[off as usize..(off + len) as usize].to_vec());
    let size = 40 << 20;
    let sha = cairn_backend::sha1_hex(&big[..size as usize]);
    let opts = cairn_backend::WriteOptions {
        sha1: Some(sha),
        ..Default::default()
    };
    b.write_stream("data/aa/streamed", size, &source, &opts)
        .unwrap();
    assert_eq!(b.read("data/aa/streamed").unwrap(), &big[..size as usize]);
    let wrong = cairn_backend::WriteOptions {
        sha1: Some("0".repeat(40)),
        ..Default::default()
    };
    let e = b
        .write_stream("data/aa/bad", size, &source, &wrong)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt);
    assert!(
        b.stat("data/aa/bad").is_err(),
        "an aborted upload left an object"
    );
    // Multipart uploads' ETags state no MD5: the one written beside them (rclone's
    // Md5chksum) is listed instead, and a stream that does not match it is refused.
    let md5 = |d: &[u8]| {
        use md5::Digest;
        hex::encode(md5::Md5::digest(d))
    };
    let listed: std::collections::HashMap<String, Option<String>> = b
        .list("data/aa/")
        .unwrap()
        .into_iter()
        .map(|o| (o.name, o.md5))
        .collect();
    assert_eq!(listed["data/aa/big"], None, "a multipart ETag is no MD5");
    assert_eq!(b.stat("data/aa/big").unwrap().md5, Some(md5(&big)));
    b.write("data/aa/small", b"small", &Default::default())
        .unwrap();
    assert_eq!(
        b.list("data/aa/small").unwrap()[0].md5,
        Some(md5(b"small")),
        "a single PUT's ETag is its MD5"
    );
    let stated = cairn_backend::WriteOptions {
        md5: Some(md5(&big[..size as usize])),
        ..Default::default()
    };
    b.write_stream("data/aa/stated", size, &source, &stated)
        .unwrap();
    assert_eq!(b.stat("data/aa/stated").unwrap().md5, stated.md5);
    let false_md5 = cairn_backend::WriteOptions {
        md5: Some(md5(b"something else")),
        ..Default::default()
    };
    let e = b
        .write_stream("data/aa/bad", size, &source, &false_md5)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(b.stat("data/aa/bad").is_err());
}

/// A key that may read but not write (moto checking signatures and IAM policies):
/// reads work, a write is refused in one line with the store's reason, naming no
/// secret.
#[test]
fn a_read_only_key_reads_and_its_writes_are_refused() {
    let Some(m) = moto() else { return };
    m.make_bucket("guarded");
    let b = backend(m.port, "guarded/r");
    b.write("config", b"cfg", &Default::default()).unwrap();
    let (_, (id, secret)) = m.guard();
    let mut loc = S3Location::parse(&format!("s3:http://127.0.0.1:{}/guarded/r", m.port))
        .unwrap()
        .unwrap();
    loc.keys = Some((id, zeroize::Zeroizing::new(secret.clone())));
    let ro = OpendalBackend::s3(&loc).unwrap();
    assert_eq!(ro.read("config").unwrap(), b"cfg");
    let e = ro
        .write("data/aa/new", b"x", &Default::default())
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e.kind,
            ErrorKind::PermissionDenied | ErrorKind::Unauthorized
        ),
        "{text}"
    );
    assert!(text.contains("AccessDenied"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains(&secret), "{text}");
    // Nothing was stored.
    assert!(ro.stat("data/aa/new").is_err());
}
