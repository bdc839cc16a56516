//! File content for reads: the blobs covering a range, through a cache bounded in
//! bytes, with the next blob fetched ahead on another thread.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cairn_format::BlobId;

use crate::tree::Fs;
use crate::CACHE_BYTES;

/// Blobs decoded for reads, evicted oldest first beyond CACHE_BYTES.
#[derive(Default)]
pub(crate) struct BlobCache {
    pub(crate) blobs: HashMap<BlobId, Arc<Vec<u8>>>,
    pub(crate) order: VecDeque<BlobId>,
    pub(crate) bytes: usize,
}

impl BlobCache {
    pub(crate) fn get(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.blobs.get(id).cloned()
    }

    pub(crate) fn put(&mut self, id: BlobId, data: Arc<Vec<u8>>) {
        if self.blobs.contains_key(&id) {
            return;
        }
        self.bytes += data.len();
        self.blobs.insert(id, data);
        self.order.push_back(id);
        while self.bytes > CACHE_BYTES && self.order.len() > 1 {
            if let Some(old) = self.order.pop_front() {
                if let Some(d) = self.blobs.remove(&old) {
                    self.bytes -= d.len();
                }
            }
        }
    }
}

impl Fs {
    /// Start offsets of the file's blobs, with its size at the end.
    pub(crate) fn offsets(&mut self, ino: u64) -> Result<Arc<Vec<u64>>, i32> {
        if let Some(o) = &self.inodes[ino as usize].offsets {
            return Ok(Arc::clone(o));
        }
        let node = self.node(ino).ok_or(libc::EISDIR)?.clone();
        let mut offsets = Vec::with_capacity(node.content.len() + 1);
        let mut at = 0u64;
        for id in &node.content {
            offsets.push(at);
            let len = self
                .repo
                .index()
                .get(id)
                .map(|b| u64::from(b.entry.raw_length))
                .ok_or_else(|| {
                    tracing::warn!(
                        "blob {} of {} is not in the index",
                        id.short(),
                        String::from_utf8_lossy(&node.name.0)
                    );
                    libc::EIO
                })?;
            at += len;
        }
        offsets.push(at);
        let o = Arc::new(offsets);
        self.inodes[ino as usize].offsets = Some(Arc::clone(&o));
        Ok(o)
    }

    pub(crate) fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>, i32> {
        if let Some(b) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(b);
        }
        let data = Arc::new(self.repo.load_blob(id).map_err(|e| {
            tracing::warn!("{e}");
            libc::EIO
        })?);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(*id, Arc::clone(&data));
        Ok(data)
    }

    /// Fetches `id` into the cache on another thread (at most two at a time).
    pub(crate) fn prefetch(&self, id: BlobId) {
        if self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .is_some()
        {
            return;
        }
        if self.prefetching.fetch_add(1, Ordering::SeqCst) >= 2 {
            self.prefetching.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let (repo, cache, busy) = (
            Arc::clone(&self.repo),
            Arc::clone(&self.cache),
            Arc::clone(&self.prefetching),
        );
        std::thread::spawn(move || {
            if let Ok(data) = repo.load_blob(&id) {
                cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(id, Arc::new(data));
            }
            busy.fetch_sub(1, Ordering::SeqCst);
        });
    }

    pub(crate) fn read_range(&mut self, ino: u64, offset: u64, size: u64) -> Result<Vec<u8>, i32> {
        let offsets = self.offsets(ino)?;
        let node = self.node(ino).ok_or(libc::EISDIR)?.clone();
        let total = *offsets.last().unwrap_or(&0);
        let end = offset.saturating_add(size).min(total);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        if offset >= end {
            return Ok(out);
        }
        // The blob holding `offset`: the last one starting at or before it.
        let mut i = offsets.partition_point(|&s| s <= offset) - 1;
        let mut pos = offset;
        while pos < end && i < node.content.len() {
            let data = self.blob(&node.content[i])?;
            let start = offsets[i];
            let from = (pos - start) as usize;
            let to = ((end - start) as usize).min(data.len());
            if from >= to {
                return Err(libc::EIO);
            }
            out.extend_from_slice(&data[from..to]);
            pos = start + to as u64;
            i += 1;
        }
        if let Some(next) = node.content.get(i) {
            self.prefetch(*next);
        }
        Ok(out)
    }
}
