//! The accept loop: one hyper HTTP/1 connection per socket, routed through warp, with the
//! client address and the pending upgrade put into each request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;
use warp::http::{header, Request};
use warp::Filter;

use crate::http::filters::ClientAddr;
use crate::shutdown::Tracker;
use crate::ws::UpgradeSlot;

/// Time a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (line plus headers) accepted.
const MAX_HEAD: usize = 16 * 1024;

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Accept connections until `shutdown` flips, then let open requests finish (bounded).
pub async fn accept_loop<F>(listener: TcpListener, filter: F, mut shutdown: watch::Receiver<bool>)
where
    F: Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let open = Tracker::default();
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
        let conn = serve_connection(stream, peer, svc);
        let guard = open.track();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _guard = guard;
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

fn serve_connection<S>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    svc: S,
) -> hyper::server::conn::http1::UpgradeableConnection<
    TokioIo<tokio::net::TcpStream>,
    impl hyper::service::Service<
        Request<Incoming>,
        Response = warp::reply::Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    >,
>
where
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
        let mut svc = svc.clone();
        svc.call(req)
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD.max(8192))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
}
