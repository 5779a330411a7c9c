//! Administrator routes under `/api/admin`. Every handler checks the caller's role on the
//! server; every action is logged with who did it.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use super::error::ApiError;
use super::filters::RequestOrigin;
use crate::auth::Identity;
use crate::db::queries::{self, UserSummary};
use crate::db::SessionKind;
use crate::domain::Username;
use crate::ws::protocol::rfc3339;
use crate::ws::session::CLOSE_SESSION_ENDED;
use crate::AppState;

use super::filters::{authenticated, json_body, request_origin, with_state};
use super::SMALL_BODY;
use warp::Filter;

/// Every route under `/api/admin`.
pub fn routes(s: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // GET /api/admin/users
    let admin_users = warp::path!("api" / "admin" / "users")
        .and(warp::get())
        .and(authenticated(s.clone()))
        .and(with_state(s.clone()))
        .and_then(list_users);
    // POST /api/admin/users/{name}
    let admin_action = warp::path!("api" / "admin" / "users" / String)
        .and(warp::post())
        .and(authenticated(s.clone()))
        .and(request_origin())
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(user_action);
    admin_users.or(admin_action).unify()
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
}

fn require_admin(id: &Identity) -> Result<(), Rejection> {
    if id.is_admin {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only administrators can do that.",
        )
        .reject())
    }
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
pub async fn list_users(id: Identity, state: AppState) -> Result<Response, Rejection> {
    require_admin(&id)?;
    let users = state
        .db
        .read(queries::list_users)
        .await
        .map_err(|e| ApiError::from(e).reject())?;
    let users: Vec<_> = users.iter().map(view).collect();
    Ok(warp::reply::json(&json!({ "users": users })).into_response())
}

/// POST /api/admin/users/{name}
pub async fn user_action(
    name: String,
    id: Identity,
    origin: RequestOrigin,
    body: UserAction,
    state: AppState,
) -> Result<Response, Rejection> {
    require_admin(&id)?;
    origin
        .check(&state, id.kind == SessionKind::Cookie)
        .map_err(ApiError::reject)?;
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
    let updated = state
        .db
        .write(move |c| {
            let Some(user) = queries::user_summary(c, &target)? else {
                return Ok(None);
            };
            match action {
                Action::Disable => {
                    queries::set_disabled(c, &target, true)?;
                }
                Action::Enable => {
                    queries::set_disabled(c, &target, false)?;
                }
                Action::Promote => {
                    queries::set_admin(c, &target, true)?;
                }
                Action::Demote => {
                    queries::set_admin(c, &target, false)?;
                }
                Action::SignOut => {
                    queries::delete_user_sessions(c, user.id)?;
                }
            }
            queries::user_summary(c, &target)
        })
        .await
        .map_err(|e| ApiError::from(e).reject())?
        .ok_or_else(unknown_user)?;
    if matches!(action, Action::Disable | Action::SignOut) {
        state.hub.close_user(
            updated.id,
            CLOSE_SESSION_ENDED,
            "signed out by an administrator",
        );
    }
    tracing::info!(admin = %id.user.username, target = %updated.username, ?action, "admin action");
    Ok(warp::reply::json(&json!({ "user": view(&updated) })).into_response())
}

fn unknown_user() -> Rejection {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_user",
        "There is no such user.",
    )
    .reject()
}
