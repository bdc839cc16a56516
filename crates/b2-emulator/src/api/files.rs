//! File operations: upload URLs, listings, file info, hiding and deleting versions,
//! server-side copies.

use super::*;

/// `b2_get_upload_url`.
pub(super) fn b2_get_upload_url(
    app: &App,
    st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "bucketId")?;
    let b = bucket_for(app, &st, key, id)?.clone();
    drop(st);
    let token = app.new_token(TokenKind::Upload {
        bucket_id: b.id.clone(),
        name_prefix: key.name_prefix.clone(),
        capabilities: key.capabilities.clone(),
    });
    json_reply(
        json!({"bucketId": b.id, "uploadUrl": format!("{}/b2api/upload/{}", app.base_url, b.id), "authorizationToken": token}),
    )
}

/// `b2_list_file_names / b2_list_file_versions`.
pub(super) fn b2_list_file_names_or_versions(
    app: &App,
    st: StateGuard<'_>,
    op: &str,
    api: u32,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    list_files(app, &st, key, p, api, op == "b2_list_file_versions")
}

/// `b2_get_file_info`.
pub(super) fn b2_get_file_info(
    app: &App,
    st: StateGuard<'_>,
    api: u32,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "fileId")?;
    if let Some(l) = st.large.get(id) {
        bucket_for(app, &st, key, &l.bucket_id)?;
        return json_reply(large_json(l, api));
    }
    let v = st
        .version_by_id(id)
        .ok_or_else(|| B2Error::not_found(format!("file {id} not found")))?;
    bucket_for(app, &st, key, &v.bucket_id)?;
    json_reply(version_json(v, api))
}

/// `b2_hide_file`.
pub(super) fn b2_hide_file(
    app: &App,
    mut st: StateGuard<'_>,
    api: u32,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let bid = req(p, "bucketId")?.to_string();
    let name = req(p, "fileName")?.to_string();
    bucket_for(app, &st, key, &bid)?;
    app.check_name(&key.name_prefix, &name)?;
    match st.newest(&bid, &name) {
        None => {
            return Err(B2Error::new(
                400,
                "no_such_file",
                format!("file not present: {name}"),
            ))
        }
        Some(v) if v.action == Action::Hide => {
            return Err(B2Error::new(
                400,
                "already_hidden",
                format!("file already hidden: {name}"),
            ))
        }
        _ => {}
    }
    let (id, seq) = st.next_id(&bid);
    let v = Version {
        id,
        seq,
        bucket_id: bid,
        name,
        action: Action::Hide,
        size: 0,
        sha1: String::new(),
        content_type: "application/x-bz-hide-marker".into(),
        info: BTreeMap::new(),
        upload_timestamp: now_ms(),
        retention: None,
        legal_hold: false,
    };
    st.versions.insert(State::key(&v), v.clone());
    app.save(&st)?;
    json_reply(version_json(&v, api))
}

/// `b2_delete_file_version`.
pub(super) fn b2_delete_file_version(
    app: &App,
    mut st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "fileId")?;
    let name = req(p, "fileName")?;
    app.check_name(&key.name_prefix, name)?;
    let v = st.version_by_id(id).cloned();
    if let Some(v) = v.filter(|v| v.name == name) {
        bucket_for(app, &st, key, &v.bucket_id)?;
        let bypass = p.get("bypassGovernance").and_then(Value::as_bool) == Some(true);
        check_deletable(app, &v, bypass, key)?;
        st.versions.remove(&State::key(&v));
        app.save(&st)?;
        let _ = std::fs::remove_file(app.disk.blob(&v.id));
        return json_reply(json!({"fileId": v.id, "fileName": v.name}));
    }
    if let Some(l) = st.large.get(id).cloned().filter(|l| l.name == name) {
        bucket_for(app, &st, key, &l.bucket_id)?;
        st.large.remove(id);
        app.save(&st)?;
        let _ = std::fs::remove_dir_all(app.disk.part_dir(id));
        return json_reply(json!({"fileId": l.id, "fileName": l.name}));
    }
    Err(B2Error::new(
        400,
        "file_not_present",
        format!("file not present: {name} {id}"),
    ))
}

