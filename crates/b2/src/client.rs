//! The async B2 client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::reply::{
    ApiInfo, AuthorizeReply, BucketReply, BucketsReply, ErrorReply, FileReply, Ignored,
};
use zeroize::Zeroizing;

use crate::endpoint::reply_url_allowed;
use crate::retry::{retry, Failed, Policy};
use crate::B2Error;

/// An application key. `Debug` shows the key ID only.
#[derive(Clone)]
pub struct Credentials {
    pub key_id: String,
    pub key: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.key_id)
    }
}

pub use cairn_backend::Transactions;

/// One file version as listings and HEAD requests describe it.
#[derive(Clone, Debug, Default)]
pub struct FileVersion {
    pub id: String,
    pub name: String,
    pub size: u64,
    /// 40 hex; the `large_file_sha1` info for large files; None if unknown.
    pub sha1: Option<String>,
    /// `upload`, `hide`, `start` or `folder`.
    pub action: String,
    pub upload_timestamp: i64,
    pub info: HashMap<String, String>,
    pub content_type: String,
    /// Object Lock: deleting or replacing this version is refused until then (ms).
    pub retain_until: Option<i64>,
    /// `governance` or `compliance`, with `retain_until`.
    pub retain_mode: Option<String>,
}

struct Auth {
    /// Wiped from memory when the authorization is dropped.
    token: zeroize::Zeroizing<String>,
    api_url: String,
    download_url: String,
    account_id: String,
    /// Buckets an application key is restricted to (id, name), if it is.
    allowed: Vec<(String, String)>,
    /// What the key may do, as the authorization said (`None`: it did not say).
    capabilities: Option<Vec<String>>,
    generation: u64,
}

pub(crate) struct UploadUrl {
    pub(crate) bucket_id: String,
    pub(crate) url: String,
    pub(crate) token: String,
}

fn class_of(op: &str) -> usize {
    match op {
        "b2_download_file_by_id" | "b2_download_file_by_name" | "b2_get_file_info" => 1,
        "b2_authorize_account"
        | "b2_copy_file"
        | "b2_copy_part"
        | "b2_create_bucket"
        | "b2_list_buckets"
        | "b2_list_file_names"
        | "b2_list_file_versions"
        | "b2_list_parts"
        | "b2_list_unfinished_large_files"
        | "b2_get_download_authorization" => 2,
        _ => 0,
    }
}

/// Objects above this go up as large files (rclone's default cutoff).
pub const UPLOAD_CUTOFF: u64 = 200 * 1024 * 1024;
/// Part size for large files (B2's recommended size).
pub const PART_SIZE: u64 = 100_000_000;
/// Server-side copies above this go part by part with b2_copy_part (rclone's
/// `copy_cutoff`; B2 refuses b2_copy_file above 5 GB).
pub const COPY_CUTOFF: u64 = 4 * 1024 * 1024 * 1024;

pub struct Client {
    pub(crate) http: reqwest::Client,
    endpoint: String,
    creds: Credentials,
    auth: tokio::sync::Mutex<Option<Arc<Auth>>>,
    generation: AtomicU64,
    pub(crate) uploads: Mutex<Vec<UploadUrl>>,
    counts: [AtomicU64; 3],
    pub(crate) max_attempts: u32,
    pub upload_cutoff: u64,
    pub part_size: u64,
    pub copy_cutoff: u64,
    pub upload_limit: Option<Arc<crate::RateLimit>>,
    pub download_limit: Option<Arc<crate::RateLimit>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("key_id", &self.creds.key_id)
            .finish_non_exhaustive()
    }
}

/// Percent-encoding for names in headers and URL paths: keeps what rclone keeps.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"._-/~!$'()*;=:@".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

pub(crate) async fn error_from(resp: reqwest::Response) -> B2Error {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    // An error reply cut off mid-body (a dropped connection) says nothing about the
    // request: retried like any network error, never taken for its status. At most
    // 64 KiB of it is read.
    let mut resp = resp;
    let mut bytes = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) if bytes.len() + c.len() <= 64 * 1024 => bytes.extend_from_slice(&c),
            Ok(Some(_)) => break,
            Ok(None) => break,
            Err(e) => {
                return B2Error::Network(format!(
                    "a {status} reply was cut off: {}",
                    e.without_url()
                ))
            }
        }
    }
    let body: ErrorReply = serde_json::from_slice(&bytes).unwrap_or_default();
    B2Error::Api {
        status,
        code: body.code.unwrap_or_else(|| "unknown".into()),
        message: body.message.unwrap_or_default(),
        retry_after,
    }
}

