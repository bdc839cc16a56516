//! B2's JSON replies as types. A field the client needs and the reply lacks (or gives the
//! wrong type) is an error naming the call, never a silent empty string; fields B2 may
//! leave out get their documented meaning (`action` is `upload`, a folder has no ID).

use std::collections::HashMap;

use serde::Deserialize;

use crate::client::FileVersion;

/// An error reply: `{"status": 400, "code": "bad_request", "message": "..."}`.
#[derive(Deserialize, Default)]
pub(crate) struct ErrorReply {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A file version in a listing, an upload's or a copy's reply, or `b2_get_file_info`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReply {
    /// Folders in a delimited listing have none.
    #[serde(default)]
    file_id: Option<String>,
    file_name: String,
    #[serde(default)]
    content_length: Option<u64>,
    /// What parts and unfinished files call their length.
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    content_sha1: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    upload_timestamp: i64,
    #[serde(default)]
    file_info: HashMap<String, String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    file_retention: Option<Readable<RetentionValue>>,
}

/// B2's wrapper for settings a key may not be allowed to read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Readable<T> {
    #[serde(default = "no")]
    pub is_client_authorized_to_read: bool,
    #[serde(default)]
    pub value: Option<T>,
}

fn no() -> bool {
    false
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RetentionValue {
    #[serde(default)]
    pub retain_until_timestamp: Option<i64>,
    #[serde(default)]
    pub mode: Option<String>,
}

/// A bucket's file lock setting.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileLockConfiguration {
    #[serde(default)]
    pub is_file_lock_enabled: bool,
}

impl From<FileReply> for FileVersion {
    fn from(r: FileReply) -> FileVersion {
        // Large files carry no whole-file SHA1 of B2's own: rclone (and cairn) keep one
        // in `large_file_sha1`.
        let sha1 = r
            .content_sha1
            .filter(|s| !s.is_empty() && s != "none")
            .map(|s| s.trim_start_matches("unverified:").to_ascii_lowercase())
            .or_else(|| r.file_info.get("large_file_sha1").cloned());
        let retention = r
            .file_retention
            .filter(|f| f.is_client_authorized_to_read)
            .and_then(|f| f.value);
        FileVersion {
            id: r.file_id.unwrap_or_default(),
            name: r.file_name,
            size: r.content_length.or(r.size).unwrap_or(0),
            sha1,
            action: r.action.unwrap_or_else(|| "upload".into()),
            upload_timestamp: r.upload_timestamp,
            info: r.file_info,
            content_type: r
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            retain_until: retention.as_ref().and_then(|v| v.retain_until_timestamp),
            retain_mode: retention.and_then(|v| v.mode),
        }
    }
}

/// A page of `b2_list_file_names`, `b2_list_file_versions` or
/// `b2_list_unfinished_large_files`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListReply {
    pub files: Vec<FileReply>,
    #[serde(default)]
    pub next_file_name: Option<String>,
    #[serde(default)]
    pub next_file_id: Option<String>,
}

/// `b2_authorize_account`, v3 (`apiInfo.storageApi`) or v2 (URLs at the top).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthorizeReply {
    pub authorization_token: String,
    #[serde(default)]
    pub account_id: String,
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub download_url: Option<String>,
    #[serde(default)]
    pub api_info: Option<ApiInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiInfo {
    pub storage_api: StorageApi,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StorageApi {
    pub api_url: String,
    pub download_url: String,
    #[serde(default)]
    pub allowed: Option<Allowed>,
}

#[derive(Deserialize)]
pub(crate) struct Allowed {
    #[serde(default)]
    pub buckets: Option<Vec<AllowedBucket>>,
    /// What the key may do (`writeFiles`, `deleteFiles`, ...).
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
}

/// A bucket a restricted key may use; B2 gives `null` ID and name for "all buckets".
#[derive(Deserialize)]
pub(crate) struct AllowedBucket {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct BucketsReply {
    pub buckets: Vec<BucketReply>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BucketReply {
    pub bucket_id: String,
    #[serde(default)]
    pub file_lock_configuration: Option<Readable<FileLockConfiguration>>,
}

/// `b2_get_upload_url` and `b2_get_upload_part_url`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadUrlReply {
    pub upload_url: String,
    pub authorization_token: String,
}

/// `b2_start_large_file` (the rest of its reply is a [`FileReply`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartedReply {
    pub file_id: String,
}

/// `b2_upload_part` and `b2_copy_part`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartReply {
    pub content_sha1: String,
}

/// A reply whose content nothing reads (hide, delete, cancel).
#[derive(Deserialize)]
pub(crate) struct Ignored {}

/// Decodes `data` as every reply type the client reads; how many it was. For the
/// fuzzers: no reply, however hostile, may panic or allocate without bound.
pub fn decode_replies(data: &[u8]) -> usize {
    fn ok<T: serde::de::DeserializeOwned>(data: &[u8]) -> usize {
        usize::from(serde_json::from_slice::<T>(data).is_ok())
    }
    let file = serde_json::from_slice::<FileReply>(data)
        .map(FileVersion::from)
        .is_ok();
    let list = serde_json::from_slice::<ListReply>(data)
        .map(|l| l.files.into_iter().map(FileVersion::from).count())
        .is_ok();
    usize::from(file)
        + usize::from(list)
        + ok::<ErrorReply>(data)
        + ok::<AuthorizeReply>(data)
        + ok::<BucketsReply>(data)
        + ok::<UploadUrlReply>(data)
        + ok::<StartedReply>(data)
        + ok::<PartReply>(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_errors_and_optional_ones_have_their_meaning() {
        let ok: FileReply = serde_json::from_str(r#"{"fileId":"4_z1","fileName":"a","contentLength":3,"contentSha1":"unverified:ABC","uploadTimestamp":7}"#).unwrap();
        let v = FileVersion::from(ok);
        assert_eq!(
            (v.id.as_str(), v.size, v.sha1.as_deref(), v.action.as_str()),
            ("4_z1", 3, Some("abc"), "upload")
        );
        let folder: FileReply =
            serde_json::from_str(r#"{"fileId":null,"fileName":"dir/","action":"folder"}"#).unwrap();
        assert_eq!(FileVersion::from(folder).id, "");
        assert!(
            serde_json::from_str::<FileReply>(r#"{"fileId":"x"}"#).is_err(),
            "a file without a name"
        );
        assert!(
            serde_json::from_str::<UploadUrlReply>(r#"{"uploadUrl":"https://x"}"#).is_err(),
            "no token"
        );
        assert!(
            serde_json::from_str::<ListReply>(r#"{"files":[{"fileName":5}]}"#).is_err(),
            "wrong type"
        );
        let large: FileReply = serde_json::from_str(r#"{"fileId":"f","fileName":"big","contentSha1":"none","fileInfo":{"large_file_sha1":"def"}}"#).unwrap();
        assert_eq!(FileVersion::from(large).sha1.as_deref(), Some("def"));
    }
}
