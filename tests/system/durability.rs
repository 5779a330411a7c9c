//! Jepsen-style durability checks against the real `hearth` binary.
//!
//! Several clients send continuously over WebSockets, each message with a unique nonce, and
//! record what the server acknowledged (their own message echoed back) and every message frame
//! they saw. Meanwhile the harness kills the server with SIGKILL or stops it with SIGTERM and
//! restarts it on the same database; clients reconnect with `?since=<highest id seen>` and resend
//! every nonce still unacknowledged, exactly as a real client would. At the end the database is
//! opened directly and checked against the clients' records:
//!
//! - **lost**: an acknowledged nonce without its row (or with another id than acknowledged);
//! - **duplicated**: more than one row for one (user, nonce);
//! - **unexpected**: a row whose nonce its author never sent, or whose body differs;
//! - every frame any client saw matches the row with that id (nothing acknowledged vanished or
//!   was replaced after a crash), ids only grow within one connection (a resend answered with
//!   the stored message excepted), every client saw every row (`?since=` resumes with no gap),
//!   a full `?since=0` replay (paged over HTTP past 1,000) equals the table,
//!   and `PRAGMA integrity_check` is `ok`.
//!
//! One test also checks the search index after every restart: the writer indexes each batch
//! in a second transaction, so a kill between the two leaves messages that the start indexes
//! before serving; every acknowledged message must be found by its nonce.
//!
//! Randomness (kill moments, bodies, retry plans) comes from the kit's seeded generator. Each
//! test prints its seed; `HEARTH_CRASH_SEED=<seed>` replays the same choices (thread timing
//! still varies), and `HEARTH_CRASH_CYCLES=<n>` runs more kill cycles than the default 10.
//!
//! There are no timing assertions: the only clock-based checks are generous bounds (30 s) that
//! turn a hang into a failure instead of a stuck test run.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{http_client, json_body, seed, send_in, session_cookie, Rng, PASSWORD};
use crate::process::{command, Hearth, HANG};

pub(crate) const ROOM: &str = "general";
/// Kill cycles in `kill_9_cycles_lose_no_acknowledged_message` unless `HEARTH_CRASH_CYCLES`.
const DEFAULT_CYCLES: usize = 10;
pub(crate) const CLIENTS: usize = 4;
/// The environment variable that replays a run's random choices.
pub(crate) const SEED_VAR: &str = "HEARTH_CRASH_SEED";

/// Kill cycles to run: `HEARTH_CRASH_CYCLES` when set, else `default`.
pub(crate) fn crash_cycles(default: usize) -> usize {
    match std::env::var("HEARTH_CRASH_CYCLES") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("HEARTH_CRASH_CYCLES must be a whole number, not {s:?}")),
        Err(_) => default,
    }
}

/// A body that starts with the nonce and has some varied, trimmed, multi-byte content.
pub(crate) fn make_body(rng: &mut Rng, nonce: &str) -> String {
    const PIECES: &[&str] = &[
        "a", "b", "z", " ", "é", "✓", "火", "🔥", "\n", "<b>", "&", "\"",
    ];
    let mut body = format!("{nonce}:");
    for _ in 0..rng.below(80) {
        let piece = *rng.pick(PIECES);
        body.push_str(piece);
    }
    body.push('.');
    body
}

// ---------------------------------------------------------------------------------------------
// The server process

/// Start `hearth` on `dir/chat.db` (created on first start), its log appended to
/// `dir/server.log` so that every restart's lines end up in one place for failure reports.
pub(crate) fn start_server(dir: &Path) -> Hearth {
    start_server_with(dir, &[])
}

/// [`start_server`] with further environment variables (`CHAT_…` settings).
pub(crate) fn start_server_with(dir: &Path, envs: &[(&str, String)]) -> Hearth {
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("opens the server log");
    let mut cmd = command(dir, dir.join("absent.toml"));
    cmd.env("CHAT_DATABASE__PATH", db_path(dir))
        .env("CHAT_LIMITS__MESSAGES_PER_SECOND", "0")
        .env("CHAT_LIMITS__CHANGES_PER_SECOND", "0")
        .env("RUST_LOG", "warn")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::from(log));
    Hearth::start(cmd, || log_tail(dir))
}

/// The end of the server's log, for failure messages.
pub(crate) fn log_tail(dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(dir.join("server.log")) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4000)));
        let _ = f.read_to_string(&mut text);
    }
    format!("--- end of server.log ---\n{text}")
}

pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join("chat.db")
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// Register `username` and mint a bearer token for it (tokens survive restarts: they are rows).
pub(crate) async fn create_account(http: &reqwest::Client, port: u16, username: &str) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let res = http
        .post(format!("{base}/api/register"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .expect("register request");
    assert_eq!(res.status().as_u16(), 201, "registering {username}");
    let cookie = session_cookie(&res).expect("a hearth_session cookie");
    let res = http
        .post(format!("{base}/api/tokens"))
        .header("cookie", format!("hearth_session={cookie}"))
        .header("origin", &base)
        .json(&json!({"name": "durability"}))
        .send()
        .await
        .expect("token request");
    assert_eq!(res.status().as_u16(), 201, "minting a token for {username}");
    let body = json_body(res).await;
    body["token"].as_str().expect("a token").to_string()
}

// ---------------------------------------------------------------------------------------------
// Clients and what they observed

/// One nonce a client created.
struct NonceRec {
    body: String,
    /// The id it was acknowledged with (own echo, live or replayed).
    id: Option<i64>,
    /// Copies sent.
    sends: u32,
    /// Copies answered live with the message (broadcast or stored-message reply).
    echoes: u32,
    /// A connection ended while it was sent but unacknowledged.
    in_doubt: bool,
    /// Sends of it refused with `unavailable`.
    refusals: u32,
}

/// A message frame as seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) user: String,
    pub(crate) nonce: Option<String>,
    pub(crate) body: String,
}

#[derive(Default)]
pub(crate) struct Stats {
    /// `send` frames written, retries included.
    sends: u64,
    /// Extra copies sent right after the first (retry storm).
    immediate_copies: u64,
    /// Extra copies kept for after the next reconnect (retry storm).
    deferred_copies: u64,
    /// Live replies to a resend that carried an earlier id (the stored message).
    stored_replies: u64,
    /// Nonces unacknowledged when their connection died.
    in_doubt: u64,
    /// ... of which the `?since=` replay showed committed.
    found_on_replay: u64,
    /// ... of which a resend stored (or found) after the restart.
    acked_on_resend: u64,
    /// Connections opened.
    pub(crate) connections: u64,
}

