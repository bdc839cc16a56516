//! `s3:` locations: `s3:https://HOST[:PORT]/BUCKET/PREFIX` for any S3-compatible
//! store, `s3:BUCKET/PREFIX` for AWS itself.
//!
//! Credentials are read as the AWS CLI reads them (AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE and the files under ~/.aws),
//! by OpenDAL's signer; cairn never sees them, so none can reach a log or a message.

/// Where an S3 repository is.
#[derive(Clone)]
pub struct S3Location {
    /// `https://host[:port]`; `None` for AWS (the region decides).
    pub endpoint: Option<String>,
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub region: String,
    /// Bucket in the path (`host/bucket/key`) rather than the host name; what
    /// self-hosted stores want, and the only form an IP address or localhost allows.
    pub path_style: bool,
    /// Keys given with the location (an rclone remote's); else the signer reads them
    /// as the AWS CLI does.
    pub keys: Option<(String, zeroize::Zeroizing<String>)>,
    /// How the user named it, when not `s3:...` (`rclone:REMOTE:BUCKET/PREFIX`).
    pub shown: Option<String>,
}

impl std::fmt::Debug for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Location")
            .field("location", &self.display())
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl S3Location {
    /// Parses `s3:...`; `None` when `location` is not an S3 location at all.
    pub fn parse(location: &str) -> Option<Result<S3Location, String>> {
        let rest = location.strip_prefix("s3:")?;
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<S3Location, String> {
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        let (endpoint, path) = match rest.split_once("://") {
            Some((scheme @ ("http" | "https"), after)) => {
                let (host, path) = after.split_once('/').unwrap_or((after, ""));
                if host.is_empty() {
                    return Err(format!("s3:{rest}: no host"));
                }
                (Some(format!("{scheme}://{host}")), path)
            }
            Some((scheme, _)) => {
                return Err(format!(
                    "s3:{rest}: endpoint scheme {scheme:?} is neither http nor https"
                ))
            }
            None => (None, rest),
        };
        let path = path.trim_matches('/');
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if !valid_bucket(bucket) {
            return Err(format!(
                "s3:{rest}: {bucket:?} is not a bucket name (3-63 lowercase letters, digits, dots and hyphens)"
            ));
        }
        if prefix
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
            && !prefix.is_empty()
        {
            return Err(format!(
                "s3:{rest}: the path inside the bucket has an empty, . or .. part"
            ));
        }
        let local = endpoint.as_deref().is_some_and(|e| {
            let host = e.split("://").nth(1).unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[')
        });
        let path_style =
            endpoint.is_some() && (local || std::env::var_os("CAIRN_S3_VIRTUAL_HOST").is_none());
        Ok(S3Location {
            region: region.unwrap_or_else(|| "us-east-1".into()),
            endpoint,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            path_style,
            keys: None,
            shown: None,
        })
    }

    /// `rclone:REMOTE:BUCKET/PREFIX` for a remote of type s3, from its section of
    /// rclone.conf: endpoint, region, keys (unless `env_auth`), addressing style.
    pub fn from_rclone(
        remote: &str,
        path: &str,
        conf: &std::collections::HashMap<String, String>,
    ) -> Result<S3Location, String> {
        let endpoint = conf.get("endpoint").filter(|e| !e.is_empty()).map(|e| {
            if e.contains("://") {
                e.trim_end_matches('/').to_string()
            } else {
                format!("https://{}", e.trim_end_matches('/'))
            }
        });
        let rest = match &endpoint {
            Some(e) => format!("{e}/{path}"),
            None => path.to_string(),
        };
        let mut loc = Self::parse_rest(&rest)?;
        if let Some(r) = conf.get("region").filter(|r| !r.is_empty()) {
            loc.region = r.clone();
        }
        // rclone's default is path style, except on AWS.
        if let Some(v) = conf.get("force_path_style") {
            loc.path_style = !v.eq_ignore_ascii_case("false");
        }
        let env_auth = conf
            .get("env_auth")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !env_auth {
            match (conf.get("access_key_id"), conf.get("secret_access_key")) {
                (Some(id), Some(secret)) if !id.is_empty() => {
                    loc.keys = Some((id.clone(), zeroize::Zeroizing::new(secret.clone())))
                }
                _ => {
                    return Err(format!(
                        "rclone remote {remote} has no access_key_id and secret_access_key (and no env_auth = true)"
                    ))
                }
            }
        }
        loc.shown = Some(format!("rclone:{remote}:{}", path.trim_matches('/')));
        Ok(loc)
    }

    /// The location as cairn shows it (never with a secret: it holds none).
    pub fn display(&self) -> String {
        if let Some(shown) = &self.shown {
            return shown.clone();
        }
        let mut s = String::from("s3:");
        if let Some(e) = &self.endpoint {
            s.push_str(e);
            s.push('/');
        }
        s.push_str(&self.bucket);
        if !self.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.prefix);
        }
        s
    }

    pub(crate) fn builder(&self) -> opendal::services::S3 {
        let mut b = opendal::services::S3::default()
            .bucket(&self.bucket)
            .root(&format!("/{}", self.prefix))
            .region(&self.region);
        b = match &self.endpoint {
            Some(e) => b.endpoint(e),
            None => b.endpoint(&format!("https://s3.{}.amazonaws.com", self.region)),
        };
        if !self.path_style {
            b = b.enable_virtual_host_style();
        }
        if let Some((id, secret)) = &self.keys {
            b = b.access_key_id(id).secret_access_key(secret);
        }
        if ec2_metadata_disabled() {
            b = b.disable_ec2_metadata();
        }
        b
    }
}

/// `AWS_EC2_METADATA_DISABLED=true`, as the AWS CLI reads it: no asking an EC2 instance
/// metadata service for credentials (off EC2 that is a wait on an unroutable address).
pub(crate) fn ec2_metadata_disabled() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// S3's bucket naming rules, loosely: what could never be a bucket is refused here
/// rather than sent.
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let l = S3Location::parse("s3:http://127.0.0.1:9000/bucket/a/b")
            .unwrap()
            .unwrap();
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str(), l.path_style),
            ("bucket", "a/b", true)
        );
        assert_eq!(l.display(), "s3:http://127.0.0.1:9000/bucket/a/b");
        let l = S3Location::parse("s3:my-bucket/cairn").unwrap().unwrap();
        assert_eq!(l.endpoint, None);
        assert!(!l.path_style);
        assert_eq!(l.display(), "s3:my-bucket/cairn");
        let l = S3Location::parse("s3:https://s3.example.com/b-1")
            .unwrap()
            .unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("b-1", ""));
        assert!(S3Location::parse("b2:x/y").is_none());
        for bad in [
            "s3:",
            "s3:Bad_Bucket/x",
            "s3:ftp://h/b",
            "s3:https:///b",
            "s3:bkt/a/../b",
            "s3:bkt/a//b",
        ] {
            assert!(S3Location::parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}
