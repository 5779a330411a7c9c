//! The accept loop: one hyper HTTP/1 connection per socket (optionally inside TLS), routed
//! through warp, with the client address and the pending upgrade put into each request.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use warp::http::{header, Request, Response};
use warp::Filter;

use crate::config::{Cidr, Config};
use crate::http::filters::{ClientAddr, ForwardedFor, ForwardedProto};
use crate::http::upgrade::UpgradeSlot;
use crate::http::uploads::FileBody;
use crate::shutdown::Tracker;

/// Time a client has to finish the TLS handshake and to send its request headers; also how
/// long an idle keep-alive connection stays open waiting for its next request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open files kept free for the database, logs and the like when the connection cap is
/// derived from the open-file limit.
const RESERVED_FILES: u64 = 128;

/// Raise the open-file limit to its hard maximum and return the total connection cap:
/// `configured` when set, else just below that limit, so a flood of sockets can never leave
/// Hearth unable to open its database or accept a real request.
pub fn connection_budget(configured: u32) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("cannot raise the open-file limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let derived = limit.saturating_sub(RESERVED_FILES).max(64);
    if configured > 0 {
        if u64::from(configured) > derived {
            tracing::warn!(
                "limits.max_connections = {configured} is above what the open-file limit ({limit}) allows"
            );
        }
        configured as usize
    } else {
        derived as usize
    }
}

/// Connection caps enforced at accept time.
#[derive(Clone)]
pub struct Caps {
    /// Open HTTP connections per client address (IPv4, or IPv6 /64); 0 = unlimited. Trusted
    /// proxies are exempt: many visitors share them.
    pub per_address: usize,
    /// All open connections, WebSockets included.
    pub total: usize,
    /// The live WebSocket sessions (no longer HTTP connections once upgraded).
    pub websockets: Tracker,
    /// Where refusals are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Counts of open HTTP connections, overall and per address.
#[derive(Default)]
struct Open {
    total: std::sync::atomic::AtomicUsize,
    by_addr: Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One admitted HTTP connection; dropping it gives its place back.
struct Admitted {
    open: Arc<Open>,
    addr: Option<std::net::IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open
            .total
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if let Some(addr) = self.addr {
            let mut m = self.open.by_addr.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = m.get_mut(&addr) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&addr);
                }
            }
        }
    }
}

impl Caps {
    /// Admit a new connection from `peer`, or `None` when a cap is reached.
    fn admit(&self, open: &Arc<Open>, peer: SocketAddr, exempt: bool) -> Option<Admitted> {
        use std::sync::atomic::Ordering;
        let http = open.total.load(Ordering::Acquire);
        if http + self.websockets.live() >= self.total {
            return None;
        }
        let addr = (!exempt && self.per_address > 0).then(|| crate::limits::address_key(peer.ip()));
        if let Some(addr) = addr {
            let mut m = open.by_addr.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(addr).or_insert(0);
            if *n >= self.per_address {
                return None;
            }
            *n += 1;
        }
        open.total.fetch_add(1, Ordering::AcqRel);
        Some(Admitted {
            open: open.clone(),
            addr,
        })
    }
}
/// Largest request head (line plus headers) accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Build the TLS acceptor from PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let certs = read_certificates(cert).map_err(|e| format!("server.tls.cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("server.tls.key: cannot read {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.tls: the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The certificates of the PEM file at `path`, at least one (the server's chain, or what
/// `hearth post`/`tail --cacert` trusts). The error names the file.
pub fn read_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (a PEM file with -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// What the accept loop does to each request before routing: strip the path prefix and
/// believe `X-Forwarded-Proto` from trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct Front {
    /// `/chat` when `public_url` is `https://example.org/chat/`.
    prefix: Option<String>,
    /// `server.trusted_proxies`.
    trusted: Vec<Cidr>,
    /// Whether `X-Forwarded-Proto` can matter: no `public_url`, and no TLS of our own.
    honour_proto: bool,
    /// Whether the configuration alone says HTTPS (for the redirect's headers).
    https: bool,
}

/// What [`Front::prepare`] decided.
pub enum Prepared {
    /// Route the (possibly rewritten) request.
    Route(Request<Incoming>),
    /// Answer at once without routing.
    Answer(warp::reply::Response),
}

