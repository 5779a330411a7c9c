//! Shared fixtures: a real server on a free port with its own SQLite file in a temporary
//! directory, and small HTTP, raw-TCP and WebSocket clients that fail a test instead of hanging.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth::config::Config;
use hearth::Server;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A password every test account may use.
pub const PASSWORD: &str = "correct horse battery staple";

/// How long to wait for one frame or one response before failing the test.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Await `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// How a client proves who it is.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The value of the `hearth_session` cookie.
    Cookie(String),
    /// A bot token sent as `Authorization: Bearer`.
    Bearer(String),
}

impl Auth {
    fn header(&self) -> (HeaderName, HeaderValue) {
        match self {
            Auth::Cookie(c) => (
                COOKIE,
                HeaderValue::from_str(&format!("hearth_session={c}")).expect("cookie header"),
            ),
            Auth::Bearer(t) => (
                reqwest::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}")).expect("bearer header"),
            ),
        }
    }
}

/// A running server plus the directory holding its database.
pub struct TestApp {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`: the base URL, and the same-origin `Origin` value.
    pub base: String,
    /// Holds `chat.db`; removed when the test ends.
    pub dir: TempDir,
    /// The server; `None` after [`TestApp::stop`].
    pub server: Option<Server>,
    /// The configuration the server was started with (reused by [`TestApp::restart`]).
    pub config: Config,
    /// A plain HTTP client: no cookie store, no proxy, no redirects.
    pub http: reqwest::Client,
}

/// A server with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with the test defaults, adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::default();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.database.path = dir.path().join("chat.db");
    // Keeps the suite fast; the release default stays 600,000.
    config.auth.pbkdf2_iterations = 1000;
    // Tests that exercise limits switch them on themselves.
    config.limits.messages_per_second = 0.0;
    config.limits.registrations_per_hour = 0;
    tweak(&mut config);
    let server = within(
        Duration::from_secs(10),
        "the server to start",
        hearth::run(config.clone()),
    )
    .await
    .expect("the server starts");
    let addr = server.local_addr();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    TestApp {
        addr,
        base: format!("http://{addr}"),
        dir,
        server: Some(server),
        config,
        http,
    }
}

impl TestApp {
    /// Absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Path of the SQLite file.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("chat.db")
    }

    /// Graceful stop (sockets closed with 1001, everything committed).
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            within(
                Duration::from_secs(30),
                "the server to shut down",
                server.shutdown(),
            )
            .await;
        }
    }

    /// Stop (if running) and start again on the same database file. The port changes.
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = within(
            Duration::from_secs(10),
            "the server to start again",
            hearth::run(self.config.clone()),
        )
        .await
        .expect("the server starts again");
        self.addr = server.local_addr();
        self.base = format!("http://{}", self.addr);
        self.server = Some(server);
    }

    /// A request builder for `path` with optional authentication.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Auth>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(a) = auth {
            let (k, v) = a.header();
            rb = rb.header(k, v);
        }
        rb
    }

    /// Send a request, failing the test on transport errors.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> reqwest::Response {
        within(Duration::from_secs(15), "an HTTP response", rb.send())
            .await
            .expect("the HTTP request completes")
    }

    /// `GET path` without credentials.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.request(Method::GET, path, None)).await
    }

    /// `GET path` with credentials.
    pub async fn get_as(&self, path: &str, auth: &Auth) -> reqwest::Response {
        self.send(self.request(Method::GET, path, Some(auth))).await
    }

    /// `POST path` with a JSON body, no credentials and no Origin.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(self.request(Method::POST, path, None).json(body))
            .await
    }

    /// `POST /api/register` (no Origin), returning the raw response.
    pub async fn try_register(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/register",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// `POST /api/login` (no Origin), returning the raw response.
    pub async fn try_login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/login",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Register; returns the `user` object and the session cookie value.
    pub async fn register(&self, username: &str, password: &str) -> (Value, String) {
        let res = self.try_register(username, password).await;
        let status = res.status();
        let cookie = session_cookie(&res);
        let body = text(res).await;
        assert_eq!(status, StatusCode::CREATED, "register {username}: {body}");
        let cookie = cookie.unwrap_or_else(|| panic!("register {username}: no session cookie"));
        let v: Value = serde_json::from_str(&body).expect("register answers JSON");
        (v["user"].clone(), cookie)
    }

    /// Log in; returns the `user` object and the new session cookie value.
    pub async fn login(&self, username: &str, password: &str) -> (Value, String) {
        let res = self.try_login(username, password).await;
        let status = res.status();
        let cookie = session_cookie(&res);
        let body = text(res).await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        let cookie = cookie.unwrap_or_else(|| panic!("login {username}: no session cookie"));
        let v: Value = serde_json::from_str(&body).expect("login answers JSON");
        (v["user"].clone(), cookie)
    }

    /// Register `username` with [`PASSWORD`] and return its cookie credentials.
    pub async fn signup(&self, username: &str) -> Auth {
        Auth::Cookie(self.register(username, PASSWORD).await.1)
    }

    /// Register `username` with [`PASSWORD`] through the server's setup link, which makes the
    /// account the administrator; returns its cookie credentials.
    pub async fn signup_admin(&self, username: &str) -> Auth {
        let code = self
            .server
            .as_ref()
            .and_then(|s| s.setup_code())
            .expect("a server without an administrator has a setup code")
            .to_string();
        let res = self
            .post_json(
                "/api/register",
                &json!({ "username": username, "password": PASSWORD, "setup": code }),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "register {username} with the setup link"
        );
        Auth::Cookie(session_cookie(&res).expect("a session cookie"))
    }

    /// Create a bot token for the user behind `cookie` (same-origin request).
    pub async fn token(&self, cookie: &str) -> String {
        let res = self
            .send(
                self.request(
                    Method::POST,
                    "/api/tokens",
                    Some(&Auth::Cookie(cookie.to_string())),
                )
                .header("origin", &self.base)
                .json(&json!({ "name": "test bot" })),
            )
            .await;
        let status = res.status();
        let body = json_body(res).await;
        assert_eq!(status, StatusCode::CREATED, "create token: {body}");
        body["token"]
            .as_str()
            .expect("the token is a string")
            .to_string()
    }

    /// `GET /api/rooms/{room}/messages?{query}`, asserting 200; returns the messages.
    pub async fn history(&self, auth: &Auth, room: &str, query: &str) -> Vec<Value> {
        let path = if query.is_empty() {
            format!("/api/rooms/{room}/messages")
        } else {
            format!("/api/rooms/{room}/messages?{query}")
        };
        let res = self.get_as(&path, auth).await;
        let status = res.status();
        let body = json_body(res).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no messages array in {body}"))
            .clone()
    }

    /// Every message id in `general` above `after`, paging forward with `after=`.
    pub async fn ids_after(&self, auth: &Auth, after: i64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let page = self
                .history(auth, "general", &format!("after={cursor}&limit=200"))
                .await;
            if page.is_empty() {
                return out;
            }
            for m in &page {
                out.push(id_of(m));
            }
            cursor = *out.last().expect("non-empty page");
        }
    }

    /// Open a WebSocket and read its first frame, which must be `ready`.
    pub async fn ws_connect(&self, auth: &Auth, since: Option<i64>) -> Ws {
        let query = since.map(|s| format!("since={s}")).unwrap_or_default();
        match self.try_ws(Some(auth), &query, None).await {
            Ok(ws) => ws,
            Err((status, body)) => panic!("WebSocket upgrade refused: {status} {body}"),
        }
    }

    /// Open a WebSocket with full control over the upgrade request; on refusal returns the HTTP
    /// status and whatever body arrived with it.
    pub async fn try_ws(
        &self,
        auth: Option<&Auth>,
        query: &str,
        origin: Option<&str>,
    ) -> Result<Ws, (u16, String)> {
        self.open_ws(auth, query, origin, None).await
    }

    /// Open a WebSocket whose client socket has a tiny receive buffer, so that a client that
    /// stops reading soon leaves the server unable to write.
    pub async fn ws_connect_small_buffer(&self, auth: &Auth) -> Ws {
        match self.open_ws(Some(auth), "", None, Some(4096)).await {
            Ok(ws) => ws,
            Err((status, body)) => panic!("WebSocket upgrade refused: {status} {body}"),
        }
    }

    /// Open a WebSocket as if the server had been reached under another `Host`.
    pub async fn try_ws_with_host(
        &self,
        auth: &Auth,
        host: &str,
        origin: &str,
    ) -> Result<Ws, (u16, String)> {
        self.open_ws_as(Some(auth), "", Some(origin), None, Some(host))
            .await
    }

    async fn open_ws(
        &self,
        auth: Option<&Auth>,
        query: &str,
        origin: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<Ws, (u16, String)> {
        self.open_ws_as(auth, query, origin, recv_buffer, None)
            .await
    }

    async fn open_ws_as(
        &self,
        auth: Option<&Auth>,
        query: &str,
        origin: Option<&str>,
        recv_buffer: Option<u32>,
        host: Option<&str>,
    ) -> Result<Ws, (u16, String)> {
        let url = if query.is_empty() {
            format!("ws://{}/ws", self.addr)
        } else {
            format!("ws://{}/ws?{query}", self.addr)
        };
        let mut req = url.into_client_request().expect("a valid ws request");
        if let Some(a) = auth {
            let (k, v) = a.header();
            req.headers_mut().insert(k, v);
        }
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", HeaderValue::from_str(o).expect("origin header"));
        }
        if let Some(h) = host {
            req.headers_mut()
                .insert("host", HeaderValue::from_str(h).expect("host header"));
        }
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        if let Some(size) = recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .expect("the receive buffer can be set");
        }
        let addr = self.addr;
        let connected = within(FRAME_TIMEOUT, "the WebSocket handshake", async move {
            let stream = socket.connect(addr).await.expect("connects");
            stream.set_nodelay(true).expect("nodelay");
            tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await
        })
        .await;
        match connected {
            Ok((stream, _)) => {
                let mut ws = Ws {
                    inner: stream,
                    ready: Value::Null,
                };
                let first = ws.next_frame().await;
                assert_eq!(first["type"], "ready", "first frame: {first}");
                ws.ready = first;
                Ok(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let body = res
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((res.status().as_u16(), body))
            }
            Err(e) => panic!("WebSocket connection failed: {e}"),
        }
    }
}

/// The `hearth_session` value from a response's `Set-Cookie`, if any.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    set_cookie(res).and_then(|c| {
        c.strip_prefix("hearth_session=")
            .map(|rest| rest.split(';').next().unwrap_or_default().to_string())
    })
}

/// The whole `Set-Cookie` header for `hearth_session`, if any.
pub fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hearth_session="))
        .map(str::to_string)
}

/// The body as text.
pub async fn text(res: reqwest::Response) -> String {
    within(Duration::from_secs(15), "a response body", res.text())
        .await
        .expect("the body can be read")
}

/// The body as JSON (fails the test if it is not JSON).
pub async fn json_body(res: reqwest::Response) -> Value {
    let body = text(res).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body:?}"))
}

/// Assert the `{"error":{"code","message"}}` shape with this code; returns the body.
pub fn assert_error_shape(body: &Value, code: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert_eq!(obj.len(), 1, "error body has only `error`: {body}");
    let err = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("`error` is not an object: {body}"));
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("`error.message` is not a string: {body}"));
    assert!(!message.trim().is_empty(), "empty error message: {body}");
}

/// Assert status, JSON content type and the error shape with `code`; returns the body.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = text(res).await;
    assert_eq!(got, status, "status (expected {code}); body: {body}");
    assert!(
        ct.starts_with("application/json"),
        "content type of an error is JSON, got {ct:?}"
    );
    let v: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("error is not JSON ({e}): {body}"));
    assert_error_shape(&v, code);
    v
}

/// A message id from a `message` frame or history entry.
pub fn id_of(m: &Value) -> i64 {
    m["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("message without an integer id: {m}"))
}

/// A `send` frame for `general`.
pub fn send_frame(body: &str, nonce: Option<&str>) -> Value {
    match nonce {
        Some(n) => json!({ "type": "send", "room": "general", "body": body, "nonce": n }),
        None => json!({ "type": "send", "room": "general", "body": body }),
    }
}

/// A client WebSocket.
pub struct Ws {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `ready` frame this connection started with.
    pub ready: Value,
}

impl Ws {
    /// Whether `f` is this user's own message with `nonce`.
    fn is_own(&self, f: &Value, nonce: &str) -> bool {
        f["nonce"] == nonce && f["user"] == self.ready["user"]["username"]
    }

    /// Send a raw WebSocket message.
    pub async fn send_raw(&mut self, msg: Message) {
        within(FRAME_TIMEOUT, "a frame to be written", self.inner.send(msg))
            .await
            .expect("the frame is written");
    }

    /// Send one JSON text frame.
    pub async fn send_json(&mut self, v: &Value) {
        self.send_raw(Message::text(v.to_string())).await;
    }

    /// Send one text frame as is.
    pub async fn send_text(&mut self, s: &str) {
        self.send_raw(Message::text(s.to_string())).await;
    }

    /// Send many JSON frames with a single flush.
    pub async fn send_all(&mut self, frames: &[Value]) {
        for f in frames {
            within(
                FRAME_TIMEOUT,
                "a frame to be queued",
                self.inner.feed(Message::text(f.to_string())),
            )
            .await
            .expect("the frame is queued");
        }
        within(FRAME_TIMEOUT, "frames to be flushed", self.inner.flush())
            .await
            .expect("the frames are flushed");
    }

    /// The next WebSocket message other than ping/pong, within [`FRAME_TIMEOUT`].
    pub async fn next_raw(&mut self) -> Option<Message> {
        loop {
            let next = within(FRAME_TIMEOUT, "a WebSocket frame", self.inner.next()).await;
            match next {
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                Some(Ok(m)) => return Some(m),
                Some(Err(e)) => panic!("WebSocket error while reading: {e}"),
                None => return None,
            }
        }
    }

    /// The next text frame as JSON. Fails the test on close, binary or timeout.
    pub async fn next_frame(&mut self) -> Value {
        match self.next_raw().await {
            Some(Message::Text(t)) => serde_json::from_str(t.as_str())
                .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t}")),
            Some(other) => panic!("expected a text frame, got {other:?}"),
            None => panic!("the connection ended while a frame was expected"),
        }
    }

    /// The next frame whose type is not in `skip`.
    pub async fn next_skipping(&mut self, skip: &[&str]) -> Value {
        loop {
            let f = self.next_frame().await;
            let ty = f["type"].as_str().unwrap_or_default();
            if !skip.contains(&ty) {
                return f;
            }
        }
    }

    /// The next frame of type `ty`, skipping `presence` and `typing`; any other frame fails.
    pub async fn next_of_type(&mut self, ty: &str) -> Value {
        loop {
            let f = self.next_frame().await;
            let got = f["type"].as_str().unwrap_or_default();
            if got == ty {
                return f;
            }
            assert!(
                matches!(got, "presence" | "typing"),
                "expected a {ty} frame, got {f}"
            );
        }
    }

    /// Send a message to `general` and wait for its acknowledgement (the stored message coming
    /// back with the same nonce). Messages of other users arriving meanwhile are skipped.
    pub async fn send_and_ack(&mut self, body: &str, nonce: &str) -> Value {
        self.send_json(&send_frame(body, Some(nonce))).await;
        loop {
            let f = self.next_of_type("message").await;
            if self.is_own(&f, nonce) {
                return f;
            }
        }
    }

    /// Post `n` messages (nonces `{prefix}-{i}`) in pipelined chunks, waiting for each chunk's
    /// acknowledgements; returns their ids in sending order.
    pub async fn post_many(&mut self, n: usize, prefix: &str) -> Vec<i64> {
        let mut ids = Vec::with_capacity(n);
        let mut i = 0;
        while i < n {
            let end = (i + 100).min(n);
            let frames: Vec<Value> = (i..end)
                .map(|k| send_frame(&format!("{prefix} {k}"), Some(&format!("{prefix}-{k}"))))
                .collect();
            self.send_all(&frames).await;
            let mut pending: std::collections::HashMap<String, usize> =
                (i..end).map(|k| (format!("{prefix}-{k}"), k)).collect();
            let mut chunk = vec![0i64; end - i];
            while !pending.is_empty() {
                let f = self.next_of_type("message").await;
                if f["user"] != self.ready["user"]["username"] {
                    continue;
                }
                if let Some(k) = f["nonce"].as_str().and_then(|s| pending.remove(s)) {
                    chunk[k - i] = id_of(&f);
                }
            }
            ids.extend(chunk);
            i = end;
        }
        ids
    }

    /// Read until a close frame arrives and return its code. Other frames are skipped.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match self.next_raw().await {
                Some(Message::Close(Some(frame))) => return u16::from(frame.code),
                Some(Message::Close(None)) => panic!("close frame without a code"),
                Some(_) => continue,
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// Close from the client side and wait until the server has ended the connection.
    pub async fn close(mut self) {
        let _ = within(
            FRAME_TIMEOUT,
            "the close frame to be sent",
            self.inner.close(None),
        )
        .await;
        loop {
            match within(FRAME_TIMEOUT, "the connection to end", self.inner.next()).await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// A response read from a raw TCP exchange.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code (0 when the server closed without answering).
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl RawResponse {
    /// First header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Write `request` bytes on a fresh TCP connection and read the answer until the server closes
/// (send `Connection: close`). Used where an HTTP client would normalise the request.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = within(FRAME_TIMEOUT, "a TCP connection", TcpStream::connect(addr))
        .await
        .expect("connects");
    // The server may answer and close before reading everything; a failed write is fine.
    let _ = within(FRAME_TIMEOUT, "the request to be written", async {
        stream.write_all(request).await?;
        stream.flush().await
    })
    .await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match within(
            Duration::from_secs(15),
            "the raw response",
            stream.read(&mut chunk),
        )
        .await
        {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    parse_raw(&buf)
}

fn parse_raw(buf: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return RawResponse {
            status: 0,
            headers: Vec::new(),
            body: text.into_owned(),
        };
    };
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `GET path` over raw TCP with `Host` and `Connection: close`.
pub async fn raw_get(addr: SocketAddr, path: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    raw_http(addr, req.as_bytes()).await
}

/// Assert the server still answers `/healthz` with `ok`.
pub async fn assert_healthy(app: &TestApp) {
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "ok");
}

// ---- rooms, DMs, unread state and search -------------------------------------------------

/// A server on a database file prepared beforehand in `dir` (`dir/chat.db`).
pub async fn spawn_app_in(dir: TempDir) -> TestApp {
    let mut config = Config::default();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.database.path = dir.path().join("chat.db");
    config.auth.pbkdf2_iterations = 1000;
    config.limits.messages_per_second = 0.0;
    config.limits.registrations_per_hour = 0;
    let server = within(
        Duration::from_secs(10),
        "the server to start",
        hearth::run(config.clone()),
    )
    .await
    .expect("the server starts");
    let addr = server.local_addr();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    TestApp {
        addr,
        base: format!("http://{addr}"),
        dir,
        server: Some(server),
        config,
        http,
    }
}

impl TestApp {
    /// A same-origin API call with an optional JSON body; returns the status and the JSON body
    /// (`Null` when the body is empty).
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut rb = self.request(method, path, Some(auth));
        rb = rb.header("origin", &self.base);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let res = self.send(rb).await;
        let status = res.status().as_u16();
        let body = text(res).await;
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {body:?}"))
        };
        (status, v)
    }

    /// An API call that must answer `status`; returns the body.
    pub async fn api_ok(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let (got, v) = self.api(method.clone(), path, auth, body).await;
        assert_eq!(got, status, "{method} {path}: {v}");
        v
    }

    /// An API call that must fail with `status` and error `code`.
    pub async fn api_err(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<&Value>,
        status: u16,
        code: &str,
    ) -> Value {
        let (got, v) = self.api(method.clone(), path, auth, body).await;
        assert_eq!(got, status, "{method} {path} (expected {code}): {v}");
        assert_error_shape(&v, code);
        v
    }

    /// `POST /api/rooms`, asserting 201; returns the room object.
    pub async fn create_room(&self, auth: &Auth, name: &str, public: bool) -> Value {
        self.api_ok(
            Method::POST,
            "/api/rooms",
            auth,
            Some(&json!({ "name": name, "public": public })),
            201,
        )
        .await["room"]
            .clone()
    }

    /// `POST /api/rooms/{room}/join`, asserting 200; returns the room object.
    pub async fn join_room(&self, auth: &Auth, room: &str) -> Value {
        self.api_ok(
            Method::POST,
            &format!("/api/rooms/{}/join", encode_room(room)),
            auth,
            None,
            200,
        )
        .await["room"]
            .clone()
    }

    /// `POST /api/rooms/{room}/members`, asserting 200; returns the room object.
    pub async fn invite(&self, auth: &Auth, room: &str, username: &str) -> Value {
        self.api_ok(
            Method::POST,
            &format!("/api/rooms/{}/members", encode_room(room)),
            auth,
            Some(&json!({ "username": username })),
            200,
        )
        .await["room"]
            .clone()
    }

    /// `POST /api/dms`; returns the status and the room object.
    pub async fn open_dm(&self, auth: &Auth, users: &[&str]) -> (u16, Value) {
        let (status, v) = self
            .api(
                Method::POST,
                "/api/dms",
                auth,
                Some(&json!({ "users": users })),
            )
            .await;
        assert!(
            status == 200 || status == 201,
            "POST /api/dms: {status} {v}"
        );
        (status, v["room"].clone())
    }

    /// The caller's rooms (`GET /api/rooms`).
    pub async fn my_rooms(&self, auth: &Auth) -> Vec<Value> {
        let v = self
            .api_ok(Method::GET, "/api/rooms", auth, None, 200)
            .await;
        v["rooms"].as_array().expect("a rooms array").clone()
    }

    /// The caller's room called `name` from `GET /api/rooms`, if they belong to it.
    pub async fn my_room(&self, auth: &Auth, name: &str) -> Option<Value> {
        self.my_rooms(auth)
            .await
            .into_iter()
            .find(|r| r["name"] == name)
    }

    /// `GET /api/search?{query}` (the query already encoded); returns status and body.
    pub async fn search(&self, auth: &Auth, query: &str) -> (u16, Value) {
        self.api(Method::GET, &format!("/api/search?{query}"), auth, None)
            .await
    }

    /// Search for `q` (encoded here) plus `extra` parameters, asserting 200; returns the body.
    pub async fn search_ok(&self, auth: &Auth, q: &str, extra: &str) -> Value {
        let mut query = format!("q={}", urlencode(q));
        if !extra.is_empty() {
            query.push('&');
            query.push_str(extra);
        }
        let (status, v) = self.search(auth, &query).await;
        assert_eq!(status, 200, "search {query}: {v}");
        assert!(v["results"].is_array(), "search {query}: {v}");
        v
    }
}

/// Percent-encode everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A room name for a URL path (DM names have `:` and `,`).
pub fn encode_room(name: &str) -> String {
    urlencode(name)
}

/// The ids of search results, in order.
pub fn result_ids(v: &Value) -> Vec<i64> {
    v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results array in {v}"))
        .iter()
        .map(id_of)
        .collect()
}

/// A `send` frame for any room.
pub fn send_in(room: &str, body: &str, nonce: &str) -> Value {
    json!({ "type": "send", "room": room, "body": body, "nonce": nonce })
}

impl Ws {
    /// This connection's username.
    pub fn username(&self) -> String {
        self.ready["user"]["username"]
            .as_str()
            .expect("ready names the user")
            .to_string()
    }

    /// The next frame for which `pred` holds; every other frame is skipped.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            loop {
                let f = self.next_frame().await;
                if pred(&f) {
                    return f;
                }
            }
        };
        within(Duration::from_secs(10), what, wait).await
    }

    /// The next frame of type `ty`, skipping every other frame.
    pub async fn wait_type(&mut self, ty: &str) -> Value {
        self.wait_for(ty, |f| f["type"] == ty).await
    }

    /// Every frame up to and including the first for which `pred` holds.
    pub async fn frames_until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let f = self.next_frame().await;
            let done = pred(&f);
            out.push(f);
            if done {
                return out;
            }
        }
    }

    /// Every frame up to and including the `message` frame with this nonce.
    pub async fn frames_until_nonce(&mut self, nonce: &str) -> Vec<Value> {
        self.frames_until(|f| f["type"] == "message" && f["nonce"] == nonce)
            .await
    }

    /// Send to `room` and wait for the acknowledgement (skipping every other frame); returns
    /// the stored message.
    pub async fn say(&mut self, room: &str, body: &str, nonce: &str) -> Value {
        self.send_json(&send_in(room, body, nonce)).await;
        let me = self.username();
        let f = self
            .wait_for(&format!("the ack of {nonce}"), |f| {
                (f["type"] == "message" && f["nonce"] == nonce && f["user"] == me.as_str())
                    || (f["type"] == "error" && f["nonce"] == nonce)
            })
            .await;
        assert_eq!(f["type"], "message", "sending {nonce} to {room}: {f}");
        f
    }

    /// Send to `room` and return the `error` frame that refuses it.
    pub async fn say_refused(&mut self, room: &str, body: &str, nonce: &str) -> Value {
        self.send_json(&send_in(room, body, nonce)).await;
        let f = self
            .wait_for(&format!("the answer to {nonce}"), |f| {
                f["nonce"] == nonce && (f["type"] == "error" || f["type"] == "message")
            })
            .await;
        assert_eq!(
            f["type"], "error",
            "sending {nonce} to {room} succeeded: {f}"
        );
        f
    }
}
