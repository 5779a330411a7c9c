//! History pages from memory: the newest messages of a room are kept as JSON and answer most
//! pages without the database. Every page must be exactly what the database would answer,
//! and every change (a send, an edit, a deletion, a reaction, a reply's quote, a rename, who
//! may read a private room, a purge from the command line) must show at once.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{id_of, json_body, text, Auth, TestApp};

async fn metrics_app() -> TestApp {
    TestApp::with_config(|c| c.metrics.enabled = true).await
}

/// (pages from memory, pages from the database) so far.
async fn page_sources(app: &TestApp) -> (u64, u64) {
    let body = text(app.get("/metrics").await).await;
    let read = |name: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{body}"))
    };
    (
        read("hearth_history_pages_memory_total "),
        read("hearth_history_pages_database_total "),
    )
}

/// The status and body of a history request.
async fn page(app: &TestApp, who: &Auth, room: &str, query: &str) -> (u16, Value) {
    let res = app
        .get_as(&format!("/api/rooms/{room}/messages?{query}"), who)
        .await;
    (res.status().as_u16(), json_body(res).await)
}

/// The message `id` as the newest page of `room` shows it.
async fn newest(app: &TestApp, who: &Auth, room: &str, id: i64) -> Value {
    let page = app.history(who, room, "").await;
    page.into_iter()
        .find(|m| id_of(m) == id)
        .unwrap_or_else(|| panic!("message {id} in the newest page of {room}"))
}

