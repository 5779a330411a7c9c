//! `@name` mentions: recorded for members only, announced to the mentioned user's connections
//! only, counted until read; and notification levels.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn mentions_in(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "mention")
        .cloned()
        .collect()
}

#[tokio::test]
async fn mentions_reach_the_mentioned_member_only() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let dave = app.signup("dave").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let mut b2 = app.ws_connect(&bob, None).await;
    let mut c1 = app.ws_connect(&carol, None).await;
    // dave's connection only sends the ordering barriers.
    let mut d1 = app.ws_connect(&dave, None).await;
    app.create_room(&alice, "team", false).await;
    app.invite(&alice, "team", "bob").await;
    b1.wait_type("room_joined").await;
    b2.wait_type("room_joined").await;

    // Mentions of bob in many spellings and positions: each one counts.
    let mentioning = [
        "@bob are you there?",
        "hey @BOB, look",
        "(@Bob)",
        "thanks,@bob.",
        "ping\n@bob",
        "cc: @bob!",
    ];
    let mut mention_ids = Vec::new();
    for (i, body) in mentioning.iter().enumerate() {
        let nonce = format!("m{i}");
        let m = a1.say("team", body, &nonce).await;
        mention_ids.push(id_of(&m));
        for b in [&mut b1, &mut b2] {
            let note = b
                .wait_for(&format!("the mention in {body:?}"), |f| {
                    f["type"] == "mention"
                })
                .await;
            assert_eq!(
                note,
                json!({"type":"mention","room":"team","id":id_of(&m),"user":"alice"}),
                "{body:?}"
            );
        }
    }

    // Not mentions of bob: inside words, addresses, other names, non-members, the author.
    let not_mentioning = [
        ("alice", "mail bob@bob.org or x@bob"),
        ("alice", "@bobby and @bo are not bob"),
        ("alice", "bob without an at sign"),
        ("alice", "@carol is not in this room"),
        ("alice", "@dave neither"),
        ("alice", "@nobody at all"),
        ("bob", "@bob note to self"),
    ];
    for (i, (who, body)) in not_mentioning.iter().enumerate() {
        let nonce = format!("n{i}");
        if *who == "alice" {
            a1.say("team", body, &nonce).await;
        } else {
            b1.say("team", body, &nonce).await;
        }
    }
    d1.say("general", "barrier", "barrier").await;
    for ws in [&mut a1, &mut b1, &mut b2, &mut c1] {
        let frames = ws.frames_until_nonce("barrier").await;
        assert_eq!(
            mentions_in(&frames),
            Vec::<Value>::new(),
            "{}",
            ws.username()
        );
    }

    // Counted in the rooms list until read.
    let team = app.my_room(&bob, "team").await.unwrap();
    assert_eq!(team["mentions"], mentioning.len(), "{team}");
    assert_eq!(
        team["unread"],
        (mentioning.len() + not_mentioning.len() - 1),
        "{team}"
    );
    assert_eq!(app.my_room(&alice, "team").await.unwrap()["mentions"], 0);
    assert_eq!(app.my_room(&carol, "general").await.unwrap()["mentions"], 0);

    let v = app
        .api_ok(
            Method::POST,
            "/api/rooms/team/read",
            &bob,
            Some(&json!({ "id": mention_ids[2] })),
            200,
        )
        .await;
    assert_eq!(v["mentions"], mentioning.len() - 3, "{v}");
    let r = b2.wait_type("read").await;
    assert_eq!(r["mentions"], mentioning.len() - 3);
    let last = app.my_room(&bob, "team").await.unwrap()["last_id"].clone();
    b1.send_json(&json!({ "type": "read", "room": "team", "id": last }))
        .await;
    let r = b2.wait_type("read").await;
    assert_eq!(r["mentions"], 0);
    assert_eq!(r["unread"], 0);
    let team = app.my_room(&bob, "team").await.unwrap();
    assert_eq!(
        (team["unread"].clone(), team["mentions"].clone()),
        (json!(0), json!(0))
    );

    // Mentions in general reach anyone (everyone is a member).
    a1.say("general", "hello @carol and @DAVE", "gc").await;
    let note = c1.wait_type("mention").await;
    assert_eq!(note["room"], "general");
    assert_eq!(app.my_room(&carol, "general").await.unwrap()["mentions"], 1);
}

#[tokio::test]
async fn a_mention_in_a_dm_and_a_newly_joined_member() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    app.open_dm(&alice, &["bob"]).await;
    b1.wait_type("room_joined").await;
    a1.wait_type("room_joined").await;
    let m = a1.say("dm:alice,bob", "@bob see this", "d").await;
    let note = b1.wait_type("mention").await;
    assert_eq!(note["room"], "dm:alice,bob");
    assert_eq!(note["id"], m["id"]);

    // Mentioned before joining: no mention; after joining: yes.
    app.create_room(&alice, "lobby", true).await;
    a1.say("lobby", "@bob is not here yet", "early").await;
    app.join_room(&bob, "lobby").await;
    b1.wait_type("room_joined").await;
    let m = a1.say("lobby", "now @bob is", "late").await;
    let frames = b1.frames_until(|f| f["type"] == "mention").await;
    let note = frames.last().unwrap();
    assert_eq!(note["id"], m["id"], "{frames:?}");
    let lobby = app.my_room(&bob, "lobby").await.unwrap();
    assert_eq!(lobby["mentions"], 1);
    assert_eq!(lobby["unread"], 1);
}

