//! Read markers and unread counts: per user across connections, moved by a `read` frame or
//! the HTTP route, never backwards, kept across restarts, and empty for new members.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn unread(room: &Value) -> (i64, i64, i64) {
    (
        room["last_read"].as_i64().expect("last_read"),
        room["unread"].as_i64().expect("unread"),
        room["mentions"].as_i64().expect("mentions"),
    )
}

fn ready_room<'a>(ws: &'a Ws, name: &str) -> &'a Value {
    ws.ready["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in ready: {}", ws.ready))
}

#[tokio::test]
async fn unread_counts_follow_read_markers_across_connections() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut a2 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let start = unread(&app.my_room(&alice, "general").await.unwrap());
    assert_eq!(start, (0, 0, 0));

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(id_of(
            &b1.say("general", &format!("from bob {i}"), &format!("b{i}"))
                .await,
        ));
    }
    // alice's own message is not unread for her.
    let own = id_of(&a1.say("general", "from alice", "a0").await);
    a2.wait_for("alice's own message", |f| f["nonce"] == "a0")
        .await;

    let room = app.my_room(&alice, "general").await.unwrap();
    assert_eq!(unread(&room), (0, 3, 0), "{room}");
    assert_eq!(room["last_id"], own);
    let a3 = app.ws_connect(&alice, None).await;
    assert_eq!(unread(ready_room(&a3, "general")), (0, 3, 0));
    // bob has read nothing of alice's yet.
    assert_eq!(
        unread(&app.my_room(&bob, "general").await.unwrap()),
        (0, 1, 0)
    );

    // A read frame on one connection reaches every connection of the user.
    a1.send_json(&json!({ "type": "read", "room": "general", "id": ids[1] }))
        .await;
    for ws in [&mut a1, &mut a2] {
        let r = ws.wait_type("read").await;
        assert_eq!(
            r,
            json!({"type":"read","room":"general","id":ids[1],"unread":1,"mentions":0})
        );
    }
    let room = app.my_room(&alice, "general").await.unwrap();
    assert_eq!(unread(&room), (ids[1], 1, 0));

    // Backwards: the marker stays where it is.
    a2.send_json(&json!({ "type": "read", "room": "general", "id": ids[0] }))
        .await;
    for ws in [&mut a1, &mut a2] {
        let r = ws.wait_type("read").await;
        assert_eq!(r["id"], ids[1], "{r}");
        assert_eq!(r["unread"], 1);
    }
    let v = app
        .api_ok(
            Method::POST,
            "/api/rooms/general/read",
            &alice,
            Some(&json!({ "id": 0 })),
            200,
        )
        .await;
    assert_eq!(v["last_read"], ids[1]);
    for ws in [&mut a1, &mut a2] {
        assert_eq!(ws.wait_type("read").await["id"], ids[1]);
    }

    // The HTTP route moves it forward too, and tells the sockets.
    let v = app
        .api_ok(
            Method::POST,
            "/api/rooms/general/read",
            &alice,
            Some(&json!({ "id": own })),
            200,
        )
        .await;
    assert_eq!(
        v,
        json!({"room":"general","last_read":own,"unread":0,"mentions":0})
    );
    for ws in [&mut a1, &mut a2] {
        let r = ws.wait_type("read").await;
        assert_eq!(r["id"], own);
        assert_eq!(r["unread"], 0);
    }
    // Other users' markers are their own: bob got no read frame.
    a1.say("general", "barrier", "barrier").await;
    let frames = b1.frames_until_nonce("barrier").await;
    assert!(frames.iter().all(|f| f["type"] != "read"), "{frames:?}");

    // Own messages after the marker still do not count.
    a1.say("general", "more from alice", "a1").await;
    assert_eq!(unread(&app.my_room(&alice, "general").await.unwrap()).1, 0);
    b1.say("general", "and bob", "b9").await;
    assert_eq!(unread(&app.my_room(&alice, "general").await.unwrap()).1, 1);
}

#[tokio::test]
async fn read_frames_and_routes_reject_bad_input() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    for bad in [
        json!({ "type": "read", "room": "general" }),
        json!({ "type": "read", "room": "general", "id": "5" }),
        json!({ "type": "read", "id": 5 }),
    ] {
        a1.send_json(&bad).await;
        let err = a1.wait_type("error").await;
        assert_eq!(err["code"], "bad_frame", "{bad}: {err}");
    }
    a1.send_json(&json!({ "type": "read", "room": "nowhere", "id": 1 }))
        .await;
    assert_eq!(a1.wait_type("error").await["code"], "unknown_room");

    for body in [json!({}), json!({ "id": -1 }), json!({ "id": "x" })] {
        app.api_err(
            Method::POST,
            "/api/rooms/general/read",
            &alice,
            Some(&body),
            400,
            "bad_request",
        )
        .await;
    }
    app.api_err(
        Method::POST,
        "/api/rooms/nowhere/read",
        &alice,
        Some(&json!({ "id": 1 })),
        404,
        "unknown_room",
    )
    .await;
    // The connection is still fine.
    a1.say("general", "still here", "ok").await;
}

