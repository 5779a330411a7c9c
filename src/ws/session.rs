//! One WebSocket connection: `ready`, the optional `?since=` replay, then a single `select!`
//! loop over client frames, the hub queue, keep-alive pings and server shutdown. Each client
//! frame becomes a [`Command`]; a refused one is answered with an `error` frame rendered from
//! its [`AppError`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::app::error::{AppError, Code};
use crate::app::App;
use crate::db::{Replayed, Room, Snapshot};
use crate::hub::{ConnId, Outgoing, Registration, RoomChange, RoomUpdate};
use crate::protocol::{
    replayed_frame, ClientMsg, ProfileView, RoomView, ServerMsg, UserView, CLOSE_SESSION_ENDED,
    CLOSE_TOO_SLOW,
};
use crate::ws::commands::{Command, Context, Rooms};

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
/// How long a closing connection waits for the client's own close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// At shutdown a connection stops reading and forwards what still reaches its queue (the
/// answers to sends already on their way to the database, which the writer still commits,
/// and the messages they carry): once they are committed, until the queue has been quiet
/// this long…
const DRAIN_QUIET: Duration = Duration::from_millis(250);
/// …and this long at most, then closes with 1001.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// One WebSocket connection and everything its loop needs, gathered before the upgrade. (A
/// *session* is a sign-in: a cookie or a bot token, see `auth`; one session may hold many
/// connections.)
pub struct Connection {
    /// What the commands see: the user, the server state, the rooms it may post to.
    pub cx: Context,
    /// `?since=` value.
    pub since: Option<i64>,
    /// Digest of the token this connection authenticated with.
    pub token_hash: [u8; 32],
    /// Hub registration (unregisters on drop).
    pub reg: Registration,
    /// Keeps shutdown waiting until this session has closed.
    pub guard: crate::shutdown::TrackGuard,
    /// Its place in the connection caps over every node (cluster mode).
    pub place: Option<crate::cluster::caps::Place>,
    /// Whether it handed a message to the writer (answered later, through the hub).
    pub sent: bool,
}

type Ws<S> = WebSocketStream<S>;

