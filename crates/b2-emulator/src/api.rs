//! The B2 operations, with B2's request and response shapes per API version.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, Uri};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

pub use crate::app::url_decode;
use crate::app::{json_reply, App, B2Error, Key, Reply, TokenKind, ACCOUNT_ID};
use crate::store::{Action, Bucket, LargeFile, Part, State, Version};

/// The locked state, handed to an operation's handler, which may release it early.
type StateGuard<'a> = std::sync::MutexGuard<'a, State>;

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~/!$'()*;=:@".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Request parameters: the JSON body of a POST or the query of a GET; nulls dropped.
async fn params(method: &Method, uri: &Uri, body: Body) -> Result<Map<String, Value>, B2Error> {
    let mut m = Map::new();
    if let Some(q) = uri.query() {
        for kv in q.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            m.insert(url_decode(k), Value::String(url_decode(v)));
        }
    }
    if method == Method::POST {
        let bytes = body
            .collect()
            .await
            .map_err(|e| B2Error::bad_request(e.to_string()))?
            .to_bytes();
        if !bytes.is_empty() {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| B2Error::new(400, "bad_json", e.to_string()))?;
            if let Value::Object(o) = v {
                for (k, v) in o {
                    if !v.is_null() {
                        m.insert(k, v);
                    }
                }
            }
        }
    }
    Ok(m)
}

fn s<'a>(p: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

fn req<'a>(p: &'a Map<String, Value>, k: &str) -> Result<&'a str, B2Error> {
    s(p, k).ok_or_else(|| B2Error::bad_request(format!("required field {k} is missing")))
}

fn num(p: &Map<String, Value>, k: &str) -> Option<u64> {
    p.get(k).and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
}

fn valid_name(name: &str) -> Result<(), B2Error> {
    if name.is_empty() || name.len() > 1024 || name.bytes().any(|c| c < 32 || c == 127) {
        return Err(B2Error::bad_request(format!("invalid file name {name:?}")));
    }
    Ok(())
}

fn lock_fields(m: &mut Map<String, Value>) {
    m.insert("fileRetention".into(), json!({"isClientAuthorizedToRead": true, "value": {"mode": null, "retainUntilTimestamp": null}}));
    m.insert(
        "legalHold".into(),
        json!({"isClientAuthorizedToRead": true, "value": null}),
    );
    m.insert("serverSideEncryption".into(), json!({"mode": "none"}));
}

fn version_json(v: &Version, api: u32) -> Value {
    let mut m = Map::new();
    m.insert("accountId".into(), json!(ACCOUNT_ID));
    m.insert(
        "action".into(),
        json!(match v.action {
            Action::Upload => "upload",
            Action::Hide => "hide",
        }),
    );
    m.insert("bucketId".into(), json!(v.bucket_id));
    m.insert("contentLength".into(), json!(v.size));
    m.insert("contentMd5".into(), Value::Null);
    m.insert(
        "contentSha1".into(),
        if v.action == Action::Hide {
            Value::Null
        } else {
            json!(v.sha1)
        },
    );
    m.insert("contentType".into(), json!(v.content_type));
    m.insert("fileId".into(), json!(v.id));
    m.insert("fileInfo".into(), json!(v.info));
    m.insert("fileName".into(), json!(v.name));
    m.insert("uploadTimestamp".into(), json!(v.upload_timestamp));
    if api == 1 {
        m.insert("size".into(), json!(v.size));
    }
    if v.action == Action::Upload {
        lock_fields(&mut m);
    }
    Value::Object(m)
}

fn large_json(l: &LargeFile, api: u32) -> Value {
    let mut m = Map::new();
    m.insert("accountId".into(), json!(ACCOUNT_ID));
    m.insert("action".into(), json!("start"));
    m.insert("bucketId".into(), json!(l.bucket_id));
    m.insert("contentLength".into(), json!(0));
    m.insert("contentMd5".into(), Value::Null);
    m.insert("contentSha1".into(), json!("none"));
    m.insert("contentType".into(), json!(l.content_type));
    m.insert("fileId".into(), json!(l.id));
    m.insert("fileInfo".into(), json!(l.info));
    m.insert("fileName".into(), json!(l.name));
    m.insert("uploadTimestamp".into(), json!(l.upload_timestamp));
    if api == 1 {
        m.insert("size".into(), json!(0));
    }
    lock_fields(&mut m);
    Value::Object(m)
}

