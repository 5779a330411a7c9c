//! Administrator routes under `/api/admin`, and the public `GET /api/registration`. Every
//! admin handler checks the caller's role on the server; every action is logged with who did it.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use super::error::ApiError;
use crate::app::App;
use crate::auth::Identity;
use crate::db::queries::{InviteRow, RegistrationMode, UserSummary};
use crate::db::{self, AccountChange};
use crate::domain::Username;
use crate::protocol::rfc3339;
use crate::protocol::CLOSE_SESSION_ENDED;

use super::filters::{admin, admin_write, json_body, with_state};
use super::filters::{forwarded_proto, ForwardedProto};
use super::handlers::request_base_url;
use super::SMALL_BODY;
use warp::Filter;

/// Every route under `/api/admin`.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // GET /api/admin/users
    let admin_users = warp::path!("api" / "admin" / "users")
        .and(warp::get())
        .and(admin(s.clone()))
        .and(with_state(s.clone()))
        .and_then(list_users);
    // POST /api/admin/users/{name}
    let admin_action = warp::path!("api" / "admin" / "users" / String)
        .and(warp::post())
        .and(admin_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(user_action);
    // GET /api/admin/status
    let status = warp::path!("api" / "admin" / "status")
        .and(warp::get())
        .and(admin(s.clone()))
        .and(with_state(s.clone()))
        .and_then(server_status);
    // GET /api/admin/registration
    let get_registration = warp::path!("api" / "admin" / "registration")
        .and(warp::get())
        .and(admin(s.clone()))
        .and(with_state(s.clone()))
        .and_then(admin_registration);
    // PUT /api/admin/registration
    let put_registration = warp::path!("api" / "admin" / "registration")
        .and(warp::put())
        .and(admin_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(set_registration);
    // GET /api/admin/invites
    let list_invites = warp::path!("api" / "admin" / "invites")
        .and(warp::get())
        .and(admin(s.clone()))
        .and(with_state(s.clone()))
        .and_then(invites);
    // POST /api/admin/invites
    let create_invite = warp::path!("api" / "admin" / "invites")
        .and(warp::post())
        .and(admin_write(s.clone()))
        .and(warp::header::optional::<String>("host"))
        .and(forwarded_proto())
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(new_invite);
    // DELETE /api/admin/invites/{id}
    let revoke_invite = warp::path!("api" / "admin" / "invites" / String)
        .and(warp::delete())
        .and(admin_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(revoke_invite);
    // GET /api/registration (public: the sign-in page asks what to offer)
    let public_registration = warp::path!("api" / "registration")
        .and(warp::get())
        .and(with_state(s.clone()))
        .and_then(public_registration);
    admin_users
        .or(admin_action)
        .unify()
        .or(status)
        .unify()
        .or(get_registration)
        .unify()
        .or(put_registration)
        .unify()
        .or(list_invites)
        .unify()
        .or(create_invite)
        .unify()
        .or(revoke_invite)
        .unify()
        .or(public_registration)
        .unify()
}

/// `{"action"}` for `POST /api/admin/users/{name}`.
#[derive(Debug, Deserialize)]
pub struct UserAction {
    action: Action,
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
    /// and close every socket.
    ResetPassword,
}

fn view(u: &UserSummary) -> serde_json::Value {
    json!({
        "id": u.id,
        "username": u.username,
        "is_admin": u.is_admin,
        "disabled": u.disabled,
        "created_at": rfc3339(u.created_at),
        "last_seen": u.last_seen.map(rfc3339),
    })
}

/// GET /api/admin/users
pub async fn list_users(_admin: Identity, state: App) -> Result<Response, Rejection> {
    let users = state
        .db
        .list_users()
        .await
        .map_err(|e| ApiError::from(e).reject())?;
    let users: Vec<_> = users.iter().map(view).collect();
    Ok(warp::reply::json(&json!({ "users": users })).into_response())
}

/// POST /api/admin/users/{name}
pub async fn user_action(
    name: String,
    id: Identity,
    body: UserAction,
    state: App,
) -> Result<Response, Rejection> {
    let target = Username::parse(&name).map_err(|_| unknown_user())?.key();
    let action = body.action;
    if target == id.user.username.to_ascii_lowercase()
        && matches!(action, Action::Disable | Action::Demote)
    {
        return Err(ApiError::bad_request(
            "You cannot disable or demote yourself; ask another administrator.",
        )
        .reject());
    }
    let mut temporary = None;
    let change = match action {
        Action::Disable => AccountChange::Disable,
        Action::Enable => AccountChange::Enable,
        Action::Promote => AccountChange::Promote,
        Action::Demote => AccountChange::Demote,
        Action::SignOut => AccountChange::SignOut,
        Action::ResetPassword => {
            let password = temporary_password()?;
            let hash = state
                .auth
                .hash_new_password(password.clone())
                .await
                .map_err(|e| ApiError::from(e).reject())?;
            temporary = Some(password);
            AccountChange::ResetPassword(hash)
        }
    };
    let updated = state
        .db
        .change_account(target, change)
        .await
        .map_err(|e| ApiError::from(e).reject())?
        .ok_or_else(unknown_user)?;
    if matches!(
        action,
        Action::Disable | Action::SignOut | Action::ResetPassword
    ) {
        state.hub.close_user(
            updated.id,
            CLOSE_SESSION_ENDED,
            "signed out by an administrator",
        );
    }
    tracing::info!(admin = %id.user.username, target = %updated.username, ?action, "admin action");
    let mut reply = json!({ "user": view(&updated) });
    if let Some(pw) = temporary {
        reply["temporary_password"] = json!(pw);
    }
    Ok(warp::reply::json(&reply).into_response())
}

/// 16 base64url characters (96 random bits): a password to hand over once and change.
fn temporary_password() -> Result<String, Rejection> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine;
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| {
        tracing::error!("the OS random source failed: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The server cannot make a random password right now. Try again shortly.",
        )
        .reject()
    })?;
    Ok(B64URL.encode(raw))
}

