//! Several Hearth servers on one PostgreSQL database: what any node commits reaches every
//! member's connections on every node, in one order, once; membership, edits and
//! revocations made through one node hold on the others; a client resumes on another node.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::common::{id_of, within, Auth, TestApp, Ws, PASSWORD};
use crate::engines::{Postgres, Redis};
use hearth::db::pg::log::{Appended, NewRow};

/// A private PostgreSQL server with a new database `name`, and its URL (off the test's
/// runtime: the driver blocks).
async fn database(name: &'static str) -> Option<(Postgres, String)> {
    tokio::task::spawn_blocking(move || {
        let pg = Postgres::start()?;
        let url = pg.create_database(name);
        Some((pg, url))
    })
    .await
    .expect("PostgreSQL starts")
}

/// `n` servers on the database at `url`, with `/metrics` on.
async fn nodes(url: &str, n: usize) -> Vec<TestApp> {
    nodes_with(url, n, |_| {}).await
}

/// `n` servers on the database at `url`, with `/metrics` on and `tweak` applied to each
/// one's configuration.
async fn nodes_with(
    url: &str,
    n: usize,
    tweak: impl Fn(&mut hearth::config::Config) + Clone + 'static,
) -> Vec<TestApp> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (url, tweak) = (url.to_string(), tweak.clone());
        out.push(
            TestApp::builder()
                .config(move |c| {
                    c.database.url = url;
                    c.metrics.enabled = true;
                    tweak(c);
                })
                .start()
                .await,
        );
    }
    out
}

/// Every `message` frame until `n` distinct ids arrived (other frames skipped): the ids in
/// arrival order, and whether any arrived twice.
async fn collect(ws: &mut Ws, n: usize) -> (Vec<i64>, bool) {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    let mut twice = false;
    while seen.len() < n {
        let f = ws.wait_type("message").await;
        let id = id_of(&f);
        twice |= !seen.insert(id);
        ids.push(id);
    }
    (ids, twice)
}

/// The names of the users [`three_connected`] signs up, one per node.
const NAMES: [&str; 3] = ["ann", "ben", "cy"];

/// Three nodes on the database at `url`, a user signed up on each ([`NAMES`]) and connected
/// to it.
async fn three_connected(url: &str) -> (Vec<TestApp>, Vec<Auth>, Vec<Ws>) {
    let apps = nodes(url, 3).await;
    let mut auths = Vec::new();
    for (app, name) in apps.iter().zip(NAMES) {
        auths.push(app.signup(name).await);
    }
    let mut sockets = Vec::new();
    for (app, auth) in apps.iter().zip(&auths) {
        sockets.push(app.ws_connect(auth, None).await);
    }
    (apps, auths, sockets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_deliver_every_message_once_in_one_order() {
    let Some((_pg, url)) = database("nodes").await else {
        return;
    };
    let (apps, auths, mut sockets) = three_connected(&url).await;
    // Each sends 40 messages through its own node, all at once.
    const EACH: usize = 40;
    for (i, ws) in sockets.iter_mut().enumerate() {
        let frames: Vec<Value> = (0..EACH)
            .map(|k| {
                crate::common::send_frame(&format!("{} {k}", NAMES[i]), Some(&format!("{i}-{k}")))
            })
            .collect();
        ws.send_all(&frames).await;
    }
    let mut orders = Vec::new();
    for ws in &mut sockets {
        let (ids, twice) = within(
            Duration::from_secs(30),
            "every message on every node",
            collect(ws, 3 * EACH),
        )
        .await;
        assert!(!twice, "a message arrived twice: {ids:?}");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids arrive in increasing order: {ids:?}"
        );
        orders.push(ids);
    }
    assert_eq!(orders[0], orders[1], "one order on every node");
    assert_eq!(orders[1], orders[2], "one order on every node");
    // Positions are gapless: the messages took consecutive ones (nothing else happened).
    let ids = &orders[0];
    assert_eq!(
        ids.last().unwrap() - ids[0] + 1,
        ids.len() as i64,
        "{ids:?}"
    );

    // Every node reports the position it delivered up to, and that it read the log lately.
    for app in &apps {
        let text = app.get("/metrics").await.text().await.unwrap();
        let gauge = |name: &str| metric(&text, name);
        assert!(
            gauge("hearth_log_position") >= *ids.last().unwrap() as f64,
            "{text}"
        );
        assert!(gauge("hearth_log_read_age_seconds") < 10.0, "{text}");
        // Each node's listener heard the other two (hellos are answered at once).
        assert_eq!(gauge("hearth_log_nodes_heard"), 2.0, "{text}");
        // Each node delivered the other two's 80 messages, read or straight from their
        // notifications, and reports how long its follower paused and its own commits
        // waited for the others' (present, as counters).
        let (reads, direct) = (
            gauge("hearth_log_reads_total"),
            gauge("hearth_log_direct_total"),
        );
        assert!(reads + direct >= 1.0, "{text}");
        assert!(gauge("hearth_log_paused_seconds_total") >= 0.0, "{text}");
        assert!(gauge("hearth_log_behind_seconds_total") >= 0.0, "{text}");
    }

    // A client resumes on another node with nothing missing.
    let mid = ids[EACH];
    let mut again = apps[2].ws_connect(&auths[0], Some(mid)).await;
    let (replayed, twice) = collect(&mut again, ids.len() - EACH - 1).await;
    assert!(!twice);
    assert_eq!(replayed, ids[EACH + 1..].to_vec());
}

/// A value of the Prometheus text `text` (`name` with its labels, if any).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// What crosses nodes arrives exactly as it was committed, whatever the body holds (quotes,
/// backslashes, escapes, emoji), and a batch too large for one notification as well: sent in
/// parts, the other node delivers it from them without reading the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_cross_nodes_intact_in_small_and_large_batches() {
    let Some((_pg, url)) = database("bodies").await else {
        return;
    };
    let apps = nodes_with(&url, 2, |c| c.limits.messages_per_second = 0.0).await;
    let ann = apps[0].signup("ann").await;
    let ben = apps[1].signup("ben").await;
    let mut ann_ws = apps[0].ws_connect(&ann, None).await;
    let mut ben_ws = apps[1].ws_connect(&ben, None).await;
    let tricky = "it's \\ a \"quote\" \\u0000 $1 E'x' \\' 🔥 été\nline two";
    let sent = ann_ws.say("general", tricky, "t1").await;
    let got = ben_ws
        .wait_for("the tricky body", |f| {
            f["type"] == "message" && f["nonce"] == "t1"
        })
        .await;
    assert_eq!(got["body"], tricky);
    assert_eq!(got["id"], sent["id"]);
    assert_eq!(got["user"], "ann");
    assert_eq!(got, sent, "the same frame on both nodes");

    // Long bodies sent together, in three bursts: batches far over a notification's size.
    let before = (
        apps[0].get("/metrics").await.text().await.unwrap(),
        apps[1].get("/metrics").await.text().await.unwrap(),
    );
    let mut seen = HashSet::new();
    let mut last = 0;
    for burst in 0..3 {
        // Long and escape-heavy, so that parts carry quotes and backslashes too.
        let body = |k: usize| format!("{burst}.{k} {}", "it's \\ \"x\" ".repeat(300));
        let frames: Vec<Value> = (0..10)
            .map(|k| {
                let nonce = format!("L{burst}.{k}");
                serde_json::json!({"type": "send", "room": "general", "body": body(k), "nonce": nonce})
            })
            .collect();
        ann_ws.send_all(&frames).await;
        for k in 0..10 {
            let f = ben_ws.wait_type("message").await;
            let id = id_of(&f);
            assert!(seen.insert(id), "id {id} arrived twice");
            assert!(id > last, "id {id} after {last}");
            last = id;
            assert_eq!(f["body"], body(k).trim_end(), "the body as sent (trimmed)");
        }
    }
    let after = (
        apps[0].get("/metrics").await.text().await.unwrap(),
        apps[1].get("/metrics").await.text().await.unwrap(),
    );
    let delta = |name: &str, node: usize| match node {
        0 => metric(&after.0, name) - metric(&before.0, name),
        _ => metric(&after.1, name) - metric(&before.1, name),
    };
    let batches = delta("hearth_writer_batch_size_count", 0);
    let over_two = batches - delta("hearth_writer_batch_size_bucket{le=\"2\"}", 0);
    assert!(
        over_two >= 2.0,
        "the bursts were committed in batches of more than two messages (over 7,000 bytes)"
    );
    // Each of ann's batches reached ben's node from its notification (one may have been read
    // by a tail check that came first).
    let direct = delta("hearth_log_direct_total", 1);
    assert!(
        direct + 1.0 >= batches,
        "{direct} of {batches} batches delivered from their notifications"
    );
}

