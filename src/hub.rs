//! The hub: which connections are open, which rooms they listen to, who is online, and the
//! fan-out of committed messages.
//!
//! Every connection has a bounded queue of outgoing frames. The hub only ever `try_send`s: a
//! connection whose queue is full is unregistered on the spot (it then drains what it has and
//! closes with 4008), so one slow reader never delays anyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::events::{Change, Committed};
use crate::metrics::Metrics;
use crate::model::User;
use crate::protocol::{RoomView, ServerMsg};

/// Identifies one WebSocket connection.
pub type ConnId = u64;

/// What a connection's writer receives.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A text frame. `msg_id` is the message id for broadcast `message` frames (used to skip
    /// what a `?since=` replay already sent) and 0 for everything else.
    Frame {
        /// Encoded JSON.
        frame: Utf8Bytes,
        /// Message id or 0.
        msg_id: i64,
    },
    /// Close the connection with this code and reason.
    Close(u16, &'static str),
    /// The connection's rooms changed; the frame telling the client follows.
    Room(RoomChange),
}

/// A change to the rooms one connection listens to and may post to.
#[derive(Debug, Clone)]
pub enum RoomChange {
    /// Now a member of this room (id, name).
    Joined(i64, Arc<str>),
    /// No longer a member.
    Left(i64),
    /// The room was renamed.
    Renamed(i64, Arc<str>),
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitError {
    /// The user has too many open connections.
    TooManyForUser,
    /// The client address has too many open connections.
    TooManyForAddress,
}

/// Limits applied when connections register.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Queue length per connection.
    pub queue: usize,
    /// Connections per user (0 = unlimited).
    pub per_user: u32,
    /// Connections per address (0 = unlimited).
    pub per_address: u32,
    /// Sustained messages per second per user (0 = unlimited).
    pub rate: f64,
    /// Burst above the rate.
    pub burst: u32,
}

struct Member {
    conn: ConnId,
    user_id: i64,
    tx: mpsc::Sender<Outgoing>,
}

struct Conn {
    user_id: i64,
    addr: IpAddr,
    session: [u8; 32],
    rooms: Vec<i64>,
    tx: mpsc::Sender<Outgoing>,
    slow: Arc<AtomicBool>,
}

struct OnlineUser {
    username: Arc<str>,
    conns: u32,
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<i64, Vec<Member>>,
    users: HashMap<i64, OnlineUser>,
    per_addr: HashMap<IpAddr, u32>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Shared, cheaply cloned handle to the hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    limits: HubLimits,
    next_id: AtomicU64,
    buckets: Mutex<HashMap<i64, Bucket>>,
    metrics: Arc<Metrics>,
    /// Bumped by every membership change the hub applies (see [`Hub::sync_rooms`]).
    membership_epoch: AtomicU64,
}

/// A connection's place in the hub; unregisters itself when dropped.
pub struct Registration {
    /// This connection's id.
    pub id: ConnId,
    /// Frames to write to the socket, in order.
    pub rx: mpsc::Receiver<Outgoing>,
    /// Set when the hub dropped this connection for falling behind.
    pub slow: Arc<AtomicBool>,
    hub: Hub,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

fn lock_write(l: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock_read(l: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// An empty hub.
    pub fn new(limits: HubLimits, metrics: Arc<Metrics>) -> Self {
        Hub {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                limits,
                next_id: AtomicU64::new(1),
                buckets: Mutex::new(HashMap::new()),
                metrics,
                membership_epoch: AtomicU64::new(0),
            }),
        }
    }

