//! Browser sessions and bot tokens: stored by hash, listed, touched and revoked.

use super::*;

/// Store a new session or bot token (by its hash).
pub fn insert_session<C: Sql>(conn: &C, s: &SessionRow) -> Result<(), C::Error> {
    conn.exec(
        "INSERT INTO sessions (token_hash, user_id, kind, name, created_at, last_seen_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        args![
            &s.token_hash[..],
            s.user_id,
            s.kind.as_str(),
            s.name,
            s.created_at,
            s.expires_at
        ],
    )?;
    Ok(())
}

/// The live session for a token hash: `(user, kind, created_at, last_seen_at)`.
pub fn session_user<C: Sql>(
    conn: &C,
    token_hash: &[u8],
    now_ms: i64,
) -> Result<Option<SessionInfo>, C::Error> {
    conn.row(
        "SELECT u.id, u.username, s.kind, s.last_seen_at, u.is_admin, s.expires_at FROM sessions s \
         JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = ?1 AND u.disabled = FALSE \
         AND (s.expires_at IS NULL OR s.expires_at > ?2)",
        args![token_hash, now_ms],
        |r| {
            Ok(SessionInfo {
                user: User {
                    id: r.get(0)?,
                    username: r.get(1)?,
                },
                kind: SessionKind::parse(&r.get::<String>(2)?),
                last_seen_at: r.get(3)?,
                is_admin: r.get(4)?,
                expires_at: r.get(5)?,
            })
        },
    )
}

/// Sessions looked up at once by [`live_among`] (one statement, whatever the count: a short
/// last chunk repeats a hash).
const LIVE_CHUNK: usize = 128;

/// Which of `hashes` are live sessions at `now_ms` (by the rule of [`session_user`]), in
/// statements of [`LIVE_CHUNK`] hashes rather than one per session: a node checks every
/// socket's session after each revocation anywhere.
pub fn live_among<C: Sql>(
    conn: &C,
    hashes: &[[u8; 32]],
    now_ms: i64,
) -> Result<std::collections::HashSet<[u8; 32]>, C::Error> {
    let marks: Vec<String> = (2..LIVE_CHUNK + 2).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "SELECT s.token_hash FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash IN ({}) AND u.disabled = FALSE \
         AND (s.expires_at IS NULL OR s.expires_at > ?1)",
        marks.join(", ")
    );
    let mut live = std::collections::HashSet::new();
    for chunk in hashes.chunks(LIVE_CHUNK) {
        let keys: Vec<&[u8]> = (0..LIVE_CHUNK)
            .map(|i| &chunk[i.min(chunk.len() - 1)][..])
            .collect();
        let mut bound: Vec<&dyn Arg> = Vec::with_capacity(LIVE_CHUNK + 1);
        bound.push(&now_ms);
        bound.extend(keys.iter().map(|k| k as &dyn Arg));
        for hash in conn.rows(&sql, &bound, |r| r.get::<Vec<u8>>(0))? {
            if let Ok(hash) = <[u8; 32]>::try_from(hash) {
                live.insert(hash);
            }
        }
    }
    Ok(live)
}

/// Revoke every session (browser and bot) of a user.
pub fn delete_user_sessions<C: Sql>(conn: &C, user_id: i64) -> Result<usize, C::Error> {
    conn.exec("DELETE FROM sessions WHERE user_id = ?1", args![user_id])
}

/// Record activity on a session.
pub fn touch_session<C: Sql>(conn: &C, token_hash: &[u8], now_ms: i64) -> Result<(), C::Error> {
    conn.exec(
        "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1",
        args![token_hash, now_ms],
    )?;
    Ok(())
}

/// Revoke one session. Returns whether it existed.
pub fn delete_session<C: Sql>(conn: &C, token_hash: &[u8]) -> Result<bool, C::Error> {
    Ok(conn.exec(
        "DELETE FROM sessions WHERE token_hash = ?1",
        args![token_hash],
    )? > 0)
}

/// Revoke every browser session of a user except `keep`; returns the revoked token hashes.
pub fn delete_other_sessions<C: Sql>(
    conn: &C,
    user_id: i64,
    keep: &[u8],
) -> Result<Vec<[u8; 32]>, C::Error> {
    conn.rows(
        "DELETE FROM sessions WHERE user_id = ?1 AND kind = 'cookie' AND token_hash != ?2 \
         RETURNING token_hash",
        args![user_id, keep],
        |r| r.get(0),
    )
}

/// The stored hash of a user's password.
pub fn password_hash<C: Sql>(conn: &C, user_id: i64) -> Result<Option<String>, C::Error> {
    conn.row(
        "SELECT password_hash FROM users WHERE id = ?1",
        args![user_id],
        |r| r.get(0),
    )
}

