//! # Hearth
//!
//! A self-hosted, real-time web chat in one binary.
//!
//! # Layout
//! - [`admin`]: operator commands (init, check-config, user, registration, invite, backup,
//!   export).
//! - [`config`]: `chat.toml` + `CHAT_*` environment, validated.
//! - [`domain`]: validated usernames, passwords, bodies, nonces.
//! - [`db`]: SQLite store: migrations, all SQL, the group-committing writer thread, read pool.
//! - [`auth`]: accounts, password hashing, sessions, login throttling.
//! - [`rooms`]: rooms and DMs: membership rules, read markers, notification levels.
//! - [`hub`]: open connections, rooms, presence, fan-out with bounded per-connection queues.
//! - [`metrics`]: counters and histograms for `/metrics`.
//! - [`ws`]: the `/ws` endpoint, wire protocol and per-connection session loop.
//! - [`http`]: warp routes, handlers and the JSON error shape.
//! - [`assets`]: the embedded browser UI.
//! - [`server`]: the accept loop (hyper connections routed through warp).
//! - [`shutdown`]: signals and session tracking for graceful stops.
//!
//! The message path: a `send` frame is validated by its [`ws::session`], queued to the
//! [`db::writer`] thread, committed with everything else queued in one transaction, handed to
//! the hub's fan-out thread, serialized once and queued (same bytes) on every member
//! connection, whose session writes and flushes it.

pub mod admin;
pub mod assets;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod rooms;
pub mod server;
pub mod shutdown;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::hub::{Hub, HubLimits};
use crate::shutdown::Tracker;

/// Shared state handed to every handler. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The store.
    pub db: Db,
    /// Accounts and sessions.
    pub auth: Auth,
    /// Connections and fan-out.
    pub hub: Hub,
    /// Flips to `true` when the server stops.
    pub shutdown: watch::Receiver<bool>,
    /// Live WebSocket sessions.
    pub tracker: Tracker,
    /// When the server started (for the uptime shown to administrators).
    pub started: std::time::Instant,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] db::OpenError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// What we tried to bind.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A background thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    writer: db::writer::WriterHandle,
    fan_out: std::thread::JoinHandle<()>,
    tracker: Tracker,
    state: AppState,
}

/// Open the database, bind, and start serving. Returns once the socket is listening.
pub async fn run(config: Config) -> Result<Server, StartupError> {
    config.validate().map_err(StartupError::Config)?;
    let addr = config.bind_addr().map_err(StartupError::Config)?;
    let (commit_tx, commit_rx) = std::sync::mpsc::channel();
    let metrics = Arc::new(metrics::Metrics::default());
    let (db, writer) = Db::open(
        &config.database.path,
        config.database.synchronous,
        commit_tx,
        metrics.clone(),
    )?;
    let hub = Hub::new(
        HubLimits {
            queue: config.limits.outgoing_queue,
            per_user: config.limits.connections_per_user,
            per_address: config.limits.connections_per_address,
            rate: config.limits.messages_per_second,
            burst: config.limits.message_burst,
        },
        metrics,
    );
    let fan_out = hub.spawn_fan_out(commit_rx)?;
    let auth = Auth::new(
        db.clone(),
        config.auth.clone(),
        config.limits.registrations_per_hour,
    );
    let tls = if config.server.tls.enabled() {
        Some(
            server::tls_acceptor(
                std::path::Path::new(&config.server.tls.cert),
                std::path::Path::new(&config.server.tls.key),
            )
            .map_err(StartupError::Config)?,
        )
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    let (stop, stop_rx) = watch::channel(false);
    let tracker = Tracker::default();
    let state = AppState {
        config: Arc::new(config),
        db,
        auth,
        hub,
        shutdown: stop_rx.clone(),
        tracker: tracker.clone(),
        started: std::time::Instant::now(),
    };
    state.auth.prewarm();
    let routes = http::routes(state.clone());
    let front = server::Front::new(&state.config);
    let accept = tokio::spawn(server::accept_loop(listener, tls, routes, front, stop_rx));
    Ok(Server {
        addr,
        stop,
        accept,
        writer,
        fan_out,
        tracker,
        state,
    })
}

impl Server {
    /// The bound address (with the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shared state, for tests and tools that need to look inside.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stop accepting, close every WebSocket with 1001, commit everything queued, and return
    /// once the database is closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        if tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} WebSocket sessions did not close within 10 s",
                self.tracker.live()
            );
        }
        drop(self.state);
        self.writer.shutdown().await;
        let _ = tokio::task::spawn_blocking(move || self.fan_out.join()).await;
    }
}
