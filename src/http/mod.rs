//! HTTP routes. `routes(state)` is the whole application as one warp filter.
//!
//! - [`filters`]: state, client address, JSON bodies, authentication, Origin.
//! - [`handlers`]: the account, session and site handlers.
//! - [`rooms`]: rooms, DMs, history and search: routes and handlers.
//! - [`people`]: finding people by name, one person's profile.
//! - [`profiles`]: changing one's own display name, status and avatar.
//! - [`upgrade`]: the WebSocket handshake.
//! - [`uploads`]: uploading files and serving them safely.
//! - [`admin`]: the administrators' routes.
//! - [`invites`]: invite links made by members, and what the "Invite people" dialog shows.
//! - [`error`]: the JSON error shape and the root rejection handler.
//! - [`query`]: numbers in query strings (ids, counts, `limit`).

pub mod admin;
pub mod error;
pub mod filters;
pub mod handlers;
pub mod hooks;
pub mod invites;
pub mod messages;
pub mod people;
pub mod profiles;
pub mod push;
pub mod query;
pub mod rooms;
pub mod upgrade;
pub mod uploads;

use std::convert::Infallible;

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::app::App;
use filters::{
    client_ip, json_body, request_origin, signed_in, signed_in_write, with_state, ForwardedProto,
};

/// Body limit for the small JSON bodies of the API.
pub(crate) const SMALL_BODY: u64 = 16 * 1024;

/// Every route, with error handling and the security headers.
pub fn routes(state: App) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let https = state.config.is_https();
    filters::forwarded_proto()
        .and(
            filters::no_nul()
                .and(
                    api(state.clone())
                        .map(|r: Response| no_store(r))
                        .or(upgrade::route(state.clone()).boxed())
                        .unify()
                        .or(uploads::downloads(state.clone()).boxed())
                        .unify()
                        .or(site(state).boxed())
                        .unify(),
                )
                .recover(error::handle_rejection)
                .unify(),
        )
        .map(move |forwarded: Option<ForwardedProto>, r: Response| {
            // A trusted proxy that terminated TLS: cookies get `Secure`, HSTS is sent.
            let forwarded_https = forwarded == Some(ForwardedProto::Https);
            let r = if forwarded_https && !https {
                secure_cookies(r)
            } else {
                r
            };
            security_headers(r, https || forwarded_https)
        })
}

/// The JSON API under `/api`.
fn api(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // Each group boxed: warp clones every route after the first for every request, and a
    // boxed group clones as one reference count.
    account(s.clone())
        .or(admin::routes(s.clone()).boxed())
        .unify()
        .or(rooms::routes(s.clone()).boxed())
        .unify()
        .or(messages::routes(s.clone()).boxed())
        .unify()
        .or(invites::routes(s.clone()).boxed())
        .unify()
        .or(people::routes(s.clone()).boxed())
        .unify()
        .or(hooks::routes(s.clone()).boxed())
        .unify()
        .or(push::routes(s.clone()).boxed())
        .unify()
        .or(uploads::routes(s).boxed())
        .unify()
}

/// Accounts and sessions: register, login, logout, me, tokens, password, sessions. Boxed: the
/// whole API as one nested filter type is deeper than the compiler's recursion limit.
fn account(s: App) -> warp::filters::BoxedFilter<(Response,)> {
    sign_in_routes(s.clone())
        .or(profile_routes(s.clone()))
        .unify()
        .or(session_routes(s))
        .unify()
        .boxed()
}

/// Register, log in, log out.
fn sign_in_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // POST /api/register
    let register = warp::path!("api" / "register")
        .and(warp::post())
        .and(json_body(SMALL_BODY))
        .and(client_ip(&s))
        .and(request_origin())
        .and(with_state(s.clone()))
        .and_then(handlers::register);
    // POST /api/login
    let login = warp::path!("api" / "login")
        .and(warp::post())
        .and(json_body(SMALL_BODY))
        .and(client_ip(&s))
        .and(request_origin())
        .and(with_state(s.clone()))
        .and_then(handlers::login);
    // POST /api/logout
    let logout = warp::path!("api" / "logout")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(with_state(s))
        .and_then(handlers::logout);
    register.or(login).unify().or(logout).unify()
}

