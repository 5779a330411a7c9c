//! Webhooks over HTTP: a room's incoming hooks and outgoing webhooks (members), posting
//! through an incoming hook (its secret URL, no session), and the administrators' list.

use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::{
    forwarded_proto, json_body, signed_in, signed_in_write, with_state, ForwardedProto,
};
use super::handlers::request_base_url;
use super::rooms::{decode_segment, room_param};
use super::SMALL_BODY;
use crate::app::hooks;
use crate::app::App;
use crate::auth::Identity;
use crate::db::queries::{HookRow, WebhookRow};
use crate::protocol::{rfc3339, MessageView, MAX_FRAME};

/// Every webhook route.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let create_hook = warp::path!("api" / "rooms" / String / "hooks")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(warp::header::optional::<String>("host"))
        .and(forwarded_proto())
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(create_hook);
    let list_hooks = warp::path!("api" / "rooms" / String / "hooks")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(|room: String, id: Identity, state: App| async move {
            let room = room_param(&room)?;
            let list = hooks::hooks(&state, &id.user, &room).await?;
            let list: Vec<Value> = list.iter().map(hook_json).collect();
            Ok::<_, Rejection>(warp::reply::json(&json!({ "hooks": list })).into_response())
        });
    let delete_hook = warp::path!("api" / "rooms" / String / "hooks" / String)
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(
            |room: String, hook: String, id: Identity, state: App| async move {
                let room = room_param(&room)?;
                let hook = decode_segment(&hook).unwrap_or_default();
                hooks::delete_hook(&state, (&id.user, id.is_admin), Some(&room), &hook).await?;
                Ok::<_, Rejection>(StatusCode::NO_CONTENT.into_response())
            },
        );
    let post = warp::path!("api" / "hooks" / String / String)
        .and(warp::post())
        .and(json_body(MAX_FRAME as u64))
        .and(with_state(s.clone()))
        .and_then(post_through);
    create_hook
        .or(list_hooks)
        .unify()
        .or(delete_hook)
        .unify()
        .or(post)
        .unify()
        .or(outgoing(s.clone()))
        .unify()
        .or(admin(s))
        .unify()
}

/// `POST`, `GET /api/rooms/{room}/webhooks` and `DELETE /api/rooms/{room}/webhooks/{id}`.
fn outgoing(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let create = warp::path!("api" / "rooms" / String / "webhooks")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(
            |room: String, id: Identity, body: NewWebhook, state: App| async move {
                let room = room_param(&room)?;
                let made = hooks::create_webhook(&state, &id.user, &room, &body.url).await?;
                let mut v = webhook_json(&made.webhook);
                v["secret"] = Value::String(made.secret);
                let reply = warp::reply::json(&json!({ "webhook": v }));
                Ok::<_, Rejection>(
                    warp::reply::with_status(reply, StatusCode::CREATED).into_response(),
                )
            },
        );
    let list = warp::path!("api" / "rooms" / String / "webhooks")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(|room: String, id: Identity, state: App| async move {
            let room = room_param(&room)?;
            let list = hooks::webhooks(&state, &id.user, &room).await?;
            let list: Vec<Value> = list.iter().map(webhook_json).collect();
            Ok::<_, Rejection>(warp::reply::json(&json!({ "webhooks": list })).into_response())
        });
    let delete = warp::path!("api" / "rooms" / String / "webhooks" / i64)
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s))
        .and_then(
            |room: String, hook: i64, id: Identity, state: App| async move {
                let room = room_param(&room)?;
                hooks::delete_webhook(&state, (&id.user, id.is_admin), Some(&room), hook).await?;
                Ok::<_, Rejection>(StatusCode::NO_CONTENT.into_response())
            },
        );
    create.or(list).unify().or(delete).unify()
}

/// `GET /api/admin/hooks`, `DELETE /api/admin/hooks/{id}` and
/// `DELETE /api/admin/webhooks/{id}`.
fn admin(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "admin" / "hooks")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(|id: Identity, state: App| async move {
            let (incoming, outgoing) = hooks::all(&state, id.is_admin).await?;
            let incoming: Vec<Value> = incoming.iter().map(hook_json).collect();
            let outgoing: Vec<Value> = outgoing.iter().map(webhook_json).collect();
            let body = json!({ "hooks": incoming, "webhooks": outgoing });
            Ok::<_, Rejection>(warp::reply::json(&body).into_response())
        });
    let delete_hook = warp::path!("api" / "admin" / "hooks" / String)
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(|hook: String, id: Identity, state: App| async move {
            let hook = decode_segment(&hook).unwrap_or_default();
            hooks::admin_only(id.is_admin)?;
            hooks::delete_hook(&state, (&id.user, id.is_admin), None, &hook).await?;
            Ok::<_, Rejection>(StatusCode::NO_CONTENT.into_response())
        });
    let delete_webhook = warp::path!("api" / "admin" / "webhooks" / i64)
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s))
        .and_then(|hook: i64, id: Identity, state: App| async move {
            hooks::admin_only(id.is_admin)?;
            hooks::delete_webhook(&state, (&id.user, id.is_admin), None, hook).await?;
            Ok::<_, Rejection>(StatusCode::NO_CONTENT.into_response())
        });
    list.or(delete_hook).unify().or(delete_webhook).unify()
}

/// `{"name"}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHook {
    name: String,
}

/// `{"url"}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    url: String,
}

/// `{"text"}` (Slack's incoming webhook shape; other fields are ignored).
#[derive(Debug, Deserialize)]
pub struct HookPost {
    #[serde(default)]
    text: Option<String>,
}

/// POST /api/rooms/{room}/hooks: 201 `{"hook":{…,"url"}}`, the URL shown this once.
async fn create_hook(
    room: String,
    id: Identity,
    host: Option<String>,
    forwarded: Option<ForwardedProto>,
    body: NewHook,
    state: App,
) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let base = request_base_url(&state, host.as_deref(), forwarded);
    let made = hooks::create_hook(&state, &id.user, &room, &body.name, &base).await?;
    let mut v = hook_json(&made.hook);
    v["url"] = Value::String(made.url);
    let reply = warp::reply::json(&json!({ "hook": v }));
    Ok(warp::reply::with_status(reply, StatusCode::CREATED).into_response())
}

/// POST /api/hooks/{id}/{secret} `{"text"}`: 201 `{"message"}`.
async fn post_through(
    hook: String,
    secret: String,
    body: HookPost,
    state: App,
) -> Result<Response, Rejection> {
    let text = body.text.unwrap_or_default();
    let msg = hooks::post_through(&state, &hook, &secret, text).await?;
    let reply = warp::reply::json(&json!({ "message": MessageView::from(&msg) }));
    Ok(warp::reply::with_status(reply, StatusCode::CREATED).into_response())
}

fn hook_json(h: &HookRow) -> Value {
    json!({
        "id": h.id,
        "name": h.name,
        "room": h.room,
        "created_by": h.created_by,
        "created_ts": rfc3339(h.created_at),
        "last_used_ts": h.last_used_at.map(rfc3339),
    })
}

fn webhook_json(w: &WebhookRow) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "room": w.room,
        "created_by": w.created_by,
        "created_ts": rfc3339(w.created_at),
        "delivered": w.delivered,
        "pending": w.pending,
        "last_attempt_ts": w.last_attempt_at.map(rfc3339),
        "last_status": w.last_status,
        "last_error": w.last_error,
        "failing_since": w.failing_since.map(rfc3339),
    })
}
