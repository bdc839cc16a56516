//! Which endpoints and reply URLs may carry the application key or a token: never
//! plain http except to loopback or when the user says the network is trusted.

/// Whether cairn may send the application key to `endpoint`: over https always; over
/// plain http only to a loopback host (the emulator), or when the user says so with
/// `--insecure-http`, since Basic auth would carry the key in clear.
pub fn check_endpoint(endpoint: &str, insecure_http: bool) -> Result<(), String> {
    if endpoint.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(format!("B2 endpoint {endpoint:?} is not an http(s) URL"));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || insecure_http {
        return Ok(());
    }
    Err(format!(
        "refusing to send the B2 application key in clear to {endpoint}: use https, or pass --insecure-http if this network is trusted"
    ))
}

/// A URL from B2's reply may be used when it is https, or the endpoint itself was not
/// (the emulator on loopback, or `--insecure-http`): a reply cannot lower the protection.
pub(crate) fn reply_url_allowed(endpoint: &str, url: &str) -> bool {
    !endpoint.starts_with("https://") || url.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::{check_endpoint, reply_url_allowed};

    /// Issue 19.3: after an https authorize, plain-http API, download or upload URLs in
    /// the replies would carry the token in clear.
    #[test]
    fn an_https_endpoint_refuses_plain_http_urls_in_replies() {
        let https = "https://api.backblazeb2.com";
        assert!(reply_url_allowed(https, "https://api005.backblazeb2.com"));
        for bad in [
            "http://api005.backblazeb2.com",
            "http://127.0.0.1:1",
            "ftp://x",
            "",
            "//evil.com",
        ] {
            assert!(!reply_url_allowed(https, bad), "{bad}");
        }
        assert!(reply_url_allowed(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080"
        ));
    }

    #[test]
    fn plain_http_only_to_loopback_or_when_asked() {
        for ok in [
            "https://api.backblazeb2.com",
            "http://127.0.0.1:8080",
            "http://localhost:1/x",
            "http://[::1]:9",
            "http://127.9.9.9",
        ] {
            assert!(check_endpoint(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1:80",
            "http://127.0.0.1.evil.com",
            "ftp://x",
            "http://[2001:db8::1]:80",
        ] {
            assert!(check_endpoint(bad, false).is_err(), "{bad}");
        }
        assert!(check_endpoint("http://example.com", true).is_ok());
        assert!(check_endpoint("ftp://x", true).is_err());
    }
}
