//! Rooms, direct messages, read markers, notification levels and search.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::filters::{json_body, signed_in, signed_in_write, with_state};
use super::SMALL_BODY;
use crate::app::rooms::{self, RoomError};
use crate::app::App;
use crate::auth::Identity;
use crate::db::{queries, DbError, Notify};
use crate::domain::{self, Username, MAX_QUERY_CHARS};
use crate::limits::Crowded;
use crate::protocol::{MessageView, RoomView};

/// Default and largest number of search results per page.
const SEARCH_PAGE: u32 = 20;
const SEARCH_MAX: u32 = 50;

/// `{"name","topic","public"}`
#[derive(Debug, Deserialize)]
pub struct NewRoom {
    name: String,
    #[serde(default)]
    topic: String,
    #[serde(default = "yes")]
    public: bool,
}

fn yes() -> bool {
    true
}

/// `{"name","topic"}`, both optional.
#[derive(Debug, Deserialize)]
pub struct RoomChanges {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    topic: Option<String>,
}

/// `{"username"}`
#[derive(Debug, Deserialize)]
pub struct Invitation {
    username: String,
}

/// `{"users":[...]}`
#[derive(Debug, Deserialize)]
pub struct NewDm {
    users: Vec<String>,
}

/// `{"id"}`
#[derive(Debug, Deserialize)]
pub struct ReadMarker {
    id: i64,
}

/// `{"level"}`
#[derive(Debug, Deserialize)]
pub struct NotifyLevel {
    level: Notify,
}

fn reject(e: RoomError) -> Rejection {
    ApiError::from(e).reject()
}

fn room_reply(status: StatusCode, room: &crate::db::Room) -> Response {
    warp::reply::with_status(
        warp::reply::json(&json!({ "room": RoomView::from(room) })),
        status,
    )
    .into_response()
}

/// A room name from the URL, percent-decoded (clients may encode the `:` and `,` of DM names).
pub fn room_param(raw: &str) -> Result<String, Rejection> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return Err(no_such_room()),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // No room can have a name that does not decode.
    String::from_utf8(out).map_err(|_| no_such_room())
}

fn no_such_room() -> Rejection {
    reject(RoomError::UnknownRoom)
}

/// Every route for rooms, DMs and search.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // GET /api/directory
    let directory = warp::path!("api" / "directory")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(directory);
    // POST /api/rooms
    let create = warp::path!("api" / "rooms")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(create);
    // GET /api/rooms/{room}
    let details = warp::path!("api" / "rooms" / String)
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(details);
    // PATCH /api/rooms/{room}
    let update = warp::path!("api" / "rooms" / String)
        .and(warp::patch())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(update);
    // POST /api/rooms/{room}/join
    let join = warp::path!("api" / "rooms" / String / "join")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(join);
    // POST /api/rooms/{room}/leave
    let leave = warp::path!("api" / "rooms" / String / "leave")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(with_state(s.clone()))
        .and_then(leave);
    // POST /api/rooms/{room}/members
    let invite = warp::path!("api" / "rooms" / String / "members")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(invite);
    // POST /api/rooms/{room}/read
    let read = warp::path!("api" / "rooms" / String / "read")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(mark_read);
    // PUT /api/rooms/{room}/notify
    let notify = warp::path!("api" / "rooms" / String / "notify")
        .and(warp::put())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(set_notify);
    // POST /api/dms
    let dm = warp::path!("api" / "dms")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(open_dm);
    // POST /api/rooms/leave
    let leave_many = warp::path!("api" / "rooms" / "leave")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(LEAVE_MANY_BODY))
        .and(with_state(s.clone()))
        .and_then(leave_many);
    // GET /api/search
    let search = warp::path!("api" / "search")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(s))
        .and_then(search);
    directory
        .or(create)
        .unify()
        .or(leave_many)
        .unify()
        .or(details)
        .unify()
        .or(update)
        .unify()
        .or(join)
        .unify()
        .or(leave)
        .unify()
        .or(invite)
        .unify()
        .or(read)
        .unify()
        .or(notify)
        .unify()
        .or(dm)
        .unify()
        .or(search)
        .unify()
}

