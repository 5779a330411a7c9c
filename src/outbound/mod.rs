//! The one HTTP client for requests to addresses people give Hearth (the links of link
//! previews, outgoing webhooks), with the guard against server-side request forgery built in.
//!
//! For each request, and again for each redirect (at most [`MAX_REDIRECTS`]):
//! 1. the URL must be `http` or `https`, without user name or password;
//! 2. the host is resolved once, and every address it resolves to that is not public
//!    ([`addr::classify`]) is struck out (all of them stay with
//!    `outbound.allow_private_networks`); none left: [`OutboundError::Refused`];
//! 3. the connection goes to an address that was checked (never a second lookup of the
//!    name), within [`CONNECT_TIMEOUT`];
//! 4. the response body is read up to the caller's cap ([`MAX_BODY`] at most).
//!
//! The whole request, redirects included, runs within `outbound.timeout_seconds`.

pub mod addr;
pub mod page;
pub mod webpush;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use url::{Host, Url};

use crate::config::OutboundConfig;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 3;
/// How long connecting to one address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read, in bytes.
pub const MAX_BODY: usize = 1024 * 1024;
/// Addresses of one name tried before giving up.
const ADDRESSES_TRIED: usize = 2;

/// Why an outbound request did not get an answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OutboundError {
    /// Not an `http(s)` URL, or one with credentials in it.
    #[error("not an http(s) address: {0}")]
    BadUrl(String),
    /// A port browsers refuse to fetch from (the Fetch standard's "bad ports": mail, shell,
    /// file sharing and the like), where a request could speak to a service that is not HTTP.
    #[error("port {0} is one that outbound requests may not use")]
    BadPort(u16),
    /// Every address the host has is of a refused class.
    #[error("{host} is a {class} address, which outbound requests may not reach")]
    Refused {
        /// The host as written.
        host: String,
        /// The class of the (first) refused address.
        class: &'static str,
    },
    /// The name does not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// No connection could be made.
    #[error("cannot connect to {0}")]
    Connect(String),
    /// The TLS handshake failed.
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// The host.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The peer did not speak HTTP/1.1 as expected.
    #[error("HTTP error: {0}")]
    Http(String),
    /// More than [`MAX_REDIRECTS`] redirects, or a redirect without a usable `Location`.
    #[error("too many redirects")]
    TooManyRedirects,
    /// The body is longer than the cap (for a caller that needs it whole).
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    /// Nothing within `outbound.timeout_seconds`.
    #[error("no answer in time")]
    Timeout,
    /// The host is one of the domains this client never fetches (or under one), at the
    /// first request or a redirect.
    #[error("{0} is never fetched")]
    NeverFetched(String),
}

/// An answer.
#[derive(Debug)]
pub struct Fetched {
    /// Where it came from, after redirects.
    pub url: Url,
    /// Its status.
    pub status: StatusCode,
    /// Its `Content-Type`, lowercased, without parameters (empty when absent).
    pub content_type: String,
    /// The body, up to the cap.
    pub body: Bytes,
    /// Whether the body went on beyond the cap.
    pub truncated: bool,
}

/// How much of a body a caller wants.
#[derive(Debug, Clone, Copy)]
pub enum BodyLimit {
    /// The first `n` bytes are enough (a page's head); the rest is not read.
    Prefix(usize),
    /// All of it, at most `n` bytes, or [`OutboundError::TooLarge`].
    Whole(usize),
}

/// A byte stream [`Outbound::open`] gives: TCP, or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    allow_private: bool,
    /// Whether every port may be used (the operator's own server; see [`Outbound::own_server`]).
    any_port: bool,
    /// Domains never fetched, lower-case, without a leading dot (see [`Outbound::never`]).
    never: Arc<[String]>,
    timeout: Duration,
    tls: tokio_rustls::TlsConnector,
}

