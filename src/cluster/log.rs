//! The node's log follower (PostgreSQL): every position of the log reaches this node's hub
//! exactly once and in order, whichever node committed it.
//!
//! Two inputs arrive on one channel: the batches this node's writer committed (their
//! outcomes: acknowledgements, refusals, and the waiters of its changes), and what a listener
//! thread that `LISTEN`s on `hearth_log` hears. Every batch that takes positions, on any node,
//! notifies with its commit, in commit order: the positions it took and the messages and hub
//! events themselves, in one notification when they fit and otherwise, while another node
//! listens, in several that the listener puts together. A notification whose batch starts
//! right where the follower is, and carries its items, is delivered as it is, without reading
//! the log (the common case, and one round trip less per commit between the nodes); while the
//! follower is idle the listener delivers it itself, one hand-off between threads less on the
//! way to the clients (the follower's state is shared under a lock for this). Anything
//! else (a gap, a batch too large to carry, a notification lost with a connection, or the
//! tail check when none comes) makes the follower read everything committed above what it
//! delivered, up to the head, in one snapshot; a batch of the writer's, first marked with the
//! positions it took ([`Committed::Logged`]), is delivered only after everything below them.
//! Every position at or below a visible head is committed (the head's lock is held to the
//! commit), so these reads never miss one: a lost notification costs one tail check.
//!
//! The writer marks a batch it is about to commit ([`Handoff`]); a read that finds rows above
//! that mark leaves them to the batch, which brings them with their outcomes. A node that
//! could not read the log for longer than [`STALE`] (paused, cut off) cannot vouch for what
//! its connections missed: it closes them (1012) and they resume with `since=`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use crate::db::pg::log::Handoff;
use crate::db::queries::{self, LogRange};
use crate::db::sql::{PgConn, PgError, Sql};
use crate::events::{highest_position, Change, Changes, Committed};
use crate::hub::Hub;
use crate::model::{ChangeKind, MessageChange, StoredMessage};
use crate::protocol::CLOSE_RECONNECT;

/// Read the log when nothing was read or delivered for this long.
const TAIL_CHECK: Duration = Duration::from_millis(500);
/// How often each node's listener says hello on the channel, so that writers know another
/// node listens even when it never writes.
const HELLO_EVERY: Duration = Duration::from_secs(2);

/// How long a listener not heard from counts as gone: heard again after that, it is greeted
/// at once, like a newcomer.
const FORGET_NODE: Duration = Duration::from_secs(10);
/// How long the listener waits for a notification before it checks whether to stop.
const LISTEN_TICK: Duration = Duration::from_millis(250);
/// Pause before trying PostgreSQL again after a failure.
const RETRY: Duration = Duration::from_millis(200);
/// Most positions read at once. Fewer when connections' queues are short: a chunk is
/// delivered in one go, so a chunk longer than a queue would drop a client that reads every
/// message of a busy room however fast it reads (see [`chunk`]).
const CHUNK: i64 = 2000;
/// Longest pause between two chunks of a catch-up while a connection drains the last one.
const PACE: Duration = Duration::from_millis(50);
/// A node that could not read the log for this long closes its connections.
pub const STALE: Duration = Duration::from_secs(30);

/// The `application_name` of every node's listener session, by which the others find one
/// that stopped reading.
pub const LISTENER: &str = "hearth-listener";

/// Before each hello: PostgreSQL's notification queue in use, and the end of every other
/// node's listener session that has run nothing for [`STALE`]. A healthy listener asks this
/// every [`HELLO_EVERY`]; one that ran nothing for that long belongs to a node that is paused
/// or lost, and a listener that does not read pins the queue: every notification after it
/// stays, until the queue is full and every commit that notifies fails, on every node. Ended,
/// its node (if it ever runs again) listens again and reads the log from where it was. Asked
/// before the hello (whose `NOTIFY` fails once the queue is full), and only of sessions of
/// this role (ending another role's session is an error, not a refusal).
const HELLO_CHECKS: &str = "SELECT pg_notification_queue_usage(), \
     (SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
      WHERE datname = current_database() AND usename = current_user \
        AND application_name = $1 AND pid <> pg_backend_pid() \
        AND query_start < now() - make_interval(secs => $2))";

/// Most memory (roughly: see [`held`]) the items of notifications the listener hands to the
/// follower ahead of it may hold: beyond, a batch goes on without its items and the follower
/// reads it from the log (see [`Backlog`]).
const BACKLOG: usize = 16 << 20;
/// The notification channel of appends.
const CHANNEL: &str = "hearth_log";

/// Start following the log of the PostgreSQL database at `url` from its current head,
/// delivering to `hub`: this node's writer sends its committed batches on `commits`,
/// `wake` is the same channel's sending end for the listener. Returns once the head is
/// read; the thread stops after the writer did.
pub fn start(
    (url, shared): (&str, bool),
    hub: Hub,
    (commits, wake): (Receiver<Vec<Committed>>, Sender<Vec<Committed>>),
    handoff: Arc<Handoff>,
) -> std::io::Result<JoinHandle<()>> {
    let hub_queue = hub.queue_len();
    let mut config: postgres::Config = url.parse().map_err(std::io::Error::other)?;
    crate::db::pg::with_defaults(&mut config, url);
    let (ready, started) = std::sync::mpsc::channel();
    let mut listen = config.clone();
    listen.application_name(LISTENER);
    let stop = handoff.clone();
    let backlog = Arc::new(Backlog::default());
    let taken = backlog.clone();
    let follower: Shared = Arc::new(Mutex::new(None));
    let direct = follower.clone();
    let heard = hub.clone();
    std::thread::Builder::new()
        .name("hearth-listen".into())
        .spawn(move || {
            let me = Me::new(shared);
            listener(&listen, &me, &wake, &stop, &backlog, &direct, &heard)
        })?;
    let thread = std::thread::Builder::new()
        .name("hearth-follow".into())
        .spawn(move || {
            let reader = match PgConn::connect(config, crate::db::pg::READER_SESSION)
                .and_then(|r| queries::log_head_and_names(&r).map(|head| (r, head)))
            {
                Ok(started) => started,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            let (reader, (head, names)) = reader;
            hub.know_room_names(names);
            hub.metrics().log_read(head);
            *lock(&follower) = Some(Follower {
                reader,
                hub,
                handoff,
                applied: head,
                last_read: Instant::now(),
                chunk: chunk(hub_queue),
                vouched: 0,
                backlog: taken,
                names_due: false,
                heard: head,
            });
            Follower::run(&follower, &commits);
            // Gone with its thread: the listener's next batch finds no follower, its send
            // fails (the channel's end is dropped), and it stops too.
            lock(&follower).take();
        })?;
    match started.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => Err(std::io::Error::other(format!("following the log: {e}"))),
        Err(_) => Err(std::io::Error::other("the log follower did not start")),
    }
}

