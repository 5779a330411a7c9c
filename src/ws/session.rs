//! One WebSocket connection: `ready`, the optional `?since=` replay, then a single `select!`
//! loop over client frames, the hub queue, keep-alive pings and server shutdown.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::app::access::{self, Access};
use crate::app::App;
use crate::db::{NewMessage, Room, Snapshot, StoredMessage, User};
use crate::domain::{parse_body, valid_nonce, BodyProblem};
use crate::hub::{Outgoing, Registration, RoomChange};
use crate::protocol::{
    ClientMsg, RoomView, ServerMsg, UserView, CLOSE_SESSION_ENDED, CLOSE_TOO_SLOW,
};

/// Most messages replayed after `?since=`.
pub const REPLAY_LIMIT: u32 = 1000;
/// Interval between server pings.
const PING_EVERY: Duration = Duration::from_secs(25);
/// A connection from which nothing arrived for this long is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// How long a write may stay blocked before the TCP connection is dropped.
const WRITE_STALL: Duration = Duration::from_secs(30);
/// Frames written before one flush.
const MAX_COALESCE: usize = 256;
/// Typing notices relayed per connection, at most one per this interval.
const TYPING_EVERY: Duration = Duration::from_millis(1000);

/// Everything a session needs, gathered before the upgrade.
pub struct Session {
    /// The authenticated user.
    pub user: User,
    /// Shared name for frames.
    pub username: Arc<str>,
    /// Rooms the user belongs to.
    pub rooms: Vec<Room>,
    /// `?since=` value.
    pub since: Option<i64>,
    /// Digest of the token this connection authenticated with.
    pub token_hash: [u8; 32],
    /// Hub registration (unregisters on drop).
    pub reg: Registration,
    /// Shared server state.
    pub state: App,
    /// Keeps shutdown waiting until this session has closed.
    pub guard: crate::shutdown::TrackGuard,
}

type Ws<S> = WebSocketStream<S>;
type Rooms = HashMap<String, (i64, Arc<str>)>;

enum Flow {
    Continue,
    Stop,
    /// Close the connection with this code and reason.
    Close(u16, &'static str),
}

/// How long a closing connection waits for the client's own close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Close cleanly: send the close frame (waiting up to `send_within` for the socket to take
/// it), then keep reading (and discarding) what the client still sends until its close frame
/// arrives, the connection ends or [`CLOSE_GRACE`] passes. Dropping a socket with unread input
/// would make the kernel reset it, and the client would see an abnormal closure instead of our
/// close code.
async fn close_gracefully<S>(ws: &mut Ws<S>, code: u16, reason: &'static str, send_within: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !matches!(
        timeout(send_within, ws.send(close(code, reason))).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let _ = timeout(CLOSE_GRACE, async {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Close(_)) {
                // tungstenite answers nothing more; flush anything still buffered.
                let _ = ws.flush().await;
                break;
            }
        }
    })
    .await;
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

fn error_frame(code: &str, message: &str, nonce: Option<&str>, retry: Option<u64>) -> Message {
    Message::Text(
        ServerMsg::Error {
            code,
            message,
            nonce,
            retry_after_ms: retry,
        }
        .encode(),
    )
}

/// Best-effort nonce of a frame that failed to parse, so the client can match the error.
fn salvage_nonce(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("nonce")?
        .as_str()
        .filter(|n| valid_nonce(n))
        .map(str::to_string)
}

