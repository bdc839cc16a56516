//! Object Lock as B2 keeps it: retention on file versions of buckets created with file
//! lock enabled, set at upload (headers), at `b2_start_large_file` and `b2_copy_file`
//! (`fileRetention`), or later with `b2_update_file_retention`. A version under
//! retention cannot be deleted; governance retention gives way to a key with
//! `bypassGovernance` that asks to, compliance retention to nobody. Hides are allowed:
//! a hide marker is a new version, and the locked one stays.

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::store::Retention;

/// How far the emulator's clock runs ahead of the system's.
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

pub(super) fn clock_offset_ms() -> i64 {
    CLOCK_OFFSET_MS.load(Ordering::Relaxed)
}

/// Moves the emulator's clock ahead (`POST /emulator/clock?advance_secs=N`), so a test
/// can see retention run out; returns the emulator's time now.
pub fn advance_clock(secs: i64) -> i64 {
    CLOCK_OFFSET_MS.fetch_add(secs.saturating_mul(1000), Ordering::Relaxed);
    now_ms()
}

fn retention(mode: Option<&str>, until: Option<i64>) -> Result<Option<Retention>, B2Error> {
    match (mode, until) {
        (None | Some("none") | Some(""), None) => Ok(None),
        (Some(m @ ("governance" | "compliance")), Some(until)) => Ok(Some(Retention {
            mode: m.to_string(),
            until,
        })),
        (Some(m), _) if m != "governance" && m != "compliance" => Err(B2Error::bad_request(
            format!("invalid file retention mode {m:?}"),
        )),
        _ => Err(B2Error::bad_request(
            "file retention needs both a mode and a retainUntilTimestamp",
        )),
    }
}

/// From `X-Bz-File-Retention-Mode` and `X-Bz-File-Retention-Retain-Until-Timestamp`.
pub(super) fn retention_from_headers(headers: &HeaderMap) -> Result<Option<Retention>, B2Error> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let until = match get("x-bz-file-retention-retain-until-timestamp") {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| B2Error::bad_request(format!("invalid retainUntilTimestamp {t:?}")))?,
        ),
        None => None,
    };
    retention(get("x-bz-file-retention-mode"), until)
}

/// From a `fileRetention` object: `{"mode": ..., "retainUntilTimestamp": ...}`.
pub(super) fn retention_from_json(v: Option<&Value>) -> Result<Option<Retention>, B2Error> {
    let Some(v) = v else { return Ok(None) };
    retention(
        v.get("mode").and_then(Value::as_str),
        v.get("retainUntilTimestamp").and_then(Value::as_i64),
    )
}

/// The `value` of a file object's `fileRetention`.
pub(super) fn retention_value(r: Option<&Retention>) -> Value {
    match r {
        Some(r) => json!({"mode": r.mode, "retainUntilTimestamp": r.until}),
        None => json!({"mode": null, "retainUntilTimestamp": null}),
    }
}

/// Retention may be set only in a bucket created with file lock enabled.
pub(super) fn require_file_lock(b: &Bucket) -> Result<(), B2Error> {
    if b.file_lock_enabled {
        return Ok(());
    }
    Err(B2Error::bad_request(format!(
        "bucket {} does not have file lock enabled (fileLockEnabled is false)",
        b.name
    )))
}

/// Setting retention or a legal hold with a new file needs the key's
/// `writeFileRetentions` or `writeFileLegalHolds` (`None`: every capability).
pub(super) fn require_lock_capabilities(
    caps: Option<&[String]>,
    retention: bool,
    legal_hold: bool,
) -> Result<(), B2Error> {
    for (wanted, cap) in [
        (retention, "writeFileRetentions"),
        (legal_hold, "writeFileLegalHolds"),
    ] {
        if wanted && !crate::app::allows(caps, cap) {
            return Err(B2Error::unauthorized(format!(
                "application key lacks capability {cap}"
            )));
        }
    }
    Ok(())
}