impl Stats {
    /// `N in doubt{when} (N found committed on replay, N stored on resend)`, for the summary
    /// lines.
    pub(crate) fn doubts(&self, when: &str) -> String {
        format!(
            "{} in doubt{when} ({} found committed on replay, {} stored on resend)",
            self.in_doubt, self.found_on_replay, self.acked_on_resend
        )
    }
}

/// How a client behaves on one connection.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    /// Most sends waiting for their echo at once.
    pub(crate) window: usize,
    /// Most new nonces this connection starts; then it finishes once everything is answered.
    pub(crate) new_messages: usize,
    /// Each new nonce is sent 1..=max_copies times.
    pub(crate) max_copies: u64,
    /// Chance (percent) that an extra copy waits for the next connection instead of going at once.
    pub(crate) deferred_percent: u64,
}

pub(crate) const STEADY: Plan = Plan {
    window: 32,
    new_messages: usize::MAX,
    max_copies: 1,
    deferred_percent: 0,
};

/// Resend what is unacknowledged (and deferred), start nothing new, finish.
pub(crate) const DRAIN: Plan = Plan {
    window: 32,
    new_messages: 0,
    max_copies: 1,
    deferred_percent: 0,
};

pub(crate) struct Client {
    idx: usize,
    name: String,
    token: String,
    rng: Rng,
    seq: u64,
    nonces: HashMap<String, NonceRec>,
    /// Nonces in creation order.
    order: Vec<String>,
    /// Extra copies to send after the next reconnect.
    deferred: Vec<String>,
    /// Highest message id seen: the next `?since=`.
    max_seen: i64,
    /// Every message frame seen, by id.
    seen: BTreeMap<i64, Seen>,
    violations: Vec<String>,
    stats: Stats,
    /// Other rooms take positions in the log too (membership changes, other rooms'
    /// messages): a replay or a page then ends at the last of this client's messages, which
    /// may be below `head`.
    shared_log: bool,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The client finished its plan and closed.
    Finished,
    /// The server went away; with the close code if it sent a close frame.
    Gone { close: Option<u16> },
    /// Could not connect (expected only while the server is being killed).
    ConnectFailed(String),
    /// Nothing arrived for [`HANG`] while something was expected.
    Hung,
}

/// Per-connection bookkeeping.
struct Conn {
    no: u64,
    since: i64,
    /// Highest id received on this connection.
    last: i64,
    frames: u64,
    resumed: bool,
    /// Sends on this connection not answered yet.
    outstanding: usize,
    /// The same, per nonce: an answer counts for the nonce it names.
    pending: HashMap<String, u32>,
    refused: u64,
    close: Option<u16>,
    /// Nonces to send before new ones: resends, refused sends and extra copies.
    queue: VecDeque<String>,
    /// New nonces this connection started.
    started: usize,
    /// The last frames that moved the connection's place (ids, `ready`, `resumed`), oldest
    /// first: shown with an ordering violation.
    trail: VecDeque<String>,
}

/// How many frames [`Conn::trail`] keeps.
const TRAIL: usize = 48;

impl Conn {
    fn new(no: u64, since: i64, queue: VecDeque<String>) -> Conn {
        Conn {
            no,
            since,
            last: since,
            trail: VecDeque::new(),
            frames: 0,
            resumed: false,
            outstanding: 0,
            pending: HashMap::new(),
            refused: 0,
            close: None,
            queue,
            started: 0,
        }
    }

    /// Note one frame in the trail.
    fn note(&mut self, what: String) {
        if self.trail.len() == TRAIL {
            self.trail.pop_front();
        }
        self.trail.push_back(format!("#{} {what}", self.frames));
    }
}

enum Event {
    Other,
    Resumed {
        complete: bool,
        head: i64,
    },
    /// The send was refused with `unavailable`: nothing stored, send it again.
    Refused(String),
}

pub(crate) type WsSink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
pub(crate) type WsStream = SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>;
/// What one read from the socket gave: nothing for [`HANG`], the end, an error, or a message.
pub(crate) type Incoming = Result<
    Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    tokio::time::error::Elapsed,
>;

fn parse_message(m: &Value) -> Option<(i64, Seen)> {
    Some((
        m["id"].as_i64()?,
        Seen {
            user: m["user"].as_str()?.to_string(),
            nonce: m["nonce"].as_str().map(str::to_string),
            body: m["body"].as_str()?.to_string(),
        },
    ))
}
pub(crate) async fn open_socket(
    port: u16,
    token: &str,
    since: i64,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, String> {
    let mut req = format!("ws://127.0.0.1:{port}/ws?since={since}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    match tokio::time::timeout(HANG, tokio_tungstenite::connect_async(req)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no handshake within {HANG:?}")),
    }
}

/// The oldest messages with id > `after` (room `general`), at most 200.
async fn page_after(
    http: &reqwest::Client,
    port: u16,
    token: &str,
    after: i64,
) -> Result<Vec<Value>, String> {
    let res = http
        .get(format!(
            "http://127.0.0.1:{port}/api/rooms/{ROOM}/messages?after={after}&limit=200"
        ))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("history page: HTTP {}", res.status()));
    }
    let v: Value = res.json().await.map_err(|e| e.to_string())?;
    v["messages"]
        .as_array()
        .cloned()
        .ok_or_else(|| "history page without messages".to_string())
}
impl Client {
    fn new(idx: usize, token: String, seed: u64) -> Client {
        Client {
            idx,
            name: format!("client{idx}"),
            token,
            rng: Rng::new(seed ^ (idx as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F)),
            seq: 0,
            nonces: HashMap::new(),
            order: Vec::new(),
            deferred: Vec::new(),
            max_seen: 0,
            seen: BTreeMap::new(),
            violations: Vec::new(),
            stats: Stats::default(),
            shared_log: false,
        }
    }

    /// Say that positions outside this client's room exist (see `shared_log`).
    pub(crate) fn share_the_log(&mut self) {
        self.shared_log = true;
    }

    pub(crate) fn violation(&mut self, what: String) {
        self.violations.push(format!("{}: {what}", self.name));
    }

