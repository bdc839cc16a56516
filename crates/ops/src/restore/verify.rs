//! Checking a file on disk against a snapshot node, blob by blob.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

use cairn_format::{BlobId, Node};
use cairn_repo::Repository;

use crate::OpsError;

/// Whether the open file `f` holds exactly the node's content (`path` only names it in
/// errors): each span of the file, cut at the lengths of the node's blobs, must hash to
/// the same blob ID. A span that repeats a blob already found to be all zeros and lies
/// wholly in a hole reads as zeros without being read, so a sparse file verifies at the
/// speed of its data. Restore opens the file through its directory's descriptor.
pub fn file_matches(
    repo: &Repository,
    f: &std::fs::File,
    path: &Path,
    node: &Node,
) -> Result<bool, OpsError> {
    if f.metadata().map_err(|e| OpsError::io(path, e))?.len() != node.size {
        return Ok(false);
    }
    let mut buf = Vec::new();
    let mut zero_blobs: HashSet<BlobId> = HashSet::new();
    let mut offset = 0u64;
    for id in &node.content {
        let Some(b) = repo.index().get(id) else {
            return Err(OpsError::Invalid(format!(
                "blob {} is not in the index",
                id.short()
            )));
        };
        let len = u64::from(b.entry.raw_length);
        if zero_blobs.contains(id) && is_hole(f, offset, len) {
            offset += len;
            continue;
        }
        buf.resize(len as usize, 0);
        if f.read_exact_at(&mut buf, offset).is_err() {
            return Ok(false);
        }
        if repo.key().blob_id(&buf) != id.0 {
            return Ok(false);
        }
        if buf.iter().all(|&b| b == 0) {
            zero_blobs.insert(*id);
        }
        offset += len;
    }
    let mut rest = [0u8; 1];
    Ok(matches!(f.read_at(&mut rest, offset), Ok(0)))
}

/// Whether `len` bytes at `offset` hold no data (SEEK_DATA finds none before their end).
fn is_hole(f: &std::fs::File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: lseek on a descriptor we own; reads go through pread, not its offset.
    let r = unsafe { libc::lseek(f.as_raw_fd(), offset as libc::off_t, libc::SEEK_DATA) };
    if r < 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
    }
    r as u64 >= offset + len
}