/// What the loop does after one event.
enum Flow {
    Continue,
    Stop,
    /// Close the connection with this code and reason, waiting this long to hand the close
    /// frame to the socket.
    Close(u16, &'static str, Duration),
    /// The client's frames cannot be read any more (a protocol error, text that is not UTF-8,
    /// a frame over the limit): close with this code and reason, then discard what it still
    /// sends, unread, until it closes or [`CLOSE_GRACE`] passes.
    Refuse(u16, &'static str),
}

impl Flow {
    /// The same, with a close (a 4001 or 4008 queued behind the frames) given at most
    /// `limit` to go out: during a shutdown's drain nothing is patient.
    fn within(self, limit: Duration) -> Flow {
        match self {
            Flow::Close(code, reason, _) => Flow::Close(code, reason, limit),
            other => other,
        }
    }
}

/// How a closing connection's remaining input is read (see [`close_gracefully`]).
#[derive(Clone, Copy)]
enum Drain {
    /// As frames, until the client's close frame.
    Frames,
    /// As bytes, unparsed: the framing is broken (the rest of a frame over the limit, say).
    Bytes,
}

/// Close cleanly: send the close frame (waiting up to `send_within` for the socket to take
/// it), then keep reading (and discarding) what the client still sends until its close frame
/// arrives (`Drain::Frames`), the connection ends or [`CLOSE_GRACE`] passes. Dropping a
/// socket with unread input would make the kernel reset it, and the client would see an
/// abnormal closure instead of our close code.
async fn close_gracefully<S>(
    ws: &mut Ws<S>,
    (code, reason): (u16, &'static str),
    send_within: Duration,
    drain: Drain,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !matches!(
        timeout(send_within, ws.send(close(code, reason))).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let _ = timeout(CLOSE_GRACE, async {
        match drain {
            Drain::Frames => {
                while let Some(Ok(msg)) = ws.next().await {
                    if matches!(msg, Message::Close(_)) {
                        // tungstenite answers nothing more; flush anything still buffered.
                        let _ = ws.flush().await;
                        break;
                    }
                }
            }
            Drain::Bytes => {
                let mut scrap = [0u8; 4096];
                while matches!(ws.get_mut().read(&mut scrap).await, Ok(n) if n > 0) {}
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

/// Whether a protocol error only says the connection is ending (or ended) anyway, so that
/// no close frame is owed for it.
fn closing_error(e: &tokio_tungstenite::tungstenite::error::ProtocolError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    matches!(
        e,
        P::ResetWithoutClosingHandshake | P::SendAfterClosing | P::ReceivedAfterClosing
    )
}

/// Send one frame, as patient as any write; a stalled or broken socket ends the connection.
async fn send<S>(ws: &mut Ws<S>, msg: Message) -> Flow
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match timeout(WRITE_STALL, ws.send(msg)).await {
        Ok(Ok(())) => Flow::Continue,
        _ => Flow::Stop,
    }
}

/// The `error` frame for a refusal: the code and sentence of the one table, the refused
/// frame's nonce, and when to retry where that is known.
fn error_frame(e: &AppError, nonce: Option<&str>) -> Message {
    let retry_after_ms = e
        .retry_after
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Message::Text(
        ServerMsg::Error {
            code: e.code.as_str(),
            message: &e.message,
            nonce,
            retry_after_ms,
        }
        .encode(),
    )
}

/// Best-effort nonce of a frame that failed to parse, so the client can match the error: any
/// string, a nonce refused for its length included (the frame itself is at most 64 KiB).
fn salvage_nonce(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("nonce")?.as_str().map(str::to_string)
}

impl Connection {
    /// Drive the connection until it closes.
    pub async fn run<S>(mut self, mut ws: Ws<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Taken before the greeting, so a shutdown that starts meanwhile is still seen.
        let mut shutdown = self.cx.state.shutdown.clone();
        // The greeting, the commands and the session check are boxed: held inline, the
        // largest of them would set the size of every idle connection's task.
        let skip_upto = match Box::pin(self.greet(&mut ws)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("connection ended during greeting: {e}");
                return;
            }
        };
        let mut ping = interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            let flow = tokio::select! {
                biased;
                _ = shutdown.changed() => self.drain(&mut ws, skip_upto).await,
                out = self.reg.rx.recv() => self.on_queue(&mut ws, out, skip_upto).await,
                incoming = ws.next() => {
                    last_heard = Instant::now();
                    self.on_incoming(&mut ws, incoming).await
                }
                _ = ping.tick() => {
                    let flow = self.on_tick(&mut ws, last_heard).await;
                    // A silent client is closed once IDLE_LIMIT has passed, not at the first
                    // ping after it: the next tick comes no later than that.
                    let idle_at = last_heard + IDLE_LIMIT;
                    if idle_at < Instant::now() + PING_EVERY {
                        ping.reset_at(idle_at);
                    }
                    flow
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Stop => break,
                Flow::Close(code, reason, within) => {
                    close_gracefully(&mut ws, (code, reason), within, Drain::Frames).await;
                    break;
                }
                Flow::Refuse(code, reason) => {
                    close_gracefully(&mut ws, (code, reason), CLOSE_GRACE, Drain::Bytes).await;
                    break;
                }
            }
        }
    }

    /// Send `ready` and, for `?since=`, the replay and `resumed`. Returns the id up to which
    /// live messages are covered already (`ready`'s `last_id`).
    async fn greet<S>(&mut self, ws: &mut Ws<S>) -> Result<i64, WsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let read = snapshot(&self.cx.state, self.cx.user.id, self.since, self.reg.id).await;
        let Snapshot {
            head,
            rooms,
            replay,
        } = match read {
            Ok(snap) => snap,
            Err(Unread::Storage) => {
                let _ = ws.send(close(1011, "storage unavailable")).await;
                return Err(WsError::ConnectionClosed);
            }
            Err(Unread::Churn) => {
                let _ = ws.send(close(1013, "rooms changing, try again")).await;
                return Err(WsError::ConnectionClosed);
            }
        };
        // Whatever `ready` counts is no longer sent to this connection live: until the
        // fan-out has delivered it, history pages are read from the store, not from the
        // rooms' newest messages in memory, which may lack it (`Metrics::log_behind`).
        self.cx.state.hub.metrics().log_heard(head);
        let online = self.cx.state.hub.online();
        let profiles = self.cx.state.hub.profiles();
        let ready = ServerMsg::Ready {
            user: UserView::from(&self.cx.user),
            rooms: rooms.iter().map(RoomView::from).collect(),
            online: online.iter().map(|n| &**n).collect(),
            profiles: profiles.iter().map(ProfileView::from).collect(),
            last_id: head,
        }
        .encode();
        self.cx.rooms = postable(rooms);
        ws.feed(Message::Text(ready)).await?;
        // What the fan-out offers up to `head` is covered: by the replay, or (without
        // `?since=`) by the history the client reads after `ready`, whose `last_id` says
        // where the live frames start. On several nodes this node's fan-out may still be
        // short of the head it read, and would otherwise send again what came before it.
        if let Some(replay) = replay {
            feed_replay(ws, replay, head).await?;
        }
        ws.flush().await?;
        Ok(head)
    }

    /// At shutdown: read nothing more from the client and forward what reaches the queue
    /// until every send this connection handed to the writer is answered (the hub has
    /// delivered a [`crate::db::Db::barrier`] queued after them) and the queue has then been
    /// quiet for [`DRAIN_QUIET`], all within [`DRAIN_LIMIT`]; then close with 1001. A send
    /// read before the shutdown is answered on this connection, not lost with it.
    async fn drain<S>(&mut self, ws: &mut Ws<S>, skip_upto: i64) -> Flow
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let until = Instant::now() + DRAIN_LIMIT;
        let db = self.cx.state.db.clone();
        let committed = async move { db.barrier().await };
        tokio::pin!(committed);
        // A connection that never sent has nothing on its way (its other commands are
        // answered before the next frame is read).
        let mut settled = !self.sent;
        loop {
            let wait = if settled {
                (Instant::now() + DRAIN_QUIET).min(until)
            } else {
                until
            };
            tokio::select! {
                biased;
                _ = &mut committed, if !settled => settled = true,
                out = tokio::time::timeout_at(wait, self.reg.rx.recv()) => match out {
                    Ok(Some(out)) => {
                        match tokio::time::timeout_at(until, self.forward(ws, out, skip_upto)).await {
                            Ok(Flow::Continue) => {}
                            Ok(flow) => return flow.within(CLOSE_GRACE),
                            Err(_) => return Flow::Stop,
                        }
                    }
                    // Dropped as too slow meanwhile (4008), or unregistered.
                    Ok(None) => return self.on_queue(ws, None, skip_upto).await.within(CLOSE_GRACE),
                    Err(_) => break,
                },
            }
            if Instant::now() >= until {
                break;
            }
        }
        Flow::Close(1001, "server shutting down", CLOSE_GRACE)
    }

    /// A hub queue event: frames to forward, or the queue's end (dropped as too slow, or
    /// unregistered).
    async fn on_queue<S>(&mut self, ws: &mut Ws<S>, out: Option<Outgoing>, skip_upto: i64) -> Flow
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match out {
            Some(first) => self.forward(ws, first, skip_upto).await,
            // Dropped by the hub for falling behind (4008): the close is as patient as any
            // other write.
            None if self.reg.slow.load(Ordering::Acquire) => Flow::Close(
                CLOSE_TOO_SLOW,
                "too slow: reconnect with ?since=",
                WRITE_STALL,
            ),
            None => Flow::Stop,
        }
    }

    /// Write one queued frame plus whatever else is queued (up to [`MAX_COALESCE`]), then
    /// flush once.
    async fn forward<S>(&mut self, ws: &mut Ws<S>, first: Outgoing, skip_upto: i64) -> Flow
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut next = Some(first);
        let mut written = 0;
        let mut closing = None;
        while let Some(out) = next.take() {
            match out {
                // Messages up to `skip_upto` came before `ready` (or in the replay).
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
                Outgoing::Room(update) => {
                    let RoomUpdate { change, frame } = *update;
                    if apply_room_change(&mut self.cx.rooms, change) {
                        if ws.feed(Message::Text(frame)).await.is_err() {
                            return Flow::Stop;
                        }
                        written += 1;
                    }
                }
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
            // Queued behind the frames before it (4001, 4008): as patient as any other write.
            (Ok(Ok(())), Some((code, reason))) => Flow::Close(code, reason, WRITE_STALL),
            (Ok(Ok(())), None) => Flow::Continue,
            _ => Flow::Stop,
        }
    }

    /// Something from the client: a frame, its close, or a read error.
    async fn on_incoming<S>(
        &mut self,
        ws: &mut Ws<S>,
        incoming: Option<Result<Message, WsError>>,
    ) -> Flow
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match incoming {
            Some(Ok(Message::Text(text))) => match self.handle_text(&text).await {
                Some(reply) => send(ws, reply).await,
                None => Flow::Continue,
            },
            Some(Ok(Message::Binary(_))) => {
                let e = AppError::new(
                    Code::BadFrame,
                    "Binary frames are not supported; send JSON text.",
                );
                send(ws, error_frame(&e, None)).await
            }
            Some(Ok(Message::Close(_))) => {
                // The library has queued the answering close; it goes out with a flush.
                let _ = timeout(CLOSE_GRACE, ws.flush()).await;
                Flow::Stop
            }
            None => Flow::Stop,
            Some(Ok(_)) => Flow::Continue, // ping/pong: answered by the library
            Some(Err(WsError::Capacity(e))) => {
                tracing::debug!("frame too large: {e}");
                Flow::Refuse(1009, "frame too large (max 64 KiB)")
            }
            Some(Err(WsError::Utf8(e))) => {
                tracing::debug!("text frame not UTF-8: {e}");
                Flow::Refuse(1007, "text frames must be UTF-8")
            }
            Some(Err(WsError::Protocol(e))) if !closing_error(&e) => {
                tracing::debug!("websocket protocol error: {e}");
                Flow::Refuse(1002, "protocol error")
            }
            Some(Err(e)) => {
                tracing::debug!("websocket read error: {e}");
                Flow::Stop
            }
        }
    }

    /// Act on one client text frame; returns the `error` frame when it was refused.
    async fn handle_text(&mut self, text: &str) -> Option<Message> {
        let cmd = match ClientMsg::parse(text) {
            Ok(msg) => Command::from_frame(msg),
            Err(why) => {
                let e = AppError::new(Code::BadFrame, why);
                return Some(error_frame(&e, salvage_nonce(text).as_deref()));
            }
        };
        // `apply` consumes the command (the nonce goes on to the writer), so the refusal keeps
        // its own copy.
        let nonce = cmd.nonce().map(str::to_owned);
        let is_send = matches!(cmd, Command::Send(_));
        let refused = match Box::pin(cmd.apply(&mut self.cx)).await {
            Ok(()) => {
                self.sent |= is_send;
                return None;
            }
            Err(refused) => refused,
        };
        Some(error_frame(&refused, nonce.as_deref()))
    }

    /// A ping tick: close an idle or revoked connection, else ping it.
    async fn on_tick<S>(&mut self, ws: &mut Ws<S>, last_heard: Instant) -> Flow
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if last_heard.elapsed() >= IDLE_LIMIT {
            return Flow::Close(1001, "idle timeout", CLOSE_GRACE);
        }
        // Bounded: a database that stopped answering must not hold the connection's loop
        // (and the close the node may owe it); the next tick asks again.
        let check = Box::pin(self.cx.state.auth.still_valid(self.token_hash));
        if let Ok(Ok(false)) = timeout(SESSION_CHECK_WITHIN, check).await {
            return Flow::Close(CLOSE_SESSION_ENDED, "session ended", CLOSE_GRACE);
        }
        send(ws, Message::Ping(Default::default())).await
    }
}

/// Longest a connection's periodic session check waits for the database.
const SESSION_CHECK_WITHIN: Duration = Duration::from_secs(5);

/// Why a new connection's snapshot was not taken.
enum Unread {
    /// Storage failed (logged).
    Storage,
    /// The user's own rooms (or their names or topics) changed during every one of
    /// [`SNAPSHOT_ATTEMPTS`] reads.
    Churn,
}

/// Reads of a new connection's rooms before it is told to come back later.
const SNAPSHOT_ATTEMPTS: u32 = 20;
#[cfg(feature = "faults")]
const _: () = assert!(SNAPSHOT_ATTEMPTS == crate::hub::FAULT_CHURN_SYNCS);

/// Read the user's rooms, the replay after `since` and the head in one snapshot, and make the
/// connection listen to those rooms.
async fn snapshot(
    state: &App,
    uid: i64,
    since: Option<i64>,
    conn: ConnId,
) -> Result<Snapshot, Unread> {
    // The connection was admitted listening to no room. A snapshot is good when, once the
    // connection listens to its rooms, everything the fan-out offered before that is in the
    // snapshot (its head is at least where listening began): then nothing is missed, and
    // with `?since=` queued ids ≤ head are skipped (the replay has them). A change of this
    // user's rooms (or of the name or topic of one of them) reaching the hub during the
    // read, or messages fanned out between the read and the sync, mean reading again (once
    // more at most, unless the user's rooms keep changing). A read that cannot be made good is never forced through: listening to rooms
    // the user has just left would deliver them their messages for the socket's life.
    let hub = &state.hub;
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let epoch = hub.membership_epoch();
        let snap = match state.db.snapshot(uid, since, REPLAY_LIMIT + 1).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot read history for a new connection: {e}");
                return Err(Unread::Storage);
            }
        };
        let ids: Vec<i64> = snap.rooms.iter().map(|r| r.id).collect();
        if hub
            .sync_rooms(conn, &ids, epoch)
            .is_some_and(|from| snap.head >= from)
        {
            return Ok(snap);
        }
    }
    Err(Unread::Churn)
}

