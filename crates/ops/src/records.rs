//! Records that many writers add to and nobody must lose (verification times): each
//! writer stores one new file holding everything read so far plus its own
//! news, then removes the files it read. A concurrent writer's new file is never among
//! those, so every update survives, and the folder stays at a file or two.

use cairn_format::{FormatError, VerifiedRecord};
use cairn_repo::{FileKind, Repository};

use crate::OpsError;

/// A record kind that merges.
pub trait Mergeable: Default {
    fn decode(b: &[u8]) -> Result<Self, FormatError>;
    fn encode(&self) -> Vec<u8>;
    fn merge(&mut self, other: Self);
}

impl Mergeable for VerifiedRecord {
    fn decode(b: &[u8]) -> Result<Self, FormatError> {
        VerifiedRecord::decode(b)
    }
    fn encode(&self) -> Vec<u8> {
        VerifiedRecord::encode(self)
    }
    fn merge(&mut self, other: Self) {
        VerifiedRecord::merge(self, other)
    }
}

/// Every file of one record kind, merged.
pub struct Merged<R> {
    pub record: R,
    kind: FileKind,
    files: Vec<String>,
}

impl<R: Mergeable> Merged<R> {
    /// Reads every file of `kind`; unreadable ones are skipped with a warning (a lost
    /// record costs only a repeated check or an early warning).
    pub fn load(repo: &Repository, kind: FileKind) -> Result<Merged<R>, OpsError> {
        let mut record = R::default();
        let mut files = Vec::new();
        for hex in repo.list_files(kind)? {
            match repo.load_file(kind, &hex).and_then(|b| R::decode(&b).map_err(|e| cairn_repo::RepoError::format(kind.name(&hex), e))) {
                Ok(r) => {
                    record.merge(r);
                    files.push(hex);
                }
                Err(e) => tracing::warn!("ignoring record: {e}"),
            }
        }
        Ok(Merged { record, kind, files })
    }

    /// Stores the merged record as one new file, then removes the files it replaces.
    pub fn store(self, repo: &Repository) -> Result<(), OpsError> {
        let new = repo.save_file(self.kind, &self.record.encode())?;
        for old in self.files.iter().filter(|f| **f != new) {
            repo.remove_file(self.kind, old)?;
        }
        Ok(())
    }
}
