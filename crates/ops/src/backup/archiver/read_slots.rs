//! How many files are read at once: slots taken before a read and given back after.

use super::*;

/// At most `limit` files read at once (0: no limit).
///
/// Files are read on rayon workers, and a worker waiting for its file's blobs to be
/// sealed (a nested `par_iter`) runs other jobs meanwhile, another file among them. A
/// worker that already holds a slot therefore never waits for one: its own slot is
/// given back only when it returns to the frame below, so waiting could deadlock
/// (every worker holding a slot and waiting for another). Such a nested file reads
/// beside the one it interrupted, so the limit can be passed while that happens.
pub(super) struct ReadSlots {
    limit: usize,
    count: Mutex<usize>,
    freed: std::sync::Condvar,
}

thread_local! {
    /// Read slots this thread holds.
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl ReadSlots {
    pub(super) fn new(limit: usize) -> ReadSlots {
        ReadSlots {
            limit,
            count: Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Waits for a slot (unless this thread holds one); it is given back when the
    /// guard drops.
    pub(super) fn acquire(&self) -> Option<ReadSlot<'_>> {
        if self.limit == 0 {
            return None;
        }
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        if HELD.get() == 0 {
            while *n >= self.limit {
                n = self.freed.wait(n).unwrap_or_else(|p| p.into_inner());
            }
        }
        *n += 1;
        HELD.set(HELD.get() + 1);
        Some(ReadSlot(self))
    }
}

/// A slot of [`ReadSlots`].
pub(super) struct ReadSlot<'a>(&'a ReadSlots);

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        HELD.set(HELD.get() - 1);
        *self.0.count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::ReadSlots;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A thread holding a slot takes another without waiting (waiting would deadlock
    /// it), while a thread holding none waits until a slot is given back.
    #[test]
    fn read_slots_limit_other_threads_but_never_block_a_holder() {
        // A thread of its own that is not joined, so a deadlock fails the test
        // instead of hanging it.
        let slots = std::sync::Arc::new(ReadSlots::new(1));
        let (tx, rx) = std::sync::mpsc::channel();
        let held = std::sync::Arc::clone(&slots);
        std::thread::spawn(move || {
            let outer = held.acquire();
            let inner = held.acquire();
            tx.send(()).unwrap();
            drop(inner);
            drop(outer);
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a nested acquire must not wait for the holder's own slot");
        while *slots.count.lock().unwrap() != 0 {
            std::thread::yield_now();
        }

        let first = slots.acquire();
        let got = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (slots, got) = (&slots, &got);
            s.spawn(move || {
                let _second = slots.acquire();
                got.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !got.load(Ordering::SeqCst),
                "a second thread took a slot beyond the limit"
            );
            drop(first);
        });
        assert!(got.load(Ordering::SeqCst));
        assert!(ReadSlots::new(0).acquire().is_none(), "0 means no limit");
    }
}
