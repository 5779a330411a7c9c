//! Presence and typing shared with other nodes (cluster mode). Once [`Hub::share_presence`]
//! was called, the hub no longer decides alone who is online:
//!
//! - a user's first connection to this node and their last one are handed, in the order they
//!   happened (under the hub's lock), to whoever shares them (`cluster::presence`), as are
//!   this node's typing notices;
//! - what every node together says ([`Hub::apply_presence`]) is what this node's connections
//!   are told and what `ready` lists.
//!
//! A user who comes online here is announced to this node's connections at once (the answer
//! from the other nodes, a moment later, then changes nothing); one who leaves here is
//! announced offline only when no node holds them.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{lock_write, Hub, State};
use crate::protocol::ServerMsg;

/// What this node tells the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalPresence {
    /// The user's first connection to this node opened.
    Connected {
        /// The user's id.
        user: i64,
        /// Their name.
        name: Arc<str>,
    },
    /// The user's last connection to this node closed.
    Disconnected {
        /// The user's id.
        user: i64,
    },
    /// The user typed in a room (already relayed to this node's connections).
    Typing {
        /// The room's id.
        room: i64,
        /// The room's name, as the frame carries it.
        room_name: Arc<str>,
        /// Who types.
        user: i64,
        /// Their name.
        name: Arc<str>,
        /// When: a notice that waited too long behind Redis is worth nothing any more.
        at: std::time::Instant,
    },
}

/// What the other nodes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedPresence {
    /// A user is now online somewhere.
    Online(String),
    /// A user is no longer online anywhere.
    Offline(String),
    /// Everyone online anywhere (after the subscription began, or a lease after it began
    /// again).
    Everyone(Vec<String>),
    /// Heard again after a while (the subscription began again): these are online somewhere
    /// (nobody is taken out until the next [`SharedPresence::Everyone`]).
    Back(Vec<String>),
    /// The other nodes cannot be heard for long enough that they no longer show this node's
    /// users: show only this node's own, until they are heard again.
    Local,
    /// Someone on another node types in a room.
    Typing {
        /// The room's id.
        room: i64,
        /// The room's name.
        room_name: String,
        /// Who types.
        user: i64,
        /// Their name.
        name: String,
    },
}

impl State {
    /// Show only the users connected here; the names of those who were online elsewhere.
    fn only_here(&mut self) -> Vec<Arc<str>> {
        let here: HashSet<Arc<str>> = self.users.values().map(|u| u.username.clone()).collect();
        let before = self.elsewhere.replace(here).unwrap_or_default();
        self.online = std::sync::OnceLock::new();
        let here = self.elsewhere.as_ref().expect("just set");
        before.into_iter().filter(|n| !here.contains(n)).collect()
    }

    /// Record that `name` is online (somewhere); whether that is news.
    fn online_somewhere(&mut self, name: &str) -> bool {
        let everyone = self.elsewhere.get_or_insert_with(HashSet::new);
        if everyone.contains(name) {
            return false;
        }
        everyone.insert(Arc::from(name));
        self.online = std::sync::OnceLock::new();
        true
    }
}

