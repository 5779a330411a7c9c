//! Rooms and DMs: membership, read markers, notification levels, mentions.

use super::*;

/// The rooms and DMs a user belongs to, with their unread state: rooms by name, then DMs.
pub fn rooms_for_user<C: Sql>(conn: &C, user_id: i64) -> Result<Vec<Room>, C::Error> {
    let sql = format!(
        "SELECT {} WHERE me.user_id IS NOT NULL ORDER BY r.kind DESC, r.name",
        room_columns(conn)
    );
    conn.rows(&sql, args![user_id], |r| room_row(r))
}

/// Every public room, by name, with the user's membership when they have one.
pub fn public_rooms<C: Sql>(conn: &C, user_id: i64) -> Result<Vec<Room>, C::Error> {
    let sql = format!(
        "SELECT {} WHERE r.kind = 'room' AND r.is_public = TRUE ORDER BY r.name",
        room_columns(conn)
    );
    conn.rows(&sql, args![user_id], |r| room_row(r))
}

/// A room by name, seen by `user_id` (membership filled in when they are a member).
pub fn room_by_name<C: Sql>(conn: &C, name: &str, user_id: i64) -> Result<Option<Room>, C::Error> {
    let sql = format!("SELECT {} WHERE r.name = ?2", room_columns(conn));
    conn.row(&sql, args![user_id, name], |r| room_row(r))
}

/// What [`room_key_row`] reads, `?1` being the asking user.
const ROOM_KEY_COLUMNS: &str =
    "r.id, r.name, r.kind, r.is_public, cu.username, me.user_id IS NOT NULL FROM rooms r \
     LEFT JOIN users cu ON cu.id = r.created_by \
     LEFT JOIN memberships me ON me.room_id = r.id AND me.user_id = ?1";

fn room_key_row<R: SqlRow + ?Sized>(r: &R) -> Result<RoomKey, R::Error> {
    Ok(RoomKey {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: RoomKind::parse(&r.get::<String>(2)?),
        public: r.get(3)?,
        created_by: r.get(4)?,
        member: r.get(5)?,
    })
}

/// A room by name, with whether `user_id` is a member and nothing counted: see [`RoomKey`].
pub fn room_key_by_name<C: Sql>(
    conn: &C,
    name: &str,
    user_id: i64,
) -> Result<Option<RoomKey>, C::Error> {
    let sql = format!("SELECT {ROOM_KEY_COLUMNS} WHERE r.name = ?2");
    conn.row(&sql, args![user_id, name], |r| room_key_row(r))
}

/// [`room_key_by_name`] by id.
pub fn room_key_by_id<C: Sql>(
    conn: &C,
    id: i64,
    user_id: i64,
) -> Result<Option<RoomKey>, C::Error> {
    let sql = format!("SELECT {ROOM_KEY_COLUMNS} WHERE r.id = ?2");
    conn.row(&sql, args![user_id, id], |r| room_key_row(r))
}

/// A room by id, seen by `user_id`.
pub fn room_by_id<C: Sql>(conn: &C, id: i64, user_id: i64) -> Result<Option<Room>, C::Error> {
    let sql = format!("SELECT {} WHERE r.id = ?2", room_columns(conn));
    conn.row(&sql, args![user_id, id], |r| room_row(r))
}

/// Create a room; `None` if the name is taken.
pub fn insert_room<C: Sql>(
    conn: &C,
    name: &str,
    topic: &str,
    kind: RoomKind,
    public: bool,
    created_by: Option<i64>,
    now_ms: i64,
) -> Result<Option<i64>, C::Error> {
    conn.row(
        "INSERT INTO rooms (name, topic, kind, is_public, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING RETURNING id",
        args![name, topic, kind.as_str(), public, created_by, now_ms],
        |r| r.get(0),
    )
}

/// Make a user a member, reading from the room's newest message on. False if already one.
pub fn add_member<C: Sql>(
    conn: &C,
    room_id: i64,
    user_id: i64,
    now_ms: i64,
) -> Result<bool, C::Error> {
    Ok(conn.exec(
        "INSERT INTO memberships (room_id, user_id, joined_at, last_read) \
         VALUES (?1, ?2, ?3, COALESCE((SELECT MAX(id) FROM messages WHERE room_id = ?1), 0)) \
         ON CONFLICT DO NOTHING",
        args![room_id, user_id, now_ms],
    )? > 0)
}

/// End a membership. False if there was none.
pub fn remove_member<C: Sql>(conn: &C, room_id: i64, user_id: i64) -> Result<bool, C::Error> {
    Ok(conn.exec(
        "DELETE FROM memberships WHERE room_id = ?1 AND user_id = ?2",
        args![room_id, user_id],
    )? > 0)
}