    /// Create the next nonce; extra copies go to `queue` (at once) or `deferred`.
    fn new_nonce(&mut self, plan: &Plan, queue: &mut VecDeque<String>) -> String {
        self.seq += 1;
        let nonce = format!("{}-{}", self.idx, self.seq);
        let body = make_body(&mut self.rng, &nonce);
        let copies = 1 + self.rng.below(plan.max_copies.max(1));
        for _ in 1..copies {
            if self.rng.chance(plan.deferred_percent) {
                self.deferred.push(nonce.clone());
                self.stats.deferred_copies += 1;
            } else {
                queue.push_back(nonce.clone());
                self.stats.immediate_copies += 1;
            }
        }
        self.nonces.insert(
            nonce.clone(),
            NonceRec {
                body,
                id: None,
                sends: 0,
                echoes: 0,
                in_doubt: false,
                refusals: 0,
            },
        );
        self.order.push(nonce.clone());
        nonce
    }

    /// Record one message frame. Returns whether it answers one of this connection's sends.
    fn on_message(&mut self, cn: &mut Conn, m: &Value, live: bool) -> bool {
        let Some((id, seen)) = parse_message(m) else {
            self.violation(format!("malformed message frame {m}"));
            return false;
        };
        if let Some(prev) = self.seen.get(&id) {
            if *prev != seen {
                let prev = prev.clone();
                self.violation(format!(
                    "id {id} was first seen as {prev:?}, now as {seen:?}"
                ));
            }
        } else {
            self.seen.insert(id, seen.clone());
        }
        cn.note(format!(
            "{id}{}{}",
            if live { " live" } else { " replayed" },
            match (&seen.nonce, seen.user == self.name) {
                (Some(n), true) => format!(" own {n}"),
                _ => String::new(),
            }
        ));
        let mut answer = false;
        let mut stored_reply = false;
        if seen.user == self.name {
            let nonce = seen.nonce.clone().unwrap_or_default();
            let mut problems = Vec::new();
            match self.nonces.get_mut(&nonce) {
                None => problems.push(format!(
                    "own message id {id} carries nonce {:?}, which this client never sent",
                    seen.nonce
                )),
                Some(rec) => {
                    if rec.body != seen.body {
                        problems.push(format!(
                            "nonce {nonce} came back with body {:?}, sent {:?}",
                            seen.body, rec.body
                        ));
                    }
                    match rec.id {
                        None => {
                            rec.id = Some(id);
                            if rec.in_doubt {
                                if live {
                                    self.stats.acked_on_resend += 1;
                                } else {
                                    self.stats.found_on_replay += 1;
                                }
                            }
                        }
                        Some(first) if first != id => problems.push(format!(
                            "nonce {nonce} was acknowledged as id {first}, now came back as id {id}"
                        )),
                        Some(_) => stored_reply = live && id <= cn.last,
                    }
                    if live {
                        rec.echoes += 1;
                        answer = true;
                    }
                }
            }
            for p in problems {
                self.violation(p);
            }
        }
        if id > cn.last {
            cn.last = id;
        } else if stored_reply {
            // A resend answered with the stored message: its original, older id.
            self.stats.stored_replies += 1;
        } else {
            self.violation(format!(
                "connection {} (since={}): id {id} arrived after id {} (frames: {:?})",
                cn.no, cn.since, cn.last, cn.trail
            ));
        }
        self.max_seen = self.max_seen.max(id);
        answer
    }

