//! The data paths: downloads (ranges, HEAD) and uploads (whole files and parts), with
//! the SHA1 checks B2 makes.

use super::*;

pub(super) async fn download(
    app: &App,
    v: &Version,
    method: &Method,
    headers: &HeaderMap,
) -> Reply {
    app.kept(v)?;
    let mut b = Response::builder()
        .header("content-type", v.content_type.as_str())
        .header("x-bz-file-id", v.id.as_str())
        .header("x-bz-file-name", url_encode(&v.name))
        .header("x-bz-content-sha1", v.sha1.as_str())
        .header("x-bz-upload-timestamp", v.upload_timestamp.to_string())
        .header("accept-ranges", "bytes");
    for (k, val) in &v.info {
        b = b.header(format!("x-bz-info-{k}"), url_encode(val));
        // b2-* infos come back as the real headers too (Content-Disposition, ...).
        if let Some(real) = k.strip_prefix("b2-") {
            b = b.header(real, val.as_str());
        }
    }
    if v.legal_hold {
        b = b.header("x-bz-file-legal-hold", "on");
    }
    if let Some(r) = &v.retention {
        b = b
            .header("x-bz-file-retention-mode", r.mode.as_str())
            .header(
                "x-bz-file-retention-retain-until-timestamp",
                r.until.to_string(),
            );
    }
    let (start, len, status) = match headers.get("range").and_then(|r| r.to_str().ok()) {
        Some(r) if v.size > 0 => {
            let (a, e) = parse_range(r, v.size).ok_or_else(|| {
                B2Error::new(
                    416,
                    "range_not_satisfiable",
                    format!("range {r} not satisfiable"),
                )
            })?;
            b = b.header("content-range", format!("bytes {a}-{e}/{}", v.size));
            // --oversize-bodies: the body runs on past the range's end.
            let len = if app.config.oversize_bodies {
                v.size - a
            } else {
                e - a + 1
            };
            (a, len, 206)
        }
        _ => (0, v.size, 200),
    };
    b = b.status(status).header("content-length", len.to_string());
    if method == Method::HEAD {
        return Ok(b.body(Body::empty()).unwrap_or_default());
    }
    let mut f = tokio::fs::File::open(app.disk.blob(&v.id)).await?;
    f.seek(std::io::SeekFrom::Start(start)).await?;
    // Large pieces: the default 4 KiB made a 4 MiB ranged read a thousand file reads.
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 * 1024);
    Ok(b.body(Body::from_stream(stream)).unwrap_or_default())
}

/// Streams a request body to `path`, hashing it. With `hex_digits_at_end` the last 40
/// bytes are the SHA1 and are not stored. Returns (size, sha1 hex, trailing hex).
pub(super) async fn receive(
    body: Body,
    path: &std::path::Path,
    expected_len: Option<u64>,
    digits_at_end: bool,
    keep: bool,
) -> Result<(u64, String, Option<String>), B2Error> {
    let mut out = tokio::fs::File::create(path).await?;
    let mut h = Sha1::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| B2Error::new(400, "bad_request", format!("upload interrupted: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if digits_at_end {
            tail.extend_from_slice(&data);
            if tail.len() > 40 {
                let last = tail.split_off(tail.len() - 40);
                h.update(&tail);
                if keep {
                    out.write_all(&tail).await?;
                }
                tail = last;
            }
        } else {
            h.update(&data);
            if keep {
                out.write_all(&data).await?;
            }
        }
    }
    out.flush().await?;
    if let Some(n) = expected_len {
        if n != total {
            return Err(B2Error::bad_request(format!(
                "Content-Length {n} but {total} bytes received"
            )));
        }
    }
    let (size, trailing) = if digits_at_end {
        if tail.len() != 40 {
            return Err(B2Error::bad_request("body too short for hex_digits_at_end"));
        }
        (
            total - 40,
            Some(String::from_utf8_lossy(&tail).to_ascii_lowercase()),
        )
    } else {
        (total, None)
    };
    Ok((size, h.finish_hex(), trailing))
}

/// Receives a body into `tmp` and checks it against the declared SHA1; on any failure
/// the temporary file is removed. Returns the stored size and the SHA1 to record.
pub(super) async fn receive_verified(
    body: Body,
    tmp: &std::path::Path,
    len: u64,
    declared: &str,
    keep: bool,
) -> Result<(u64, String), B2Error> {
    let r = match receive(
        body,
        tmp,
        Some(len),
        declared.eq_ignore_ascii_case("hex_digits_at_end"),
        keep,
    )
    .await
    {
        Ok((size, actual, trailing)) => {
            verify_sha1(declared, &actual, trailing).map(|sha1| (size, sha1))
        }
        Err(e) => Err(e),
    };
    if r.is_err() {
        let _ = tokio::fs::remove_file(tmp).await;
    }
    r
}

/// The `X-Bz-Info-*` headers of an upload: at most 10, `b2-` keys only those B2 knows.
fn info_from_headers(headers: &HeaderMap) -> Result<BTreeMap<String, String>, B2Error> {
    let mut info = BTreeMap::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix("x-bz-info-") {
            check_info_key(&key.to_ascii_lowercase())?;
            info.insert(
                key.to_ascii_lowercase(),
                url_decode(v.to_str().unwrap_or("")),
            );
        }
    }
    if info.len() > 10 {
        return Err(B2Error::bad_request("too many X-Bz-Info headers"));
    }
    Ok(info)
}

