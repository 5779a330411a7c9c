//! The WebSocket chat: `ready`, messages, presence, typing, ordering under concurrency.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{id_of, send_frame, within, Auth, TestApp, PASSWORD};

fn assert_rfc3339_utc(ts: &Value) {
    let s = ts
        .as_str()
        .unwrap_or_else(|| panic!("ts is not a string: {ts}"));
    assert!(s.ends_with('Z'), "ts is UTC with a Z suffix: {s}");
    assert!(s.contains('T'), "ts has a T separator: {s}");
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("ts {s:?} is not RFC 3339: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_the_first_frame_with_user_rooms_online_and_last_id() {
    let app = TestApp::start().await;
    let (user, cookie) = app.register("alice", PASSWORD).await;

    let ws = app.ws_connect(&Auth::Cookie(cookie), None).await;

    let ready = &ws.ready;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["user"], user);
    assert_eq!(ready["user"]["username"], "alice");
    assert!(ready["user"]["id"].is_i64());
    let rooms = ready["rooms"].as_array().expect("rooms array");
    assert!(rooms.iter().any(|r| r["name"] == "general"), "{ready}");
    assert_eq!(ready["online"], json!(["alice"]), "online includes self");
    // No message yet (on PostgreSQL the sign-up's announcement in general took the first
    // position of the log every node follows).
    let head = i64::from(crate::common::on_postgres());
    assert_eq!(ready["last_id"], head, "no message yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_lists_everyone_online_and_the_highest_committed_id() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let ids = a.post_many(3, "r").await;

    let b = app.ws_connect(&bob, None).await;

    let mut online: Vec<String> = b.ready["online"]
        .as_array()
        .expect("online array")
        .iter()
        .map(|v| v.as_str().expect("usernames").to_string())
        .collect();
    online.sort();
    assert_eq!(online, ["alice", "bob"]);
    assert_eq!(b.ready["last_id"], ids[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_message_reaches_every_member_connection_including_the_senders() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut a2 = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;

    a1.send_json(&send_frame("hello there", Some("n-42"))).await;

    let mut copies = Vec::new();
    for ws in [&mut a1, &mut a2, &mut b] {
        copies.push(ws.next_of_type("message").await);
    }
    for m in &copies {
        assert_eq!(m, &copies[0], "every copy is identical");
    }
    let m = &copies[0];
    assert!(m["id"].is_i64(), "{m}");
    assert_eq!(m["room"], "general");
    assert_eq!(m["user"], "alice");
    assert_eq!(m["body"], "hello there");
    assert_eq!(m["nonce"], "n-42");
    assert_rfc3339_utc(&m["ts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_a_nonce_has_no_nonce() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;

    ws.send_json(&send_frame("plain", None)).await;

    let m = ws.next_of_type("message").await;
    assert_eq!(m["body"], "plain");
    assert!(m["nonce"].is_null(), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_trimmed_and_inner_newlines_kept() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;

    let m = ws
        .send_and_ack(" \n\t first line\n\n  second line \t\n ", "trim")
        .await;

    assert_eq!(m["body"], "first line\n\n  second line");
    let stored = app.history(&alice, "general", "").await;
    assert_eq!(stored[0]["body"], "first line\n\n  second line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_ids_grow_with_every_message() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;

    let ids = ws.post_many(20, "grow").await;

    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids[0] > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_first_connection_is_announced_to_others_but_not_a_second_one() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;

    let mut b1 = app.ws_connect(&bob, None).await;
    let online = a.next_skipping(&["typing"]).await;
    assert_eq!(
        online,
        json!({ "type": "presence", "user": "bob", "online": true })
    );

    let _b2 = app.ws_connect(&bob, None).await;
    // Anything the second connection caused is queued for alice before this message.
    let m = b1.send_and_ack("after second connection", "p-1").await;

    let next = a.next_skipping(&["typing"]).await;
    assert_eq!(
        next["type"], "message",
        "no presence for a second connection: {next}"
    );
    assert_eq!(next["id"], m["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_announced_offline_when_their_last_connection_closes() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let b2 = app.ws_connect(&bob, None).await;
    let online = a.next_skipping(&["typing"]).await;
    assert_eq!(online["online"], true);

    b2.close().await;
    let m = b1.send_and_ack("one connection left", "o-1").await;
    let next = a.next_skipping(&["typing"]).await;
    assert_eq!(next["type"], "message", "bob is still online: {next}");
    assert_eq!(next["id"], m["id"]);
    b1.close().await;

    let offline = a.next_skipping(&["typing"]).await;
    assert_eq!(
        offline,
        json!({ "type": "presence", "user": "bob", "online": false })
    );
    let c = app.ws_connect(&app.signup("carol").await, None).await;
    assert_eq!(
        c.ready["online"].as_array().map(Vec::len),
        Some(2),
        "{}",
        c.ready
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_members_but_none_of_the_senders_connections() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut a2 = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;

    a1.send_json(&json!({ "type": "typing", "room": "general" }))
        .await;

    let typing = b.next_skipping(&["presence"]).await;
    assert_eq!(
        typing,
        json!({ "type": "typing", "room": "general", "user": "alice" })
    );
    let m = b.send_and_ack("seen you typing", "t-1").await;
    for ws in [&mut a1, &mut a2] {
        let next = ws.next_skipping(&["presence"]).await;
        assert_eq!(next["type"], "message", "typing is not echoed: {next}");
        assert_eq!(next["id"], m["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_are_seen_by_every_receiver_in_the_same_order_without_loss() {
    const SENDERS: usize = 4;
    const EACH: usize = 50;
    let app = TestApp::start().await;
    // Everyone signed up before anyone connects: a sign-up is announced in `general`.
    let mut auths = Vec::new();
    for i in 0..SENDERS {
        auths.push(app.signup(&format!("sender{i}")).await);
    }
    let observer_auth = app.signup("observer").await;
    let mut clients = Vec::new();
    for (i, auth) in auths.iter().enumerate() {
        clients.push((i, app.ws_connect(auth, None).await));
    }
    let mut observer = app.ws_connect(&observer_auth, None).await;

    let mut tasks = Vec::new();
    for (i, mut ws) in clients {
        tasks.push(tokio::spawn(async move {
            let frames: Vec<Value> = (0..EACH)
                .map(|k| send_frame(&format!("{i}:{k}"), Some(&format!("c{i}-{k}"))))
                .collect();
            ws.send_all(&frames).await;
            let mut seen = Vec::new();
            while seen.len() < SENDERS * EACH {
                seen.push(ws.next_of_type("message").await);
            }
            seen
        }));
    }
    let mut observed = Vec::new();
    while observed.len() < SENDERS * EACH {
        observed.push(observer.next_of_type("message").await);
    }

    let reference: Vec<i64> = observed.iter().map(id_of).collect();
    assert!(reference.windows(2).all(|w| w[0] < w[1]), "id order");
    for t in tasks {
        let seen = within(Duration::from_secs(30), "a sender", t)
            .await
            .expect("sender task");
        let ids: Vec<i64> = seen.iter().map(id_of).collect();
        assert_eq!(ids, reference, "every connection sees the same sequence");
    }
    let mut nonces: Vec<String> = observed
        .iter()
        .map(|m| m["nonce"].as_str().expect("nonce").to_string())
        .collect();
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), SENDERS * EACH, "no message lost or doubled");
    assert_eq!(app.ids_after(&observer_auth, 0).await, reference);
}
