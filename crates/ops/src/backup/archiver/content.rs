//! Saving one file's content: read in batches (holes skipped), chunked, each chunk
//! stored as a blob.

use super::*;

impl<'a> Archiver<'a> {
    pub(super) fn file(
        &self,
        path: &Path,
        node: &mut Node,
        parent: Option<&Node>,
    ) -> Result<FileOutcome, OpsError> {
        self.progress.current(path);
        let outcome = self.file_inner(path, node, parent);
        // Bytes were reported as they were read (or at once for an unchanged file).
        self.progress.file_done(0);
        outcome
    }

    pub(super) fn file_inner(
        &self,
        path: &Path,
        node: &mut Node,
        parent: Option<&Node>,
    ) -> Result<FileOutcome, OpsError> {
        inc(&self.counters.files);
        self.counters.bytes.fetch_add(node.size, Ordering::Relaxed);
        if let Some(content) = self.unchanged(node, parent) {
            self.progress.bytes_done(node.size);
            node.content = content;
            inc(&self.counters.files_unmodified);
            return Ok(FileOutcome::Saved);
        }
        let _slot = self.reading.acquire();
        let f = match open_noatime(path) {
            Ok(f) => f,
            Err(e) => {
                self.error(path, e);
                return Ok(FileOutcome::Failed);
            }
        };
        // Only a file with fewer blocks than bytes can have holes worth asking about.
        let sparse = node.size >= 2 * self.chunker.params().max_size as u64
            && f.metadata().is_ok_and(|m| m.blocks() * 512 < m.len());
        let saved = if sparse {
            self.save_content(
                SparseFile {
                    file: &f,
                    offset: 0,
                },
                node.size,
            )
        } else {
            self.save_content(Dense(&f), node.size)
        };
        let (content, read) = match saved {
            Ok(x) => x,
            Err(ContentError::Read(e)) => {
                self.error(path, e);
                return Ok(FileOutcome::Failed);
            }
            Err(ContentError::Repo(e)) => return Err(e),
        };
        if let Ok(after) = f.metadata() {
            let mtime = Timestamp(after.mtime(), after.mtime_nsec() as u32);
            if after.len() != node.size || read != node.size || mtime != node.mtime {
                self.warning(format!(
                    "{}: changed during backup; stored as read ({read} bytes)",
                    path.display()
                ));
            }
        }
        node.size = read;
        node.content = content;
        let changed = parent.is_some_and(|p| p.node_type == NodeType::File);
        if changed {
            inc(&self.counters.files_changed);
        } else {
            inc(&self.counters.files_new);
        }
        if self.opts.list_stored {
            let what = if changed { "modified" } else { "new" };
            self.progress
                .listed(&format!("{what:<9} {}", path.display()));
        }
        self.repo.checkpoint_index(self.opts.checkpoint_interval)?;
        Ok(FileOutcome::Saved)
    }

