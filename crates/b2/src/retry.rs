//! The one retry loop every B2 request goes through: authorizing, API calls, downloads,
//! uploads and parts.
//!
//! Why one loop: three hand-written loops had drifted apart (one honoured Retry-After,
//! one did not). The policy differs only in what a 401 means: an API call re-authorizes
//! at once on an expired token, an upload takes a new upload URL (B2's advice for any
//! 401 there).

use std::future::Future;
use std::time::Duration;

use crate::B2Error;

/// What a failed attempt may be retried on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Policy {
    /// Authorizing and API calls: an expired token at once (the caller re-authorizes),
    /// 408/429/5xx and network errors after a pause.
    Api,
    /// Uploads to an upload URL: as `Api`, and any 401 after a pause (the next attempt
    /// takes a new upload URL).
    Upload,
}

impl Policy {
    /// The pause before attempt `attempt + 1`, or None if `err` is not worth retrying.
    fn delay(self, err: &B2Error, attempt: u32) -> Option<Duration> {
        if err.needs_reauth() {
            return Some(Duration::ZERO);
        }
        if err.is_transient() || (self == Policy::Upload && err.status() == Some(401)) {
            return Some(backoff(attempt, err.retry_after()));
        }
        None
    }
}

/// Why an attempt failed, as the attempt sees it.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The request failed; the policy decides whether to try again.
    Request(B2Error),
    /// A step before the request failed after its own retries (authorizing, getting an
    /// upload URL): trying again here would multiply the waits, so the loop stops.
    Before(B2Error),
}

impl From<B2Error> for Failed {
    /// `?` inside an attempt is a step before the request.
    fn from(e: B2Error) -> Failed {
        Failed::Before(e)
    }
}

/// Runs `attempt(n)` for n = 0, 1, ... until it succeeds, fails in a way `policy` does
/// not retry, or `max_attempts` attempts have failed; returns the last error then.
pub(crate) async fn retry<T, F, Fut>(
    op: &str,
    policy: Policy,
    max_attempts: u32,
    mut attempt: F,
) -> Result<T, B2Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failed>>,
{
    let mut n = 0;
    // A token that expired is not a failure of the request: authorizing again does not
    // use up an attempt (a pause for a 429 can outlast a short token), up to as many
    // re-authorizations again.
    let mut reauths = 0;
    loop {
        let err = match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(Failed::Before(e)) => return Err(e),
            Err(Failed::Request(e)) => e,
        };
        if err.needs_reauth() && reauths < max_attempts {
            reauths += 1;
            tracing::debug!("{op}: {err}; authorizing again");
            continue;
        }
        n += 1;
        let Some(pause) = policy.delay(&err, n).filter(|_| n < max_attempts) else {
            return Err(err);
        };
        // Shown at -v: a dead network is otherwise half a minute of silence.
        tracing::info!(
            "{op}: {err}; attempt {n} of {max_attempts} failed, retrying in {pause:.1?}"
        );
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Exponential backoff with jitter, capped at 5 s; a server's Retry-After (capped at a
/// minute) wins.
pub(crate) fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    if let Some(s) = retry_after {
        return Duration::from_secs(s.min(60));
    }
    let base = 100u64.saturating_mul(1 << attempt.min(8)).min(5000);
    let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=base / 2);
    Duration::from_millis(base / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api(status: u16, code: &str) -> B2Error {
        B2Error::Api {
            status,
            code: code.into(),
            message: String::new(),
            retry_after: Some(0),
        }
    }

    /// Counts the attempts `retry` makes when every attempt fails with `err`.
    async fn attempts(policy: Policy, err: fn() -> Failed) -> u32 {
        let n = AtomicU32::new(0);
        let r: Result<(), _> = retry("op", policy, 4, |_| {
            n.fetch_add(1, Ordering::Relaxed);
            async move { Err(err()) }
        })
        .await;
        assert!(r.is_err());
        n.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn what_each_policy_retries() {
        let table: [(Policy, fn() -> Failed, u32); 8] = [
            (Policy::Api, || Failed::Request(api(503, "x")), 4),
            (Policy::Api, || Failed::Request(api(429, "x")), 4),
            (
                Policy::Api,
                || Failed::Request(api(401, "expired_auth_token")),
                8,
            ),
            (Policy::Api, || Failed::Request(api(401, "unauthorized")), 1),
            (Policy::Api, || Failed::Request(api(400, "bad_request")), 1),
            (
                Policy::Upload,
                || Failed::Request(api(401, "unauthorized")),
                4,
            ),
            (
                Policy::Upload,
                || Failed::Request(B2Error::Network("cut".into())),
                4,
            ),
            (Policy::Api, || Failed::Before(api(503, "x")), 1),
        ];
        for (policy, err, want) in table {
            assert_eq!(attempts(policy, err).await, want, "{policy:?} {:?}", err());
        }
    }

    #[tokio::test]
    async fn a_success_after_failures_is_returned() {
        let r = retry("op", Policy::Api, 5, |n| async move {
            if n < 2 {
                Err(Failed::Request(api(500, "x")))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }
}
