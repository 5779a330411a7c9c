//! Webhooks: incoming hooks (`hooks`, each posting as an account of its own), outgoing webhooks
//! (`webhooks`) and their delivery queue (`webhook_queue`, filled by a trigger on `messages`).

use rusqlite::{params, Connection, OptionalExtension};

use super::*;

/// An incoming hook as its room's members see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRow {
    /// Its public id (in its URL).
    pub id: String,
    /// The name it posts under (its account's username).
    pub name: String,
    /// The room it posts to.
    pub room: String,
    /// The room's row id.
    pub room_id: i64,
    /// Who made it (`None`: an account since deleted).
    pub created_by: Option<String>,
    /// When, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it last posted.
    pub last_used_at: Option<i64>,
}

/// An outgoing webhook with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// Its id.
    pub id: i64,
    /// The room whose messages it receives.
    pub room: String,
    /// The room's row id.
    pub room_id: i64,
    /// Where they are POSTed.
    pub url: String,
    /// Who made it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: i64,
    /// Messages delivered so far.
    pub delivered: i64,
    /// Deliveries waiting.
    pub pending: i64,
    /// When the last attempt was made.
    pub last_attempt_at: Option<i64>,
    /// The status of the last answer (`None`: none yet, or no answer at all).
    pub last_status: Option<i64>,
    /// What went wrong last (empty after a success).
    pub last_error: String,
    /// Since when every attempt failed (`None`: the last one succeeded).
    pub failing_since: Option<i64>,
}

/// What a hook needs to post: its row, its account's id, its token's hash and its maker's id.
pub type HookAuth = (HookRow, i64, Vec<u8>, Option<i64>);

/// One delivery that is due: the head of its webhook's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The webhook.
    pub webhook_id: i64,
    /// Where to.
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// The message.
    pub message_id: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// When it was queued.
    pub queued_at: i64,
}

/// Make an incoming hook for `room_id`: its account (`name`, key `key`, a member of that room
/// only) and its row. `None` when the name is taken.
pub fn insert_hook(
    conn: &Connection,
    (id, token_hash): (&str, &[u8]),
    (name, key): (&str, &str),
    room_id: i64,
    created_by: i64,
    now_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO users (username, username_key, password_hash, created_at, hook) \
             VALUES (?1, ?2, '!', ?3, 1) ON CONFLICT (username_key) DO NOTHING",
        )?
        .execute(params![name, key, now_ms])?;
    if inserted == 0 {
        return Ok(None);
    }
    let user_id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO memberships (room_id, user_id, joined_at, last_read) VALUES (?1, ?2, ?3, 0)",
    )?
    .execute(params![room_id, user_id, now_ms])?;
    conn.prepare_cached(
        "INSERT INTO hooks (id, token_hash, room_id, user_id, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id, token_hash, room_id, user_id, created_by, now_ms
    ])?;
    Ok(Some(user_id))
}

const HOOK_COLUMNS: &str = "h.id, u.username, r.name, h.room_id, cu.username, h.created_at, \
     h.last_used_at FROM hooks h JOIN users u ON u.id = h.user_id JOIN rooms r ON r.id = h.room_id \
     LEFT JOIN users cu ON cu.id = h.created_by";

fn hook_row(r: &Row<'_>) -> rusqlite::Result<HookRow> {
    Ok(HookRow {
        id: r.get(0)?,
        name: r.get(1)?,
        room: r.get(2)?,
        room_id: r.get(3)?,
        created_by: r.get(4)?,
        created_at: r.get(5)?,
        last_used_at: r.get(6)?,
    })
}

/// The incoming hooks of a room (`None`: of every room), oldest first.
pub fn hooks_of(conn: &Connection, room_id: Option<i64>) -> rusqlite::Result<Vec<HookRow>> {
    all_rows(
        conn,
        &format!(
            "SELECT {HOOK_COLUMNS} WHERE ?1 IS NULL OR h.room_id = ?1 ORDER BY h.created_at, h.id"
        ),
        [room_id],
        hook_row,
    )
}

/// Hook `id`: its row, its account's id and its token's hash.
pub fn hook_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<HookAuth>> {
    conn.prepare_cached(&format!("SELECT {HOOK_COLUMNS_FULL} WHERE h.id = ?1"))?
        .query_row([id], |r| {
            Ok((hook_row(r)?, r.get(7)?, r.get(8)?, r.get(9)?))
        })
        .optional()
}

