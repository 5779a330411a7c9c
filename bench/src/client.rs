//! Talking to the server under test: HTTP account setup and WebSocket connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::util::{err, Res};

pub type Ws = WebSocketStream<TcpStream>;

pub const ROOM: &str = "general";
pub const PASSWORD: &str = "bench-password-1";

/// The server under test.
#[derive(Clone)]
pub struct Target {
    /// `http://127.0.0.1:PORT` (the first server's, for accounts and HTTP requests)
    pub base: String,
    pub addr: SocketAddr,
    /// Every server: connection `idx` goes to `addrs[idx % len]` (several nodes of a cluster
    /// share the connections).
    pub addrs: Vec<SocketAddr>,
    /// The raw-broadcast reference server: no accounts, no auth.
    pub raw: bool,
    pub name: String,
    /// Client sockets bind to 127.0.0.2 .. 127.0.0.(1+src_addrs) (0 = let the kernel pick).
    pub src_addrs: u32,
    pub read_buffer: usize,
    pub server_pid: Option<u32>,
}

impl Target {
    pub fn new(
        url: &str,
        target: &str,
        src_addrs: u32,
        read_buffer: usize,
        server_pid: Option<u32>,
    ) -> Res<Self> {
        let mut addrs = Vec::new();
        for one in url.split(',') {
            let rest = one
                .strip_prefix("http://")
                .ok_or("--url must look like http://127.0.0.1:PORT[,http://127.0.0.1:PORT…]")?;
            let hostport = rest.trim_end_matches('/');
            let addr: SocketAddr = hostport
                .parse()
                .map_err(|e| format!("--url {one}: {e} (use a numeric loopback address)"))?;
            if !addr.ip().is_loopback() {
                return err(format!(
                    "refusing to load {addr}: this tool only targets loopback addresses"
                ));
            }
            addrs.push(addr);
        }
        let addr = addrs[0];
        // `hearth`, or a label for one of its setups (`hearth-pg`, `hearth-cluster`).
        let raw = match target {
            "raw" => true,
            t if t == "hearth" || t.starts_with("hearth-") => false,
            other => {
                return err(format!(
                    "--target must be hearth, hearth-LABEL or raw, not {other}"
                ))
            }
        };
        if src_addrs > 250 {
            return err("--src-addrs must be at most 250");
        }
        Ok(Target {
            base: format!("http://{addr}"),
            addr,
            addrs,
            raw,
            name: target.to_string(),
            src_addrs,
            read_buffer,
            server_pid,
        })
    }

    pub fn http(&self) -> Res<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?)
    }
}

/// A user the load generator acts as.
#[derive(Clone, Debug)]
pub struct Account {
    pub username: String,
    pub token: Option<String>,
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hearth_session="))
        .map(|v| v.split(';').next().unwrap_or(v).to_string())
}

async fn error_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    format!("{status} {}", body.chars().take(300).collect::<String>())
}

/// Register (or log in) one user, then mint a bearer token for it.
pub async fn make_account(t: &Target, http: &reqwest::Client, username: &str) -> Res<Account> {
    if t.raw {
        return Ok(Account {
            username: username.to_string(),
            token: None,
        });
    }
    let creds = json!({"username": username, "password": PASSWORD});
    let resp = http
        .post(format!("{}/api/register", t.base))
        .json(&creds)
        .send()
        .await?;
    let resp = if resp.status().as_u16() == 409 {
        let r = http
            .post(format!("{}/api/login", t.base))
            .json(&creds)
            .send()
            .await?;
        if r.status().as_u16() != 200 {
            return err(format!("login {username}: {}", error_text(r).await));
        }
        r
    } else if resp.status().as_u16() != 201 {
        return err(format!("register {username}: {}", error_text(resp).await));
    } else {
        resp
    };
    let cookie = session_cookie(&resp).ok_or("register/login answered without hearth_session")?;
    let resp = http
        .post(format!("{}/api/tokens", t.base))
        .header("Cookie", cookie)
        .header("Origin", &t.base)
        .json(&json!({"name": "bench"}))
        .send()
        .await?;
    if resp.status().as_u16() != 201 {
        return err(format!("token for {username}: {}", error_text(resp).await));
    }
    let v: Value = resp.json().await?;
    let token = v["token"]
        .as_str()
        .ok_or("POST /api/tokens: no token in answer")?;
    Ok(Account {
        username: username.to_string(),
        token: Some(token.to_string()),
    })
}

/// Create `n` users named `{prefix}{i}` with a few concurrent requests.
pub async fn make_accounts(t: &Target, prefix: &str, n: usize) -> Res<Vec<Account>> {
    let http = t.http()?;
    let sem = Arc::new(Semaphore::new(8));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (t, http, sem) = (t.clone(), http.clone(), sem.clone());
        let name = format!("{prefix}{i}");
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            make_account(&t, &http, &name).await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

/// A short prefix that keeps usernames unique when a database is reused.
pub fn user_prefix(tag: &str) -> String {
    let salt = (std::process::id() as u64 ^ crate::util::now_us()) % 1_000_000;
    format!("{tag}{salt}x")
}

/// What the server said in its first frame.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    pub last_id: u64,
    pub frames_before_ready: u64,
}

