//! Requests OpenDAL does not make (Object Lock, a time changed in place), signed with
//! the same SigV4 signer and credentials OpenDAL uses and sent through the same HTTP
//! client.

use std::time::Duration;

use cairn_backend::{BackendError, ErrorKind};
use reqsign_aws_v4::{
    Credential, DefaultCredentialProvider, RequestSigner, StaticCredentialProvider,
};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};

use crate::S3Location;

/// The largest reply read (a lock configuration or an error is a few hundred bytes).
const MAX_REPLY: usize = 64 * 1024;

pub(crate) struct Signed {
    signer: Signer<Credential>,
    http: reqwest_opendal::Client,
    /// `scheme://host[:port]/bucket` (path style) or `scheme://bucket.host`.
    pub(crate) bucket_url: String,
    bucket: String,
    /// The repository's prefix in the bucket, with a trailing `/` unless empty.
    prefix: String,
    pub(crate) location: String,
}

impl Signed {
    pub(crate) fn new(
        loc: &S3Location,
        http: reqwest_opendal::Client,
        transport: opendal::HttpTransporter,
    ) -> Signed {
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
        Signed {
            signer,
            http,
            bucket_url,
            bucket: loc.bucket.clone(),
            prefix,
            location: loc.display(),
        }
    }

    /// The object's key, percent-encoded segment by segment.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/")
    }

    pub(crate) fn object_url(&self, name: &str) -> String {
        format!("{}/{}", self.bucket_url, self.key(name))
    }

    /// `x-amz-copy-source` naming the object: `/bucket/key`, encoded.
    pub(crate) fn copy_source(&self, name: &str) -> String {
        format!("/{}/{}", encode(&self.bucket), self.key(name))
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
    pub(crate) async fn send_retried(
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

    pub(crate) fn refusal(&self, name: &str, status: u16, body: &str) -> BackendError {
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
pub(crate) fn error_line(status: u16, body: &str) -> String {
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
pub(crate) fn encode(seg: &str) -> String {
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
