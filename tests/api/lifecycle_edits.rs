//! Message lifecycle: `edit` and `delete` over the WebSocket (echo to every member connection,
//! refusals, idempotence, positions in a `?since=` replay), the search index and history
//! following the current text, and the HTTP equivalents.

use hearth::db::sql::{args, Sql as _};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{id_of, result_ids, Auth, TestApp, Ws};

fn edit(id: i64, body: &str, nonce: &str) -> Value {
    json!({ "type": "edit", "id": id, "body": body, "nonce": nonce })
}

fn delete(id: i64, nonce: &str) -> Value {
    json!({ "type": "delete", "id": id, "nonce": nonce })
}

/// The next `error` frame naming `nonce`, or the frame that answered it instead.
async fn answer(ws: &mut Ws, nonce: &str) -> Value {
    ws.wait_for(&format!("the answer to {nonce}"), |f| f["nonce"] == nonce)
        .await
}

/// Sending `frame` is refused with `code`.
async fn refused(ws: &mut Ws, frame: Value, code: &str) {
    let nonce = frame["nonce"].as_str().unwrap().to_string();
    ws.send_json(&frame).await;
    let f = answer(ws, &nonce).await;
    assert_eq!(f["type"], "error", "{frame} should be refused: {f}");
    assert_eq!(f["code"], code, "{f}");
}

