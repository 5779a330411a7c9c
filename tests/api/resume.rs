//! Reconnecting without losing anything: `?since=` replay, and nonce de-duplication of retries.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{id_of, send_frame, within, Auth, TestApp, Ws};

/// Read the replay after `ready`: the message frames, then the `resumed` frame.
async fn read_replay(ws: &mut Ws) -> (Vec<Value>, Value) {
    let mut replayed = Vec::new();
    loop {
        let f = ws.next_skipping(&["presence", "typing"]).await;
        match f["type"].as_str() {
            Some("message") => replayed.push(f),
            Some("resumed") => return (replayed, f),
            _ => panic!("unexpected frame during a replay: {f}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_replays_the_missed_messages_in_order_then_resumed_complete() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let posted = a.post_many(10, "miss").await;

    let mut b = app.ws_connect(&bob, Some(posted[3])).await;

    let (replayed, resumed) = read_replay(&mut b).await;
    let ids: Vec<i64> = replayed.iter().map(id_of).collect();
    assert_eq!(ids, posted[4..].to_vec());
    assert_eq!(replayed[0]["body"], "miss 4");
    assert_eq!(replayed[0]["user"], "alice");
    assert_eq!(replayed[0]["nonce"], "miss-4");
    assert_eq!(resumed["complete"], true);
    assert_eq!(resumed["head"], posted[9]);
    // Live traffic follows.
    let live = a.send_and_ack("live", "live-1").await;
    assert_eq!(b.next_of_type("message").await["id"], live["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_the_last_id_replays_nothing_and_resumes_complete() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a = app.ws_connect(&alice, None).await;
    a.post_many(3, "seen").await;
    let last_id = a.ready["last_id"].as_i64().unwrap() + 3;

    let mut again = app.ws_connect(&alice, Some(last_id)).await;

    assert_eq!(again.ready["last_id"], last_id);
    let (replayed, resumed) = read_replay(&mut again).await;
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(resumed["complete"], true);
    assert_eq!(resumed["head"], last_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_zero_on_an_empty_database_resumes_with_head_zero() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;

    let mut ws = app.ws_connect(&alice, Some(0)).await;

    let (replayed, resumed) = read_replay(&mut ws).await;
    assert!(replayed.is_empty());
    assert_eq!(resumed["complete"], true);
    // On PostgreSQL the sign-up's announcement in general took the first position of the
    // log every node follows.
    let head = i64::from(crate::common::on_postgres());
    assert_eq!(resumed["head"], head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_1000_missed_replays_the_oldest_1000_and_after_paging_reaches_head() {
    let app =
        TestApp::with_config(|c| c.database.synchronous = hearth::config::Synchronous::Normal)
            .await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let posted = a.post_many(1050, "bulk").await;

    let mut b = app.ws_connect(&bob, Some(0)).await;

    let (replayed, resumed) = read_replay(&mut b).await;
    let ids: Vec<i64> = replayed.iter().map(id_of).collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(ids, posted[..1000].to_vec(), "the oldest 1,000, in order");
    assert_eq!(resumed["complete"], false);
    let head = resumed["head"].as_i64().expect("head");
    assert_eq!(head, posted[1049]);
    let rest = app.ids_after(&bob, ids[999]).await;
    assert_eq!(rest, posted[1000..].to_vec());
    assert_eq!(rest.last(), Some(&head));
}

/// Connect with `?since=` while `alice` posts continuously; the replay plus the live messages
/// must be exactly the committed ids above `since`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_racing_live_traffic_has_no_gap_and_no_duplicate() {
    const TOTAL: usize = 400;
    const CHUNK: usize = 10;
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let last_nonce = format!("race-{}", TOTAL - 1);

    // The sender reports the ids acknowledged so far after every chunk.
    let (progress_tx, mut progress) = mpsc::unbounded_channel::<Vec<i64>>();
    let sender = tokio::spawn(async move {
        let mut acked = Vec::new();
        for start in (0..TOTAL).step_by(CHUNK) {
            let frames: Vec<Value> = (start..start + CHUNK)
                .map(|k| send_frame(&format!("race {k}"), Some(&format!("race-{k}"))))
                .collect();
            a.send_all(&frames).await;
            let mut got = 0;
            while got < CHUNK {
                let m = a.next_of_type("message").await;
                acked.push(id_of(&m));
                got += 1;
            }
            let _ = progress_tx.send(acked.clone());
        }
        acked
    });

    // Resume at three points of the stream, each from a point a little behind it.
    let mut resumers = Vec::new();
    for threshold in [60, 180, 300] {
        let since = loop {
            let acked = within(Duration::from_secs(30), "sender progress", progress.recv())
                .await
                .expect("the sender is still running");
            if acked.len() >= threshold {
                break acked[threshold - 25];
            }
        };
        let mut b = app.ws_connect(&bob, Some(since)).await;
        let last_nonce = last_nonce.clone();
        resumers.push(tokio::spawn(async move {
            let (replayed, resumed) = read_replay(&mut b).await;
            assert_eq!(resumed["complete"], true);
            let mut ids: Vec<i64> = replayed.iter().map(id_of).collect();
            let mut done = replayed.iter().any(|m| m["nonce"] == last_nonce.as_str());
            while !done {
                let m = b.next_of_type("message").await;
                ids.push(id_of(&m));
                done = m["nonce"] == last_nonce.as_str();
            }
            (since, ids, resumed)
        }));
    }

    let acked = within(Duration::from_secs(60), "the sender", sender)
        .await
        .expect("sender task");
    assert_eq!(acked.len(), TOTAL);
    for r in resumers {
        let (since, ids, resumed) = within(Duration::from_secs(60), "a resumer", r)
            .await
            .expect("resumer task");
        let committed = app.ids_after(&bob, since).await;
        assert_eq!(
            ids, committed,
            "replay + live after since={since} ({resumed})"
        );
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_a_nonce_stores_nothing_new_and_returns_the_stored_message_to_the_sender_only() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let first = a.send_and_ack("only once", "dup-1").await;
    assert_eq!(b.next_of_type("message").await, first);

    let again = a.send_and_ack("only once", "dup-1").await;

    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["body"], "only once");
    assert_eq!(again["ts"], first["ts"]);
    let marker = a.send_and_ack("marker", "dup-2").await;
    assert_eq!(
        b.next_of_type("message").await["id"],
        marker["id"],
        "bob gets no second copy"
    );
    let stored = app.history(&alice, "general", "").await;
    let ids: Vec<i64> = stored.iter().map(id_of).collect();
    assert_eq!(ids, vec![id_of(&first), id_of(&marker)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_a_nonce_after_a_reconnect_returns_the_original_message() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut b = app.ws_connect(&bob, None).await;
    let mut a = app.ws_connect(&alice, None).await;
    let first = a.send_and_ack("retry me", "re-1").await;
    a.close().await;

    let mut a = app.ws_connect(&alice, Some(id_of(&first))).await;
    let (replayed, _) = read_replay(&mut a).await;
    assert!(replayed.is_empty());
    let again = a.send_and_ack("retry me", "re-1").await;

    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["nonce"], "re-1");
    let marker = a.send_and_ack("marker", "re-2").await;
    assert_eq!(b.next_of_type("message").await["id"], first["id"]);
    assert_eq!(
        b.next_of_type("message").await["id"],
        marker["id"],
        "bob gets no second copy"
    );
    assert_eq!(app.history(&bob, "general", "").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_nonce_from_different_users_stores_two_messages() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;

    let from_alice = a.send_and_ack("mine", "shared").await;
    let from_bob = b.send_and_ack("mine too", "shared").await;

    assert_ne!(from_alice["id"], from_bob["id"]);
    assert_eq!(from_bob["user"], "bob");
    assert_eq!(app.history(&alice, "general", "").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_resume_with_since_too() {
    let app = TestApp::start().await;
    let (_, cookie) = app.register("alice", crate::common::PASSWORD).await;
    let bot = Auth::Bearer(app.token(&cookie).await);
    let mut human = app.ws_connect(&Auth::Cookie(cookie), None).await;
    let posted = human.post_many(5, "for-bot").await;

    let mut ws = app.ws_connect(&bot, Some(posted[1])).await;

    let (replayed, resumed) = read_replay(&mut ws).await;
    assert_eq!(
        replayed.iter().map(id_of).collect::<Vec<_>>(),
        posted[2..].to_vec()
    );
    assert_eq!(resumed["complete"], true);
}

/// A client that stops reading is cut off with 4008 instead of slowing anyone down, and
/// reconnecting with `?since=` gives it everything it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_with_4008_and_loses_nothing_by_resuming() {
    const CHUNK: usize = 16;
    const MAX_MESSAGES: usize = 20_000;
    let app = TestApp::with_config(|c| {
        c.limits.outgoing_queue = 64;
        c.database.synchronous = hearth::config::Synchronous::Normal;
    })
    .await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut slow = app.ws_connect_small_buffer(&bob).await;
    let online = a.next_frame().await;
    assert_eq!(online["type"], "presence", "{online}");
    let big = "x".repeat(4000);

    // Post until the hub gives up on bob, which alice sees as bob going offline.
    let mut posted = Vec::new();
    let mut bob_dropped = false;
    while !bob_dropped {
        assert!(posted.len() < MAX_MESSAGES, "bob was never cut off");
        let base = posted.len();
        let frames: Vec<Value> = (base..base + CHUNK)
            .map(|k| send_frame(&big, Some(&format!("slow-{k}"))))
            .collect();
        a.send_all(&frames).await;
        let mut acked = 0;
        while acked < CHUNK {
            let f = a.next_frame().await;
            match f["type"].as_str() {
                Some("message") => {
                    posted.push(id_of(&f));
                    acked += 1;
                }
                Some("presence") if f["user"] == "bob" && f["online"] == false => {
                    bob_dropped = true;
                }
                _ => panic!("unexpected frame for alice: {f}"),
            }
        }
    }

    // Bob finally reads: a prefix of the messages, in order, then the 4008 close.
    let mut received = Vec::new();
    let code = loop {
        match slow.next_raw().await {
            Some(Message::Text(t)) => {
                let f: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if f["type"] == "message" {
                    received.push(id_of(&f));
                }
            }
            Some(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("the connection ended without a close frame"),
        }
    };
    assert_eq!(code, Some(4008));
    assert!(received.len() < posted.len(), "bob was cut off early");
    assert_eq!(
        received,
        posted[..received.len()].to_vec(),
        "an in-order prefix"
    );

    // Reconnecting with ?since= (plus paging if the replay was capped) yields the rest.
    let since = received.last().copied().unwrap_or(0);
    let mut again = app.ws_connect(&bob, Some(since)).await;
    let (replayed, resumed) = read_replay(&mut again).await;
    let mut rest: Vec<i64> = replayed.iter().map(id_of).collect();
    if resumed["complete"] == false {
        let after = rest.last().copied().unwrap_or(since);
        rest.extend(app.ids_after(&bob, after).await);
    }
    received.extend(rest);
    assert_eq!(received, posted, "nothing lost, nothing doubled");
}

/// A delivery that fails (a bug in the hub, here made to panic on purpose) does not take the
/// fan-out down with it: every socket is closed with 1012, the clients resume with `since=`,
/// find the message stored once, and the next message goes out live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_panics_closes_every_socket_and_the_next_message_goes_out() {
    a_failed_delivery(hearth::hub::FAULT_BODY).await;
}

/// The same when the reset after the failed delivery panics too: it is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_that_panics_after_a_failed_delivery_is_tried_again() {
    a_failed_delivery(hearth::hub::FAULT_IN_RECOVERY_BODY).await;
}

/// A new connection whose user's rooms keep changing while it reads them (made so here: the
/// hub refuses the next 20 room syncs) is told to come back later (1013) rather than listen
/// to rooms it may have just left, and holds nothing once closed: the user is not online,
/// and their next connection is greeted as usual.
#[tokio::test]
async fn a_connection_whose_rooms_keep_changing_is_told_to_come_back_later() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    a.send_and_ack(hearth::hub::FAULT_CHURN_BODY, "c-1").await;

    let (code, reason) = app.ws_closed_before_ready(&bob).await;
    assert_eq!((code, reason.as_str()), (1013, "rooms changing, try again"));
    let online = || async {
        let v = app
            .api_ok(Method::GET, "/api/users?q=bob", &alice, None, 200)
            .await;
        v["users"][0]["online"] == true
    };
    // The close goes out first; the connection's place in the hub is let go right after.
    within(
        Duration::from_secs(5),
        "bob's refused connection to go",
        async {
            while online().await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await;

    let mut b = app.ws_connect(&bob, None).await;
    assert!(online().await);
    let live = a.send_and_ack("after", "c-2").await;
    assert_eq!(b.next_of_type("message").await["id"], live["id"]);
}

/// Two clients; `body`'s delivery fails; both are closed with 1012, resume, and carry on.
async fn a_failed_delivery(body: &str) {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let first = a.send_and_ack("before", "f-0").await;
    assert_eq!(b.next_of_type("message").await["id"], first["id"]);

    a.send_json(&send_frame(body, Some("f-1"))).await;
    for ws in [&mut a, &mut b] {
        assert_eq!(ws.expect_close_within(Duration::from_secs(10)).await, 1012);
    }

    let since = id_of(&first);
    let mut a = app.ws_connect(&alice, Some(since)).await;
    let mut b = app.ws_connect(&bob, Some(since)).await;
    let mut failed = None;
    for ws in [&mut a, &mut b] {
        let (replayed, resumed) = read_replay(ws).await;
        assert_eq!(replayed.len(), 1, "stored once: {replayed:?}");
        assert_eq!(replayed[0]["body"], body);
        assert_eq!(replayed[0]["nonce"], "f-1");
        assert_eq!(resumed["complete"], true);
        let id = id_of(&replayed[0]);
        assert!(id > since);
        assert_eq!(*failed.get_or_insert(id), id);
    }
    // The retry of the failed send (as the web client's outbox does) is answered with the
    // stored message, and the next message is delivered live.
    let again = a.send_and_ack(body, "f-1").await;
    assert_eq!(Some(id_of(&again)), failed);
    let live = a.send_and_ack("after", "f-2").await;
    assert_eq!(b.next_of_type("message").await["id"], live["id"]);
    assert!(id_of(&live) > failed.unwrap());
}
