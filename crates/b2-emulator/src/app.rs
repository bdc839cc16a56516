//! The emulator's shared state and types: configuration, keys and tokens, the state
//! behind one lock, B2-shaped errors and the billing counters. The HTTP layer
//! (`server`) and the operations (`api`) both build on this; neither imports the other's
//! internals.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Response, Uri};
use serde_json::{json, Value};

use crate::store::{Disk, State};

/// Percent-decoding as B2 does it: `%XX` bytes and `+` as space.
/// Percent-decoding, invalid UTF-8 replaced.
pub fn url_decode(s: &str) -> String {
    String::from_utf8_lossy(&url_decode_bytes(s)).into_owned()
}

/// Percent-decoding to bytes (`+` is a space), for names that must then be UTF-8.
pub fn url_decode_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// One application key the emulator accepts.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Key {
    pub id: String,
    pub secret: String,
    /// Restricted to this bucket name, if set (such keys cannot list other buckets).
    pub bucket: Option<String>,
    /// The key's capabilities; None means all of them.
    pub capabilities: Option<Vec<String>>,
    /// Only names starting with this may be listed, read or written.
    pub name_prefix: Option<String>,
}

/// Whether capabilities `caps` (`None`: every one) include `cap`.
pub fn allows(caps: Option<&[String]>, cap: &str) -> bool {
    caps.is_none_or(|c| c.iter().any(|x| x == cap))
}

impl Key {
    pub fn has(&self, cap: &str) -> bool {
        allows(self.capabilities.as_deref(), cap)
    }
}

/// The capability B2 requires for each call.
pub fn capability_for(op: &str) -> Option<&'static str> {
    Some(match op {
        "b2_list_buckets" => "listBuckets",
        "b2_create_bucket" | "b2_update_bucket" => "writeBuckets",
        "b2_delete_bucket" => "deleteBuckets",
        "b2_list_file_names"
        | "b2_list_file_versions"
        | "b2_list_unfinished_large_files"
        | "b2_list_parts" => "listFiles",
        "b2_get_file_info" | "b2_download_file_by_name" | "b2_download_file_by_id" => "readFiles",
        "b2_get_upload_url"
        | "b2_start_large_file"
        | "b2_get_upload_part_url"
        | "b2_finish_large_file"
        | "b2_copy_file"
        | "b2_hide_file"
        | "b2_cancel_large_file" => "writeFiles",
        "b2_delete_file_version" => "deleteFiles",
        "b2_update_file_retention" => "writeFileRetentions",
        "b2_update_file_legal_hold" => "writeFileLegalHolds",
        "b2_get_download_authorization" => "shareFiles",
        "b2_create_key" => "writeKeys",
        "b2_list_keys" => "listKeys",
        "b2_delete_key" => "deleteKeys",
        _ => return None,
    })
}

#[derive(Clone, Debug)]
pub struct Config {
    pub keys: Vec<Key>,
    /// Probability (0..1) that any call fails with 503.
    pub fail_rate: f64,
    /// Probability (0..1) that a reply is cut mid-body after the call took effect, as
    /// when a connection drops: the client must retry without trusting the half it got.
    pub cut_rate: f64,
    pub latency: Duration,
    pub token_ttl: Duration,
    /// Smallest non-last part B2 accepts (5,000,000 like B2; lower it to test quickly).
    pub min_part_size: u64,
    /// Fault: listings page two names at a time and their cursor never moves on, as a
    /// broken or hostile server's might (a client must not page forever).
    pub stuck_cursor: bool,
    /// Fault: ranged downloads run on to the end of the file, past the range asked for.
    pub oversize_bodies: bool,
    /// Uploads larger than this are hashed and recorded but their bytes dropped, so a
    /// benchmark measures the client rather than this machine's memory: B2's disks are
    /// not the user's, and on a VM every fresh page a server writes costs a fault.
    pub discard_above: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keys: vec![Key {
                id: "testkeyid".into(),
                secret: "testkey".into(),
                bucket: None,
                capabilities: None,
                name_prefix: None,
            }],
            fail_rate: 0.0,
            cut_rate: 0.0,
            latency: Duration::ZERO,
            token_ttl: Duration::from_secs(24 * 3600),
            min_part_size: 5_000_000,
            stuck_cursor: false,
            oversize_bodies: false,
            discard_above: None,
        }
    }
}

