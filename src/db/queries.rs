//! Every SQL statement Hearth runs. Functions take a connection and return domain rows; the
//! [`super::Db`] handle decides which connection (writer or reader) runs them.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{Room, SessionInfo, SessionKind, SessionRow, StoredMessage, User};

const MESSAGE_COLUMNS: &str =
    "m.id, m.room_id, r.name, u.username, m.body, m.nonce, m.created_at FROM messages m \
     JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id";

fn room_row(row: &Row<'_>) -> rusqlite::Result<Room> {
    Ok(Room {
        id: row.get(0)?,
        name: row.get(1)?,
        topic: row.get(2)?,
    })
}

fn message_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: row.get(0)?,
        room_id: row.get(1)?,
        room: row.get(2)?,
        user: row.get(3)?,
        body: row.get(4)?,
        nonce: row.get(5)?,
        ts_ms: row.get(6)?,
    })
}

// ---- users -------------------------------------------------------------------------------

/// Create a user and make them a member of every public room. `None` if the name is taken.
pub fn insert_user(
    conn: &Connection,
    username: &str,
    key: &str,
    password_hash: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<User>> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO users (username, username_key, password_hash, created_at, is_admin) \
             VALUES (?1, ?2, ?3, ?4, NOT EXISTS (SELECT 1 FROM users)) \
             ON CONFLICT (username_key) DO NOTHING",
        )?
        .execute(params![username, key, password_hash, now_ms])?;
    if inserted == 0 {
        return Ok(None);
    }
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO memberships (room_id, user_id, joined_at) \
         SELECT id, ?1, ?2 FROM rooms WHERE is_public = 1",
    )?
    .execute(params![id, now_ms])?;
    Ok(Some(User {
        id,
        username: username.to_string(),
    }))
}

/// A user and their password hash, looked up by case-folded name.
pub fn user_for_login(conn: &Connection, key: &str) -> rusqlite::Result<Option<(User, String)>> {
    conn.prepare_cached(
        "SELECT id, username, password_hash FROM users WHERE username_key = ?1 AND disabled = 0",
    )?
    .query_row([key], |r| {
        Ok((
            User {
                id: r.get(0)?,
                username: r.get(1)?,
            },
            r.get(2)?,
        ))
    })
    .optional()
}

/// Replace a user's password hash (used to raise the iteration count on login).
pub fn set_password_hash(conn: &Connection, user_id: i64, hash: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
        .execute(params![user_id, hash])?;
    Ok(())
}

// ---- sessions ----------------------------------------------------------------------------

/// Store a new session or bot token (by its hash).
pub fn insert_session(conn: &Connection, s: &SessionRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sessions (token_hash, user_id, kind, name, created_at, last_seen_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    )?
    .execute(params![
        &s.token_hash[..],
        s.user_id,
        s.kind.as_str(),
        s.name,
        s.created_at,
        s.expires_at
    ])?;
    Ok(())
}

/// The live session for a token hash: `(user, kind, created_at, last_seen_at)`.
pub fn session_user(
    conn: &Connection,
    token_hash: &[u8],
    now_ms: i64,
) -> rusqlite::Result<Option<SessionInfo>> {
    conn.prepare_cached(
        "SELECT u.id, u.username, s.kind, s.last_seen_at, u.is_admin FROM sessions s \
         JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = ?1 AND u.disabled = 0 AND (s.expires_at IS NULL OR s.expires_at > ?2)",
    )?
    .query_row(params![token_hash, now_ms], |r| {
        let kind: String = r.get(2)?;
        Ok(SessionInfo {
            user: User {
                id: r.get(0)?,
                username: r.get(1)?,
            },
            kind: if kind == "bot" {
                SessionKind::Bot
            } else {
                SessionKind::Cookie
            },
            last_seen_at: r.get(3)?,
            is_admin: r.get(4)?,
        })
    })
    .optional()
}

/// Revoke every session (browser and bot) of a user.
pub fn delete_user_sessions(conn: &Connection, user_id: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
        .execute([user_id])
}

/// One account by case-folded name.
pub fn user_summary(conn: &Connection, key: &str) -> rusqlite::Result<Option<UserSummary>> {
    Ok(list_users_where(conn, "WHERE u.username_key = ?1", [key])?.pop())
}

/// Record activity on a session.
pub fn touch_session(conn: &Connection, token_hash: &[u8], now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1")?
        .execute(params![token_hash, now_ms])?;
    Ok(())
}

/// Revoke one session. Returns whether it existed.
pub fn delete_session(conn: &Connection, token_hash: &[u8]) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
        .execute([token_hash])?
        > 0)
}

/// Revoke every browser session of a user except `keep`; returns the revoked token hashes.
pub fn delete_other_sessions(
    conn: &Connection,
    user_id: i64,
    keep: &[u8],
) -> rusqlite::Result<Vec<[u8; 32]>> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM sessions WHERE user_id = ?1 AND kind = 'cookie' AND token_hash != ?2 \
         RETURNING token_hash",
    )?;
    let rows = stmt.query_map(params![user_id, keep], |r| r.get::<_, [u8; 32]>(0))?;
    rows.collect()
}

/// The stored hash of a user's password.
pub fn password_hash(conn: &Connection, user_id: i64) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT password_hash FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()
}

/// Remove sessions past their expiry. Returns how many were removed.
pub fn delete_expired_sessions(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
        .execute([now_ms])
}

