//! The handlers of the account, session and site routes (`http::routes`): parse, call
//! `auth` or the app, render.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

use super::error::unauthorized;
use super::filters::{ForwardedProto, RequestOrigin, SESSION_COOKIE};
use crate::app::error::{AppError, Code};
use crate::app::App;
use crate::auth::{Identity, NewSession};
use crate::db::SessionKind;
use crate::protocol::{UserView, CLOSE_SESSION_ENDED};

/// `{"username","password"}`, plus `"invite"` (a code from an invite link) on registration.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
    #[serde(default)]
    invite: Option<String>,
    #[serde(default)]
    setup: Option<String>,
}

/// `{"current_password","new_password","sign_out_others"}`
#[derive(Debug, Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
    #[serde(default = "yes")]
    sign_out_others: bool,
}

fn yes() -> bool {
    true
}

/// `{"name"}`
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    name: String,
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> Response {
    warp::reply::with_status(warp::reply::json(&value), status).into_response()
}

fn session_cookie(state: &App, token: &str, max_age_secs: i64) -> String {
    let secure = if state.config.is_https() {
        "; Secure"
    } else {
        ""
    };
    // Under a path prefix (`public_url = "https://example.org/chat/"`) the cookie is scoped
    // to it: `Path=/chat/`. A proxy that forwards HTTPS gets `Secure` added in `http::routes`.
    let path = state.config.cookie_path();
    format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path={path}; Max-Age={max_age_secs}{secure}"
    )
}