impl Front {
    /// The settings for `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            prefix: config.path_prefix().map(str::to_string),
            trusted: config
                .server
                .trusted_proxies
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
            honour_proto: config.public_url().is_none() && !config.server.tls.enabled(),
            https: config.is_https(),
        }
    }

    /// Mark the request with the client addresses and the scheme a trusted proxy forwarded,
    /// and take the path prefix off its path. The prefix itself without its slash (`/chat`) is redirected to `/chat/`
    /// so that relative URLs in the page resolve under it. Paths without the prefix are left
    /// alone: a proxy that strips the prefix itself works too.
    pub fn prepare(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Prepared {
        // A request target without a path (`CONNECT host:port`, or a full URL without one):
        // nothing here answers it, and the router takes every request for one with a path.
        if req.uri().path_and_query().is_none() {
            let e = crate::app::error::AppError::bad_request("The request target needs a path.");
            let res = crate::http::error::ApiError::from(e).to_reply();
            return Prepared::Answer(crate::http::security_headers(res, self.https));
        }
        let trusted = self.trusted.iter().any(|c| c.contains(peer.ip()));
        if trusted {
            if let Some(xff) = ForwardedFor::from_headers(req.headers()) {
                req.extensions_mut().insert(xff);
            }
        }
        if self.honour_proto && trusted {
            let proto = req
                .headers()
                .get_all("x-forwarded-proto")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(ForwardedProto::parse);
            if let Some(proto) = proto {
                req.extensions_mut().insert(proto);
            }
        }
        let Some(prefix) = self.prefix.as_deref() else {
            return Prepared::Route(req);
        };
        let path = req.uri().path();
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        if path == prefix {
            return Prepared::Answer(self.redirect(&format!("{prefix}/{query}")));
        }
        let Some(rest) = path.strip_prefix(prefix).filter(|r| r.starts_with('/')) else {
            return Prepared::Route(req);
        };
        // `rest` and `query` come from a parsed URI, so they parse again.
        if let Ok(path_and_query) = format!("{rest}{query}").parse() {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = warp::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
        Prepared::Route(req)
    }

    fn redirect(&self, location: &str) -> warp::reply::Response {
        use warp::Reply;
        let mut res =
            warp::reply::with_status(warp::reply(), warp::http::StatusCode::PERMANENT_REDIRECT)
                .into_response();
        if let Ok(v) = header::HeaderValue::from_str(location) {
            res.headers_mut().insert(header::LOCATION, v);
        }
        crate::http::security_headers(res, self.https)
    }
}

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Connections the kernel completes and holds for us before we accept them. tokio's
/// `TcpListener::bind` asks for 128 (the standard library's value); a reconnect storm (every
/// client of a restarted server at once) overflows that while the server is busy, and each
/// dropped handshake costs its client a one-second SYN retransmission. The kernel caps the
/// value at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accept connections until `shutdown` flips, then let open requests finish (bounded).
pub async fn accept_loop<F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    filter: F,
    front: Front,
    caps: Caps,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let open = Tracker::default();
    let counts = Arc::new(Open::default());
    let mut refused = RefusalLog::default();
    let front = Arc::new(front);
    let routes = Routes(Arc::new(Mutex::new(warp::service(filter))));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = next_connection(&listener) => match accepted {
                Some(pair) => pair,
                None => continue,
            },
        };
        let exempt = front.trusted.iter().any(|c| c.contains(peer.ip()));
        let Some(admitted) = caps.admit(&counts, peer, exempt) else {
            caps.metrics
                .connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            refused.note(peer);
            // Closed at once: holding it open would spend the very descriptors the cap saves.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            peer,
            svc: routes.clone(),
            front: front.clone(),
            stop: shutdown.clone(),
        };
        let guard = open.track();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _admitted = admitted;
            conn.serve(stream, tls).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), open.wait())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish within 5 s");
    }
}

