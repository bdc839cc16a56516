//! Uploads: small files to a pooled upload URL, large files part by part, and large
//! server-side copies.
//!
//! Why one large-file path: the in-memory upload and the streamed one (a pack read range
//! by range from another backend) used to be two uploaders, one async and one of threads
//! and a condvar. Both are now a stream of parts handed to [`Client::upload_large`],
//! which hashes the parts in order, sends `LARGE_FILE_CONCURRENCY` at a time, and
//! finishes the file only if the whole-file SHA1 it announced is what was sent.

use cairn_backend::Retention;
use cairn_sha1::Sha1;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::client::{error_from, net, url_encode, Client, FileVersion, UploadUrl};
use crate::reply::{FileReply, Ignored, PartReply, StartedReply, UploadUrlReply};
use crate::retry::{retry, Failed, Policy};
use crate::B2Error;

/// What starts a large file.
#[derive(Clone, Copy)]
pub struct NewLargeFile<'a> {
    pub bucket_id: &'a str,
    pub name: &'a str,
    pub content_type: &'a str,
    /// Becomes its `fileInfo` (with `large_file_sha1` added).
    pub info: &'a [(&'a str, String)],
    /// The whole content's SHA1.
    pub sha1: &'a str,
    /// The Object Lock retention it is stored under.
    pub retention: Option<&'a Retention>,
}

/// `fileRetention` as B2's calls take it.
pub(crate) fn retention_json(r: &Retention) -> Value {
    json!({"mode": r.mode.as_str(), "retainUntilTimestamp": r.until_millis})
}

/// An upload's `X-Bz-Info-*` and Object Lock headers.
fn with_file_headers(
    mut req: reqwest::RequestBuilder,
    info: &[(&str, String)],
    retention: Option<&Retention>,
) -> reqwest::RequestBuilder {
    for (k, v) in info {
        req = req.header(format!("X-Bz-Info-{k}"), url_encode(v));
    }
    if let Some(r) = retention {
        req = req
            .header("X-Bz-File-Retention-Mode", r.mode.as_str())
            .header(
                "X-Bz-File-Retention-Retain-Until-Timestamp",
                r.until_millis.to_string(),
            );
    }
    req
}

/// Parts of one large file uploaded at once (rclone's upload_concurrency).
pub const LARGE_FILE_CONCURRENCY: usize = 4;

