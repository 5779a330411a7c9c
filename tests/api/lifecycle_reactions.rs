//! Message lifecycle, continued: reactions, replies, moderation (room creators, purges),
//! mentions added by an edit, and sending over HTTP.

use hearth::db::sql::{args, Row as _, Sql as _};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{encode_room, id_of, operator, urlencode, Auth, TestApp, Ws};

fn react(id: i64, emoji: &str, on: bool, nonce: &str) -> Value {
    json!({ "type": "react", "id": id, "emoji": emoji, "on": on, "nonce": nonce })
}

fn reply(room: &str, body: &str, to: i64, nonce: &str) -> Value {
    json!({ "type": "send", "room": room, "body": body, "reply_to": to, "nonce": nonce })
}

/// The frame that answers `nonce` (an echo or an `error`).
async fn answer(ws: &mut Ws, nonce: &str) -> Value {
    ws.wait_for(&format!("the answer to {nonce}"), |f| f["nonce"] == nonce)
        .await
}

async fn refused(ws: &mut Ws, frame: Value, code: &str) {
    let nonce = frame["nonce"].as_str().unwrap().to_string();
    ws.send_json(&frame).await;
    let f = answer(ws, &nonce).await;
    assert_eq!(f["type"], "error", "{frame} should be refused: {f}");
    assert_eq!(f["code"], code, "{f}");
}

/// Message `id` as `auth` reads it over HTTP.
async fn message(app: &TestApp, auth: &Auth, id: i64) -> Value {
    let got = app
        .api_ok(Method::GET, &format!("/api/messages/{id}"), auth, None, 200)
        .await;
    got["message"].clone()
}

