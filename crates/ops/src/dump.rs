//! `dump`: one file's content to a writer, or a directory as a tar stream. Content is
//! streamed blob by blob, so memory stays at one blob whatever the file size.

use std::io::{self, Read, Write};

use cairn_format::{BlobId, Node, NodeType};
use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::Repository;

use crate::walk::{walk_tree, Visit};
use crate::OpsError;

/// Reads a file's content by loading its blobs one at a time.
pub struct ContentReader<'a> {
    repo: &'a Repository,
    blobs: std::slice::Iter<'a, BlobId>,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a> ContentReader<'a> {
    pub fn new(repo: &'a Repository, node: &'a Node) -> Self {
        ContentReader {
            repo,
            blobs: node.content.iter(),
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.blobs.next() else {
                return Ok(0);
            };
            self.buf = self.repo.load_blob(id).map_err(io::Error::other)?;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The `dump` command: the index (no lock), then the node at absolute `path` in the
/// snapshot `spec` names is written to `out` as [`dump`] does.
pub fn run(
    repo: &std::sync::Arc<Repository>,
    spec: &str,
    path: &str,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let _session = Session::begin(repo, "dump", Access::Browse, LoadIndex::Yes)?;
    let snap = repo.find_snapshot(spec)?;
    let (path, node) = crate::walk::find_path(repo, &snap, path)?;
    dump(repo, &node, &path, out)
}

/// Writes `node` (found at absolute `path`) to `out`: a file as itself, a directory as
/// a tar archive with paths relative to it.
pub fn dump(
    repo: &Repository,
    node: &Node,
    path: &str,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    match node.node_type {
        NodeType::File => {
            io::copy(&mut ContentReader::new(repo, node), out)
                .map_err(|e| OpsError::io(path, e))?;
            Ok(())
        }
        NodeType::Dir => dump_tar(repo, node, out).map_err(|e| match e {
            TarError::Ops(e) => e,
            TarError::Io(e) => OpsError::io(path, e),
        }),
        other => Err(OpsError::Invalid(format!(
            "{path} is a {}; dump writes files and directories",
            other.name()
        ))),
    }
}

enum TarError {
    Ops(OpsError),
    Io(io::Error),
}

fn header_for(n: &Node, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(n.mode);
    h.set_uid(u64::from(n.uid));
    h.set_gid(u64::from(n.gid));
    h.set_mtime(n.mtime.secs().max(0) as u64);
    let _ = h.set_username(&n.user);
    let _ = h.set_groupname(&n.group);
    h
}

fn dump_tar(repo: &Repository, dir: &Node, out: &mut dyn Write) -> Result<(), TarError> {
    let Some(tree) = dir.subtree else {
        return Ok(());
    };
    let mut b = tar::Builder::new(out);
    let mut err: Option<TarError> = None;
    let r = walk_tree(repo, &tree, b"", &mut |path, n| {
        let rel = String::from_utf8_lossy(path.strip_prefix(b"/").unwrap_or(path)).into_owned();
        let res = match n.node_type {
            NodeType::File => {
                let mut h = header_for(n, tar::EntryType::Regular, n.size);
                b.append_data(&mut h, &rel, ContentReader::new(repo, n))
            }
            NodeType::Dir => {
                let mut h = header_for(n, tar::EntryType::Directory, 0);
                b.append_data(&mut h, format!("{rel}/"), io::empty())
            }
            NodeType::Symlink => {
                let mut h = header_for(n, tar::EntryType::Symlink, 0);
                b.append_link(
                    &mut h,
                    &rel,
                    String::from_utf8_lossy(n.link_target.as_slice()).as_ref(),
                )
            }
            NodeType::Fifo => {
                let mut h = header_for(n, tar::EntryType::Fifo, 0);
                b.append_data(&mut h, &rel, io::empty())
            }
            _ => Ok(()),
        };
        match res {
            Ok(()) => Ok(Visit::Descend),
            Err(e) => {
                err = Some(TarError::Io(e));
                Err(OpsError::Invalid("tar stream failed".into()))
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    r.map_err(TarError::Ops)?;
    b.finish().map_err(TarError::Io)
}