    fn on_text(&mut self, cn: &mut Conn, text: &str) -> Event {
        cn.frames += 1;
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.violation(format!("frame is not JSON ({e}): {text}"));
                return Event::Other;
            }
        };
        let kind = v["type"].as_str().unwrap_or("");
        if matches!(kind, "ready" | "resumed" | "error") {
            let at = match kind {
                "ready" => format!(" last_id {}", v["last_id"]),
                "resumed" => format!(" head {}", v["head"]),
                _ => format!(" {} {}", v["code"], v["nonce"]),
            };
            cn.note(format!("{kind}{at}"));
        }
        if cn.frames == 1 && kind != "ready" {
            self.violation(format!("first frame is not ready: {text}"));
        }
        match kind {
            "ready" => {
                if cn.frames != 1 {
                    self.violation(format!("ready arrived as frame {}", cn.frames));
                }
            }
            "message" => {
                if self.on_message(cn, &v, cn.resumed) {
                    // A nonce whose fate was unknown when it was sent again: its connection
                    // ended before the answer, or it was refused as `unavailable` although
                    // its write committed (the database went away with the commit in
                    // flight). With several nodes the first copy can then be delivered live,
                    // like any committed message, and the resend is answered too: that extra
                    // echo is the client's to ignore (same id, same nonce).
                    let nonce = v["nonce"].as_str().unwrap_or_default();
                    let rec = self.nonces.get(nonce);
                    let ambiguous = rec.is_some_and(|r| r.refusals > 0 || r.in_doubt);
                    let waited = cn.pending.get_mut(nonce).filter(|n| **n > 0);
                    if let Some(n) = waited {
                        *n -= 1;
                        cn.outstanding -= 1;
                    } else if !ambiguous {
                        let history = rec.map(|r| {
                            format!(
                                "{} sends, {} echoes, {} refusals",
                                r.sends, r.echoes, r.refusals
                            )
                        });
                        self.violation(format!(
                            "connection {} (since={}): an echo nobody waited for \
                             ({history:?}): {text}",
                            cn.no, cn.since
                        ));
                    }
                }
            }
            "resumed" => {
                if cn.resumed {
                    self.violation("a second resumed".to_string());
                }
                cn.resumed = true;
                let complete = v["complete"].as_bool().unwrap_or(false);
                let head = v["head"].as_i64().unwrap_or(-1);
                if head < cn.last {
                    self.violation(format!(
                        "resumed head {head} is below replayed id {}",
                        cn.last
                    ));
                }
                // One room only: a complete replay ends exactly at the head.
                if complete && !self.shared_log && cn.last != head.max(cn.since) {
                    self.violation(format!(
                        "replay since {} ended at {} but head is {head}",
                        cn.since, cn.last
                    ));
                }
                return Event::Resumed { complete, head };
            }
            "error" => {
                let code = v["code"].as_str().unwrap_or("").to_string();
                let nonce = v["nonce"].as_str().map(str::to_string);
                if let Some(n) = &nonce {
                    if let Some(k) = cn.pending.get_mut(n).filter(|k| **k > 0) {
                        *k -= 1;
                        cn.outstanding -= 1;
                    }
                }
                match (code.as_str(), nonce) {
                    ("unavailable", Some(n)) => {
                        if let Some(r) = self.nonces.get_mut(&n) {
                            r.refusals += 1;
                        }
                        return Event::Refused(n);
                    }
                    _ => self.violation(format!("unexpected error frame {text}")),
                }
            }
            // A public room made meanwhile (the cluster run's membership churn makes one) is
            // news to every connection.
            "presence" | "typing" | "room_created" => {}
            _ => self.violation(format!("unknown frame type: {text}")),
        }
        Event::Other
    }

    /// Page the replay's remainder (ids up to `head`) over HTTP. An error means the server
    /// went away (it may be being killed): the next connection pages again.
    async fn page_rest(
        &mut self,
        cn: &mut Conn,
        http: &reqwest::Client,
        port: u16,
        head: i64,
    ) -> Result<(), String> {
        while cn.last < head {
            let page = page_after(http, port, &self.token, cn.last).await?;
            let upto_head: Vec<&Value> = page
                .iter()
                .filter(|m| m["id"].as_i64().is_some_and(|id| id <= head))
                .collect();
            if upto_head.is_empty() {
                // With a shared log the positions left up to `head` are other rooms'.
                if !self.shared_log {
                    self.violation(format!("paging stopped at {} below head {head}", cn.last));
                }
                return Ok(());
            }
            for m in upto_head {
                self.on_message(cn, m, false);
            }
        }
        Ok(())
    }
    /// Read until the socket ends, recording every frame and the close code: after a failed
    /// write this is whatever the server still managed to send.
    async fn drain(&mut self, cn: &mut Conn, rx: &mut WsStream) {
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(HANG, rx.next()).await {
            match msg {
                Message::Text(t) => {
                    self.on_text(cn, t.as_str());
                }
                Message::Close(f) => cn.close = Some(f.map_or(1005, |f| u16::from(f.code))),
                _ => {}
            }
        }
    }

    /// One connection: `?since=`, replay, resend what is unacknowledged, then follow `plan`
    /// until it is done, the server goes away, or `stop` asks to wind down.
    async fn run_connection(
        &mut self,
        port: u16,
        plan: Plan,
        mut stop: watch::Receiver<bool>,
        http: &reqwest::Client,
    ) -> End {
        self.stats.connections += 1;
        let queue = self.resend_queue();
        let mut cn = Conn::new(self.stats.connections, self.max_seen, queue);
        cn.note(format!("to port {port}"));
        let ws = match open_socket(port, &self.token, cn.since).await {
            Ok(ws) => ws,
            Err(e) => return End::ConnectFailed(e),
        };
        let (mut tx, mut rx): (WsSink, WsStream) = ws.split();
        let mut stopping = *stop.borrow();
        loop {
            if cn.resumed {
                if !self.send_window(&mut cn, &plan, stopping, &mut tx).await {
                    self.drain(&mut cn, &mut rx).await;
                    return End::Gone { close: cn.close };
                }
                let done = stopping || cn.started >= plan.new_messages;
                if done && cn.outstanding == 0 && cn.queue.is_empty() {
                    let _ = tx.send(Message::Close(None)).await;
                    self.drain(&mut cn, &mut rx).await;
                    return End::Finished;
                }
            }
            tokio::select! {
                next = tokio::time::timeout(HANG, rx.next()) => {
                    if let Some(end) = self.on_incoming(&mut cn, next, http, port).await {
                        return end;
                    }
                }
                _ = stop.changed(), if !stopping => stopping = true,
            }
        }
    }

    /// What a new connection sends first: everything unacknowledged (the replay may still
    /// acknowledge some of it: those are skipped when their turn comes), then the copies
    /// deferred to this reconnect.
    fn resend_queue(&mut self) -> VecDeque<String> {
        let mut queue: VecDeque<String> = self
            .order
            .iter()
            .filter(|n| {
                let r = &self.nonces[*n];
                r.id.is_none() && r.sends > 0
            })
            .cloned()
            .collect();
        queue.extend(self.deferred.drain(..));
        queue
    }

    /// Send until `plan.window` sends wait for their answer: the queue first, then new nonces
    /// unless `stopping` or the plan has started all of them. False when the socket failed.
    async fn send_window(
        &mut self,
        cn: &mut Conn,
        plan: &Plan,
        stopping: bool,
        tx: &mut WsSink,
    ) -> bool {
        let mut fed = false;
        while cn.outstanding < plan.window {
            let nonce = match cn.queue.pop_front() {
                Some(n) => {
                    let r = &self.nonces[&n];
                    // A resend the replay already answered: nothing to do.
                    if r.in_doubt && r.id.is_some() {
                        continue;
                    }
                    n
                }
                None if !stopping && cn.started < plan.new_messages => {
                    cn.started += 1;
                    self.new_nonce(plan, &mut cn.queue)
                }
                None => break,
            };
            let rec = self.nonces.get_mut(&nonce).expect("known nonce");
            let frame = send_in(ROOM, &rec.body, &nonce);
            cn.note(format!("sent {nonce}"));
            rec.sends += 1;
            self.stats.sends += 1;
            cn.outstanding += 1;
            *cn.pending.entry(nonce.clone()).or_default() += 1;
            fed = true;
            if tx.feed(Message::text(frame.to_string())).await.is_err() {
                return false;
            }
        }
        !fed || tx.flush().await.is_ok()
    }

    /// Handle one read from the socket; `Some` ends the connection.
    async fn on_incoming(
        &mut self,
        cn: &mut Conn,
        next: Incoming,
        http: &reqwest::Client,
        port: u16,
    ) -> Option<End> {
        match next {
            Err(_) => {
                self.violation(format!(
                    "connection {}: nothing arrived for {HANG:?} (resumed: {}, {} sends unanswered)",
                    cn.no, cn.resumed, cn.outstanding
                ));
                Some(End::Hung)
            }
            Ok(None) | Ok(Some(Err(_))) => Some(End::Gone { close: cn.close }),
            Ok(Some(Ok(Message::Text(t)))) => match self.on_text(cn, t.as_str()) {
                Event::Resumed {
                    complete: false,
                    head,
                } => {
                    let paged = self.page_rest(cn, http, port, head).await;
                    paged.is_err().then_some(End::Gone { close: cn.close })
                }
                Event::Refused(n) => {
                    cn.refused += 1;
                    if cn.refused > 10_000 {
                        self.violation(format!("connection {}: endless unavailable", cn.no));
                        return Some(End::Hung);
                    }
                    cn.queue.push_back(n);
                    None
                }
                _ => None,
            },
            Ok(Some(Ok(Message::Close(f)))) => {
                cn.close = Some(f.map_or(1005, |f| u16::from(f.code)));
                None
            }
            Ok(Some(Ok(_))) => None,
        }
    }

    /// Bookkeeping after a connection that did not finish: what it left unacknowledged is in
    /// doubt until a replay or a resend settles it.
    pub(crate) fn after_connection(&mut self) {
        for n in &self.order {
            let r = self.nonces.get_mut(n).expect("known nonce");
            if r.id.is_none() && r.sends > 0 && !r.in_doubt {
                r.in_doubt = true;
                self.stats.in_doubt += 1;
            }
        }
    }

    fn acked(&self) -> usize {
        self.nonces.values().filter(|r| r.id.is_some()).count()
    }

    /// Nonces sent at least once.
    fn sent(&self) -> usize {
        self.nonces.values().filter(|r| r.sends > 0).count()
    }
}

