//! Direct messages: one-to-one and group conversations, found again instead of duplicated,
//! left and re-joined, and addressed by their `dm:` names in every route.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_dm_is_created_once_and_found_again() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("Bob").await;
    let mut b1 = app.ws_connect(&bob, None).await;

    let (status, room) = app.open_dm(&alice, &["Bob"]).await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["name"], "dm:alice,bob");
    assert_eq!(room["kind"], "dm");
    assert_eq!(room["public"], false);
    assert_eq!(room["members"], 2);
    assert_eq!(room["users"], json!(["alice", "Bob"]));
    assert_eq!(room["created_by"], serde_json::Value::Null);
    assert_eq!(room["topic"], "");
    assert_eq!(room["last_id"], 0);
    assert_eq!(room["last_read"], 0);
    assert_eq!(room["unread"], 0);
    let id = room["id"].clone();

    let joined = b1.wait_type("room_joined").await;
    assert_eq!(joined["room"]["name"], "dm:alice,bob");
    assert_eq!(joined["room"]["kind"], "dm");

    for (who, users) in [
        (&bob, vec!["alice"]),
        (&bob, vec!["ALICE"]),
        (&alice, vec!["bob"]),
        (&alice, vec!["BOB", "bob", "alice"]),
    ] {
        let (status, room) = app.open_dm(who, &users).await;
        assert_eq!(status, 200, "{users:?}: {room}");
        assert_eq!(room["id"], id, "{users:?}");
        assert_eq!(room["members"], 2);
    }

    // Both can talk in it, live.
    let mut a1 = app.ws_connect(&alice, None).await;
    let m = a1.say("dm:alice,bob", "psst", "d1").await;
    assert_eq!(m["room"], "dm:alice,bob");
    let seen = b1.wait_for("the DM", |f| f["nonce"] == "d1").await;
    assert_eq!(seen["id"], m["id"]);
    b1.say("dm:alice,bob", "yes?", "d2").await;

    // DMs are listed after rooms, with their participants.
    let rooms = app.my_rooms(&bob).await;
    let last = rooms.last().unwrap();
    assert_eq!(last["name"], "dm:alice,bob");
    assert_eq!(last["users"], json!(["alice", "Bob"]));
    assert_eq!(rooms[0]["name"], "general");
    assert!(rooms[0].get("users").is_none());
    // DMs are not in the directory.
    let dir = app
        .api_ok(Method::GET, "/api/directory", &alice, None, 200)
        .await;
    assert!(
        dir["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] == "room"),
        "{dir}"
    );
}

#[tokio::test]
async fn group_dms_have_at_most_eight_people() {
    let app = TestApp::start().await;
    let me = app.signup("u0").await;
    for i in 1..=9 {
        app.signup(&format!("u{i}")).await;
    }
    let seven: Vec<String> = (1..=7).map(|i| format!("u{i}")).collect();
    let seven: Vec<&str> = seven.iter().map(String::as_str).collect();
    let (status, room) = app.open_dm(&me, &seven).await;
    assert_eq!(status, 201);
    assert_eq!(room["members"], 8);
    assert_eq!(room["name"], "dm:u0,u1,u2,u3,u4,u5,u6,u7");
    assert_eq!(room["users"].as_array().unwrap().len(), 8);

    // Any order, any case, any participant: the same conversation.
    let reversed: Vec<String> = ["U7", "u6", "u5", "u4", "u3", "u2", "u0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let u1 = Auth::Cookie(app.login("u1", PASSWORD).await.1);
    let reversed: Vec<&str> = reversed.iter().map(String::as_str).collect();
    let (status, again) = app.open_dm(&u1, &reversed).await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], room["id"]);

    // A smaller group is another conversation.
    let (status, small) = app.open_dm(&me, &["u1", "u2"]).await;
    assert_eq!(status, 201);
    assert_ne!(small["id"], room["id"]);
    assert_eq!(small["name"], "dm:u0,u1,u2");

    let eight: Vec<String> = (1..=8).map(|i| format!("u{i}")).collect();
    app.api_err(
        Method::POST,
        "/api/dms",
        &me,
        Some(&json!({ "users": eight })),
        400,
        "too_many_members",
    )
    .await;
    let many: Vec<String> = (0..100).map(|i| format!("x{i}")).collect();
    app.api_err(
        Method::POST,
        "/api/dms",
        &me,
        Some(&json!({ "users": many })),
        400,
        "too_many_members",
    )
    .await;
}

#[tokio::test]
async fn a_dm_needs_someone_else_who_exists() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    for users in [json!([]), json!(["alice"]), json!(["ALICE", "alice"])] {
        app.api_err(
            Method::POST,
            "/api/dms",
            &alice,
            Some(&json!({ "users": users })),
            400,
            "bad_request",
        )
        .await;
    }
    for users in [json!(["nobody"]), json!(["not a name"]), json!([""])] {
        app.api_err(
            Method::POST,
            "/api/dms",
            &alice,
            Some(&json!({ "users": users })),
            404,
            "unknown_user",
        )
        .await;
    }
    for body in [
        json!({}),
        json!({ "users": "bob" }),
        json!({ "users": [1] }),
    ] {
        app.api_err(
            Method::POST,
            "/api/dms",
            &alice,
            Some(&body),
            400,
            "bad_request",
        )
        .await;
    }
    // Nothing was created along the way.
    assert_eq!(app.my_rooms(&alice).await.len(), 1);
}

