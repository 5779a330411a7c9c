//! The administrators' use cases: accounts, the registration mode, invitations and the status
//! figures. The admin routes call them; the operator commands (`hearth user …`, `hearth invite
//! …`), which run without a server, share the invitation rules here and the account changes of
//! the store ([`db::AccountChange`], run by [`db::FileStore`]). Refusals are [`AppError`]s, and
//! every change is logged with who made it.

use serde::Deserialize;

use crate::app::error::{AppError, Code};
use crate::app::App;
use crate::db::queries::{InviteRow, RegistrationMode, Totals, UserSummary};
use crate::db::{self, now_ms, AccountChange, Change, NewInvite, User};
use crate::domain::Username;
use crate::events::Audience;
use crate::protocol::CLOSE_SESSION_ENDED;

/// Invites may create at most this many accounts each.
pub const MAX_INVITE_USES: i64 = 1000;
/// Invites may live at most this many hours (30 days).
pub const MAX_INVITE_HOURS: i64 = 720;
/// Uses when none is given.
pub const DEFAULT_INVITE_USES: i64 = 1;
/// Lifetime when none is given (7 days).
pub const DEFAULT_INVITE_HOURS: i64 = 168;

/// What the caller's input calls an invitation's two limits, so that a refusal names them the
/// way the person who typed them knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitNames {
    /// The use count.
    pub uses: &'static str,
    /// The lifetime in hours.
    pub hours: &'static str,
}

impl LimitNames {
    /// The fields of `POST /api/admin/invites`.
    pub const JSON: LimitNames = LimitNames {
        uses: "`max_uses`",
        hours: "`expires_in_hours`",
    };
    /// The flags of `hearth invite create`.
    pub const FLAGS: LimitNames = LimitNames {
        uses: "--uses",
        hours: "--hours",
    };
}

/// An invitation's use count and lifetime, within their ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteLimits {
    /// Accounts it may create.
    pub max_uses: i64,
    /// Hours until it expires.
    pub hours: i64,
}

impl InviteLimits {
    /// Apply the defaults to what was given and check the ranges: `bad_request` naming the
    /// limit as `names` calls it otherwise.
    pub fn check(
        max_uses: Option<i64>,
        hours: Option<i64>,
        names: LimitNames,
    ) -> Result<InviteLimits, AppError> {
        let max_uses = max_uses.unwrap_or(DEFAULT_INVITE_USES);
        if !(1..=MAX_INVITE_USES).contains(&max_uses) {
            return Err(AppError::bad_request(format!(
                "{} must be a whole number from 1 to {MAX_INVITE_USES}.",
                names.uses
            )));
        }
        let hours = hours.unwrap_or(DEFAULT_INVITE_HOURS);
        if !(1..=MAX_INVITE_HOURS).contains(&hours) {
            return Err(AppError::bad_request(format!(
                "{} must be a whole number from 1 to {MAX_INVITE_HOURS} (30 days).",
                names.hours
            )));
        }
        Ok(InviteLimits { max_uses, hours })
    }
}

/// The link that opens the sign-in page with an invite code filled in.
pub fn invite_url(base: &str, code: &str) -> String {
    format!("{}/?invite={code}", base.trim_end_matches('/'))
}

/// A new invitation, made now: its code, to be shown only once, and what to store (the code's
/// digest, never the code). `created_by` is the administrator, `None` for the command line.
pub fn mint_invite(limits: InviteLimits, created_by: Option<i64>) -> (String, NewInvite) {
    let (code, code_hash) = crate::auth::token::generate();
    let now = db::now_ms();
    let invite = NewInvite {
        code_hash,
        created_by,
        created_at: now,
        expires_at: now + limits.hours * 3_600_000,
        max_uses: limits.max_uses,
    };
    (code, invite)
}

/// Every account, by id.
pub async fn users(state: &App) -> Result<Vec<UserSummary>, AppError> {
    Ok(state.db.list_users().await?)
}

/// What an administrator can do to an account.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Block sign-in, revoke every session, close every socket.
    Disable,
    /// Allow sign-in again.
    Enable,
    /// Grant the administrator role.
    Promote,
    /// Remove the administrator role.
    Demote,
    /// Revoke every session and close every socket.
    SignOut,
    /// Replace the password with a random temporary one (returned once), revoke every session
    /// and bot token, and close every socket.
    ResetPassword,
}