impl App {
    /// Whether an upload of `len` bytes is stored (see `Config::discard_above`).
    pub fn keeps(&self, len: u64) -> bool {
        self.config.discard_above.is_none_or(|max| len <= max)
    }

    /// Refuses to serve or copy a version whose bytes `--discard-above` dropped.
    pub fn kept(&self, v: &crate::store::Version) -> Result<(), B2Error> {
        if self.config.discard_above.is_none() {
            return Ok(());
        }
        let on_disk = std::fs::metadata(self.disk.blob(&v.id)).map(|m| m.len());
        if v.size > 0 && on_disk.ok() != Some(v.size) {
            return Err(B2Error::new(
                503,
                "service_unavailable",
                format!("{}: its bytes were not kept (--discard-above)", v.name),
            ));
        }
        Ok(())
    }
}

pub const ACCOUNT_ID: &str = "emu0account";

#[derive(Clone, Debug)]
pub enum TokenKind {
    Account {
        key_id: String,
    },
    Upload {
        bucket_id: String,
        name_prefix: Option<String>,
        /// Capabilities of the key that asked for the URL (retention and legal hold
        /// headers need theirs).
        capabilities: Option<Vec<String>>,
    },
    Part {
        file_id: String,
    },
    /// From `b2_get_download_authorization`: downloads by name in one bucket, of
    /// names starting with `prefix`.
    Download {
        bucket_id: String,
        prefix: String,
    },
}

#[derive(Clone, Debug)]
pub struct Token {
    pub kind: TokenKind,
    pub expires: Instant,
}

#[derive(Default)]
pub struct Stats {
    pub calls: BTreeMap<String, u64>,
    /// Requests being served right now, and the most at once since the last reset: how a
    /// test or benchmark sees that a client keeps several fetches in flight.
    pub in_flight: u64,
    pub max_in_flight: u64,
}

pub struct App {
    pub config: Config,
    pub base_url: String,
    pub disk: Disk,
    pub state: Mutex<State>,
    pub tokens: Mutex<HashMap<String, Token>>,
    pub stats: Mutex<Stats>,
    /// Keys made with `b2_create_key`, kept in `keys.json` beside the state (apart
    /// from it, so looking a key up never waits on the state's lock).
    pub created_keys: Mutex<Vec<CreatedKey>>,
}

/// A key made with `b2_create_key`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CreatedKey {
    pub key: Key,
    pub name: String,
    pub bucket_id: Option<String>,
    /// Milliseconds since the epoch, if the key expires.
    pub expires: Option<i64>,
}

/// An error reply in B2's shape: `{"status", "code", "message"}`.
#[derive(Debug)]
pub struct B2Error {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u32>,
}

