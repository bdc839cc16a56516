//! cairn-b2-emulator: a Backblaze B2 native-API server for tests, on loopback.
//!
//! Design decisions:
//! - One catch-all handler routes by path, so every API version (`/b2api/v1`..`v4`)
//!   shares the operations and only the response shapes differ where B2's differ
//!   (v1 file objects carry `size`; authorize has flat, v3 and v4 shapes).
//! - It shares no types with cairn's B2 client: a field misspelled on one side cannot
//!   pass unnoticed on both. rclone, an independent client, is tested against it.
//! - Bodies stream to and from disk; metadata is one JSON file rewritten atomically,
//!   so state survives a restart.
//! - Faults on demand: `--fail-rate`, `--cut-rate` (replies cut mid-body), `--latency-ms` and B2's `X-Bz-Test-Mode` header;
//!   `/emulator/stats` counts calls and Backblaze billing classes.

pub mod api;
pub mod app;
pub mod cli;
pub mod server;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use app::{Config, Key};

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    data: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let disk = store::Disk::new(data)?;
    let app = Arc::new(app::App::new(config, format!("http://{addr}"), disk)?);
    let router = axum::Router::new().fallback(move |method, uri, headers, body| {
        let app = Arc::clone(&app);
        async move { server::handle(app, method, uri, headers, body).await }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
