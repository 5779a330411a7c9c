//! Private rooms and DMs are readable by their members only: no route, frame, search or replay
//! gives a non-member (or a former member) anything from them.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const VAULT: &str = "vault";
const DM: &str = "dm:alice,bob";

/// No frame in `frames` carries anything from the private rooms.
fn assert_no_private(frames: &[Value]) {
    for f in frames {
        for room in [VAULT, DM] {
            assert!(
                f["room"] != room && f["room"]["name"] != room,
                "a frame from {room} leaked: {f}"
            );
        }
        let body = f["body"].as_str().unwrap_or_default();
        assert!(!body.contains("zanzibar"), "a private body leaked: {f}");
        assert_ne!(f["type"], "typing", "a typing notice leaked: {f}");
    }
}

struct World {
    app: TestApp,
    alice: Auth,
    bob: Auth,
    eve: Auth,
    /// alice's connection, a member of everything.
    a1: Ws,
    /// Message ids in the vault and the DM.
    vault_ids: Vec<i64>,
    dm_ids: Vec<i64>,
}

/// alice and bob share a private room and a DM, each with messages containing "zanzibar";
/// eve is in neither. eve's socket (`e1`) was open before anything private happened.
async fn world() -> (World, Ws) {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let eve = app.signup("eve").await;
    let mut e1 = app.ws_connect(&eve, None).await;
    let mut a1 = app.ws_connect(&alice, None).await;
    app.create_room(&alice, VAULT, false).await;
    a1.wait_type("room_joined").await;
    app.invite(&alice, VAULT, "bob").await;
    app.open_dm(&alice, &["bob"]).await;
    a1.wait_for("the DM", |f| {
        f["type"] == "room_joined" && f["room"]["name"] == DM
    })
    .await;
    a1.say("general", "public zebra", "g0").await;
    let mut vault_ids = Vec::new();
    let mut dm_ids = Vec::new();
    for i in 0..3 {
        let m = a1
            .say(
                VAULT,
                &format!("zanzibar vault secret {i}"),
                &format!("v{i}"),
            )
            .await;
        vault_ids.push(id_of(&m));
        let m = a1
            .say(DM, &format!("zanzibar dm secret {i}"), &format!("d{i}"))
            .await;
        dm_ids.push(id_of(&m));
    }
    a1.say("general", "public zebra again", "g1").await;
    // Nothing private reached eve's socket, which was open all along.
    let frames = e1.frames_until_nonce("g1").await;
    assert_no_private(&frames);
    (
        World {
            app,
            alice,
            bob,
            eve,
            a1,
            vault_ids,
            dm_ids,
        },
        e1,
    )
}

