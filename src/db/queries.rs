//! Every SQL statement Hearth runs. Functions take a connection and return domain rows; the
//! [`super::Db`] handle decides which connection (writer or reader) runs them.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    Membership, NewAdmin, Notify, Room, RoomKind, SearchHit, SessionInfo, SessionKind, SessionRow,
    StoredMessage, User, UNREAD_CAP,
};

const MESSAGE_COLUMNS: &str =
    "m.id, m.room_id, r.name, u.username, m.body, m.nonce, m.created_at FROM messages m \
     JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id";

/// Columns of a room as [`room_row`] reads them; `?1` is the asking user.
const ROOM_COLUMNS: &str = "r.id, r.name, r.topic, r.kind, r.is_public, cu.username, \
     (SELECT COUNT(*) FROM memberships x WHERE x.room_id = r.id), \
     CASE WHEN r.kind = 'dm' THEN (SELECT group_concat(du.username, char(10)) \
        FROM memberships x JOIN users du ON du.id = x.user_id WHERE x.room_id = r.id) END, \
     COALESCE((SELECT MAX(id) FROM messages WHERE room_id = r.id), 0), \
     me.last_read, \
     CASE WHEN me.user_id IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM (SELECT 1 FROM messages mm \
        WHERE mm.room_id = r.id AND mm.id > me.last_read AND mm.user_id != ?1 LIMIT 1000)) END, \
     CASE WHEN me.user_id IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM (SELECT 1 FROM mentions mn \
        WHERE mn.user_id = ?1 AND mn.room_id = r.id AND mn.message_id > me.last_read LIMIT 1000)) END, \
     me.notify \
     FROM rooms r LEFT JOIN users cu ON cu.id = r.created_by \
     LEFT JOIN memberships me ON me.room_id = r.id AND me.user_id = ?1";

fn room_row(row: &Row<'_>) -> rusqlite::Result<Room> {
    let kind: String = row.get(3)?;
    let users: Option<String> = row.get(7)?;
    let mut users: Vec<String> = users
        .map(|u| u.split('\n').map(str::to_string).collect())
        .unwrap_or_default();
    users.sort_unstable_by_key(|u| u.to_ascii_lowercase());
    let last_read: Option<i64> = row.get(9)?;
    let membership = match last_read {
        Some(last_read) => Some(Membership {
            last_read,
            unread: row.get::<_, i64>(10)?.min(UNREAD_CAP),
            mentions: row.get::<_, i64>(11)?.min(UNREAD_CAP),
            notify: Notify::parse(&row.get::<_, String>(12)?),
        }),
        None => None,
    };
    Ok(Room {
        id: row.get(0)?,
        name: row.get(1)?,
        topic: row.get(2)?,
        kind: if kind == "dm" {
            RoomKind::Dm
        } else {
            RoomKind::Room
        },
        public: row.get(4)?,
        created_by: row.get(5)?,
        members: row.get(6)?,
        users,
        last_id: row.get(8)?,
        membership,
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

/// Create a user and make them a member of `general`, with nothing unread. `None` if the name
/// is taken. `admin` says whether the new account administers the server.
pub fn insert_user(
    conn: &Connection,
    username: &str,
    key: &str,
    password_hash: &str,
    admin: NewAdmin,
    now_ms: i64,
) -> rusqlite::Result<Option<User>> {
    let is_admin = match admin {
        NewAdmin::No => "0",
        NewAdmin::IfFirst => "NOT EXISTS (SELECT 1 FROM users)",
        NewAdmin::IfNoAdmin => "NOT EXISTS (SELECT 1 FROM users WHERE is_admin = 1)",
    };
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO users (username, username_key, password_hash, created_at, is_admin) \
             VALUES (?1, ?2, ?3, ?4, {is_admin}) \
             ON CONFLICT (username_key) DO NOTHING"
        ))?
        .execute(params![username, key, password_hash, now_ms])?;
    if inserted == 0 {
        return Ok(None);
    }
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO memberships (room_id, user_id, joined_at, last_read) \
         SELECT r.id, ?1, ?2, COALESCE((SELECT MAX(id) FROM messages WHERE room_id = r.id), 0) \
         FROM rooms r WHERE r.name = 'general'",
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
        Ok(SessionInfo {
            user: User {
                id: r.get(0)?,
                username: r.get(1)?,
            },
            kind: SessionKind::parse(&r.get::<_, String>(2)?),
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

/// Remove sessions past their expiry, and browser sessions unused for longer than
/// `idle_ms`. Returns how many were removed.
pub fn delete_expired_sessions(
    conn: &Connection,
    now_ms: i64,
    idle_ms: i64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM sessions WHERE (expires_at IS NOT NULL AND expires_at <= ?1) \
         OR (kind = 'cookie' AND last_seen_at < ?1 - ?2)",
    )?
    .execute(params![now_ms, idle_ms])
}

/// Revoke every bot token of a user; returns the revoked token hashes.
pub fn delete_bot_sessions(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<[u8; 32]>> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM sessions WHERE user_id = ?1 AND kind = 'bot' RETURNING token_hash",
    )?;
    let rows = stmt.query_map([user_id], |r| r.get::<_, [u8; 32]>(0))?;
    rows.collect()
}

/// How many bot tokens a user holds.
pub fn bot_session_count(conn: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM sessions WHERE user_id = ?1 AND kind = 'bot'")?
        .query_row([user_id], |r| r.get(0))
}

/// Whether a name (case-folded) belongs to an account.
pub fn username_taken(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE username_key = ?1)")?
        .query_row([key], |r| r.get(0))
}

/// Whether any account administers the server.
pub fn has_admin(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE is_admin = 1)")?
        .query_row([], |r| r.get(0))
}

