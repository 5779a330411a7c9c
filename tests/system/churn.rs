//! Membership under faults, beside the cluster fault test's traffic: `ann` posts to the room
//! `churn` over HTTP through any live node, `ben` joins and leaves it over and over through any
//! live node, and one socket of ben's moves between the nodes (a new node every second or two,
//! and whenever its node dies), resuming with `?since=` the highest position it saw.
//!
//! What the socket saw is checked against the room's rows at the end:
//! - no message of the room arrives while he is not a member (from `ready`'s rooms, then each
//!   `room_joined` and `room_left`), live or replayed;
//! - while he stays a member, the room's messages arrive in id order with none missing, across
//!   reconnects too (a `?since=` replay fills what the last connection missed);
//! - no `room_joined` without a `room_left` between them, and the reverse;
//! - every message ann was answered for is stored once, with the id she was given.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::common::Rng;
use crate::durability::{create_account, open_socket, Row};

/// The room whose membership changes all along.
pub(crate) const ROOM: &str = "churn";
/// Longest a request may keep failing before the test gives up (a node's restart included).
const RETRY_FOR: Duration = Duration::from_secs(60);

/// What ben's socket saw, in order, over all its connections.
#[derive(Debug)]
enum Seen {
    /// A connection's `ready`: whether the room was among his rooms.
    Ready {
        member: bool,
        port: u16,
        since: i64,
    },
    Joined,
    Left,
    /// A message of the room, and whether it came in a replay.
    Message(i64, bool),
    /// A replay that stopped at 1,000 (`resumed` with `complete: false`).
    Incomplete,
}

/// The three actors, running until [`Churn::finish`].
pub(crate) struct Churn {
    stop: watch::Sender<bool>,
    ann: String,
    ben: String,
    poster: JoinHandle<Vec<(String, i64)>>,
    joiner: JoinHandle<usize>,
    watcher: JoinHandle<Result<Vec<Seen>, String>>,
}

/// The outcome, checked against the room's rows.
pub(crate) struct Report {
    pub(crate) violations: Vec<String>,
    pub(crate) summary: String,
}

/// The ports of the live nodes, in the order the test gives them.
fn pick(live: &watch::Receiver<Vec<u16>>, k: usize) -> Option<u16> {
    let ports = live.borrow();
    (!ports.is_empty()).then(|| ports[k % ports.len()])
}