impl B2Error {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> B2Error {
        B2Error {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> B2Error {
        B2Error::new(400, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> B2Error {
        B2Error::new(404, "not_found", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> B2Error {
        B2Error::new(401, "unauthorized", message)
    }
}

impl From<std::io::Error> for B2Error {
    fn from(e: std::io::Error) -> Self {
        B2Error::new(500, "internal_error", e.to_string())
    }
}

pub type Reply = Result<Response<Body>, B2Error>;

pub fn json_reply(v: Value) -> Reply {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json;charset=UTF-8")
        .header("cache-control", "max-age=0, no-cache, no-store")
        .body(Body::from(v.to_string()))
        .unwrap_or_default())
}

/// Backblaze's billing class of each call: A (uploads, deletes: free), B (downloads,
/// file info), C (listings, authorize, copies).
pub fn billing_class(op: &str) -> char {
    match op {
        "b2_download_file_by_id" | "b2_download_file_by_name" | "b2_get_file_info" => 'b',
        "b2_authorize_account"
        | "b2_copy_file"
        | "b2_copy_part"
        | "b2_create_bucket"
        | "b2_create_key"
        | "b2_delete_key"
        | "b2_get_download_authorization"
        | "b2_list_buckets"
        | "b2_list_file_names"
        | "b2_list_file_versions"
        | "b2_list_keys"
        | "b2_list_parts"
        | "b2_list_unfinished_large_files"
        | "b2_update_bucket" => 'c',
        _ => 'a',
    }
}

impl App {
    pub fn new(config: Config, base_url: String, disk: Disk) -> std::io::Result<App> {
        let state = disk.load()?;
        let created_keys = match std::fs::read(disk.root.join("keys.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(App {
            config,
            base_url,
            disk,
            state: Mutex::new(state),
            created_keys: Mutex::new(created_keys),
            tokens: Mutex::new(HashMap::new()),
            stats: Mutex::new(Stats::default()),
        })
    }

    pub fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn save(&self, s: &State) -> Result<(), B2Error> {
        self.disk.save(s).map_err(B2Error::from)
    }

    pub fn new_token(&self, kind: TokenKind) -> String {
        self.new_token_lasting(kind, self.config.token_ttl)
    }

    /// A token valid for `ttl` (a download authorization's own lifetime).
    pub fn new_token_lasting(&self, kind: TokenKind, ttl: Duration) -> String {
        let mut b = [0u8; 16];
        rand::Rng::fill(&mut rand::thread_rng(), &mut b);
        let t = format!("emu_{}", hex::encode(b));
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                t.clone(),
                Token {
                    kind,
                    expires: Instant::now() + ttl,
                },
            );
        t
    }

    /// Checks the `Authorization` header (or `?Authorization=`) and returns the token.
    pub fn auth(&self, headers: &HeaderMap, uri: &Uri) -> Result<Token, B2Error> {
        let from_query = uri.query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("Authorization=").map(url_decode))
        });
        let t = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or(from_query)
            .ok_or_else(|| {
                B2Error::new(401, "missing_auth_token", "authorization token is missing")
            })?;
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let tok = tokens
            .get(&t)
            .cloned()
            .ok_or_else(|| B2Error::new(401, "bad_auth_token", "invalid authorization token"))?;
        if tok.expires < Instant::now() {
            return Err(B2Error::new(
                401,
                "expired_auth_token",
                "authorization token has expired",
            ));
        }
        Ok(tok)
    }

    /// The account key behind an account token.
    pub fn account_key(&self, tok: &Token) -> Result<Key, B2Error> {
        match &tok.kind {
            TokenKind::Account { key_id } => self.key_by_id(key_id).ok_or_else(|| {
                B2Error::new(
                    401,
                    "bad_auth_token",
                    "the key of this token was deleted or expired",
                )
            }),
            _ => Err(B2Error::new(
                401,
                "bad_auth_token",
                "this token is for uploads only",
            )),
        }
    }

    /// A configured key, or a created one that has not expired.
    pub fn key_by_id(&self, id: &str) -> Option<Key> {
        if let Some(k) = self.config.keys.iter().find(|k| k.id == id) {
            return Some(k.clone());
        }
        let now = crate::api::now_millis();
        self.created_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|k| k.key.id == id && k.expires.is_none_or(|e| e > now))
            .map(|k| k.key.clone())
    }

    /// Writes the created keys (atomically, as the state).
    pub fn save_keys(&self, keys: &[CreatedKey]) -> std::io::Result<()> {
        let tmp = self.disk.tmp();
        std::fs::write(
            &tmp,
            serde_json::to_vec(keys).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, self.disk.root.join("keys.json"))
    }

