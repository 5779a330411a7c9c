//! HTTP helpers: reading cookies, bodies and the error shape, and a raw TCP client for requests
//! an HTTP client would normalise.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{within, TestApp, FRAME_TIMEOUT};

/// The `hearth_session` value from a response's `Set-Cookie`, if any.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    set_cookie(res).and_then(|c| {
        c.strip_prefix("hearth_session=")
            .map(|rest| rest.split(';').next().unwrap_or_default().to_string())
    })
}

/// The whole `Set-Cookie` header for `hearth_session`, if any.
pub fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hearth_session="))
        .map(str::to_string)
}

/// The body as text.
pub async fn text(res: reqwest::Response) -> String {
    within(Duration::from_secs(15), "a response body", res.text())
        .await
        .expect("the body can be read")
}

/// The body as JSON (fails the test if it is not JSON).
pub async fn json_body(res: reqwest::Response) -> Value {
    let body = text(res).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body:?}"))
}

/// Assert the `{"error":{"code","message"}}` shape with this code; returns the body.
pub fn assert_error_shape(body: &Value, code: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert_eq!(obj.len(), 1, "error body has only `error`: {body}");
    let err = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("`error` is not an object: {body}"));
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("`error.message` is not a string: {body}"));
    assert!(!message.trim().is_empty(), "empty error message: {body}");
}

/// Assert status, JSON content type and the error shape with `code`; returns the body.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = text(res).await;
    assert_eq!(got, status, "status (expected {code}); body: {body}");
    assert!(
        ct.starts_with("application/json"),
        "content type of an error is JSON, got {ct:?}"
    );
    let v: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("error is not JSON ({e}): {body}"));
    assert_error_shape(&v, code);
    v
}

#[derive(Debug)]
pub struct RawResponse {
    /// Status code (0 when the server closed without answering).
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl RawResponse {
    /// First header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Write `request` bytes on a fresh TCP connection and read the answer until the server closes
/// (send `Connection: close`). Used where an HTTP client would normalise the request.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = within(FRAME_TIMEOUT, "a TCP connection", TcpStream::connect(addr))
        .await
        .expect("connects");
    // The server may answer and close before reading everything; a failed write is fine.
    let _ = within(FRAME_TIMEOUT, "the request to be written", async {
        stream.write_all(request).await?;
        stream.flush().await
    })
    .await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match within(
            Duration::from_secs(15),
            "the raw response",
            stream.read(&mut chunk),
        )
        .await
        {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    RawResponse::parse(&buf)
}

impl RawResponse {
    /// Parse what a server wrote (status 0 when it is not an HTTP answer at all).
    pub fn parse(buf: &[u8]) -> RawResponse {
        let text = String::from_utf8_lossy(buf);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return RawResponse {
                status: 0,
                headers: Vec::new(),
                body: text.into_owned(),
            };
        };
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        RawResponse {
            status,
            headers,
            body: body.to_string(),
        }
    }
}

/// `GET path` over raw TCP with `Host` and `Connection: close`.
pub async fn raw_get(addr: SocketAddr, path: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    raw_http(addr, req.as_bytes()).await
}

/// Assert the server still answers `/healthz` with `ok`.
pub async fn assert_healthy(app: &TestApp) {
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "ok");
}

/// Percent-encode everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A room name for a URL path (DM names have `:` and `,`).
pub fn encode_room(name: &str) -> String {
    urlencode(name)
}

/// A TLS client that trusts only `cert_pem` (the test's self-signed certificate), for HTTPS
/// and WSS to a server or reverse proxy under test.
pub fn tls_connector(cert_pem: &str) -> tokio_rustls::TlsConnector {
    use std::sync::Arc;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots
            .add(c.expect("a PEM certificate"))
            .expect("the certificate is accepted as a root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
