//! Cluster mode under process faults, Jepsen-style: three `hearth` processes on one private
//! PostgreSQL and one private Redis, four clients spread over them, and a seeded fault each
//! cycle: `kill -9` of a node, SIGTERM, SIGSTOP then SIGCONT, the end of a node's notification
//! listener (its PostgreSQL session, found by its `application_name`, is terminated, and it
//! must connect again), a PostgreSQL restart, or Redis killed and started again empty. Every
//! kind of fault strikes at least once per run: the schedule holds each kind once, the other
//! cycles draw theirs at random, and the order is shuffled (all from the seed).
//!
//! The clients are those of the single-node durability tests (`durability.rs`): each message
//! has a nonce, connections resume with `?since=`, unacknowledged nonces are sent again, and
//! some nonces are sent several times (now, and after the next reconnect, through another
//! node). Each cycle they start on the next node; a client whose connection breaks (its node
//! killed or stopped) moves at once to another live node, resumes there, sends again what the
//! break left in doubt, and goes on sending. From the fault to the moment every client it cut
//! off has resumed on another node must take less than 30 s, client by client. Each cycle also
//! sends one nonce at the same moment through one connection on each node (one user, one
//! room): exactly one message is stored, and each of the three connections is answered with
//! its id.
//!
//! At the end PostgreSQL is read directly and checked against every client's record: nothing
//! acknowledged is lost, no (author, nonce) is stored twice, every frame seen matches its row,
//! every client saw every message in increasing id order (`?since=` resumes without a gap on
//! any node), a full `?since=0` replay equals the table, and the log's positions (messages and
//! the hub's events) have no gap. Beside them, membership churns through the same faults
//! (`churn.rs`): one user joins and leaves a room over and over through any node while another
//! posts to it, and his socket, moving between the nodes, must never see a message of the room
//! while he is not a member, nor miss one while he is. `HEARTH_CRASH_SEED` replays a run's
//! choices; `HEARTH_CLUSTER_CYCLES` runs more cycles than the default 10.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::select_all;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::churn::{self, Churn};
use crate::common::{http_client, seed, send_in, Rng};
use crate::durability::{
    assert_clean, check_against, create_account, drain_and_catch_up, join_round, make_clients,
    progress, spawn_round, totals, Client, End, Plan, Row, Seen, Verdict, CLIENTS,
};
use crate::engines::{Postgres, Redis};
use crate::process::{command, Hearth, HANG};
use hearth::cluster::log::LISTENER;

const NODES: usize = 3;
const DEFAULT_CYCLES: usize = 10;
/// Acknowledged messages a run must reach (the bar for CI).
const AT_LEAST: usize = 5_000;
/// Longest a client cut off by a fault may take to resume on another node.
const RESUME_WITHIN: Duration = Duration::from_secs(30);
/// The room of the retry storms.
const STORM: &str = "storm";

/// Each connection keeps a few sends in flight and sends some nonces more than once.
const PLAN: Plan = Plan {
    window: 4,
    new_messages: usize::MAX,
    max_copies: 3,
    deferred_percent: 50,
};

/// The first connection on another node after a break: resend what is in doubt (and the
/// copies deferred to this reconnect), start nothing new, and finish once all is answered.
/// Finished, the client has resumed: replayed what it missed, and settled every send the
/// break left unanswered.
const RESUME: Plan = Plan {
    new_messages: 0,
    ..PLAN
};

/// After each fault, every client sends this many more on the next node, so a run reaches
/// [`AT_LEAST`] however slow the machine is.
const TOP_UP: Plan = Plan {
    new_messages: AT_LEAST / (DEFAULT_CYCLES * CLIENTS) + 5,
    ..PLAN
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill9,
    Sigterm,
    Pause,
    Listener,
    PostgresRestart,
    RedisRestart,
}

const FAULTS: [Fault; 6] = [
    Fault::Kill9,
    Fault::Sigterm,
    Fault::Pause,
    Fault::Listener,
    Fault::PostgresRestart,
    Fault::RedisRestart,
];

/// The run's faults, one per cycle (at least one of each kind, so never fewer cycles than
/// kinds): every kind once, the other cycles drawn at random, all in a shuffled order. With
/// each, a node: the one killed, stopped or paused; for the listener, which of the listeners'
/// sessions (oldest first) is ended; unused by the others.
fn schedule(rng: &mut Rng, cycles: usize) -> Vec<(Fault, usize)> {
    let mut kinds = FAULTS.to_vec();
    while kinds.len() < cycles {
        kinds.push(*rng.pick(&FAULTS));
    }
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.index(i + 1));
    }
    kinds
        .into_iter()
        .map(|fault| (fault, rng.index(NODES)))
        .collect()
}

