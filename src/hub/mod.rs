//! The hub: which connections are open, which rooms they listen to, who is online, and the
//! fan-out of committed messages.
//!
//! Every connection has a bounded queue of outgoing frames. The hub only ever `try_send`s: a
//! connection whose queue is full is disconnected on the spot (it then drains what it has and
//! closes with 4008), so one slow reader never delays anyone else.
//!
//! - `registry`: admitting and removing connections, presence, closing sessions.
//! - `rooms`: the room membership index and the epoch that keeps it in step with the store.
//! - `deliver`: queueing frames for a connection, a user, a room or everyone.
//! - `fanout`: turning what the writer committed into frames and index updates, in commit
//!   order.
//! - `shared`: presence and typing shared with other nodes (cluster mode).
//! - `tail`: the newest messages of recently read rooms, kept current by the fan-out, so
//!   history pages are answered from memory.
//!
//! The hub knows nothing of the store, the rate limits or the transport: it is fed
//! [`events::Committed`](crate::events::Committed) batches and direct calls, and answers
//! with [`Outgoing`] items on each connection's queue.

mod deliver;
mod fanout;
#[cfg(feature = "faults")]
pub use fanout::{FAULT_BODY, FAULT_CHURN_BODY, FAULT_CHURN_SYNCS, FAULT_IN_RECOVERY_BODY};
mod registry;
mod rooms;
mod shared;
mod tail;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::metrics::Metrics;
use crate::model::{Profile, StoredMessage};
use crate::protocol::{ProfileView, ServerMsg};

pub use shared::{LocalPresence, SharedPresence};
pub use tail::{Loaded, Lookup, Readers, Tails, Ticket, TAIL_LEN};

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
    /// The connection's rooms changed, with the frame telling the client (boxed: rare, and
    /// every queue slot is as large as the largest variant).
    Room(Box<RoomUpdate>),
}

/// A change to one connection's rooms and the frame that tells its client of it. The frame
/// is written only if the change is news to the connection: a connection that read its rooms
/// after the change committed but before the hub applied it already listed the change in
/// `ready`.
#[derive(Debug, Clone)]
pub struct RoomUpdate {
    /// The change.
    pub change: RoomChange,
    /// `room_joined`, `room_left` or `room_updated`.
    pub frame: Utf8Bytes,
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

/// Limits applied when connections connect. (The per-user message rate is not the hub's
/// business: it lives in the limits module and is checked before a message is queued.)
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Queue length per connection.
    pub queue: usize,
    /// Connections per user (0 = unlimited).
    pub per_user: u32,
    /// Connections per address (0 = unlimited).
    pub per_address: u32,
}

/// One connection's entry in a room's member list. It repeats the connection's user and
/// sender so that delivering to a room walks one `Vec` and never looks up `conns`.
struct Member {
    /// The connection listening.
    conn: ConnId,
    /// Its user, so `typing` and `member_joined` can skip the user concerned.
    user_id: i64,
    /// A clone of the connection's queue.
    tx: mpsc::Sender<Outgoing>,
}

/// One open connection, as the hub knows it.
struct Conn {
    /// Whose connection: frames for a user and presence counting go by it.
    user_id: i64,
    /// The per-address key it was admitted under, given back when it goes.
    addr: IpAddr,
    /// Digest of the session it authenticated with, so a logout or a revocation can close
    /// exactly that session's sockets.
    session: [u8; 32],
    /// The rooms it listens to: the other side of the membership index in [`State::rooms`].
    rooms: Vec<i64>,
    /// The fan-out position when it began listening to `rooms`: everything above it in
    /// those rooms is queued for it (joins and leaves the hub applies keep that true).
    listening_from: i64,
    /// Its outgoing queue (bounded; only ever `try_send`).
    tx: mpsc::Sender<Outgoing>,
    /// Shared with its [`Registration`]: set when the hub drops it for falling behind, so the
    /// session closes with 4008 rather than as a normal close.
    slow: Arc<AtomicBool>,
    /// Set once a close is queued for it: a second close would only find its queue fuller.
    closing: AtomicBool,
}

/// The names of the users online, ordered without regard to case; shared.
pub type Online = Arc<[Arc<str>]>;

/// A user with at least one open connection.
struct OnlineUser {
    /// Kept to announce them offline (and to list who is online) without the store.
    username: Arc<str>,
    /// How many of their connections are open: they are online while it is above 0.
    conns: u32,
}