/// Every HTTP route that names `room` answers `who` exactly as for a room that does not exist
/// (404 `unknown_room`), and search finds nothing from it.
async fn assert_http_closed(app: &TestApp, who: &Auth, room: &str, ids: &[i64]) {
    let enc = encode_room(room);
    let first = ids[0];
    let last = *ids.last().unwrap();
    for query in [
        String::new(),
        "limit=200".to_string(),
        format!("before={}", last + 1),
        "after=0".to_string(),
        format!("around={first}"),
        format!("around={last}&limit=3"),
    ] {
        let path = if query.is_empty() {
            format!("/api/rooms/{enc}/messages")
        } else {
            format!("/api/rooms/{enc}/messages?{query}")
        };
        app.api_err(Method::GET, &path, who, None, 404, "unknown_room")
            .await;
    }
    let forbidden = [
        (Method::GET, format!("/api/rooms/{enc}"), None),
        (
            Method::POST,
            format!("/api/rooms/{enc}/read"),
            Some(json!({ "id": last })),
        ),
        (
            Method::PUT,
            format!("/api/rooms/{enc}/notify"),
            Some(json!({ "level": "all" })),
        ),
        (
            Method::POST,
            format!("/api/rooms/{enc}/members"),
            Some(json!({ "username": "eve" })),
        ),
        (Method::POST, format!("/api/rooms/{enc}/join"), None),
        (Method::POST, format!("/api/rooms/{enc}/leave"), None),
        (
            Method::PATCH,
            format!("/api/rooms/{enc}"),
            Some(json!({ "topic": "mine now" })),
        ),
    ];
    for (method, path, body) in forbidden {
        app.api_err(method, &path, who, body.as_ref(), 404, "unknown_room")
            .await;
    }
    // Search: nothing from the room, even with exact words, phrases or any sort.
    for q in [
        "zanzibar",
        "zanzibar secret",
        "\"zanzibar vault secret 0\"",
        "\"zanzibar dm secret 1\"",
        "secret",
    ] {
        for extra in ["", "sort=relevance", "limit=50"] {
            let v = app.search_ok(who, q, extra).await;
            assert_eq!(result_ids(&v), Vec::<i64>::new(), "search {q} {extra}: {v}");
        }
    }
    let v = app.search_ok(who, "zanzibar", "user=alice").await;
    assert_eq!(result_ids(&v), Vec::<i64>::new(), "{v}");
    let (status, v) = app.search(who, &format!("q=zanzibar&room={enc}")).await;
    assert_eq!(status, 404, "{v}");
    assert_error_shape(&v, "unknown_room");
    // The room is listed nowhere for them.
    assert!(app.my_room(who, room).await.is_none());
    let dir = app
        .api_ok(Method::GET, "/api/directory", who, None, 200)
        .await;
    assert!(
        dir["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != room),
        "{dir}"
    );
}

/// A `?since=0` replay for `who` carries nothing private.
async fn assert_replay_closed(app: &TestApp, who: &Auth) {
    let mut ws = app.ws_connect(who, Some(0)).await;
    let ready_rooms = ws.ready["rooms"].as_array().unwrap().clone();
    assert!(
        ready_rooms
            .iter()
            .all(|r| r["name"] != VAULT && r["name"] != DM),
        "{}",
        ws.ready
    );
    let frames = ws.frames_until(|f| f["type"] == "resumed").await;
    assert_no_private(&frames);
    let replayed: Vec<&Value> = frames.iter().filter(|f| f["type"] == "message").collect();
    assert!(
        replayed.iter().any(|f| f["body"] == "public zebra"),
        "the public messages are replayed: {frames:?}"
    );
}

#[tokio::test]
async fn a_non_member_cannot_read_a_private_room_or_dm_over_http() {
    let (w, _e1) = world().await;
    assert_http_closed(&w.app, &w.eve, VAULT, &w.vault_ids).await;
    assert_http_closed(&w.app, &w.eve, DM, &w.dm_ids).await;
    // Members can.
    let v = w.app.search_ok(&w.bob, "zanzibar", "").await;
    assert_eq!(result_ids(&v).len(), 6, "{v}");
    let h = w
        .app
        .history(&w.bob, VAULT, &format!("around={}", w.vault_ids[1]))
        .await;
    assert_eq!(h.len(), 3);
    let h = w.app.history(&w.alice, "dm%3Aalice%2Cbob", "after=0").await;
    assert_eq!(h.len(), 3);
}

#[tokio::test]
async fn a_non_member_gets_nothing_over_websockets() {
    let (mut w, mut e1) = world().await;
    for room in [VAULT, DM] {
        let err = e1
            .say_refused(room, "let me in", &format!("e-{room}"))
            .await;
        assert_eq!(err["code"], "unknown_room", "{err}");
        e1.send_json(&json!({ "type": "typing", "room": room }))
            .await;
        let err = e1.wait_type("error").await;
        assert_eq!(err["code"], "unknown_room", "typing: {err}");
        e1.send_json(&json!({ "type": "read", "room": room, "id": w.vault_ids[2] }))
            .await;
        let err = e1.wait_type("error").await;
        assert_eq!(err["code"], "unknown_room", "read: {err}");
    }
    // Members typing and talking in private reach no one else.
    let mut b1 = w.app.ws_connect(&w.bob, None).await;
    b1.send_json(&json!({ "type": "typing", "room": VAULT }))
        .await;
    let typing = w.a1.wait_type("typing").await;
    assert_eq!(typing["room"], VAULT);
    b1.say(VAULT, "zanzibar from bob", "bv").await;
    b1.say(DM, "zanzibar dm from bob", "bd").await;
    b1.say("general", "barrier", "barrier").await;
    let frames = e1.frames_until_nonce("barrier").await;
    assert_no_private(&frames);
    // Nor a replay from the very start.
    assert_replay_closed(&w.app, &w.eve).await;
    // A bot token is no way around it.
    let cookie = match &w.eve {
        Auth::Cookie(c) => c.clone(),
        Auth::Bearer(_) => unreachable!(),
    };
    let bot = Auth::Bearer(w.app.token(&cookie).await);
    assert_replay_closed(&w.app, &bot).await;
    assert_http_closed(&w.app, &bot, VAULT, &w.vault_ids).await;
}

#[tokio::test]
async fn after_leaving_a_private_room_nothing_more_is_readable() {
    let (mut w, _e1) = world().await;
    let mut b1 = w.app.ws_connect(&w.bob, None).await;
    for room in ["vault", "dm%3Aalice%2Cbob"] {
        let (status, v) = w
            .app
            .api(
                Method::POST,
                &format!("/api/rooms/{room}/leave"),
                &w.bob,
                None,
            )
            .await;
        assert_eq!(status, 204, "{v}");
        b1.wait_type("room_left").await;
    }
    let mut more = Vec::new();
    let m = w.a1.say(VAULT, "zanzibar after bob left", "late-v").await;
    more.push(id_of(&m));
    let m = w.a1.say(DM, "zanzibar dm after bob left", "late-d").await;
    more.push(id_of(&m));
    w.a1.say("general", "barrier", "barrier").await;
    let frames = b1.frames_until_nonce("barrier").await;
    for f in &frames {
        if f["type"] == "room_left" {
            continue;
        }
        assert!(f["room"] != VAULT && f["room"] != DM, "leaked: {f}");
    }
    let mut vault_ids = w.vault_ids.clone();
    vault_ids.push(more[0]);
    let mut dm_ids = w.dm_ids.clone();
    dm_ids.push(more[1]);
    assert_http_closed(&w.app, &w.bob, VAULT, &vault_ids).await;
    assert_http_closed(&w.app, &w.bob, DM, &dm_ids).await;
    assert_replay_closed(&w.app, &w.bob).await;
    for room in [VAULT, DM] {
        let err = b1.say_refused(room, "hello?", &format!("b-{room}")).await;
        assert_eq!(err["code"], "unknown_room");
        b1.send_json(&json!({ "type": "typing", "room": room }))
            .await;
        assert_eq!(b1.wait_type("error").await["code"], "unknown_room");
        b1.send_json(&json!({ "type": "read", "room": room, "id": more[0] }))
            .await;
        assert_eq!(b1.wait_type("error").await["code"], "unknown_room");
    }
    // alice still reads everything.
    assert_eq!(w.app.history(&w.alice, VAULT, "").await.len(), 4);
}

#[tokio::test]
async fn public_rooms_are_readable_but_sending_and_typing_need_membership() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    app.create_room(&alice, "open", true).await;
    let m = a1.say("open", "anyone may read this", "o1").await;
    let id = id_of(&m);

    assert_eq!(app.history(&bob, "open", "").await.len(), 1);
    assert_eq!(
        app.history(&bob, "open", &format!("around={id}"))
            .await
            .len(),
        1
    );
    let v = app
        .api_ok(Method::GET, "/api/rooms/open", &bob, None, 200)
        .await;
    assert_eq!(v["room"]["name"], "open");
    assert!(v["room"].get("last_read").is_none(), "{v}");
    let v = app.search_ok(&bob, "anyone", "room=open").await;
    assert_eq!(result_ids(&v), [id]);

    let err = b1.say_refused("open", "hi", "b1").await;
    assert_eq!(err["code"], "not_a_member");
    b1.send_json(&json!({ "type": "typing", "room": "open" }))
        .await;
    assert_eq!(b1.wait_type("error").await["code"], "not_a_member");
    b1.send_json(&json!({ "type": "read", "room": "open", "id": id }))
        .await;
    assert_eq!(b1.wait_type("error").await["code"], "not_a_member");
    app.api_err(
        Method::POST,
        "/api/rooms/open/read",
        &bob,
        Some(&json!({ "id": id })),
        403,
        "not_a_member",
    )
    .await;
    // bob's socket gets nothing from a room he has not joined.
    a1.say("open", "second", "o2").await;
    a1.say("general", "barrier", "barrier").await;
    let frames = b1.frames_until_nonce("barrier").await;
    assert!(
        frames
            .iter()
            .all(|f| f["type"] != "message" || f["room"] != "open"),
        "{frames:?}"
    );
    // Unknown rooms are unknown everywhere.
    let err = b1.say_refused("nowhere", "hi", "b2").await;
    assert_eq!(err["code"], "unknown_room");
    b1.send_json(&json!({ "type": "read", "room": "nowhere", "id": 1 }))
        .await;
    assert_eq!(b1.wait_type("error").await["code"], "unknown_room");
}