const HOOK_COLUMNS_FULL: &str = "h.id, u.username, r.name, h.room_id, cu.username, h.created_at, \
     h.last_used_at, h.user_id, h.token_hash, h.created_by FROM hooks h \
     JOIN users u ON u.id = h.user_id JOIN rooms r ON r.id = h.room_id \
     LEFT JOIN users cu ON cu.id = h.created_by";

/// Note that hook `id` posted.
pub fn touch_hook(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE hooks SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, now_ms])?;
    Ok(())
}

/// Remove hook `id`; its account stays, disabled, as the author of what it posted (and its
/// name stays taken). Whether it existed.
pub fn delete_hook(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    let user: Option<i64> = conn
        .prepare_cached("SELECT user_id FROM hooks WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(user) = user else {
        return Ok(false);
    };
    conn.prepare_cached("DELETE FROM hooks WHERE id = ?1")?
        .execute([id])?;
    conn.prepare_cached("UPDATE users SET disabled = 1 WHERE id = ?1")?
        .execute([user])?;
    Ok(true)
}

/// How many incoming and outgoing hooks room `room_id` has.
pub fn hook_counts(conn: &Connection, room_id: i64) -> rusqlite::Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT (SELECT COUNT(*) FROM hooks WHERE room_id = ?1), \
         (SELECT COUNT(*) FROM webhooks WHERE room_id = ?1)",
    )?
    .query_row([room_id], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Add an outgoing webhook; its id.
pub fn insert_webhook(
    conn: &Connection,
    room_id: i64,
    url: &str,
    secret: &str,
    created_by: i64,
    now_ms: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO webhooks (room_id, url, secret, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![room_id, url, secret, created_by, now_ms])?;
    Ok(conn.last_insert_rowid())
}

const WEBHOOK_COLUMNS: &str = "w.id, r.name, w.room_id, w.url, cu.username, w.created_at, \
     w.delivered, (SELECT COUNT(*) FROM webhook_queue q WHERE q.webhook_id = w.id), \
     w.last_attempt_at, w.last_status, w.last_error, w.failing_since \
     FROM webhooks w JOIN rooms r ON r.id = w.room_id LEFT JOIN users cu ON cu.id = w.created_by";

fn webhook_row(r: &Row<'_>) -> rusqlite::Result<WebhookRow> {
    Ok(WebhookRow {
        id: r.get(0)?,
        room: r.get(1)?,
        room_id: r.get(2)?,
        url: r.get(3)?,
        created_by: r.get(4)?,
        created_at: r.get(5)?,
        delivered: r.get(6)?,
        pending: r.get(7)?,
        last_attempt_at: r.get(8)?,
        last_status: r.get(9)?,
        last_error: r.get(10)?,
        failing_since: r.get(11)?,
    })
}

/// The outgoing webhooks of a room (`None`: of every room), oldest first.
pub fn webhooks_of(conn: &Connection, room_id: Option<i64>) -> rusqlite::Result<Vec<WebhookRow>> {
    all_rows(
        conn,
        &format!("SELECT {WEBHOOK_COLUMNS} WHERE ?1 IS NULL OR w.room_id = ?1 ORDER BY w.id"),
        [room_id],
        webhook_row,
    )
}

/// Webhook `id` and the row id of whoever made it.
pub fn webhook_by_id(
    conn: &Connection,
    id: i64,
) -> rusqlite::Result<Option<(WebhookRow, Option<i64>)>> {
    conn.prepare_cached(&format!("SELECT {WEBHOOK_COLUMNS_BY} WHERE w.id = ?1"))?
        .query_row([id], |r| Ok((webhook_row(r)?, r.get(12)?)))
        .optional()
}

const WEBHOOK_COLUMNS_BY: &str = "w.id, r.name, w.room_id, w.url, cu.username, w.created_at, \
     w.delivered, (SELECT COUNT(*) FROM webhook_queue q WHERE q.webhook_id = w.id), \
     w.last_attempt_at, w.last_status, w.last_error, w.failing_since, w.created_by \
     FROM webhooks w JOIN rooms r ON r.id = w.room_id LEFT JOIN users cu ON cu.id = w.created_by";

/// Remove webhook `id` and what it still had queued; whether it existed.
pub fn delete_webhook(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("DELETE FROM webhook_queue WHERE webhook_id = ?1")?
        .execute([id])?;
    Ok(conn
        .prepare_cached("DELETE FROM webhooks WHERE id = ?1")?
        .execute([id])?
        > 0)
}

/// Queue message `message_id` for every outgoing webhook of room `room_id` (in the message's
/// own insert).
pub fn queue_webhook_deliveries(
    conn: &Connection,
    room_id: i64,
    message_id: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO webhook_queue (webhook_id, message_id, queued_at, next_at) \
         SELECT id, ?2, ?3, ?3 FROM webhooks WHERE room_id = ?1",
    )?
    .execute(params![room_id, message_id, now_ms])?;
    Ok(())
}