/// How a fault reads in the printed schedule: `Kill9@node1` strikes node 1, `Listener#1` ends
/// the second-oldest listener session.
fn describe((fault, node): (Fault, usize)) -> String {
    match fault {
        Fault::Kill9 | Fault::Sigterm | Fault::Pause => format!("{fault:?}@node{node}"),
        Fault::Listener => format!("{fault:?}#{node}"),
        Fault::PostgresRestart | Fault::RedisRestart => format!("{fault:?}"),
    }
}

/// The three nodes: each slot holds its running process (or none while it is down).
struct Cluster {
    dir: PathBuf,
    url: String,
    redis_url: String,
    nodes: Vec<Option<Hearth>>,
    /// The live nodes' ports, for the clients that move and the membership churn's actors.
    live: watch::Sender<Vec<u16>>,
}

impl Cluster {
    /// Start (again) node `i`, its log appended to the test's `server.log`.
    fn start(&mut self, i: usize) {
        let node_dir = self.dir.join(format!("node{i}"));
        std::fs::create_dir_all(&node_dir).expect("a node folder");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("opens the server log");
        let mut cmd = command(&node_dir, node_dir.join("absent.toml"));
        cmd.env("CHAT_DATABASE__PATH", node_dir.join("chat.db"))
            .env("CHAT_DATABASE__URL", &self.url)
            .env("CHAT_CLUSTER__REDIS_URL", &self.redis_url)
            .env("CHAT_CLUSTER__NODE", format!("node{i}"))
            .env("CHAT_LIMITS__MESSAGES_PER_SECOND", "0")
            .env("CHAT_LIMITS__CHANGES_PER_SECOND", "0")
            .env("CHAT_LIMITS__CONNECTIONS_PER_USER", "0")
            .env("CHAT_PREVIEWS__ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::from(log));
        let dir = self.dir.clone();
        self.nodes[i] = Some(Hearth::start(cmd, move || {
            crate::durability::log_tail(&dir)
        }));
        self.live.send_replace(self.ports_from(0));
    }

    /// Take node `i` out (to be killed or stopped), if it is up.
    fn take(&mut self, i: usize) -> Option<Hearth> {
        let node = self.nodes[i].take();
        self.live.send_replace(self.ports_from(0));
        node
    }

    /// The ports of the nodes up, starting at node `first`.
    fn ports_from(&self, first: usize) -> Vec<u16> {
        (0..NODES)
            .map(|k| (first + k) % NODES)
            .filter_map(|i| self.nodes[i].as_ref().map(|n| n.port))
            .collect()
    }
}

/// The notification listeners' sessions on `db`, oldest first.
fn listeners(client: &mut postgres::Client, db: &str) -> Vec<i32> {
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 \
             ORDER BY backend_start, pid",
            &[&db, &LISTENER],
        )
        .expect("reads the sessions")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// End one node's notification listener: the `which`-th of the listeners' sessions, oldest
/// first (PostgreSQL does not say whose; any node losing it must carry on). Each node's
/// listener names its session [`LISTENER`], whatever statement it ran last. The fault must
/// happen: one session is ended, and the listener must connect again (a new session, one per
/// node again) within [`HANG`]. Returns the ended session's pid and how long the listener took
/// to be back.
fn kill_a_listener(pg: &Postgres, db: &str, which: usize) -> (i32, Duration) {
    let mut client = pg.client(db);
    let deadline = Instant::now() + HANG;
    let before = loop {
        let found = listeners(&mut client, db);
        if found.len() == NODES {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "{} notification listeners on {db}, not {NODES}: {found:?}",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let pid = before[which % before.len()];
    let ended: bool = client
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .expect("terminates a listener")
        .get(0);
    assert!(ended, "the listener's session {pid} was not terminated");
    let ended_at = Instant::now();
    loop {
        let found = listeners(&mut client, db);
        if found.len() == NODES && !found.contains(&pid) {
            return (pid, ended_at.elapsed());
        }
        assert!(
            Instant::now() < ended_at + HANG,
            "the listener whose session {pid} was ended did not listen again within {HANG:?} \
             (sessions now: {found:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the harness sees of one client in a cycle while it runs.
#[derive(Clone, Copy, Debug, Default)]
struct Moves {
    /// When its connection first broke in this cycle.
    broke: Option<Instant>,
    /// When it last resumed on another node.
    resumed: Option<Instant>,
    /// Broken and not resumed yet.
    moving: bool,
    /// Nodes it moved to.
    count: u32,
}

type Tracker = Arc<Mutex<Vec<Moves>>>;

fn track(tracker: &Tracker, i: usize, f: impl FnOnce(&mut Moves)) {
    f(&mut tracker.lock().expect("the tracker")[i]);
}

/// One connection of `c` on `port`, to its end.
async fn connection(
    c: Client,
    port: u16,
    plan: Plan,
    stop: &watch::Receiver<bool>,
    http: &reqwest::Client,
    what: &str,
) -> (Client, End) {
    let running = spawn_round(vec![c], &[port], plan, stop, http);
    join_round(running, what)
        .await
        .pop()
        .expect("one connection")
}

/// Client `i` through one cycle: it sends on `first` until `stop`; whenever its connection
/// breaks it moves at once to another live node (the next one after the node it lost) and
/// resumes there ([`RESUME`]: the replay, then every send in doubt settled), even after the
/// stop, then goes on sending there. A client that cannot resume anywhere for [`HANG`] gives
/// up (and its record says so).
async fn roam(
    mut c: Client,
    (i, first): (usize, u16),
    live: watch::Receiver<Vec<u16>>,
    stop: watch::Receiver<bool>,
    http: reqwest::Client,
    (tracker, what): (Tracker, String),
) -> Client {
    let (_keep, never) = watch::channel(false);
    let mut port = first;
    loop {
        let (back, end) = connection(c, port, PLAN, &stop, &http, &what).await;
        c = back;
        match end {
            End::Finished => return c,
            End::Hung => c.violation(format!("{what}: connection on {port} ended with {end:?}")),
            End::Gone { .. } | End::ConnectFailed(_) => {}
        }
        let broke = Instant::now();
        track(&tracker, i, |m| {
            m.broke.get_or_insert(broke);
            m.moving = true;
        });
        let lost = port;
        for k in 0.. {
            if broke.elapsed() > HANG {
                c.violation(format!(
                    "{what}: could not resume on another node within {HANG:?} of losing {lost}"
                ));
                return c;
            }
            let next = {
                let ports = live.borrow();
                let others: Vec<u16> = ports.iter().copied().filter(|p| *p != lost).collect();
                let from = if others.is_empty() {
                    &ports[..]
                } else {
                    &others[..]
                };
                (!from.is_empty()).then(|| from[k % from.len()])
            };
            if let Some(next) = next {
                let (back, end) = connection(c, next, RESUME, &never, &http, &what).await;
                c = back;
                if end == End::Finished {
                    port = next;
                    track(&tracker, i, |m| {
                        m.resumed = Some(Instant::now());
                        m.moving = false;
                        m.count += 1;
                    });
                    break;
                }
                if end == End::Hung {
                    c.violation(format!("{what}: resuming on {next} ended with {end:?}"));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if *stop.borrow() {
            return c;
        }
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket of `token`'s on `port`, without `?since=` (nothing replayed), once `ready`
/// came: from then on it hears the messages of the user's rooms.
async fn open_ready(port: u16, token: &str) -> Result<Socket, String> {
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    let (mut ws, _) = tokio::time::timeout(HANG, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| format!("port {port}: no handshake within {HANG:?}"))?
        .map_err(|e| format!("port {port}: {e}"))?;
    loop {
        match tokio::time::timeout(HANG, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("\"ready\"") => {
                let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
                if v["type"] == "ready" {
                    return Ok(ws);
                }
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("port {port}: no ready frame ({other:?})")),
        }
    }
}

/// How long a storm's connections are read once every send is answered, for an answer too
/// many.
const SETTLE: Duration = Duration::from_millis(200);

/// Retry storms: one nonce sent at the same moment through three connections of one user, one
/// on each node, to the room [`STORM`]. Each send is answered, on its connection: the one
/// stored by the message itself (every connection of the user hears it), every other by the
/// stored message sent back to it alone (`docs/API.md`, a resent nonce), all with the same
/// id; exactly one row is stored (checked at the end, [`Storm::check`]).
struct Storm {
    token: String,
    /// Each storm's nonce and the id its connections were answered with.
    answered: Vec<(String, i64)>,
    /// Storms whose three sends were answered at the first try, through three nodes.
    at_once: usize,
    violations: Vec<String>,
}

impl Storm {
    /// The storms' user and room.
    async fn start(http: &reqwest::Client, port: u16) -> Storm {
        let token = create_account(http, port, "storm").await;
        let res = http
            .post(format!("http://127.0.0.1:{port}/api/rooms"))
            .bearer_auth(&token)
            .json(&json!({"name": STORM, "public": true}))
            .send()
            .await
            .expect("creates the storm's room");
        assert_eq!(res.status().as_u16(), 201, "creating the room {STORM}");
        Storm {
            token,
            answered: Vec::new(),
            at_once: 0,
            violations: Vec::new(),
        }
    }

    /// Storm number `k`, through `ports` (one per node).
    async fn run(&mut self, ports: &[u16], k: usize) {
        let nonce = format!("storm-{k}");
        match tokio::time::timeout(HANG, self.once(ports, &nonce)).await {
            Ok(Ok((id, at_once))) => {
                self.answered.push((nonce, id));
                self.at_once += usize::from(at_once);
            }
            Ok(Err(e)) => self.violations.push(format!("{nonce}: {e}")),
            Err(_) => self
                .violations
                .push(format!("{nonce}: not answered within {HANG:?}")),
        }
    }

    /// The id the storm's sends were answered with, and whether all went through at the
    /// first try; or what went wrong.
    async fn once(&self, ports: &[u16], nonce: &str) -> Result<(i64, bool), String> {
        if ports.len() != NODES {
            return Err(format!("{} nodes up, not {NODES}", ports.len()));
        }
        let (mut txs, mut rxs) = (Vec::new(), Vec::new());
        for &port in ports {
            let (tx, rx) = open_ready(port, &self.token).await?.split();
            txs.push(tx);
            rxs.push(rx);
        }
        let frame = Message::text(send_in(STORM, &format!("storm {nonce}"), nonce).to_string());
        let sent =
            futures_util::future::join_all(txs.iter_mut().map(|tx| tx.send(frame.clone()))).await;
        if let Some(Err(e)) = sent.into_iter().find(Result::is_err) {
            return Err(format!("a send failed: {e}"));
        }
        // Per connection: sends, `unavailable` refusals (sent again at once), and message
        // frames with the nonce.
        let (mut sends, mut refused, mut frames) = ([1u32; NODES], [0u32; NODES], [0u32; NODES]);
        let mut ids = BTreeSet::new();
        let mut incoming = select_all(
            rxs.into_iter()
                .enumerate()
                .map(|(i, rx)| rx.map(move |m| (i, m))),
        );
        let mut settled: Option<Instant> = None;
        loop {
            let wait = settled.map_or(HANG, |at| at.saturating_duration_since(Instant::now()));
            let (i, text) = match tokio::time::timeout(wait, incoming.next()).await {
                Err(_) if settled.is_some() => break,
                Err(_) => {
                    return Err(format!(
                        "{frames:?} answers to {sends:?} sends ({refused:?} refused) after \
                         {HANG:?}"
                    ))
                }
                Ok(Some((i, Ok(Message::Text(t))))) => (i, t),
                Ok(Some((_, Ok(_)))) => continue,
                Ok(other) => return Err(format!("a connection ended: {other:?}")),
            };
            // The user's other room (`general`) is busy: only this nonce's frames count.
            if !text.as_str().contains(nonce) {
                continue;
            }
            let v: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
            if v["nonce"] != nonce {
                continue;
            }
            match v["type"].as_str() {
                Some("message") if v["room"] == STORM => {
                    frames[i] += 1;
                    ids.insert(v["id"].as_i64().ok_or(format!("no id in {v}"))?);
                }
                Some("error") if v["code"] == "unavailable" => {
                    refused[i] += 1;
                    sends[i] += 1;
                    txs[i]
                        .send(frame.clone())
                        .await
                        .map_err(|e| format!("a resend failed: {e}"))?;
                }
                _ => return Err(format!("unexpected answer {v}")),
            }
            let answers: u32 = (0..NODES).map(|i| sends[i] - refused[i]).sum();
            // One message heard on each connection, and one more frame per send answered
            // with the stored message (all but one).
            if settled.is_none()
                && frames.iter().all(|f| *f >= 1)
                && frames.iter().sum::<u32>() >= NODES as u32 + answers - 1
            {
                settled = Some(Instant::now() + SETTLE);
            }
        }
        for tx in &mut txs {
            let _ = tx.send(Message::Close(None)).await;
        }
        // The connection whose send was stored heard the message once per answered send; each
        // other one, once more (the message and its own answer).
        let answered: Vec<u32> = (0..NODES).map(|i| sends[i] - refused[i]).collect();
        let stored_through = (0..NODES).filter(|&i| frames[i] == answered[i]).count();
        let told_again = (0..NODES).filter(|&i| frames[i] == answered[i] + 1).count();
        if ids.len() != 1 || stored_through != 1 || told_again != NODES - 1 {
            return Err(format!(
                "answered with ids {ids:?}: {frames:?} message frames on the connections for \
                 {answered:?} sends answered (one connection's is the message, the others' \
                 are the stored message sent back)"
            ));
        }
        let id = *ids.first().expect("one id");
        Ok((id, refused.iter().all(|r| *r == 0)))
    }

    /// The storms' rows (room [`STORM`]): one per storm, with the id its sends were answered
    /// with, and nothing else; and at least one storm went through three nodes at once.
    fn check(&self, rows: &[Row]) -> Vec<String> {
        let mut v = self.violations.clone();
        let mut stored: HashMap<&str, Vec<i64>> = HashMap::new();
        for r in rows.iter().filter(|r| r.room == STORM) {
            let nonce = r.seen.nonce.as_deref().unwrap_or("");
            stored.entry(nonce).or_default().push(r.id);
        }
        for (nonce, id) in &self.answered {
            match stored.remove(nonce.as_str()).as_deref() {
                Some([row]) if row == id => {}
                other => v.push(format!(
                    "storm {nonce}: answered with id {id}, stored as {other:?}"
                )),
            }
        }
        for (nonce, ids) in stored {
            if ids.len() > 1 {
                v.push(format!(
                    "storm {nonce}: stored {} times: {ids:?}",
                    ids.len()
                ));
            }
        }
        if self.at_once == 0 {
            v.push("no storm went through three nodes at once".to_string());
        }
        v
    }
}

/// Every message row, with its author and room, and any gap in the log's positions.
fn read_pg(pg: &Postgres, db: &str) -> (Vec<Row>, Verdict) {
    let mut v = Verdict::default();
    let mut client = pg.client(db);
    let rows: Vec<Row> = client
        .query(
            "SELECT m.id, u.username, r.name, m.nonce, m.body FROM messages m \
             JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id ORDER BY m.id",
            &[],
        )
        .expect("reads the messages")
        .iter()
        .map(|r| {
            let user: String = r.get(1);
            Row {
                id: r.get(0),
                user: user.clone(),
                room: r.get(2),
                seen: Seen {
                    user,
                    nonce: r.get(3),
                    body: r.get(4),
                },
            }
        })
        .collect();
    let total: i64 = client
        .query_one("SELECT count(*) FROM messages", &[])
        .expect("counts")
        .get(0);
    if total as usize != rows.len() {
        v.other.push(format!(
            "{total} rows in messages but {} with their user and room",
            rows.len()
        ));
    }
    // Positions: every one from the first message to the head is a message or a hub event.
    let positions: Vec<i64> = client
        .query(
            "SELECT id FROM messages UNION ALL SELECT pos FROM hub_events ORDER BY 1",
            &[],
        )
        .expect("reads the positions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let head: i64 = client
        .query_one("SELECT pos FROM hearth_log_head WHERE id = 1", &[])
        .expect("reads the head")
        .get(0);
    if let Some(first) = rows.first().map(|r| r.id) {
        let mut expected = first;
        for &p in positions.iter().filter(|p| **p >= first) {
            if p != expected {
                v.other
                    .push(format!("log positions jump from {} to {p}", expected - 1));
                expected = p;
            }
            expected += 1;
        }
        if expected - 1 != head {
            v.other.push(format!(
                "the head is {head}, the last position stored {}",
                expected - 1
            ));
        }
    }
    (rows, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_lose_nothing_through_process_faults() {
    let test = "three_nodes_lose_nothing_through_process_faults";
    let seed = seed(test, crate::durability::SEED_VAR, None);
    let cycles = match std::env::var("HEARTH_CLUSTER_CYCLES") {
        Ok(s) => s.trim().parse().expect("HEARTH_CLUSTER_CYCLES is a number"),
        Err(_) => DEFAULT_CYCLES,
    };
    let Some(mut pg) = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("PostgreSQL starts")
    else {
        return;
    };
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let db = "faults";
    let url = {
        let pg = &pg;
        tokio::task::block_in_place(|| pg.create_database(db))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster {
        dir: dir.path().to_path_buf(),
        url,
        redis_url: redis.url(),
        nodes: (0..NODES).map(|_| None).collect(),
        live: watch::channel(Vec::new()).0,
    };
    for i in 0..NODES {
        cluster.start(i);
    }
    let mut rng = Rng::new(seed);
    let schedule = schedule(&mut rng, cycles);
    let planned: Vec<String> = schedule.iter().copied().map(describe).collect();
    println!("{test}: faults planned {planned:?}");
    let http = http_client();
    let first_port = cluster.ports_from(0)[0];
    let mut clients: Vec<Client> = make_clients(&http, first_port, seed).await;
    clients.iter_mut().for_each(Client::share_the_log);
    let mut storm = Storm::start(&http, first_port).await;
    let churn = Churn::start(&http, cluster.live.subscribe(), seed).await;
    let mut faults = Vec::new();
    let (mut longest_resume, mut moves) = (Duration::ZERO, 0);
    for (cycle, &(fault, node)) in schedule.iter().enumerate() {
        let what = format!("cycle {cycle} ({})", describe((fault, node)));
        // Each cycle, every client starts on the next node.
        let ports = cluster.ports_from(cycle);
        let (stop_tx, stop) = watch::channel(false);
        let tracker: Tracker = Arc::new(Mutex::new(vec![Moves::default(); CLIENTS]));
        let running: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                tokio::spawn(roam(
                    c,
                    (i, ports[i % ports.len()]),
                    cluster.live.subscribe(),
                    stop.clone(),
                    http.clone(),
                    (tracker.clone(), what.clone()),
                ))
            })
            .collect();
        // One nonce through the three nodes at once, beside the clients' traffic.
        storm.run(&ports, cycle).await;
        tokio::time::sleep(Duration::from_millis(rng.range(300, 800))).await;
        // The clients a node killed or stopped cuts off: those that started on it.
        let cut_off: Vec<usize> = match (fault, cluster.nodes[node].as_ref()) {
            (Fault::Kill9 | Fault::Sigterm, Some(n)) => (0..CLIENTS)
                .filter(|i| ports[i % ports.len()] == n.port)
                .collect(),
            _ => Vec::new(),
        };
        let struck = Instant::now();
        let mut done = describe((fault, node));
        match fault {
            Fault::Kill9 => {
                if let Some(n) = cluster.take(node) {
                    n.kill_9();
                }
            }
            Fault::Sigterm => {
                if let Some(n) = cluster.take(node) {
                    let status = tokio::task::block_in_place(|| n.sigterm(HANG));
                    assert!(
                        status.success(),
                        "node{node} exited with {status} on SIGTERM"
                    );
                }
            }
            Fault::Pause => {
                if let Some(n) = &cluster.nodes[node] {
                    n.signal("STOP");
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    n.signal("CONT");
                }
            }
            Fault::Listener => {
                let pg = &pg;
                let (pid, back) = tokio::task::block_in_place(|| kill_a_listener(pg, db, node));
                done = format!("{fault:?}(session {pid}, listening again in {back:.2?})");
            }
            Fault::PostgresRestart => {
                let pg = &mut pg;
                tokio::task::block_in_place(|| pg.restart());
            }
            Fault::RedisRestart => {
                redis.kill();
                tokio::time::sleep(Duration::from_millis(1000)).await;
                redis.restart();
            }
        }
        faults.push(done);
        // Every client cut off moves to a surviving node and resumes there; then traffic goes
        // on for a moment through what is left, and the round winds down.
        loop {
            let now = tracker.lock().expect("the tracker").clone();
            let waiting = now
                .iter()
                .enumerate()
                .any(|(i, m)| m.moving || (cut_off.contains(&i) && m.resumed.is_none()));
            if !waiting {
                break;
            }
            assert!(
                struck.elapsed() < RESUME_WITHIN,
                "{what}: clients cut off ({cut_off:?}) had not all resumed on another node \
                 {RESUME_WITHIN:?} after the fault: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stop_tx.send(true);
        let mut back = Vec::new();
        for h in running {
            match tokio::time::timeout(3 * HANG, h).await {
                Ok(Ok(c)) => back.push(c),
                Ok(Err(e)) => panic!("{what}: a client task failed: {e}"),
                Err(_) => panic!("{what}: a client did not finish within {:?}", 3 * HANG),
            }
        }
        clients = back;
        // From the fault (or the break, if it came first) to resumed on another node, client by
        // client.
        for (i, m) in tracker.lock().expect("the tracker").iter().enumerate() {
            let Some(broke) = m.broke else { continue };
            let Some(resumed) = m.resumed else {
                panic!("{what}: client{i} lost its connection and did not resume: {m:?}")
            };
            let took = resumed.duration_since(struck.min(broke));
            longest_resume = longest_resume.max(took);
            moves += m.count;
            assert!(
                took < RESUME_WITHIN,
                "{what}: client{i} resumed on another node {took:?} after the fault (at most \
                 {RESUME_WITHIN:?})"
            );
        }
        if cluster.nodes[node].is_none() {
            cluster.start(node);
        }
        // More traffic right after the fault, through the next nodes, to its end.
        let (_keep, never) = watch::channel(false);
        let running = spawn_round(
            clients,
            &cluster.ports_from(cycle + 1),
            TOP_UP,
            &never,
            &http,
        );
        clients = join_round(running, &format!("{what}, after the fault"))
            .await
            .into_iter()
            .map(|(mut c, end)| {
                if end != End::Finished {
                    c.violation(format!("{what}, after the fault: ended with {end:?}"));
                    c.after_connection();
                }
                c
            })
            .collect();
    }
    let (sent, acked) = progress(&clients);
    let churned = churn.finish(&http, &cluster.live.subscribe()).await;
    let port = cluster.ports_from(0)[0];
    let (clients, histories) = drain_and_catch_up(clients, port, &http).await;
    for (i, n) in cluster.nodes.iter_mut().enumerate() {
        if let Some(n) = n.take() {
            let status = tokio::task::block_in_place(|| n.sigterm(HANG));
            assert!(status.success(), "node{i} exited with {status} on SIGTERM");
        }
    }
    let (rows, v) = {
        let pg = &pg;
        tokio::task::block_in_place(|| read_pg(pg, db))
    };
    let membership = churned.check(&rows);
    let storms = storm.check(&rows);
    let general: Vec<Row> = rows
        .into_iter()
        .filter(|r| r.room != churn::ROOM && r.room != STORM)
        .collect();
    let mut v = check_against(&general, v, &clients, &histories);
    v.other.extend(membership.violations.iter().cloned());
    v.other.extend(storms.iter().cloned());
    let (nonces, sends, s) = totals(&clients);
    println!("{test}: seed {seed}, faults {faults:?}");
    println!(
        "cluster: {} fault cycles over {NODES} nodes, {CLIENTS} clients, {sent} sent, \
         {acked} acknowledged in the fault cycles, {}; after the final resend {nonces} nonces in \
         {sends} sends over {} connections, {}; {moves} moves to another node, longest from a \
         fault to resumed {longest_resume:.2?}",
        schedule.len(),
        s.doubts(" at a fault"),
        s.connections,
        v.counts()
    );
    println!(
        "storms: {} nonces each sent through {NODES} nodes at once, {} answered at the first \
         try, {} violations",
        storm.answered.len() + storm.violations.len(),
        storm.at_once,
        storms.len()
    );
    println!("{}", membership.summary);
    assert_clean(&v, test, seed, dir.path());
    assert_eq!(v.rows, nonces, "one row per nonce sent");
    assert!(
        acked >= AT_LEAST,
        "only {acked} messages acknowledged in the fault cycles (at least {AT_LEAST})"
    );
}

/// Node `i` in a folder of its own under `dir`, on the PostgreSQL database at `url`, without
/// Redis, its log discarded.
fn plain_node(dir: &std::path::Path, url: &str, i: usize) -> Hearth {
    let node_dir = dir.join(format!("node{i}"));
    std::fs::create_dir_all(&node_dir).expect("a node folder");
    let mut cmd = command(&node_dir, node_dir.join("absent.toml"));
    cmd.env("CHAT_DATABASE__URL", url)
        .env("CHAT_CLUSTER__NODE", format!("node{i}"))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    Hearth::start(cmd, String::new)
}

/// PostgreSQL stops answering (frozen with SIGSTOP: connections open, nothing answers).
/// `/healthz` says so within its probe timeout instead of hanging; a node told to stop, whose
/// shutdown waits on the database, exits on a second SIGTERM at once, or by itself once its
/// stop limit (25 s) is over, instead of hanging until a SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_postgresql_hangs_still_answers_healthz_and_stops() {
    let Some(pg) = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("the start does not panic")
    else {
        return;
    };
    let url = tokio::task::block_in_place(|| pg.create_database("frozen"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = |i: usize| plain_node(dir.path(), &url, i);
    let (mut a, mut b) = (node(0), node(1));
    let http = http_client();
    let health = |port: u16| {
        let http = http.clone();
        async move {
            let res = http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .expect("/healthz answers");
            (res.status().as_u16(), res.text().await.unwrap_or_default())
        }
    };
    assert_eq!(health(a.port).await.0, 200);

    let frozen = pg.freeze();
    // Long enough for each node's follower to be waiting on a read of the log.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = Instant::now();
    let (status, text) = health(a.port).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("did not answer"), "{text}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );

    a.signal("TERM");
    b.signal("TERM");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.exited().is_none(), "the shutdown waits on the database");
    let second = Instant::now();
    let status = tokio::task::block_in_place(|| a.sigterm(Duration::from_secs(5)));
    assert_eq!(
        status.code(),
        Some(1),
        "{status:?} after {:?}",
        second.elapsed()
    );

    // Node b, told once: out by its stop limit (25 s after the signal), not held forever.
    let deadline = Instant::now() + Duration::from_secs(35);
    let status = loop {
        if let Some(status) = b.exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "node b did not stop by itself");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
    drop(frozen);
    tokio::task::block_in_place(|| drop(pg));
}

/// A node that reads the log after hub events it had not delivered were deleted (they live
/// 10 minutes; here node B is paused while its listener is gone, and they are deleted at
/// once) cannot tell what its connections missed: it closes them (1012) so that they read
/// everything again, instead of leaving a member who joined meanwhile deaf to the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_reads_past_deleted_hub_events_makes_its_clients_read_again() {
    let Some(pg) = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("the start does not panic")
    else {
        return;
    };
    let db = "pruned";
    let url = tokio::task::block_in_place(|| pg.create_database(db));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = |i: usize| plain_node(dir.path(), &url, i);
    let (a, b) = (node(0), node(1));
    let http = http_client();
    let ann = create_account(&http, a.port, "ann").await;
    let cy = create_account(&http, a.port, "cy").await;
    let post = |port: u16, path: &str, token: &str, body: Value| {
        let req = http
            .post(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let res = req.send().await.expect("the request is answered");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = post(
        a.port,
        "/api/rooms",
        &ann,
        json!({"name": "late", "public": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut cy_on_b = open_ready(b.port, &cy).await.expect("cy connects to B");

    // Both listeners up, then B paused and both listeners' sessions ended: A listens again
    // at once, B cannot until it runs again.
    let mut client = tokio::task::block_in_place(|| pg.client(db));
    // Until the listeners' sessions are `n`, none of them in `gone`.
    let wait_for = |client: &mut postgres::Client, n: usize, gone: &[i32]| {
        let deadline = Instant::now() + HANG;
        loop {
            let now = listeners(client, db);
            if now.len() == n && !now.iter().any(|pid| gone.contains(pid)) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{n} new listener(s) on {db}: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let both = tokio::task::block_in_place(|| wait_for(&mut client, 2, &[]));
    b.signal("STOP");
    tokio::task::block_in_place(|| {
        for pid in &both {
            client
                .execute("SELECT pg_terminate_backend($1)", &[pid])
                .expect("ends a listener");
        }
        wait_for(&mut client, 1, &both);
    });

    // cy joins through A: a hub event B never hears of; then every event is deleted, as the
    // prune (every minute) does with those older than 10 minutes.
    let (status, body) = post(a.port, "/api/rooms/late/join", &cy, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let deleted = tokio::task::block_in_place(|| {
        let conn = hearth::db::sql::PgConn::new(pg.client(db));
        // Kept "minus a minute": every event, however recent.
        hearth::db::queries::prune_hub_events(&conn, -60_000).expect("the prune")
    });
    assert_eq!(deleted, 1, "the mark of deleted events moved");
    b.signal("CONT");

    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match cy_on_b.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("cy's socket on B ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("B closes its connections once it reads past the deleted events");
    assert_eq!(closed, Some(1012));

    // Read again, cy is in the room on B.
    let mut cy_on_b = open_ready(b.port, &cy)
        .await
        .expect("cy connects to B again");
    let (status, body) = post(
        a.port,
        "/api/rooms/late/messages",
        &ann,
        json!({"body": "heard on B", "nonce": "late-1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Ok(Message::Text(t))) = cy_on_b.next().await {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if v["type"] == "message" && v["body"] == "heard on B" {
                    return;
                }
            }
        }
    })
    .await
    .expect("cy hears the room on B");
    drop((a, b));
    tokio::task::block_in_place(move || drop((client, pg)));
}