/// One of a user's sessions or bot tokens, as listed to that user.
#[derive(Debug, Clone)]
pub struct SessionListing {
    /// Digest of the token (never shown whole; its first 8 bytes in hex are the listing id).
    pub token_hash: [u8; 32],
    /// Browser session or bot token.
    pub kind: SessionKind,
    /// A bot token's name.
    pub name: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last used, ms since the epoch (updated at most hourly).
    pub last_seen_at: i64,
    /// Hard expiry, if any.
    pub expires_at: Option<i64>,
}

impl SessionListing {
    /// The id a user names a session by: the first 8 bytes of its digest, in hex.
    pub fn listing_id(&self) -> String {
        listing_id(&self.token_hash)
    }
}

/// The first 8 bytes of a token digest in hex: enough to tell one user's sessions apart,
/// and useless for signing in.
pub fn listing_id(hash: &[u8; 32]) -> String {
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A user's live sessions and tokens, newest first.
pub fn sessions_of_user(
    conn: &Connection,
    user_id: i64,
    now_ms: i64,
    idle_ms: i64,
) -> rusqlite::Result<Vec<SessionListing>> {
    let mut stmt = conn.prepare_cached(
        "SELECT token_hash, kind, name, created_at, last_seen_at, expires_at FROM sessions \
         WHERE user_id = ?1 AND (expires_at IS NULL OR expires_at > ?2) \
         AND (kind = 'bot' OR last_seen_at >= ?2 - ?3) \
         ORDER BY created_at DESC, token_hash",
    )?;
    let rows = stmt.query_map(params![user_id, now_ms, idle_ms], |r| {
        Ok(SessionListing {
            token_hash: r.get(0)?,
            kind: SessionKind::parse(&r.get::<_, String>(1)?),
            name: r.get(2)?,
            created_at: r.get(3)?,
            last_seen_at: r.get(4)?,
            expires_at: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Delete the user's session whose listing id is `id`; returns its digest.
pub fn delete_session_by_listing_id(
    conn: &Connection,
    user_id: i64,
    id: &str,
) -> rusqlite::Result<Option<[u8; 32]>> {
    let mut stmt = conn.prepare_cached("SELECT token_hash FROM sessions WHERE user_id = ?1")?;
    let hashes = stmt
        .query_map([user_id], |r| r.get::<_, [u8; 32]>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let Some(hash) = hashes.into_iter().find(|h| listing_id(h) == id) else {
        return Ok(None);
    };
    delete_session(conn, &hash)?;
    Ok(Some(hash))
}

/// `settings` key bumped whenever a command-line tool revokes sessions or disables an
/// account, so a running server closes the affected sockets at once.
const SESSIONS_EPOCH: &str = "sessions_epoch";

/// Record that sessions were revoked by another process.
pub fn bump_sessions_epoch(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
    )?
    .execute([SESSIONS_EPOCH])?;
    Ok(())
}

/// The current value of the revocation counter (0 before any).
pub fn sessions_epoch(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(setting(conn, SESSIONS_EPOCH)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

// ---- rooms -------------------------------------------------------------------------------

/// The rooms and DMs a user belongs to, with their unread state: rooms by name, then DMs.
pub fn rooms_for_user(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<Room>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROOM_COLUMNS} WHERE me.user_id IS NOT NULL ORDER BY r.kind DESC, r.name"
    ))?;
    let rows = stmt.query_map([user_id], room_row)?;
    rows.collect()
}

/// Ids of the rooms and DMs a user belongs to.
pub fn room_ids_for_user(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT room_id FROM memberships WHERE user_id = ?1")?;
    let rows = stmt.query_map([user_id], |r| r.get(0))?;
    rows.collect()
}

/// Every public room, by name, with the user's membership when they have one.
pub fn public_rooms(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<Room>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROOM_COLUMNS} WHERE r.kind = 'room' AND r.is_public = 1 ORDER BY r.name"
    ))?;
    let rows = stmt.query_map([user_id], room_row)?;
    rows.collect()
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

/// A room by name, and whether `user_id` is a member of it.
pub fn room_for_user(
    conn: &Connection,
    name: &str,
    user_id: i64,
) -> rusqlite::Result<Option<(Room, bool)>> {
    Ok(room_by_name(conn, name, user_id)?.map(|r| {
        let member = r.membership.is_some();
        (r, member)
    }))
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
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.username FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = ?1 ORDER BY u.username_key",
    )?;
    let rows = stmt.query_map([room_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
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

// ---- messages ----------------------------------------------------------------------------

/// Insert one message; returns its id.
pub fn insert_message(
    conn: &Connection,
    room_id: i64,
    user_id: i64,
    body: &str,
    nonce: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    // Membership is checked by the insert itself, inside the writer's transaction: a send
    // that raced its author's leave (or removal) is not stored.
    let n = conn
        .prepare_cached(
            "INSERT INTO messages (room_id, user_id, body, nonce, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS \
             (SELECT 1 FROM memberships WHERE room_id = ?1 AND user_id = ?2)",
        )?
        .execute(params![room_id, user_id, body, nonce, now_ms])?;
    Ok((n > 0).then(|| conn.last_insert_rowid()))
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

/// What to search for; see [`search`].
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// An FTS5 query (already made safe).
    pub fts: String,
    /// The asking user: results come from their rooms and public rooms.
    pub user_id: i64,
    /// Only this room.
    pub room_id: Option<i64>,
    /// Only this author (case-folded name).
    pub author_key: Option<String>,
    /// Newest first below this id; `None` orders by relevance.
    pub before: Option<i64>,
    /// Relevance paging offset.
    pub offset: u32,
    /// Results wanted.
    pub limit: u32,
    /// Order by relevance (bm25) instead of newest first.
    pub by_relevance: bool,
}

/// Full-text search over every message `q.user_id` may read.
pub fn search(conn: &Connection, q: &SearchQuery) -> rusqlite::Result<Vec<SearchHit>> {
    if let Some(key) = &q.author_key {
        // An author filter that matches nobody would otherwise walk every match.
        let known: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE username_key = ?1)")?
            .query_row([key], |r| r.get(0))?;
        if !known {
            return Ok(Vec::new());
        }
    }
    if q.by_relevance {
        return search_by_relevance(conn, q);
    }
    if let Some(room_id) = q.room_id {
        return search_in_room(conn, q, room_id);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT m.id, m.room_id, r.name, u.username, m.body, m.nonce, m.created_at, \
         snippet(messages_fts, 0, char(2), char(3), '…', 24) \
         FROM messages_fts f JOIN messages m ON m.id = f.rowid \
         JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id \
         WHERE messages_fts MATCH ?1 AND f.rowid < ?2 AND {SEARCH_FILTER} \
         ORDER BY f.rowid DESC LIMIT ?6"
    ))?;
    let rows = stmt.query_map(
        params![
            q.fts,
            q.before.unwrap_or(i64::MAX),
            q.user_id,
            q.room_id,
            q.author_key,
            q.limit
        ],
        search_hit,
    )?;
    rows.collect()
}

/// Newest-first search in one room (whose readability the caller checked), driven by the
/// room's own messages: the matches of the query are collected once from the index (`+m.id`
/// keeps SQLite from looking each of them up in `messages` instead), and the room is walked
/// newest first until the page is full. A common word in a small room no longer costs a
/// lookup per match in every other room.
fn search_in_room(
    conn: &Connection,
    q: &SearchQuery,
    room_id: i64,
) -> rusqlite::Result<Vec<SearchHit>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.id FROM messages m JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = ?1 AND m.id < ?2 AND (?3 IS NULL OR u.username_key = ?3) \
         AND +m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?4) \
         ORDER BY m.id DESC LIMIT ?5",
    )?;
    let ids = stmt
        .query_map(
            params![
                room_id,
                q.before.unwrap_or(i64::MAX),
                q.author_key,
                q.fts,
                q.limit
            ],
            |r| r.get::<_, i64>(0),
        )?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    hits_in_order(conn, &q.fts, &ids)
}

