//! The index files prune writes, a bounded file at a time.

use std::collections::HashSet;

use cairn_format::{FileId, IndexFile, IndexPack};
use cairn_repo::{FileKind, Repository};

use crate::OpsError;

/// Packs per index file written by prune: ~1 MB files for 16-blob packs.
const INDEX_PACKS_PER_FILE: usize = 2000;
/// Blobs per index file written by prune (about 5 MB), however small the blobs.
const INDEX_BLOBS_PER_FILE: usize = 100_000;

/// Index files written as packs are added: a file holds at most
/// [`INDEX_PACKS_PER_FILE`] packs and [`INDEX_BLOBS_PER_FILE`] blobs.
pub(super) struct IndexWriter<'a> {
    repo: &'a Repository,
    file: IndexFile,
    blobs: usize,
    written: HashSet<FileId>,
}

impl<'a> IndexWriter<'a> {
    pub(super) fn new(repo: &'a Repository) -> IndexWriter<'a> {
        IndexWriter {
            repo,
            file: IndexFile::default(),
            blobs: 0,
            written: HashSet::new(),
        }
    }

    pub(super) fn add(
        &mut self,
        pack: IndexPack,
        marked_millis: Option<i64>,
    ) -> Result<(), OpsError> {
        self.blobs += pack.blobs.len();
        match marked_millis {
            Some(marked_millis) => self.file.marked.push(cairn_format::MarkedPack {
                pack,
                marked_millis,
            }),
            None => self.file.packs.push(pack),
        }
        if self.file.packs.len() + self.file.marked.len() >= INDEX_PACKS_PER_FILE
            || self.blobs >= INDEX_BLOBS_PER_FILE
        {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OpsError> {
        if self.file.packs.is_empty() && self.file.marked.is_empty() {
            return Ok(());
        }
        let f = std::mem::take(&mut self.file);
        self.blobs = 0;
        self.written
            .insert(self.repo.save_file(FileKind::Index, &f.encode())?);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<HashSet<FileId>, OpsError> {
        self.flush()?;
        Ok(self.written)
    }
}
