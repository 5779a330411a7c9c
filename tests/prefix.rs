//! Serving under a path prefix: with `public_url = "https://example.org/chat/"` the page, its
//! assets, `/config.js`, the JSON API and the WebSocket all answer under `/chat/`, the session
//! cookie is scoped to `/chat/`, `/chat` redirects to `/chat/`, and requests without the
//! prefix (from a proxy that strips it) are served as before.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ORIGIN: &str = "https://example.org";
const PASSWORD: &str = "password123";

struct App {
    server: hearth::Server,
    base: String,
    http: Client,
    _dir: tempfile::TempDir,
}

async fn start(public_url: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut c = hearth::config::Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.server.public_url = public_url.into();
    c.database.path = dir.path().join("chat.db");
    c.auth.pbkdf2_iterations = 1000;
    c.limits.registrations_per_hour = 0;
    let server = hearth::run(c).await.expect("starts");
    let base = format!("http://{}", server.local_addr());
    let http = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    App {
        server,
        base,
        http,
        _dir: dir,
    }
}

impl App {
    async fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn get_with(&self, path: &str, cookie: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, cookie: Option<&str>, body: Value) -> Response {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("origin", ORIGIN)
            .json(&body);
        if let Some(c) = cookie {
            rb = rb.header("cookie", c);
        }
        rb.send().await.unwrap()
    }
}

fn set_cookie(res: &Response) -> String {
    res.headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_string()
}

/// `name=value` from a Set-Cookie line.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

async fn next_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
        .expect("a frame");
    serde_json::from_str(m.to_text().unwrap()).unwrap()
}

