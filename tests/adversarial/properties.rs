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
//!
//! A case that fails inside the kit (a refused upgrade, a frame that never comes) panics;
//! proptest takes the panic as the case's failure and shrinks it like any other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use hearth::domain::{parse_body, BodyProblem, MAX_BODY_CHARS};
use hearth::protocol::ClientMsg;

use crate::common::{id_of, send_frame, Auth, TestApp, Ws};

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

/// A server shared by every case of one property, on a runtime of its own: proptest's runner
/// is synchronous, so each case is driven with `block_on`.
struct Fixture {
    rt: Runtime,
    app: TestApp,
    next: AtomicUsize,
}

impl Fixture {
    fn start() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let app = rt.block_on(TestApp::with_config(|c| {
            // Cases open and drop many connections; closing is asynchronous on the server side.
            c.limits.connections_per_user = 0;
            c.limits.connections_per_address = 0;
        }));
        Fixture {
            rt,
            app,
            next: AtomicUsize::new(0),
        }
    }

    /// A number no other case of this test has used.
    fn unique(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Drive one case (or set-up step) to completion.
    fn block_on<T>(&self, fut: impl Future<Output = T>) -> T {
        self.rt.block_on(fut)
    }

    /// Check `case` against 32 generated values (`PROPTEST_CASES` to change), shrinking a
    /// failure to a small example.
    fn check<S, F>(&self, strategy: &S, case: impl Fn(S::Value) -> F)
    where
        S: Strategy,
        F: Future<Output = CaseResult>,
    {
        runner(32)
            .run(strategy, |value| self.block_on(case(value)))
            .unwrap();
    }
}

impl Drop for Fixture {
    /// Stop the server gracefully, without failing: this also runs while a failed property
    /// unwinds, when a second panic would abort every test in the binary.
    fn drop(&mut self) {
        if let Some(server) = self.app.server.take() {
            // The timer is made inside the runtime, which it needs.
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await
            });
        }
    }
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

/// One resend case: its account, its nonces, and every body sent under each nonce.
struct Resends<'a> {
    k: usize,
    name: String,
    nonces: &'a [String],
    bodies_sent: Vec<BTreeSet<String>>,
}

/// A connection and how many times it sent each nonce (by index).
type Sender = (Ws, HashMap<usize, usize>);

impl Resends<'_> {
    /// Send nonce `n` (body variant `variant`) on `conn`, remembering the body.
    async fn send(&mut self, conn: &mut Sender, n: usize, variant: usize) {
        let body = format!("case {} nonce {n} variant {variant}", self.k);
        self.bodies_sent[n].insert(body.clone());
        *conn.1.entry(n).or_insert(0) += 1;
        conn.0
            .send_json(&send_frame(&body, Some(&self.nonces[n])))
            .await;
    }

    /// The index of a nonce text.
    fn index(&self, nonce: &str) -> Result<usize, TestCaseError> {
        self.nonces
            .iter()
            .position(|n| n == nonce)
            .ok_or_else(|| fail(format!("unknown nonce {nonce:?}")))
    }
}

async fn resend_case(
    fx: &Fixture,
    nonces: Vec<String>,
    conns: usize,
    ops: Vec<Resend>,
) -> CaseResult {
    let k = fx.unique();
    let mut case = Resends {
        k,
        name: format!("dedup{k}"),
        nonces: &nonces,
        bodies_sent: vec![BTreeSet::new(); nonces.len()],
    };
    let auth = fx.app.signup(&case.name).await;
    let mut live: Vec<Sender> = Vec::new();
    let mut start = i64::MAX;
    for _ in 0..conns {
        let ws = fx.app.ws_connect(&auth, None).await;
        start = start.min(ws.ready["last_id"].as_i64().unwrap_or(0));
        live.push((ws, HashMap::new()));
    }
    for op in &ops {
        let c = op.conn % conns;
        if op.reconnect_first {
            // Drop the connection without reading: acknowledgements in flight are lost, as
            // when a network drops.
            let fresh = fx.app.ws_connect(&auth, None).await;
            drop(std::mem::replace(&mut live[c], (fresh, HashMap::new())));
        }
        case.send(&mut live[c], op.nonce % nonces.len(), op.body)
            .await;
    }
    // The retry after a reconnect: every nonce once more, on a fresh connection.
    let mut retry = (fx.app.ws_connect(&auth, None).await, HashMap::new());
    for n in 0..nonces.len() {
        case.send(&mut retry, n, 9).await;
    }
    live.push(retry);

    let mut ack_id: BTreeMap<usize, i64> = BTreeMap::new();
    for (ws, sent) in live.iter_mut() {
        collect_acks(&case, ws, sent, &mut ack_id).await?;
    }
    for (ws, _) in live {
        ws.close().await;
    }
    check_stored_once(fx, &case, &auth, start, &ack_id).await
}

