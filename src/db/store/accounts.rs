//! Accounts and sessions: sign-up with its registration gate, sign-in lookups, password
//! changes and the sessions and bot tokens they revoke.

use crate::db::sql::{Conn, Sql as _, SqlError};

use crate::db::queries::{self, RegistrationMode, SessionListing};
use crate::db::{Db, DbError, NewAdmin, SessionInfo, SessionKind, SessionRow, Tx, User};
use crate::events::Change;

/// Browser sessions one account keeps: signing in once more signs out the one used least
/// recently, so that sign-ins in a loop cannot grow the table (or the list of devices)
/// without end.
pub const BROWSER_SESSIONS: i64 = 100;

/// What the registration mode says about a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Registration is open.
    Open,
    /// Admitted by this (usable) invitation.
    Invite(i64),
    /// Registration is closed.
    Closed,
    /// Registration needs an invitation and none was given.
    InviteRequired,
    /// The invitation given is unknown, used up, expired or revoked.
    InvalidInvite,
}

impl Gate {
    /// Whether the account may be created.
    pub fn admits(self) -> bool {
        matches!(self, Gate::Open | Gate::Invite(_))
    }
}

/// An account to create.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The name as chosen.
    pub username: String,
    /// Its case-folded key.
    pub key: String,
    /// The PHC string of the password.
    pub password_hash: String,
    /// Whether it administers the server.
    pub admin: NewAdmin,
    /// SHA-256 of the invitation code presented, if any.
    pub invite: Option<[u8; 32]>,
    /// Whether links made by members (not administrators) admit.
    pub members_invite: bool,
    /// Creation time (ms).
    pub now_ms: i64,
}

/// How creating an account ended.
#[derive(Debug)]
pub enum Created {
    /// Created, admitted by this invitation (if one was needed), which is now used once more.
    Account(User, Option<i64>),
    /// The registration gate said no (checked again in the creating transaction).
    Refused(Gate),
    /// Someone took the name first.
    NameTaken,
}

/// The registration gate for an invitation code hash at `now_ms` (`members_invite`: links
/// made by members admit). The setup link (`setup`: its code was presented) admits whatever
/// the mode while no account administers the server: the first administrator needs a way in
/// on a server whose registration an operator closed before starting it.
fn gate(
    c: &Conn,
    invite: Option<&[u8; 32]>,
    setup: bool,
    (now_ms, members_invite): (i64, bool),
) -> Result<Gate, SqlError> {
    if setup && !queries::has_admin(c)? {
        return Ok(Gate::Open);
    }
    Ok(match queries::registration_mode(c)? {
        RegistrationMode::Open => Gate::Open,
        RegistrationMode::Closed => Gate::Closed,
        RegistrationMode::Invite => match invite {
            None => Gate::InviteRequired,
            Some(h) => queries::usable_invite(c, h, (now_ms, members_invite))?
                .map_or(Gate::InvalidInvite, Gate::Invite),
        },
    })
}

impl Db {
    /// Whether any account administers the server.
    pub async fn has_admin(&self) -> Result<bool, DbError> {
        self.read(queries::has_admin).await
    }

    /// The cheap checks before a sign-up spends a password hash: the registration gate, and
    /// whether the name (by its key) is taken.
    pub async fn registration_check(
        &self,
        invite: Option<[u8; 32]>,
        setup: bool,
        key: String,
        (now_ms, members_invite): (i64, bool),
    ) -> Result<(Gate, bool), DbError> {
        self.read(move |c| {
            let gate = gate(c, invite.as_ref(), setup, (now_ms, members_invite))?;
            let taken = gate.admits() && queries::username_taken(c, &key)?;
            Ok((gate, taken))
        })
        .await
    }

