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

/// What the calls to the stores among `sides` cost, in their provider's terms, for the
/// line after a ship or a sync: B2's transaction classes, or S3's request kinds. The
/// store, not the name it was given by (an rclone remote may be S3), says which; a
/// local directory bills nothing and gets no line.
pub fn cost_lines(sides: &[&dyn cairn_backend::Backend]) -> Vec<String> {
    let billed: Vec<_> = sides
        .iter()
        .filter_map(|b| Some((b, b.transactions()?)))
        .collect();
    // Two billed sides (a sync between two buckets) are told apart by their location.
    let both = billed.len() > 1;
    billed
        .into_iter()
        .map(|(b, t)| {
            let b2 = b.as_any().is_some_and(|d| d.is::<cairn_b2::B2Backend>());
            let line = if b2 {
                format!(
                    "B2 transactions: class A {}, class B {}, class C {}",
                    t.class_a, t.class_b, t.class_c
                )
            } else {
                format!(
                    "S3 requests: {} writes and deletes, {} reads, {} listings",
                    t.class_a, t.class_b, t.class_c
                )
            };
            match both {
                true => format!("{line} ({})", b.location()),
                false => line,
            }
        })
        .collect()
}

/// The contract's summary for commands that move files (ship, sync); callers add
/// their own fields.
pub fn transfer_summary(
    uploaded: u64,
    bytes: u64,
    deleted: u64,
    skipped: u64,
    dry_run: bool,
    t: cairn_backend::Transactions,
) -> Value {
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

/// Progress of a long command. On a terminal: a bar on stderr with bytes and files done
/// of the total, rate, ETA and the file being worked on. With `--json`: status lines on
/// stdout (`"message_type": "status"`) when the work is known, every second, and when it
/// ends, before the summary. Nothing with `--no-progress` or `-q`, and no bar when
/// stderr is not a terminal.
pub struct Bar {
    pb: indicatif::ProgressBar,
    /// Drawn on the terminal.
    visible: bool,
    counts: std::sync::Arc<Counts>,
    json: bool,
    /// `--json` given: stdout is for JSON only.
    json_output: bool,
    ticker: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Counts {
    done: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

impl Counts {
    fn files(&self) -> String {
        use std::sync::atomic::Ordering;
        format!(
            "{}/{} files",
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed)
        )
    }
}

/// One status line; `last` when the phase has ended: a phase that had nothing to do
/// (check reading no pack, prune repacking none) is then done, not at 0%.
fn status_line(pb: &indicatif::ProgressBar, c: &Counts, started: std::time::Instant, last: bool) {
    use std::sync::atomic::Ordering;
    let (done, total) = (pb.position(), pb.length().unwrap_or(0));
    let files_total = c.total.load(Ordering::Relaxed);
    let percent = match total {
        0 if last && files_total == 0 => 1.0,
        0 => 0.0,
        _ => (done as f64 / total as f64).min(1.0),
    };
    print_json(&serde_json::json!({
        "message_type": "status",
        "seconds_elapsed": started.elapsed().as_secs(),
        "percent_done": percent,
        "files_done": c.done.load(Ordering::Relaxed),
        "total_files": files_total,
        "bytes_done": done,
        "total_bytes": total,
    }));
}

/// A spinner with what is counted while the total is unknown (backup's scanner still
/// walking; a full bar at 0 B/0 B said the opposite), the bar once it is known.
fn set_style(pb: &indicatif::ProgressBar, total_known: bool) {
    let template = if total_known {
        "{bar:24} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
    } else {
        "{spinner} {bytes} so far, {binary_bytes_per_sec}; counting the rest: {msg}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
}

impl Bar {
    pub fn new(g: &crate::args::GlobalArgs) -> Bar {
        let visible = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && !g.no_progress
            && !g.json
            && !g.quiet;
        let pb = if visible {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        set_style(&pb, false);
        if visible {
            pb.enable_steady_tick(std::time::Duration::from_millis(250));
        }
        Bar {
            pb,
            visible,
            counts: Default::default(),
            json: g.json && !g.no_progress && !g.quiet,
            json_output: g.json,
            ticker: std::sync::Mutex::new(None),
        }
    }
}

impl cairn_ops::Progress for Bar {
    fn wants_totals(&self) -> bool {
        self.visible || self.json
    }

    fn start(&self, files: u64, bytes: u64) {
        // A command with phases (drill: restore, then check) starts again for each.
        self.counts
            .stop
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.counts
            .done
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.counts
            .total
            .store(files, std::sync::atomic::Ordering::Relaxed);
        self.pb.set_length(bytes);
        self.pb.set_position(0);
        set_style(&self.pb, bytes > 0);
        self.pb.set_message(self.counts.files());
        if self.json {
            let (pb, counts, started) = (
                self.pb.clone(),
                std::sync::Arc::clone(&self.counts),
                std::time::Instant::now(),
            );
            status_line(&pb, &counts, started, false);
            let t = std::thread::spawn(move || {
                let mut last = std::time::Instant::now();
                while !counts.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    if last.elapsed() >= std::time::Duration::from_secs(1) {
                        status_line(&pb, &counts, started, false);
                        last = std::time::Instant::now();
                    }
                }
                status_line(&pb, &counts, started, true);
            });
            *self.ticker.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
        }
    }
    fn add_total(&self, files: u64, bytes: u64) {
        self.counts
            .total
            .fetch_add(files, std::sync::atomic::Ordering::Relaxed);
        self.pb.inc_length(bytes);
    }
    fn total_known(&self) {
        set_style(&self.pb, true);
    }
    fn file_done(&self, bytes: u64) {
        self.counts
            .done
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.pb.inc(bytes);
    }
    fn bytes_done(&self, bytes: u64) {
        self.pb.inc(bytes);
    }
    fn completed(&self) {
        use std::sync::atomic::Ordering;
        // The totals become what was done: the last status line says 1.0, and its
        // counts agree with each other.
        self.pb.set_length(self.pb.position());
        let done = self.counts.done.load(Ordering::Relaxed);
        self.counts.total.store(done, Ordering::Relaxed);
    }
    fn current(&self, path: &std::path::Path) {
        // The end of the path: the part that changes.
        let p = path.to_string_lossy();
        let tail: String = p
            .chars()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let cut = if tail.len() < p.len() { "…" } else { "" };
        self.pb
            .set_message(format!("{} {cut}{tail}", self.counts.files()));
    }
    fn note(&self, line: &str) {
        if self.visible {
            self.pb.println(line);
        } else {
            eprintln!("{line}");
        }
    }
    fn listed(&self, line: &str) {
        // stdout holds only JSON with --json.
        if self.json_output {
            return;
        }
        if self.visible {
            self.pb.suspend(|| println!("{line}"));
        } else {
            println!("{line}");
        }
    }
    fn finish(&self) {
        self.counts
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // The last status line goes out before the summary the caller prints next.
        if let Some(t) = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        self.pb.finish_and_clear();
    }
}
