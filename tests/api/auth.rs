//! Accounts and sessions: register, login, logout, `/api/me`, bot tokens, throttling.

use reqwest::Method;
use serde_json::json;

use crate::common::{
    assert_error, json_body, session_cookie, set_cookie, text, Auth, TestApp, PASSWORD,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_is_201_with_the_user_and_a_working_session_cookie() {
    let app = TestApp::start().await;

    let res = app.try_register("alice", PASSWORD).await;

    assert_eq!(res.status(), 201);
    let cookie = session_cookie(&res).expect("a hearth_session cookie");
    let body = json_body(res).await;
    assert_eq!(body["user"]["username"], "alice");
    assert!(body["user"]["id"].is_i64(), "{body}");
    let me = json_body(app.get_as("/api/me", &Auth::Cookie(cookie)).await).await;
    assert_eq!(me["user"], body["user"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_is_httponly_samesite_lax_path_root_and_not_secure_over_http() {
    let app = TestApp::start().await;

    let res = app.try_register("alice", PASSWORD).await;

    let header = set_cookie(&res).expect("a hearth_session cookie");
    let attrs: Vec<String> = header
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attrs.contains(&"httponly".into()), "{header}");
    assert!(attrs.contains(&"samesite=lax".into()), "{header}");
    assert!(attrs.contains(&"path=/".into()), "{header}");
    assert!(!attrs.contains(&"secure".into()), "{header}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_is_secure_when_the_public_url_is_https() {
    let app =
        TestApp::with_config(|c| c.server.public_url = "https://chat.example.org".into()).await;

    let res = app.try_register("alice", PASSWORD).await;
    assert_eq!(res.status(), 201);
    let login = app.try_login("alice", PASSWORD).await;

    for header in [set_cookie(&res), set_cookie(&login)] {
        let header = header.expect("a hearth_session cookie");
        let attrs: Vec<String> = header
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        assert!(attrs.contains(&"secure".into()), "{header}");
        assert!(attrs.contains(&"httponly".into()), "{header}");
        assert!(attrs.contains(&"samesite=lax".into()), "{header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_an_invalid_username_is_400_invalid_username() {
    let app = TestApp::start().await;
    let too_long = "a".repeat(33);

    for name in [
        "",
        too_long.as_str(),
        "with space",
        "émile",
        "a/b",
        "<script>",
        "semi;colon",
        "tab\there",
    ] {
        let res = app.try_register(name, PASSWORD).await;

        assert_error(res, 400, "invalid_username").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_accepts_32_characters_of_letters_digits_underscore_dot_and_dash() {
    let app = TestApp::start().await;
    let name = format!("Az09_.-{}", "x".repeat(25));
    assert_eq!(name.len(), 32);

    let (user, _) = app.register(&name, PASSWORD).await;

    assert_eq!(user["username"], name.as_str());
    let (single, _) = app.register("q", PASSWORD).await;
    assert_eq!(single["username"], "q");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_a_password_under_8_bytes_is_400_weak_password() {
    let app = TestApp::start().await;

    // 7 ASCII bytes, and 6 bytes of 3 two-byte characters: both too short.
    for pw in ["1234567", "ééé", ""] {
        let res = app.try_register("alice", pw).await;

        assert_error(res, 400, "weak_password").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_accepts_passwords_of_exactly_8_and_1024_bytes() {
    let app = TestApp::start().await;

    app.register("eight", "12345678").await;
    app.register("multibyte", "éééé").await; // 4 characters, 8 bytes
    app.register("max", &"p".repeat(1024)).await;

    app.login("max", &"p".repeat(1024)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_a_password_over_1024_bytes_is_400_password_too_long() {
    let app = TestApp::start().await;

    let res = app.try_register("alice", &"p".repeat(1025)).await;

    assert_error(res, 400, "password_too_long").await;
    // 513 two-byte characters: 1026 bytes.
    let res = app.try_register("alice", &"é".repeat(513)).await;
    assert_error(res, 400, "password_too_long").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_a_name_taken_in_another_case_is_409_username_taken() {
    let app = TestApp::start().await;
    app.register("alice", PASSWORD).await;

    let res = app.try_register("Alice", PASSWORD).await;

    assert_error(res, 409, "username_taken").await;
    assert_error(
        app.try_register("alice", "another password").await,
        409,
        "username_taken",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_missing_or_wrongly_typed_fields_is_400_bad_request() {
    let app = TestApp::start().await;

    for body in [
        json!({}),
        json!({ "username": "alice" }),
        json!({ "password": PASSWORD }),
        json!({ "username": 1, "password": PASSWORD }),
        json!({ "username": "alice", "password": 12345678 }),
        json!({ "username": null, "password": PASSWORD }),
        json!({ "username": ["alice"], "password": PASSWORD }),
        json!([]),
        json!("alice"),
        json!(null),
    ] {
        let res = app.post_json("/api/register", &body).await;

        assert_error(res, 400, "bad_request").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_login_with_malformed_json_are_400_bad_request() {
    let app = TestApp::start().await;

    for path in ["/api/register", "/api/login"] {
        for raw in ["{", "{\"username\":\"a\",", "not json", "\u{0}", " "] {
            let res = app
                .send(
                    app.request(Method::POST, path, None)
                        .header("content-type", "application/json")
                        .body(raw),
                )
                .await;

            assert_error(res, 400, "bad_request").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_a_non_json_content_type_is_415() {
    let app = TestApp::start().await;
    let body = json!({ "username": "alice", "password": PASSWORD }).to_string();

    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut rb = app
            .request(Method::POST, "/api/register", None)
            .body(body.clone());
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        let res = app.send(rb).await;

        assert_error(res, 415, "unsupported_media_type").await;
    }
    // No body and no type at all: a missing body, 400 like a missing field.
    let res = app
        .send(app.request(Method::POST, "/api/register", None))
        .await;
    assert_error(res, 400, "bad_request").await;
    // Nothing was created by the refused requests.
    app.register("alice", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_a_huge_body_is_413() {
    let app = TestApp::start().await;
    let body = json!({ "username": "alice", "password": "x".repeat(64 * 1024) });

    let res = app.post_json("/api/register", &body).await;

    assert_error(res, 413, "payload_too_large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_200_with_a_new_session_cookie_different_from_the_register_one() {
    let app = TestApp::start().await;
    let (registered, first) = app.register("alice", PASSWORD).await;

    let res = app.try_login("alice", PASSWORD).await;

    assert_eq!(res.status(), 200);
    let second = session_cookie(&res).expect("a hearth_session cookie");
    let body = json_body(res).await;
    assert_eq!(body["user"], registered);
    assert_ne!(first, second);
    for cookie in [first, second] {
        let me = app.get_as("/api/me", &Auth::Cookie(cookie)).await;
        assert_eq!(me.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_wrong_password_is_401_invalid_credentials() {
    let app = TestApp::start().await;
    app.register("alice", PASSWORD).await;

    let res = app.try_login("alice", "not the password").await;

    assert!(session_cookie(&res).is_none(), "no cookie on failure");
    assert_error(res, 401, "invalid_credentials").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_of_an_unknown_user_gets_exactly_the_wrong_password_answer() {
    let app = TestApp::start().await;
    app.register("alice", PASSWORD).await;

    let wrong_pw = app.try_login("alice", "not the password").await;
    let unknown = app.try_login("mallory", "not the password").await;
    let invalid_name = app.try_login("not a valid name!", "not the password").await;

    let mut answers = Vec::new();
    for res in [wrong_pw, unknown, invalid_name] {
        let status = res.status();
        let ct = res.headers().get("content-type").cloned();
        let retry = res.headers().get("retry-after").cloned();
        let body = text(res).await;
        answers.push((status, ct, retry, body));
    }
    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0], answers[1], "unknown user vs wrong password");
    assert_eq!(answers[0], answers[2], "invalid name vs wrong password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_failed_logins_for_one_username_make_the_next_one_429_too_many_attempts() {
    let app = TestApp::start().await;
    app.register("alice", PASSWORD).await;

    for _ in 0..10 {
        let res = app.try_login("alice", "not the password").await;
        assert_error(res, 401, "invalid_credentials").await;
    }
    let res = app.try_login("alice", "not the password").await;

    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is a number of seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    assert_error(res, 429, "too_many_attempts").await;
    // Locked means locked: the right password does not get through either.
    let res = app.try_login("alice", PASSWORD).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "too_many_attempts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_failed_logins_for_a_username_that_does_not_exist_are_throttled_the_same_way() {
    let app = TestApp::start().await;

    for _ in 0..10 {
        let res = app.try_login("ghost", "not the password").await;
        assert_error(res, 401, "invalid_credentials").await;
    }
    let res = app.try_login("ghost", "not the password").await;

    assert!(res.headers().contains_key("retry-after"), "Retry-After");
    assert_error(res, 429, "too_many_attempts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_locked_account_does_not_lock_other_accounts() {
    let app = TestApp::start().await;
    app.register("alice", PASSWORD).await;
    app.register("bob", PASSWORD).await;
    for _ in 0..11 {
        app.try_login("alice", "not the password").await;
    }

    let res = app.try_login("bob", PASSWORD).await;

    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_is_204_and_revokes_the_session_server_side() {
    let app = TestApp::start().await;
    let (_, cookie) = app.register("alice", PASSWORD).await;
    let auth = Auth::Cookie(cookie);

    let res = app
        .send(
            app.request(Method::POST, "/api/logout", Some(&auth))
                .header("origin", &app.base),
        )
        .await;

    assert_eq!(res.status(), 204);
    // The old cookie no longer works, even though the client could keep sending it.
    let me = app.get_as("/api/me", &auth).await;
    assert_error(me, 401, "unauthorized").await;
    let refused = app.try_ws(Some(&auth), "", None).await;
    assert_eq!(refused.err().map(|e| e.0), Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_leaves_the_users_other_sessions_signed_in() {
    let app = TestApp::start().await;
    let (_, first) = app.register("alice", PASSWORD).await;
    let (_, second) = app.login("alice", PASSWORD).await;

    let res = app
        .send(
            app.request(Method::POST, "/api/logout", Some(&Auth::Cookie(first)))
                .header("origin", &app.base),
        )
        .await;

    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_as("/api/me", &Auth::Cookie(second)).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_that_sessions_open_websocket_with_4001() {
    let app = TestApp::start().await;
    let (_, cookie) = app.register("alice", PASSWORD).await;
    let auth = Auth::Cookie(cookie);
    let mut ws = app.ws_connect(&auth, None).await;

    let res = app
        .send(
            app.request(Method::POST, "/api/logout", Some(&auth))
                .header("origin", &app.base),
        )
        .await;
    assert_eq!(res.status(), 204);

    assert_eq!(ws.expect_close().await, 4001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_without_credentials_is_401_unauthorized() {
    let app = TestApp::start().await;

    assert_error(app.get("/api/me").await, 401, "unauthorized").await;
    let bogus = Auth::Cookie("not-a-real-session".into());
    assert_error(app.get_as("/api/me", &bogus).await, 401, "unauthorized").await;
    let forged = Auth::Cookie("A".repeat(43));
    assert_error(app.get_as("/api/me", &forged).await, 401, "unauthorized").await;
    let bearer = Auth::Bearer("A".repeat(43));
    assert_error(app.get_as("/api/me", &bearer).await, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_201_and_work_as_bearer_for_me_and_the_websocket() {
    let app = TestApp::start().await;
    let (user, cookie) = app.register("alice", PASSWORD).await;

    let res = app
        .send(
            app.request(
                Method::POST,
                "/api/tokens",
                Some(&Auth::Cookie(cookie.clone())),
            )
            .header("origin", &app.base)
            .json(&json!({ "name": "deploy bot" })),
        )
        .await;

    assert_eq!(res.status(), 201);
    let body = json_body(res).await;
    let token = body["token"].as_str().expect("a token string").to_string();
    assert!(!token.is_empty());
    assert_ne!(token, cookie);
    let bot = Auth::Bearer(token);
    let me = json_body(app.get_as("/api/me", &bot).await).await;
    assert_eq!(me["user"], user);
    let mut ws = app.ws_connect(&bot, None).await;
    assert_eq!(ws.ready["user"], user);
    let ack = ws.send_and_ack("beep", "bot-1").await;
    assert_eq!(ack["user"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_lists_general_for_every_user() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let body = json_body(app.get_as("/api/rooms", &auth).await).await;

    let rooms = body["rooms"].as_array().expect("rooms array");
    let general = rooms
        .iter()
        .find(|r| r["name"] == "general")
        .unwrap_or_else(|| panic!("no general room in {body}"));
    assert!(general["id"].is_i64(), "{general}");
    assert_error(app.get("/api/rooms").await, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_an_empty_body_is_400_bad_request() {
    let app = TestApp::start().await;

    for framing in ["Content-Length: 0\r\n", ""] {
        let req = format!(
            "POST /api/register HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             {framing}Connection: close\r\n\r\n",
            app.addr
        );
        let res = crate::common::raw_http(app.addr, req.as_bytes()).await;

        assert_eq!(res.status, 400, "{framing:?}: {}", res.body);
        let body: serde_json::Value = serde_json::from_str(&res.body).expect("JSON");
        crate::common::assert_error_shape(&body, "bad_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_failed_logins_from_one_address_make_the_next_one_429() {
    let app = TestApp::start().await;
    app.register("alice", PASSWORD).await;

    for i in 0..50 {
        let res = app
            .try_login(&format!("guess{i}"), "not the password")
            .await;
        assert_error(res, 401, "invalid_credentials").await;
    }
    let res = app.try_login("alice", "not the password").await;

    assert!(res.headers().contains_key("retry-after"), "Retry-After");
    assert_error(res, 429, "too_many_attempts").await;
}