impl Outbound {
    /// A client under `config`'s rules.
    pub fn new(config: &OutboundConfig) -> Self {
        Outbound {
            allow_private: config.allow_private_networks,
            any_port: false,
            never: Arc::from(Vec::new()),
            timeout: Duration::from_secs(config.timeout_seconds),
            tls: connector(Vec::new()).0,
        }
    }

    /// A client for the operator's own server, named on the command line (`hearth post`,
    /// `hearth tail`), not by a user or a page: any address and any port, and the
    /// certificates of `extra_roots` (`--cacert`: a private authority, or a server's own
    /// self-signed certificate) trusted besides the public authorities. Refuses a
    /// certificate that cannot be a root.
    pub fn own_server(
        timeout: Duration,
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<Self, String> {
        let (tls, refused) = connector(extra_roots);
        if let Some(e) = refused {
            return Err(e);
        }
        Ok(Outbound {
            allow_private: true,
            any_port: true,
            never: Arc::from(Vec::new()),
            timeout,
            tls,
        })
    }

    /// A connection to `url`'s server for a protocol other than this client's requests (a
    /// WebSocket): `ws`/`http` plain, `wss`/`https` TLS under this client's roots, and the
    /// same rules for addresses and ports; within the client's timeout.
    pub async fn open(&self, url: &Url) -> Result<Box<dyn Stream>, OutboundError> {
        let bad = || OutboundError::BadUrl(url.as_str().chars().take(200).collect());
        let scheme = match url.scheme() {
            "ws" | "http" => "http",
            "wss" | "https" => "https",
            _ => return Err(bad()),
        };
        let mut http = url.clone();
        http.set_scheme(scheme).map_err(|()| bad())?;
        let target = Target::of(&http, self.any_port)?;
        match tokio::time::timeout(self.timeout, self.connected(&target)).await {
            Ok(opened) => opened,
            Err(_) => Err(OutboundError::Timeout),
        }
    }

    /// `GET url` accepting `accept`, following redirects, reading at most `limit` of the
    /// body. Any status is an answer; the caller judges it.
    pub async fn get(
        &self,
        url: &Url,
        accept: &'static str,
        limit: BodyLimit,
    ) -> Result<Fetched, OutboundError> {
        let ask = Ask {
            method: Method::GET,
            accept,
            headers: Vec::new(),
            body: Bytes::new(),
        };
        match tokio::time::timeout(self.timeout, self.follow(url.clone(), &ask, limit)).await {
            Ok(answer) => answer,
            Err(_) => Err(OutboundError::Timeout),
        }
    }

    /// `GET url` with `headers` besides, without following a redirect (so the headers, a
    /// credential say, never go anywhere else).
    pub async fn get_with(
        &self,
        url: &Url,
        headers: Vec<(&'static str, String)>,
        limit: BodyLimit,
    ) -> Result<Fetched, OutboundError> {
        let ask = Ask {
            method: Method::GET,
            accept: "application/json",
            headers,
            body: Bytes::new(),
        };
        match tokio::time::timeout(self.timeout, self.once(url, &ask, limit, false)).await {
            Ok(Ok(Step::Done(answer))) => Ok(answer),
            Ok(Ok(Step::Redirect(_))) => Err(OutboundError::TooManyRedirects),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(OutboundError::Timeout),
        }
    }

    /// `POST` `body` (of `content_type`, with `headers` besides) to `url`. A redirect is not
    /// followed: it is the answer. At most 64 KiB of the answer's body is read.
    pub async fn post(
        &self,
        url: &Url,
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    ) -> Result<Fetched, OutboundError> {
        let mut headers = headers;
        headers.push(("content-type", content_type.to_string()));
        let ask = Ask {
            method: Method::POST,
            accept: "*/*",
            headers,
            body,
        };
        let once = self.once(url, &ask, BodyLimit::Prefix(64 * 1024), false);
        match tokio::time::timeout(self.timeout, once).await {
            Ok(Ok(Step::Done(answer))) => Ok(answer),
            Ok(Ok(Step::Redirect(_))) => Err(OutboundError::TooManyRedirects),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(OutboundError::Timeout),
        }
    }

    /// The same client, refusing every request (the first, a redirect, or another URL
    /// found on the way such as a page's picture) to one of `domains` or a name under one
    /// (`previews.never_fetch`). An address literal of the same host is not a name under it.
    pub fn never(mut self, domains: &[String]) -> Self {
        self.never = domains
            .iter()
            .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
            .collect();
        self
    }

    /// Whether `url`'s host is one of the domains this client never fetches, or under one.
    pub fn never_fetches(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return true;
        };
        let host = host.trim_end_matches('.');
        self.never.iter().any(|d| {
            host.eq_ignore_ascii_case(d)
                || (host.len() > d.len()
                    && host[host.len() - d.len()..].eq_ignore_ascii_case(d)
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
    }

    async fn follow(
        &self,
        mut url: Url,
        ask: &Ask,
        limit: BodyLimit,
    ) -> Result<Fetched, OutboundError> {
        for _ in 0..=MAX_REDIRECTS {
            let response = self.once(&url, ask, limit, true).await?;
            match response {
                Step::Done(fetched) => return Ok(fetched),
                Step::Redirect(next) => url = next,
            }
        }
        Err(OutboundError::TooManyRedirects)
    }

    /// One request to `url`; a redirect is returned as such when `redirects` is set, else it
    /// is the answer.
    async fn once(
        &self,
        url: &Url,
        ask: &Ask,
        limit: BodyLimit,
        redirects: bool,
    ) -> Result<Step, OutboundError> {
        if self.never_fetches(url) {
            return Err(OutboundError::NeverFetched(
                url.host_str().unwrap_or_default().to_string(),
            ));
        }
        let target = Target::of(url, self.any_port)?;
        let stream = self.connected(&target).await?;
        let mut request = Request::builder()
            .method(ask.method.clone())
            .uri(path_and_query(url))
            .header(HOST, host_header(url))
            .header(USER_AGENT, concat!("Hearth/", env!("CARGO_PKG_VERSION")))
            .header(ACCEPT, ask.accept);
        for (name, value) in &ask.headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(Full::new(ask.body.clone()))
            .map_err(|e| OutboundError::Http(e.to_string()))?;
        let response = exchange(stream, request).await?;
        let status = response.status();
        if redirects && status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let next = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc).ok())
                .ok_or(OutboundError::TooManyRedirects)?;
            return Ok(Step::Redirect(next));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(media_type)
            .unwrap_or_default();
        let (body, truncated) = read_body(response.into_body(), limit).await?;
        Ok(Step::Done(Fetched {
            url: url.clone(),
            status,
            content_type,
            body,
            truncated,
        }))
    }

    /// A connection to `target` under this client's rules for addresses: TCP, and TLS over it
    /// for `https`.
    async fn connected(&self, target: &Target) -> Result<Box<dyn Stream>, OutboundError> {
        let addrs = self.checked_addresses(target).await?;
        let stream = connect(&addrs, &target.host).await?;
        if !target.tls {
            return Ok(Box::new(stream));
        }
        let name = server_name(&target.host)?;
        let tls = self
            .tls
            .connect(name, stream)
            .await
            .map_err(|e| OutboundError::Tls {
                host: target.host.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Box::new(tls))
    }

    /// The addresses of `target` this client may connect to, in the resolver's order.
    async fn checked_addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, OutboundError> {
        let resolved: Vec<SocketAddr> = match &target.host {
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), target.port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), target.port)],
            Host::Domain(name) => tokio::net::lookup_host((name.as_str(), target.port))
                .await
                .map_err(|_| OutboundError::Resolve(name.clone()))?
                .collect(),
        };
        if resolved.is_empty() {
            return Err(OutboundError::Resolve(target.host.to_string()));
        }
        let (allowed, refused): (Vec<_>, Vec<_>) = resolved
            .into_iter()
            .partition(|a| self.allow_private || addr::classify(a.ip()).is_public());
        match (allowed.is_empty(), refused.first()) {
            (true, Some(first)) => Err(OutboundError::Refused {
                host: target.host.to_string(),
                class: addr::classify(first.ip()).describe(),
            }),
            _ => Ok(allowed),
        }
    }
}