/// Every client's full view: `?since=0` replay, then HTTP pages up to `head` (with a
/// `shared_log`, up to the first empty page).
async fn full_history(
    http: &reqwest::Client,
    port: u16,
    token: &str,
    shared_log: bool,
) -> Result<Vec<(i64, Seen)>, String> {
    let ws = open_socket(port, token, 0).await?;
    let (mut tx, mut rx) = ws.split();
    let mut out: Vec<(i64, Seen)> = Vec::new();
    let (complete, head) = loop {
        let msg = match tokio::time::timeout(HANG, rx.next()).await {
            Ok(Some(Ok(m))) => m,
            other => return Err(format!("replay broke off: {other:?}")),
        };
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
        match v["type"].as_str() {
            Some("message") => out.push(parse_message(&v).ok_or("malformed message")?),
            Some("resumed") => {
                break (
                    v["complete"].as_bool().unwrap_or(false),
                    v["head"].as_i64().unwrap_or(-1),
                )
            }
            _ => {}
        }
    };
    if !complete && out.len() != 1000 {
        return Err(format!(
            "incomplete replay of {} messages, not 1000",
            out.len()
        ));
    }
    let _ = tx.send(Message::Close(None)).await;
    let mut last = out.last().map_or(0, |m| m.0);
    while last < head {
        let page = page_after(http, port, token, last).await?;
        let before = out.len();
        for m in &page {
            let (id, seen) = parse_message(m).ok_or("malformed message")?;
            if id <= head {
                out.push((id, seen));
                last = id;
            }
        }
        if out.len() == before {
            // With a shared log the positions left up to `head` are other rooms'.
            if shared_log {
                break;
            }
            return Err(format!("paging stopped at {last} below head {head}"));
        }
    }
    Ok(out)
}
// ---------------------------------------------------------------------------------------------
// Harness

pub(crate) async fn make_clients(http: &reqwest::Client, port: u16, seed: u64) -> Vec<Client> {
    let mut clients = Vec::new();
    for idx in 0..CLIENTS {
        let token = create_account(http, port, &format!("client{idx}")).await;
        clients.push(Client::new(idx, token, seed));
    }
    clients
}

/// One task per client, each running one connection.
pub(crate) type Running<C> = Vec<tokio::task::JoinHandle<(C, End)>>;

/// Start one connection per client.
pub(crate) fn spawn_round(
    clients: Vec<Client>,
    ports: &[u16],
    plan: Plan,
    stop: &watch::Receiver<bool>,
    http: &reqwest::Client,
) -> Running<Client> {
    clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            // Client i on server i (several servers: a cluster's nodes).
            let port = ports[i % ports.len()];
            let stop = stop.clone();
            let http = http.clone();
            tokio::spawn(async move {
                let end = c.run_connection(port, plan, stop, &http).await;
                if end != End::Finished {
                    c.after_connection();
                }
                (c, end)
            })
        })
        .collect()
}

/// Wait for every client's connection to end; a task that fails or hangs fails the test.
pub(crate) async fn join_round<C>(running: Running<C>, what: &str) -> Vec<(C, End)> {
    let mut out = Vec::new();
    for h in running {
        match tokio::time::timeout(HANG + Duration::from_secs(5), h).await {
            Ok(Ok(pair)) => out.push(pair),
            Ok(Err(e)) => panic!("{what}: a client task failed: {e}"),
            Err(_) => panic!("{what}: a client did not finish within {HANG:?}"),
        }
    }
    out
}

/// Run one connection per client to completion while the server stays up.
async fn settle_round(
    clients: Vec<Client>,
    port: u16,
    plan: Plan,
    http: &reqwest::Client,
    what: &str,
) -> Vec<Client> {
    let (_stop_tx, stop) = watch::channel(false);
    let running = spawn_round(clients, &[port], plan, &stop, http);
    join_round(running, what)
        .await
        .into_iter()
        .map(|(mut c, end)| {
            if end != End::Finished {
                c.violation(format!("{what}: connection ended with {end:?}"));
            }
            c
        })
        .collect()
}

/// Resend until everything is acknowledged, then let every client catch up with the head,
/// and read each one's full `?since=0` history.
pub(crate) async fn drain_and_catch_up(
    clients: Vec<Client>,
    port: u16,
    http: &reqwest::Client,
) -> (Vec<Client>, Vec<Vec<(i64, Seen)>>) {
    let clients = settle_round(clients, port, DRAIN, http, "final resend").await;
    let mut clients = settle_round(clients, port, DRAIN, http, "catch-up").await;
    let mut histories = Vec::new();
    for c in &mut clients {
        match full_history(http, port, &c.token, c.shared_log).await {
            Ok(h) => histories.push(h),
            Err(e) => {
                c.violation(format!("full history: {e}"));
                histories.push(Vec::new());
            }
        }
    }
    (clients, histories)
}

/// A row of `messages`.
pub(crate) struct Row {
    pub(crate) id: i64,
    pub(crate) user: String,
    pub(crate) room: String,
    pub(crate) seen: Seen,
}

#[derive(Default)]
pub(crate) struct Verdict {
    pub(crate) rows: usize,
    pub(crate) lost: Vec<String>,
    pub(crate) duplicated: Vec<String>,
    pub(crate) unexpected: Vec<String>,
    pub(crate) other: Vec<String>,
}

impl Verdict {
    pub(crate) fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.other.is_empty()
    }

    /// `N rows checked, N lost, N duplicated, N unexpected, N other`, for the summary lines.
    pub(crate) fn counts(&self) -> String {
        format!(
            "{} rows checked, {} lost, {} duplicated, {} unexpected, {} other",
            self.rows,
            self.lost.len(),
            self.duplicated.len(),
            self.unexpected.len(),
            self.other.len()
        )
    }
}
/// The rows' ids by (author, nonce).
type ByKey = HashMap<(String, String), Vec<i64>>;