/// Listen for notifications of appends and wake the follower for each burst of them, until
/// the writer has stopped. A batch sent in several parts is put together first; this node's
/// own batches are skipped unread. Every [`HELLO_EVERY`] the listener says hello on the
/// channel (so other nodes' writers know it listens), and at once when it hears a node it
/// has not heard for [`FORGET_NODE`] (so a node that starts learns in milliseconds, not
/// seconds, that others listen, and writes its batches' items for them). With each hello it
/// reads how full PostgreSQL's notification queue is (see [`Handoff::parts_wanted`]). A lost connection is opened again
/// (and the follower woken, since notifications may have been missed meanwhile).
fn listener(
    config: &postgres::Config,
    me: &Me,
    wake: &Sender<Vec<Committed>>,
    handoff: &Handoff,
    backlog: &Backlog,
    follower: &Shared,
    hub: &Hub,
) {
    let nodes = &hub.metrics().log_nodes;
    let apart = &hub.metrics().log_nodes_apart;
    while !handoff.has_writer_stopped() {
        // Not listening: no other node is heard.
        nodes.store(0, Ordering::Relaxed);
        let mut client = match config.connect(postgres::NoTls) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("log listener cannot connect: {e}");
                std::thread::sleep(RETRY);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!("log listener cannot listen: {e}");
            std::thread::sleep(RETRY);
            continue;
        }
        if wake.send(Vec::new()).is_err() {
            return;
        }
        let mut parts = Parts::default();
        let mut greetings = Greetings::new(me.name.clone());
        loop {
            if handoff.has_writer_stopped() {
                return;
            }
            if greetings.due(Instant::now()) {
                let hello = format!(
                    "NOTIFY {CHANNEL}, '{{\"hello\":\"{}\",\"shared\":{}}}'",
                    me.name, me.shared
                );
                let said = client
                    .query_one(HELLO_CHECKS, &[&LISTENER, &STALE.as_secs_f64()])
                    .and_then(|row| client.batch_execute(&hello).map(|()| row));
                match said {
                    Ok(row) => {
                        handoff.queue_usage(row.get(0));
                        let ended: i64 = row.get(1);
                        if ended > 0 {
                            tracing::warn!(
                                "ended {ended} other listener session(s) that read nothing for \
                                 {} s (a node paused or lost): they held PostgreSQL's \
                                 notification queue",
                                STALE.as_secs()
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!("log listener cannot say hello: {e}");
                        break;
                    }
                }
                let others = greetings.said(Instant::now());
                nodes.store(others as u64, Ordering::Relaxed);
                apart.store(greetings.apart(me.shared) as u64, Ordering::Relaxed);
            }
            let got = {
                let mut notes = client.notifications();
                let next = notes.timeout_iter(LISTEN_TICK).next();
                next.map(|n| {
                    n.inspect(|note| {
                        if let Some(upto) = heard_upto(note.payload()) {
                            hub.metrics().log_heard(upto);
                        }
                    })
                    .map(|note| match locked_at(note.payload()) {
                        // This node's own batch: it comes with its outcomes (not parsed).
                        Some(after) if handoff.is_mine(after) => Heard::Nothing,
                        // (Not proof of another node: this node's own commits look the
                        // same once their batch was delivered. Hellos are.)
                        Some(_) => hear(note.payload()),
                        None => match hear(note.payload()) {
                            Heard::Hello(from, shared) => {
                                if greetings.hello_from(&from, shared, Instant::now()) {
                                    handoff.heard_another_node();
                                    nodes.store(greetings.others() as u64, Ordering::Relaxed);
                                    apart.store(
                                        greetings.apart(me.shared) as u64,
                                        Ordering::Relaxed,
                                    );
                                    me.warn_if_apart(&from, shared);
                                }
                                Heard::Nothing
                            }
                            heard => heard,
                        },
                    })
                })
            };
            let out = match got {
                Ok(Some(Heard::Nothing | Heard::Hello(..))) => Vec::new(),
                Ok(Some(Heard::Whole(batch))) => {
                    let mut out: Vec<_> = parts.give_up().into_iter().collect();
                    out.push(batch);
                    out
                }
                Ok(Some(Heard::Part(part))) => parts.add(part),
                Ok(None) if !client.is_closed() => parts.give_up().into_iter().collect(),
                Ok(None) | Err(_) => break,
            };
            for batch in out {
                // The next batch of the log, heard while the follower is idle: delivered
                // from here, one hand-off between threads less on the way to the clients.
                let batch = match follower.try_lock() {
                    Ok(mut f) => match f.as_mut() {
                        Some(f) => {
                            let mut next = None;
                            let upto = highest_position(&batch);
                            if !Hub::caught(|| next = Some(f.notified_next(batch))) {
                                f.failed(None, upto);
                            }
                            match next {
                                // Delivered, or failed (and the follower reset).
                                Some(Ok(())) | None => continue,
                                Some(Err(batch)) => batch,
                            }
                        }
                        None => batch,
                    },
                    Err(_) => batch,
                };
                if wake.send(backlog.admit(batch)).is_err() {
                    return;
                }
            }
        }
        tracing::warn!("log listener lost its connection; listening again");
    }
}

/// Who this node's listener is in its hellos.
struct Me {
    /// A random name, so that several nodes in one process, as in tests, tell each other
    /// apart.
    name: String,
    /// Whether this node shares its ephemeral state through Redis (`cluster.redis_url`).
    shared: bool,
    /// Other nodes already warned about (see [`Me::warn_if_apart`]).
    warned: Mutex<std::collections::HashSet<String>>,
}

impl Me {
    fn new(shared: bool) -> Me {
        let mut raw = [0u8; 8];
        let _ = getrandom::fill(&mut raw);
        Me {
            name: format!("{:016x}", u64::from_le_bytes(raw)),
            shared,
            warned: Mutex::default(),
        }
    }

    /// Warn, once per node, of another node on this database that shares through Redis
    /// where this one does not (or the other way round): presence, typing, connection caps
    /// and limits then hold per node, not over every node.
    fn warn_if_apart(&self, other: &str, shared: Option<bool>) {
        let Some(shared) = shared.filter(|s| *s != self.shared) else {
            return;
        };
        if !self
            .warned
            .lock()
            .is_ok_and(|mut w| w.insert(other.to_string()))
        {
            return;
        }
        if shared {
            tracing::warn!(
                "another node on this database uses Redis (cluster.redis_url), and this one                  does not: who is online, typing, connection caps and limits are not shared                  with it; give every node the same cluster.redis_url"
            );
        } else {
            tracing::warn!(
                "another node on this database has no cluster.redis_url: who is online,                  typing, connection caps and limits are not shared with it; give every node                  the same cluster.redis_url"
            );
        }
    }
}

/// The hellos of a node's listener: whom it heard on the log's channel, and when it says hello
/// next (every [`HELLO_EVERY`], and at once to a node not heard for [`FORGET_NODE`]).
struct Greetings {
    me: String,
    /// Other listeners, by name: when each was last heard, and whether it shares through
    /// Redis (`None`: it did not say).
    heard: HashMap<String, (Instant, Option<bool>)>,
    /// When the next hello is due (`None`: now).
    next: Option<Instant>,
}

impl Greetings {
    fn new(me: String) -> Greetings {
        Greetings {
            me,
            heard: HashMap::new(),
            next: None,
        }
    }

    /// Whether a hello is due.
    fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    /// A hello was said: the next is due in [`HELLO_EVERY`], and nodes not heard for
    /// [`FORGET_NODE`] are forgotten. How many others are known.
    fn said(&mut self, now: Instant) -> usize {
        self.next = Some(now + HELLO_EVERY);
        self.heard
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < FORGET_NODE);
        self.heard.len()
    }

    /// `from` said hello: whether it is another node (not this one). A node not heard
    /// before, or not for [`FORGET_NODE`], makes the next hello due at once, so that it learns
    /// as quickly that this node listens.
    fn hello_from(&mut self, from: &str, shared: Option<bool>, now: Instant) -> bool {
        if from == self.me {
            return false;
        }
        let last = self.heard.insert(from.to_string(), (now, shared));
        if last.is_none_or(|(t, _)| now.saturating_duration_since(t) >= FORGET_NODE) {
            self.next = None;
        }
        true
    }

    /// How many other nodes are known.
    fn others(&self) -> usize {
        self.heard.len()
    }

    /// How many of them share through Redis where this node does not, or the other way
    /// round (`shared`: whether this node does).
    fn apart(&self, shared: bool) -> usize {
        self.heard
            .values()
            .filter(|(_, s)| s.is_some_and(|s| s != shared))
            .count()
    }
}

