//! Rooms and DMs: membership, read markers, notification levels, mentions.

use rusqlite::{params, Connection, OptionalExtension};

use super::*;

/// The rooms and DMs a user belongs to, with their unread state: rooms by name, then DMs.
pub fn rooms_for_user(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<Room>> {
    all_rows(
        conn,
        &format!("SELECT {ROOM_COLUMNS} WHERE me.user_id IS NOT NULL ORDER BY r.kind DESC, r.name"),
        [user_id],
        room_row,
    )
}

/// Every public room, by name, with the user's membership when they have one.
pub fn public_rooms(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<Room>> {
    all_rows(
        conn,
        &format!("SELECT {ROOM_COLUMNS} WHERE r.kind = 'room' AND r.is_public = 1 ORDER BY r.name"),
        [user_id],
        room_row,
    )
}

/// A room by name, seen by `user_id` (membership filled in when they are a member).
pub fn room_by_name(conn: &Connection, name: &str, user_id: i64) -> rusqlite::Result<Option<Room>> {
    conn.prepare_cached(&format!("SELECT {ROOM_COLUMNS} WHERE r.name = ?2"))?
        .query_row(params![user_id, name], room_row)
        .optional()
}

/// A room by id, seen by `user_id`.
pub fn room_by_id(conn: &Connection, id: i64, user_id: i64) -> rusqlite::Result<Option<Room>> {
    conn.prepare_cached(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = ?2"))?
        .query_row(params![user_id, id], room_row)
        .optional()
}

/// Create a room; `None` if the name is taken.
pub fn insert_room(
    conn: &Connection,
    name: &str,
    topic: &str,
    kind: RoomKind,
    public: bool,
    created_by: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let n = conn
        .prepare_cached(
            "INSERT INTO rooms (name, topic, kind, is_public, created_by, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![
            name,
            topic,
            kind.as_str(),
            public,
            created_by,
            now_ms
        ])?;
    Ok((n > 0).then(|| conn.last_insert_rowid()))
}

/// Make a user a member, reading from the room's newest message on. False if already one.
pub fn add_member(
    conn: &Connection,
    room_id: i64,
    user_id: i64,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO memberships (room_id, user_id, joined_at, last_read) \
             VALUES (?1, ?2, ?3, COALESCE((SELECT MAX(id) FROM messages WHERE room_id = ?1), 0)) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![room_id, user_id, now_ms])?
        > 0)
}

/// End a membership. False if there was none.
pub fn remove_member(conn: &Connection, room_id: i64, user_id: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM memberships WHERE room_id = ?1 AND user_id = ?2")?
        .execute(params![room_id, user_id])?
        > 0)
}

/// Members of a room: `(user id, username)`, sorted ignoring case.
pub fn room_members(conn: &Connection, room_id: i64) -> rusqlite::Result<Vec<(i64, String)>> {
    all_rows(
        conn,
        "SELECT u.id, u.username FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = ?1 ORDER BY u.username_key",
        [room_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Change a room's name and/or topic. False if the new name is taken.
pub fn update_room(
    conn: &Connection,
    room_id: i64,
    name: Option<&str>,
    topic: Option<&str>,
) -> rusqlite::Result<bool> {
    if let Some(name) = name {
        let taken: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM rooms WHERE name = ?1 AND id != ?2)")?
            .query_row(params![name, room_id], |r| r.get(0))?;
        if taken {
            return Ok(false);
        }
        conn.prepare_cached("UPDATE rooms SET name = ?2 WHERE id = ?1")?
            .execute(params![room_id, name])?;
    }
    if let Some(topic) = topic {
        conn.prepare_cached("UPDATE rooms SET topic = ?2 WHERE id = ?1")?
            .execute(params![room_id, topic])?;
    }
    Ok(true)
}

/// Move a member's read marker forward (never back, and never past the room's newest
/// message, so a made-up id cannot hide messages that arrive later). Returns the marker now
/// stored, or `None` when the user is not a member.
pub fn set_last_read(
    conn: &Connection,
    room_id: i64,
    user_id: i64,
    id: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "UPDATE memberships SET last_read = MAX(last_read, \
         MIN(?3, COALESCE((SELECT MAX(id) FROM messages WHERE room_id = ?1), 0))) \
         WHERE room_id = ?1 AND user_id = ?2 RETURNING last_read",
    )?
    .query_row(params![room_id, user_id, id], |r| r.get(0))
    .optional()
}

/// Set a member's notification level. False when the user is not a member.
pub fn set_notify(
    conn: &Connection,
    room_id: i64,
    user_id: i64,
    level: Notify,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE memberships SET notify = ?3 WHERE room_id = ?1 AND user_id = ?2")?
        .execute(params![room_id, user_id, level.as_str()])?
        > 0)
}

/// Users by case-folded name: `(id, username)`; disabled accounts are not found.
pub fn user_by_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<(i64, String)>> {
    conn.prepare_cached("SELECT id, username FROM users WHERE username_key = ?1 AND disabled = 0")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// The member of `room_id` called `key` (case-folded), if any: their user id.
pub fn member_by_key(conn: &Connection, room_id: i64, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT u.id FROM users u JOIN memberships m ON m.user_id = u.id AND m.room_id = ?1 \
         WHERE u.username_key = ?2",
    )?
    .query_row(params![room_id, key], |r| r.get(0))
    .optional()
}

/// Record that `message_id` mentions `user_id`.
pub fn insert_mention(
    conn: &Connection,
    user_id: i64,
    room_id: i64,
    message_id: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO mentions (user_id, room_id, message_id) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![user_id, room_id, message_id])?;
    Ok(())
}

/// The users message `message_id` mentions.
pub fn mentioned_by(conn: &Connection, message_id: i64) -> rusqlite::Result<Vec<i64>> {
    all_rows(
        conn,
        "SELECT user_id FROM mentions WHERE message_id = ?1",
        [message_id],
        |r| r.get(0),
    )
}

/// Forget that `message_id` mentions `user_id`.
pub fn delete_mention(conn: &Connection, user_id: i64, message_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM mentions WHERE user_id = ?1 AND message_id = ?2")?
        .execute(params![user_id, message_id])?;
    Ok(())
}

/// Every room, by id.
pub fn all_rooms(conn: &Connection) -> rusqlite::Result<Vec<Room>> {
    let mut stmt = conn.prepare(&format!("SELECT {ROOM_COLUMNS} ORDER BY r.id"))?;
    let rows = stmt.query_map([0], room_row)?;
    rows.collect()
}
