//! Messages: inserting, paging (before, after, around) and replay since a position.

use rusqlite::{params, Connection, OptionalExtension};

use super::*;

/// Insert one message; returns its id.
pub fn insert_message(
    conn: &Connection,
    (room_id, user_id): (i64, i64),
    body: &str,
    (nonce, reply_to): (Option<&str>, Option<i64>),
    now_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    // Membership is checked by the insert itself, inside the writer's transaction: a send
    // that raced its author's leave (or removal) is not stored.
    let n = conn
        .prepare_cached(
            "INSERT INTO messages (room_id, user_id, body, nonce, created_at, reply_to) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS \
             (SELECT 1 FROM memberships WHERE room_id = ?1 AND user_id = ?2)",
        )?
        .execute(params![room_id, user_id, body, nonce, now_ms, reply_to])?;
    Ok((n > 0).then(|| conn.last_insert_rowid()))
}

/// The message `id` as a reply to it shows it, when it is in room `room_id` and not deleted.
pub fn reply_target(conn: &Connection, id: i64, room_id: i64) -> rusqlite::Result<Option<ReplyTo>> {
    conn.prepare_cached(
        "SELECT u.username, substr(m.body, 1, 200) FROM messages m JOIN users u ON u.id = m.user_id \
         WHERE m.id = ?1 AND m.room_id = ?2 AND m.deleted = 0",
    )?
    .query_row([id, room_id], |r| {
        Ok(ReplyTo {
            id,
            user: r.get(0)?,
            excerpt: r.get(1)?,
        })
    })
    .optional()
}

/// Ids of the messages by `user_id` that are not deleted, oldest first.
pub fn live_message_ids_by(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<i64>> {
    all_rows(
        conn,
        "SELECT id FROM messages WHERE user_id = ?1 AND deleted = 0 ORDER BY id",
        [user_id],
        |r| r.get(0),
    )
}

/// Whether a room is a public room (not a private room or DM).
pub fn room_is_public(conn: &Connection, room_id: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT kind = 'room' AND is_public = 1 FROM rooms WHERE id = ?1")?
        .query_row([room_id], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// The message a user already stored with this nonce, if any.
pub fn message_by_nonce(
    conn: &Connection,
    user_id: i64,
    nonce: &str,
) -> rusqlite::Result<Option<StoredMessage>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} WHERE m.user_id = ?1 AND m.nonce = ?2"
    ))?
    .query_row(params![user_id, nonce], message_row)
    .optional()?
    .map(|msg| {
        let mut one = [msg];
        fill_extras(conn, &mut one)?;
        let [msg] = one;
        Ok(msg)
    })
    .transpose()
}

/// The newest `limit` messages of a room with id < `before` (all when `None`), oldest first.
pub fn messages_before(
    conn: &Connection,
    room_id: i64,
    before: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut out = all_rows(
        conn,
        &format!(
            "SELECT {MESSAGE_COLUMNS} WHERE m.room_id = ?1 AND m.id < ?2 \
             ORDER BY m.id DESC LIMIT ?3"
        ),
        params![room_id, before.unwrap_or(i64::MAX), limit],
        message_row,
    )?;
    out.reverse();
    Ok(out)
}

/// The oldest `limit` messages of a room with id > `after`, oldest first.
pub fn messages_after(
    conn: &Connection,
    room_id: i64,
    after: i64,
    limit: u32,
) -> rusqlite::Result<Vec<StoredMessage>> {
    all_rows(
        conn,
        &format!(
            "SELECT {MESSAGE_COLUMNS} WHERE m.room_id = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3"
        ),
        params![room_id, after, limit],
        message_row,
    )
}

/// Up to `limit` messages of a room around `id`, oldest first: `id` itself when it is in the
/// room, up to `(limit - 1) / 2` before it and the rest after it.
pub fn messages_around(
    conn: &Connection,
    room_id: i64,
    id: i64,
    limit: u32,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let before_n = limit.saturating_sub(1) / 2;
    let mut out = messages_before(conn, room_id, Some(id), before_n)?;
    let after_n = limit - out.len() as u32;
    out.extend(messages_after(conn, room_id, id - 1, after_n)?);
    Ok(out)
}

/// Messages with id > `since` in any room the user belongs to, oldest first, at most `limit`.
pub fn messages_since_for_user(
    conn: &Connection,
    user_id: i64,
    since: i64,
    limit: u32,
) -> rusqlite::Result<Vec<StoredMessage>> {
    all_rows(
        conn,
        &format!(
            "SELECT {MESSAGE_COLUMNS} WHERE m.id > ?2 AND m.room_id IN \
             (SELECT room_id FROM memberships WHERE user_id = ?1) ORDER BY m.id LIMIT ?3"
        ),
        params![user_id, since, limit],
        message_row,
    )
}

/// The highest committed position: message ids and change seqs (0 when there is none).
pub fn head(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM messages), \
         (SELECT COALESCE(MAX(seq), 0) FROM message_changes))",
    )?
    .query_row([], |r| r.get(0))
}

/// Visit every message in id order without loading them all; stops at the first error `f`
/// returns, and returns it.
pub fn for_each_message<E>(
    conn: &Connection,
    mut f: impl FnMut(StoredMessage) -> Result<(), E>,
) -> rusqlite::Result<Result<(), E>> {
    let mut stmt = conn.prepare(&format!("SELECT {MESSAGE_COLUMNS} ORDER BY m.id"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mut one = [message_row(row)?];
        fill_attachments(conn, &mut one)?;
        let [msg] = one;
        if let Err(e) = f(msg) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}
