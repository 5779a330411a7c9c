//! Accounts: creation, sign-in lookups, passwords, and what administrators read and change.

use super::*;

/// The name of the one-time setup code in `server_keys` (see `Auth::prepare_setup`).
pub const SETUP_CODE_KEY: &str = "setup_code";

/// Create a user and make them a member of `general`, with nothing unread. `None` if the name
/// is taken. `admin` says whether the new account administers the server.
pub fn insert_user<C: Sql>(
    conn: &C,
    username: &str,
    key: &str,
    password_hash: &str,
    admin: NewAdmin,
    now_ms: i64,
) -> Result<Option<User>, C::Error> {
    let is_admin = match admin {
        NewAdmin::No => "FALSE",
        NewAdmin::IfFirst => "NOT EXISTS (SELECT 1 FROM users)",
        NewAdmin::IfNoAdmin => "NOT EXISTS (SELECT 1 FROM users WHERE is_admin = TRUE)",
    };
    let inserted = conn.row(
        &format!(
            "INSERT INTO users (username, username_key, password_hash, created_at, is_admin) \
             VALUES (?1, ?2, ?3, ?4, {is_admin}) \
             ON CONFLICT (username_key) DO NOTHING RETURNING id, is_admin"
        ),
        args![username, key, password_hash, now_ms],
        |r| Ok((r.get::<i64>(0)?, r.get::<bool>(1)?)),
    )?;
    let Some((id, made_admin)) = inserted else {
        return Ok(None);
    };
    if made_admin && admin == NewAdmin::IfNoAdmin {
        // The setup code is spent by the account it makes the administrator. Two
        // registrations with it at once on two nodes may both have seen no administrator
        // (PostgreSQL reads what was committed): the second waits for the first's deletion,
        // finds nothing to delete, and stays a member.
        let spent = conn.exec(
            "DELETE FROM server_keys WHERE name = ?1",
            args![SETUP_CODE_KEY],
        )?;
        if spent == 0 {
            conn.exec("UPDATE users SET is_admin = FALSE WHERE id = ?1", args![id])?;
        }
    }
    conn.exec(
        "INSERT INTO memberships (room_id, user_id, joined_at, last_read) \
         SELECT r.id, ?1, ?2, COALESCE((SELECT MAX(id) FROM messages WHERE room_id = r.id), 0) \
         FROM rooms r WHERE r.name = 'general'",
        args![id, now_ms],
    )?;
    Ok(Some(User {
        id,
        username: username.to_string(),
    }))
}

/// A user and their password hash, looked up by case-folded name.
pub fn user_for_login<C: Sql>(conn: &C, key: &str) -> Result<Option<(User, String)>, C::Error> {
    conn.row(
        "SELECT id, username, password_hash FROM users \
         WHERE username_key = ?1 AND disabled = FALSE",
        args![key],
        |r| {
            Ok((
                User {
                    id: r.get(0)?,
                    username: r.get(1)?,
                },
                r.get(2)?,
            ))
        },
    )
}

/// Replace a user's password hash (used to raise the iteration count on login).
pub fn set_password_hash<C: Sql>(conn: &C, user_id: i64, hash: &str) -> Result<(), C::Error> {
    conn.exec(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        args![user_id, hash],
    )?;
    Ok(())
}

// ---- administration: the admin page and the operator commands ---------------------------

/// An account as administrators see it (`GET /api/admin/users`, `hearth user list`).
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
    /// Most recent activity (ms): of an open session, or of one that ended (signed out,
    /// revoked, expired); none if the account never signed in.
    pub last_seen: Option<i64>,
}

/// Every account, by id.
pub fn list_users<C: Sql>(conn: &C) -> Result<Vec<UserSummary>, C::Error> {
    list_users_where(conn, "", args![])
}

fn list_users_where<C: Sql>(
    conn: &C,
    filter: &str,
    args: &[&dyn Arg],
) -> Result<Vec<UserSummary>, C::Error> {
    let sql = format!(
        "SELECT id, username, is_admin, disabled, created_at, \
         CASE WHEN open_at IS NULL OR ended_at > open_at THEN ended_at ELSE open_at END FROM \
         (SELECT u.id, u.username, u.is_admin, u.disabled, u.created_at, \
          u.last_seen_at AS ended_at, \
          (SELECT MAX(last_seen_at) FROM sessions s WHERE s.user_id = u.id) AS open_at \
          FROM users u {filter}) seen ORDER BY id"
    );
    conn.rows(&sql, args, |r| {
        Ok(UserSummary {
            id: r.get(0)?,
            username: r.get(1)?,
            is_admin: r.get(2)?,
            disabled: r.get(3)?,
            created_at: r.get(4)?,
            last_seen: r.get(5)?,
        })
    })
}

/// Set whether an account is disabled. Revoking its sessions is the caller's part (the store
/// does it in the same transaction).
pub fn set_disabled<C: Sql>(conn: &C, user_id: i64, disabled: bool) -> Result<(), C::Error> {
    conn.exec(
        "UPDATE users SET disabled = ?2 WHERE id = ?1",
        args![user_id, disabled],
    )?;
    Ok(())
}

/// Set whether an account administers the server.
pub fn set_admin<C: Sql>(conn: &C, user_id: i64, admin: bool) -> Result<(), C::Error> {
    conn.exec(
        "UPDATE users SET is_admin = ?2 WHERE id = ?1",
        args![user_id, admin],
    )?;
    Ok(())
}

/// One account by case-folded name.
pub fn user_summary<C: Sql>(conn: &C, key: &str) -> Result<Option<UserSummary>, C::Error> {
    Ok(list_users_where(conn, "WHERE u.username_key = ?1", args![key])?.pop())
}

/// Whether a name (case-folded) belongs to an account.
pub fn username_taken<C: Sql>(conn: &C, key: &str) -> Result<bool, C::Error> {
    let found = conn.row(
        "SELECT 1 FROM users WHERE username_key = ?1",
        args![key],
        |_| Ok(()),
    )?;
    Ok(found.is_some())
}

/// Whether any account administers the server.
pub fn has_admin<C: Sql>(conn: &C) -> Result<bool, C::Error> {
    let found = conn.row(
        "SELECT 1 FROM users WHERE is_admin = TRUE LIMIT 1",
        args![],
        |_| Ok(()),
    )?;
    Ok(found.is_some())
}

/// Enabled accounts whose case-folded name starts with `prefix_key` (ASCII username
/// characters only), in name order, at most `limit`: `(id, username)`. The range on the
/// unique `username_key` index reads only the matching rows (in byte order, which
/// PostgreSQL's key columns are declared to use).
pub fn users_by_prefix<C: Sql>(
    conn: &C,
    prefix_key: &str,
    limit: i64,
) -> Result<Vec<(i64, String)>, C::Error> {
    // Every username character sorts below U+007F, so this bounds the prefix's range.
    let upper = format!("{prefix_key}\u{7f}");
    conn.rows(
        "SELECT id, username FROM users \
         WHERE username_key >= ?1 AND username_key < ?2 AND disabled = FALSE AND hook = FALSE \
         ORDER BY username_key LIMIT ?3",
        args![prefix_key, upper, limit],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
