//! Cluster mode under process faults, Jepsen-style: three `hearth` processes on one private
//! PostgreSQL and one private Redis, four clients spread over them and moved to another node
//! every cycle, and a seeded fault each cycle: `kill -9` of a node, SIGTERM, SIGSTOP then
//! SIGCONT, the end of a node's notification listener (its PostgreSQL session is
//! terminated), a PostgreSQL restart, or Redis killed and started again empty. The clients are
//! those of the single-node durability tests (`durability.rs`): each message has a nonce,
//! connections resume with `?since=` on whichever node they reach next, unacknowledged
//! nonces are sent again there, and some nonces are sent several times (now, and after the
//! next reconnect, through another node): a retry storm of one nonce through three nodes.
//!
//! At the end PostgreSQL is read directly and checked against every client's record: nothing
//! acknowledged is lost, no (author, nonce) is stored twice, every frame seen matches its row,
//! every client saw every message in increasing id order (`?since=` resumes without a gap on
//! any node), a full `?since=0` replay equals the table, and the log's positions (messages and
//! the hub's events) have no gap. Every client must have reconnected within 30 s of each
//! fault. Beside them, membership churns through the same faults (`churn.rs`): one user joins
//! and leaves a room over and over through any node while another posts to it, and his socket,
//! moving between the nodes, must never see a message of the room while he is not a member,
//! nor miss one while he is. `HEARTH_CRASH_SEED` replays a run's choices;
//! `HEARTH_CLUSTER_CYCLES` runs more cycles than the default 10.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::churn::{self, Churn};
use crate::common::{http_client, seed, Rng};
use crate::durability::{
    assert_clean, check_against, drain_and_catch_up, join_round, make_clients, progress,
    spawn_round, totals, Client, End, Plan, Row, Seen, Verdict, CLIENTS,
};
use crate::engines::{Postgres, Redis};
use crate::process::{command, Hearth, HANG};

const NODES: usize = 3;
const DEFAULT_CYCLES: usize = 10;
/// Acknowledged messages a run must reach (the bar for CI).
const AT_LEAST: usize = 5_000;

/// Each connection keeps a few sends in flight and sends some nonces more than once.
const PLAN: Plan = Plan {
    window: 4,
    new_messages: usize::MAX,
    max_copies: 3,
    deferred_percent: 50,
};

/// After each fault, every client sends this many more on the next node, so a run reaches
/// [`AT_LEAST`] however slow the machine is.
const TOP_UP: Plan = Plan {
    new_messages: AT_LEAST / (DEFAULT_CYCLES * CLIENTS) + 5,
    ..PLAN
};

#[derive(Clone, Copy, Debug)]
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

/// The three nodes: each slot holds its running process (or none while it is down).
struct Cluster {
    dir: PathBuf,
    url: String,
    redis_url: String,
    nodes: Vec<Option<Hearth>>,
    /// The live nodes' ports, for the membership churn's actors.
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

/// Terminate node `node`'s notification listener: its session is the one waiting in
/// `LISTEN hearth_log` (each node has one; the busiest is picked at random by PostgreSQL's
/// order, which is enough: any node losing it must carry on).
fn kill_a_listener(pg: &Postgres, db: &str) -> i64 {
    let mut client = pg.client(db);
    let row = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity \
             WHERE datname = $1 AND query ILIKE 'LISTEN%' LIMIT 1) l",
            &[&db],
        )
        .expect("terminates a listener");
    row.get(0)
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
    let http = http_client();
    let first_port = cluster.ports_from(0)[0];
    let mut clients: Vec<Client> = make_clients(&http, first_port, seed).await;
    clients.iter_mut().for_each(Client::share_the_log);
    let churn = Churn::start(&http, cluster.live.subscribe(), seed).await;
    let mut faults = Vec::new();
    let mut longest_return = Duration::ZERO;
    for cycle in 0..cycles {
        // Each cycle, every client moves to the next node.
        let ports = cluster.ports_from(cycle);
        let (stop_tx, stop) = watch::channel(false);
        let running = spawn_round(clients, &ports, PLAN, &stop, &http);
        tokio::time::sleep(Duration::from_millis(rng.range(300, 800))).await;
        let fault = *rng.pick(&FAULTS);
        let node = rng.below(NODES as u64) as usize;
        faults.push(format!("{fault:?}@node{node}"));
        let struck = Instant::now();
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
                tokio::task::block_in_place(|| kill_a_listener(pg, db));
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
        // Traffic goes on for a moment through what is left, then the round winds down.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stop_tx.send(true);
        clients = join_round(running, &format!("cycle {cycle} ({fault:?})"))
            .await
            .into_iter()
            .map(|(mut c, end)| {
                if end == End::Hung {
                    c.violation(format!("cycle {cycle}: connection ended with {end:?}"));
                }
                if end != End::Finished {
                    c.after_connection();
                }
                c
            })
            .collect();
        if cluster.nodes[node].is_none() {
            cluster.start(node);
        }
        // Everyone is back within 30 s: the next round's connections open on live nodes.
        longest_return = longest_return.max(struck.elapsed());
        assert!(
            struck.elapsed() < Duration::from_secs(30),
            "cycle {cycle}: clients could not return within 30 s of {fault:?}"
        );
        // More traffic right after the fault, through the next nodes, to its end.
        let (_keep, never) = watch::channel(false);
        let running = spawn_round(
            clients,
            &cluster.ports_from(cycle + 1),
            TOP_UP,
            &never,
            &http,
        );
        clients = join_round(running, &format!("cycle {cycle}, after {fault:?}"))
            .await
            .into_iter()
            .map(|(mut c, end)| {
                if end != End::Finished {
                    c.violation(format!(
                        "cycle {cycle}, after the fault: ended with {end:?}"
                    ));
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
    let general: Vec<Row> = rows.into_iter().filter(|r| r.room != churn::ROOM).collect();
    let mut v = check_against(&general, v, &clients, &histories);
    v.other.extend(membership.violations.iter().cloned());
    let (nonces, sends, s) = totals(&clients);
    println!("{test}: seed {seed}, faults {faults:?}");
    println!(
        "cluster: {cycles} fault cycles over {NODES} nodes, {CLIENTS} clients, {sent} sent, \
         {acked} acknowledged in the fault cycles, {}; after the final resend {nonces} nonces in \
         {sends} sends over {} connections, {}; longest return {longest_return:?}",
        s.doubts(" at a fault"),
        s.connections,
        v.counts()
    );
    println!("{}", membership.summary);
    assert_clean(&v, test, seed, dir.path());
    assert_eq!(v.rows, nonces, "one row per nonce sent");
    assert!(
        acked >= AT_LEAST,
        "only {acked} messages acknowledged in the fault cycles (at least {AT_LEAST})"
    );
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
    let node = |i: usize| {
        let node_dir = dir.path().join(format!("node{i}"));
        std::fs::create_dir_all(&node_dir).expect("a node folder");
        let mut cmd = command(&node_dir, node_dir.join("absent.toml"));
        cmd.env("CHAT_DATABASE__URL", &url)
            .env("CHAT_CLUSTER__NODE", format!("node{i}"))
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null());
        Hearth::start(cmd, String::new)
    };
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