impl Session {
    /// Drive the connection until it closes.
    pub async fn run<S>(mut self, mut ws: Ws<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut shutdown = self.state.shutdown.clone();
        let skip_upto = match self.greet(&mut ws).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("connection ended during greeting: {e}");
                return;
            }
        };
        // Room name → (id, shared name for the frames), built once per connection.
        let mut rooms: Rooms = self
            .rooms
            .iter()
            .map(|r| (r.name.clone(), (r.id, Arc::from(r.name.as_str()))))
            .collect();
        let mut ping = interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut last_typing: Option<Instant> = None;

        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    close_gracefully(&mut ws, 1001, "server shutting down", CLOSE_GRACE).await;
                    break;
                }
                out = self.reg.rx.recv() => {
                    let flow = match out {
                        Some(first) => self.forward(&mut ws, first, skip_upto, &mut rooms).await,
                        None if self.reg.slow.load(Ordering::Acquire) => {
                            Flow::Close(CLOSE_TOO_SLOW, "too slow: reconnect with ?since=")
                        }
                        None => Flow::Stop,
                    };
                    match flow {
                        Flow::Continue => {}
                        Flow::Stop => break,
                        Flow::Close(code, reason) => {
                            // Queued behind the frames before it (4001, 4008): as patient
                            // as any other write.
                            close_gracefully(&mut ws, code, reason, WRITE_STALL).await;
                            break;
                        }
                    }
                }
                incoming = ws.next() => {
                    last_heard = Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(reply) = self.handle_text(&text, &rooms, &mut last_typing).await {
                                if timeout(WRITE_STALL, ws.send(reply)).await.map_or(true, |r| r.is_err()) {
                                    break;
                                }
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let reply = error_frame("bad_frame", "Binary frames are not supported; send JSON text.", None, None);
                            if timeout(WRITE_STALL, ws.send(reply)).await.map_or(true, |r| r.is_err()) {
                                break;
                            }
                        }
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Ok(_)) => {} // ping/pong: answered by the library
                        Some(Err(WsError::Capacity(e))) => {
                            tracing::debug!("frame too large: {e}");
                            close_gracefully(&mut ws, 1009, "frame too large (max 64 KiB)", CLOSE_GRACE).await;
                            break;
                        }
                        Some(Err(e)) => {
                            tracing::debug!("websocket read error: {e}");
                            break;
                        }
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= IDLE_LIMIT {
                        close_gracefully(&mut ws, 1001, "idle timeout", CLOSE_GRACE).await;
                        break;
                    }
                    if let Ok(false) = self.state.auth.still_valid(self.token_hash).await {
                        close_gracefully(&mut ws, CLOSE_SESSION_ENDED, "session ended", CLOSE_GRACE).await;
                        break;
                    }
                    if timeout(WRITE_STALL, ws.send(Message::Ping(Default::default()))).await.map_or(true, |r| r.is_err()) {
                        break;
                    }
                }
            }
        }
    }

    /// Send `ready` and, for `?since=`, the replay and `resumed`. Returns the id up to which
    /// live messages were already covered by the replay.
    async fn greet<S>(&mut self, ws: &mut Ws<S>) -> Result<i64, WsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let uid = self.user.id;
        let since = self.since;
        // Registered with the hub already, so anything committed from here on is queued; the
        // rooms, replay and head are read in one snapshot, and queued ids ≤ head are skipped.
        // A membership change reaching the hub during the read means reading again.
        let mut attempts = 0;
        let (head, replay) = loop {
            attempts += 1;
            let epoch = self.state.hub.membership_epoch();
            let read = self.state.db.snapshot(uid, since, REPLAY_LIMIT + 1).await;
            let Snapshot {
                head,
                rooms,
                replay,
            } = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("cannot read history for a new connection: {e}");
                    let _ = ws.send(close(1011, "storage unavailable")).await;
                    return Err(WsError::ConnectionClosed);
                }
            };
            let ids: Vec<i64> = rooms.iter().map(|r| r.id).collect();
            let hub = &self.state.hub;
            if hub.sync_rooms(self.reg.id, &ids, epoch)
                || (attempts >= 20 && hub.sync_rooms(self.reg.id, &ids, hub.membership_epoch()))
            {
                self.rooms = rooms;
                break (head, replay);
            }
        };
        let online = self.state.hub.online();
        let ready = ServerMsg::Ready {
            user: UserView::from(&self.user),
            rooms: self.rooms.iter().map(RoomView::from).collect(),
            online: online.iter().map(String::as_str).collect(),
            last_id: head,
        }
        .encode();
        ws.feed(Message::Text(ready)).await?;
        let Some(mut replay) = replay else {
            ws.flush().await?;
            return Ok(0);
        };
        let complete = replay.len() <= REPLAY_LIMIT as usize;
        replay.truncate(REPLAY_LIMIT as usize);
        for m in &replay {
            ws.feed(Message::Text(message_frame(m))).await?;
        }
        ws.feed(Message::Text(
            ServerMsg::Resumed { complete, head }.encode(),
        ))
        .await?;
        ws.flush().await?;
        Ok(head)
    }

    /// Write one queued frame plus whatever else is queued, then flush once.
    async fn forward<S>(
        &mut self,
        ws: &mut Ws<S>,
        first: Outgoing,
        skip_upto: i64,
        rooms: &mut Rooms,
    ) -> Flow
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut next = Some(first);
        let mut written = 0;
        let mut closing = None;
        while let Some(out) = next.take() {
            match out {
                Outgoing::Frame { frame, msg_id } => {
                    if msg_id == 0 || msg_id > skip_upto {
                        if ws.feed(Message::Text(frame)).await.is_err() {
                            return Flow::Stop;
                        }
                        written += 1;
                    }
                }
                Outgoing::Close(code, reason) => {
                    closing = Some((code, reason));
                    break;
                }
                Outgoing::Room(change) => apply_room_change(rooms, change),
            }
            if written >= MAX_COALESCE {
                break;
            }
            next = match self.reg.rx.try_recv() {
                Ok(o) => Some(o),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
            };
        }
        match (timeout(WRITE_STALL, ws.flush()).await, closing) {
            (Ok(Ok(())), Some((code, reason))) => Flow::Close(code, reason),
            (Ok(Ok(())), None) => Flow::Continue,
            _ => Flow::Stop,
        }
    }

    /// Act on one client text frame; returns an immediate reply (errors) if any.
    async fn handle_text(
        &self,
        text: &str,
        rooms: &Rooms,
        last_typing: &mut Option<Instant>,
    ) -> Option<Message> {
        let msg = match ClientMsg::parse(text) {
            Ok(m) => m,
            Err(why) => {
                let nonce = salvage_nonce(text);
                return Some(error_frame("bad_frame", &why, nonce.as_deref(), None));
            }
        };
        match msg {
            ClientMsg::Send { room, body, nonce } => {
                let n = nonce.as_deref();
                if nonce.as_deref().is_some_and(|n| !valid_nonce(n)) {
                    return Some(error_frame(
                        "bad_frame",
                        "The nonce may be at most 64 characters.",
                        None,
                        None,
                    ));
                }
                let (room_id, room_name) = match self.room_id(&room, rooms).await {
                    Ok(r) => r,
                    Err((code, why)) => return Some(error_frame(code, why, n, None)),
                };
                let body = match parse_body(&body) {
                    Ok(b) => b.into_owned(),
                    Err(BodyProblem::Empty) => {
                        return Some(error_frame(
                            "empty_message",
                            "The message is empty.",
                            n,
                            None,
                        ))
                    }
                    Err(BodyProblem::TooLong) => {
                        return Some(error_frame(
                            "message_too_long",
                            "Messages may be at most 4000 characters.",
                            n,
                            None,
                        ))
                    }
                };
                if let Err(ms) = self.state.hub.take_message_token(self.user.id) {
                    return Some(error_frame(
                        "rate_limited",
                        "You are sending messages too fast.",
                        n,
                        Some(ms),
                    ));
                }
                let submitted = self
                    .state
                    .db
                    .submit(NewMessage {
                        room_id,
                        room: room_name,
                        user_id: self.user.id,
                        username: self.username.clone(),
                        body,
                        nonce: nonce.clone(),
                        origin: self.reg.id,
                        queued_at: std::time::Instant::now(),
                    })
                    .await;
                if submitted.is_err() {
                    return Some(error_frame(
                        "unavailable",
                        "The server is shutting down; the message was not stored.",
                        nonce.as_deref(),
                        Some(1000),
                    ));
                }
                None
            }
            ClientMsg::Read { room, id } => {
                if id < 0 {
                    return Some(error_frame(
                        "bad_frame",
                        "`id` must be a message id (≥ 0).",
                        None,
                        None,
                    ));
                }
                // Awaited here, so a client flooding `read` frames waits for its own commits.
                match crate::app::rooms::mark_read(&self.state, self.user.id, &room, id).await {
                    Ok(_) => None,
                    Err(crate::app::rooms::RoomError::Db(e)) => {
                        tracing::error!("read marker not stored: {e}");
                        Some(error_frame(
                            "unavailable",
                            "The read marker could not be stored; try again.",
                            None,
                            Some(1000),
                        ))
                    }
                    Err(e) => Some(error_frame(e.code(), &e.to_string(), None, None)),
                }
            }
            ClientMsg::Typing { room } => {
                let (room_id, _) = match self.room_id(&room, rooms).await {
                    Ok(r) => r,
                    Err((code, why)) => return Some(error_frame(code, why, None, None)),
                };
                let now = Instant::now();
                if last_typing.is_none_or(|t| now.duration_since(t) >= TYPING_EVERY) {
                    *last_typing = Some(now);
                    self.state
                        .hub
                        .typing(room_id, &room, self.user.id, &self.user.username);
                }
                None
            }
        }
    }

    /// Resolve a room name this connection may post to.
    async fn room_id(
        &self,
        room: &str,
        rooms: &Rooms,
    ) -> Result<(i64, Arc<str>), (&'static str, &'static str)> {
        if let Some((id, name)) = rooms.get(room) {
            return Ok((*id, name.clone()));
        }
        let name = room.to_string();
        let uid = self.user.id;
        match self.state.db.room_by_name(&name, uid).await {
            Ok(Some(r)) => match access::access(&r) {
                // Joined a moment ago; the hub's notice is still on its way to this connection.
                Access::Member => Ok((r.id, Arc::from(r.name.as_str()))),
                Access::Preview => Err(("not_a_member", "You are not a member of that room.")),
                Access::Hidden => Err(("unknown_room", "There is no room with that name.")),
            },
            Ok(None) => Err(("unknown_room", "There is no room with that name.")),
            Err(e) => {
                tracing::error!("room lookup failed: {e}");
                Err(("unavailable", "The server could not look up the room."))
            }
        }
    }
}

fn apply_room_change(rooms: &mut Rooms, change: RoomChange) {
    match change {
        RoomChange::Joined(id, name) => {
            rooms.insert(name.to_string(), (id, name));
        }
        RoomChange::Left(id) => rooms.retain(|_, (r, _)| *r != id),
        RoomChange::Renamed(id, name) => {
            rooms.retain(|_, (r, _)| *r != id);
            rooms.insert(name.to_string(), (id, name));
        }
    }
}

fn message_frame(m: &StoredMessage) -> tokio_tungstenite::tungstenite::Utf8Bytes {
    ServerMsg::Message(m.into()).encode()
}
