//! Raw HTTP over TCP: request lines, heads, bodies and pipelines an HTTP client would never
//! send, each judged on the bytes that come back.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::common::Rng;
use crate::judge::{find, judge, parse_response, Expect, Reply, Tally};
use crate::mutate::mutate;
use crate::{assert_still_serves, session, start, Phase, ANSWER, MUTANTS};

use Expect::*;

const JSON_CT: &str = "Content-Type: application/json\r\n";
/// A well-formed sign-in body (for an account that does not exist).
const CREDS: &[u8] = br#"{"username":"rawuser","password":"correct horse battery staple"}"#;

pub async fn phase(p: Phase<'_>, seed: u64) {
    request_lines(p).await;
    oversize_heads(p).await;
    methods(p).await;
    traversal(p).await;
    content_types(p).await;
    body_sizes(p).await;
    chunked_bodies(p).await;
    ambiguous_lengths(p).await;
    // Headers that are not visible ASCII: never a server error (their exact codes are
    // checked by `headers_that_are_not_text_are_bad_requests`).
    for (label, bytes, _) in non_text_headers(p.cookie) {
        raw_case(p, &format!("non-text {label}"), &bytes, Documented).await;
    }
    pipelined(p).await;
    truncated_body(p).await;
    generated(p, seed).await;
}

/// A header the application reads that is not visible ASCII makes a malformed request: 400
/// (or the code of the check it fails), never 405 `method_not_allowed` on a route whose
/// method is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_are_not_text_are_bad_requests() {
    let mut app = start(|_| {}).await;
    let cookie = session(&app, "headers").await;
    let tally = Tally::default();
    let p = Phase {
        app: &app,
        tally: &tally,
        cookie: &cookie,
    };
    for (label, bytes, codes) in non_text_headers(&cookie) {
        raw_case(p, label, &bytes, OneOf(codes)).await;
    }
    assert_still_serves(&app, "afterheaders").await;
    app.stop().await;
    tally.assert_clean("");
}

// ---------------------------------------------------------------------------------------------
// Talking over TCP

/// Write `bytes` (ignoring a refused write: the server may close early), optionally half-close,
/// and read until the server closes.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Result<Vec<u8>, String> {
    let mut s = connect(addr).await?;
    let _ = s.write_all(bytes).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut buf = Vec::new();
    match timeout(ANSWER, s.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => Ok(buf),
        Ok(Err(e)) if buf.is_empty() => Err(format!("read: {e}")),
        Ok(Err(_)) => Ok(buf),
        Err(_) => Err(format!(
            "no end of answer within {ANSWER:?} ({} bytes so far)",
            buf.len()
        )),
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    timeout(ANSWER, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))
}

