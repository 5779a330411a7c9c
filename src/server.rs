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
use warp::http::{header, Request};
use warp::Filter;

use crate::config::{Cidr, Config};
use crate::http::filters::{ClientAddr, ForwardedProto};
use crate::shutdown::Tracker;
use crate::ws::UpgradeSlot;

/// Time a client has to finish the TLS handshake and to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (line plus headers) accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Build the TLS acceptor from PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls.cert: cannot read {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls.cert: {} holds no certificate",
            cert.display()
        ));
    }
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

    /// Mark the request with the scheme a trusted proxy forwarded, and take the path prefix
    /// off its path. The prefix itself without its slash (`/chat`) is redirected to `/chat/`
    /// so that relative URLs in the page resolve under it. Paths without the prefix are left
    /// alone: a proxy that strips the prefix itself works too.
    pub fn prepare(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Prepared {
        if self.honour_proto && self.trusted.iter().any(|c| c.contains(peer.ip())) {
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

/// Accept connections until `shutdown` flips, then let open requests finish (bounded).
pub async fn accept_loop<F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    filter: F,
    front: Front,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let open = Tracker::default();
    let front = Arc::new(front);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let svc = warp::service(filter.clone());
        let guard = open.track();
        let stop = shutdown.clone();
        let tls = tls.clone();
        let front = front.clone();
        tokio::spawn(async move {
            let _guard = guard;
            match tls {
                None => drive(stream, peer, svc, front, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => drive(tls_stream, peer, svc, front, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
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

/// Serve HTTP/1 on one connection until it closes, upgrades, or the server stops.
async fn drive<I, S>(
    io: I,
    peer: SocketAddr,
    svc: S,
    front: Arc<Front>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<
            Request<Incoming>,
            Response = warp::reply::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ClientAddr(peer));
        if wants_upgrade(&req) {
            let on = hyper::upgrade::on(&mut req);
            req.extensions_mut()
                .insert(UpgradeSlot(Arc::new(Mutex::new(Some(on)))));
        }
        let prepared = front.prepare(req, peer);
        let mut svc = svc.clone();
        async move {
            match prepared {
                Prepared::Route(req) => svc.call(req).await,
                Prepared::Answer(res) => Ok(res),
            }
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
