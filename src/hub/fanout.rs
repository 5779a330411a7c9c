//! The fan-out: what the writer committed, turned into frames on the right queues, in commit
//! order.
//!
//! The ordering promise: a batch is walked in id order, and each committed change to rooms or
//! memberships is applied exactly between the messages it was committed between. So nobody
//! receives a message of a room committed after they left it, and a new member receives every
//! message committed after they joined.
//!
//! This is also the one place that turns a message outcome the writer could not store
//! ([`Committed::Failed`], [`Committed::Refused`]) into the error frame its sender sees.

use std::iter::Peekable;
use std::sync::atomic::Ordering;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{lock_read, lock_write, ConnId, Hub, Member, State};
use crate::events::{highest_position, Audience, Change, Committed, Refusal};
use crate::model::{MessageChange, Room, StoredMessage};
use crate::protocol::{
    change_frame, message_json_from_frame, RoomView, ServerMsg, CLOSE_RECONNECT,
};

/// With the `faults` feature (the test suites' build only): the text of a message whose
/// delivery panics, as a bug in the hub's delivery would.
#[cfg(feature = "faults")]
pub const FAULT_BODY: &str = "hearth-fault: this delivery panics";

/// With the `faults` feature: the text of a message whose delivery panics, and the
/// [`Hub::reset`] after it too, once.
#[cfg(feature = "faults")]
pub const FAULT_IN_RECOVERY_BODY: &str = "hearth-fault: this delivery panics, and its reset";

/// With the `faults` feature: the text of a message after whose delivery the next
/// [`FAULT_CHURN_SYNCS`] calls of [`Hub::sync_rooms`] are refused, as if the user's rooms
/// changed during each read (a new connection reads its rooms that many times at most, then
/// gives up with 1013).
#[cfg(feature = "faults")]
pub const FAULT_CHURN_BODY: &str = "hearth-fault: rooms keep changing";

/// With the `faults` feature: how many room syncs [`FAULT_CHURN_BODY`] refuses.
#[cfg(feature = "faults")]
pub const FAULT_CHURN_SYNCS: u32 = 20;

/// How many times [`Hub::reset_or_abort`] tries a reset that panics.
const RESET_TRIES: u32 = 4;

/// What one [`Hub::fan_out`] call gathers on its way through a batch.
#[derive(Default)]
struct Tally {
    /// Connections whose queue was full, dropped once the lock is released.
    slow: Vec<ConnId>,
    /// Message frames queued, for the `messages_delivered` counter.
    delivered: u64,
    /// The highest id of a new message delivered.
    last_id: i64,
    /// Whether new messages are handed to the watcher (those this node stored).
    watched: bool,
}

/// The committed items of a batch, consumed as they are delivered.
type Batch = Peekable<std::vec::IntoIter<Committed>>;

impl Hub {
    /// Deliver one committed batch, in id order.
    pub fn fan_out(&self, batch: Vec<Committed>) {
        self.fan_out_with(batch, true);
    }

    /// Deliver messages and changes another node committed (cluster mode): as
    /// [`Hub::fan_out`], except that the new-message watcher (previews, pushes, webhooks)
    /// is not told, since the node that stored them tells its own.
    pub fn fan_out_remote(&self, batch: Vec<Committed>) {
        self.fan_out_with(batch, false);
    }

