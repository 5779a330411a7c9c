//! Rooms: creating, the directory, joining, leaving, inviting, renaming and topics, with the
//! WebSocket frames each change sends and the live effect on connections already open.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn names(rooms: &[Value]) -> Vec<String> {
    rooms
        .iter()
        .map(|r| r["name"].as_str().expect("a room name").to_string())
        .collect()
}

/// No frame in `frames` concerns `room`.
fn assert_nothing_from(frames: &[Value], room: &str) {
    for f in frames {
        let about_room = f["room"] == room || f["room"]["name"] == room;
        assert!(!about_room, "unexpected frame about {room}: {f}");
    }
}

#[tokio::test]
async fn creating_a_room_makes_the_creator_a_member_and_announces_public_rooms() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;

    let v = app
        .api_ok(
            Method::POST,
            "/api/rooms",
            &alice,
            Some(&json!({ "name": "  Dev-Ops_2 ", "topic": " builds and deploys " })),
            201,
        )
        .await;
    let room = &v["room"];
    assert_eq!(room["name"], "dev-ops_2", "{room}");
    assert_eq!(room["topic"], "builds and deploys");
    assert_eq!(room["kind"], "room");
    assert_eq!(room["public"], true);
    assert_eq!(room["members"], 1);
    assert_eq!(room["created_by"], "alice");
    assert_eq!(room["last_id"], 0);
    assert_eq!(room["last_read"], 0);
    assert_eq!(room["unread"], 0);
    assert_eq!(room["mentions"], 0);
    assert_eq!(room["notify"], "all");
    assert!(room["id"].is_i64());
    assert!(room.get("users").is_none(), "only DMs list users: {room}");

    let joined = a1.wait_type("room_joined").await;
    assert_eq!(joined["room"]["name"], "dev-ops_2");
    assert_eq!(joined["room"]["unread"], 0, "{joined}");
    assert_eq!(joined["room"]["notify"], "all", "{joined}");

    let created = b1.wait_type("room_created").await;
    assert_eq!(created["room"]["name"], "dev-ops_2");
    assert_eq!(created["room"]["public"], true);
    assert!(
        created["room"].get("last_read").is_none(),
        "room_created carries no one's read state: {created}"
    );

    // Both creator lists agree.
    assert!(app.my_room(&alice, "dev-ops_2").await.is_some());
    assert!(app.my_room(&bob, "dev-ops_2").await.is_none());

    // The creator's open socket can post to it at once.
    let m = a1.say("dev-ops_2", "first!", "c1").await;
    assert_eq!(m["room"], "dev-ops_2");

    // A private room is announced to nobody else.
    let private = app.create_room(&alice, "hidden", false).await;
    assert_eq!(private["public"], false);
    a1.say("general", "barrier", "barrier-1").await;
    let frames = b1.frames_until_nonce("barrier-1").await;
    assert_nothing_from(&frames, "hidden");
    let rooms = app.my_rooms(&alice).await;
    assert!(names(&rooms).contains(&"hidden".to_string()));
}

