//! Persistence across restarts and graceful shutdown.

use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;

use crate::common::{id_of, send_frame, stored_nonces, within, Auth, TestApp, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_messages_survive_a_restart() {
    let mut app = TestApp::start().await;
    let (user, cookie) = app.register("alice", PASSWORD).await;
    let mut ws = app.ws_connect(&Auth::Cookie(cookie), None).await;
    let posted = ws.post_many(5, "kept").await;
    ws.close().await;

    app.restart().await;

    let (again, cookie) = app.login("alice", PASSWORD).await;
    assert_eq!(again, user);
    let auth = Auth::Cookie(cookie);
    let history = app.history(&auth, "general", "").await;
    assert_eq!(history.iter().map(id_of).collect::<Vec<_>>(), posted);
    assert_eq!(history[4]["body"], "kept 4");
    assert_eq!(history[4]["nonce"], "kept-4");
    let ws = app.ws_connect(&auth, None).await;
    assert_eq!(ws.ready["last_id"], posted[4]);
    // The name is still taken, and ids keep growing after the restart.
    assert_eq!(app.try_register("ALICE", PASSWORD).await.status(), 409);
    let mut ws = ws;
    let next = ws.send_and_ack("after restart", "after").await;
    assert!(id_of(&next) > posted[4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_are_still_recognised_after_a_restart() {
    let mut app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let first = ws.send_and_ack("before restart", "persisted-nonce").await;
    ws.close().await;
    app.restart().await;
    let (_, cookie) = app.login("alice", PASSWORD).await;
    let alice = Auth::Cookie(cookie);
    let mut ws = app.ws_connect(&alice, None).await;

    let again = ws.send_and_ack("before restart", "persisted-nonce").await;

    assert_eq!(again["id"], first["id"]);
    assert_eq!(app.history(&alice, "general", "").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_open_websockets_with_1001() {
    let mut app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, Some(0)).await;
    let server = app.server.take().expect("running");

    let stopping = tokio::spawn(server.shutdown());

    assert_eq!(a.expect_close().await, 1001);
    assert_eq!(b.expect_close().await, 1001);
    within(Duration::from_secs(30), "shutdown to finish", stopping)
        .await
        .expect("shutdown task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_message_is_in_the_database_after_shutdown_and_restart() {
    let mut app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let ack = ws.send_and_ack("right before the end", "last").await;

    let server = app.server.take().expect("running");
    let stopping = tokio::spawn(server.shutdown());
    assert_eq!(ws.expect_close().await, 1001);
    within(Duration::from_secs(30), "shutdown to finish", stopping)
        .await
        .expect("shutdown task");
    app.restart().await;

    let (_, cookie) = app.login("alice", PASSWORD).await;
    let history = app.history(&Auth::Cookie(cookie), "general", "").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["id"], ack["id"]);
    assert_eq!(history[0]["body"], "right before the end");
}

/// Messages still in flight when the stop begins: whatever was acknowledged must be stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_acknowledged_before_a_shutdown_is_stored() {
    let mut app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let frames: Vec<_> = (0..50)
        .map(|k| send_frame(&format!("in flight {k}"), Some(&format!("f-{k}"))))
        .collect();
    ws.send_all(&frames).await;
    let first = ws.next_of_type("message").await;

    let server = app.server.take().expect("running");
    let stopping = tokio::spawn(server.shutdown());
    let mut acked = vec![id_of(&first)];
    let code = loop {
        match ws.next_raw().await {
            Some(Message::Text(t)) => {
                let f: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON");
                if f["type"] == "message" {
                    acked.push(id_of(&f));
                }
            }
            Some(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("closed without a close frame"),
        }
    };
    assert_eq!(code, Some(1001));
    within(Duration::from_secs(30), "shutdown to finish", stopping)
        .await
        .expect("shutdown task");
    app.restart().await;

    let (_, cookie) = app.login("alice", PASSWORD).await;
    let stored = app.ids_after(&Auth::Cookie(cookie), 0).await;
    for id in &acked {
        assert!(stored.contains(id), "acknowledged message {id} was lost");
    }
    assert!(stored.windows(2).all(|w| w[0] < w[1]));
}

/// Sends on their way when the server is told to stop: each one that was stored is answered
/// on its connection before the 1001 (a send without a nonce could not be reconciled later),
/// and what is not answered was not stored (the client sends it again elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_in_flight_at_shutdown_are_answered_before_the_close() {
    if crate::common::sqlite_only("reading the stopped server's database file") {
        return;
    }
    let mut app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let frames: Vec<_> = (0..300)
        .map(|i| send_frame(&format!("in flight {i}"), Some(&format!("f{i}"))))
        .collect();
    ws.send_all(&frames).await;
    // The server is reading them: stop it now.
    let first = ws.next_skipping(&["presence", "typing"]).await;
    assert_eq!(first["nonce"], "f0", "{first}");
    let server = app.server.take().expect("running");
    let stopping = tokio::spawn(server.shutdown());
    let (rest, code) = ws.frames_until_close().await;
    assert_eq!(code, 1001);
    within(Duration::from_secs(30), "shutdown to finish", stopping)
        .await
        .expect("shutdown task");

    let answered: Vec<String> = std::iter::once(&first)
        .chain(&rest)
        .filter(|f| f["type"] == "message")
        .filter_map(|f| f["nonce"].as_str().map(str::to_string))
        .collect();
    let stored = stored_nonces(&app.db_path());
    let unanswered: Vec<&String> = stored.iter().filter(|n| !answered.contains(n)).collect();
    assert!(
        unanswered.is_empty(),
        "{} stored but never answered, from {:?}",
        unanswered.len(),
        unanswered.first()
    );
    assert_eq!(answered.len(), stored.len(), "answered but not stored");
}