/// Everything behind the hub's lock.
///
/// Invariants, kept by every method that takes the write lock (and only changed under it):
/// - **Membership index.** A connection id appears in `rooms[r]` if and only if `r` is in
///   `conns[id].rooms`, and then exactly once. Delivering to a room reads `rooms`; the
///   connection's own list is how it is taken out of every room when it goes.
/// - **Presence.** `users[u].conns` is the number of entries of `conns` with
///   `user_id == u`, and `users` has no entry with 0: a user is online iff they have an
///   entry.
/// - **Addresses.** `per_addr[a]` is the number of entries of `conns` with `addr == a`, and
///   there is no entry with 0.
#[derive(Default)]
struct State {
    /// Every open connection: the source of truth for what is open.
    conns: HashMap<ConnId, Conn>,
    /// Room id → the connections listening to it (the membership index), so a room's
    /// fan-out costs its members, not every connection.
    rooms: HashMap<i64, Vec<Member>>,
    /// Users with at least one open connection (presence, and the per-user admission limit).
    users: HashMap<i64, OnlineUser>,
    /// Their names in display order, made on first use after a change to `users` (every new
    /// connection's `ready` lists them).
    online: std::sync::OnceLock<Online>,
    /// Open connections per address key (the per-address admission limit).
    per_addr: HashMap<IpAddr, u32>,
    /// When presence is shared with other nodes: everyone online on any node, as they say
    /// (and the users connected here); `None` until they first said.
    elsewhere: Option<std::collections::HashSet<Arc<str>>>,
    /// Membership reads: the epoch each user's own rooms last changed at, so that a read of
    /// one user's rooms is refused only for a change of theirs (others' churn never starves
    /// it), and the epoch below which every read is refused (a reset, or this map emptied
    /// when it grew past [`MEMBERSHIP_USERS`]).
    membership: Membership,
    /// Rooms' names by id as of the position being delivered: every room renamed, created
    /// or joined since the start and, on a node following the cluster's log, every room as of
    /// the position it started (or was reset) at ([`Hub::know_room_names`]); renames are
    /// applied in position order between messages. A message carries the name its sender's
    /// connection knew, which lags a rename committed just before it, and one read back from
    /// the log carries the room's name as of the read, which may be a rename ahead of it: its
    /// frame gets the room's name from here.
    names: HashMap<i64, Arc<str>>,
    /// Presence is shared, but the other nodes cannot be heard: `elsewhere` holds this
    /// node's users only, and one who leaves here is announced offline here at once.
    presence_local: bool,
}

/// Users whose last membership change [`Membership`] keeps, at most.
const MEMBERSHIP_USERS: usize = 100_000;

/// When each user's rooms, and each room's name or topic, last changed (as membership
/// epochs), for [`Hub::sync_rooms`]; below `floor`, everything may have.
#[derive(Default)]
struct Membership {
    changed: HashMap<i64, u64>,
    rooms: HashMap<i64, u64>,
    floor: u64,
}

impl Membership {
    /// `user`'s rooms changed at `epoch`.
    fn changed(&mut self, user: i64, epoch: u64) {
        Self::note(&mut self.changed, &mut self.floor, user, epoch);
    }

    /// `room`'s name or topic changed at `epoch`.
    fn room_changed(&mut self, room: i64, epoch: u64) {
        Self::note(&mut self.rooms, &mut self.floor, room, epoch);
    }

    /// `id` changed at `epoch` in `map`, which is emptied (every read before `epoch` then
    /// refused, through `floor`) when it holds [`MEMBERSHIP_USERS`] already.
    fn note(map: &mut HashMap<i64, u64>, floor: &mut u64, id: i64, epoch: u64) {
        if map.len() >= MEMBERSHIP_USERS {
            map.clear();
            *floor = epoch;
        }
        map.insert(id, epoch);
    }

    /// Whether a read of `user`'s rooms (`rooms`, as read) begun at `epoch` may have missed
    /// a change: of which rooms are theirs, or of one of those rooms.
    fn stale(&self, user: i64, rooms: &[i64], epoch: u64) -> bool {
        let after = |e: Option<&u64>| e.is_some_and(|e| *e > epoch);
        self.floor > epoch
            || after(self.changed.get(&user))
            || rooms.iter().any(|r| after(self.rooms.get(r)))
    }
}