/// How many outgoing webhooks there are.
pub fn webhook_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM webhooks")?
        .query_row([], |r| r.get(0))
}

/// The head of each webhook's queue (its oldest message), when due at `now_ms`; at most
/// `limit`. Only heads, so each webhook receives its messages in id order.
pub fn due_deliveries(
    conn: &Connection,
    now_ms: i64,
    limit: u32,
) -> rusqlite::Result<Vec<DueDelivery>> {
    all_rows(
        conn,
        "SELECT q.webhook_id, w.url, w.secret, q.message_id, q.attempts, q.queued_at \
         FROM webhook_queue q JOIN webhooks w ON w.id = q.webhook_id \
         WHERE q.message_id = (SELECT MIN(message_id) FROM webhook_queue h \
                               WHERE h.webhook_id = q.webhook_id) \
         AND q.next_at <= ?1 ORDER BY q.next_at LIMIT ?2",
        params![now_ms, limit],
        |r| {
            Ok(DueDelivery {
                webhook_id: r.get(0)?,
                url: r.get(1)?,
                secret: r.get(2)?,
                message_id: r.get(3)?,
                attempts: r.get(4)?,
                queued_at: r.get(5)?,
            })
        },
    )
}

/// When the next delivery falls due (`None`: nothing queued).
pub fn next_delivery_at(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT MIN(next_at) FROM webhook_queue")?
        .query_row([], |r| r.get(0))
}

/// A delivery got a 2xx (`status`): it leaves the queue.
pub fn delivery_done(
    conn: &Connection,
    webhook_id: i64,
    message_id: i64,
    status: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM webhook_queue WHERE webhook_id = ?1 AND message_id = ?2")?
        .execute(params![webhook_id, message_id])?;
    conn.prepare_cached(
        "UPDATE webhooks SET delivered = delivered + ?3, last_attempt_at = ?4, \
         last_status = ?2, last_error = '', failing_since = NULL WHERE id = ?1",
    )?
    .execute(params![webhook_id, status, n as i64, now_ms])?;
    Ok(())
}

/// A delivery failed (`status`: the answer's, if any): it is tried again at `next_at`, or,
/// `give_up`, dropped.
pub fn delivery_failed(
    conn: &Connection,
    (webhook_id, message_id): (i64, i64),
    (status, error): (Option<i64>, &str),
    next_at: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<()> {
    match next_at {
        Some(at) => conn
            .prepare_cached(
                "UPDATE webhook_queue SET attempts = attempts + 1, next_at = ?3 \
                 WHERE webhook_id = ?1 AND message_id = ?2",
            )?
            .execute(params![webhook_id, message_id, at])?,
        None => conn
            .prepare_cached("DELETE FROM webhook_queue WHERE webhook_id = ?1 AND message_id = ?2")?
            .execute(params![webhook_id, message_id])?,
    };
    conn.prepare_cached(
        "UPDATE webhooks SET last_attempt_at = ?4, last_status = ?2, last_error = ?3, \
         failing_since = COALESCE(failing_since, ?4) WHERE id = ?1",
    )?
    .execute(params![webhook_id, status, error, now_ms])?;
    Ok(())
}

/// Whether the account `user_id` belongs to an incoming hook.
pub fn is_hook_account(conn: &Connection, user_id: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT hook FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}
