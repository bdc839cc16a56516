//! S3 Object Lock for `ship --lock-days`: the three calls OpenDAL does not make
//! (whether the bucket has Object Lock, a version's retention, setting it), sent as
//! [`Signed`] requests.
//!
//! S3 locks versions, not names: a locked version cannot be deleted or overwritten
//! before its date by anyone (COMPLIANCE) or by a key without
//! `s3:BypassGovernanceRetention` (GOVERNANCE). Deleting the name only adds a delete
//! marker, and the locked version stays readable underneath until its date.

use cairn_backend::{BackendError, ErrorKind, LockMode, Retention};

use crate::signed::{error_line, Signed};

impl Signed {
    /// Why this bucket cannot lock files, or None when it can.
    pub(crate) async fn refused(&self) -> Option<String> {
        let url = format!("{}?object-lock", self.bucket_url);
        match self
            .send_retried(http::Method::GET, &url, Vec::new(), &[])
            .await
        {
            Ok((200, _, body)) if body.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>") => {
                None
            }
            Ok((200 | 404, _, _)) => Some(format!(
                "{}: the bucket has no Object Lock (S3 turns it on when a bucket is created, with versioning)",
                self.location
            )),
            Ok((status, _, body)) => Some(format!(
                "{}: cannot read the bucket's Object Lock setting: {}",
                self.location,
                error_line(status, &body)
            )),
            Err(e) => Some(e.to_string()),
        }
    }

    /// Until when the current version of `name` is locked (ms since the epoch).
    pub(crate) async fn until(&self, name: &str) -> Result<Option<i64>, BackendError> {
        let (status, headers, body) = self
            .send_retried(http::Method::HEAD, &self.object_url(name), Vec::new(), &[])
            .await?;
        if status != 200 {
            return Err(self.refusal(name, status, &body));
        }
        Ok(headers
            .get("x-amz-object-lock-retain-until-date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.timestamp_millis()))
    }

    /// Puts the current version of `name` under `r`, or keeps a later date it has;
    /// whether a date was set (a PUT made).
    pub(crate) async fn set(&self, name: &str, r: &Retention) -> Result<bool, BackendError> {
        if self.until(name).await?.is_some_and(|u| u >= r.until_millis) {
            return Ok(false);
        }
        let until = chrono::DateTime::from_timestamp_millis(r.until_millis)
            .ok_or_else(|| BackendError::new(ErrorKind::Other, name, "lock date out of range"))?
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let mode = match r.mode {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        };
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{mode}</Mode><RetainUntilDate>{until}</RetainUntilDate></Retention>"
        )
        .into_bytes();
        let md5 = {
            use base64::Engine;
            use md5::Digest;
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body))
        };
        let url = format!("{}?retention", self.object_url(name));
        let headers = [
            ("content-md5", md5),
            ("content-type", "application/xml".to_string()),
        ];
        let (status, _, reply) = self
            .send_retried(http::Method::PUT, &url, body, &headers)
            .await?;
        if status != 200 {
            return Err(self.refusal(name, status, &reply));
        }
        Ok(true)
    }
}
