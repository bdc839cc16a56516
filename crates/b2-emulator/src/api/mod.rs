//! The B2 operations, with B2's request and response shapes per API version.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, Uri};
use base64::Engine;
use cairn_sha1::Sha1;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

pub use crate::app::url_decode;
use crate::app::{json_reply, App, B2Error, Key, Reply, TokenKind, ACCOUNT_ID};
use crate::store::{Action, Bucket, LargeFile, Part, State, Version};

mod buckets;
mod files;
mod keys;
mod large;
mod lock;
mod transfer;

use buckets::*;
use files::*;
use keys::*;
use large::*;
pub use lock::advance_clock;
use lock::*;
use transfer::*;

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

/// [`now_ms`] for the rest of the emulator.
pub(crate) fn now_millis() -> i64 {
    now_ms()
}

/// The emulator's clock: the system's, moved ahead by `/emulator/clock` (tests of
/// retention that runs out).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + lock::clock_offset_ms()
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

/// A percent-encoded file name, refused (as B2 refuses it) when its bytes are not UTF-8.
fn decode_name(raw: &str) -> Result<String, B2Error> {
    let bytes = crate::app::url_decode_bytes(raw);
    String::from_utf8(bytes)
        .map_err(|_| B2Error::bad_request(format!("file name {raw:?} is not valid UTF-8")))
}

/// The `b2-` info keys B2 accepts (they come back as the real headers on download).
const B2_INFO_KEYS: [&str; 5] = [
    "b2-content-disposition",
    "b2-content-language",
    "b2-expires",
    "b2-cache-control",
    "b2-content-encoding",
];

/// Refuses a reserved `b2-` info key B2 does not know.
fn check_info_key(k: &str) -> Result<(), B2Error> {
    if k.starts_with("b2-") && !B2_INFO_KEYS.contains(&k) {
        return Err(B2Error::bad_request(format!(
            "unknown b2- file info key {k:?}"
        )));
    }
    Ok(())
}

fn valid_name(name: &str) -> Result<(), B2Error> {
    if name.is_empty() || name.len() > 1024 || name.bytes().any(|c| c < 32 || c == 127) {
        return Err(B2Error::bad_request(format!("invalid file name {name:?}")));
    }
    Ok(())
}

fn lock_fields(
    m: &mut Map<String, Value>,
    retention: Option<&crate::store::Retention>,
    legal_hold: bool,
) {
    m.insert(
        "fileRetention".into(),
        json!({"isClientAuthorizedToRead": true, "value": retention_value(retention)}),
    );
    m.insert(
        "legalHold".into(),
        json!({"isClientAuthorizedToRead": true, "value": if legal_hold { json!("on") } else { Value::Null }}),
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
        lock_fields(&mut m, v.retention.as_ref(), v.legal_hold);
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
    lock_fields(&mut m, l.retention.as_ref(), l.legal_hold);
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
    let setting = |k: &str, default: Value| b.settings.get(k).cloned().unwrap_or(default);
    json!({"accountId": ACCOUNT_ID, "bucketId": b.id, "bucketName": b.name, "bucketType": b.bucket_type,
        "bucketInfo": setting("bucketInfo", json!({})),
        "corsRules": setting("corsRules", json!([])), "lifecycleRules": setting("lifecycleRules", json!([])),
        "revision": b.revision, "options": [],
        "defaultServerSideEncryption": {"isClientAuthorizedToRead": true, "value": setting("defaultServerSideEncryption", json!({"mode": "none"}))},
        "fileLockConfiguration": {"isClientAuthorizedToRead": true, "value": {"isFileLockEnabled": b.file_lock_enabled,
            "defaultRetention": setting("defaultRetention", json!({"mode": null, "period": null}))}},
        "replicationConfiguration": {"isClientAuthorizedToRead": true, "value": null}})
}

/// What B2 gives the master key (b2sdk's ALL_CAPABILITIES).
const CAPABILITIES: [&str; 25] = [
    "listKeys",
    "writeKeys",
    "deleteKeys",
    "listBuckets",
    "listAllBucketNames",
    "readBuckets",
    "writeBuckets",
    "deleteBuckets",
    "readBucketEncryption",
    "writeBucketEncryption",
    "readBucketRetentions",
    "writeBucketRetentions",
    "readFileRetentions",
    "writeFileRetentions",
    "readFileLegalHolds",
    "writeFileLegalHolds",
    "readBucketReplications",
    "writeBucketReplications",
    "bypassGovernance",
    "listFiles",
    "readFiles",
    "shareFiles",
    "writeFiles",
    "deleteFiles",
    "readBucketNotifications",
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
            let path = uri.path().strip_prefix("/file/").unwrap_or("");
            let (bucket, name) = path
                .split_once('/')
                .ok_or_else(|| B2Error::not_found("no file name"))?;
            let (bucket, name) = (url_decode(bucket), decode_name(name)?);
            let v = download_by_name(app, op, uri, headers, &bucket, &name)?;
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
                app.check_bucket(&app.account_key(&tok)?, &b.name)?;
                app.require(&app.account_key(&tok)?, op)?;
                app.check_name(&app.account_key(&tok)?.name_prefix, &v.name)?;
                v
            };
            download(app, &v, method, headers).await
        }
        _ => {
            let tok = app.auth(headers, uri)?;
            let key = app.account_key(&tok)?;
            app.require(&key, op)?;
            let p = params(method, uri, body).await?;
            json_call(app, op, api, &key, &p)
        }
    }
}