fn folder_json(name: &str, bucket_id: &str, api: u32) -> Value {
    let mut v = json!({"accountId": ACCOUNT_ID, "action": "folder", "bucketId": bucket_id, "contentLength": 0, "contentSha1": null,
        "contentMd5": null, "contentType": null, "fileId": null, "fileInfo": {}, "fileName": name, "uploadTimestamp": 0});
    if api == 1 {
        v["size"] = json!(0);
    }
    v
}

fn bucket_json(b: &Bucket) -> Value {
    json!({"accountId": ACCOUNT_ID, "bucketId": b.id, "bucketName": b.name, "bucketType": b.bucket_type, "bucketInfo": {},
        "corsRules": [], "lifecycleRules": [], "revision": 1, "options": [],
        "defaultServerSideEncryption": {"isClientAuthorizedToRead": true, "value": {"mode": "none"}},
        "fileLockConfiguration": {"isClientAuthorizedToRead": true, "value": {"isFileLockEnabled": false, "defaultRetention": {"mode": null, "period": null}}},
        "replicationConfiguration": {"isClientAuthorizedToRead": true, "value": null}})
}

const CAPABILITIES: [&str; 10] = [
    "listKeys",
    "listBuckets",
    "listAllBucketNames",
    "readBuckets",
    "writeBuckets",
    "deleteBuckets",
    "listFiles",
    "readFiles",
    "writeFiles",
    "deleteFiles",
];