fn db_error(e: db::DbError) -> Rejection {
    ApiError::from(e).reject()
}

/// Size of a file, 0 when it does not exist.
/// GET /api/admin/status
pub async fn server_status(_admin: Identity, state: App) -> Result<Response, Rejection> {
    let path = state.config.database.path.clone();
    let (totals, mode, bytes) = state.db.status(path).await.map_err(db_error)?;
    Ok(warp::reply::json(&json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "connections": state.hub.connection_count(),
        "online_users": state.hub.online().len(),
        "users": totals.users,
        "rooms": totals.rooms,
        "messages": totals.messages,
        "database_bytes": bytes,
        "registration": mode.as_str(),
    }))
    .into_response())
}

async fn current_mode(state: &App) -> Result<RegistrationMode, Rejection> {
    state.db.registration_mode().await.map_err(db_error)
}

/// GET /api/registration: who may create an account (public).
pub async fn public_registration(state: App) -> Result<Response, Rejection> {
    let mode = current_mode(&state).await?;
    Ok(warp::reply::json(&json!({ "mode": mode.as_str() })).into_response())
}

/// GET /api/admin/registration
pub async fn admin_registration(_admin: Identity, state: App) -> Result<Response, Rejection> {
    let mode = current_mode(&state).await?;
    Ok(warp::reply::json(&json!({ "mode": mode.as_str() })).into_response())
}

/// `{"mode"}` for `PUT /api/admin/registration`.
#[derive(Debug, Deserialize)]
pub struct ModeChange {
    mode: RegistrationMode,
}

/// PUT /api/admin/registration
pub async fn set_registration(
    id: Identity,
    body: ModeChange,
    state: App,
) -> Result<Response, Rejection> {
    let mode = body.mode;
    state
        .db
        .set_registration_mode(mode)
        .await
        .map_err(db_error)?;
    tracing::info!(admin = %id.user.username, mode = mode.as_str(), "registration mode changed");
    Ok(warp::reply::json(&json!({ "mode": mode.as_str() })).into_response())
}

/// Invites may create at most this many accounts each.
pub const MAX_INVITE_USES: i64 = 1000;
/// Invites may live at most this many hours (30 days).
pub const MAX_INVITE_HOURS: i64 = 720;
/// Uses when none is given.
pub const DEFAULT_INVITE_USES: i64 = 1;
/// Lifetime when none is given (7 days).
pub const DEFAULT_INVITE_HOURS: i64 = 168;