#[tokio::test]
async fn invalid_room_names_and_long_topics_are_refused() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let long = "a".repeat(49);
    for bad in [
        "", " ", "-x", "_x", "a b", "dm:alice", "émile", "a/b", "a.b", "#x", &long,
    ] {
        app.api_err(
            Method::POST,
            "/api/rooms",
            &alice,
            Some(&json!({ "name": bad })),
            400,
            "invalid_room_name",
        )
        .await;
    }
    let longest = "b".repeat(48);
    let room = app.create_room(&alice, &longest, true).await;
    assert_eq!(room["name"], longest.as_str());
    app.create_room(&alice, "9lives", true).await;

    app.api_err(
        Method::POST,
        "/api/rooms",
        &alice,
        Some(&json!({ "name": "topical", "topic": "é".repeat(251) })),
        400,
        "topic_too_long",
    )
    .await;
    let v = app
        .api_ok(
            Method::POST,
            "/api/rooms",
            &alice,
            Some(&json!({ "name": "topical", "topic": "é".repeat(250) })),
            201,
        )
        .await;
    assert_eq!(v["room"]["topic"].as_str().unwrap().chars().count(), 250);
    // One line of visible text: no line break, escape sequence, reordering override or
    // character that shows nothing; right-to-left text and emoji sequences are fine.
    for bad in [
        "line\nbreak",
        "bell\u{7}",
        "\u{1b}[31mred",
        "pay \u{202e}exe.txt",
        "isolate \u{2066}x\u{2069}",
        "zero\u{200b}width",
        "\u{feff}bom",
        "\u{3164}",
    ] {
        app.api_err(
            Method::POST,
            "/api/rooms",
            &alice,
            Some(&json!({ "name": "spoofed", "topic": bad })),
            400,
            "invalid_topic",
        )
        .await;
        app.api_err(
            Method::PATCH,
            "/api/rooms/topical",
            &alice,
            Some(&json!({ "topic": bad })),
            400,
            "invalid_topic",
        )
        .await;
    }
    let fine = "שלום 👩\u{200d}💻 café";
    let v = app
        .api_ok(
            Method::PATCH,
            "/api/rooms/topical",
            &alice,
            Some(&json!({ "topic": fine })),
            200,
        )
        .await;
    assert_eq!(v["room"]["topic"], fine);

    // Missing or wrongly typed fields.
    app.api_err(
        Method::POST,
        "/api/rooms",
        &alice,
        Some(&json!({ "topic": "x" })),
        400,
        "bad_request",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms",
        &alice,
        Some(&json!({ "name": "x", "public": "yes" })),
        400,
        "bad_request",
    )
    .await;
}

#[tokio::test]
async fn duplicate_room_names_conflict_ignoring_case() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "Team", true).await;
    for dup in ["team", "TEAM", " tEaM ", "general", "General"] {
        app.api_err(
            Method::POST,
            "/api/rooms",
            &bob,
            Some(&json!({ "name": dup })),
            409,
            "room_exists",
        )
        .await;
    }
    // A private room shares the same namespace.
    app.api_err(
        Method::POST,
        "/api/rooms",
        &bob,
        Some(&json!({ "name": "team", "public": false })),
        409,
        "room_exists",
    )
    .await;
}

#[tokio::test]
async fn rooms_are_named_in_any_case_in_urls_frames_and_searches() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "Team", true).await;
    // Joined, posted to, read and searched under other spellings of its name.
    let joined = app
        .api_ok(Method::POST, "/api/rooms/TEAM/join", &bob, None, 200)
        .await;
    assert_eq!(joined["room"]["name"], "team", "{joined}");
    let posted = app
        .api_ok(
            Method::POST,
            "/api/rooms/Team/messages",
            &bob,
            Some(&json!({ "body": "hello from http" })),
            201,
        )
        .await;
    assert_eq!(posted["message"]["room"], "team", "{posted}");
    let mut ws = app.ws_connect(&alice, None).await;
    let sent = ws.say("tEaM", "hello from a socket", "n-case").await;
    assert_eq!(sent["room"], "team", "{sent}");
    ws.send_json(&json!({ "type": "read", "room": "TEAM", "id": sent["id"] }))
        .await;
    let read = ws.wait_type("read").await;
    assert_eq!(read["room"], "team", "{read}");
    let bodies: Vec<Value> = app
        .history(&bob, "TeAm", "")
        .await
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [json!("hello from http"), json!("hello from a socket")]
    );
    let found = app.search_ok(&alice, "hello", "&room=TEAM").await;
    assert_eq!(
        found["results"].as_array().map(Vec::len),
        Some(2),
        "{found}"
    );
    // A DM's name too: its people are named in any case.
    let (_, dm) = app.open_dm(&alice, &["bob"]).await;
    let name = dm["name"].as_str().expect("a DM name").to_string();
    let shouted = urlencode(&name.to_ascii_uppercase());
    app.api_ok(
        Method::POST,
        &format!("/api/rooms/{shouted}/messages"),
        &bob,
        Some(&json!({ "body": "psst" })),
        201,
    )
    .await;
    // Leaving under another spelling, one room or several.
    let (status, _) = app
        .api(Method::POST, "/api/rooms/TEAM/leave", &bob, None)
        .await;
    assert_eq!(status, 204);
    assert!(app.my_room(&bob, "team").await.is_none());
    app.join_room(&bob, "team").await;
    let left = app
        .api_ok(
            Method::POST,
            "/api/rooms/leave",
            &bob,
            Some(&json!({ "rooms": ["Team"] })),
            200,
        )
        .await;
    assert_eq!(left["left"], json!(["team"]), "{left}");
    // A name no room has, in any case, is still unknown.
    app.api_err(
        Method::GET,
        "/api/rooms/Nowhere/messages",
        &bob,
        None,
        404,
        "unknown_room",
    )
    .await;
}