/// Send `bytes` on a new connection and read one response: as soon as it is complete, or at
/// the end of the connection.
///
/// With `grace`, a request the server is still waiting on after that long (a mutated head may
/// promise a body it lacks) is ended with a half-close, after which the server must answer or
/// close promptly.
async fn raw_request(
    addr: SocketAddr,
    bytes: &[u8],
    grace: Option<Duration>,
) -> Result<Reply, String> {
    let mut s = connect(addr).await?;
    let _ = s.write_all(bytes).await;
    let now = tokio::time::Instant::now();
    let deadline = now + ANSWER;
    let mut half_close_at = grace.map(|g| now + g);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some((reply, _)) = parse_response(&buf, false)? {
            return Ok(reply);
        }
        let wake = half_close_at.unwrap_or(deadline).min(deadline);
        match tokio::time::timeout_at(wake, s.read(&mut chunk)).await {
            Err(_) if half_close_at.is_some() && wake < deadline => {
                half_close_at = None;
                let _ = s.shutdown().await;
            }
            Err(_) => {
                return Err(format!(
                    "no complete answer within {ANSWER:?} ({} bytes so far)",
                    buf.len()
                ))
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return match parse_response(&buf, true)? {
                    Some((reply, _)) => Ok(reply),
                    None => Err("closed without an answer".into()),
                }
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One raw request, judged; returns the answer for further checks.
async fn raw_case(p: Phase<'_>, label: &str, bytes: &[u8], expect: Expect) -> Option<Reply> {
    p.tally.http(1);
    let grace = matches!(expect, Protocol | Refused).then_some(Duration::from_millis(500));
    let reply = raw_request(p.app.addr, bytes, grace).await;
    let copy = reply.as_ref().ok().cloned();
    judge(p.tally, label, reply, expect);
    copy
}

/// `METHOD TARGET HTTP/1.1` with a Host, `Connection: close` and extra header lines.
fn request(method: &str, target: &str, extra: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
        .into_bytes()
}

/// [`request`] with a body and its `Content-Length`.
fn with_body(method: &str, target: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------------------------
// Headers that are not text

/// A label, the request, and the codes that would be right for it (`"ok"`: a success is fine).
type HeaderCase = (&'static str, Vec<u8>, &'static [&'static str]);

/// Requests with a header the application reads that is not visible ASCII (raw bytes
/// 0x80–0xFF), with the codes that would be right for each.
fn non_text_headers(cookie: &str) -> Vec<HeaderCase> {
    let auth_cookie = format!("Cookie: hearth_session={cookie}\r\n");
    let mut cases = content_and_origin_headers(&auth_cookie);
    cases.extend(credential_headers());
    cases.extend(websocket_headers(&auth_cookie));
    // The strings use the chars U+0080..U+00FF to stand for the raw bytes 0x80..0xFF.
    cases
        .into_iter()
        .map(|(label, bytes, codes)| {
            let raw = String::from_utf8_lossy(&bytes)
                .chars()
                .map(|c| c as u32 as u8)
                .collect();
            (label, raw, codes)
        })
        .collect()
}

fn content_and_origin_headers(auth_cookie: &str) -> Vec<HeaderCase> {
    let name = br#"{"name":"x"}"#;
    vec![
        (
            "Host on /config.js",
            b"GET /config.js HTTP/1.1\r\nHost: \xc3\xbf\r\nConnection: close\r\n\r\n".to_vec(),
            &["bad_request"],
        ),
        (
            "Content-Type on login",
            with_body(
                "POST",
                "/api/login",
                "Content-Type: application/\u{ff}\u{fe}json\r\n",
                CREDS,
            ),
            &["bad_request", "unsupported_media_type"],
        ),
        (
            "Origin on register",
            with_body(
                "POST",
                "/api/register",
                &format!("{JSON_CT}Origin: http://\u{ff}\r\n"),
                CREDS,
            ),
            &["bad_request", "bad_origin"],
        ),
        (
            "Origin on tokens",
            with_body(
                "POST",
                "/api/tokens",
                &format!("{JSON_CT}{auth_cookie}Origin: \u{ff}\u{fe}\r\n"),
                name,
            ),
            &["bad_request", "bad_origin"],
        ),
        (
            "Referer on tokens",
            with_body(
                "POST",
                "/api/tokens",
                &format!("{JSON_CT}{auth_cookie}Referer: http://\u{ff}/\r\n"),
                name,
            ),
            &["bad_request", "bad_origin"],
        ),
    ]
}

fn credential_headers() -> Vec<HeaderCase> {
    vec![
        (
            "Cookie on logout",
            request(
                "POST",
                "/api/logout",
                "Origin: http://x\r\nCookie: hearth_session=\u{ff}\u{fe}\r\n",
            ),
            &["bad_request", "unauthorized"],
        ),
        (
            "Authorization on tokens",
            with_body(
                "POST",
                "/api/tokens",
                &format!("{JSON_CT}Authorization: Bearer \u{ff}\u{fe}\u{80}\r\n"),
                br#"{"name":"x"}"#,
            ),
            &["bad_request", "unauthorized"],
        ),
        (
            "Cookie on /api/me",
            request("GET", "/api/me", "Cookie: hearth_session=\u{ff}\u{fe}\r\n"),
            &["bad_request", "unauthorized"],
        ),
        (
            "Authorization on /api/me",
            request(
                "GET",
                "/api/me",
                "Authorization: Bearer \u{ff}\u{fe}\u{80}\r\n",
            ),
            &["bad_request", "unauthorized"],
        ),
        (
            "If-None-Match on /",
            request("GET", "/", "If-None-Match: \"\u{ff}\"\r\n"),
            &["ok", "bad_request"],
        ),
    ]
}

fn websocket_headers(auth_cookie: &str) -> Vec<HeaderCase> {
    let upgrade = "Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\n";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    vec![
        (
            "Upgrade on /ws",
            request(
                "GET",
                "/ws",
                "Upgrade: web\u{ff}socket\r\nConnection: upgrade\r\n",
            ),
            &["bad_request"],
        ),
        (
            "Origin on /ws",
            request(
                "GET",
                "/ws",
                &format!("{auth_cookie}{upgrade}{key}Origin: \u{ff}\r\n"),
            ),
            &["bad_request", "bad_origin"],
        ),
        (
            "Cookie on /ws",
            request(
                "GET",
                "/ws",
                &format!("{upgrade}{key}Cookie: hearth_session=\u{ff}\r\n"),
            ),
            &["bad_request", "unauthorized"],
        ),
        (
            "Sec-WebSocket-Key on /ws",
            request(
                "GET",
                "/ws",
                &format!("{auth_cookie}{upgrade}Sec-WebSocket-Key: \u{ff}\u{80}\r\n"),
            ),
            &["ok", "bad_request"],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Request lines and heads

/// Request lines the parser must refuse (or answer as an application error).
async fn request_lines(p: Phase<'_>) {
    let lines: [&[u8]; 30] = [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n  folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Cr: a\rb\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\r\n\r\n\r\n",
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://evil.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET ../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ];
    for (i, bytes) in lines.iter().enumerate() {
        raw_case(p, &format!("raw request line #{i}"), bytes, Protocol).await;
    }
}

/// Heads over 16 KiB are refused (431, or the connection closed), never served; a head just
/// under the limit is still served.
async fn oversize_heads(p: Phase<'_>) {
    let many_headers: String = (0..600)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(24)))
        .collect();
    let oversize = [
        (
            "a 20 KiB path",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20 * 1024)),
        ),
        (
            "a 17 KiB header",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "x".repeat(17 * 1024)
            ),
        ),
        (
            "600 headers",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
        ),
        (
            "a 20 KiB cookie",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
                "a=b; ".repeat(4000)
            ),
        ),
        (
            "a 1 MiB header",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "x".repeat(1 << 20)
            ),
        ),
    ];
    for (label, head) in &oversize {
        raw_case(p, label, head.as_bytes(), Refused).await;
    }
    let near = format!("X-Pad: {}\r\n", "p".repeat(14 * 1024));
    let head = request("GET", "/healthz", &near);
    raw_case(p, "a 14 KiB head", &head, Status(200)).await;
}

/// Methods, known and unknown, on every kind of route.
async fn methods(p: Phase<'_>) {
    for method in [
        "PUT", "DELETE", "PATCH", "TRACE", "FOO", "get", "G.E.T", "PROPFIND", "BREW",
    ] {
        for path in [
            "/",
            "/api/me",
            "/api/register",
            "/healthz",
            "/ws",
            "/api/rooms/general/messages",
        ] {
            raw_case(
                p,
                &format!("{method} {path}"),
                &request(method, path, ""),
                OneOf(&[
                    "method_not_allowed",
                    "not_found",
                    "unauthorized",
                    "bad_request",
                ]),
            )
            .await;
        }
    }
}

/// Path traversal and odd asset paths: never a file outside the embedded UI.
async fn traversal(p: Phase<'_>) {
    let paths = [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/Cargo.toml",
        "/%252e%252e/x",
        "/..%5cCargo.toml",
        "/..%2fCargo.toml",
        "/js/%2e%2e/%2e%2e/Cargo.toml",
        "/js/../../Cargo.toml",
        "/js/./app.js",
        "/.%2e/Cargo.toml",
        "/%c0%ae%c0%ae/Cargo.toml",
        "/index.html%00",
        "/index.html%00.js",
        "/%00",
        "//etc/passwd",
        "/js//app.js",
        "/./index.html",
        "/src/main.rs",
        "/Cargo.toml",
        "/.git/config",
        "/assets/index.html",
        "/index.html/",
        "/%2fetc%2fpasswd",
        "/%5c..%5c..%5cCargo.toml",
        "/....//Cargo.toml",
        "/js/%2e%2e%2f%2e%2e%2fCargo.toml",
    ];
    for path in paths {
        let label = format!("GET {path}");
        let expect = Error(404, "not_found");
        if let Some(r) = raw_case(p, &label, &request("GET", path, ""), expect).await {
            let body = String::from_utf8_lossy(&r.body);
            if body.contains("[package]") || body.contains("root:") || body.contains("fn main") {
                p.tally
                    .problem(format!("GET {path}: leaked a file: {body:.80}"));
            }
        }
    }
    // Raw backslashes and dots the URI parser may refuse outright.
    for path in [
        "/..\\Cargo.toml",
        "/js\\..\\..\\Cargo.toml",
        "/\\\\server\\share",
    ] {
        raw_case(
            p,
            &format!("GET {path}"),
            &request("GET", path, ""),
            OneOf(&["not_found", "bad_request"]),
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// Wrong or missing content types; parameters and case on the right one are fine.
async fn content_types(p: Phase<'_>) {
    for (label, extra) in [
        ("no content type", ""),
        ("text/plain", "Content-Type: text/plain\r\n"),
        (
            "form",
            "Content-Type: application/x-www-form-urlencoded\r\n",
        ),
        (
            "multipart",
            "Content-Type: multipart/form-data; boundary=x\r\n",
        ),
        ("jsonx", "Content-Type: application/jsonx\r\n"),
        ("json-ish", "Content-Type: application/json-patch+json\r\n"),
        ("empty ct", "Content-Type: \r\n"),
    ] {
        let mut bytes = with_body("POST", "/api/login", "", CREDS);
        // Splice the header in after the request line.
        let at = find(&bytes, b"\r\n").expect("request line") + 2;
        let hdr: Vec<u8> = extra.chars().map(|c| c as u32 as u8).collect();
        bytes.splice(at..at, hdr);
        raw_case(
            p,
            &format!("login with {label}"),
            &bytes,
            OneOf(&["unsupported_media_type", "bad_request"]),
        )
        .await;
    }
    let ct = "Content-Type: APPLICATION/JSON; charset=utf-8\r\n";
    raw_case(
        p,
        "Content-Type with parameters",
        &with_body("POST", "/api/login", ct, CREDS),
        Error(401, "invalid_credentials"),
    )
    .await;
}

/// Bodies over 16 KiB are refused on the declared length, before they are read; one of
/// exactly 16 KiB is read and parsed.
async fn body_sizes(p: Phase<'_>) {
    for len in [16 * 1024 + 1, 1u64 << 20, 1u64 << 40] {
        raw_case(
            p,
            &format!("declared body of {len} bytes"),
            format!(
                "POST /api/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{JSON_CT}Content-Length: {len}\r\n\r\n"
            )
            .as_bytes(),
            Error(413, "payload_too_large"),
        )
        .await;
    }
    let deep = "[".repeat(100_000);
    raw_case(
        p,
        "100k [ body",
        &with_body("POST", "/api/register", JSON_CT, deep.as_bytes()),
        OneOf(&["payload_too_large"]),
    )
    .await;
    let mut at_limit = br#"{"username":"limit","password":""#.to_vec();
    at_limit.resize(16 * 1024 - 2, b'x');
    at_limit.extend_from_slice(b"\"}");
    raw_case(
        p,
        "a body of exactly 16 KiB",
        &with_body("POST", "/api/register", JSON_CT, &at_limit),
        Error(400, "password_too_long"),
    )
    .await;
}

/// Chunked bodies: refused for want of a length (411), or read up to the same 16 KiB limit.
async fn chunked_bodies(p: Phase<'_>) {
    const REFUSED: &[&str] = &["length_required", "bad_request"];
    let valid = br#"{"username":"chunky","password":"correct horse battery staple"}"#;
    let valid_chunked = [
        format!("{:x}\r\n", valid.len()).into_bytes(),
        valid.to_vec(),
        b"\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    let mut big_chunked = Vec::new();
    for _ in 0..20 {
        big_chunked.extend_from_slice(b"400\r\n");
        big_chunked.extend_from_slice(&[b' '; 1024]);
        big_chunked.extend_from_slice(b"\r\n");
    }
    big_chunked.extend_from_slice(b"0\r\n\r\n");
    let cases: [(&[u8], &'static [&'static str]); 7] = [
        (&valid_chunked, &["length_required", "invalid_credentials"]),
        (&big_chunked, &["length_required", "payload_too_large"]),
        (b"5\r\nhello\r\n0\r\n\r\n", REFUSED),
        (b"zz\r\nhello\r\n0\r\n\r\n", REFUSED),
        (
            b"ffffffffffffffffffff\r\n",
            &["length_required", "bad_request", "payload_too_large"],
        ),
        (b"0\r\n\r\n", REFUSED),
        (b"3;ext=1\r\n{}x\r\n0\r\nTrailer: x\r\n\r\n", REFUSED),
    ];
    for (chunks, codes) in cases {
        let mut bytes = format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{JSON_CT}Transfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        bytes.extend_from_slice(chunks);
        raw_case(
            p,
            &format!("chunked {:.60?}", String::from_utf8_lossy(chunks)),
            &bytes,
            OneOf(codes),
        )
        .await;
    }
}

/// Both Transfer-Encoding and Content-Length (the request smuggling shape), and an oversize
/// body announced with `Expect: 100-continue`, refused without waiting for it.
async fn ambiguous_lengths(p: Phase<'_>) {
    for order in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    ] {
        let bytes = format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{JSON_CT}{order}\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        raw_case(p, &format!("TE+CL {order:?}"), bytes.as_bytes(), Protocol).await;
    }
    raw_case(
        p,
        "Expect 100-continue, oversize",
        format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{JSON_CT}Expect: 100-continue\r\nContent-Length: 999999\r\n\r\n"
        )
        .as_bytes(),
        Error(413, "payload_too_large"),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Connections

/// Pipelined requests on one connection: every one answered, in order.
async fn pipelined(p: Phase<'_>) {
    let n = 64;
    let path = |i: usize| match i % 4 {
        0 => "/healthz",
        1 => "/api/me",
        2 => "/%2e%2e/Cargo.toml",
        _ => "/config.js",
    };
    let mut pipeline = Vec::new();
    for i in 0..n {
        let head = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path(i));
        pipeline.extend_from_slice(head.as_bytes());
    }
    pipeline.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    p.tally.http(n + 1);
    let buf = match raw_exchange(p.app.addr, &pipeline, false).await {
        Ok(buf) => buf,
        Err(e) => return p.tally.problem(format!("pipelined requests: {e}")),
    };
    let mut at = 0;
    let mut statuses = Vec::new();
    while at < buf.len() {
        match parse_response(&buf[at..], true) {
            Ok(Some((r, used))) => {
                statuses.push(r.status);
                judge(p.tally, "pipelined request", Ok(r), Documented);
                at += used;
            }
            Ok(None) => break,
            Err(e) => {
                p.tally.problem(format!("pipelined answers: {e}"));
                break;
            }
        }
    }
    let want: Vec<u16> = (0..=n)
        .map(|i| match (i == n, i % 4) {
            (true, _) | (_, 0 | 3) => 200,
            (_, 1) => 401,
            _ => 404,
        })
        .collect();
    if statuses != want {
        p.tally.problem(format!(
            "pipelined statuses {statuses:?}, expected {want:?}"
        ));
    }
}

/// A body shorter than its Content-Length, then a half-close: no answer is owed, but the
/// server must not hang on to the connection or fall over.
async fn truncated_body(p: Phase<'_>) {
    p.tally.http(1);
    let mut short =
        format!("POST /api/login HTTP/1.1\r\nHost: x\r\n{JSON_CT}Content-Length: 100\r\n\r\n")
            .into_bytes();
    short.extend_from_slice(br#"{"username":"#);
    let label = "truncated body then EOF";
    match raw_exchange(p.app.addr, &short, true).await {
        Ok(buf) if !buf.is_empty() => match parse_response(&buf, true) {
            Ok(Some((r, _))) => judge(p.tally, label, Ok(r), Protocol),
            Ok(None) => {}
            Err(e) => p.tally.problem(format!("{label}: {e}")),
        },
        Ok(_) => {}
        Err(e) => p.tally.problem(format!("{label}: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Generated requests

/// Random garbage, then mutated request heads, a few connections at a time.
async fn generated(p: Phase<'_>, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x5eed_0001);
    let mut jobs = garbage(&mut rng);
    jobs.extend(mutated_heads(&mut rng, p.cookie));
    futures_util::stream::iter(jobs)
        .for_each_concurrent(8, |(label, bytes)| async move {
            raw_case(p, &label, &bytes, Protocol).await;
        })
        .await;
}

/// Random bytes, half of them after a plausible request line.
fn garbage(rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    (0..100)
        .map(|i| {
            let len = 1 + rng.index(512);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if i % 2 == 0 {
                let mut prefix = b"POST /api/register HTTP/1.1\r\n".to_vec();
                prefix.append(&mut bytes);
                bytes = prefix;
            }
            bytes.extend_from_slice(b"\r\n\r\n");
            (format!("garbage #{i}"), bytes)
        })
        .collect()
}

/// Mutations of valid heads, each ended so that the server sees a whole head.
fn mutated_heads(rng: &mut Rng, cookie: &str) -> Vec<(String, Vec<u8>)> {
    let heads = [
        format!("GET /api/rooms/general/messages?limit=5 HTTP/1.1\r\nHost: x\r\nCookie: hearth_session={cookie}\r\nConnection: close\r\n\r\n"),
        format!("POST /api/tokens HTTP/1.1\r\nHost: x\r\nOrigin: http://x\r\nCookie: hearth_session={cookie}\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{{\"name\":\"t\"}}"),
        "GET /js/app.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"abc\"\r\nConnection: close\r\n\r\n".to_string(),
    ];
    (0..MUTANTS / 2)
        .map(|i| {
            let base = rng.pick(&heads).as_bytes().to_vec();
            let mut bytes = mutate(rng, &base);
            if find(&bytes, b"\r\n\r\n").is_none() {
                bytes.extend_from_slice(b"\r\n\r\n");
            }
            let label = format!("mutated head #{i} {:?}", String::from_utf8_lossy(&bytes));
            (label, bytes)
        })
        .collect()
}