pub(super) async fn upload_file(
    app: &Arc<App>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    api: u32,
) -> Reply {
    let tok = app.auth(headers, uri)?;
    let bucket_id = uri
        .path()
        .strip_prefix("/b2api/upload/")
        .unwrap_or("")
        .to_string();
    let (name_prefix, caps) = match &tok.kind {
        TokenKind::Upload {
            bucket_id: b,
            name_prefix,
            capabilities,
        } if *b == bucket_id => (name_prefix.clone(), capabilities.clone()),
        _ => {
            return Err(B2Error::new(
                401,
                "bad_auth_token",
                "token is not valid for this upload URL",
            ))
        }
    };
    let name = decode_name(
        header(headers, "x-bz-file-name")
            .ok_or_else(|| B2Error::bad_request("X-Bz-File-Name is missing"))?,
    )?;
    valid_name(&name)?;
    app.check_name(&name_prefix, &name)?;
    let declared = header(headers, "x-bz-content-sha1")
        .ok_or_else(|| B2Error::bad_request("X-Bz-Content-Sha1 is missing"))?
        .to_string();
    let len: u64 = header(headers, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| B2Error::bad_request("Content-Length is required"))?;
    let ct = content_type(
        header(headers, "content-type").unwrap_or("b2/x-auto"),
        &name,
    );
    let info = info_from_headers(headers)?;
    let retention = retention_from_headers(headers)?;
    let legal_hold = legal_hold_from(header(headers, "x-bz-file-legal-hold"))?;
    require_lock_capabilities(caps.as_deref(), retention.is_some(), legal_hold)?;
    let tmp = app.disk.tmp();
    let (size, sha1) = receive_verified(body, &tmp, len, &declared, app.keeps(len)).await?;
    let mut st = app.lock_state();
    match st.bucket_by_id(&bucket_id) {
        None => return Err(B2Error::new(400, "bad_bucket_id", "bucket does not exist")),
        Some(b) if retention.is_some() || legal_hold => require_file_lock(b)?,
        Some(_) => {}
    }
    let (id, seq) = st.next_id(&bucket_id);
    std::fs::rename(&tmp, app.disk.blob(&id))?;
    let v = Version {
        id,
        seq,
        bucket_id,
        name,
        action: Action::Upload,
        size,
        sha1,
        content_type: ct,
        info,
        upload_timestamp: now_ms(),
        retention,
        legal_hold,
    };
    st.versions.insert(State::key(&v), v.clone());
    app.save(&st)?;
    json_reply(version_json(&v, api))
}

pub(super) async fn upload_part(
    app: &Arc<App>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Reply {
    let tok = app.auth(headers, uri)?;
    let file_id = uri
        .path()
        .strip_prefix("/b2api/upload_part/")
        .unwrap_or("")
        .to_string();
    match &tok.kind {
        TokenKind::Part { file_id: f } if *f == file_id => {}
        _ => {
            return Err(B2Error::new(
                401,
                "bad_auth_token",
                "token is not valid for this part URL",
            ))
        }
    }
    let n: u32 = header(headers, "x-bz-part-number")
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| B2Error::bad_request("X-Bz-Part-Number must be 1..10000"))?;
    let declared = header(headers, "x-bz-content-sha1")
        .ok_or_else(|| B2Error::bad_request("X-Bz-Content-Sha1 is missing"))?
        .to_string();
    let len: u64 = header(headers, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| B2Error::bad_request("Content-Length is required"))?;
    if !app.lock_state().large.contains_key(&file_id) {
        return Err(B2Error::bad_request(format!(
            "no such large file {file_id}"
        )));
    }
    let dir = app.disk.part_dir(&file_id);
    tokio::fs::create_dir_all(&dir).await?;
    let tmp = app.disk.tmp();
    let (size, sha1) = receive_verified(body, &tmp, len, &declared, app.keeps(len)).await?;
    let mut st = app.lock_state();
    let l = st
        .large
        .get_mut(&file_id)
        .ok_or_else(|| B2Error::bad_request("large file was cancelled"))?;
    std::fs::rename(&tmp, dir.join(n.to_string()))?;
    let ts = now_ms();
    l.parts.insert(
        n,
        Part {
            size,
            sha1: sha1.clone(),
            upload_timestamp: ts,
        },
    );
    app.save(&st)?;
    json_reply(
        json!({"fileId": file_id, "partNumber": n, "contentLength": size, "contentSha1": sha1, "contentMd5": null, "uploadTimestamp": ts}),
    )
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against `size`; inclusive end.
pub(super) fn parse_range(r: &str, size: u64) -> Option<(u64, u64)> {
    let spec = r.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, size.checked_sub(1)?),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

pub(super) fn header<'a>(h: &'a HeaderMap, k: &str) -> Option<&'a str> {
    h.get(k).and_then(|v| v.to_str().ok())
}

/// Checks the SHA1 a client declared against the one computed.
pub(super) fn verify_sha1(
    declared: &str,
    actual: &str,
    trailing: Option<String>,
) -> Result<String, B2Error> {
    let declared = declared.to_ascii_lowercase();
    let want = match declared.as_str() {
        "hex_digits_at_end" => trailing.unwrap_or_default(),
        "do_not_verify" => return Ok(format!("unverified:{actual}")),
        d => d.to_string(),
    };
    if want != actual {
        return Err(B2Error::bad_request(format!(
            "Sha1 did not match data received (declared {want}, received {actual})"
        )));
    }
    Ok(actual.to_string())
}