    fn fan_out_with(&self, batch: Vec<Committed>, watched: bool) {
        let mut tally = Tally {
            watched,
            ..Tally::default()
        };
        let mut batch = batch.into_iter().peekable();
        while batch.peek().is_some() {
            // Messages under the read lock; committed changes to rooms and memberships are
            // applied between them, without the lock, exactly where they were committed.
            self.deliver_until_change(&mut batch, &mut tally);
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
            .fetch_add(tally.delivered, Ordering::Relaxed);
        self.mark_fanned(tally.last_id);
        tally.slow.sort_unstable();
        tally.slow.dedup();
        self.drop_slow(tally.slow);
    }

    /// Deliver the message outcomes up to (not including) the next change, under one read
    /// lock.
    fn deliver_until_change(&self, batch: &mut Batch, tally: &mut Tally) {
        let st = lock_read(&self.inner.state);
        while let Some(mut c) = batch.next_if(|c| !matches!(c, Committed::Changed(_))) {
            if let Committed::Stored { msg, .. } = &mut c {
                if let Some(name) = st.names.get(&msg.room_id) {
                    if **name != *msg.room {
                        msg.room = name.to_string();
                    }
                }
            }
            match c {
                Committed::Stored {
                    msg,
                    origin,
                    duplicate: true,
                    ..
                } => self.deliver_duplicate(&st, &msg, origin, tally),
                Committed::Stored { msg, mentioned, .. } => {
                    self.deliver_stored(&st, &msg, &mentioned, tally);
                    if let Some(watch) = self.inner.watcher.get().filter(|_| tally.watched) {
                        watch(&msg, &mentioned);
                    }
                }
                Committed::Failed { origin, nonce } => {
                    self.answer_sender(&st, origin, tally, || failed_frame(nonce.as_deref()));
                }
                Committed::Refused {
                    origin,
                    nonce,
                    reason,
                } => {
                    let frame = || refused_frame(reason, nonce.as_deref());
                    self.answer_sender(&st, origin, tally, frame);
                }
                Committed::Changed(_) | Committed::Logged { .. } | Committed::Notified { .. } => {}
            }
        }
    }

    /// With the `faults` feature: panic for a message whose text is [`FAULT_BODY`] or
    /// [`FAULT_IN_RECOVERY_BODY`] (the latter also makes the next reset panic once); refuse
    /// the next room syncs after [`FAULT_CHURN_BODY`].
    #[cfg(feature = "faults")]
    fn strike_if_faulty(&self, msg: &StoredMessage) {
        if msg.body == FAULT_CHURN_BODY {
            self.inner
                .churn_syncs
                .store(FAULT_CHURN_SYNCS, Ordering::SeqCst);
        }
        let in_recovery = msg.body == FAULT_IN_RECOVERY_BODY;
        if in_recovery {
            self.inner.fail_next_reset.store(true, Ordering::SeqCst);
        }
        if in_recovery || msg.body == FAULT_BODY {
            panic!("hearth-fault: a delivery failed on purpose");
        }
    }

    /// A new message: to every connection listening to its room, then a `mention` to the
    /// connections of the members it mentions.
    fn deliver_stored(
        &self,
        st: &State,
        msg: &StoredMessage,
        mentioned: &[i64],
        tally: &mut Tally,
    ) {
        #[cfg(feature = "faults")]
        self.strike_if_faulty(msg);
        let frame = ServerMsg::Message(msg.into()).encode();
        // The room's tail first: once the sender hears back, a history page shows it.
        let json = || message_json_from_frame(&frame);
        self.inner.tails.append(&msg.room, msg.id, json);
        tally.last_id = tally.last_id.max(msg.id);
        // Under the read lock, so a connection syncing its rooms sees it before or after the
        // whole offer, never half-way.
        self.inner.offered.fetch_max(msg.id, Ordering::Release);
        let Some(members) = st.rooms.get(&msg.room_id) else {
            return;
        };
        for m in members {
            self.offer(&m.tx, m.conn, &frame, msg.id, &mut tally.slow);
        }
        tally.delivered += members.len() as u64;
        if !mentioned.is_empty() {
            self.notify_mentioned(members, msg, mentioned, &mut tally.slow);
        }
    }

    /// Queue a `mention` note for the connections of the mentioned members of a room, at its
    /// message's position: a connection whose replay had the message skips it too (its
    /// `ready` counted the mention), so one that resumed on a node still catching up does
    /// not hear of it twice.
    fn notify_mentioned(
        &self,
        members: &[Member],
        msg: &StoredMessage,
        mentioned: &[i64],
        slow: &mut Vec<ConnId>,
    ) {
        let note = ServerMsg::Mention {
            room: &msg.room,
            id: msg.id,
            user: &msg.user,
            seq: None,
        }
        .encode();
        for m in members.iter().filter(|m| mentioned.contains(&m.user_id)) {
            self.offer(&m.tx, m.conn, &note, msg.id, slow);
        }
    }

    /// A retried nonce that was already stored: only the sending connection hears of it
    /// again (with message id 0, so a replay filter does not skip it), everyone else already
    /// has it (on several nodes, the log follower delivers every position up to it first).
    /// The echo carries the nonce even when the message was deleted since (a tombstone shows
    /// nobody its nonce): the sender matches its answer by it, and would otherwise wait on it
    /// for ever.
    fn deliver_duplicate(&self, st: &State, msg: &StoredMessage, origin: u64, tally: &mut Tally) {
        let mut view = crate::protocol::MessageView::from(msg);
        view.nonce = msg.nonce.as_deref();
        let frame = ServerMsg::Message(view).encode();
        if let Some(conn) = st.conns.get(&origin) {
            self.offer(&conn.tx, origin, &frame, 0, &mut tally.slow);
            tally.delivered += 1;
        }
    }

    /// Queue an answer for the connection that sent a message, if it is still open. The frame
    /// is only encoded then.
    fn answer_sender(
        &self,
        st: &State,
        origin: u64,
        tally: &mut Tally,
        frame: impl FnOnce() -> Utf8Bytes,
    ) {
        if let Some(conn) = st.conns.get(&origin) {
            self.offer(&conn.tx, origin, &frame(), 0, &mut tally.slow);
        }
    }

    /// Bring the membership index up to date with one committed change and send the frames
    /// that tell the people concerned.
    pub fn apply(&self, change: &Change) {
        self.forget_tails(change);
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
                lock_write(&self.inner.state)
                    .names
                    .insert(room.id, std::sync::Arc::from(room.name.as_str()));
                let room = RoomView::shared(room);
                self.to_all(&ServerMsg::RoomCreated { room }.encode());
            }
            Change::Left {
                user_id,
                username,
                room_id,
                room,
            } => self.apply_left(*user_id, username, *room_id, room),
            Change::Updated { room, old_name } => self.apply_updated(room, old_name.as_deref()),
            Change::ReadMarker { user_id, room } => self.apply_read_marker(*user_id, room),
            Change::Profile { profile } => self.profile_changed(profile),
            Change::Mentioned {
                room_id,
                room,
                id,
                seq,
                author,
                users,
            } => {
                let note = ServerMsg::Mention {
                    room,
                    id: *id,
                    user: author,
                    seq: Some(*seq).filter(|s| *s > 0),
                }
                .encode();
                let to = |user| users.contains(&user);
                self.to_room_matching(*room_id, &note, *seq, to);
            }
            Change::Message {
                change,
                nonce,
                audience,
            } => self.apply_message_change(change, nonce.as_deref(), *audience),
        }
    }

    /// Drop the cached tail of every room whose pages `change` may change: new members or
    /// fewer (who may read it), a new name (every message carries it), and any change to a
    /// message (its own object, and the quote of every reply to it).
    fn forget_tails(&self, change: &Change) {
        let tails = &self.inner.tails;
        match change {
            Change::Joined { room, .. } | Change::Created { room } => tails.forget(&room.name),
            Change::MemberJoined { room, .. } | Change::Left { room, .. } => tails.forget(room),
            Change::Updated { room, old_name } => {
                tails.forget(&room.name);
                if let Some(old) = old_name {
                    tails.forget(old);
                }
            }
            Change::Message {
                change, audience, ..
            } if *audience == Audience::Room => tails.forget(&change.room),
            Change::Message { .. }
            | Change::Mentioned { .. }
            | Change::ReadMarker { .. }
            | Change::Profile { .. } => {}
        }
    }

    /// An edit, deletion or reaction: to the room at its position (a resuming connection
    /// skips what its replay had), or to the one connection whose repeat it answers.
    fn apply_message_change(&self, change: &MessageChange, nonce: Option<&str>, to: Audience) {
        let frame = change_frame(change, nonce);
        match to {
            Audience::Room => self.to_room_at(change.room_id, &frame, change.seq),
            Audience::Only(conn) => self.send_to(conn, frame),
        }
    }

    /// The leaver's connections stop listening (`room_left`), then the members that remain
    /// hear of it (`member_left`): in that order, so the leaver is not told.
    fn apply_left(&self, user_id: i64, username: &str, room_id: i64, room: &str) {
        let left = ServerMsg::RoomLeft { room }.encode();
        self.leave_room(user_id, room_id, &left);
        let note = ServerMsg::MemberLeft {
            room,
            user: username,
        }
        .encode();
        self.to_room(room_id, &note, None);
    }

    /// A renamed room also renames it in each member connection's own list; a new topic only
    /// needs the frame.
    fn apply_updated(&self, room: &Room, old_name: Option<&str>) {
        let frame = ServerMsg::RoomUpdated {
            room: RoomView::shared(room),
            old_name,
        }
        .encode();
        let renamed = old_name.is_some().then_some(room.name.as_str());
        self.update_room(room.id, renamed, &frame);
    }

    /// The moved read marker, to every connection of its owner (other tabs clear their
    /// unread badge).
    fn apply_read_marker(&self, user_id: i64, room: &Room) {
        if let Some(m) = &room.membership {
            let frame = ServerMsg::Read {
                room: &room.name,
                id: m.last_read,
                unread: m.unread,
                mentions: m.mentions,
            }
            .encode();
            self.to_user(user_id, &frame);
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
                    let upto = highest_position(&batch);
                    hub.deliver_or_reset(upto, || hub.fan_out(batch));
                    if let Some(upto) = upto {
                        hub.metrics().log_delivered(upto);
                    }
                }
            })
    }

    /// Run `deliver` (a delivery of committed items whose positions end at `upto`, when they
    /// take any), or, should it panic (a bug), [`Hub::reset`] at `upto`: part of it may have
    /// gone out and the rest not, and nothing tells which. The fan-out goes on with the next
    /// batch. Answers in the failed batch are lost with it (a committed change's caller is
    /// told the store is unavailable); their connections are closed with the others, and a
    /// client that resumes finds the stored messages in the replay and sends again what was
    /// not acknowledged. Whether `deliver` went through.
    pub fn deliver_or_reset(&self, upto: Option<i64>, deliver: impl FnOnce()) -> bool {
        let delivered = Hub::caught(deliver);
        if !delivered {
            self.reset_or_abort(upto);
        }
        delivered
    }

    /// [`Hub::reset`] at `upto`, tried again after a pause should it panic (a bug too: every
    /// step of a reset may be run again), up to [`RESET_TRIES`] times. Nothing more is
    /// delivered meanwhile, and the thread that delivers does not end with the reset. A hub
    /// that cannot be reset cannot make its clients read again: the process then stops
    /// (aborts), for its supervisor to start it afresh and its clients to resume there or on
    /// another node.
    pub fn reset_or_abort(&self, upto: Option<i64>) {
        let mut pause = std::time::Duration::from_millis(100);
        for tried in 1..=RESET_TRIES {
            if Hub::caught_as("the reset after a failed delivery", || self.reset(upto)) {
                return;
            }
            if tried < RESET_TRIES {
                std::thread::sleep(pause);
                pause *= 2;
            }
        }
        tracing::error!(
            "the hub could not be reset after a failed delivery ({RESET_TRIES} tries): \
             stopping, so that the server starts afresh and its clients resume"
        );
        std::process::abort();
    }

    /// Run `deliver`; whether it went through, or panicked (a bug: logged). The caller resets
    /// the hub ([`Hub::reset_or_abort`]).
    pub fn caught(deliver: impl FnOnce()) -> bool {
        Hub::caught_as("a delivery", deliver)
    }

    /// Run `task` (`what` names it in the log); whether it went through, or panicked.
    fn caught_as(what: &str, task: impl FnOnce()) -> bool {
        let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)) else {
            return true;
        };
        let why = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic");
        tracing::error!(
            "{what} failed ({why}): every connection will be closed so that clients resume"
        );
        false
    }

    /// Count every position up to `upto` as offered and delivered, though part of what lies
    /// below may not have gone out, and make every client read again: the rooms' cached tails
    /// are forgotten, a membership read under way is refused (it may have missed a join or a
    /// leave that was not delivered), a connection that starts listening from now on must
    /// have read past `upto`, the profiles are read again from the store (see
    /// [`Hub::resets`]), and every connection is closed (1012, or 4008 if its queue is full)
    /// so that it resumes from the database.
    pub fn reset(&self, upto: Option<i64>) {
        {
            let mut st = lock_write(&self.inner.state);
            if let Some(upto) = upto {
                self.inner.offered.fetch_max(upto, Ordering::Release);
            }
            st.membership.floor = self.inner.membership_epoch.fetch_add(1, Ordering::AcqRel) + 1;
            // A rename may be among what was skipped: a name kept from before would then
            // overwrite the right one on every later message of the room. (A node following
            // the log reads every room's name again at the position it goes on from.)
            st.names.clear();
        }
        self.inner.tails.clear();
        if let Some(upto) = upto {
            self.mark_fanned(upto);
        }
        self.inner.resets.send_modify(|n| *n += 1);
        // Midway, so that the reset tried again runs the steps above a second time.
        #[cfg(feature = "faults")]
        if self.inner.fail_next_reset.swap(false, Ordering::SeqCst) {
            panic!("hearth-fault: a reset failed on purpose");
        }
        self.close_all(CLOSE_RECONNECT, "reconnect");
    }

    /// Everything up to `upto` was fanned out: an HTTP send waiting for its message's
    /// delivery may answer (the waiters are woken only when it moves).
    fn mark_fanned(&self, upto: i64) {
        self.inner.fanned.send_if_modified(|v| {
            let newer = upto > *v;
            *v = (*v).max(upto);
            newer
        });
    }

    /// Changes with every [`Hub::reset`].
    pub fn resets(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.resets.subscribe()
    }
}

