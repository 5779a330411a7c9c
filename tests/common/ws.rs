//! WebSocket clients that fail a test instead of hanging, and the frames tests send.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::HeaderValue;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{within, Auth, TestApp, FRAME_TIMEOUT};

impl TestApp {
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
        let origin: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        self.open_ws(auth, query, &origin, None).await
    }

    /// Open a WebSocket with extra request headers (`Origin`, `Host`, `X-Forwarded-*`, …).
    pub async fn try_ws_with_headers(
        &self,
        auth: Option<&Auth>,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, (u16, String)> {
        self.open_ws(auth, query, headers, None).await
    }

    /// Open a WebSocket whose client socket has a tiny receive buffer, so that a client that
    /// stops reading soon leaves the server unable to write.
    pub async fn ws_connect_small_buffer(&self, auth: &Auth) -> Ws {
        match self.open_ws(Some(auth), "", &[], Some(4096)).await {
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
        self.open_ws(Some(auth), "", &[("origin", origin), ("host", host)], None)
            .await
    }

    /// Open the WebSocket at `path` (with its query, e.g. under a path prefix) with extra
    /// request headers; fails the test when the upgrade is refused.
    pub async fn ws_at(&self, path: &str, auth: &Auth, headers: &[(&str, &str)]) -> Ws {
        match self.open_ws_at(path, Some(auth), headers, None).await {
            Ok(ws) => ws,
            Err((status, body)) => panic!("WebSocket upgrade at {path} refused: {status} {body}"),
        }
    }

    async fn open_ws(
        &self,
        auth: Option<&Auth>,
        query: &str,
        headers: &[(&str, &str)],
        recv_buffer: Option<u32>,
    ) -> Result<Ws, (u16, String)> {
        let path = if query.is_empty() {
            "/ws".to_string()
        } else {
            format!("/ws?{query}")
        };
        self.open_ws_at(&path, auth, headers, recv_buffer).await
    }

    /// Open a WebSocket the server closes before `ready`; the close frame's code and reason.
    pub async fn ws_closed_before_ready(&self, auth: &Auth) -> (u16, String) {
        let mut stream = match self.handshake("/ws", Some(auth), &[], None).await {
            Ok(stream) => stream,
            Err((status, body)) => panic!("WebSocket upgrade refused: {status} {body}"),
        };
        let first = within(FRAME_TIMEOUT, "a close frame", stream.next()).await;
        match first {
            Some(Ok(Message::Close(Some(frame)))) => {
                (u16::from(frame.code), frame.reason.to_string())
            }
            other => panic!("expected a close frame first, got {other:?}"),
        }
    }

    async fn open_ws_at(
        &self,
        path: &str,
        auth: Option<&Auth>,
        headers: &[(&str, &str)],
        recv_buffer: Option<u32>,
    ) -> Result<Ws, (u16, String)> {
        let stream = self.handshake(path, auth, headers, recv_buffer).await?;
        let mut ws = Ws {
            inner: stream,
            ready: Value::Null,
        };
        let first = ws.next_frame().await;
        assert_eq!(first["type"], "ready", "first frame: {first}");
        ws.ready = first;
        Ok(ws)
    }

    /// The WebSocket handshake alone; on refusal the HTTP status and body.
    async fn handshake(
        &self,
        path: &str,
        auth: Option<&Auth>,
        headers: &[(&str, &str)],
        recv_buffer: Option<u32>,
    ) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, (u16, String)> {
        let url = format!("ws://{}{path}", self.addr);
        let mut req = url.into_client_request().expect("a valid ws request");
        if let Some(a) = auth {
            let (k, v) = a.header();
            req.headers_mut().insert(k, v);
        }
        for (name, value) in headers {
            let name =
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            let value = HeaderValue::from_str(value).expect("a header value");
            req.headers_mut().insert(name, value);
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
            Ok((stream, _)) => Ok(stream),
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

    /// The underlying stream, for a test that reads it on its own terms (tolerating resets,
    /// or split into a writer and a reader that run at once).
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.inner
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
            let mut pending: HashMap<String, usize> =
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

    /// Read until a close frame arrives, for at most `limit` however long the server is
    /// silent meanwhile, and return its code. Other frames are skipped.
    pub async fn expect_close_within(&mut self, limit: Duration) -> u16 {
        let read = async {
            loop {
                match self.inner.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                    Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => panic!("WebSocket error while reading: {e}"),
                    None => panic!("the connection ended without a close frame"),
                }
            }
        };
        within(limit, "a close frame", read).await
    }

    /// Every text frame (as JSON) until the close frame, and its code.
    pub async fn frames_until_close(&mut self) -> (Vec<Value>, u16) {
        let mut frames = Vec::new();
        loop {
            match self.next_raw().await {
                Some(Message::Text(t)) => frames.push(
                    serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t}")),
                ),
                Some(Message::Close(Some(frame))) => return (frames, u16::from(frame.code)),
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

/// The next text frame as JSON from a WebSocket the kit did not open itself (one through TLS or
/// a reverse proxy), within [`FRAME_TIMEOUT`]; ping and pong are skipped. Fails the test on
/// close, binary or timeout.
pub async fn next_json<S>(ws: &mut WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match within(FRAME_TIMEOUT, "a WebSocket frame", ws.next()).await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t}"))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("expected a text frame, got {other:?}"),
            Some(Err(e)) => panic!("WebSocket error while reading: {e}"),
            None => panic!("the connection ended while a frame was expected"),
        }
    }
}
