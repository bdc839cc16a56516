//! A stored file's time changed in place, as rclone does on S3: a copy of the object
//! onto itself with its metadata replaced (CopyObject, `x-amz-metadata-directive:
//! REPLACE`). The bytes never travel, so a sync whose files only changed time costs
//! two requests per file rather than an upload.

use cairn_backend::{BackendError, ErrorKind};

use crate::signed::Signed;

/// The largest object S3 copies in one request.
const MAX_COPY: u64 = 5 << 30;

impl Signed {
    /// Sets `x-amz-meta-mtime` of `name` to `mtime` (rclone's text form), keeping its
    /// Content-Type and other metadata. The copy is made only of the version just read
    /// (`x-amz-copy-source-if-match`): a file replaced in between is left as it is.
    pub(crate) async fn set_mtime(&self, name: &str, mtime: &str) -> Result<(), BackendError> {
        let url = self.object_url(name);
        let (status, head, body) = self
            .send_retried(http::Method::HEAD, &url, Vec::new(), &[])
            .await?;
        if status != 200 {
            return Err(self.refusal(name, status, &body));
        }
        let header = |k: &str| {
            head.get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let size: u64 = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if size > MAX_COPY {
            return Err(BackendError::new(
                ErrorKind::Other,
                format!("{}/{name}", self.location),
                "larger than 5 GiB, which S3 cannot copy onto itself to change its time",
            ));
        }
        let mut headers = vec![
            ("x-amz-copy-source", self.copy_source(name)),
            ("x-amz-metadata-directive", "REPLACE".to_string()),
            (
                "content-type",
                header("content-type").unwrap_or_else(|| "application/octet-stream".into()),
            ),
            ("x-amz-meta-mtime", mtime.to_string()),
        ];
        if let Some(etag) = header("etag") {
            headers.push(("x-amz-copy-source-if-match", etag));
        }
        let kept: Vec<(String, String)> = head
            .iter()
            .filter(|(k, _)| {
                k.as_str().starts_with("x-amz-meta-") && k.as_str() != "x-amz-meta-mtime"
            })
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        headers.extend(kept.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let (status, _, reply) = self
            .send_retried(http::Method::PUT, &url, Vec::new(), &headers)
            .await?;
        // A copy can fail after S3 has answered 200: the error is then in the body.
        if status != 200 || reply.contains("<Error>") {
            return Err(self.refusal(name, status, &reply));
        }
        Ok(())
    }
}
