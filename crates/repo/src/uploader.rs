//! Concurrent pack uploads for remote backends.
//!
//! Full packs go into a bounded channel served by N threads that write them to the
//! backend; the channel holds at most N packs, so memory stays at about 2N packs
//! whatever the input size. A pack's blobs join the index only after its upload
//! succeeded ([`Uploader::take_done`]); until then they stay "in flight", so they are
//! neither stored twice nor referenced by an index before they exist.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use cairn_backend::{Backend, WriteOptions};
use cairn_format::{PackEntry, PackId};

use crate::layout::pack_name;
use crate::packer::FinishedPack;
use crate::{unpoison, RepoError};

pub(crate) type Done = (PackId, u64, Vec<PackEntry>);

#[derive(Default)]
struct Shared {
    pending: Mutex<usize>,
    idle: Condvar,
    done: Mutex<Vec<Done>>,
    error: Mutex<Option<RepoError>>,
}

pub(crate) struct Uploader {
    tx: Mutex<Option<SyncSender<FinishedPack>>>,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Uploader {
    pub(crate) fn new(backend: Arc<dyn Backend>, transfers: usize) -> Uploader {
        let n = transfers.max(1);
        let (tx, rx) = sync_channel::<FinishedPack>(n);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared::default());
        let threads = (0..n)
            .map(|_| {
                let (rx, shared, backend) =
                    (Arc::clone(&rx), Arc::clone(&shared), Arc::clone(&backend));
                std::thread::spawn(move || loop {
                    let next = rx.lock().unwrap_or_else(unpoison).recv();
                    let Ok(mut pack) = next else { return };
                    match backend.write_parts(
                        &pack_name(&pack.id),
                        &pack.slices(),
                        &WriteOptions::default(),
                    ) {
                        Ok(()) => {
                            let entries = std::mem::take(&mut pack.entries);
                            shared
                                .done
                                .lock()
                                .unwrap_or_else(unpoison)
                                .push((pack.id, pack.size, entries));
                        }
                        Err(e) => {
                            shared
                                .error
                                .lock()
                                .unwrap_or_else(unpoison)
                                .get_or_insert(e.into());
                        }
                    }
                    let mut p = shared.pending.lock().unwrap_or_else(unpoison);
                    *p -= 1;
                    shared.idle.notify_all();
                })
            })
            .collect();
        Uploader {
            tx: Mutex::new(Some(tx)),
            shared,
            threads: Mutex::new(threads),
        }
    }

    fn check(&self) -> Result<(), RepoError> {
        match self.shared.error.lock().unwrap_or_else(unpoison).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Queues a pack, waiting while N packs are already queued.
    pub(crate) fn submit(&self, pack: FinishedPack) -> Result<(), RepoError> {
        self.check()?;
        *self.shared.pending.lock().unwrap_or_else(unpoison) += 1;
        let tx = self.tx.lock().unwrap_or_else(unpoison).clone();
        match tx {
            Some(tx) if tx.send(pack).is_ok() => Ok(()),
            _ => Err(RepoError::Internal("upload workers have stopped")),
        }
    }

    /// Waits until every queued pack is uploaded (or failed).
    pub(crate) fn wait_idle(&self) -> Result<(), RepoError> {
        let mut p = self.shared.pending.lock().unwrap_or_else(unpoison);
        while *p > 0 {
            p = self.shared.idle.wait(p).unwrap_or_else(unpoison);
        }
        drop(p);
        self.check()
    }

    /// Packs uploaded since the last call.
    pub(crate) fn take_done(&self) -> Result<Vec<Done>, RepoError> {
        self.check()?;
        Ok(std::mem::take(
            &mut *self.shared.done.lock().unwrap_or_else(unpoison),
        ))
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        drop(self.tx.lock().unwrap_or_else(unpoison).take());
        for t in self.threads.lock().unwrap_or_else(unpoison).drain(..) {
            let _ = t.join();
        }
    }
}
