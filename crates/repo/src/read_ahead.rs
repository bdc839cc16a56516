//! Read-ahead for repositories across a network: blobs are fetched a window of their
//! pack at a time, not one request each.
//!
//! A restore from B2 read one blob per request, two at a time (one per core): 4,304
//! small files took 73.6 s from the emulator on loopback against 0.87 s from a USB
//! drive, and hours at B2's real latency. Blobs written together sit together in a pack,
//! and restores, drills and reads of a mounted file take them in about that order, so
//! one ranged read of a window (an eighth of a default pack) serves the many blobs
//! around the one asked for. Concurrency comes from the callers (an I/O pool of
//! [`Repository::io_threads`](crate::Repository::io_threads) threads); two threads
//! asking for the same window wait for one fetch. Memory is bounded: at most
//! `windows` windows are kept (two per I/O thread), the least recently used dropped
//! first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use cairn_backend::Backend;
use cairn_format::{PackEntry, PackId};

/// Bytes of a pack fetched at once: 2 MiB, an eighth of a default pack; at 40 ms of
/// latency and 16 fetches in flight that is 800 MB/s, more than a home uplink carries,
/// while 32 windows hold 64 MiB. A blob larger than this is read alone (one request
/// for a megabyte or more is already cheap).
pub const WINDOW_BYTES: u64 = 2 * 1024 * 1024;

type Window = Arc<OnceLock<Option<Arc<Vec<u8>>>>>;

pub struct ReadAhead {
    windows: usize,
    pack_sizes: HashMap<PackId, u64>,
    kept: Mutex<(HashMap<(PackId, u64), Window>, VecDeque<(PackId, u64)>)>,
}

impl ReadAhead {
    /// `pack_sizes` as the index records them: a window never reads past a pack's end.
    pub fn new(windows: usize, pack_sizes: HashMap<PackId, u64>) -> ReadAhead {
        ReadAhead {
            windows: windows.max(1),
            pack_sizes,
            kept: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// The sealed bytes of `e` in `pack`: from a window (fetched now, or by another
    /// thread, or earlier), or, where no window fits it (a blob larger than a window or
    /// across a window's edge, a pack the index did not know, a window whose fetch
    /// failed), by a read of the blob alone, whose error is then the one reported.
    pub fn read(
        &self,
        backend: &dyn Backend,
        name: &str,
        pack: &PackId,
        e: &PackEntry,
    ) -> Result<Vec<u8>, cairn_backend::BackendError> {
        let (start, len) = (u64::from(e.offset), u64::from(e.length));
        let direct = || backend.read_range(name, start, len);
        let Some(&size) = self.pack_sizes.get(pack) else {
            return direct();
        };
        let w = start / WINDOW_BYTES * WINDOW_BYTES;
        let w_end = (w + WINDOW_BYTES).min(size);
        if start + len > w_end {
            return direct();
        }
        let cell = {
            let mut kept = self.kept.lock().unwrap_or_else(crate::unpoison);
            let (map, order) = &mut *kept;
            match map.get(&(*pack, w)) {
                Some(c) => {
                    // Least recently used goes first: a window a thread is still
                    // working through must not be dropped because it came early.
                    if let Some(i) = order.iter().position(|k| *k == (*pack, w)) {
                        order.remove(i);
                    }
                    order.push_back((*pack, w));
                    c.clone()
                }
                None => {
                    while order.len() >= self.windows {
                        if let Some(old) = order.pop_front() {
                            map.remove(&old);
                        }
                    }
                    let c: Window = Arc::new(OnceLock::new());
                    map.insert((*pack, w), c.clone());
                    order.push_back((*pack, w));
                    c
                }
            }
        };
        let data = cell.get_or_init(|| backend.read_range(name, w, w_end - w).ok().map(Arc::new));
        match data {
            Some(d) => Ok(d[(start - w) as usize..(start - w + len) as usize].to_vec()),
            None => {
                let mut kept = self.kept.lock().unwrap_or_else(crate::unpoison);
                kept.0.remove(&(*pack, w));
                drop(kept);
                direct()
            }
        }
    }
}