    /// Shared counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        lock_read(&self.inner.state).conns.len()
    }

    /// Admit a connection for `user` listening to `rooms`. Announces the user as online if this
    /// is their first connection. `addr` is the caller's per-address key (an IPv4 address or
    /// an IPv6 /64, see [`crate::limits::address_key`]).
    pub fn register(
        &self,
        user: &User,
        addr: IpAddr,
        session: [u8; 32],
        rooms: &[i64],
    ) -> Result<Registration, AdmitError> {
        let limits = self.inner.limits;
        let (tx, rx) = mpsc::channel(limits.queue);
        let slow = Arc::new(AtomicBool::new(false));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut st = lock_write(&self.inner.state);
        let user_conns = st.users.get(&user.id).map_or(0, |u| u.conns);
        if limits.per_user > 0 && user_conns >= limits.per_user {
            return Err(AdmitError::TooManyForUser);
        }
        let addr_conns = st.per_addr.get(&addr).copied().unwrap_or(0);
        if limits.per_address > 0 && addr_conns >= limits.per_address {
            return Err(AdmitError::TooManyForAddress);
        }
        *st.per_addr.entry(addr).or_default() += 1;
        for room in rooms {
            st.rooms.entry(*room).or_default().push(Member {
                conn: id,
                user_id: user.id,
                tx: tx.clone(),
            });
        }
        st.conns.insert(
            id,
            Conn {
                user_id: user.id,
                addr,
                session,
                rooms: rooms.to_vec(),
                tx,
                slow: slow.clone(),
            },
        );
        let entry = st.users.entry(user.id).or_insert_with(|| OnlineUser {
            username: Arc::from(user.username.as_str()),
            conns: 0,
        });
        entry.conns += 1;
        if entry.conns == 1 {
            let frame = ServerMsg::Presence {
                user: &user.username,
                online: true,
            }
            .encode();
            self.broadcast_all(&st, &frame, Some(id));
        }
        drop(st);
        Ok(Registration {
            id,
            rx,
            slow,
            hub: self.clone(),
        })
    }

    /// Remove a connection (idempotent). Announces the user offline with their last connection.
    fn unregister(&self, id: ConnId) {
        let mut st = lock_write(&self.inner.state);
        let Some(conn) = st.conns.remove(&id) else {
            return;
        };
        for room in &conn.rooms {
            if let Some(members) = st.rooms.get_mut(room) {
                if let Some(pos) = members.iter().position(|m| m.conn == id) {
                    members.swap_remove(pos);
                }
            }
        }
        if let Some(n) = st.per_addr.get_mut(&conn.addr) {
            *n -= 1;
            if *n == 0 {
                st.per_addr.remove(&conn.addr);
            }
        }
        let gone = match st.users.get_mut(&conn.user_id) {
            Some(u) => {
                u.conns -= 1;
                (u.conns == 0).then(|| u.username.clone())
            }
            None => None,
        };
        if let Some(name) = gone {
            st.users.remove(&conn.user_id);
            let frame = ServerMsg::Presence {
                user: &name,
                online: false,
            }
            .encode();
            self.broadcast_all(&st, &frame, None);
        }
    }

    /// Usernames with at least one open connection, sorted.
    pub fn online(&self) -> Vec<String> {
        let st = lock_read(&self.inner.state);
        let mut names: Vec<String> = st.users.values().map(|u| u.username.to_string()).collect();
        names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
        names
    }

    /// Spend one message from the user's token bucket; `Err(ms)` says when to retry.
    pub fn take_message_token(&self, user_id: i64) -> Result<(), u64> {
        let HubLimits { rate, burst, .. } = self.inner.limits;
        if rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.inner.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate < f64::from(burst)
            });
        }
        let b = buckets.entry(user_id).or_insert(Bucket {
            tokens: f64::from(burst),
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(f64::from(burst));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            self.inner
                .metrics
                .rate_limited
                .fetch_add(1, Ordering::Relaxed);
            Err((((1.0 - b.tokens) / rate) * 1000.0).ceil() as u64)
        }
    }

    /// Send `typing` to the room's members other than `user_id`.
    pub fn typing(&self, room_id: i64, room: &str, user_id: i64, username: &str) {
        let frame = ServerMsg::Typing {
            room,
            user: username,
        }
        .encode();
        let st = lock_read(&self.inner.state);
        let mut slow = Vec::new();
        if let Some(members) = st.rooms.get(&room_id) {
            for m in members.iter().filter(|m| m.user_id != user_id) {
                self.offer(&m.tx, m.conn, &frame, 0, &mut slow);
            }
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// Queue a frame for one connection.
    pub fn send_to(&self, conn: ConnId, frame: Utf8Bytes) {
        let st = lock_read(&self.inner.state);
        let mut slow = Vec::new();
        if let Some(c) = st.conns.get(&conn) {
            self.offer(&c.tx, conn, &frame, 0, &mut slow);
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// Queue a frame for every connection of a user.
    pub fn to_user(&self, user_id: i64, frame: &Utf8Bytes) {
        let st = lock_read(&self.inner.state);
        let mut slow = Vec::new();
        for (id, c) in st.conns.iter().filter(|(_, c)| c.user_id == user_id) {
            self.offer(&c.tx, *id, frame, 0, &mut slow);
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// Queue a frame for every connection listening to a room, except those of `skip_user`.
    pub fn to_room(&self, room_id: i64, frame: &Utf8Bytes, skip_user: Option<i64>) {
        let st = lock_read(&self.inner.state);
        let mut slow = Vec::new();
        if let Some(members) = st.rooms.get(&room_id) {
            for m in members.iter().filter(|m| Some(m.user_id) != skip_user) {
                self.offer(&m.tx, m.conn, frame, 0, &mut slow);
            }
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// Queue a frame for every connection.
    pub fn to_all(&self, frame: &Utf8Bytes) {
        let st = lock_read(&self.inner.state);
        let mut slow = Vec::new();
        for (id, c) in &st.conns {
            self.offer(&c.tx, *id, frame, 0, &mut slow);
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// Every connection of `user_id` starts listening to a room, then gets `frame`.
    pub fn join_room(&self, user_id: i64, room_id: i64, name: &str, frame: &Utf8Bytes) {
        let name: Arc<str> = Arc::from(name);
        let mut slow = Vec::new();
        let mut st = lock_write(&self.inner.state);
        self.inner.membership_epoch.fetch_add(1, Ordering::AcqRel);
        let joining: Vec<(ConnId, mpsc::Sender<Outgoing>)> = st
            .conns
            .iter_mut()
            .filter(|(_, c)| c.user_id == user_id)
            .filter_map(|(id, c)| {
                (!c.rooms.contains(&room_id)).then(|| {
                    c.rooms.push(room_id);
                    (*id, c.tx.clone())
                })
            })
            .collect();
        let members = st.rooms.entry(room_id).or_default();
        for (conn, tx) in &joining {
            members.push(Member {
                conn: *conn,
                user_id,
                tx: tx.clone(),
            });
        }
        for (id, c) in st.conns.iter().filter(|(_, c)| c.user_id == user_id) {
            let change = Outgoing::Room(RoomChange::Joined(room_id, name.clone()));
            if c.tx.try_send(change).is_err() {
                slow.push(*id);
                continue;
            }
            self.offer(&c.tx, *id, frame, 0, &mut slow);
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// The current membership epoch: read it before reading a user's rooms from the
    /// database, and hand it to [`Hub::sync_rooms`].
    pub fn membership_epoch(&self) -> u64 {
        self.inner.membership_epoch.load(Ordering::Acquire)
    }

    /// Make one connection listen to exactly `rooms`, read from the database after `epoch`
    /// was taken. Refused (false) if a membership change reached the hub since then: the read
    /// may miss it, so the caller reads again. Changes committed later reach the connection
    /// through [`Hub::join_room`] / [`Hub::leave_room`] as usual.
    pub fn sync_rooms(&self, conn: ConnId, rooms: &[i64], epoch: u64) -> bool {
        let mut st = lock_write(&self.inner.state);
        if self.membership_epoch() != epoch {
            return false;
        }
        let Some(c) = st.conns.get_mut(&conn) else {
            return true;
        };
        let (user_id, tx) = (c.user_id, c.tx.clone());
        let added: Vec<i64> = rooms
            .iter()
            .copied()
            .filter(|r| !c.rooms.contains(r))
            .collect();
        let removed: Vec<i64> = c
            .rooms
            .iter()
            .copied()
            .filter(|r| !rooms.contains(r))
            .collect();
        if added.is_empty() && removed.is_empty() {
            return true;
        }
        c.rooms = rooms.to_vec();
        for r in added {
            st.rooms.entry(r).or_default().push(Member {
                conn,
                user_id,
                tx: tx.clone(),
            });
        }
        for r in removed {
            if let Some(members) = st.rooms.get_mut(&r) {
                members.retain(|m| m.conn != conn);
            }
        }
        true
    }

    /// Every connection of `user_id` stops listening to a room, then gets `frame`.
    pub fn leave_room(&self, user_id: i64, room_id: i64, frame: &Utf8Bytes) {
        let mut slow = Vec::new();
        let mut st = lock_write(&self.inner.state);
        self.inner.membership_epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(members) = st.rooms.get_mut(&room_id) {
            members.retain(|m| m.user_id != user_id);
        }
        for (id, c) in st.conns.iter_mut().filter(|(_, c)| c.user_id == user_id) {
            c.rooms.retain(|r| *r != room_id);
            if c.tx
                .try_send(Outgoing::Room(RoomChange::Left(room_id)))
                .is_err()
            {
                slow.push(*id);
                continue;
            }
            self.offer(&c.tx, *id, frame, 0, &mut slow);
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// Every connection listening to a room learns its new name, then gets `frame`.
    pub fn rename_room(&self, room_id: i64, name: &str, frame: &Utf8Bytes) {
        let name: Arc<str> = Arc::from(name);
        let st = lock_read(&self.inner.state);
        let mut slow = Vec::new();
        if let Some(members) = st.rooms.get(&room_id) {
            for m in members {
                let change = Outgoing::Room(RoomChange::Renamed(room_id, name.clone()));
                if m.tx.try_send(change).is_err() {
                    slow.push(m.conn);
                    continue;
                }
                self.offer(&m.tx, m.conn, frame, 0, &mut slow);
            }
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// The distinct session digests behind the open connections.
    pub fn live_sessions(&self) -> Vec<[u8; 32]> {
        let st = lock_read(&self.inner.state);
        let mut all: Vec<[u8; 32]> = st.conns.values().map(|c| c.session).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Close every connection of a session (after logout) with `code`.
    pub fn close_session(&self, session: [u8; 32], code: u16, reason: &'static str) {
        let st = lock_read(&self.inner.state);
        for c in st.conns.values().filter(|c| c.session == session) {
            let _ = c.tx.try_send(Outgoing::Close(code, reason));
        }
    }

    /// Close every connection of a user (account disabled or signed out by an administrator).
    pub fn close_user(&self, user_id: i64, code: u16, reason: &'static str) {
        let st = lock_read(&self.inner.state);
        for c in st.conns.values().filter(|c| c.user_id == user_id) {
            let _ = c.tx.try_send(Outgoing::Close(code, reason));
        }
    }

    /// Queue `frame` for every connection (presence), optionally skipping one.
    fn broadcast_all(&self, st: &State, frame: &Utf8Bytes, skip: Option<ConnId>) {
        // Slow connections found here are left for the next message fan-out to drop: we
        // already hold the write lock.
        for (_, c) in st.conns.iter().filter(|(id, _)| Some(**id) != skip) {
            let _ = c.tx.try_send(Outgoing::Frame {
                frame: frame.clone(),
                msg_id: 0,
            });
        }
    }

    fn offer(
        &self,
        tx: &mpsc::Sender<Outgoing>,
        conn: ConnId,
        frame: &Utf8Bytes,
        msg_id: i64,
        slow: &mut Vec<ConnId>,
    ) {
        match tx.try_send(Outgoing::Frame {
            frame: frame.clone(),
            msg_id,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => slow.push(conn),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Unregister connections whose queue overflowed; their sessions close with 4008.
    fn drop_slow(&self, slow: Vec<ConnId>) {
        if slow.is_empty() {
            return;
        }
        for id in slow {
            let flag = lock_read(&self.inner.state)
                .conns
                .get(&id)
                .map(|c| c.slow.clone());
            if let Some(flag) = flag {
                flag.store(true, Ordering::Release);
                self.inner
                    .metrics
                    .dropped_slow
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(conn = id, "dropping a connection that stopped reading");
            }
            self.unregister(id);
        }
    }

    /// Deliver one committed batch, in id order.
    pub fn fan_out(&self, batch: Vec<Committed>) {
        let mut slow = Vec::new();
        let mut delivered = 0u64;
        let mut batch = batch.into_iter().peekable();
        while batch.peek().is_some() {
            // Messages under the read lock; committed changes to rooms and memberships are
            // applied between them, without the lock, exactly where they were committed.
            let st = lock_read(&self.inner.state);
            while let Some(c) = batch.next_if(|c| !matches!(c, Committed::Changed(_))) {
                match &c {
                    Committed::Stored {
                        msg,
                        origin,
                        duplicate,
                        mentioned,
                    } => {
                        let frame = ServerMsg::Message(msg.into()).encode();
                        if *duplicate {
                            if let Some(conn) = st.conns.get(origin) {
                                self.offer(&conn.tx, *origin, &frame, 0, &mut slow);
                                delivered += 1;
                            }
                            continue;
                        }
                        if let Some(members) = st.rooms.get(&msg.room_id) {
                            for m in members {
                                self.offer(&m.tx, m.conn, &frame, msg.id, &mut slow);
                            }
                            delivered += members.len() as u64;
                            if !mentioned.is_empty() {
                                let note = ServerMsg::Mention {
                                    room: &msg.room,
                                    id: msg.id,
                                    user: &msg.user,
                                }
                                .encode();
                                for m in members.iter().filter(|m| mentioned.contains(&m.user_id)) {
                                    self.offer(&m.tx, m.conn, &note, 0, &mut slow);
                                }
                            }
                        }
                    }
                    Committed::Failed { origin, nonce } => {
                        if let Some(conn) = st.conns.get(origin) {
                            let frame = ServerMsg::Error {
                                code: "unavailable",
                                message:
                                    "The message could not be stored. It was not sent; try again.",
                                nonce: nonce.as_deref(),
                                retry_after_ms: Some(1000),
                            }
                            .encode();
                            self.offer(&conn.tx, *origin, &frame, 0, &mut slow);
                        }
                    }
                    Committed::Refused {
                        origin,
                        nonce,
                        public,
                    } => {
                        if let Some(conn) = st.conns.get(origin) {
                            let (code, message) = if *public {
                                ("not_a_member", "You are not a member of that room.")
                            } else {
                                ("unknown_room", "There is no room with that name.")
                            };
                            let frame = ServerMsg::Error {
                                code,
                                message,
                                nonce: nonce.as_deref(),
                                retry_after_ms: None,
                            }
                            .encode();
                            self.offer(&conn.tx, *origin, &frame, 0, &mut slow);
                        }
                    }
                    Committed::Changed(_) => {}
                }
            }
            drop(st);
            if let Some(Committed::Changed(done)) = batch.next() {
                for change in &done.changes {
                    self.apply(change);
                }
                let _ = done.applied.send(());
            }
        }
        self.inner
            .metrics
            .messages_delivered
            .fetch_add(delivered, Ordering::Relaxed);
        slow.sort_unstable();
        slow.dedup();
        self.drop_slow(slow);
    }

    /// Bring the membership index up to date with one committed change and send the frames
    /// that tell the people concerned.
    pub fn apply(&self, change: &Change) {
        match change {
            Change::Joined { user_id, room } => {
                let joined = ServerMsg::RoomJoined {
                    room: RoomView::from(room),
                }
                .encode();
                self.join_room(*user_id, room.id, &room.name, &joined);
            }
            Change::MemberJoined {
                room_id,
                room,
                user_id,
                username,
            } => {
                let note = ServerMsg::MemberJoined {
                    room,
                    user: username,
                }
                .encode();
                self.to_room(*room_id, &note, Some(*user_id));
            }
            Change::Created { room } => {
                let created = ServerMsg::RoomCreated {
                    room: RoomView::shared(room),
                }
                .encode();
                self.to_all(&created);
            }
            Change::Left {
                user_id,
                username,
                room_id,
                room,
            } => {
                let left = ServerMsg::RoomLeft { room }.encode();
                self.leave_room(*user_id, *room_id, &left);
                let note = ServerMsg::MemberLeft {
                    room,
                    user: username,
                }
                .encode();
                self.to_room(*room_id, &note, None);
            }
            Change::Updated { room, old_name } => {
                let frame = ServerMsg::RoomUpdated {
                    room: RoomView::shared(room),
                    old_name: old_name.as_deref(),
                }
                .encode();
                if old_name.is_some() {
                    self.rename_room(room.id, &room.name, &frame);
                } else {
                    self.to_room(room.id, &frame, None);
                }
            }
            Change::ReadMarker { user_id, room } => {
                if let Some(m) = &room.membership {
                    let frame = ServerMsg::Read {
                        room: &room.name,
                        id: m.last_read,
                        unread: m.unread,
                        mentions: m.mentions,
                    }
                    .encode();
                    self.to_user(*user_id, &frame);
                }
            }
        }
    }

    /// Start the fan-out thread: it delivers each batch the writer commits, until the writer
    /// stops.
    pub fn spawn_fan_out(
        &self,
        commits: std::sync::mpsc::Receiver<Vec<Committed>>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let hub = self.clone();
        std::thread::Builder::new()
            .name("hearth-fanout".into())
            .spawn(move || {
                while let Ok(batch) = commits.recv() {
                    hub.fan_out(batch);
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::events::Changes;
    use crate::model::{Membership, Notify, Room, RoomKind, StoredMessage};

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn hub(queue: usize) -> Hub {
        let limits = HubLimits {
            queue,
            per_user: 0,
            per_address: 0,
            rate: 0.0,
            burst: 0,
        };
        Hub::new(limits, Arc::new(Metrics::default()))
    }

    fn user(id: i64) -> User {
        User {
            id,
            username: format!("user{id}"),
        }
    }

    fn room(id: i64, name: &str) -> Room {
        Room {
            id,
            name: name.into(),
            topic: String::new(),
            kind: RoomKind::Room,
            public: true,
            created_by: None,
            members: 1,
            users: Vec::new(),
            last_id: 0,
            membership: Some(Membership {
                last_read: 0,
                unread: 0,
                mentions: 0,
                notify: Notify::All,
            }),
        }
    }

    fn stored(id: i64, room_id: i64, origin: u64) -> Committed {
        Committed::Stored {
            msg: StoredMessage {
                id,
                room_id,
                room: format!("room{room_id}"),
                user: "user1".into(),
                body: format!("message {id}"),
                nonce: None,
                ts_ms: 0,
            },
            origin,
            duplicate: false,
            mentioned: Vec::new(),
        }
    }

    fn changed(changes: Vec<Change>) -> (Committed, oneshot::Receiver<()>) {
        let (applied, done) = oneshot::channel();
        (Committed::Changed(Changes { changes, applied }), done)
    }

    /// Every frame queued for a connection so far, as (type, message id).
    fn drain(reg: &mut Registration) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        while let Ok(item) = reg.rx.try_recv() {
            if let Outgoing::Frame { frame, msg_id } = item {
                let v: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
                out.push((v["type"].as_str().unwrap_or_default().to_string(), msg_id));
            }
        }
        out
    }

    #[test]
    fn a_message_reaches_every_member_once_and_nobody_else() {
        let hub = hub(16);
        let mut a = hub.register(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut b = hub.register(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
        let mut c = hub.register(&user(3), LOOPBACK, [3; 32], &[8]).unwrap();
        for r in [&mut a, &mut b, &mut c] {
            drain(r); // presence
        }
        hub.fan_out(vec![stored(10, 7, a.id)]);
        assert_eq!(drain(&mut a), [("message".to_string(), 10)]);
        assert_eq!(drain(&mut b), [("message".to_string(), 10)]);
        assert!(drain(&mut c).is_empty(), "not a member of room 7");
    }

    #[test]
    fn changes_apply_exactly_where_they_were_committed() {
        let hub = hub(16);
        let mut a = hub.register(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut b = hub.register(&user(2), LOOPBACK, [2; 32], &[]).unwrap();
        drain(&mut a);
        drain(&mut b);
        // Message 10 is committed before user 2 joins room 7, message 11 after it, and
        // message 12 after user 1 left: each reaches exactly the members of that moment.
        let (join, joined) = changed(vec![
            Change::Joined {
                user_id: 2,
                room: room(7, "room7"),
            },
            Change::MemberJoined {
                room_id: 7,
                room: "room7".into(),
                user_id: 2,
                username: "user2".into(),
            },
        ]);
        let (leave, left) = changed(vec![Change::Left {
            user_id: 1,
            username: "user1".into(),
            room_id: 7,
            room: "room7".into(),
        }]);
        hub.fan_out(vec![
            stored(10, 7, a.id),
            join,
            stored(11, 7, a.id),
            leave,
            stored(12, 7, b.id),
        ]);
        assert!(joined.blocking_recv().is_ok() && left.blocking_recv().is_ok());
        let frames = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
            v.iter().map(|(t, id)| (t.to_string(), *id)).collect()
        };
        assert_eq!(
            drain(&mut a),
            frames(&[
                ("message", 10),
                ("member_joined", 0),
                ("message", 11),
                ("room_left", 0),
            ])
        );
        assert_eq!(
            drain(&mut b),
            frames(&[
                ("room_joined", 0),
                ("message", 11),
                ("member_left", 0),
                ("message", 12),
            ])
        );
    }

    #[test]
    fn a_full_queue_drops_that_connection_and_spares_the_others() {
        let hub = hub(16);
        let mut slow = hub.register(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut fast = hub.register(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
        drain(&mut slow);
        drain(&mut fast);
        for id in 1..=40 {
            hub.fan_out(vec![stored(id, 7, fast.id)]);
            drain(&mut fast);
        }
        assert!(
            slow.slow.load(Ordering::Relaxed),
            "the reader that never read is dropped"
        );
        assert!(!fast.slow.load(Ordering::Relaxed));
        assert_eq!(
            drain(&mut slow).len(),
            16,
            "what fitted in its queue before it filled"
        );
    }
}
