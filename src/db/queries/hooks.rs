//! Webhooks: incoming hooks (`hooks`, each posting as an account of its own), outgoing webhooks
//! (`webhooks`) and their delivery queue (`webhook_queue`, filled by a trigger on `messages`).

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

/// What a hook needs to post.
#[derive(Debug, Clone)]
pub struct HookAuth {
    /// Its row.
    pub hook: HookRow,
    /// The id of the account it posts as.
    pub account: i64,
    /// Its token's SHA-256.
    pub token_hash: Vec<u8>,
    /// Who made it (`None` once their account is gone).
    pub maker: Option<i64>,
    /// Whether its maker may still use it (see [`MAKER_IN_ROOM`]).
    pub active: bool,
}

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
    /// When it fell due, as read (the claim checks that no one moved it since).
    pub next_at: i64,
}

/// Make an incoming hook for `room_id`: its account (`name`, key `key`, a member of that room
/// only) and its row. `None` when the name is taken.
pub fn insert_hook<C: Sql>(
    conn: &C,
    (id, token_hash): (&str, &[u8]),
    (name, key): (&str, &str),
    room_id: i64,
    created_by: i64,
    now_ms: i64,
) -> Result<Option<i64>, C::Error> {
    let inserted = conn.row(
        "INSERT INTO users (username, username_key, password_hash, created_at, hook) \
         VALUES (?1, ?2, '!', ?3, TRUE) ON CONFLICT (username_key) DO NOTHING RETURNING id",
        args![name, key, now_ms],
        |r| r.get::<i64>(0),
    )?;
    let Some(user_id) = inserted else {
        return Ok(None);
    };
    conn.exec(
        "INSERT INTO memberships (room_id, user_id, joined_at, last_read) VALUES (?1, ?2, ?3, 0)",
        args![room_id, user_id, now_ms],
    )?;
    conn.exec(
        "INSERT INTO hooks (id, token_hash, room_id, user_id, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![id, token_hash, room_id, user_id, created_by, now_ms],
    )?;
    Ok(Some(user_id))
}

const HOOK_COLUMNS: &str = "h.id, u.username, r.name, h.room_id, cu.username, h.created_at, \
     h.last_used_at FROM hooks h JOIN users u ON u.id = h.user_id JOIN rooms r ON r.id = h.room_id \
     LEFT JOIN users cu ON cu.id = h.created_by";

