//! HTTP plumbing: a request to an operation (`api`) through authentication, counting
//! and fault injection (`app`), errors in B2's shape, replies cut mid-body on demand.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use serde_json::json;

use crate::app::{json_reply, App, B2Error, FAULTS};

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
/// The emulator's own endpoints under `/emulator/`: statistics, and the test clock.
fn emulator_endpoint(app: &App, method: &Method, uri: &Uri) -> Option<Response<Body>> {
    let reset = |app: &App| {
        let mut s = app.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.calls.clear();
        s.max_in_flight = s.in_flight;
    };
    let reply = match uri.path() {
        "/emulator/stats" => {
            if method == Method::POST {
                reset(app);
            }
            app.stats_json()
        }
        "/emulator/stats/reset" => {
            reset(app);
            app.stats_json()
        }
        "/emulator/clock" => {
            let secs = uri
                .query()
                .and_then(|q| q.strip_prefix("advance_secs="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            json!({"now": crate::api::advance_clock(secs)})
        }
        _ => return None,
    };
    Some(json_reply(reply).unwrap_or_default())
}

pub async fn handle(
    app: Arc<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let path = uri.path().to_string();
    if let Some(resp) = emulator_endpoint(&app, &method, &uri) {
        return resp;
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
    // A pause before each piece: the status line and headers go out first even for a
    // small JSON reply, so the client sees a 200 whose body breaks off, as when a
    // connection drops mid-reply (not a connection closed before any answer).
    let paced = futures_util::StreamExt::then(futures_util::stream::iter(pieces), |p| async {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        p
    });
    Response::from_parts(parts, Body::from_stream(paced))
}
