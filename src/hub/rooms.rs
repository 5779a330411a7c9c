//! The membership index: which connections listen to which room, kept in step with the
//! store by the committed changes the fan-out applies, and the epoch that lets a new
//! connection load its rooms from the store without missing a change that raced the read.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{lock_write, ConnId, Hub, Member, Outgoing, RoomChange, RoomUpdate};

/// Queue a change to one connection's rooms with its frame; a full queue puts the
/// connection on `slow`.
fn tell(
    tx: &mpsc::Sender<Outgoing>,
    conn: ConnId,
    change: RoomChange,
    frame: &Utf8Bytes,
    slow: &mut Vec<ConnId>,
) {
    let update = RoomUpdate {
        change,
        frame: frame.clone(),
    };
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(Outgoing::Room(Box::new(update))) {
        slow.push(conn);
    }
}

impl Hub {
    /// Every connection of `user_id` starts listening to a room, then gets `frame`.
    pub fn join_room(&self, user_id: i64, room_id: i64, name: &str, frame: &Utf8Bytes) {
        let name: Arc<str> = Arc::from(name);
        let mut slow = Vec::new();
        let mut st = lock_write(&self.inner.state);
        let epoch = self.inner.membership_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        st.membership.changed(user_id, epoch);
        st.names.insert(room_id, name.clone());
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
        for (conn, tx) in joining {
            members.push(Member { conn, user_id, tx });
        }
        for (id, c) in st.conns.iter().filter(|(_, c)| c.user_id == user_id) {
            let change = RoomChange::Joined(room_id, name.clone());
            tell(&c.tx, *id, change, frame, &mut slow);
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// Every connection of `user_id` stops listening to a room, then gets `frame`.
    pub fn leave_room(&self, user_id: i64, room_id: i64, frame: &Utf8Bytes) {
        let mut slow = Vec::new();
        let mut st = lock_write(&self.inner.state);
        let epoch = self.inner.membership_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        st.membership.changed(user_id, epoch);
        if let Some(members) = st.rooms.get_mut(&room_id) {
            members.retain(|m| m.user_id != user_id);
        }
        for (id, c) in st.conns.iter_mut().filter(|(_, c)| c.user_id == user_id) {
            c.rooms.retain(|r| *r != room_id);
            tell(&c.tx, *id, RoomChange::Left(room_id), frame, &mut slow);
        }
        drop(st);
        self.drop_slow(slow);
    }

    /// Every room's name as of the position delivery goes on from (a node following the
    /// cluster's log, at its start and after a reset): the frame of a message read from the
    /// log, or sent under a name its sender's connection had not seen change, is then given
    /// its room's name as of its position even when the rename came before this node
    /// listened.
    pub fn know_room_names(&self, names: Vec<(i64, String)>) {
        let mut st = lock_write(&self.inner.state);
        st.names = names
            .into_iter()
            .map(|(id, name)| (id, Arc::from(name)))
            .collect();
    }

    /// A room's name or topic changed: every connection listening to it learns its new name
    /// (`renamed`), then gets `frame`. A connection reading its rooms from the store
    /// meanwhile may have read the room as it was and start listening too late to hear of
    /// the change: a read under way that found the room is refused and made again.
    pub fn update_room(&self, room_id: i64, renamed: Option<&str>, frame: &Utf8Bytes) {
        let name: Option<Arc<str>> = renamed.map(Arc::from);
        let mut st = lock_write(&self.inner.state);
        let epoch = self.inner.membership_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        st.membership.room_changed(room_id, epoch);
        if let Some(name) = &name {
            st.names.insert(room_id, name.clone());
        }
        let mut slow = Vec::new();
        if let Some(members) = st.rooms.get(&room_id) {
            for m in members {
                match &name {
                    Some(name) => {
                        let change = RoomChange::Renamed(room_id, name.clone());
                        tell(&m.tx, m.conn, change, frame, &mut slow);
                    }
                    None => self.offer(&m.tx, m.conn, frame, 0, &mut slow),
                }
            }
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
    /// was taken. Refused (`None`) if a change of its user's rooms, of one of `rooms`' names
    /// or topics, or a reset reached the hub since then: the read may miss it, so the caller reads again. Otherwise returns the fan-out position from
    /// which the connection has been listening to all of `rooms`: a read whose head is below
    /// it may have missed messages the fan-out offered before the connection listened, so
    /// the caller reads again (the next read's head is at least that position). Changes
    /// committed later reach the connection through [`Hub::join_room`] /
    /// [`Hub::leave_room`] as usual.
    pub fn sync_rooms(&self, conn: ConnId, rooms: &[i64], epoch: u64) -> Option<i64> {
        let mut st = lock_write(&self.inner.state);
        let Some(user_id) = st.conns.get(&conn).map(|c| c.user_id) else {
            return Some(0);
        };
        if st.membership.stale(user_id, rooms, epoch) {
            return None;
        }
        #[cfg(feature = "faults")]
        if self
            .inner
            .churn_syncs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return None;
        }
        let Some(c) = st.conns.get_mut(&conn) else {
            return Some(0);
        };
        let (user_id, tx) = (c.user_id, c.tx.clone());
        let (added, removed) = difference(&c.rooms, rooms);
        if added.is_empty() && removed.is_empty() {
            return Some(c.listening_from);
        }
        c.rooms = rooms.to_vec();
        if !added.is_empty() {
            // Under the write lock no fan-out is under way: every position up to `offered`
            // went out without this connection in the added rooms, every later one includes it.
            c.listening_from = self.inner.offered.load(Ordering::Acquire);
        }
        let from = c.listening_from;
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
        Some(from)
    }
}

/// The rooms in `want` but not in `have`, and those in `have` but not in `want`.
fn difference(have: &[i64], want: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let added = want.iter().copied().filter(|r| !have.contains(r)).collect();
    let removed = have.iter().copied().filter(|r| !want.contains(r)).collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        drain, drain_items, drain_json, frames, hub, stored, user, LOOPBACK,
    };

    #[test]
    fn a_message_sent_under_a_rooms_old_name_goes_out_under_its_new_one() {
        let hub = hub(16);
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        drain_items(&mut a);
        hub.fan_out(vec![stored(1, 7, a.id)]);
        hub.update_room(7, Some("lounge"), &"{\"type\":\"room_updated\"}".into());
        // Checked by a connection that had not heard of the rename yet: "room7".
        hub.fan_out(vec![stored(2, 7, a.id), stored(3, 8, a.id)]);
        let rooms: Vec<_> = drain_json(&mut a)
            .into_iter()
            .filter(|f| f["type"] == "message")
            .map(|f| {
                (
                    f["id"].as_i64().unwrap(),
                    f["room"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(rooms, [(1, "room7".to_string()), (2, "lounge".to_string())]);
    }

    #[test]
    fn sync_rooms_is_refused_after_a_membership_change_and_then_applies() {
        let hub = hub(16);
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[7]).unwrap();
        let epoch = hub.membership_epoch();
        hub.leave_room(2, 9, &"{\"type\":\"room_left\"}".into());
        assert_eq!(
            hub.sync_rooms(a.id, &[7], epoch),
            Some(0),
            "another user's change does not touch this read"
        );
        hub.leave_room(1, 7, &"{\"type\":\"room_left\"}".into());
        assert_eq!(
            hub.sync_rooms(a.id, &[8], epoch),
            None,
            "a change of the user's own rooms raced the read"
        );
        assert_eq!(hub.sync_rooms(a.id, &[8], hub.membership_epoch()), Some(0));
        drain_items(&mut a);
        hub.fan_out(vec![stored(1, 7, a.id), stored(2, 8, a.id)]);
        assert_eq!(drain(&mut a), frames(&[("message", 2)]));
    }

    #[test]
    fn a_rooms_new_name_or_topic_refuses_the_reads_under_way_that_found_it() {
        let hub = hub(16);
        let a = hub.connect(&user(1), LOOPBACK, [1; 32], &[]).unwrap();
        let epoch = hub.membership_epoch();
        // Renamed after the read, before the sync: the read has the old name and the
        // connection, not listening yet, would never hear the new one.
        hub.update_room(7, Some("lounge"), &"{\"type\":\"room_updated\"}".into());
        assert_eq!(hub.sync_rooms(a.id, &[7], epoch), None);
        let epoch = hub.membership_epoch();
        hub.update_room(7, None, &"{\"type\":\"room_updated\"}".into());
        assert_eq!(hub.sync_rooms(a.id, &[7], epoch), None, "a new topic too");
        // Changes of rooms the read did not find leave it alone.
        hub.update_room(9, Some("elsewhere"), &"{\"type\":\"room_updated\"}".into());
        assert_eq!(hub.sync_rooms(a.id, &[8], epoch), Some(0));
        assert_eq!(hub.sync_rooms(a.id, &[7], hub.membership_epoch()), Some(0));
    }

    #[test]
    fn sync_rooms_tells_from_where_the_connection_hears_its_rooms() {
        let hub = hub(16);
        let mut a = hub.connect(&user(1), LOOPBACK, [1; 32], &[]).unwrap();
        // Offered while the connection listened to nothing: a read with head 4 is complete,
        // one with head 2 (taken before message 4 committed) would miss it.
        hub.fan_out(vec![stored(3, 7, 99), stored(4, 7, 99)]);
        let epoch = hub.membership_epoch();
        assert_eq!(hub.sync_rooms(a.id, &[7], epoch), Some(4));
        // Unchanged rooms keep the position; from now on every message is queued.
        hub.fan_out(vec![stored(5, 7, 99)]);
        assert_eq!(hub.sync_rooms(a.id, &[7], epoch), Some(4));
        assert_eq!(drain(&mut a), frames(&[("message", 5)]));
        // Only added rooms move it.
        assert_eq!(hub.sync_rooms(a.id, &[], epoch), Some(4));
        assert_eq!(hub.sync_rooms(a.id, &[8], epoch), Some(5));
    }
}