#[tokio::test]
async fn leaving_a_dm_and_being_added_back_when_it_is_opened_again() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    app.open_dm(&alice, &["bob"]).await;
    a1.wait_type("room_joined").await;
    b1.wait_type("room_joined").await;
    a1.say("dm:alice,bob", "one", "one").await;

    let (status, _) = app
        .api(
            Method::POST,
            "/api/rooms/dm%3Aalice%2Cbob/leave",
            &bob,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let left = b1.wait_type("room_left").await;
    assert_eq!(left["room"], "dm:alice,bob");
    let note = a1.wait_type("member_left").await;
    assert_eq!(note["user"], "bob");
    assert!(app.my_room(&bob, "dm:alice,bob").await.is_none());
    assert_eq!(
        app.my_room(&alice, "dm:alice,bob").await.unwrap()["members"],
        1
    );

    a1.say("dm:alice,bob", "two, while bob is away", "two")
        .await;
    a1.say("general", "barrier", "barrier").await;
    let frames = b1.frames_until_nonce("barrier").await;
    assert!(
        frames.iter().all(|f| f["room"] != "dm:alice,bob"),
        "{frames:?}"
    );
    app.api_err(
        Method::GET,
        "/api/rooms/dm:alice,bob/messages",
        &bob,
        None,
        404,
        "unknown_room",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/dm:alice,bob/join",
        &bob,
        None,
        404,
        "unknown_room",
    )
    .await;

    // alice opens it again: bob is back, with nothing unread.
    let (status, room) = app.open_dm(&alice, &["bob"]).await;
    assert_eq!(status, 200);
    assert_eq!(room["members"], 2);
    let joined = b1.wait_type("room_joined").await;
    assert_eq!(joined["room"]["name"], "dm:alice,bob");
    assert_eq!(joined["room"]["unread"], 0, "{joined}");
    let note = a1.wait_type("member_joined").await;
    assert_eq!(note["user"], "bob");
    let again = app.my_room(&bob, "dm:alice,bob").await.unwrap();
    assert_eq!(again["unread"], 0);
    assert_eq!(again["last_read"], again["last_id"]);
    let m = b1.say("dm:alice,bob", "back", "back").await;
    a1.wait_for("bob's message", |f| f["nonce"] == "back").await;
    assert_eq!(m["room"], "dm:alice,bob");

    // The one who left can also reopen it himself.
    app.api(Method::POST, "/api/rooms/dm:alice,bob/leave", &bob, None)
        .await;
    b1.wait_type("room_left").await;
    let (status, room) = app.open_dm(&bob, &["alice"]).await;
    assert_eq!(status, 200);
    assert_eq!(room["members"], 2);
    b1.wait_type("room_joined").await;
}

#[tokio::test]
async fn dm_names_work_in_every_route_encoded_or_not() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    app.open_dm(&alice, &["bob"]).await;
    a1.wait_type("room_joined").await;
    let m = a1.say("dm:alice,bob", "hello", "h").await;
    let id = id_of(&m);

    for name in ["dm%3Aalice%2Cbob", "dm:alice,bob", "dm%3aalice%2cbob"] {
        let h = app.history(&bob, name, "").await;
        assert_eq!(h.len(), 1, "{name}");
        assert_eq!(h[0]["room"], "dm:alice,bob");
        let v = app
            .api_ok(Method::GET, &format!("/api/rooms/{name}"), &bob, None, 200)
            .await;
        assert_eq!(v["room"]["name"], "dm:alice,bob");
        assert_eq!(v["members"].as_array().unwrap().len(), 2);
        let v = app
            .api_ok(
                Method::POST,
                &format!("/api/rooms/{name}/read"),
                &bob,
                Some(&json!({ "id": id })),
                200,
            )
            .await;
        assert_eq!(v["room"], "dm:alice,bob");
        assert_eq!(v["last_read"], id);
        let v = app
            .api_ok(
                Method::PUT,
                &format!("/api/rooms/{name}/notify"),
                &bob,
                Some(&json!({ "level": "mentions" })),
                200,
            )
            .await;
        assert_eq!(v["room"]["notify"], "mentions");
    }
    let v = app.search_ok(&bob, "hello", "room=dm%3Aalice%2Cbob").await;
    assert_eq!(result_ids(&v), [id]);

    // A DM's members are fixed, and it has no name or topic.
    app.api_err(
        Method::POST,
        "/api/rooms/dm%3Aalice%2Cbob/members",
        &alice,
        Some(&json!({ "username": "carol" })),
        400,
        "bad_request",
    )
    .await;
    app.api_err(
        Method::PATCH,
        "/api/rooms/dm%3Aalice%2Cbob",
        &alice,
        Some(&json!({ "topic": "ours" })),
        400,
        "bad_request",
    )
    .await;
    // An outsider is answered as if it did not exist.
    app.api_err(
        Method::GET,
        "/api/rooms/dm%3Aalice%2Cbob",
        &carol,
        None,
        404,
        "unknown_room",
    )
    .await;
    app.api_err(
        Method::GET,
        "/api/rooms/dm%3Aalice%2Ccarol",
        &carol,
        None,
        404,
        "unknown_room",
    )
    .await;
    // Malformed percent-encoding names no room: refused, never a crash.
    for path in [
        "/api/rooms/dm%3/messages",
        "/api/rooms/%ZZ",
        "/api/rooms/%C3%28/messages",
    ] {
        let (status, v) = app.api(Method::GET, path, &bob, None).await;
        assert!(status == 400 || status == 404, "{path}: {status} {v}");
        let code = if status == 400 {
            "bad_request"
        } else {
            "unknown_room"
        };
        assert_error_shape(&v, code);
    }
}