/// The signed-in user: who they are, their password, their bot tokens.
fn profile_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let s2 = s.clone();
    // GET /api/me
    let me = warp::path!("api" / "me")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(handlers::me);
    // POST /api/password
    let password = warp::path!("api" / "password")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(client_ip(&s))
        .and(with_state(s.clone()))
        .and_then(handlers::change_password);
    // POST /api/tokens
    let tokens = warp::path!("api" / "tokens")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s))
        .and_then(handlers::create_token);
    me.or(password)
        .unify()
        .or(tokens)
        .unify()
        .or(profiles::routes(s2))
        .unify()
}

/// The signed-in user's sessions and tokens: listing and revoking them.
fn session_routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // GET /api/sessions
    let sessions = warp::path!("api" / "sessions")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(handlers::sessions);
    // DELETE /api/sessions/{id}
    let revoke = warp::path!("api" / "sessions" / String)
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s))
        .and_then(handlers::revoke_session);
    sessions.or(revoke).unify()
}

/// `/config.js`, `/healthz`, `/metrics` and the embedded UI.
fn site(state: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    // GET /config.js
    let config_js = warp::path!("config.js")
        .and(warp::get())
        .and(warp::header::optional::<String>("host"))
        .and(filters::forwarded_proto())
        .and(with_state(state.clone()))
        .and_then(handlers::config_js);
    // GET /healthz
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(
            warp::query::raw()
                .map(|q: String| {
                    q.split('&')
                        .any(|p| p == "detail" || p.starts_with("detail="))
                })
                .or(warp::any().map(|| false))
                .unify(),
        )
        .and(with_state(state.clone()))
        .and_then(handlers::healthz);
    // GET /metrics
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(with_state(state.clone()))
        .and_then(handlers::metrics);
    // GET /{asset}: the path first, so another method on a path that is no file of the UI
    // (nor any route) is 404, not 405.
    let assets = warp::path::tail()
        .and_then(|tail: warp::path::Tail| async move {
            if crate::assets::exists(tail.as_str()) {
                Ok(tail)
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(warp::header::optional::<String>("host"))
        .and(filters::forwarded_proto())
        .and(with_state(state))
        .and_then(handlers::asset);
    config_js
        .or(healthz)
        .unify()
        .or(metrics)
        .unify()
        .or(assets)
        .unify()
}

/// Add `Secure` to every cookie the response sets that lacks it.
fn secure_cookies(mut r: Response) -> Response {
    let cookies: Vec<HeaderValue> = r
        .headers_mut()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| match v.to_str() {
            Ok(c)
                if !c
                    .split(';')
                    .any(|a| a.trim().eq_ignore_ascii_case("secure")) =>
            {
                HeaderValue::from_str(&format!("{c}; Secure")).unwrap_or_else(|_| v.clone())
            }
            _ => v.clone(),
        })
        .collect();
    if !cookies.is_empty() {
        r.headers_mut().remove(header::SET_COOKIE);
        for c in cookies {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    r
}

/// The origin (`ws://host:port`) of a WebSocket URL, for the CSP's `connect-src`: a source
/// with a path would allow that exact path only.
fn ws_origin(ws: &str) -> &str {
    let Some(start) = ws.find("://").map(|i| i + 3) else {
        return ws;
    };
    match ws[start..].find('/') {
        Some(end) => &ws[..start + end],
        None => ws,
    }
}

/// API answers belong to one user and change at any time: no cache may keep them.
fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The headers every response carries (the accept loop's own answers too): no MIME sniffing,
/// no framing, the referrer kept to this site, and HSTS when the visitor came over HTTPS.
pub(crate) fn security_headers(mut r: Response, https: bool) -> Response {
    let h = r.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_origins_drop_the_path() {
        assert_eq!(ws_origin("ws://127.0.0.1:12345/ws"), "ws://127.0.0.1:12345");
        assert_eq!(ws_origin("wss://example.org/chat/ws"), "wss://example.org");
        assert_eq!(ws_origin("wss://example.org"), "wss://example.org");
        assert_eq!(ws_origin("nonsense"), "nonsense");
    }

    #[test]
    fn secure_is_added_once_to_every_cookie() {
        let mut r = Response::new(Default::default());
        let h = r.headers_mut();
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("b=2; Secure"));
        let r = secure_cookies(r);
        let all: Vec<_> = r.headers().get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(all, ["a=1; Path=/; Secure", "b=2; Secure"]);
    }
}
