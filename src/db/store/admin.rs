//! What administrators change and read: accounts, the registration mode, invitations and the
//! status totals. Each change is one function over a connection, run by [`Db`] in the writer's
//! transaction and by [`super::FileStore`] in the operator's own, so the admin page and the
//! command line change an account in exactly the same way.

use std::path::PathBuf;

use crate::db::sql::{Conn, SqlError};

use crate::db::queries::{self, InviteRow, RegistrationMode, Totals, UserSummary};
use crate::db::{Db, DbError, MessageChange};

/// A change an administrator makes to an account.
#[derive(Debug, Clone)]
pub enum AccountChange {
    /// Block sign-in and revoke every session and bot token.
    Disable,
    /// Allow sign-in again.
    Enable,
    /// Grant the administrator role.
    Promote,
    /// Remove the administrator role.
    Demote,
    /// Revoke every session and bot token.
    SignOut,
    /// Store this password hash and revoke every session and bot token: whoever knew the old
    /// password may have made one.
    ResetPassword(String),
}

/// An invitation to store: the digest of its code, never the code itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvite {
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// The administrator who made it; `None` for the command line.
    pub created_by: Option<i64>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry (ms).
    pub expires_at: i64,
    /// Accounts it may create.
    pub max_uses: i64,
}

/// Revoke every session and bot token of a user.
fn revoke_sessions(c: &Conn, user_id: i64) -> Result<usize, SqlError> {
    queries::delete_user_sessions(c, user_id)
}

/// Apply `change` to the account with this key; the account afterwards, or `None` when there
/// is no such account. Runs inside the caller's transaction, and bumps the sessions epoch so
/// that a server other than the one changing it (the command line beside a running server)
/// closes revoked sockets and forgets what it knew of the account's sessions.
pub(super) fn change_account(
    c: &Conn,
    key: &str,
    change: &AccountChange,
) -> Result<Option<UserSummary>, SqlError> {
    let Some(user) = queries::user_summary(c, key)? else {
        return Ok(None);
    };
    // Sessions are deleted before the account's row is written, in the order every
    // transaction takes them (deleting a session writes its account's last visit, see
    // schema migration 13): on PostgreSQL, the other order could deadlock with a node's
    // sweep of expired sessions.
    match change {
        AccountChange::Disable => {
            revoke_sessions(c, user.id)?;
            queries::set_disabled(c, user.id, true)?;
        }
        AccountChange::Enable => queries::set_disabled(c, user.id, false)?,
        AccountChange::Promote => queries::set_admin(c, user.id, true)?,
        AccountChange::Demote => queries::set_admin(c, user.id, false)?,
        AccountChange::SignOut => {
            revoke_sessions(c, user.id)?;
        }
        AccountChange::ResetPassword(hash) => {
            revoke_sessions(c, user.id)?;
            queries::set_password_hash(c, user.id, hash)?;
        }
    }
    queries::bump_sessions_epoch(c)?;
    queries::user_summary(c, key)
}

/// Delete every message of the account with this key that is not deleted yet, each a
/// tombstone at its own position, by `by` (`(None, "")` for the operator's command line);
/// the account and the deletions, or `None` when there is no such account. Runs inside the
/// caller's transaction.
pub(super) fn purge_messages(
    c: &Conn,
    key: &str,
    by: (Option<i64>, &str),
    now_ms: i64,
) -> Result<Option<(UserSummary, Vec<MessageChange>)>, SqlError> {
    let Some(user) = queries::user_summary(c, key)? else {
        return Ok(None);
    };
    let mut deleted = Vec::new();
    for id in queries::live_message_ids_by(c, user.id)? {
        if let Some((msg, _)) = queries::message_by_id(c, id)? {
            deleted.push(queries::delete_message(c, &msg, by, now_ms)?);
        }
    }
    Ok(Some((user, deleted)))
}

/// Store an invitation; the stored row, read back in the same transaction.
pub(super) fn create_invite(c: &Conn, new: &NewInvite) -> Result<InviteRow, SqlError> {
    let id = queries::insert_invite(
        c,
        &new.code_hash,
        new.created_by,
        new.created_at,
        new.expires_at,
        new.max_uses,
    )?;
    queries::invite(c, id)?.ok_or(SqlError::Missing("the new invitation"))
}

/// The store's size on disk: the database file plus its write-ahead log.
fn bytes_on_disk(path: &std::path::Path) -> u64 {
    let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.to_path_buf().into_os_string();
    wal.push("-wal");
    len(path) + len(std::path::Path::new(&wal))
}

impl Db {
    /// Every account, by id.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>, DbError> {
        self.read(queries::list_users).await
    }

    /// Apply `change` to the account with this key; the account afterwards, or `None` when
    /// there is no such account.
    pub async fn change_account(
        &self,
        key: String,
        change: AccountChange,
    ) -> Result<Option<UserSummary>, DbError> {
        let changed = self
            .write(move |c| {
                let changed = change_account(c, &key, &change)?;
                super::accounts::tell_other_nodes(c)?;
                Ok(changed)
            })
            .await;
        self.sessions_revoked().await;
        changed
    }

    /// Accounts, rooms and messages, the registration mode, and the bytes the database at
    /// `path` takes on disk.
    pub async fn status(&self, path: PathBuf) -> Result<(Totals, RegistrationMode, u64), DbError> {
        self.read(move |c| {
            let totals = queries::totals(c)?;
            let mode = queries::registration_mode(c)?;
            let bytes = match queries::database_bytes(c)? {
                Some(bytes) => bytes.max(0) as u64,
                None => bytes_on_disk(&path),
            };
            Ok((totals, mode, bytes))
        })
        .await
    }

    /// Who may create an account.
    pub async fn registration_mode(&self) -> Result<RegistrationMode, DbError> {
        self.read(queries::registration_mode).await
    }

    /// Change who may create an account.
    pub async fn set_registration_mode(&self, mode: RegistrationMode) -> Result<(), DbError> {
        self.write(move |c| queries::set_registration_mode(c, mode))
            .await
    }

    /// Store a new invitation; the stored row.
    pub async fn create_invite(&self, new: NewInvite) -> Result<InviteRow, DbError> {
        self.write(move |c| create_invite(c, &new)).await
    }

    /// Every invitation, newest first.
    pub async fn list_invites(&self) -> Result<Vec<InviteRow>, DbError> {
        self.read(queries::list_invites).await
    }

    /// The invitations `user_id` made, newest first.
    pub async fn list_invites_by(&self, user_id: i64) -> Result<Vec<InviteRow>, DbError> {
        self.read(move |c| queries::list_invites_by(c, user_id))
            .await
    }

    /// Revoke an invitation `user_id` made; `false` when there is no such invitation of theirs.
    pub async fn revoke_own_invite(&self, id: i64, user_id: i64) -> Result<bool, DbError> {
        self.write(move |c| queries::revoke_own_invite(c, id, user_id))
            .await
    }

    /// Revoke an invitation; `false` when there is no such invitation.
    pub async fn revoke_invite(&self, id: i64) -> Result<bool, DbError> {
        self.write(move |c| queries::revoke_invite(c, id)).await
    }
}