/// Whether `url` may be asked for at all, before any lookup: `http(s)`, a host, no
/// credentials, and (unless private networks are allowed) not an address literal of a
/// refused class.
pub fn check_url(url: &Url, allow_private: bool) -> Result<(), OutboundError> {
    let target = Target::of(url, false)?;
    let ip = match target.host {
        Host::Ipv4(ip) => IpAddr::V4(ip),
        Host::Ipv6(ip) => IpAddr::V6(ip),
        Host::Domain(_) => return Ok(()),
    };
    let class = addr::classify(ip);
    if allow_private || class.is_public() {
        Ok(())
    } else {
        Err(OutboundError::Refused {
            host: target.host.to_string(),
            class: class.describe(),
        })
    }
}

enum Step {
    Done(Fetched),
    Redirect(Url),
}

/// What to ask: method, `Accept`, further headers and a body.
struct Ask {
    method: Method,
    accept: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

/// The ports a browser never fetches from (the Fetch standard's list of bad ports), sorted.
const BAD_PORTS: [u16; 83] = [
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
    102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427,
    465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990,
    993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
    6668, 6669, 6679, 6697, 10080,
];

/// Where a URL points.
struct Target {
    host: Host<String>,
    port: u16,
    tls: bool,
}

impl Target {
    /// Where `url` points; a port browsers refuse is refused too, unless `any_port`.
    fn of(url: &Url, any_port: bool) -> Result<Target, OutboundError> {
        let bad = || OutboundError::BadUrl(url.as_str().chars().take(200).collect());
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad());
        }
        let host = url.host().ok_or_else(bad)?.to_owned();
        let port = url.port_or_known_default().ok_or_else(bad)?;
        if !any_port && BAD_PORTS.binary_search(&port).is_ok() {
            return Err(OutboundError::BadPort(port));
        }
        Ok(Target { host, port, tls })
    }
}

