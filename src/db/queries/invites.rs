//! Invitations: stored by hash, listed, used and revoked.

use super::{args, Arg, Sql, SqlRow};

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
pub fn insert_invite<C: Sql>(
    conn: &C,
    code_hash: &[u8],
    created_by: Option<i64>,
    now_ms: i64,
    expires_at: i64,
    max_uses: i64,
) -> Result<i64, C::Error> {
    Ok(conn
        .row(
            "INSERT INTO invites (code_hash, created_by, created_at, expires_at, max_uses) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            args![code_hash, created_by, now_ms, expires_at, max_uses],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// One invitation by id.
pub fn invite<C: Sql>(conn: &C, id: i64) -> Result<Option<InviteRow>, C::Error> {
    Ok(list_invites_where(conn, "WHERE i.id = ?1", args![id])?.pop())
}

/// Every invitation, newest first.
pub fn list_invites<C: Sql>(conn: &C) -> Result<Vec<InviteRow>, C::Error> {
    list_invites_where(conn, "", args![])
}

fn list_invites_where<C: Sql>(
    conn: &C,
    filter: &str,
    args: &[&dyn Arg],
) -> Result<Vec<InviteRow>, C::Error> {
    let sql = format!(
        "SELECT i.id, u.username, i.created_at, i.expires_at, i.max_uses, i.uses, i.revoked \
         FROM invites i LEFT JOIN users u ON u.id = i.created_by {filter} ORDER BY i.id DESC"
    );
    conn.rows(&sql, args, |r| {
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
pub fn list_invites_by<C: Sql>(conn: &C, user_id: i64) -> Result<Vec<InviteRow>, C::Error> {
    list_invites_where(conn, "WHERE i.created_by = ?1", args![user_id])
}

/// Revoke an invitation that `user_id` made. Returns false when there is no such invitation
/// of theirs.
pub fn revoke_own_invite<C: Sql>(conn: &C, id: i64, user_id: i64) -> Result<bool, C::Error> {
    Ok(conn.exec(
        "UPDATE invites SET revoked = TRUE WHERE id = ?1 AND created_by = ?2",
        args![id, user_id],
    )? > 0)
}

/// Revoke an invitation. Returns false for an unknown id.
pub fn revoke_invite<C: Sql>(conn: &C, id: i64) -> Result<bool, C::Error> {
    Ok(conn.exec("UPDATE invites SET revoked = TRUE WHERE id = ?1", args![id])? > 0)
}

/// The id of the invitation with this code hash if it can still create an account: not
/// revoked, used up or expired, and its maker (when one made it, not the operator's command
/// line) still able to invite: not disabled, and an administrator unless `members_invite`.
/// A disabled spammer's links, or a member's once member invites are turned off, admit
/// nobody more.
pub fn usable_invite<C: Sql>(
    conn: &C,
    code_hash: &[u8],
    (now_ms, members_invite): (i64, bool),
) -> Result<Option<i64>, C::Error> {
    conn.row(
        "SELECT i.id FROM invites i LEFT JOIN users u ON u.id = i.created_by \
         WHERE i.code_hash = ?1 AND i.revoked = FALSE AND i.uses < i.max_uses \
         AND i.expires_at > ?2 \
         AND (i.created_by IS NULL OR (u.disabled = FALSE AND (u.is_admin = TRUE OR ?3)))",
        args![code_hash, now_ms, members_invite],
        |r| r.get(0),
    )
}

/// Count one use of an invitation, only if it is still usable. Returns whether it was.
pub fn use_invite<C: Sql>(conn: &C, id: i64, now_ms: i64) -> Result<bool, C::Error> {
    Ok(conn.exec(
        "UPDATE invites SET uses = uses + 1 WHERE id = ?1 AND revoked = FALSE \
         AND uses < max_uses AND expires_at > ?2",
        args![id, now_ms],
    )? > 0)
}