    /// Create an account: the gate is checked again and the invitation used in the same
    /// transaction, which is rolled back unless the account was created.
    pub async fn create_account(&self, new: NewAccount) -> Result<Created, DbError> {
        /// Why no account was made (its writes are rolled back).
        enum NotMade {
            Refused(Gate),
            NameTaken,
            Failed(DbError),
        }
        impl From<DbError> for NotMade {
            fn from(e: DbError) -> Self {
                NotMade::Failed(e)
            }
        }
        // Answered at the commit, then once the hub has told `general` (a barrier): the
        // caller's next step (the new account's connection, say) comes after the notice, and
        // a delivery that fails (a bug, reset) does not turn a committed account into an
        // error that a retry would answer with "name taken".
        let made = self
            .transact_then(
                move |tx: &Tx<'_>| {
                    let c = tx.0;
                    let setup = new.admin == NewAdmin::IfNoAdmin;
                    let gate = gate(
                        c,
                        new.invite.as_ref(),
                        setup,
                        (new.now_ms, new.members_invite),
                    )
                    .map_err(DbError::from)?;
                    if !gate.admits() {
                        return Err(NotMade::Refused(gate));
                    }
                    let user = queries::insert_user(
                        c,
                        &new.username,
                        &new.key,
                        &new.password_hash,
                        new.admin,
                        new.now_ms,
                    )
                    .map_err(DbError::from)?
                    .ok_or(NotMade::NameTaken)?;
                    let invite = match gate {
                        Gate::Invite(id) => {
                            // Usable a moment ago in this transaction, so this cannot fail short
                            // of a bug; if it does, nobody gets in on a used-up invitation.
                            if !queries::use_invite(c, id, new.now_ms).map_err(DbError::from)? {
                                return Err(NotMade::Refused(Gate::InvalidInvite));
                            }
                            Some(id)
                        }
                        _ => None,
                    };
                    // Everyone starts in `general`: its members' pages count one more.
                    let general =
                        queries::room_by_name(c, "general", user.id).map_err(DbError::from)?;
                    let changes = general
                        .map(|room| Change::MemberJoined {
                            room_id: room.id,
                            room: room.name,
                            user_id: user.id,
                            username: user.username.clone(),
                        })
                        .into_iter()
                        .collect();
                    Ok(((user, invite), changes))
                },
                false,
            )
            .await;
        if made.is_ok() {
            self.barrier().await;
        }
        match made {
            Ok((user, invite)) => Ok(Created::Account(user, invite)),
            Err(NotMade::Refused(gate)) => Ok(Created::Refused(gate)),
            Err(NotMade::NameTaken) => Ok(Created::NameTaken),
            Err(NotMade::Failed(e)) => Err(e),
        }
    }

    /// The account and password hash for a sign-in, if it exists and is enabled.
    pub async fn user_for_login(&self, key: String) -> Result<Option<(User, String)>, DbError> {
        self.read(move |c| queries::user_for_login(c, &key)).await
    }

    /// The stored password hash of an account.
    pub async fn password_hash(&self, user_id: i64) -> Result<Option<String>, DbError> {
        self.read(move |c| queries::password_hash(c, user_id)).await
    }

    /// Replace a password hash (a rehash on sign-in; nothing is revoked).
    pub async fn set_password_hash(&self, user_id: i64, hash: String) -> Result<(), DbError> {
        self.write(move |c| queries::set_password_hash(c, user_id, &hash))
            .await
    }

    /// Change a password: every bot token is revoked, and with `keep` every other session
    /// but that one too. Returns the revoked digests (to close their sockets).
    pub async fn change_password(
        &self,
        user_id: i64,
        hash: String,
        keep: Option<[u8; 32]>,
    ) -> Result<Vec<[u8; 32]>, DbError> {
        let revoked = self
            .write(move |c| {
                // Sessions first, then the account's row (see `admin::change_account`).
                let mut revoked = queries::delete_bot_sessions(c, user_id)?;
                if let Some(keep) = keep {
                    revoked.extend(queries::delete_other_sessions(c, user_id, &keep)?);
                }
                queries::set_password_hash(c, user_id, &hash)?;
                tell_other_nodes(c)?;
                Ok(revoked)
            })
            .await;
        self.sessions_revoked().await;
        revoked
    }

    /// Store a new session or token; `false` (nothing stored) when it is a bot token and the
    /// user already has `cap` of them (0 = no cap), counted in the same transaction. A browser
    /// session beyond [`BROWSER_SESSIONS`] signs the least recently used one out.
    pub async fn insert_session(&self, row: SessionRow, cap: u32) -> Result<bool, DbError> {
        let (inserted, trimmed) = self
            .write(move |c| {
                if row.kind == SessionKind::Bot
                    && cap > 0
                    && queries::bot_session_count(c, row.user_id)? >= i64::from(cap)
                {
                    return Ok((false, 0));
                }
                queries::insert_session(c, &row)?;
                let mut trimmed = 0;
                if row.kind == SessionKind::Cookie {
                    trimmed = queries::trim_cookie_sessions(c, row.user_id, BROWSER_SESSIONS)?;
                    if trimmed > 0 {
                        tell_other_nodes(c)?;
                    }
                }
                Ok((true, trimmed))
            })
            .await?;
        if trimmed > 0 {
            self.sessions_revoked().await;
        }
        Ok(inserted)
    }

    /// The user's live sessions and bot tokens, newest first.
    pub async fn sessions_of_user(
        &self,
        user_id: i64,
        now_ms: i64,
        idle_ms: i64,
    ) -> Result<Vec<SessionListing>, DbError> {
        self.read(move |c| queries::sessions_of_user(c, user_id, now_ms, idle_ms))
            .await
    }

    /// Revoke one of the user's sessions by its listing id; its digest, if it existed.
    pub async fn revoke_listed_session(
        &self,
        user_id: i64,
        id: String,
    ) -> Result<Option<[u8; 32]>, DbError> {
        let revoked = self
            .write(move |c| {
                let revoked = queries::delete_session_by_listing_id(c, user_id, &id)?;
                tell_other_nodes(c)?;
                Ok(revoked)
            })
            .await;
        self.sessions_revoked().await;
        revoked
    }

    /// Delete expired sessions; how many went.
    pub async fn delete_expired_sessions(
        &self,
        now_ms: i64,
        idle_ms: i64,
    ) -> Result<usize, DbError> {
        self.write(move |c| queries::delete_expired_sessions(c, now_ms, idle_ms))
            .await
    }

    /// Revoke the session behind a digest.
    pub async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, DbError> {
        let deleted = self
            .write(move |c| {
                let deleted = queries::delete_session(c, &token_hash)?;
                tell_other_nodes(c)?;
                Ok(deleted)
            })
            .await;
        self.sessions_revoked().await;
        deleted
    }

    /// The session behind a digest and its user, if it is live at `now_ms`.
    pub async fn session_user(
        &self,
        token_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Option<SessionInfo>, DbError> {
        self.read(move |c| queries::session_user(c, &token_hash, now_ms))
            .await
    }

    /// Record activity on a session.
    pub async fn touch_session(&self, token_hash: [u8; 32], now_ms: i64) -> Result<(), DbError> {
        self.write(move |c| queries::touch_session(c, &token_hash, now_ms))
            .await
    }
}

/// On PostgreSQL, a revocation (a session ended, a password changed, an account changed) also
/// moves the revocation counter, which every node watches: each of them forgets the sessions
/// it cached and closes the sockets of the sessions that ended. (A single SQLite server has
/// done both already; the counter there is for the command line's changes.)
pub(super) fn tell_other_nodes(c: &Conn) -> Result<(), SqlError> {
    if c.is_postgres() {
        queries::bump_sessions_epoch(c)?;
    }
    Ok(())
}