/// Shared, cheaply cloned handle to the hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// What every [`Hub`] clone shares.
struct Inner {
    /// The connection, membership and presence maps. An `RwLock` because delivery (every
    /// message) only reads; joins, leaves, connects and disconnects write.
    state: RwLock<State>,
    /// Admission limits and the queue length, fixed at start.
    limits: HubLimits,
    /// The next connection id; ids are never reused, so a stale id can only miss.
    next_id: AtomicU64,
    /// Where the delivered, dropped-as-slow counts go (shared with `/metrics`).
    metrics: Arc<Metrics>,
    /// Bumped by every membership change the hub applies (see [`Hub::sync_rooms`]), every
    /// room's new name or topic, and every [`Hub::reset`]; `State::membership` says whose
    /// rooms, or which room, changed at which value.
    membership_epoch: AtomicU64,
    /// The rooms' newest messages as history pages show them.
    tails: Tails,
    /// The highest message id the fan-out has delivered (and appended to its room's tail), or
    /// skipped at a [`Hub::reset`].
    fanned: tokio::sync::watch::Sender<i64>,
    /// The highest position (message id or change seq) the fan-out has offered to the
    /// connections listening to its room. Moved only while the fan-out (or a [`Hub::reset`])
    /// holds the state lock, so whoever holds the write lock reads a settled value (see
    /// [`Hub::sync_rooms`]).
    offered: AtomicI64,
    /// Counts the hub's resets (see [`Hub::reset`]): what it was told may have been skipped,
    /// so what it holds from the store (the profiles) is read again.
    resets: tokio::sync::watch::Sender<u64>,
    /// With the `faults` feature: the next [`Hub::reset`] panics (see
    /// [`FAULT_IN_RECOVERY_BODY`]).
    #[cfg(feature = "faults")]
    fail_next_reset: std::sync::atomic::AtomicBool,
    /// With the `faults` feature: how many more room syncs are refused (see
    /// [`FAULT_CHURN_BODY`]).
    #[cfg(feature = "faults")]
    churn_syncs: std::sync::atomic::AtomicU32,
    /// Every profile with something set, as `ready` sends them (replaced whole on a change).
    profiles: RwLock<Arc<[Profile]>>,
    /// Bumped (under `profiles`' lock) by every profile change the hub applies.
    profile_changes: AtomicU64,
    /// Told of every new message once it was delivered (link previews, webhooks); set once
    /// at start.
    watcher: std::sync::OnceLock<Watcher>,
    /// Where presence changes and typing go when they are shared with other nodes.
    shared: std::sync::OnceLock<mpsc::UnboundedSender<LocalPresence>>,
}

/// What [`Hub::watch_new_messages`] calls for each new message with the users it mentions,
/// on the fan-out thread: it must only look and hand off, never block.
pub type Watcher = Box<dyn Fn(&StoredMessage, &[i64]) + Send + Sync>;

/// A connection's place in the hub; disconnects itself when dropped.
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
        self.hub.disconnect(self.id);
    }
}

/// The state for writing. A panic while holding the lock leaves maps that are still
/// well-formed (every update is a few plain inserts/removes), so poisoning is ignored rather
/// than taking the whole hub down with one connection.
fn lock_write(l: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// The state for reading; poisoning ignored as for [`lock_write`].
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
                metrics,
                membership_epoch: AtomicU64::new(0),
                tails: Tails::default(),
                fanned: tokio::sync::watch::Sender::new(0),
                offered: AtomicI64::new(0),
                resets: tokio::sync::watch::Sender::new(0),
                #[cfg(feature = "faults")]
                fail_next_reset: std::sync::atomic::AtomicBool::new(false),
                #[cfg(feature = "faults")]
                churn_syncs: std::sync::atomic::AtomicU32::new(0),
                profiles: RwLock::new(Arc::from(Vec::new())),
                profile_changes: AtomicU64::new(0),
                watcher: std::sync::OnceLock::new(),
                shared: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Call `watcher` for every new message, after it was delivered (only the first watcher
    /// set counts).
    pub fn watch_new_messages(&self, watcher: Watcher) {
        let _ = self.inner.watcher.set(watcher);
    }

    /// Every profile with something set, for a `ready` frame.
    pub fn profiles(&self) -> Arc<[Profile]> {
        self.inner
            .profiles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many profile changes the hub has applied: taken before the profiles are read
    /// from the store, for [`Hub::set_profiles`].
    pub fn profile_changes(&self) -> u64 {
        self.inner.profile_changes.load(Ordering::Acquire)
    }

    /// The profiles are now `all` (at start, and after a reset), as read from the store after
    /// [`Hub::profile_changes`] gave `seen`: unless a change reached the hub since, which the
    /// read may not hold. Whether they were kept.
    pub fn set_profiles(&self, all: Vec<Profile>, seen: u64) -> bool {
        let mut profiles = self
            .inner
            .profiles
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if self.inner.profile_changes.load(Ordering::Acquire) != seen {
            return false;
        }
        *profiles = Arc::from(all);
        true
    }

    /// One profile changed (on this node or another): the list `ready` sends follows, and
    /// every connection gets a `profile` frame.
    fn profile_changed(&self, changed: &Profile) {
        {
            let mut all = self
                .inner
                .profiles
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let mut list: Vec<Profile> = all
                .iter()
                .filter(|p| p.username != changed.username)
                .cloned()
                .collect();
            if changed.is_set() {
                list.push(changed.clone());
            }
            *all = Arc::from(list);
            self.inner.profile_changes.fetch_add(1, Ordering::AcqRel);
        }
        let frame = ServerMsg::Profile {
            user: ProfileView::from(changed),
        }
        .encode();
        self.to_all(&frame);
    }

    /// How many frames a connection's queue holds.
    pub fn queue_len(&self) -> usize {
        self.inner.limits.queue
    }

    /// The most frames waiting in any connection's queue.
    pub fn fullest_queue(&self) -> usize {
        let st = lock_read(&self.inner.state);
        st.conns
            .values()
            .map(|c| c.tx.max_capacity() - c.tx.capacity())
            .max()
            .unwrap_or(0)
    }

    /// Shared counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Wait (at most a couple of seconds) until the fan-out has delivered message `id`, so
    /// that a caller answered by the writer directly (an HTTP send) finds it in the room's
    /// tail, as a WebSocket sender does when its echo arrives (or until a reset skipped it).
    pub async fn fanned_out(&self, id: i64) {
        let mut rx = self.inner.fanned.subscribe();
        let wait = rx.wait_for(|v| *v >= id);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), wait).await;
    }

    /// The rooms' newest messages in memory (see [`Tails`]).
    pub fn tails(&self) -> &Tails {
        &self.inner.tails
    }
}

