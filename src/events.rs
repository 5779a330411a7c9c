//! Typed changes that must reach open connections in commit order with the messages around
//! them: the writer emits them (as [`Committed::Changed`]) exactly where their
//! transaction committed, and the fan-out thread turns each into hub updates and frames.
//! Plain data, so they could cross a process boundary.

use tokio::sync::oneshot;

use crate::model::{MessageChange, Profile, Room, StoredMessage};

/// One committed change to rooms and memberships.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// A message was edited, deleted or reacted to (`edited`, `deleted`, `reaction`).
    Message {
        /// The change, at its position.
        change: MessageChange,
        /// The actor's nonce, on every copy of the frame.
        nonce: Option<String>,
        /// Who hears of it.
        audience: Audience,
    },
    /// An edit made message `id` mention `users`, who were not mentioned before (`mention`
    /// to their connections).
    Mentioned {
        /// The room's row id.
        room_id: i64,
        /// Its name.
        room: String,
        /// The message.
        id: i64,
        /// The edit's position: a connection whose `ready` counted the edit (and so the
        /// mention, in the room's `mentions`) skips the note. 0 in events written before it
        /// was recorded (delivered to every connection of the mentioned, as then).
        #[serde(default)]
        seq: i64,
        /// Its author.
        author: String,
        /// The members newly mentioned.
        users: Vec<i64>,
    },
    /// Someone changed their profile (display name, status or picture): every connection
    /// gets a `profile` frame, and `ready` lists it from now on.
    Profile {
        /// The profile as it is now.
        profile: Profile,
    },
    /// `user_id` moved their read marker in `room` (`read`, to all their connections).
    ReadMarker {
        /// Whose marker.
        user_id: i64,
        /// The room from their side, with the new marker.
        room: Room,
    },
}

/// Who hears of a change to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Audience {
    /// Every connection listening to the message's room (a committed change).
    Room,
    /// Only this connection: a repeated edit, deletion or reaction that stored nothing,
    /// answered with the current state.
    Only(u64),
}

/// The changes of one committed transaction, and who waits until they reached the hub.
#[derive(Debug)]
pub struct Changes {
    /// In the order they were made.
    pub changes: Vec<Change>,
    /// Answered once every change was applied (dropped unanswered if the commit failed, or
    /// if its delivery failed midway, a bug: see `Hub::caught`).
    pub applied: oneshot::Sender<()>,
}

/// Why the writer did not store a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The author is no longer a member of the room (a send that raced a leave or a
    /// removal): `not_a_member` for a public room, `unknown_room` otherwise.
    NotMember {
        /// Whether the room is public.
        public: bool,
    },
    /// `reply_to` names no message of the room that is not deleted (`unknown_message`).
    UnknownReply,
    /// An attachment is not one of the author's uploads that no message has used yet
    /// (`unknown_upload`).
    UnknownUpload,
}

/// What became of a message sent over HTTP, answered once its transaction is over.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // a stored message is the common answer: not boxed
pub enum SendOutcome {
    /// Stored (or found stored under the same nonce).
    Stored(StoredMessage),
    /// Refused; nothing was stored.
    Refused(Refusal),
    /// The write failed; nothing was stored.
    Failed,
}

/// The outcome of one queued message, or the changes of a committed write, in commit order.
/// Stored messages are nearly every item, so they are kept inline rather than boxed (one
/// allocation fewer per message).
#[allow(clippy::large_enum_variant)]
pub enum Committed {
    /// Durably stored (or found already stored under the same nonce).
    Stored {
        /// The message as stored.
        msg: StoredMessage,
        /// The sending connection.
        origin: u64,
        /// A retry of a nonce already stored: goes back to the sender only.
        duplicate: bool,
        /// Members this message mentions (never the author).
        mentioned: Vec<i64>,
    },
    /// Could not be stored; nothing was acknowledged.
    Failed {
        /// The sending connection.
        origin: u64,
        /// The nonce the client gave.
        nonce: Option<String>,
    },
    /// Not stored, for a reason only the writer's transaction could see; nothing was
    /// acknowledged.
    Refused {
        /// The sending connection.
        origin: u64,
        /// The nonce the client gave.
        nonce: Option<String>,
        /// Why.
        reason: Refusal,
    },
    /// A committed write's changes to rooms and memberships, for the hub.
    Changed(Changes),
    /// On PostgreSQL, first in a batch that took positions: it took those in
    /// `(after, upto]`. The node's log follower delivers what other nodes committed below
    /// them first; the hub ignores it.
    Logged {
        /// The head before the batch.
        after: i64,
        /// The head after it.
        upto: i64,
    },
    /// On PostgreSQL, first in what a commit's notification carried (from any node): it
    /// took the positions in `(after, upto]`, and the items that follow are everything it
    /// committed there when `complete` (a batch too large for a notification is announced
    /// without them, and read from the log). The hub ignores it.
    Notified {
        /// The head before the batch.
        after: i64,
        /// The head after it.
        upto: i64,
        /// Whether the items that follow are all of it.
        complete: bool,
    },
}

impl std::fmt::Debug for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Committed::Stored { msg, origin, .. } => {
                write!(f, "Stored({} from {origin})", msg.id)
            }
            Committed::Failed { origin, .. } => write!(f, "Failed(from {origin})"),
            Committed::Refused { origin, .. } => write!(f, "Refused(from {origin})"),
            Committed::Changed(c) => write!(f, "Changed({:?})", c.changes),
            Committed::Logged { after, upto } => write!(f, "Logged({after}..={upto})"),
            Committed::Notified { after, upto, .. } => write!(f, "Notified({after}..={upto})"),
        }
    }
}

/// The highest position the items of `batch` took: their messages' ids, their changes'
/// sequence numbers, and on PostgreSQL the end of the range the batch took.
pub fn highest_position(batch: &[Committed]) -> Option<i64> {
    batch
        .iter()
        .filter_map(|item| match item {
            Committed::Stored { msg, .. } => Some(msg.id),
            Committed::Changed(c) => c
                .changes
                .iter()
                .filter_map(|change| match change {
                    Change::Message { change, .. } => Some(change.seq),
                    _ => None,
                })
                .max(),
            Committed::Logged { upto, .. } | Committed::Notified { upto, .. } => Some(*upto),
            Committed::Failed { .. } | Committed::Refused { .. } => None,
        })
        .max()
}
