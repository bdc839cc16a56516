//! One regular file restored: opened so that nothing in the way is written through,
//! its blobs written at their offsets (all-zero ones as holes), then its metadata
//! through the same descriptor.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rayon::prelude::*;

use cairn_format::{BlobId, Node};
use cairn_repo::Repository;

use super::target::{self, TargetDir};
use super::{verify, Errors, Item, Overwrite};
use crate::meta::{apply_metadata, NameCache, Target};
use crate::OpsError;

pub(super) enum FileResult {
    Written(u64),
    /// Already identical (`--overwrite if-changed`): only metadata is applied.
    Identical,
    /// Existing file left alone (`--overwrite never`).
    Kept,
    Failed,
}

/// Blobs of one file loaded in parallel at a time.
pub(super) const BLOBS_PER_BATCH: usize = 8;

/// Writes one file's content and, once it is whole, its metadata through the same
/// descriptor, loading `batch_len` of its blobs at once.
pub(super) fn restore_file(
    repo: &Repository,
    target: &TargetDir,
    item: &Item,
    overwrite: Overwrite,
    owners: Option<&NameCache>,
    errors: &Errors,
    batch_len: usize,
) -> Result<FileResult, OpsError> {
    let dest = &item.dest;
    let node = &item.node;
    let f = match open_for_restore(repo, target, item, overwrite)? {
        Opened::File(f) => f,
        Opened::Done(r) => return Ok(r),
    };
    let (offset, written_end, damaged) = write_content(repo, &f, dest, node, batch_len)?;
    // The file was empty when opened; only trailing holes need it lengthened.
    if offset > written_end {
        f.set_len(offset).map_err(|e| OpsError::io(dest, e))?;
    }
    if !damaged.is_empty() {
        return Err(OpsError::Invalid(format!(
            "damaged, restored with gaps: {}",
            damaged.join("; ")
        )));
    }
    if offset != node.size {
        return Err(OpsError::Invalid(format!(
            "restored {offset} bytes but the snapshot records {}",
            node.size
        )));
    }
    if let Err(e) = apply_metadata(Target::File(&f), node, owners) {
        errors.add(dest, format!("metadata: {e}"));
    }
    Ok(FileResult::Written(offset))
}

/// A file opened for restoring, or the outcome when it needs none.
enum Opened {
    File(std::fs::File),
    Done(FileResult),
}

/// A file that does not exist yet (a restore into a new target) is created exclusively,
/// with no look at the path first; whatever is in the way is removed first, unless
/// `--overwrite` keeps it.
fn open_for_restore(
    repo: &Repository,
    target: &TargetDir,
    item: &Item,
    overwrite: Overwrite,
) -> Result<Opened, OpsError> {
    let dest = &item.dest;
    let node = &item.node;
    let io = |e| OpsError::io(dest, e);
    let (dir, name) = target.parent(dest).map_err(io)?;
    // Always a new file (O_EXCL): whatever is in the way is removed first.
    let f = match target::create_file_at(&dir, name) {
        Ok(f) => f,
        // Something is in the way (a file, a symlink, anything else).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Some(st) = target::stat_at(&dir, name).map_err(io)? {
                match overwrite {
                    Overwrite::Never => return Ok(Opened::Done(FileResult::Kept)),
                    Overwrite::IfChanged
                        if target::is_file(&st) && st.st_size as u64 == node.size =>
                    {
                        let same = target::open_file_at(&dir, name)
                            .map_err(io)
                            .and_then(|f| verify::file_matches(repo, &f, dest, node));
                        if same.unwrap_or(false) {
                            return Ok(Opened::Done(FileResult::Identical));
                        }
                    }
                    _ => {}
                }
                // Replaced, never truncated in place: an existing file may be a hardlink
                // whose other names lie outside the target, and writing through it would
                // change them too.
                target::remove_at(&dir, name).map_err(io)?;
            }
            target::create_file_at(&dir, name).map_err(io)?
        }
        Err(e) => return Err(io(e)),
    };
    Ok(Opened::File(f))
}

/// Writes the file's blobs at their offsets, all-zero blobs as holes; returns the
/// length reached, the end of the last data written, and the blobs that could not be
/// read (their ranges left as holes).
fn write_content(
    repo: &Repository,
    f: &std::fs::File,
    dest: &Path,
    node: &Node,
    batch_len: usize,
) -> Result<(u64, u64, Vec<String>), OpsError> {
    let mut offset = 0u64;
    let mut written_end = 0u64;
    let mut damaged: Vec<String> = Vec::new();
    // Blobs found to be all zeros, with their lengths: a sparse file repeats one such
    // blob for every chunk of its holes, and it is loaded once, not once per chunk.
    let mut zero_blobs: HashMap<BlobId, u64> = HashMap::new();
    for batch in node.content.chunks(batch_len) {
        let blobs: Vec<_> = batch
            .par_iter()
            .map(|id| match zero_blobs.get(id) {
                Some(&len) => (id, Ok(Loaded::Zeros(len))),
                None => (id, repo.load_blob(id).map(Loaded::Data)),
            })
            .collect();
        for (id, blob) in blobs {
            match blob {
                Ok(Loaded::Zeros(len)) => offset += len,
                Ok(Loaded::Data(data)) => {
                    // All-zero blobs become holes: sparse files stay sparse.
                    if data.iter().all(|b| *b == 0) {
                        zero_blobs.insert(*id, data.len() as u64);
                    } else if let Some(end) =
                        write_sparse(f, &data, offset).map_err(|e| OpsError::io(dest, e))?
                    {
                        written_end = end;
                    }
                    offset += data.len() as u64;
                }
                Err(e) => {
                    let len = repo.index().get(id).map(|b| u64::from(b.entry.raw_length));
                    damaged.push(format!("blob {}: {e}", id.short()));
                    match len {
                        Some(l) => offset += l,
                        None => break,
                    }
                }
            }
        }
    }
    Ok((offset, written_end, damaged))
}

/// Filesystem blocks: a zero run this long, aligned to the file, is left a hole.
const BLOCK: u64 = 4096;

/// Writes `data` at `offset`, leaving every block-aligned run of zero blocks inside it
/// unwritten, so a file whose holes share a chunk with data (its first and last chunks)
/// stays sparse. The file was empty when opened, so what is skipped reads as zeros.
/// Returns the end of the last bytes written, if any were.
fn write_sparse(f: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<Option<u64>> {
    let mut written_end = None;
    let mut run_start: Option<usize> = None;
    let mut at = 0usize;
    while at < data.len() {
        // Up to the next block boundary of the file.
        let step = (BLOCK - (offset + at as u64) % BLOCK) as usize;
        let end = (at + step).min(data.len());
        let zero = data[at..end].iter().all(|b| *b == 0);
        match (zero, run_start) {
            (false, None) => run_start = Some(at),
            (true, Some(start)) => {
                f.write_all_at(&data[start..at], offset + start as u64)?;
                written_end = Some(offset + at as u64);
                run_start = None;
            }
            _ => {}
        }
        at = end;
    }
    if let Some(start) = run_start {
        f.write_all_at(&data[start..], offset + start as u64)?;
        written_end = Some(offset + data.len() as u64);
    }
    Ok(written_end)
}

/// A blob of a file being restored: its bytes, or the length of a known all-zero blob.
enum Loaded {
    Data(Vec<u8>),
    Zeros(u64),
}
