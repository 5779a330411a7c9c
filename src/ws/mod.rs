//! The WebSocket endpoint `GET /ws`.
//!
//! The upgrade is taken here rather than through `warp::ws()`: warp's `Ws` gives no way to set
//! tungstenite's read buffer, which defaults to 128 KiB per connection. The accept loop parks
//! hyper's `OnUpgrade` in an [`UpgradeSlot`]; this handler authenticates, answers `101`, and
//! builds the WebSocket with a small read buffer and a bounded write buffer.
//!
//! - [`protocol`]: frame types.
//! - [`session`]: the per-connection loop.

pub mod protocol;
pub mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::error::ApiError;
use crate::http::filters::{client_ip, presented_token, request_origin, with_state, RequestOrigin};
use crate::hub::AdmitError;
use crate::AppState;
use session::Session;

/// Largest message or frame a client may send.
pub const MAX_FRAME: usize = 64 * 1024;

/// hyper's pending upgrade for this request, taken at most once.
#[derive(Clone, Default)]
pub struct UpgradeSlot(pub Arc<Mutex<Option<OnUpgrade>>>);

/// The tungstenite settings for every connection.
pub fn socket_config() -> WebSocketConfig {
    let mut c = WebSocketConfig::default();
    c.read_buffer_size = 2 * 1024;
    c.write_buffer_size = 16 * 1024;
    c.max_write_buffer_size = 4 * 1024 * 1024;
    c.max_message_size = Some(MAX_FRAME);
    c.max_frame_size = Some(MAX_FRAME);
    c
}

/// GET /ws
pub fn route(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path("ws")
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::ext::optional::<UpgradeSlot>())
        .and(client_ip(&state))
        .and(request_origin())
        .and(presented_token())
        .and(with_state(state))
        .and_then(upgrade)
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

#[allow(clippy::too_many_arguments)]
async fn upgrade(
    headers: HeaderMap,
    query: HashMap<String, String>,
    slot: Option<UpgradeSlot>,
    ip: IpAddr,
    origin: RequestOrigin,
    token: Option<String>,
    state: AppState,
) -> Result<Response, Rejection> {
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_ws = header_has(&headers, header::UPGRADE, "websocket")
        && header_has(&headers, header::CONNECTION, "upgrade");
    let (Some(key), true) = (key, is_ws) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "This endpoint speaks WebSocket only.",
        )
        .reject());
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut res = ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "bad_request",
            "Only WebSocket version 13 is supported.",
        )
        .to_reply();
        res.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Ok(res);
    }
    origin.check(&state, false).map_err(ApiError::reject)?;
    let Some(token) = token else {
        return Err(ApiError::unauthorized().reject());
    };
    let identity = match state.auth.authenticate(&token).await {
        Ok(Some(id)) => id,
        Ok(None) => return Err(ApiError::unauthorized().reject()),
        Err(e) => return Err(ApiError::from(e).reject()),
    };
    let since = match query.get("since") {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad_request("`since` must be a message id (a whole number ≥ 0).").reject()
        })?),
    };
    // Join the fan-out of the user's rooms before the session's first snapshot, so nothing
    // committed after that snapshot is missed; the session then reads the rooms in full.
    let uid = identity.user.id;
    let room_ids = state
        .db
        .room_ids_for_user(uid)
        .await
        .map_err(|e| ApiError::from(e).reject())?;
    let Some(on_upgrade) = slot.and_then(|s| s.0.lock().ok().and_then(|mut g| g.take())) else {
        return Err(ApiError::bad_request("The connection cannot be upgraded.").reject());
    };
    let reg = state
        .hub
        .register(&identity.user, ip, identity.token_hash, &room_ids)
        .map_err(|e| {
            let why = match e {
                AdmitError::TooManyForUser => "You have too many open connections.",
                AdmitError::TooManyForAddress => "Too many connections from your address.",
            };
            ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_connections", why)
            }
            .reject()
        })?;
    let session = Session {
        username: Arc::from(identity.user.username.as_str()),
        user: identity.user,
        rooms: Vec::new(),
        since,
        token_hash: identity.token_hash,
        reg,
        guard: state.tracker.track(),
        state,
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(socket_config()),
                )
                .await;
                session.run(ws).await;
            }
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(res)
}