fn hook_row<R: SqlRow + ?Sized>(r: &R) -> Result<HookRow, R::Error> {
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
pub fn hooks_of<C: Sql>(conn: &C, room_id: Option<i64>) -> Result<Vec<HookRow>, C::Error> {
    match room_id {
        Some(room_id) => conn.rows(
            &format!("SELECT {HOOK_COLUMNS} WHERE h.room_id = ?1 ORDER BY h.created_at, h.id"),
            args![room_id],
            |r| hook_row(r),
        ),
        None => conn.rows(
            &format!("SELECT {HOOK_COLUMNS} ORDER BY h.created_at, h.id"),
            args![],
            |r| hook_row(r),
        ),
    }
}

/// Hook `id` and what posting through it needs.
pub fn hook_by_id<C: Sql>(conn: &C, id: &str) -> Result<Option<HookAuth>, C::Error> {
    conn.row(
        &format!("SELECT {HOOK_COLUMNS_FULL}, {MAKER_IN_ROOM} {HOOK_FROM} WHERE w.id = ?1"),
        args![id],
        |r| {
            Ok(HookAuth {
                hook: hook_row(r)?,
                account: r.get(7)?,
                token_hash: r.get(8)?,
                maker: r.get(9)?,
                active: r.get(10)?,
            })
        },
    )
}

const HOOK_COLUMNS_FULL: &str = "w.id, u.username, r.name, w.room_id, cu.username, \
     w.created_at, w.last_used_at, w.user_id, w.token_hash, w.created_by";
const HOOK_FROM: &str = "FROM hooks w JOIN users u ON u.id = w.user_id \
     JOIN rooms r ON r.id = w.room_id LEFT JOIN users cu ON cu.id = w.created_by";

/// Note that hook `id` posted.
pub fn touch_hook<C: Sql>(conn: &C, id: &str, now_ms: i64) -> Result<(), C::Error> {
    conn.exec(
        "UPDATE hooks SET last_used_at = ?2 WHERE id = ?1",
        args![id, now_ms],
    )?;
    Ok(())
}

/// Remove hook `id`; its account stays, disabled, as the author of what it posted (and its
/// name stays taken). Whether it existed.
pub fn delete_hook<C: Sql>(conn: &C, id: &str) -> Result<bool, C::Error> {
    let user: Option<i64> =
        conn.row("SELECT user_id FROM hooks WHERE id = ?1", args![id], |r| {
            r.get(0)
        })?;
    let Some(user) = user else {
        return Ok(false);
    };
    conn.exec("DELETE FROM hooks WHERE id = ?1", args![id])?;
    conn.exec(
        "UPDATE users SET disabled = TRUE WHERE id = ?1",
        args![user],
    )?;
    Ok(true)
}

/// How many incoming and outgoing hooks room `room_id` has, counted for adding one: on
/// PostgreSQL the room's row is locked to the end of the transaction first, so that two
/// nodes adding a hook to one room at once count one after the other (on SQLite the write
/// transaction already excludes every other writer).
pub fn hook_counts_for_update<C: Sql>(conn: &C, room_id: i64) -> Result<(i64, i64), C::Error> {
    if conn.is_postgres() {
        conn.row(
            "SELECT id FROM rooms WHERE id = ?1 FOR NO KEY UPDATE",
            args![room_id],
            |r| r.get::<i64>(0),
        )?;
    }
    hook_counts(conn, room_id)
}

/// How many incoming and outgoing hooks room `room_id` has.
pub fn hook_counts<C: Sql>(conn: &C, room_id: i64) -> Result<(i64, i64), C::Error> {
    Ok(conn
        .row(
            "SELECT (SELECT COUNT(*) FROM hooks WHERE room_id = ?1), \
             (SELECT COUNT(*) FROM webhooks WHERE room_id = ?1)",
            args![room_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .unwrap_or((0, 0)))
}

/// Add an outgoing webhook; its id.
pub fn insert_webhook<C: Sql>(
    conn: &C,
    room_id: i64,
    url: &str,
    secret: &str,
    created_by: i64,
    now_ms: i64,
) -> Result<i64, C::Error> {
    Ok(conn
        .row(
            "INSERT INTO webhooks (room_id, url, secret, created_by, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            args![room_id, url, secret, created_by, now_ms],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

const WEBHOOK_COLUMNS: &str = "w.id, r.name, w.room_id, w.url, cu.username, w.created_at, \
     w.delivered, (SELECT COUNT(*) FROM webhook_queue q WHERE q.webhook_id = w.id), \
     w.last_attempt_at, w.last_status, w.last_error, w.failing_since \
     FROM webhooks w JOIN rooms r ON r.id = w.room_id LEFT JOIN users cu ON cu.id = w.created_by";

fn webhook_row<R: SqlRow + ?Sized>(r: &R) -> Result<WebhookRow, R::Error> {
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
pub fn webhooks_of<C: Sql>(conn: &C, room_id: Option<i64>) -> Result<Vec<WebhookRow>, C::Error> {
    match room_id {
        Some(room_id) => conn.rows(
            &format!("SELECT {WEBHOOK_COLUMNS} WHERE w.room_id = ?1 ORDER BY w.id"),
            args![room_id],
            |r| webhook_row(r),
        ),
        None => conn.rows(
            &format!("SELECT {WEBHOOK_COLUMNS} ORDER BY w.id"),
            args![],
            |r| webhook_row(r),
        ),
    }
}

/// Webhook `id` and the row id of whoever made it.
pub fn webhook_by_id<C: Sql>(
    conn: &C,
    id: i64,
) -> Result<Option<(WebhookRow, Option<i64>)>, C::Error> {
    conn.row(
        &format!("SELECT {WEBHOOK_COLUMNS_BY} WHERE w.id = ?1"),
        args![id],
        |r| Ok((webhook_row(r)?, r.get(12)?)),
    )
}

const WEBHOOK_COLUMNS_BY: &str = "w.id, r.name, w.room_id, w.url, cu.username, w.created_at, \
     w.delivered, (SELECT COUNT(*) FROM webhook_queue q WHERE q.webhook_id = w.id), \
     w.last_attempt_at, w.last_status, w.last_error, w.failing_since, w.created_by \
     FROM webhooks w JOIN rooms r ON r.id = w.room_id LEFT JOIN users cu ON cu.id = w.created_by";

/// Remove webhook `id` and what it still had queued; whether it existed.
pub fn delete_webhook<C: Sql>(conn: &C, id: i64) -> Result<bool, C::Error> {
    conn.exec("DELETE FROM webhook_queue WHERE webhook_id = ?1", args![id])?;
    Ok(conn.exec("DELETE FROM webhooks WHERE id = ?1", args![id])? > 0)
}

/// Queue message `message_id` for every outgoing webhook of room `room_id`, in the message's
/// transaction (SQLite; on PostgreSQL the message's insert does it).
pub fn queue_webhook_deliveries<C: Sql>(
    conn: &C,
    room_id: i64,
    message_id: i64,
    now_ms: i64,
) -> Result<(), C::Error> {
    conn.exec(
        "INSERT INTO webhook_queue (webhook_id, message_id, queued_at, next_at) \
         SELECT id, ?2, ?3, ?3 FROM webhooks WHERE room_id = ?1",
        args![room_id, message_id, now_ms],
    )?;
    Ok(())
}

/// How many outgoing webhooks there are.
pub fn webhook_count<C: Sql>(conn: &C) -> Result<i64, C::Error> {
    Ok(conn
        .row("SELECT COUNT(*) FROM webhooks", args![], |r| r.get(0))?
        .unwrap_or(0))
}

/// The head of each webhook's queue (its oldest message), when due at `now_ms`; at most
/// `limit`, the webhooks tried longest ago first (round and round: a few webhooks whose
/// receivers answer slowly, with long queues, cannot keep the others waiting). Only heads,
/// so each webhook receives its messages in id order. A webhook whose maker is out of its
/// room (or disabled) waits: what its room says meanwhile is delivered once they are back
/// (and may read it again), not before.
pub fn due_deliveries<C: Sql>(
    conn: &C,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<DueDelivery>, C::Error> {
    conn.rows(
        &format!(
            "SELECT q.webhook_id, w.url, w.secret, q.message_id, q.attempts, q.queued_at, \
             q.next_at FROM webhook_queue q JOIN webhooks w ON w.id = q.webhook_id \
             WHERE q.message_id = (SELECT MIN(message_id) FROM webhook_queue h \
                                   WHERE h.webhook_id = q.webhook_id) \
             AND q.next_at <= ?1 AND {MAKER_IN_ROOM} \
             ORDER BY COALESCE(w.last_attempt_at, 0), q.next_at LIMIT ?2"
        ),
        args![now_ms, i64::from(limit)],
        |r| {
            Ok(DueDelivery {
                webhook_id: r.get(0)?,
                url: r.get(1)?,
                secret: r.get(2)?,
                message_id: r.get(3)?,
                attempts: r.get(4)?,
                queued_at: r.get(5)?,
                next_at: r.get(6)?,
            })
        },
    )
}

/// Take the delivery of `message_id` to `webhook_id`, read as due at `seen`, until `until`:
/// no other node finds it due before then (a node that dies while delivering leaves it to
/// the others after the claim). Whether it was taken: `false` when someone else took it, or
/// it was done, since it was read.
pub fn claim_delivery<C: Sql>(
    conn: &C,
    (webhook_id, message_id): (i64, i64),
    seen: i64,
    until: i64,
) -> Result<bool, C::Error> {
    // On PostgreSQL a second claimer waits for the first's row lock, then finds `next_at`
    // moved and updates nothing.
    let n = conn.exec(
        "UPDATE webhook_queue SET next_at = ?4 \
         WHERE webhook_id = ?1 AND message_id = ?2 AND next_at = ?3",
        args![webhook_id, message_id, seen, until],
    )?;
    Ok(n == 1)
}

/// When the next delivery falls due (`None`: nothing queued that may be sent): the earliest
/// head of a queue whose webhook's maker is in its room, as [`due_deliveries`] takes them
/// (the rows behind a head that is backing off, or a paused webhook's, are not due).
pub fn next_delivery_at<C: Sql>(conn: &C) -> Result<Option<i64>, C::Error> {
    Ok(conn
        .row(
            &format!(
                "SELECT MIN(q.next_at) FROM webhook_queue q JOIN webhooks w \
                 ON w.id = q.webhook_id WHERE q.message_id = (SELECT MIN(message_id) \
                 FROM webhook_queue h WHERE h.webhook_id = q.webhook_id) AND {MAKER_IN_ROOM}"
            ),
            args![],
            |r| r.get(0),
        )?
        .flatten())
}

/// Drop what the webhooks whose maker is out of their room (or disabled) had waiting; how
/// many deliveries. Run by the hourly sweep, so a paused webhook's queue does not grow
/// while nobody may receive it.
pub fn drop_paused_deliveries<C: Sql>(conn: &C) -> Result<usize, C::Error> {
    conn.exec(
        &format!(
            "DELETE FROM webhook_queue WHERE webhook_id IN \
             (SELECT w.id FROM webhooks w WHERE NOT {MAKER_IN_ROOM})"
        ),
        args![],
    )
}

/// A delivery got a 2xx (`status`): it leaves the queue.
pub fn delivery_done<C: Sql>(
    conn: &C,
    webhook_id: i64,
    message_id: i64,
    status: i64,
    now_ms: i64,
) -> Result<(), C::Error> {
    let n = conn.exec(
        "DELETE FROM webhook_queue WHERE webhook_id = ?1 AND message_id = ?2",
        args![webhook_id, message_id],
    )?;
    conn.exec(
        "UPDATE webhooks SET delivered = delivered + ?3, last_attempt_at = ?4, \
         last_status = ?2, last_error = '', failing_since = NULL WHERE id = ?1",
        args![webhook_id, status, n as i64, now_ms],
    )?;
    Ok(())
}

/// A delivery failed (`status`: the answer's, if any): it is tried again at `next_at`, or,
/// `give_up`, dropped.
pub fn delivery_failed<C: Sql>(
    conn: &C,
    (webhook_id, message_id): (i64, i64),
    (status, error): (Option<i64>, &str),
    next_at: Option<i64>,
    now_ms: i64,
) -> Result<(), C::Error> {
    match next_at {
        Some(at) => conn.exec(
            "UPDATE webhook_queue SET attempts = attempts + 1, next_at = ?3 \
             WHERE webhook_id = ?1 AND message_id = ?2",
            args![webhook_id, message_id, at],
        )?,
        None => conn.exec(
            "DELETE FROM webhook_queue WHERE webhook_id = ?1 AND message_id = ?2",
            args![webhook_id, message_id],
        )?,
    };
    conn.exec(
        "UPDATE webhooks SET last_attempt_at = ?4, last_status = ?2, last_error = ?3, \
         failing_since = COALESCE(failing_since, ?4) WHERE id = ?1",
        args![webhook_id, status, error, now_ms],
    )?;
    Ok(())
}

/// Whether the account `user_id` belongs to an incoming hook.
pub fn is_hook_account<C: Sql>(conn: &C, user_id: i64) -> Result<bool, C::Error> {
    Ok(conn
        .row(
            "SELECT hook FROM users WHERE id = ?1",
            args![user_id],
            |r| r.get(0),
        )?
        .unwrap_or(false))
}
