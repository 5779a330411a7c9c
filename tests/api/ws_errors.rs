//! Refused upgrades and refused frames: every `error` code, and the connection stays usable.

use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{assert_error_shape, raw_http, send_frame, Auth, TestApp, Ws};

/// After an error frame the same connection must still deliver a message.
async fn assert_still_works(ws: &mut Ws, nonce: &str) {
    let ack = ws.send_and_ack("still here", nonce).await;
    assert_eq!(ack["body"], "still here");
}

/// The next frame, which must be an `error` with `code`.
async fn expect_error(ws: &mut Ws, code: &str) -> Value {
    let f = ws.next_skipping(&["presence", "typing"]).await;
    assert_eq!(f["type"], "error", "expected a {code} error, got {f}");
    assert_eq!(f["code"], code, "{f}");
    assert!(
        f["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error frames carry a message: {f}"
    );
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_without_credentials_is_refused_with_401() {
    let app = TestApp::start().await;

    let none = app.try_ws(None, "", None).await;
    let bogus = app
        .try_ws(Some(&Auth::Cookie("nope".into())), "", None)
        .await;
    let bearer = app
        .try_ws(Some(&Auth::Bearer("A".repeat(43))), "", None)
        .await;

    assert_eq!(none.err().map(|e| e.0), Some(401));
    assert_eq!(bogus.err().map(|e| e.0), Some(401));
    assert_eq!(bearer.err().map(|e| e.0), Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_answers_with_the_json_error_shape() {
    let app = TestApp::start().await;

    let res = raw_http(
        app.addr,
        format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            app.addr
        )
        .as_bytes(),
    )
    .await;

    assert_eq!(res.status, 401, "{res:?}");
    let body: Value = serde_json::from_str(&res.body).expect("JSON body");
    assert_error_shape(&body, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_that_is_not_a_whole_number_is_refused_with_400() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    for q in ["since=abc", "since=-1", "since=1.5"] {
        let refused = app.try_ws(Some(&auth), q, None).await;

        assert_eq!(refused.err().map(|e| e.0), Some(400), "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whitespace_only_body_is_empty_message() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;

    ws.send_json(&send_frame(" \n\t  \r\n", Some("e-1"))).await;

    let err = expect_error(&mut ws, "empty_message").await;
    assert_eq!(err["nonce"], "e-1");
    ws.send_json(&send_frame("", None)).await;
    let err = expect_error(&mut ws, "empty_message").await;
    assert!(err["nonce"].is_null(), "{err}");
    assert_still_works(&mut ws, "e-2").await;
    assert_eq!(app.history(&auth, "general", "").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_4001_characters_is_message_too_long() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;

    ws.send_json(&send_frame(&"a".repeat(4001), Some("long")))
        .await;

    let err = expect_error(&mut ws, "message_too_long").await;
    assert_eq!(err["nonce"], "long");
    ws.send_json(&send_frame(&"é".repeat(4001), None)).await;
    expect_error(&mut ws, "message_too_long").await;
    assert_still_works(&mut ws, "after-long").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_4000_multibyte_characters_is_accepted() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;
    let body = "é".repeat(3999) + "🔥";
    // Surrounding whitespace does not count.
    let padded = format!("   {body}\n\n");

    let ack = ws.send_and_ack(&padded, "max").await;

    assert_eq!(ack["body"], body.as_str());
    assert_eq!(
        app.history(&auth, "general", "").await[0]["body"],
        body.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_to_a_room_that_does_not_exist_is_unknown_room() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;

    ws.send_json(&json!({ "type": "send", "room": "nowhere", "body": "hi", "nonce": "u-1" }))
        .await;

    let err = expect_error(&mut ws, "unknown_room").await;
    assert_eq!(err["nonce"], "u-1");
    ws.send_json(&json!({ "type": "typing", "room": "nowhere" }))
        .await;
    expect_error(&mut ws, "unknown_room").await;
    assert_still_works(&mut ws, "u-2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_bad_frame_and_the_connection_stays_open() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;
    let long_nonce = "n".repeat(65);

    for (what, raw) in [
        ("not JSON", "hello".to_string()),
        ("truncated JSON", r#"{"type":"send","room":"#.to_string()),
        ("a JSON array", "[1,2,3]".to_string()),
        ("a JSON string", r#""send""#.to_string()),
        (
            "no type",
            json!({ "room": "general", "body": "x" }).to_string(),
        ),
        (
            "unknown type",
            json!({ "type": "shout", "room": "general" }).to_string(),
        ),
        (
            "missing body",
            json!({ "type": "send", "room": "general" }).to_string(),
        ),
        (
            "missing room",
            json!({ "type": "send", "body": "x" }).to_string(),
        ),
        (
            "room not a string",
            json!({ "type": "send", "room": 1, "body": "x" }).to_string(),
        ),
        (
            "body not a string",
            json!({ "type": "send", "room": "general", "body": 5 }).to_string(),
        ),
        (
            "nonce not a string",
            json!({ "type": "send", "room": "general", "body": "x", "nonce": 7 }).to_string(),
        ),
        (
            "65-character nonce",
            json!({ "type": "send", "room": "general", "body": "x", "nonce": long_nonce })
                .to_string(),
        ),
        (
            "typing without room",
            json!({ "type": "typing" }).to_string(),
        ),
    ] {
        ws.send_text(&raw).await;

        let f = ws.next_skipping(&["presence", "typing"]).await;
        assert_eq!(f["type"], "error", "{what}: {f}");
        assert_eq!(f["code"], "bad_frame", "{what}: {f}");
    }

    assert_still_works(&mut ws, &"n".repeat(64)).await;
    assert_eq!(app.history(&auth, "general", "").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_frame_is_bad_frame_and_the_connection_stays_open() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;

    ws.send_raw(Message::binary(
        send_frame("binary", None).to_string().into_bytes(),
    ))
    .await;

    expect_error(&mut ws, "bad_frame").await;
    assert_still_works(&mut ws, "after-binary").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_faster_than_the_rate_limit_is_rate_limited_with_retry_after_ms() {
    let app = TestApp::with_config(|c| {
        c.limits.messages_per_second = 1.0;
        c.limits.message_burst = 2;
    })
    .await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;

    ws.send_all(&[
        send_frame("one", Some("r-1")),
        send_frame("two", Some("r-2")),
        send_frame("three", Some("r-3")),
    ])
    .await;

    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..3 {
        let f = ws.next_skipping(&["presence", "typing"]).await;
        match f["type"].as_str() {
            Some("message") => acked.push(f["nonce"].as_str().unwrap().to_string()),
            Some("error") => refused.push(f),
            _ => panic!("unexpected frame {f}"),
        }
    }
    acked.sort();
    assert_eq!(acked, ["r-1", "r-2"]);
    assert_eq!(refused.len(), 1);
    let err = &refused[0];
    assert_eq!(err["code"], "rate_limited");
    assert_eq!(err["nonce"], "r-3");
    let retry = err["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(retry > 0 && retry <= 1000, "retry_after_ms {retry}");
    assert_eq!(app.history(&auth, "general", "").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_64_kib_closes_the_connection_with_1009() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;

    ws.send_json(&send_frame(&"x".repeat(64 * 1024 + 1), None))
        .await;

    assert_eq!(ws.expect_close().await, 1009);
    assert!(app.history(&auth, "general", "").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_per_user_across_all_their_connections() {
    let app = TestApp::with_config(|c| {
        c.limits.messages_per_second = 1.0;
        c.limits.message_burst = 2;
    })
    .await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut a2 = app.ws_connect(&alice, None).await;
    let mut b = app.ws_connect(&bob, None).await;
    a1.send_and_ack("one", "pu-1").await;
    a2.send_and_ack("two", "pu-2").await;
    assert_eq!(a1.next_of_type("message").await["nonce"], "pu-2");

    a1.send_json(&send_frame("three", Some("pu-3"))).await;

    let err = expect_error(&mut a1, "rate_limited").await;
    assert_eq!(err["nonce"], "pu-3");
    assert!(
        err["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{err}"
    );
    // Another user has a bucket of their own.
    b.send_and_ack("bob is fine", "pu-b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_are_limited_to_64_characters_not_bytes() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;

    let ack = ws.send_and_ack("multibyte nonce", &"é".repeat(64)).await;
    assert_eq!(ack["nonce"], "é".repeat(64));

    ws.send_json(&send_frame("too long", Some(&"é".repeat(65))))
        .await;
    let refused = expect_error(&mut ws, "bad_frame").await;
    // The error names the frame's nonce, the one refused for its length too.
    assert_eq!(refused["nonce"], "é".repeat(65), "{refused}");
    assert_still_works(&mut ws, "after-nonce").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_frames_echo_the_nonce_of_the_refused_frame() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;

    ws.send_json(&json!({ "type": "send", "room": "general", "nonce": "no-body" }))
        .await;
    let missing_body = expect_error(&mut ws, "bad_frame").await;
    ws.send_json(&json!({ "type": "send", "room": "general", "body": 1, "nonce": "typed" }))
        .await;
    let wrong_type = expect_error(&mut ws, "bad_frame").await;

    assert_eq!(missing_body["nonce"], "no-body");
    assert_eq!(wrong_type["nonce"], "typed");
}

/// Assert `res` is a 429 whose `Retry-After` is within the next token's 10 s.
fn refused_for_a_while(res: &reqwest::Response) {
    assert_eq!(res.status().as_u16(), 429);
    let after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&after), "Retry-After {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_others_see_spends_the_change_rate() {
    // Three changes and five messages per user, the next token 10 s away: no refill during
    // the test.
    let app = TestApp::with_config(|c| {
        c.limits.changes_per_second = 0.1;
        c.limits.change_burst = 3;
        c.limits.messages_per_second = 0.1;
        c.limits.message_burst = 5;
    })
    .await;

    // Edits and reactions over the WebSocket: three changes, then `rate_limited` with when to
    // retry, echoing the nonce; messages have a budget of their own and still go out.
    for (who, frame) in [
        (
            "editor",
            json!({"type": "edit", "body": "again", "nonce": "x"}),
        ),
        (
            "reactor",
            json!({"type": "react", "emoji": "👍", "on": true, "nonce": "x"}),
        ),
    ] {
        let auth = app.signup(who).await;
        let mut ws = app.ws_connect(&auth, None).await;
        let ack = ws.send_and_ack("first", &format!("{who}-1")).await;
        let id = ack["id"].as_i64().unwrap();
        for (i, on) in [true, false, true, false].into_iter().enumerate() {
            let mut f = frame.clone();
            f["id"] = json!(id);
            f["on"] = json!(on);
            f["body"] = json!(format!("again {i}"));
            f["nonce"] = json!(format!("{who}-c{i}"));
            if frame["type"] == "edit" {
                f.as_object_mut().unwrap().remove("on");
            } else {
                f.as_object_mut().unwrap().remove("body");
            }
            ws.send_json(&f).await;
            let got = ws.next_skipping(&["presence", "typing"]).await;
            if i < 3 {
                assert_ne!(got["type"], "error", "{who}'s change {i}: {got}");
                continue;
            }
            assert_eq!(got["code"], "rate_limited", "{who}: {got}");
            assert_eq!(got["nonce"], format!("{who}-c{i}"));
            let ms = got["retry_after_ms"].as_u64().expect("retry_after_ms");
            assert!(ms > 1000 && ms <= 10_000, "{who}: retry after {ms} ms");
        }
        ws.send_and_ack("still talking", &format!("{who}-2")).await;
    }

    // Deletions, a room's topic and one's profile over HTTP: 429 with Retry-After once three
    // tokens are spent.
    let deleter = app.signup("deleter").await;
    let mut ids = Vec::new();
    for body in ["one", "two", "three", "four"] {
        let path = "/api/rooms/general/messages";
        let m = app
            .api_ok(
                Method::POST,
                path,
                &deleter,
                Some(&json!({ "body": body })),
                201,
            )
            .await;
        ids.push(m["message"]["id"].as_i64().unwrap());
    }
    for id in &ids[..3] {
        let path = format!("/api/messages/{id}");
        app.api_ok(Method::DELETE, &path, &deleter, None, 204).await;
    }
    let path = format!("/api/messages/{}", ids[3]);
    app.api_err(Method::DELETE, &path, &deleter, None, 429, "rate_limited")
        .await;

    let topics = app.signup("topics").await;
    app.create_room(&topics, "loop", true).await;
    for i in 0..3 {
        let body = json!({ "topic": format!("topic {i}") });
        app.api_ok(Method::PATCH, "/api/rooms/loop", &topics, Some(&body), 200)
            .await;
    }
    let body = json!({ "topic": "one too many" });
    app.api_err(
        Method::PATCH,
        "/api/rooms/loop",
        &topics,
        Some(&body),
        429,
        "rate_limited",
    )
    .await;
    let room = app.my_room(&topics, "loop").await.expect("the room");
    assert_eq!(room["topic"], "topic 2");

    // Joining and leaving: every member is told. What changes nothing, or is refused, is
    // free: joining a room one is in, an unknown room, leaving a room one is not in, a bulk
    // leave of nothing.
    let mover = app.signup("mover").await;
    app.create_room(&topics, "other", true).await;
    for path in ["loop/join", "loop/join", "nowhere/join", "other/leave"] {
        let path = format!("/api/rooms/{path}");
        let (status, v) = app.api(Method::POST, &path, &mover, None).await;
        assert!(status < 500 && status != 429, "{path}: {status} {v}");
    }
    let nothing = json!({ "rooms": ["other", "nowhere", "general"] });
    let v = app
        .api_ok(
            Method::POST,
            "/api/rooms/leave",
            &mover,
            Some(&nothing),
            200,
        )
        .await;
    assert_eq!(v["left"], json!([]));
    // Token 1 was the first join. Joining `other` (2), then one bulk leave of both rooms (3,
    // for two rooms), then a join refused with when to retry.
    app.api_ok(Method::POST, "/api/rooms/other/join", &mover, None, 200)
        .await;
    let both = json!({ "rooms": ["loop", "other"] });
    let v = app
        .api_ok(Method::POST, "/api/rooms/leave", &mover, Some(&both), 200)
        .await;
    assert_eq!(v["left"], json!(["loop", "other"]));
    let res = app
        .send(
            app.request(Method::POST, "/api/rooms/loop/join", Some(&mover))
                .header("origin", &app.base),
        )
        .await;
    refused_for_a_while(&res);
    assert!(app.my_room(&mover, "loop").await.is_none(), "not joined");

    let profile = app.signup("profile").await;
    for i in 0..3 {
        let body = json!({ "status": format!("status {i}") });
        app.api_ok(Method::PATCH, "/api/me", &profile, Some(&body), 200)
            .await;
    }
    let res = app
        .send(
            app.request(Method::PATCH, "/api/me", Some(&profile))
                .header("origin", &app.base)
                .json(&json!({ "status": "one too many" })),
        )
        .await;
    refused_for_a_while(&res);
    // Taking one's picture away is told to everyone too.
    app.api_err(
        Method::DELETE,
        "/api/me/avatar",
        &profile,
        None,
        429,
        "rate_limited",
    )
    .await;
}

/// A client's close is answered with a close frame (its code echoed) before the connection
/// ends, so a browser's `close()` ends cleanly (1000, not 1006).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_client_is_answered_with_a_close() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;
    ws.send_raw(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await;
    let mut inner = ws.into_inner();
    let answer = loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), inner.next())
            .await
            .expect("an answer within 5 s");
        match next {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue, // presence and the like, sent before the close
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(answer.map(|f| u16::from(f.code)), Some(1000));
}
