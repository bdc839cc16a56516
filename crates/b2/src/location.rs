//! [`B2Location`]: where a B2 repository lives and the key that reaches it, from a
//! `b2:bucket/prefix` location, an rclone remote, or the environment.

use zeroize::Zeroizing;

use crate::client::Credentials;

pub const DEFAULT_ENDPOINT: &str = "https://api.backblazeb2.com";

/// Where a B2 repository lives and how to reach it.
#[derive(Clone, Debug)]
pub struct B2Location {
    pub bucket: String,
    /// Object-name prefix inside the bucket, without a trailing `/` (may be empty).
    pub prefix: String,
    pub endpoint: String,
    pub creds: Credentials,
    /// rclone's `hard_delete = true` for this remote: deletions remove the file rather
    /// than hide it.
    pub hard_delete: bool,
}

fn split_bucket(rest: &str) -> Result<(String, String), String> {
    let rest = rest.trim_matches('/');
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("no bucket named".into());
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// A secret variable, wherever the binary keeps it (see `cairn_backend::secret_env`).
fn secret(k: &str) -> Option<Zeroizing<String>> {
    cairn_backend::secret_env::get(k).filter(|v| !v.is_empty())
}

/// Credentials from the profile (`[b2]`), used where the environment has none.
static PROFILE_CREDENTIALS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();

/// Sets the credentials `b2:` locations use when B2_APPLICATION_KEY_ID and
/// B2_APPLICATION_KEY are not set (the environment wins, as for every profile value).
/// Kept in memory, never put in the environment children inherit.
pub fn set_profile_credentials(creds: Credentials) {
    let _ = PROFILE_CREDENTIALS.set(creds);
}

/// The `[remote]` section of an rclone config file (`RCLONE_CONFIG`, else
/// ~/.config/rclone/rclone.conf), as key -> value, whatever the remote's type.
pub fn rclone_remote(remote: &str) -> Result<std::collections::HashMap<String, String>, String> {
    let path = env("RCLONE_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            env("HOME").map(|h| std::path::Path::new(&h).join(".config/rclone/rclone.conf"))
        })
        .ok_or("cannot find rclone's config: set RCLONE_CONFIG")?;
    // The file holds keys of every remote in it: wiped from memory once parsed.
    let text = Zeroizing::new(
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let mut section = None;
    let mut out = std::collections::HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            section = Some(line[1..line.len() - 1].trim().to_string());
        } else if section.as_deref() == Some(remote) {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(format!("{}: no section [{remote}]", path.display()));
    }
    Ok(out)
}

/// [`rclone_remote`] of a remote that must be of type b2.
fn rclone_section(remote: &str) -> Result<std::collections::HashMap<String, String>, String> {
    let out = rclone_remote(remote)?;
    match out.get("type").map(String::as_str) {
        Some("b2") => Ok(out),
        other => Err(format!(
            "rclone remote {remote} is of type {}, not b2 (cairn reaches b2, s3 and sftp remotes)",
            other.unwrap_or("(none)")
        )),
    }
}

impl B2Location {
    /// Parses `b2:BUCKET[/PREFIX]` or `rclone:REMOTE:BUCKET[/PREFIX]`. The endpoint comes
    /// from `endpoint` (flag or CAIRN_B2_ENDPOINT), else rclone's `endpoint`, else B2's.
    pub fn parse(location: &str, endpoint: Option<&str>) -> Result<B2Location, String> {
        if let Some(rest) = location.strip_prefix("b2:") {
            let (bucket, prefix) = split_bucket(rest)?;
            let (id, key) =
                match (env("B2_APPLICATION_KEY_ID"), secret("B2_APPLICATION_KEY")) {
                    (Some(i), Some(k)) => (i, k),
                    _ => match (env("B2_ACCOUNT_ID"), secret("B2_ACCOUNT_KEY")) {
                        (Some(i), Some(k)) => (i, k),
                        _ => match PROFILE_CREDENTIALS.get() {
                            Some(c) => (c.key_id.clone(), c.key.clone()),
                            None => return Err(
                                "no B2 credentials: set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY (or [b2] in the profile)"
                                    .into(),
                            ),
                        },
                    },
                };
            let creds = Credentials { key_id: id, key };
            return Ok(B2Location {
                bucket,
                prefix,
                endpoint: endpoint.unwrap_or(DEFAULT_ENDPOINT).to_string(),
                creds,
                hard_delete: false,
            });
        }
        if let Some(rest) = location.strip_prefix("rclone:") {
            let (remote, path) = rest
                .split_once(':')
                .ok_or("expected rclone:REMOTE:BUCKET/PREFIX")?;
            let conf = rclone_section(remote)?;
            let (bucket, prefix) = split_bucket(path)?;
            let creds = Credentials {
                key_id: conf
                    .get("account")
                    .cloned()
                    .ok_or(format!("rclone remote {remote} has no account"))?,
                key: Zeroizing::new(
                    conf.get("key")
                        .cloned()
                        .ok_or(format!("rclone remote {remote} has no key"))?,
                ),
            };
            let endpoint = endpoint
                .map(str::to_owned)
                .or_else(|| conf.get("endpoint").cloned())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
            let hard_delete = conf
                .get("hard_delete")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            return Ok(B2Location {
                bucket,
                prefix,
                endpoint,
                creds,
                hard_delete,
            });
        }
        Err(format!("{location:?} is not a B2 location"))
    }

    pub fn display(&self) -> String {
        if self.prefix.is_empty() {
            format!("b2:{}", self.bucket)
        } else {
            format!("b2:{}/{}", self.bucket, self.prefix)
        }
    }
}