/// Members of a room: `(user id, username)`, sorted ignoring case.
pub fn room_members<C: Sql>(conn: &C, room_id: i64) -> Result<Vec<(i64, String)>, C::Error> {
    conn.rows(
        "SELECT u.id, u.username FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = ?1 ORDER BY u.username_key",
        args![room_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Change a room's name and/or topic. False if the new name is taken.
pub fn update_room<C: Sql>(
    conn: &C,
    room_id: i64,
    name: Option<&str>,
    topic: Option<&str>,
) -> Result<bool, C::Error> {
    if let Some(name) = name {
        let taken = conn.row(
            "SELECT 1 FROM rooms WHERE name = ?1 AND id != ?2",
            args![name, room_id],
            |_| Ok(()),
        )?;
        if taken.is_some() {
            return Ok(false);
        }
        conn.exec(
            "UPDATE rooms SET name = ?2 WHERE id = ?1",
            args![room_id, name],
        )?;
    }
    if let Some(topic) = topic {
        conn.exec(
            "UPDATE rooms SET topic = ?2 WHERE id = ?1",
            args![room_id, topic],
        )?;
    }
    Ok(true)
}

/// Move a member's read marker forward (never back, and never past the room's newest
/// message, so a made-up id cannot hide messages that arrive later). Returns the marker now
/// stored, or `None` when the user is not a member.
pub fn set_last_read<C: Sql>(
    conn: &C,
    room_id: i64,
    user_id: i64,
    id: i64,
) -> Result<Option<i64>, C::Error> {
    let sql = conn.dialect(
        "UPDATE memberships SET last_read = MAX(last_read, \
         MIN(?3, COALESCE((SELECT MAX(id) FROM messages WHERE room_id = ?1), 0))) \
         WHERE room_id = ?1 AND user_id = ?2 RETURNING last_read",
        "UPDATE memberships SET last_read = GREATEST(last_read, \
         LEAST(?3, COALESCE((SELECT MAX(id) FROM messages WHERE room_id = ?1), 0))) \
         WHERE room_id = ?1 AND user_id = ?2 RETURNING last_read",
    );
    conn.row(sql, args![room_id, user_id, id], |r| r.get(0))
}

/// Set a member's notification level. False when the user is not a member.
pub fn set_notify<C: Sql>(
    conn: &C,
    room_id: i64,
    user_id: i64,
    level: Notify,
) -> Result<bool, C::Error> {
    Ok(conn.exec(
        "UPDATE memberships SET notify = ?3 WHERE room_id = ?1 AND user_id = ?2",
        args![room_id, user_id, level.as_str()],
    )? > 0)
}

/// Users by case-folded name: `(id, username)`; disabled accounts and incoming hooks' own
/// accounts (members of their room only) are not found.
pub fn user_by_key<C: Sql>(conn: &C, key: &str) -> Result<Option<(i64, String)>, C::Error> {
    conn.row(
        "SELECT id, username FROM users WHERE username_key = ?1 AND disabled = FALSE \
         AND hook = FALSE",
        args![key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The members of room `room_id` named by the case-folded names `keys`, other than
/// `author_id`: their ids in the order first named, each once. One query however many names
/// (an `@here` names everyone online).
pub fn members_named<C: Sql>(
    conn: &C,
    room_id: i64,
    author_id: i64,
    keys: &[&str],
) -> Result<Vec<i64>, C::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
    let sql = conn.dialect(
        "SELECT u.username_key, u.id FROM users u \
         JOIN memberships m ON m.user_id = u.id AND m.room_id = ?1 \
         WHERE u.username_key IN (SELECT value FROM json_each(?2))",
        "SELECT u.username_key, u.id FROM users u \
         JOIN memberships m ON m.user_id = u.id AND m.room_id = ?1 \
         WHERE u.username_key IN (SELECT json_array_elements_text(?2::text::json))",
    );
    let found: std::collections::HashMap<String, i64> = conn
        .rows(sql, args![room_id, list], |r| Ok((r.get(0)?, r.get(1)?)))?
        .into_iter()
        .collect();
    let mut ids = Vec::new();
    for key in keys {
        if let Some(&id) = found.get(*key) {
            if id != author_id && !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// Record that `message_id` (in `room_id`) mentions each of `user_ids`, in one statement.
pub fn insert_mentions<C: Sql>(
    conn: &C,
    user_ids: &[i64],
    room_id: i64,
    message_id: i64,
) -> Result<(), C::Error> {
    match user_ids {
        [] => return Ok(()),
        [one] => return insert_mention(conn, *one, room_id, message_id),
        _ => {}
    }
    let list = serde_json::to_string(user_ids).unwrap_or_else(|_| "[]".into());
    let sql = conn.dialect(
        "INSERT INTO mentions (user_id, room_id, message_id) \
         SELECT value, ?2, ?3 FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING",
        "INSERT INTO mentions (user_id, room_id, message_id) \
         SELECT json_array_elements_text(?1::text::json)::bigint, ?2, ?3 ON CONFLICT DO NOTHING",
    );
    conn.exec(sql, args![list, room_id, message_id])?;
    Ok(())
}

/// Record that `message_id` mentions `user_id`.
pub fn insert_mention<C: Sql>(
    conn: &C,
    user_id: i64,
    room_id: i64,
    message_id: i64,
) -> Result<(), C::Error> {
    conn.exec(
        "INSERT INTO mentions (user_id, room_id, message_id) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO NOTHING",
        args![user_id, room_id, message_id],
    )?;
    Ok(())
}

/// The users message `message_id` mentions.
pub fn mentioned_by<C: Sql>(conn: &C, message_id: i64) -> Result<Vec<i64>, C::Error> {
    conn.rows(
        "SELECT user_id FROM mentions WHERE message_id = ?1",
        args![message_id],
        |r| r.get(0),
    )
}

/// Forget that `message_id` mentions `user_id`.
pub fn delete_mention<C: Sql>(conn: &C, user_id: i64, message_id: i64) -> Result<(), C::Error> {
    conn.exec(
        "DELETE FROM mentions WHERE user_id = ?1 AND message_id = ?2",
        args![user_id, message_id],
    )?;
    Ok(())
}

/// Every room, by id.
pub fn all_rooms<C: Sql>(conn: &C) -> Result<Vec<Room>, C::Error> {
    let sql = format!("SELECT {} ORDER BY r.id", room_columns(conn));
    conn.rows(&sql, args![0i64], |r| room_row(r))
}
