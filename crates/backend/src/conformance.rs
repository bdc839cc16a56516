//! The contract of [`Backend`], as a test every backend must pass (local here; B2 on
//! the emulator in the B2 crate). Returns a description of the first violation.

use crate::{Backend, ErrorKind, WriteOptions};

pub fn run_conformance(b: &dyn Backend) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{}: {what}", b.location()));
    paths_round_trip(b)?;
    b.create().map_err(|e| e.to_string())?;
    let opts = WriteOptions::default();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    b.write("data/ab/ab01", &data, &opts)
        .map_err(|e| e.to_string())?;
    b.write("keys/k1", b"key", &opts)
        .map_err(|e| e.to_string())?;
    b.write("config", b"cfg", &opts)
        .map_err(|e| e.to_string())?;

    if b.read("data/ab/ab01").map_err(|e| e.to_string())? != data {
        return fail("read returned different bytes");
    }
    if b.read_range("data/ab/ab01", 1000, 500)
        .map_err(|e| e.to_string())?
        != data[1000..1500]
    {
        return fail("read_range returned different bytes");
    }
    match b.read_range("data/ab/ab01", 99_990, 20) {
        Err(e) if e.kind == ErrorKind::Corrupt => {}
        _ => return fail("short read_range must fail with Corrupt"),
    }
    if b.stat("data/ab/ab01").map_err(|e| e.to_string())?.size != data.len() as u64 {
        return fail("stat size");
    }
    match b.stat("data/ab/missing") {
        Err(e) if e.kind == ErrorKind::NotFound => {}
        _ => return fail("stat of a missing object must be NotFound"),
    }
    match b.read("nope") {
        Err(e) if e.kind == ErrorKind::NotFound => {}
        _ => return fail("read of a missing object must be NotFound"),
    }
    // write_new: only where nothing is stored; a taken name fails and keeps its bytes.
    match b.write_new("config", b"another") {
        Err(e) if e.kind == ErrorKind::AlreadyExists => {}
        _ => return fail("write_new over an existing object must fail with AlreadyExists"),
    }
    if b.read("config").map_err(|e| e.to_string())? != b"cfg" {
        return fail("a refused write_new changed the object");
    }
    b.write_new("keys/k2", b"new").map_err(|e| e.to_string())?;
    if b.read("keys/k2").map_err(|e| e.to_string())? != b"new" {
        return fail("write_new stored different bytes");
    }
    b.remove("keys/k2").map_err(|e| e.to_string())?;
    let mut names: Vec<String> = b
        .list("")
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    if names != ["config", "data/ab/ab01", "keys/k1"] {
        return fail(&format!("list(\"\") returned {names:?}"));
    }
    let data_list = b.list("data/").map_err(|e| e.to_string())?;
    if data_list.len() != 1 || data_list[0].name != "data/ab/ab01" || data_list[0].size != 100_000 {
        return fail("list(\"data/\")");
    }
    b.write("config", b"cfg2", &opts)
        .map_err(|e| e.to_string())?;
    if b.read("config").map_err(|e| e.to_string())? != b"cfg2" {
        return fail("overwrite");
    }
    b.remove("keys/k1").map_err(|e| e.to_string())?;
    match b.remove("keys/k1") {
        Err(e) if e.kind == ErrorKind::NotFound => {}
        _ => return fail("remove of a missing object must be NotFound"),
    }
    if !b.list("keys/").map_err(|e| e.to_string())?.is_empty() {
        return fail("removed object still listed");
    }
    for bad in ["../escape", "/abs", "a/../b"] {
        match b.write(bad, b"x", &opts) {
            Err(e) if e.kind == ErrorKind::InvalidName => {}
            _ => return fail(&format!("name {bad:?} must be refused")),
        }
    }
    b.write("empty", b"", &opts).map_err(|e| e.to_string())?;
    if !b.read("empty").map_err(|e| e.to_string())?.is_empty() {
        return fail("empty object");
    }
    // Streamed writes: the same bytes whole; a wrong SHA1 stores nothing.
    let big: Vec<u8> = (0..2_500_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let source = |off: u64, len: u64| Ok(big[off as usize..(off + len) as usize].to_vec());
    let sha = crate::sha1_hex(&big);
    b.write_stream(
        "streamed",
        big.len() as u64,
        &source,
        &WriteOptions {
            sha1: Some(sha.clone()),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    if b.read("streamed").map_err(|e| e.to_string())? != big {
        return fail("streamed object differs");
    }
    let wrong = WriteOptions {
        sha1: Some("0".repeat(40)),
        ..Default::default()
    };
    match b.write_stream("streamed-bad", big.len() as u64, &source, &wrong) {
        Err(e) if e.kind == ErrorKind::Corrupt => {}
        other => {
            return fail(&format!(
                "a stream with the wrong SHA1 must be Corrupt, got {other:?}"
            ))
        }
    }
    if b.list("streamed-bad")
        .map_err(|e| e.to_string())?
        .iter()
        .any(|o| o.name == "streamed-bad")
    {
        return fail("a stream with the wrong SHA1 was stored");
    }
    // Writes in parts: stored as their concatenation, SHA1 over the whole.
    let parts: Vec<&[u8]> = vec![&big[..1], &big[1..1_000_000], &[], &big[1_000_000..]];
    b.write_parts(
        "parts",
        &parts,
        &WriteOptions {
            sha1: Some(sha),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    if b.read("parts").map_err(|e| e.to_string())? != big {
        return fail("object written in parts differs");
    }
    // Thousands of small parts (a pack of small blobs), some empty: more than one
    // vectored write holds.
    let mut many: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    for i in 0..2000usize {
        let n = [0, 1, 7, 300, 4096][i % 5];
        many.push(&big[at..at + n]);
        at += n;
    }
    b.write_parts("many-parts", &many, &WriteOptions::default())
        .map_err(|e| e.to_string())?;
    if b.read("many-parts").map_err(|e| e.to_string())? != big[..at] {
        return fail("object written in many parts differs");
    }
    match b.write_parts("parts-bad", &parts, &wrong) {
        Err(e) if e.kind == ErrorKind::Corrupt => {}
        other => {
            return fail(&format!(
                "parts with the wrong SHA1 must be Corrupt, got {other:?}"
            ))
        }
    }
    Ok(())
}

/// A path spelled as a name here reads back as itself, and repository names are
/// spelled as they are.
fn paths_round_trip(b: &dyn Backend) -> Result<(), String> {
    for path in [
        "a/b c.txt",
        "\u{fc}n\u{ef}/c\u{f6}d\u{e9}",
        "x\\y",
        "odd:*?<>|",
        "data/ab/ab01",
    ] {
        let back = b.decode_path(&b.encode_path(path));
        if back != path {
            return Err(format!(
                "{}: path {path:?} read back as {back:?}",
                b.location()
            ));
        }
    }
    if b.encode_path("snapshots/0a1b") != "snapshots/0a1b" {
        return Err(format!(
            "{}: a repository name is spelled differently",
            b.location()
        ));
    }
    Ok(())
}
