//! What B2 does without the bytes passing through this machine: server-side copies
//! (within one account), modification times set by a copy onto itself, and hides.

use cairn_backend::{BackendError, ErrorKind};

use super::B2Backend;

impl B2Backend {
    /// Copies `src_name` of `src` to `name` here without downloading it, metadata kept
    /// (b2_copy_file; above the copy cutoff part by part with b2_copy_part, since B2
    /// copies at most 5 GB in one call).
    pub(super) fn copy_from_b2(
        &self,
        src: &B2Backend,
        src_name: &str,
        name: &str,
    ) -> Result<(), BackendError> {
        let f = src.newest(src_name)?;
        self.server_copy(&f, name, None)
    }

    /// Gives `name` a new modification time without moving its bytes: a server-side copy
    /// of the object onto itself with the new `src_last_modified_millis`, as rclone does
    /// when only the time differs. (B2 keeps the previous version until it is cleaned up.)
    pub(super) fn set_mtime_millis(
        &self,
        name: &str,
        mtime_millis: i64,
    ) -> Result<(), BackendError> {
        let f = self.newest(name)?;
        let mut info: Vec<(String, String)> = f
            .info
            .iter()
            .filter(|(k, _)| *k != "src_last_modified_millis")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        info.push(("src_last_modified_millis".into(), mtime_millis.to_string()));
        info.sort();
        self.server_copy(&f, name, Some(info))
    }

    /// Copies the stored version `f` (of any bucket this key reaches) to `name` here; with
    /// `info`, the copy gets that file info instead of the source's.
    pub(super) fn server_copy(
        &self,
        f: &crate::FileVersion,
        name: &str,
        info: Option<Vec<(String, String)>>,
    ) -> Result<(), BackendError> {
        let to = self.full(name)?;
        let dst_bucket = self.bucket_id()?;
        // The name's newest version changes: an ID listed before is no longer it.
        self.listed_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&to);
        let info_refs: Option<Vec<(&str, String)>> = info
            .as_ref()
            .map(|i| i.iter().map(|(k, v)| (k.as_str(), v.clone())).collect());
        if f.size <= self.client.copy_cutoff {
            let replace = info_refs.as_deref().map(|i| (f.content_type.as_str(), i));
            self.rt
                .block_on(
                    self.client
                        .copy_file(&f.id, &to, Some(&dst_bucket), replace),
                )
                .map_err(|e| self.err(name, e))?;
            return Ok(());
        }
        let sha1 = f.sha1.clone().ok_or_else(|| {
            BackendError::new(
                ErrorKind::Corrupt,
                format!("{}/{name}", self.loc.display()),
                "the source has no SHA1 to carry over to a large copy",
            )
        })?;
        let kept: Vec<(&str, String)> = f
            .info
            .iter()
            .filter(|(k, _)| *k != "large_file_sha1")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let info = info_refs.unwrap_or(kept);
        let part = self.client.copy_cutoff.max(1);
        self.rt
            .block_on(
                self.client
                    .copy_large(f, &dst_bucket, &to, &info, &sha1, part),
            )
            .map_err(|e| self.err(name, e))?;
        Ok(())
    }

    /// Hides a file (B2's soft delete, what rclone does without `hard_delete`).
    pub(super) fn hide_file(&self, name: &str) -> Result<(), BackendError> {
        let full = self.full(name)?;
        let bucket_id = self.bucket_id()?;
        self.rt
            .block_on(self.client.hide(&bucket_id, &full))
            .map_err(|e| self.err(name, e))
    }
}