/// The next accepted connection; after a failure (out of file descriptors and the like),
/// `None` after a short pause instead of spinning.
async fn next_connection(listener: &TcpListener) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok(pair) => Some(pair),
        Err(e) => {
            tracing::warn!("accept failed: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Logs refused connections at most once every 10 s: a flood must not flood the log too.
#[derive(Default)]
struct RefusalLog(Option<std::time::Instant>);

impl RefusalLog {
    fn note(&mut self, peer: SocketAddr) {
        if self
            .0
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.0 = Some(std::time::Instant::now());
            tracing::warn!(%peer, "connection refused: too many open connections");
        }
    }
}

/// What serves the requests: warp's routes as a service.
pub trait HttpService:
    Service<Request<Incoming>, Response = warp::reply::Response, Error = std::convert::Infallible>
    + Send
    + 'static
{
}

impl<S> HttpService for S where
    S: Service<
            Request<Incoming>,
            Response = warp::reply::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static
{
}

/// The routes as one service shared by every connection. Starting a request's future takes
/// `&mut` but the future borrows nothing, so one copy behind a mutex serves them all and no
/// connection or request clones the filter tree (every route, each with its copy of the
/// state): that clone and its drop were a sixth of the CPU of opening a WebSocket.
struct Routes<S>(Arc<Mutex<S>>);

impl<S> Clone for Routes<S> {
    fn clone(&self) -> Self {
        Routes(self.0.clone())
    }
}

impl<S: HttpService> Routes<S> {
    fn call(&self, req: Request<Incoming>) -> S::Future {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).call(req)
    }
}

/// One accepted connection, ready to be served.
struct Conn<S> {
    peer: SocketAddr,
    svc: Routes<S>,
    front: Arc<Front>,
    stop: watch::Receiver<bool>,
}

impl<S: HttpService> Conn<S>
where
    S::Future: Send + 'static,
{
    /// The TLS handshake (bounded like the request head), then HTTP.
    async fn serve(self, stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>) {
        let Conn {
            peer,
            svc,
            front,
            stop,
        } = self;
        let Some(acceptor) = tls else {
            return drive(stream, peer, svc, front, stop).await;
        };
        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => drive(tls_stream, peer, svc, front, stop).await,
            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }
}

/// A response's body as hyper sends it: warp's, or a file streamed from disk.
type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes read from a file per chunk of a streamed body.
const FILE_CHUNK: usize = 64 * 1024;

/// The response with its body: a [`FileBody`] it carries is streamed from its file (a
/// download: read a chunk at a time, never whole); any other keeps warp's body.
fn file_body(res: warp::reply::Response) -> Response<Body> {
    use http_body_util::BodyExt;
    let (mut parts, body) = res.into_parts();
    match parts.extensions.remove::<FileBody>() {
        Some(file) => Response::from_parts(parts, stream_file(file)),
        None => Response::from_parts(parts, body.map_err(BoxError::from).boxed()),
    }
}

/// `file.len` bytes of `file.path` from `file.start`, as a body.
fn stream_file(file: FileBody) -> Body {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let state = (None::<tokio::fs::File>, file);
    let chunks = futures_util::stream::unfold(state, |(f, spec)| async move {
        if spec.len == 0 {
            return None;
        }
        let mut f = match f {
            Some(f) => f,
            None => {
                let opened = async {
                    let mut f = tokio::fs::File::open(&spec.path).await?;
                    f.seek(std::io::SeekFrom::Start(spec.start)).await?;
                    Ok::<_, std::io::Error>(f)
                };
                match opened.await {
                    Ok(f) => f,
                    Err(e) => return Some((Err(e), (None, FileBody { len: 0, ..spec }))),
                }
            }
        };
        let want = spec.len.min(FILE_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        match f.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file is shorter than its size",
                )),
                (None, FileBody { len: 0, ..spec }),
            )),
            Ok(n) => {
                buf.truncate(n);
                let rest = FileBody {
                    len: spec.len - n as u64,
                    start: spec.start + n as u64,
                    ..spec
                };
                Some((
                    Ok(hyper::body::Frame::data(bytes::Bytes::from(buf))),
                    (Some(f), rest),
                ))
            }
            Err(e) => Some((Err(e), (None, FileBody { len: 0, ..spec }))),
        }
    });
    http_body_util::StreamBody::new(chunks)
        .map_err(BoxError::from)
        .boxed()
}

/// Serve HTTP/1 on one connection until it closes, upgrades, or the server stops.
async fn drive<I, S>(
    io: I,
    peer: SocketAddr,
    svc: Routes<S>,
    front: Arc<Front>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
    S::Future: Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ClientAddr(peer));
        if wants_upgrade(&req) {
            let on = hyper::upgrade::on(&mut req);
            req.extensions_mut()
                .insert(UpgradeSlot(Arc::new(Mutex::new(Some(on)))));
        }
        let routed = match front.prepare(req, peer) {
            Prepared::Route(req) => Ok(svc.call(req)),
            Prepared::Answer(res) => Err(res),
        };
        async move {
            let res = match routed {
                Ok(fut) => fut.await,
                Err(res) => Ok(res),
            };
            res.map(file_body)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD.max(8192))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection error: {e}");
    }
}
