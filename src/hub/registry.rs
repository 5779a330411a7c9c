//! Connections coming and going: admission against the per-user and per-address limits,
//! presence (online with the first connection, offline with the last), and closing the
//! connections of a session or a user.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use super::{
    lock_read, lock_write, AdmitError, Conn, ConnId, Hub, HubLimits, Member, Online, OnlineUser,
    Outgoing, Registration, State,
};
use crate::model::User;
use crate::protocol::ServerMsg;

impl State {
    /// Whether one more connection of `user_id` from `addr` fits the limits.
    fn admit(&self, limits: &HubLimits, user_id: i64, addr: IpAddr) -> Result<(), AdmitError> {
        let user_conns = self.users.get(&user_id).map_or(0, |u| u.conns);
        if limits.per_user > 0 && user_conns >= limits.per_user {
            return Err(AdmitError::TooManyForUser);
        }
        let addr_conns = self.per_addr.get(&addr).copied().unwrap_or(0);
        if limits.per_address > 0 && addr_conns >= limits.per_address {
            return Err(AdmitError::TooManyForAddress);
        }
        Ok(())
    }

    /// Add an admitted connection to `conns`, the membership index and the address count.
    fn insert_conn(&mut self, id: ConnId, conn: Conn) {
        *self.per_addr.entry(conn.addr).or_default() += 1;
        for room in &conn.rooms {
            self.rooms.entry(*room).or_default().push(Member {
                conn: id,
                user_id: conn.user_id,
                tx: conn.tx.clone(),
            });
        }
        self.conns.insert(id, conn);
    }

    /// Take a connection out of `conns`, every room it listened to and the address count.
    fn remove_conn(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        for room in &conn.rooms {
            if let Some(members) = self.rooms.get_mut(room) {
                if let Some(pos) = members.iter().position(|m| m.conn == id) {
                    members.swap_remove(pos);
                }
            }
        }
        if let Some(n) = self.per_addr.get_mut(&conn.addr) {
            *n -= 1;
            if *n == 0 {
                self.per_addr.remove(&conn.addr);
            }
        }
        Some(conn)
    }

    /// Count one more connection for `user`; true if it is their first (they came online).
    fn user_connected(&mut self, user: &User) -> bool {
        let entry = self.users.entry(user.id).or_insert_with(|| OnlineUser {
            username: Arc::from(user.username.as_str()),
            conns: 0,
        });
        entry.conns += 1;
        let first = entry.conns == 1;
        if first {
            self.online = OnceLock::new();
        }
        first
    }

    /// Count one connection less for `user_id`; their name if it was the last (they went
    /// offline).
    fn user_disconnected(&mut self, user_id: i64) -> Option<Arc<str>> {
        let u = self.users.get_mut(&user_id)?;
        u.conns -= 1;
        if u.conns > 0 {
            return None;
        }
        self.online = OnceLock::new();
        self.users.remove(&user_id).map(|u| u.username)
    }
}

