//! Messages: inserting, paging (before, after, around) and replay since a position.

use rusqlite::Connection;

use super::*;

/// Insert one message; returns its id. On PostgreSQL this also queues it for its room's
/// outgoing webhooks (on SQLite: [`queue_webhook_deliveries`]).
pub fn insert_message<C: Sql>(
    conn: &C,
    (room_id, user_id): (i64, i64),
    body: &str,
    (nonce, reply_to): (Option<&str>, Option<i64>),
    now_ms: i64,
) -> Result<Option<i64>, C::Error> {
    // Membership is checked by the insert itself, inside the writer's transaction: a send
    // that raced its author's leave (or removal) is not stored. On PostgreSQL the id is the
    // next position of the log, taken only when the message is stored (no gap), and the
    // same statement queues the message for its room's webhooks: any node may have added
    // one, so they are always looked up (one index probe), and without a statement of its
    // own the message needs no savepoint for them.
    if conn.is_postgres() {
        let search = crate::db::pg::words::vector(body);
        return conn.row(
            "WITH h AS (UPDATE hearth_log_head SET pos = pos + 1 WHERE id = 1 AND EXISTS \
             (SELECT 1 FROM memberships WHERE room_id = ?1 AND user_id = ?2) RETURNING pos), \
             m AS (INSERT INTO messages (id, room_id, user_id, body, nonce, created_at, \
             reply_to, search) SELECT h.pos, ?1, ?2, ?3, ?4, ?5, ?6, CAST(CAST(?7 AS TEXT) AS tsvector) \
             FROM h RETURNING id), \
             q AS (INSERT INTO webhook_queue (webhook_id, message_id, queued_at, next_at) \
             SELECT w.id, m.id, ?5, ?5 FROM webhooks w, m WHERE w.room_id = ?1) \
             SELECT id FROM m",
            args![room_id, user_id, body, nonce, now_ms, reply_to, search],
            |r| r.get(0),
        );
    }
    conn.row(
        "INSERT INTO messages (room_id, user_id, body, nonce, created_at, reply_to) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS \
         (SELECT 1 FROM memberships WHERE room_id = ?1 AND user_id = ?2) RETURNING id",
        args![room_id, user_id, body, nonce, now_ms, reply_to],
        |r| r.get(0),
    )
}

/// The message `id` as a reply to it shows it, when it is in room `room_id` and not deleted.
pub fn reply_target<C: Sql>(conn: &C, id: i64, room_id: i64) -> Result<Option<ReplyTo>, C::Error> {
    conn.row(
        "SELECT u.username, substr(m.body, 1, 200) FROM messages m JOIN users u ON u.id = m.user_id \
         WHERE m.id = ?1 AND m.room_id = ?2 AND m.deleted = FALSE",
        args![id, room_id],
        |r| {
            Ok(ReplyTo {
                id,
                user: r.get(0)?,
                excerpt: r.get(1)?,
            })
        },
    )
}

/// Ids of the messages by `user_id` that are not deleted, oldest first.
pub fn live_message_ids_by<C: Sql>(conn: &C, user_id: i64) -> Result<Vec<i64>, C::Error> {
    conn.rows(
        "SELECT id FROM messages WHERE user_id = ?1 AND deleted = FALSE ORDER BY id",
        args![user_id],
        |r| r.get(0),
    )
}

/// Whether a room is a public room (not a private room or DM).
pub fn room_is_public<C: Sql>(conn: &C, room_id: i64) -> Result<bool, C::Error> {
    Ok(conn
        .row(
            "SELECT kind = 'room' AND is_public = TRUE FROM rooms WHERE id = ?1",
            args![room_id],
            |r| r.get(0),
        )?
        .unwrap_or(false))
}

/// The message a user already stored with this nonce, if any.
pub fn message_by_nonce<C: Sql>(
    conn: &C,
    user_id: i64,
    nonce: &str,
) -> Result<Option<StoredMessage>, C::Error> {
    let found = conn.row(
        &format!("SELECT {MESSAGE_COLUMNS} WHERE m.user_id = ?1 AND m.nonce = ?2"),
        args![user_id, nonce],
        |r| message_row(r),
    )?;
    found
        .map(|msg| {
            let mut one = [msg];
            fill_extras(conn, &mut one)?;
            let [msg] = one;
            Ok(msg)
        })
        .transpose()
}

