//! Storage beyond local directories and B2, through Apache OpenDAL (as rustic does):
//! S3-compatible object stores today (AWS S3, Wasabi, R2, MinIO, Ceph, Garage).
//!
//! OpenDAL's operators are async; cairn's `Backend` is blocking, called from rayon and
//! plain threads. As for B2, each backend owns a small tokio runtime and blocks on it:
//! no caller needs a runtime of its own. Retries with backoff and jitter on 5xx,
//! throttling and timeouts come from OpenDAL's retry layer.

mod backend;
mod lock;
mod meta;
mod mtime;
mod s3;
mod signed;
pub mod testing;
mod transport;

pub use backend::OpendalBackend;
pub use s3::S3Location;
