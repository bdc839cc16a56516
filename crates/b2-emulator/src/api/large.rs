//! Large files: start, part URLs, finish, cancel, list unfinished and parts, copy parts.

use super::*;

/// `b2_start_large_file`.
pub(super) fn b2_start_large_file(
    app: &App,
    mut st: StateGuard<'_>,
    api: u32,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let bid = req(p, "bucketId")?.to_string();
    let name = req(p, "fileName")?.to_string();
    valid_name(&name)?;
    bucket_for(app, &st, key, &bid)?;
    app.check_name(&key.name_prefix, &name)?;
    let info = file_info_from_json(p.get("fileInfo"))?;
    let retention = retention_from_json(p.get("fileRetention"))?;
    let legal_hold = legal_hold_from(s(p, "legalHold"))?;
    require_lock_capabilities(key.capabilities.as_deref(), retention.is_some(), legal_hold)?;
    if retention.is_some() || legal_hold {
        require_file_lock(bucket_for(app, &st, key, &bid)?)?;
    }
    let (id, seq) = st.next_id(&bid);
    let l = LargeFile {
        id: id.clone(),
        seq,
        bucket_id: bid,
        name: name.clone(),
        content_type: content_type(s(p, "contentType").unwrap_or("b2/x-auto"), &name),
        info,
        upload_timestamp: now_ms(),
        parts: BTreeMap::new(),
        retention,
        legal_hold,
    };
    st.large.insert(id, l.clone());
    app.save(&st)?;
    json_reply(large_json(&l, api))
}

/// `b2_get_upload_part_url`.
pub(super) fn b2_get_upload_part_url(
    app: &App,
    st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "fileId")?.to_string();
    let l = st
        .large
        .get(&id)
        .cloned()
        .ok_or_else(|| B2Error::bad_request(format!("no such large file {id}")))?;
    bucket_for(app, &st, key, &l.bucket_id)?;
    drop(st);
    let token = app.new_token(TokenKind::Part {
        file_id: id.clone(),
    });
    json_reply(
        json!({"fileId": id, "uploadUrl": format!("{}/b2api/upload_part/{id}", app.base_url), "authorizationToken": token}),
    )
}

/// `b2_finish_large_file`.
pub(super) fn b2_finish_large_file(
    app: &App,
    mut st: StateGuard<'_>,
    api: u32,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "fileId")?.to_string();
    let l = st
        .large
        .get(&id)
        .cloned()
        .ok_or_else(|| B2Error::bad_request(format!("no such large file {id}")))?;
    bucket_for(app, &st, key, &l.bucket_id)?;
    let shas: Vec<String> = p
        .get("partSha1Array")
        .and_then(Value::as_array)
        .ok_or_else(|| B2Error::bad_request("partSha1Array is missing"))?
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_ascii_lowercase())
        .collect();
    check_parts(app, &l, &shas)?;
    // Concatenate parts into the blob (synchronously: the state lock is held).
    let dest = app.disk.blob(&id);
    {
        use std::io::Write;
        let mut out = std::fs::File::create(&dest)?;
        for n in 1..=shas.len() as u32 {
            let mut f = std::fs::File::open(app.disk.part_dir(&id).join(n.to_string()))?;
            std::io::copy(&mut f, &mut out)?;
        }
        out.flush()?;
    }
    let _ = std::fs::remove_dir_all(app.disk.part_dir(&id));
    let size = l.parts.values().map(|p| p.size).sum();
    let v = Version {
        id: l.id.clone(),
        seq: l.seq,
        bucket_id: l.bucket_id.clone(),
        name: l.name.clone(),
        action: Action::Upload,
        size,
        sha1: "none".into(),
        content_type: l.content_type.clone(),
        info: l.info.clone(),
        upload_timestamp: l.upload_timestamp,
        retention: l.retention.clone(),
        legal_hold: l.legal_hold,
    };
    st.large.remove(&id);
    st.versions.insert(State::key(&v), v.clone());
    app.save(&st)?;
    json_reply(version_json(&v, api))
}

/// B2's rules for finishing: one SHA1 per uploaded part, each matching its part, and
/// every part but the last at least the minimum part size.
fn check_parts(app: &App, l: &LargeFile, shas: &[String]) -> Result<(), B2Error> {
    if shas.is_empty() || shas.len() != l.parts.len() {
        return Err(B2Error::new(
            400,
            "missing_part",
            format!(
                "{} parts uploaded, {} SHA1s given",
                l.parts.len(),
                shas.len()
            ),
        ));
    }
    for (i, sha) in shas.iter().enumerate() {
        let n = i as u32 + 1;
        let part = l
            .parts
            .get(&n)
            .ok_or_else(|| B2Error::new(400, "missing_part", format!("part {n} is missing")))?;
        if part.sha1 != *sha {
            return Err(B2Error::new(
                400,
                "part_sha1_mismatch",
                format!("part {n}: SHA1 differs"),
            ));
        }
        if (n as usize) < shas.len() && part.size < app.config.min_part_size {
            return Err(B2Error::bad_request(format!(
                "part {n} is smaller than {} bytes",
                app.config.min_part_size
            )));
        }
    }
    Ok(())
}