#[tokio::test]
async fn cookie_requests_without_origin_are_refused() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let res = app
        .send(
            app.request(Method::POST, "/api/rooms", Some(&alice))
                .json(&json!({ "name": "nope" })),
        )
        .await;
    assert_error(res, 403, "bad_origin").await;
    let res = app
        .send(
            app.request(Method::POST, "/api/rooms", Some(&alice))
                .header("origin", "http://evil.example")
                .json(&json!({ "name": "nope" })),
        )
        .await;
    assert_error(res, 403, "bad_origin").await;
    // Unauthenticated.
    let res = app
        .post_json("/api/rooms", &json!({ "name": "nope" }))
        .await;
    assert_error(res, 401, "unauthorized").await;
    let res = app.get("/api/directory").await;
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn the_directory_lists_public_rooms_with_joined() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "zeta", true).await;
    app.create_room(&alice, "alpha", true).await;
    app.create_room(&alice, "secret", false).await;
    app.open_dm(&alice, &["bob"]).await;

    let v = app
        .api_ok(Method::GET, "/api/directory", &bob, None, 200)
        .await;
    let rooms = v["rooms"].as_array().unwrap();
    assert_eq!(names(rooms), ["alpha", "general", "zeta"], "{v}");
    for r in rooms {
        assert_eq!(r["public"], true);
        assert_eq!(r["kind"], "room");
        let expect = r["name"] == "general";
        assert_eq!(r["joined"], expect, "{r}");
    }
    let v = app
        .api_ok(Method::GET, "/api/directory", &alice, None, 200)
        .await;
    for r in v["rooms"].as_array().unwrap() {
        assert_eq!(r["joined"], true, "{r}");
    }
}

