//! What administrators change and read: accounts, the registration mode, invitations and the
//! status totals.

use std::path::PathBuf;

use crate::db::queries::{self, InviteRow, RegistrationMode, Totals, UserSummary};
use crate::db::{Db, DbError};

/// A change an administrator makes to an account.
#[derive(Debug, Clone)]
pub enum AccountChange {
    /// Block sign-in (and revoke every session).
    Disable,
    /// Allow sign-in again.
    Enable,
    /// Grant the administrator role.
    Promote,
    /// Remove the administrator role.
    Demote,
    /// Revoke every session.
    SignOut,
    /// Store this password hash and revoke every session.
    ResetPassword(String),
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
        self.write(move |c| {
            let Some(user) = queries::user_summary(c, &key)? else {
                return Ok(None);
            };
            match &change {
                AccountChange::Disable => queries::set_disabled(c, &key, true).map(drop)?,
                AccountChange::Enable => queries::set_disabled(c, &key, false).map(drop)?,
                AccountChange::Promote => queries::set_admin(c, &key, true).map(drop)?,
                AccountChange::Demote => queries::set_admin(c, &key, false).map(drop)?,
                AccountChange::SignOut => queries::delete_user_sessions(c, user.id).map(drop)?,
                AccountChange::ResetPassword(hash) => {
                    queries::set_password_hash(c, user.id, hash)?;
                    queries::delete_user_sessions(c, user.id)?;
                }
            }
            queries::user_summary(c, &key)
        })
        .await
    }

    /// Accounts, rooms and messages, the registration mode, and the bytes the database at
    /// `path` takes on disk.
    pub async fn status(&self, path: PathBuf) -> Result<(Totals, RegistrationMode, u64), DbError> {
        self.read(move |c| {
            let totals = queries::totals(c)?;
            let mode = queries::registration_mode(c)?;
            Ok((totals, mode, bytes_on_disk(&path)))
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

    /// Store a new invitation by its code's digest; the stored row.
    pub async fn create_invite(
        &self,
        code_hash: [u8; 32],
        creator: i64,
        now_ms: i64,
        expires_at: i64,
        max_uses: i64,
    ) -> Result<Option<InviteRow>, DbError> {
        self.write(move |c| {
            let id =
                queries::insert_invite(c, &code_hash, Some(creator), now_ms, expires_at, max_uses)?;
            queries::invite(c, id)
        })
        .await
    }

    /// Every invitation, newest first.
    pub async fn list_invites(&self) -> Result<Vec<InviteRow>, DbError> {
        self.read(queries::list_invites).await
    }

    /// Revoke an invitation; `false` when there is no such invitation.
    pub async fn revoke_invite(&self, id: i64) -> Result<bool, DbError> {
        self.write(move |c| queries::revoke_invite(c, id)).await
    }
}