/// The error frame for a message the writer could not store: nothing was sent, so the client
/// may try again after a second.
fn failed_frame(nonce: Option<&str>) -> Utf8Bytes {
    ServerMsg::Error {
        code: "unavailable",
        message: "The message could not be stored. It was not sent; try again.",
        nonce,
        retry_after_ms: Some(1000),
    }
    .encode()
}

/// The error frame for a message the writer refused: its author is no longer a member (a
/// send that raced a leave or a removal; a private room's existence is not revealed to
/// someone outside it, so it reads as an unknown room), or the message it answers is gone.
fn refused_frame(reason: Refusal, nonce: Option<&str>) -> Utf8Bytes {
    let (code, message) = match reason {
        Refusal::NotMember { public: true } => {
            ("not_a_member", "You are not a member of that room.")
        }
        Refusal::NotMember { public: false } => {
            ("unknown_room", "There is no room with that name.")
        }
        Refusal::UnknownReply => (
            "unknown_message",
            "The message you replied to is not in this room, or was deleted.",
        ),
        Refusal::UnknownUpload => (
            "unknown_upload",
            "An attached file is not one of your uploads, or was sent already.",
        ),
    };
    ServerMsg::Error {
        code,
        message,
        nonce,
        retry_after_ms: None,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        changed, drain, drain_items, drain_json, frames, hub, room, stored, user, LOOPBACK,
    };
    use super::super::Outgoing;
    use super::*;

    fn closes(items: &[Outgoing]) -> Vec<u16> {
        items
            .iter()
            .filter_map(|i| match i {
                Outgoing::Close(code, _) => Some(*code),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_delivery_that_fails_midway_closes_every_connection_and_the_next_one_goes_out() {
        let hub = hub(16);
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut b = hub.connect(&user(2), LOOPBACK, [2; 32], &[8]).unwrap();
        drain(&mut a);
        drain(&mut b);
        // Half a batch out, then a bug: nobody can tell who got what.
        let batch = vec![stored(10, 7, a.id), stored(11, 8, b.id)];
        assert_eq!(highest_position(&batch), Some(11));
        let delivered = hub.deliver_or_reset(Some(11), || {
            hub.fan_out(batch.into_iter().take(1).collect());
            panic!("a bug in the middle of a delivery");
        });
        assert!(!delivered);
        for (reg, got) in [(&mut a, true), (&mut b, false)] {
            let items = drain_items(reg);
            assert_eq!(
                closes(&items),
                [CLOSE_RECONNECT],
                "every connection resumes"
            );
            assert_eq!(items.len(), 1 + usize::from(got));
        }
        // The hub is whole: the next batch goes out as usual.
        assert!(hub.deliver_or_reset(Some(12), || hub.fan_out(vec![stored(12, 8, b.id)])));
        assert_eq!(drain(&mut b), [("message".to_string(), 12)]);
    }

    #[test]
    fn profiles_read_before_a_change_reached_the_hub_are_not_kept() {
        let hub = hub(16);
        let profile = |name: &str, status: &str| crate::model::Profile {
            username: name.into(),
            display_name: String::new(),
            status: status.into(),
            avatar: None,
        };
        let seen = hub.profile_changes();
        // The read (of an older state) is under way when a change is delivered.
        let (change, _) = changed(vec![Change::Profile {
            profile: profile("ann", "new"),
        }]);
        hub.fan_out(vec![change]);
        assert!(!hub.set_profiles(vec![profile("ann", "old")], seen));
        assert_eq!(hub.profiles()[0].status, "new");
        // Read again: kept.
        let seen = hub.profile_changes();
        assert!(hub.set_profiles(vec![profile("ann", "new"), profile("bo", "hi")], seen));
        assert_eq!(hub.profiles().len(), 2);
    }

    #[test]
    fn a_batch_ends_at_its_highest_position() {
        let (changes, _) = changed(vec![Change::Left {
            user_id: 2,
            username: "user2".into(),
            room_id: 7,
            room: "room7".into(),
        }]);
        let failed = Committed::Failed {
            origin: 1,
            nonce: None,
        };
        assert_eq!(highest_position(&[failed]), None);
        assert_eq!(highest_position(&[changes, stored(4, 7, 1)]), Some(4));
        let logged = Committed::Logged { after: 3, upto: 9 };
        assert_eq!(highest_position(&[logged, stored(4, 7, 1)]), Some(9));
    }

    #[test]
    fn after_a_failed_delivery_every_client_reads_again() {
        let hub = hub(2);
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut full = hub.connect(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
        drain(&mut a);
        drain(&mut full);
        // `full` does not read: its queue of two is full.
        hub.fan_out(vec![stored(10, 7, a.id), stored(11, 7, a.id)]);
        drain(&mut a);
        let ticket = hub.tails().ticket("room7");
        let epoch = hub.membership_epoch();
        let resets = hub.resets();
        assert!(!hub.deliver_or_reset(Some(15), || panic!("a bug")));
        assert!(resets.has_changed().unwrap(), "the profiles are read again");
        // A second reset (the follower's, once it read the head) leaves a connection that
        // is closing already to its first close.
        hub.reset(Some(15));
        assert_eq!(closes(&drain_items(&mut a)), [CLOSE_RECONNECT]);
        assert!(!a.slow.load(Ordering::Acquire));
        // A full queue cannot take the close: the connection is dropped as too slow.
        assert!(full.slow.load(Ordering::Acquire), "closed with 4008");
        assert_eq!(hub.connection_count(), 1);
        // A tail read before the reset is not kept, nor a membership read.
        let loaded = crate::hub::Loaded {
            readers: crate::hub::Readers::Everyone,
            messages: Vec::new(),
        };
        assert!(!hub.tails().install("room7", ticket, loaded));
        assert_ne!(hub.membership_epoch(), epoch);
        assert_eq!(
            hub.sync_rooms(a.id, &[7], epoch),
            None,
            "a read under way is refused"
        );
        // A client that connects now must have read past the positions skipped.
        let late = hub.connect(&user(3), LOOPBACK, [3; 32], &[]).unwrap();
        assert_eq!(
            hub.sync_rooms(late.id, &[7], hub.membership_epoch()),
            Some(15)
        );
    }

    #[test]
    fn a_message_reaches_every_member_once_and_nobody_else() {
        let hub = hub(16);
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut b = hub.connect(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
        let mut c = hub.connect(&user(3), LOOPBACK, [3; 32], &[8]).unwrap();
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
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut b = hub.connect(&user(2), LOOPBACK, [2; 32], &[]).unwrap();
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
    fn a_message_goes_out_under_its_rooms_name_as_of_its_position() {
        let hub = hub(16);
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        drain(&mut a);
        let rooms = |items: Vec<serde_json::Value>| -> Vec<String> {
            items
                .iter()
                .map(|f| {
                    let room = f["room"].as_str().or(f["room"]["name"].as_str());
                    format!("{} {}", f["type"], room.unwrap_or(""))
                })
                .collect()
        };
        let with_room = |id: i64, name: &str| {
            let mut item = stored(id, 7, 0);
            if let Committed::Stored { msg, .. } = &mut item {
                msg.room = name.into();
            }
            item
        };
        // Room 7 was renamed "seven" before this node started following the log: a
        // message sent under the name its sender's connection still knew goes out under
        // the name it has at its position, as does one read back from the log after a
        // later rename (which carries the newer name).
        hub.know_room_names(vec![(7, "seven".into())]);
        let (rename, renamed) = changed(vec![Change::Updated {
            room: room(7, "sept"),
            old_name: Some("seven".into()),
        }]);
        hub.fan_out(vec![
            with_room(10, "room7"),
            with_room(11, "sept"),
            rename,
            with_room(12, "seven"),
        ]);
        assert!(renamed.blocking_recv().is_ok());
        assert_eq!(
            rooms(drain_json(&mut a)),
            [
                "\"message\" seven",
                "\"message\" seven",
                "\"room_updated\" sept",
                "\"message\" sept"
            ]
        );
        // A reset forgets every name (the log's follower reads them again).
        hub.reset(Some(12));
        hub.fan_out(vec![with_room(13, "seven")]);
        let frames = rooms(drain_json(&mut a));
        assert!(
            frames.contains(&"\"message\" seven".to_string()),
            "{frames:?}"
        );
    }

    #[test]
    fn a_full_queue_drops_that_connection_and_spares_the_others() {
        let hub = hub(16);
        let mut slow = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut fast = hub.connect(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
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

    #[test]
    fn nobody_receives_a_message_of_a_room_they_left() {
        let hub = hub(16);
        // The leaver has two connections; both stop receiving room 7, and room 8 goes on.
        let mut tab1 = hub.connect(&user(1), LOOPBACK, [1; 32], &[7, 8]).unwrap();
        let mut tab2 = hub.connect(&user(1), LOOPBACK, [1; 32], &[7, 8]).unwrap();
        let mut stayer = hub.connect(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
        for r in [&mut tab1, &mut tab2, &mut stayer] {
            drain(r);
        }
        let (leave, _left) = changed(vec![Change::Left {
            user_id: 1,
            username: "user1".into(),
            room_id: 7,
            room: "room7".into(),
        }]);
        hub.fan_out(vec![
            stored(20, 7, stayer.id),
            leave,
            stored(21, 7, stayer.id),
        ]);
        hub.fan_out(vec![stored(22, 7, stayer.id), stored(23, 8, tab1.id)]);
        let leaver = frames(&[("message", 20), ("room_left", 0), ("message", 23)]);
        assert_eq!(drain(&mut tab1), leaver);
        assert_eq!(drain(&mut tab2), leaver);
        assert_eq!(
            drain(&mut stayer),
            frames(&[
                ("message", 20),
                ("member_left", 0),
                ("message", 21),
                ("message", 22),
            ])
        );
    }

    #[test]
    fn refusals_and_failures_answer_only_the_sender() {
        let hub = hub(16);
        let mut sender = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut other_tab = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut member = hub.connect(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
        for r in [&mut sender, &mut other_tab, &mut member] {
            drain(r);
        }
        let refused = |public, nonce: &str| Committed::Refused {
            origin: sender.id,
            nonce: Some(nonce.into()),
            reason: Refusal::NotMember { public },
        };
        let failed = Committed::Failed {
            origin: sender.id,
            nonce: None,
        };
        hub.fan_out(vec![refused(true, "n1"), refused(false, "n2"), failed]);
        let got = drain_json(&mut sender);
        let codes: Vec<_> = got.iter().map(|v| (&v["code"], &v["nonce"])).collect();
        assert_eq!(
            codes,
            [
                (&"not_a_member".into(), &"n1".into()),
                (&"unknown_room".into(), &"n2".into()),
                (&"unavailable".into(), &serde_json::Value::Null),
            ]
        );
        assert_eq!(got[2]["retry_after_ms"], 1000);
        assert!(
            drain(&mut other_tab).is_empty(),
            "only the sending connection"
        );
        assert!(drain(&mut member).is_empty());
    }

    #[test]
    fn a_duplicate_goes_back_to_its_sender_only_and_mentions_only_to_the_mentioned() {
        let hub = hub(16);
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut b = hub.connect(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
        let mut c = hub.connect(&user(3), LOOPBACK, [3; 32], &[7]).unwrap();
        for r in [&mut a, &mut b, &mut c] {
            drain(r);
        }
        let mut dup = stored(30, 7, a.id);
        let mut mention = stored(31, 7, a.id);
        if let Committed::Stored { duplicate, .. } = &mut dup {
            *duplicate = true;
        }
        if let Committed::Stored { mentioned, .. } = &mut mention {
            *mentioned = vec![3];
        }
        hub.fan_out(vec![dup, mention]);
        assert_eq!(drain(&mut a), frames(&[("message", 0), ("message", 31)]));
        assert_eq!(drain(&mut b), frames(&[("message", 31)]));
        // The mention at its message's position: a replay that had the message skips it.
        assert_eq!(drain(&mut c), frames(&[("message", 31), ("mention", 31)]));
    }
}
