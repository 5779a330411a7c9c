//! Reusable filters: state injection, client address, JSON bodies, authentication and the
//! Origin check.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::error::{bad_origin, unauthorized};
use crate::app::error::{AppError, Code};
use crate::app::App;
use crate::auth::Identity;
use crate::config::{parse_origin, Cidr};
use crate::db::SessionKind;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hearth_session";

/// The peer address, put into each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The scheme a trusted reverse proxy says the visitor used, from `X-Forwarded-Proto`.
///
/// The accept loop puts it into a request only when the peer is one of
/// `server.trusted_proxies`, no `public_url` is configured and Hearth itself serves plain
/// HTTP, so whoever reads it may believe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedProto {
    /// The visitor used plain HTTP.
    Http,
    /// The visitor used HTTPS (the proxy terminated TLS).
    Https,
}

impl ForwardedProto {
    /// Parse an `X-Forwarded-Proto` value. A list (`https, http`) is read from the right: the
    /// last entry is the one the trusted proxy itself added. Anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.rsplit(',').next()?.trim() {
            v if v.eq_ignore_ascii_case("https") => Some(Self::Https),
            v if v.eq_ignore_ascii_case("http") => Some(Self::Http),
            _ => None,
        }
    }

    /// `http` or `https`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// The scheme forwarded by a trusted proxy, if any (see [`ForwardedProto`]).
pub fn forwarded_proto(
) -> impl Filter<Extract = (Option<ForwardedProto>,), Error = Infallible> + Clone {
    warp::ext::optional::<ForwardedProto>()
}

/// Hand the shared state to a handler.
pub fn with_state(state: App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Refuse an API or WebSocket request whose path or query holds an encoded NUL (`%00`):
/// PostgreSQL stores and compares no text with it, and no name or value Hearth keeps has one.
/// (Other paths name files, which `%00` never names: those answer 404 as before.)
pub fn no_nul() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::path::peek()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(|path: warp::path::Peek, query: String| async move {
            let nul = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
            let path = path.as_str();
            let api = path.starts_with("api/") || path == "ws";
            if api && (nul(path) || nul(&query)) {
                Err(Rejection::from(AppError::bad_request(
                    crate::protocol::NUL_REFUSED,
                )))
            } else {
                Ok(())
            }
        })
        .untuple_one()
}

/// The client's IP address: the peer, or — when the peer is a trusted proxy — the rightmost
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(state: &App) -> impl Filter<Extract = (IpAddr,), Error = Infallible> + Clone {
    let trusted: Arc<Vec<Cidr>> = Arc::new(
        state
            .config
            .server
            .trusted_proxies
            .iter()
            .filter_map(|c| Cidr::parse(c).ok())
            .collect(),
    );
    warp::ext::optional::<ClientAddr>()
        .and(warp::ext::optional::<ForwardedFor>())
        .map(move |a: Option<ClientAddr>, xff: Option<ForwardedFor>| {
            let peer = a.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip());
            resolve_client(peer, xff.as_ref().map(|x| x.0.as_str()), &trusted)
        })
}

/// Every `X-Forwarded-For` line of a request from a trusted proxy, joined in order into one
/// list. A proxy may append its own header line instead of extending the last one (HAProxy
/// does), so every line counts. The accept loop puts it into the request only when the peer
/// is one of `server.trusted_proxies`.
#[derive(Debug, Clone)]
pub struct ForwardedFor(pub String);

impl ForwardedFor {
    /// The joined lines of `headers` (`None` when there is none, or when a line is not text,
    /// which no proxy sends).
    pub fn from_headers(headers: &warp::http::HeaderMap) -> Option<Self> {
        let mut joined: Option<String> = None;
        for line in headers.get_all("x-forwarded-for") {
            let line = line.to_str().ok()?;
            match joined.as_mut() {
                Some(j) => {
                    j.push(',');
                    j.push_str(line);
                }
                None => joined = Some(line.to_string()),
            }
        }
        joined.map(Self)
    }
}

