//! Property tests of the protocol's promises, against a real server (port 0, its own SQLite
//! file), plus pure properties of the parsers.
//!
//! Starting a server per generated case would be too slow, so each test starts one server and
//! every case uses fresh usernames and nonces. `PROPTEST_CASES=N` runs more cases.
//!
//! - (author, nonce) is stored once however often and in whatever order it is resent, from
//!   however many connections, across reconnects.
//! - Every connection sees messages in id order, whatever the interleaving of several senders.
//! - `?since=X` replays exactly the committed ids above X, in order, then live messages follow
//!   with no gap and no duplicate.
//! - `domain::parse_body`, `ws::protocol::ClientMsg::parse` and `config::parse_origin` never
//!   panic and mean what they say.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use hearth::domain::{parse_body, BodyProblem, MAX_BODY_CHARS};
use hearth::ws::protocol::ClientMsg;

const PASSWORD: &str = "correct horse battery staple";
/// The longest one frame or response may take before the case fails.
const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type CaseResult = Result<(), TestCaseError>;

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

/// Cases per property: modest by default (one server, real I/O), `PROPTEST_CASES` to change.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: cases(default_cases),
        // Shrinking re-runs cases against the same server; keep it bounded.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

// ---------------------------------------------------------------------------------------------
// One real server per test

struct Fixture {
    rt: Runtime,
    addr: SocketAddr,
    http: reqwest::Client,
    server: Option<hearth::Server>,
    next: AtomicUsize,
    _dir: TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = hearth::config::Config::default();
        config.server.host = "127.0.0.1".into();
        config.server.port = 0;
        config.database.path = dir.path().join("chat.db");
        config.auth.pbkdf2_iterations = 1000;
        config.limits.messages_per_second = 0.0;
        config.limits.registrations_per_hour = 0;
        // Cases open and drop many connections; closing is asynchronous on the server side.
        config.limits.connections_per_user = 0;
        config.limits.connections_per_address = 0;
        let server = rt
            .block_on(async { timeout(WAIT, hearth::run(config)).await })
            .expect("the server starts in time")
            .expect("the server starts");
        let addr = server.local_addr();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(WAIT)
            .build()
            .expect("http client");
        Fixture {
            rt,
            addr,
            http,
            server: Some(server),
            next: AtomicUsize::new(0),
            _dir: dir,
        }
    }

    /// A number no other case of this test has used.
    fn unique(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    async fn signup(&self, name: &str) -> Result<String, TestCaseError> {
        let res = self
            .http
            .post(format!("http://{}/api/register", self.addr))
            .json(&json!({ "username": name, "password": PASSWORD }))
            .send()
            .await
            .map_err(|e| fail(format!("register {name}: {e}")))?;
        if res.status() != 201 {
            return Err(fail(format!("register {name}: {}", res.status())));
        }
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("hearth_session="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string())
            .ok_or_else(|| fail("no session cookie"))
    }

    /// Open `/ws` (optionally `?since=`) and return it with its `ready` frame.
    async fn connect(
        &self,
        cookie: &str,
        since: Option<i64>,
    ) -> Result<(Ws, Value), TestCaseError> {
        let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
        let mut req = format!("ws://{}/ws{query}", self.addr)
            .into_client_request()
            .map_err(|e| fail(e.to_string()))?;
        req.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(&format!("hearth_session={cookie}"))
                .map_err(|e| fail(e.to_string()))?,
        );
        let (mut ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| fail("handshake timed out"))?
            .map_err(|e| fail(format!("handshake: {e}")))?;
        let ready = next_json(&mut ws).await?;
        if ready["type"] != "ready" {
            return Err(fail(format!("first frame is not ready: {ready}")));
        }
        Ok((ws, ready))
    }

    /// Every message in `general` with id > `after`, paging forward over HTTP.
    async fn history_after(&self, cookie: &str, after: i64) -> Result<Vec<Value>, TestCaseError> {
        let mut out: Vec<Value> = Vec::new();
        let mut cursor = after;
        loop {
            let res = self
                .http
                .get(format!(
                    "http://{}/api/rooms/general/messages?after={cursor}&limit=200",
                    self.addr
                ))
                .header("cookie", format!("hearth_session={cookie}"))
                .send()
                .await
                .map_err(|e| fail(format!("history: {e}")))?;
            if res.status() != 200 {
                return Err(fail(format!("history: {}", res.status())));
            }
            let v: Value = res
                .json()
                .await
                .map_err(|e| fail(format!("history JSON: {e}")))?;
            let page = v["messages"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return Ok(out);
            }
            cursor = page
                .last()
                .and_then(|m| m["id"].as_i64())
                .unwrap_or(i64::MAX);
            out.extend(page);
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = self
                .rt
                .block_on(async { timeout(Duration::from_secs(30), server.shutdown()).await });
        }
    }
}