/// The follower, shared with the listener, which delivers the next batch itself when it hears
/// it while the follower is idle (see [`Follower::notified_next`]); `None` until the follower
/// has connected.
type Shared = Arc<Mutex<Option<Follower>>>;

/// `follower` locked. A delivery that panics (a bug) is caught where it runs, on either
/// thread ([`Hub::caught`], [`Follower::failed`]), so the lock is left poisoned
/// only by a panic outside one, on the listener's thread (which is then gone) or on the
/// follower's own (which then stops, and nothing locks it again). The follower cannot vouch
/// for what its connections got: it closes them so they resume (as after a long gap) and
/// carries on from the head, and the tail check reads the log every [`TAIL_CHECK`].
fn lock(follower: &Shared) -> MutexGuard<'_, Option<Follower>> {
    follower.lock().unwrap_or_else(|poisoned| {
        follower.clear_poison();
        let mut guard = poisoned.into_inner();
        if let Some(f) = guard.as_mut() {
            tracing::error!("the log listener failed while it held the follower");
            f.resync();
        }
        guard
    })
}

/// The follower's state.
struct Follower {
    reader: PgConn,
    hub: Hub,
    handoff: Arc<Handoff>,
    /// The last position delivered.
    applied: i64,
    /// When the log was last read.
    last_read: Instant,
    /// Most positions read (and delivered) at once.
    chunk: i64,
    /// Positions every connection has from the store (after hub events this node had not
    /// delivered were deleted, see [`Follower::pruned_behind`]): nothing up to it is
    /// delivered any more.
    vouched: i64,
    /// What the listener handed on and this follower has not taken yet.
    backlog: Arc<Backlog>,
    /// The hub forgot the rooms' names at a reset that did not go on from the head (a change
    /// this node cannot read, or its own batch still on its way): they are read with the
    /// next snapshot whose positions are delivered up to its head.
    names_due: bool,
    /// The highest position a notification handed to this follower announced: one above
    /// this node's own batch in flight waits for that batch, and is read right after it.
    heard: i64,
}

impl Follower {
    /// Take what arrives on `commits`, holding the follower only while acting on it (the
    /// listener delivers the next batch itself meanwhile).
    fn run(shared: &Shared, commits: &Receiver<Vec<Committed>>) {
        let mut wait = TAIL_CHECK;
        loop {
            let got = commits.recv_timeout(wait);
            let mut guard = lock(shared);
            let Some(f) = guard.as_mut() else { return };
            if matches!(got, Err(RecvTimeoutError::Disconnected)) {
                return;
            }
            let (mine, upto) = match &got {
                Ok(batch) => match batch.first() {
                    Some(&Committed::Logged { after, .. }) => {
                        (Some(after), highest_position(batch))
                    }
                    _ => (None, highest_position(batch)),
                },
                Err(_) => (None, None),
            };
            let delivered = Hub::caught(|| {
                if let Ok(batch) = got {
                    match batch.first() {
                        None => f.catch_up(None),
                        Some(Committed::Notified { .. }) => {
                            f.backlog.taken(&batch);
                            f.notified(batch)
                        }
                        Some(_) => f.local(batch),
                    }
                }
                // The tail check, when nothing was read or delivered from the log for a while
                // (a steady stream of this node's own batches is no read of it): the listener
                // may have delivered meanwhile, and a read right behind its deliveries would
                // take batches whose notifications are on their way. Due at once while the
                // rooms' names are (the listener's deliveries keep `last_read` fresh).
                if f.names_due || f.last_read.elapsed() >= TAIL_CHECK {
                    f.catch_up(None);
                }
            });
            if !delivered {
                f.failed(mine, upto);
            }
            wait = if f.names_due {
                RETRY
            } else {
                TAIL_CHECK.saturating_sub(f.last_read.elapsed())
            }
            .max(Duration::from_millis(1));
            if f.handoff.has_writer_stopped() && f.handoff.in_flight().is_none() {
                // Deliver what the writer sent last, then stop (the listener stops too).
                while let Ok(batch) = commits.try_recv() {
                    if !matches!(batch.first(), None | Some(Committed::Notified { .. })) {
                        f.local(batch);
                    }
                }
                return;
            }
        }
    }

    /// A batch this node's writer committed: everything below its positions first.
    fn local(&mut self, batch: Vec<Committed>) {
        let Some(&Committed::Logged { after, upto }) = batch.first() else {
            // No positions: answers and refusals only. A retry is answered with what its
            // first copy stored (a message, or the change of an edit, reaction or deletion),
            // which this node may not have delivered yet (another node stored it, or a batch
            // of this node's whose commit seemed to fail and was read back from the log):
            // everything up to it goes out first, so that its sender never hears of it before
            // what lies below it (a connection resumes from the highest position it heard
            // of, and would skip that).
            if let Some(id) = newest_repeated(&batch).filter(|id| *id > self.applied) {
                let started = Instant::now();
                self.catch_up(Some(id));
                add_us(&self.hub.metrics().log_behind_us, started);
            }
            self.hub.fan_out(batch);
            return;
        };
        if after > self.applied {
            let started = Instant::now();
            self.catch_up(Some(after));
            add_us(&self.hub.metrics().log_behind_us, started);
        }
        // A batch lies wholly on one side of the head a snapshot reads (it holds the head's
        // lock until it commits).
        let batch = if upto <= self.vouched {
            without_changes(batch)
        } else {
            batch
        };
        self.hub.fan_out(batch);
        self.applied = self.applied.max(upto);
        self.hub.metrics().log_delivered(self.applied);
        self.handoff.settled(after);
        // Another node's commit above this batch, heard while the batch was in flight, was
        // left to wait for it (a read stops at the batch's mark, and its notification did
        // not start at `applied` then): read it now rather than at the next tail check.
        if self.heard > self.applied {
            self.catch_up(None);
        }
    }

