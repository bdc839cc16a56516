//! Command line of `cairn-b2-emulator --listen 127.0.0.1:0 --data DIR`: prints
//! `listening on http://127.0.0.1:PORT` as its first line, then serves until SIGTERM.
//! The binary itself lives in the workspace's root package (so the CLI tests can run it).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::{serve, Config, Key};

#[derive(Parser, Debug)]
#[command(
    name = "cairn-b2-emulator",
    version,
    about = "A Backblaze B2 native-API server for tests"
)]
struct Args {
    /// Address to listen on (port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Directory holding the emulator's state
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "testkeyid")]
    key_id: String,
    #[arg(long, default_value = "testkey")]
    key: String,
    /// Another key restricted to one bucket, optionally with only some capabilities and
    /// a name prefix: ID:KEY:BUCKET[:CAP,CAP...[:PREFIX]] (an empty CAPS means all)
    #[arg(long = "restricted-key", value_name = "ID:KEY:BUCKET[:CAPS[:PREFIX]]")]
    restricted_keys: Vec<String>,
    /// Probability (0-1) that any call fails with 503
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Probability (0-1) that a reply is cut off mid-body (the call itself takes effect)
    #[arg(long, default_value_t = 0.0)]
    cut_rate: f64,
    /// Delay added to every call
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Lifetime of authorization tokens
    #[arg(long, default_value_t = 24 * 3600)]
    token_ttl_secs: u64,
    /// Smallest accepted non-last part of a large file
    #[arg(long, default_value_t = 5_000_000)]
    min_part_size: u64,
    /// Fault: listings page two names at a time and their cursor never advances
    #[arg(long)]
    stuck_cursor: bool,
    /// Fault: ranged downloads run on to the end of the file
    #[arg(long)]
    oversize_bodies: bool,
    /// For benchmarks of clients: keep only the name, size and SHA1 of uploads (and
    /// parts) larger than this, not their bytes; downloading or copying one fails
    #[arg(long, value_name = "BYTES")]
    discard_above: Option<u64>,
}

/// Runs the emulator with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    let a = Args::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn-b2-emulator: {e}");
            return 1;
        }
    };
    match rt.block_on(run(a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cairn-b2-emulator: {e}");
            1
        }
    }
}

async fn run(a: Args) -> Result<(), String> {
    let mut keys = vec![Key {
        id: a.key_id,
        secret: a.key,
        bucket: None,
        capabilities: None,
        name_prefix: None,
    }];
    for r in &a.restricted_keys {
        let mut it = r.splitn(5, ':');
        match (it.next(), it.next(), it.next(), it.next(), it.next()) {
            (Some(id), Some(k), Some(b), caps, prefix) => keys.push(Key {
                id: id.into(),
                secret: k.into(),
                bucket: Some(b.into()),
                capabilities: caps
                    .filter(|c| !c.is_empty())
                    .map(|c| c.split(',').map(str::to_owned).collect()),
                name_prefix: prefix.map(str::to_owned),
            }),
            _ => {
                return Err(format!(
                    "--restricted-key wants ID:KEY:BUCKET[:CAPS], got {r:?}"
                ))
            }
        }
    }
    let config = Config {
        keys,
        fail_rate: a.fail_rate,
        cut_rate: a.cut_rate,
        latency: Duration::from_millis(a.latency_ms),
        token_ttl: Duration::from_secs(a.token_ttl_secs),
        min_part_size: a.min_part_size,
        stuck_cursor: a.stuck_cursor,
        oversize_bodies: a.oversize_bodies,
        discard_above: a.discard_above,
    };
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", a.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {},
        }
    };
    serve(listener, config, &a.data, shutdown)
        .await
        .map_err(|e| format!("{}: {e}", a.data.display()))
}
