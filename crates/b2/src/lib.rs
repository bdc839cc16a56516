//! Native Backblaze B2: an async client and the repository backend built on it.
//!
//! Design decisions:
//! - The client is async (reqwest + tokio, rustls, no OpenSSL); [`B2Backend`] owns a
//!   runtime and implements the synchronous `Backend` trait with `block_on`, so the
//!   engine stays threads and channels.
//! - Every request goes through one retry loop (`retry::retry`): expired or bad
//!   tokens re-authorize and repeat, 408/429/5xx and network errors back off
//!   exponentially with jitter (honouring Retry-After), an upload failure drops its upload
//!   URL. Permanent errors fail at once with one line naming the bucket.
//! - Large files have one uploader (`upload::Client::upload_large`), fed a stream of
//!   parts whether they come from memory or are read range by range from a source.
//! - Credentials, tokens and URLs carrying tokens never reach `Debug`, logs or errors.
//! - Transactions are counted by Backblaze's billing class, for ship and sync summaries.

mod backend;
mod client;
mod endpoint;
mod error;
mod limit;
mod listing;
mod location;
mod reply;
mod retry;
mod upload;

pub use backend::B2Backend;
pub use client::{Client, Credentials, FileVersion, Transactions};
pub use endpoint::check_endpoint;
pub use error::B2Error;
pub use limit::RateLimit;
pub use location::{rclone_remote, set_profile_credentials, B2Location};
pub use reply::decode_replies;
