//! WebSocket frames written by hand, which can break the framing itself: invalid UTF-8,
//! unmasked and reserved frames, broken fragmentation, bad control frames and lying lengths.
//! Each case gets a connection of its own.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::judge::{find, ws_error_code};
use crate::{Phase, ANSWER};

const FIN_TEXT: u8 = 0x81;
const FIN_BINARY: u8 = 0x82;
/// A text frame the server answers with `bad_frame`.
const TEXT_JSON: &[u8] = br#"{"type":"nope"}"#;

pub async fn phase(p: Phase<'_>) {
    let mut cases = utf8_cases();
    cases.extend(framing_cases());
    cases.extend(control_cases());
    cases.extend(length_cases());
    for (label, bytes, want) in cases {
        run_case(p, label, &bytes, want).await;
    }
}

/// What must become of the connection after a case's bytes.
enum Want {
    /// Stays open and answers with exactly these codes.
    Open(&'static [&'static str]),
    /// Closed (with a close frame or not), and if a code is given, with that code.
    Closed(Option<u16>),
    /// Either is acceptable; the server only has to survive.
    Survive,
}

/// What became of the connection.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Still open; the error codes that came before the probe's answer.
    Open(Vec<String>),
    /// A close frame with this code.
    Closed(Option<u16>),
    /// The TCP connection ended without a close frame.
    Dropped,
}