#[tokio::test]
async fn joining_a_public_room_delivers_its_messages_to_open_sockets() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let mut b2 = app.ws_connect(&bob, None).await;
    app.create_room(&alice, "lobby", true).await;
    a1.wait_type("room_joined").await;
    a1.say("lobby", "before bob", "a0").await;

    // Not a member yet: sending is refused, reading (preview) is allowed.
    let err = b1.say_refused("lobby", "hi", "b-early").await;
    assert_eq!(err["code"], "not_a_member", "{err}");
    let preview = app.history(&bob, "lobby", "").await;
    assert_eq!(preview.len(), 1);

    let room = app.join_room(&bob, "lobby").await;
    assert_eq!(room["name"], "lobby");
    assert_eq!(room["members"], 2);
    assert_eq!(
        room["unread"], 0,
        "joining shows no history as unread: {room}"
    );
    assert_eq!(room["last_read"], room["last_id"]);
    for b in [&mut b1, &mut b2] {
        let joined = b.wait_type("room_joined").await;
        assert_eq!(joined["room"]["name"], "lobby");
        assert_eq!(joined["room"]["unread"], 0);
    }
    let note = a1.wait_type("member_joined").await;
    assert_eq!(note["room"], "lobby");
    assert_eq!(note["user"], "bob");

    // Joining again is fine and changes nothing.
    let again = app.join_room(&bob, "lobby").await;
    assert_eq!(again["members"], 2);

    let m = a1.say("lobby", "welcome bob", "a1").await;
    for b in [&mut b1, &mut b2] {
        let got = b
            .wait_for("alice's lobby message", |f| {
                f["type"] == "message" && f["nonce"] == "a1"
            })
            .await;
        assert_eq!(got["id"], m["id"]);
        assert_eq!(got["room"], "lobby");
    }
    let mine = b1.say("lobby", "thanks", "b1").await;
    let seen = a1
        .wait_for("bob's lobby message", |f| {
            f["type"] == "message" && f["nonce"] == "b1"
        })
        .await;
    assert_eq!(seen["id"], mine["id"]);

    // A connection opened after joining lists the room in `ready`.
    let b3 = app.ws_connect(&bob, None).await;
    let rooms = b3.ready["rooms"].as_array().unwrap();
    assert!(names(rooms).contains(&"lobby".to_string()), "{}", b3.ready);

    app.api_err(
        Method::POST,
        "/api/rooms/nowhere/join",
        &bob,
        None,
        404,
        "unknown_room",
    )
    .await;
}

/// A connection opened while its user joins and leaves a room over and over hears of each
/// change once: never `room_joined` for a room its `ready` already lists, nor `room_left`
/// for one it does not (a change the hub applied while the connection read its rooms is in
/// `ready`, and its frame, queued meanwhile, is not sent again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_opened_during_joins_and_leaves_hears_each_change_once() {
    let app = TestApp::start().await;
    let ann = app.signup("ann").await;
    let ben = app.signup("ben").await;
    app.create_room(&ann, "churn", true).await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let churn = async {
        let mut changes = 0;
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            app.join_room(&ben, "churn").await;
            let (status, body) = app
                .api(Method::POST, "/api/rooms/churn/leave", &ben, None)
                .await;
            assert_eq!(status, 204, "{body}");
            changes += 2;
        }
        changes
    };
    let watch = async {
        let (mut connections, mut frames) = (0, 0);
        while connections < 150 {
            let mut ws = app.ws_connect(&ben, None).await;
            connections += 1;
            let mut member = names(ws.ready["rooms"].as_array().unwrap()).contains(&"churn".into());
            let until = tokio::time::Instant::now() + Duration::from_millis(15);
            while let Ok(f) = tokio::time::timeout_at(until, ws.next_frame()).await {
                match f["type"].as_str().unwrap_or_default() {
                    "room_joined" if f["room"]["name"] == "churn" => {
                        assert!(!member, "connection {connections}: joined again: {f}");
                        member = true;
                    }
                    "room_left" if f["room"] == "churn" => {
                        assert!(member, "connection {connections}: left again: {f}");
                        member = false;
                    }
                    _ => continue,
                }
                frames += 1;
            }
            ws.close().await;
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        frames
    };
    let (changes, frames) = tokio::join!(churn, watch);
    // Enough overlap for the race to matter (before the fix it showed within a few
    // connections).
    assert!(
        changes >= 20 && frames >= 20,
        "{changes} changes, {frames} frames seen"
    );
}

