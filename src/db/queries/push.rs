//! Web Push: the server's own keys and the browsers' push subscriptions.

use rusqlite::{params, Connection, OptionalExtension};

use super::*;

/// One browser's push subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// Where pushes go.
    pub endpoint: String,
    /// Whose it is.
    pub user_id: i64,
    /// The browser's public key (65 bytes).
    pub p256dh: Vec<u8>,
    /// Its authentication secret (16 bytes).
    pub auth: Vec<u8>,
}

/// The key named `name`, made with `make` and stored the first time it is asked for.
pub fn server_key(
    conn: &Connection,
    name: &str,
    make: impl FnOnce() -> Vec<u8>,
) -> rusqlite::Result<Vec<u8>> {
    let found: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM server_keys WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    if let Some(v) = found {
        return Ok(v);
    }
    let value = make();
    conn.prepare_cached("INSERT OR IGNORE INTO server_keys (name, value) VALUES (?1, ?2)")?
        .execute(params![name, value])?;
    conn.prepare_cached("SELECT value FROM server_keys WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
}

/// Store a subscription for `user_id` (an endpoint seen before moves to them, with its new
/// keys).
pub fn upsert_subscription(
    conn: &Connection,
    s: &PushSubscription,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (endpoint) DO UPDATE SET \
         user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth",
    )?
    .execute(params![s.endpoint, s.user_id, s.p256dh, s.auth, now_ms])?;
    Ok(())
}

/// Remove `user_id`'s subscription `endpoint` (any user's when `None`); whether it existed.
pub fn delete_subscription(
    conn: &Connection,
    endpoint: &str,
    user_id: Option<i64>,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM push_subscriptions WHERE endpoint = ?1 AND (?2 IS NULL OR user_id = ?2)",
        )?
        .execute(params![endpoint, user_id])?
        > 0)
}

/// Every subscription of the users in `user_ids`.
pub fn subscriptions_of(
    conn: &Connection,
    user_ids: &[i64],
) -> rusqlite::Result<Vec<PushSubscription>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT endpoint, user_id, p256dh, auth FROM push_subscriptions WHERE user_id = ?1",
    )?;
    for id in user_ids {
        let rows = stmt.query_map([id], |r| {
            Ok(PushSubscription {
                endpoint: r.get(0)?,
                user_id: r.get(1)?,
                p256dh: r.get(2)?,
                auth: r.get(3)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

/// Note a push accepted by `endpoint`.
pub fn subscription_ok(conn: &Connection, endpoint: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE push_subscriptions SET last_ok_at = ?2 WHERE endpoint = ?1")?
        .execute(params![endpoint, now_ms])?;
    Ok(())
}

/// The members of room `room_id` other than the account called `author`, when it is a
/// direct conversation (empty otherwise).
pub fn dm_members_except(
    conn: &Connection,
    room_id: i64,
    author: &str,
) -> rusqlite::Result<Vec<i64>> {
    all_rows(
        conn,
        "SELECT m.user_id FROM memberships m JOIN rooms r ON r.id = m.room_id \
         JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = ?1 AND r.kind = 'dm' AND u.username != ?2",
        params![room_id, author],
        |r| r.get(0),
    )
}

/// How many push subscriptions there are.
pub fn subscription_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM push_subscriptions")?
        .query_row([], |r| r.get(0))
}