impl Action {
    /// Whether the action ends the account's sessions, so its sockets are closed at once.
    fn signs_out(self) -> bool {
        matches!(
            self,
            Action::Disable | Action::SignOut | Action::ResetPassword
        )
    }
}

/// An account after an administrator acted on it.
#[derive(Debug, Clone)]
pub struct Acted {
    /// The account as it is now.
    pub user: UserSummary,
    /// The temporary password of [`Action::ResetPassword`], shown only this once.
    pub temporary_password: Option<String>,
}

/// `admin` does `action` to the account called `target`. Refused with `unknown_user` when
/// there is no such account, and with `bad_request` when administrators would disable or
/// demote themselves (someone must stay able to undo it).
pub async fn act_on_account(
    state: &App,
    admin: &User,
    target: &str,
    action: Action,
) -> Result<Acted, AppError> {
    let key = Username::parse(target).map_err(|_| unknown_user())?.key();
    if key == admin.username.to_ascii_lowercase()
        && matches!(action, Action::Disable | Action::Demote)
    {
        return Err(AppError::bad_request(
            "You cannot disable or demote yourself; ask another administrator.",
        ));
    }
    let (change, temporary_password) = account_change(state, action).await?;
    let user = state
        .db
        .change_account(key, change)
        .await?
        .ok_or_else(unknown_user)?;
    if action.signs_out() {
        let reason = "signed out by an administrator";
        state.hub.close_user(user.id, CLOSE_SESSION_ENDED, reason);
    }
    tracing::info!(admin = %admin.username, target = %user.username, ?action, "admin action");
    Ok(Acted {
        user,
        temporary_password,
    })
}

/// `admin` deletes every message of the account called `target` (spam clean-up): each becomes
/// a tombstone at its own position and the rooms' connections get the `deleted` frames.
/// Returns the account and how many messages were deleted; `unknown_user` when there is no
/// such account.
pub async fn purge_messages(
    state: &App,
    admin: &User,
    target: &str,
) -> Result<(UserSummary, usize), AppError> {
    let key = Username::parse(target).map_err(|_| unknown_user())?.key();
    let by = (admin.id, admin.username.clone());
    let (user, deleted) = state
        .db
        .transact(move |tx| {
            let Some((user, deleted)) = tx.purge_messages(&key, (by.0, &by.1), now_ms())? else {
                return Err(unknown_user());
            };
            let n = deleted.len();
            let changes = deleted
                .into_iter()
                .map(|change| Change::Message {
                    change,
                    nonce: None,
                    audience: Audience::Room,
                })
                .collect();
            Ok(((user, n), changes))
        })
        .await?;
    crate::app::uploads::collect_soon(state);
    tracing::info!(admin = %admin.username, target = %user.username, deleted, "messages purged");
    Ok((user, deleted))
}

/// The store's change for `action`, with the temporary password it sets, if any.
async fn account_change(
    state: &App,
    action: Action,
) -> Result<(AccountChange, Option<String>), AppError> {
    Ok(match action {
        Action::Disable => (AccountChange::Disable, None),
        Action::Enable => (AccountChange::Enable, None),
        Action::Promote => (AccountChange::Promote, None),
        Action::Demote => (AccountChange::Demote, None),
        Action::SignOut => (AccountChange::SignOut, None),
        Action::ResetPassword => {
            let password = temporary_password()?;
            let hash = state.auth.hash_new_password(password.clone()).await?;
            (AccountChange::ResetPassword(hash), Some(password))
        }
    })
}

/// 16 base64url characters (96 random bits): a password to hand over once and change.
fn temporary_password() -> Result<String, AppError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine;
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| {
        tracing::error!("the OS random source failed: {e}");
        AppError::new(
            Code::Unavailable,
            "The server cannot make a random password right now. Try again shortly.",
        )
    })?;
    Ok(B64URL.encode(raw))
}