/// Full hits with snippets for `ids`, in the order given.
fn hits_in_order(conn: &Connection, fts: &str, ids: &[i64]) -> rusqlite::Result<Vec<SearchHit>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let mut stmt = conn.prepare_cached(
        "SELECT m.id, m.room_id, r.name, u.username, m.body, m.nonce, m.created_at, \
         snippet(messages_fts, 0, char(2), char(3), '…', 24) \
         FROM messages_fts f JOIN messages m ON m.id = f.rowid \
         JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id \
         WHERE messages_fts MATCH ?1 AND f.rowid IN (SELECT value FROM json_each(?2))",
    )?;
    let mut hits = stmt
        .query_map(params![fts, format!("[{list}]")], search_hit)?
        .collect::<rusqlite::Result<Vec<SearchHit>>>()?;
    hits.sort_by_key(|h| ids.iter().position(|id| *id == h.msg.id));
    Ok(hits)
}

/// Who may read a search hit and the optional room/author filters (`?3`–`?5`).
const SEARCH_FILTER: &str = "((r.kind = 'room' AND r.is_public = 1) OR EXISTS (SELECT 1 \
     FROM memberships x WHERE x.room_id = m.room_id AND x.user_id = ?3)) \
     AND (?4 IS NULL OR m.room_id = ?4) AND (?5 IS NULL OR u.username_key = ?5)";

