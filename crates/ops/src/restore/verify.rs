//! Checking a file on disk against a snapshot node, blob by blob.

use std::io::Read;
use std::path::Path;

use cairn_format::Node;
use cairn_repo::Repository;

use crate::OpsError;

/// Whether the file at `path` holds exactly the node's content: each span of the file,
/// cut at the lengths of the node's blobs, must hash to the same blob ID.
pub fn file_matches(repo: &Repository, path: &Path, node: &Node) -> Result<bool, OpsError> {
    let mut f = std::fs::File::open(path).map_err(|e| OpsError::io(path, e))?;
    if f.metadata().map_err(|e| OpsError::io(path, e))?.len() != node.size {
        return Ok(false);
    }
    let mut buf = Vec::new();
    for id in &node.content {
        let Some(b) = repo.index().get(id) else {
            return Err(OpsError::Invalid(format!("blob {} is not in the index", id.short())));
        };
        buf.resize(b.entry.raw_length as usize, 0);
        if f.read_exact(&mut buf).is_err() {
            return Ok(false);
        }
        if repo.key().blob_id(&buf) != id.0 {
            return Ok(false);
        }
    }
    let mut rest = [0u8; 1];
    Ok(matches!(f.read(&mut rest), Ok(0)))
}
