//! Rooms, direct messages, read markers, notification levels, history and search.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::{json_body, signed_in, signed_in_write, with_state};
use super::{query, SMALL_BODY};
use crate::app::error::AppError;
use crate::app::history::{self, SearchPage};
use crate::app::rooms::{self, RoomError};
use crate::app::App;
use crate::auth::Identity;
use crate::db::Notify;
use crate::domain::fold_room_name;
use crate::protocol::{MessageView, RoomView};

/// Body limit of `POST /api/rooms/leave`: 500 of the longest DM names fit.
const LEAVE_MANY_BODY: u64 = 160 * 1024;

/// Every route for rooms, DMs, history and search.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    directory_routes(s.clone())
        .or(room_routes(s.clone()))
        .unify()
        .or(member_routes(s.clone()))
        .unify()
        .or(marker_routes(s.clone()))
        .unify()
        .or(message_routes(s))
        .unify()
}

/// The public rooms, the user's rooms, and creating one.
fn directory_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // GET /api/directory
    let directory = warp::path!("api" / "directory")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(directory);
    // GET /api/rooms
    let list = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(list);
    // POST /api/rooms
    let create = warp::path!("api" / "rooms")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s))
        .and_then(create);
    directory.or(list).unify().or(create).unify()
}

/// One room: its details, changing it, joining and leaving it.
fn room_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
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
        .and(with_state(s))
        .and_then(leave);
    details
        .or(update)
        .unify()
        .or(join)
        .unify()
        .or(leave)
        .unify()
}

/// Adding people to a room, leaving many at once, and direct conversations.
fn member_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // POST /api/rooms/{room}/members
    let invite = warp::path!("api" / "rooms" / String / "members")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(invite);
    // POST /api/rooms/leave
    let leave_many = warp::path!("api" / "rooms" / "leave")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(LEAVE_MANY_BODY))
        .and(with_state(s.clone()))
        .and_then(leave_many);
    // POST /api/dms
    let dm = warp::path!("api" / "dms")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s))
        .and_then(open_dm);
    invite.or(leave_many).unify().or(dm).unify()
}

/// The member's own state in a room: read marker and notification level.
fn marker_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
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
        .and(with_state(s))
        .and_then(set_notify);
    read.or(notify).unify()
}

/// History and search.
fn message_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // GET /api/rooms/{room}/messages
    let messages = warp::path!("api" / "rooms" / String / "messages")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(s.clone()))
        .and_then(messages);
    // GET /api/search
    let search = warp::path!("api" / "search")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(s))
        .and_then(search);
    messages.or(search).unify()
}

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

/// `{"rooms":[name, ...]}`
#[derive(Debug, Deserialize)]
pub struct LeaveMany {
    rooms: Vec<String>,
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

/// A room name from the URL, percent-decoded (clients may encode the `:` and `,` of DM names)
/// and case-folded: every room's name is stored in lower case (see [`fold_room_name`]).
pub fn room_param(raw: &str) -> Result<String, Rejection> {
    // No room can have a name that does not decode.
    decode_segment(raw)
        .map(|name| fold_room_name(&name))
        .ok_or_else(no_such_room)
}

/// A path segment percent-decoded to text; `None` for a bad escape or bytes that are not
/// UTF-8.
pub fn decode_segment(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn no_such_room() -> Rejection {
    RoomError::UnknownRoom.into()
}

fn room_reply(status: StatusCode, room: &crate::db::Room) -> Response {
    warp::reply::with_status(
        warp::reply::json(&json!({ "room": RoomView::from(room) })),
        status,
    )
    .into_response()
}

/// GET /api/rooms
pub async fn list(id: Identity, state: App) -> Result<Response, Rejection> {
    let rooms = rooms::list(&state, id.user.id).await?;
    let views: Vec<RoomView> = rooms.iter().map(RoomView::from).collect();
    Ok(warp::reply::json(&json!({ "rooms": views })).into_response())
}

/// GET /api/directory
pub async fn directory(id: Identity, state: App) -> Result<Response, Rejection> {
    let rooms = rooms::directory(&state, id.user.id).await?;
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
    .await?;
    Ok(room_reply(StatusCode::CREATED, &room))
}

/// GET /api/rooms/{room}
pub async fn details(room: String, id: Identity, state: App) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let (room, members) = rooms::details(&state, id.user.id, &room).await?;
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
        let why = "Give a new `name`, a new `topic`, or both.";
        return Err(AppError::bad_request(why).into());
    }
    let room = rooms::update(
        &state,
        &id.user,
        id.is_admin,
        &room,
        body.name.as_deref(),
        body.topic.as_deref(),
    )
    .await?;
    Ok(room_reply(StatusCode::OK, &room))
}

