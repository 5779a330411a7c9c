//! Typed changes that must reach open connections in commit order with the messages around
//! them: the writer emits them (as [`super::Committed::Changed`]) exactly where their
//! transaction committed, and the fan-out thread turns each into hub updates and frames.
//! Plain data, so they could cross a process boundary.

use tokio::sync::oneshot;

use super::Room;

/// One committed change to rooms and memberships.
#[derive(Debug, Clone)]
pub enum Change {
    /// `user_id` became a member of `room` (as they see it): their connections start
    /// receiving the room and get a `room_joined` frame.
    Joined {
        /// The new member.
        user_id: i64,
        /// The room from the new member's side.
        room: Room,
    },
    /// Tell the other members of a room that `username` joined (`member_joined`).
    MemberJoined {
        /// The room.
        room_id: i64,
        /// Its name.
        room: String,
        /// The new member (not told about themselves).
        user_id: i64,
        /// Their name.
        username: String,
    },
    /// A public room was created: everyone hears of it (`room_created`).
    Created {
        /// The room.
        room: Room,
    },
    /// `user_id` left a room: their connections stop receiving it (`room_left`) and the
    /// remaining members are told (`member_left`).
    Left {
        /// Who left.
        user_id: i64,
        /// Their name.
        username: String,
        /// The room.
        room_id: i64,
        /// Its name.
        room: String,
    },
    /// A room's name or topic changed (`room_updated`); `old_name` when it was renamed.
    Updated {
        /// The room after the change.
        room: Room,
        /// Its former name, when renamed.
        old_name: Option<String>,
    },
    /// `user_id` moved their read marker in `room` (`read`, to all their connections).
    ReadMarker {
        /// Whose marker.
        user_id: i64,
        /// The room from their side, with the new marker.
        room: Room,
    },
}

/// The changes of one committed transaction, and who waits until they reached the hub.
#[derive(Debug)]
pub struct Changes {
    /// In the order they were made.
    pub changes: Vec<Change>,
    /// Answered once every change was applied (dropped unanswered if the commit failed).
    pub applied: oneshot::Sender<()>,
}
