//! Administrator routes under `/api/admin`, and the public `GET /api/registration`. Every
//! admin route checks the caller's role on the server (the `admin` and `admin_write` guards);
//! the handlers parse, call [`crate::app::admin`], and render its answer as JSON.

use std::future::Future;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::filters::{admin, admin_write, json_body, with_state};
use super::filters::{forwarded_proto, ForwardedProto};
use super::handlers::request_base_url;
use super::SMALL_BODY;
use crate::app::admin::{self as use_case, Action, InviteLimits, LimitNames};
use crate::app::error::AppError;
use crate::app::App;
use crate::auth::Identity;
use crate::db::queries::{InviteRow, RegistrationMode, UserSummary};
use crate::protocol::rfc3339;

/// Every route under `/api/admin`, and `GET /api/registration`.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    account_routes(s.clone())
        .or(registration_routes(s.clone()))
        .unify()
        .or(invite_routes(s.clone()))
        .unify()
        // GET /api/registration (public: the sign-in page asks what to offer)
        .or(warp::path!("api" / "registration")
            .and(warp::get())
            .and(with_state(s))
            .and_then(public_registration))
        .unify()
}

/// `GET path`, for administrators only: `handler(caller, state)`.
fn admin_get<P, H, F>(
    path: P,
    s: &App,
    handler: H,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    P: Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    H: Fn(Identity, App) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response, Rejection>> + Send,
{
    path.and(warp::get())
        .and(admin(s.clone()))
        .and(with_state(s.clone()))
        .and_then(handler)
}

/// The accounts (`GET /api/admin/users`, `POST /api/admin/users/{name}`) and the status
/// panel (`GET /api/admin/status`).
fn account_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = admin_get(warp::path!("api" / "admin" / "users"), &s, list_users);
    // POST /api/admin/users/{name}
    let act = warp::path!("api" / "admin" / "users" / String)
        .and(warp::post())
        .and(admin_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(user_action);
    // POST /api/admin/users/{name}/purge
    let purge = warp::path!("api" / "admin" / "users" / String / "purge")
        .and(warp::post())
        .and(admin_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(purge_messages);
    let status = admin_get(warp::path!("api" / "admin" / "status"), &s, server_status);
    list.or(act).unify().or(purge).unify().or(status).unify()
}

/// Reading and setting the registration mode: `GET` and `PUT /api/admin/registration`.
fn registration_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let path = || warp::path!("api" / "admin" / "registration");
    let get = admin_get(path(), &s, admin_registration);
    // PUT /api/admin/registration
    let put = path()
        .and(warp::put())
        .and(admin_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s))
        .and_then(set_registration);
    get.or(put).unify()
}

/// Listing, creating and revoking invitations: `GET` and `POST /api/admin/invites`, `DELETE
/// /api/admin/invites/{id}`.
fn invite_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = admin_get(warp::path!("api" / "admin" / "invites"), &s, invites);
    // POST /api/admin/invites
    let create = warp::path!("api" / "admin" / "invites")
        .and(warp::post())
        .and(admin_write(s.clone()))
        .and(warp::header::optional::<String>("host"))
        .and(forwarded_proto())
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(new_invite);
    // DELETE /api/admin/invites/{id}
    let revoke = warp::path!("api" / "admin" / "invites" / String)
        .and(warp::delete())
        .and(admin_write(s.clone()))
        .and(with_state(s))
        .and_then(revoke_invite);
    list.or(create).unify().or(revoke).unify()
}

/// A use case's refusal, rendered by the root `recover`.
fn reject(e: AppError) -> Rejection {
    ApiError::from(e).reject()
}

/// `{"action"}` for `POST /api/admin/users/{name}`.
#[derive(Debug, Deserialize)]
pub struct UserAction {
    action: Action,
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
    let users = use_case::users(&state).await.map_err(reject)?;
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
    let acted = use_case::act_on_account(&state, &id.user, &name, body.action)
        .await
        .map_err(reject)?;
    let mut reply = json!({ "user": view(&acted.user) });
    if let Some(pw) = acted.temporary_password {
        reply["temporary_password"] = json!(pw);
    }
    Ok(warp::reply::json(&reply).into_response())
}