/// Walk `X-Forwarded-For` from the right while the hop is a trusted proxy.
pub fn resolve_client(peer: IpAddr, xff: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in xff.unwrap_or_default().rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// A JSON body of at most `limit` bytes, parsed into `T`; errors use the API shape.
pub fn json_body<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(
            move |content_type: Option<String>, declared: Option<u64>, stream| async move {
                let body = read_body(stream, declared, limit).await?;
                parse_json::<T>(content_type.as_deref(), &body).map_err(Rejection::from)
            },
        )
}

/// The whole body, refused when it is (or says it is) over `limit` bytes, breaks off, or does
/// not arrive within [`BODY_TIMEOUT`].
async fn read_body<S, B>(stream: S, declared: Option<u64>, limit: u64) -> Result<Vec<u8>, AppError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    let too_large = || {
        let why = format!("The request body may be at most {limit} bytes.");
        AppError::new(Code::PayloadTooLarge, why)
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // No Content-Length (chunked, or no body at all) is read up to the same limit, and a body
    // that stops arriving does not hold the connection.
    let read = tokio::time::timeout(BODY_TIMEOUT, read_limited(stream, limit)).await;
    read.unwrap_or(Err(BodyError::TimedOut))
        .map_err(|e| match e {
            BodyError::TimedOut => AppError::new(
                Code::RequestTimeout,
                "The request body did not arrive in time.",
            ),
            BodyError::TooLarge => too_large(),
            BodyError::Broken => AppError::bad_request("The request body could not be read."),
        })
}

/// `body` as a `T`, when it is declared as JSON and is a JSON object.
fn parse_json<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, AppError> {
    let is_json = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        // No body and no type at all: a missing body, like a missing field (a body of
        // another type is 415).
        if content_type.is_none() && body.is_empty() {
            return Err(AppError::bad_request(
                "This request needs a JSON object as its body.",
            ));
        }
        return Err(AppError::new(
            Code::UnsupportedMediaType,
            "Send the body as application/json.",
        ));
    }
    // Objects only: serde would also accept `["name","password"]` for a struct.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppError::bad_request("The body must be a JSON object."));
    }
    if std::str::from_utf8(body).is_ok_and(crate::protocol::holds_nul) {
        return Err(AppError::bad_request(crate::protocol::NUL_REFUSED));
    }
    serde_json::from_slice::<T>(body)
        .map_err(|e| AppError::bad_request(format!("The JSON body is not valid: {e}.")))
}

/// Time allowed for a request body to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

enum BodyError {
    TooLarge,
    Broken,
    TimedOut,
}

async fn read_limited<S, B>(stream: S, limit: u64) -> Result<Vec<u8>, BodyError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures_util::StreamExt;
    let mut out = Vec::new();
    futures_util::pin_mut!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if out.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        let mut chunk = chunk;
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let n = piece.len();
            out.extend_from_slice(piece);
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// The headers that say where a request came from.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    origin: Option<String>,
    referer: Option<String>,
    host: Option<String>,
    forwarded: Option<ForwardedProto>,
}

/// Collect Origin, Referer, Host and the scheme a trusted proxy forwarded.
pub fn request_origin() -> impl Filter<Extract = (RequestOrigin,), Error = Rejection> + Clone {
    warp::header::optional::<String>("origin")
        .and(warp::header::optional::<String>("referer"))
        .and(warp::header::optional::<String>("host"))
        .and(forwarded_proto())
        .map(|origin, referer, host, forwarded| RequestOrigin {
            origin,
            referer,
            host,
            forwarded,
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

    /// Whether `claimed` is one of ours. Origins carry no path, so a `public_url` with a path
    /// prefix is compared by scheme, host and port only.
    fn allowed(&self, state: &App, claimed: &str) -> bool {
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
                match self.forwarded {
                    // A trusted proxy said how the visitor came: only that scheme is ours.
                    Some(proto) => claimed == format!("{}://{h}", proto.scheme()),
                    None => claimed == format!("http://{h}") || claimed == format!("https://{h}"),
                }
            }),
        }
    }

    /// Refuse a cross-site request. With `required`, a request that names no origin at all is
    /// refused too (cookie-authenticated state changes).
    pub fn check(&self, state: &App, required: bool) -> Result<(), AppError> {
        match self.claimed() {
            Some(o) if self.allowed(state, &o) => Ok(()),
            Some(_) => Err(bad_origin()),
            None if required => Err(bad_origin()),
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
pub fn authenticated(state: App) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    identified(state, unauthorized)
}

/// A live session or bot token; without one, the `refused` error.
fn identified(
    state: App,
    refused: fn() -> AppError,
) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    presented_token().and(with_state(state)).and_then(
        move |token: Option<String>, state: App| async move {
            let Some(token) = token else {
                return Err(Rejection::from(refused()));
            };
            match state.auth.authenticate(&token).await {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err(Rejection::from(refused())),
                Err(e) => Err(Rejection::from(e)),
            }
        },
    )
}

