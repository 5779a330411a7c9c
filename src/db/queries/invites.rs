//! Invitations: stored by hash, listed, used and revoked.

use rusqlite::{params, Connection, OptionalExtension};

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
    let sql = format!(
        "SELECT i.id, u.username, i.created_at, i.expires_at, i.max_uses, i.uses, i.revoked \
         FROM invites i LEFT JOIN users u ON u.id = i.created_by {filter} ORDER BY i.id DESC"
    );
    super::all_rows(conn, &sql, args, |r| {
        Ok(InviteRow {
            id: r.get(0)?,
            created_by: r.get(1)?,
            created_at: r.get(2)?,
            expires_at: r.get(3)?,
            max_uses: r.get(4)?,
            uses: r.get(5)?,
            revoked: r.get(6)?,
        })
    })
}

/// The invitations one account made, newest first.
pub fn list_invites_by(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<InviteRow>> {
    list_invites_where(conn, "WHERE i.created_by = ?1", [user_id])
}

/// Revoke an invitation that `user_id` made. Returns false when there is no such invitation
/// of theirs.
pub fn revoke_own_invite(conn: &Connection, id: i64, user_id: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE invites SET revoked = 1 WHERE id = ?1 AND created_by = ?2")?
        .execute([id, user_id])?
        > 0)
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