/// `b2_cancel_large_file`.
pub(super) fn b2_cancel_large_file(
    app: &App,
    mut st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "fileId")?.to_string();
    let l = st
        .large
        .get(&id)
        .cloned()
        .ok_or_else(|| B2Error::bad_request(format!("no such large file {id}")))?;
    bucket_for(app, &st, key, &l.bucket_id)?;
    st.large.remove(&id);
    app.save(&st)?;
    let _ = std::fs::remove_dir_all(app.disk.part_dir(&id));
    json_reply(
        json!({"fileId": l.id, "accountId": ACCOUNT_ID, "bucketId": l.bucket_id, "fileName": l.name}),
    )
}

/// `b2_list_unfinished_large_files`.
pub(super) fn b2_list_unfinished_large_files(
    app: &App,
    st: StateGuard<'_>,
    api: u32,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let bid = req(p, "bucketId")?;
    bucket_for(app, &st, key, bid)?;
    let prefix = s(p, "namePrefix").unwrap_or("");
    let max = num(p, "maxFileCount")
        .filter(|n| *n > 0)
        .unwrap_or(100)
        .min(100) as usize;
    let start = s(p, "startFileId");
    let mut all: Vec<&LargeFile> = st
        .large
        .values()
        .filter(|l| l.bucket_id == bid && l.name.starts_with(prefix))
        .collect();
    all.sort_by_key(|l| l.seq);
    let skip = start
        .and_then(|s| all.iter().position(|l| l.id == s))
        .unwrap_or(0);
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(max)
        .map(|l| large_json(l, api))
        .collect();
    let next = all
        .get(skip + max)
        .map(|l| json!(l.id))
        .unwrap_or(Value::Null);
    json_reply(json!({"files": page, "nextFileId": next}))
}

/// `b2_list_parts`.
pub(super) fn b2_list_parts(st: StateGuard<'_>, p: &Map<String, Value>) -> Reply {
    let id = req(p, "fileId")?;
    let l = st
        .large
        .get(id)
        .ok_or_else(|| B2Error::bad_request(format!("no such large file {id}")))?;
    let startn = num(p, "startPartNumber").unwrap_or(1) as u32;
    let max = num(p, "maxPartCount")
        .filter(|n| *n > 0)
        .unwrap_or(100)
        .min(1000) as usize;
    let parts: Vec<(u32, &Part)> = l.parts.range(startn..).map(|(n, p)| (*n, p)).collect();
    let page: Vec<Value> = parts
            .iter()
            .take(max)
            .map(|(n, p)| json!({"fileId": id, "partNumber": n, "contentLength": p.size, "contentSha1": p.sha1, "contentMd5": null, "uploadTimestamp": p.upload_timestamp}))
            .collect();
    let next = parts.get(max).map(|(n, _)| json!(n)).unwrap_or(Value::Null);
    json_reply(json!({"parts": page, "nextPartNumber": next}))
}

/// `b2_copy_part`.
pub(super) fn b2_copy_part(
    app: &App,
    mut st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let src_id = req(p, "sourceFileId")?;
    let large_id = req(p, "largeFileId")?.to_string();
    let n = num(p, "partNumber")
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| B2Error::bad_request("partNumber must be 1..10000"))? as u32;
    let src = st
        .version_by_id(src_id)
        .filter(|v| v.action == Action::Upload)
        .cloned()
        .ok_or_else(|| B2Error::not_found(format!("file {src_id} not found")))?;
    bucket_for(app, &st, key, &src.bucket_id)?;
    let l = st
        .large
        .get(&large_id)
        .cloned()
        .ok_or_else(|| B2Error::bad_request(format!("no such large file {large_id}")))?;
    bucket_for(app, &st, key, &l.bucket_id)?;
    let (mut start, mut end) = (0u64, src.size);
    if let Some(r) = s(p, "range") {
        let (a, b) = parse_range(r, src.size)
            .ok_or_else(|| B2Error::new(416, "range_not_satisfiable", format!("bad range {r}")))?;
        (start, end) = (a, b + 1);
    }
    let dir = app.disk.part_dir(&large_id);
    std::fs::create_dir_all(&dir)?;
    let tmp = app.disk.tmp();
    app.kept(&src)?;
    let sha1 = copy_range(&app.disk.blob(&src.id), start, end, &tmp)?;
    std::fs::rename(&tmp, dir.join(n.to_string()))?;
    let ts = now_ms();
    if let Some(l) = st.large.get_mut(&large_id) {
        l.parts.insert(
            n,
            Part {
                size: end - start,
                sha1: sha1.clone(),
                upload_timestamp: ts,
            },
        );
    }
    app.save(&st)?;
    json_reply(
        json!({"fileId": large_id, "partNumber": n, "contentLength": end - start, "contentSha1": sha1, "contentMd5": null, "uploadTimestamp": ts}),
    )
}