/// The longest JSON reply read: a 10,000-name listing page is a few MiB.
const MAX_JSON_REPLY: u64 = 64 * 1024 * 1024;
/// The longest whole-object download (repository files are at most a 1 GiB pack; larger
/// files are read in ranges).
const MAX_WHOLE_DOWNLOAD: u64 = 4 * 1024 * 1024 * 1024;

pub(crate) fn net(e: reqwest::Error) -> B2Error {
    // The host and the innermost cause (connection refused, DNS, TLS), not reqwest's
    // "error sending request"; never the URL's path or query.
    let host = e.url().and_then(|u| {
        let h = u.host_str()?;
        Some(match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        })
    });
    let what = if e.is_timeout() {
        "timed out talking to"
    } else if e.is_connect() {
        "could not connect to"
    } else {
        "lost the connection to"
    };
    let mut cause = None;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = Some(s.to_string());
        source = s.source();
    }
    let cause = cause.unwrap_or_else(|| e.without_url().to_string());
    B2Error::Network(match host {
        Some(h) => format!("{what} {h}: {cause}"),
        None => cause,
    })
}

impl Client {
    pub fn new(endpoint: &str, creds: Credentials) -> Result<Client, B2Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(net)?;
        Ok(Client {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            creds,
            auth: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            uploads: Mutex::new(Vec::new()),
            counts: Default::default(),
            max_attempts: 10,
            upload_cutoff: UPLOAD_CUTOFF,
            part_size: PART_SIZE,
            copy_cutoff: COPY_CUTOFF,
            upload_limit: None,
            download_limit: None,
        })
    }

    pub fn transactions(&self) -> Transactions {
        Transactions {
            class_a: self.counts[0].load(Ordering::Relaxed),
            class_b: self.counts[1].load(Ordering::Relaxed),
            class_c: self.counts[2].load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count(&self, op: &str) {
        self.counts[class_of(op)].fetch_add(1, Ordering::Relaxed);
    }

    /// The current authorization, authorizing if there is none or if `stale` names the
    /// generation that just failed with an expired token.
    async fn authorization(&self, stale: Option<u64>) -> Result<Arc<Auth>, B2Error> {
        let mut guard = self.auth.lock().await;
        if let Some(a) = guard.as_ref() {
            if stale != Some(a.generation) {
                return Ok(Arc::clone(a));
            }
        }
        let a = retry(
            "b2_authorize_account",
            Policy::Api,
            self.max_attempts,
            |_| async { self.authorize_once().await.map_err(Failed::Request) },
        )
        .await?;
        let a = Arc::new(a);
        *guard = Some(Arc::clone(&a));
        Ok(a)
    }

    /// What the application key may do, as B2 said when it authorized it (`None` when
    /// the reply did not list capabilities).
    pub async fn capabilities(&self) -> Result<Option<Vec<String>>, B2Error> {
        Ok(self.authorization(None).await?.capabilities.clone())
    }

    /// URLs handed out by B2 (API, download, upload) must keep the endpoint's protection:
    /// after an https authorize, a plain-http URL in a reply would carry the token in clear.
    pub(crate) fn check_reply_url(&self, what: &str, url: &str) -> Result<(), B2Error> {
        if !reply_url_allowed(&self.endpoint, url) {
            return Err(B2Error::Invalid(format!(
                "refusing the {what} {url:?} in B2's reply: not https, while the endpoint is"
            )));
        }
        Ok(())
    }

    async fn authorize_once(&self) -> Result<Auth, B2Error> {
        self.count("b2_authorize_account");
        // The key in Basic form is as secret as the key: built, sent and wiped, and the
        // header marked sensitive so no debug output of the request shows it.
        let plain =
            zeroize::Zeroizing::new(format!("{}:{}", self.creds.key_id, self.creds.key.as_str()));
        let basic = zeroize::Zeroizing::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(plain.as_bytes())
        ));
        let mut header = reqwest::header::HeaderValue::from_str(&basic).map_err(|_| {
            B2Error::Invalid(
                "the application key id or key has characters a header cannot carry".into(),
            )
        })?;
        header.set_sensitive(true);
        let resp = self
            .http
            .get(format!("{}/b2api/v4/b2_authorize_account", self.endpoint))
            .header("Authorization", header)
            .send()
            .await
            .map_err(net)?;
        if !resp.status().is_success() {
            let e = error_from(resp).await;
            return Err(match e {
                B2Error::Api { status: 401, .. } => B2Error::Invalid(format!(
                    "B2 rejected application key {} (wrong key id or key, or the key was deleted)",
                    self.creds.key_id
                )),
                e => e,
            });
        }
        let body = resp.bytes().await.map_err(net)?;
        let v: AuthorizeReply = serde_json::from_slice(&body).map_err(|e| {
            B2Error::Invalid(format!("b2_authorize_account: unexpected reply: {e}"))
        })?;
        let (api_url, download_url, allowed, capabilities) = match v.api_info {
            Some(ApiInfo { storage_api: sa }) => {
                let (buckets, capabilities) = sa
                    .allowed
                    .map(|a| (a.buckets, a.capabilities))
                    .unwrap_or_default();
                let allowed = buckets
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|b| Some((b.id?, b.name?)))
                    .collect();
                (
                    Some(sa.api_url),
                    Some(sa.download_url),
                    allowed,
                    capabilities,
                )
            }
            None => (v.api_url, v.download_url, Vec::new(), None),
        };
        let api_url =
            api_url.ok_or_else(|| B2Error::Invalid("authorize reply lacks apiUrl".into()))?;
        let download_url = download_url
            .ok_or_else(|| B2Error::Invalid("authorize reply lacks downloadUrl".into()))?;
        self.check_reply_url("apiUrl", &api_url)?;
        self.check_reply_url("downloadUrl", &download_url)?;
        Ok(Auth {
            token: zeroize::Zeroizing::new(v.authorization_token),
            api_url,
            download_url,
            account_id: v.account_id,
            allowed,
            capabilities,
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    /// Sends a request built by `build` with the retry policy of the module docs and
    /// returns the reply's body read to its end: a connection cut mid-body is retried
    /// like any network error, never handed on as a short body.
    async fn send(
        &self,
        op: &str,
        build: impl Fn(&Auth) -> reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes, B2Error> {
        self.send_capped(op, MAX_JSON_REPLY, build).await
    }

    /// [`Client::send`] of a reply that may be no longer than `max` bytes: a body read
    /// from a server is never read past what was asked for (a ranged download, a JSON
    /// reply), so a hostile or broken server cannot make cairn allocate without bound.
    async fn send_capped(
        &self,
        op: &str,
        max: u64,
        build: impl Fn(&Auth) -> reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes, B2Error> {
        // The authorization generation that last failed with an expired token.
        let stale = std::sync::Mutex::new(None);
        retry(op, Policy::Api, self.max_attempts, |_| async {
            let last = *stale.lock().unwrap_or_else(|p| p.into_inner());
            let auth = self.authorization(last).await?;
            self.count(op);
            let err = match build(&auth).send().await {
                Ok(r) if r.status().is_success() => match self.read_body(op, r, max).await {
                    Ok(body) => return Ok(body),
                    Err(e) => e,
                },
                Ok(r) => error_from(r).await,
                Err(e) => net(e),
            };
            if err.needs_reauth() {
                *stale.lock().unwrap_or_else(|p| p.into_inner()) = Some(auth.generation);
            }
            Err(Failed::Request(err))
        })
        .await
    }

    /// A reply's whole body, at most `max` bytes, paced under `--limit-download` when one
    /// is set. A longer body is an error as soon as it passes `max` (not retried: the
    /// server would send it again).
    async fn read_body(
        &self,
        op: &str,
        r: reqwest::Response,
        max: u64,
    ) -> Result<bytes::Bytes, B2Error> {
        if r.content_length().is_some_and(|n| n > max) {
            return Err(B2Error::Invalid(format!(
                "{op}: the reply is {} bytes, more than the {max} asked for",
                r.content_length().unwrap_or(0)
            )));
        }
        let mut out = bytes::BytesMut::new();
        let mut stream = r.bytes_stream();
        while let Some(piece) = futures_util::StreamExt::next(&mut stream).await {
            let piece = piece.map_err(net)?;
            if out.len() as u64 + piece.len() as u64 > max {
                return Err(B2Error::Invalid(format!(
                    "{op}: the reply runs past the {max} bytes asked for"
                )));
            }
            if let Some(limit) = &self.download_limit {
                limit.take(piece.len()).await;
            }
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    /// An upload body, paced under `--limit-upload` when one is set; `data` is shared,
    /// never copied, so each retry starts a new paced stream over the same bytes.
    pub(crate) fn upload_body(&self, data: &bytes::Bytes) -> reqwest::Body {
        let Some(limit) = self.upload_limit.clone() else {
            return reqwest::Body::from(data.clone());
        };
        let data = data.clone();
        let pieces = (0..data.len())
            .step_by(crate::limit::PIECE)
            .map(move |at| data.slice(at..(at + crate::limit::PIECE).min(data.len())));
        let stream =
            futures_util::StreamExt::then(futures_util::stream::iter(pieces), move |piece| {
                let limit = Arc::clone(&limit);
                async move {
                    limit.take(piece.len()).await;
                    Ok::<_, std::io::Error>(piece)
                }
            });
        reqwest::Body::wrap_stream(stream)
    }

    /// A JSON API call, its reply read as `T` (a missing or mistyped field is an error
    /// naming the call).
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        op: &str,
        body: Value,
    ) -> Result<T, B2Error> {
        let reply = self
            .send(op, |a| {
                self.http
                    .post(format!("{}/b2api/v2/{op}", a.api_url))
                    .header("Authorization", a.token.as_str())
                    .json(&body)
            })
            .await?;
        serde_json::from_slice(&reply)
            .map_err(|e| B2Error::Invalid(format!("{op}: unexpected reply: {e}")))
    }

    /// Whether bucket `name` was created with file lock enabled (`None`: the key may not
    /// read that setting).
    pub async fn file_lock_enabled(&self, name: &str) -> Result<Option<bool>, B2Error> {
        let auth = self.authorization(None).await?;
        let v: BucketsReply = self
            .call(
                "b2_list_buckets",
                json!({"accountId": auth.account_id, "bucketName": name}),
            )
            .await?;
        Ok(v.buckets
            .into_iter()
            .next()
            .and_then(|b| b.file_lock_configuration)
            .filter(|c| c.is_client_authorized_to_read)
            .and_then(|c| c.value)
            .map(|c| c.is_file_lock_enabled))
    }

    /// Sets the retention of one file version (extending it; shortening is refused by
    /// B2 unless governance is bypassed, which cairn never asks for).
    pub async fn update_file_retention(
        &self,
        file_id: &str,
        name: &str,
        retention: &cairn_backend::Retention,
    ) -> Result<(), B2Error> {
        let body = json!({"fileId": file_id, "fileName": name,
                          "fileRetention": crate::upload::retention_json(retention)});
        let _: Ignored = self.call("b2_update_file_retention", body).await?;
        Ok(())
    }

    /// The ID of bucket `name`, without listing buckets when the key names it.
    pub async fn bucket_id(&self, name: &str) -> Result<Option<String>, B2Error> {
        let auth = self.authorization(None).await?;
        if let Some((id, _)) = auth.allowed.iter().find(|(_, n)| n == name) {
            return Ok(Some(id.clone()));
        }
        if !auth.allowed.is_empty() {
            return Err(B2Error::Invalid(format!(
                "this application key may only access bucket(s) {}, not {name}",
                auth.allowed
                    .iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let v: BucketsReply = self
            .call(
                "b2_list_buckets",
                json!({"accountId": auth.account_id, "bucketName": name}),
            )
            .await?;
        Ok(v.buckets.into_iter().next().map(|b| b.bucket_id))
    }

    pub async fn create_bucket(&self, name: &str) -> Result<String, B2Error> {
        let auth = self.authorization(None).await?;
        let v: BucketReply = match self.call("b2_create_bucket", json!({"accountId": auth.account_id, "bucketName": name, "bucketType": "allPrivate"})).await {
            // A retry after a lost reply finds the bucket it created.
            Err(e) if e.code() == "duplicate_bucket_name" => match self.bucket_id(name).await? {
                Some(id) => return Ok(id),
                None => return Err(e),
            },
            r => r?,
        };
        Ok(v.bucket_id)
    }

    pub async fn get_file_info(&self, file_id: &str) -> Result<FileVersion, B2Error> {
        let v: FileReply = self
            .call("b2_get_file_info", json!({"fileId": file_id}))
            .await?;
        Ok(v.into())
    }

    /// Server-side copy of a file version to `name` (no download, no upload). With
    /// `replace`, the new version gets that content type and file info instead of the
    /// source's (how rclone updates a modification time).
    pub async fn copy_file(
        &self,
        source_id: &str,
        name: &str,
        dest_bucket_id: Option<&str>,
        replace: Option<(&str, &[(&str, String)])>,
    ) -> Result<FileVersion, B2Error> {
        let body = match replace {
            None => {
                json!({"sourceFileId": source_id, "fileName": name, "destinationBucketId": dest_bucket_id})
            }
            Some((ct, info)) => {
                let info: HashMap<&str, &str> =
                    info.iter().map(|(k, v)| (*k, v.as_str())).collect();
                json!({"sourceFileId": source_id, "fileName": name, "destinationBucketId": dest_bucket_id,
                       "metadataDirective": "REPLACE", "contentType": ct, "fileInfo": info})
            }
        };
        let v: FileReply = self.call("b2_copy_file", body).await?;
        Ok(v.into())
    }

    /// Deletes one version. A version already gone counts as deleted: a retry after a
    /// reply lost on the way back finds it so.
    pub async fn delete_version(&self, name: &str, id: &str) -> Result<(), B2Error> {
        match self
            .call::<Ignored>(
                "b2_delete_file_version",
                json!({"fileName": name, "fileId": id}),
            )
            .await
        {
            Err(e) if matches!(e.code(), "file_not_present" | "not_found") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    pub async fn hide(&self, bucket_id: &str, name: &str) -> Result<(), B2Error> {
        match self
            .call::<Ignored>(
                "b2_hide_file",
                json!({"bucketId": bucket_id, "fileName": name}),
            )
            .await
        {
            Err(e) if e.code() == "already_hidden" => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Downloads one version by its ID, at most `max` bytes (its listed size).
    pub async fn download_by_id(&self, file_id: &str, max: u64) -> Result<Vec<u8>, B2Error> {
        let path = format!(
            "/b2api/v2/b2_download_file_by_id?fileId={}",
            url_encode(file_id)
        );
        let body = self
            .send_capped("b2_download_file_by_id", max, |a| {
                self.http
                    .get(format!("{}{path}", a.download_url))
                    .header("Authorization", a.token.as_str())
            })
            .await?;
        Ok(body.to_vec())
    }

    /// Downloads a file (or `range` = (offset, length) of it) by name.
    pub async fn download(
        &self,
        bucket: &str,
        name: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>, B2Error> {
        let path = format!("/file/{}/{}", url_encode(bucket), url_encode(name));
        let max = range.map_or(MAX_WHOLE_DOWNLOAD, |(_, len)| len);
        let body = self
            .send_capped("b2_download_file_by_name", max, |a| {
                let mut b = self
                    .http
                    .get(format!("{}{path}", a.download_url))
                    .header("Authorization", a.token.as_str());
                if let Some((off, len)) = range {
                    b = b.header(
                        "Range",
                        format!("bytes={}-{}", off, off + len.saturating_sub(1)),
                    );
                }
                b
            })
            .await?;
        Ok(body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    /// A network failure names the host and the real cause, not "error sending request".
    #[test]
    fn network_errors_name_the_host_and_the_cause() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = rt
            .block_on(reqwest::get(format!(
                "http://127.0.0.1:{port}/b2api/v3/x?secret=1"
            )))
            .unwrap_err();
        let msg = super::net(e).to_string();
        assert!(
            msg.contains(&format!("could not connect to 127.0.0.1:{port}"))
                && msg.contains("refused")
                && !msg.contains("secret")
                && !msg.contains("b2api"),
            "{msg}"
        );
    }
}