/// Remove sessions past their expiry, and browser sessions unused for longer than
/// `idle_ms`. Returns how many were removed.
pub fn delete_expired_sessions<C: Sql>(
    conn: &C,
    now_ms: i64,
    idle_ms: i64,
) -> Result<usize, C::Error> {
    conn.exec(
        "DELETE FROM sessions WHERE (expires_at IS NOT NULL AND expires_at <= ?1) \
         OR (kind = 'cookie' AND last_seen_at < ?1 - ?2)",
        args![now_ms, idle_ms],
    )
}

/// Revoke every bot token of a user; returns the revoked token hashes.
pub fn delete_bot_sessions<C: Sql>(conn: &C, user_id: i64) -> Result<Vec<[u8; 32]>, C::Error> {
    conn.rows(
        "DELETE FROM sessions WHERE user_id = ?1 AND kind = 'bot' RETURNING token_hash",
        args![user_id],
        |r| r.get(0),
    )
}

/// How many bot tokens a user holds.
pub fn bot_session_count<C: Sql>(conn: &C, user_id: i64) -> Result<i64, C::Error> {
    let n = conn.row(
        "SELECT COUNT(*) FROM sessions WHERE user_id = ?1 AND kind = 'bot'",
        args![user_id],
        |r| r.get(0),
    )?;
    Ok(n.unwrap_or(0))
}

/// Sign out the user's browser sessions beyond the `keep` most recently used; how many went.
pub fn trim_cookie_sessions<C: Sql>(conn: &C, user_id: i64, keep: i64) -> Result<usize, C::Error> {
    conn.exec(
        "DELETE FROM sessions WHERE user_id = ?1 AND kind = 'cookie' AND token_hash NOT IN \
         (SELECT token_hash FROM sessions WHERE user_id = ?1 AND kind = 'cookie' \
          ORDER BY last_seen_at DESC, created_at DESC LIMIT ?2)",
        args![user_id, keep],
    )
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
pub fn sessions_of_user<C: Sql>(
    conn: &C,
    user_id: i64,
    now_ms: i64,
    idle_ms: i64,
) -> Result<Vec<SessionListing>, C::Error> {
    let sql = "SELECT token_hash, kind, name, created_at, last_seen_at, expires_at FROM sessions \
         WHERE user_id = ?1 AND (expires_at IS NULL OR expires_at > ?2) \
         AND (kind = 'bot' OR last_seen_at >= ?2 - ?3) \
         ORDER BY created_at DESC, token_hash";
    conn.rows(sql, args![user_id, now_ms, idle_ms], |r| {
        Ok(SessionListing {
            token_hash: r.get(0)?,
            kind: SessionKind::parse(&r.get::<String>(1)?),
            name: r.get(2)?,
            created_at: r.get(3)?,
            last_seen_at: r.get(4)?,
            expires_at: r.get(5)?,
        })
    })
}

/// Delete the user's session whose listing id is `id`; returns its digest.
pub fn delete_session_by_listing_id<C: Sql>(
    conn: &C,
    user_id: i64,
    id: &str,
) -> Result<Option<[u8; 32]>, C::Error> {
    let hashes: Vec<[u8; 32]> = conn.rows(
        "SELECT token_hash FROM sessions WHERE user_id = ?1",
        args![user_id],
        |r| r.get(0),
    )?;
    let Some(hash) = hashes.into_iter().find(|h| listing_id(h) == id) else {
        return Ok(None);
    };
    delete_session(conn, &hash)?;
    Ok(Some(hash))
}

/// `settings` key bumped whenever a command-line tool revokes sessions or disables an
/// account (and, on PostgreSQL, whenever any node does), so every running server closes the
/// affected sockets at once.
const SESSIONS_EPOCH: &str = "sessions_epoch";
/// `settings` key bumped when the command line deletes messages (`hearth user purge`), so a
/// running server drops the history it keeps in memory.
const HISTORY_EPOCH: &str = "history_epoch";

/// Record that sessions were revoked by another process.
pub fn bump_sessions_epoch<C: Sql>(conn: &C) -> Result<(), C::Error> {
    bump(conn, SESSIONS_EPOCH)
}

/// Record that another process deleted messages.
pub fn bump_history_epoch<C: Sql>(conn: &C) -> Result<(), C::Error> {
    bump(conn, HISTORY_EPOCH)
}

fn bump<C: Sql>(conn: &C, key: &str) -> Result<(), C::Error> {
    conn.exec(
        "INSERT INTO settings (key, value) VALUES (?1, '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)",
        args![key],
    )?;
    Ok(())
}

/// The history counter (0 before any).
pub fn history_epoch<C: Sql>(conn: &C) -> Result<i64, C::Error> {
    Ok(setting(conn, HISTORY_EPOCH)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// The current value of the revocation counter (0 before any).
pub fn sessions_epoch<C: Sql>(conn: &C) -> Result<i64, C::Error> {
    Ok(setting(conn, SESSIONS_EPOCH)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}
