//! Reusable filters: state injection, client address, JSON bodies, authentication and the
//! Origin check.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::de::DeserializeOwned;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::error::ApiError;
use crate::auth::Identity;
use crate::config::parse_origin;
use crate::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hearth_session";

/// The peer address, put into each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Hand the shared state to a handler.
pub fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The client's IP address.
pub fn client_ip() -> impl Filter<Extract = (IpAddr,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>()
        .map(|a: Option<ClientAddr>| a.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip()))
}

/// A JSON body of at most `limit` bytes, parsed into `T`; errors use the API shape.
pub fn json_body<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(|ct: Option<String>, body: bytes::Bytes| async move {
            let is_json = ct
                .as_deref()
                .and_then(|c| c.split(';').next())
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
            if !is_json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Send the body as application/json.",
                )
                .reject());
            }
            serde_json::from_slice::<T>(&body).map_err(|e| {
                ApiError::bad_request(format!("The JSON body is not valid: {e}.")).reject()
            })
        })
}

/// The headers that say where a request came from.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    origin: Option<String>,
    referer: Option<String>,
    host: Option<String>,
}

/// Collect Origin, Referer and Host.
pub fn request_origin() -> impl Filter<Extract = (RequestOrigin,), Error = Rejection> + Clone {
    warp::header::optional::<String>("origin")
        .and(warp::header::optional::<String>("referer"))
        .and(warp::header::optional::<String>("host"))
        .map(|origin, referer, host| RequestOrigin {
            origin,
            referer,
            host,
        })
}

impl RequestOrigin {
    /// The origin the request claims: `Origin`, else the origin of `Referer`.
    fn claimed(&self) -> Option<String> {
        match &self.origin {
            Some(o) if o != "null" => Some(o.to_ascii_lowercase()),
            Some(_) => Some("null".into()),
            None => self.referer.as_deref().and_then(|r| parse_origin(r).ok()),
        }
    }

    /// Whether `claimed` is one of ours.
    fn allowed(&self, state: &AppState, claimed: &str) -> bool {
        if state
            .config
            .server
            .allowed_origins
            .iter()
            .filter_map(|o| parse_origin(o).ok())
            .any(|o| o == claimed)
        {
            return true;
        }
        match state.config.public_url() {
            Some(url) => parse_origin(url).is_ok_and(|o| o == claimed),
            None => self.host.as_deref().is_some_and(|h| {
                let h = h.to_ascii_lowercase();
                claimed == format!("http://{h}") || claimed == format!("https://{h}")
            }),
        }
    }

    /// Refuse a cross-site request. With `required`, a request that names no origin at all is
    /// refused too (cookie-authenticated state changes).
    pub fn check(&self, state: &AppState, required: bool) -> Result<(), ApiError> {
        match self.claimed() {
            Some(o) if self.allowed(state, &o) => Ok(()),
            Some(_) => Err(ApiError::bad_origin()),
            None if required => Err(ApiError::bad_origin()),
            None => Ok(()),
        }
    }
}

/// The token presented by a request: bearer first, then the session cookie.
pub fn presented_token() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::cookie::optional::<String>(SESSION_COOKIE))
        .map(|auth: Option<String>, cookie: Option<String>| {
            let bearer = auth.and_then(|a| {
                let (scheme, rest) = a.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| rest.trim().to_string())
            });
            bearer.or(cookie)
        })
}

/// Require a live session or bot token.
pub fn authenticated(
    state: AppState,
) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    presented_token().and(with_state(state)).and_then(
        |token: Option<String>, state: AppState| async move {
            let Some(token) = token else {
                return Err(ApiError::unauthorized().reject());
            };
            match state.auth.authenticate(&token).await {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err(ApiError::unauthorized().reject()),
                Err(e) => Err(ApiError::from(e).reject()),
            }
        },
    )
}