/// Compare the database with what the clients saw. Every test resends until everything is
/// acknowledged before it stops, so every nonce ever sent must have its row.
fn check_database(db: &Path, clients: &[Client], histories: &[Vec<(i64, Seen)>]) -> Verdict {
    let mut v = Verdict::default();
    let rows = read_rows(db, &mut v);
    check_against(&rows, v, clients, histories)
}

/// [`check_database`] for rows read from any store (`v` may already hold problems found
/// while reading them).
pub(crate) fn check_against(
    rows: &[Row],
    mut v: Verdict,
    clients: &[Client],
    histories: &[Vec<(i64, Seen)>],
) -> Verdict {
    v.rows = rows.len();
    let by_key = check_rows(rows, clients, &mut v);
    let by_id: HashMap<i64, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    let all_ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    for c in clients {
        check_client(c, &by_key, &by_id, &all_ids, &mut v);
    }
    check_histories(rows, clients, histories, &mut v);
    for c in clients {
        v.other.extend(c.violations.iter().cloned());
    }
    v
}

/// Open the database read-only, check its integrity, and read every message with its author
/// and room (a message without them is reported).
fn read_rows(db: &Path, v: &mut Verdict) -> Vec<Row> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("opens the database");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check runs");
    if integrity != "ok" {
        v.other.push(format!("integrity_check: {integrity}"));
    }
    let rows: Vec<Row> = conn
        .prepare(
            "SELECT m.id, u.username, r.name, m.nonce, m.body FROM messages m \
             JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id ORDER BY m.id",
        )
        .expect("prepares")
        .query_map([], |r| {
            let user: String = r.get(1)?;
            Ok(Row {
                id: r.get(0)?,
                user: user.clone(),
                room: r.get(2)?,
                seen: Seen {
                    user,
                    nonce: r.get(3)?,
                    body: r.get(4)?,
                },
            })
        })
        .expect("queries")
        .collect::<rusqlite::Result<_>>()
        .expect("reads rows");
    let total: i64 = conn
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .expect("counts");
    if total as usize != rows.len() {
        v.other.push(format!(
            "{total} rows in messages but {} with their user and room",
            rows.len()
        ));
    }
    rows
}

/// Each row is in the room and carries a nonce its author sent, with the body sent; no
/// (author, nonce) has two rows.
fn check_rows(rows: &[Row], clients: &[Client], v: &mut Verdict) -> ByKey {
    let by_client: HashMap<&str, &Client> = clients.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut by_key = ByKey::new();
    for row in rows {
        if row.room != ROOM {
            v.unexpected
                .push(format!("row {} is in room {}", row.id, row.room));
        }
        let Some(nonce) = &row.seen.nonce else {
            v.unexpected
                .push(format!("row {} by {} has no nonce", row.id, row.user));
            continue;
        };
        by_key
            .entry((row.user.clone(), nonce.clone()))
            .or_default()
            .push(row.id);
        match by_client
            .get(row.user.as_str())
            .and_then(|c| c.nonces.get(nonce))
        {
            None => v.unexpected.push(format!(
                "row {} by {} has nonce {nonce}, which its author never sent",
                row.id, row.user
            )),
            Some(rec) if rec.sends == 0 => v.unexpected.push(format!(
                "row {} by {} has nonce {nonce}, which was never sent",
                row.id, row.user
            )),
            Some(rec) if rec.body != row.seen.body => v.unexpected.push(format!(
                "row {} ({nonce}) has body {:?}, sent {:?}",
                row.id, row.seen.body, rec.body
            )),
            Some(_) => {}
        }
    }
    for ((user, nonce), ids) in &by_key {
        if ids.len() > 1 {
            v.duplicated
                .push(format!("{user} nonce {nonce}: rows {ids:?}"));
        }
    }
    by_key
}

/// Every nonce `c` sent was acknowledged and is stored with the acknowledged id, every frame
/// `c` saw matches the row with its id, and `c` saw every row.
fn check_client(
    c: &Client,
    by_key: &ByKey,
    by_id: &HashMap<i64, &Row>,
    all_ids: &[i64],
    v: &mut Verdict,
) {
    for n in &c.order {
        let rec = &c.nonces[n];
        let stored = by_key.get(&(c.name.clone(), n.clone()));
        match (rec.id, stored) {
            (Some(id), None) => v.lost.push(format!(
                "{} nonce {n}: acknowledged as id {id}, no row",
                c.name
            )),
            (Some(id), Some(ids)) if !ids.contains(&id) => v.lost.push(format!(
                "{} nonce {n}: acknowledged as id {id}, stored as {ids:?}",
                c.name
            )),
            (None, _) if rec.sends > 0 => v.other.push(format!(
                "{} nonce {n}: sent {} times, never acknowledged",
                c.name, rec.sends
            )),
            _ => {}
        }
    }
    for (id, seen) in &c.seen {
        match by_id.get(id) {
            Some(row) if row.seen == *seen => {}
            Some(row) => v.lost.push(format!(
                "{} saw id {id} as {seen:?}; the row is {:?}",
                c.name, row.seen
            )),
            None => v.lost.push(format!(
                "{} saw id {id} ({seen:?}); there is no such row",
                c.name
            )),
        }
    }
    let missed: Vec<i64> = all_ids
        .iter()
        .filter(|id| !c.seen.contains_key(id))
        .copied()
        .collect();
    if !missed.is_empty() {
        v.other.push(format!(
            "{} never received {} committed messages, e.g. ids {:?}",
            c.name,
            missed.len(),
            &missed[..missed.len().min(10)]
        ));
    }
}

/// Each client's full `?since=0` history equals the table.
fn check_histories(
    rows: &[Row],
    clients: &[Client],
    histories: &[Vec<(i64, Seen)>],
    v: &mut Verdict,
) {
    let table: Vec<(i64, &Seen)> = rows.iter().map(|r| (r.id, &r.seen)).collect();
    for (c, h) in clients.iter().zip(histories) {
        let replayed: Vec<(i64, &Seen)> = h.iter().map(|(id, s)| (*id, s)).collect();
        if replayed != table {
            let first = replayed
                .iter()
                .zip(&table)
                .position(|(a, b)| a != b)
                .unwrap_or(replayed.len().min(table.len()));
            v.other.push(format!(
                "{}'s ?since=0 history ({} messages) differs from the table ({} rows) at position {first}",
                c.name,
                replayed.len(),
                table.len()
            ));
        }
    }
}