/// `{"max_uses","expires_in_hours"}` for `POST /api/admin/invites`, both optional.
#[derive(Debug, Deserialize)]
pub struct InviteRequest {
    #[serde(default)]
    max_uses: Option<i64>,
    #[serde(default)]
    expires_in_hours: Option<i64>,
}

/// Check an invite's use count and lifetime (shared with the command line).
pub fn invite_limits(max_uses: Option<i64>, hours: Option<i64>) -> Result<(i64, i64), String> {
    let uses = max_uses.unwrap_or(DEFAULT_INVITE_USES);
    if !(1..=MAX_INVITE_USES).contains(&uses) {
        return Err(format!(
            "`max_uses` must be a whole number from 1 to {MAX_INVITE_USES}."
        ));
    }
    let hours = hours.unwrap_or(DEFAULT_INVITE_HOURS);
    if !(1..=MAX_INVITE_HOURS).contains(&hours) {
        return Err(format!(
            "`expires_in_hours` must be a whole number from 1 to {MAX_INVITE_HOURS} (30 days)."
        ));
    }
    Ok((uses, hours))
}

fn invite_view(i: &InviteRow, now: i64) -> serde_json::Value {
    json!({
        "id": i.id,
        "created_by": i.created_by,
        "created_at": rfc3339(i.created_at),
        "expires_at": rfc3339(i.expires_at),
        "max_uses": i.max_uses,
        "uses": i.uses,
        "revoked": i.revoked,
        "state": i.state(now),
    })
}

/// The link that opens the sign-in page with an invite code filled in.
pub fn invite_url(base: &str, code: &str) -> String {
    format!("{}/?invite={code}", base.trim_end_matches('/'))
}

/// POST /api/admin/invites
pub async fn new_invite(
    id: Identity,
    host: Option<String>,
    forwarded: Option<ForwardedProto>,
    body: InviteRequest,
    state: App,
) -> Result<Response, Rejection> {
    let (max_uses, hours) = invite_limits(body.max_uses, body.expires_in_hours)
        .map_err(|m| ApiError::bad_request(m).reject())?;
    let (code, code_hash) = crate::auth::token::generate();
    let now = db::now_ms();
    let expires_at = now + hours * 3_600_000;
    let creator = id.user.id;
    let row = state
        .db
        .create_invite(code_hash, creator, now, expires_at, max_uses)
        .await
        .map_err(db_error)?
        .ok_or_else(unknown_invite)?;
    tracing::info!(
        admin = %id.user.username,
        invite = row.id,
        max_uses,
        expires_in_hours = hours,
        "invite created"
    );
    let mut view = invite_view(&row, now);
    view["code"] = json!(code);
    let base = request_base_url(&state, host.as_deref(), forwarded);
    view["url"] = json!(invite_url(&base, &code));
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({ "invite": view })),
        StatusCode::CREATED,
    )
    .into_response())
}

/// GET /api/admin/invites
pub async fn invites(_admin: Identity, state: App) -> Result<Response, Rejection> {
    let rows = state.db.list_invites().await.map_err(db_error)?;
    let now = db::now_ms();
    let list: Vec<_> = rows.iter().map(|i| invite_view(i, now)).collect();
    Ok(warp::reply::json(&json!({ "invites": list })).into_response())
}

/// DELETE /api/admin/invites/{id}
pub async fn revoke_invite(
    invite: String,
    id: Identity,
    state: App,
) -> Result<Response, Rejection> {
    let invite_id = invite
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ApiError::bad_request("An invite id is a whole number greater than 0.").reject()
        })?;
    let found = state.db.revoke_invite(invite_id).await.map_err(db_error)?;
    if !found {
        return Err(unknown_invite());
    }
    tracing::info!(admin = %id.user.username, invite = invite_id, "invite revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn unknown_invite() -> Rejection {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_invite",
        "There is no such invite.",
    )
    .reject()
}

fn unknown_user() -> Rejection {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_user",
        "There is no such user.",
    )
    .reject()
}