/// The version a download by name serves: anonymous from an `allPublic` bucket, else
/// with an account token (its key's bucket, capability and prefix) or a download
/// authorization for this bucket and a prefix of the name.
fn download_by_name(
    app: &App,
    op: &str,
    uri: &Uri,
    headers: &HeaderMap,
    bucket: &str,
    name: &str,
) -> Result<Version, B2Error> {
    let public = app
        .lock_state()
        .bucket_by_name(bucket)
        .is_some_and(|b| b.bucket_type == "allPublic");
    let has_auth = headers.contains_key("authorization")
        || uri.query().is_some_and(|q| q.contains("Authorization="));
    let b = if public && !has_auth {
        app.lock_state().bucket_by_name(bucket).cloned()
    } else {
        let tok = app.auth(headers, uri)?;
        let st = app.lock_state();
        let b = st
            .bucket_by_name(bucket)
            .cloned()
            .ok_or_else(|| B2Error::not_found(format!("bucket {bucket} does not exist")))?;
        match &tok.kind {
            TokenKind::Download { bucket_id, prefix } => {
                if *bucket_id != b.id || !name.starts_with(prefix.as_str()) {
                    return Err(B2Error::unauthorized(
                        "download authorization does not cover this file",
                    ));
                }
            }
            _ => {
                let key = app.account_key(&tok)?;
                app.check_bucket(&key, &b.name)?;
                app.require(&key, op)?;
                app.check_name(&key.name_prefix, name)?;
            }
        }
        Some(b)
    };
    let b = b.ok_or_else(|| B2Error::not_found(format!("bucket {bucket} does not exist")))?;
    match app.lock_state().newest(&b.id, name) {
        Some(v) if v.action == Action::Upload => Ok(v.clone()),
        _ => Err(B2Error::not_found(format!("file {name} not present"))),
    }
}

/// `b2_get_download_authorization`: a token for downloading names with a prefix.
fn b2_get_download_authorization(
    app: &App,
    st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let bid = req(p, "bucketId")?.to_string();
    let prefix = req(p, "fileNamePrefix")?.to_string();
    let secs = num(p, "validDurationInSeconds")
        .ok_or_else(|| B2Error::bad_request("required field validDurationInSeconds is missing"))?;
    if !(1..=604_800).contains(&secs) {
        return Err(B2Error::bad_request(
            "validDurationInSeconds must be 1 to 604800",
        ));
    }
    bucket_for(app, &st, key, &bid)?;
    app.check_name(&key.name_prefix, &prefix)?;
    drop(st);
    let token = app.new_token_lasting(
        TokenKind::Download {
            bucket_id: bid.clone(),
            prefix: prefix.clone(),
        },
        std::time::Duration::from_secs(secs),
    );
    json_reply(json!({"bucketId": bid, "fileNamePrefix": prefix, "authorizationToken": token}))
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
    let configured = app
        .config
        .keys
        .iter()
        .find(|k| (k.id == id || (id == ACCOUNT_ID && k.bucket.is_none())) && k.secret == secret)
        .cloned();
    let key = configured
        .or_else(|| app.key_by_id(id).filter(|k| k.secret == secret))
        .ok_or_else(|| B2Error::unauthorized("invalid application key id or key"))?;
    let key = &key;
    let token = app.new_token(TokenKind::Account {
        key_id: key.id.clone(),
    });
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
        "b2_update_file_retention" => b2_update_file_retention(app, st, key, p),
        "b2_update_file_legal_hold" => b2_update_file_legal_hold(app, st, key, p),
        "b2_create_key" => b2_create_key(app, st, key, p),
        "b2_update_bucket" => b2_update_bucket(app, st, key, p),
        "b2_get_download_authorization" => b2_get_download_authorization(app, st, key, p),
        "b2_list_keys" => b2_list_keys(app, p),
        "b2_delete_key" => b2_delete_key(app, p),
        other => Err(B2Error::bad_request(format!(
            "unsupported operation {other}"
        ))),
    }
}

fn file_info_from_json(v: Option<&Value>) -> Result<BTreeMap<String, String>, B2Error> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(o)) = v {
        if o.len() > 10 {
            return Err(B2Error::bad_request("too many file info entries"));
        }
        for (k, v) in o {
            check_info_key(&k.to_ascii_lowercase())?;
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
