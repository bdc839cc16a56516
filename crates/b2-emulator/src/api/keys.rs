//! Application keys: `b2_create_key` (capabilities, one bucket, a name prefix, a
//! lifetime), `b2_list_keys`, `b2_delete_key`. Created keys authorize like the
//! configured ones and are held to what they were given; a deleted or expired key's
//! tokens stop working.

use super::*;
use crate::app::CreatedKey;

fn key_json(k: &CreatedKey) -> Value {
    json!({"accountId": ACCOUNT_ID, "applicationKeyId": k.key.id, "keyName": k.name,
        "capabilities": k.key.capabilities, "bucketId": k.bucket_id,
        "namePrefix": k.key.name_prefix, "expirationTimestamp": k.expires, "options": ["s3"]})
}

/// `b2_create_key`.
pub(super) fn b2_create_key(
    app: &App,
    st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let name = req(p, "keyName")?.to_string();
    if name.is_empty()
        || name.len() > 100
        || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    {
        return Err(B2Error::bad_request(format!("invalid keyName {name:?}")));
    }
    let caps: Vec<String> = p
        .get("capabilities")
        .and_then(Value::as_array)
        .ok_or_else(|| B2Error::bad_request("required field capabilities is missing"))?
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect();
    if let Some(bad) = caps.iter().find(|c| !CAPABILITIES.contains(&c.as_str())) {
        return Err(B2Error::bad_request(format!("unknown capability {bad:?}")));
    }
    let bucket = match s(p, "bucketId") {
        Some(id) => Some(bucket_for(app, &st, key, id)?.clone()),
        None if key.bucket.is_some() => {
            return Err(B2Error::unauthorized(
                "a key restricted to a bucket may only create keys for that bucket",
            ))
        }
        None => None,
    };
    let prefix = s(p, "namePrefix").map(str::to_owned);
    if prefix.is_some() && bucket.is_none() {
        return Err(B2Error::bad_request("namePrefix needs a bucketId"));
    }
    drop(st);
    let expires = num(p, "validDurationInSeconds").map(|secs| now_ms() + secs as i64 * 1000);
    let mut rnd = [0u8; 15];
    rand::Rng::fill(&mut rand::thread_rng(), &mut rnd);
    let created = CreatedKey {
        key: Key {
            id: format!("0{}", &hex::encode(rnd)[..24]),
            secret: format!("K{}", hex::encode(rnd)),
            bucket: bucket.as_ref().map(|b| b.name.clone()),
            capabilities: Some(caps),
            name_prefix: prefix,
        },
        name,
        bucket_id: bucket.map(|b| b.id),
        expires,
    };
    let mut keys = app.created_keys.lock().unwrap_or_else(|p| p.into_inner());
    keys.push(created.clone());
    app.save_keys(&keys)?;
    let mut v = key_json(&created);
    v["applicationKey"] = json!(created.key.secret);
    json_reply(v)
}

/// `b2_list_keys`: the created keys by ID, a page at a time (secrets never shown again).
pub(super) fn b2_list_keys(app: &App, p: &Map<String, Value>) -> Reply {
    let mut keys = app
        .created_keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    keys.sort_by(|a, b| a.key.id.cmp(&b.key.id));
    let start = s(p, "startApplicationKeyId").unwrap_or("");
    let max = num(p, "maxKeyCount").unwrap_or(100).clamp(1, 10_000) as usize;
    let listed: Vec<Value> = keys
        .iter()
        .filter(|k| k.key.id.as_str() >= start)
        .take(max)
        .map(key_json)
        .collect();
    let next = keys
        .iter()
        .filter(|k| k.key.id.as_str() >= start)
        .nth(max)
        .map(|k| k.key.id.clone());
    json_reply(json!({"keys": listed, "nextApplicationKeyId": next}))
}

/// `b2_delete_key`.
pub(super) fn b2_delete_key(app: &App, p: &Map<String, Value>) -> Reply {
    let id = req(p, "applicationKeyId")?;
    let mut keys = app.created_keys.lock().unwrap_or_else(|p| p.into_inner());
    let i = keys
        .iter()
        .position(|k| k.key.id == id)
        .ok_or_else(|| B2Error::bad_request(format!("no such application key {id}")))?;
    let gone = keys.remove(i);
    app.save_keys(&keys)?;
    json_reply(key_json(&gone))
}
