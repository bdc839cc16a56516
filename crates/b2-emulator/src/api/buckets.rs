//! Bucket operations: list, create, delete.

use super::*;

/// `b2_list_buckets`.
pub(super) fn b2_list_buckets(st: StateGuard<'_>, key: &Key, p: &Map<String, Value>) -> Reply {
    if key.bucket.is_some() && s(p, "bucketName").is_none() && s(p, "bucketId").is_none() {
        return Err(B2Error::unauthorized(
            "an application key restricted to a bucket must name it (bucketName or bucketId) to list buckets",
        ));
    }
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
pub(super) fn b2_create_bucket(
    app: &App,
    mut st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
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
    let bucket_type = s(p, "bucketType").unwrap_or("allPrivate");
    if !matches!(bucket_type, "allPrivate" | "allPublic") {
        return Err(B2Error::bad_request(format!(
            "invalid bucketType {bucket_type:?}: allPrivate or allPublic"
        )));
    }
    st.next_seq += 1;
    let b = Bucket {
        id: format!("b{:012x}", st.next_seq),
        name,
        bucket_type: s(p, "bucketType").unwrap_or("allPrivate").into(),
        file_lock_enabled: p.get("fileLockEnabled").and_then(Value::as_bool) == Some(true),
        settings: settings_from(p)?,
        revision: 1,
    };
    st.buckets.push(b.clone());
    app.save(&st)?;
    json_reply(bucket_json(&b))
}

/// `b2_delete_bucket`.
pub(super) fn b2_delete_bucket(
    app: &App,
    mut st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
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

/// The bucket settings B2 keeps as given, from a create or update request.
const SETTINGS: [&str; 5] = [
    "bucketInfo",
    "corsRules",
    "lifecycleRules",
    "defaultRetention",
    "defaultServerSideEncryption",
];

fn settings_from(p: &Map<String, Value>) -> Result<BTreeMap<String, Value>, B2Error> {
    let mut out = BTreeMap::new();
    for k in SETTINGS {
        if let Some(v) = p.get(k) {
            let ok = match k {
                "bucketInfo" | "defaultRetention" | "defaultServerSideEncryption" => v.is_object(),
                _ => v.is_array(),
            };
            if !ok {
                return Err(B2Error::bad_request(format!("invalid {k}")));
            }
            out.insert(k.to_string(), v.clone());
        }
    }
    Ok(out)
}

/// `b2_update_bucket`: type, settings, file lock (on, never off); refused with 409
/// when `ifRevisionMatch` names another revision.
pub(super) fn b2_update_bucket(
    app: &App,
    mut st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "bucketId")?.to_string();
    let b = bucket_for(app, &st, key, &id)?.clone();
    if let Some(want) = num(p, "ifRevisionMatch") {
        if want != b.revision {
            return Err(B2Error::new(
                409,
                "conflict",
                format!("bucket revision is {}, not {want}", b.revision),
            ));
        }
    }
    let bucket_type = s(p, "bucketType").unwrap_or(&b.bucket_type).to_string();
    if !matches!(bucket_type.as_str(), "allPrivate" | "allPublic") {
        return Err(B2Error::bad_request(format!(
            "invalid bucketType {bucket_type:?}"
        )));
    }
    let lock = match p.get("fileLockEnabled").and_then(Value::as_bool) {
        Some(false) if b.file_lock_enabled => {
            return Err(B2Error::bad_request(
                "file lock cannot be turned off once enabled",
            ))
        }
        Some(on) => on || b.file_lock_enabled,
        None => b.file_lock_enabled,
    };
    let settings = settings_from(p)?;
    let stored = st
        .buckets
        .iter_mut()
        .find(|x| x.id == id)
        .ok_or_else(|| B2Error::bad_request("bucket vanished"))?;
    stored.bucket_type = bucket_type;
    stored.file_lock_enabled = lock;
    stored.settings.extend(settings);
    stored.revision += 1;
    let reply = bucket_json(stored);
    app.save(&st)?;
    json_reply(reply)
}
