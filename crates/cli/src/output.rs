//! Output helpers: sizes for humans, JSON documents for machines.

use cairn_repo::SnapshotRef;
use serde_json::{json, Value};

/// Bytes in binary units with three significant decimals, as restic prints them.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", UNITS[u])
    }
}

/// Parses SIZE arguments: a number with an optional K, M, G or T suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        Some('B') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}: expected a number with an optional K, M, G or T suffix"))
}

pub fn snapshot_json(s: &SnapshotRef) -> Value {
    let snap = &s.snapshot;
    json!({
        "id": s.id.to_hex(),
        "short_id": s.id.short(),
        "time": snap.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "hostname": snap.hostname,
        "username": snap.username,
        "paths": snap.paths,
        "tags": snap.tags,
        "tree": snap.tree.to_hex(),
        "parent": snap.parent.map(|p| p.to_hex()),
        "program_version": snap.program_version,
        "summary": snap.summary,
    })
}

/// Prints one JSON document on its own line.
pub fn print_json(v: &Value) {
    println!("{v}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("10K").unwrap(), 10240);
        assert_eq!(super::parse_size("3g").unwrap(), 3 << 30);
        assert_eq!(super::parse_size("77").unwrap(), 77);
        assert!(super::parse_size("x").is_err());
        assert_eq!(super::size(1536), "1.500 KiB");
    }
}
