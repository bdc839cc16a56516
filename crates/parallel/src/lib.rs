//! The thread patterns of cairn's storage-bound loops, in one tested place.
//!
//! Why not rayon here: rayon is for CPU-bound work and keeps as many threads as cores.
//! These loops mostly wait on storage (a B2 upload, a disk read), so they want a thread
//! count of their own (`--transfers`), and they must stop taking work at the first
//! error (ship's phases) or hold memory within a budget (index loading, sync). Before
//! this module, ship, sync and the repository each had a pool of their own and two
//! of them a hand-rolled byte semaphore.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

/// Bytes that threads take before holding something large in memory and give back
/// after. A request larger than the whole budget waits for the whole budget, so such
/// an item runs alone rather than never.
pub struct Budget {
    free: Mutex<u64>,
    returned: Condvar,
    total: u64,
}

impl Budget {
    pub fn new(total: u64) -> Budget {
        Budget {
            free: Mutex::new(total),
            returned: Condvar::new(),
            total,
        }
    }

    /// Waits until `want` (at most the whole budget) is free, takes it and returns the
    /// amount taken, to be handed to [`Budget::give`].
    pub fn take(&self, want: u64) -> u64 {
        let want = want.min(self.total);
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free < want {
            free = self
                .returned
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= want;
        want
    }

    pub fn give(&self, n: u64) {
        *self.free.lock().unwrap_or_else(PoisonError::into_inner) += n;
        self.returned.notify_all();
    }

    /// [`Budget::take`], given back when the guard drops.
    pub fn hold(&self, want: u64) -> Held<'_> {
        Held {
            budget: self,
            n: self.take(want),
        }
    }
}

/// Bytes of a [`Budget`] held until dropped.
pub struct Held<'a> {
    budget: &'a Budget,
    n: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.give(self.n);
    }
}

/// Runs `f` over `items` on up to `threads` threads and hands each result, with the
/// item's position, to `take` on the calling thread as it arrives; `f` returning `None`
/// hands nothing. At most two results wait to be taken, so a slow `take` holds the
/// workers back instead of letting their results pile up in memory.
pub fn stream<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Option<R> + Sync,
    mut take: impl FnMut(usize, R),
) {
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, R)>(2);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(items.len()) {
            let (tx, next, f) = (tx.clone(), &next, &f);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
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

/// Maps `f` over `items` on up to `threads` threads, keeping order; the first error (in
/// item order) wins.
pub fn map<T: Sync, R: Send, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    if items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    let mut results: Vec<Option<Result<R, E>>> = (0..items.len()).map(|_| None).collect();
    stream(
        items,
        threads,
        |item| Some(f(item)),
        |i, r| results[i] = Some(r),
    );
    // `stream` hands every item's result, so none is missing.
    results.into_iter().flatten().collect()
}

/// Runs `f` on every item on up to `threads` threads. After the first error no item is
/// started (those running finish), and that error is returned.
pub fn try_for_each<T: Sync, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let failed = AtomicBool::new(false);
    let first = Mutex::new(None);
    for_each(items, threads, |item| {
        if failed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = f(item) {
            failed.store(true, Ordering::Release);
            first
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(e);
        }
    });
    match first.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs `f` on every item on up to `threads` threads.
pub fn for_each<T: Sync>(items: &[T], threads: usize, f: impl Fn(&T) + Sync) {
    stream(
        items,
        threads,
        |item| {
            f(item);
            None::<()>
        },
        |_, ()| {},
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn map_keeps_order_and_the_first_error_in_order_wins() {
        let items: Vec<u32> = (0..200).collect();
        assert_eq!(
            map(&items, 4, |&i| Ok::<_, ()>(i * 2)).unwrap(),
            (0..200).map(|i| i * 2).collect::<Vec<_>>()
        );
        let r = map(&items, 4, |&i| if i % 50 == 7 { Err(i) } else { Ok(i) });
        assert_eq!(r, Err(7));
        assert_eq!(map(&[] as &[u32], 4, |&i| Ok::<_, ()>(i)), Ok(vec![]));
    }

    #[test]
    fn try_for_each_starts_nothing_after_an_error() {
        let items: Vec<u32> = (0..1000).collect();
        let started = AtomicUsize::new(0);
        let r = try_for_each(&items, 3, |&i| {
            started.fetch_add(1, Ordering::SeqCst);
            if i == 5 {
                return Err("five");
            }
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        });
        assert_eq!(r, Err("five"));
        assert!(
            started.load(Ordering::SeqCst) < 20,
            "{} started after the error",
            started.load(Ordering::SeqCst)
        );
        let seen = AtomicUsize::new(0);
        try_for_each(&items, 3, |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 1000);
    }

    #[test]
    fn no_more_threads_than_asked() {
        let items: Vec<u32> = (0..64).collect();
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        for_each(&items, 3, |_| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            now.fetch_sub(1, Ordering::SeqCst);
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert!(most.load(Ordering::SeqCst) >= 2, "ran in parallel");
    }

    /// Takers wait for room; one larger than the whole budget runs alone.
    #[test]
    fn a_budget_bounds_what_is_held() {
        let budget = Budget::new(100);
        let items: Vec<u64> = vec![60, 60, 60, 500, 10, 90];
        let (held, most) = (Mutex::new(0u64), Mutex::new(0u64));
        for_each(&items, 4, |&want| {
            let _h = budget.hold(want);
            let now = {
                let mut h = held.lock().unwrap();
                *h += want.min(100);
                *h
            };
            let mut m = most.lock().unwrap();
            *m = (*m).max(now);
            drop(m);
            std::thread::sleep(Duration::from_millis(5));
            *held.lock().unwrap() -= want.min(100);
        });
        assert!(*most.lock().unwrap() <= 100);
        assert_eq!(budget.take(100), 100, "everything was given back");
    }
}