/// POST /api/admin/users/{name}/purge: delete every message of the account;
/// `{"user","deleted"}`.
pub async fn purge_messages(name: String, id: Identity, state: App) -> Result<Response, Rejection> {
    let (user, deleted) = use_case::purge_messages(&state, &id.user, &name)
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&json!({ "user": view(&user), "deleted": deleted })).into_response())
}

/// GET /api/admin/status
pub async fn server_status(_admin: Identity, state: App) -> Result<Response, Rejection> {
    let s = use_case::status(&state).await.map_err(reject)?;
    Ok(warp::reply::json(&json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": s.uptime_seconds,
        "connections": s.connections,
        "online_users": s.online_users,
        "users": s.totals.users,
        "rooms": s.totals.rooms,
        "messages": s.totals.messages,
        "database_bytes": s.database_bytes,
        "registration": s.registration.as_str(),
        "cluster": s.cluster.map(|c| json!({
            "node": c.node,
            "redis": if c.redis { "ok" } else { "unreachable" },
            "presence": if c.presence_shared { "shared" } else { "local" },
        })),
    }))
    .into_response())
}

/// `{"mode"}`, the answer of every registration route.
fn mode_reply(mode: RegistrationMode) -> Response {
    warp::reply::json(&json!({ "mode": mode.as_str() })).into_response()
}

/// GET /api/registration: who may create an account (public).
pub async fn public_registration(state: App) -> Result<Response, Rejection> {
    let mode = use_case::registration_mode(&state).await.map_err(reject)?;
    Ok(mode_reply(mode))
}

/// GET /api/admin/registration
pub async fn admin_registration(_admin: Identity, state: App) -> Result<Response, Rejection> {
    public_registration(state).await
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
    use_case::set_registration_mode(&state, &id.user, body.mode)
        .await
        .map_err(reject)?;
    Ok(mode_reply(body.mode))
}

/// `{"max_uses","expires_in_hours"}` for `POST /api/admin/invites`, both optional.
#[derive(Debug, Deserialize)]
pub struct InviteRequest {
    #[serde(default)]
    pub(super) max_uses: Option<i64>,
    #[serde(default)]
    pub(super) expires_in_hours: Option<i64>,
}

/// An invitation as every invite route shows it (never with its code).
pub(super) fn invite_view(i: &InviteRow, now: i64) -> serde_json::Value {
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

/// POST /api/admin/invites
pub async fn new_invite(
    id: Identity,
    host: Option<String>,
    forwarded: Option<ForwardedProto>,
    body: InviteRequest,
    state: App,
) -> Result<Response, Rejection> {
    let limits = InviteLimits::check(body.max_uses, body.expires_in_hours, LimitNames::JSON)
        .map_err(reject)?;
    let (row, code) = use_case::create_invite(&state, &id.user, limits)
        .await
        .map_err(reject)?;
    let base = request_base_url(&state, host.as_deref(), forwarded);
    Ok(super::invites::created(&row, &code, &base))
}

/// GET /api/admin/invites
pub async fn invites(_admin: Identity, state: App) -> Result<Response, Rejection> {
    let rows = use_case::invites(&state).await.map_err(reject)?;
    let now = crate::db::now_ms();
    let list: Vec<_> = rows.iter().map(|i| invite_view(i, now)).collect();
    Ok(warp::reply::json(&json!({ "invites": list })).into_response())
}

/// The `{id}` of `/api/invites/{id}` and `/api/admin/invites/{id}`: a whole number above 0.
pub(super) fn invite_id(raw: &str) -> Result<i64, Rejection> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        reject(AppError::bad_request(
            "An invite id is a whole number greater than 0.",
        ))
    })
}

/// DELETE /api/admin/invites/{id}
pub async fn revoke_invite(
    invite: String,
    id: Identity,
    state: App,
) -> Result<Response, Rejection> {
    let invite_id = invite_id(&invite)?;
    use_case::revoke_invite(&state, &id.user, invite_id)
        .await
        .map_err(reject)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
