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

pub use cairn_ops::size::parse_size;

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
        assert_eq!(super::size(1536), "1.500 KiB");
    }
}
