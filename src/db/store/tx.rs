//! [`Tx`]: the store as the rooms use cases see it inside one read snapshot or one write
//! transaction, so their rules (who may join, who may rename) run next to the data they check
//! without SQLite types leaving `db/`.

use rusqlite::Connection;

use crate::db::queries;
use crate::db::{ChangeKind, DbError, MessageChange, Notify, Room, RoomKind, StoredMessage};

/// A connection inside a read or inside the writer's transaction.
pub struct Tx<'a>(pub(in crate::db) &'a Connection);

impl Tx<'_> {
    /// A message by id in its current state, and its author's row id.
    pub fn message_by_id(&self, id: i64) -> Result<Option<(StoredMessage, i64)>, DbError> {
        Ok(queries::message_by_id(self.0, id)?)
    }

    /// Whether `user_id` is an administrator (read now, so a demotion counts at once).
    pub fn user_is_admin(&self, user_id: i64) -> Result<bool, DbError> {
        Ok(queries::user_is_admin(self.0, user_id)?)
    }

    /// The latest edit (`"edit"`) or deletion (`"delete"`) of a message, if any.
    pub fn last_change(&self, id: i64, kind: &str) -> Result<Option<MessageChange>, DbError> {
        Ok(queries::last_change(self.0, id, kind)?)
    }

    /// Give `msg` the body `body` at a new position; writer only.
    pub fn edit_message(
        &self,
        msg: &StoredMessage,
        body: &str,
        actor_id: i64,
        now_ms: i64,
    ) -> Result<MessageChange, DbError> {
        let seq = queries::next_position(self.0)?;
        queries::set_message_body(self.0, msg.id, body, now_ms)?;
        let change = MessageChange {
            seq,
            id: msg.id,
            room_id: msg.room_id,
            room: msg.room.clone(),
            kind: ChangeKind::Edited {
                body: body.to_string(),
                edited_ms: now_ms,
            },
        };
        queries::insert_change(self.0, &change, actor_id, now_ms)?;
        Ok(change)
    }

    /// Delete `msg` (its text is removed, the row stays as a tombstone) at a new position,
    /// by `by`; writer only.
    pub fn delete_message(
        &self,
        msg: &StoredMessage,
        actor_id: i64,
        by: &str,
        now_ms: i64,
    ) -> Result<MessageChange, DbError> {
        let seq = queries::next_position(self.0)?;
        queries::tombstone_message(self.0, msg.id)?;
        let change = MessageChange {
            seq,
            id: msg.id,
            room_id: msg.room_id,
            room: msg.room.clone(),
            kind: ChangeKind::Deleted { by: by.to_string() },
        };
        queries::insert_change(self.0, &change, actor_id, now_ms)?;
        Ok(change)
    }

    /// A room by name as `user_id` sees it, if it exists.
    pub fn room_by_name(&self, name: &str, user_id: i64) -> Result<Option<Room>, DbError> {
        Ok(queries::room_by_name(self.0, name, user_id)?)
    }

    /// A room by id as `user_id` sees it, if it exists.
    pub fn room_by_id(&self, id: i64, user_id: i64) -> Result<Option<Room>, DbError> {
        Ok(queries::room_by_id(self.0, id, user_id)?)
    }

    /// The rooms and DMs `user_id` belongs to.
    pub fn rooms_for_user(&self, user_id: i64) -> Result<Vec<Room>, DbError> {
        Ok(queries::rooms_for_user(self.0, user_id)?)
    }

    /// Every public room, as `user_id` sees it.
    pub fn public_rooms(&self, user_id: i64) -> Result<Vec<Room>, DbError> {
        Ok(queries::public_rooms(self.0, user_id)?)
    }

    /// A room's members: `(user id, username)`, sorted ignoring case.
    pub fn room_members(&self, room_id: i64) -> Result<Vec<(i64, String)>, DbError> {
        Ok(queries::room_members(self.0, room_id)?)
    }

    /// Create a room; `None` if the name is taken.
    pub fn insert_room(
        &self,
        name: &str,
        topic: &str,
        kind: RoomKind,
        public: bool,
        created_by: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<i64>, DbError> {
        Ok(queries::insert_room(
            self.0, name, topic, kind, public, created_by, now_ms,
        )?)
    }

    /// Make `user_id` a member; `false` if they already were.
    pub fn add_member(&self, room_id: i64, user_id: i64, now_ms: i64) -> Result<bool, DbError> {
        Ok(queries::add_member(self.0, room_id, user_id, now_ms)?)
    }

    /// End a membership; `false` if there was none.
    pub fn remove_member(&self, room_id: i64, user_id: i64) -> Result<bool, DbError> {
        Ok(queries::remove_member(self.0, room_id, user_id)?)
    }

    /// An enabled account by case-folded name: `(id, username)`.
    pub fn user_by_key(&self, key: &str) -> Result<Option<(i64, String)>, DbError> {
        Ok(queries::user_by_key(self.0, key)?)
    }

    /// Change a room's name and/or topic; `false` if the new name is taken.
    pub fn update_room(
        &self,
        room_id: i64,
        name: Option<&str>,
        topic: Option<&str>,
    ) -> Result<bool, DbError> {
        Ok(queries::update_room(self.0, room_id, name, topic)?)
    }

    /// Move a read marker (never backwards); the marker afterwards.
    pub fn set_last_read(
        &self,
        room_id: i64,
        user_id: i64,
        id: i64,
    ) -> Result<Option<i64>, DbError> {
        Ok(queries::set_last_read(self.0, room_id, user_id, id)?)
    }

    /// Set a member's notification level; `false` if they are not a member.
    pub fn set_notify(&self, room_id: i64, user_id: i64, level: Notify) -> Result<bool, DbError> {
        Ok(queries::set_notify(self.0, room_id, user_id, level)?)
    }
}
