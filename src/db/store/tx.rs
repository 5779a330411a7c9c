//! [`Tx`]: the store as the rooms use cases see it inside one read snapshot or one write
//! transaction, so their rules (who may join, who may rename) run next to the data they check
//! without SQLite types leaving `db/`.

use crate::db::sql::Conn;

use crate::db::queries;
use crate::db::queries::UserSummary;
use crate::db::{
    ChangeKind, DbError, MessageChange, Notify, Room, RoomKey, RoomKind, StoredMessage,
};

/// A connection inside a read or inside the writer's transaction.
pub struct Tx<'a>(pub(in crate::db) &'a Conn);

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
        queries::insert_change(self.0, &change, Some(actor_id), now_ms)?;
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
        Ok(queries::delete_message(
            self.0,
            msg,
            (Some(actor_id), by),
            now_ms,
        )?)
    }

    /// Delete every message of the account with this key that is not deleted yet, as
    /// `(admin_id, admin)`; the account and the deletions, or `None` when there is no such
    /// account. Writer only.
    pub fn purge_messages(
        &self,
        key: &str,
        by: (i64, &str),
        now_ms: i64,
    ) -> Result<Option<(UserSummary, Vec<MessageChange>)>, DbError> {
        Ok(super::admin::purge_messages(
            self.0,
            key,
            (Some(by.0), by.1),
            now_ms,
        )?)
    }

    /// Whether `user_id` has reacted to message `id` with `emoji`.
    pub fn has_reaction(&self, id: i64, user_id: i64, emoji: &str) -> Result<bool, DbError> {
        Ok(queries::has_reaction(self.0, id, user_id, emoji)?)
    }

    /// How many distinct emoji message `id` carries, and whether `emoji` is among them.
    pub fn emoji_on_message(&self, id: i64, emoji: &str) -> Result<(i64, bool), DbError> {
        Ok(queries::emoji_on_message(self.0, id, emoji)?)
    }

    /// The latest change of `user_id`'s reaction `emoji` to message `id`, if any.
    pub fn last_reaction_change(
        &self,
        id: i64,
        user_id: i64,
        emoji: &str,
    ) -> Result<Option<MessageChange>, DbError> {
        Ok(queries::last_reaction_change(self.0, id, user_id, emoji)?)
    }

    /// Add (`on`) or remove `user`'s reaction `emoji` to `msg` at a new position; writer only.
    pub fn set_reaction(
        &self,
        msg: &StoredMessage,
        (user_id, user): (i64, &str),
        emoji: &str,
        on: bool,
        now_ms: i64,
    ) -> Result<MessageChange, DbError> {
        let seq = queries::next_position(self.0)?;
        queries::set_reaction(
            self.0,
            (msg.id, msg.room_id),
            (user_id, emoji),
            (on, seq),
            now_ms,
        )?;
        let change = MessageChange {
            seq,
            id: msg.id,
            room_id: msg.room_id,
            room: msg.room.clone(),
            kind: ChangeKind::Reaction {
                user: user.to_string(),
                emoji: emoji.to_string(),
                on,
            },
        };
        queries::insert_change(self.0, &change, Some(user_id), now_ms)?;
        Ok(change)
    }

    /// Make the mentions of message `msg` (by `author_id`) those of its new `body`; returns
    /// the members mentioned now who were not before. `here` are further case-folded names
    /// mentioned (the online members, for an edit that adds `@here`). While the new body
    /// still says `@here`, nobody mentioned before loses the mention.
    pub fn update_mentions(
        &self,
        msg: &StoredMessage,
        author_id: i64,
        body: &str,
        here: &[String],
    ) -> Result<Vec<i64>, DbError> {
        let before = queries::mentioned_by(self.0, msg.id)?;
        let named = crate::domain::mention_candidates(body);
        let keys: Vec<&str> = named.iter().chain(here).map(String::as_str).collect();
        let now = queries::members_named(self.0, msg.room_id, author_id, &keys)?;
        let keep_all = crate::domain::mentions_here(body);
        for gone in before.iter().filter(|u| !keep_all && !now.contains(u)) {
            queries::delete_mention(self.0, *gone, msg.id)?;
        }
        let added: Vec<i64> = now.into_iter().filter(|u| !before.contains(u)).collect();
        queries::insert_mentions(self.0, &added, msg.room_id, msg.id)?;
        Ok(added)
    }

    /// A room by name as `user_id` sees it, if it exists.
    pub fn room_by_name(&self, name: &str, user_id: i64) -> Result<Option<Room>, DbError> {
        Ok(queries::room_by_name(self.0, name, user_id)?)
    }

    /// A room by id as `user_id` sees it, if it exists.
    pub fn room_by_id(&self, id: i64, user_id: i64) -> Result<Option<Room>, DbError> {
        Ok(queries::room_by_id(self.0, id, user_id)?)
    }

    /// A room by name, with whether `user_id` is a member and nothing counted (see
    /// [`RoomKey`]), if it exists.
    pub fn room_key_by_name(&self, name: &str, user_id: i64) -> Result<Option<RoomKey>, DbError> {
        Ok(queries::room_key_by_name(self.0, name, user_id)?)
    }

    /// A room by id, with whether `user_id` is a member and nothing counted (see
    /// [`RoomKey`]), if it exists.
    pub fn room_key_by_id(&self, id: i64, user_id: i64) -> Result<Option<RoomKey>, DbError> {
        Ok(queries::room_key_by_id(self.0, id, user_id)?)
    }

    /// The rooms and DMs `user_id` belongs to.
    pub fn rooms_for_user(&self, user_id: i64) -> Result<Vec<Room>, DbError> {
        Ok(queries::rooms_for_user(self.0, user_id)?)
    }

    /// Every public room, as `user_id` sees it.
    pub fn public_rooms(&self, user_id: i64) -> Result<Vec<Room>, DbError> {
        Ok(queries::public_rooms(self.0, user_id)?)
    }

    /// Enabled accounts whose case-folded name starts with `prefix_key`: `(id, username)`, in
    /// name order, at most `limit`.
    pub fn users_by_prefix(
        &self,
        prefix_key: &str,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, DbError> {
        Ok(queries::users_by_prefix(self.0, prefix_key, limit)?)
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
