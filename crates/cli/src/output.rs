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

/// The contract's summary for commands that move files (ship, sync); callers add
/// their own fields.
pub fn transfer_summary(uploaded: u64, bytes: u64, deleted: u64, skipped: u64, dry_run: bool, t: cairn_b2::Transactions) -> Value {
    json!({
        "message_type": "summary",
        "files_uploaded": uploaded,
        "bytes_uploaded": bytes,
        "files_deleted": deleted,
        "files_skipped": skipped,
        "dry_run": dry_run,
        "transactions": {"class_a": t.class_a, "class_b": t.class_b, "class_c": t.class_c},
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

/// A progress bar on stderr for transfers: bytes, files, rate, ETA. Hidden when stderr
/// is not a terminal, with `--no-progress`, `--json` or `-q`.
pub struct Bar(indicatif::ProgressBar, std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64);

impl Bar {
    pub fn new(g: &crate::args::GlobalArgs) -> Bar {
        let visible = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !g.no_progress && !g.json && !g.quiet;
        let pb = if visible { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} ({msg} files)",
        ) {
            pb.set_style(style);
        }
        Bar(pb, Default::default(), Default::default())
    }
}

impl cairn_ops::Progress for Bar {
    fn start(&self, files: u64, bytes: u64) {
        use std::sync::atomic::Ordering;
        self.2.store(files, Ordering::Relaxed);
        self.0.set_length(bytes);
        self.0.set_message(format!("0/{files}"));
        self.0.set_position(0);
    }
    fn file_done(&self, bytes: u64) {
        use std::sync::atomic::Ordering;
        let done = self.1.fetch_add(1, Ordering::Relaxed) + 1;
        self.0.set_message(format!("{done}/{}", self.2.load(Ordering::Relaxed)));
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
