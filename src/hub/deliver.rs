//! Queueing frames: for one connection, one user, one room or everyone. Nothing here waits
//! for a reader. A connection whose queue is full is collected while the lock is held and
//! dropped ([`Hub::drop_slow`]) once it is released, since dropping takes the write lock.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{lock_read, ConnId, Hub, Outgoing, State};
use crate::protocol::ServerMsg;

impl Hub {
    /// Send `typing` to the room's members other than `user_id`.
    pub fn typing(&self, room_id: i64, room: &str, user_id: i64, username: &str) {
        let frame = ServerMsg::Typing {
            room,
            user: username,
        }
        .encode();
        self.to_room(room_id, &frame, Some(user_id));
        if self.shares_presence() {
            self.tell_others(super::LocalPresence::Typing {
                room: room_id,
                room_name: std::sync::Arc::from(room),
                user: user_id,
                name: std::sync::Arc::from(username),
                at: std::time::Instant::now(),
            });
        }
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
        self.to_room_matching(room_id, frame, 0, |user| Some(user) != skip_user);
    }

    /// Queue a frame at position `pos` for every connection listening to a room (a
    /// connection whose `?since=` replay already covered `pos` skips it).
    pub fn to_room_at(&self, room_id: i64, frame: &Utf8Bytes, pos: i64) {
        self.to_room_matching(room_id, frame, pos, |_| true);
    }

    /// Queue a frame at position `pos` (0: none, sent to every connection) for the
    /// connections listening to a room whose user `wanted` accepts; a connection whose
    /// `ready` or replay covered `pos` skips it.
    pub fn to_room_matching(
        &self,
        room_id: i64,
        frame: &Utf8Bytes,
        pos: i64,
        wanted: impl Fn(i64) -> bool,
    ) {
        let st = lock_read(&self.inner.state);
        if pos > 0 {
            self.inner.offered.fetch_max(pos, Ordering::Release);
        }
        let mut slow = Vec::new();
        if let Some(members) = st.rooms.get(&room_id) {
            for m in members.iter().filter(|m| wanted(m.user_id)) {
                self.offer(&m.tx, m.conn, frame, pos, &mut slow);
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

    /// Queue `frame` for every connection (presence), optionally skipping one.
    pub(super) fn broadcast_all(&self, st: &State, frame: &Utf8Bytes, skip: Option<ConnId>) {
        // Slow connections found here are left for the next message fan-out to drop: we
        // already hold the write lock.
        for (_, c) in st.conns.iter().filter(|(id, _)| Some(**id) != skip) {
            let _ = c.tx.try_send(Outgoing::Frame {
                frame: frame.clone(),
                msg_id: 0,
            });
        }
    }

    /// Try to queue one frame; a full queue puts the connection on `slow`. A closed queue is
    /// ignored: its session is already going and unregisters itself.
    pub(super) fn offer(
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
    pub(super) fn drop_slow(&self, slow: Vec<ConnId>) {
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
            self.disconnect(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{drain_json, hub, user, LOOPBACK};

    #[test]
    fn typing_reaches_the_other_members_but_not_the_typer() {
        let hub = hub(16);
        let mut typer = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut typer_tab = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let mut member = hub.connect(&user(2), LOOPBACK, [2; 32], &[7]).unwrap();
        let mut outsider = hub.connect(&user(3), LOOPBACK, [3; 32], &[8]).unwrap();
        for r in [&mut typer, &mut typer_tab, &mut member, &mut outsider] {
            drain_json(r); // presence
        }
        hub.typing(7, "room7", 1, "user1");
        let seen = drain_json(&mut member);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0]["type"], "typing");
        assert_eq!(seen[0]["room"], "room7");
        assert_eq!(seen[0]["user"], "user1");
        assert!(drain_json(&mut typer).is_empty(), "not echoed to the typer");
        assert!(
            drain_json(&mut typer_tab).is_empty(),
            "nor to their other tabs"
        );
        assert!(
            drain_json(&mut outsider).is_empty(),
            "not a member of room 7"
        );
    }
}