/// `b2_copy_file`.
pub(super) fn b2_copy_file(
    app: &App,
    mut st: StateGuard<'_>,
    api: u32,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let src_id = req(p, "sourceFileId")?;
    let name = req(p, "fileName")?.to_string();
    valid_name(&name)?;
    app.check_name(&key.name_prefix, &name)?;
    let src = st
        .version_by_id(src_id)
        .filter(|v| v.action == Action::Upload)
        .cloned()
        .ok_or_else(|| B2Error::not_found(format!("file {src_id} not found")))?;
    bucket_for(app, &st, key, &src.bucket_id)?;
    let dest_bucket = s(p, "destinationBucketId")
        .unwrap_or(&src.bucket_id)
        .to_string();
    bucket_for(app, &st, key, &dest_bucket)?;
    let (mut start, mut end) = (0u64, src.size);
    if let Some(r) = s(p, "range") {
        let (a, b) = parse_range(r, src.size)
            .ok_or_else(|| B2Error::new(416, "range_not_satisfiable", format!("bad range {r}")))?;
        (start, end) = (a, b + 1);
    }
    let replace = match s(p, "metadataDirective") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(other) => {
            return Err(B2Error::bad_request(format!(
                "invalid metadataDirective {other:?}: COPY or REPLACE"
            )))
        }
    };
    let (ct, info) = if replace {
        (
            content_type(req(p, "contentType")?, &name),
            file_info_from_json(p.get("fileInfo"))?,
        )
    } else {
        (src.content_type.clone(), src.info.clone())
    };
    let retention = retention_from_json(p.get("fileRetention"))?;
    let legal_hold = legal_hold_from(s(p, "legalHold"))?;
    require_lock_capabilities(key.capabilities.as_deref(), retention.is_some(), legal_hold)?;
    if retention.is_some() || legal_hold {
        require_file_lock(bucket_for(app, &st, key, &dest_bucket)?)?;
    }
    app.kept(&src)?;
    let (id, seq) = st.next_id(&dest_bucket);
    {
        let sha_range = copy_range(&app.disk.blob(&src.id), start, end, &app.disk.blob(&id))?;
        let sha = if src.sha1 == "none" && start == 0 && end == src.size {
            "none".to_string()
        } else {
            sha_range
        };
        let v = Version {
            id,
            seq,
            bucket_id: dest_bucket,
            name,
            action: Action::Upload,
            size: end - start,
            sha1: sha,
            content_type: ct,
            info,
            upload_timestamp: now_ms(),
            retention,
            legal_hold,
        };
        st.versions.insert(State::key(&v), v.clone());
        app.save(&st)?;
        let mut j = version_json(&v, api);
        j["action"] = json!("copy");
        json_reply(j)
    }
}