    /// A commit's notification: what another node committed right above `applied` is
    /// delivered from it directly, without reading the log; anything else (a gap before it,
    /// a batch announced without its items) is read.
    fn notified(&mut self, batch: Vec<Committed>) {
        let Some(&Committed::Notified {
            after,
            upto,
            complete,
        }) = batch.first()
        else {
            return;
        };
        if upto <= self.applied || self.handoff.is_mine(after) {
            return; // delivered already, or this node's own: it comes with its outcomes
        }
        self.heard = self.heard.max(upto);
        if after == self.applied && complete && self.below_mine(upto) {
            self.deliver_notified(batch, upto);
            return;
        }
        self.catch_up(None);
    }

    /// Deliver the items of a notification that starts at `applied` and ends at `upto`, in
    /// chunks a queue can take, paced like a catch-up's (a batch's parts may carry far more
    /// than a short queue holds). Never reads the log.
    fn deliver_notified(&mut self, batch: Vec<Committed>, upto: i64) {
        // Up to `vouched`, every connection read it from the store.
        if upto > self.vouched {
            let mut items = batch.into_iter().skip(1).peekable();
            let size = usize::try_from(self.chunk).unwrap_or(usize::MAX);
            while items.peek().is_some() {
                self.hub.fan_out_remote(items.by_ref().take(size).collect());
                if items.peek().is_some() {
                    self.pace();
                }
            }
        }
        self.applied = upto;
        self.last_read = Instant::now();
        self.hub.metrics().log_read(upto);
        self.hub
            .metrics()
            .log_direct
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the batch up to `upto` comes before any batch this node's writer is about to
    /// commit (or has committed and not yet delivered).
    fn below_mine(&self, upto: i64) -> bool {
        self.handoff.in_flight().is_none_or(|mine| mine >= upto)
    }

    /// On the listener's thread: deliver `batch` (a notification it heard) if it is what
    /// comes next, whole, and short enough to go without pacing; otherwise hand it back, for
    /// the follower's thread to deal with. Nothing still on its way to the follower can come
    /// before such a batch:
    /// - it starts at `applied`, the last position delivered;
    /// - it lies below every batch this node's writer has marked, and a batch of the writer's
    ///   keeps its mark until the follower has delivered it;
    /// - the listener hears notifications in commit order, so an earlier one still queued
    ///   would end above `applied`, and this batch would not start there.
    fn notified_next(&mut self, batch: Vec<Committed>) -> Result<(), Vec<Committed>> {
        let next = match batch.first() {
            Some(&Committed::Notified {
                after,
                upto,
                complete: true,
            }) if after == self.applied
                && !self.handoff.is_mine(after)
                && self.below_mine(upto)
                && batch.len() - 1 <= usize::try_from(self.chunk).unwrap_or(usize::MAX) =>
            {
                upto
            }
            _ => return Err(batch),
        };
        self.deliver_notified(batch, next);
        Ok(())
    }

    /// Deliver what other nodes committed above `applied`, up to the head (or `limit`),
    /// leaving the writer's batch in flight to the writer. Retried until it succeeds (or the
    /// writer has stopped): nothing may be skipped.
    fn catch_up(&mut self, limit: Option<i64>) {
        loop {
            if self.last_read.elapsed() > STALE {
                self.resync();
            }
            match self.read_once(limit) {
                Ok(true) => self.pace(), // more than one chunk behind
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!("cannot read the log: {e}");
                    if self.handoff.has_writer_stopped() {
                        return;
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
    }

    /// Between two chunks of a catch-up: wait (at most [`PACE`]) until every connection's
    /// queue has room for two more chunks. A client that reads every message of a busy room
    /// is not dropped by a catch-up's burst; one that stopped reading holds the follower up
    /// for one pause per chunk until its queue overflows and it is dropped.
    fn pace(&self) {
        let room = (self.chunk as usize).saturating_mul(2);
        let fill = self.hub.queue_len().saturating_sub(room);
        let started = Instant::now();
        let until = started + PACE;
        while self.hub.fullest_queue() > fill && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        add_us(&self.hub.metrics().log_paused_us, started);
    }

    /// One read of at most `chunk` positions; whether more are waiting.
    fn read_once(&mut self, limit: Option<i64>) -> Result<bool, PgError> {
        /// What one snapshot of the log gave.
        enum Read {
            /// Positions up to `upto` (`None`: nothing new), what they hold above
            /// `vouched`, whether more are waiting, and, when the hub's names are due and
            /// `upto` is the head, every room's name there.
            Range(Option<(i64, LogRange)>, bool, Option<Vec<(i64, String)>>),
            /// Hub events this node has not delivered were deleted; the head, and every
            /// room's name there.
            Pruned(i64, Vec<(i64, String)>),
        }
        let c = &self.reader;
        // A failed BEGIN leaves no transaction (the next one connects again if need be).
        c.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        let read = (|| -> Result<Read, PgError> {
            let (head, pruned) = queries::log_head_and_pruned(c)?;
            // Checked after the head was read: a batch of this node's among the rows below
            // it was marked before it committed.
            let mut upto = head.min(limit.unwrap_or(i64::MAX));
            if let Some(mine) = self.handoff.in_flight() {
                upto = upto.min(mine);
            }
            // A chunk from where delivery resumes: what lies up to `vouched` is skipped whole.
            let from = self.applied.max(self.vouched);
            let upto = upto.min(from + self.chunk);
            let names = if self.names_due && upto == head && pruned <= from {
                Some(queries::log_head_and_names(c)?.1)
            } else {
                None
            };
            if upto <= self.applied {
                return Ok(Read::Range(None, false, names));
            }
            let more = upto < head.min(limit.unwrap_or(i64::MAX));
            if pruned > from {
                let (head, names) = queries::log_head_and_names(c)?;
                return Ok(Read::Pruned(head, names));
            }
            if upto <= from {
                return Ok(Read::Range(Some((upto, LogRange::default())), more, names));
            }
            let range = queries::log_range(c, from, upto)?;
            Ok(Read::Range(Some((upto, range)), more, names))
        })();
        let _ = c.batch("ROLLBACK");
        self.hub.metrics().log_reads.fetch_add(1, Ordering::Relaxed);
        self.last_read = Instant::now();
        let (found, more, names) = match read? {
            Read::Range(found, more, names) => (found, more, names),
            Read::Pruned(head, names) => {
                self.pruned_behind(head, names);
                return Ok(false);
            }
        };
        if let Some((upto, range)) = found {
            let (items, unreadable) = remote_items(range);
            if !items.is_empty() {
                self.hub.fan_out_remote(items);
            }
            self.applied = upto;
            if unreadable {
                // A change this node cannot apply (a bug, or a newer node's: a cluster is
                // upgraded whole): its connections may be missing it, so they read again.
                self.hub.reset_or_abort(Some(upto));
                self.names_due = true;
            }
        }
        if let Some(names) = names.filter(|_| self.names_due) {
            // As of `applied`, the snapshot's head: what the hub delivers next is above it.
            self.hub.know_room_names(names);
            self.names_due = false;
        }
        self.hub.metrics().log_read(self.applied);
        Ok(more
            && self
                .handoff
                .in_flight()
                .is_none_or(|mine| mine > self.applied))
    }

    /// Some of the hub's events above what this node delivered were deleted before it read
    /// them (it fell more than their lifetime behind): what its connections missed cannot be
    /// told from the log any more, and applying what is left around the holes could leave a
    /// connection in a room its user has left. Every connection is closed, and one opened
    /// from now on reads the store at `head` or later ([`Hub::reset`]), so nothing up to
    /// `head` is delivered any more ([`Follower::vouched`]): the reads skip it, and this
    /// node's own batches up to it (still on their way to the follower) go out without their
    /// room and membership changes.
    fn pruned_behind(&mut self, head: i64, names: Vec<(i64, String)>) {
        tracing::warn!(
            "the log's events above position {} were deleted before this node read them: \
             closing every connection so that clients read everything again",
            self.applied.max(self.vouched)
        );
        self.vouched = head;
        self.go_on_from((head, names), Some(head));
    }

    /// After a long gap, this node cannot vouch for what its connections missed (the hub's
    /// events are kept only a few minutes): carry on from the head, and close every
    /// connection so that it resumes from the database.
    fn resync(&mut self) {
        tracing::warn!(
            "the log was not read for {:?}: closing every connection so clients resume",
            self.last_read.elapsed()
        );
        // At once, so that clients move to another node while this one cannot read the log;
        // a connection opened meanwhile is closed by the reset at the head.
        self.hub.close_all(CLOSE_RECONNECT, "reconnect");
        self.go_on_from_head(None);
    }

    /// After a delivery of positions up to `upto` failed midway (a bug; see
    /// [`Hub::caught`]): the batch of this node's writer that was being delivered, if any, is
    /// settled (nothing else will deliver it, and the batches after it must not wait for it),
    /// and the follower carries on from the head.
    fn failed(&mut self, mine: Option<i64>, upto: Option<i64>) {
        if let Some(after) = mine {
            self.handoff.settled(after);
        }
        self.go_on_from_head(upto);
    }

    /// Carry on from the head of the log (below the writer's batches in flight), leaving
    /// what lies between undelivered: the hub counts it (and anything up to `upto`) as
    /// offered and closes every connection ([`Hub::reset_or_abort`]), after the head is
    /// read, so that a connection that read its history before the jump is either closed or
    /// made to read again. The head's read is retried until it succeeds (or the writer has
    /// stopped), as a catch-up is.
    fn go_on_from_head(&mut self, upto: Option<i64>) {
        // A failure in the middle of a read may have left its transaction open.
        if self.reader.in_transaction() {
            let _ = self.reader.batch("ROLLBACK");
        }
        let read = loop {
            match queries::log_head_and_names(&self.reader) {
                Ok(read) => break read,
                Err(e) if !self.handoff.has_writer_stopped() => {
                    tracing::warn!("cannot read the log's head: {e}");
                    std::thread::sleep(RETRY);
                }
                Err(_) => break (self.applied, Vec::new()),
            }
        };
        self.go_on_from(read, upto);
    }

    /// [`Follower::go_on_from_head`] with the head read, and every room's name there: the
    /// hub knows them again after its reset when delivery goes on from that very head (not
    /// below it, where a batch of this node's is still on its way, nor above it).
    fn go_on_from(&mut self, (head, names): (i64, Vec<(i64, String)>), upto: Option<i64>) {
        let read = head;
        let head = self.handoff.in_flight().map_or(head, |mine| head.min(mine));
        self.applied = self.applied.max(head);
        self.hub
            .reset_or_abort(Some(upto.map_or(self.applied, |u| u.max(self.applied))));
        if self.applied == read {
            self.hub.know_room_names(names);
        }
        self.names_due = self.applied != read;
        self.hub.metrics().log_read(self.applied);
        self.last_read = Instant::now();
    }
}

/// A batch of this node's own below what every connection has from the store: its
/// messages still go out (the answers to their senders, the new-message watcher), but its
/// room and membership changes are not applied again over what connections read later
/// (each is answered as applied).
fn without_changes(batch: Vec<Committed>) -> Vec<Committed> {
    batch
        .into_iter()
        .filter_map(|item| match item {
            Committed::Changed(done) => {
                let _ = done.applied.send(());
                None
            }
            other => Some(other),
        })
        .collect()
}

/// The highest position of what `batch` answers retries with, each stored by the retry's
/// first copy: a message (a retried send), or a change to one told only to the connection
/// that asked again (a repeated edit, reaction or deletion).
fn newest_repeated(batch: &[Committed]) -> Option<i64> {
    batch
        .iter()
        .filter_map(|c| match c {
            Committed::Stored {
                msg,
                duplicate: true,
                ..
            } => Some(msg.id),
            Committed::Changed(done) => done
                .changes
                .iter()
                .filter_map(|change| match change {
                    Change::Message {
                        change,
                        audience: crate::events::Audience::Only(_),
                        ..
                    } => Some(change.seq),
                    _ => None,
                })
                .max(),
            _ => None,
        })
        .max()
}

/// Add the microseconds since `started` to `counter`.
fn add_us(counter: &AtomicU64, started: Instant) {
    counter.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
}

/// Positions read at once for connection queues of `queue` frames: at most a quarter of a
/// queue, so that a client reading a busy room has room for the next read's burst while it
/// still drains this one.
fn chunk(queue: usize) -> i64 {
    (queue as i64 / 4).clamp(4, CHUNK)
}

/// The items of notifications the listener handed to the follower and the follower has not
/// taken yet. A follower that lags (a paused node, a slow catch-up) would otherwise let the
/// listener pile up every other node's parsed batches in memory; once they hold [`BACKLOG`]
/// bytes a batch is handed on without its items, and the follower, once there, reads it from
/// the log. Counted in bytes, not items: a message may be a few bytes or 16 KB of text.
#[derive(Debug, Default)]
struct Backlog(std::sync::atomic::AtomicUsize);

impl Backlog {
    /// The batch to hand on: as it is while the backlog has room for its items, otherwise
    /// its announcement alone (`complete: false`).
    fn admit(&self, mut batch: Vec<Committed>) -> Vec<Committed> {
        let Some(&Committed::Notified { after, upto, .. }) = batch.first() else {
            return batch;
        };
        let bytes = held(&batch);
        // Only the listener adds, so the room checked is still there when it adds.
        if self.0.load(Ordering::Acquire) + bytes <= BACKLOG {
            self.0.fetch_add(bytes, Ordering::AcqRel);
            return batch;
        }
        batch.truncate(1);
        batch[0] = Committed::Notified {
            after,
            upto,
            complete: false,
        };
        batch
    }

    /// The follower took `batch` off the channel.
    fn taken(&self, batch: &[Committed]) {
        self.0.fetch_sub(held(batch), Ordering::AcqRel);
    }
}

/// Roughly the memory the items of a notified batch hold (not its announcement, first): each
/// item's own size, a message's text and, for the rarer rest, a generous allowance. The same
/// batch always gives the same count, which is what lets [`Backlog::taken`] give back what
/// [`Backlog::admit`] counted.
fn held(batch: &[Committed]) -> usize {
    const ALLOWANCE: usize = 256;
    let text = |s: &str| s.len();
    batch
        .iter()
        .skip(1)
        .map(|c| {
            std::mem::size_of::<Committed>()
                + match c {
                    Committed::Stored { msg, mentioned, .. } => {
                        text(&msg.room)
                            + text(&msg.user)
                            + text(&msg.body)
                            + msg.nonce.as_deref().map_or(0, text)
                            + msg
                                .reply_to
                                .as_ref()
                                .map_or(0, |r| text(&r.user) + text(&r.excerpt) + ALLOWANCE)
                            + (msg.reactions.len() + msg.attachments.len()) * ALLOWANCE
                            + msg.preview.as_ref().map_or(0, |_| ALLOWANCE)
                            + mentioned.len() * 8
                    }
                    Committed::Changed(c) => c
                        .changes
                        .iter()
                        .map(|change| match change {
                            Change::Message {
                                change:
                                    MessageChange {
                                        kind: ChangeKind::Edited { body, .. },
                                        ..
                                    },
                                ..
                            } => ALLOWANCE + text(body),
                            _ => ALLOWANCE,
                        })
                        .sum(),
                    _ => 0,
                }
        })
        .sum()
}

/// What the listener heard on the log's channel.
#[derive(Debug)]
enum Heard {
    /// Nothing to do: the in-transaction notice of `hearth_append` (the commit's own
    /// notification follows it), a batch of this node's own, or a hello.
    Nothing,
    /// For the follower as it is: the batch a notification announces (`Notified` first,
    /// then its items when it carries them), or nothing (a payload it does not know): read
    /// the log.
    Whole(Vec<Committed>),
    /// One part of a batch's items, sent as several notifications.
    Part(Part),
    /// A node's listener says it is there (`{"hello": name, "shared": bool}`: whether it
    /// shares through Redis; absent from older nodes).
    Hello(String, Option<bool>),
}

/// Part `k` of `n` of what the batch at `(after, upto]` committed.
#[derive(Debug)]
struct Part {
    after: i64,
    upto: i64,
    k: usize,
    n: usize,
    items: Vec<Committed>,
}

/// The highest position a notification says is committed: `u` of a commit's own
/// (`{"a":…,"u":…}`), `to` of an append's (`{"from":…,"to":…}`); `None` for a hello.
fn heard_upto(payload: &str) -> Option<i64> {
    // The first occurrence is the key: both come before any item (whose text is escaped).
    let (at, key) = match payload.find("\"u\"") {
        Some(at) => (at, 3),
        None => (payload.find("\"to\"")?, 4),
    };
    // `json_build_object` writes `"to" : 5`.
    let rest = payload[at + key..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Where the batch a notification announces locked the head, read from the payload's start
/// (`{"a":N,...`) without parsing the rest.
fn locked_at(payload: &str) -> Option<i64> {
    let rest = payload.strip_prefix("{\"a\":")?;
    let end = rest.find(',')?;
    rest[..end].parse().ok()
}

/// Read a notification's payload.
fn hear(payload: &str) -> Heard {
    #[derive(serde::Deserialize)]
    struct Note {
        a: Option<i64>,
        u: Option<i64>,
        i: Option<Vec<Item>>,
        k: Option<usize>,
        n: Option<usize>,
        j: Option<Vec<Item>>,
        from: Option<i64>,
        hello: Option<String>,
        shared: Option<bool>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Item {
        Message { m: Box<StoredMessage>, n: Vec<i64> },
        Changes { c: Vec<Change> },
    }
    fn committed(items: Vec<Item>) -> Vec<Committed> {
        items
            .into_iter()
            .map(|item| match item {
                Item::Message { m, n } => Committed::Stored {
                    msg: *m,
                    origin: 0,
                    duplicate: false,
                    mentioned: n,
                },
                Item::Changes { c } => {
                    let (applied, _) = tokio::sync::oneshot::channel();
                    Committed::Changed(Changes {
                        changes: c,
                        applied,
                    })
                }
            })
            .collect()
    }
    let note = match serde_json::from_str::<Note>(payload) {
        Ok(note) => note,
        Err(_) => return Heard::Whole(Vec::new()),
    };
    let (Some(after), Some(upto)) = (note.a, note.u) else {
        return match (note.from, note.hello) {
            (_, Some(name)) => Heard::Hello(name, note.shared),
            (Some(_), None) => Heard::Nothing,
            (None, None) => Heard::Whole(Vec::new()),
        };
    };
    if let (Some(k), Some(n), Some(items)) = (note.k, note.n, note.j) {
        if k < n && n <= MAX_PARTS {
            return Heard::Part(Part {
                after,
                upto,
                k,
                n,
                items: committed(items),
            });
        }
    }
    let complete = note.i.is_some();
    let mut out = vec![Committed::Notified {
        after,
        upto,
        complete,
    }];
    out.extend(committed(note.i.unwrap_or_default()));
    Heard::Whole(out)
}

/// Most parts a batch's notification is taken in (more: the batch is read from the log).
/// Above what this build sends (`queries::NOTIFY_PARTS_MAX`), so that a later build may send
/// more.
const MAX_PARTS: usize = 1024;

/// The parts of one batch's items heard so far. A transaction's notifications reach a
/// listener together and in order, so a batch is complete before any other notification;
/// should another come first (or none for a tick), the batch is handed on without its items
/// and the follower reads it from the log.
#[derive(Default)]
struct Parts {
    /// The batch's `(after, upto)`, and each part once heard.
    batch: Option<(i64, i64)>,
    got: Vec<Option<Vec<Committed>>>,
}

impl Parts {
    /// Take `part`: what is ready for the follower (a batch given up on, the whole batch
    /// once every part came).
    fn add(&mut self, part: Part) -> Vec<Vec<Committed>> {
        let Part {
            after,
            upto,
            k,
            n,
            items,
        } = part;
        let mut out = Vec::new();
        if self.batch != Some((after, upto)) || self.got.len() != n {
            out.extend(self.give_up());
            self.batch = Some((after, upto));
            self.got = (0..n).map(|_| None).collect();
        }
        if let Some(slot @ None) = self.got.get_mut(k) {
            *slot = Some(items);
        }
        if self.got.iter().all(Option::is_some) {
            self.batch = None;
            let mut whole = vec![Committed::Notified {
                after,
                upto,
                complete: true,
            }];
            whole.extend(self.got.drain(..).flatten().flatten());
            out.push(whole);
        }
        out
    }

    /// Give up on the batch whose parts have not all come: announced without its items.
    fn give_up(&mut self) -> Option<Vec<Committed>> {
        let (after, upto) = self.batch.take()?;
        self.got.clear();
        Some(vec![Committed::Notified {
            after,
            upto,
            complete: false,
        }])
    }
}

/// What another node committed, as the hub takes it, in position order; and whether a hub
/// event could not be read (it is left out, and logged).
fn remote_items(range: LogRange) -> (Vec<Committed>, bool) {
    let mut unreadable = false;
    let mut items: Vec<(i64, Committed)> =
        Vec::with_capacity(range.messages.len() + range.events.len());
    for (msg, mentioned) in range.messages {
        items.push((
            msg.id,
            Committed::Stored {
                msg,
                origin: 0,
                duplicate: false,
                mentioned,
            },
        ));
    }
    for (pos, json) in range.events {
        match serde_json::from_str::<Vec<Change>>(&json) {
            Ok(changes) => {
                let (applied, _) = tokio::sync::oneshot::channel();
                items.push((pos, Committed::Changed(Changes { changes, applied })));
            }
            Err(e) => {
                tracing::error!("the hub event at {pos} cannot be read: {e}");
                unreadable = true;
            }
        }
    }
    items.sort_by_key(|(pos, _)| *pos);
    (items.into_iter().map(|(_, c)| c).collect(), unreadable)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::{
        hear, heard_upto, held, newest_repeated, remote_items, Backlog, Change, ChangeKind,
        Changes, Committed, Heard, LogRange, MessageChange, Part, Parts, BACKLOG,
    };
    use crate::events::Audience;

    fn whole(payload: &str) -> Vec<Committed> {
        match hear(payload) {
            Heard::Whole(batch) => batch,
            other => panic!("{payload} heard as {other:?}"),
        }
    }

    const MESSAGE: &str = r#"{"m":{"id":5,"room_id":1,"room":"general","user":"ann","body":"hi","nonce":null,"ts_ms":1,"edited_ms":null,"deleted":false,"reply_to":null,"reactions":[],"attachments":[],"preview":null},"n":[7]}"#;

    /// A batch of `n` copies of `message` from position 4.
    fn batch_of(message: &str, n: usize) -> Vec<Committed> {
        let items = vec![message; n].join(",");
        whole(&format!(r#"{{"a":4,"u":{},"i":[{items}]}}"#, 4 + n))
    }

    #[test]
    fn a_notification_tells_how_far_the_log_is_committed() {
        assert_eq!(heard_upto(r#"{"a":4,"u":9,"i":[]}"#), Some(9));
        assert_eq!(heard_upto(r#"{"a":4,"u":12}"#), Some(12));
        assert_eq!(heard_upto(r#"{"from" : 5, "to" : 7}"#), Some(7));
        assert_eq!(heard_upto(r#"{"hello":"00ff","shared":true}"#), None);
        assert_eq!(heard_upto("not json"), None);
    }

    #[test]
    fn a_batch_without_positions_names_the_newest_first_copy_it_answers() {
        let deleted = |seq, audience| {
            let change = MessageChange {
                seq,
                id: 5,
                room_id: 1,
                room: "general".into(),
                kind: ChangeKind::Deleted { by: "ann".into() },
            };
            let (applied, _) = tokio::sync::oneshot::channel();
            Committed::Changed(Changes {
                changes: vec![Change::Message {
                    change,
                    nonce: None,
                    audience,
                }],
                applied,
            })
        };
        // The message of MESSAGE (id 5), as the answer to a retried send.
        let mut repeat = batch_of(MESSAGE, 1).remove(1);
        if let Committed::Stored { duplicate, .. } = &mut repeat {
            *duplicate = true;
        }
        assert_eq!(newest_repeated(&[repeat]), Some(5));
        let answers = vec![
            deleted(9, Audience::Only(3)),
            Committed::Failed {
                origin: 3,
                nonce: None,
            },
        ];
        assert_eq!(newest_repeated(&answers), Some(9));
        // A new message, or a change every member hears, is no answer to a retry.
        let fresh = batch_of(MESSAGE, 1).remove(1);
        assert_eq!(newest_repeated(&[fresh, deleted(12, Audience::Room)]), None);
    }

    #[test]
    fn beyond_the_backlog_batches_go_on_without_their_items() {
        // Four batches fill the backlog; a fifth does not fit.
        let n = BACKLOG / 4 / held(&batch_of(MESSAGE, 1));
        let batch = || batch_of(MESSAGE, n);
        let complete =
            |b: &[Committed]| matches!(b.first(), Some(Committed::Notified { complete: true, .. }));
        let backlog = Backlog::default();
        let mut handed = Vec::new();
        for _ in 0..4 {
            let b = backlog.admit(batch());
            assert!(
                complete(&b) && b.len() == n + 1,
                "within the backlog: as it is"
            );
            handed.push(b);
        }
        let over = backlog.admit(batch());
        assert!(
            matches!(
                over[..],
                [Committed::Notified {
                    after: 4,
                    complete: false,
                    ..
                }]
            ),
            "beyond it: the announcement alone, to be read"
        );
        backlog.taken(&over);
        backlog.taken(&handed[0]);
        let b = backlog.admit(batch());
        assert!(complete(&b), "room again once the follower took one");
        assert!(backlog.admit(Vec::new()).is_empty(), "a wake-up passes");
        for b in handed.iter().skip(1).chain([&b]) {
            backlog.taken(b);
        }
        assert_eq!(backlog.0.load(Ordering::Acquire), 0, "all given back");
    }

    #[test]
    fn the_backlog_counts_bytes_not_messages() {
        // About a thousand messages of 16 KB of text each (4,000 characters, the most a
        // message has): few items, but more bytes than the backlog holds.
        let long = MESSAGE.replace(
            r#""body":"hi""#,
            &format!(r#""body":"{}""#, "😀".repeat(4_000)),
        );
        let one = held(&batch_of(&long, 1));
        assert!(one > 16_000, "a long message counts its text: {one}");
        let backlog = Backlog::default();
        let n = BACKLOG / one + 1;
        let over = backlog.admit(batch_of(&long, n));
        assert!(
            over.len() == 1,
            "{n} long messages are more than the backlog holds"
        );
        let fits = backlog.admit(batch_of(&long, n - 2));
        assert_eq!(fits.len(), n - 1, "fewer of them fit");

        // An edit counts its new body too.
        let edit = |body: String| {
            let change = MessageChange {
                seq: 9,
                id: 5,
                room_id: 1,
                room: "general".into(),
                kind: ChangeKind::Edited { body, edited_ms: 1 },
            };
            let changes = Changes {
                changes: vec![Change::Message {
                    change,
                    nonce: None,
                    audience: Audience::Room,
                }],
                applied: tokio::sync::oneshot::channel().0,
            };
            let header = Committed::Notified {
                after: 8,
                upto: 9,
                complete: true,
            };
            held(&[header, Committed::Changed(changes)])
        };
        assert!(edit("😀".repeat(4_000)) >= edit(String::new()) + 16_000);
    }

    #[test]
    fn notifications_are_read_as_batches_wake_ups_or_nothing() {
        assert!(whole("").is_empty(), "unknown: read the log");
        assert!(
            matches!(hear("{\"from\":3,\"to\":5}"), Heard::Nothing),
            "hearth_append's own"
        );
        assert!(matches!(hear("{\"hello\":\"0a1b\"}"), Heard::Hello(n, None) if n == "0a1b"));
        assert!(matches!(
            hear("{\"hello\":\"0a1b\",\"shared\":true}"),
            Heard::Hello(n, Some(true)) if n == "0a1b"
        ));
        let bare = whole("{\"a\":4,\"u\":9}");
        assert!(matches!(
            bare[..],
            [Committed::Notified {
                after: 4,
                upto: 9,
                complete: false
            }]
        ));
        let full = whole(&format!(
            r#"{{"a":4,"u":6,"i":[{MESSAGE},{{"p":6,"c":[]}}]}}"#
        ));
        assert_eq!(full.len(), 3, "{full:?}");
        assert!(matches!(
            full[0],
            Committed::Notified { complete: true, .. }
        ));
        assert!(matches!(
            &full[1],
            Committed::Stored { msg, mentioned, origin: 0, duplicate: false } if msg.id == 5 && mentioned == &[7]
        ));
        assert!(matches!(&full[2], Committed::Changed(c) if c.changes.is_empty()));
        // A part out of range is not trusted: the batch is read.
        let odd = whole(&format!(r#"{{"a":4,"u":5,"k":2,"n":2,"j":[{MESSAGE}]}}"#));
        assert!(matches!(
            odd[..],
            [Committed::Notified {
                complete: false,
                ..
            }]
        ));
    }

    #[test]
    fn a_hub_event_read_from_the_log_that_cannot_be_parsed_is_left_out_and_said() {
        let range = |events: &[(i64, &str)]| LogRange {
            messages: Vec::new(),
            events: events.iter().map(|(p, j)| (*p, j.to_string())).collect(),
        };
        let (items, unreadable) = remote_items(range(&[(3, "[]"), (5, "[]")]));
        assert_eq!((items.len(), unreadable), (2, false));
        let (items, unreadable) = remote_items(range(&[(3, "[]"), (4, "{\"x\":1}"), (5, "[]")]));
        assert_eq!(
            (items.len(), unreadable),
            (2, true),
            "the others are delivered; the follower then resets the hub"
        );
    }

    fn part(payload: &str) -> Part {
        match hear(payload) {
            Heard::Part(p) => p,
            other => panic!("{payload} heard as {other:?}"),
        }
    }

    #[test]
    fn a_listener_greets_a_newcomer_at_once_and_a_known_node_on_its_round() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let mut g = super::Greetings::new("me".into());
        assert!(g.due(t0), "the first hello goes out at once");
        assert_eq!(g.said(t0), 0);
        assert!(!g.due(at(100)));
        assert!(!g.hello_from("me", None, at(100)), "its own hello");
        assert!(!g.due(at(100)));
        assert!(g.hello_from("b", Some(true), at(200)), "another node");
        assert!(g.due(at(200)), "a newcomer is answered at once");
        assert_eq!(g.said(at(210)), 1);
        assert!(!g.due(at(300)));
        assert!(g.hello_from("b", Some(false), at(2_200)));
        assert!(!g.due(at(2_200)), "a known node waits for the next round");
        assert_eq!(g.apart(true), 1, "it says it has no Redis, this node has");
        assert_eq!(g.apart(false), 0);
        assert!(g.due(at(2_210)), "every two seconds");
        assert_eq!(g.said(at(2_210)), 1);
        // Silent for longer than FORGET_NODE: forgotten, and greeted again when it comes back.
        assert_eq!(g.said(at(12_300)), 0);
        assert_eq!(g.others(), 0);
        assert!(g.hello_from("b", None, at(12_400)));
        assert!(
            g.due(at(12_400)),
            "a node heard again after a silence is greeted at once"
        );
        assert_eq!(g.others(), 1);
        // Silent that long but not yet forgotten (no hello said meanwhile): greeted too.
        assert_eq!(g.said(at(12_410)), 1);
        assert!(g.hello_from("b", Some(false), at(22_500)));
        assert!(
            g.due(at(22_500)),
            "heard again 10 s after it was last heard"
        );
    }

    #[test]
    fn where_a_batch_locked_the_head_is_read_from_the_payloads_start() {
        assert_eq!(super::locked_at(r#"{"a":42,"u":50,"i":[]}"#), Some(42));
        assert_eq!(
            super::locked_at(r#"{"a":7,"u":9,"k":0,"n":2,"j":[]}"#),
            Some(7)
        );
        assert_eq!(super::locked_at(r#"{"from":3,"to":5}"#), None);
        assert_eq!(super::locked_at(r#"{"a":x,"u":1}"#), None);
        assert_eq!(super::locked_at(""), None);
    }

    #[test]
    fn a_batch_in_parts_is_handed_on_whole_once_every_part_came() {
        let mut parts = Parts::default();
        let second = part(r#"{"a":4,"u":6,"k":1,"n":2,"j":[{"p":6,"c":[]}]}"#);
        let first = part(&format!(r#"{{"a":4,"u":6,"k":0,"n":2,"j":[{MESSAGE}]}}"#));
        assert!(parts.add(second).is_empty(), "one part of two");
        let out = parts.add(first);
        assert_eq!(out.len(), 1);
        let batch = &out[0];
        assert!(matches!(
            batch[0],
            Committed::Notified {
                after: 4,
                upto: 6,
                complete: true
            }
        ));
        assert!(matches!(&batch[1], Committed::Stored { msg, .. } if msg.id == 5));
        assert!(matches!(&batch[2], Committed::Changed(_)));
        assert_eq!(batch.len(), 3, "the parts in their order");
        assert!(parts.give_up().is_none(), "nothing left over");
    }

    #[test]
    fn a_batch_whose_parts_do_not_all_come_is_announced_without_items() {
        let mut parts = Parts::default();
        let first = part(&format!(r#"{{"a":4,"u":6,"k":0,"n":2,"j":[{MESSAGE}]}}"#));
        assert!(parts.add(first).is_empty());
        // Another batch's part: the first is given up on (read from the log).
        let other = part(r#"{"a":6,"u":7,"k":0,"n":2,"j":[{"p":7,"c":[]}]}"#);
        let out = parts.add(other);
        assert!(matches!(
            out[..],
            [ref given_up] if matches!(given_up[..], [Committed::Notified { after: 4, upto: 6, complete: false }])
        ));
        let given_up = parts.give_up().expect("the second batch is pending");
        assert!(matches!(
            given_up[..],
            [Committed::Notified {
                after: 6,
                upto: 7,
                complete: false
            }]
        ));
    }
}
