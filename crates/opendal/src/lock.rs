//! S3 Object Lock for `ship --lock-days`: the three calls OpenDAL does not make
//! (whether the bucket has Object Lock, a version's retention, setting it), signed
//! with the same SigV4 signer and credentials OpenDAL uses and sent through the same
//! HTTP client.
//!
//! S3 locks versions, not names: a locked version cannot be deleted or overwritten
//! before its date by anyone (COMPLIANCE) or by a key without
//! `s3:BypassGovernanceRetention` (GOVERNANCE). Deleting the name only adds a delete
//! marker, and the locked version stays readable underneath until its date.

use std::time::Duration;

use cairn_backend::{BackendError, ErrorKind, LockMode, Retention};
use reqsign_aws_v4::{
    Credential, DefaultCredentialProvider, RequestSigner, StaticCredentialProvider,
};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};

use crate::S3Location;

/// The largest reply read (a lock configuration or an error is a few hundred bytes).
const MAX_REPLY: usize = 64 * 1024;

pub(crate) struct Locks {
    signer: Signer<Credential>,
    http: reqwest_opendal::Client,
    /// `scheme://host[:port]/bucket` (path style) or `scheme://bucket.host`.
    bucket_url: String,
    /// The repository's prefix in the bucket, with a trailing `/` unless empty.
    prefix: String,
    location: String,
}

impl Locks {
    pub(crate) fn new(
        loc: &S3Location,
        http: reqwest_opendal::Client,
        transport: opendal::HttpTransporter,
    ) -> Locks {
        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_http_send(transport)
            .with_env(OsEnv);
        let mut defaults = DefaultCredentialProvider::builder();
        if crate::s3::ec2_metadata_disabled() {
            defaults = defaults.no_imds();
        }
        let mut chain = ProvideCredentialChain::new().push(defaults.build());
        if let Some((id, secret)) = &loc.keys {
            chain = chain.push_front(StaticCredentialProvider::new(id, secret));
        }
        let signer = Signer::new(ctx, chain, RequestSigner::new("s3", &loc.region));
        let endpoint = loc
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", loc.region));
        let bucket_url = if loc.path_style {
            format!("{endpoint}/{}", loc.bucket)
        } else {
            let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", &endpoint));
            format!("{scheme}://{}.{host}", loc.bucket)
        };
        let prefix = if loc.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", loc.prefix)
        };
        Locks {
            signer,
            http,
            bucket_url,
            prefix,
            location: loc.display(),
        }
    }

    fn object_url(&self, name: &str) -> String {
        let key: String = format!("{}{name}", self.prefix)
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/");
        format!("{}/{key}", self.bucket_url)
    }

    /// Signs and sends one request; (status, headers, body up to [`MAX_REPLY`]).
    async fn send(
        &self,
        method: http::Method,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<(u16, http::HeaderMap, String), BackendError> {
        let fail = |why: String| BackendError::new(ErrorKind::Transient, &self.location, why);
        let mut req = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let (mut parts, ()) = req
            .body(())
            .map_err(|e| fail(format!("request: {e}")))?
            .into_parts();
        self.signer.sign(&mut parts, None).await.map_err(|e| {
            BackendError::new(
                ErrorKind::Unauthorized,
                &self.location,
                format!("signing: {e}"),
            )
        })?;
        parts.headers.remove(http::header::HOST);
        let mut resp = self
            .http
            .request(method, url)
            .headers(parts.headers)
            .body(body)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| fail(format!("{e}")))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut text = Vec::new();
        while let Some(piece) = resp.chunk().await.map_err(|e| fail(format!("{e}")))? {
            if text.len() + piece.len() > MAX_REPLY {
                break;
            }
            text.extend_from_slice(&piece);
        }
        Ok((status, headers, String::from_utf8_lossy(&text).into_owned()))
    }

    /// Retried a few times on a network failure, 5xx or throttling.
    async fn send_retried(
        &self,
        method: http::Method,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<(u16, http::HeaderMap, String), BackendError> {
        let mut attempt = 0u32;
        loop {
            let r = self.send(method.clone(), url, body.clone(), headers).await;
            let again = match &r {
                Err(e) => e.kind == ErrorKind::Transient,
                Ok((status, ..)) => *status >= 500 || *status == 429,
            };
            attempt += 1;
            if !again || attempt >= 6 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis((200u64 << attempt).min(5000))).await;
        }
    }

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

    fn refusal(&self, name: &str, status: u16, body: &str) -> BackendError {
        let kind = match status {
            404 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        };
        BackendError::new(
            kind,
            format!("{}/{name}", self.location),
            error_line(status, body),
        )
    }
}

/// "Code: Message" from an S3 error reply, else the status.
fn error_line(status: u16, body: &str) -> String {
    let field = |tag: &str| {
        let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
        let len = body[start..].find('<')?;
        Some(body[start..start + len].to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => format!("HTTP {status}"),
    }
}

/// Percent-encodes a key segment (RFC 3986 unreserved characters stay).
fn encode(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