async fn next_json(ws: &mut Ws) -> Result<Value, TestCaseError> {
    loop {
        match timeout(WAIT, ws.next()).await {
            Err(_) => return Err(fail("no frame within the time limit")),
            Ok(None) => return Err(fail("the connection ended")),
            Ok(Some(Err(e))) => return Err(fail(format!("read error: {e}"))),
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(&t)
                    .map_err(|e| fail(format!("non-JSON frame ({e}): {t}")))
            }
            Ok(Some(Ok(Message::Close(c)))) => return Err(fail(format!("closed: {c:?}"))),
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn send_frame(body: &str, nonce: &str) -> Message {
    Message::text(json!({"type":"send","room":"general","body":body,"nonce":nonce}).to_string())
}

fn id_of(v: &Value) -> Result<i64, TestCaseError> {
    v["id"]
        .as_i64()
        .ok_or_else(|| fail(format!("no id in {v}")))
}

// ---------------------------------------------------------------------------------------------
// (a) (author, nonce) is stored once

#[derive(Debug, Clone)]
struct Resend {
    conn: usize,
    nonce: usize,
    body: usize,
    reconnect_first: bool,
}

fn resend_plan() -> impl Strategy<Value = (Vec<String>, usize, Vec<Resend>)> {
    // Nonces: 1 to 64 printable characters, any script, distinct.
    let nonces = prop::collection::btree_set("[a-zA-Z0-9_-]{1,12}|\\PC{1,64}", 1..=4)
        .prop_map(|s| s.into_iter().collect::<Vec<String>>());
    let ops = prop::collection::vec(
        (0..3usize, 0..4usize, 0..3usize, prop::bool::weighted(0.15)).prop_map(
            |(conn, nonce, body, reconnect_first)| Resend {
                conn,
                nonce,
                body,
                reconnect_first,
            },
        ),
        1..16,
    );
    (nonces, 1..=3usize, ops)
}

async fn resend_case(
    fx: &Fixture,
    nonces: Vec<String>,
    conns: usize,
    ops: Vec<Resend>,
) -> CaseResult {
    let k = fx.unique();
    let name = format!("dedup{k}");
    let cookie = fx.signup(&name).await?;
    let mut live: Vec<(Ws, HashMap<usize, usize>)> = Vec::new();
    let mut start = i64::MAX;
    for _ in 0..conns {
        let (ws, ready) = fx.connect(&cookie, None).await?;
        start = start.min(ready["last_id"].as_i64().unwrap_or(0));
        live.push((ws, HashMap::new()));
    }
    let mut bodies_sent: Vec<BTreeSet<String>> = vec![BTreeSet::new(); nonces.len()];
    let mut send = |ws_sent: &mut HashMap<usize, usize>, n: usize, variant: usize| {
        let body = format!("case {k} nonce {n} variant {variant}");
        bodies_sent[n].insert(body.clone());
        *ws_sent.entry(n).or_insert(0) += 1;
        body
    };
    for op in &ops {
        let c = op.conn % conns;
        let n = op.nonce % nonces.len();
        if op.reconnect_first {
            // Drop the connection without reading: acknowledgements in flight are lost, as
            // when a network drops.
            let (fresh, _) = fx.connect(&cookie, None).await?;
            let (old, _) = std::mem::replace(&mut live[c], (fresh, HashMap::new()));
            drop(old);
        }
        let body = send(&mut live[c].1, n, op.body);
        live[c]
            .0
            .send(send_frame(&body, &nonces[n]))
            .await
            .map_err(|e| fail(format!("send: {e}")))?;
    }
    // The retry after a reconnect: every nonce once more, on a fresh connection.
    let (mut retry, _) = fx.connect(&cookie, None).await?;
    let mut retry_sent = HashMap::new();
    for (n, nonce) in nonces.iter().enumerate() {
        let body = send(&mut retry_sent, n, 9);
        retry
            .send(send_frame(&body, nonce))
            .await
            .map_err(|e| fail(format!("send: {e}")))?;
    }
    live.push((retry, retry_sent));

    // Every send is acknowledged on its connection, and every acknowledgement of one nonce
    // names the same message.
    let by_text: HashMap<&str, usize> = nonces
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut ack_id: BTreeMap<usize, i64> = BTreeMap::new();
    for (ws, sent) in live.iter_mut() {
        let mut seen: HashMap<usize, usize> = HashMap::new();
        while sent
            .iter()
            .any(|(n, want)| seen.get(n).copied().unwrap_or(0) < *want)
        {
            let v = next_json(ws).await?;
            match v["type"].as_str() {
                Some("message") if v["user"] == name.as_str() => {
                    let nonce = v["nonce"]
                        .as_str()
                        .ok_or_else(|| fail(format!("no nonce: {v}")))?;
                    let n = *by_text
                        .get(nonce)
                        .ok_or_else(|| fail(format!("unknown nonce {nonce:?}")))?;
                    let id = id_of(&v)?;
                    if *ack_id.entry(n).or_insert(id) != id {
                        return Err(fail(format!(
                            "nonce {nonce:?} acknowledged as {} and as {id}",
                            ack_id[&n]
                        )));
                    }
                    let body = v["body"].as_str().unwrap_or_default();
                    if !bodies_sent[n].contains(body) {
                        return Err(fail(format!(
                            "nonce {nonce:?} came back with body {body:?}"
                        )));
                    }
                    *seen.entry(n).or_insert(0) += 1;
                }
                Some("error") => return Err(fail(format!("refused: {v}"))),
                _ => {}
            }
        }
    }
    for (ws, _) in live.iter_mut() {
        let _ = ws.close(None).await;
    }

    // Stored exactly once each, with the acknowledged id.
    let stored: Vec<Value> = fx
        .history_after(&cookie, start)
        .await?
        .into_iter()
        .filter(|m| m["user"] == name.as_str())
        .collect();
    let mut count: BTreeMap<usize, usize> = BTreeMap::new();
    for m in &stored {
        let nonce = m["nonce"]
            .as_str()
            .ok_or_else(|| fail(format!("stored without nonce: {m}")))?;
        let n = by_text[nonce];
        *count.entry(n).or_insert(0) += 1;
        if ack_id.get(&n) != Some(&id_of(m)?) {
            return Err(fail(format!(
                "stored {m} but acknowledged {:?}",
                ack_id.get(&n)
            )));
        }
    }
    let want: BTreeMap<usize, usize> = (0..nonces.len()).map(|n| (n, 1)).collect();
    if count != want {
        return Err(fail(format!(
            "stored counts per nonce {count:?}, expected one each"
        )));
    }
    Ok(())
}

#[test]
fn each_author_nonce_is_stored_once_however_it_is_resent() {
    let fx = Fixture::start();
    runner(32)
        .run(&resend_plan(), |(nonces, conns, ops)| {
            fx.rt.block_on(resend_case(&fx, nonces, conns, ops))
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// (b) delivery order is id order

fn interleaving() -> impl Strategy<Value = (usize, Vec<(usize, bool)>)> {
    (
        2..=4usize,
        prop::collection::vec((0..4usize, prop::bool::weighted(0.2)), 4..40),
    )
}

async fn order_case(fx: &Fixture, senders: usize, schedule: Vec<(usize, bool)>) -> CaseResult {
    let k = fx.unique();
    let observer_cookie = fx.signup(&format!("obs{k}")).await?;
    let (observer, _) = fx.connect(&observer_cookie, None).await?;
    let mut conns = vec![observer];
    let mut names = Vec::new();
    for s in 0..senders {
        let name = format!("ord{k}s{s}");
        let cookie = fx.signup(&name).await?;
        conns.push(fx.connect(&cookie, None).await?.0);
        names.push(name);
    }
    let mut sent_by: Vec<Vec<String>> = vec![Vec::new(); senders];
    for (seq, (s, pause)) in schedule.iter().enumerate() {
        let s = s % senders;
        let nonce = format!("o{k}-{seq}");
        conns[s + 1]
            .send(send_frame(&format!("case {k} #{seq} from {s}"), &nonce))
            .await
            .map_err(|e| fail(format!("send: {e}")))?;
        sent_by[s].push(nonce);
        if *pause {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let total = schedule.len();
    let mut sequences = Vec::new();
    for ws in conns.iter_mut() {
        let mut seq: Vec<(i64, String, String)> = Vec::new();
        while seq.len() < total {
            let v = next_json(ws).await?;
            match v["type"].as_str() {
                Some("message") => seq.push((
                    id_of(&v)?,
                    v["nonce"].as_str().unwrap_or_default().to_string(),
                    v["user"].as_str().unwrap_or_default().to_string(),
                )),
                Some("error") => return Err(fail(format!("refused: {v}"))),
                _ => {}
            }
        }
        let _ = ws.close(None).await;
        sequences.push(seq);
    }
    let observed: Vec<i64> = sequences[0].iter().map(|m| m.0).collect();
    if observed.windows(2).any(|w| w[0] >= w[1]) {
        return Err(fail(format!("observer saw ids out of order: {observed:?}")));
    }
    for (i, seq) in sequences.iter().enumerate() {
        let ids: Vec<i64> = seq.iter().map(|m| m.0).collect();
        if ids != observed {
            return Err(fail(format!(
                "connection {i} saw {ids:?}, the observer {observed:?}"
            )));
        }
    }
    // One connection's messages keep the order in which it sent them.
    for (s, nonces) in sent_by.iter().enumerate() {
        let got: Vec<&String> = sequences[0]
            .iter()
            .filter(|m| m.2 == names[s])
            .map(|m| &m.1)
            .collect();
        if got != nonces.iter().collect::<Vec<_>>() {
            return Err(fail(format!(
                "sender {s} sent {nonces:?}, committed as {got:?}"
            )));
        }
    }
    // And what was delivered is what was stored.
    let first = observed[0];
    let stored: Vec<i64> = fx
        .history_after(&observer_cookie, first - 1)
        .await?
        .iter()
        .map(id_of)
        .collect::<Result<_, _>>()?;
    if stored != observed {
        return Err(fail(format!("stored {stored:?}, delivered {observed:?}")));
    }
    Ok(())
}

#[test]
fn every_connection_sees_id_order_whatever_the_interleaving() {
    let fx = Fixture::start();
    runner(32)
        .run(&interleaving(), |(senders, schedule)| {
            fx.rt.block_on(order_case(&fx, senders, schedule))
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// (c) ?since=X replays exactly the committed ids above X

async fn post(ws: &mut Ws, body: &str, nonce: &str) -> Result<i64, TestCaseError> {
    ws.send(send_frame(body, nonce))
        .await
        .map_err(|e| fail(format!("send: {e}")))?;
    loop {
        let v = next_json(ws).await?;
        if v["type"] == "message" && v["nonce"] == nonce {
            return id_of(&v);
        }
        if v["type"] == "error" {
            return Err(fail(format!("refused: {v}")));
        }
    }
}

async fn since_case(
    fx: &Fixture,
    writer_cookie: &str,
    reader_cookie: &str,
    fraction: f64,
    before: usize,
    during: usize,
) -> CaseResult {
    let k = fx.unique();
    let (mut writer, _) = fx.connect(writer_cookie, None).await?;
    for i in 0..before {
        post(
            &mut writer,
            &format!("case {k} before {i}"),
            &format!("b{k}-{i}"),
        )
        .await?;
    }
    let committed: Vec<i64> = fx
        .history_after(reader_cookie, 0)
        .await?
        .iter()
        .map(id_of)
        .collect::<Result<_, _>>()?;
    let head = committed.last().copied().unwrap_or(0);
    // X anywhere from 0 to the head. (Above the head the client claims messages that do not
    // exist yet; the contract says nothing about that case.)
    let x = (head as f64 * fraction).round() as i64;

    // Messages committed while the reader connects and replays; their ids come back to the
    // writer as acknowledgements.
    let writes = async move {
        let mut pending = BTreeSet::new();
        for i in 0..during {
            let nonce = format!("d{k}-{i}");
            writer
                .send(send_frame(&format!("case {k} during {i}"), &nonce))
                .await
                .map_err(|e| fail(format!("send: {e}")))?;
            pending.insert(nonce);
        }
        let mut ids = Vec::new();
        while !pending.is_empty() {
            let v = next_json(&mut writer).await?;
            if v["type"] == "message" && v["nonce"].as_str().is_some_and(|n| pending.remove(n)) {
                ids.push(id_of(&v)?);
            }
        }
        Ok::<_, TestCaseError>((writer, ids))
    };
    let read = async {
        let (mut reader, ready) = fx.connect(reader_cookie, Some(x)).await?;
        let last_id = ready["last_id"]
            .as_i64()
            .ok_or_else(|| fail("no last_id"))?;
        let mut replay = Vec::new();
        let resumed = loop {
            let v = next_json(&mut reader).await?;
            match v["type"].as_str() {
                Some("message") => replay.push(id_of(&v)?),
                Some("resumed") => break v,
                Some("error") => return Err(fail(format!("refused: {v}"))),
                _ => {}
            }
        };
        Ok::<_, TestCaseError>((reader, last_id, replay, resumed))
    };
    let (written, read) = tokio::join!(writes, read);
    let (mut writer, during_ids) = written?;
    let (mut reader, last_id, replay, resumed) = read?;
    let _ = writer.close(None).await;
    let resumed_head = resumed["head"]
        .as_i64()
        .ok_or_else(|| fail(format!("no head: {resumed}")))?;
    // Everything committed after the replay's snapshot arrives live (a message at or below X
    // is one the client says it has, and is not sent).
    let owed = during_ids
        .iter()
        .filter(|id| **id > resumed_head && **id > x)
        .count();
    let mut live = Vec::new();
    while live.len() < owed {
        let v = next_json(&mut reader).await?;
        if v["type"] == "message" {
            live.push(id_of(&v)?);
        }
    }
    let _ = reader.close(None).await;

    let all: Vec<i64> = fx
        .history_after(reader_cookie, 0)
        .await?
        .iter()
        .map(id_of)
        .collect::<Result<_, _>>()?;
    if resumed["complete"] != true {
        return Err(fail(format!(
            "incomplete replay of a short history: {resumed}"
        )));
    }
    if resumed_head < last_id {
        return Err(fail(format!(
            "resumed head {resumed_head} below ready's last_id {last_id}"
        )));
    }
    // The replay is exactly the committed ids in (X, head], in order.
    let want_replay: Vec<i64> = all
        .iter()
        .copied()
        .filter(|id| *id > x && *id <= resumed_head)
        .collect();
    if replay != want_replay {
        return Err(fail(format!(
            "since={x}: replayed {replay:?}, committed above it up to head {resumed_head}: {want_replay:?}"
        )));
    }
    // Replay then live: every committed id above X exactly once, in order.
    let seen: Vec<i64> = replay.iter().chain(live.iter()).copied().collect();
    let want_all: Vec<i64> = all.iter().copied().filter(|id| *id > x).collect();
    if seen != want_all {
        return Err(fail(format!(
            "since={x}: saw {seen:?} (replay {replay:?} + live {live:?}), committed {want_all:?}"
        )));
    }
    Ok(())
}

#[test]
fn since_replays_exactly_the_committed_ids_above_it() {
    let fx = Fixture::start();
    let (writer, reader) = fx.rt.block_on(async {
        let w = fx.signup("since-writer").await.expect("writer");
        let r = fx.signup("since-reader").await.expect("reader");
        (w, r)
    });
    // Some history to replay from the start.
    fx.rt.block_on(async {
        let (mut ws, _) = fx.connect(&writer, None).await.expect("connect");
        for i in 0..30 {
            post(&mut ws, &format!("seed {i}"), &format!("seed-{i}"))
                .await
                .expect("seed message");
        }
        let _ = ws.close(None).await;
    });
    runner(32)
        .run(
            &(
                prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64],
                0..4usize,
                0..6usize,
            ),
            |(fraction, before, during)| {
                fx.rt
                    .block_on(since_case(&fx, &writer, &reader, fraction, before, during))
            },
        )
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Pure properties

/// Strings with whitespace of many kinds around and inside, some near the length limit.
fn body_like() -> impl Strategy<Value = String> {
    let ws = prop::collection::vec(
        prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\u{a0}', '\u{2003}', '\u{3000}', '\u{85}', '\u{feff}',
            '\u{200b}',
        ]),
        0..6,
    )
    .prop_map(|v| v.into_iter().collect::<String>());
    let core = prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        (3995..4005usize, any::<char>()).prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
        (3995..4005usize).prop_map(|n| "é".repeat(n)),
    ];
    (ws.clone(), core, ws).prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

/// JSON frames of roughly the right shape, with wrong types and odd values mixed in.
fn frame_like() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec!["send", "typing", "general", "", "ready", "message"])
            .prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["type", "room", "body", "nonce", "x"])
                    .prop_map(str::to_string),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    value.prop_map(|v| v.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn parse_body_returns_the_trimmed_input_or_says_why_not(raw in body_like()) {
        let cleaned = raw.replace(['\u{2}', '\u{3}'], "");
        let trimmed = cleaned.trim();
        match parse_body(&raw) {
            Ok(body) => {
                prop_assert_eq!(body.as_ref(), trimmed);
                prop_assert!(!body.is_empty());
                prop_assert!(body.chars().count() <= MAX_BODY_CHARS);
            }
            Err(BodyProblem::Empty) => prop_assert!(trimmed.is_empty()),
            Err(BodyProblem::TooLong) => prop_assert!(trimmed.chars().count() > MAX_BODY_CHARS),
        }
    }

    #[test]
    fn client_frames_parse_without_panicking(text in prop_oneof![any::<String>(), frame_like()]) {
        if let Ok(msg) = ClientMsg::parse(&text) {
            // Only JSON tagged send or typing is a frame: an object with that `type`, or (serde's
            // sequence form of a tagged enum, which the parser also takes) an array that starts
            // with the tag, e.g. `["typing","general"]`.
            let v: Value = serde_json::from_str(&text).expect("a parsed frame is JSON");
            let tag = if v.is_array() { &v[0] } else { &v["type"] };
            prop_assert!(tag == "send" || tag == "typing", "{} parsed as {:?}", text, msg);
        }
    }

    #[test]
    fn well_formed_frames_parse_to_what_they_say(
        room in any::<String>(),
        body in any::<String>(),
        nonce in proptest::option::of(any::<String>()),
        typing in any::<bool>(),
    ) {
        if typing {
            let text = json!({"type":"typing","room":room}).to_string();
            prop_assert_eq!(ClientMsg::parse(&text), Ok(ClientMsg::Typing { room }));
        } else {
            let text = json!({"type":"send","room":room,"body":body,"nonce":nonce}).to_string();
            prop_assert_eq!(ClientMsg::parse(&text), Ok(ClientMsg::Send { room, body, nonce }));
        }
    }

    #[test]
    fn deeply_nested_frames_are_refused_not_fatal(depth in 1usize..100_000, open in prop::sample::select(vec!["[", "{\"a\":", "{\"type\":\"send\",\"room\":"])) {
        let text = open.repeat(depth);
        prop_assert!(ClientMsg::parse(&text).is_err());
    }

    #[test]
    fn parse_origin_never_panics_and_is_idempotent(url in prop_oneof![
        any::<String>(),
        "(?i)(https?|ftp|ws)://[\\PC]{0,30}",
        "(?i)https?://[a-zA-Z0-9.\\-\\[\\]:@ ]{0,30}(/[\\PC]{0,10})?",
    ]) {
        if let Ok(origin) = hearth::config::parse_origin(&url) {
            prop_assert!(origin.starts_with("http://") || origin.starts_with("https://"), "{}", origin);
            prop_assert_eq!(&origin, &origin.to_ascii_lowercase());
            prop_assert!(url.to_ascii_lowercase().starts_with(&origin), "{} from {}", origin, url);
            prop_assert_eq!(hearth::config::parse_origin(&origin), Ok(origin.clone()));
        }
    }

    #[test]
    fn parse_origin_accepts_plain_host_port_urls(
        https in any::<bool>(),
        host in "[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?",
        port in any::<u16>(),
        path in "(/[a-zA-Z0-9._~-]{0,10}){0,3}",
    ) {
        let scheme = if https { "https" } else { "http" };
        let url = format!("{scheme}://{host}:{port}{path}");
        prop_assert_eq!(hearth::config::parse_origin(&url), Ok(format!("{scheme}://{host}:{port}")));
    }
}