/// History of `general` as `auth` sees it, the message `id` only.
async fn in_history(app: &TestApp, auth: &Auth, id: i64) -> Value {
    let page = app.history(auth, "general", "").await;
    page.into_iter()
        .find(|m| id_of(m) == id)
        .unwrap_or_else(|| panic!("message {id} is in history"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_every_member_connection_and_no_one_else() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    app.create_room(&alice, "den", false).await;
    app.invite(&alice, "den", "bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut a2 = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let mut c = app.ws_connect(&carol, None).await;
    let id = id_of(&a1.say("den", "first draft", "m1").await);

    a1.send_json(&edit(id, "  final text ", "e1")).await;
    let echo = a1.wait_type("edited").await;
    assert_eq!(echo["id"], id);
    assert_eq!(echo["room"], "den");
    assert_eq!(echo["body"], "final text", "trimmed like a sent body");
    assert_eq!(echo["nonce"], "e1");
    let seq = echo["seq"].as_i64().expect("a seq");
    assert!(
        seq > id,
        "the change has a position above the message: {echo}"
    );
    assert!(echo["edited_ts"].is_string(), "{echo}");
    for ws in [&mut a2, &mut b] {
        let f = ws.wait_type("edited").await;
        assert_eq!(f, echo, "the same frame for every member connection");
    }
    // Carol is not in the room: the next thing she hears is a later message in general.
    a1.say("general", "after the edit", "m2").await;
    let f = c
        .wait_for("a message or an edit", |f| {
            f["type"] == "edited" || f["type"] == "message"
        })
        .await;
    assert_eq!(f["type"], "message", "no edit for a non-member: {f}");
    assert_eq!(f["nonce"], "m2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_refused_to_others_for_bad_bodies_and_for_unreadable_messages() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let (_, dm) = app.open_dm(&alice, &["bob"]).await;
    let dm_name = dm["name"].as_str().expect("a DM name").to_string();
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let mut c = app.ws_connect(&carol, None).await;
    let public = id_of(&a.say("general", "alice's words", "m1").await);
    let private = id_of(&a.say(&dm_name, "just between us", "m2").await);

    refused(&mut b, edit(public, "bob's words", "e1"), "forbidden").await;
    refused(&mut a, edit(public, " \n ", "e2"), "empty_message").await;
    refused(
        &mut a,
        edit(public, &"x".repeat(4001), "e3"),
        "message_too_long",
    )
    .await;
    refused(&mut c, edit(private, "peek", "e4"), "unknown_message").await;
    refused(&mut c, delete(private, "d1"), "unknown_message").await;
    refused(&mut a, edit(999_999, "nothing", "e5"), "unknown_message").await;
    assert_eq!(
        in_history(&app, &alice, public).await["body"],
        "alice's words"
    );
    assert!(in_history(&app, &alice, public)
        .await
        .get("edited_ts")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_edit_twice_takes_no_position_and_answers_only_its_connection() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    let id = id_of(&a.say("general", "hello", "m1").await);

    // Never edited: the state is the message's own (seq = its id).
    a.send_json(&edit(id, "hello", "same")).await;
    let f = answer(&mut a, "same").await;
    assert_eq!(
        (f["type"].clone(), f["seq"].clone()),
        (json!("edited"), json!(id)),
        "{f}"
    );
    a.send_json(&edit(id, "hello there", "e1")).await;
    let first = answer(&mut a, "e1").await;
    a.send_json(&edit(id, "hello there", "e2")).await;
    let again = answer(&mut a, "e2").await;
    assert_eq!(again["type"], "edited");
    assert_eq!(
        again["seq"], first["seq"],
        "the seq of the change that made it"
    );
    let head = app.ws_connect(&alice, None).await.ready["last_id"].clone();
    assert_eq!(head, first["seq"], "nothing took a position");
    // Bob saw the real edit only, then the next message.
    assert_eq!(b.wait_type("edited").await["nonce"], "e1");
    a.say("general", "next", "m2").await;
    let f = b
        .wait_for("an edit or a message", |f| {
            f["type"] == "edited" || (f["type"] == "message" && f["nonce"] == "m2")
        })
        .await;
    assert_eq!(
        f["type"], "message",
        "the repeat reached only its connection: {f}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_replays_messages_and_edits_once_in_position_order() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a = app.ws_connect(&alice, None).await;
    let before = id_of(&a.say("general", "before", "m0").await);
    let id = id_of(&a.say("general", "one", "m1").await);
    a.send_json(&edit(id, "one, edited", "e1")).await;
    let seq = answer(&mut a, "e1").await["seq"].as_i64().unwrap();
    let after = id_of(&a.say("general", "two", "m2").await);
    assert!(
        before < id && id < seq && seq < after,
        "{before} {id} {seq} {after}"
    );

    let mut r = app.ws_connect(&alice, Some(before)).await;
    let mut got = Vec::new();
    loop {
        let f = r.next_skipping(&["presence", "typing"]).await;
        if f["type"] == "resumed" {
            assert_eq!(f["head"], after, "head is the highest position");
            break;
        }
        got.push(f);
    }
    let kinds: Vec<(String, i64)> = got
        .iter()
        .map(|f| {
            let pos = f.get("seq").unwrap_or(&f["id"]).as_i64().unwrap();
            (f["type"].as_str().unwrap().to_string(), pos)
        })
        .collect();
    let want = [("message", id), ("edited", seq), ("message", after)];
    let want: Vec<(String, i64)> = want.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    assert_eq!(kinds, want);
    assert_eq!(
        got[0]["body"], "one, edited",
        "a message replays in its current state"
    );
    assert!(got[0]["edited_ts"].is_string(), "{}", got[0]);
    assert_eq!(got[1]["body"], "one, edited");
    assert_eq!(r.ready["last_id"], after);
    // Nothing after the replay repeats it.
    a.say("general", "three", "m3").await;
    let f = r.next_skipping(&["presence", "typing"]).await;
    assert_eq!(f["nonce"], "m3", "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_history_follow_the_edited_text() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a = app.ws_connect(&alice, None).await;
    let id = id_of(&a.say("general", "walrus meeting", "m1").await);
    assert_eq!(result_ids(&app.search_ok(&alice, "walrus", "").await), [id]);
    a.send_json(&edit(id, "narwhal meeting", "e1")).await;
    answer(&mut a, "e1").await;

    assert!(result_ids(&app.search_ok(&alice, "walrus", "").await).is_empty());
    assert_eq!(
        result_ids(&app.search_ok(&alice, "narwhal", "").await),
        [id]
    );
    let m = in_history(&app, &alice, id).await;
    assert_eq!(m["body"], "narwhal meeting");
    assert!(m["edited_ts"].is_string(), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_removes_the_text_and_is_broadcast_once() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    // A reply: its tombstone does not say what it answered either.
    let first = id_of(&b.say("general", "what next?", "m0").await);
    a.send_json(
        &json!({"type": "send", "room": "general", "body": "secret plans",
        "reply_to": first, "nonce": "m1"}),
    )
    .await;
    let id = id_of(&answer(&mut a, "m1").await);
    assert_eq!(b.wait_type("message").await["reply_to"]["id"], first);
    a.send_json(&edit(id, "secret plans, revised", "e1")).await;
    let edit_seq = answer(&mut a, "e1").await["seq"].as_i64().unwrap();
    let unread = app.my_room(&bob, "general").await.unwrap()["unread"].clone();
    assert_eq!(unread, 1);

    refused(&mut b, delete(id, "d0"), "forbidden").await;
    a.send_json(&delete(id, "d1")).await;
    let echo = answer(&mut a, "d1").await;
    assert_eq!(echo["type"], "deleted", "{echo}");
    assert_eq!(
        (echo["id"].clone(), echo["by"].clone()),
        (json!(id), json!("alice"))
    );
    let seq = echo["seq"].as_i64().unwrap();
    assert_eq!(b.wait_type("deleted").await, echo);
    a.send_json(&delete(id, "d2")).await;
    assert_eq!(
        answer(&mut a, "d2").await["seq"],
        seq,
        "a repeat takes no position"
    );

    let m = in_history(&app, &bob, id).await;
    assert_eq!(
        m,
        json!({"id": id, "room": "general", "user": "alice",
        "ts": m["ts"], "deleted": true, "body": ""})
    );
    let got = app
        .api_ok(Method::GET, &format!("/api/messages/{id}"), &bob, None, 200)
        .await;
    assert_eq!(got["message"]["body"], "");
    assert!(got["message"].get("reply_to").is_none(), "{got}");
    assert!(result_ids(&app.search_ok(&bob, "plans", "").await).is_empty());
    assert_eq!(app.my_room(&bob, "general").await.unwrap()["unread"], 0);
    refused(&mut a, edit(id, "back again", "e2"), "unknown_message").await;
    // Its sender, having missed the answer, sends it again: the tombstone comes back to that
    // connection alone, with the nonce it is waiting on (nobody else sees a tombstone's).
    a.send_json(
        &json!({"type": "send", "room": "general", "body": "secret plans",
        "reply_to": first, "nonce": "m1"}),
    )
    .await;
    let again = answer(&mut a, "m1").await;
    assert_eq!(
        (
            &again["type"],
            &again["id"],
            &again["deleted"],
            &again["body"]
        ),
        (&json!("message"), &json!(id), &json!(true), &json!("")),
        "{again}"
    );

    // The replay: the edit carries no text any more, then the deletion.
    let mut r = app.ws_connect(&bob, Some(id)).await;
    let f = r.next_skipping(&["presence", "typing"]).await;
    assert_eq!(
        (f["type"].clone(), f["seq"].clone(), f["body"].clone()),
        (json!("edited"), json!(edit_seq), json!(""))
    );
    let f = r.next_skipping(&["presence", "typing"]).await;
    assert_eq!(
        (f["type"].clone(), f["seq"].clone()),
        (json!("deleted"), json!(seq))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_may_delete_anyones_message() {
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let bob = app.signup("bob").await;
    let mut b = app.ws_connect(&bob, None).await;
    let mut r = app.ws_connect(&admin, None).await;
    let id = id_of(&b.say("general", "spam spam", "m1").await);
    refused(&mut r, edit(id, "ham", "e1"), "forbidden").await;
    r.send_json(&delete(id, "d1")).await;
    let f = answer(&mut r, "d1").await;
    assert_eq!(
        (f["type"].clone(), f["by"].clone()),
        (json!("deleted"), json!("root"))
    );
    assert_eq!(b.wait_type("deleted").await["id"], id);
    assert_eq!(in_history(&app, &bob, id).await["deleted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_routes_read_edit_and_delete_with_their_status_codes() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let (_, dm) = app.open_dm(&alice, &["bob"]).await;
    let mut b = app.ws_connect(&bob, None).await;
    let mut a = app.ws_connect(&alice, None).await;
    let id = id_of(&a.say("general", "typo", "m1").await);
    let private = id_of(&a.say(dm["name"].as_str().unwrap(), "hush", "m2").await);
    let path = format!("/api/messages/{id}");

    let got = app.api_ok(Method::GET, &path, &bob, None, 200).await;
    assert_eq!(got["message"]["body"], "typo");
    let private_path = format!("/api/messages/{private}");
    app.api_err(
        Method::GET,
        &private_path,
        &carol,
        None,
        404,
        "unknown_message",
    )
    .await;
    app.api_err(
        Method::GET,
        "/api/messages/999999",
        &bob,
        None,
        404,
        "unknown_message",
    )
    .await;
    let body = json!({ "body": "fixed" });
    app.api_err(Method::PATCH, &path, &bob, Some(&body), 403, "forbidden")
        .await;
    let empty = json!({ "body": "  " });
    app.api_err(
        Method::PATCH,
        &path,
        &alice,
        Some(&empty),
        400,
        "empty_message",
    )
    .await;
    let got = app
        .api_ok(Method::PATCH, &path, &alice, Some(&body), 200)
        .await;
    assert_eq!(got["message"]["body"], "fixed");
    assert!(got["message"]["edited_ts"].is_string(), "{got}");
    let f = b.wait_type("edited").await;
    assert_eq!(
        (f["id"].clone(), f["body"].clone()),
        (json!(id), json!("fixed"))
    );
    assert!(f.get("nonce").is_none(), "{f}");

    app.api_err(Method::DELETE, &path, &bob, None, 403, "forbidden")
        .await;
    let (status, _) = app.api(Method::DELETE, &path, &alice, None).await;
    assert_eq!(status, 204);
    let (status, _) = app.api(Method::DELETE, &path, &alice, None).await;
    assert_eq!(status, 204, "deleting again is still 204");
    assert_eq!(b.wait_type("deleted").await["id"], id);
    let got = app.api_ok(Method::GET, &path, &bob, None, 200).await;
    assert_eq!(got["message"]["deleted"], true);
    assert_eq!(got["message"]["body"], "");
    app.api_err(
        Method::PATCH,
        &path,
        &alice,
        Some(&body),
        404,
        "unknown_message",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_the_websocket_frames_in_position_order_with_the_head() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let carol = app.signup("carol").await;
    app.create_room(&alice, "den", false).await;
    let mut a = app.ws_connect(&alice, None).await;
    let start = id_of(&a.say("general", "zero", "m0").await);
    let id = id_of(&a.say("general", "one", "m1").await);
    a.say("den", "not for carol", "m2").await;
    a.send_json(&edit(id, "one!", "e1")).await;
    let edited = answer(&mut a, "e1").await;
    let seq = edited["seq"].as_i64().unwrap();

    let got = app
        .api_ok(
            Method::GET,
            &format!("/api/events?after={start}"),
            &alice,
            None,
            200,
        )
        .await;
    let types: Vec<&str> = got["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["message", "message", "edited"]);
    assert_eq!(got["events"][0]["body"], "one!", "current state");
    let mut replayed = edited.clone();
    replayed.as_object_mut().unwrap().remove("nonce");
    assert_eq!(
        got["events"][2], replayed,
        "the frame as the WebSocket sends it"
    );
    assert_eq!(got["head"], seq);

    let got = app
        .api_ok(
            Method::GET,
            &format!("/api/events?after={start}&limit=1"),
            &carol,
            None,
            200,
        )
        .await;
    assert_eq!(got["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        got["events"][0]["id"], id,
        "nothing from a room carol is not in"
    );
    let got = app
        .api_ok(
            Method::GET,
            &format!("/api/events?after={id}"),
            &carol,
            None,
            200,
        )
        .await;
    assert_eq!(got["events"].as_array().unwrap().len(), 1, "{got}");
    app.api_err(
        Method::GET,
        "/api/events?after=-1",
        &carol,
        None,
        400,
        "bad_request",
    )
    .await;
    app.api_err(
        Method::GET,
        "/api/events?limit=0",
        &carol,
        None,
        400,
        "bad_request",
    )
    .await;
}

/// Make message `id` look `minutes` old. Raw SQL on purpose: only time can age a message, and
/// the test cannot wait for it.
async fn age(app: &TestApp, id: i64, minutes: i64) {
    app.server()
        .state()
        .db
        .write(move |c| {
            c.exec(
                "UPDATE messages SET created_at = created_at - ?1 WHERE id = ?2",
                args![minutes * 60_000, id],
            )
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authors_edit_and_delete_only_within_the_edit_window_and_administrators_always_delete() {
    let app = TestApp::builder()
        .config(|c| c.messages.edit_window_minutes = 5)
        .start()
        .await;
    let admin = app.signup_admin("root").await;
    let alice = app.signup("alice").await;
    let mut a = app.ws_connect(&alice, None).await;
    let fresh = id_of(&a.say("general", "fresh", "m1").await);
    let old = id_of(&a.say("general", "old", "m2").await);
    let older = id_of(&a.say("general", "older", "m3").await);
    age(&app, old, 6).await;
    age(&app, older, 6).await;

    a.send_json(&edit(fresh, "fresh, fixed", "e1")).await;
    assert_eq!(answer(&mut a, "e1").await["type"], "edited");
    refused(&mut a, edit(old, "too late", "e2"), "forbidden").await;
    refused(&mut a, delete(old, "d1"), "forbidden").await;
    let path = format!("/api/messages/{old}");
    let body = json!({ "body": "too late" });
    app.api_err(Method::PATCH, &path, &alice, Some(&body), 403, "forbidden")
        .await;
    app.api_err(Method::DELETE, &path, &alice, None, 403, "forbidden")
        .await;
    assert_eq!(in_history(&app, &alice, old).await["body"], "old");

    // An administrator deletes whatever and whenever.
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/messages/{older}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(in_history(&app, &alice, older).await["deleted"], true);
}
