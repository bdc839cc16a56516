//! The HTTP client under every OpenDAL call: OpenDAL's own reqwest transport, with
//! two things the AWS CLI user expects.
//!
//! - Roots from `AWS_CA_BUNDLE` as well as the system's (a company's own CA, a
//!   self-hosted MinIO's).
//! - A certificate the client refuses is a final answer: OpenDAL marks every failed
//!   send as temporary, so its retry layer would spend a minute asking again before
//!   saying what was wrong.

use cairn_backend::{BackendError, ErrorKind};
use opendal::{Buffer, HttpBody, HttpTransport};
use opendal_http_transport_reqwest::ReqwestTransport;

pub(crate) struct Transport(ReqwestTransport);

/// The client under [`Transport`], also used for the calls OpenDAL does not make.
pub(crate) fn client(location: &str) -> Result<reqwest_opendal::Client, BackendError> {
    Transport::builder(location)?
        .build()
        .map_err(|e| BackendError::new(ErrorKind::Other, location, format!("HTTP client: {e}")))
}

impl Transport {
    /// A client for `location`; an AWS_CA_BUNDLE that cannot be read or holds no
    /// certificate is an error naming it, never a silent fall-back to the usual roots.
    pub(crate) fn new(client: reqwest_opendal::Client) -> Transport {
        Transport(ReqwestTransport::new(client))
    }

    fn builder(location: &str) -> Result<reqwest_opendal::ClientBuilder, BackendError> {
        let mut builder =
            reqwest_opendal::Client::builder().connect_timeout(std::time::Duration::from_secs(30));
        if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
            let shown = std::path::Path::new(&path).display().to_string();
            let fail = |why: String| {
                BackendError::new(
                    ErrorKind::Other,
                    location,
                    format!("AWS_CA_BUNDLE={shown}: {why}"),
                )
            };
            let pem = std::fs::read(&path).map_err(|e| fail(format!("cannot read it: {e}")))?;
            let certs = reqwest_opendal::Certificate::from_pem_bundle(&pem)
                .map_err(|e| fail(format!("not a PEM certificate bundle: {e}")))?;
            if certs.is_empty() {
                return Err(fail("holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        Ok(builder)
    }
}

impl HttpTransport for Transport {
    async fn fetch(&self, req: http::Request<Buffer>) -> opendal::Result<http::Response<HttpBody>> {
        self.0.fetch(req).await.map_err(|e| {
            if tls_refused(&e) {
                e.set_permanent()
            } else {
                e
            }
        })
    }
}

/// Whether the TLS handshake failed for good: on the server's certificate (rustls:
/// "invalid peer certificate: UnknownIssuer", "... NotValidForName", expired ones), or
/// because the other end does not speak TLS at all (an http port named https).
pub(crate) fn tls_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        let m = s.to_string();
        if m.contains("invalid peer certificate") || m.contains("received corrupt message") {
            return true;
        }
        source = s.source();
    }
    false
}
