//! Bandwidth limits (`--limit-upload`, `--limit-download`): a laptop on a home line
//! stays usable while a ship runs. Bytes are paced in pieces: each piece waits for its
//! slot on a shared timeline, so all transfers together stay under the rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pieces a limited body is cut into: small enough to pace smoothly.
pub const PIECE: usize = 64 * 1024;

#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: f64,
    /// When the next byte may go.
    next: Mutex<Instant>,
}

impl RateLimit {
    pub fn new(bytes_per_sec: u64) -> RateLimit {
        RateLimit {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits until `n` more bytes fit under the rate, and books them.
    pub async fn take(&self, n: usize) {
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
            start.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}