/// GET /api/directory
pub async fn directory(id: Identity, state: App) -> Result<Response, Rejection> {
    let rooms = rooms::directory(&state, id.user.id).await.map_err(reject)?;
    let views: Vec<RoomView> = rooms
        .iter()
        .map(|r| RoomView {
            joined: Some(r.membership.is_some()),
            ..RoomView::from(r)
        })
        .collect();
    Ok(warp::reply::json(&json!({ "rooms": views })).into_response())
}

/// POST /api/rooms
pub async fn create(id: Identity, body: NewRoom, state: App) -> Result<Response, Rejection> {
    let room = rooms::create(
        &state,
        &id.user,
        id.is_admin,
        &body.name,
        &body.topic,
        body.public,
    )
    .await
    .map_err(reject)?;
    Ok(room_reply(StatusCode::CREATED, &room))
}

/// GET /api/rooms/{room}
pub async fn details(room: String, id: Identity, state: App) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let (room, members) = rooms::details(&state, id.user.id, &room)
        .await
        .map_err(reject)?;
    let members: Vec<_> = members
        .iter()
        .map(|(name, online)| json!({ "username": name, "online": online }))
        .collect();
    Ok(
        warp::reply::json(&json!({ "room": RoomView::from(&room), "members": members }))
            .into_response(),
    )
}

/// PATCH /api/rooms/{room}
pub async fn update(
    room: String,
    id: Identity,
    body: RoomChanges,
    state: App,
) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    if body.name.is_none() && body.topic.is_none() {
        return Err(ApiError::bad_request("Give a new `name`, a new `topic`, or both.").reject());
    }
    let room = rooms::update(
        &state,
        &id.user,
        id.is_admin,
        &room,
        body.name.as_deref(),
        body.topic.as_deref(),
    )
    .await
    .map_err(reject)?;
    Ok(room_reply(StatusCode::OK, &room))
}

/// POST /api/rooms/{room}/join
pub async fn join(room: String, id: Identity, state: App) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let room = rooms::join(&state, &id.user, &room).await.map_err(reject)?;
    Ok(room_reply(StatusCode::OK, &room))
}

