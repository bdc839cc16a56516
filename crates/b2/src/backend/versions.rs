//! B2 keeps every version of a name: deletes remove all of them (refused, before any
//! goes, while one is locked), hidden files are purged once their locks end, and an
//! old version can be read and brought back (`repair versions`).

use cairn_backend::{
    now_millis, show_millis, validate_name, Backend, BackendError, ErrorKind, LockMode, Retention,
    Version,
};

use super::B2Backend;
use crate::client::FileVersion;

impl B2Backend {
    /// Every version under `prefix` (a name or a folder, relative to the location).
    fn all_versions(&self, prefix: &str) -> Result<Vec<FileVersion>, BackendError> {
        let full = if self.loc.prefix.is_empty() {
            prefix.to_string()
        } else {
            format!("{}/{prefix}", self.loc.prefix)
        };
        let bucket_id = self.bucket_id()?;
        self.rt
            .block_on(self.client.list_versions(&bucket_id, &full))
            .map_err(|e| self.err(prefix, e))
    }

    fn delete_all(&self, name: &str, versions: &[FileVersion]) -> Result<(), BackendError> {
        for v in versions {
            self.rt
                .block_on(self.client.delete_version(&v.name, &v.id))
                .map_err(|e| self.err(name, e))?;
        }
        Ok(())
    }

    /// Deletes every version of `name`. A version still locked makes it `Locked`
    /// before anything is deleted, so a refused delete leaves the file whole.
    pub(super) fn remove_all_versions(&self, name: &str) -> Result<(), BackendError> {
        let full = self.full(name)?;
        let mine: Vec<FileVersion> = self
            .all_versions(name)?
            .into_iter()
            .filter(|v| v.name == full)
            .collect();
        if !mine.iter().any(|v| v.action == "upload") {
            return Err(BackendError::new(
                ErrorKind::NotFound,
                format!("{}/{name}", self.loc.display()),
                "no such object",
            ));
        }
        let now = now_millis();
        if let Some(until) = mine
            .iter()
            .filter_map(|v| v.retain_until)
            .filter(|u| *u > now)
            .max()
        {
            return Err(BackendError::new(
                ErrorKind::Locked,
                format!("{}/{name}", self.loc.display()),
                format!("locked (Object Lock) until {}", show_millis(until)),
            ));
        }
        self.delete_all(name, &mine)
    }

    /// Deletes every version of the hidden files under `prefix` (a hide marker newest)
    /// whose versions are all out of their locks; returns how many files went.
    /// `chosen` says which hidden names (relative) may go.
    pub(super) fn purge_hidden_under(
        &self,
        prefix: &str,
        chosen: &dyn Fn(&str) -> bool,
    ) -> Result<u64, BackendError> {
        let versions = self.all_versions(prefix)?;
        let now = now_millis();
        let mut purged = 0;
        for all in versions.chunk_by(|a, b| a.name == b.name) {
            // Newest first within a name.
            let locked = all.iter().any(|v| v.retain_until.is_some_and(|u| u > now));
            let relative = self.relative(&all[0].name);
            if all[0].action == "hide" && !locked && relative.is_some_and(chosen) {
                self.delete_all(&all[0].name, all)?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// `name` (as B2 lists it) relative to this location, if it is inside it and valid.
    fn relative<'a>(&self, name: &'a str) -> Option<&'a str> {
        let rel = if self.loc.prefix.is_empty() {
            name
        } else {
            name.strip_prefix(self.loc.prefix.as_str())?
                .strip_prefix('/')?
        };
        validate_name(rel).ok().map(|_| rel)
    }

    pub(super) fn list_versions_under(&self, prefix: &str) -> Result<Vec<Version>, BackendError> {
        Ok(self
            .all_versions(prefix)?
            .into_iter()
            .filter(|v| v.action == "upload" || v.action == "hide")
            .filter_map(|v| {
                Some(Version {
                    name: self.relative(&v.name)?.to_string(),
                    hidden: v.action == "hide",
                    size: v.size,
                    uploaded_millis: v.upload_timestamp,
                    retention: v.retain_until.map(|until_millis| Retention {
                        mode: match v.retain_mode.as_deref() {
                            Some("compliance") => LockMode::Compliance,
                            _ => LockMode::Governance,
                        },
                        until_millis,
                    }),
                    sha1: v.sha1,
                    id: v.id,
                })
            })
            .collect())
    }

    pub(super) fn read_version_by_id(&self, v: &Version) -> Result<Vec<u8>, BackendError> {
        self.full(&v.name)?;
        self.rt
            .block_on(self.client.download_by_id(&v.id, v.size))
            .map_err(|e| self.err(&v.name, e))
    }

    /// A server-side copy of the old version onto its own name, locked as long as the
    /// old version still is (where this key may lock).
    pub(super) fn restore_version_by_id(&self, v: &Version) -> Result<(), BackendError> {
        let f = self
            .rt
            .block_on(self.client.get_file_info(&v.id))
            .map_err(|e| self.err(&v.name, e))?;
        if f.name != self.full(&v.name)? || f.action != "upload" {
            return Err(BackendError::new(
                ErrorKind::Corrupt,
                format!("{}/{}", self.loc.display(), v.name),
                format!("version {} is not an upload of this name", v.id),
            ));
        }
        self.server_copy(&f, &v.name, None)?;
        match v.retention.filter(|r| r.until_millis > now_millis()) {
            Some(r) => match self.set_retention(&v.name, &r) {
                Err(e) if e.kind == ErrorKind::PermissionDenied => Ok(()),
                r => r.map(|_| ()),
            },
            None => Ok(()),
        }
    }
}
