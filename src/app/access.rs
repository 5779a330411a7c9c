//! The one rule for who may see and read a room. Every route and frame that names a room asks
//! here (search applies the same rule inside its SQL, see `db::queries::search`).
//!
//! - A member may read and write.
//! - Anyone signed in may read (preview) a public room, and is told `not_a_member` when they
//!   try to write to it.
//! - A private room or DM of others is answered exactly as a room that does not exist
//!   (`unknown_room`), so nobody learns who talks to whom.

use crate::db::{Room, RoomKey, RoomKind};

/// What the asking user may do with a room (its `membership` is theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not theirs to know about: answer as if it did not exist.
    Hidden,
    /// A public room they have not joined: readable, not writable.
    Preview,
    /// They belong to it.
    Member,
}

/// The asking user's access to `room`.
pub fn access(room: &Room) -> Access {
    rule(room.membership.is_some(), room.public, room.kind)
}

/// The asking user's access to `room`, looked up without its counts.
pub fn key_access(room: &RoomKey) -> Access {
    rule(room.member, room.public, room.kind)
}

/// Whether the asking user may read `room` (and learn that it exists), looked up without its
/// counts.
pub fn key_readable(room: &RoomKey) -> bool {
    key_access(room) != Access::Hidden
}

fn rule(member: bool, public: bool, kind: RoomKind) -> Access {
    if member {
        Access::Member
    } else if public && kind == RoomKind::Room {
        Access::Preview
    } else {
        Access::Hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Membership, Notify};

    fn room(kind: RoomKind, public: bool, member: bool) -> Room {
        Room {
            id: 1,
            name: "x".into(),
            topic: String::new(),
            kind,
            public,
            created_by: None,
            members: 2,
            users: Vec::new(),
            last_id: 0,
            membership: member.then_some(Membership {
                last_read: 0,
                unread: 0,
                mentions: 0,
                notify: Notify::All,
            }),
        }
    }

    #[test]
    fn members_read_public_rooms_preview_everything_else_is_hidden() {
        use Access::*;
        assert_eq!(access(&room(RoomKind::Room, true, true)), Member);
        assert_eq!(access(&room(RoomKind::Room, false, true)), Member);
        assert_eq!(access(&room(RoomKind::Dm, false, true)), Member);
        assert_eq!(access(&room(RoomKind::Room, true, false)), Preview);
        assert_eq!(access(&room(RoomKind::Room, false, false)), Hidden);
        // A DM is never public, whatever its flag says.
        assert_eq!(access(&room(RoomKind::Dm, true, false)), Hidden);
    }

    /// A room looked up without its counts gives the same access as the whole room.
    #[test]
    fn a_room_key_gives_the_access_of_its_room() {
        use Access::Hidden;
        for kind in [RoomKind::Room, RoomKind::Dm] {
            for public in [true, false] {
                for member in [true, false] {
                    let full = room(kind, public, member);
                    let key = RoomKey {
                        id: full.id,
                        name: full.name.clone(),
                        kind,
                        public,
                        created_by: full.created_by.clone(),
                        member,
                    };
                    assert_eq!(key_access(&key), access(&full), "{key:?}");
                    assert_eq!(key_readable(&key), access(&full) != Hidden, "{key:?}");
                }
            }
        }
    }
}