/// Helpers shared by the tests of the submodules.
#[cfg(test)]
mod test_support {
    use std::net::IpAddr;
    use std::sync::Arc;

    use tokio::sync::oneshot;

    use super::{Hub, HubLimits, Outgoing, Registration};
    use crate::events::{Change, Changes, Committed};
    use crate::metrics::Metrics;
    use crate::model::{Membership, Notify, Room, RoomKind, StoredMessage, User};

    pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    pub fn hub(queue: usize) -> Hub {
        let limits = HubLimits {
            queue,
            per_user: 0,
            per_address: 0,
        };
        Hub::new(limits, Arc::new(Metrics::default()))
    }

    pub fn user(id: i64) -> User {
        User {
            id,
            username: format!("user{id}"),
        }
    }

    pub fn room(id: i64, name: &str) -> Room {
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

    pub fn stored(id: i64, room_id: i64, origin: u64) -> Committed {
        Committed::Stored {
            msg: StoredMessage {
                id,
                room_id,
                room: format!("room{room_id}"),
                user: "user1".into(),
                body: format!("message {id}"),
                nonce: None,
                ts_ms: 0,
                edited_ms: None,
                deleted: false,
                reply_to: None,
                reactions: Vec::new(),
                attachments: Vec::new(),
                preview: None,
            },
            origin,
            duplicate: false,
            mentioned: Vec::new(),
        }
    }

    pub fn changed(changes: Vec<Change>) -> (Committed, oneshot::Receiver<()>) {
        let (applied, done) = oneshot::channel();
        (Committed::Changed(Changes { changes, applied }), done)
    }

    /// Every frame queued for a connection so far, parsed, skipping non-frame items.
    pub fn drain_json(reg: &mut Registration) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Ok(item) = reg.rx.try_recv() {
            match item {
                Outgoing::Frame { frame, .. } => {
                    out.push(serde_json::from_str(frame.as_str()).unwrap());
                }
                Outgoing::Room(update) => {
                    out.push(serde_json::from_str(update.frame.as_str()).unwrap());
                }
                Outgoing::Close(..) => {}
            }
        }
        out
    }

    /// Every frame queued for a connection so far, as (type, message id).
    pub fn drain(reg: &mut Registration) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        while let Ok(item) = reg.rx.try_recv() {
            let (frame, msg_id) = match item {
                Outgoing::Frame { frame, msg_id } => (frame, msg_id),
                Outgoing::Room(update) => (update.frame, 0),
                Outgoing::Close(..) => continue,
            };
            let v: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
            out.push((v["type"].as_str().unwrap_or_default().to_string(), msg_id));
        }
        out
    }

    /// Every item queued for a connection so far, unparsed.
    pub fn drain_items(reg: &mut Registration) -> Vec<Outgoing> {
        let mut out = Vec::new();
        while let Ok(item) = reg.rx.try_recv() {
            out.push(item);
        }
        out
    }

    /// (type, message id) pairs from string literals, for comparing with [`drain`].
    pub fn frames(v: &[(&str, i64)]) -> Vec<(String, i64)> {
        v.iter().map(|(t, id)| (t.to_string(), *id)).collect()
    }
}