pub async fn dispatch(
    app: &Arc<App>,
    op: &str,
    api: u32,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Reply {
    match op {
        "b2_authorize_account" => authorize(app, api, headers),
        "b2_upload_file" => upload_file(app, uri, headers, body, api).await,
        "b2_upload_part" => upload_part(app, uri, headers, body).await,
        "b2_download_file_by_name" => {
            let tok = app.auth(headers, uri)?;
            let path = uri.path().strip_prefix("/file/").unwrap_or("");
            let (bucket, name) = path
                .split_once('/')
                .ok_or_else(|| B2Error::not_found("no file name"))?;
            let (bucket, name) = (url_decode(bucket), url_decode(name));
            let v = {
                let st = app.lock_state();
                let b = st
                    .bucket_by_name(&bucket)
                    .ok_or_else(|| B2Error::not_found(format!("bucket {bucket} does not exist")))?;
                app.check_bucket(app.account_key(&tok)?, &b.name)?;
                app.require(app.account_key(&tok)?, op)?;
                app.check_name(&app.account_key(&tok)?.name_prefix, &name)?;
                match st.newest(&b.id, &name) {
                    Some(v) if v.action == Action::Upload => v.clone(),
                    _ => return Err(B2Error::not_found(format!("file {name} not present"))),
                }
            };
            download(app, &v, method, headers).await
        }
        "b2_download_file_by_id" => {
            let tok = app.auth(headers, uri)?;
            let p = params(method, uri, body).await?;
            let id = req(&p, "fileId")?;
            let v = {
                let st = app.lock_state();
                let v = st
                    .version_by_id(id)
                    .filter(|v| v.action == Action::Upload)
                    .cloned()
                    .ok_or_else(|| B2Error::not_found(format!("file {id} not present")))?;
                let b = st
                    .bucket_by_id(&v.bucket_id)
                    .cloned()
                    .ok_or_else(|| B2Error::not_found("bucket gone"))?;
                app.check_bucket(app.account_key(&tok)?, &b.name)?;
                app.require(app.account_key(&tok)?, op)?;
                app.check_name(&app.account_key(&tok)?.name_prefix, &v.name)?;
                v
            };
            download(app, &v, method, headers).await
        }
        _ => {
            let tok = app.auth(headers, uri)?;
            let key = app.account_key(&tok)?.clone();
            app.require(&key, op)?;
            let p = params(method, uri, body).await?;
            json_call(app, op, api, &key, &p)
        }
    }
}

fn authorize(app: &App, api: u32, headers: &HeaderMap) -> Reply {
    let creds = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| B2Error::bad_request("missing Basic authorization"))?;
    let (id, secret) = creds
        .split_once(':')
        .ok_or_else(|| B2Error::bad_request("malformed credentials"))?;
    let idx = app
        .config
        .keys
        .iter()
        .position(|k| {
            (k.id == id || (id == ACCOUNT_ID && k.bucket.is_none())) && k.secret == secret
        })
        .ok_or_else(|| B2Error::unauthorized("invalid application key id or key"))?;
    let key = &app.config.keys[idx];
    let token = app.new_token(TokenKind::Account { key: idx });
    let url = &app.base_url;
    let bucket = key
        .bucket
        .as_ref()
        .and_then(|n| app.lock_state().bucket_by_name(n).cloned());
    let (bid, bname) = match (&key.bucket, &bucket) {
        (Some(n), Some(b)) => (json!(b.id), json!(n)),
        (Some(n), None) => (Value::Null, json!(n)),
        _ => (Value::Null, Value::Null),
    };
    let name_prefix = json!(key.name_prefix);
    let caps = match &key.capabilities {
        Some(c) => json!(c),
        None => json!(CAPABILITIES),
    };
    let v = match api {
        1 | 2 => {
            json!({"accountId": ACCOUNT_ID, "authorizationToken": token, "apiUrl": url, "downloadUrl": url, "s3ApiUrl": url,
            "recommendedPartSize": 100_000_000, "absoluteMinimumPartSize": app.config.min_part_size, "minimumPartSize": 100_000_000,
            "allowed": {"bucketId": bid, "bucketName": bname, "capabilities": caps, "namePrefix": name_prefix}})
        }
        3 => {
            json!({"accountId": ACCOUNT_ID, "authorizationToken": token, "applicationKeyExpirationTimestamp": null,
            "apiInfo": {"storageApi": {"absoluteMinimumPartSize": app.config.min_part_size, "apiUrl": url, "bucketId": bid, "bucketName": bname,
            "capabilities": caps, "downloadUrl": url, "infoType": "storageApi", "namePrefix": name_prefix, "recommendedPartSize": 100_000_000, "s3ApiUrl": url},
            "groupsApi": {"infoType": "groupsApi", "groupsApiUrl": url, "capabilities": []}}})
        }
        _ => {
            let buckets = if key.bucket.is_some() {
                json!([{"id": bid, "name": bname}])
            } else {
                Value::Null
            };
            json!({"accountId": ACCOUNT_ID, "authorizationToken": token, "applicationKeyExpirationTimestamp": null,
            "apiInfo": {"storageApi": {"absoluteMinimumPartSize": app.config.min_part_size, "apiUrl": url, "downloadUrl": url,
            "recommendedPartSize": 100_000_000, "s3ApiUrl": url,
            "allowed": {"buckets": buckets, "capabilities": caps, "namePrefix": name_prefix}},
            "groupsApi": {"infoType": "groupsApi", "groupsApiUrl": url, "capabilities": []}}})
        }
    };
    json_reply(v)
}

fn bucket_for<'a>(
    app: &App,
    st: &'a State,
    key: &crate::app::Key,
    bucket_id: &str,
) -> Result<&'a Bucket, B2Error> {
    let b = st.bucket_by_id(bucket_id).ok_or_else(|| {
        B2Error::new(
            400,
            "bad_bucket_id",
            format!("invalid bucketId: {bucket_id}"),
        )
    })?;
    app.check_bucket(key, &b.name)?;
    Ok(b)
}

fn json_call(app: &App, op: &str, api: u32, key: &Key, p: &Map<String, Value>) -> Reply {
    let st = app.lock_state();
    match op {
        "b2_list_buckets" => b2_list_buckets(st, key, p),
        "b2_create_bucket" => b2_create_bucket(app, st, key, p),
        "b2_delete_bucket" => b2_delete_bucket(app, st, key, p),
        "b2_get_upload_url" => b2_get_upload_url(app, st, key, p),
        "b2_list_file_names" | "b2_list_file_versions" => {
            b2_list_file_names_or_versions(app, st, op, api, key, p)
        }
        "b2_get_file_info" => b2_get_file_info(app, st, api, key, p),
        "b2_hide_file" => b2_hide_file(app, st, api, key, p),
        "b2_delete_file_version" => b2_delete_file_version(app, st, key, p),
        "b2_start_large_file" => b2_start_large_file(app, st, api, key, p),
        "b2_get_upload_part_url" => b2_get_upload_part_url(app, st, key, p),
        "b2_finish_large_file" => b2_finish_large_file(app, st, api, key, p),
        "b2_cancel_large_file" => b2_cancel_large_file(app, st, key, p),
        "b2_list_unfinished_large_files" => b2_list_unfinished_large_files(app, st, api, key, p),
        "b2_list_parts" => b2_list_parts(st, p),
        "b2_copy_file" => b2_copy_file(app, st, api, key, p),
        "b2_copy_part" => b2_copy_part(app, st, key, p),
        other => Err(B2Error::bad_request(format!(
            "unsupported operation {other}"
        ))),
    }
}