fn signed_in(state: &App, status: StatusCode, s: NewSession) -> Response {
    let mut res = json_reply(status, json!({ "user": UserView::from(&s.user) }));
    let max_age = i64::from(state.config.auth.session_max_hours) * 3600;
    if let Ok(v) = session_cookie(state, &s.token, max_age).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// POST /api/register
pub async fn register(
    body: Credentials,
    ip: IpAddr,
    origin: RequestOrigin,
    state: App,
) -> Result<Response, Rejection> {
    origin.check(&state, false)?;
    let s = state
        .auth
        .register_with_invite(
            &body.username,
            &body.password,
            body.invite.as_deref(),
            body.setup.as_deref(),
            ip,
        )
        .await?;
    Ok(signed_in(&state, StatusCode::CREATED, s))
}

/// POST /api/login
pub async fn login(
    body: Credentials,
    ip: IpAddr,
    origin: RequestOrigin,
    state: App,
) -> Result<Response, Rejection> {
    origin.check(&state, false)?;
    let s = state.auth.login(&body.username, &body.password, ip).await?;
    Ok(signed_in(&state, StatusCode::OK, s))
}

/// A revoked session's sockets are closed (4001); 204, clearing the cookie when it was the
/// caller's own browser session.
fn signed_out(state: &App, session: [u8; 32], clear_cookie: bool) -> Response {
    state
        .hub
        .close_session(session, CLOSE_SESSION_ENDED, "signed out");
    let mut res = StatusCode::NO_CONTENT.into_response();
    if clear_cookie {
        if let Ok(v) = session_cookie(state, "", 0).parse() {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    res
}

/// POST /api/logout
pub async fn logout(id: Identity, state: App) -> Result<Response, Rejection> {
    state.auth.logout(id.token_hash).await?;
    Ok(signed_out(&state, id.token_hash, true))
}

/// POST /api/password
pub async fn change_password(
    id: Identity,
    body: PasswordChange,
    ip: IpAddr,
    state: App,
) -> Result<Response, Rejection> {
    let revoked = state
        .auth
        .change_password(
            &id,
            &body.current_password,
            &body.new_password,
            body.sign_out_others,
            ip,
        )
        .await?;
    for session in revoked {
        state
            .hub
            .close_session(session, CLOSE_SESSION_ENDED, "password changed");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// GET /api/me: who the caller is, whether they administer the server, and whether they may
/// create invite links.
pub async fn me(id: Identity, state: App) -> Result<Response, Rejection> {
    Ok(json_reply(
        StatusCode::OK,
        json!({
            "user": UserView::from(&id.user),
            "profile": crate::protocol::ProfileView::from(&own_profile(&state, &id.user.username)),
            "is_admin": id.is_admin,
            "can_invite": crate::app::invites::may_invite(&state, id.is_admin),
        }),
    ))
}

/// `username`'s profile as the hub holds it (an empty one when nothing is set).
fn own_profile(state: &App, username: &str) -> crate::db::Profile {
    state
        .hub
        .profiles()
        .iter()
        .find(|p| p.username == username)
        .cloned()
        .unwrap_or_else(|| crate::db::Profile {
            username: username.to_string(),
            display_name: String::new(),
            status: String::new(),
            avatar: None,
        })
}

/// POST /api/tokens
pub async fn create_token(
    id: Identity,
    body: TokenRequest,
    state: App,
) -> Result<Response, Rejection> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(AppError::bad_request("A token name is 1 to 64 characters.").into());
    }
    let s = state
        .auth
        .start_session(id.user, SessionKind::Bot, Some(name.to_string()))
        .await?;
    Ok(json_reply(
        StatusCode::CREATED,
        json!({ "token": s.token, "name": name }),
    ))
}

/// GET /api/sessions: the caller's signed-in browsers and bot tokens.
pub async fn sessions(id: Identity, state: App) -> Result<Response, Rejection> {
    let list = state.auth.sessions(id.user.id).await?;
    let rfc = crate::protocol::rfc3339;
    let views: Vec<serde_json::Value> = list
        .iter()
        .map(|s| {
            json!({
                "id": s.listing_id(),
                "kind": s.kind.as_str(),
                "name": s.name,
                "created_at": rfc(s.created_at),
                "last_seen": rfc(s.last_seen_at),
                "expires_at": s.expires_at.map(rfc),
                "current": s.token_hash == id.token_hash,
            })
        })
        .collect();
    Ok(json_reply(StatusCode::OK, json!({ "sessions": views })))
}

/// DELETE /api/sessions/{id}: revoke one of the caller's sessions or tokens and close its
/// sockets (4001).
pub async fn revoke_session(
    session: String,
    id: Identity,
    state: App,
) -> Result<Response, Rejection> {
    let unknown = || {
        let why = "You have no session or token with that id.";
        Rejection::from(AppError::new(Code::UnknownSession, why))
    };
    if session.len() != 16 || !session.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    let revoked = state
        .auth
        .revoke(id.user.id, &session)
        .await?
        .ok_or_else(unknown)?;
    let own_cookie = revoked == id.token_hash && id.kind == SessionKind::Cookie;
    Ok(signed_out(&state, revoked, own_cookie))
}

/// Longest a node may go without reading the log (PostgreSQL) and still call itself healthy:
/// the follower reads it at least every half second.
const HEALTHY_LOG_AGE: Duration = Duration::from_secs(5);

/// How long after a failed write `/healthz` answers 503 even though its own probe writes: a
/// probe that changes nothing does not prove that messages can be stored (a full disk refuses
/// only the writes that grow the database). After that, a probe that writes clears the
/// failure, so a node whose database came back (after a PostgreSQL restart, say) is taken back
/// by a load balancer that sent it nothing meanwhile; a message that fails again sets it again.
const WRITE_FAILURE_HOLD: Duration = Duration::from_secs(30);

/// Longest the database probes of `/healthz` (a read and a write) may take together.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// GET /healthz: reads and writes the database (and, on PostgreSQL, follows the log). Body
/// `ok`, or `unavailable: <why>` with 503; with `?detail`, one more line per part (database,
/// log, Redis, presence), whatever the status: a node taken out of a load balancer says what
/// else is wrong with it too.
pub async fn healthz(detail: bool, state: App) -> Result<Response, Rejection> {
    let metrics = state.hub.metrics();
    let failure = metrics.write_error.lock().ok().and_then(|e| e.clone());
    let log = metrics.log_lag();
    let mut unavailable = match &failure {
        Some(f) if f.at.elapsed() < WRITE_FAILURE_HOLD => {
            Some(format!("the last database write failed: {}", f.why))
        }
        // Before the probes: a node that stopped following the log may be stuck on the
        // database.
        _ => log
            .filter(|(age, _)| *age > HEALTHY_LOG_AGE)
            .map(|(age, _)| format!("this node last read the log {} s ago", age.as_secs())),
    };
    // Without `?detail` a node already known to be unavailable is not probed.
    let probed = if unavailable.is_none() || detail {
        Some(probe(&state).await)
    } else {
        None
    };
    if unavailable.is_none() {
        match &probed {
            Some(Err(why)) => unavailable = Some(why.clone()),
            _ => {
                if let Some(old) = &failure {
                    // The probe wrote, long enough after the failure: forget it (unless a
                    // newer one came).
                    if let Ok(mut e) = metrics.write_error.lock() {
                        if e.as_ref().is_some_and(|f| f.at == old.at) {
                            *e = None;
                        }
                    }
                }
            }
        }
    }
    let (status, mut body) = match &unavailable {
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unavailable: {why}"),
        ),
        None => (StatusCode::OK, "ok".to_string()),
    };
    if !detail {
        return Ok(plain_text(status, body));
    }
    let store = if state.db.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };
    body.push('\n');
    // Always probed with `?detail`.
    if let Some(probed) = &probed {
        let database = probed.as_ref().map_or_else(String::as_str, |()| "ok");
        body.push_str(&format!("database: {store}, {database}\n"));
    }
    if let Some((age, position)) = log {
        body.push_str(&format!(
            "log: position {position}, read {} ms ago\n",
            age.as_millis()
        ));
    }
    if let Some(cluster) = &state.cluster {
        let redis = if cluster.ping().await {
            "ok"
        } else {
            "unreachable (messages flow; presence, typing, caps and rates are per node)"
        };
        body.push_str(&format!("redis: {redis}\n"));
        let presence = if cluster.presence.following() {
            "every node"
        } else {
            "as last known, then this node's users only (Redis cannot be followed)"
        };
        body.push_str(&format!("presence: {presence}\n"));
    }
    Ok(plain_text(status, body))
}

/// The database probes of `/healthz`: a read, then a write, within [`PROBE_TIMEOUT`]
/// together. The error is the reason `/healthz` gives.
async fn probe(state: &App) -> Result<(), String> {
    let probes = async {
        state.db.ping_read().await?;
        state.db.ping_write().await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probes).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!("health check failed: {e}");
            Err("the database cannot be read or written".into())
        }
        Err(_) => {
            tracing::error!("health check: the database did not answer within {PROBE_TIMEOUT:?}");
            Err(format!(
                "the database did not answer within {} s",
                PROBE_TIMEOUT.as_secs()
            ))
        }
    }
}