/// Every payload on the log's channel from now on, with when it was heard, by an onlooker
/// that is not a node (it says no hello); the thread ends with the database.
fn overhear(url: &str) -> std::sync::mpsc::Receiver<(Instant, Value)> {
    use postgres::fallible_iterator::FallibleIterator as _;
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("the database answers");
    client.batch_execute("LISTEN hearth_log").expect("listens");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || loop {
        let mut notes = client.notifications();
        let mut heard = notes.timeout_iter(Duration::from_millis(100));
        loop {
            match heard.next() {
                Ok(Some(note)) => {
                    let payload = serde_json::from_str(note.payload()).expect("JSON payloads");
                    if tx.send((Instant::now(), payload)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    });
    rx
}

/// The next payload `pick` accepts (others skipped), with when it was heard.
async fn overheard<T>(
    heard: &std::sync::mpsc::Receiver<(Instant, Value)>,
    what: &str,
    mut pick: impl FnMut(&Value) -> Option<T>,
) -> (Instant, T) {
    within(Duration::from_secs(10), what, async {
        loop {
            while let Ok((at, p)) = heard.try_recv() {
                if let Some(v) = pick(&p) {
                    return (at, v);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// The notification that announces position `id`.
async fn announcing(heard: &std::sync::mpsc::Receiver<(Instant, Value)>, id: i64) -> Value {
    let what = format!("the notification of {id}");
    let (_, note) = overheard(heard, &what, |p| {
        let (after, upto) = (p["a"].as_i64()?, p["u"].as_i64()?);
        (after < id && id <= upto).then(|| p.clone())
    })
    .await;
    note
}

/// A hello: who said it.
fn hello(p: &Value) -> Option<String> {
    p["hello"].as_str().map(str::to_string)
}

/// A node that hears no other announces its commits without their items (nobody would read
/// them); a node that starts is greeted at once, not on the others' next round of hellos
/// (every 2 s), and from then on commits carry their items for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_alone_announces_bare_and_a_newcomer_is_greeted_at_once() {
    let Some((_pg, url)) = database("greetings").await else {
        return;
    };
    let first = nodes(&url, 1).await;
    let heard = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || overhear(&url))
            .await
            .unwrap()
    };
    let ann = first[0].signup("ann").await;
    let mut ws = first[0].ws_connect(&ann, None).await;
    let alone = id_of(&ws.say("general", "said alone", "g1").await);
    let note = announcing(&heard, alone).await;
    assert!(
        note.get("i").is_none() && note.get("j").is_none(),
        "announced bare while alone: {note}"
    );

    // Start a second node right after one of the first node's rounds: its next round is two
    // seconds away, so a hello from it soon after the newcomer's is an answer.
    while heard.try_recv().is_ok() {} // a fresh round, not one heard earlier
    let (round, old) = overheard(&heard, "a round of the first node's hellos", hello).await;
    let second = nodes(&url, 1).await;
    let (arrived, new) = overheard(&heard, "the newcomer's hello", |p| {
        hello(p).filter(|h| *h != old)
    })
    .await;
    let (answered, _) = overheard(&heard, "the first node's next hello", |p| {
        hello(p).filter(|h| *h == old)
    })
    .await;
    // (A newcomer that took over 0.9 s to say hello proves nothing either way: the round
    // after the first node's could then be within a second of it.)
    let late_start = arrived - round > Duration::from_millis(900);
    assert!(
        answered - arrived < Duration::from_secs(1) || late_start,
        "{new} was answered {:?} after its hello, {:?} after the first node's round",
        answered - arrived,
        answered - round
    );
    // Each reports hearing the other.
    for (app, who) in [(&second[0], "the newcomer"), (&first[0], "the first node")] {
        within(
            Duration::from_secs(10),
            &format!("{who} to hear the other"),
            async {
                loop {
                    let text = app.get("/metrics").await.text().await.unwrap();
                    if metric(&text, "hearth_log_nodes_heard") == 1.0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        )
        .await;
    }

    // Now a commit carries its items for the other node.
    let together = id_of(&ws.say("general", "said together", "g2").await);
    let note = announcing(&heard, together).await;
    let items = note["i"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {note}"));
    assert!(
        items.iter().any(|i| i["m"]["body"] == "said together"),
        "{note}"
    );
}

/// A node reads what others committed in bursts; a client that reads every message of a busy
/// room keeps up with them even when its queue is much shorter than a burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_from_another_node_does_not_drop_a_reader_with_a_short_queue() {
    let Some((_pg, url)) = database("burst").await else {
        return;
    };
    let short = {
        let url = url.clone();
        TestApp::builder()
            .config(move |c| {
                c.database.url = url;
                c.limits.outgoing_queue = 64;
            })
            .start()
            .await
    };
    let busy = TestApp::builder()
        .config(move |c| {
            c.database.url = url;
            c.limits.messages_per_second = 0.0;
        })
        .start()
        .await;
    let reader = short.signup("ann").await;
    let writer = busy.signup("ben").await;
    let mut reader_ws = short.ws_connect(&reader, None).await;
    let mut writer_ws = busy.ws_connect(&writer, None).await;
    const BURST: usize = 600;
    let frames: Vec<Value> = (0..BURST)
        .map(|k| crate::common::send_frame(&format!("burst {k}"), Some(&format!("n{k}"))))
        .collect();
    writer_ws.send_all(&frames).await;
    let (ids, twice) = within(
        Duration::from_secs(30),
        "the whole burst on the short-queued node",
        collect(&mut reader_ws, BURST),
    )
    .await;
    assert!(!twice, "a message arrived twice");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rooms_edits_and_sign_outs_made_on_one_node_hold_on_the_others() {
    let Some((_pg, url)) = database("changes").await else {
        return;
    };
    let apps = nodes(&url, 2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let ann = a.signup("ann").await;
    let ben = b.signup("ben").await;
    let mut ann_ws = a.ws_connect(&ann, None).await;
    let mut ben_ws = b.ws_connect(&ben, None).await;

    // A room made on node A, joined through node B: ann (on A) hears ben join and receives
    // what he says through B; ben hears ann through A.
    a.create_room(&ann, "plans", true).await;
    b.join_room(&ben, "plans").await;
    let joined = ann_ws
        .wait_for("ben joining", |f| {
            f["type"] == "member_joined" && f["user"] == "ben"
        })
        .await;
    assert_eq!(joined["room"], "plans");
    let said = ben_ws.say("plans", "hello from B", "b1").await;
    let heard = ann_ws
        .wait_for("ben's message", |f| {
            f["type"] == "message" && f["nonce"] == "b1"
        })
        .await;
    assert_eq!(heard["id"], said["id"]);
    assert_eq!(heard["body"], "hello from B");

    // An edit through A reaches B.
    let mine = ann_ws.say("plans", "helo", "a1").await;
    let id = id_of(&mine);
    ben_ws
        .wait_for("ann's message", |f| f["type"] == "message" && f["id"] == id)
        .await;
    let res = a
        .api(
            reqwest::Method::PATCH,
            &format!("/api/messages/{id}"),
            &ann,
            Some(&serde_json::json!({"body": "hello"})),
        )
        .await;
    assert_eq!(res.0, 200, "{}", res.1);
    let edited = ben_ws
        .wait_for("the edit", |f| f["type"] == "edited" && f["id"] == id)
        .await;
    assert_eq!(edited["body"], "hello");

    // A profile changed through B reaches ann's connection on A, and A's next `ready`.
    let res = b
        .api(
            reqwest::Method::PATCH,
            "/api/me",
            &ben,
            Some(&serde_json::json!({"display_name": "Ben B.", "status": "on node B"})),
        )
        .await;
    assert_eq!(res.0, 200, "{}", res.1);
    let profile = ann_ws.wait_type("profile").await;
    assert_eq!(profile["user"]["display_name"], "Ben B.");
    let fresh = a.ws_connect(&ann, None).await;
    assert_eq!(fresh.ready["profiles"][0]["status"], "on node B");

    // Leaving through B: ann on A is told, and ben's sends to the room are refused.
    b.api(reqwest::Method::POST, "/api/rooms/plans/leave", &ben, None)
        .await;
    ann_ws
        .wait_for("ben leaving", |f| {
            f["type"] == "member_left" && f["user"] == "ben"
        })
        .await;

    // Signing out through A closes ben's sockets on B (and the cookie stops working there).
    let (_, cookie) = a.login("ben", PASSWORD).await;
    let ben_a = Auth::Cookie(cookie);
    let mut ben_b = b.ws_connect(&ben_a, None).await;
    let out = a
        .api(reqwest::Method::POST, "/api/logout", &ben_a, None)
        .await;
    assert!(out.0 < 300, "{}", out.1);
    let code = within(
        Duration::from_secs(5),
        "the socket on the other node to close",
        ben_b.expect_close(),
    )
    .await;
    assert_eq!(code, 4001);
    assert_eq!(b.get_as("/api/me", &ben_a).await.status(), 401);
}

/// A session revoked through one node is refused by the other from the moment the
/// revocation is answered, though the other node had it cached: no request slips through
/// (a bot token minted with a stolen cookie would outlive the revocation), whichever way
/// the session ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_revoked_through_one_node_is_refused_by_the_others_once_that_is_answered() {
    let Some((_pg, url)) = database("revocations").await else {
        return;
    };
    let apps = nodes(&url, 2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let admin = a.signup_admin("root").await;
    b.signup("ben").await;
    let mut password = PASSWORD.to_string();
    let ways = [
        "logout", "revoke", "password", "sign_out", "disable", "logout", "revoke", "password",
    ];
    for (round, way) in ways.into_iter().enumerate() {
        // The session to end, in use on node B (so B has it cached), and another one of
        // ben's on node A to end it with where it is ben who ends it.
        let victim = Auth::Cookie(b.login("ben", &password).await.1);
        assert_eq!(b.get_as("/api/me", &victim).await.status(), 200);
        let own = Auth::Cookie(a.login("ben", &password).await.1);
        let answered = match way {
            "logout" => a.api(Method::POST, "/api/logout", &victim, None).await,
            "revoke" => {
                let (_, listing) = a.api(Method::GET, "/api/sessions", &victim, None).await;
                let id = listing["sessions"]
                    .as_array()
                    .and_then(|l| l.iter().find(|s| s["current"] == true))
                    .map(|s| s["id"].as_str().unwrap_or_default().to_string())
                    .expect("the current session listed");
                a.api(Method::DELETE, &format!("/api/sessions/{id}"), &own, None)
                    .await
            }
            "password" => {
                let new = format!("{PASSWORD}-{round}");
                let body = serde_json::json!({
                    "current_password": password,
                    "new_password": new,
                    "sign_out_others": true,
                });
                password = new;
                a.api(Method::POST, "/api/password", &own, Some(&body))
                    .await
            }
            action => {
                let body = serde_json::json!({ "action": action });
                a.api(Method::POST, "/api/admin/users/ben", &admin, Some(&body))
                    .await
            }
        };
        assert!(answered.0 < 300, "{way}: {answered:?}");
        // At once, through B: no new token, no message, no answer as ben.
        let (minted, body) = b
            .api(
                Method::POST,
                "/api/tokens",
                &victim,
                Some(&serde_json::json!({"name": "stolen"})),
            )
            .await;
        assert_eq!(
            minted, 401,
            "{way}: a token minted after the revocation: {body}"
        );
        let (said, body) = b
            .api(
                Method::POST,
                "/api/rooms/general/messages",
                &victim,
                Some(&serde_json::json!({"body": "still here"})),
            )
            .await;
        assert_eq!(said, 401, "{way}: {body}");
        assert_eq!(b.get_as("/api/me", &victim).await.status(), 401, "{way}");
        if way == "disable" {
            a.admin_act(&admin, "ben", "enable").await;
        }
    }
}

/// `ready`'s `last_id` is where the live frames start, on a node whose fan-out is short of
/// the head it read too: a connection opened while its user joins a busy room (through the
/// same node, another node sending) gets no message at or below it live (those are the
/// history it reads), and misses none above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_live_message_at_or_below_ready_last_id_while_joining_a_busy_room() {
    let Some((_pg, url)) = database("ready_head").await else {
        return;
    };
    let apps = nodes(&url, 2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let alice = a.signup("alice").await;
    let bob = b.signup("bob").await;
    a.create_room(&alice, "busy", true).await;
    let mut alice_ws = a.ws_connect(&alice, None).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let talker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let nonce = format!("t{n}");
                alice_ws
                    .send_json(&crate::common::send_in("busy", &nonce, &nonce))
                    .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            alice_ws
        })
    };
    let mut early = Vec::new();
    for round in 0..12 {
        let (_, mut ws) = tokio::join!(b.join_room(&bob, "busy"), b.ws_connect(&bob, None));
        let last_id = ws.ready["last_id"].as_i64().expect("last_id");
        // Up to the first message above `last_id`, and a few after it.
        let mut above = 0;
        while above < 5 {
            let f = ws.next_frame().await;
            if f["type"] == "message" {
                let id = id_of(&f);
                if id <= last_id {
                    early.push((round, last_id, id));
                } else {
                    above += 1;
                }
            }
        }
        drop(ws);
        b.api(Method::POST, "/api/rooms/busy/leave", &bob, None)
            .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    talker.await.expect("the talker");
    assert!(
        early.is_empty(),
        "messages at or below ready's last_id came live (round, last_id, id): {early:?}"
    );
}

/// Send to `general` with `nonce` until it is stored, as a client does after `unavailable`;
/// its id.
async fn say_until_stored(ws: &mut Ws, nonce: &str) -> i64 {
    for _ in 0..50 {
        ws.send_json(&crate::common::send_frame("after the restart", Some(nonce)))
            .await;
        let f = ws
            .wait_for("the answer", |f| {
                f["nonce"] == nonce && (f["type"] == "message" || f["type"] == "error")
            })
            .await;
        if f["type"] == "message" {
            return id_of(&f);
        }
        assert_eq!(f["code"], "unavailable", "{f}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{nonce} was never stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_fails_only_the_sends_in_flight_and_both_nodes_carry_on() {
    let Some((pg, url)) = database("restart").await else {
        return;
    };
    let apps = nodes(&url, 2).await;
    let ann = apps[0].signup("ann").await;
    let ben = apps[1].signup("ben").await;
    let mut ann_ws = apps[0].ws_connect(&ann, None).await;
    let mut ben_ws = apps[1].ws_connect(&ben, None).await;
    let before = id_of(&ann_ws.say("general", "before", "a0").await);
    ben_ws
        .wait_for("ann's first message", |f| f["id"] == before)
        .await;

    let pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.restart();
        pg
    })
    .await
    .expect("PostgreSQL restarts");

    // Every send is answered (stored, or refused to be retried: a node finds its
    // connections gone on their first use); retrying with the same nonce stores it once,
    // and the other node delivers it.
    let after = say_until_stored(&mut ann_ws, "a1").await;
    assert!(after > before);
    let seen = ben_ws
        .wait_for("ann's message after the restart", |f| {
            f["type"] == "message" && f["nonce"] == "a1"
        })
        .await;
    assert_eq!(id_of(&seen), after);
    let said = say_until_stored(&mut ben_ws, "b1").await;
    assert!(said > after);
    let heard = ann_ws
        .wait_for("ben's message after the restart", |f| {
            f["type"] == "message" && f["nonce"] == "b1"
        })
        .await;
    assert_eq!(id_of(&heard), said);
    drop(apps);
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

/// Append messages to `general` of the database `db` by hand, as another node's writer does
/// (the same statement), but without the notification a writer's commit sends: only the
/// append's own, which tells a node how far the log is committed and brings nothing itself.
/// Each row is (author, text, nonce); what became of each.
fn append_by_hand(pg: &Postgres, db: &str, rows: &[(&str, &str, Option<&str>)]) -> Vec<Appended> {
    tokio::task::block_in_place(|| {
        let mut c = pg.client(db);
        let general: i64 = c
            .query_one("SELECT id FROM rooms WHERE name = 'general'", &[])
            .expect("general")
            .get(0);
        let rows: Vec<NewRow> = rows
            .iter()
            .map(|(user, body, nonce)| NewRow {
                room_id: general,
                user_id: c
                    .query_one("SELECT id FROM users WHERE username = $1", &[user])
                    .expect("the author")
                    .get(0),
                body: body.to_string(),
                nonce: nonce.map(str::to_string),
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64;
        hearth::db::pg::log::append(&mut c, &rows, now).expect("appended")
    })
}

/// A retried nonce whose message the node has not delivered yet (another node stored it, or
/// this node's commit seemed to fail and is read back from the log) is answered only after
/// every message below it: its sender, who resumes from the highest id it heard of, would
/// otherwise skip those. The two messages are appended by hand (as another node's writer
/// does, without the notification a writer sends with its commit), so the node only finds
/// them at its next read of the log, up to half a second later, while the retry is answered
/// in milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_is_answered_after_every_message_below_its_first_copy() {
    let Some((pg, url)) = database("retry_order").await else {
        return;
    };
    let apps = nodes(&url, 1).await;
    let app = &apps[0];
    let ann = app.signup("ann").await;
    let _ben = app.signup("ben").await;
    let mut ann_ws = app.ws_connect(&ann, None).await;
    let before = id_of(&ann_ws.say("general", "before", "a0").await);
    // Past the node's read of the log that the first message's commit may still bring.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let appended = append_by_hand(
        &pg,
        "retry_order",
        &[
            ("ben", "ben's, first", None),
            ("ann", "ann's, stored once", Some("a1")),
        ],
    );
    let (bens, anns) = match appended[..] {
        [Appended::Stored(b), Appended::Stored(a)] => (b, a),
        ref other => panic!("appended {other:?}"),
    };
    assert_eq!((bens, anns), (before + 1, before + 2));
    ann_ws
        .send_json(&crate::common::send_frame("ann's, stored once", Some("a1")))
        .await;
    let frames = ann_ws
        .frames_until(|f| f["type"] == "message" && f["nonce"] == "a1" && f["id"] == anns)
        .await;
    let ids: Vec<i64> = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(id_of)
        .collect();
    assert_eq!(
        ids.first(),
        Some(&bens),
        "the answer to the retry came before ben's message below it: {frames:?}"
    );
    // Ann's message itself, and the answer to the retry (the same message, with her nonce).
    let answer = ann_ws
        .wait_for("the answer to the retry", |f| {
            f["type"] == "message" && f["nonce"] == "a1"
        })
        .await;
    assert_eq!(id_of(&answer), anns, "{answer}");
    drop(apps);
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

/// A history page asked of a node that knows of a commit it has not delivered yet comes from
/// the store, not from the room's newest messages the node keeps in memory (they lack it):
/// a client whose `ready` counted that message, and so is no longer sent it live, would never
/// see it. The message is appended by hand, as another node's writer does, with only the
/// append's own notification: the node reads it at its next read of the log, up to half a
/// second later, while a new connection's `ready` counts it at once.
/// Another node's commit that a node hears while its own batch below it is still on its way
/// from the writer (the writer lost its core right after `COMMIT`, say) waits for that batch,
/// then goes out right after it: not at the next read of the log, half a second later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_heard_behind_an_own_batch_goes_out_right_after_it() {
    use hearth::db::writer::{FAULT_HOLD, FAULT_HOLD_BODY};
    let Some((pg, url)) = database("heard_behind").await else {
        return;
    };
    let apps = nodes(&url, 2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let ann = a.signup("ann").await;
    let carl = a.signup("carl").await;
    let bob = b.signup("bob").await;
    let mut ann_ws = a.ws_connect(&ann, None).await;
    let mut carl_ws = a.ws_connect(&carl, None).await;
    let mut bob_ws = b.ws_connect(&bob, None).await;
    ann_ws.say("general", "hello", "w").await;
    bob_ws.wait_for("ann's hello", |f| f["nonce"] == "w").await;
    carl_ws.wait_for("ann's hello", |f| f["nonce"] == "w").await;
    // Bob's message must commit while ann's batch is held (and be heard on ann's node
    // before the hold ends); on a machine too busy for that, the attempt is made again.
    for attempt in 0..5 {
        let (held, after) = (format!("h{attempt}"), format!("b{attempt}"));
        let sent = Instant::now();
        ann_ws
            .send_json(&serde_json::json!({
                "type": "send", "room": "general", "body": FAULT_HOLD_BODY, "nonce": held
            }))
            .await;
        // Bob's node hears ann's commit from the log at once; ann's own node delivers it
        // only when the writer lets go of the batch.
        bob_ws
            .wait_for("ann's held message", |f| f["nonce"] == held.as_str())
            .await;
        bob_ws.say("general", "right behind it", &after).await;
        let acked = sent.elapsed();
        carl_ws
            .wait_for("ann's held message", |f| f["nonce"] == held.as_str())
            .await;
        let out = Instant::now();
        carl_ws
            .wait_for("bob's message", |f| f["nonce"] == after.as_str())
            .await;
        let gap = out.elapsed();
        ann_ws
            .wait_for("the held message's answer", |f| f["nonce"] == held.as_str())
            .await;
        if acked > FAULT_HOLD / 2 {
            eprintln!("attempt {attempt}: bob's message stored {acked:?} after ann's; again");
            continue;
        }
        assert!(
            gap < Duration::from_millis(150),
            "bob's message reached carl {gap:?} after ann's held one (stored {acked:?} after \
             ann's was sent)"
        );
        drop(apps);
        tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
        return;
    }
    panic!("bob's message never committed while ann's batch was held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_behind_the_log_answers_history_from_the_store() {
    let Some((pg, url)) = database("history_behind").await else {
        return;
    };
    let apps = nodes(&url, 1).await;
    let app = &apps[0];
    let ann = app.signup("ann").await;
    let _ben = app.signup("ben").await;
    let mut ann_ws = app.ws_connect(&ann, None).await;
    ann_ws.say("general", "before", "a0").await;
    let pages = || async {
        let text = app.get("/metrics").await.text().await.unwrap();
        (
            metric(&text, "hearth_history_pages_memory_total"),
            metric(&text, "hearth_history_pages_database_total"),
        )
    };
    // The room's newest messages are in memory, and answer the next page.
    app.history(&ann, "general", "").await;
    let (memory, _) = pages().await;
    app.history(&ann, "general", "").await;
    assert_eq!(pages().await.0, memory + 1.0, "a page from memory");
    // Past the node's read of the log that the first message's commit may still bring.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let id = match append_by_hand(&pg, "history_behind", &[("ben", "from another node", None)])[..]
    {
        [Appended::Stored(id)] => id,
        ref other => panic!("appended {other:?}"),
    };
    // A new connection's `ready` counts it, so it is not sent live there: the page must hold
    // it.
    let newcomer = app.ws_connect(&ann, None).await;
    assert!(
        newcomer.ready["last_id"].as_i64() >= Some(id),
        "{}",
        newcomer.ready
    );
    let (memory, store) = pages().await;
    let page = app.history(&ann, "general", "").await;
    assert_eq!(
        page.last().map(id_of),
        Some(id),
        "the newest page lacks the message committed last: {page:?}"
    );
    // Unless the node had read the log meanwhile, that page came from the store.
    let after = pages().await;
    assert!(
        after == (memory, store + 1.0) || after == (memory + 1.0, store),
        "{after:?}"
    );
    // Once the node has read the log, pages come from memory again.
    ann_ws
        .wait_for("the appended message, live", |f| f["id"] == id)
        .await;
    let (memory, _) = pages().await;
    let page = app.history(&ann, "general", "").await;
    assert_eq!(page.last().map(id_of), Some(id));
    assert_eq!(pages().await.0, memory + 1.0, "a page from memory again");
    drop(apps);
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

/// How PostgreSQL goes away under a node.
enum Outage {
    /// Stopped: every connection to it fails.
    Stopped,
    /// Frozen with SIGSTOP: connections stay open and nothing answers.
    Frozen,
}

/// A node's client is closed with 1012 once the node has not read the log for longer than it
/// may (30 s), while PostgreSQL is still away; once it is back the node is healthy and the
/// client resumes there with `since=` and sends again.
async fn cut_off_and_back(name: &'static str, outage: Outage) {
    let Some((pg, url)) = database(name).await else {
        return;
    };
    let apps = nodes(&url, 1).await;
    let ann = apps[0].signup("ann").await;
    let mut ws = apps[0].ws_connect(&ann, None).await;
    let before = id_of(&ws.say("general", "before", "c0").await);

    let (pg, frozen) = match outage {
        Outage::Stopped => {
            let pg = tokio::task::spawn_blocking(move || {
                let mut pg = pg;
                pg.stop_for_now();
                pg
            })
            .await
            .expect("PostgreSQL stops");
            (pg, None)
        }
        Outage::Frozen => {
            let frozen = pg.freeze();
            (pg, Some(frozen))
        }
    };
    let down = Instant::now();
    let code = ws.expect_close_within(Duration::from_secs(60)).await;
    assert_eq!(code, 1012, "closed so that the client resumes elsewhere");
    let after = down.elapsed();
    assert!(
        after >= Duration::from_secs(25),
        "a short outage does not close anyone ({after:?})"
    );

    let pg = match frozen {
        Some(frozen) => {
            drop(frozen);
            pg
        }
        None => tokio::task::spawn_blocking(move || {
            let mut pg = pg;
            pg.start_again();
            pg
        })
        .await
        .expect("PostgreSQL starts again"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(&apps[0]).await.0 != 200 {
        assert!(Instant::now() < deadline, "the node is healthy again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut ws = apps[0].ws_connect(&ann, Some(before)).await;
    let said = say_until_stored(&mut ws, "c1").await;
    assert!(said > before);
    drop(apps);
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

/// PostgreSQL down: the follower's reads fail, and after 30 s it closes the node's sockets
/// so that clients can move to another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_the_log_closes_its_sockets_while_it_is_cut_off() {
    cut_off_and_back("cutoff", Outage::Stopped).await;
}

/// PostgreSQL frozen: the follower waits inside a read and its own check never runs; the
/// node's watchdog closes the sockets all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_database_stops_answering_closes_its_sockets_all_the_same() {
    cut_off_and_back("frozen", Outage::Frozen).await;
}

/// A delivery that fails on every node at once (a bug in the hub, here made to panic on
/// purpose), on each thread that delivers: the sender's node (its own batch, which must be
/// settled or its later batches would wait for it forever) and the others (a batch heard on
/// the log's channel). Every node closes its sockets with 1012 and carries on from the log's
/// head: the clients resume with `since=`, find the message stored once, and what each node
/// commits next reaches every node, in one order, at the next positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_that_panics_on_every_node_closes_the_sockets_and_the_nodes_carry_on() {
    a_failed_delivery_on_three_nodes("faults", hearth::hub::FAULT_BODY).await;
}

/// The same when each node's reset after the failed delivery panics too: it is tried again,
/// on whichever thread ran it (the sender's node: its follower; the others: their listener
/// or follower, whichever took the batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_that_panics_after_a_failed_delivery_is_tried_again_on_every_node() {
    a_failed_delivery_on_three_nodes("faults2", hearth::hub::FAULT_IN_RECOVERY_BODY).await;
}

/// Three nodes, a client on each; `body`'s delivery fails on every node; every client is
/// closed with 1012, resumes, and what each node commits next reaches every node.
async fn a_failed_delivery_on_three_nodes(name: &'static str, body: &str) {
    let Some((_pg, url)) = database(name).await else {
        return;
    };
    let (apps, auths, mut sockets) = three_connected(&url).await;
    let first = id_of(&sockets[0].say("general", "before", "f-0").await);
    for ws in &mut sockets[1..] {
        let (ids, _) = collect(ws, 1).await;
        assert_eq!(ids, [first]);
    }

    sockets[0]
        .send_json(&crate::common::send_frame(body, Some("f-1")))
        .await;
    for ws in &mut sockets {
        assert_eq!(ws.expect_close_within(Duration::from_secs(15)).await, 1012);
    }

    let mut sockets = Vec::new();
    for (app, auth) in apps.iter().zip(&auths) {
        sockets.push(app.ws_connect(auth, Some(first)).await);
    }
    let mut failed = None;
    for ws in &mut sockets {
        let mut replayed = Vec::new();
        loop {
            let f = ws.next_skipping(&["presence", "typing"]).await;
            match f["type"].as_str() {
                Some("message") => replayed.push(f),
                Some("resumed") => break,
                _ => {}
            }
        }
        assert_eq!(replayed.len(), 1, "stored once: {replayed:?}");
        assert_eq!(replayed[0]["body"], body);
        let id = id_of(&replayed[0]);
        assert!(id > first);
        assert_eq!(*failed.get_or_insert(id), id, "one message on every node");
    }
    let failed = failed.unwrap();

    // Each node commits one more message; each reaches every node in one order.
    for (i, ws) in sockets.iter_mut().enumerate() {
        let frame = crate::common::send_frame(&format!("after {i}"), Some(&format!("f-{}", i + 2)));
        ws.send_json(&frame).await;
    }
    let mut orders = Vec::new();
    for ws in &mut sockets {
        let (ids, twice) = within(
            Duration::from_secs(20),
            "every later message on every node",
            collect(ws, 3),
        )
        .await;
        assert!(!twice);
        orders.push(ids);
    }
    assert_eq!(orders[0], orders[1], "one order on every node");
    assert_eq!(orders[1], orders[2], "one order on every node");
    assert_eq!(
        orders[0],
        [failed + 1, failed + 2, failed + 3],
        "at the next positions"
    );
}

/// A change in the log that a node cannot read (a newer node's, written while a cluster is
/// upgraded by halves, or a bug) closes every socket of every node that reads it, so that
/// clients read again from the store; the nodes carry on in one order, and a room renamed
/// afterwards is named anew on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_no_node_can_read_closes_the_sockets_and_the_nodes_carry_on() {
    let Some((pg, url)) = database("unreadable").await else {
        return;
    };
    let apps = nodes(&url, 2).await;
    let ann = apps[0].signup("ann").await;
    let ben = apps[1].signup("ben").await;
    let mut sockets = vec![
        apps[0].ws_connect(&ann, None).await,
        apps[1].ws_connect(&ben, None).await,
    ];
    let first = id_of(&sockets[0].say("general", "before", "before").await);
    assert_eq!(collect(&mut sockets[1], 1).await.0, [first]);

    // A change at the next position, in a shape no node knows, announced as a commit is.
    tokio::task::block_in_place(|| {
        let mut client = pg.client("unreadable");
        client
            .batch_execute(
                "BEGIN; \
                 INSERT INTO hub_events (pos, changes, ts) \
                 SELECT pos + 1, '[{\"kind\":\"from_a_newer_node\"}]', \
                 (extract(epoch FROM now()) * 1000)::bigint FROM hearth_log_head WHERE id = 1; \
                 SELECT pg_notify('hearth_log', '{\"a\":' || pos || ',\"u\":' || (pos + 1) || '}') \
                 FROM hearth_log_head WHERE id = 1; \
                 UPDATE hearth_log_head SET pos = pos + 1 WHERE id = 1; \
                 COMMIT",
            )
            .expect("the change is written");
    });
    for ws in &mut sockets {
        assert_eq!(ws.expect_close_within(Duration::from_secs(15)).await, 1012);
    }

    let mut sockets = vec![
        apps[0].ws_connect(&ann, Some(first)).await,
        apps[1].ws_connect(&ben, Some(first)).await,
    ];
    apps[0].create_room(&ann, "early", true).await;
    apps[1].join_room(&ben, "early").await;
    let rename = serde_json::json!({"name": "later"});
    apps[0]
        .api_ok(Method::PATCH, "/api/rooms/early", &ann, Some(&rename), 200)
        .await;
    for (i, ws) in sockets.iter_mut().enumerate() {
        let frame = crate::common::send_in("later", &format!("after {i}"), &format!("u-{i}"));
        ws.send_json(&frame).await;
    }
    let mut orders = Vec::new();
    for ws in &mut sockets {
        let mut got = Vec::new();
        within(
            Duration::from_secs(20),
            "both messages on both nodes",
            async {
                while got.len() < 2 {
                    let f = ws.wait_type("message").await;
                    if f["room"] == "later" {
                        got.push(id_of(&f));
                    }
                }
            },
        )
        .await;
        orders.push(got);
    }
    assert_eq!(orders[0], orders[1], "one order on every node");
}

// Cluster mode: the same nodes sharing one Redis (`cluster.redis_url`).

/// A private PostgreSQL with database `name`, a private Redis, and `n` nodes on both, each
/// with `tweak` applied to its configuration.
async fn cluster(
    name: &'static str,
    n: usize,
    tweak: impl Fn(&mut hearth::config::Config) + Clone + 'static,
) -> Option<(Postgres, Redis, Vec<TestApp>)> {
    let (pg, url) = database(name).await?;
    let redis = Redis::start()?;
    let mut apps = Vec::new();
    for i in 0..n {
        let (url, redis_url, tweak) = (url.clone(), redis.url(), tweak.clone());
        apps.push(
            TestApp::builder()
                .config(move |c| {
                    c.database.url = url;
                    c.cluster.redis_url = redis_url;
                    c.cluster.node = format!("node{i}");
                    tweak(c);
                })
                .start()
                .await,
        );
    }
    Some((pg, redis, apps))
}

/// A node started on the cluster's database without `cluster.redis_url` shares no presence,
/// caps or limits with the others: each side counts the other as apart (and warns once),
/// while nodes configured alike count none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_redis_on_the_clusters_database_is_counted_apart() {
    let Some((_pg, url)) = database("apart").await else {
        return;
    };
    let Some(redis) = Redis::start() else {
        return;
    };
    let redis_url = redis.url();
    let mut apps = nodes_with(&url, 2, move |c| c.cluster.redis_url = redis_url.clone()).await;
    apps.extend(nodes(&url, 1).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        for app in &apps {
            let text = app.get("/metrics").await.text().await.unwrap();
            seen.push((
                metric(&text, "hearth_log_nodes_heard"),
                metric(&text, "hearth_log_nodes_apart"),
            ));
        }
        // Each Redis node hears two others, one of them apart; the lone node hears two
        // others, both apart.
        if seen == [(2.0, 1.0), (2.0, 1.0), (2.0, 2.0)] {
            break;
        }
        assert!(Instant::now() < deadline, "heard and apart: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_users_connections_over_three_nodes_admit_exactly_the_cap() {
    let Some((_pg, _redis, apps)) =
        cluster("caps", 3, |c| c.limits.connections_per_user = 10).await
    else {
        return;
    };
    let ann = apps[0].signup("ann").await;
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for i in 0..25 {
        match apps[i % 3].try_ws(Some(&ann), "", None).await {
            Ok(ws) => open.push(ws),
            Err((status, body)) => refused.push((status, body)),
        }
    }
    assert_eq!(open.len(), 10, "refused: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|(s, b)| *s == 429 && b.contains("too_many_connections")),
        "{refused:?}"
    );
    // A connection closing anywhere frees a place everywhere.
    open.pop().expect("one open").close().await;
    within(
        Duration::from_secs(5),
        "a place to come free on another node",
        async {
            loop {
                if let Ok(ws) = apps[2].try_ws(Some(&ann), "", None).await {
                    return ws;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
}

/// A sign-out that lands while a connection of that session is being admitted (here: its
/// admission waits for a frozen Redis, up to half a second, before the node's own caps admit
/// it) closes the session's connections in the hub before this one is in it. The handshake
/// reads the session again before answering, so the connection is refused, never left open
/// for a session that ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_out_during_admission_refuses_the_connection() {
    let Some((_pg, redis, apps)) = cluster("lateadmit", 1, |_| {}).await else {
        return;
    };
    let app = &apps[0];
    // An attempt proves something only when the upgrade waited for Redis in its admission and
    // the sign-out was done before it answered; on a loaded machine either may miss, so a few
    // attempts are allowed (each after the breaker a frozen Redis trips has closed again).
    for attempt in 0..4 {
        let ann = app.signup(&format!("ann{attempt}")).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let frozen = redis.freeze();
        let started = Instant::now();
        let ((upgrade, upgraded), signed_out) = tokio::join!(
            async {
                let upgrade = app.try_ws(Some(&ann), "", None).await;
                (upgrade, started.elapsed())
            },
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // The sign-out holds on this node once its session is refused here (the
                // answer comes a lease later, when it holds on every node).
                let logout = app.api(reqwest::Method::POST, "/api/logout", &ann, None);
                let refused = async {
                    while app.get_as("/api/me", &ann).await.status() != 401 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    started.elapsed()
                };
                let ((status, _), at) = tokio::join!(logout, refused);
                assert_eq!(status, 204, "signed out");
                at
            }
        );
        drop(frozen);
        if upgraded < Duration::from_millis(400) || signed_out > upgraded {
            continue;
        }
        match upgrade {
            Err((status, body)) => return assert_eq!(status, 401, "{body}"),
            Ok(_) => panic!("a connection of a session that ended was opened"),
        }
    }
    panic!("no attempt signed out while a connection was being admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_typing_and_here_reach_every_node() {
    let Some((_pg, _redis, apps)) = cluster("presence", 3, |_| {}).await else {
        return;
    };
    let ann = apps[0].signup("ann").await;
    let ben = apps[1].signup("ben").await;
    let cy = apps[2].signup("cy").await;
    let mut ann_ws = apps[0].ws_connect(&ann, None).await;
    let ben_ws = apps[1].ws_connect(&ben, None).await;
    ann_ws
        .wait_for("ben online", |f| {
            f["type"] == "presence" && f["user"] == "ben" && f["online"] == true
        })
        .await;
    // A connection on the third node lists both others.
    let mut cy_ws = within(Duration::from_secs(5), "cy's ready to list both", async {
        loop {
            let ws = apps[2].ws_connect(&cy, None).await;
            let online = ws.ready["online"].clone();
            if online == serde_json::json!(["ann", "ben", "cy"]) {
                return ws;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // Typing on node 1 reaches node 3, not back to the typer.
    let mut ben_ws = ben_ws;
    ben_ws
        .send_json(&serde_json::json!({"type": "typing", "room": "general"}))
        .await;
    let typing = cy_ws
        .wait_for("ben typing", |f| f["type"] == "typing")
        .await;
    assert_eq!(typing["user"], "ben");
    assert_eq!(typing["room"], "general");
    // `@here` sent through node 3 mentions the members online on nodes 1 and 2.
    let sent = cy_ws.say("general", "@here lunch?", "h1").await;
    for ws in [&mut ann_ws, &mut ben_ws] {
        let mention = ws.wait_for("the mention", |f| f["type"] == "mention").await;
        assert_eq!(mention["id"], sent["id"], "{mention}");
    }
    // Ben's last connection closes: every node hears he is offline.
    ben_ws.close().await;
    for ws in [&mut ann_ws, &mut cy_ws] {
        ws.wait_for("ben offline", |f| {
            f["type"] == "presence" && f["user"] == "ben" && f["online"] == false
        })
        .await;
    }
}

/// A node that stops holds its users in the presence a moment after its sockets closed: a
/// client closed with 1001 that comes back at once on another node is never seen offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_of_a_stopping_node_who_move_to_another_are_never_seen_offline() {
    let Some((_pg, _redis, mut apps)) = cluster("moving", 2, |_| {}).await else {
        return;
    };
    let ann = apps[0].signup("ann").await;
    let ben = apps[1].signup("ben").await;
    let mut ben_ws = apps[1].ws_connect(&ben, None).await;
    let mut ann_ws = apps[0].ws_connect(&ann, None).await;
    ben_ws
        .wait_for("ann online", |f| {
            f["type"] == "presence" && f["user"] == "ann" && f["online"] == true
        })
        .await;
    let mut stopping = apps.remove(0);
    let moved = async {
        assert_eq!(
            ann_ws.expect_close_within(Duration::from_secs(10)).await,
            1001
        );
        apps[0].ws_connect(&ann, None).await
    };
    let ((), mut ann_ws) = tokio::join!(stopping.stop(), moved);
    // The stopped node has left Redis (its presence once its grace was over).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let said = ann_ws.say("general", "moved", "m1").await;
    let seen = ben_ws
        .frames_until(|f| f["type"] == "message" && f["id"] == said["id"])
        .await;
    let offline: Vec<&Value> = seen
        .iter()
        .filter(|f| f["type"] == "presence" && f["user"] == "ann" && f["online"] == false)
        .collect();
    assert!(offline.is_empty(), "ben saw {offline:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_users_sends_and_changes_over_two_nodes_share_one_rate_and_burst_each() {
    let Some((_pg, redis, apps)) = cluster("rate", 2, |c| {
        c.limits.messages_per_second = 0.1;
        c.limits.message_burst = 6;
        c.limits.changes_per_second = 0.1;
        c.limits.change_burst = 4;
    })
    .await
    else {
        return;
    };
    let ann = apps[0].signup("ann").await;
    let mut on_a = apps[0].ws_connect(&ann, None).await;
    let mut on_b = apps[1].ws_connect(&ann, None).await;
    /// Send `frame` (with `nonce`) on `ws`: its echo if it was taken, `None` if it was
    /// refused with `rate_limited`.
    async fn taken(ws: &mut Ws, frame: Value, nonce: &str, echo: &str) -> Option<Value> {
        ws.send_json(&frame).await;
        let f = ws
            .wait_for("the answer", |f| {
                f["nonce"] == nonce && (f["type"] == "error" || f["type"] == echo)
            })
            .await;
        match (f["type"].as_str(), f["code"].as_str()) {
            (Some(t), _) if t == echo => Some(f),
            (Some("error"), Some("rate_limited")) => None,
            _ => panic!("unexpected answer: {f}"),
        }
    }
    let mut stored = Vec::new();
    let mut limited = 0;
    for i in 0..5 {
        for (ws, node) in [(&mut on_a, "a"), (&mut on_b, "b")] {
            let nonce = format!("{node}{i}");
            let frame = crate::common::send_frame("hi", Some(&nonce));
            match taken(ws, frame, &nonce, "message").await {
                Some(f) => stored.push(id_of(&f)),
                None => limited += 1,
            }
        }
    }
    assert_eq!((stored.len(), limited), (6, 4), "one burst over both nodes");
    // The message budget is spent; changes have a budget of their own (under keys of their
    // own in Redis), shared over both nodes too.
    let mut reacted = 0;
    for (i, id) in stored.iter().enumerate().take(4) {
        for (ws, node, emoji) in [(&mut on_a, "a", "👍"), (&mut on_b, "b", "🎉")] {
            let nonce = format!("r{node}{i}");
            let frame = serde_json::json!({
                "type": "react", "id": id, "emoji": emoji, "on": true, "nonce": nonce,
            });
            if taken(ws, frame, &nonce, "reaction").await.is_some() {
                reacted += 1;
            }
        }
    }
    assert_eq!(
        reacted, 4,
        "one change burst over both nodes, untouched by messages"
    );
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg("hearth:rate:*"));
    let scopes: HashSet<&str> = keys.iter().filter_map(|k| k.split(':').nth(2)).collect();
    assert_eq!(scopes, HashSet::from(["u", "c"]), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_failures_registrations_and_quotas_count_over_every_node() {
    let Some((_pg, _redis, apps)) = cluster("windows", 3, |c| {
        c.limits.registrations_per_hour = 4;
        c.limits.dms_per_hour = 2;
    })
    .await
    else {
        return;
    };
    // Four registrations from this address, one per node and a fourth: the fifth is
    // refused on any node.
    let ann = apps[0].signup("ann").await;
    apps[1].signup("ben").await;
    apps[2].signup("cy").await;
    apps[0].signup("di").await;
    for app in &apps {
        let res = app.try_register("ed", PASSWORD).await;
        crate::common::assert_error(res, 429, "too_many_attempts").await;
    }

    // Ten wrong passwords for one account, spread over the nodes: the eleventh attempt is
    // refused on every node, the right password too.
    for i in 0..10 {
        let res = apps[i % 3].try_login("ann", "wrong password").await;
        crate::common::assert_error(res, 401, "invalid_credentials").await;
    }
    for app in &apps {
        let res = app.try_login("ann", "wrong password").await;
        crate::common::assert_error(res, 429, "too_many_attempts").await;
        let res = app.try_login("ann", PASSWORD).await;
        crate::common::assert_error(res, 429, "too_many_attempts").await;
    }
    // A successful login on one node forgives the account's failures on every node.
    for i in 0..9 {
        let res = apps[i % 3].try_login("ben", "wrong password").await;
        crate::common::assert_error(res, 401, "invalid_credentials").await;
    }
    apps[2].login("ben", PASSWORD).await;
    for i in 0..10 {
        let res = apps[i % 3].try_login("ben", "wrong password").await;
        crate::common::assert_error(res, 401, "invalid_credentials").await;
    }
    let res = apps[1].try_login("ben", "wrong password").await;
    crate::common::assert_error(res, 429, "too_many_attempts").await;

    // Two new conversations an hour over every node; finding one again is free.
    assert_eq!(apps[0].open_dm(&ann, &["ben"]).await.0, 201);
    assert_eq!(apps[1].open_dm(&ann, &["ben"]).await.0, 200);
    assert_eq!(apps[2].open_dm(&ann, &["cy"]).await.0, 201);
    for app in &apps {
        let (status, body) = app
            .api(
                reqwest::Method::POST,
                "/api/dms",
                &ann,
                Some(&serde_json::json!({ "users": ["di"] })),
            )
            .await;
        assert_eq!(status, 429, "{body}");
        crate::common::assert_error_shape(&body, "rate_limited");
    }
    assert_eq!(
        apps[2].open_dm(&ann, &["ben"]).await.0,
        200,
        "an existing conversation opens past the quota"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_messages_and_connections_carry_on() {
    let Some((_pg, mut redis, apps)) = cluster("noredis", 2, |_| {}).await else {
        return;
    };
    let ann = apps[0].signup_admin("ann").await;
    let ben = apps[1].signup("ben").await;
    let mut ann_ws = apps[0].ws_connect(&ann, None).await;
    let node = |status: Value| status["cluster"].clone();
    let status = apps[0].get_as("/api/admin/status", &ann).await;
    let status: Value = status.json().await.expect("the status");
    assert_eq!(node(status.clone())["redis"], "ok", "{status}");
    assert_eq!(node(status.clone())["presence"], "shared", "{status}");
    assert!(node(status.clone())["node"].is_string(), "{status}");
    let (status, body) = health(&apps[0]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("ok\n") && body.contains("database: postgresql, ok"),
        "{body}"
    );
    assert!(
        body.contains("log: position ") && body.contains("redis: ok"),
        "{body}"
    );
    assert_eq!(apps[0].get("/healthz").await.text().await.unwrap(), "ok");
    redis.kill();
    // Without Redis the node is still healthy (messages flow), and says what is missing.
    let (status, body) = health(&apps[1]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("redis: unreachable"), "{body}");
    // The status panel says so, and that presence is no longer heard from the other nodes.
    within(Duration::from_secs(5), "the panel to say Redis is away", async {
        loop {
            let status = apps[0].get_as("/api/admin/status", &ann).await;
            let status: Value = status.json().await.expect("the status");
            if node(status.clone())
                == serde_json::json!({"node": node(status.clone())["node"], "redis": "unreachable", "presence": "local"})
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // New connections are admitted on the node's own caps; messages flow both ways.
    let mut ben_ws = within(
        Duration::from_secs(5),
        "a connection without Redis",
        apps[1].ws_connect(&ben, None),
    )
    .await;
    let started = std::time::Instant::now();
    for i in 0..20 {
        let sent = ben_ws
            .say("general", &format!("still here {i}"), &format!("n{i}"))
            .await;
        ann_ws
            .wait_for("ben's message", |f| {
                f["type"] == "message" && f["id"] == sent["id"]
            })
            .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "sends do not wait for Redis: {:?}",
        started.elapsed()
    );
    // Redis comes back empty: presence is rebuilt from what each node holds.
    redis.restart();
    let cy = apps[0].signup("cy").await;
    within(Duration::from_secs(10), "the list to come back", async {
        loop {
            let ws = apps[0].ws_connect(&cy, None).await;
            if ws.ready["online"] == serde_json::json!(["ann", "ben", "cy"]) {
                return;
            }
            drop(ws);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// `GET /healthz?detail`: the status and the body.
async fn health(app: &TestApp) -> (u16, String) {
    let res = app.get("/healthz?detail").await;
    (res.status().as_u16(), res.text().await.unwrap_or_default())
}

/// Two nodes read one webhook queue: every message reaches the receiver once, in id order,
/// whichever node committed it and whichever node delivers it, through a failing spell too
/// (retries stay at the head of the queue on both nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_deliver_each_webhook_message_once_in_order() {
    let Some((_pg, url)) = database("webhooks").await else {
        return;
    };
    let receiver = crate::common::Receiver::start(200).await;
    let apps = nodes_with(&url, 2, |c| {
        c.outbound.allow_private_networks = true;
        c.previews.enabled = false;
    })
    .await;
    let ann = apps[0].signup("ann").await;
    let ben = apps[1].signup("ben").await;
    apps[1]
        .api_ok(
            reqwest::Method::POST,
            "/api/rooms/general/webhooks",
            &ben,
            Some(&serde_json::json!({"url": receiver.url("/hook")})),
            201,
        )
        .await;
    let mut sockets = [
        apps[0].ws_connect(&ann, None).await,
        apps[1].ws_connect(&ben, None).await,
    ];
    let body_id = |r: &crate::common::Received| -> i64 {
        let v: Value = serde_json::from_slice(&r.body).expect("a JSON delivery");
        id_of(&v["message"])
    };
    // Both nodes commit at once, alternating sends; each node rings its own deliverer.
    // Every third message mentions someone, so it is stored on its own rather than by the
    // log's append statement: both ways queue it.
    let mut sent = Vec::new();
    const ROUNDS: usize = 15;
    for k in 0..ROUNDS {
        for (i, ws) in sockets.iter_mut().enumerate() {
            let body = if k % 3 == 0 {
                format!("{i}:{k} @ann")
            } else {
                format!("{i}:{k}")
            };
            sent.push(id_of(&ws.say("general", &body, &format!("{i}-{k}")).await));
        }
    }
    sent.sort_unstable();
    let got = receiver
        .wait_until(Duration::from_secs(30), "every message delivered", |r| {
            r.len() >= sent.len()
        })
        .await;
    let ids: Vec<i64> = got.iter().map(body_id).collect();
    assert_eq!(ids, sent, "each once, in id order");

    // The receiver fails for a while: both nodes retry only the head, and after the
    // recovery the rest follows in order, none twice.
    receiver.answer(503);
    let mut later = Vec::new();
    for (i, ws) in sockets.iter_mut().enumerate() {
        for k in 0..3 {
            later.push(id_of(
                &ws.say("general", &format!("late {i}:{k}"), &format!("l{i}-{k}"))
                    .await,
            ));
        }
    }
    later.sort_unstable();
    receiver
        .wait_until(Duration::from_secs(20), "failed attempts", |r| {
            r.iter().filter(|x| x.status == 503).count() >= 2
        })
        .await;
    let failed: Vec<i64> = receiver
        .received()
        .iter()
        .filter(|r| r.status == 503)
        .map(body_id)
        .collect();
    assert!(
        failed.iter().all(|id| *id == later[0]),
        "{failed:?} {later:?}"
    );
    receiver.answer(200);
    let got = receiver
        .wait_until(Duration::from_secs(30), "the queued messages", |r| {
            r.iter().filter(|x| x.status == 200).count() >= sent.len() + later.len()
        })
        .await;
    let ok: Vec<i64> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(body_id)
        .collect();
    assert_eq!(ok[..sent.len()], sent[..]);
    assert_eq!(
        ok[sent.len()..],
        later[..],
        "in order after the recovery, once each"
    );
    // Nothing more trickles in afterwards.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let settled = receiver
        .received()
        .iter()
        .filter(|x| x.status == 200)
        .count();
    assert_eq!(settled, sent.len() + later.len());
}

/// Web Push over two nodes: a subscription made through one node is used by the other, and
/// a mention is pushed only while its target has no connection on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_go_to_people_away_from_every_node() {
    let Some((_pg, _redis, apps)) = cluster("push", 2, |c| {
        c.outbound.allow_private_networks = true;
        c.previews.enabled = false;
    })
    .await
    else {
        return;
    };
    let receiver = crate::common::Receiver::start(201).await;
    let ann = apps[0].signup("ann").await;
    let bob = apps[1].signup("bob").await;
    let rng = ring::rand::SystemRandom::new();
    let private =
        ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng).unwrap();
    let public = private.compute_public_key().unwrap().as_ref().to_vec();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let keys = serde_json::json!({"p256dh": b64.encode(&public), "auth": b64.encode([7u8; 16])});
    apps[1]
        .api_ok(
            reqwest::Method::POST,
            "/api/push/subscriptions",
            &bob,
            Some(&serde_json::json!({"endpoint": receiver.url("/push/bob"), "keys": keys})),
            201,
        )
        .await;
    // (The other node counts the subscriptions again every second.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ann_ws = apps[0].ws_connect(&ann, None).await;
    // Bob is connected nowhere: a mention stored by the other node is pushed to him.
    let first = ann_ws.say("general", "@bob ping", "p1").await;
    let got = receiver
        .wait_until(Duration::from_secs(10), "the push", |r| !r.is_empty())
        .await;
    assert_eq!(got[0].line, "POST /push/bob HTTP/1.1");
    let clear = hearth::outbound::webpush::decrypt(private, &public, &[7u8; 16], &got[0].body)
        .expect("decrypts with bob's keys");
    let note: Value = serde_json::from_slice(&clear).unwrap();
    assert_eq!(
        (&note["id"], &note["reason"]),
        (&first["id"], &serde_json::json!("mention"))
    );

    // Online on node 2: the mention through node 1 reaches his socket, not his phone.
    let mut bob_ws = apps[1].ws_connect(&bob, None).await;
    ann_ws
        .wait_for("bob online", |f| {
            f["type"] == "presence" && f["user"] == "bob" && f["online"] == true
        })
        .await;
    ann_ws.say("general", "@bob are you there?", "p2").await;
    bob_ws
        .wait_for("the mention", |f| {
            f["type"] == "message" && f["nonce"] == "p2"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 1, "nothing pushed while online");

    // Away again: pushed once more.
    bob_ws.close().await;
    ann_ws
        .wait_for("bob offline", |f| {
            f["type"] == "presence" && f["user"] == "bob" && f["online"] == false
        })
        .await;
    ann_ws.say("general", "@bob back?", "p3").await;
    receiver
        .wait_until(Duration::from_secs(10), "the second push", |r| r.len() == 2)
        .await;
}

/// Membership is ordered with messages on every node: while messages stream into a room
/// through one node, a member joins and leaves it over and over through a second, and his
/// socket on a third sees no message of the room between `room_left` and the next
/// `room_joined`, and between `room_joined` and `room_left` a run of the room's messages
/// with none missing in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joins_and_leaves_through_one_node_fence_messages_from_another_on_a_third() {
    let Some((_pg, url)) = database("churn").await else {
        return;
    };
    let apps = nodes(&url, 3).await;
    let ann = apps[0].signup("ann").await;
    let ben = apps[1].signup("ben").await;
    apps[0].create_room(&ann, "churn", true).await;
    let mut ben_ws = apps[2].ws_connect(&ben, None).await;
    let mut ann_ws = apps[0].ws_connect(&ann, None).await;
    // His socket is read all along (its queue must not fill while he is a member).
    let reader = tokio::spawn(async move {
        within(
            Duration::from_secs(120),
            "the last message",
            ben_ws.frames_until_nonce("end"),
        )
        .await
    });

    const MESSAGES: usize = 300;
    let sender = tokio::spawn(async move {
        let mut ids = Vec::new();
        for k in 0..MESSAGES {
            let frames: Vec<Value> = (0..3)
                .map(|j| {
                    let nonce = format!("c{k}-{j}");
                    crate::common::send_in("churn", &nonce, &nonce)
                })
                .collect();
            ann_ws.send_all(&frames).await;
            for j in 0..3 {
                let nonce = format!("c{k}-{j}");
                let f = ann_ws
                    .wait_for("the ack", |f| {
                        f["type"] == "message" && f["nonce"] == nonce.as_str()
                    })
                    .await;
                ids.push(id_of(&f));
            }
        }
        (ann_ws, ids)
    });
    let mut rng = crate::common::Rng::new(crate::common::seed("churn", "HEARTH_CHURN_SEED", None));
    let mut joins = 0;
    while !sender.is_finished() {
        apps[1].join_room(&ben, "churn").await;
        joins += 1;
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
        let (status, body) = apps[1]
            .api(reqwest::Method::POST, "/api/rooms/churn/leave", &ben, None)
            .await;
        assert!(status < 300, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
    }
    let (mut ann_ws, mut ids) = sender.await.expect("the sender");
    assert!(
        joins >= 3,
        "the churn overlapped the messages ({joins} joins)"
    );
    // He joins once more (committed before the last message, which marks the end).
    apps[1].join_room(&ben, "churn").await;
    ids.push(id_of(&ann_ws.say("churn", "the end", "end").await));
    ids.sort_unstable();
    let frames = reader.await.expect("his socket's reader");

    // Replay what his socket saw of the room.
    let next_of = |id: i64| ids.get(ids.binary_search(&id).ok()? + 1).copied();
    let (mut member, mut last, mut intervals, mut seen) = (false, None::<i64>, 0, 0);
    for f in &frames {
        match f["type"].as_str() {
            Some("room_joined") if f["room"]["name"] == "churn" => {
                assert!(!member, "joined twice without leaving");
                (member, last) = (true, None);
                intervals += 1;
            }
            Some("room_left") if f["room"] == "churn" => {
                assert!(member, "left without having joined");
                member = false;
            }
            Some("message") if f["room"] == "churn" => {
                let id = id_of(f);
                assert!(member, "message {id} arrived while he was not a member");
                if let Some(prev) = last {
                    assert_eq!(
                        next_of(prev),
                        Some(id),
                        "a gap between {prev} and {id} while he was a member"
                    );
                }
                last = Some(id);
                seen += 1;
            }
            _ => {}
        }
    }
    assert!(member, "a member at the end");
    assert_eq!(intervals, joins + 1, "every join reached his socket");
    assert!(seen > 0, "he saw some of the room's messages");
}

/// The notification listener of a node that froze (SIGSTOP, a machine that stopped) keeps
/// its session and reads nothing: PostgreSQL keeps every notification after it, until its
/// queue is full and every commit on every node fails. A live node ends such a session once
/// it has run nothing for 30 s, and its own listener carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_reads_nothing_is_ended_by_a_live_node() {
    let Some((pg, url)) = database("stalled_listener").await else {
        return;
    };
    let node = nodes(&url, 1).await.remove(0);
    let listeners = move |pg: &Postgres| -> Vec<i32> {
        tokio::task::block_in_place(|| {
            pg.client("stalled_listener")
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = $1",
                    &[&hearth::cluster::log::LISTENER],
                )
                .expect("the sessions")
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
    };
    within(Duration::from_secs(10), "the node's listener", async {
        while listeners(&pg).len() != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let own = listeners(&pg);

    // The frozen node's listener: it listens, then runs nothing more.
    let (stalled, pid, listening) = tokio::task::block_in_place(|| {
        let mut config: postgres::Config = url.parse().expect("the URL");
        config.application_name(hearth::cluster::log::LISTENER);
        let mut c = config.connect(postgres::NoTls).expect("a session");
        let pid: i32 = c
            .query_one("SELECT pg_backend_pid()", &[])
            .expect("pid")
            .get(0);
        c.batch_execute("LISTEN hearth_log").expect("listens");
        (c, pid, Instant::now())
    });
    let gone = within(
        Duration::from_secs(50),
        "the stalled listener ended",
        async {
            while listeners(&pg).contains(&pid) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            listening.elapsed()
        },
    )
    .await;
    assert!(
        gone >= Duration::from_secs(29),
        "not before it ran nothing for 30 s: ended after {gone:?}"
    );
    assert_eq!(
        listeners(&pg),
        own,
        "the live node's own listener is untouched"
    );
    let closed = tokio::task::block_in_place(move || {
        let mut stalled = stalled;
        stalled.batch_execute("SELECT 1").is_err()
    });
    assert!(closed, "the stalled session was ended");
    assert_eq!(health(&node).await.0, 200);
}

/// Before the first administrator exists, every node shows the same setup link and takes it
/// (the code is kept in the database), so a load balancer may send the registration to any
/// node; once it is used, no node shows one, even after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_shows_and_takes_the_one_setup_link() {
    let Some((_pg, url)) = database("setup_link").await else {
        return;
    };
    let mut apps = nodes(&url, 2).await;
    let code = |app: &TestApp| app.server().setup_code().map(str::to_string);
    let link = code(&apps[0]).expect("a fresh cluster has a setup code");
    assert_eq!(
        code(&apps[1]).as_deref(),
        Some(link.as_str()),
        "the same link on every node"
    );
    apps[0].restart().await;
    assert_eq!(
        code(&apps[0]).as_deref(),
        Some(link.as_str()),
        "and after a restart, while it is unused"
    );

    // Shown by node 0, sent to node 1.
    let res = apps[1]
        .post_json(
            "/api/register",
            &serde_json::json!({"username": "owner", "password": PASSWORD, "setup": link}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let owner = Auth::Cookie(crate::common::session_cookie(&res).expect("a session cookie"));
    let me = apps[0]
        .api_ok(reqwest::Method::GET, "/api/me", &owner, None, 200)
        .await;
    assert_eq!(me["is_admin"], true, "{me}");

    // Used: a second try through the other node makes a member.
    let res = apps[0]
        .post_json(
            "/api/register",
            &serde_json::json!({"username": "late", "password": PASSWORD, "setup": link}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let late = Auth::Cookie(crate::common::session_cookie(&res).expect("a session cookie"));
    let me = apps[0]
        .api_ok(reqwest::Method::GET, "/api/me", &late, None, 200)
        .await;
    assert_eq!(me["is_admin"], false, "{me}");
    apps[1].restart().await;
    assert_eq!(code(&apps[1]), None, "no link once an administrator exists");
}