impl Hub {
    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        lock_read(&self.inner.state).conns.len()
    }

    /// Admit a connection for `user` listening to `rooms`. Announces the user as online if this
    /// is their first connection. `addr` is the caller's per-address key (an IPv4 address or
    /// an IPv6 /64, see `address_key` in the limits module).
    pub fn connect(
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
        st.admit(&limits, user.id, addr)?;
        let conn = Conn {
            user_id: user.id,
            addr,
            session,
            rooms: rooms.to_vec(),
            listening_from: self.inner.offered.load(Ordering::Acquire),
            tx,
            slow: slow.clone(),
            closing: AtomicBool::new(false),
        };
        st.insert_conn(id, conn);
        let first = st.user_connected(user);
        let shared_name = first
            .then(|| self.shares_presence())
            .filter(|s| *s)
            .and_then(|_| st.users.get(&user.id).map(|u| u.username.clone()));
        if let Some(name) = shared_name {
            self.came_online(&mut st, (user.id, &name), Some(id));
        } else if first {
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
    pub(super) fn disconnect(&self, id: ConnId) {
        let mut st = lock_write(&self.inner.state);
        let Some(conn) = st.remove_conn(id) else {
            return;
        };
        let Some(name) = st.user_disconnected(conn.user_id) else {
            return;
        };
        if self.shares_presence() {
            // Offline once no node holds them: the other nodes will say (unless they cannot
            // be heard: then this node alone).
            self.tell_others(super::LocalPresence::Disconnected { user: conn.user_id });
            if st.presence_local {
                if let Some(all) = st.elsewhere.as_mut() {
                    all.remove(&name);
                }
                st.online = std::sync::OnceLock::new();
                let frame = ServerMsg::Presence {
                    user: &name,
                    online: false,
                }
                .encode();
                self.broadcast_all(&st, &frame, None);
            }
        } else {
            let frame = ServerMsg::Presence {
                user: &name,
                online: false,
            }
            .encode();
            self.broadcast_all(&st, &frame, None);
        }
    }

    /// Usernames with at least one open connection, ordered without regard to case.
    pub fn online(&self) -> Online {
        let st = lock_read(&self.inner.state);
        st.online
            .get_or_init(|| {
                let mut names: Vec<Arc<str>> = match &st.elsewhere {
                    Some(everyone) => {
                        let mut all = everyone.clone();
                        all.extend(st.users.values().map(|u| u.username.clone()));
                        all.into_iter().collect()
                    }
                    None => st.users.values().map(|u| u.username.clone()).collect(),
                };
                names.sort_unstable_by(|a, b| crate::domain::cmp_folded(a, b));
                names.into()
            })
            .clone()
    }

    /// Of `user_ids`, those with no open connection.
    pub fn offline(&self, user_ids: &[i64]) -> Vec<i64> {
        let st = lock_read(&self.inner.state);
        user_ids
            .iter()
            .copied()
            .filter(|id| !st.users.contains_key(id))
            .collect()
    }

    /// The case-folded names of the users with an open connection listening to room
    /// `room_id` (its online members), without repeats: who `@here` reaches. When presence
    /// is shared with other nodes, everyone online on any node (the store keeps the room's
    /// members among them).
    pub fn online_in_room(&self, room_id: i64) -> Vec<String> {
        let st = lock_read(&self.inner.state);
        let mut ids: Vec<i64> = st
            .rooms
            .get(&room_id)
            .map(|members| members.iter().map(|m| m.user_id).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids.dedup();
        let mut names: Vec<String> = ids
            .iter()
            .filter_map(|id| st.users.get(id))
            .map(|u| u.username.to_ascii_lowercase())
            .collect();
        if let Some(everyone) = &st.elsewhere {
            names.extend(everyone.iter().map(|n| n.to_ascii_lowercase()));
            names.sort_unstable();
            names.dedup();
        }
        names
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
        self.close_where(|c| c.session == session, code, reason);
    }

    /// Close every connection with `code` (this node can no longer vouch for what they were
    /// sent: they reconnect and resume).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        self.close_where(|_| true, code, reason);
    }

    /// Close every connection of a user (account disabled or signed out by an administrator).
    pub fn close_user(&self, user_id: i64, code: u16, reason: &'static str) {
        self.close_where(|c| c.user_id == user_id, code, reason);
    }

    /// Close the connections `pick` selects with `code`. One whose queue is full cannot take
    /// the close: it is dropped as too slow (4008) instead, so it is closed either way. One
    /// with a close queued already is left to it.
    fn close_where(&self, pick: impl Fn(&Conn) -> bool, code: u16, reason: &'static str) {
        let mut full = Vec::new();
        {
            let st = lock_read(&self.inner.state);
            for (&id, c) in st.conns.iter().filter(|(_, c)| pick(c)) {
                if c.closing.load(Ordering::Acquire) {
                    continue; // closing already
                }
                match c.tx.try_send(Outgoing::Close(code, reason)) {
                    Ok(()) => c.closing.store(true, Ordering::Release),
                    Err(mpsc::error::TrySendError::Full(_)) => full.push(id),
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        self.drop_slow(full);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{drain_items, drain_json, hub, user, LOOPBACK};
    use super::*;

    fn names(online: &Online) -> Vec<&str> {
        online.iter().map(|n| &**n).collect()
    }

    fn limited(per_user: u32, per_address: u32) -> Hub {
        let limits = HubLimits {
            queue: 16,
            per_user,
            per_address,
        };
        Hub::new(limits, Arc::new(crate::metrics::Metrics::default()))
    }

    /// (user, online) of every presence frame in `frames`.
    fn presence(frames: &[serde_json::Value]) -> Vec<(String, bool)> {
        frames
            .iter()
            .filter(|v| v["type"] == "presence")
            .map(|v| {
                let user = v["user"].as_str().unwrap().to_string();
                (user, v["online"].as_bool().unwrap())
            })
            .collect()
    }

    #[test]
    fn presence_is_announced_on_the_first_connection_and_after_the_last() {
        let hub = hub(16);
        let mut watcher = hub.connect(&user(9), LOOPBACK, [9; 32], &[]).unwrap();
        let mut first = hub.connect(&user(1), LOOPBACK, [1; 32], &[]).unwrap();
        assert!(drain_json(&mut first).is_empty(), "not told about itself");
        assert_eq!(
            presence(&drain_json(&mut watcher)),
            [("user1".into(), true)]
        );
        let second = hub.connect(&user(1), LOOPBACK, [1; 32], &[]).unwrap();
        assert!(drain_json(&mut watcher).is_empty(), "already online");
        assert_eq!(names(&hub.online()), ["user1", "user9"]);
        drop(first);
        assert!(drain_json(&mut watcher).is_empty(), "one connection left");
        assert_eq!(names(&hub.online()), ["user1", "user9"]);
        drop(second);
        assert_eq!(
            presence(&drain_json(&mut watcher)),
            [("user1".into(), false)]
        );
        assert_eq!(names(&hub.online()), ["user9"]);
        assert_eq!(hub.connection_count(), 1);
    }

    #[test]
    fn a_user_whose_queue_is_full_is_closed_all_the_same() {
        let hub = hub(1);
        let mut stuck = hub.connect(&user(2), LOOPBACK, [2; 32], &[]).unwrap();
        let mut other = hub.connect(&user(3), LOOPBACK, [3; 32], &[]).unwrap();
        // `stuck` holds user 3's presence and reads nothing more: no room for a close.
        assert!(!stuck.slow.load(Ordering::Acquire));
        assert_eq!(hub.connection_count(), 2);
        hub.close_user(2, 4001, "session ended");
        assert!(
            stuck.slow.load(Ordering::Acquire),
            "dropped: it closes with 4008"
        );
        assert_eq!(hub.connection_count(), 1);
        assert!(drain_items(&mut other)
            .iter()
            .all(|i| !matches!(i, Outgoing::Close(..))));
        let _ = drain_items(&mut stuck);
    }

    #[test]
    fn close_session_closes_only_that_sessions_connections() {
        let hub = hub(16);
        let mut a1 = hub.connect(&user(1), LOOPBACK, [1; 32], &[]).unwrap();
        let mut a2 = hub.connect(&user(1), LOOPBACK, [1; 32], &[]).unwrap();
        let mut other_session = hub.connect(&user(1), LOOPBACK, [2; 32], &[]).unwrap();
        let mut other_user = hub.connect(&user(3), LOOPBACK, [3; 32], &[]).unwrap();
        for r in [&mut a1, &mut a2, &mut other_session, &mut other_user] {
            drain_items(r); // presence
        }
        hub.close_session([1; 32], 4001, "session ended");
        for r in [&mut a1, &mut a2] {
            let items = drain_items(r);
            assert!(
                matches!(items[..], [Outgoing::Close(4001, "session ended")]),
                "{items:?}"
            );
        }
        assert!(drain_items(&mut other_session).is_empty());
        assert!(drain_items(&mut other_user).is_empty());
        assert_eq!(hub.live_sessions(), [[1; 32], [2; 32], [3; 32]]);
    }

    #[test]
    fn admission_limits_count_open_connections_only() {
        let hub = limited(2, 3);
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let a = hub.connect(&user(1), LOOPBACK, [1; 32], &[]).unwrap();
        let _b = hub.connect(&user(1), other, [1; 32], &[]).unwrap();
        let third = hub.connect(&user(1), other, [1; 32], &[]).err();
        assert_eq!(third, Some(AdmitError::TooManyForUser));
        let _c = hub.connect(&user(2), LOOPBACK, [2; 32], &[]).unwrap();
        let _d = hub.connect(&user(3), LOOPBACK, [3; 32], &[]).unwrap();
        let refused = hub.connect(&user(4), LOOPBACK, [4; 32], &[]).err();
        assert_eq!(refused, Some(AdmitError::TooManyForAddress));
        drop(a);
        assert!(hub.connect(&user(4), LOOPBACK, [4; 32], &[]).is_ok());
        assert!(hub.connect(&user(1), other, [1; 32], &[]).is_ok());
    }
}
