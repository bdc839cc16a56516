//! HTTP plumbing: routing, authentication, errors in B2's shape, fault injection and
//! the billing statistics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use serde_json::{json, Value};

use crate::store::{Disk, State};

/// One application key the emulator accepts.
#[derive(Clone, Debug)]
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
        | "b2_hide_file" => "writeFiles",
        "b2_delete_file_version" | "b2_cancel_large_file" => "deleteFiles",
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
        }
    }
}

pub const ACCOUNT_ID: &str = "emu0account";

#[derive(Clone, Debug)]
pub enum TokenKind {
    Account {
        key: usize,
    },
    Upload {
        bucket_id: String,
        name_prefix: Option<String>,
    },
    Part {
        file_id: String,
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

fn error_reply(e: &B2Error, head: bool) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json;charset=UTF-8")
        .header("cache-control", "max-age=0, no-cache, no-store");
    if let Some(s) = e.retry_after {
        b = b.header("retry-after", s.to_string());
    }
    let body = if head {
        Body::empty()
    } else {
        Body::from(json!({"status": e.status, "code": e.code, "message": e.message}).to_string())
    };
    b.body(body).unwrap_or_default()
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
        Ok(App {
            config,
            base_url,
            disk,
            state: Mutex::new(state),
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
                    expires: Instant::now() + self.config.token_ttl,
                },
            );
        t
    }

    /// Checks the `Authorization` header (or `?Authorization=`) and returns the token.
    pub fn auth(&self, headers: &HeaderMap, uri: &Uri) -> Result<Token, B2Error> {
        let from_query = uri.query().and_then(|q| {
            q.split('&').find_map(|kv| {
                kv.strip_prefix("Authorization=")
                    .map(crate::api::url_decode)
            })
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
    pub fn account_key(&self, tok: &Token) -> Result<&Key, B2Error> {
        match tok.kind {
            TokenKind::Account { key } => self
                .config
                .keys
                .get(key)
                .ok_or_else(|| B2Error::unauthorized("unknown key")),
            _ => Err(B2Error::new(
                401,
                "bad_auth_token",
                "this token is for uploads only",
            )),
        }
    }

    /// Refuses a call the key lacks the capability for (401 unauthorized, as B2 does).
    pub fn require(&self, key: &Key, op: &str) -> Result<(), B2Error> {
        match (capability_for(op), &key.capabilities) {
            (Some(cap), Some(caps)) if !caps.iter().any(|c| c == cap) => Err(
                B2Error::unauthorized(format!("application key {} lacks capability {cap}", key.id)),
            ),
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

    fn count(&self, op: &str) {
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

    /// Injected faults: random 503s (`--fail-rate`) and the `X-Bz-Test-Mode` header.
    fn fault(&self, op: &str, headers: &HeaderMap) -> Option<B2Error> {
        let mut rng = rand::thread_rng();
        if self.config.fail_rate > 0.0
            && rand::Rng::gen_bool(&mut rng, self.config.fail_rate.min(1.0))
        {
            let mut e = B2Error::new(503, "service_unavailable", "injected failure (--fail-rate)");
            e.retry_after = Some(0);
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
const FAULTS: &str = "faults_injected";

/// Splits a request into the B2 operation it names.
fn operation(method: &Method, path: &str) -> Option<(String, Option<u32>)> {
    if path.starts_with("/file/") {
        return Some(("b2_download_file_by_name".into(), None));
    }
    if path.starts_with("/b2api/upload_part/") {
        return Some(("b2_upload_part".into(), None));
    }
    if path.starts_with("/b2api/upload/") {
        return Some(("b2_upload_file".into(), None));
    }
    let rest = path.strip_prefix("/b2api/v")?;
    let (v, op) = rest.split_once('/')?;
    let v: u32 = v.parse().ok().filter(|v| (1..=4).contains(v))?;
    let _ = method;
    Some((op.to_string(), Some(v)))
}

/// The single entry point for every request.
pub async fn handle(
    app: Arc<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let path = uri.path().to_string();
    let reset = |app: &App| {
        let mut s = app.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.calls.clear();
        s.max_in_flight = s.in_flight;
    };
    if path == "/emulator/stats" {
        if method == Method::POST {
            reset(&app);
        }
        return json_reply(app.stats_json()).unwrap_or_default();
    }
    if path == "/emulator/stats/reset" {
        reset(&app);
        return json_reply(app.stats_json()).unwrap_or_default();
    }
    let head = method == Method::HEAD;
    let Some((op, version)) = operation(&method, &path) else {
        return error_reply(
            &B2Error::not_found(format!("no such endpoint {path}")),
            head,
        );
    };
    app.count(&op);
    let serving = InFlight::enter(app.clone());
    if !app.config.latency.is_zero() {
        tokio::time::sleep(app.config.latency).await;
    }
    if let Some(e) = app.fault(&op, &headers) {
        *app.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .entry(FAULTS.to_string())
            .or_default() += 1;
        // Drain the body so the client sees a response, not a reset.
        let _ = http_body_util::BodyExt::collect(body).await;
        return error_reply(&e, head);
    }
    let r = crate::api::dispatch(
        &app,
        &op,
        version.unwrap_or(1),
        &method,
        &uri,
        &headers,
        body,
    )
    .await;
    let resp = match r {
        Ok(resp) => resp,
        Err(e) => error_reply(&e, head),
    };
    if !head
        && app.config.cut_rate > 0.0
        && rand::Rng::gen_bool(&mut rand::thread_rng(), app.config.cut_rate.min(1.0))
    {
        *app.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .entry(FAULTS.to_string())
            .or_default() += 1;
        return cut_mid_body(resp).await;
    }
    // The request counts as served until its body has been sent (or dropped).
    let (parts, body) = resp.into_parts();
    let stream = futures_util::StreamExt::map(body.into_data_stream(), move |piece| {
        let _ = &serving;
        piece
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Counts one request as being served until dropped (whatever way the handler returns).
struct InFlight(Arc<App>);

impl InFlight {
    fn enter(app: Arc<App>) -> InFlight {
        let mut s = app.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        drop(s);
        InFlight(app)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

/// The reply with its full Content-Length announced but only the first half of the
/// body sent before the connection drops (`--cut-rate`).
async fn cut_mid_body(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    parts
        .headers
        .insert(axum::http::header::CONTENT_LENGTH, bytes.len().into());
    parts.headers.remove(axum::http::header::TRANSFER_ENCODING);
    let half = bytes.slice(..bytes.len() / 2);
    let pieces: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection cut (--cut-rate)",
        )),
    ];
    Response::from_parts(parts, Body::from_stream(futures_util::stream::iter(pieces)))
}