/// Relevance is ranked among the newest this many matches the user may read, so a very
/// common word costs about the same as a rare one.
pub const RELEVANCE_WINDOW: u32 = 5000;

fn search_hit(r: &Row<'_>) -> rusqlite::Result<SearchHit> {
    Ok(SearchHit {
        msg: message_row(r)?,
        snippet: r.get(7)?,
    })
}

/// bm25 order over the newest [`RELEVANCE_WINDOW`] matches: rank and page the ids first, then
/// build snippets for the page only.
fn search_by_relevance(conn: &Connection, q: &SearchQuery) -> rusqlite::Result<Vec<SearchHit>> {
    let mut stmt = conn.prepare_cached(&format!(
        "WITH hits AS (SELECT f.rowid AS id, bm25(messages_fts) AS score \
             FROM messages_fts f JOIN messages m ON m.id = f.rowid \
             JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id \
             WHERE messages_fts MATCH ?1 AND {SEARCH_FILTER} \
             ORDER BY f.rowid DESC LIMIT {RELEVANCE_WINDOW}) \
         SELECT id FROM hits ORDER BY score, id DESC LIMIT ?6 OFFSET ?7"
    ))?;
    let ids = stmt
        .query_map(
            params![
                q.fts,
                0,
                q.user_id,
                q.room_id,
                q.author_key,
                q.limit,
                q.offset
            ],
            |r| r.get::<_, i64>(0),
        )?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    hits_in_order(conn, &q.fts, &ids)
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
        bump_sessions_epoch(conn)?;
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
        // Bot tokens too: whoever knew the old password may have made one.
        conn.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username_key = ?1)",
            [key],
        )?;
        bump_sessions_epoch(conn)?;
    }
    Ok(n > 0)
}

/// Every room, by id.
pub fn all_rooms(conn: &Connection) -> rusqlite::Result<Vec<Room>> {
    let mut stmt = conn.prepare(&format!("SELECT {ROOM_COLUMNS} ORDER BY r.id"))?;
    let rows = stmt.query_map([0], room_row)?;
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

// ---- registration and invites --------------------------------------------------------------

/// Who may create an account through `POST /api/register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Anyone who can reach the server.
    #[default]
    Open,
    /// Only people with a valid invite code.
    Invite,
    /// Nobody (operators still add accounts with `hearth user add`).
    Closed,
}

impl RegistrationMode {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Open => "open",
            RegistrationMode::Invite => "invite",
            RegistrationMode::Closed => "closed",
        }
    }

    /// Parse the stored and wire form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(RegistrationMode::Open),
            "invite" => Some(RegistrationMode::Invite),
            "closed" => Some(RegistrationMode::Closed),
            _ => None,
        }
    }
}

/// `settings` key of the registration mode.
const REGISTRATION_KEY: &str = "registration";