// ---- rooms -------------------------------------------------------------------------------

/// The rooms a user belongs to, by name.
pub fn rooms_for_user(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<Room>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.name, r.topic FROM rooms r JOIN memberships m ON m.room_id = r.id \
         WHERE m.user_id = ?1 ORDER BY r.name",
    )?;
    let rows = stmt.query_map([user_id], room_row)?;
    rows.collect()
}

/// A room by name, and whether `user_id` is a member of it.
pub fn room_for_user(
    conn: &Connection,
    name: &str,
    user_id: i64,
) -> rusqlite::Result<Option<(Room, bool)>> {
    conn.prepare_cached(
        "SELECT r.id, r.name, r.topic, EXISTS (SELECT 1 FROM memberships m \
         WHERE m.room_id = r.id AND m.user_id = ?2) FROM rooms r WHERE r.name = ?1",
    )?
    .query_row(params![name, user_id], |r| {
        Ok((
            Room {
                id: r.get(0)?,
                name: r.get(1)?,
                topic: r.get(2)?,
            },
            r.get(3)?,
        ))
    })
    .optional()
}

// ---- messages ----------------------------------------------------------------------------

/// Insert one message; returns its id.
pub fn insert_message(
    conn: &Connection,
    room_id: i64,
    user_id: i64,
    body: &str,
    nonce: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO messages (room_id, user_id, body, nonce, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![room_id, user_id, body, nonce, now_ms])?;
    Ok(conn.last_insert_rowid())
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
    .optional()
}

/// The newest `limit` messages of a room with id < `before` (all when `None`), oldest first.
pub fn messages_before(
    conn: &Connection,
    room_id: i64,
    before: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} WHERE m.room_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![room_id, before.unwrap_or(i64::MAX), limit],
        message_row,
    )?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
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
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} WHERE m.room_id = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![room_id, after, limit], message_row)?;
    rows.collect()
}

/// Messages with id > `since` in any room the user belongs to, oldest first, at most `limit`.
pub fn messages_since_for_user(
    conn: &Connection,
    user_id: i64,
    since: i64,
    limit: u32,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} WHERE m.id > ?2 AND m.room_id IN \
         (SELECT room_id FROM memberships WHERE user_id = ?1) ORDER BY m.id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![user_id, since, limit], message_row)?;
    rows.collect()
}

/// The highest committed message id (0 when there is none).
pub fn head(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM messages")?
        .query_row([], |r| r.get(0))
}

// ---- operator commands -------------------------------------------------------------------

/// One row of `hearth user list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// Row id.
    pub id: i64,
    /// Name.
    pub username: String,
    /// Administrator?
    pub is_admin: bool,
    /// Disabled accounts cannot sign in and lose their sessions.
    pub disabled: bool,
    /// Account creation time (ms).
    pub created_at: i64,
    /// Most recent session activity (ms), if any session exists.
    pub last_seen: Option<i64>,
}

/// Every account, by id.
pub fn list_users(conn: &Connection) -> rusqlite::Result<Vec<UserSummary>> {
    list_users_where(conn, "", [])
}

fn list_users_where(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<UserSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT u.id, u.username, u.is_admin, u.disabled, u.created_at, \
         (SELECT MAX(last_seen_at) FROM sessions s WHERE s.user_id = u.id) \
         FROM users u {filter} ORDER BY u.id"
    ))?;
    let rows = stmt.query_map(args, |r| {
        Ok(UserSummary {
            id: r.get(0)?,
            username: r.get(1)?,
            is_admin: r.get(2)?,
            disabled: r.get(3)?,
            created_at: r.get(4)?,
            last_seen: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Set `disabled`; disabling also revokes every session. Returns false for an unknown user.
pub fn set_disabled(conn: &Connection, key: &str, disabled: bool) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET disabled = ?2 WHERE username_key = ?1",
        params![key, disabled],
    )?;
    if n > 0 && disabled {
        conn.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username_key = ?1)",
            [key],
        )?;
    }
    Ok(n > 0)
}

/// Set `is_admin`. Returns false for an unknown user.
pub fn set_admin(conn: &Connection, key: &str, admin: bool) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "UPDATE users SET is_admin = ?2 WHERE username_key = ?1",
        params![key, admin],
    )? > 0)
}

/// Replace a password by name and revoke that user's browser sessions. False if unknown.
pub fn reset_password(conn: &Connection, key: &str, hash: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE username_key = ?1",
        params![key, hash],
    )?;
    if n > 0 {
        conn.execute(
            "DELETE FROM sessions WHERE kind = 'cookie' AND \
             user_id = (SELECT id FROM users WHERE username_key = ?1)",
            [key],
        )?;
    }
    Ok(n > 0)
}

/// Every room, by id.
pub fn all_rooms(conn: &Connection) -> rusqlite::Result<Vec<Room>> {
    let mut stmt = conn.prepare("SELECT id, name, topic FROM rooms ORDER BY id")?;
    let rows = stmt.query_map([], room_row)?;
    rows.collect()
}

/// Visit every message in id order without loading them all.
pub fn for_each_message(
    conn: &Connection,
    mut f: impl FnMut(StoredMessage) -> std::io::Result<()>,
) -> rusqlite::Result<std::io::Result<()>> {
    let mut stmt = conn.prepare(&format!("SELECT {MESSAGE_COLUMNS} ORDER BY m.id"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        if let Err(e) = f(message_row(row)?) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}