/// Feed (not flush) the replay, at most [`REPLAY_LIMIT`] messages, and `resumed`.
async fn feed_replay<S>(ws: &mut Ws<S>, mut replay: Vec<Replayed>, head: i64) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let complete = replay.len() <= REPLAY_LIMIT as usize;
    replay.truncate(REPLAY_LIMIT as usize);
    for item in &replay {
        ws.feed(Message::Text(replayed_frame(item))).await?;
    }
    let resumed = ServerMsg::Resumed { complete, head }.encode();
    ws.feed(Message::Text(resumed)).await
}

/// The room cache of a connection whose rooms are `rooms`.
fn postable(rooms: Vec<Room>) -> Rooms {
    rooms
        .into_iter()
        .map(|r| {
            let name = Arc::from(r.name.as_str());
            (r.name, (r.id, name))
        })
        .collect()
}

/// Apply a change to a connection's rooms. Returns whether it was news, i.e. whether its
/// frame is to be written: a join or a leave that committed before the connection read its
/// rooms, but reached the hub after, is already in `ready` and is not announced again. Rooms
/// are matched by id (a join may arrive with a name a later rename replaced).
fn apply_room_change(rooms: &mut Rooms, change: RoomChange) -> bool {
    let cached = |rooms: &Rooms, id: i64| rooms.values().any(|(r, _)| *r == id);
    match change {
        RoomChange::Joined(id, name) => {
            if cached(rooms, id) {
                return false;
            }
            rooms.insert(name.to_string(), (id, name));
            true
        }
        RoomChange::Left(id) => {
            let before = rooms.len();
            rooms.retain(|_, (r, _)| *r != id);
            rooms.len() != before
        }
        RoomChange::Renamed(id, name) => {
            if !cached(rooms, id) {
                return false;
            }
            rooms.retain(|_, (r, _)| *r != id);
            rooms.insert(name.to_string(), (id, name));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{apply_room_change, RoomChange, Rooms};

    fn rooms(list: &[(i64, &str)]) -> Rooms {
        list.iter()
            .map(|(id, name)| (name.to_string(), (*id, Arc::from(*name))))
            .collect()
    }

    fn names(rooms: &Rooms) -> Vec<String> {
        let mut names: Vec<String> = rooms.keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn joins_and_leaves_are_news_only_when_they_change_the_rooms() {
        // `ready` listed general and plans.
        let mut r = rooms(&[(1, "general"), (7, "plans")]);
        let joined = |id, name: &str| RoomChange::Joined(id, Arc::from(name));
        assert!(
            !apply_room_change(&mut r, joined(7, "plans")),
            "in ready already"
        );
        assert!(apply_room_change(&mut r, RoomChange::Left(7)));
        assert!(
            !apply_room_change(&mut r, RoomChange::Left(7)),
            "left already"
        );
        assert!(apply_room_change(&mut r, joined(7, "plans")));
        assert_eq!(names(&r), ["general", "plans"]);
    }

    #[test]
    fn a_join_under_an_old_name_does_not_add_the_room_twice() {
        // Joined as "a", then renamed "b"; `ready` read both, the hub applies the join late.
        let mut r = rooms(&[(1, "general"), (7, "b")]);
        assert!(!apply_room_change(
            &mut r,
            RoomChange::Joined(7, Arc::from("a"))
        ));
        assert_eq!(names(&r), ["b", "general"]);
        assert!(apply_room_change(
            &mut r,
            RoomChange::Renamed(7, Arc::from("c"))
        ));
        assert_eq!(names(&r), ["c", "general"]);
    }

    #[test]
    fn a_rename_of_a_room_not_listed_adds_nothing() {
        let mut r = rooms(&[(1, "general")]);
        assert!(!apply_room_change(
            &mut r,
            RoomChange::Renamed(7, Arc::from("b"))
        ));
        assert_eq!(names(&r), ["general"]);
        assert!(
            !apply_room_change(&mut r, RoomChange::Left(7)),
            "so no room_left either"
        );
    }
}