/// A value from `settings`.
pub fn setting(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// Store a value in `settings`.
pub fn set_setting(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// The registration mode (`open` when never set or unreadable).
pub fn registration_mode(conn: &Connection) -> rusqlite::Result<RegistrationMode> {
    Ok(setting(conn, REGISTRATION_KEY)?
        .and_then(|v| RegistrationMode::parse(&v))
        .unwrap_or_default())
}

/// Change the registration mode.
pub fn set_registration_mode(conn: &Connection, mode: RegistrationMode) -> rusqlite::Result<()> {
    set_setting(conn, REGISTRATION_KEY, mode.as_str())
}

/// Whether at least one account exists.
pub fn any_users(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM users)")?
        .query_row([], |r| r.get(0))
}

/// An invitation as listed to administrators (the code itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRow {
    /// Row id.
    pub id: i64,
    /// Username of the administrator who made it; `None` for the command line.
    pub created_by: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry (ms): unusable from this instant on.
    pub expires_at: i64,
    /// Accounts it may create.
    pub max_uses: i64,
    /// Accounts it created.
    pub uses: i64,
    /// Revoked by an administrator.
    pub revoked: bool,
}

impl InviteRow {
    /// `revoked`, `used_up`, `expired` or `active` at `now_ms`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        if self.revoked {
            "revoked"
        } else if self.uses >= self.max_uses {
            "used_up"
        } else if self.expires_at <= now_ms {
            "expired"
        } else {
            "active"
        }
    }
}

/// Store a new invitation by the SHA-256 of its code; returns its id.
pub fn insert_invite(
    conn: &Connection,
    code_hash: &[u8],
    created_by: Option<i64>,
    now_ms: i64,
    expires_at: i64,
    max_uses: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO invites (code_hash, created_by, created_at, expires_at, max_uses) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![code_hash, created_by, now_ms, expires_at, max_uses])?;
    Ok(conn.last_insert_rowid())
}

/// One invitation by id.
pub fn invite(conn: &Connection, id: i64) -> rusqlite::Result<Option<InviteRow>> {
    Ok(list_invites_where(conn, "WHERE i.id = ?1", [id])?.pop())
}

/// Every invitation, newest first.
pub fn list_invites(conn: &Connection) -> rusqlite::Result<Vec<InviteRow>> {
    list_invites_where(conn, "", [])
}

fn list_invites_where(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<InviteRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT i.id, u.username, i.created_at, i.expires_at, i.max_uses, i.uses, i.revoked \
         FROM invites i LEFT JOIN users u ON u.id = i.created_by {filter} ORDER BY i.id DESC"
    ))?;
    let rows = stmt.query_map(args, |r| {
        Ok(InviteRow {
            id: r.get(0)?,
            created_by: r.get(1)?,
            created_at: r.get(2)?,
            expires_at: r.get(3)?,
            max_uses: r.get(4)?,
            uses: r.get(5)?,
            revoked: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Revoke an invitation. Returns false for an unknown id.
pub fn revoke_invite(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE invites SET revoked = 1 WHERE id = ?1")?
        .execute([id])?
        > 0)
}

/// The id of the invitation with this code hash if it can still create an account.
pub fn usable_invite(
    conn: &Connection,
    code_hash: &[u8],
    now_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT id FROM invites WHERE code_hash = ?1 AND revoked = 0 AND uses < max_uses \
         AND expires_at > ?2",
    )?
    .query_row(params![code_hash, now_ms], |r| r.get(0))
    .optional()
}

/// Count one use of an invitation, only if it is still usable. Returns whether it was.
pub fn use_invite(conn: &Connection, id: i64, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE invites SET uses = uses + 1 WHERE id = ?1 AND revoked = 0 \
             AND uses < max_uses AND expires_at > ?2",
        )?
        .execute(params![id, now_ms])?
        > 0)
}

/// Figures for the administrators' status panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Accounts.
    pub users: i64,
    /// Rooms and direct conversations.
    pub rooms: i64,
    /// Stored messages.
    pub messages: i64,
}

/// Count accounts, rooms and messages (one read snapshot).
pub fn totals(conn: &Connection) -> rusqlite::Result<Totals> {
    conn.prepare_cached(
        "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM rooms), \
         (SELECT COUNT(*) FROM messages)",
    )?
    .query_row([], |r| {
        Ok(Totals {
            users: r.get(0)?,
            rooms: r.get(1)?,
            messages: r.get(2)?,
        })
    })
}
