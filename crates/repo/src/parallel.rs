//! Small thread helpers for storage-bound loops: map in order, stream results as they
//! come, and a byte budget that bounds what threads hold in memory at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::{unpoison, RepoError};

/// Bytes that threads take before holding something large in memory and give back
/// after; one taker may always proceed, so an item larger than the whole is not stuck.
pub(crate) struct Budget {
    free: Mutex<u64>,
    returned: std::sync::Condvar,
    total: u64,
}

impl Budget {
    pub(crate) fn new(total: u64) -> Budget {
        Budget {
            free: Mutex::new(total),
            returned: std::sync::Condvar::new(),
            total,
        }
    }

    /// Waits until `want` (at most the whole budget) is free, takes it and returns it.
    pub(crate) fn take(&self, want: u64) -> u64 {
        let want = want.min(self.total);
        let mut free = self.free.lock().unwrap_or_else(unpoison);
        while *free < want {
            free = self.returned.wait(free).unwrap_or_else(unpoison);
        }
        *free -= want;
        want
    }

    pub(crate) fn give(&self, n: u64) {
        *self.free.lock().unwrap_or_else(unpoison) += n;
        self.returned.notify_all();
    }
}

/// Maps `f` over `items` on up to `threads` threads, keeping order; the first error wins.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, RepoError> + Sync,
) -> Result<Vec<R>, RepoError> {
    if items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    let mut results: Vec<Option<Result<R, RepoError>>> = (0..items.len()).map(|_| None).collect();
    parallel_stream(
        items,
        threads,
        |item| Some(f(item)),
        |i, r| results[i] = Some(r),
    );
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(RepoError::Invalid("worker lost".into()))))
        .collect()
}

/// Runs `f` over `items` on up to `threads` threads and hands each result, with the
/// item's position, to `take` on the calling thread as it arrives; `f` returning `None`
/// hands nothing. At most two results wait to be taken, so a slow `take` holds the
/// workers back instead of letting their results pile up in memory.
pub(crate) fn parallel_stream<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Option<R> + Sync,
    mut take: impl FnMut(usize, R),
) {
    let next = AtomicU64::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, R)>(2);
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()) {
            let (tx, next, f) = (tx.clone(), &next, &f);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(item) = items.get(i) else { return };
                if let Some(r) = f(item) {
                    if tx.send((i, r)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            take(i, r);
        }
    });
}