/// The newest `limit` messages of a room with id < `before` (all when `None`), oldest first.
pub fn messages_before<C: Sql>(
    conn: &C,
    room_id: i64,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<StoredMessage>, C::Error> {
    rows_before(conn, MESSAGE_COLUMNS, room_id, before, limit, |r| {
        message_row(r)
    })
}

/// One page of the history of `room`, oldest first, with the reactions, files and previews
/// of its messages: what a history page is written from, each row's text copied once into
/// the page's buffer.
pub fn room_page<C: Sql>(
    conn: &C,
    room: &RoomKey,
    page: Page,
    limit: u32,
) -> Result<PageRows, C::Error> {
    let mut out = PageRows::new(room.name.clone());
    // Each page is one or two range reads, all through the one reader of rows.
    let rows = {
        let mut read = page_reader::<C>(&mut out);
        match page {
            Page::Before(before) => {
                rows_before(conn, PAGE_COLUMNS, room.id, before, limit, &mut read)?
            }
            Page::After(after) => rows_after(conn, PAGE_COLUMNS, room.id, after, limit, &mut read)?,
            Page::Around(id) => {
                let before_n = limit.saturating_sub(1) / 2;
                let mut rows =
                    rows_before(conn, PAGE_COLUMNS, room.id, Some(id), before_n, &mut read)?;
                let after_n = limit - rows.len() as u32;
                rows.extend(rows_after(
                    conn,
                    PAGE_COLUMNS,
                    room.id,
                    id - 1,
                    after_n,
                    &mut read,
                )?);
                rows
            }
        }
    };
    out.rows = rows;
    fill_page_extras(conn, room.id, &mut out)?;
    Ok(out)
}

/// Reads rows of [`PAGE_COLUMNS`] into `page`.
fn page_reader<C: Sql>(
    page: &mut PageRows,
) -> impl FnMut(&C::Row<'_>) -> Result<PageRow, C::Error> + '_ {
    move |r| page_row(r, page)
}

/// The newest `limit` rows of `columns` (a select list and its `FROM`, the message as `m`)
/// for messages of a room with id < `before` (all when `None`), oldest first.
fn rows_before<C: Sql, T>(
    conn: &C,
    columns: &str,
    room_id: i64,
    before: Option<i64>,
    limit: u32,
    f: impl FnMut(&C::Row<'_>) -> Result<T, C::Error>,
) -> Result<Vec<T>, C::Error> {
    let sql = format!("SELECT {columns} WHERE m.room_id = ?1 AND m.id < ?2 ORDER BY m.id DESC");
    let before = before.unwrap_or(i64::MAX);
    let mut out = if conn.is_postgres() {
        conn.rows(&written_limit(&sql, limit), args![room_id, before], f)?
    } else {
        let sql = format!("{sql} LIMIT ?3");
        conn.rows(&sql, args![room_id, before, i64::from(limit)], f)?
    };
    out.reverse();
    Ok(out)
}

/// `sql` with its `LIMIT` written out, for PostgreSQL. PostgreSQL plans a prepared statement
/// again at each execution for as long as its generic plan (made without the parameters'
/// values) looks costlier than the plans made with them. A page's generic plan with the
/// limit a parameter reads the whole room in parallel and sorts it, so every page was planned
/// afresh: 0.2 ms, twice its execution. With the limit in the text, the generic plan is the
/// backward scan of the room's index, and PostgreSQL keeps it after the fifth use. Each
/// connection keeps one statement per limit and direction used, so `limit` must stay
/// bounded: pages hold at most 200 messages, which makes about 400 statements.
fn written_limit(sql: &str, limit: u32) -> String {
    format!("{sql} LIMIT {limit}")
}

/// The oldest `limit` rows of `columns` for messages of a room with id > `after`.
fn rows_after<C: Sql, T>(
    conn: &C,
    columns: &str,
    room_id: i64,
    after: i64,
    limit: u32,
    f: impl FnMut(&C::Row<'_>) -> Result<T, C::Error>,
) -> Result<Vec<T>, C::Error> {
    let sql = format!("SELECT {columns} WHERE m.room_id = ?1 AND m.id > ?2 ORDER BY m.id");
    if conn.is_postgres() {
        conn.rows(&written_limit(&sql, limit), args![room_id, after], f)
    } else {
        let sql = format!("{sql} LIMIT ?3");
        conn.rows(&sql, args![room_id, after, i64::from(limit)], f)
    }
}

/// Messages with id > `since` in any room the user belongs to, oldest first, at most `limit`.
pub fn messages_since_for_user<C: Sql>(
    conn: &C,
    user_id: i64,
    since: i64,
    limit: u32,
) -> Result<Vec<StoredMessage>, C::Error> {
    conn.rows(
        &format!(
            "SELECT {MESSAGE_COLUMNS} WHERE m.id > ?2 AND m.room_id IN \
             (SELECT room_id FROM memberships WHERE user_id = ?1) ORDER BY m.id LIMIT ?3"
        ),
        args![user_id, since, i64::from(limit)],
        |r| message_row(r),
    )
}

/// The highest committed position: message ids and change seqs (0 when there is none). On
/// PostgreSQL it is the log's head, which moves in the same transaction as each append.
pub fn head<C: Sql>(conn: &C) -> Result<i64, C::Error> {
    let sql = conn.dialect(
        "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM messages), \
         (SELECT COALESCE(MAX(seq), 0) FROM message_changes))",
        "SELECT pos FROM hearth_log_head WHERE id = 1",
    );
    conn.row(sql, args![], |r| r.get(0))?
        .ok_or_else(|| C::missing("the log head"))
}

/// Up to `limit` messages of every room with id > `after`, in id order, with their
/// attachments: one page of an export.
pub fn messages_page<C: Sql>(
    conn: &C,
    after: i64,
    limit: u32,
) -> Result<Vec<StoredMessage>, C::Error> {
    let mut out = conn.rows(
        &format!("SELECT {MESSAGE_COLUMNS} WHERE m.id > ?1 ORDER BY m.id LIMIT ?2"),
        args![after, i64::from(limit)],
        |r| message_row(r),
    )?;
    fill_attachments(conn, &mut out)?;
    Ok(out)
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
