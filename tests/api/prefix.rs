//! Serving under a path prefix: with `public_url = "https://example.org/chat/"` the page, its
//! assets, `/config.js`, the JSON API and the WebSocket all answer under `/chat/`, the session
//! cookie is scoped to `/chat/`, `/chat` redirects to `/chat/`, and requests without the
//! prefix (from a proxy that strips it) are served as before.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::common::{
    json_body, raw_http, send_frame, session_cookie, set_cookie, text, Auth, TestApp, PASSWORD,
};

const ORIGIN: &str = "https://example.org";

async fn start(public_url: &str) -> TestApp {
    let public_url = public_url.to_string();
    TestApp::with_config(move |c| c.server.public_url = public_url).await
}

/// `POST path` with the public Origin and an optional session.
async fn post(app: &TestApp, path: &str, who: Option<&Auth>, body: Value) -> Response {
    app.send(
        app.request(Method::POST, path, who)
            .header("origin", ORIGIN)
            .json(&body),
    )
    .await
}

/// The session cookie line of a response that must set one.
fn cookie_line(res: &Response) -> String {
    set_cookie(res).expect("a Set-Cookie header")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_assets_config_api_and_websocket_answer_under_the_prefix() {
    let mut app = start("https://example.org/chat/").await;

    // The page and its assets.
    let page = app.get("/chat/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("connect-src 'self' wss://example.org;"),
        "the CSP allows the WebSocket URL: {csp}"
    );
    assert!(text(page).await.contains("<html"));
    for asset in [
        "/chat/index.html",
        "/chat/main.css",
        "/chat/js/app.js",
        "/chat/sw.js",
    ] {
        assert_eq!(app.get(asset).await.status(), StatusCode::OK, "{asset}");
    }
    assert_eq!(
        app.get("/chat/nope.css").await.status(),
        StatusCode::NOT_FOUND
    );

    // config.js: the URL without its trailing slash, the WebSocket under the prefix.
    let js = app.get("/chat/config.js").await;
    assert_eq!(js.status(), StatusCode::OK);
    assert_eq!(
        text(js).await.trim_end(),
        r#"window.HEARTH = {"url":"https://example.org/chat","ws":"wss://example.org/chat/ws"};"#
    );

    // Register and sign in: the cookie is scoped to the prefix (and Secure: the URL is https).
    let credentials = json!({"username":"pat","password":PASSWORD});
    let res = post(&app, "/chat/api/register", None, credentials.clone()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let line = cookie_line(&res);
    assert!(line.contains("; Path=/chat/;"), "{line}");
    assert!(line.contains("; Secure"), "{line}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let res = post(&app, "/chat/api/login", None, credentials).await;
    assert_eq!(res.status(), StatusCode::OK);
    let line = cookie_line(&res);
    assert!(line.contains("; Path=/chat/;"), "{line}");
    let pat = Auth::Cookie(session_cookie(&res).expect("a session cookie"));

    // The JSON API.
    let me = app.get_as("/chat/api/me", &pat).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(json_body(me).await["user"]["username"], "pat");
    assert_eq!(
        app.get("/chat/api/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The Origin is compared by scheme, host and port only (an Origin has no path).
    let token = post(&app, "/chat/api/tokens", Some(&pat), json!({"name":"bot"})).await;
    assert_eq!(token.status(), StatusCode::CREATED);
    let foreign = app
        .send(
            app.request(Method::POST, "/chat/api/tokens", Some(&pat))
                .header("origin", "http://example.org")
                .json(&json!({"name":"bot"})),
        )
        .await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);

    // The WebSocket: send, get the acknowledgement, find it in the history.
    let mut ws = app.ws_at("/chat/ws", &pat, &[("origin", ORIGIN)]).await;
    ws.send_json(&send_frame("under a prefix", Some("p1")))
        .await;
    let echo = ws.next_frame().await;
    assert_eq!(echo["type"], "message", "{echo}");
    assert_eq!(echo["body"], "under a prefix");
    let history = json_body(app.get_as("/chat/api/rooms/general/messages", &pat).await).await;
    assert_eq!(history["messages"][0]["body"], "under a prefix");
    assert_eq!(history["messages"][0]["id"], echo["id"]);

    // Signing out clears the cookie at the same path.
    let out = post(&app, "/chat/api/logout", Some(&pat), json!({})).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let line = cookie_line(&out);
    assert!(
        line.contains("; Path=/chat/;") && line.contains("Max-Age=0"),
        "{line}"
    );
    drop(ws);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_prefix_redirects_to_the_prefix_with_a_slash() {
    // Without the trailing slash in public_url, everything is the same.
    let mut app = start("https://example.org/chat").await;
    for (path, to) in [("/chat", "/chat/"), ("/chat?room=x", "/chat/?room=x")] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT, "{path}");
        assert_eq!(res.headers()["location"], to, "{path}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
    let res = app.send(app.request(Method::POST, "/chat", None)).await;
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        text(app.get("/chat/config.js").await).await.trim_end(),
        r#"window.HEARTH = {"url":"https://example.org/chat","ws":"wss://example.org/chat/ws"};"#
    );
    // An absolute-form request target (as a forward proxy sends) is taken apart the same way.
    let raw = raw_http(
        app.addr,
        b"GET http://example.org/chat/config.js?v=1 HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status, 200, "{raw:?}");
    assert!(
        raw.body.contains(r#""ws":"wss://example.org/chat/ws""#),
        "{raw:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_prefix_are_served_as_before() {
    // What a proxy that strips the prefix itself (proxy_pass http://127.0.0.1:12345/;) sends.
    let mut app = start("https://example.org/chat/").await;
    assert_eq!(app.get("/").await.status(), StatusCode::OK);
    assert_eq!(app.get("/main.css").await.status(), StatusCode::OK);
    assert_eq!(
        text(app.get("/config.js").await).await.trim_end(),
        r#"window.HEARTH = {"url":"https://example.org/chat","ws":"wss://example.org/chat/ws"};"#
    );
    let res = post(
        &app,
        "/api/register",
        None,
        json!({"username":"sam","password":PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let line = cookie_line(&res);
    assert!(
        line.contains("; Path=/chat/;"),
        "the browser still sees /chat/: {line}"
    );
    let sam = Auth::Cookie(session_cookie(&res).expect("a session cookie"));
    assert_eq!(app.get_as("/api/me", &sam).await.status(), StatusCode::OK);
    let mut ws = app.ws_at("/ws", &sam, &[("origin", ORIGIN)]).await;
    ws.send_json(&send_frame("stripped", None)).await;
    assert_eq!(ws.next_frame().await["body"], "stripped");
    drop(ws);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_paths_are_not_the_prefix() {
    let mut app = start("https://example.org/chat/").await;
    for path in [
        "/chatroom",
        "/chatroom/api/me",
        "/Chat/",
        "/chat//main.css",
        "/chat/chat/",
        "/prefix/chat/",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // A bad body under the prefix is a clear JSON error, like anywhere else.
    let res = app
        .send(
            app.request(Method::POST, "/chat/api/login", None)
                .header("content-type", "application/json")
                .body("[1,2]"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"]["code"], "bad_request");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_prefix_the_cookie_path_is_the_root_and_nothing_redirects() {
    let mut app = start("https://chat.example.org/").await;
    assert_eq!(app.get("/chat").await.status(), StatusCode::NOT_FOUND);
    let res = app
        .send(
            app.request(Method::POST, "/api/register", None)
                .header("origin", "https://chat.example.org")
                .json(&json!({"username":"lee","password":PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let line = cookie_line(&res);
    assert!(line.contains("; Path=/;"), "{line}");
    assert_eq!(
        text(app.get("/config.js").await).await.trim_end(),
        r#"window.HEARTH = {"url":"https://chat.example.org","ws":"wss://chat.example.org/ws"};"#
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bad_prefix_stops_start_up_with_a_clear_error() {
    for (url, says) in [
        ("https://example.org/chat?x=1", "query"),
        ("https://example.org/a//b", "path prefix"),
        ("https://example.org/api/", "/api"),
    ] {
        let started = TestApp::builder()
            .config(move |c| c.server.public_url = url.into())
            .try_start()
            .await;
        let err = match started {
            Ok(_) => panic!("{url} must not start"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("server.public_url") && err.contains(says),
            "{url}: {err}"
        );
    }
}
