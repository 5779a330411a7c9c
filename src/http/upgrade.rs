//! `GET /ws`: the WebSocket handshake.
//!
//! The upgrade is taken here rather than through `warp::ws()`: warp's `Ws` gives no way to set
//! tungstenite's read buffer. The accept loop parks hyper's `OnUpgrade` in an [`UpgradeSlot`];
//! this handler checks the handshake, authenticates, admits the connection to the hub, answers
//! `101`, and hands the socket to [`crate::ws::spawn`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::{unauthorized, ApiError};
use super::filters::{client_ip, presented_token, request_origin, with_state, RequestOrigin};
use crate::app::error::{AppError, Code};
use crate::app::App;
use crate::auth::Identity;
use crate::cluster::caps::Admission;
use crate::hub::AdmitError;
use crate::limits::address_key;
use crate::ws::Admitted;

/// hyper's pending upgrade for this request, taken at most once.
#[derive(Clone, Default)]
pub struct UpgradeSlot(pub Arc<Mutex<Option<OnUpgrade>>>);

/// GET /ws
pub fn route(state: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
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

#[allow(clippy::too_many_arguments)]
async fn upgrade(
    headers: HeaderMap,
    query: HashMap<String, String>,
    slot: Option<UpgradeSlot>,
    ip: IpAddr,
    origin: RequestOrigin,
    token: Option<String>,
    state: App,
) -> Result<Response, Rejection> {
    let Some(key) = upgrade_key(&headers) else {
        return Err(AppError::bad_request("This endpoint speaks WebSocket only.").into());
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Ok(version_required());
    }
    origin.check(&state, false)?;
    let generation = state.db.sessions_generation();
    let identity = identify(&state, token).await?;
    let since = parse_since(&query)?;
    let Some(on_upgrade) = slot.and_then(|s| s.0.lock().ok().and_then(|mut g| g.take())) else {
        return Err(AppError::bad_request("The connection cannot be upgraded.").into());
    };
    let admitted = admit(&state, identity, ip, since).await?;
    // A revocation this node learnt of after the session was read (from its cache, or a
    // sign-out elsewhere that its poll has just seen) closed the session's connections in
    // the hub, perhaps before this one was in it: read the session again.
    if state.db.sessions_generation() != generation
        && !state
            .auth
            .still_valid(admitted.token_hash)
            .await
            .map_err(AppError::from)?
    {
        return Err(unauthorized().into());
    }
    crate::ws::spawn(state, admitted, on_upgrade);
    Ok(switching_protocols(&key))
}

/// The `Sec-WebSocket-Key` of a request that asks for a WebSocket upgrade.
fn upgrade_key(headers: &HeaderMap) -> Option<HeaderValue> {
    let is_ws = header_has(headers, header::UPGRADE, "websocket")
        && header_has(headers, header::CONNECTION, "upgrade");
    is_ws
        .then(|| headers.get(header::SEC_WEBSOCKET_KEY).cloned())
        .flatten()
}

/// 426 for any WebSocket version but 13.
fn version_required() -> Response {
    // RFC 6455 (4.4) answers an unsupported version with 426 and the versions spoken; the
    // code stays `bad_request`, whose status in the table is 400.
    let refusal = AppError::bad_request("Only WebSocket version 13 is supported.");
    let mut res = ApiError::from(refusal)
        .with_status(StatusCode::UPGRADE_REQUIRED)
        .to_reply();
    res.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    res
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// `?since=`: absent, or a message id.
fn parse_since(query: &HashMap<String, String>) -> Result<Option<i64>, AppError> {
    let Some(v) = query.get("since") else {
        return Ok(None);
    };
    match v.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(AppError::bad_request(
            "`since` must be a message id (a whole number ≥ 0).",
        )),
    }
}

async fn identify(state: &App, token: Option<String>) -> Result<Identity, AppError> {
    let token = token.ok_or_else(unauthorized)?;
    state
        .auth
        .authenticate(&token)
        .await?
        .ok_or_else(unauthorized)
}

/// Take a place in the hub, listening to no room yet: the session reads the user's rooms
/// and makes the connection listen to them (see `ws::session`), so the handshake itself
/// reads nothing but the session. In cluster mode the caps count every node's connections
/// first.
async fn admit(
    state: &App,
    identity: Identity,
    ip: IpAddr,
    since: Option<i64>,
) -> Result<Admitted, AppError> {
    let addr = address_key(ip);
    let place = match &state.cluster {
        Some(cluster) => match cluster
            .caps
            .admit(identity.user.id, &addr.to_string())
            .await
        {
            Admission::Admitted(place) | Admission::Unknown(place) => Some(place),
            Admission::UserFull => return Err(too_many(AdmitError::TooManyForUser)),
            Admission::AddressFull => return Err(too_many(AdmitError::TooManyForAddress)),
        },
        None => None,
    };
    let reg = state
        .hub
        .connect(&identity.user, addr, identity.token_hash, &[])
        .map_err(too_many)?;
    Ok(Admitted {
        user: identity.user,
        token_hash: identity.token_hash,
        since,
        reg,
        place,
    })
}

fn too_many(e: AdmitError) -> AppError {
    let why = match e {
        AdmitError::TooManyForUser => "You have too many open connections.",
        AdmitError::TooManyForAddress => "Too many connections from your address.",
    };
    AppError::new(Code::TooManyConnections, why).retry_after(Duration::from_secs(5))
}

fn switching_protocols(key: &HeaderValue) -> Response {
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}