    /// Refuses a call the key lacks the capability for (401 unauthorized, as B2 does).
    pub fn require(&self, key: &Key, op: &str) -> Result<(), B2Error> {
        match capability_for(op) {
            Some(cap) if !key.has(cap) => Err(B2Error::unauthorized(format!(
                "application key {} lacks capability {cap}",
                key.id
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a file name (or listing prefix) outside the key's name prefix.
    pub fn check_name(&self, name_prefix: &Option<String>, name: &str) -> Result<(), B2Error> {
        match name_prefix {
            Some(p) if !name.starts_with(p.as_str()) => Err(B2Error::unauthorized(format!(
                "application key is restricted to names starting with {p}"
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses access to a bucket the key is restricted away from.
    pub fn check_bucket(&self, key: &Key, bucket_name: &str) -> Result<(), B2Error> {
        match &key.bucket {
            Some(b) if b != bucket_name => Err(B2Error::unauthorized(format!(
                "application key is restricted to bucket {b}, not {bucket_name}"
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) fn count(&self, op: &str) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        *s.calls.entry(op.to_string()).or_default() += 1;
        *s.calls
            .entry(format!("class_{}", billing_class(op)))
            .or_default() += 1;
    }

    pub fn stats_json(&self) -> Value {
        let s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut calls = serde_json::Map::new();
        let mut classes = BTreeMap::new();
        for (k, v) in s.calls.iter().filter(|(k, _)| *k != FAULTS) {
            if let Some(c) = k.strip_prefix("class_") {
                classes.insert(c.to_string(), *v);
            } else {
                calls.insert(k.clone(), json!(v));
            }
        }
        json!({
            "calls": calls,
            "class_a": classes.get("a").copied().unwrap_or(0),
            "class_b": classes.get("b").copied().unwrap_or(0),
            "class_c": classes.get("c").copied().unwrap_or(0),
            "faults_injected": s.calls.get(FAULTS).copied().unwrap_or(0),
            "max_in_flight": s.max_in_flight,
        })
    }

    /// Injected faults: random failures (`--fail-rate`) as B2 shows them (503 with a
    /// Retry-After, 500 without, 429 asking for a second's pause), and the
    /// `X-Bz-Test-Mode` header.
    pub(crate) fn fault(&self, op: &str, headers: &HeaderMap) -> Option<B2Error> {
        let mut rng = rand::thread_rng();
        if self.config.fail_rate > 0.0
            && rand::Rng::gen_bool(&mut rng, self.config.fail_rate.min(1.0))
        {
            let (status, code, retry_after) = match rand::Rng::gen_range(&mut rng, 0..3) {
                0 => (503, "service_unavailable", Some(0)),
                1 => (500, "internal_error", None),
                _ => (429, "too_many_requests", Some(1)),
            };
            let mut e = B2Error::new(status, code, "injected failure (--fail-rate)");
            e.retry_after = retry_after;
            return Some(e);
        }
        let mode = headers
            .get("x-bz-test-mode")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let is_upload = matches!(op, "b2_upload_file" | "b2_upload_part");
        match mode {
            "fail_some_uploads" if is_upload && rand::Rng::gen_bool(&mut rng, 0.3) => {
                Some(B2Error::new(
                    503,
                    "service_unavailable",
                    "injected upload failure (fail_some_uploads)",
                ))
            }
            "expire_some_account_authorization_tokens"
                if op != "b2_authorize_account" && rand::Rng::gen_bool(&mut rng, 0.3) =>
            {
                Some(B2Error::new(
                    401,
                    "expired_auth_token",
                    "injected token expiry",
                ))
            }
            "force_cap_exceeded" if op != "b2_authorize_account" => {
                Some(B2Error::new(403, "cap_exceeded", "Cap exceeded."))
            }
            _ => None,
        }
    }
}

/// Where injected faults are counted (reported as `faults_injected`, not as a call).
pub(crate) const FAULTS: &str = "faults_injected";
