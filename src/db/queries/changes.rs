//! Message lifecycle: edits, deletions and reaction changes, their positions, and their replay.

use super::*;
use crate::model::{ChangeKind, MessageChange};

/// Take the next position from the counter message ids come from. Only the writer calls
/// this, inside its transaction: a rolled-back batch rolls the counter back with it, and the
/// next message id is always above this position. On SQLite the counter is the AUTOINCREMENT
/// sequence of `messages`; on PostgreSQL it is the log head, whose row stays locked until
/// the transaction ends, so positions commit in order on every node.
pub fn next_position<C: Sql>(conn: &C) -> Result<i64, C::Error> {
    if conn.is_postgres() {
        let pos = conn.row(
            "UPDATE hearth_log_head SET pos = pos + 1 WHERE id = 1 RETURNING pos",
            args![],
            |r| r.get(0),
        )?;
        return pos.ok_or_else(|| C::missing("the log head"));
    }
    conn.exec(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'messages', 0 \
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages')",
        args![],
    )?;
    // Never below an id already used, whatever the sequence says.
    conn.exec(
        "UPDATE sqlite_sequence SET seq = \
         MAX(seq, (SELECT COALESCE(MAX(id), 0) FROM messages)) + 1 WHERE name = 'messages'",
        args![],
    )?;
    Ok(conn
        .row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
            args![],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// One message by id, in its current state, and its author's row id.
pub fn message_by_id<C: Sql>(conn: &C, id: i64) -> Result<Option<(StoredMessage, i64)>, C::Error> {
    let found = conn.row(
        &format!("SELECT {MESSAGE_COLUMNS_WITH_AUTHOR} WHERE m.id = ?1"),
        args![id],
        |r| Ok((message_row(r)?, r.get(12)?)),
    )?;
    found
        .map(|(msg, author)| {
            let mut one = [msg];
            fill_extras(conn, &mut one)?;
            let [msg] = one;
            Ok((msg, author))
        })
        .transpose()
}

/// Replace a message's body (on SQLite the search index follows through its trigger; on
/// PostgreSQL the search vector is written with it).
pub fn set_message_body<C: Sql>(
    conn: &C,
    id: i64,
    body: &str,
    now_ms: i64,
) -> Result<(), C::Error> {
    if conn.is_postgres() {
        let search = crate::db::pg::words::vector(body);
        conn.exec(
            "UPDATE messages SET body = ?2, edited_at = ?3, search = CAST(CAST(?4 AS TEXT) AS tsvector) \
             WHERE id = ?1",
            args![id, body, now_ms, search],
        )?;
    } else {
        conn.exec(
            "UPDATE messages SET body = ?2, edited_at = ?3 WHERE id = ?1",
            args![id, body, now_ms],
        )?;
    }
    Ok(())
}

/// Turn a message into a tombstone: its text leaves the row, the search index (trigger), its
/// mentions, its reactions, the bodies of its earlier edits, and what was fetched for its
/// link (unless another message's preview still shows that page: the cache is for them).
pub fn tombstone_message<C: Sql>(conn: &C, id: i64) -> Result<(), C::Error> {
    // Locked first on PostgreSQL: a link's page being cached for this message meanwhile
    // (`live_body_locked`) is then either seen here and dropped, or sees the deletion.
    let body = conn.row(
        conn.dialect(
            "SELECT body FROM messages WHERE id = ?1",
            "SELECT body FROM messages WHERE id = ?1 FOR NO KEY UPDATE",
        ),
        args![id],
        |r| r.get::<String>(0),
    )?;
    // The link its text has now, and the one its preview was made from (before an edit).
    let shown = conn.row(
        "SELECT url FROM message_previews WHERE message_id = ?1 AND url <> ''",
        args![id],
        |r| r.get::<String>(0),
    )?;
    let linked = body.as_deref().and_then(crate::outbound::page::first_link);
    for url in linked.map(|u| u.to_string()).into_iter().chain(shown) {
        conn.exec(
            "DELETE FROM link_previews WHERE url = ?1 AND NOT EXISTS \
             (SELECT 1 FROM message_previews p \
              WHERE p.url = ?1 AND p.message_id <> ?2 AND p.removed = FALSE)",
            args![url.as_str(), id],
        )?;
    }
    erase_reactions(conn, id)?;
    erase_attachments(conn, id)?;
    erase_preview(conn, id)?;
    conn.exec(
        conn.dialect(
            "UPDATE messages SET body = '', deleted = TRUE WHERE id = ?1",
            "UPDATE messages SET body = '', deleted = TRUE, search = CAST('' AS tsvector) \
             WHERE id = ?1",
        ),
        args![id],
    )?;
    conn.exec("DELETE FROM mentions WHERE message_id = ?1", args![id])?;
    conn.exec(
        "UPDATE message_changes SET body = '' WHERE message_id = ?1",
        args![id],
    )?;
    Ok(())
}

/// The text of message `id` when it exists and is not deleted, its row locked to the end
/// of the transaction on PostgreSQL (see [`tombstone_message`]).
pub fn live_body_locked<C: Sql>(conn: &C, id: i64) -> Result<Option<String>, C::Error> {
    let row = conn.row(
        conn.dialect(
            "SELECT deleted, body FROM messages WHERE id = ?1",
            "SELECT deleted, body FROM messages WHERE id = ?1 FOR NO KEY UPDATE",
        ),
        args![id],
        |r| Ok((r.get::<bool>(0)?, r.get::<String>(1)?)),
    )?;
    Ok(row.filter(|(deleted, _)| !deleted).map(|(_, body)| body))
}

/// Delete `msg` (a tombstone) at a new position, by `by` (`actor_id` `None`: the operator).
pub fn delete_message<C: Sql>(
    conn: &C,
    msg: &StoredMessage,
    (actor_id, by): (Option<i64>, &str),
    now_ms: i64,
) -> Result<MessageChange, C::Error> {
    let seq = next_position(conn)?;
    tombstone_message(conn, msg.id)?;
    let change = MessageChange {
        seq,
        id: msg.id,
        room_id: msg.room_id,
        room: msg.room.clone(),
        kind: ChangeKind::Deleted { by: by.to_string() },
    };
    insert_change(conn, &change, actor_id, now_ms)?;
    Ok(change)
}

/// Record a change at its position `c.seq`, made by `actor_id` at `now_ms`.
pub fn insert_change<C: Sql>(
    conn: &C,
    c: &MessageChange,
    actor_id: Option<i64>,
    now_ms: i64,
) -> Result<(), C::Error> {
    let (kind, body, actor, ts) = match &c.kind {
        ChangeKind::Edited { body, edited_ms } => ("edit", body.as_str(), "", *edited_ms),
        ChangeKind::Deleted { by } => ("delete", "", by.as_str(), now_ms),
        ChangeKind::Reaction { user, emoji, on } => {
            let kind = if *on { "react" } else { "unreact" };
            (kind, emoji.as_str(), user.as_str(), now_ms)
        }
        ChangeKind::Preview { preview } => {
            let json = preview.as_deref().map(preview_json).unwrap_or_default();
            return insert_change_row(conn, c, ("preview", &json, actor_id, ""), now_ms);
        }
    };
    insert_change_row(conn, c, (kind, body, actor_id, actor), ts)
}

/// The columns of one `message_changes` row besides its position.
type ChangeRow<'a> = (&'a str, &'a str, Option<i64>, &'a str);

fn insert_change_row<C: Sql>(
    conn: &C,
    c: &MessageChange,
    (kind, body, actor_id, actor): ChangeRow<'_>,
    ts: i64,
) -> Result<(), C::Error> {
    conn.exec(
        "INSERT INTO message_changes (seq, message_id, room_id, kind, body, actor_id, actor, ts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![c.seq, c.id, c.room_id, kind, body, actor_id, actor, ts],
    )?;
    Ok(())
}

/// The latest change of `kind` (`edit`, `delete`) to a message, as it replays.
pub fn last_change<C: Sql>(
    conn: &C,
    message_id: i64,
    kind: &str,
) -> Result<Option<MessageChange>, C::Error> {
    conn.row(
        &format!(
            "SELECT {CHANGE_COLUMNS} WHERE c.message_id = ?1 AND c.kind = ?2 \
             ORDER BY c.seq DESC LIMIT 1"
        ),
        args![message_id, kind],
        |r| change_row(r),
    )
}

/// The latest change of `actor_id`'s reaction `emoji` to a message, if any.
pub fn last_reaction_change<C: Sql>(
    conn: &C,
    message_id: i64,
    actor_id: i64,
    emoji: &str,
) -> Result<Option<MessageChange>, C::Error> {
    conn.row(
        &format!(
            "SELECT {CHANGE_COLUMNS} WHERE c.message_id = ?1 AND c.kind IN ('react', 'unreact') \
             AND c.actor_id = ?2 AND c.body = ?3 ORDER BY c.seq DESC LIMIT 1"
        ),
        args![message_id, actor_id, emoji],
        |r| change_row(r),
    )
}

/// Changes with seq > `since` in any room the user belongs to, oldest first, at most `limit`.
pub fn changes_since_for_user<C: Sql>(
    conn: &C,
    user_id: i64,
    since: i64,
    limit: u32,
) -> Result<Vec<MessageChange>, C::Error> {
    conn.rows(
        &format!(
            "SELECT {CHANGE_COLUMNS} WHERE c.seq > ?2 AND c.room_id IN \
             (SELECT room_id FROM memberships WHERE user_id = ?1) ORDER BY c.seq LIMIT ?3"
        ),
        args![user_id, since, i64::from(limit)],
        |r| change_row(r),
    )
}

/// Messages and changes with a position above `since` in the user's rooms, in position order,
/// at most `limit` of them together.
pub fn replay_for_user<C: Sql>(
    conn: &C,
    user_id: i64,
    since: i64,
    limit: u32,
) -> Result<Vec<Replayed>, C::Error> {
    let mut messages = messages_since_for_user(conn, user_id, since, limit)?;
    fill_extras(conn, &mut messages)?;
    let changes = changes_since_for_user(conn, user_id, since, limit)?;
    let mut all: Vec<Replayed> = messages
        .into_iter()
        .map(Replayed::Message)
        .chain(changes.into_iter().map(Replayed::Change))
        .collect();
    all.sort_unstable_by_key(Replayed::position);
    all.truncate(limit as usize);
    Ok(all)
}

/// Whether `user_id` is an administrator.
pub fn user_is_admin<C: Sql>(conn: &C, user_id: i64) -> Result<bool, C::Error> {
    Ok(conn
        .row(
            "SELECT is_admin FROM users WHERE id = ?1",
            args![user_id],
            |r| r.get(0),
        )?
        .unwrap_or(false))
}

const CHANGE_COLUMNS: &str =
    "c.seq, c.message_id, c.room_id, r.name, c.kind, c.body, c.actor, c.ts \
     FROM message_changes c JOIN rooms r ON r.id = c.room_id";

fn change_row<R: SqlRow + ?Sized>(r: &R) -> Result<MessageChange, R::Error> {
    let kind: String = r.get(4)?;
    let kind = match kind.as_str() {
        "edit" => ChangeKind::Edited {
            body: r.get(5)?,
            edited_ms: r.get(7)?,
        },
        "react" | "unreact" => ChangeKind::Reaction {
            user: r.get(6)?,
            emoji: r.get(5)?,
            on: kind == "react",
        },
        "preview" => ChangeKind::Preview {
            preview: preview_from_json(&r.get::<String>(5)?).map(Box::new),
        },
        _ => ChangeKind::Deleted { by: r.get(6)? },
    };
    Ok(MessageChange {
        seq: r.get(0)?,
        id: r.get(1)?,
        room_id: r.get(2)?,
        room: r.get(3)?,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{schema, NewAdmin};
    use rusqlite::Connection;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap().unwrap();
        insert_user(&conn, "ada", "ada", "x", NewAdmin::No, 0)
            .unwrap()
            .unwrap();
        add_member(&conn, 1, 1, 0).unwrap();
        conn
    }

    fn post(conn: &Connection, body: &str) -> i64 {
        insert_message(conn, (1, 1), body, (None, None), 0)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn positions_share_the_message_counter_and_roll_back_with_their_transaction() {
        let conn = db();
        assert_eq!(next_position(&conn).unwrap(), 1, "works before any message");
        assert_eq!(
            post(&conn, "a"),
            2,
            "a message id comes after a change's seq"
        );
        conn.execute_batch("BEGIN").unwrap();
        assert_eq!(next_position(&conn).unwrap(), 3);
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(
            next_position(&conn).unwrap(),
            3,
            "the rolled-back seq is reused"
        );
        assert_eq!(post(&conn, "b"), 4);
        assert_eq!(head(&conn).unwrap(), 4);
    }
}
