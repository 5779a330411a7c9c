//! WebSocket frames through tungstenite: malformed JSON, wrong types and fields, refused
//! content, binary and control frames, mutated frames, an oversize frame and a burst.
//!
//! Each frame is followed by a probe whose answer is known, so everything the server said about
//! the frame arrives before the probe's answer and can be judged exactly.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::Rng;
use crate::judge::{ws_error_code, Tally};
use crate::mutate::mutate;
use crate::{Phase, ANSWER, MUTANTS};

use WsExpect::*;

/// A client connection read without the kit's failing reads: a phase records what goes wrong
/// and carries on.
type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn phase(p: Phase<'_>, seed: u64) {
    let mut probe = Prober::open(p).await;
    for (text, expect) in frame_cases() {
        let label = format!("frame {:?}", text.chars().take(60).collect::<String>());
        probe.check(&label, Message::text(text), expect).await;
    }
    // Binary frames are answered with bad_frame.
    for bytes in [
        &b""[..],
        b"\x00",
        br#"{"type":"send","room":"general","body":"x"}"#,
        b"\xff\xfe\xfd",
    ] {
        let msg = Message::binary(bytes.to_vec());
        probe
            .check(&format!("binary {bytes:?}"), msg, Code("bad_frame"))
            .await;
    }
    // Pings and pongs from the client are fine.
    let ping = Message::Ping(vec![1, 2, 3].into());
    probe.check("ping", ping, Quiet).await;
    let pong = Message::Pong(vec![9].into());
    probe.check("unsolicited pong", pong, Quiet).await;
    mutated_frames(&mut probe, seed).await;
    oversize_frame(p).await;
    burst(p).await;
}

/// Open `/ws` as the phase's account, past its `ready` frame.
async fn connect(p: Phase<'_>) -> Stream {
    p.app.ws_connect(&p.auth(), None).await.into_inner()
}