/// Open the WebSocket at `path` with the cookie and the public Origin; the `ready` frame is read.
async fn open_ws(
    app: &App,
    path: &str,
    cookie: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}{path}", app.server.local_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert("origin", ORIGIN.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_or_else(|e| panic!("WebSocket at {path}: {e}"));
    assert_eq!(next_frame(&mut ws).await["type"], "ready");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_assets_config_api_and_websocket_answer_under_the_prefix() {
    let app = start("https://example.org/chat/").await;

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
    assert!(page.text().await.unwrap().contains("<html"));
    for asset in ["/chat/index.html", "/chat/main.css", "/chat/js/app.js"] {
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
        js.text().await.unwrap().trim_end(),
        r#"window.HEARTH = {"url":"https://example.org/chat","ws":"wss://example.org/chat/ws"};"#
    );

    // Register and sign in: the cookie is scoped to the prefix (and Secure: the URL is https).
    let res = app
        .post(
            "/chat/api/register",
            None,
            json!({"username":"pat","password":PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let line = set_cookie(&res);
    assert!(line.contains("; Path=/chat/;"), "{line}");
    assert!(line.contains("; Secure"), "{line}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let res = app
        .post(
            "/chat/api/login",
            None,
            json!({"username":"pat","password":PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let line = set_cookie(&res);
    assert!(line.contains("; Path=/chat/;"), "{line}");
    let cookie = pair(&line);

    // The JSON API.
    let me = app.get_with("/chat/api/me", &cookie).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap()["user"]["username"], "pat");
    assert_eq!(
        app.get("/chat/api/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The Origin is compared by scheme, host and port only (an Origin has no path).
    let token = app
        .post("/chat/api/tokens", Some(&cookie), json!({"name":"bot"}))
        .await;
    assert_eq!(token.status(), StatusCode::CREATED);
    let foreign = app
        .http
        .post(format!("{}/chat/api/tokens", app.base))
        .header("cookie", &cookie)
        .header("origin", "http://example.org")
        .json(&json!({"name":"bot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);

    // The WebSocket: send, get the acknowledgement, find it in the history.
    let mut ws = open_ws(&app, "/chat/ws", &cookie).await;
    ws.send(Message::Text(
        json!({"type":"send","room":"general","body":"under a prefix","nonce":"p1"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let echo = next_frame(&mut ws).await;
    assert_eq!(echo["type"], "message", "{echo}");
    assert_eq!(echo["body"], "under a prefix");
    let history: Value = app
        .get_with("/chat/api/rooms/general/messages", &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["messages"][0]["body"], "under a prefix");
    assert_eq!(history["messages"][0]["id"], echo["id"]);

    // Signing out clears the cookie at the same path.
    let out = app.post("/chat/api/logout", Some(&cookie), json!({})).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let line = set_cookie(&out);
    assert!(
        line.contains("; Path=/chat/;") && line.contains("Max-Age=0"),
        "{line}"
    );
    drop(ws);
    app.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_prefix_redirects_to_the_prefix_with_a_slash() {
    // Without the trailing slash in public_url, everything is the same.
    let app = start("https://example.org/chat").await;
    for (path, to) in [("/chat", "/chat/"), ("/chat?room=x", "/chat/?room=x")] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT, "{path}");
        assert_eq!(res.headers()["location"], to, "{path}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
    let res = app
        .http
        .post(format!("{}/chat", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        app.get("/chat/config.js")
            .await
            .text()
            .await
            .unwrap()
            .trim_end(),
        r#"window.HEARTH = {"url":"https://example.org/chat","ws":"wss://example.org/chat/ws"};"#
    );
    // An absolute-form request target (as a forward proxy sends) is taken apart the same way.
    let mut s = tokio::net::TcpStream::connect(app.server.local_addr())
        .await
        .unwrap();
    s.write_all(
        b"GET http://example.org/chat/config.js?v=1 HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains(r#""ws":"wss://example.org/chat/ws""#), "{raw}");
    app.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_prefix_are_served_as_before() {
    // What a proxy that strips the prefix itself (proxy_pass http://127.0.0.1:12345/;) sends.
    let app = start("https://example.org/chat/").await;
    assert_eq!(app.get("/").await.status(), StatusCode::OK);
    assert_eq!(app.get("/main.css").await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/config.js").await.text().await.unwrap().trim_end(),
        r#"window.HEARTH = {"url":"https://example.org/chat","ws":"wss://example.org/chat/ws"};"#
    );
    let res = app
        .post(
            "/api/register",
            None,
            json!({"username":"sam","password":PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let line = set_cookie(&res);
    assert!(
        line.contains("; Path=/chat/;"),
        "the browser still sees /chat/: {line}"
    );
    let cookie = pair(&line);
    assert_eq!(
        app.get_with("/api/me", &cookie).await.status(),
        StatusCode::OK
    );
    let mut ws = open_ws(&app, "/ws", &cookie).await;
    ws.send(Message::Text(
        json!({"type":"send","room":"general","body":"stripped"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_frame(&mut ws).await["body"], "stripped");
    drop(ws);
    app.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_paths_are_not_the_prefix() {
    let app = start("https://example.org/chat/").await;
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
        .http
        .post(format!("{}/chat/api/login", app.base))
        .header("content-type", "application/json")
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    app.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_prefix_the_cookie_path_is_the_root_and_nothing_redirects() {
    let app = start("https://chat.example.org/").await;
    assert_eq!(app.get("/chat").await.status(), StatusCode::NOT_FOUND);
    let res = app
        .http
        .post(format!("{}/api/register", app.base))
        .header("origin", "https://chat.example.org")
        .json(&json!({"username":"lee","password":PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let line = set_cookie(&res);
    assert!(line.contains("; Path=/;"), "{line}");
    assert_eq!(
        app.get("/config.js").await.text().await.unwrap().trim_end(),
        r#"window.HEARTH = {"url":"https://chat.example.org","ws":"wss://chat.example.org/ws"};"#
    );
    app.server.shutdown().await;
}

#[tokio::test]
async fn a_bad_prefix_stops_start_up_with_a_clear_error() {
    for (url, says) in [
        ("https://example.org/chat?x=1", "query"),
        ("https://example.org/a//b", "path prefix"),
        ("https://example.org/api/", "/api"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = hearth::config::Config::default();
        c.server.host = "127.0.0.1".into();
        c.server.port = 0;
        c.server.public_url = url.into();
        c.database.path = dir.path().join("chat.db");
        let err = match hearth::run(c).await {
            Ok(_) => panic!("{url} must not start"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("server.public_url") && err.contains(says),
            "{url}: {err}"
        );
    }
}