/// POST /api/rooms/{room}/leave
pub async fn leave(room: String, id: Identity, state: App) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    rooms::leave(&state, &id.user, &room)
        .await
        .map_err(reject)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"rooms":[name, ...]}`
#[derive(Debug, Deserialize)]
pub struct LeaveMany {
    rooms: Vec<String>,
}

/// Body limit of `POST /api/rooms/leave`: 500 of the longest DM names fit.
const LEAVE_MANY_BODY: u64 = 160 * 1024;

/// POST /api/rooms/leave
pub async fn leave_many(id: Identity, body: LeaveMany, state: App) -> Result<Response, Rejection> {
    let left = rooms::leave_many(&state, &id.user, &body.rooms)
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&json!({ "left": left })).into_response())
}

/// POST /api/rooms/{room}/members
pub async fn invite(
    room: String,
    id: Identity,
    body: Invitation,
    state: App,
) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let room = rooms::invite(&state, &id.user, &room, &body.username)
        .await
        .map_err(reject)?;
    Ok(room_reply(StatusCode::OK, &room))
}

/// POST /api/rooms/{room}/read
pub async fn mark_read(
    room: String,
    id: Identity,
    body: ReadMarker,
    state: App,
) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    if body.id < 0 {
        return Err(ApiError::bad_request("`id` must be a message id (≥ 0).").reject());
    }
    let room = rooms::mark_read(&state, id.user.id, &room, body.id)
        .await
        .map_err(reject)?;
    let m = room.membership.unwrap_or(crate::db::Membership {
        last_read: body.id,
        unread: 0,
        mentions: 0,
        notify: Notify::All,
    });
    Ok(warp::reply::json(&json!({
        "room": room.name,
        "last_read": m.last_read,
        "unread": m.unread,
        "mentions": m.mentions,
    }))
    .into_response())
}

/// PUT /api/rooms/{room}/notify
pub async fn set_notify(
    room: String,
    id: Identity,
    body: NotifyLevel,
    state: App,
) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let room = rooms::set_notify(&state, id.user.id, &room, body.level)
        .await
        .map_err(reject)?;
    Ok(room_reply(StatusCode::OK, &room))
}

/// POST /api/dms
pub async fn open_dm(id: Identity, body: NewDm, state: App) -> Result<Response, Rejection> {
    if body.users.len() > 64 {
        return Err(reject(RoomError::TooManyMembers));
    }
    let (room, created) = rooms::open_dm(&state, &id.user, &body.users)
        .await
        .map_err(reject)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(room_reply(status, &room))
}

fn number(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, Rejection> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => {
                Err(ApiError::bad_request(format!("`{key}` must be a whole number ≥ 0.")).reject())
            }
        },
    }
}

/// The most time one search may take before it is stopped.
const SEARCH_BUDGET: Duration = Duration::from_secs(2);
/// How long a search waits for one of the server's search slots.
const SEARCH_QUEUE_WAIT: Duration = Duration::from_secs(3);

/// GET /api/search
pub async fn search(
    id: Identity,
    q: HashMap<String, String>,
    state: App,
) -> Result<Response, Rejection> {
    let text = q.get("q").map(String::as_str).unwrap_or("").trim();
    if text.is_empty() {
        return Err(ApiError::bad_request("Type something to search for (`q`).").reject());
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request("Searches are at most 200 characters.").reject());
    }
    let by_relevance = match q.get("sort").map(String::as_str) {
        None | Some("newest") => false,
        Some("relevance") => true,
        Some(_) => {
            return Err(ApiError::bad_request("`sort` is `newest` or `relevance`.").reject());
        }
    };
    let limit = match number(&q, "limit")? {
        None => SEARCH_PAGE,
        Some(0) => {
            return Err(ApiError::bad_request("`limit` must be at least 1.").reject());
        }
        Some(n) => n.min(i64::from(SEARCH_MAX)) as u32,
    };
    let before = number(&q, "before")?;
    let offset = number(&q, "offset")?.unwrap_or(0).min(100_000) as u32;
    let room_id = match q.get("room").filter(|r| !r.is_empty()) {
        Some(name) => Some(
            rooms::readable(&state, id.user.id, name)
                .await
                .map_err(reject)?
                .id,
        ),
        None => None,
    };
    let author_key = match q.get("user").filter(|u| !u.is_empty()) {
        Some(name) => match Username::parse(name) {
            Ok(u) => Some(u.key()),
            // No account can have that name: nothing to find.
            Err(_) => return Ok(search_reply(&[], limit, by_relevance, offset)),
        },
        None => None,
    };
    let Some(fts) = domain::fts_query(text) else {
        return Ok(search_reply(&[], limit, by_relevance, offset));
    };
    let query = queries::SearchQuery {
        fts,
        user_id: id.user.id,
        room_id,
        author_key,
        before: if by_relevance { None } else { before },
        offset: if by_relevance { offset } else { 0 },
        limit: limit + 1,
        by_relevance,
    };
    let _running = state
        .searches
        .enter(id.user.id, SEARCH_QUEUE_WAIT)
        .await
        .map_err(|crowded| {
            let why = match crowded {
                Crowded::User => "Your previous search is still running; try again in a moment.",
                Crowded::Server => "The server is busy with other searches; try again in a moment.",
            };
            ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", why)
            }
            .reject()
        })?;
    let hits = state
        .db
        .search(query, SEARCH_BUDGET)
        .await
        .map_err(|e| match e {
            DbError::Interrupted => ApiError::new(
                StatusCode::BAD_REQUEST,
                "search_too_broad",
                "That search took too long. Add words, or search one room or one person.",
            )
            .reject(),
            e => ApiError::from(e).reject(),
        })?;
    Ok(search_reply(&hits, limit, by_relevance, offset))
}

fn search_reply(
    hits: &[crate::db::SearchHit],
    limit: u32,
    by_relevance: bool,
    offset: u32,
) -> Response {
    let more = hits.len() > limit as usize;
    let page = &hits[..hits.len().min(limit as usize)];
    let results: Vec<serde_json::Value> = page
        .iter()
        .map(|h| {
            let mut v = serde_json::to_value(MessageView::from(&h.msg)).unwrap_or_default();
            v["snippet"] = json!(h.snippet);
            v
        })
        .collect();
    let next_before = (more && !by_relevance)
        .then(|| page.last().map(|h| h.msg.id))
        .flatten();
    let next_offset = (more && by_relevance).then_some(offset + limit);
    warp::reply::json(&json!({
        "results": results,
        "next_before": next_before,
        "next_offset": next_offset,
    }))
    .into_response()
}
