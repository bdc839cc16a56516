//! Repository locations as SPEC.md defines them.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_backend::{Backend, LocalBackend};

use crate::exit::{fail, ExitCode};

pub fn open_backend(location: &str) -> anyhow::Result<Arc<dyn Backend>> {
    if location.is_empty() {
        return Err(fail(ExitCode::Fatal, "no repository given: use -r/--repo or set CAIRN_REPOSITORY"));
    }
    if location.starts_with("b2:") || location.starts_with("rclone:") {
        return Err(fail(
            ExitCode::Fatal,
            format!("repository {location}: B2 locations are not supported by this build yet; use a local directory"),
        ));
    }
    let path = location.strip_prefix("local:").unwrap_or(location);
    Ok(Arc::new(LocalBackend::new(PathBuf::from(path))))
}