/// Send one request through the live nodes in turn, starting with the `first`-th, until one
/// answers with `want`.
async fn until_answered(
    http: &reqwest::Client,
    live: &watch::Receiver<Vec<u16>>,
    (what, first): (&str, usize),
    want: u16,
    request: impl Fn(&reqwest::Client, String) -> reqwest::RequestBuilder,
) -> Value {
    let started = Instant::now();
    let mut last = String::new();
    for k in first.. {
        assert!(
            started.elapsed() < RETRY_FOR,
            "{what}: no node answered within {RETRY_FOR:?} (last: {last})"
        );
        if let Some(port) = pick(live, k) {
            match request(http, format!("http://127.0.0.1:{port}"))
                .send()
                .await
            {
                Ok(res) if res.status().as_u16() == want => {
                    return res.json().await.unwrap_or(Value::Null);
                }
                Ok(res) => last = format!("HTTP {}", res.status()),
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

/// Post one message to the room through the `first`-th live node (then the next, retried
/// with its nonce) until a node answers 201.
async fn post(
    http: &reqwest::Client,
    live: &watch::Receiver<Vec<u16>>,
    (token, first): (&str, usize),
    nonce: &str,
) -> i64 {
    let body = until_answered(
        http,
        live,
        (&format!("ann's {nonce}"), first),
        201,
        |http, base| {
            http.post(format!("{base}/api/rooms/{ROOM}/messages"))
                .bearer_auth(token)
                .json(&json!({"body": format!("churn {nonce}"), "nonce": nonce}))
        },
    )
    .await;
    body["message"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("a message with an id for {nonce}: {body}"))
}

impl Churn {
    /// Create ann and ben and the room, then start posting, churning and watching.
    pub(crate) async fn start(
        http: &reqwest::Client,
        live: watch::Receiver<Vec<u16>>,
        seed: u64,
    ) -> Churn {
        let port = pick(&live, 0).expect("a live node");
        let ann = create_account(http, port, "churn_ann").await;
        let ben = create_account(http, port, "churn_ben").await;
        until_answered(http, &live, ("creating the room", 0), 201, |http, base| {
            http.post(format!("{base}/api/rooms"))
                .bearer_auth(&ann)
                .json(&json!({"name": ROOM, "public": true}))
        })
        .await;
        let (stop, stopped) = watch::channel(false);

        let poster = tokio::spawn({
            let (http, live, stopped, token) =
                (http.clone(), live.clone(), stopped.clone(), ann.clone());
            async move {
                let mut sent = Vec::new();
                while !*stopped.borrow() {
                    let nonce = format!("m{}", sent.len());
                    let id = post(&http, &live, (&token, sent.len()), &nonce).await;
                    sent.push((nonce, id));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                sent
            }
        });

        let joiner = tokio::spawn({
            let (http, live, stopped, token) =
                (http.clone(), live.clone(), stopped.clone(), ben.clone());
            let mut rng = Rng::new(seed ^ 0x6a6f_696e);
            async move {
                // Join and leave in turn through a random live node. A request lost in a
                // fault is not repeated: the next one is the opposite change.
                let (mut k, mut joined) = (0u64, 0);
                while !*stopped.borrow() {
                    let Some(port) = pick(&live, rng.index(3)) else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let change = if k % 2 == 0 { "join" } else { "leave" };
                    let res = http
                        .post(format!("http://127.0.0.1:{port}/api/rooms/{ROOM}/{change}"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    if change == "join" && res.is_ok_and(|r| r.status().as_u16() == 200) {
                        joined += 1;
                    }
                    k += 1;
                    tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
                }
                joined
            }
        });

        let watcher = tokio::spawn(watch_room(
            live.clone(),
            ben.clone(),
            stopped,
            Rng::new(seed ^ 0x7761_7463),
        ));
        Churn {
            stop,
            ann,
            ben,
            poster,
            joiner,
            watcher,
        }
    }

    /// Stop churning, make ben a member, post a last message and wait for his socket to see
    /// it; then check what it saw against the room's rows.
    pub(crate) async fn finish(
        self,
        http: &reqwest::Client,
        live: &watch::Receiver<Vec<u16>>,
    ) -> Finished {
        let _ = self.stop.send(true);
        let joins = self.joiner.await.expect("the joiner");
        let mut sent = self.poster.await.expect("the poster");
        let ben = &self.ben;
        until_answered(http, live, ("ben's last join", 0), 200, |http, base| {
            http.post(format!("{base}/api/rooms/{ROOM}/join"))
                .bearer_auth(ben)
        })
        .await;
        sent.push((
            "end".to_string(),
            post(http, live, (&self.ann, 0), "end").await,
        ));
        let seen = tokio::time::timeout(RETRY_FOR, self.watcher)
            .await
            .expect("ben's socket saw the last message")
            .expect("the watcher")
            .unwrap_or_else(|e| panic!("ben's socket: {e}"));
        Finished { joins, sent, seen }
    }
}

/// What the churn left, to be checked against the database.
pub(crate) struct Finished {
    joins: usize,
    sent: Vec<(String, i64)>,
    seen: Vec<Seen>,
}

impl Finished {
    /// Check the socket's record and ann's answers against the room's rows (`rows`: all
    /// messages, any room).
    pub(crate) fn check(&self, rows: &[Row]) -> Report {
        let mut v = Vec::new();
        let room: Vec<&Row> = rows.iter().filter(|r| r.room == ROOM).collect();
        let ids: Vec<i64> = room.iter().map(|r| r.id).collect();
        // ann's messages: each stored once, with the id she was answered with.
        let mut by_nonce: HashMap<&str, Vec<i64>> = HashMap::new();
        for r in &room {
            if r.user != "churn_ann" {
                v.push(format!("row {} in {ROOM} by {}", r.id, r.user));
            }
            let nonce = r.seen.nonce.as_deref().unwrap_or("");
            by_nonce.entry(nonce).or_default().push(r.id);
        }
        for (nonce, id) in &self.sent {
            match by_nonce.get(nonce.as_str()).map(Vec::as_slice) {
                Some([stored]) if stored == id => {}
                other => v.push(format!(
                    "ann's {nonce} was answered as id {id}, stored as {other:?}"
                )),
            }
        }
        if by_nonce.len() != self.sent.len() {
            v.push(format!(
                "{} nonces stored in {ROOM}, {} sent",
                by_nonce.len(),
                self.sent.len()
            ));
        }

        // Ben's socket, connection after connection.
        let next_of = |id: i64| ids.get(ids.binary_search(&id).ok()? + 1).copied();
        let (mut member, mut last) = (false, None::<i64>);
        let mut at = String::new();
        let (mut connections, mut joined, mut left, mut messages) = (0, 0, 0, 0);
        for s in &self.seen {
            match *s {
                Seen::Ready {
                    member: m,
                    port,
                    since,
                } => {
                    connections += 1;
                    at = format!("port {port}, since={since}");
                    member = m;
                    if !m {
                        last = None;
                    }
                }
                Seen::Joined => {
                    if member {
                        v.push(format!(
                            "connection {connections}: room_joined while a member"
                        ));
                    }
                    (member, last) = (true, None);
                    joined += 1;
                }
                Seen::Left => {
                    if !member {
                        v.push(format!(
                            "connection {connections}: room_left while not a member"
                        ));
                    }
                    // What he missed while away is his to page, not a gap.
                    (member, last) = (false, None);
                    left += 1;
                }
                Seen::Message(id, replayed) => {
                    messages += 1;
                    if !member {
                        v.push(format!(
                            "connection {connections}: message {id} while not a member"
                        ));
                    }
                    if let Some(prev) = last {
                        if id <= prev {
                            v.push(format!("connection {connections}: {id} after {prev}"));
                        } else if next_of(prev) != Some(id) {
                            v.push(format!(
                                "connection {connections} ({at}): {prev} then {id} ({}), while \
                                 a member: {:?} missing",
                                if replayed { "replayed" } else { "live" },
                                next_of(prev)
                            ));
                        }
                    }
                    last = Some(id);
                }
                Seen::Incomplete => last = None,
            }
        }
        if !member {
            v.push("not a member at the end".to_string());
        }
        // Enough happened for the checks to mean something.
        if joined < 5 || left < 5 || messages < 20 || connections < 5 {
            v.push(format!(
                "too little churn: {connections} connections, {joined} joins and {left} leaves \
                 seen, {messages} messages"
            ));
        }
        Report {
            summary: format!(
                "membership: {} joins made, {joined} joins and {left} leaves and {messages} of \
                 {} messages seen over {connections} connections, {} violations",
                self.joins,
                ids.len(),
                v.len()
            ),
            violations: v,
        }
    }
}

/// Ben's socket: read everything, move to another node every 0.5–2.5 s or when the node goes
/// away, resume with `?since=` the highest position seen; end once the last message (`end`)
/// arrived after the stop.
async fn watch_room(
    live: watch::Receiver<Vec<u16>>,
    token: String,
    stopped: watch::Receiver<bool>,
    mut rng: Rng,
) -> Result<Vec<Seen>, String> {
    let mut seen = Vec::new();
    let mut since = 0i64;
    let started = Instant::now();
    for k in 0usize.. {
        let Some(port) = pick(&live, k) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut ws = match open_socket(port, &token, since).await {
            Ok(ws) => ws,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Near the end the socket stays where it is until the last message.
        let lifetime = Duration::from_millis(rng.range(500, 2500));
        let opened = Instant::now();
        let mut replaying = true;
        loop {
            if opened.elapsed() > lifetime && !*stopped.borrow() {
                let _ = ws.send(Message::Close(None)).await;
                break;
            }
            let frame = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                Err(_) => continue,
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => break,
                Ok(Some(Ok(_))) => continue,
            };
            let f: Value = serde_json::from_str(&frame)
                .map_err(|e| format!("a frame that is not JSON ({e}): {frame}"))?;
            match f["type"].as_str().unwrap_or("") {
                "ready" => {
                    let rooms = f["rooms"].as_array().cloned().unwrap_or_default();
                    let member = rooms.iter().any(|r| r["name"] == ROOM);
                    seen.push(Seen::Ready {
                        member,
                        port,
                        since,
                    });
                }
                "room_joined" if f["room"]["name"] == ROOM => seen.push(Seen::Joined),
                "room_left" if f["room"] == ROOM => seen.push(Seen::Left),
                "resumed" => {
                    replaying = false;
                    if f["complete"] == false {
                        seen.push(Seen::Incomplete);
                    }
                }
                "message" => {
                    let id = f["id"]
                        .as_i64()
                        .ok_or_else(|| format!("a message without an id: {frame}"))?;
                    since = since.max(id);
                    if f["room"] == ROOM {
                        seen.push(Seen::Message(id, replaying));
                        if f["nonce"] == "end" {
                            return Ok(seen);
                        }
                    }
                }
                _ => {}
            }
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err("still watching after 30 minutes".to_string());
        }
    }
    unreachable!()
}