pub(crate) fn assert_clean(v: &Verdict, test: &str, seed: u64, dir: &Path) {
    if v.is_clean() {
        return;
    }
    let mut report = format!(
        "{test} (seed {seed}, replay with HEARTH_CRASH_SEED={seed}): {} lost, {} duplicated, \
         {} unexpected, {} other problems\n",
        v.lost.len(),
        v.duplicated.len(),
        v.unexpected.len(),
        v.other.len()
    );
    for (label, list) in [
        ("lost", &v.lost),
        ("duplicated", &v.duplicated),
        ("unexpected", &v.unexpected),
        ("other", &v.other),
    ] {
        for item in list.iter().take(25) {
            report.push_str(&format!("  {label}: {item}\n"));
        }
        if list.len() > 25 {
            report.push_str(&format!("  ... and {} more {label}\n", list.len() - 25));
        }
    }
    report.push_str(&log_tail(dir));
    panic!("{report}");
}

pub(crate) fn totals(clients: &[Client]) -> (usize, u64, Stats) {
    let mut s = Stats::default();
    let mut nonces = 0;
    for c in clients {
        nonces += c.sent();
        s.sends += c.stats.sends;
        s.immediate_copies += c.stats.immediate_copies;
        s.deferred_copies += c.stats.deferred_copies;
        s.stored_replies += c.stats.stored_replies;
        s.in_doubt += c.stats.in_doubt;
        s.found_on_replay += c.stats.found_on_replay;
        s.acked_on_resend += c.stats.acked_on_resend;
        s.connections += c.stats.connections;
    }
    let sends = s.sends;
    (nonces, sends, s)
}

/// Nonces sent and nonces acknowledged so far, over all clients.
pub(crate) fn progress(clients: &[Client]) -> (usize, usize) {
    (
        clients.iter().map(Client::sent).sum(),
        clients.iter().map(Client::acked).sum(),
    )
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_cycles_lose_no_acknowledged_message() {
    let test = "kill_9_cycles_lose_no_acknowledged_message";
    let seed = seed(test, SEED_VAR, None);
    let cycles = crash_cycles(DEFAULT_CYCLES);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let http = http_client();
    let mut server = start_server(dir.path());
    let mut clients = make_clients(&http, server.port, seed).await;
    let (_stop_tx, stop) = watch::channel(false);
    let mut kill_moments = Vec::new();
    for cycle in 0..cycles {
        let running = spawn_round(clients, &[server.port], STEADY, &stop, &http);
        let after = Duration::from_millis(rng.range(50, 400));
        kill_moments.push(after.as_millis());
        tokio::time::sleep(after).await;
        server.kill_9();
        clients = join_round(running, &format!("kill cycle {cycle}"))
            .await
            .into_iter()
            .map(|(mut c, end)| {
                if matches!(end, End::Finished | End::Hung) {
                    c.violation(format!("cycle {cycle}: connection ended with {end:?}"));
                }
                c
            })
            .collect();
        server = start_server(dir.path());
    }
    let (sent_in_cycles, acked_in_cycles) = progress(&clients);
    let (clients, histories) = drain_and_catch_up(clients, server.port, &http).await;
    let status = server.sigterm(HANG);
    assert!(status.success(), "hearth exited with {status} on SIGTERM");

    let v = check_database(&db_path(dir.path()), &clients, &histories);
    let (nonces, sends, s) = totals(&clients);
    println!("{test}: kill moments (ms) {kill_moments:?}");
    println!(
        "durability: {cycles} crash cycles, {CLIENTS} clients, {sent_in_cycles} sent, \
         {acked_in_cycles} acknowledged, {}; after the final resend {nonces} nonces in {sends} \
         sends, {}",
        s.doubts(" at a kill"),
        v.counts()
    );
    assert_clean(&v, test, seed, dir.path());
    assert!(sent_in_cycles > 0, "nothing was sent");
    assert_eq!(v.rows, nonces, "one row per nonce sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_nothing_and_exits_zero() {
    let test = "sigterm_loses_nothing_and_exits_zero";
    let seed = seed(test, SEED_VAR, None);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let http = http_client();
    let server = start_server(dir.path());
    let clients = make_clients(&http, server.port, seed).await;
    let (_stop_tx, stop) = watch::channel(false);
    let running = spawn_round(clients, &[server.port], STEADY, &stop, &http);
    let after = Duration::from_millis(rng.range(200, 600));
    tokio::time::sleep(after).await;
    let status = server.sigterm(HANG);
    let ends = join_round(running, "sigterm").await;
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!("hearth exited with {status} on SIGTERM"));
    }
    let first_exit = status;
    let mut closed_1001 = 0;
    let mut clients = Vec::new();
    for (c, end) in ends {
        if end == (End::Gone { close: Some(1001) }) {
            closed_1001 += 1;
        } else {
            problems.push(format!(
                "{}: connection ended with {end:?}, expected close code 1001",
                c.name
            ));
        }
        clients.push(c);
    }
    let (sent_before, acked_before) = progress(&clients);

    let server = start_server(dir.path());
    let (clients, histories) = drain_and_catch_up(clients, server.port, &http).await;
    let status = server.sigterm(HANG);
    if !status.success() {
        problems.push(format!("hearth exited with {status} on the second SIGTERM"));
    }
    let mut v = check_database(&db_path(dir.path()), &clients, &histories);
    v.other.extend(problems);
    let (nonces, sends, s) = totals(&clients);
    println!(
        "durability (SIGTERM after {} ms): {first_exit}, {closed_1001} of {CLIENTS} sockets \
         closed with 1001, {sent_before} sent, {acked_before} acknowledged before the stop, {}; \
         {nonces} nonces in {sends} sends, {}",
        after.as_millis(),
        s.doubts(""),
        v.counts()
    );
    assert_clean(&v, test, seed, dir.path());
    assert!(sent_before > 0, "nothing was sent before the stop");
    assert_eq!(v.rows, nonces, "one row per nonce sent");
}