/// The next text frame as JSON; `Err` describes a close, an error or a timeout.
async fn next_json(ws: &mut Stream) -> Result<Value, String> {
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

// ---------------------------------------------------------------------------------------------
// One frame, then a probe

/// What a frame must get before the probe's answer.
#[derive(Clone, Copy, Debug)]
enum WsExpect {
    /// Exactly one `error` frame with this code.
    Code(&'static str),
    /// No `error` frame (a valid frame).
    Quiet,
    /// At most one `error` frame, with a documented code.
    Documented,
}

/// A connection for probed frames, opened again whenever a frame ends it.
struct Prober<'a> {
    p: Phase<'a>,
    ws: Stream,
    /// Probes sent so far, which numbers the next probe's nonce.
    n: usize,
}

impl<'a> Prober<'a> {
    async fn open(p: Phase<'a>) -> Prober<'a> {
        Prober {
            p,
            ws: connect(p).await,
            n: 0,
        }
    }

    /// Send `msg` and judge it; a lost connection (already recorded) is replaced.
    async fn check(&mut self, label: &str, msg: Message, expect: WsExpect) {
        self.n += 1;
        let tally = self.p.tally;
        if !frame_then_probe(&mut self.ws, tally, label, msg, expect, self.n).await {
            self.ws = connect(self.p).await;
        }
    }
}

/// Send `msg`, then a probe whose answer is known (`empty_message` with nonce `probe-N`), and
/// judge everything that arrives before the probe's answer. Returns false when the connection
/// is gone.
async fn frame_then_probe(
    ws: &mut Stream,
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
    match errors_before_probe(ws, tally, label, &probe_nonce).await {
        Some(errors) => {
            judge_errors(tally, label, &errors, expect);
            true
        }
        None => false,
    }
}

/// The `error` frames that arrive before the probe's answer; `None` when the connection ends.
async fn errors_before_probe(
    ws: &mut Stream,
    tally: &Tally,
    label: &str,
    probe_nonce: &str,
) -> Option<Vec<Value>> {
    let mut errors = Vec::new();
    loop {
        let v = match next_json(ws).await {
            Ok(v) => v,
            Err(e) => {
                tally.problem(format!("{label}: {e}"));
                return None;
            }
        };
        match v["type"].as_str() {
            Some("error") if v["nonce"] == probe_nonce => {
                if v["code"] != "empty_message" {
                    tally.problem(format!("{label}: probe answered {v}"));
                }
                return Some(errors);
            }
            Some("error") => errors.push(v),
            // (A sign-up in another phase is announced in general: member_joined.)
            Some("message" | "typing" | "presence" | "member_joined") => {}
            other => tally.problem(format!("{label}: unexpected frame type {other:?}: {v}")),
        }
    }
}

fn judge_errors(tally: &Tally, label: &str, errors: &[Value], expect: WsExpect) {
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
        Code(c) => codes.len() == 1 && codes[0] == c,
        Quiet => codes.is_empty(),
        Documented => codes.len() <= 1,
    };
    if !ok {
        tally.problem(format!("{label}: expected {expect:?}, got {errors:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written frames

type FrameCase = (String, WsExpect);

/// Every hand-written text frame with what it must get, in the order they are sent.
fn frame_cases() -> Vec<FrameCase> {
    let mut cases = not_frames();
    cases.extend(bad_types());
    cases.extend(bad_fields());
    cases.extend(oversize_fields());
    cases.extend(refused_content());
    cases.extend(valid_frames());
    cases
}

/// `texts`, each expecting `expect`.
fn all(expect: WsExpect, texts: &[&str]) -> Vec<FrameCase> {
    texts.iter().map(|t| (t.to_string(), expect)).collect()
}

/// A `send` frame to `general` carrying `fields` after the room.
fn send_with(fields: &str) -> String {
    format!(r#"{{"type":"send","room":"general",{fields}}}"#)
}

/// Text that is not a JSON object.
fn not_frames() -> Vec<FrameCase> {
    all(
        Code("bad_frame"),
        &[
            "",
            " ",
            "hello",
            "{",
            "}",
            "null",
            "true",
            "1",
            "\"send\"",
            "[]",
            "[{\"type\":\"send\"}]",
            "{}",
        ],
    )
}

/// Objects whose `type` is missing, wrong, or not a client frame.
fn bad_types() -> Vec<FrameCase> {
    all(
        Code("bad_frame"),
        &[
            r#"{"type":null}"#,
            r#"{"type":""}"#,
            r#"{"type":"SEND","room":"general","body":"x"}"#,
            r#"{"type":"send ","room":"general","body":"x"}"#,
            r#"{"type":"join","room":"general"}"#,
            r#"{"type":"ready"}"#,
            r#"{"type":"message","id":1}"#,
            r#"{"type":"__proto__"}"#,
            r#"{"type":1}"#,
            r#"{"type":["send"]}"#,
            r#"{"type":{"send":1}}"#,
        ],
    )
}

/// Client frames with a field missing, of the wrong type, or not JSON at all.
fn bad_fields() -> Vec<FrameCase> {
    all(
        Code("bad_frame"),
        &[
            r#"{"type":"send"}"#,
            r#"{"type":"send","room":"general"}"#,
            r#"{"type":"send","body":"x"}"#,
            r#"{"type":"send","room":1,"body":"x"}"#,
            r#"{"type":"send","room":null,"body":"x"}"#,
            r#"{"type":"send","room":["general"],"body":"x"}"#,
            r#"{"type":"send","room":"general","body":1}"#,
            r#"{"type":"send","room":"general","body":null}"#,
            r#"{"type":"send","room":"general","body":{"text":"x"}}"#,
            r#"{"type":"send","room":"general","body":"x","nonce":5}"#,
            r#"{"type":"send","room":"general","body":"x","nonce":[]}"#,
            r#"{"type":"send","room":"general","body":"x","nonce":true}"#,
            r#"{"type":"typing"}"#,
            r#"{"type":"typing","room":7}"#,
            r#"{"type":"send","type":"typing","room":"general"}"#,
            r#"{"type":"send","room":"general","body":1e999999}"#,
            r#"{"type":"send","room":"general","body":"\ud800"}"#,
            r#"{"type":"send","room":"general","body":"x"} trailing"#,
            // PostgreSQL stores no text with NUL in it: refused alike on every store.
            r#"{"type":"send","room":"general","body":"nul \u0000 inside","nonce":null}"#,
            r#"{"type":"send","room":"general","body":"x","nonce":"n\u0000"}"#,
            r#"{"type":"send","room":"general\u0000","body":"x"}"#,
        ],
    )
}

/// Nonces over 64 characters and nesting too deep to parse.
fn oversize_fields() -> Vec<FrameCase> {
    let nonce = |n: String| send_with(&format!(r#""body":"x","nonce":"{n}""#));
    let nested = format!(
        r#""body":"x","extra":{}1{}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    [
        nonce("n".repeat(65)),
        nonce("n".repeat(10_000)),
        nonce("é".repeat(65)),
        "[".repeat(60_000),
        "{\"a\":".repeat(12_000),
        send_with(&nested),
    ]
    .into_iter()
    .map(|t| (t, Code("bad_frame")))
    .collect()
}

/// Well-formed frames the server refuses: empty, too long, or for no room the sender is in.
fn refused_content() -> Vec<FrameCase> {
    let mut cases = all(
        Code("empty_message"),
        &[
            r#"{"type":"send","room":"general","body":"   "}"#,
            r#"{"type":"send","room":"general","body":""}"#,
            r#"{"type":"send","room":"general","body":"\n\t\r"}"#,
        ],
    );
    for long in ["x".repeat(4001), "é".repeat(4001)] {
        let text = send_with(&format!(r#""body":"{long}""#));
        cases.push((text, Code("message_too_long")));
    }
    let long_room = "r".repeat(10_000);
    let long_room = format!(r#"{{"type":"send","room":"{long_room}","body":"x"}}"#);
    cases.extend(all(
        Code("unknown_room"),
        &[
            r#"{"type":"send","room":"nope","body":"x"}"#,
            r#"{"type":"send","room":"","body":"x"}"#,
            r#"{"type":"send","room":"NOPE","body":"x"}"#,
            r#"{"type":"send","room":"general ","body":"x"}"#,
            r#"{"type":"send","room":"' OR 1=1 --","body":"x"}"#,
            &long_room,
            r#"{"type":"typing","room":"nope"}"#,
        ],
    ));
    cases
}

/// Valid frames, some at the limits: no error.
fn valid_frames() -> Vec<FrameCase> {
    let at_limits = send_with(&format!(
        r#""body":"{}","nonce":"{}""#,
        "é".repeat(4000),
        "é".repeat(64)
    ));
    all(
        Quiet,
        &[
            r#"{"type":"typing","room":"general"}"#,
            r#"{"type":"typing","room":"General"}"#,
            r#"{"type":"typing","room":"general","extra":[1,2,3]}"#,
            r#"{"type":"send","room":"general","body":"an escaped \\u0000 is text","nonce":null}"#,
            &at_limits,
            r#"{"type":"send","room":"general","body":"<script>alert(1)</script>","nonce":"xss"}"#,
            r#"{"type":"send","room":"general","body":"\u202e\ufeff💬"}"#,
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Generated frames, an oversize frame, a burst

/// Mutations of valid frames: at most one documented error each.
async fn mutated_frames(probe: &mut Prober<'_>, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x5eed_0003);
    let bases = [
        r#"{"type":"send","room":"general","body":"hello there","nonce":"m-1"}"#,
        r#"{"type":"send","room":"general","body":"hi"}"#,
        r#"{"type":"typing","room":"general"}"#,
    ];
    for i in 0..MUTANTS * 2 {
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
        probe.check(&label, msg, Documented).await;
    }
}

/// 70 KiB in one frame: closed with 1009.
async fn oversize_frame(p: Phase<'_>) {
    p.tally.ws(1);
    let mut big = connect(p).await;
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
                p.tally
                    .problem("70 KiB frame: the connection stayed open".into());
                break;
            }
        }
    }
    if saw.is_some_and(|c| c != 1009) {
        p.tally
            .problem(format!("70 KiB frame: closed with {saw:?}, expected 1009"));
    }
}

/// Frames of the burst, each with the code it must get.
fn burst_kinds() -> [(String, &'static str); 5] {
    [
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
            send_with(&format!(r#""body":"{}""#, "y".repeat(4001))),
            "message_too_long",
        ),
    ]
}

/// A burst: 2,000 frames without waiting, answered one by one in order.
async fn burst(p: Phase<'_>) {
    let total = 2000;
    let kinds = burst_kinds();
    let (sink, stream) = connect(p).await.split();
    let ((sent, _sink), got) =
        tokio::join!(write_burst(sink, &kinds, total), read_burst(stream, total));
    p.tally.ws(sent);
    match got {
        Ok(codes) => {
            for (i, code) in codes.iter().enumerate() {
                let want = kinds[i % kinds.len()].1;
                if code != want {
                    p.tally
                        .problem(format!("burst answer #{i}: {code}, expected {want}"));
                    break;
                }
            }
        }
        Err(e) => p.tally.problem(format!("burst of {total}: {e}")),
    }
}

/// Write `total` frames cycling through `kinds`, flushing every 64; returns how many were
/// written (and the sink, which keeps the connection open until the reader is done).
async fn write_burst(
    mut sink: SplitSink<Stream, Message>,
    kinds: &[(String, &str)],
    total: usize,
) -> (usize, SplitSink<Stream, Message>) {
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
}

/// The codes of the first `total` error frames.
async fn read_burst(mut stream: SplitStream<Stream>, total: usize) -> Result<Vec<String>, String> {
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
}