/// POST /api/rooms/{room}/join
pub async fn join(room: String, id: Identity, state: App) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let room = rooms::join(&state, &id.user, &room).await?;
    Ok(room_reply(StatusCode::OK, &room))
}

/// POST /api/rooms/{room}/leave
pub async fn leave(room: String, id: Identity, state: App) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    rooms::leave(&state, &id.user, &room).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// POST /api/rooms/leave
pub async fn leave_many(id: Identity, body: LeaveMany, state: App) -> Result<Response, Rejection> {
    let names: Vec<String> = body.rooms.iter().map(|r| fold_room_name(r)).collect();
    let left = rooms::leave_many(&state, &id.user, &names).await?;
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
    let room = rooms::invite(&state, &id.user, &room, &body.username).await?;
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
        return Err(AppError::bad_request("`id` must be a message id (≥ 0).").into());
    }
    let room = rooms::mark_read(&state, id.user.id, (&room, body.id), false).await?;
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
    let room = rooms::set_notify(&state, id.user.id, &room, body.level).await?;
    Ok(room_reply(StatusCode::OK, &room))
}

/// POST /api/dms
pub async fn open_dm(id: Identity, body: NewDm, state: App) -> Result<Response, Rejection> {
    // Refused before any name is looked at: a long list is no reason to do work.
    if body.users.len() > 64 {
        return Err(RoomError::TooManyMembers.into());
    }
    let (room, created) = rooms::open_dm(&state, &id.user, &body.users).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(room_reply(status, &room))
}

/// GET /api/rooms/{room}/messages?before=&after=&around=&limit=
pub async fn messages(
    room: String,
    id: Identity,
    q: HashMap<String, String>,
    state: App,
) -> Result<Response, Rejection> {
    let room = room_param(&room)?;
    let before = query::message_id(&q, "before")?;
    let after = query::message_id(&q, "after")?;
    let around = query::message_id(&q, "around")?;
    let page = history::page(before, after, around)?;
    let limit = history::page_size(query::limit(&q))?;
    let body = history::messages(&state, id.user.id, &room, page, limit).await?;
    Ok(history_page(body))
}

/// A history page as sent: its body, `{"messages":[...]}`, as JSON.
fn history_page(body: Vec<u8>) -> Response {
    let mut res = Response::new(body.into());
    res.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    res
}

/// GET /api/search?q=&sort=&limit=&before=&offset=&room=&user=
pub async fn search(
    id: Identity,
    q: HashMap<String, String>,
    state: App,
) -> Result<Response, Rejection> {
    let search = search_params(&q)?;
    let page = history::search(&state, id.user.id, search).await?;
    Ok(search_reply(&page))
}

/// The parameters of a search, refused in this order: `q`, `sort`, `limit`, `before`,
/// `offset`.
fn search_params(q: &HashMap<String, String>) -> Result<history::Search<'_>, AppError> {
    let text = history::search_text(q.get("q").map(String::as_str).unwrap_or(""))?;
    let by_relevance = match q.get("sort").map(String::as_str) {
        None | Some("newest") => false,
        Some("relevance") => true,
        Some(_) => return Err(AppError::bad_request("`sort` is `newest` or `relevance`.")),
    };
    let limit = history::search_size(query::count(q, "limit")?)?;
    Ok(history::Search {
        text,
        by_relevance,
        limit,
        before: query::number(q, "before")?,
        offset: query::number(q, "offset")?,
        room: q.get("room").map(String::as_str),
        author: q.get("user").map(String::as_str),
    })
}

/// `{"results":[message + "snippet"...],"next_before","next_offset"}`
fn search_reply(page: &SearchPage) -> Response {
    let results: Vec<serde_json::Value> = page
        .hits
        .iter()
        .map(|h| {
            let mut v = serde_json::to_value(MessageView::from(&h.msg)).unwrap_or_default();
            v["snippet"] = json!(h.snippet);
            v
        })
        .collect();
    warp::reply::json(&json!({
        "results": results,
        "next_before": page.next_before,
        "next_offset": page.next_offset,
    }))
    .into_response()
}