fn plain_text(status: StatusCode, body: String) -> Response {
    let text = warp::reply::with_header(body, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    warp::reply::with_status(text, status).into_response()
}

/// GET /metrics: Prometheus text, when enabled (and with the configured bearer token).
pub async fn metrics(auth: Option<String>, state: App) -> Result<Response, Rejection> {
    let cfg = &state.config.metrics;
    if !cfg.enabled {
        return Err(warp::reject::not_found());
    }
    if !cfg.token.is_empty() {
        use subtle::ConstantTimeEq;
        let presented = auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = presented.as_bytes().ct_eq(cfg.token.as_bytes()).into();
        if !ok {
            return Err(unauthorized().into());
        }
    }
    let body = state.hub.metrics().render(state.hub.connection_count());
    Ok(warp::reply::with_header(
        body,
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response())
}

/// The public base URL, without a trailing slash: `public_url` (scheme and host lowercased,
/// path prefix kept), else `http://HOST` (`https://HOST` when Hearth serves TLS itself), or,
/// for a request without a usable `Host`, the address this server listens on (loopback when
/// it listens on every address).
pub fn base_url(state: &App, host: Option<&str>) -> String {
    request_base_url(state, host, None)
}

/// [`base_url`] for one request: without `public_url`, the scheme a trusted proxy forwarded
/// (`X-Forwarded-Proto`) wins.
pub fn request_base_url(
    state: &App,
    host: Option<&str>,
    forwarded: Option<ForwardedProto>,
) -> String {
    match state.config.public_url() {
        Some(u) => match crate::config::parse_origin(u) {
            Ok(origin) => format!("{origin}{}", state.config.path_prefix().unwrap_or("")),
            Err(_) => u.to_string(),
        },
        None => {
            let host = host
                .filter(|h| {
                    !h.is_empty()
                        && h.bytes().all(|b| {
                            b.is_ascii_alphanumeric()
                                || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
                        })
                })
                .map(str::to_string)
                .unwrap_or_else(|| own_address(state.local_addr));
            let scheme = match forwarded {
                Some(proto) => proto.scheme(),
                None if state.config.server.tls.enabled() => "https",
                None => "http",
            };
            format!("{scheme}://{host}")
        }
    }
}

/// This server's address as a URL's host and port: loopback in place of "every address".
fn own_address(mut addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr.to_string()
}

/// The WebSocket URL derived from a base URL.
pub fn ws_url(base: &str) -> String {
    let rest = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_string());
    format!("{}/ws", rest.trim_end_matches('/'))
}

/// GET /config.js: `url` is the public base URL without a trailing slash (with the path
/// prefix, if any), `ws` the WebSocket URL under it, and `edit_window_minutes` when
/// `messages.edit_window_minutes` limits editing (absent when it does not, so the default
/// answer stays exactly the contract's two keys).
pub async fn config_js(
    host: Option<String>,
    forwarded: Option<ForwardedProto>,
    state: App,
) -> Result<Response, Rejection> {
    let url = request_base_url(&state, host.as_deref(), forwarded);
    let mut config = json!({ "url": url, "ws": ws_url(&url) });
    let window = state.config.messages.edit_window_minutes;
    if window > 0 {
        config["edit_window_minutes"] = json!(window);
    }
    let body = format!("window.HEARTH = {config};\n");
    let mut res = warp::reply::with_header(
        body,
        header::CONTENT_TYPE,
        "application/javascript; charset=utf-8",
    )
    .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(res)
}

/// GET /{asset}: the embedded UI, with a Content-Security-Policy that lets it reach this
/// server's WebSocket.
pub async fn asset(
    tail: warp::path::Tail,
    if_none_match: Option<String>,
    accept_encoding: Option<String>,
    host: Option<String>,
    forwarded: Option<ForwardedProto>,
    state: App,
) -> Result<Response, Rejection> {
    let base = request_base_url(&state, host.as_deref(), forwarded);
    let ws = ws_url(&base);
    let csp = crate::assets::content_security_policy(super::ws_origin(&ws));
    let gzip = crate::assets::accepts_gzip(accept_encoding.as_deref());
    crate::assets::serve(tail.as_str(), if_none_match.as_deref(), gzip, &csp)
        .ok_or_else(warp::reject::not_found)
}

#[cfg(test)]
mod tests {
    use super::{own_address, ws_url};

    #[test]
    fn a_server_on_every_address_names_loopback() {
        let own = |a: &str| own_address(a.parse().unwrap());
        assert_eq!(own("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(own("[::]:8080"), "[::1]:8080");
        assert_eq!(own("192.0.2.7:80"), "192.0.2.7:80");
    }

    #[test]
    fn ws_urls_follow_the_scheme() {
        assert_eq!(ws_url("http://127.0.0.1:12345"), "ws://127.0.0.1:12345/ws");
        assert_eq!(
            ws_url("https://chat.example.org"),
            "wss://chat.example.org/ws"
        );
        assert_eq!(
            ws_url("https://example.org/chat/"),
            "wss://example.org/chat/ws"
        );
    }
}