/// The figures on the administrators' status panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Seconds since the server started.
    pub uptime_seconds: u64,
    /// Open WebSockets.
    pub connections: usize,
    /// Distinct users online.
    pub online_users: usize,
    /// Accounts, rooms and messages.
    pub totals: Totals,
    /// The database file plus its write-ahead log, in bytes.
    pub database_bytes: u64,
    /// Who may create an account.
    pub registration: RegistrationMode,
    /// With several nodes: this node's share.
    pub cluster: Option<NodeStatus>,
}

/// One node of several, as its status panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Its name (`cluster.node`, or the host's).
    pub node: String,
    /// Whether Redis answers it.
    pub redis: bool,
    /// Whether it hears who is online on the other nodes (else it shows the last it knew,
    /// then its own users only).
    pub presence_shared: bool,
}

/// The server's status figures.
pub async fn status(state: &App) -> Result<Status, AppError> {
    let path = state.config.database.path.clone();
    let (totals, registration, database_bytes) = state.db.status(path).await?;
    Ok(Status {
        uptime_seconds: state.started.elapsed().as_secs(),
        connections: state.hub.connection_count(),
        online_users: state.hub.online().len(),
        totals,
        database_bytes,
        registration,
        cluster: match &state.cluster {
            Some(c) => Some(NodeStatus {
                node: state.config.cluster.node_name(),
                redis: c.ping().await,
                presence_shared: c.presence.following(),
            }),
            None => None,
        },
    })
}

/// Who may create an account.
pub async fn registration_mode(state: &App) -> Result<RegistrationMode, AppError> {
    Ok(state.db.registration_mode().await?)
}

/// `admin` changes who may create an account; the next registration sees it.
pub async fn set_registration_mode(
    state: &App,
    admin: &User,
    mode: RegistrationMode,
) -> Result<(), AppError> {
    state.db.set_registration_mode(mode).await?;
    tracing::info!(admin = %admin.username, mode = mode.as_str(), "registration mode changed");
    Ok(())
}

/// `admin` makes an invitation: the stored row and its code, which is shown only this once.
pub async fn create_invite(
    state: &App,
    admin: &User,
    limits: InviteLimits,
) -> Result<(InviteRow, String), AppError> {
    let (code, invite) = mint_invite(limits, Some(admin.id));
    let row = state.db.create_invite(invite).await?;
    tracing::info!(
        admin = %admin.username,
        invite = row.id,
        max_uses = limits.max_uses,
        expires_in_hours = limits.hours,
        "invite created"
    );
    Ok((row, code))
}

/// Every invitation, newest first.
pub async fn invites(state: &App) -> Result<Vec<InviteRow>, AppError> {
    Ok(state.db.list_invites().await?)
}

/// `admin` revokes an invitation (again, if it already was); `unknown_invite` when there is
/// no such invitation.
pub async fn revoke_invite(state: &App, admin: &User, id: i64) -> Result<(), AppError> {
    if !state.db.revoke_invite(id).await? {
        return Err(AppError::new(
            Code::UnknownInvite,
            "There is no such invite.",
        ));
    }
    tracing::info!(admin = %admin.username, invite = id, "invite revoked");
    Ok(())
}

fn unknown_user() -> AppError {
    AppError::new(Code::UnknownUser, "There is no such user.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_limits_default_and_name_the_refused_limit_as_the_caller_does() {
        let ok = InviteLimits::check(None, None, LimitNames::JSON).unwrap();
        assert_eq!((ok.max_uses, ok.hours), (1, 168));
        let e = InviteLimits::check(Some(0), None, LimitNames::JSON).unwrap_err();
        assert_eq!(e.code, Code::BadRequest);
        assert_eq!(
            e.message,
            "`max_uses` must be a whole number from 1 to 1000."
        );
        let e = InviteLimits::check(None, Some(721), LimitNames::FLAGS).unwrap_err();
        assert_eq!(
            e.message,
            "--hours must be a whole number from 1 to 720 (30 days)."
        );
        assert!(InviteLimits::check(Some(1000), Some(720), LimitNames::FLAGS).is_ok());
    }

    #[test]
    fn invite_urls_join_the_base_with_one_slash() {
        assert_eq!(invite_url("https://x.org/", "c"), "https://x.org/?invite=c");
        assert_eq!(invite_url("http://HOST", "c"), "http://HOST/?invite=c");
    }
}