impl Hub {
    /// Share presence and typing with other nodes from now on: the changes this node sees
    /// arrive on the returned queue, and [`Hub::apply_presence`] takes what every node says.
    pub fn share_presence(&self) -> mpsc::UnboundedReceiver<LocalPresence> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.inner.shared.set(tx);
        rx
    }

    /// Whether presence is shared with other nodes.
    pub(super) fn shares_presence(&self) -> bool {
        self.inner.shared.get().is_some()
    }

    /// Hand a change to the other nodes (nothing when presence is not shared).
    pub(super) fn tell_others(&self, change: LocalPresence) {
        if let Some(tx) = self.inner.shared.get() {
            let _ = tx.send(change);
        }
    }

    /// A user of this node came online here (called under the write lock): tell the other
    /// nodes, and this node's connections unless they already know.
    pub(super) fn came_online(
        &self,
        st: &mut State,
        (user, name): (i64, &Arc<str>),
        skip: Option<super::ConnId>,
    ) {
        self.tell_others(LocalPresence::Connected {
            user,
            name: name.clone(),
        });
        if st.online_somewhere(name) {
            let frame = ServerMsg::Presence {
                user: name,
                online: true,
            }
            .encode();
            self.broadcast_all(st, &frame, skip);
        }
    }

    /// Apply what the other nodes say to this node's list and connections.
    pub fn apply_presence(&self, event: SharedPresence) {
        let mut changes: Vec<(String, bool)> = Vec::new();
        let mut st = lock_write(&self.inner.state);
        match event {
            SharedPresence::Online(name) => {
                if st.online_somewhere(&name) {
                    changes.push((name, true));
                }
            }
            SharedPresence::Back(names) => {
                st.presence_local = false;
                for name in names {
                    if st.online_somewhere(&name) {
                        changes.push((name, true));
                    }
                }
            }
            SharedPresence::Local => {
                st.presence_local = true;
                changes.extend(st.only_here().iter().map(|n| (n.to_string(), false)));
            }
            SharedPresence::Offline(name) => {
                // A user with a connection here is online whatever arrives late.
                let here = st.users.values().any(|u| *u.username == *name);
                let everyone = st.elsewhere.get_or_insert_with(HashSet::new);
                if !here && everyone.remove(name.as_str()) {
                    st.online = std::sync::OnceLock::new();
                    changes.push((name, false));
                }
            }
            SharedPresence::Everyone(names) => {
                let mut now: HashSet<Arc<str>> = names.iter().map(|n| Arc::from(&**n)).collect();
                now.extend(st.users.values().map(|u| u.username.clone()));
                let before = st.elsewhere.take().unwrap_or_default();
                changes.extend(
                    now.difference(&before)
                        .map(|n| (n.to_string(), true))
                        .chain(before.difference(&now).map(|n| (n.to_string(), false))),
                );
                st.elsewhere = Some(now);
                st.online = std::sync::OnceLock::new();
                st.presence_local = false;
            }
            SharedPresence::Typing {
                room,
                room_name,
                user,
                name,
            } => {
                drop(st);
                let frame = ServerMsg::Typing {
                    room: &room_name,
                    user: &name,
                }
                .encode();
                self.to_room(room, &frame, Some(user));
                return;
            }
        }
        for (name, online) in changes {
            let frame = ServerMsg::Presence {
                user: &name,
                online,
            }
            .encode();
            self.broadcast_all(&st, &frame, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{drain_json, hub, user, LOOPBACK};
    use super::*;

    fn presence(frames: &[serde_json::Value]) -> Vec<(String, bool)> {
        frames
            .iter()
            .filter(|v| v["type"] == "presence")
            .map(|v| {
                (
                    v["user"].as_str().unwrap_or_default().to_string(),
                    v["online"] == true,
                )
            })
            .collect()
    }

    #[test]
    fn shared_presence_follows_every_node_and_tells_others_in_order() {
        let hub = hub(16);
        let mut told = hub.share_presence();
        let mut watcher = hub
            .connect(&user(1), LOOPBACK, [1; 32], &[])
            .expect("admitted");
        assert_eq!(
            told.try_recv().ok(),
            Some(LocalPresence::Connected {
                user: 1,
                name: Arc::from("user1")
            })
        );
        // Another node's user: announced once, however often it is repeated.
        hub.apply_presence(SharedPresence::Online("bob".into()));
        hub.apply_presence(SharedPresence::Online("bob".into()));
        assert_eq!(
            presence(&drain_json(&mut watcher)),
            vec![("bob".to_string(), true)]
        );
        let online: Vec<String> = hub.online().iter().map(|n| n.to_string()).collect();
        assert_eq!(online, ["bob", "user1"]);
        // A late offline for a user connected here changes nothing.
        hub.apply_presence(SharedPresence::Offline("user1".into()));
        assert!(presence(&drain_json(&mut watcher)).is_empty());
        // The whole list after a new subscription: differences only.
        hub.apply_presence(SharedPresence::Everyone(vec!["cy".into(), "user1".into()]));
        let mut got = presence(&drain_json(&mut watcher));
        got.sort();
        assert_eq!(
            got,
            vec![("bob".to_string(), false), ("cy".to_string(), true)]
        );
        // The last connection here goes: the others are told, nobody here is (yet).
        let second = hub
            .connect(&user(2), LOOPBACK, [2; 32], &[])
            .expect("admitted");
        drop(second);
        assert_eq!(
            told.try_recv().ok(),
            Some(LocalPresence::Connected {
                user: 2,
                name: Arc::from("user2")
            })
        );
        assert_eq!(
            told.try_recv().ok(),
            Some(LocalPresence::Disconnected { user: 2 })
        );
        assert_eq!(
            presence(&drain_json(&mut watcher)),
            vec![("user2".to_string(), true)]
        );
        hub.apply_presence(SharedPresence::Offline("user2".into()));
        assert_eq!(
            presence(&drain_json(&mut watcher)),
            vec![("user2".to_string(), false)]
        );
    }

    #[test]
    fn cut_off_from_the_other_nodes_it_shows_its_own_users_until_heard_again() {
        let hub = hub(16);
        let mut told = hub.share_presence();
        let mut watcher = hub
            .connect(&user(1), LOOPBACK, [1; 32], &[])
            .expect("admitted");
        let leaver = hub
            .connect(&user(2), LOOPBACK, [2; 32], &[])
            .expect("admitted");
        hub.apply_presence(SharedPresence::Everyone(vec!["bob".into(), "cy".into()]));
        drain_json(&mut watcher);
        // Cut off: the other nodes' users go, this node's stay.
        hub.apply_presence(SharedPresence::Local);
        let mut got = presence(&drain_json(&mut watcher));
        got.sort();
        assert_eq!(
            got,
            vec![("bob".to_string(), false), ("cy".to_string(), false)]
        );
        let online: Vec<String> = hub.online().iter().map(|n| n.to_string()).collect();
        assert_eq!(online, ["user1", "user2"]);
        // One who leaves here meanwhile is announced here at once (nobody else would), and
        // still told to the others for when they are heard again.
        while told.try_recv().is_ok() {}
        drop(leaver);
        assert_eq!(
            told.try_recv().ok(),
            Some(LocalPresence::Disconnected { user: 2 })
        );
        assert_eq!(
            presence(&drain_json(&mut watcher)),
            vec![("user2".to_string(), false)]
        );
        let online: Vec<String> = hub.online().iter().map(|n| n.to_string()).collect();
        assert_eq!(online, ["user1"]);
        // Heard again: who is online elsewhere comes back; leaving is again theirs to say.
        hub.apply_presence(SharedPresence::Back(vec!["bob".into(), "user1".into()]));
        assert_eq!(
            presence(&drain_json(&mut watcher)),
            vec![("bob".to_string(), true)]
        );
        let third = hub
            .connect(&user(3), LOOPBACK, [3; 32], &[])
            .expect("admitted");
        drop(third);
        assert_eq!(
            presence(&drain_json(&mut watcher)),
            vec![("user3".to_string(), true)],
            "the offline is the other nodes' to say"
        );
    }

    #[test]
    fn typing_is_told_to_other_nodes_and_theirs_reaches_the_room() {
        let hub = hub(16);
        let mut told = hub.share_presence();
        let mut r = hub
            .connect(&user(1), LOOPBACK, [1; 32], &[7])
            .expect("admitted");
        let _ = told.try_recv();
        drain_json(&mut r);
        hub.typing(7, "room7", 2, "bob");
        assert!(matches!(
            told.try_recv(),
            Ok(LocalPresence::Typing {
                room: 7,
                user: 2,
                ..
            })
        ));
        hub.apply_presence(SharedPresence::Typing {
            room: 7,
            room_name: "room7".into(),
            user: 3,
            name: "cy".into(),
        });
        let frames = drain_json(&mut r);
        let typing: Vec<&serde_json::Value> =
            frames.iter().filter(|f| f["type"] == "typing").collect();
        assert_eq!(typing.len(), 2);
        assert_eq!(typing[1]["user"], "cy");
        assert_eq!(typing[1]["room"], "room7");
    }
}
