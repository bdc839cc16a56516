//! Listings: names, versions and unfinished large files, page by page, each cursor
//! checked to move on (a hostile or broken server could otherwise page forever).

use serde_json::json;

use crate::client::{Client, FileVersion};
use crate::reply::ListReply;
use crate::B2Error;

impl Client {
    /// Every visible file whose name starts with `prefix` (all pages).
    pub async fn list_names(
        &self,
        bucket_id: &str,
        prefix: &str,
    ) -> Result<Vec<FileVersion>, B2Error> {
        Ok(self
            .list_names_delimited(bucket_id, prefix, None)
            .await?
            .into_iter()
            .filter(|f| f.action == "upload")
            .collect())
    }

    /// Like [`Client::list_names`]; with a `delimiter` (normally `/`) names below the
    /// next delimiter collapse into one `folder` entry, as B2 lists directories.
    pub async fn list_names_delimited(
        &self,
        bucket_id: &str,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Vec<FileVersion>, B2Error> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let v: ListReply = self
                .call(
                    "b2_list_file_names",
                    json!({"bucketId": bucket_id, "prefix": prefix, "startFileName": start, "maxFileCount": 10000, "delimiter": delimiter}),
                )
                .await?;
            out.extend(v.files.into_iter().map(FileVersion::from));
            match v.next_file_name {
                Some(n) => {
                    // A cursor that does not move on would page forever (a hostile or
                    // broken server): names come in order, so the next must be later.
                    if start.as_deref().is_some_and(|s| n.as_str() <= s) {
                        return Err(B2Error::Invalid(format!("b2_list_file_names: the listing's cursor did not advance (nextFileName {n:?})")));
                    }
                    start = Some(n);
                }
                None => return Ok(out),
            }
        }
    }

    /// Large files started but never finished (left by interrupted uploads).
    pub async fn list_unfinished(
        &self,
        bucket_id: &str,
        prefix: &str,
    ) -> Result<Vec<FileVersion>, B2Error> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let v: ListReply = self
                .call("b2_list_unfinished_large_files", json!({"bucketId": bucket_id, "namePrefix": prefix, "startFileId": start, "maxFileCount": 100}))
                .await?;
            out.extend(v.files.into_iter().map(FileVersion::from));
            match v.next_file_id {
                // Like the name cursors: one that does not move on would page forever.
                Some(n) if start.as_deref() == Some(n.as_str()) => {
                    return Err(B2Error::Invalid(format!("b2_list_unfinished_large_files: the listing's cursor did not advance (nextFileId {n:?})")));
                }
                Some(n) => start = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// The visible file called exactly `name`, via a one-entry listing.
    pub async fn find_name(
        &self,
        bucket_id: &str,
        name: &str,
    ) -> Result<Option<FileVersion>, B2Error> {
        let v: ListReply = self.call("b2_list_file_names", json!({"bucketId": bucket_id, "prefix": name, "startFileName": name, "maxFileCount": 1})).await?;
        Ok(v.files
            .into_iter()
            .map(FileVersion::from)
            .find(|f| f.name == name && f.action == "upload"))
    }

    /// Every version (uploads and hide markers) of names starting with `prefix`.
    pub async fn list_versions(
        &self,
        bucket_id: &str,
        prefix: &str,
    ) -> Result<Vec<FileVersion>, B2Error> {
        let mut out = Vec::new();
        let (mut start_name, mut start_id): (Option<String>, Option<String>) = (None, None);
        loop {
            let v: ListReply = self
                .call(
                    "b2_list_file_versions",
                    json!({"bucketId": bucket_id, "prefix": prefix, "startFileName": start_name, "startFileId": start_id, "maxFileCount": 10000}),
                )
                .await?;
            out.extend(v.files.into_iter().map(FileVersion::from));
            match v.next_file_name {
                Some(n) => {
                    let next_id = v.next_file_id;
                    // Versions of one name page by ID: the pair must move on.
                    if start_name.as_deref().is_some_and(|s| n.as_str() < s)
                        || (start_name.as_deref() == Some(n.as_str()) && start_id == next_id)
                    {
                        return Err(B2Error::Invalid(format!("b2_list_file_versions: the listing's cursor did not advance (nextFileName {n:?})")));
                    }
                    start_name = Some(n);
                    start_id = next_id;
                }
                None => return Ok(out),
            }
        }
    }
}