/// How many rows of `table` concern message `id` (the database itself, not an API's view).
async fn rows_about(app: &TestApp, table: &'static str, id: i64) -> i64 {
    app.server()
        .state()
        .db
        .read(move |c| {
            c.row(
                &format!("SELECT COUNT(*) FROM {table} WHERE message_id = ?1"),
                args![id],
                |r| r.get::<i64>(0),
            )
            .map(Option::unwrap)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_are_broadcast_counted_in_order_of_first_use_and_taken_back() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut a2 = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let id = id_of(&a1.say("general", "lunch?", "m1").await);

    b.send_json(&react(id, "🍕", true, "r1")).await;
    let echo = answer(&mut b, "r1").await;
    assert_eq!(echo["type"], "reaction", "{echo}");
    assert_eq!(
        (
            &echo["id"],
            &echo["room"],
            &echo["user"],
            &echo["emoji"],
            &echo["on"]
        ),
        (
            &json!(id),
            &json!("general"),
            &json!("bob"),
            &json!("🍕"),
            &json!(true)
        )
    );
    assert!(echo["seq"].as_i64().unwrap() > id, "{echo}");
    for ws in [&mut a1, &mut a2] {
        assert_eq!(ws.wait_type("reaction").await, echo, "one frame for all");
    }
    a1.send_json(&react(id, "👍", true, "r2")).await;
    answer(&mut a1, "r2").await;
    a1.send_json(&react(id, "🍕", true, "r3")).await;
    answer(&mut a1, "r3").await;

    let m = message(&app, &bob, id).await;
    assert_eq!(
        m["reactions"],
        json!([
            { "emoji": "🍕", "count": 2, "users": ["bob", "alice"] },
            { "emoji": "👍", "count": 1, "users": ["alice"] },
        ]),
        "in order of first use, each with who reacted"
    );
    b.send_json(&react(id, "🍕", false, "r4")).await;
    let off = answer(&mut b, "r4").await;
    assert_eq!(off["on"], false);
    let page = app.history(&alice, "general", "").await;
    let m = page.iter().find(|m| id_of(m) == id).unwrap();
    assert_eq!(
        m["reactions"][0],
        json!({ "emoji": "🍕", "count": 1, "users": ["alice"] })
    );
    let fresh = id_of(&a1.say("general", "no reactions yet", "m2").await);
    assert_eq!(message(&app, &alice, fresh).await["reactions"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_already_in_that_state_takes_no_position_and_answers_only_its_connection() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let id = id_of(&a.say("general", "hello", "m1").await);

    // Taking back a reaction never made: the message's own position, `on` false.
    a.send_json(&react(id, "🎉", false, "never")).await;
    let f = answer(&mut a, "never").await;
    assert_eq!(
        (&f["type"], &f["seq"], &f["on"]),
        (&json!("reaction"), &json!(id), &json!(false)),
        "{f}"
    );
    a.send_json(&react(id, "🎉", true, "on1")).await;
    let first = answer(&mut a, "on1").await;
    a.send_json(&react(id, "🎉", true, "on2")).await;
    let again = answer(&mut a, "on2").await;
    assert_eq!(again["seq"], first["seq"], "the change that made it");
    assert_eq!(again["on"], true);
    let head = app.ws_connect(&alice, None).await.ready["last_id"].clone();
    assert_eq!(head, first["seq"], "the repeat took no position");
    assert_eq!(b.wait_type("reaction").await["nonce"], "on1");
    a.say("general", "next", "m2").await;
    let f = b
        .wait_for("a reaction or the next message", |f| {
            f["type"] == "reaction" || (f["type"] == "message" && f["nonce"] == "m2")
        })
        .await;
    assert_eq!(f["type"], "message", "the repeat reached only alice: {f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_are_refused_for_bad_emoji_unreadable_messages_non_members_and_past_twenty() {
    // With the shipped rates: twenty reactions in a row after a few messages are not
    // `rate_limited` (reactions have a budget of their own, larger than the messages').
    let app = TestApp::with_config(|c| {
        let shipped = hearth::config::LimitsConfig::default();
        c.limits.messages_per_second = shipped.messages_per_second;
        c.limits.message_burst = shipped.message_burst;
        c.limits.changes_per_second = shipped.changes_per_second;
        c.limits.change_burst = shipped.change_burst;
    })
    .await;
    let alice = app.signup("alice").await;
    let _bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    app.create_room(&alice, "lobby", true).await;
    let (_, dm) = app.open_dm(&alice, &["bob"]).await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut c = app.ws_connect(&carol, None).await;
    let id = id_of(&a.say("general", "react to me", "m1").await);
    let lobby = id_of(&a.say("lobby", "public, but carol is not in it", "m2").await);
    let private = id_of(&a.say(dm["name"].as_str().unwrap(), "hush", "m3").await);

    for (i, bad) in ["", " ", "👍 👍", "a\nb", "\u{7}", &"x".repeat(17)]
        .into_iter()
        .enumerate()
    {
        refused(
            &mut a,
            react(id, bad, true, &format!("bad{i}")),
            "invalid_emoji",
        )
        .await;
    }
    refused(&mut c, react(private, "👀", true, "c1"), "unknown_message").await;
    refused(&mut c, react(999_999, "👀", true, "c2"), "unknown_message").await;
    refused(&mut c, react(lobby, "👀", true, "c3"), "not_a_member").await;
    refused(
        &mut a,
        json!({"type": "react", "id": id, "emoji": "👍", "nonce": "c4"}),
        "bad_frame",
    )
    .await;

    let emoji: Vec<String> = (0..20)
        .map(|i| char::from_u32(0x1F600 + i).unwrap().to_string())
        .collect();
    for (i, e) in emoji.iter().enumerate() {
        a.send_json(&react(id, e, true, &format!("e{i}"))).await;
        assert_eq!(answer(&mut a, &format!("e{i}")).await["type"], "reaction");
    }
    refused(&mut c, react(id, "🦀", true, "c5"), "too_many_reactions").await;
    c.send_json(&react(id, &emoji[3], true, "c6")).await;
    assert_eq!(
        answer(&mut c, "c6").await["type"],
        "reaction",
        "one more person on an emoji already there is fine"
    );
    let m = message(&app, &carol, id).await;
    assert_eq!(m["reactions"].as_array().unwrap().len(), 20);
    assert_eq!(m["reactions"][3]["count"], 2);

    a.send_json(&json!({"type": "delete", "id": id, "nonce": "d1"}))
        .await;
    answer(&mut a, "d1").await;
    refused(&mut c, react(id, "👀", true, "c7"), "unknown_message").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_replays_reactions_in_position_order_and_messages_carry_their_current_reactions() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let first = id_of(&a.say("general", "before", "m0").await);
    let b = app.ws_connect(&bob, None).await;
    let since = b.ready["last_id"].as_i64().unwrap();
    drop(b);

    a.send_json(&react(first, "👍", true, "r1")).await;
    let r1 = answer(&mut a, "r1").await;
    let second = id_of(&a.say("general", "after", "m1").await);
    a.send_json(&react(second, "❤️", true, "r2")).await;
    let r2 = answer(&mut a, "r2").await;
    a.send_json(&react(first, "👍", false, "r3")).await;
    let r3 = answer(&mut a, "r3").await;

    let mut b = app.ws_connect(&bob, Some(since)).await;
    let replay = b.frames_until(|f| f["type"] == "resumed").await;
    let seen: Vec<(String, i64)> = replay
        .iter()
        .filter(|f| f["type"] != "resumed")
        .map(|f| {
            let pos = f.get("seq").unwrap_or(&f["id"]).as_i64().unwrap();
            (f["type"].as_str().unwrap().to_string(), pos)
        })
        .collect();
    let want: Vec<(String, i64)> = vec![
        ("reaction".into(), r1["seq"].as_i64().unwrap()),
        ("message".into(), second),
        ("reaction".into(), r2["seq"].as_i64().unwrap()),
        ("reaction".into(), r3["seq"].as_i64().unwrap()),
    ];
    assert_eq!(seen, want, "every change once, in position order");
    let msg = replay.iter().find(|f| f["type"] == "message").unwrap();
    assert_eq!(msg["reactions"][0]["emoji"], "❤️", "current state: {msg}");
    assert!(replay
        .iter()
        .all(|f| f.get("nonce").is_none() || f["type"] == "message"));
    assert_eq!(replay.last().unwrap()["head"], r3["seq"]);

    let events = app
        .api_ok(
            Method::GET,
            &format!("/api/events?after={since}"),
            &bob,
            None,
            200,
        )
        .await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["reaction", "message", "reaction", "reaction"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_message_erases_its_reactions_from_the_database() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let start = a.ready["last_id"].as_i64().unwrap();
    let id = id_of(&a.say("general", "regrettable", "m1").await);
    b.send_json(&react(id, "😬", true, "r1")).await;
    answer(&mut b, "r1").await;
    assert_eq!(rows_about(&app, "reactions", id).await, 1);

    a.send_json(&json!({"type": "delete", "id": id, "nonce": "d1"}))
        .await;
    answer(&mut a, "d1").await;
    assert_eq!(
        rows_about(&app, "reactions", id).await,
        0,
        "gone, not hidden"
    );
    let m = message(&app, &bob, id).await;
    assert_eq!(m["deleted"], true);
    assert!(m.get("reactions").is_none(), "a tombstone: {m}");
    let events = app
        .api_ok(
            Method::GET,
            &format!("/api/events?after={start}"),
            &bob,
            None,
            200,
        )
        .await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["message", "deleted"],
        "no reaction survives in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_carry_an_excerpt_of_the_original_and_are_checked_by_the_writer() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "den", true).await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let long = format!("{}{}", "é".repeat(199), "xyz");
    let original = id_of(&a.say("general", &long, "m1").await);
    let elsewhere = id_of(&a.say("den", "in the den", "m2").await);

    b.send_json(&reply("general", "agreed", original, "r1"))
        .await;
    let got = answer(&mut b, "r1").await;
    assert_eq!(got["type"], "message", "{got}");
    let excerpt = format!("{}x", "é".repeat(199));
    assert_eq!(
        got["reply_to"],
        json!({ "id": original, "user": "alice", "excerpt": excerpt }),
        "the first 200 characters"
    );
    let echoed = a.wait_for("bob's reply", |f| f["nonce"] == "r1").await;
    assert_eq!(echoed["reply_to"]["id"], original);
    let plain = id_of(&b.say("general", "no reply", "m3").await);
    let page = app.history(&bob, "general", "").await;
    let in_page = |id: i64| page.iter().find(|m| id_of(m) == id).unwrap().clone();
    assert_eq!(in_page(id_of(&got))["reply_to"]["excerpt"], excerpt);
    assert!(in_page(plain).get("reply_to").is_none());

    refused(
        &mut b,
        reply("general", "wrong room", elsewhere, "r2"),
        "unknown_message",
    )
    .await;
    refused(
        &mut b,
        reply("general", "nothing", 999_999, "r3"),
        "unknown_message",
    )
    .await;
    a.send_json(&json!({"type": "delete", "id": original, "nonce": "d1"}))
        .await;
    answer(&mut a, "d1").await;
    refused(
        &mut b,
        reply("general", "too late", original, "r4"),
        "unknown_message",
    )
    .await;
    let reply_now = message(&app, &bob, id_of(&got)).await;
    assert_eq!(
        reply_now["reply_to"],
        json!({ "id": original, "user": "alice", "excerpt": "" }),
        "a deleted original leaves an empty excerpt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_reactions_over_http_for_bots() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "lobby", true).await;
    let mut b = app.ws_connect(&bob, None).await;
    let path = "/api/rooms/general/messages";

    let body = json!({ "body": "  from a script ", "nonce": "h1" });
    let got = app
        .api_ok(Method::POST, path, &alice, Some(&body), 201)
        .await;
    let id = id_of(&got["message"]);
    assert_eq!(got["message"]["body"], "from a script");
    assert_eq!(got["message"]["user"], "alice");
    let live = b.wait_type("message").await;
    assert_eq!((id_of(&live), &live["nonce"]), (id, &json!("h1")));
    let again = app
        .api_ok(Method::POST, path, &alice, Some(&body), 201)
        .await;
    assert_eq!(
        id_of(&again["message"]),
        id,
        "a retried nonce is not stored twice"
    );

    let answer_it = json!({ "body": "replying", "reply_to": id });
    let got = app
        .api_ok(Method::POST, path, &bob, Some(&answer_it), 201)
        .await;
    assert_eq!(got["message"]["reply_to"]["id"], id);
    let dm_path = format!("/api/rooms/{}/messages", encode_room("dm:alice,bob"));
    app.api_err(
        Method::POST,
        &dm_path,
        &alice,
        Some(&body),
        404,
        "unknown_room",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/lobby/messages",
        &bob,
        Some(&body),
        403,
        "not_a_member",
    )
    .await;
    // A body's bad field is a bad request (`bad_frame` is the socket's word).
    app.api_err(
        Method::POST,
        path,
        &alice,
        Some(&json!({ "body": "hi", "nonce": "n".repeat(65) })),
        400,
        "bad_request",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/nowhere/messages",
        &bob,
        Some(&body),
        404,
        "unknown_room",
    )
    .await;
    let empty = json!({ "body": " " });
    app.api_err(Method::POST, path, &bob, Some(&empty), 400, "empty_message")
        .await;
    let stray = json!({ "body": "x", "reply_to": 999_999 });
    app.api_err(
        Method::POST,
        path,
        &bob,
        Some(&stray),
        404,
        "unknown_message",
    )
    .await;
    let long = json!({ "body": "x".repeat(4001) });
    app.api_err(
        Method::POST,
        path,
        &bob,
        Some(&long),
        400,
        "message_too_long",
    )
    .await;

    let thumbs = format!("/api/messages/{id}/reactions/{}", urlencode("👍"));
    let (status, _) = app.api(Method::PUT, &thumbs, &bob, None).await;
    assert_eq!(status, 204);
    let f = b.wait_type("reaction").await;
    assert_eq!(
        (&f["emoji"], &f["on"], &f["user"]),
        (&json!("👍"), &json!(true), &json!("bob"))
    );
    let (status, _) = app.api(Method::PUT, &thumbs, &bob, None).await;
    assert_eq!(status, 204, "already there is still 204");
    assert_eq!(message(&app, &alice, id).await["reactions"][0]["count"], 1);
    let (status, _) = app.api(Method::DELETE, &thumbs, &bob, None).await;
    assert_eq!(status, 204);
    assert_eq!(message(&app, &alice, id).await["reactions"], json!([]));
    let spaced = format!("/api/messages/{id}/reactions/{}", urlencode("a b"));
    app.api_err(Method::PUT, &spaced, &bob, None, 400, "invalid_emoji")
        .await;
    let bad_escape = format!("/api/messages/{id}/reactions/%ZZ");
    app.api_err(Method::PUT, &bad_escape, &bob, None, 400, "invalid_emoji")
        .await;
    let nowhere = format!("/api/messages/999999/reactions/{}", urlencode("👍"));
    app.api_err(Method::PUT, &nowhere, &bob, None, 404, "unknown_message")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_creator_moderates_their_room_while_a_member() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "den", true).await;
    app.join_room(&bob, "den").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let spam = id_of(&b.say("den", "buy now", "m1").await);
    let in_general = id_of(&b.say("general", "hello all", "m2").await);
    let alices = id_of(&a.say("den", "welcome", "m3").await);

    refused(
        &mut b,
        json!({"type": "delete", "id": alices, "nonce": "x1"}),
        "forbidden",
    )
    .await;
    refused(
        &mut a,
        json!({"type": "delete", "id": in_general, "nonce": "x2"}),
        "forbidden",
    )
    .await;
    a.send_json(&json!({"type": "delete", "id": spam, "nonce": "d1"}))
        .await;
    let f = answer(&mut a, "d1").await;
    assert_eq!(
        (&f["type"], &f["by"]),
        (&json!("deleted"), &json!("alice")),
        "{f}"
    );

    let another = id_of(&b.say("den", "more spam", "m4").await);
    app.api(Method::POST, "/api/rooms/den/leave", &alice, None)
        .await;
    app.join_room(&alice, "den").await;
    a.send_json(&json!({"type": "delete", "id": another, "nonce": "d2"}))
        .await;
    assert_eq!(
        answer(&mut a, "d2").await["type"],
        "deleted",
        "rejoining the room she created, she moderates it again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_purges_every_message_of_a_spammer() {
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let spammer = app.signup("spammer").await;
    let bob = app.signup("bob").await;
    app.create_room(&spammer, "ads", true).await;
    app.join_room(&bob, "ads").await;
    let mut s = app.ws_connect(&spammer, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(id_of(
            &s.say("general", &format!("spam {i}"), &format!("g{i}"))
                .await,
        ));
        ids.push(id_of(
            &s.say("ads", &format!("ad {i}"), &format!("a{i}")).await,
        ));
    }
    let kept = id_of(&b.say("general", "a real message", "b1").await);
    s.send_json(&json!({"type": "delete", "id": ids[0], "nonce": "self"}))
        .await;
    answer(&mut s, "self").await;
    assert_eq!(b.wait_type("deleted").await["by"], "spammer");

    app.api_err(
        Method::POST,
        "/api/admin/users/spammer/purge",
        &bob,
        None,
        403,
        "forbidden",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/admin/users/nobody/purge",
        &admin,
        None,
        404,
        "unknown_user",
    )
    .await;
    let got = app
        .api_ok(
            Method::POST,
            "/api/admin/users/spammer/purge",
            &admin,
            None,
            200,
        )
        .await;
    assert_eq!(
        got["deleted"], 9,
        "the one already deleted is not counted: {got}"
    );
    assert_eq!(got["user"]["username"], "spammer");
    let mut deleted: Vec<i64> = Vec::new();
    while deleted.len() < 9 {
        let f = b.wait_type("deleted").await;
        assert_eq!(f["by"], "root");
        deleted.push(id_of(&f));
    }
    deleted.sort();
    assert_eq!(deleted, ids[1..].to_vec(), "every other message, once each");
    for id in &ids {
        assert_eq!(message(&app, &bob, *id).await["deleted"], true);
    }
    assert_eq!(message(&app, &bob, kept).await["body"], "a real message");
    let hits = app.search_ok(&bob, "spam", "").await;
    assert_eq!(hits["results"], json!([]), "{hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_adds_a_mention_notifies_the_newly_mentioned_and_one_that_drops_it_clears_it()
{
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let mut c = app.ws_connect(&carol, None).await;
    let id = id_of(&a.say("general", "thanks @bob", "m1").await);
    let first = b.wait_type("mention").await;
    assert_eq!(first["id"], id);
    assert!(
        first.get("seq").is_none(),
        "a new message's mention: {first}"
    );

    a.send_json(
        &json!({"type": "edit", "id": id, "body": "thanks @bob and @carol", "nonce": "e1"}),
    )
    .await;
    let edited = answer(&mut a, "e1").await;
    let note = c.wait_type("mention").await;
    assert_eq!(
        (&note["id"], &note["user"], &note["room"], &note["seq"]),
        (
            &json!(id),
            &json!("alice"),
            &json!("general"),
            &edited["seq"]
        ),
        "the edit's mention at the edit's position"
    );
    // A connection whose `ready` counted the edit is not told of it again.
    let mut late = app.ws_connect(&carol, None).await;
    a.say("general", "after the edit", "m1b").await;
    let f = late
        .wait_for("a mention or the message after it", |f| {
            f["type"] == "mention" || f["nonce"] == "m1b"
        })
        .await;
    assert_eq!(f["nonce"], "m1b", "ready counted the edit's mention: {f}");
    assert_eq!(app.my_room(&carol, "general").await.unwrap()["mentions"], 1);
    a.say("general", "marker", "m2").await;
    let f = b
        .wait_for("a mention or the marker", |f| {
            f["type"] == "mention" || f["nonce"] == "m2"
        })
        .await;
    assert_eq!(
        f["nonce"], "m2",
        "bob was mentioned already: no second note"
    );

    a.send_json(&json!({"type": "edit", "id": id, "body": "thanks all", "nonce": "e2"}))
        .await;
    answer(&mut a, "e2").await;
    assert_eq!(app.my_room(&carol, "general").await.unwrap()["mentions"], 0);
    assert_eq!(app.my_room(&bob, "general").await.unwrap()["mentions"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_unread_message_lowers_the_unread_count() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let one = id_of(&a.say("general", "one", "m1").await);
    a.say("general", "two", "m2").await;
    assert_eq!(app.my_room(&bob, "general").await.unwrap()["unread"], 2);
    a.send_json(&json!({"type": "delete", "id": one, "nonce": "d1"}))
        .await;
    answer(&mut a, "d1").await;
    assert_eq!(app.my_room(&bob, "general").await.unwrap()["unread"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_command_deletes_a_users_messages_in_the_database_file() {
    let mut app = TestApp::start().await;
    let spammer = app.signup("spammer").await;
    let bob = app.signup("bob").await;
    let mut s = app.ws_connect(&spammer, None).await;
    let spam = id_of(&s.say("general", "cheap pills", "m1").await);
    drop(s);
    app.stop().await;
    let config = app.config.clone();
    let said = operator(&config, move |c| hearth::admin::user_purge(c, "Spammer"))
        .await
        .expect("purge");
    assert_eq!(said, "deleted 1 message of spammer");
    assert!(
        operator(&config, move |c| hearth::admin::user_purge(c, "nobody"))
            .await
            .is_err()
    );
    app.restart().await;
    let m = message(&app, &bob, spam).await;
    assert_eq!(
        (&m["deleted"], &m["body"], &m["user"]),
        (&json!(true), &json!(""), &json!("spammer"))
    );
}

/// Whether `needle` occurs anywhere in the file at `path` (absent files hold nothing).
fn file_holds(path: &std::path::Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_is_gone_from_the_file_and_from_a_backup_made_afterwards() {
    if crate::common::sqlite_only("the bytes of the database file and hearth backup") {
        return;
    }
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a = app.ws_connect(&alice, None).await;
    // Words that appear nowhere else: the first version, its edit, and a message kept.
    let (first, edited, kept) = ("plumbobfizzwort", "zanzibarquuxel", "keepsakeword");
    a.say("general", &format!("note {kept}"), "k").await;
    let id = id_of(&a.say("general", &format!("secret {first}"), "m").await);
    a.send_json(
        &json!({"type": "edit", "id": id, "body": format!("secret {edited}"), "nonce": "e"}),
    )
    .await;
    answer(&mut a, "e").await;
    a.send_json(&react(id, "🤫", true, "r")).await;
    answer(&mut a, "r").await;
    // Fold the write-ahead log into the file, as it happens on its own over time.
    let path = app.db_path();
    let checkpoint = || {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    };
    checkpoint();
    assert!(
        file_holds(&path, edited),
        "the test can see text in the file"
    );

    a.send_json(&json!({"type": "delete", "id": id, "nonce": "d"}))
        .await;
    answer(&mut a, "d").await;
    checkpoint();
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    for word in [first, edited] {
        assert!(
            !file_holds(&path, word),
            "{word} is still in the database file"
        );
        assert!(
            !file_holds(std::path::Path::new(&wal), word),
            "{word} in the WAL"
        );
    }
    let copy = app.dir.path().join("after.db");
    hearth::admin::backup(&app.config, &copy).expect("backup");
    assert!(
        file_holds(&copy, kept),
        "the backup holds the messages kept"
    );
    for word in [first, edited] {
        assert!(
            !file_holds(&copy, word),
            "{word} is in a backup made afterwards"
        );
    }
    let hits = app.search_ok(&alice, edited, "").await;
    assert_eq!(hits["results"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_lets_go_of_deleted_and_replaced_words_on_its_own() {
    if crate::common::sqlite_only("the bytes of the write-ahead log") {
        return;
    }
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a = app.ws_connect(&alice, None).await;
    let (first, edited, gone) = ("quillobrandish", "farthingloomer", "wobblecrumpet");
    let id = id_of(&a.say("general", &format!("secret {first}"), "m").await);
    a.send_json(
        &json!({"type": "edit", "id": id, "body": format!("secret {edited}"), "nonce": "e"}),
    )
    .await;
    answer(&mut a, "e").await;
    let other = id_of(&a.say("general", &format!("oops {gone}"), "g").await);
    a.send_json(&json!({"type": "delete", "id": other, "nonce": "d"}))
        .await;
    answer(&mut a, "d").await;
    // No checkpoint from here: only the server's own work may clear the log.
    let path = app.db_path();
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    let held = || {
        [first, gone]
            .into_iter()
            .filter(|w| file_holds(&path, w) || file_holds(&wal, w))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !held().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        held(),
        Vec::<&str>::new(),
        "words the log or file still hold"
    );
    // What stays is stored as ever.
    let m = a.say("general", "after", "after").await;
    assert!(id_of(&m) > other);
    assert!(file_holds(&path, edited) || file_holds(&wal, edited));
}