    /// Chunks a stream and stores its blobs; returns blob ids in order and bytes read.
    /// Above one batch (`size_hint`), a reader thread chunks the next batch while this
    /// one is hashed, compressed and sealed on every core, so no core waits for the
    /// disk or the chunker; at most two batches of one file are in memory. (The reader
    /// hands a batch over only when the last is stored: chunking is several times
    /// faster than sealing, so a third batch waiting in between bought no speed and
    /// cost ~10 MiB per file being read.)
    pub(super) fn save_content(
        &self,
        reader: impl Sparse + Send,
        size_hint: u64,
    ) -> Result<(Vec<BlobId>, u64), ContentError> {
        let mut ids = Vec::new();
        let mut read = 0u64;
        let store = |batch: Vec<Chunk>,
                     ids: &mut Vec<BlobId>,
                     read: &mut u64|
         -> Result<(), ContentError> {
            let bytes = batch.iter().map(|c| c.len() as u64).sum::<u64>();
            *read += bytes;
            let saved: Vec<BlobId> = batch
                .par_iter()
                .map(|c| match c {
                    Chunk::Data(d) => self
                        .repo
                        .save_blob_parts(BlobType::Data, &d.slices())
                        .map(|(id, _)| id),
                    Chunk::Zeros(n) => self.zero_blob(*n),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| ContentError::Repo(e.into()))?;
            ids.extend(saved);
            self.progress.bytes_done(bytes);
            Ok(())
        };
        if size_hint <= BATCH_BYTES as u64 {
            // A small file: no thread to start; it is one batch (or grew meanwhile).
            let mut batch = Batch::default();
            for chunk in self.chunker.chunks_sparse(reader) {
                if let Some(full) = batch.push(chunk.map_err(ContentError::Read)?) {
                    store(full, &mut ids, &mut read)?;
                }
            }
            store(batch.chunks, &mut ids, &mut read)?;
            return Ok((ids, read));
        }
        let chunker = &self.chunker;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<Chunk>>>(0);
            scope.spawn(move || {
                let mut batch = Batch::default();
                for chunk in chunker.chunks_sparse(reader) {
                    match chunk {
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                        Ok(c) => {
                            // The receiver is gone only after an error: stop reading.
                            if let Some(full) = batch.push(c) {
                                if tx.send(Ok(full)).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
                let _ = tx.send(Ok(batch.chunks));
            });
            for batch in rx {
                store(batch.map_err(ContentError::Read)?, &mut ids, &mut read)?;
            }
            Ok((ids, read))
        })
    }

    /// The blob of `n` zero bytes, stored once per backup and then only referenced.
    pub(super) fn zero_blob(&self, n: usize) -> Result<BlobId, cairn_repo::RepoError> {
        let mut known = self.zero_blob.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = *known {
            return Ok(id);
        }
        let (id, _) = self.repo.save_blob(BlobType::Data, &vec![0; n])?;
        *known = Some(id);
        Ok(id)
    }
}

/// Chunks gathered for one parallel store: up to BATCH_BYTES of data (zero chunks from
/// holes hold no memory, so they only count towards a cap on their number).
#[derive(Default)]
struct Batch {
    chunks: Vec<Chunk>,
    bytes: usize,
}

impl Batch {
    /// Adds a chunk; returns the batch to store when it is full.
    fn push(&mut self, c: Chunk) -> Option<Vec<Chunk>> {
        if let Chunk::Data(d) = &c {
            self.bytes += d.len();
        }
        self.chunks.push(c);
        if self.bytes >= BATCH_BYTES || self.chunks.len() >= 4096 {
            self.bytes = 0;
            return Some(std::mem::take(&mut self.chunks));
        }
        None
    }
}

/// A file read with `pread` at its own offset, its holes found with SEEK_HOLE/SEEK_DATA
/// (which move only the descriptor's offset, never ours).
struct SparseFile<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for SparseFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Sparse for SparseFile<'_> {
    fn next_hole(&mut self, offset: u64) -> std::io::Result<Option<(u64, u64)>> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        let size = self.file.metadata()?.len();
        let seek = |off: u64, whence| -> std::io::Result<Option<u64>> {
            // SAFETY: lseek on a descriptor we own; no memory is passed.
            let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
            if r >= 0 {
                return Ok(Some(r as u64));
            }
            match std::io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
                e => Err(e),
            }
        };
        let mut at = offset;
        loop {
            let Some(start) = seek(at, libc::SEEK_HOLE)? else {
                return Ok(None);
            };
            if start >= size {
                return Ok(None); // the implicit hole at the end of every file
            }
            let end = seek(start, libc::SEEK_DATA)?.unwrap_or(size).min(size);
            if end > offset {
                return Ok(Some((start, end)));
            }
            at = end;
        }
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.offset += n;
        Ok(())
    }
}

pub(super) enum ContentError {
    Read(std::io::Error),
    Repo(OpsError),
}

/// Opens for reading without updating the access time where the kernel allows it
/// (only the owner or root may), so a backup does not disturb atime-based tools.
fn open_noatime(path: &Path) -> std::io::Result<File> {
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path),
        Err(e) => Err(e),
    }
}