/// `b2_list_buckets`.
fn b2_list_buckets(st: StateGuard<'_>, key: &Key, p: &Map<String, Value>) -> Reply {
    let list: Vec<Value> = st
        .buckets
        .iter()
        .filter(|b| key.bucket.as_ref().is_none_or(|k| *k == b.name))
        .filter(|b| s(p, "bucketName").is_none_or(|n| n == b.name))
        .filter(|b| s(p, "bucketId").is_none_or(|n| n == b.id))
        .map(bucket_json)
        .collect();
    if let (Some(k), Some(n)) = (&key.bucket, s(p, "bucketName")) {
        if k != n {
            return Err(B2Error::unauthorized(format!(
                "application key is restricted to bucket {k}"
            )));
        }
    }
    json_reply(json!({"buckets": list}))
}

/// `b2_create_bucket`.
fn b2_create_bucket(app: &App, mut st: StateGuard<'_>, key: &Key, p: &Map<String, Value>) -> Reply {
    let name = req(p, "bucketName")?.to_string();
    if key.bucket.is_some() {
        return Err(B2Error::unauthorized(
            "restricted key cannot create buckets",
        ));
    }
    if name.len() < 6
        || name.len() > 63
        || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    {
        return Err(B2Error::bad_request(format!(
            "invalid bucket name {name:?}"
        )));
    }
    if st.bucket_by_name(&name).is_some() {
        return Err(B2Error::new(
            400,
            "duplicate_bucket_name",
            format!("bucket name {name} is already in use"),
        ));
    }
    st.next_seq += 1;
    let b = Bucket {
        id: format!("b{:012x}", st.next_seq),
        name,
        bucket_type: s(p, "bucketType").unwrap_or("allPrivate").into(),
    };
    st.buckets.push(b.clone());
    app.save(&st)?;
    json_reply(bucket_json(&b))
}

/// `b2_delete_bucket`.
fn b2_delete_bucket(app: &App, mut st: StateGuard<'_>, key: &Key, p: &Map<String, Value>) -> Reply {
    let id = req(p, "bucketId")?;
    let b = bucket_for(app, &st, key, id)?.clone();
    if st.versions.keys().any(|k| k.0 == b.id) || st.large.values().any(|l| l.bucket_id == b.id) {
        return Err(B2Error::new(
            400,
            "cannot_delete_non_empty_bucket",
            "bucket is not empty",
        ));
    }
    st.buckets.retain(|x| x.id != b.id);
    app.save(&st)?;
    json_reply(bucket_json(&b))
}

/// `b2_get_upload_url`.
fn b2_get_upload_url(app: &App, st: StateGuard<'_>, key: &Key, p: &Map<String, Value>) -> Reply {
    let id = req(p, "bucketId")?;
    let b = bucket_for(app, &st, key, id)?.clone();
    drop(st);
    let token = app.new_token(TokenKind::Upload {
        bucket_id: b.id.clone(),
        name_prefix: key.name_prefix.clone(),
    });
    json_reply(
        json!({"bucketId": b.id, "uploadUrl": format!("{}/b2api/upload/{}", app.base_url, b.id), "authorizationToken": token}),
    )
}

/// `b2_list_file_names / b2_list_file_versions`.
fn b2_list_file_names_or_versions(
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
fn b2_get_file_info(
    app: &App,
    st: StateGuard<'_>,
    api: u32,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "fileId")?;
    let v = st
        .version_by_id(id)
        .ok_or_else(|| B2Error::not_found(format!("file {id} not found")))?;
    bucket_for(app, &st, key, &v.bucket_id)?;
    json_reply(version_json(v, api))
}

