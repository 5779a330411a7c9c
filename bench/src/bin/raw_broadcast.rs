//! raw-broadcast: the smallest reasonable broadcast server on the same stack as Hearth
//! (tokio + tokio-tungstenite), used as the "raw limit" that Hearth's fan-out is compared to.
//!
//! No accounts, no database, one room. Every `send` frame becomes a `message` frame of the
//! same shape as Hearth's (increasing `id`, `ts`, `nonce`), serialized once and shared by all
//! connections through a broadcast channel. Like Hearth it sends a `ready` first frame, and
//! closes a connection with code 4008 when its queue overflows.
//!
//! `raw-broadcast --port 0` prints `listening on http://127.0.0.1:PORT`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

#[derive(Parser)]
#[command(
    name = "raw-broadcast",
    about = "Reference broadcast server for hearth-bench"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 = any free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Per-connection queue (messages) before the connection is closed with 4008.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
}

struct Room {
    next_id: u64,
    tx: broadcast::Sender<Utf8Bytes>,
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    room: String,
    #[serde(default)]
    body: String,
    nonce: Option<String>,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    room: &'a str,
    user: &'a str,
    body: &'a str,
    ts: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// RFC 3339 UTC timestamp with milliseconds.
fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn publish(room: &Mutex<Room>, user: &str, frame: &Incoming) {
    let body = frame.body.trim();
    if frame.kind != "send" || body.is_empty() {
        return;
    }
    let ts = now_rfc3339();
    let mut r = room.lock().unwrap();
    r.next_id += 1;
    let out = Outgoing {
        kind: "message",
        id: r.next_id,
        room: if frame.room.is_empty() {
            "general"
        } else {
            &frame.room
        },
        user,
        body,
        ts: &ts,
        nonce: frame.nonce.as_deref(),
    };
    let text = serde_json::to_string(&out).expect("serializable");
    let _ = r.tx.send(Utf8Bytes::from(text));
}

fn user_from_query(req: &Request) -> String {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("user="))
        .filter(|u| !u.is_empty() && u.len() <= 32)
        .unwrap_or("anon")
        .to_string()
}

#[allow(clippy::result_large_err)] // the handshake callback's signature is fixed by tungstenite
async fn handle(stream: TcpStream, room: Arc<Mutex<Room>>) {
    let _ = stream.set_nodelay(true);
    let mut user = String::from("anon");
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(8192);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |req: &Request, resp: Response| {
            user = user_from_query(req);
            Ok(resp)
        },
        Some(cfg),
    )
    .await;
    let Ok(mut ws) = ws else { return };
    let (mut rx, last_id) = {
        let r = room.lock().unwrap();
        (r.tx.subscribe(), r.next_id)
    };
    let ready = serde_json::json!({
        "type": "ready",
        "user": {"id": 0, "username": user},
        "rooms": [{"id": 1, "name": "general"}],
        "online": [],
        "last_id": last_id,
    });
    if ws.send(Message::text(ready.to_string())).await.is_err() {
        return;
    }
    let (mut sink, mut incoming) = ws.split();
    loop {
        tokio::select! {
            m = incoming.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(frame) = serde_json::from_str::<Incoming>(&t) {
                        publish(&room, &user, &frame);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            r = rx.recv() => match r {
                Ok(first) => {
                    // Batch whatever else is queued into one write.
                    let mut ok = sink.feed(Message::Text(first)).await.is_ok();
                    let mut n = 1;
                    while ok && n < 256 {
                        match rx.try_recv() {
                            Ok(m) => ok = sink.feed(Message::Text(m)).await.is_ok(),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                    let flushed = tokio::time::timeout(Duration::from_secs(30), sink.flush()).await;
                    if !ok || !matches!(flushed, Ok(Ok(()))) {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let close = Message::Close(Some(CloseFrame {
                        code: CloseCode::from(4008),
                        reason: "too slow".into(),
                    }));
                    let _ = tokio::time::timeout(Duration::from_secs(30), sink.send(close)).await;
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // Hearth's own listening socket (its backlog), so both servers meet a burst of connects
    // alike.
    let want = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the host resolves to no address"))?;
    let listener = hearth::server::listen(want)?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    let (tx, _) = broadcast::channel(args.queue.max(1));
    let room = Arc::new(Mutex::new(Room { next_id: 0, tx }));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            a = listener.accept() => match a {
                Ok((stream, _)) => {
                    tokio::spawn(handle(stream, room.clone()));
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