pub struct ConnectOpts {
    pub rcvbuf: Option<u32>,
}

/// Open one WebSocket connection (connection number `idx` picks the source address) and wait
/// for its `ready` frame.
pub async fn connect(
    t: &Target,
    idx: usize,
    acct: &Account,
    opts: &ConnectOpts,
) -> Res<(Ws, Ready)> {
    connect_node(t, idx % t.addrs.len(), idx, acct, opts, None).await
}

/// As [`connect`], to server `node` of the target, resuming after position `since` when
/// given (the replay and `resumed` follow the `ready` frame).
pub async fn connect_node(
    t: &Target,
    node: usize,
    idx: usize,
    acct: &Account,
    opts: &ConnectOpts,
    since: Option<u64>,
) -> Res<(Ws, Ready)> {
    let sock = TcpSocket::new_v4()?;
    if t.src_addrs > 0 {
        let last = 2 + (idx as u32 % t.src_addrs) as u8;
        sock.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            0,
        ))?;
    }
    if let Some(b) = opts.rcvbuf {
        sock.set_recv_buffer_size(b)?;
    }
    let addr = t.addrs[node % t.addrs.len()];
    let stream = tokio::time::timeout(Duration::from_secs(30), sock.connect(addr))
        .await
        .map_err(|_| "TCP connect timed out")??;
    stream.set_nodelay(true)?;
    let url = match (t.raw, since) {
        (true, _) => format!("ws://{addr}/ws?user={}", acct.username),
        (false, Some(pos)) => format!("ws://{addr}/ws?since={pos}"),
        (false, None) => format!("ws://{addr}/ws"),
    };
    let mut req = url.into_client_request()?;
    if let Some(tok) = &acct.token {
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {tok}"))?,
        );
    }
    let cfg = WebSocketConfig::default()
        .read_buffer_size(t.read_buffer)
        .write_buffer_size(0);
    let (mut ws, _resp) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::client_async_with_config(req, stream, Some(cfg)),
    )
    .await
    .map_err(|_| "WebSocket handshake timed out")??;
    let mut ready = Ready::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "no ready frame within 30 s")?;
        match msg {
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(&text)?;
                if v["type"] == "ready" {
                    ready.last_id = v["last_id"].as_u64().ok_or("ready without last_id")?;
                    return Ok((ws, ready));
                }
                ready.frames_before_ready += 1;
            }
            Some(Ok(Message::Close(f))) => return err(format!("closed before ready: {f:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return err("connection ended before ready"),
        }
    }
}

/// Open `n` connections, connection `i` as user `accounts[i % accounts.len()]` (so every user's
/// first connection opens early and presence traffic stays small), `concurrency` at a time.
/// `on(i)` picks the runtime that connection `i` is registered with (None: the current one).
pub async fn connect_many(
    t: &Target,
    accounts: &[Account],
    n: usize,
    concurrency: usize,
    opts_for: impl Fn(usize) -> ConnectOpts,
) -> Res<Vec<(Ws, Ready)>> {
    connect_many_on(t, accounts, n, concurrency, opts_for, |_| None).await
}

pub async fn connect_many_on(
    t: &Target,
    accounts: &[Account],
    n: usize,
    concurrency: usize,
    opts_for: impl Fn(usize) -> ConnectOpts,
    on: impl Fn(usize) -> Option<tokio::runtime::Handle>,
) -> Res<Vec<(Ws, Ready)>> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (t, sem) = (t.clone(), sem.clone());
        let acct = accounts[i % accounts.len()].clone();
        let opts = opts_for(i);
        let fut = async move {
            let _permit = sem.acquire().await;
            connect(&t, i, &acct, &opts).await
        };
        handles.push(match on(i) {
            Some(h) => h.spawn(fut),
            None => tokio::spawn(fut),
        });
    }
    let mut out = Vec::with_capacity(n);
    let mut first_err = None;
    let mut failures = 0usize;
    for h in handles {
        match h.await? {
            Ok(c) => out.push(c),
            Err(e) => {
                failures += 1;
                if first_err.is_none() {
                    first_err = Some(e.to_string());
                }
            }
        }
    }
    if failures > 0 {
        return err(format!(
            "{failures} of {n} connections failed; first error: {}",
            first_err.unwrap_or_default()
        ));
    }
    Ok(out)
}

/// Close a connection politely without waiting long.
pub async fn close_quietly(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
}

/// Send one text frame.
pub async fn send_text<S>(sink: &mut S, text: String) -> Res<()>
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    sink.send(Message::text(text)).await?;
    Ok(())
}
