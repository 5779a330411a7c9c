//! Invite links for everyone who may make them (`/api/invites`), and what the "Invite people"
//! dialog shows first (`GET /api/share`): the site's address, the registration mode and the
//! caller's right to make links. Every link comes with its QR code as a matrix of modules,
//! which the browser draws itself.

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::admin::{invite_id, invite_view, InviteRequest};
use super::error::ApiError;
use super::filters::ForwardedProto;
use super::filters::{forwarded_proto, json_body, signed_in, signed_in_write, with_state};
use super::handlers::request_base_url;
use super::SMALL_BODY;
use crate::app::admin::{self as admin_case, InviteLimits, LimitNames};
use crate::app::error::AppError;
use crate::app::invites::{self as use_case, qr_matrix};
use crate::app::App;
use crate::auth::Identity;
use crate::db::queries::InviteRow;

/// `POST`, `GET /api/invites`, `DELETE /api/invites/{id}` and `GET /api/share`.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // POST /api/invites
    let create = warp::path!("api" / "invites")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(warp::header::optional::<String>("host"))
        .and(forwarded_proto())
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(create);
    // GET /api/invites
    let list = warp::path!("api" / "invites")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(mine);
    // DELETE /api/invites/{id}
    let revoke = warp::path!("api" / "invites" / String)
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(revoke);
    // GET /api/share
    let share = warp::path!("api" / "share")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(warp::header::optional::<String>("host"))
        .and(forwarded_proto())
        .and(with_state(s))
        .and_then(share);
    create.or(list).unify().or(revoke).unify().or(share).unify()
}

fn reject(e: AppError) -> Rejection {
    ApiError::from(e).reject()
}

/// `{"size","modules"}` for `text`, `null` when it is too long for a QR code.
fn qr_json(text: &str) -> serde_json::Value {
    qr_matrix(text).map_or(
        serde_json::Value::Null,
        |q| json!({ "size": q.size, "modules": q.modules }),
    )
}

/// The 201 answer for a new invitation: its view with the code, the link and the link's QR
/// code, shown only this once. Shared with `POST /api/admin/invites`.
pub fn created(row: &InviteRow, code: &str, base: &str) -> Response {
    let mut view = invite_view(row, row.created_at);
    let url = admin_case::invite_url(base, code);
    view["code"] = json!(code);
    view["qr"] = qr_json(&url);
    view["url"] = json!(url);
    warp::reply::with_status(
        warp::reply::json(&json!({ "invite": view })),
        StatusCode::CREATED,
    )
    .into_response()
}

/// POST /api/invites
pub async fn create(
    id: Identity,
    host: Option<String>,
    forwarded: Option<ForwardedProto>,
    body: InviteRequest,
    state: App,
) -> Result<Response, Rejection> {
    let limits = InviteLimits::check(body.max_uses, body.expires_in_hours, LimitNames::JSON)
        .map_err(reject)?;
    let (row, code) = use_case::create(&state, &id.user, id.is_admin, limits)
        .await
        .map_err(reject)?;
    let base = request_base_url(&state, host.as_deref(), forwarded);
    Ok(created(&row, &code, &base))
}

/// GET /api/invites: the caller's own links.
pub async fn mine(id: Identity, state: App) -> Result<Response, Rejection> {
    let rows = use_case::mine(&state, &id.user).await.map_err(reject)?;
    let now = crate::db::now_ms();
    let list: Vec<_> = rows.iter().map(|i| invite_view(i, now)).collect();
    Ok(warp::reply::json(&json!({ "invites": list })).into_response())
}

/// DELETE /api/invites/{id}: revoke one of the caller's own links.
pub async fn revoke(invite: String, id: Identity, state: App) -> Result<Response, Rejection> {
    let invite_id = invite_id(&invite)?;
    use_case::revoke_mine(&state, &id.user, invite_id)
        .await
        .map_err(reject)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// GET /api/share: `{"url","qr","registration","can_invite"}`.
pub async fn share(
    id: Identity,
    host: Option<String>,
    forwarded: Option<ForwardedProto>,
    state: App,
) -> Result<Response, Rejection> {
    let mode = admin_case::registration_mode(&state)
        .await
        .map_err(reject)?;
    let base = request_base_url(&state, host.as_deref(), forwarded);
    let url = format!("{}/", base.trim_end_matches('/'));
    Ok(warp::reply::json(&json!({
        "qr": qr_json(&url),
        "url": url,
        "registration": mode.as_str(),
        "can_invite": use_case::may_invite(&state, id.is_admin),
    }))
    .into_response())
}