impl Client {
    /// Uploads `data` as `name`, as a large file above the cutoff. `info` becomes
    /// `X-Bz-Info-*` (e.g. `src_last_modified_millis`).
    pub async fn upload(
        &self,
        bucket_id: &str,
        name: &str,
        data: bytes::Bytes,
        content_type: &str,
        info: &[(&str, String)],
        retention: Option<&Retention>,
    ) -> Result<FileVersion, B2Error> {
        let sha1 = cairn_sha1::hex(&data);
        if data.len() as u64 > self.upload_cutoff {
            let part = self.part_size as usize;
            let parts = (0..data.len())
                .step_by(part)
                .map(|at| Ok::<_, B2Error>(data.slice(at..(at + part).min(data.len()))));
            let parts = futures_util::stream::iter(parts);
            return self
                .upload_large(
                    NewLargeFile {
                        bucket_id,
                        name,
                        content_type,
                        info,
                        sha1: &sha1,
                        retention,
                    },
                    parts,
                )
                .await;
        }
        // The body is shared by every attempt, never copied.
        let body = data;
        retry(
            "b2_upload_file",
            Policy::Upload,
            self.max_attempts,
            |_| async {
                // A failed attempt never returns its URL: Backblaze asks for a fresh one.
                let url = self.upload_url(bucket_id).await?;
                self.count("b2_upload_file");
                let req = self
                    .http
                    .post(&url.url)
                    .header("Authorization", &url.token)
                    .header("X-Bz-File-Name", url_encode(name))
                    .header("Content-Type", content_type)
                    .header("X-Bz-Content-Sha1", &sha1)
                    .header("Content-Length", body.len().to_string())
                    .body(self.upload_body(&body));
                let req = with_file_headers(req, info, retention);
                let err = match req.send().await {
                    // A reply cut short is retried: the upload may have landed, and a
                    // second identical version is harmless where a false failure is not.
                    // An unreadable reply is retried too: it may be a cut one.
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) => match serde_json::from_slice::<FileReply>(&b) {
                            Ok(v) => {
                                self.return_upload_url(url);
                                return Ok(v.into());
                            }
                            Err(e) => {
                                B2Error::Network(format!("b2_upload_file: unreadable reply: {e}"))
                            }
                        },
                        Err(e) => net(e),
                    },
                    Ok(r) => error_from(r).await,
                    Err(e) => net(e),
                };
                Err(Failed::Request(err))
            },
        )
        .await
    }

    /// A pooled upload URL for `bucket_id`, or a new one.
    async fn upload_url(&self, bucket_id: &str) -> Result<UploadUrl, B2Error> {
        let pooled = {
            let mut pool = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
            let i = pool.iter().position(|u| u.bucket_id == bucket_id);
            i.map(|i| pool.swap_remove(i))
        };
        if let Some(u) = pooled {
            return Ok(u);
        }
        let v: UploadUrlReply = self
            .call("b2_get_upload_url", json!({"bucketId": bucket_id}))
            .await?;
        self.check_reply_url("uploadUrl", &v.upload_url)?;
        Ok(UploadUrl {
            bucket_id: bucket_id.to_string(),
            url: v.upload_url,
            token: v.authorization_token,
        })
    }

    fn return_upload_url(&self, u: UploadUrl) {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(u);
    }

    /// Uploads `parts` (in order, each but the last `part_size` long) as the large file
    /// `name` whose whole content has SHA1 `sha1`. A part's error, a failed part upload,
    /// or parts that do not hash to `sha1` cancel the file.
    pub async fn upload_large(
        &self,
        started: NewLargeFile<'_>,
        parts: impl Stream<Item = Result<bytes::Bytes, B2Error>>,
    ) -> Result<FileVersion, B2Error> {
        let sha1 = started.sha1;
        self.in_large_file(started, |file_id| async move {
            let mut hasher = Sha1::new();
            let sent = parts
                .enumerate()
                // Parts are hashed as they are taken, which is in order; their uploads then
                // overlap, at most LARGE_FILE_CONCURRENCY in memory and on the wire.
                .map(|(i, part)| {
                    part.map(|part| {
                        hasher.update(&part);
                        self.upload_part(&file_id, i as u32 + 1, part)
                    })
                })
                .try_buffered(LARGE_FILE_CONCURRENCY)
                .try_collect::<Vec<String>>()
                .await;
            let got = hasher.finish_hex();
            match sent {
                Ok(shas) if got.eq_ignore_ascii_case(sha1) => {
                    self.finish_large_file(&file_id, &shas).await
                }
                Ok(_) => Err(B2Error::Sha1Mismatch {
                    want: sha1.to_string(),
                    got,
                }),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Copies the stored version `f` to `name` in `bucket_id` part by part with
    /// b2_copy_part (`part` bytes each), as a large file with `info` and the source's
    /// SHA1 (which the caller has).
    pub async fn copy_large(
        &self,
        f: &FileVersion,
        bucket_id: &str,
        name: &str,
        info: &[(&str, String)],
        sha1: &str,
        part: u64,
    ) -> Result<FileVersion, B2Error> {
        let started = NewLargeFile {
            bucket_id,
            name,
            content_type: f.content_type.as_str(),
            info,
            sha1,
            retention: None,
        };
        self.in_large_file(started, |id| async move {
            let mut shas = Vec::new();
            let mut off = 0;
            while off < f.size {
                let len = part.min(f.size - off);
                let n = shas.len() as u32 + 1;
                shas.push(self.copy_part(&f.id, &id, n, (off, len)).await?);
                off += len;
            }
            self.finish_large_file(&id, &shas).await
        })
        .await
    }

    /// Starts a large file, runs `fill` with its file ID (which sends the parts and finishes it), and
    /// cancels the file if that fails, so no unfinished large file is left to be billed.
    async fn in_large_file<F, Fut>(
        &self,
        started: NewLargeFile<'_>,
        fill: F,
    ) -> Result<FileVersion, B2Error>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<FileVersion, B2Error>>,
    {
        let file_id = self.start_large_file(started).await?;
        let result = fill(file_id.clone()).await;
        if result.is_err() {
            let _ = self.cancel_large_file(&file_id).await;
        }
        result
    }

    /// Starts a large file whose whole content has SHA1 `sha1` (kept as `large_file_sha1`,
    /// as rclone does, since B2 itself records no whole-file SHA1 for large files).
    pub async fn start_large_file(&self, started: NewLargeFile<'_>) -> Result<String, B2Error> {
        let NewLargeFile {
            bucket_id,
            name,
            content_type,
            info,
            sha1,
            retention,
        } = started;
        let mut file_info: serde_json::Map<String, Value> = info
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        file_info.insert("large_file_sha1".into(), json!(sha1));
        let mut body = json!({"bucketId": bucket_id, "fileName": name,
                          "contentType": content_type, "fileInfo": file_info});
        if let Some(r) = retention {
            body["fileRetention"] = retention_json(r);
        }
        let v: StartedReply = self.call("b2_start_large_file", body).await?;
        Ok(v.file_id)
    }

    /// Finishes a large file. When the reply to a finish that did land was lost, the
    /// retry is refused (the file is no longer unfinished); the file's own info then
    /// says whether it was finished.
    pub async fn finish_large_file(
        &self,
        file_id: &str,
        part_sha1s: &[String],
    ) -> Result<FileVersion, B2Error> {
        let body = json!({"fileId": file_id, "partSha1Array": part_sha1s});
        match self.call::<FileReply>("b2_finish_large_file", body).await {
            Ok(v) => Ok(v.into()),
            Err(e) => match self.get_file_info(file_id).await {
                Ok(v) if v.action == "upload" => Ok(v),
                _ => Err(e),
            },
        }
    }

    pub async fn cancel_large_file(&self, file_id: &str) -> Result<(), B2Error> {
        self.call::<Ignored>("b2_cancel_large_file", json!({"fileId": file_id}))
            .await
            .map(|_| ())
    }

    /// Copies bytes `range` = (offset, length) of a stored file into part `n` of a large
    /// file, server-side; returns the part's SHA1.
    pub async fn copy_part(
        &self,
        source_id: &str,
        large_file_id: &str,
        n: u32,
        range: (u64, u64),
    ) -> Result<String, B2Error> {
        let (off, len) = range;
        let body = json!({"sourceFileId": source_id, "largeFileId": large_file_id,
                          "partNumber": n, "range": format!("bytes={}-{}", off, off + len - 1)});
        let v: PartReply = self.call("b2_copy_part", body).await?;
        Ok(v.content_sha1)
    }

    /// Sends part `n`; `part` is shared by the retries, never copied.
    pub async fn upload_part(
        &self,
        file_id: &str,
        n: u32,
        part: bytes::Bytes,
    ) -> Result<String, B2Error> {
        let sha1 = cairn_sha1::hex(&part);
        retry(
            "b2_upload_part",
            Policy::Upload,
            self.max_attempts,
            |_| async {
                let v: UploadUrlReply = self
                    .call("b2_get_upload_part_url", json!({"fileId": file_id}))
                    .await?;
                self.check_reply_url("uploadUrl", &v.upload_url)?;
                self.count("b2_upload_part");
                let sent = self
                    .http
                    .post(&v.upload_url)
                    .header("Authorization", &v.authorization_token)
                    .header("X-Bz-Part-Number", n.to_string())
                    .header("X-Bz-Content-Sha1", &sha1)
                    .header("Content-Length", part.len().to_string())
                    .body(self.upload_body(&part))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => Ok(sha1.clone()),
                    Ok(r) => Err(Failed::Request(error_from(r).await)),
                    Err(e) => Err(Failed::Request(net(e))),
                }
            },
        )
        .await
    }
}