#[tokio::test]
async fn leaving_a_room_stops_its_frames() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    app.create_room(&alice, "lobby", true).await;
    app.join_room(&bob, "lobby").await;
    b1.wait_type("room_joined").await;

    let (status, body) = app
        .api(Method::POST, "/api/rooms/lobby/leave", &bob, None)
        .await;
    assert_eq!(status, 204, "{body}");
    let left = b1.wait_type("room_left").await;
    assert_eq!(left["room"], "lobby");
    let note = a1.wait_type("member_left").await;
    assert_eq!(note["room"], "lobby");
    assert_eq!(note["user"], "bob");

    a1.say("lobby", "bob is gone", "after-leave").await;
    a1.say("general", "barrier", "barrier").await;
    let frames = b1.frames_until_nonce("barrier").await;
    assert_nothing_from(&frames, "lobby");

    let err = b1.say_refused("lobby", "still here?", "b-late").await;
    assert_eq!(err["code"], "not_a_member");
    assert!(app.my_room(&bob, "lobby").await.is_none());
    let room = app.my_room(&alice, "lobby").await.unwrap();
    assert_eq!(room["members"], 1);

    app.api_err(
        Method::POST,
        "/api/rooms/lobby/leave",
        &bob,
        None,
        403,
        "not_a_member",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/general/leave",
        &bob,
        None,
        400,
        "cannot_leave",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/nowhere/leave",
        &bob,
        None,
        404,
        "unknown_room",
    )
    .await;
    // general is still there for bob.
    assert!(app.my_room(&bob, "general").await.is_some());

    // Joining again works.
    app.join_room(&bob, "lobby").await;
    b1.wait_type("room_joined").await;
    a1.say("lobby", "welcome back", "back").await;
    b1.wait_for("the lobby message", |f| f["nonce"] == "back")
        .await;
}

#[tokio::test]
async fn inviting_into_a_private_room_lets_the_invitee_talk_live() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    app.create_room(&alice, "ops", false).await;
    a1.say("ops", "old news", "old").await;

    // bob cannot join by himself: to him the room does not exist.
    app.api_err(
        Method::POST,
        "/api/rooms/ops/join",
        &bob,
        None,
        404,
        "unknown_room",
    )
    .await;

    let room = app.invite(&alice, "ops", "BOB").await;
    assert_eq!(room["name"], "ops");
    assert_eq!(room["members"], 2);
    let joined = b1.wait_type("room_joined").await;
    assert_eq!(joined["room"]["name"], "ops");
    assert_eq!(joined["room"]["public"], false);
    assert_eq!(joined["room"]["unread"], 0, "{joined}");
    let note = a1.wait_type("member_joined").await;
    assert_eq!(
        note,
        json!({"type":"member_joined","room":"ops","user":"bob"})
    );

    let m = b1.say("ops", "hello from bob", "b1").await;
    let seen = a1.wait_for("bob's message", |f| f["nonce"] == "b1").await;
    assert_eq!(seen["id"], m["id"]);
    let m = a1.say("ops", "hello bob", "a1").await;
    let seen = b1.wait_for("alice's message", |f| f["nonce"] == "a1").await;
    assert_eq!(seen["id"], m["id"]);
    // And history now includes what was there before.
    let h = app.history(&bob, "ops", "").await;
    assert_eq!(h.len(), 3);

    // Inviting again is harmless.
    let again = app.invite(&bob, "ops", "alice").await;
    assert_eq!(again["members"], 2);

    app.api_err(
        Method::POST,
        "/api/rooms/ops/members",
        &alice,
        Some(&json!({ "username": "nobody" })),
        404,
        "unknown_user",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/ops/members",
        &alice,
        Some(&json!({ "username": "not a name!" })),
        404,
        "unknown_user",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/ops/members",
        &carol,
        Some(&json!({ "username": "carol" })),
        404,
        "unknown_room",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/ops/members",
        &alice,
        Some(&json!({})),
        400,
        "bad_request",
    )
    .await;

    // Details list the members with their presence.
    let v = app
        .api_ok(Method::GET, "/api/rooms/ops", &bob, None, 200)
        .await;
    assert_eq!(v["room"]["name"], "ops");
    let members = v["members"].as_array().unwrap();
    assert_eq!(
        members,
        &vec![
            json!({"username":"alice","online":true}),
            json!({"username":"bob","online":true}),
        ]
    );
}