/// Copies bytes [start, end) of one stored blob into a new file; returns their SHA1.
pub(super) fn copy_range(
    from: &std::path::Path,
    start: u64,
    end: u64,
    to: &std::path::Path,
) -> std::io::Result<String> {
    use std::io::{Read, Seek, Write};
    let mut f = std::fs::File::open(from)?;
    f.seek(std::io::SeekFrom::Start(start))?;
    let mut out = std::fs::File::create(to)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut left = end - start;
    while left > 0 {
        let n = f.read(&mut buf[..(left.min(1 << 16)) as usize])?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(h.finish_hex())
}

pub(super) fn list_files(
    app: &App,
    st: &State,
    key: &crate::app::Key,
    p: &Map<String, Value>,
    api: u32,
    versions: bool,
) -> Reply {
    let bid = req(p, "bucketId")?;
    let b = st.bucket_by_id(bid).ok_or_else(|| {
        B2Error::new(400, "invalid_bucket_id", format!("invalid bucketId: {bid}"))
    })?;
    app.check_bucket(key, &b.name)?;
    let max = page_size(app, p)?;
    let prefix = s(p, "prefix").unwrap_or("");
    app.check_name(&key.name_prefix, prefix)?;
    let delimiter = s(p, "delimiter").filter(|d| !d.is_empty());
    let start_name = s(p, "startFileName").unwrap_or("").to_string();
    let start_id = if versions { s(p, "startFileId") } else { None };
    if let Some(id) = start_id.filter(|id| !id.starts_with("4_z")) {
        return Err(B2Error::bad_request(format!("invalid startFileId {id:?}")));
    }
    let from = if start_name.as_str() < prefix {
        prefix.to_string()
    } else {
        start_name.clone()
    };
    let mut files = Vec::new();
    let mut last_name: Option<String> = None;
    let mut skip_folder: Option<String> = None;
    let mut started = start_id.is_none();
    for (name, v) in entries(st, bid, &from, versions) {
        let name = &name;
        if !name.starts_with(prefix) {
            if name.as_str() > prefix {
                break;
            }
            continue;
        }
        if !started {
            if name != &start_name || v.id() == start_id.unwrap_or("") {
                started = true;
            } else {
                continue;
            }
        }
        if let Some(f) = &skip_folder {
            if name.starts_with(f.as_str()) {
                continue;
            }
            skip_folder = None;
        }
        if let Some(d) = delimiter {
            if let Some(pos) = name[prefix.len()..].find(d) {
                let folder = format!("{}{}", &name[..prefix.len() + pos], d);
                if files.len() == max {
                    return json_reply(page_json(files, Some(folder), None, versions));
                }
                files.push(folder_json(&folder, bid, api));
                skip_folder = Some(folder);
                continue;
            }
        }
        if !versions {
            if last_name.as_deref() == Some(name.as_str()) {
                continue;
            }
            last_name = Some(name.clone());
            if v.is_hide() {
                continue;
            }
        }
        if files.len() == max {
            return full_page(app, files, name, v.id(), versions);
        }
        files.push(v.json(api));
    }
    json_reply(page_json(files, None, None, versions))
}

/// One entry of a listing: a file version, or (in version listings, as B2 shows them)
/// an unfinished large file, as `start`.
enum Entry<'a> {
    Version(&'a Version),
    Unfinished(&'a LargeFile),
}

impl Entry<'_> {
    fn id(&self) -> &str {
        match self {
            Entry::Version(v) => &v.id,
            Entry::Unfinished(l) => &l.id,
        }
    }

    fn is_hide(&self) -> bool {
        matches!(self, Entry::Version(v) if v.action == Action::Hide)
    }

    fn json(&self, api: u32) -> Value {
        match self {
            Entry::Version(v) => version_json(v, api),
            Entry::Unfinished(l) => large_json(l, api),
        }
    }
}

/// The bucket's entries from name `from` on, in B2's order: by name, newest first.
fn entries<'a>(
    st: &'a State,
    bid: &str,
    from: &str,
    versions: bool,
) -> impl Iterator<Item = (String, Entry<'a>)> + 'a {
    let bucket = bid.to_string();
    // Read lazily: a page stops the walk once it is full.
    let mut stored = st
        .versions
        .range((bid.to_string(), from.to_string(), 0)..)
        .take_while(move |(_, v)| v.bucket_id == bucket)
        .map(|((_, name, _), v)| (name.clone(), v.seq, Entry::Version(v)))
        .peekable();
    // Unfinished large files are few; they are merged in by name, newest first.
    let mut unfinished: Vec<(String, u64, Entry<'a>)> = if versions {
        st.large
            .values()
            .filter(|l| l.bucket_id == bid && l.name.as_str() >= from)
            .map(|l| (l.name.clone(), l.seq, Entry::Unfinished(l)))
            .collect()
    } else {
        Vec::new()
    };
    unfinished.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut unfinished = unfinished.into_iter().peekable();
    std::iter::from_fn(move || {
        let first = match (stored.peek(), unfinished.peek()) {
            (Some(a), Some(b)) => (&a.0, std::cmp::Reverse(a.1)) <= (&b.0, std::cmp::Reverse(b.1)),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let next = if first {
            stored.next()
        } else {
            unfinished.next()
        };
        next.map(|(n, _, e)| (n, e))
    })
}

/// `maxFileCount`, as B2 bounds it (and 2 under `--stuck-cursor`, so tests page).
fn page_size(app: &App, p: &Map<String, Value>) -> Result<usize, B2Error> {
    match num(p, "maxFileCount") {
        None | Some(0) => Ok(100),
        Some(n) if n > 10_000 => Err(B2Error::new(
            400,
            "out_of_range",
            "maxFileCount out of range",
        )),
        Some(n) if app.config.stuck_cursor => Ok((n as usize).min(2)),
        Some(n) => Ok(n as usize),
    }
}

/// A full page, with the cursor to the next: `name` (and `id` for versions) is the
/// first entry not on it; under `--stuck-cursor` the cursor points back at where this
/// page started.
fn full_page(app: &App, files: Vec<Value>, name: &str, id: &str, versions: bool) -> Reply {
    let next = if app.config.stuck_cursor {
        files[0]["fileName"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    } else {
        name.to_string()
    };
    let next_id = if app.config.stuck_cursor {
        files[0]["fileId"].as_str().map(str::to_owned)
    } else {
        versions.then(|| id.to_string())
    };
    json_reply(page_json(
        files,
        Some(next),
        next_id.filter(|_| versions),
        versions,
    ))
}

pub(super) fn page_json(
    files: Vec<Value>,
    next_name: Option<String>,
    next_id: Option<String>,
    versions: bool,
) -> Value {
    let mut v = json!({"files": files, "nextFileName": next_name});
    if versions {
        v["nextFileId"] = json!(next_id);
    }
    v
}