/// A live session or bot token: what every signed-in read needs.
pub fn signed_in(state: App) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    authenticated(state)
}

/// A live session or bot token, on a route whose resources anyone who may not see them is
/// told do not exist (a file, a preview's picture): without one, the `hidden` error (a 404),
/// so that a signed-out visitor learns no more than another user would.
pub fn signed_in_or_hidden(
    state: App,
    hidden: fn() -> AppError,
) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    identified(state, hidden)
}

/// A live session or bot token allowed to change something: a cookie session must also come
/// from one of our origins (no cross-site request forgery); a bot token needs no Origin.
pub fn signed_in_write(
    state: App,
) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    same_origin(authenticated(state.clone()), state)
}

/// `who`, then the Origin check a change needs: required for cookie sessions (cross-site
/// request forgery), not for bot tokens.
fn same_origin(
    who: impl Filter<Extract = (Identity,), Error = Rejection> + Clone,
    state: App,
) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    who.and(request_origin()).and(with_state(state)).and_then(
        |id: Identity, origin: RequestOrigin, state: App| async move {
            origin.check(&state, id.kind == SessionKind::Cookie)?;
            Ok::<_, Rejection>(id)
        },
    )
}

/// A signed-in administrator (`forbidden` for anyone else).
pub fn admin(state: App) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    authenticated(state).and_then(|id: Identity| async move {
        if id.is_admin {
            Ok(id)
        } else {
            let why = "Only administrators can do that.";
            Err(Rejection::from(AppError::new(Code::Forbidden, why)))
        }
    })
}

/// An administrator allowed to change something: [`admin`], then the Origin check of
/// [`signed_in_write`].
pub fn admin_write(state: App) -> impl Filter<Extract = (Identity,), Error = Rejection> + Clone {
    same_origin(admin(state.clone()), state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_proto_values() {
        use ForwardedProto::{Http, Https};
        for (v, want) in [
            ("https", Some(Https)),
            ("HTTPS", Some(Https)),
            (" http ", Some(Http)),
            ("http, https", Some(Https)),
            ("https,http", Some(Http)),
            ("", None),
            ("wss", None),
            ("https;", None),
            ("https, junk", None),
        ] {
            assert_eq!(ForwardedProto::parse(v), want, "{v:?}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec![
            Cidr::parse("127.0.0.1").unwrap(),
            Cidr::parse("10.0.0.0/8").unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Direct client: header ignored.
        assert_eq!(
            resolve_client(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // Through one proxy.
        assert_eq!(
            resolve_client(ip("127.0.0.1"), Some("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // A spoofed entry on the left is skipped: the rightmost untrusted hop wins.
        assert_eq!(
            resolve_client(
                ip("127.0.0.1"),
                Some("6.6.6.6, 198.51.100.7, 10.1.1.1"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // No header or garbage: the proxy itself.
        assert_eq!(
            resolve_client(ip("127.0.0.1"), None, &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            resolve_client(ip("127.0.0.1"), Some("junk"), &trusted),
            ip("127.0.0.1")
        );
        // Nothing trusted: always the peer.
        assert_eq!(
            resolve_client(ip("127.0.0.1"), Some("1.2.3.4"), &[]),
            ip("127.0.0.1")
        );
    }
}
