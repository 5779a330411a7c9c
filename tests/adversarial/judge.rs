//! What an answer must look like: the documented error codes and their statuses, the tally of
//! everything sent, and the verdict on each answer. Problems are recorded rather than asserted
//! on the spot, so that one run reports every broken answer (and the summary) at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

/// Everything the phases sent and every problem they saw, shared by phases running at once.
#[derive(Default)]
pub struct Tally {
    http: AtomicUsize,
    ws: AtomicUsize,
    server_errors: AtomicUsize,
    /// Requests the parser dropped without any answer (allowed for protocol garbage).
    unanswered: AtomicUsize,
    problems: Mutex<Vec<String>>,
}

/// The counters of a [`Tally`] at one moment.
pub struct Totals {
    pub http: usize,
    pub ws: usize,
    pub server_errors: usize,
    pub unanswered: usize,
}

impl Tally {
    /// Record a contract violation (the first 200 are kept).
    pub fn problem(&self, what: String) {
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < 200 {
            p.push(what);
        }
    }

    /// Record a server error (a 5xx or a hang), which is a problem too.
    pub fn server_error(&self, what: String) {
        self.server_errors.fetch_add(1, Ordering::Relaxed);
        self.problem(what);
    }

    /// Count `n` HTTP requests sent.
    pub fn http(&self, n: usize) {
        self.http.fetch_add(n, Ordering::Relaxed);
    }

    /// Count `n` WebSocket frames sent.
    pub fn ws(&self, n: usize) {
        self.ws.fetch_add(n, Ordering::Relaxed);
    }

    pub fn totals(&self) -> Totals {
        Totals {
            http: self.http.load(Ordering::Relaxed),
            ws: self.ws.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            unanswered: self.unanswered.load(Ordering::Relaxed),
        }
    }

    /// Fail the test with every recorded problem, if there is any; `context` follows the
    /// count in the message (e.g. the seed that replays the run).
    pub fn assert_clean(&self, context: &str) {
        let problems = self
            .problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let server_errors = self.server_errors.load(Ordering::Relaxed);
        assert!(
            problems.is_empty() && server_errors == 0,
            "{} problems{context}:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The documented codes

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

/// Check an `error` frame's shape; returns its code.
pub fn ws_error_code(v: &Value) -> Result<String, String> {
    let code = v["code"]
        .as_str()
        .ok_or_else(|| format!("error frame without code: {v}"))?;
    if !WS_CODES.contains(&code) {
        return Err(format!("undocumented frame error code {code:?}"));
    }
    if v["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
        return Err(format!("error frame without message: {v}"));
    }
    // The refused frame's own nonce, whatever its length (one refused for being too long is
    // echoed too, so the client can match the refusal).
    if let Some(n) = v.get("nonce") {
        if n.as_str().is_none() {
            return Err(format!(
                "error frame with a nonce that is not a string: {v}"
            ));
        }
    }
    if code == "rate_limited" && v["retry_after_ms"].as_u64().is_none() {
        return Err(format!("rate_limited without retry_after_ms: {v}"));
    }
    Ok(code.to_string())
}

// ---------------------------------------------------------------------------------------------
// HTTP answers

/// What an HTTP answer must be.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
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

/// One HTTP answer, however it was read (reqwest or raw bytes).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
}

fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
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
pub fn judge(tally: &Tally, label: &str, reply: Result<Reply, String>, expect: Expect) {
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
        tally.server_error(format!(
            "{label}: server error {status}: {}",
            String::from_utf8_lossy(&reply.body)
        ));
        return;
    }
    if let Err(e) = verdict(&reply, expect) {
        tally.problem(format!("{label}: {e}"));
    }
}

/// Whether an answer that is not a server error meets `expect`.
fn verdict(reply: &Reply, expect: Expect) -> Result<(), String> {
    let status = reply.status;
    match expect {
        Expect::Documented if status >= 400 => error_code(reply).map(drop),
        Expect::Documented if (100..400).contains(&status) => Ok(()),
        Expect::Documented => Err(format!("status {status}")),
        Expect::OneOf(codes) => one_of(reply, codes),
        Expect::Error(want_status, want_code) => error_code(reply).and_then(|c| {
            if status == want_status && c == want_code {
                Ok(())
            } else {
                Err(format!("{status} {c}, expected {want_status} {want_code}"))
            }
        }),
        Expect::Bodiless => Ok(()),
        Expect::Refused if (400..500).contains(&status) => Ok(()),
        Expect::Refused => Err(format!("status {status}: served, not refused")),
        Expect::Status(want) if status == want => Ok(()),
        Expect::Status(want) => Err(format!(
            "status {status}, expected {want}: {}",
            String::from_utf8_lossy(&reply.body)
        )),
        Expect::Protocol => protocol(reply),
    }
}

/// [`Expect::OneOf`]: a 2xx when `"ok"` leads the list, else one of the codes.
fn one_of(reply: &Reply, codes: &[&str]) -> Result<(), String> {
    let status = reply.status;
    if status < 300 && codes.first() == Some(&"ok") {
        Ok(())
    } else if status >= 400 {
        error_code(reply).and_then(|c| {
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

/// [`Expect::Protocol`]: a bare answer comes from the parser, anything else from the
/// application.
fn protocol(reply: &Reply) -> Result<(), String> {
    let status = reply.status;
    if reply.body.is_empty() {
        if (400..500).contains(&status) || status == 505 {
            Ok(())
        } else {
            Err(format!("parser answered {status}"))
        }
    } else if status >= 400 {
        error_code(reply).map(drop)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reading answers off the wire

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A body read so far: its bytes and where the response ends, or `None` while incomplete.
type Body = Option<(Vec<u8>, usize)>;

/// `Ok(None)` while more bytes may come, the error `what` once none will.
fn incomplete(eof: bool, what: &str) -> Result<Body, String> {
    if eof {
        Err(what.into())
    } else {
        Ok(None)
    }
}

/// Parse one HTTP/1.1 response at the start of `buf`; returns it and the bytes it used, or
/// `None` while it is incomplete. `eof` says no more bytes will come (which ends a body that
/// has neither a length nor chunks).
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<(Reply, usize)>, String> {
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
    let (status, headers) = parse_head(&buf[..head_end])?;
    let at = head_end + 4;
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Some((Vec::new(), at))
    } else if let Some(len) = header_in(&headers, "content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        if buf.len() < at + len {
            incomplete(eof, "truncated body")?
        } else {
            Some((buf[at..at + len].to_vec(), at + len))
        }
    } else if header_in(&headers, "transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        chunked_body(buf, at, eof)?
    } else if eof {
        Some((buf[at..].to_vec(), buf.len()))
    } else {
        None
    };
    Ok(body.map(|(body, end)| {
        (
            Reply {
                status,
                headers,
                body,
            },
            end,
        )
    }))
}

/// The status and the headers (names lower-cased) of a response head.
fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), String> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

/// A chunked body starting at `at`.
fn chunked_body(buf: &[u8], mut at: usize, eof: bool) -> Result<Body, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(&buf[at..], b"\r\n") else {
            return incomplete(eof, "truncated chunk");
        };
        let line_end = line_end + at;
        let size_text = String::from_utf8_lossy(&buf[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        at = line_end + 2;
        if buf.len() < at + size + 2 {
            return incomplete(eof, "truncated chunk");
        }
        if size == 0 {
            return Ok(Some((body, at + 2)));
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}