/// Every copy of every nonce was answered: in the retry storm no connection dies, so each
/// send gets its reply (with the same id: a different one is reported as it arrives), and
/// no nonce goes out more than the plan's five times. Returns the answers and how many
/// nonces went out 0..=5 times.
fn check_every_copy_answered(clients: &[Client], v: &mut Verdict) -> (u64, [usize; 6]) {
    let mut echoes = 0u64;
    let mut copies = [0usize; 6];
    for c in clients {
        for n in &c.order {
            let rec = &c.nonces[n];
            echoes += u64::from(rec.echoes);
            copies[rec.sends.min(5) as usize] += 1;
            if rec.sends == 0 || rec.sends > 5 {
                v.other
                    .push(format!("{} nonce {n} was sent {} times", c.name, rec.sends));
            }
            if rec.echoes != rec.sends {
                v.other.push(format!(
                    "{} nonce {n}: sent {} times, answered {} times",
                    c.name, rec.sends, rec.echoes
                ));
            }
        }
    }
    (echoes, copies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_storm_stores_each_nonce_once() {
    let test = "retry_storm_stores_each_nonce_once";
    let seed = seed(test, SEED_VAR, None);
    let dir = tempfile::tempdir().expect("tempdir");
    let http = http_client();
    let mut server = start_server(dir.path());
    let mut clients = make_clients(&http, server.port, seed).await;
    // 4 clients x 5 connections x 150 new nonces = 3,000 nonces, each sent 1-5 times: some
    // copies right behind the first (often before it is even committed), the rest after the
    // next reconnect, one of them to a restarted server.
    let plan = Plan {
        window: 48,
        new_messages: 150,
        max_copies: 5,
        deferred_percent: 40,
    };
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        clients = settle_round(
            clients,
            server.port,
            plan,
            &http,
            &format!("storm round {round}"),
        )
        .await;
        if round == 2 {
            let status = server.sigterm(HANG);
            assert!(status.success(), "hearth exited with {status} on SIGTERM");
            server = start_server(dir.path());
        }
    }
    // The last round's deferred copies, then catch-up and full histories.
    let (clients, histories) = drain_and_catch_up(clients, server.port, &http).await;
    let status = server.sigterm(HANG);
    assert!(status.success(), "hearth exited with {status} on SIGTERM");

    let mut v = check_database(&db_path(dir.path()), &clients, &histories);
    let (echoes, copies) = check_every_copy_answered(&clients, &mut v);
    let (nonces, sends, s) = totals(&clients);
    println!(
        "retry storm: {nonces} nonces in {sends} sends ({} extra copies at once, {} after a \
         reconnect; per nonce 1..5 copies: {:?}), {echoes} answers \
         ({} with the stored message\'s original id), {} connections, 1 restart, {}",
        s.immediate_copies,
        s.deferred_copies,
        &copies[1..],
        s.stored_replies,
        s.connections,
        v.counts()
    );
    assert_clean(&v, test, seed, dir.path());
    assert_eq!(v.rows, nonces, "exactly one row per nonce");
    assert_eq!(nonces, CLIENTS * ROUNDS * plan.new_messages);
}

/// The search index's high-water mark and the last message id in the file.
fn mark_and_last(db: &Path) -> (i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("opens the database");
    conn.query_row(
        "SELECT (SELECT indexed_through FROM search_index), \
         (SELECT COALESCE(MAX(id), 0) FROM messages)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("reads the high-water mark")
}

/// What is wrong with the search index after a restart: every message acknowledged so far
/// must be in it (found by the nonce its body starts with), and its high-water mark must have
/// reached the last message. Read straight from the file while the server runs.
fn unsearchable(db: &Path, clients: &[Client]) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("opens the database");
    let mut problems = Vec::new();
    let (mark, last) = mark_and_last(db);
    if mark != last {
        problems.push(format!(
            "indexed through {mark}, the last message is {last}"
        ));
    }
    let mut find = conn
        .prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1")
        .expect("prepares");
    for c in clients {
        for (nonce, rec) in &c.nonces {
            let Some(id) = rec.id else { continue };
            let phrase = format!("\"{}\"", nonce.replace('-', " "));
            let hits: Vec<i64> = find
                .query_map([&phrase], |r| r.get(0))
                .expect("searches")
                .collect::<rusqlite::Result<_>>()
                .expect("reads hits");
            if hits != [id] {
                problems.push(format!("{nonce} (id {id}) is found as {hits:?}"));
            }
        }
    }
    problems
}

/// The last few messages each client had acknowledged, found through `GET /api/search`.
async fn search_finds_latest(http: &reqwest::Client, port: u16, clients: &[Client]) -> Vec<String> {
    let mut problems = Vec::new();
    for c in clients {
        let acked = c.order.iter().filter_map(|n| Some((n, c.nonces[n].id?)));
        let latest: Vec<(&String, i64)> = acked.collect();
        for (nonce, id) in latest.iter().rev().take(5) {
            let q = format!("\"{}\"", nonce.replace('-', " "));
            let res = http
                .get(format!("http://127.0.0.1:{port}/api/search"))
                .query(&[("q", q.as_str())])
                .bearer_auth(&c.token)
                .send()
                .await
                .expect("search request");
            let body = json_body(res).await;
            let ids: Vec<i64> = body["results"]
                .as_array()
                .map(|r| r.iter().filter_map(|h| h["id"].as_i64()).collect())
                .unwrap_or_default();
            if ids != [*id] {
                problems.push(format!("search for {nonce} (id {id}): {body}"));
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_ingest_leaves_every_acknowledged_message_searchable() {
    let test = "kill_9_mid_ingest_leaves_every_acknowledged_message_searchable";
    let seed = seed(test, SEED_VAR, None);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let http = http_client();
    let mut server = start_server(dir.path());
    let mut clients = make_clients(&http, server.port, seed).await;
    let (_stop_tx, stop) = watch::channel(false);
    let (mut acked, mut cut_short) = (0, 0);
    for cycle in 0..crash_cycles(4) {
        let running = spawn_round(clients, &[server.port], STEADY, &stop, &http);
        tokio::time::sleep(Duration::from_millis(rng.range(50, 400))).await;
        server.kill_9();
        clients = join_round(running, &format!("kill cycle {cycle}"))
            .await
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let (mark, last) = mark_and_last(&db_path(dir.path()));
        cut_short += usize::from(mark < last);
        server = start_server(dir.path());
        let mut problems = unsearchable(&db_path(dir.path()), &clients);
        problems.extend(search_finds_latest(&http, server.port, &clients).await);
        assert!(
            problems.is_empty(),
            "{test} (seed {seed}), after kill {cycle}: {} problems, e.g. {:?}\n{}",
            problems.len(),
            &problems[..problems.len().min(10)],
            log_tail(dir.path())
        );
        acked = progress(&clients).1;
    }
    let status = server.sigterm(HANG);
    assert!(status.success(), "hearth exited with {status} on SIGTERM");
    let conn = rusqlite::Connection::open(db_path(dir.path())).expect("opens the database");
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .expect("the search index matches the messages");
    println!(
        "{test}: {acked} acknowledged messages, each searchable after every restart; \
         {cut_short} kills came between a commit and its indexing pass"
    );
    assert!(acked > 0, "nothing was acknowledged");
}