/// `on` or `off` (absent: off), from `X-Bz-File-Legal-Hold` or `legalHold`.
pub(super) fn legal_hold_from(v: Option<&str>) -> Result<bool, B2Error> {
    match v {
        None | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(other) => Err(B2Error::bad_request(format!(
            "invalid legal hold {other:?}: on or off"
        ))),
    }
}

/// Refuses to delete a version under legal hold, or still under retention.
pub(super) fn check_deletable(
    _app: &App,
    v: &Version,
    bypass: bool,
    key: &Key,
) -> Result<(), B2Error> {
    if v.legal_hold {
        return Err(B2Error::new(
            401,
            "access_denied",
            format!("file {} is under legal hold", v.name),
        ));
    }
    match &v.retention {
        Some(r) if r.until > now_ms() => {
            if r.mode == "governance" && bypass && key.has("bypassGovernance") {
                return Ok(());
            }
            Err(B2Error::new(
                401,
                "access_denied",
                format!(
                    "file {} is locked ({} retention until {})",
                    v.name, r.mode, r.until
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The uploaded version `id` of `name`, in a bucket with file lock, that `key` may
/// reach: what a retention or legal hold update applies to.
fn lockable_version(
    app: &App,
    st: &State,
    key: &Key,
    id: &str,
    name: &str,
) -> Result<Version, B2Error> {
    let v = st
        .version_by_id(id)
        .filter(|v| v.name == name && v.action == Action::Upload)
        .cloned()
        .ok_or_else(|| {
            B2Error::new(
                400,
                "file_not_present",
                format!("file not present: {name} {id}"),
            )
        })?;
    require_file_lock(bucket_for(app, st, key, &v.bucket_id)?)?;
    app.check_name(&key.name_prefix, name)?;
    Ok(v)
}

/// `b2_update_file_retention`.
pub(super) fn b2_update_file_retention(
    app: &App,
    mut st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "fileId")?;
    let name = req(p, "fileName")?;
    let new = retention_from_json(p.get("fileRetention"))?;
    let bypass = p.get("bypassGovernance").and_then(Value::as_bool) == Some(true);
    let v = lockable_version(app, &st, key, id, name)?;
    if let Some(old) = v.retention.as_ref().filter(|r| r.until > now_ms()) {
        let weaker = match &new {
            None => true,
            Some(n) => n.until < old.until || (old.mode == "compliance" && n.mode != "compliance"),
        };
        if weaker {
            let allowed = old.mode == "governance" && bypass && key.has("bypassGovernance");
            if !allowed {
                return Err(B2Error::new(
                    401,
                    "access_denied",
                    format!(
                        "{} retention of {name} until {} can only be extended{}",
                        old.mode,
                        old.until,
                        if old.mode == "governance" {
                            " (or changed with bypassGovernance)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }
    let k = State::key(&v);
    if let Some(stored) = st.versions.get_mut(&k) {
        stored.retention = new.clone();
    }
    app.save(&st)?;
    json_reply(
        json!({"fileId": v.id, "fileName": v.name, "fileRetention": retention_value(new.as_ref())}),
    )
}

/// `b2_update_file_legal_hold`.
pub(super) fn b2_update_file_legal_hold(
    app: &App,
    mut st: StateGuard<'_>,
    key: &Key,
    p: &Map<String, Value>,
) -> Reply {
    let id = req(p, "fileId")?;
    let name = req(p, "fileName")?;
    let hold = legal_hold_from(Some(req(p, "legalHold")?))?;
    let v = lockable_version(app, &st, key, id, name)?;
    if let Some(stored) = st.versions.get_mut(&State::key(&v)) {
        stored.legal_hold = hold;
    }
    app.save(&st)?;
    json_reply(
        json!({"fileId": v.id, "fileName": v.name, "legalHold": if hold { "on" } else { "off" }}),
    )
}
