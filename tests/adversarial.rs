//! Adversarial inputs against a real server (port 0, its own SQLite file).
//!
//! Thousands of malformed HTTP requests (over reqwest and over raw TCP) and WebSocket frames
//! (over tungstenite and over a hand-rolled frame writer that can break the framing itself)
//! are thrown at one server, several phases at once. Every answer is checked against the
//! contract: an application error is `{"error":{"code","message"}}` with a documented code and
//! its documented status, a refused frame is an `error` frame with a documented code, nothing is
//! ever a 5xx, and nothing hangs. Afterwards the server must still be healthy: `/healthz` says
//! `ok`, and a new user can register, chat and receive their own message.
//!
//! `headers_that_are_not_text_are_bad_requests` checks the exact codes for header values that
//! are not visible ASCII (Origin, Content-Type, Authorization, ...): 400 or the failed check's
//! own code, not 405.
//!
//! `cargo test --test adversarial -- --nocapture` prints the summary line
//! `adversarial: N HTTP requests, M WebSocket frames, 0 server errors`, and for the resource
//! abuse cases (abandoned password hashes, raced throttles, connection floods, quota abuse)
//! `adversarial: abuse (...): N requests, 0 server errors`.
//! `HEARTH_ADVERSARIAL_SEED=<u64>` replays another sequence of generated (mutated) inputs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const PASSWORD: &str = "correct horse battery staple";
/// The longest any single answer may take before it counts as a hang.
const ANSWER: Duration = Duration::from_secs(5);
/// Generated (mutated) inputs per phase.
const MUTANTS: usize = 1000;

// ---------------------------------------------------------------------------------------------
// The server

struct App {
    addr: SocketAddr,
    base: String,
    http: reqwest::Client,
    server: Option<hearth::Server>,
    _dir: TempDir,
}

async fn start() -> App {
    start_with(|_| {}).await
}

async fn start_with(tweak: impl FnOnce(&mut hearth::config::Config)) -> App {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = hearth::config::Config::default();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.database.path = dir.path().join("chat.db");
    config.auth.pbkdf2_iterations = 1000;
    config.limits.messages_per_second = 0.0;
    config.limits.registrations_per_hour = 0;
    tweak(&mut config);
    let server = timeout(Duration::from_secs(10), hearth::run(config))
        .await
        .expect("the server starts in time")
        .expect("the server starts");
    let addr = server.local_addr();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ANSWER)
        .pool_max_idle_per_host(16)
        .build()
        .expect("http client");
    App {
        addr,
        base: format!("http://{addr}"),
        http,
        server: Some(server),
        _dir: dir,
    }
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Register `name` and return its session cookie value.
    async fn signup(&self, name: &str) -> String {
        let res = self
            .http
            .post(self.url("/api/register"))
            .json(&json!({ "username": name, "password": PASSWORD }))
            .send()
            .await
            .expect("register request");
        assert_eq!(res.status(), 201, "register {name}");
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("hearth_session="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string())
            .expect("a session cookie");
        assert!(!cookie.is_empty());
        cookie
    }
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping

#[derive(Default)]
struct Tally {
    http: AtomicUsize,
    ws: AtomicUsize,
    server_errors: AtomicUsize,
    /// Requests the parser dropped without any answer (allowed for protocol garbage).
    unanswered: AtomicUsize,
    problems: Mutex<Vec<String>>,
}

impl Tally {
    fn problem(&self, what: String) {
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < 200 {
            p.push(what);
        }
    }

    fn http(&self, n: usize) {
        self.http.fetch_add(n, Ordering::Relaxed);
    }

    fn ws(&self, n: usize) {
        self.ws.fetch_add(n, Ordering::Relaxed);
    }
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed from its seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Snippets that tend to break JSON parsers and validators.
const NASTY: &[&str] = &[
    "null",
    "true",
    "[]",
    "{}",
    "-0",
    "1e999999",
    "-1e-999999",
    "123456789012345678901234567890",
    "18446744073709551616",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"\\\"",
    "\\",
    "\"",
    ",",
    ":",
    "{\"type\":",
    "[[[[[[[[[[[[[[[[[[[[",
    "\u{0}",
    "\u{202e}",
    "\u{feff}",
    "é",
    "💬",
    "NaN",
    "Infinity",
    "/*",
    "\"general\"",
    "\"send\"",
    "\"typing\"",
];

/// Byte-level mutations of a valid input: truncation, flips, insertions, deletions,
/// duplication and splicing of nasty snippets.
fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 => v.truncate(at),
            1 if len > 0 => v[at.min(len - 1)] = rng.next() as u8,
            2 => {
                let byte = *rng.pick(&[
                    b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', 0x00, 0xff, 0xc3, 0x80, b'\n',
                    b' ', b'0',
                ]);
                v.insert(at, byte);
            }
            3 if at < len => {
                v.remove(at);
            }
            4 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                let start = at.min(end);
                let chunk = v[start..end].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, chunk);
            }
            5 => {
                let snippet = rng.pick(NASTY).as_bytes();
                v.splice(at..at, snippet.iter().copied());
            }
            6 => {
                // Replace a whole quoted value with a nasty snippet.
                let text = String::from_utf8_lossy(&v).into_owned();
                let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
                if quotes.len() >= 2 {
                    let i = rng.below(quotes.len() - 1);
                    let (a, b) = (quotes[i], quotes[i + 1] + 1);
                    let mut t = text;
                    let snippet = rng.pick(NASTY);
                    t.replace_range(a..b, snippet);
                    v = t.into_bytes();
                }
            }
            _ => {
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    v.push(rng.next() as u8);
                }
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// What an answer must look like

/// The documented statuses of every documented HTTP error code.
fn documented_statuses(code: &str) -> Option<&'static [u16]> {
    Some(match code {
        // 426 answers a WebSocket upgrade with the wrong version.
        "bad_request" => &[400, 426],
        "invalid_username" | "weak_password" | "password_too_long" => &[400],
        "unauthorized" | "invalid_credentials" => &[401],
        "bad_origin" | "not_a_member" => &[403],
        "not_found" | "unknown_room" | "unknown_session" => &[404],
        "method_not_allowed" => &[405],
        "username_taken" | "too_many_tokens" => &[409],
        "search_too_broad" => &[400],
        "length_required" => &[411],
        "payload_too_large" => &[413],
        "unsupported_media_type" => &[415],
        "too_many_attempts" | "busy" | "too_many_connections" | "rate_limited" => &[429],
        "unavailable" => &[503],
        _ => return None,
    })
}

/// The documented codes of `error` frames.
const WS_CODES: &[&str] = &[
    "bad_frame",
    "empty_message",
    "message_too_long",
    "unknown_room",
    "not_a_member",
    "rate_limited",
    "unavailable",
];

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A success, or an application error with a documented code and status.
    Documented,
    /// One of these documented codes (or, when the first entry is `"ok"`, a 2xx).
    OneOf(&'static [&'static str]),
    /// Exactly this status and code.
    Error(u16, &'static str),
    /// Exactly this success status.
    Status(u16),
    /// Anything but a server error, with no body to check (answers to HEAD).
    Bodiless,
    /// Refused by the HTTP parser (a bare 4xx) or the connection closed: never served.
    Refused,
    /// Refused by the HTTP parser before any routing (a bare 4xx, or 505 for an unknown
    /// version), or the connection closed; an answer that did reach the application must be
    /// a documented one.
    Protocol,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Check that `reply` is a well-formed application error; returns its code.
fn error_code(reply: &Reply) -> Result<String, String> {
    let text = String::from_utf8_lossy(&reply.body);
    let v: Value = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("error body is not JSON ({e}): {text:?}"))?;
    let obj = v.as_object().ok_or("error body is not an object")?;
    let err = obj
        .get("error")
        .and_then(Value::as_object)
        .filter(|_| obj.len() == 1)
        .ok_or_else(|| format!("not {{\"error\":{{...}}}}: {text}"))?;
    let code = err
        .get("code")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no code: {text}"))?;
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no message: {text}"))?;
    if message.trim().is_empty() {
        return Err(format!("empty message: {text}"));
    }
    let statuses =
        documented_statuses(code).ok_or_else(|| format!("undocumented code {code:?}"))?;
    if !statuses.contains(&reply.status) {
        return Err(format!("code {code} with status {}", reply.status));
    }
    if matches!(reply.status, 429 | 503) && reply.header("retry-after").is_none() {
        return Err(format!("{} without Retry-After", reply.status));
    }
    if !reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return Err(format!(
            "error without a JSON content type: {:?}",
            reply.header("content-type")
        ));
    }
    if reply.header("x-content-type-options") != Some("nosniff") {
        return Err("application answer without X-Content-Type-Options".into());
    }
    Ok(code.to_string())
}