/// `b2_hide_file`.
fn b2_hide_file(
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
    };
    st.versions.insert(State::key(&v), v.clone());
    app.save(&st)?;
    json_reply(version_json(&v, api))
}

/// `b2_delete_file_version`.
fn b2_delete_file_version(
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

/// `b2_start_large_file`.
fn b2_start_large_file(
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
    };
    st.large.insert(id, l.clone());
    app.save(&st)?;
    json_reply(large_json(&l, api))
}

/// `b2_get_upload_part_url`.
fn b2_get_upload_part_url(
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
fn b2_finish_large_file(
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
    };
    st.large.remove(&id);
    st.versions.insert(State::key(&v), v.clone());
    app.save(&st)?;
    json_reply(version_json(&v, api))
}

/// `b2_cancel_large_file`.
fn b2_cancel_large_file(
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
fn b2_list_unfinished_large_files(
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
fn b2_list_parts(st: StateGuard<'_>, p: &Map<String, Value>) -> Reply {
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

/// `b2_copy_file`.
fn b2_copy_file(
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
    let replace = s(p, "metadataDirective") == Some("REPLACE");
    let (ct, info) = if replace {
        (
            content_type(req(p, "contentType")?, &name),
            file_info_from_json(p.get("fileInfo"))?,
        )
    } else {
        (src.content_type.clone(), src.info.clone())
    };
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
        };
        st.versions.insert(State::key(&v), v.clone());
        app.save(&st)?;
        let mut j = version_json(&v, api);
        j["action"] = json!("copy");
        json_reply(j)
    }
}

/// `b2_copy_part`.
fn b2_copy_part(app: &App, mut st: StateGuard<'_>, key: &Key, p: &Map<String, Value>) -> Reply {
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

/// Copies bytes [start, end) of one stored blob into a new file; returns their SHA1.
fn copy_range(
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
    Ok(hex::encode(h.finalize()))
}

fn file_info_from_json(v: Option<&Value>) -> Result<BTreeMap<String, String>, B2Error> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(o)) = v {
        if o.len() > 10 {
            return Err(B2Error::bad_request("too many file info entries"));
        }
        for (k, v) in o {
            out.insert(
                k.to_ascii_lowercase(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            );
        }
    }
    Ok(out)
}

fn content_type(ct: &str, name: &str) -> String {
    if ct != "b2/x-auto" {
        return ct.to_string();
    }
    match name.rsplit('.').next() {
        Some("txt") => "text/plain",
        Some("html") => "text/html",
        Some("json") => "application/json",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
    .to_string()
}

fn list_files(
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
    let max = match num(p, "maxFileCount") {
        None | Some(0) => 100,
        Some(n) if n > 10_000 => {
            return Err(B2Error::new(
                400,
                "out_of_range",
                "maxFileCount out of range",
            ))
        }
        Some(n) if app.config.stuck_cursor => (n as usize).min(2),
        Some(n) => n as usize,
    };
    let prefix = s(p, "prefix").unwrap_or("");
    app.check_name(&key.name_prefix, prefix)?;
    let delimiter = s(p, "delimiter").filter(|d| !d.is_empty());
    let start_name = s(p, "startFileName").unwrap_or("").to_string();
    let start_id = if versions { s(p, "startFileId") } else { None };
    let from = if start_name.as_str() < prefix {
        prefix.to_string()
    } else {
        start_name.clone()
    };
    let mut files = Vec::new();
    let mut last_name: Option<String> = None;
    let mut skip_folder: Option<String> = None;
    let mut started = start_id.is_none();
    for ((_, name, _), v) in st.versions.range((bid.to_string(), from.clone(), 0)..) {
        if v.bucket_id != bid {
            break;
        }
        if !name.starts_with(prefix) {
            if name.as_str() > prefix {
                break;
            }
            continue;
        }
        if !started {
            if name != &start_name || v.id == start_id.unwrap_or("") {
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
            if v.action == Action::Hide {
                continue;
            }
        }
        if files.len() == max {
            // --stuck-cursor: point back at where this page started.
            let next = if app.config.stuck_cursor {
                files[0]["fileName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            } else {
                name.clone()
            };
            let next_id = if app.config.stuck_cursor {
                files[0]["fileId"].as_str().map(str::to_owned)
            } else {
                versions.then(|| v.id.clone())
            };
            return json_reply(page_json(
                files,
                Some(next),
                next_id.filter(|_| versions),
                versions,
            ));
        }
        files.push(version_json(v, api));
    }
    json_reply(page_json(files, None, None, versions))
}

fn page_json(
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

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against `size`; inclusive end.
fn parse_range(r: &str, size: u64) -> Option<(u64, u64)> {
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

async fn download(app: &App, v: &Version, method: &Method, headers: &HeaderMap) -> Reply {
    let mut b = Response::builder()
        .header("content-type", v.content_type.as_str())
        .header("x-bz-file-id", v.id.as_str())
        .header("x-bz-file-name", url_encode(&v.name))
        .header("x-bz-content-sha1", v.sha1.as_str())
        .header("x-bz-upload-timestamp", v.upload_timestamp.to_string())
        .header("accept-ranges", "bytes");
    for (k, val) in &v.info {
        b = b.header(format!("x-bz-info-{k}"), url_encode(val));
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
async fn receive(
    body: Body,
    path: &std::path::Path,
    expected_len: Option<u64>,
    digits_at_end: bool,
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
                let keep = tail.split_off(tail.len() - 40);
                h.update(&tail);
                out.write_all(&tail).await?;
                tail = keep;
            }
        } else {
            h.update(&data);
            out.write_all(&data).await?;
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
    Ok((size, hex::encode(h.finalize()), trailing))
}

fn header<'a>(h: &'a HeaderMap, k: &str) -> Option<&'a str> {
    h.get(k).and_then(|v| v.to_str().ok())
}

/// Checks the SHA1 a client declared against the one computed.
fn verify_sha1(declared: &str, actual: &str, trailing: Option<String>) -> Result<String, B2Error> {
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

/// Receives a body into `tmp` and checks it against the declared SHA1; on any failure
/// the temporary file is removed. Returns the stored size and the SHA1 to record.
async fn receive_verified(
    body: Body,
    tmp: &std::path::Path,
    len: u64,
    declared: &str,
) -> Result<(u64, String), B2Error> {
    let r = match receive(
        body,
        tmp,
        Some(len),
        declared.eq_ignore_ascii_case("hex_digits_at_end"),
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

async fn upload_file(
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
    let name_prefix = match &tok.kind {
        TokenKind::Upload {
            bucket_id: b,
            name_prefix,
        } if *b == bucket_id => name_prefix.clone(),
        _ => {
            return Err(B2Error::new(
                401,
                "bad_auth_token",
                "token is not valid for this upload URL",
            ))
        }
    };
    let name = url_decode(
        header(headers, "x-bz-file-name")
            .ok_or_else(|| B2Error::bad_request("X-Bz-File-Name is missing"))?,
    );
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
    let mut info = BTreeMap::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix("x-bz-info-") {
            info.insert(
                key.to_ascii_lowercase(),
                url_decode(v.to_str().unwrap_or("")),
            );
        }
    }
    if info.len() > 10 {
        return Err(B2Error::bad_request("too many X-Bz-Info headers"));
    }
    let tmp = app.disk.tmp();
    let (size, sha1) = receive_verified(body, &tmp, len, &declared).await?;
    let mut st = app.lock_state();
    if st.bucket_by_id(&bucket_id).is_none() {
        return Err(B2Error::new(400, "bad_bucket_id", "bucket does not exist"));
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
    };
    st.versions.insert(State::key(&v), v.clone());
    app.save(&st)?;
    json_reply(version_json(&v, api))
}

async fn upload_part(app: &Arc<App>, uri: &Uri, headers: &HeaderMap, body: Body) -> Reply {
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
    let (size, sha1) = receive_verified(body, &tmp, len, &declared).await?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn decoding_and_ranges() {
        assert_eq!(super::url_decode("a%20b+c%2Bd"), "a b c+d");
        assert_eq!(super::url_decode("%E2%82%AC"), "€");
        assert_eq!(super::parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(super::parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(super::parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(super::parse_range("bytes=100-", 100), None);
        assert_eq!(super::url_encode("a b+c/d"), "a%20b%2Bc/d");
    }
}