#[tokio::test]
async fn renaming_is_for_the_creator_and_open_sockets_follow_the_new_name() {
    let app = TestApp::start().await;
    // The owner registers through the setup link and administers the server.
    let root = app.signup_admin("root").await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let room = app.create_room(&alice, "old-name", true).await;
    let room_id = room["id"].clone();
    app.join_room(&bob, "old-name").await;
    b1.wait_type("room_joined").await;
    b1.say("old-name", "before", "before").await;

    app.api_err(
        Method::PATCH,
        "/api/rooms/old-name",
        &bob,
        Some(&json!({ "name": "bobs" })),
        403,
        "forbidden",
    )
    .await;

    let v = app
        .api_ok(
            Method::PATCH,
            "/api/rooms/old-name",
            &alice,
            Some(&json!({ "name": "New-Name" })),
            200,
        )
        .await;
    assert_eq!(v["room"]["name"], "new-name");
    assert_eq!(v["room"]["id"], room_id);
    for ws in [&mut a1, &mut b1] {
        let up = ws.wait_type("room_updated").await;
        assert_eq!(up["old_name"], "old-name", "{up}");
        assert_eq!(up["room"]["name"], "new-name");
        assert_eq!(up["room"]["id"], room_id);
    }

    // The open sockets post with the new name; the old one is gone.
    let m = b1.say("new-name", "after", "after").await;
    assert_eq!(m["room"], "new-name");
    let seen = a1
        .wait_for("bob's message", |f| f["nonce"] == "after")
        .await;
    assert_eq!(seen["room"], "new-name");
    let err = b1.say_refused("old-name", "lost", "lost").await;
    assert_eq!(err["code"], "unknown_room");
    app.api_err(
        Method::GET,
        "/api/rooms/old-name",
        &bob,
        None,
        404,
        "unknown_room",
    )
    .await;
    app.api_err(
        Method::GET,
        "/api/rooms/old-name/messages",
        &bob,
        None,
        404,
        "unknown_room",
    )
    .await;
    let h = app.history(&bob, "new-name", "").await;
    assert_eq!(h.len(), 2);
    assert!(h.iter().all(|m| m["room"] == "new-name"), "{h:?}");
    // A new connection sees the new name.
    let b2 = app.ws_connect(&bob, None).await;
    assert!(names(b2.ready["rooms"].as_array().unwrap()).contains(&"new-name".to_string()));

    // Taken names, invalid names, general and non-members.
    app.api_err(
        Method::PATCH,
        "/api/rooms/new-name",
        &alice,
        Some(&json!({ "name": "General" })),
        409,
        "room_exists",
    )
    .await;
    app.api_err(
        Method::PATCH,
        "/api/rooms/new-name",
        &alice,
        Some(&json!({ "name": "no way" })),
        400,
        "invalid_room_name",
    )
    .await;
    app.api_err(
        Method::PATCH,
        "/api/rooms/new-name",
        &alice,
        Some(&json!({})),
        400,
        "bad_request",
    )
    .await;
    app.api_err(
        Method::PATCH,
        "/api/rooms/general",
        &root,
        Some(&json!({ "name": "lobby" })),
        400,
        "bad_request",
    )
    .await;
    app.api_err(
        Method::PATCH,
        "/api/rooms/new-name",
        &root,
        Some(&json!({ "name": "roots" })),
        403,
        "not_a_member",
    )
    .await;
    // An administrator who is a member may rename.
    app.join_room(&root, "new-name").await;
    let v = app
        .api_ok(
            Method::PATCH,
            "/api/rooms/new-name",
            &root,
            Some(&json!({ "name": "roots" })),
            200,
        )
        .await;
    assert_eq!(v["room"]["name"], "roots");
    let up = b1.wait_type("room_updated").await;
    assert_eq!(up["old_name"], "new-name");
    b1.say("roots", "still works", "again").await;
}