/// Judge one answer; records server errors and contract violations in `tally`.
fn judge(tally: &Tally, label: &str, reply: Result<Reply, String>, expect: Expect) {
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            if matches!(expect, Expect::Protocol | Expect::Refused) {
                tally.unanswered.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.problem(format!("{label}: no answer ({e})"));
            }
            return;
        }
    };
    let status = reply.status;
    if status >= 500 && !(matches!(expect, Expect::Protocol) && status == 505) {
        tally.server_errors.fetch_add(1, Ordering::Relaxed);
        tally.problem(format!(
            "{label}: server error {status}: {}",
            String::from_utf8_lossy(&reply.body)
        ));
        return;
    }
    let verdict: Result<(), String> = match expect {
        Expect::Documented => {
            if status >= 400 {
                error_code(&reply).map(drop)
            } else if (100..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("status {status}"))
            }
        }
        Expect::OneOf(codes) => {
            if status < 300 && codes.first() == Some(&"ok") {
                Ok(())
            } else if status >= 400 {
                error_code(&reply).and_then(|c| {
                    if codes.contains(&c.as_str()) {
                        Ok(())
                    } else {
                        Err(format!("code {c}, expected one of {codes:?}"))
                    }
                })
            } else {
                Err(format!("status {status}, expected one of {codes:?}"))
            }
        }
        Expect::Error(want_status, want_code) => error_code(&reply).and_then(|c| {
            if status == want_status && c == want_code {
                Ok(())
            } else {
                Err(format!("{status} {c}, expected {want_status} {want_code}"))
            }
        }),
        Expect::Bodiless => Ok(()),
        Expect::Refused => {
            if (400..500).contains(&status) {
                Ok(())
            } else {
                Err(format!("status {status}: served, not refused"))
            }
        }
        Expect::Status(want) => {
            if status == want {
                Ok(())
            } else {
                Err(format!(
                    "status {status}, expected {want}: {}",
                    String::from_utf8_lossy(&reply.body)
                ))
            }
        }
        Expect::Protocol => {
            if reply.body.is_empty() {
                if (400..500).contains(&status) || status == 505 {
                    Ok(())
                } else {
                    Err(format!("parser answered {status}"))
                }
            } else if status >= 400 {
                error_code(&reply).map(drop)
            } else {
                Ok(())
            }
        }
    };
    if let Err(e) = verdict {
        tally.problem(format!("{label}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP over TCP

/// Write `bytes` (ignoring a refused write: the server may close early), optionally half-close,
/// and read until the server closes.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Result<Vec<u8>, String> {
    let mut s = timeout(ANSWER, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parse one HTTP/1.1 response at the start of `buf`; returns it and the bytes it used, or
/// `None` while it is incomplete. `eof` says no more bytes will come (which ends a body that
/// has neither a length nor chunks).
fn parse_response(buf: &[u8], eof: bool) -> Result<Option<(Reply, usize)>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if eof && !buf.is_empty() {
            Err(format!(
                "truncated response head: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(200)])
            ))
        } else {
            Ok(None)
        };
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut at = head_end + 4;
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Vec::new()
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        if buf.len() < at + len {
            return if eof {
                Err("truncated body".into())
            } else {
                Ok(None)
            };
        }
        let body = buf[at..at + len].to_vec();
        at += len;
        body
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let Some(line_end) = find(&buf[at..], b"\r\n") else {
                return if eof {
                    Err("truncated chunk".into())
                } else {
                    Ok(None)
                };
            };
            let line_end = line_end + at;
            let size_text = String::from_utf8_lossy(&buf[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            at = line_end + 2;
            if buf.len() < at + size + 2 {
                return if eof {
                    Err("truncated chunk".into())
                } else {
                    Ok(None)
                };
            }
            if size == 0 {
                at += 2;
                break;
            }
            body.extend_from_slice(&buf[at..at + size]);
            at += size + 2;
        }
        body
    } else if eof {
        let body = buf[at..].to_vec();
        at = buf.len();
        body
    } else {
        return Ok(None);
    };
    Ok(Some((
        Reply {
            status,
            headers,
            body,
        },
        at,
    )))
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
    let mut s = timeout(ANSWER, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
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

/// One raw request, judged.
async fn raw_case(
    app: &App,
    tally: &Tally,
    label: &str,
    bytes: &[u8],
    expect: Expect,
) -> Option<Reply> {
    tally.http(1);
    let grace =
        matches!(expect, Expect::Protocol | Expect::Refused).then_some(Duration::from_millis(500));
    let reply = raw_request(app.addr, bytes, grace).await;
    let copy = reply.as_ref().ok().map(|r| Reply {
        status: r.status,
        headers: r.headers.clone(),
        body: r.body.clone(),
    });
    judge(tally, label, reply, expect);
    copy
}

/// `METHOD TARGET HTTP/1.1` with a Host, `Connection: close` and extra header lines.
fn request(method: &str, target: &str, extra: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
        .into_bytes()
}

fn with_body(method: &str, target: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Requests with a header the application reads that is not visible ASCII (raw bytes
/// 0x80–0xFF), with the codes that would be right for each (`"ok"`: a success is fine).
fn non_text_headers(cookie: &str) -> Vec<(&'static str, Vec<u8>, &'static [&'static str])> {
    let json_ct = "Content-Type: application/json\r\n";
    let auth_cookie = format!("Cookie: hearth_session={cookie}\r\n");
    let creds = br#"{"username":"rawuser","password":"correct horse battery staple"}"#;
    let name = br#"{"name":"x"}"#;
    let upgrade = "Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\n";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    // The strings use the chars U+0080..U+00FF to stand for the raw bytes 0x80..0xFF.
    let cases: Vec<(&'static str, Vec<u8>, &'static [&'static str])> = vec![
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
                creds,
            ),
            &["bad_request", "unsupported_media_type"],
        ),
        (
            "Origin on register",
            with_body(
                "POST",
                "/api/register",
                &format!("{json_ct}Origin: http://\u{ff}\r\n"),
                creds,
            ),
            &["bad_request", "bad_origin"],
        ),
        (
            "Origin on tokens",
            with_body(
                "POST",
                "/api/tokens",
                &format!("{json_ct}{auth_cookie}Origin: \u{ff}\u{fe}\r\n"),
                name,
            ),
            &["bad_request", "bad_origin"],
        ),
        (
            "Referer on tokens",
            with_body(
                "POST",
                "/api/tokens",
                &format!("{json_ct}{auth_cookie}Referer: http://\u{ff}/\r\n"),
                name,
            ),
            &["bad_request", "bad_origin"],
        ),
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
                &format!("{json_ct}Authorization: Bearer \u{ff}\u{fe}\u{80}\r\n"),
                name,
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
    ];
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

async fn raw_http_phase(app: &App, tally: &Tally, cookie: &str, seed: u64) {
    use Expect::*;
    let json_ct = "Content-Type: application/json\r\n";

    // Request lines the parser must refuse (or answer as an application error).
    let lines: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n".to_vec(),
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n  folded\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Cr: a\rb\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET http://evil.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET ../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n".to_vec(),
    ];
    for (i, bytes) in lines.iter().enumerate() {
        raw_case(
            app,
            tally,
            &format!("raw request line #{i}"),
            bytes,
            Protocol,
        )
        .await;
    }

    // Heads over 16 KiB are refused (431, or the connection closed), never served.
    let oversize: Vec<(&str, Vec<u8>)> = vec![
        (
            "a 20 KiB path",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20 * 1024)).into_bytes(),
        ),
        (
            "a 17 KiB header",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "x".repeat(17 * 1024)
            )
            .into_bytes(),
        ),
        (
            "600 headers",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..600)
                    .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(24)))
                    .collect::<String>()
            )
            .into_bytes(),
        ),
        (
            "a 20 KiB cookie",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
                "a=b; ".repeat(4000)
            )
            .into_bytes(),
        ),
        (
            "a 1 MiB header",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "x".repeat(1 << 20)
            )
            .into_bytes(),
        ),
    ];
    for (label, bytes) in &oversize {
        raw_case(app, tally, label, bytes, Refused).await;
    }

    // A head just under the limit is still served.
    let near = format!("X-Pad: {}\r\n", "p".repeat(14 * 1024));
    raw_case(
        app,
        tally,
        "a 14 KiB head",
        &request("GET", "/healthz", &near),
        Status(200),
    )
    .await;

    // Methods, known and unknown.
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
                app,
                tally,
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

    // Path traversal and odd asset paths: never a file outside the embedded UI.
    let traversal = [
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
    for path in traversal {
        if let Some(r) = raw_case(
            app,
            tally,
            &format!("GET {path}"),
            &request("GET", path, ""),
            Error(404, "not_found"),
        )
        .await
        {
            let body = String::from_utf8_lossy(&r.body);
            if body.contains("[package]") || body.contains("root:") || body.contains("fn main") {
                tally.problem(format!("GET {path}: leaked a file: {body:.80}"));
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
            app,
            tally,
            &format!("GET {path}"),
            &request("GET", path, ""),
            OneOf(&["not_found", "bad_request"]),
        )
        .await;
    }

    // Bodies: wrong or missing content types, sizes, encodings.
    let creds = br#"{"username":"rawuser","password":"correct horse battery staple"}"#;
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
        let mut bytes = with_body("POST", "/api/login", "", creds);
        // Splice the header in after the request line.
        let at = find(&bytes, b"\r\n").expect("request line") + 2;
        let hdr: Vec<u8> = extra.chars().map(|c| c as u32 as u8).collect();
        bytes.splice(at..at, hdr);
        raw_case(
            app,
            tally,
            &format!("login with {label}"),
            &bytes,
            OneOf(&["unsupported_media_type", "bad_request"]),
        )
        .await;
    }
    raw_case(
        app,
        tally,
        "Content-Type with parameters",
        &with_body(
            "POST",
            "/api/login",
            "Content-Type: APPLICATION/JSON; charset=utf-8\r\n",
            creds,
        ),
        Error(401, "invalid_credentials"),
    )
    .await;
    // Over 16 KiB: refused on the declared length, before the body is read.
    for len in [16 * 1024 + 1, 1u64 << 20, 1u64 << 40] {
        raw_case(
            app,
            tally,
            &format!("declared body of {len} bytes"),
            format!(
                "POST /api/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{json_ct}Content-Length: {len}\r\n\r\n"
            )
            .as_bytes(),
            Error(413, "payload_too_large"),
        )
        .await;
    }
    let deep = "[".repeat(100_000);
    raw_case(
        app,
        tally,
        "100k [ body",
        &with_body("POST", "/api/register", json_ct, deep.as_bytes()),
        OneOf(&["payload_too_large"]),
    )
    .await;
    // Exactly at the limit: read and parsed.
    let mut at_limit = br#"{"username":"limit","password":""#.to_vec();
    at_limit.resize(16 * 1024 - 2, b'x');
    at_limit.extend_from_slice(b"\"}");
    raw_case(
        app,
        tally,
        "a body of exactly 16 KiB",
        &with_body("POST", "/api/register", json_ct, &at_limit),
        Error(400, "password_too_long"),
    )
    .await;
    // Chunked bodies: refused for want of a length (411), or read up to the same 16 KiB limit.
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
    for (chunks, codes) in [
        (
            &valid_chunked[..],
            &["length_required", "invalid_credentials"][..],
        ),
        (
            &big_chunked[..],
            &["length_required", "payload_too_large"][..],
        ),
        (
            b"5\r\nhello\r\n0\r\n\r\n",
            &["length_required", "bad_request"][..],
        ),
        (
            b"zz\r\nhello\r\n0\r\n\r\n",
            &["length_required", "bad_request"][..],
        ),
        (
            b"ffffffffffffffffffff\r\n",
            &["length_required", "bad_request", "payload_too_large"][..],
        ),
        (b"0\r\n\r\n", &["length_required", "bad_request"][..]),
        (
            b"3;ext=1\r\n{}x\r\n0\r\nTrailer: x\r\n\r\n",
            &["length_required", "bad_request"][..],
        ),
    ] {
        let mut bytes = format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{json_ct}Transfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        bytes.extend_from_slice(chunks);
        raw_case(
            app,
            tally,
            &format!("chunked {:.60?}", String::from_utf8_lossy(chunks)),
            &bytes,
            OneOf(codes),
        )
        .await;
    }
    // Both Transfer-Encoding and Content-Length (request smuggling shape).
    for order in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    ] {
        let bytes = format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{json_ct}{order}\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        raw_case(
            app,
            tally,
            &format!("TE+CL {order:?}"),
            bytes.as_bytes(),
            Protocol,
        )
        .await;
    }
    // Expect: 100-continue on an oversize body is refused without waiting for it.
    raw_case(
        app,
        tally,
        "Expect 100-continue, oversize",
        format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{json_ct}Expect: 100-continue\r\nContent-Length: 999999\r\n\r\n"
        )
        .as_bytes(),
        Error(413, "payload_too_large"),
    )
    .await;

    // Headers that are not visible ASCII: never a server error (their exact codes are
    // checked by `headers_that_are_not_text_are_bad_requests`).
    for (label, bytes, _) in non_text_headers(cookie) {
        raw_case(app, tally, &format!("non-text {label}"), &bytes, Documented).await;
    }

    // Pipelined requests: every one answered, in order.
    let mut pipeline = Vec::new();
    let n = 64;
    for i in 0..n {
        let path = match i % 4 {
            0 => "/healthz",
            1 => "/api/me",
            2 => "/%2e%2e/Cargo.toml",
            _ => "/config.js",
        };
        pipeline.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    pipeline.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tally.http(n + 1);
    match raw_exchange(app.addr, &pipeline, false).await {
        Ok(buf) => {
            let mut at = 0;
            let mut statuses = Vec::new();
            while at < buf.len() {
                match parse_response(&buf[at..], true) {
                    Ok(Some((r, used))) => {
                        statuses.push(r.status);
                        judge(tally, "pipelined request", Ok(r), Expect::Documented);
                        at += used;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tally.problem(format!("pipelined answers: {e}"));
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
                tally.problem(format!(
                    "pipelined statuses {statuses:?}, expected {want:?}"
                ));
            }
        }
        Err(e) => tally.problem(format!("pipelined requests: {e}")),
    }

    // A body shorter than its Content-Length, then a half-close: no answer is owed, but the
    // server must not hang on to the connection or fall over.
    tally.http(1);
    let mut short =
        format!("POST /api/login HTTP/1.1\r\nHost: x\r\n{json_ct}Content-Length: 100\r\n\r\n")
            .into_bytes();
    short.extend_from_slice(br#"{"username":"#);
    match raw_exchange(app.addr, &short, true).await {
        Ok(buf) if !buf.is_empty() => match parse_response(&buf, true) {
            Ok(Some((r, _))) => judge(tally, "truncated body then EOF", Ok(r), Expect::Protocol),
            Ok(None) => {}
            Err(e) => tally.problem(format!("truncated body then EOF: {e}")),
        },
        Ok(_) => {}
        Err(e) => tally.problem(format!("truncated body then EOF: {e}")),
    }

    // Random garbage, then mutated request heads, a few connections at a time.
    let mut rng = Rng::new(seed ^ 0x5eed_0001);
    let mut jobs: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..100 {
        let len = 1 + rng.below(512);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 {
            // Garbage after a plausible request line.
            let mut prefix = b"POST /api/register HTTP/1.1\r\n".to_vec();
            prefix.append(&mut bytes);
            bytes = prefix;
        }
        bytes.extend_from_slice(b"\r\n\r\n");
        jobs.push((format!("garbage #{i}"), bytes));
    }
    let heads = [
        format!("GET /api/rooms/general/messages?limit=5 HTTP/1.1\r\nHost: x\r\nCookie: hearth_session={cookie}\r\nConnection: close\r\n\r\n"),
        format!("POST /api/tokens HTTP/1.1\r\nHost: x\r\nOrigin: http://x\r\nCookie: hearth_session={cookie}\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{{\"name\":\"t\"}}"),
        "GET /js/app.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"abc\"\r\nConnection: close\r\n\r\n".to_string(),
    ];
    for i in 0..MUTANTS / 2 {
        let base = rng.pick(&heads).as_bytes().to_vec();
        let mut bytes = mutate(&mut rng, &base);
        if find(&bytes, b"\r\n\r\n").is_none() {
            bytes.extend_from_slice(b"\r\n\r\n");
        }
        jobs.push((
            format!("mutated head #{i} {:?}", String::from_utf8_lossy(&bytes)),
            bytes,
        ));
    }
    futures_util::stream::iter(jobs)
        .for_each_concurrent(8, |(label, bytes)| async move {
            raw_case(app, tally, &label, &bytes, Protocol).await;
        })
        .await;
}

// ---------------------------------------------------------------------------------------------
// HTTP through reqwest

async fn send(rb: reqwest::RequestBuilder) -> Result<Reply, String> {
    let res = rb.send().await.map_err(|e| format!("{e}"))?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = res.bytes().await.map_err(|e| format!("{e}"))?.to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn http_phase(app: &App, tally: &Tally, cookie: &str, seed: u64) {
    use Expect::*;
    let with_cookie = |rb: reqwest::RequestBuilder| {
        rb.header("cookie", format!("hearth_session={cookie}"))
            .header("origin", &app.base)
    };

    // Hand-written JSON bodies, on every route that reads one.
    let long_password = format!(
        r#"{{"username":"pwlong","password":"{}"}}"#,
        "p".repeat(1025)
    );
    let deep16k = "[".repeat(16_000);
    let deep_obj = "{\"a\":".repeat(3000);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("space", b"  ".to_vec()),
        ("truncated", br#"{"username":"a","pass"#.to_vec()),
        ("open brace", b"{".to_vec()),
        ("null", b"null".to_vec()),
        ("array", br#"["username","password"]"#.to_vec()),
        ("string", br#""username""#.to_vec()),
        ("number", b"12".to_vec()),
        ("wrong types", br#"{"username":1,"password":true}"#.to_vec()),
        (
            "nested types",
            br#"{"username":{"a":1},"password":["x"]}"#.to_vec(),
        ),
        (
            "null fields",
            br#"{"username":null,"password":null}"#.to_vec(),
        ),
        ("missing password", br#"{"username":"abc"}"#.to_vec()),
        ("missing both", b"{}".to_vec()),
        (
            "huge number",
            br#"{"username":1e999999,"password":"x"}"#.to_vec(),
        ),
        (
            "big integer",
            br#"{"name":123456789012345678901234567890}"#.to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"username":"\ud800","password":"correct horse"}"#.to_vec(),
        ),
        (
            "NUL escape",
            br#"{"username":"a\u0000b","password":"correct horse"}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"username\":\"\xff\xfe\",\"password\":\"\xc3\x28abcdefgh\"}".to_vec(),
        ),
        (
            "BOM",
            b"\xef\xbb\xbf{\"username\":\"bom\",\"password\":\"correct horse\"}".to_vec(),
        ),
        (
            "trailing garbage",
            br#"{"username":"tg","password":"correct horse"} x"#.to_vec(),
        ),
        ("two objects", br#"{"name":"a"}{"name":"b"}"#.to_vec()),
        (
            "duplicate key",
            br#"{"username":"a","username":"b","password":"correct horse"}"#.to_vec(),
        ),
        ("comment", b"/* hi */ {\"name\":\"x\"}".to_vec()),
        ("single quotes", b"{'name':'x'}".to_vec()),
        ("deep array 16k", deep16k.into_bytes()),
        ("deep object", deep_obj.into_bytes()),
        ("long password", long_password.into_bytes()),
        (
            "empty strings",
            br#"{"username":"","password":"","name":""}"#.to_vec(),
        ),
        (
            "unicode name",
            "{\"username\":\"émile\",\"password\":\"correct horse\",\"name\":\"ü\"}"
                .as_bytes()
                .to_vec(),
        ),
        (
            "65-char name",
            format!(r#"{{"name":"{}"}}"#, "n".repeat(65)).into_bytes(),
        ),
        ("whitespace name", br#"{"name":"   "}"#.to_vec()),
    ];
    let routes: [(&str, bool, &'static [&'static str]); 3] = [
        (
            "/api/register",
            false,
            &[
                "ok",
                "bad_request",
                "invalid_username",
                "weak_password",
                "password_too_long",
                "username_taken",
                "busy",
                "length_required",
            ],
        ),
        (
            "/api/login",
            false,
            &[
                // serde accepts a JSON array for a struct: `["name","password"]` signs in.
                "ok",
                "bad_request",
                "invalid_credentials",
                "too_many_attempts",
                "password_too_long",
                "busy",
                "length_required",
            ],
        ),
        (
            "/api/tokens",
            true,
            &["ok", "bad_request", "length_required"],
        ),
    ];
    for (path, authed, codes) in routes {
        for (label, body) in &bodies {
            tally.http(1);
            let mut rb = app
                .http
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(body.clone());
            if authed {
                rb = with_cookie(rb);
            }
            judge(
                tally,
                &format!("POST {path} {label}"),
                send(rb).await,
                OneOf(codes),
            );
        }
    }
    // The contract's own examples.
    for (label, body, expect) in [
        ("deep 16k", "[".repeat(16_000), Error(400, "bad_request")),
        (
            "wrong type",
            r#"{"username":1,"password":"x"}"#.to_string(),
            Error(400, "bad_request"),
        ),
        (
            "truncated",
            r#"{"username":"#.to_string(),
            Error(400, "bad_request"),
        ),
        (
            "too long",
            format!(r#"{{"username":"a","password":"{}"}}"#, "p".repeat(1025)),
            Error(400, "password_too_long"),
        ),
        (
            "bad name",
            r#"{"username":"a b","password":"correct horse"}"#.to_string(),
            Error(400, "invalid_username"),
        ),
        (
            "weak",
            r#"{"username":"weakling","password":"short"}"#.to_string(),
            Error(400, "weak_password"),
        ),
    ] {
        tally.http(1);
        let rb = app
            .http
            .post(app.url("/api/register"))
            .header("content-type", "application/json")
            .body(body);
        judge(tally, &format!("register {label}"), send(rb).await, expect);
    }
    tally.http(1);
    let rb = app
        .http
        .post(app.url("/api/register"))
        .header("content-type", "application/json")
        .body(vec![b'x'; 16 * 1024 + 1]);
    judge(
        tally,
        "register 16 KiB + 1",
        send(rb).await,
        Error(413, "payload_too_large"),
    );

    // Query strings on history.
    let queries = [
        "limit=abc",
        "limit=0",
        "limit=-1",
        "limit=",
        "limit=1.5",
        "limit=99999999999999999999",
        "limit=%ff",
        "limit=1e3",
        "before=-1",
        "before=abc",
        "after=x",
        "after=1e3",
        "before=1&after=2",
        "after=99999999999999999999",
        "since=1",
        "limit=5&limit=6",
        "before=%00",
        "after=%2B1",
        "limit=+5",
        "after= 1",
        "%ff=%fe",
        "&&&",
        "a[b]=c",
        "before=9223372036854775807",
        "after=9223372036854775807",
        "limit=201",
        "limit=1",
    ];
    for q in queries {
        tally.http(1);
        let rb = app
            .http
            .get(app.url(&format!("/api/rooms/general/messages?{q}")))
            .header("cookie", format!("hearth_session={cookie}"));
        judge(
            tally,
            &format!("history ?{q}"),
            send(rb).await,
            OneOf(&["ok", "bad_request"]),
        );
    }
    // Room names.
    let long_room = "r".repeat(8000);
    for room in [
        "nope",
        "GENERAL",
        "general%20",
        "%2e%2e",
        "..",
        "general%00",
        "%ff%fe",
        "%F0%9F%92%AC",
        "%27%3B%20DROP%20TABLE%20messages%3B--",
        long_room.as_str(),
        "general%2fmessages",
    ] {
        tally.http(1);
        let rb = app
            .http
            .get(app.url(&format!("/api/rooms/{room}/messages")))
            .header("cookie", format!("hearth_session={cookie}"));
        judge(
            tally,
            &format!("room {room:.40}"),
            send(rb).await,
            OneOf(&["unknown_room", "not_found"]),
        );
    }

    // Credentials that are not.
    let long_token = "A".repeat(10_000);
    for (label, header, value) in [
        ("empty cookie", "cookie", "hearth_session=".to_string()),
        (
            "garbage cookie",
            "cookie",
            "hearth_session=!!!; x".to_string(),
        ),
        (
            "quoted cookie",
            "cookie",
            "hearth_session=\"abc\"".to_string(),
        ),
        (
            "two cookies",
            "cookie",
            "hearth_session=a; hearth_session=b".to_string(),
        ),
        (
            "long cookie",
            "cookie",
            format!("hearth_session={long_token}"),
        ),
        ("empty bearer", "authorization", "Bearer ".to_string()),
        ("bare bearer", "authorization", "Bearer".to_string()),
        (
            "basic",
            "authorization",
            "Basic YWxpY2U6cGFzc3dvcmQ=".to_string(),
        ),
        (
            "long bearer",
            "authorization",
            format!("Bearer {long_token}"),
        ),
        (
            "bearer spaces",
            "authorization",
            "Bearer    a b c".to_string(),
        ),
    ] {
        for path in ["/api/me", "/api/rooms", "/api/rooms/general/messages"] {
            tally.http(1);
            let rb = app.http.get(app.url(path)).header(header, value.clone());
            judge(
                tally,
                &format!("{label} on {path}"),
                send(rb).await,
                Error(401, "unauthorized"),
            );
        }
    }
    // Origins that do not match.
    for origin in [
        "null",
        "http://evil.example",
        "http://x",
        "garbage",
        "http://127.0.0.1",
        "file://",
        "http://127.0.0.1:1",
    ] {
        tally.http(2);
        let rb = app
            .http
            .post(app.url("/api/tokens"))
            .header("cookie", format!("hearth_session={cookie}"))
            .header("origin", origin)
            .json(&json!({"name": "x"}));
        judge(
            tally,
            &format!("tokens from {origin}"),
            send(rb).await,
            Error(403, "bad_origin"),
        );
        let rb = app
            .http
            .post(app.url("/api/register"))
            .header("origin", origin)
            .json(&json!({"username": "fromorigin", "password": PASSWORD}));
        judge(
            tally,
            &format!("register from {origin}"),
            send(rb).await,
            Error(403, "bad_origin"),
        );
    }
    // The WebSocket endpoint spoken to as plain HTTP.
    let ck = format!("hearth_session={cookie}");
    for (label, headers, expect) in [
        (
            "no upgrade",
            vec![("cookie", ck.clone())],
            Error(400, "bad_request"),
        ),
        (
            "no key",
            vec![
                ("cookie", ck.clone()),
                ("upgrade", "websocket".into()),
                ("connection", "upgrade".into()),
                ("sec-websocket-version", "13".into()),
            ],
            Error(400, "bad_request"),
        ),
        (
            "version 12",
            vec![
                ("cookie", ck.clone()),
                ("upgrade", "websocket".into()),
                ("connection", "upgrade".into()),
                ("sec-websocket-version", "12".into()),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
            ],
            Error(426, "bad_request"),
        ),
        (
            "no auth",
            vec![
                ("upgrade", "websocket".into()),
                ("connection", "upgrade".into()),
                ("sec-websocket-version", "13".into()),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
            ],
            Error(401, "unauthorized"),
        ),
        (
            "bad origin",
            vec![
                ("cookie", ck.clone()),
                ("origin", "http://evil.example".into()),
                ("upgrade", "websocket".into()),
                ("connection", "upgrade".into()),
                ("sec-websocket-version", "13".into()),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
            ],
            Error(403, "bad_origin"),
        ),
    ] {
        tally.http(1);
        let mut rb = app.http.get(app.url("/ws"));
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        judge(tally, &format!("/ws {label}"), send(rb).await, expect);
    }
    for since in ["abc", "-1", "1e3", "99999999999999999999", "", "%ff", "1.0"] {
        tally.http(1);
        let rb = app
            .http
            .get(app.url(&format!("/ws?since={since}")))
            .header("cookie", ck.clone())
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        judge(
            tally,
            &format!("/ws?since={since}"),
            send(rb).await,
            Error(400, "bad_request"),
        );
    }

    // Mutated bodies, a few in flight at once.
    let mut rng = Rng::new(seed ^ 0x5eed_0002);
    let bases: Vec<(&str, bool, Vec<u8>)> = vec![
        (
            "/api/register",
            false,
            br#"{"username":"mutant","password":"correct horse battery staple"}"#.to_vec(),
        ),
        (
            "/api/login",
            false,
            br#"{"username":"mutant","password":"correct horse battery staple"}"#.to_vec(),
        ),
        ("/api/tokens", true, br#"{"name":"mutant bot"}"#.to_vec()),
    ];
    let mut jobs = Vec::new();
    for i in 0..MUTANTS * 2 {
        let (path, authed, base) = rng.pick(&bases).clone();
        let body = mutate(&mut rng, &base);
        let ct = *rng.pick(&[
            "application/json",
            "application/json",
            "application/json",
            "text/plain",
            "application/json; charset=\u{7f}",
        ]);
        jobs.push((i, path, authed, body, ct));
    }
    let codes: &'static [&'static str] = &[
        "ok",
        "bad_request",
        "invalid_username",
        "weak_password",
        "password_too_long",
        "username_taken",
        "invalid_credentials",
        "too_many_attempts",
        "busy",
        "unsupported_media_type",
        "length_required",
        // Valid token requests past `limits.tokens_per_user`.
        "too_many_tokens",
    ];
    futures_util::stream::iter(jobs)
        .for_each_concurrent(4, |(i, path, authed, body, ct)| async move {
            tally.http(1);
            let mut rb = app.http.post(app.url(path)).body(body.clone());
            if let Ok(v) = HeaderValue::from_str(ct) {
                rb = rb.header("content-type", v);
            }
            if authed {
                rb = rb
                    .header("cookie", format!("hearth_session={cookie}"))
                    .header("origin", &app.base);
            }
            let label = format!(
                "mutant #{i} POST {path} {:?}",
                String::from_utf8_lossy(&body)
            );
            judge(tally, &label, send(rb).await, OneOf(codes));
        })
        .await;

    // Methods through the client, including ones the server has never heard of.
    for method in [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECTX", "X-CUSTOM",
    ] {
        let method = Method::from_bytes(method.as_bytes()).expect("a valid method token");
        for path in [
            "/api/register",
            "/api/login",
            "/api/logout",
            "/api/me",
            "/api/tokens",
            "/api/rooms",
            "/api/rooms/general/messages",
            "/nope",
            "/api/nope",
            "/api/",
        ] {
            tally.http(1);
            let rb = app
                .http
                .request(method.clone(), app.url(path))
                .header("origin", &app.base)
                .header("cookie", "hearth_session=invalid");
            // A HEAD answer has no body to carry the error shape.
            let expect = if method == Method::HEAD {
                Bodiless
            } else {
                Documented
            };
            judge(tally, &format!("{method} {path}"), send(rb).await, expect);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket through tungstenite

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn ws_connect(app: &App, cookie: &str) -> Ws {
    let mut req = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .expect("a ws request");
    req.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&format!("hearth_session={cookie}")).expect("cookie header"),
    );
    let (mut ws, _) = timeout(ANSWER, tokio_tungstenite::connect_async(req))
        .await
        .expect("the handshake finishes in time")
        .expect("the upgrade is accepted");
    let first = next_json(&mut ws).await.expect("a ready frame");
    assert_eq!(first["type"], "ready", "first frame: {first}");
    ws
}

/// The next text frame as JSON; `Err` describes a close, an error or a timeout.
async fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match timeout(ANSWER, ws.next()).await {
            Err(_) => return Err("no frame within 5 s".into()),
            Ok(None) => return Err("connection ended".into()),
            Ok(Some(Err(e))) => return Err(format!("read error: {e}")),
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(&t)
                    .map_err(|e| format!("server sent non-JSON ({e}): {t}"))
            }
            Ok(Some(Ok(Message::Close(c)))) => {
                return Err(format!("closed with {:?}", c.map(|c| u16::from(c.code))))
            }
            Ok(Some(Ok(Message::Binary(_)))) => return Err("server sent a binary frame".into()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Check an `error` frame's shape; returns its code.
fn ws_error_code(v: &Value) -> Result<String, String> {
    let code = v["code"]
        .as_str()
        .ok_or_else(|| format!("error frame without code: {v}"))?;
    if !WS_CODES.contains(&code) {
        return Err(format!("undocumented frame error code {code:?}"));
    }
    if v["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
        return Err(format!("error frame without message: {v}"));
    }
    if let Some(n) = v.get("nonce") {
        if n.as_str().is_none_or(|n| n.chars().count() > 64) {
            return Err(format!("error frame with a bad nonce: {v}"));
        }
    }
    if code == "rate_limited" && v["retry_after_ms"].as_u64().is_none() {
        return Err(format!("rate_limited without retry_after_ms: {v}"));
    }
    Ok(code.to_string())
}

#[derive(Clone, Copy, Debug)]
enum WsExpect {
    /// Exactly one `error` frame with this code.
    Code(&'static str),
    /// No `error` frame (a valid frame).
    Quiet,
    /// At most one `error` frame, with a documented code.
    Documented,
}

/// Send `msg`, then a probe whose answer is known (`empty_message` with nonce `probe-N`), and
/// judge everything that arrives before the probe's answer. Returns false when the connection
/// is gone.
async fn frame_then_probe(
    ws: &mut Ws,
    tally: &Tally,
    label: &str,
    msg: Message,
    expect: WsExpect,
    n: usize,
) -> bool {
    tally.ws(1);
    let probe_nonce = format!("probe-{n}");
    let probe =
        json!({"type":"send","room":"general","body":"  \n ","nonce":probe_nonce}).to_string();
    if let Err(e) = ws.send(msg).await {
        tally.problem(format!("{label}: send failed: {e}"));
        return false;
    }
    if let Err(e) = ws.send(Message::text(probe)).await {
        tally.problem(format!("{label}: probe send failed: {e}"));
        return false;
    }
    let mut errors = Vec::new();
    loop {
        let v = match next_json(ws).await {
            Ok(v) => v,
            Err(e) => {
                tally.problem(format!("{label}: {e}"));
                return false;
            }
        };
        match v["type"].as_str() {
            Some("error") if v["nonce"] == probe_nonce.as_str() => {
                if v["code"] != "empty_message" {
                    tally.problem(format!("{label}: probe answered {v}"));
                }
                break;
            }
            Some("error") => errors.push(v),
            Some("message" | "typing" | "presence") => {}
            other => tally.problem(format!("{label}: unexpected frame type {other:?}: {v}")),
        }
    }
    let codes: Vec<String> = errors
        .iter()
        .map(|e| {
            ws_error_code(e).unwrap_or_else(|why| {
                tally.problem(format!("{label}: {why}"));
                String::new()
            })
        })
        .collect();
    let ok = match expect {
        WsExpect::Code(c) => codes.len() == 1 && codes[0] == c,
        WsExpect::Quiet => codes.is_empty(),
        WsExpect::Documented => codes.len() <= 1,
    };
    if !ok {
        tally.problem(format!("{label}: expected {expect:?}, got {errors:?}"));
    }
    true
}

async fn ws_phase(app: &App, tally: &Tally, cookie: &str, seed: u64) {
    use WsExpect::*;
    let mut ws = ws_connect(app, cookie).await;
    let long_room = "r".repeat(10_000);
    let cases: Vec<(String, WsExpect)> = vec![
        ("".into(), Code("bad_frame")),
        (" ".into(), Code("bad_frame")),
        ("hello".into(), Code("bad_frame")),
        ("{".into(), Code("bad_frame")),
        ("}".into(), Code("bad_frame")),
        ("null".into(), Code("bad_frame")),
        ("true".into(), Code("bad_frame")),
        ("1".into(), Code("bad_frame")),
        ("\"send\"".into(), Code("bad_frame")),
        ("[]".into(), Code("bad_frame")),
        ("[{\"type\":\"send\"}]".into(), Code("bad_frame")),
        ("{}".into(), Code("bad_frame")),
        (r#"{"type":null}"#.into(), Code("bad_frame")),
        (r#"{"type":""}"#.into(), Code("bad_frame")),
        (
            r#"{"type":"SEND","room":"general","body":"x"}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send ","room":"general","body":"x"}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"join","room":"general"}"#.into(),
            Code("bad_frame"),
        ),
        (r#"{"type":"ready"}"#.into(), Code("bad_frame")),
        (r#"{"type":"message","id":1}"#.into(), Code("bad_frame")),
        (r#"{"type":"__proto__"}"#.into(), Code("bad_frame")),
        (r#"{"type":1}"#.into(), Code("bad_frame")),
        (r#"{"type":["send"]}"#.into(), Code("bad_frame")),
        (r#"{"type":{"send":1}}"#.into(), Code("bad_frame")),
        (r#"{"type":"send"}"#.into(), Code("bad_frame")),
        (
            r#"{"type":"send","room":"general"}"#.into(),
            Code("bad_frame"),
        ),
        (r#"{"type":"send","body":"x"}"#.into(), Code("bad_frame")),
        (
            r#"{"type":"send","room":1,"body":"x"}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":null,"body":"x"}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":["general"],"body":"x"}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":1}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":null}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":{"text":"x"}}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":"x","nonce":5}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":"x","nonce":[]}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":"x","nonce":true}"#.into(),
            Code("bad_frame"),
        ),
        (r#"{"type":"typing"}"#.into(), Code("bad_frame")),
        (r#"{"type":"typing","room":7}"#.into(), Code("bad_frame")),
        (
            r#"{"type":"send","type":"typing","room":"general"}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":1e999999}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":"\ud800"}"#.into(),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":"x"} trailing"#.into(),
            Code("bad_frame"),
        ),
        (
            format!(
                r#"{{"type":"send","room":"general","body":"x","nonce":"{}"}}"#,
                "n".repeat(65)
            ),
            Code("bad_frame"),
        ),
        (
            format!(
                r#"{{"type":"send","room":"general","body":"x","nonce":"{}"}}"#,
                "n".repeat(10_000)
            ),
            Code("bad_frame"),
        ),
        (
            format!(
                r#"{{"type":"send","room":"general","body":"x","nonce":"{}"}}"#,
                "é".repeat(65)
            ),
            Code("bad_frame"),
        ),
        ("[".repeat(60_000), Code("bad_frame")),
        ("{\"a\":".repeat(12_000), Code("bad_frame")),
        (
            format!(
                r#"{{"type":"send","room":"general","body":"x","extra":{}1{}}}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            ),
            Code("bad_frame"),
        ),
        (
            r#"{"type":"send","room":"general","body":"   "}"#.into(),
            Code("empty_message"),
        ),
        (
            r#"{"type":"send","room":"general","body":""}"#.into(),
            Code("empty_message"),
        ),
        (
            r#"{"type":"send","room":"general","body":"\n\t\r"}"#.into(),
            Code("empty_message"),
        ),
        (
            format!(
                r#"{{"type":"send","room":"general","body":"{}"}}"#,
                "x".repeat(4001)
            ),
            Code("message_too_long"),
        ),
        (
            format!(
                r#"{{"type":"send","room":"general","body":"{}"}}"#,
                "é".repeat(4001)
            ),
            Code("message_too_long"),
        ),
        (
            r#"{"type":"send","room":"nope","body":"x"}"#.into(),
            Code("unknown_room"),
        ),
        (
            r#"{"type":"send","room":"","body":"x"}"#.into(),
            Code("unknown_room"),
        ),
        (
            r#"{"type":"send","room":"GENERAL","body":"x"}"#.into(),
            Code("unknown_room"),
        ),
        (
            r#"{"type":"send","room":"general ","body":"x"}"#.into(),
            Code("unknown_room"),
        ),
        (
            r#"{"type":"send","room":"general\u0000","body":"x"}"#.into(),
            Code("unknown_room"),
        ),
        (
            r#"{"type":"send","room":"' OR 1=1 --","body":"x"}"#.into(),
            Code("unknown_room"),
        ),
        (
            format!(r#"{{"type":"send","room":"{long_room}","body":"x"}}"#),
            Code("unknown_room"),
        ),
        (
            r#"{"type":"typing","room":"nope"}"#.into(),
            Code("unknown_room"),
        ),
        // Valid frames: no error.
        (r#"{"type":"typing","room":"general"}"#.into(), Quiet),
        (
            r#"{"type":"typing","room":"general","extra":[1,2,3]}"#.into(),
            Quiet,
        ),
        (
            r#"{"type":"send","room":"general","body":"nul \u0000 inside","nonce":null}"#.into(),
            Quiet,
        ),
        (
            format!(
                r#"{{"type":"send","room":"general","body":"{}","nonce":"{}"}}"#,
                "é".repeat(4000),
                "é".repeat(64)
            ),
            Quiet,
        ),
        (
            r#"{"type":"send","room":"general","body":"<script>alert(1)</script>","nonce":"xss"}"#
                .into(),
            Quiet,
        ),
        (
            r#"{"type":"send","room":"general","body":"\u202e\ufeff💬"}"#.into(),
            Quiet,
        ),
    ];
    let mut n = 0;
    for (text, expect) in &cases {
        n += 1;
        let label = format!("frame {:?}", text.chars().take(60).collect::<String>());
        if !frame_then_probe(
            &mut ws,
            tally,
            &label,
            Message::text(text.clone()),
            *expect,
            n,
        )
        .await
        {
            ws = ws_connect(app, cookie).await;
        }
    }
    // Binary frames are answered with bad_frame.
    for bytes in [
        &b""[..],
        b"\x00",
        br#"{"type":"send","room":"general","body":"x"}"#,
        b"\xff\xfe\xfd",
    ] {
        n += 1;
        if !frame_then_probe(
            &mut ws,
            tally,
            &format!("binary {bytes:?}"),
            Message::binary(bytes.to_vec()),
            Code("bad_frame"),
            n,
        )
        .await
        {
            ws = ws_connect(app, cookie).await;
        }
    }
    // Pings and pongs from the client are fine.
    n += 1;
    frame_then_probe(
        &mut ws,
        tally,
        "ping",
        Message::Ping(vec![1, 2, 3].into()),
        Quiet,
        n,
    )
    .await;
    n += 1;
    frame_then_probe(
        &mut ws,
        tally,
        "unsolicited pong",
        Message::Pong(vec![9].into()),
        Quiet,
        n,
    )
    .await;

    // Mutated frames.
    let mut rng = Rng::new(seed ^ 0x5eed_0003);
    let bases = [
        r#"{"type":"send","room":"general","body":"hello there","nonce":"m-1"}"#,
        r#"{"type":"send","room":"general","body":"hi"}"#,
        r#"{"type":"typing","room":"general"}"#,
    ];
    for i in 0..MUTANTS * 2 {
        n += 1;
        let base = *rng.pick(&bases);
        let bytes = mutate(&mut rng, base.as_bytes());
        // Text frames must be UTF-8: send invalid sequences as binary (they get bad_frame);
        // invalid UTF-8 inside text frames is covered by the raw frame phase.
        let (msg, label) = match String::from_utf8(bytes) {
            Ok(t) => (Message::text(t.clone()), format!("mutant #{i} {t:?}")),
            Err(e) => (
                Message::binary(e.into_bytes()),
                format!("mutant #{i} (binary)"),
            ),
        };
        if !frame_then_probe(&mut ws, tally, &label, msg, Documented, n).await {
            ws = ws_connect(app, cookie).await;
        }
    }

    // 70 KiB in one frame: closed with 1009.
    tally.ws(1);
    let mut big = ws_connect(app, cookie).await;
    let _ = big.send(Message::text("x".repeat(70 * 1024))).await;
    let mut saw = None;
    loop {
        match timeout(ANSWER, big.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => {
                saw = c.map(|c| u16::from(c.code));
                break;
            }
            Ok(Some(Ok(_))) => {}
            // A reset may overtake the close frame; the raw phase checks the code exactly.
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) => {
                tally.problem("70 KiB frame: the connection stayed open".into());
                break;
            }
        }
    }
    if saw.is_some_and(|c| c != 1009) {
        tally.problem(format!("70 KiB frame: closed with {saw:?}, expected 1009"));
    }

    // A burst: 2,000 frames without waiting, answered one by one in order.
    let burst_kinds: [(String, &str); 5] = [
        ("not json".into(), "bad_frame"),
        (r#"{"type":"nope"}"#.into(), "bad_frame"),
        (
            r#"{"type":"send","room":"general","body":" "}"#.into(),
            "empty_message",
        ),
        (
            r#"{"type":"send","room":"nope","body":"x"}"#.into(),
            "unknown_room",
        ),
        (
            format!(
                r#"{{"type":"send","room":"general","body":"{}"}}"#,
                "y".repeat(4001)
            ),
            "message_too_long",
        ),
    ];
    let total = 2000;
    let ws = ws_connect(app, cookie).await;
    let (mut sink, mut stream) = ws.split();
    let kinds = burst_kinds.clone();
    let writer = async move {
        for i in 0..total {
            let (text, _) = &kinds[i % kinds.len()];
            if sink.feed(Message::text(text.clone())).await.is_err() {
                return (i, sink);
            }
            if i % 64 == 63 && sink.flush().await.is_err() {
                return (i, sink);
            }
        }
        let _ = sink.flush().await;
        (total, sink)
    };
    let reader = async {
        let mut got = Vec::with_capacity(total);
        while got.len() < total {
            match timeout(ANSWER, stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["type"] == "error" {
                        got.push(v["code"].as_str().unwrap_or("?").to_string());
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(format!("after {} answers: {e}", got.len())),
                Ok(None) => return Err(format!("ended after {} answers", got.len())),
                Err(_) => return Err(format!("stalled after {} answers", got.len())),
            }
        }
        Ok(got)
    };
    let ((sent, _sink), got) = tokio::join!(writer, reader);
    tally.ws(sent);
    match got {
        Ok(codes) => {
            for (i, code) in codes.iter().enumerate() {
                let want = burst_kinds[i % burst_kinds.len()].1;
                if code != want {
                    tally.problem(format!("burst answer #{i}: {code}, expected {want}"));
                    break;
                }
            }
        }
        Err(e) => tally.problem(format!("burst of {total}: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket frames written by hand

struct RawWs {
    s: TcpStream,
    buf: Vec<u8>,
}

async fn raw_ws(app: &App, cookie: &str) -> Result<RawWs, String> {
    let mut s = TcpStream::connect(app.addr)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Cookie: hearth_session={cookie}\r\n\r\n",
        app.addr
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = timeout(ANSWER, s.read(&mut chunk))
            .await
            .map_err(|_| "handshake timed out")?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "upgrade refused: {}",
            String::from_utf8_lossy(&buf[..head_end])
        ));
    }
    buf.drain(..head_end + 4);
    let mut ws = RawWs { s, buf };
    match ws.read_frame().await? {
        (1, payload) if payload.starts_with(br#"{"type":"ready""#) => Ok(ws),
        (op, payload) => Err(format!(
            "first frame {op}: {}",
            String::from_utf8_lossy(&payload)
        )),
    }
}

/// Encode one client frame. `mask` false sends it unmasked (a protocol violation).
fn ws_frame(first_byte: u8, payload: &[u8], mask: bool, declared_len: Option<u64>) -> Vec<u8> {
    let mut out = vec![first_byte];
    let len = declared_len.unwrap_or(payload.len() as u64);
    let m = if mask { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if mask {
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

const FIN_TEXT: u8 = 0x81;
const FIN_BINARY: u8 = 0x82;

impl RawWs {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.s.write_all(bytes).await.map_err(|e| e.to_string())
    }

    /// Read one server frame: (opcode, payload). Server frames are never masked.
    async fn read_frame(&mut self) -> Result<(u8, Vec<u8>), String> {
        let mut chunk = [0u8; 8192];
        loop {
            if self.buf.len() >= 2 {
                let op = self.buf[0] & 0x0f;
                if self.buf[1] & 0x80 != 0 {
                    return Err("the server masked a frame".into());
                }
                let (len, hdr) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    l => (l as usize, 2),
                };
                if hdr > 0 && self.buf.len() >= hdr + len {
                    let payload = self.buf[hdr..hdr + len].to_vec();
                    self.buf.drain(..hdr + len);
                    return Ok((op, payload));
                }
            }
            let n = timeout(ANSWER, self.s.read(&mut chunk))
                .await
                .map_err(|_| "no frame within 5 s".to_string())?
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("eof".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// After a bad frame: send a probe and read until its answer (the connection survived),
    /// a close frame (its code), or the end of the connection.
    async fn outcome(&mut self) -> Result<Outcome, String> {
        let probe = br#"{"type":"send","room":"general","body":" ","nonce":"raw-probe"}"#;
        let _ = self.write(&ws_frame(FIN_TEXT, probe, true, None)).await;
        let mut errors = Vec::new();
        loop {
            match self.read_frame().await {
                Ok((1, p)) => {
                    let v: Value = serde_json::from_slice(&p)
                        .map_err(|e| format!("non-JSON text frame: {e}"))?;
                    if v["type"] == "error" && v["nonce"] == "raw-probe" {
                        return Ok(Outcome::Open(errors));
                    }
                    if v["type"] == "error" {
                        errors.push(ws_error_code(&v)?);
                    }
                }
                Ok((8, p)) => {
                    let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                    return Ok(Outcome::Closed(code));
                }
                Ok(_) => {}
                Err(e) if e.starts_with("no frame") => return Err(e),
                Err(_) => return Ok(Outcome::Dropped),
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Still open; the error codes that came before the probe's answer.
    Open(Vec<String>),
    /// A close frame with this code.
    Closed(Option<u16>),
    /// The TCP connection ended without a close frame.
    Dropped,
}

async fn raw_ws_phase(app: &App, tally: &Tally, cookie: &str) {
    let text_json = br#"{"type":"nope"}"#;
    let mut frag_big = ws_frame(0x01, &vec![b'a'; 35 * 1024], true, None);
    frag_big.extend(ws_frame(0x80, &vec![b'a'; 35 * 1024], true, None));
    let mut frag_ok = ws_frame(0x01, br#"{"type":"no"#, true, None);
    frag_ok.extend(ws_frame(0x89, b"mid", true, None)); // a ping between fragments is allowed
    frag_ok.extend(ws_frame(0x80, br#"pe"}"#, true, None));
    let mut frag_bad_utf8 = ws_frame(0x01, b"{\"x\":\"\xe2\x82", true, None);
    frag_bad_utf8.extend(ws_frame(0x80, b"(\"}", true, None));
    let mut two_starts = ws_frame(0x01, b"{", true, None);
    two_starts.extend(ws_frame(0x01, b"}", true, None));
    let mut close_bad = vec![0x03, 0xe7]; // close code 999
    close_bad.extend_from_slice(b"bye");
    let mut close_bad_reason = vec![0x03, 0xe8];
    close_bad_reason.extend_from_slice(b"\xff\xfe");

    enum Want {
        /// Stays open and answers with exactly these codes.
        Open(&'static [&'static str]),
        /// Closed (with a close frame or not), and if a code is given, with that code.
        Closed(Option<u16>),
        /// Either is acceptable; the server only has to survive.
        Survive,
    }
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        (
            "text, invalid UTF-8",
            ws_frame(FIN_TEXT, b"\xff\xfe", true, None),
            Want::Closed(None),
        ),
        (
            "text, truncated sequence",
            ws_frame(FIN_TEXT, b"{\"a\":\"\xc3\"}", true, None),
            Want::Closed(None),
        ),
        (
            "text, overlong encoding",
            ws_frame(FIN_TEXT, b"\xc0\xaf", true, None),
            Want::Closed(None),
        ),
        (
            "text, encoded surrogate",
            ws_frame(FIN_TEXT, b"\"\xed\xa0\x80\"", true, None),
            Want::Closed(None),
        ),
        (
            "text, invalid UTF-8 across fragments",
            frag_bad_utf8,
            Want::Closed(None),
        ),
        (
            "binary, invalid UTF-8",
            ws_frame(FIN_BINARY, b"\xff\xfe", true, None),
            Want::Open(&["bad_frame"]),
        ),
        ("fragmented text", frag_ok, Want::Open(&["bad_frame"])),
        (
            "unmasked frame",
            ws_frame(FIN_TEXT, text_json, false, None),
            Want::Closed(None),
        ),
        (
            "reserved opcode 3",
            ws_frame(0x83, text_json, true, None),
            Want::Closed(None),
        ),
        (
            "reserved control opcode 0xB",
            ws_frame(0x8b, b"", true, None),
            Want::Closed(None),
        ),
        (
            "RSV1 without an extension",
            ws_frame(0xc1, text_json, true, None),
            Want::Closed(None),
        ),
        (
            "RSV3",
            ws_frame(0x91, text_json, true, None),
            Want::Closed(None),
        ),
        (
            "continuation without a start",
            ws_frame(0x80, text_json, true, None),
            Want::Closed(None),
        ),
        (
            "new message inside a fragmented one",
            two_starts,
            Want::Closed(None),
        ),
        (
            "ping over 125 bytes",
            ws_frame(0x89, &[0u8; 126], true, None),
            Want::Closed(None),
        ),
        (
            "fragmented ping",
            ws_frame(0x09, b"x", true, None),
            Want::Closed(None),
        ),
        (
            "close with code 999",
            ws_frame(0x88, &close_bad, true, None),
            Want::Survive,
        ),
        (
            "close with a non-UTF-8 reason",
            ws_frame(0x88, &close_bad_reason, true, None),
            Want::Survive,
        ),
        (
            "close with a 1-byte payload",
            ws_frame(0x88, b"\x03", true, None),
            Want::Survive,
        ),
        (
            "declared 70 KiB",
            ws_frame(FIN_TEXT, b"", true, Some(70 * 1024)),
            Want::Closed(Some(1009)),
        ),
        (
            "declared 2^62 bytes",
            ws_frame(FIN_TEXT, b"", true, Some(1 << 62)),
            Want::Closed(Some(1009)),
        ),
        (
            "declared 2^64-1 bytes",
            ws_frame(FIN_BINARY, b"", true, Some(u64::MAX)),
            Want::Survive,
        ),
        (
            "70 KiB in two fragments",
            frag_big,
            Want::Closed(Some(1009)),
        ),
        (
            "non-minimal length",
            {
                let mut f = vec![FIN_TEXT, 0x80 | 126, 0, text_json.len() as u8, 1, 2, 3, 4];
                f.extend(
                    text_json
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
                );
                f
            },
            Want::Survive,
        ),
    ];
    for (label, bytes, want) in cases {
        tally.ws(1);
        let mut ws = match raw_ws(app, cookie).await {
            Ok(ws) => ws,
            Err(e) => {
                tally.problem(format!("raw ws {label}: {e}"));
                continue;
            }
        };
        let _ = ws.write(&bytes).await;
        let outcome = match ws.outcome().await {
            Ok(o) => o,
            Err(e) => {
                tally.problem(format!("raw ws {label}: {e}"));
                continue;
            }
        };
        let ok = match (&want, &outcome) {
            (Want::Open(codes), Outcome::Open(got)) => {
                got.iter().map(String::as_str).eq(codes.iter().copied())
            }
            (Want::Closed(None), Outcome::Closed(_) | Outcome::Dropped) => true,
            (Want::Closed(Some(c)), Outcome::Closed(got)) => *got == Some(*c),
            (Want::Survive, _) => true,
            _ => false,
        };
        if !ok {
            tally.problem(format!("raw ws {label}: got {outcome:?}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Afterwards

/// `/healthz` is ok, and a new user can register, chat and receive their own message.
async fn assert_healthy(app: &App, who: &str) {
    let res = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(res.status(), 200, "healthz");
    assert_eq!(res.text().await.expect("healthz body"), "ok");

    let cookie = app.signup(who).await;
    let mut ws = ws_connect(app, &cookie).await;
    let nonce = format!("{who}-hello");
    ws.send(Message::text(
        json!({"type":"send","room":"general","body":"  still here  ","nonce":nonce}).to_string(),
    ))
    .await
    .expect("send");
    let id = loop {
        let v = next_json(&mut ws).await.expect("the message comes back");
        if v["type"] == "message" && v["nonce"] == nonce.as_str() {
            assert_eq!(v["user"], who);
            assert_eq!(v["body"], "still here");
            break v["id"].as_i64().expect("an id");
        }
        assert_ne!(v["type"], "error", "sending failed: {v}");
    };
    let res = app
        .http
        .get(app.url(&format!("/api/rooms/general/messages?after={}", id - 1)))
        .header("cookie", format!("hearth_session={cookie}"))
        .send()
        .await
        .expect("history");
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.expect("history JSON");
    assert_eq!(v["messages"][0]["id"], id, "{v}");
    let _ = ws.close(None).await;
}

fn seed() -> u64 {
    std::env::var("HEARTH_ADVERSARIAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4845_4152_5448)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_documented_answers_and_the_server_stays_healthy() {
    let mut app = start().await;
    let seed = seed();
    let tally = Tally::default();
    let fuzzer = app.signup("fuzzer").await;
    let raw_user = app.signup("rawfuzzer").await;
    let ws_user = app.signup("wsfuzzer").await;

    let started = std::time::Instant::now();
    let timed = |name: &'static str| {
        move |_| {
            eprintln!(
                "adversarial: {name} phase done after {:.1} s",
                started.elapsed().as_secs_f64()
            )
        }
    };
    tokio::join!(
        raw_http_phase(&app, &tally, &raw_user, seed).map(timed("raw HTTP")),
        http_phase(&app, &tally, &fuzzer, seed).map(timed("HTTP")),
        async {
            ws_phase(&app, &tally, &ws_user, seed).await;
            timed("WebSocket")(());
            raw_ws_phase(&app, &tally, &ws_user).await;
        }
        .map(timed("raw WebSocket")),
    );
    let http = tally.http.load(Ordering::Relaxed);
    let ws = tally.ws.load(Ordering::Relaxed);
    let server_errors = tally.server_errors.load(Ordering::Relaxed);
    let unanswered = tally.unanswered.load(Ordering::Relaxed);
    println!(
        "adversarial: {http} HTTP requests, {ws} WebSocket frames, {server_errors} server errors"
    );
    println!(
        "adversarial: seed {seed}, {:.1} s, {unanswered} garbage requests closed without an answer",
        started.elapsed().as_secs_f64()
    );

    assert_healthy(&app, "survivor").await;
    // The accounts used for the abuse still work too.
    let res = app
        .http
        .get(app.url("/api/me"))
        .header("cookie", format!("hearth_session={fuzzer}"))
        .send()
        .await
        .expect("me");
    assert_eq!(res.status(), 200);

    let problems = stop_and_collect(&mut app, &tally).await;
    assert!(
        problems.is_empty() && server_errors == 0,
        "{} problems (seed {seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        http >= 1000 && ws >= 1000,
        "too few inputs: {http} HTTP, {ws} WebSocket"
    );
}

/// Shut the server down (gracefully, in time) and return the problems recorded.
async fn stop_and_collect(app: &mut App, tally: &Tally) -> Vec<String> {
    if let Some(server) = app.server.take() {
        timeout(Duration::from_secs(30), server.shutdown())
            .await
            .expect("the server shuts down in time");
    }
    tally
        .problems
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Resource abuse: hash admission, raced throttles, connection floods, quota abuse

/// Send one JSON request and record its answer: a 5xx or a hang is a server error; the status
/// is returned for the phase's own counting (0 when nothing came back).
async fn abuse_call(
    app: &App,
    tally: &Tally,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> u16 {
    let mut rb = app
        .http
        .request(method, app.url(path))
        .header("origin", &app.base);
    if let Some(c) = cookie {
        rb = rb.header("cookie", format!("hearth_session={c}"));
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    tally.http(1);
    match timeout(Duration::from_secs(30), rb.send()).await {
        Ok(Ok(res)) => {
            let status = res.status().as_u16();
            if status >= 500 {
                tally.server_errors.fetch_add(1, Ordering::Relaxed);
                tally.problem(format!("{path}: {status}"));
            }
            status
        }
        // Refused at accept by a connection cap: no HTTP answer; the caller decides.
        Ok(Err(_)) => 0,
        Err(_) => {
            tally.server_errors.fetch_add(1, Ordering::Relaxed);
            tally.problem(format!("{path}: hung"));
            0
        }
    }
}

/// 200 registrations that hang up while they wait for a password-hashing slot, then a real
/// registration and login must still work at once.
async fn hash_admission_phase(app: &App, tally: &Tally) {
    let mut sockets = Vec::new();
    for i in 0..200 {
        let body = json!({ "username": format!("ghost{i}"), "password": PASSWORD }).to_string();
        let request = format!(
            "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let Ok(mut s) = TcpStream::connect(app.addr).await else {
            tally.problem("hash admission: cannot connect".into());
            continue;
        };
        let _ = s.write_all(request.as_bytes()).await;
        tally.http(1);
        sockets.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(sockets);
    // While the server is still closing the abandoned connections, the per-address cap may
    // refuse a new one for a moment (no answer at all); a leaked hashing place would instead
    // answer 429 `busy` for good.
    let mut status = 0;
    for _ in 0..20 {
        status = abuse_call(
            app,
            tally,
            Method::POST,
            "/api/register",
            None,
            Some(json!({ "username": "realperson", "password": PASSWORD })),
        )
        .await;
        if status != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if status != 201 {
        tally.problem(format!("hash admission: a real registration got {status}"));
    }
    let status = abuse_call(
        app,
        tally,
        Method::POST,
        "/api/login",
        None,
        Some(json!({ "username": "realperson", "password": PASSWORD })),
    )
    .await;
    if status != 200 {
        tally.problem(format!("hash admission: a real login got {status}"));
    }
}

/// 40 concurrent wrong passwords for one account: at most the documented 10 are checked.
async fn raced_throttle_phase(app: &App, tally: &Tally) {
    app.signup("target").await;
    let guesses = (0..40).map(|i| {
        abuse_call(
            app,
            tally,
            Method::POST,
            "/api/login",
            None,
            Some(json!({ "username": "target", "password": format!("guess {i}") })),
        )
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|s| **s == 401).count();
    let throttled = answers.iter().filter(|s| **s == 429).count();
    if checked > 10 || checked + throttled != answers.len() {
        tally.problem(format!(
            "raced throttle: {checked} guesses checked, {throttled} throttled of {}",
            answers.len()
        ));
    }
}

/// 600 idle sockets from one address: the server keeps answering everyone else.
async fn connection_flood_phase(app: &App, tally: &Tally) {
    let mut flood = Vec::new();
    for _ in 0..600 {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            break;
        };
        if socket.bind("127.0.0.4:0".parse().unwrap()).is_err() {
            tally.problem("connection flood: cannot bind 127.0.0.4".into());
            break;
        }
        match socket.connect(app.addr).await {
            Ok(s) => flood.push(s),
            Err(e) => {
                tally.problem(format!("connection flood: connect failed: {e}"));
                break;
            }
        }
    }
    for _ in 0..20 {
        let status = abuse_call(app, tally, Method::GET, "/healthz", None, None).await;
        if status != 200 {
            tally.problem(format!("connection flood: /healthz answered {status}"));
        }
    }
    drop(flood);
}

/// One account tries to create 50 rooms, make 160 people-to-room additions, mint 50 tokens and
/// start 70 conversations: the quotas stop each with documented answers.
async fn quota_phase(app: &App, tally: &Tally) {
    let spammer = app.signup("spammer").await;
    for v in 0..8 {
        app.signup(&format!("victim{v}")).await;
    }
    let mut created = Vec::new();
    let mut refused = 0;
    for i in 0..50 {
        let name = format!("spam-{i}");
        let body = Some(json!({ "name": name, "public": true }));
        match abuse_call(app, tally, Method::POST, "/api/rooms", Some(&spammer), body).await {
            201 => created.push(name),
            429 => refused += 1,
            other => tally.problem(format!("quota: room creation answered {other}")),
        }
    }
    if created.len() != 20 || refused != 30 {
        tally.problem(format!(
            "quota: {} rooms created, {refused} refused",
            created.len()
        ));
    }
    let (mut added, mut limited) = (0, 0);
    for v in 0..8 {
        for room in &created {
            let path = format!("/api/rooms/{room}/members");
            let body = Some(json!({ "username": format!("victim{v}") }));
            match abuse_call(app, tally, Method::POST, &path, Some(&spammer), body).await {
                200 => added += 1,
                429 => limited += 1,
                other => tally.problem(format!("quota: an invitation answered {other}")),
            }
        }
    }
    if added != 100 || limited != 60 {
        tally.problem(format!(
            "quota: {added} invitations passed and {limited} were limited (cap 100 of 160)"
        ));
    }
    let mut tokens = 0;
    for i in 0..50 {
        let body = Some(json!({ "name": format!("bot {i}") }));
        if abuse_call(
            app,
            tally,
            Method::POST,
            "/api/tokens",
            Some(&spammer),
            body,
        )
        .await
            == 201
        {
            tokens += 1;
        }
    }
    if tokens != 20 {
        tally.problem(format!("quota: {tokens} tokens minted past a cap of 20"));
    }
    for i in 0..70 {
        app.signup(&format!("dm{i}")).await;
    }
    let mut dms = 0;
    for i in 0..70 {
        let body = Some(json!({ "users": [format!("dm{i}")] }));
        if abuse_call(app, tally, Method::POST, "/api/dms", Some(&spammer), body).await == 201 {
            dms += 1;
        }
    }
    if dms != 60 {
        tally.problem(format!(
            "quota: {dms} conversations started past a cap of 60"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_abuse_is_refused_without_server_errors() {
    let mut app = start_with(|c| {
        // Hashes slow enough that abandoned requests queue up for the cores.
        c.auth.pbkdf2_iterations = 20_000;
        c.limits.http_connections_per_address = 64;
    })
    .await;
    let tally = Tally::default();
    let started = std::time::Instant::now();
    hash_admission_phase(&app, &tally).await;
    raced_throttle_phase(&app, &tally).await;
    connection_flood_phase(&app, &tally).await;
    quota_phase(&app, &tally).await;
    let http = tally.http.load(Ordering::Relaxed);
    let server_errors = tally.server_errors.load(Ordering::Relaxed);
    println!(
        "adversarial: abuse (hash admission, raced throttles, connection floods, quotas): \
         {http} requests, {server_errors} server errors, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_healthy(&app, "abusesurvivor").await;
    let problems = stop_and_collect(&mut app, &tally).await;
    assert!(
        problems.is_empty() && server_errors == 0,
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A header the application reads that is not visible ASCII makes a malformed request: 400
/// (or the code of the check it fails), never 405 `method_not_allowed` on a route whose
/// method is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_are_not_text_are_bad_requests() {
    let mut app = start().await;
    let cookie = app.signup("headers").await;
    let tally = Tally::default();
    for (label, bytes, codes) in non_text_headers(&cookie) {
        raw_case(&app, &tally, label, &bytes, Expect::OneOf(codes)).await;
    }
    assert_healthy(&app, "afterheaders").await;
    let problems = stop_and_collect(&mut app, &tally).await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