/// A TLS connector trusting the public authorities and `extra_roots`; with the first reason
/// one of those could not be trusted.
fn connector(
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> (tokio_rustls::TlsConnector, Option<String>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut refused = None;
    for cert in extra_roots {
        if let Err(e) = roots.add(cert) {
            refused.get_or_insert(format!("a certificate cannot be trusted: {e}"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (tokio_rustls::TlsConnector::from(Arc::new(tls)), refused)
}

async fn connect(addrs: &[SocketAddr], host: &Host<String>) -> Result<TcpStream, OutboundError> {
    for addr in addrs.iter().take(ADDRESSES_TRIED) {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
    }
    Err(OutboundError::Connect(host.to_string()))
}

async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, OutboundError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| OutboundError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    // The connection ends with the request: dropping the sender (or the body) closes it.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(request).await.map_err(http)
}

async fn read_body(
    mut body: hyper::body::Incoming,
    limit: BodyLimit,
) -> Result<(Bytes, bool), OutboundError> {
    let cap = match limit {
        BodyLimit::Prefix(n) | BodyLimit::Whole(n) => n.min(MAX_BODY),
    };
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| OutboundError::Http(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if out.len() + data.len() > cap {
            if let BodyLimit::Whole(_) = limit {
                return Err(OutboundError::TooLarge(cap));
            }
            out.extend_from_slice(&data[..cap - out.len()]);
            return Ok((out.freeze(), true));
        }
        out.extend_from_slice(&data);
    }
    Ok((out.freeze(), false))
}

fn server_name(
    host: &Host<String>,
) -> Result<rustls::pki_types::ServerName<'static>, OutboundError> {
    let name = match host {
        Host::Domain(d) => rustls::pki_types::ServerName::try_from(d.clone()).ok(),
        Host::Ipv4(ip) => Some(IpAddr::V4(*ip).into()),
        Host::Ipv6(ip) => Some(IpAddr::V6(*ip).into()),
    };
    name.ok_or_else(|| OutboundError::Tls {
        host: host.to_string(),
        reason: "not a valid server name".into(),
    })
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

fn host_header(url: &Url) -> HeaderValue {
    let host = url.host_str().unwrap_or_default();
    let value = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `text/html; charset=utf-8` → `text/html`.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn never_fetched_matches_domains_and_their_subdomains() {
        let list: Vec<String> = vec![".Bank.example".into(), "intranet".into()];
        let client = Outbound::new(&OutboundConfig::default()).never(&list);
        let never = |s: &str| client.never_fetches(&Url::parse(s).unwrap());
        for s in [
            "https://bank.example/",
            "https://www.bank.example/x",
            "http://BANK.example./",
            "http://intranet/",
        ] {
            assert!(never(s), "{s}");
        }
        for s in [
            "https://notbank.example/",
            "https://bank.example.com/",
            "https://x.example/",
        ] {
            assert!(!never(s), "{s}");
        }
        assert!(!Outbound::new(&OutboundConfig::default())
            .never_fetches(&Url::parse("https://bank.example/").unwrap()));
    }

    #[test]
    fn urls_are_checked_before_any_lookup() {
        let refused = [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://0.0.0.0:8080/",
            "http://10.0.0.1/",
            "https://192.168.1.1/",
            "http://[fe80::1%25eth0]/",
        ];
        for s in refused {
            let Ok(url) = Url::parse(s) else { continue };
            assert!(
                matches!(check_url(&url, false), Err(OutboundError::Refused { .. })),
                "{s} must be refused"
            );
            assert_eq!(
                check_url(&url, true),
                Ok(()),
                "{s} with private networks allowed"
            );
        }
        for s in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://user:pw@example.com/",
            "http://user@example.com/",
            "data:text/html,hi",
            "javascript:alert(1)",
        ] {
            let url = Url::parse(s).unwrap();
            assert!(
                matches!(check_url(&url, true), Err(OutboundError::BadUrl(_))),
                "{s} is not a fetchable address"
            );
        }
        for s in [
            "https://example.com/a?b=c",
            "http://8.8.8.8:8080/",
            "http://[2606:4700::1]/",
        ] {
            assert_eq!(check_url(&Url::parse(s).unwrap(), false), Ok(()), "{s}");
        }
    }

    #[tokio::test]
    async fn the_operators_own_server_may_use_any_port() {
        // 10080 is a port browsers refuse; nothing listens on it here.
        let url = Url::parse("http://127.0.0.1:10080/").unwrap();
        let config = OutboundConfig {
            allow_private_networks: true,
            ..OutboundConfig::default()
        };
        let answer = Outbound::new(&config)
            .get(&url, "*/*", BodyLimit::Prefix(10))
            .await;
        assert!(
            matches!(answer, Err(OutboundError::BadPort(10080))),
            "{answer:?}"
        );
        // Named by the operator: tried (and nothing answers), not refused beforehand.
        let own = Outbound::own_server(Duration::from_secs(5), Vec::new()).unwrap();
        let answer = own.get(&url, "*/*", BodyLimit::Prefix(10)).await;
        assert!(
            matches!(answer, Err(OutboundError::Connect(_))),
            "{answer:?}"
        );
        let ws = Url::parse("ws://127.0.0.1:10080/ws").unwrap();
        assert!(matches!(
            own.open(&ws).await,
            Err(OutboundError::Connect(_))
        ));
    }

    #[tokio::test]
    async fn ports_browsers_refuse_are_refused_before_and_after_a_redirect() {
        for (s, port) in [
            ("http://example.com:25/", 25),
            ("https://example.com:6697/x", 6697),
            ("http://example.com:0/", 0),
        ] {
            let url = Url::parse(s).unwrap();
            assert_eq!(
                check_url(&url, true),
                Err(OutboundError::BadPort(port)),
                "{s}"
            );
        }
        for s in ["http://example.com:8080/", "https://example.com/"] {
            assert_eq!(check_url(&Url::parse(s).unwrap(), false), Ok(()), "{s}");
        }
        assert!(BAD_PORTS.windows(2).all(|w| w[0] < w[1]), "sorted");
        // A redirect to one is refused at that hop, before any connection.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let answer = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:22/\r\n\
                          Content-Length: 0\r\n\r\n";
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        let config = OutboundConfig {
            allow_private_networks: true,
            ..OutboundConfig::default()
        };
        let answer = Outbound::new(&config)
            .get(&server, "*/*", BodyLimit::Prefix(10))
            .await;
        assert!(
            matches!(answer, Err(OutboundError::BadPort(22))),
            "{answer:?}"
        );
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused_without_connecting() {
        let client = Outbound::new(&OutboundConfig::default());
        // Nothing listens on port 47 here; a connection attempt would be Connect, not Refused.
        for s in [
            "http://localhost:47/",
            "http://127.0.0.1:47/x",
            "http://[::1]:47/",
        ] {
            let url = Url::parse(s).unwrap();
            let answer = client.get(&url, "*/*", BodyLimit::Prefix(10)).await;
            assert!(
                matches!(answer, Err(OutboundError::Refused { .. })),
                "{s}: {answer:?}"
            );
        }
    }

    /// An IPv4 address in every spelling the URL standard accepts.
    fn spellings(ip: std::net::Ipv4Addr) -> Vec<String> {
        let n = u32::from(ip);
        let [a, b, c, d] = ip.octets();
        vec![
            format!("{a}.{b}.{c}.{d}"),
            format!("{n}"),
            format!("0x{n:x}"),
            format!("0{n:o}"),
            format!(
                "{a}.{}",
                (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)
            ),
            format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
            format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
            format!("[::ffff:{a}.{b}.{c}.{d}]"),
            format!("[64:ff9b::{a}.{b}.{c}.{d}]"),
        ]
    }

    proptest! {
        /// Whatever the spelling, port, path or scheme case, a URL whose host is an address
        /// literal is allowed exactly when that address is public (and its port not one
        /// browsers refuse).
        #[test]
        fn address_literals_in_any_spelling(
            n in any::<u32>(),
            port in proptest::option::of(1u16..),
            path in "[a-z0-9/._%-]{0,20}",
            https in any::<bool>(),
            upper in any::<bool>(),
            which in 0usize..9,
        ) {
            let ip = std::net::Ipv4Addr::from(n);
            let host = &spellings(ip)[which];
            let scheme = match (https, upper) {
                (true, true) => "HTTPS",
                (true, false) => "https",
                (false, true) => "HTTP",
                (false, false) => "http",
            };
            let bad_port = port.is_some_and(|p| BAD_PORTS.contains(&p));
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let s = format!("{scheme}://{host}{port}/{path}");
            let url = Url::parse(&s).unwrap();
            let public = addr::classify(IpAddr::V4(ip)).is_public();
            let answer = check_url(&url, false);
            prop_assert_eq!(answer.is_ok(), public && !bad_port, "{} ({:?})", s, answer);
        }

        /// Redirect targets are joined to the current URL and checked the same way: a
        /// `Location` of any shape never turns into an allowed request to a refused address.
        #[test]
        fn redirect_targets_are_checked_like_links(
            n in any::<u32>(),
            which in 0usize..9,
            shape in 0usize..4,
        ) {
            let ip = std::net::Ipv4Addr::from(n);
            let host = &spellings(ip)[which];
            let base = Url::parse("https://example.com/a/b").unwrap();
            let location = match shape {
                0 => format!("http://{host}/x"),
                1 => format!("//{host}/x"),
                2 => format!("https://{host}:443"),
                _ => format!("HTTP://{host}/?next=https://example.com"),
            };
            let next = base.join(&location).unwrap();
            let public = addr::classify(IpAddr::V4(ip)).is_public();
            prop_assert_eq!(check_url(&next, false).is_ok(), public, "{}", next);
        }
    }
}
