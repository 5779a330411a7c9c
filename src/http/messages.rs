//! Messages over HTTP, for bots and scripts: posting one, one message by id (read, edit,
//! delete), reactions and the catch-up feed of events; the same use cases as the `send`,
//! `edit`, `delete` and `react` frames.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::{json_body, signed_in, signed_in_write, with_state};
use super::rooms::{decode_segment, room_param};
use crate::app::error::AppError;
use crate::app::history;
use crate::app::lifecycle::{self, Actor};
use crate::app::messages::{self, Draft};
use crate::app::App;
use crate::auth::Identity;
use crate::db::StoredMessage;
use crate::protocol::{replayed_frame, MessageView, MAX_FRAME};

/// `POST /api/rooms/{room}/messages`, `GET`, `PATCH`, `DELETE /api/messages/{id}`,
/// `PUT`, `DELETE /api/messages/{id}/reactions/{emoji}`, `DELETE /api/messages/{id}/preview`
/// and `GET /api/events`.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let post = warp::path!("api" / "rooms" / String / "messages")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(MAX_FRAME as u64))
        .and(with_state(s.clone()))
        .and_then(post);
    let react = warp::path!("api" / "messages" / i64 / "reactions" / String)
        .and(
            warp::put()
                .map(|| true)
                .or(warp::delete().map(|| false))
                .unify(),
        )
        .and(signed_in_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(react);
    one_message(s.clone()).or(post).unify().or(react).unify()
}

/// `GET`, `PATCH`, `DELETE /api/messages/{id}` and `GET /api/events`.
fn one_message(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let get = warp::path!("api" / "messages" / i64)
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(get);
    let edit = warp::path!("api" / "messages" / i64)
        .and(warp::patch())
        .and(signed_in_write(s.clone()))
        .and(json_body(MAX_FRAME as u64))
        .and(with_state(s.clone()))
        .and_then(edit);
    let delete = warp::path!("api" / "messages" / i64)
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(delete);
    let unpreview = warp::path!("api" / "messages" / i64 / "preview")
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(remove_preview);
    let events = warp::path!("api" / "events")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(s))
        .and_then(events);
    get.or(edit)
        .unify()
        .or(delete)
        .unify()
        .or(unpreview)
        .unify()
        .or(events)
        .unify()
}

/// `{"body"}`
#[derive(Debug, Deserialize)]
pub struct NewBody {
    body: String,
}

fn actor(id: &Identity) -> Actor<'_> {
    Actor {
        user_id: id.user.id,
        username: &id.user.username,
        origin: None,
    }
}

fn message_reply(msg: &StoredMessage) -> Response {
    warp::reply::json(&json!({ "message": MessageView::from(msg) })).into_response()
}

/// `{"body","reply_to"?,"nonce"?,"attachments"?}`
#[derive(Debug, Deserialize)]
pub struct NewMessageBody {
    body: String,
    #[serde(default)]
    reply_to: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    attachments: Vec<String>,
}

/// POST /api/rooms/{room}/messages: 201 `{"message"}` once it is stored (and sent to the
/// room's connections).
pub async fn post(
    room: String,
    id: Identity,
    body: NewMessageBody,
    state: App,
) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let username = std::sync::Arc::from(id.user.username.as_str());
    let draft = Draft {
        user_id: id.user.id,
        username: &username,
        origin: 0,
        room: &room,
        known: None,
        body: body.body,
        nonce: body.nonce,
        reply_to: body.reply_to,
        attachments: body.attachments,
    };
    let msg = messages::post(&state, draft, async || {
        let why = "You are sending messages too fast.";
        state.message_rate.spend(id.user.id, why).await
    })
    .await?;
    let reply = warp::reply::json(&json!({ "message": MessageView::from(&msg) }));
    Ok(warp::reply::with_status(reply, StatusCode::CREATED).into_response())
}

/// PUT / DELETE /api/messages/{id}/reactions/{emoji}: 204.
pub async fn react(
    msg_id: i64,
    emoji: String,
    on: bool,
    id: Identity,
    state: App,
) -> Result<Response, Rejection> {
    // A segment that does not decode is no emoji either.
    let emoji = decode_segment(&emoji).unwrap_or_default();
    lifecycle::react(&state, actor(&id), msg_id, (emoji, on), None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// GET /api/messages/{id}
pub async fn get(msg_id: i64, id: Identity, state: App) -> Result<Response, Rejection> {
    let msg = lifecycle::get(&state, id.user.id, msg_id).await?;
    Ok(message_reply(&msg))
}

/// PATCH /api/messages/{id}
pub async fn edit(
    msg_id: i64,
    id: Identity,
    body: NewBody,
    state: App,
) -> Result<Response, Rejection> {
    let msg = lifecycle::edit(&state, actor(&id), msg_id, body.body, None).await?;
    Ok(message_reply(&msg))
}

/// DELETE /api/messages/{id}
pub async fn delete(msg_id: i64, id: Identity, state: App) -> Result<Response, Rejection> {
    lifecycle::delete(&state, actor(&id), msg_id, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// DELETE /api/messages/{id}/preview: 204; the author's message shows no link preview from
/// now on.
pub async fn remove_preview(msg_id: i64, id: Identity, state: App) -> Result<Response, Rejection> {
    crate::app::previews::remove(&state, actor(&id), msg_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// GET /api/events?after=P&limit=N: `{"events":[frames...],"head"}`, oldest first.
pub async fn events(
    id: Identity,
    q: HashMap<String, String>,
    state: App,
) -> Result<Response, Rejection> {
    let after = super::query::number(&q, "after")?.unwrap_or(0);
    let limit = history::page_size(super::query::limit(&q))?;
    let (events, head) = state
        .db
        .events(id.user.id, after, limit)
        .await
        .map_err(AppError::from)?;
    // Each event is the very frame the WebSocket sends, parsed back into the JSON array.
    let events: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(replayed_frame(e).as_str()).unwrap_or_default())
        .collect();
    Ok(warp::reply::json(&json!({ "events": events, "head": head })).into_response())
}