/// Every send is acknowledged on its connection, and every acknowledgement of one nonce
/// names the same message (recorded in `ack_id`) with one of the bodies sent under it.
async fn collect_acks(
    case: &Resends<'_>,
    ws: &mut Ws,
    sent: &HashMap<usize, usize>,
    ack_id: &mut BTreeMap<usize, i64>,
) -> CaseResult {
    let mut seen: HashMap<usize, usize> = HashMap::new();
    while sent
        .iter()
        .any(|(n, want)| seen.get(n).copied().unwrap_or(0) < *want)
    {
        let v = ws.next_frame().await;
        match v["type"].as_str() {
            Some("message") if v["user"] == case.name.as_str() => {
                let nonce = v["nonce"]
                    .as_str()
                    .ok_or_else(|| fail(format!("no nonce: {v}")))?;
                let n = case.index(nonce)?;
                let id = id_of(&v);
                if *ack_id.entry(n).or_insert(id) != id {
                    return Err(fail(format!(
                        "nonce {nonce:?} acknowledged as {} and as {id}",
                        ack_id[&n]
                    )));
                }
                let body = v["body"].as_str().unwrap_or_default();
                if !case.bodies_sent[n].contains(body) {
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
    Ok(())
}

/// Each nonce is stored exactly once after `start`, with the acknowledged id.
async fn check_stored_once(
    fx: &Fixture,
    case: &Resends<'_>,
    auth: &Auth,
    start: i64,
    ack_id: &BTreeMap<usize, i64>,
) -> CaseResult {
    let stored: Vec<Value> = fx
        .app
        .messages_after(auth, start)
        .await
        .into_iter()
        .filter(|m| m["user"] == case.name.as_str())
        .collect();
    let mut count: BTreeMap<usize, usize> = BTreeMap::new();
    for m in &stored {
        let nonce = m["nonce"]
            .as_str()
            .ok_or_else(|| fail(format!("stored without nonce: {m}")))?;
        let n = case.index(nonce)?;
        *count.entry(n).or_insert(0) += 1;
        if ack_id.get(&n) != Some(&id_of(m)) {
            return Err(fail(format!(
                "stored {m} but acknowledged {:?}",
                ack_id.get(&n)
            )));
        }
    }
    let want: BTreeMap<usize, usize> = (0..case.nonces.len()).map(|n| (n, 1)).collect();
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
    fx.check(&resend_plan(), |(nonces, conns, ops)| {
        resend_case(&fx, nonces, conns, ops)
    });
}

// ---------------------------------------------------------------------------------------------
// (b) delivery order is id order

fn interleaving() -> impl Strategy<Value = (usize, Vec<(usize, bool)>)> {
    (
        2..=4usize,
        prop::collection::vec((0..4usize, prop::bool::weighted(0.2)), 4..40),
    )
}

/// One delivered message: id, nonce and author.
type Delivered = (i64, String, String);

async fn order_case(fx: &Fixture, senders: usize, schedule: Vec<(usize, bool)>) -> CaseResult {
    let k = fx.unique();
    let observer = fx.app.signup(&format!("obs{k}")).await;
    let mut conns = vec![fx.app.ws_connect(&observer, None).await];
    let mut names = Vec::new();
    for s in 0..senders {
        let name = format!("ord{k}s{s}");
        let auth = fx.app.signup(&name).await;
        conns.push(fx.app.ws_connect(&auth, None).await);
        names.push(name);
    }
    let mut sent_by: Vec<Vec<String>> = vec![Vec::new(); senders];
    for (seq, (s, pause)) in schedule.iter().enumerate() {
        let s = s % senders;
        let nonce = format!("o{k}-{seq}");
        let body = format!("case {k} #{seq} from {s}");
        conns[s + 1]
            .send_json(&send_frame(&body, Some(&nonce)))
            .await;
        sent_by[s].push(nonce);
        if *pause {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut sequences = Vec::new();
    for mut ws in conns {
        sequences.push(delivered(&mut ws, schedule.len()).await?);
        ws.close().await;
    }
    let observed: Vec<i64> = sequences[0].iter().map(|m| m.0).collect();
    check_order(&sequences, &observed, &names, &sent_by)?;
    // And what was delivered is what was stored.
    let stored = fx.app.ids_after(&observer, observed[0] - 1).await;
    if stored != observed {
        return Err(fail(format!("stored {stored:?}, delivered {observed:?}")));
    }
    Ok(())
}

/// The first `total` messages delivered on `ws`.
async fn delivered(ws: &mut Ws, total: usize) -> Result<Vec<Delivered>, TestCaseError> {
    let mut seq = Vec::new();
    while seq.len() < total {
        let v = ws.next_frame().await;
        match v["type"].as_str() {
            Some("message") => seq.push((
                id_of(&v),
                v["nonce"].as_str().unwrap_or_default().to_string(),
                v["user"].as_str().unwrap_or_default().to_string(),
            )),
            Some("error") => return Err(fail(format!("refused: {v}"))),
            _ => {}
        }
    }
    Ok(seq)
}

/// The observer saw ids in increasing order, every connection saw the same, and each sender's
/// messages were committed in the order it sent them.
fn check_order(
    sequences: &[Vec<Delivered>],
    observed: &[i64],
    names: &[String],
    sent_by: &[Vec<String>],
) -> CaseResult {
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
    Ok(())
}

#[test]
fn every_connection_sees_id_order_whatever_the_interleaving() {
    let fx = Fixture::start();
    fx.check(&interleaving(), |(senders, schedule)| {
        order_case(&fx, senders, schedule)
    });
}

// ---------------------------------------------------------------------------------------------
// (c) ?since=X replays exactly the committed ids above X

/// What a reader resuming with `?since=` saw before going live.
struct Replay {
    /// `last_id` of its `ready` frame.
    last_id: i64,
    /// The ids replayed before `resumed`.
    ids: Vec<i64>,
    /// The `resumed` frame.
    resumed: Value,
}

async fn since_case(
    fx: &Fixture,
    writer: &Auth,
    reader: &Auth,
    fraction: f64,
    before: usize,
    during: usize,
) -> CaseResult {
    let k = fx.unique();
    let mut writer = fx.app.ws_connect(writer, None).await;
    for i in 0..before {
        let body = format!("case {k} before {i}");
        writer.send_and_ack(&body, &format!("b{k}-{i}")).await;
    }
    let committed = fx.app.ids_after(reader, 0).await;
    let head = committed.last().copied().unwrap_or(0);
    // X anywhere from 0 to the head. (Above the head the client claims messages that do not
    // exist yet; the contract says nothing about that case.)
    let x = (head as f64 * fraction).round() as i64;

    let ((writer, during_ids), replay) =
        tokio::join!(write_during(writer, k, during), replay_since(fx, reader, x));
    let (mut reader_ws, replay) = replay?;
    writer.close().await;
    let resumed_head = replay.resumed["head"]
        .as_i64()
        .ok_or_else(|| fail(format!("no head: {}", replay.resumed)))?;
    // Everything committed after the replay's snapshot arrives live (a message at or below X
    // is one the client says it has, and is not sent).
    let owed = during_ids
        .iter()
        .filter(|id| **id > resumed_head && **id > x)
        .count();
    let mut live = Vec::new();
    while live.len() < owed {
        let v = reader_ws.next_frame().await;
        if v["type"] == "message" {
            live.push(id_of(&v));
        }
    }
    reader_ws.close().await;
    let all = fx.app.ids_after(reader, 0).await;
    check_replay(&replay, resumed_head, x, &live, &all)
}

/// Messages committed while the reader connects and replays; their ids come back to the
/// writer as acknowledgements.
async fn write_during(mut writer: Ws, k: usize, during: usize) -> (Ws, Vec<i64>) {
    let mut pending = BTreeSet::new();
    for i in 0..during {
        let nonce = format!("d{k}-{i}");
        let body = format!("case {k} during {i}");
        writer.send_json(&send_frame(&body, Some(&nonce))).await;
        pending.insert(nonce);
    }
    let mut ids = Vec::new();
    while !pending.is_empty() {
        let v = writer.next_frame().await;
        if v["type"] == "message" && v["nonce"].as_str().is_some_and(|n| pending.remove(n)) {
            ids.push(id_of(&v));
        }
    }
    (writer, ids)
}

/// Connect with `?since=x` and read the replay up to its `resumed` frame; returns the
/// connection, which goes on live, and the replay.
async fn replay_since(fx: &Fixture, reader: &Auth, x: i64) -> Result<(Ws, Replay), TestCaseError> {
    let mut ws = fx.app.ws_connect(reader, Some(x)).await;
    let last_id = ws.ready["last_id"]
        .as_i64()
        .ok_or_else(|| fail("no last_id"))?;
    let mut ids = Vec::new();
    let resumed = loop {
        let v = ws.next_frame().await;
        match v["type"].as_str() {
            Some("message") => ids.push(id_of(&v)),
            Some("resumed") => break v,
            Some("error") => return Err(fail(format!("refused: {v}"))),
            _ => {}
        }
    };
    Ok((
        ws,
        Replay {
            last_id,
            ids,
            resumed,
        },
    ))
}

/// The replay is complete and exactly the committed ids in (X, head]; replay then `live` is
/// every committed id above X exactly once, in order.
fn check_replay(
    replay: &Replay,
    resumed_head: i64,
    x: i64,
    live: &[i64],
    all: &[i64],
) -> CaseResult {
    let resumed = &replay.resumed;
    if resumed["complete"] != true {
        return Err(fail(format!(
            "incomplete replay of a short history: {resumed}"
        )));
    }
    if resumed_head < replay.last_id {
        return Err(fail(format!(
            "resumed head {resumed_head} below ready's last_id {}",
            replay.last_id
        )));
    }
    let replayed = &replay.ids;
    let want_replay: Vec<i64> = all
        .iter()
        .copied()
        .filter(|id| *id > x && *id <= resumed_head)
        .collect();
    if *replayed != want_replay {
        return Err(fail(format!(
            "since={x}: replayed {replayed:?}, committed above it up to head {resumed_head}: {want_replay:?}"
        )));
    }
    let seen: Vec<i64> = replayed.iter().chain(live).copied().collect();
    let want_all: Vec<i64> = all.iter().copied().filter(|id| *id > x).collect();
    if seen != want_all {
        return Err(fail(format!(
            "since={x}: saw {seen:?} (replay {replayed:?} + live {live:?}), committed {want_all:?}"
        )));
    }
    Ok(())
}

#[test]
fn since_replays_exactly_the_committed_ids_above_it() {
    let fx = Fixture::start();
    let (writer, reader) = fx.block_on(async {
        let writer = fx.app.signup("since-writer").await;
        let reader = fx.app.signup("since-reader").await;
        // Some history to replay from the start.
        let mut ws = fx.app.ws_connect(&writer, None).await;
        ws.post_many(30, "seed").await;
        ws.close().await;
        (writer, reader)
    });
    let plan = (
        prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64],
        0..4usize,
        0..6usize,
    );
    fx.check(&plan, |(fraction, before, during)| {
        since_case(&fx, &writer, &reader, fraction, before, during)
    });
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
        // Rooms are named in any case: the parsed name is the stored, lower-case one.
        let folded = room.to_ascii_lowercase();
        if typing {
            let text = json!({"type":"typing","room":room}).to_string();
            prop_assert_eq!(ClientMsg::parse(&text), Ok(ClientMsg::Typing { room: folded }));
        } else {
            let text = json!({"type":"send","room":room,"body":body,"nonce":nonce}).to_string();
            prop_assert_eq!(ClientMsg::parse(&text), Ok(ClientMsg::Send { room: folded, body, nonce, reply_to: None, attachments: Vec::new() }));
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
