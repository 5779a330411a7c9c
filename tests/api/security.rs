//! Cross-site protections (Origin checks), and what is stored about secrets.

use reqwest::Method;
use serde_json::json;

use crate::common::{assert_error, Auth, TestApp, PASSWORD};

const FOREIGN: &str = "https://evil.example";

async fn post_tokens(app: &TestApp, auth: &Auth, origin: Option<&str>) -> reqwest::Response {
    let mut rb = app
        .request(Method::POST, "/api/tokens", Some(auth))
        .json(&json!({ "name": "bot" }));
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    app.send(rb).await
}

async fn post_logout(app: &TestApp, auth: &Auth, origin: Option<&str>) -> reqwest::Response {
    let mut rb = app.request(Method::POST, "/api/logout", Some(auth));
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    app.send(rb).await
}

async fn post_credentials(
    app: &TestApp,
    path: &str,
    username: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut rb = app
        .request(Method::POST, path, None)
        .json(&json!({ "username": username, "password": PASSWORD }));
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    app.send(rb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_token_creation_without_origin_is_403_bad_origin() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let res = post_tokens(&app, &auth, None).await;

    assert_error(res, 403, "bad_origin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_token_creation_with_a_foreign_origin_is_403_bad_origin() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    for origin in [
        FOREIGN,
        "null",
        "http://127.0.0.1",
        "http://127.0.0.1:1",
        "http://localhost",
    ] {
        let res = post_tokens(&app, &auth, Some(origin)).await;

        assert_error(res, 403, "bad_origin").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_token_creation_with_the_same_origin_is_201() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let res = post_tokens(&app, &auth, Some(&app.base)).await;

    assert_eq!(res.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_logout_without_or_with_a_foreign_origin_is_403_and_keeps_the_session()
{
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    assert_error(post_logout(&app, &auth, None).await, 403, "bad_origin").await;
    assert_error(
        post_logout(&app, &auth, Some(FOREIGN)).await,
        403,
        "bad_origin",
    )
    .await;

    assert_eq!(app.get_as("/api/me", &auth).await.status(), 200);
    assert_eq!(
        post_logout(&app, &auth, Some(&app.base)).await.status(),
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_origin_referer_stands_in_for_a_missing_origin() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let res = app
        .send(
            app.request(Method::POST, "/api/logout", Some(&auth))
                .header("referer", format!("{}/chat?room=general", app.base)),
        )
        .await;

    assert_eq!(res.status(), 204);
    let foreign = app.signup("bob").await;
    let res = app
        .send(
            app.request(Method::POST, "/api/logout", Some(&foreign))
                .header("referer", format!("{FOREIGN}/page")),
        )
        .await;
    assert_error(res, 403, "bad_origin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_authenticated_state_changes_need_no_origin() {
    let app = TestApp::start().await;
    let (_, cookie) = app.register("alice", PASSWORD).await;
    let bot = Auth::Bearer(app.token(&cookie).await);

    let res = post_tokens(&app, &bot, None).await;

    assert_eq!(res.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_login_with_a_foreign_origin_are_403_bad_origin() {
    let app = TestApp::start().await;

    let res = post_credentials(&app, "/api/register", "alice", Some(FOREIGN)).await;
    assert_error(res, 403, "bad_origin").await;
    app.register("bob", PASSWORD).await;
    let res = post_credentials(&app, "/api/login", "bob", Some(FOREIGN)).await;

    assert_error(res, 403, "bad_origin").await;
    // The refused registration created nothing.
    app.register("alice", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_login_without_an_origin_or_with_the_same_origin_are_allowed() {
    let app = TestApp::start().await;

    let res = post_credentials(&app, "/api/register", "alice", None).await;
    assert_eq!(res.status(), 201);
    let res = post_credentials(&app, "/api/register", "bob", Some(&app.base)).await;
    assert_eq!(res.status(), 201);
    let res = post_credentials(&app, "/api/login", "alice", None).await;
    assert_eq!(res.status(), 200);
    let res = post_credentials(&app, "/api/login", "bob", Some(&app.base)).await;

    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_public_url_the_origin_must_match_it_exactly() {
    let app =
        TestApp::with_config(|c| c.server.public_url = "https://chat.example.org".into()).await;

    for wrong in [
        "http://chat.example.org",
        "https://chat.example.org:8443",
        "https://evil.chat.example.org",
        app.base.as_str(),
    ] {
        let res = post_credentials(&app, "/api/register", "alice", Some(wrong)).await;
        assert_error(res, 403, "bad_origin").await;
    }
    let res = post_credentials(
        &app,
        "/api/register",
        "alice",
        Some("https://chat.example.org"),
    )
    .await;

    assert_eq!(res.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_the_origin_is_compared_with_the_host_used() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let res = app
        .send(
            app.request(Method::POST, "/api/tokens", Some(&auth))
                .header("host", "192.168.1.20:12345")
                .header("origin", "http://192.168.1.20:12345")
                .json(&json!({ "name": "bot" })),
        )
        .await;

    assert_eq!(res.status(), 201);
    let res = app
        .send(
            app.request(Method::POST, "/api/tokens", Some(&auth))
                .header("host", "192.168.1.20:12345")
                .header("origin", &app.base)
                .json(&json!({ "name": "bot" })),
        )
        .await;
    assert_error(res, 403, "bad_origin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_with_a_foreign_origin_is_refused_with_403() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let refused = app.try_ws(Some(&auth), "", Some(FOREIGN)).await;

    assert_eq!(refused.err().map(|e| e.0), Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origin_is_compared_with_the_host_used_when_no_public_url_is_set() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let lan = "192.168.1.20:12345";

    let same = app
        .try_ws_with_host(&auth, lan, "http://192.168.1.20:12345")
        .await;
    let other = app.try_ws_with_host(&auth, lan, &app.base).await;

    assert!(same.is_ok(), "the origin of the Host used was refused");
    assert_eq!(other.err().map(|e| e.0), Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_with_the_same_origin_or_none_is_accepted() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let with_origin = app.try_ws(Some(&auth), "", Some(&app.base)).await;
    let without = app.try_ws(Some(&auth), "", None).await;

    assert!(with_origin.is_ok(), "same origin refused");
    assert!(without.is_ok(), "no origin refused");
}

fn db_bytes(app: &TestApp) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal"] {
        let mut p = app.db_path().into_os_string();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(&p) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_stored_as_salted_pbkdf2_phc_strings_never_in_clear() {
    if crate::common::sqlite_only("reading the database file") {
        return;
    }
    let mut app = TestApp::start().await;
    let secret = "a very distinctive password 8472";
    app.register("alice", secret).await;
    app.register("bob", secret).await;
    app.stop().await;

    let conn = rusqlite::Connection::open(app.db_path()).expect("opens the database");
    let hashes: Vec<String> = conn
        .prepare("SELECT password_hash FROM users ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();

    assert_eq!(hashes.len(), 2);
    for h in &hashes {
        assert!(h.starts_with("$pbkdf2-sha256$i=1000"), "{h}");
        assert_eq!(h.split('$').count(), 5, "PHC string: {h}");
    }
    assert_ne!(hashes[0], hashes[1], "a random salt per user");
    assert!(!contains(&db_bytes(&app), secret.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_and_bot_tokens_are_not_stored_in_clear() {
    let mut app = TestApp::start().await;
    let (_, cookie) = app.register("alice", PASSWORD).await;
    let token = app.token(&cookie).await;
    app.stop().await;

    let bytes = db_bytes(&app);

    assert!(
        !contains(&bytes, cookie.as_bytes()),
        "session token in the database"
    );
    assert!(
        !contains(&bytes, token.as_bytes()),
        "bot token in the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_in_a_message_is_stored_and_delivered_verbatim() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;
    let body = r#"<img src=x onerror="alert(1)"> & <b>bold</b>"#;

    let ack = ws.send_and_ack(body, "html-1").await;

    assert_eq!(ack["body"], body);
    let history = app.history(&auth, "general", "").await;
    assert_eq!(history[0]["body"], body);
}
