//! cairn's commands as library functions: `XOptions` in, `XSummary` out. The CLI only
//! parses arguments and prints; everything a command does is here and testable.
//!
//! Design decisions:
//! - Synchronous engine: rayon for CPU-bound work (chunk, hash, compress, seal) over
//!   directory entries and batches of chunks, so all cores work whether the input is
//!   many small files or one large one, and memory is bounded by batch size times threads.
//! - Commands report problems that do not stop them (an unreadable file, a damaged
//!   blob) in their summary; the CLI turns a non-empty error list into an exit code.

pub mod backup;
pub mod check;
pub mod copy;
pub mod delete_limit;
pub mod diff;
pub mod drill;
pub mod dump;
mod error;
pub mod filter;
pub mod find;
pub mod forget;
pub mod key;
pub mod ls;
pub mod meta;
pub mod moment;
pub mod pack_blobs;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod ship;
pub mod size;
pub mod snapshots;
pub mod stats;
pub mod sync;
pub mod tag;
pub mod transfer;
pub mod verified;
pub mod walk;

pub use error::OpsError;

/// Progress of a long command, reported by the library and drawn by the binary (or
/// not at all). Called from worker threads.
pub trait Progress: Sync {
    /// The work ahead: files and bytes.
    fn start(&self, _files: u64, _bytes: u64) {}
    /// One file finished (or failed) after handling `bytes`.
    fn file_done(&self, _bytes: u64) {}
    /// Bytes handled inside a file still in progress (a large file being read).
    fn bytes_done(&self, _bytes: u64) {}
    /// More work found while the command already runs (backup's scanner).
    fn add_total(&self, _files: u64, _bytes: u64) {}
    /// The scanner has found all the work: the total stands.
    fn total_known(&self) {}
    /// Whether totals are shown to anyone: backup's scanner walks the whole tree a
    /// second time (a stat per file) only for them.
    fn wants_totals(&self) -> bool {
        false
    }
    /// The file being worked on now.
    fn current(&self, _path: &std::path::Path) {}
    /// Something the user should see now, not at the end (an unreadable file): a line
    /// on stderr, above any bar.
    fn note(&self, _line: &str) {}
    /// A line of a listing the user asked for (`backup -vv`: each file stored): stdout.
    fn listed(&self, _line: &str) {}
    /// The work is all done, whatever a scan estimated: files that shrank, vanished or
    /// could not be read between the scan and the read made the estimate too high, and
    /// a finished backup must not end at 99.99%.
    fn completed(&self) {}
    fn finish(&self) {}
}

/// For callers that show nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Validates chunk sizes for a new repository (so `init` cannot create a repository
/// whose chunker would refuse to run).
pub fn chunker_params(min: u32, avg: u32, max: u32) -> Result<(u32, u32, u32), String> {
    cairn_chunker::ChunkerParams {
        min_size: min as usize,
        avg_size: avg as usize,
        max_size: max as usize,
    }
    .validate()?;
    Ok((min, avg, max))
}

/// Runs `f` on a pool of `threads` threads when that is more than the current pool has
/// (a repository across a network, where each thread mostly waits on a fetch), else
/// where it is. Parallel loops inside `f` then keep that many fetches in flight.
pub(crate) fn in_io_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads <= rayon::current_num_threads() {
        return f();
    }
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("cairn-io-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}