#[tokio::test]
async fn read_markers_survive_a_restart() {
    let mut app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "lobby", true).await;
    app.join_room(&bob, "lobby").await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id_of(
            &b1.say("lobby", &format!("hi @alice {i}"), &format!("l{i}"))
                .await,
        ));
    }
    let g = id_of(&b1.say("general", "in general", "g").await);
    app.api_ok(
        Method::POST,
        "/api/rooms/lobby/read",
        &alice,
        Some(&json!({ "id": ids[1] })),
        200,
    )
    .await;
    let mut a1 = app.ws_connect(&alice, None).await;
    a1.send_json(&json!({ "type": "read", "room": "general", "id": g }))
        .await;
    a1.wait_type("read").await;
    app.api_ok(
        Method::PUT,
        "/api/rooms/lobby/notify",
        &alice,
        Some(&json!({ "level": "mentions" })),
        200,
    )
    .await;
    drop(a1);
    drop(b1);

    app.restart().await;
    let lobby = app.my_room(&alice, "lobby").await.unwrap();
    assert_eq!(unread(&lobby), (ids[1], 2, 2), "{lobby}");
    assert_eq!(lobby["notify"], "mentions");
    let general = app.my_room(&alice, "general").await.unwrap();
    assert_eq!(unread(&general), (g, 0, 0));
    let a = app.ws_connect(&alice, None).await;
    assert_eq!(unread(ready_room(&a, "lobby")), (ids[1], 2, 2));
    assert_eq!(ready_room(&a, "lobby")["notify"], "mentions");
    // bob read his own messages only.
    assert_eq!(unread(&app.my_room(&bob, "lobby").await.unwrap()).1, 0);
}

#[tokio::test]
async fn new_members_start_with_nothing_unread() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    app.create_room(&alice, "lobby", true).await;
    app.create_room(&alice, "ops", false).await;
    let mut last = 0;
    for i in 0..5 {
        last = id_of(
            &a1.say("lobby", &format!("lobby {i}"), &format!("l{i}"))
                .await,
        );
        a1.say("ops", &format!("ops {i}"), &format!("o{i}")).await;
        a1.say("general", &format!("general {i}"), &format!("g{i}"))
            .await;
    }

    // Registered after the messages: general is read.
    let bob = app.signup("bob").await;
    let g = app.my_room(&bob, "general").await.unwrap();
    assert_eq!(g["unread"], 0, "{g}");
    assert_eq!(g["last_read"], g["last_id"]);
    let mut b1 = app.ws_connect(&bob, None).await;
    assert_eq!(ready_room(&b1, "general")["unread"], 0);

    // Joined: the room's newest message is read.
    let room = app.join_room(&bob, "lobby").await;
    assert_eq!(unread(&room), (last, 0, 0));
    let joined = b1.wait_type("room_joined").await;
    assert_eq!(joined["room"]["unread"], 0);
    assert_eq!(joined["room"]["last_read"], last);

    // Invited: the same.
    app.invite(&alice, "ops", "bob").await;
    let joined = b1.wait_type("room_joined").await;
    assert_eq!(joined["room"]["name"], "ops");
    assert_eq!(joined["room"]["unread"], 0, "{joined}");
    let ops = app.my_room(&bob, "ops").await.unwrap();
    assert_eq!(ops["unread"], 0);
    assert_eq!(ops["last_read"], ops["last_id"]);

    // Counting starts from there.
    a1.say("ops", "news", "news").await;
    b1.wait_for("the news", |f| f["nonce"] == "news").await;
    assert_eq!(app.my_room(&bob, "ops").await.unwrap()["unread"], 1);

    // A new DM starts at 0 with nothing to read.
    let (_, dm) = app.open_dm(&bob, &["alice"]).await;
    assert_eq!(unread(&dm), (0, 0, 0));
    let a_dm = app.my_room(&alice, "dm:alice,bob").await.unwrap();
    assert_eq!(unread(&a_dm), (0, 0, 0));
    b1.say("dm:alice,bob", "hi alice", "dm").await;
    assert_eq!(
        unread(&app.my_room(&alice, "dm:alice,bob").await.unwrap()),
        (0, 1, 0)
    );
}

#[tokio::test]
async fn a_read_marker_never_passes_the_newest_message() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let first = id_of(&b1.say("general", "one", "1").await);
    let v = app
        .api_ok(
            Method::POST,
            "/api/rooms/general/read",
            &alice,
            Some(&json!({ "id": 1_000_000_000_000i64 })),
            200,
        )
        .await;
    assert_eq!(v["last_read"], first, "{v}");
    assert_eq!(v["unread"], 0);
    // Later messages are still unread.
    b1.say("general", "two", "2").await;
    let room = app.my_room(&alice, "general").await.unwrap();
    assert_eq!(unread(&room), (first, 1, 0), "{room}");
}