/// `POST /api/rooms/{room}/messages`; the stored message.
async fn post(app: &TestApp, who: &Auth, room: &str, body: Value) -> Value {
    let path = format!("/api/rooms/{room}/messages");
    app.api_ok(Method::POST, &path, who, Some(&body), 201).await["message"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_from_memory_equal_pages_from_the_database() {
    let app = metrics_app().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let ids = ws.post_many(300, "m").await;
    // Every kind of page, first from the database (nothing is in memory yet)...
    let past_the_end = ids[299] + 1;
    let mut queries: Vec<String> = [1, 50, 200]
        .iter()
        .map(|n| format!("before={past_the_end}&limit={n}"))
        .collect();
    for (i, id) in ids.iter().enumerate().step_by(23) {
        let n = [1, 2, 3, 50, 199, 200][i % 6];
        for anchor in ["before", "after", "around"] {
            queries.push(format!("{anchor}={id}&limit={n}"));
        }
    }
    queries.push(format!("after={}", ids[299]));
    queries.push(format!("before={}&limit=200", ids[0]));
    let mut from_db = Vec::new();
    for q in &queries {
        from_db.push(page(&app, &alice, "general", q).await);
    }
    let (memory, _) = page_sources(&app).await;
    assert_eq!(
        memory, 0,
        "nothing was in memory before the newest page was read"
    );
    // ...then again once the newest page has loaded the room's tail.
    app.history(&alice, "general", "").await;
    for (q, expected) in queries.iter().zip(&from_db) {
        assert_eq!(&page(&app, &alice, "general", q).await, expected, "?{q}");
    }
    for (n, expected) in [1, 50, 200].iter().zip(&from_db) {
        let q = format!("limit={n}");
        assert_eq!(
            &page(&app, &alice, "general", &q).await,
            expected,
            "the newest {n}"
        );
    }
    let (memory, database) = page_sources(&app).await;
    assert!(
        memory >= 20,
        "most pages came from memory: {memory} / {database}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_shows_in_the_next_page_at_once() {
    let app = metrics_app().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "den", true).await;
    app.join_room(&bob, "den").await;
    let first = post(&app, &alice, "den", json!({ "body": "first" })).await;
    let id = id_of(&first);
    app.history(&bob, "den", "").await;
    // A message sent over HTTP is in the very next page, every time.
    for i in 0..20 {
        let m = post(&app, &bob, "den", json!({ "body": format!("quick {i}") })).await;
        assert_eq!(
            newest(&app, &alice, "den", id_of(&m)).await["body"],
            format!("quick {i}")
        );
    }
    let reply = post(&app, &bob, "den", json!({ "body": "re", "reply_to": id })).await;
    let edit = json!({ "body": "first, edited" });
    let path = format!("/api/messages/{id}");
    app.api_ok(Method::PATCH, &path, &alice, Some(&edit), 200)
        .await;
    let m = newest(&app, &bob, "den", id).await;
    assert_eq!(m["body"], "first, edited");
    assert!(m["edited_ts"].is_string(), "{m}");
    let quoted = newest(&app, &bob, "den", id_of(&reply)).await;
    assert_eq!(quoted["reply_to"]["excerpt"], "first, edited", "{quoted}");
    let react = format!("/api/messages/{id}/reactions/%F0%9F%91%8D");
    let (status, _) = app.api(Method::PUT, &react, &bob, None).await;
    assert_eq!(status, 204);
    let m = newest(&app, &alice, "den", id).await;
    assert_eq!(
        m["reactions"],
        json!([{ "emoji": "👍", "count": 1, "users": ["bob"] }])
    );
    let (status, _) = app.api(Method::DELETE, &path, &alice, None).await;
    assert_eq!(status, 204);
    let m = newest(&app, &bob, "den", id).await;
    assert_eq!(
        (m["deleted"].clone(), m["body"].clone()),
        (json!(true), json!(""))
    );
    let quoted = newest(&app, &bob, "den", id_of(&reply)).await;
    assert_eq!(quoted["reply_to"]["excerpt"], "", "{quoted}");
    let rename = json!({ "name": "lair" });
    app.api_ok(Method::PATCH, "/api/rooms/den", &alice, Some(&rename), 200)
        .await;
    assert_eq!(
        page(&app, &bob, "den", "").await.0,
        404,
        "the old name is gone"
    );
    let page = app.history(&bob, "lair", "").await;
    assert!(page.iter().all(|m| m["room"] == "lair"), "{page:?}");
    let (memory, _) = page_sources(&app).await;
    assert!(memory >= 20, "the pages above came from memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_and_dms_stay_private_from_memory() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    app.create_room(&alice, "vault", false).await;
    post(&app, &alice, "vault", json!({ "body": "secret" })).await;
    app.history(&alice, "vault", "").await;
    for _ in 0..2 {
        let (status, body) = page(&app, &bob, "vault", "").await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (404, json!("unknown_room"))
        );
    }
    app.invite(&alice, "vault", "bob").await;
    assert_eq!(
        app.history(&bob, "vault", "").await.len(),
        1,
        "a new member reads"
    );
    let (status, _) = app
        .api(Method::POST, "/api/rooms/vault/leave", &bob, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        page(&app, &bob, "vault", "").await.0,
        404,
        "a former member does not"
    );
    let (_, dm) = app.open_dm(&alice, &["bob"]).await;
    let name = dm["name"].as_str().expect("a DM has a name").to_string();
    post(&app, &alice, &name, json!({ "body": "just us" })).await;
    assert_eq!(app.history(&bob, &name, "").await.len(), 1);
    assert_eq!(page(&app, &carol, &name, "").await.0, 404);
    assert_eq!(page(&app, &carol, &name, "after=0").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_from_the_command_line_reaches_pages_in_memory() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let spammer = app.signup("spammer").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(id_of(
            &post(
                &app,
                &spammer,
                "general",
                json!({ "body": format!("buy {i}") }),
            )
            .await,
        ));
    }
    assert_eq!(
        newest(&app, &alice, "general", ids[0]).await["body"],
        "buy 0"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "--config",
            "/nonexistent/absent.toml",
            "user",
            "purge",
            "spammer",
        ])
        .env("CHAT_DATABASE__PATH", app.db_path())
        .env("CHAT_DATABASE__URL", &app.config.database.url)
        .output()
        .expect("hearth runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server notices another process's change within its one-second poll.
    let start = Instant::now();
    loop {
        let gone = app
            .history(&alice, "general", "")
            .await
            .iter()
            .all(|m| !ids.contains(&id_of(m)) || (m["deleted"] == true && m["body"] == ""));
        if gone {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the purge never showed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whatever a new connection's `ready` counted (and so no longer sends it live) is on the
/// newest page asked right after, while messages pour in: a page is answered from memory only
/// when the fan-out has delivered everything the writer committed, since the rooms' newest
/// messages in memory are kept by the fan-out, a batch or two behind the writer under load.
/// `ready.last_id` is a position, and positions also number room and membership changes (on
/// PostgreSQL, the joins of the sign-ups here), so each page is held against the newest
/// *message* at or below it, read once the sends are over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_newest_page_holds_all_that_ready_counted_while_messages_pour_in() {
    let app = metrics_app().await;
    let ann = app.signup("ann").await;
    let bob = app.signup("bob").await;
    app.history(&bob, "general", "").await;
    let mut ws = app.ws_connect(&ann, None).await;
    const SENDS: usize = 3000;
    let sender = tokio::spawn(async move {
        for i in 0..SENDS {
            let nonce = format!("p{i}");
            ws.send_json(&crate::common::send_frame(&nonce, Some(&nonce)))
                .await;
        }
        let last = format!("p{}", SENDS - 1);
        ws.wait_for("the last acknowledgement", |f| f["nonce"] == last.as_str())
            .await;
    });
    let mut probed = Vec::new();
    let mut probes = 0;
    while !sender.is_finished() && probes < 200 {
        probes += 1;
        let probe = app.ws_connect(&bob, None).await;
        let counted = probe.ready["last_id"].as_i64().expect("last_id");
        let (status, body) = page(&app, &bob, "general", "limit=5").await;
        assert_eq!(status, 200, "{body}");
        let newest = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(id_of)
            .unwrap_or(0);
        probed.push((counted, newest));
        drop(probe);
    }
    sender.await.expect("the sender");
    let mut ids = Vec::new();
    loop {
        let after = ids.last().copied().unwrap_or(0);
        let (status, body) = page(&app, &bob, "general", &format!("after={after}&limit=200")).await;
        assert_eq!(status, 200, "{body}");
        let got: Vec<i64> = body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(id_of)
            .collect();
        if got.is_empty() {
            break;
        }
        ids.extend(got);
    }
    assert_eq!(ids.len(), SENDS, "every message stored once");
    let short: Vec<(i64, i64)> = probed
        .into_iter()
        .filter(|&(counted, newest)| {
            let due = ids.iter().copied().take_while(|id| *id <= counted).last();
            due.is_some_and(|due| newest < due)
        })
        .collect();
    assert!(
        short.is_empty(),
        "{} of {probes} newest pages lacked messages ready had counted (last_id, newest): {short:?}",
        short.len()
    );
    // Quiet again, pages come from memory.
    let (memory, _) = page_sources(&app).await;
    page(&app, &bob, "general", "limit=5").await;
    assert_eq!(page_sources(&app).await.0, memory + 1);
}

/// After a restart the rooms' newest messages are in memory again as soon as they are read:
/// what a new connection's `ready` counts was committed before the start, so nothing is
/// waiting for the fan-out and pages do not go to the store on its account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_pages_come_from_memory_again() {
    let mut app = metrics_app().await;
    let ann = app.signup("ann").await;
    let mut ws = app.ws_connect(&ann, None).await;
    ws.say("general", "before the restart", "r0").await;
    drop(ws);
    app.restart().await;
    let ws = app.ws_connect(&ann, None).await;
    assert!(ws.ready["last_id"].as_i64() > Some(0), "{}", ws.ready);
    page(&app, &ann, "general", "").await;
    let (memory, _) = page_sources(&app).await;
    let (status, body) = page(&app, &ann, "general", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_sources(&app).await.0, memory + 1, "a page from memory");
}