type Case = (&'static str, Vec<u8>, Want);

/// Write one case's bytes on a fresh connection and judge the outcome.
async fn run_case(p: Phase<'_>, label: &str, bytes: &[u8], want: Want) {
    p.tally.ws(1);
    let mut ws = match RawWs::open(p).await {
        Ok(ws) => ws,
        Err(e) => return p.tally.problem(format!("raw ws {label}: {e}")),
    };
    let _ = ws.write(bytes).await;
    let outcome = match ws.outcome().await {
        Ok(o) => o,
        Err(e) => return p.tally.problem(format!("raw ws {label}: {e}")),
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
        p.tally.problem(format!("raw ws {label}: got {outcome:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The cases

/// One masked frame with this first byte.
fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    ws_frame(first_byte, payload, true, None)
}

/// Text that is not UTF-8 ends the connection with 1007; a binary frame is only a bad frame.
fn utf8_cases() -> Vec<Case> {
    let mut across_fragments = frame(0x01, b"{\"x\":\"\xe2\x82");
    across_fragments.extend(frame(0x80, b"(\"}"));
    let mut fragmented = frame(0x01, br#"{"type":"no"#);
    fragmented.extend(frame(0x89, b"mid")); // a ping between fragments is allowed
    fragmented.extend(frame(0x80, br#"pe"}"#));
    vec![
        (
            "text, invalid UTF-8",
            frame(FIN_TEXT, b"\xff\xfe"),
            Want::Closed(Some(1007)),
        ),
        (
            "text, truncated sequence",
            frame(FIN_TEXT, b"{\"a\":\"\xc3\"}"),
            Want::Closed(Some(1007)),
        ),
        (
            "text, overlong encoding",
            frame(FIN_TEXT, b"\xc0\xaf"),
            Want::Closed(Some(1007)),
        ),
        (
            "text, encoded surrogate",
            frame(FIN_TEXT, b"\"\xed\xa0\x80\""),
            Want::Closed(Some(1007)),
        ),
        (
            "text, invalid UTF-8 across fragments",
            across_fragments,
            Want::Closed(Some(1007)),
        ),
        (
            "binary, invalid UTF-8",
            frame(FIN_BINARY, b"\xff\xfe"),
            Want::Open(&["bad_frame"]),
        ),
        ("fragmented text", fragmented, Want::Open(&["bad_frame"])),
    ]
}

/// Frames that break the protocol (unmasked, reserved opcodes and bits, broken
/// fragmentation) end the connection with 1002.
fn framing_cases() -> Vec<Case> {
    let mut two_starts = frame(0x01, b"{");
    two_starts.extend(frame(0x01, b"}"));
    let closed = |label, bytes| (label, bytes, Want::Closed(Some(1002)));
    vec![
        closed("unmasked frame", ws_frame(FIN_TEXT, TEXT_JSON, false, None)),
        closed("reserved opcode 3", frame(0x83, TEXT_JSON)),
        closed("reserved control opcode 0xB", frame(0x8b, b"")),
        closed("RSV1 without an extension", frame(0xc1, TEXT_JSON)),
        closed("RSV3", frame(0x91, TEXT_JSON)),
        closed("continuation without a start", frame(0x80, TEXT_JSON)),
        closed("new message inside a fragmented one", two_starts),
    ]
}

/// Control frames that are too long or fragmented (1002), or carry a bad close code or
/// reason.
fn control_cases() -> Vec<Case> {
    let mut close_bad = vec![0x03, 0xe7]; // close code 999
    close_bad.extend_from_slice(b"bye");
    let mut close_bad_reason = vec![0x03, 0xe8];
    close_bad_reason.extend_from_slice(b"\xff\xfe");
    vec![
        (
            "ping over 125 bytes",
            frame(0x89, &[0u8; 126]),
            Want::Closed(Some(1002)),
        ),
        (
            "fragmented ping",
            frame(0x09, b"x"),
            Want::Closed(Some(1002)),
        ),
        (
            "close with code 999",
            frame(0x88, &close_bad),
            Want::Survive,
        ),
        (
            "close with a non-UTF-8 reason",
            frame(0x88, &close_bad_reason),
            Want::Survive,
        ),
        (
            "close with a 1-byte payload",
            frame(0x88, b"\x03"),
            Want::Survive,
        ),
    ]
}

/// Declared lengths past the 64 KiB frame limit, and a length in a longer form than needed.
fn length_cases() -> Vec<Case> {
    let mut frag_big = frame(0x01, &vec![b'a'; 35 * 1024]);
    frag_big.extend(frame(0x80, &vec![b'a'; 35 * 1024]));
    let mut non_minimal = vec![FIN_TEXT, 0x80 | 126, 0, TEXT_JSON.len() as u8, 1, 2, 3, 4];
    non_minimal.extend(
        TEXT_JSON
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
    );
    vec![
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
        ("non-minimal length", non_minimal, Want::Survive),
    ]
}

// ---------------------------------------------------------------------------------------------
// The hand-rolled client

/// Encode one client frame. `mask` false sends it unmasked (a protocol violation);
/// `declared_len` claims another length than the payload's.
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

/// A WebSocket connection spoken byte by byte.
struct RawWs {
    s: TcpStream,
    /// Bytes read but not yet taken as frames.
    buf: Vec<u8>,
}

impl RawWs {
    /// Upgrade a new connection as the phase's account and read past the `ready` frame.
    async fn open(p: Phase<'_>) -> Result<RawWs, String> {
        let addr = p.app.addr;
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Cookie: hearth_session={}\r\n\r\n",
            p.cookie
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut ws = RawWs { s, buf: Vec::new() };
        let head_end = ws.read_head().await?;
        if !ws.buf.starts_with(b"HTTP/1.1 101") {
            return Err(format!(
                "upgrade refused: {}",
                String::from_utf8_lossy(&ws.buf[..head_end])
            ));
        }
        ws.buf.drain(..head_end + 4);
        match ws.read_frame().await? {
            (1, payload) if payload.starts_with(br#"{"type":"ready""#) => Ok(ws),
            (op, payload) => Err(format!(
                "first frame {op}: {}",
                String::from_utf8_lossy(&payload)
            )),
        }
    }

    /// Read until the upgrade answer's head is complete; returns where it ends.
    async fn read_head(&mut self) -> Result<usize, String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                return Ok(i);
            }
            let n = timeout(ANSWER, self.fill())
                .await
                .map_err(|_| "handshake timed out")?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during handshake".into());
            }
        }
    }

    /// Read more bytes into the buffer; returns how many (0 at the end of the connection).
    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = self.s.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.s.write_all(bytes).await.map_err(|e| e.to_string())
    }

    /// Read one server frame: (opcode, payload). Server frames are never masked.
    async fn read_frame(&mut self) -> Result<(u8, Vec<u8>), String> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(frame);
            }
            let n = timeout(ANSWER, self.fill())
                .await
                .map_err(|_| "no frame within 5 s".to_string())?
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("eof".into());
            }
        }
    }

    /// The first whole frame in the buffer, removed from it.
    fn take_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        let buf = &self.buf;
        if buf.len() < 2 {
            return Ok(None);
        }
        let op = buf[0] & 0x0f;
        if buf[1] & 0x80 != 0 {
            return Err("the server masked a frame".into());
        }
        let (len, hdr) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            126 | 127 => return Ok(None),
            l => (l as usize, 2),
        };
        if buf.len() < hdr + len {
            return Ok(None);
        }
        let payload = buf[hdr..hdr + len].to_vec();
        self.buf.drain(..hdr + len);
        Ok(Some((op, payload)))
    }

    /// After a bad frame: send a probe and read until its answer (the connection survived),
    /// a close frame (its code), or the end of the connection.
    async fn outcome(&mut self) -> Result<Outcome, String> {
        let probe = br#"{"type":"send","room":"general","body":" ","nonce":"raw-probe"}"#;
        let _ = self.write(&frame(FIN_TEXT, probe)).await;
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