#[tokio::test]
async fn topic_changes_reach_every_member() {
    let app = TestApp::start().await;
    let alice = app.signup_admin("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let mut c1 = app.ws_connect(&carol, None).await;
    app.create_room(&alice, "ops", false).await;
    app.invite(&alice, "ops", "bob").await;
    b1.wait_type("room_joined").await;

    // Any member may change the topic.
    let v = app
        .api_ok(
            Method::PATCH,
            "/api/rooms/ops",
            &bob,
            Some(&json!({ "topic": "  on call  " })),
            200,
        )
        .await;
    assert_eq!(v["room"]["topic"], "on call");
    for ws in [&mut a1, &mut b1] {
        let up = ws.wait_type("room_updated").await;
        assert_eq!(up["room"]["topic"], "on call");
        assert_eq!(up["room"]["name"], "ops");
        assert!(up.get("old_name").is_none(), "{up}");
    }
    a1.say("general", "barrier", "barrier").await;
    let frames = c1.frames_until_nonce("barrier").await;
    assert_nothing_from(&frames, "ops");

    app.api_err(
        Method::PATCH,
        "/api/rooms/ops",
        &bob,
        Some(&json!({ "topic": "x".repeat(251) })),
        400,
        "topic_too_long",
    )
    .await;
    app.api_err(
        Method::PATCH,
        "/api/rooms/ops",
        &carol,
        Some(&json!({ "topic": "mine" })),
        404,
        "unknown_room",
    )
    .await;
    // Only an administrator changes general (alice used the setup link, so she is one).
    app.api_err(
        Method::PATCH,
        "/api/rooms/general",
        &carol,
        Some(&json!({ "topic": "mine" })),
        403,
        "forbidden",
    )
    .await;
    let v = app
        .api_ok(
            Method::PATCH,
            "/api/rooms/general",
            &alice,
            Some(&json!({ "topic": "hello all" })),
            200,
        )
        .await;
    assert_eq!(v["room"]["topic"], "hello all");
    let up = c1.wait_type("room_updated").await;
    assert_eq!(up["room"]["name"], "general");
    assert_eq!(
        app.my_room(&alice, "general").await.unwrap()["topic"],
        "hello all"
    );
}

#[tokio::test]
async fn membership_changes_apply_to_the_very_next_frame() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    app.create_room(&alice, "quick", true).await;
    for round in 0..5 {
        // Send right after the HTTP answer, without waiting for room_joined / room_left.
        app.join_room(&bob, "quick").await;
        let m = b1.say("quick", "in", &format!("in-{round}")).await;
        assert_eq!(m["room"], "quick");
        let (status, _) = app
            .api(Method::POST, "/api/rooms/quick/leave", &bob, None)
            .await;
        assert_eq!(status, 204);
        let err = b1
            .say_refused("quick", "out", &format!("out-{round}"))
            .await;
        assert_eq!(err["code"], "not_a_member", "round {round}: {err}");
    }
    // Renamed: the new name works at once, the old one is refused at once.
    app.join_room(&bob, "quick").await;
    app.api_ok(
        Method::PATCH,
        "/api/rooms/quick",
        &alice,
        Some(&json!({ "name": "quicker" })),
        200,
    )
    .await;
    let err = b1.say_refused("quick", "old", "old").await;
    assert_eq!(err["code"], "unknown_room");
    b1.say("quicker", "new", "new").await;
    let seen = a1.wait_for("bob's message", |f| f["nonce"] == "new").await;
    assert_eq!(seen["room"], "quicker");
}

/// Everyone starts in `general`: its members' connections hear of a new account there, so
/// their member counts stay right.
#[tokio::test]
async fn a_new_account_joins_general_and_its_members_are_told() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut aw = app.ws_connect(&alice, None).await;
    app.signup("bob").await;
    let note = aw.wait_type("member_joined").await;
    assert_eq!(
        note,
        json!({"type": "member_joined", "room": "general", "user": "bob"})
    );
    let general = app
        .my_room(&alice, "general")
        .await
        .expect("alice's general");
    assert_eq!(general["members"], 2);
}