#[tokio::test]
async fn notification_levels_are_stored_per_member() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "ops", false).await;
    for level in ["mentions", "nothing", "all"] {
        let v = app
            .api_ok(
                Method::PUT,
                "/api/rooms/ops/notify",
                &alice,
                Some(&json!({ "level": level })),
                200,
            )
            .await;
        assert_eq!(v["room"]["notify"], level, "{v}");
        assert_eq!(v["room"]["name"], "ops");
        assert_eq!(app.my_room(&alice, "ops").await.unwrap()["notify"], level);
    }
    app.api_ok(
        Method::PUT,
        "/api/rooms/general/notify",
        &alice,
        Some(&json!({ "level": "nothing" })),
        200,
    )
    .await;
    let ws = app.ws_connect(&alice, None).await;
    let general = ws.ready["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "general")
        .unwrap()
        .clone();
    assert_eq!(general["notify"], "nothing");
    // Per member: bob's level is untouched.
    assert_eq!(app.my_room(&bob, "general").await.unwrap()["notify"], "all");

    for body in [
        json!({ "level": "loud" }),
        json!({ "level": "ALL" }),
        json!({ "level": 1 }),
        json!({}),
    ] {
        app.api_err(
            Method::PUT,
            "/api/rooms/ops/notify",
            &alice,
            Some(&body),
            400,
            "bad_request",
        )
        .await;
    }
    app.api_err(
        Method::PUT,
        "/api/rooms/ops/notify",
        &bob,
        Some(&json!({ "level": "all" })),
        404,
        "unknown_room",
    )
    .await;
    app.api_err(
        Method::PUT,
        "/api/rooms/nowhere/notify",
        &bob,
        Some(&json!({ "level": "all" })),
        404,
        "unknown_room",
    )
    .await;
}

/// `@here`: every member of the room online at send time is mentioned (not the sender, not
/// members who are offline, never non-members), exactly like `@name`.
#[tokio::test]
async fn here_mentions_the_members_online_at_send_time() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let dave = app.signup("dave").await;
    app.create_room(&alice, "team", false).await;
    app.invite(&alice, "team", "bob").await;
    app.invite(&alice, "team", "carol").await;
    // alice, bob and dave are online; carol (a member) is not; dave is not a member.
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    let mut d1 = app.ws_connect(&dave, None).await;
    // eve's connection only sends the ordering barrier.
    let eve = app.signup("eve").await;
    let mut e1 = app.ws_connect(&eve, None).await;

    let m = a1.say("team", "@here standup in 5", "h1").await;
    let note = b1
        .wait_for("the @here mention", |f| f["type"] == "mention")
        .await;
    assert_eq!(
        note,
        json!({"type":"mention","room":"team","id":id_of(&m),"user":"alice"})
    );
    // Word-bounded like a mention: none of these reach anyone.
    for (i, body) in ["mail me@here.org", "@heres a thought", "here without an at"]
        .iter()
        .enumerate()
    {
        a1.say("team", body, &format!("x{i}")).await;
    }
    e1.say("general", "barrier", "barrier").await;
    for ws in [&mut a1, &mut b1, &mut d1] {
        let frames = ws.frames_until_nonce("barrier").await;
        assert_eq!(
            mentions_in(&frames),
            Vec::<Value>::new(),
            "{}",
            ws.username()
        );
    }
    assert_eq!(app.my_room(&bob, "team").await.unwrap()["mentions"], 1);
    assert_eq!(app.my_room(&carol, "team").await.unwrap()["mentions"], 0);
    assert_eq!(app.my_room(&alice, "team").await.unwrap()["mentions"], 0);
    assert!(app.my_room(&dave, "team").await.is_none());

    // carol coming online later is not mentioned by the earlier @here; a new one reaches her.
    let mut c1 = app.ws_connect(&carol, None).await;
    let m2 = app
        .api_ok(
            Method::POST,
            "/api/rooms/team/messages",
            &alice,
            Some(&json!({"body": "thanks @here."})),
            201,
        )
        .await;
    let id2 = id_of(&m2["message"]);
    for ws in [&mut b1, &mut c1] {
        let note = ws
            .wait_for("the second @here mention", |f| f["type"] == "mention")
            .await;
        assert_eq!(note["id"], id2, "{}", ws.username());
    }
    assert_eq!(app.my_room(&carol, "team").await.unwrap()["mentions"], 1);
    assert_eq!(app.my_room(&bob, "team").await.unwrap()["mentions"], 2);
}

/// An edit that adds `@here` mentions the members online then; one that keeps it changes
/// nothing; one that removes it takes the mentions back.
#[tokio::test]
async fn here_follows_edits() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "team", false).await;
    app.invite(&alice, "team", "bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;

    let m = a1.say("team", "meeting now", "m1").await;
    let id = id_of(&m);
    let edit = |body: &str| json!({ "body": body });
    let path = format!("/api/messages/{id}");
    app.api_ok(
        Method::PATCH,
        &path,
        &alice,
        Some(&edit("meeting now @here")),
        200,
    )
    .await;
    let note = b1
        .wait_for("the mention an edit added", |f| f["type"] == "mention")
        .await;
    assert_eq!(note["id"], id);
    assert_eq!(app.my_room(&bob, "team").await.unwrap()["mentions"], 1);

    app.api_ok(
        Method::PATCH,
        &path,
        &alice,
        Some(&edit("meeting now, @here!")),
        200,
    )
    .await;
    a1.say("general", "barrier", "barrier").await;
    let frames = b1.frames_until_nonce("barrier").await;
    assert_eq!(mentions_in(&frames), Vec::<Value>::new());
    assert_eq!(app.my_room(&bob, "team").await.unwrap()["mentions"], 1);

    app.api_ok(
        Method::PATCH,
        &path,
        &alice,
        Some(&edit("meeting later")),
        200,
    )
    .await;
    assert_eq!(app.my_room(&bob, "team").await.unwrap()["mentions"], 0);
}
