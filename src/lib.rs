//! # Hearth
//!
//! A self-hosted, real-time web chat in one binary.
//!
//! # Layout
//! Dependencies point down this list; no module imports one above it.
//! - [`admin`]: operator commands (init, check-config, user, registration, invite, backup,
//!   export).
//! - [`script`]: `hearth post` and `hearth tail`, clients of a running server for scripts.
//! - [`server`]: the accept loop (hyper connections routed through warp).
//! - [`http`]: warp routes, guard filters, the WebSocket handshake, the JSON error shape.
//! - [`ws`]: the per-connection session loop and its client commands.
//! - [`app`]: the use cases (rooms, access rule) shared by HTTP, WebSocket and the CLI.
//! - [`auth`]: accounts, password hashing, sessions, login throttling.
//! - [`hub`]: open connections, rooms, presence, fan-out with bounded per-connection queues.
//! - [`db`]: the SQLite store: migrations, all SQL, the group-committing writer thread, the
//!   read pool, typed methods over them.
//! - [`events`]: what the writer hands the fan-out, in commit order (plain data).
//! - [`protocol`]: WebSocket frames and close codes.
//! - [`model`]: users, rooms, memberships and messages as plain data.
//! - [`outbound`]: the one HTTP client for addresses people give (link previews), with the
//!   address rules against request forgery; the HTML head reader.
//! - [`files`]: the uploads folder (files by SHA-256) and images (measure, strip, thumbnail).
//! - [`config`], [`domain`] (validated names, passwords, bodies), [`limits`], [`metrics`],
//!   [`assets`], [`shutdown`]: leaves.
//!
//! The message path: a `send` frame is validated by its [`ws::session`], queued to the
//! [`db::writer`] thread, committed with everything else queued in one transaction, handed to
//! the hub's fan-out thread as [`events::Committed`], serialized once and queued (same bytes)
//! on every member connection, whose session writes and flushes it.

// warp routes are deeply nested generic types; release builds need more room than the
// default recursion limit to lay out their futures.
#![recursion_limit = "256"]

pub mod admin;
pub mod app;
pub mod assets;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod files;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod protocol;
pub mod script;
pub mod server;
pub mod shutdown;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use crate::app::{App, AppState};
use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::hub::{Hub, HubLimits};
use crate::shutdown::Tracker;

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
    /// The uploads folder could not be opened.
    #[error("{0}")]
    Files(std::io::Error),
}

/// A running server.
pub struct Server {
    setup_code: Option<String>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Cluster mode: flipped once the sockets are closed, to take this node's users out of
    /// Redis' presence.
    leave: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    writer: db::writer::WriterHandle,
    fan_out: std::thread::JoinHandle<()>,
    tracker: Tracker,
    /// Cluster mode's tasks (lease renewals, presence), which leave Redis when stopped.
    shared: Vec<tokio::task::JoinHandle<()>>,
    state: App,
    /// On SQLite, the file's claim ([`db::claim`]), given up once everything is written.
    claim: Option<std::fs::File>,
}

/// Searches running at once over the whole server: each holds one of the dedicated search
/// readers, so authentication and history keep the general readers.
const SEARCHES_AT_ONCE: usize = 2;
/// Images decoded at once. Each may take `uploads.max_image_pixels` × 4 bytes decoded, and
/// about as much again while it is scaled or encoded anew: one at a time keeps a burst of
/// large pictures from several users to that much memory, however many cores there are.
const DECODES_AT_ONCE: usize = 1;
/// How often the server looks for sessions revoked by a command-line tool.
const REVOCATION_POLL: Duration = Duration::from_secs(1);
/// How often, on PostgreSQL, a node looks for revocations (every node's own revocations
/// move the same counter, see `tell_other_nodes`): sessions end on every node within this.
const REVOCATION_POLL_CLUSTER: Duration = Duration::from_millis(200);
/// How often, on PostgreSQL, the hub's events every node has applied are deleted.
const PRUNE_LOG_EVERY: Duration = Duration::from_secs(60);
/// How long the hub's events are kept: well beyond [`cluster::log::STALE`], after which a
/// node that has not read them has closed its connections anyway.
const LOG_EVENTS_KEPT: Duration = Duration::from_secs(600);
/// Cluster mode: how long a stopping node still holds its users in Redis' presence after its
/// sockets closed (see [`Server::shutdown`]).
const PRESENCE_GRACE: Duration = Duration::from_secs(1);
/// How often expired sessions are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// While no account administers the server, make a one-time setup code and log the link
/// whose registration becomes the administrator (on stderr; stdout keeps its one line).
async fn announce_setup(state: &App, addr: SocketAddr) -> Option<String> {
    let code = match state.auth.prepare_setup().await {
        Ok(code) => code?,
        Err(e) => {
            tracing::warn!("cannot check for an administrator: {e}");
            return None;
        }
    };
    let base = match state.config.public_url() {
        Some(_) => http::handlers::base_url(state, None),
        None => {
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            let scheme = if state.config.server.tls.enabled() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}:{}", addr.port())
        }
    };
    tracing::warn!(
        "this server has no administrator yet: open {base}/?setup={code} to create the \
         administrator account (or run `hearth user add NAME`); registrations without this \
         link make ordinary members"
    );
    Some(code)
}

/// Background upkeep until the server stops: delete expired sessions, unsent uploads and
/// unused files every hour, prune the log's old hub events (PostgreSQL), and read the
/// profiles again after the hub was reset (it may have skipped a change).
async fn housekeeping(state: App, mut resets: tokio::sync::watch::Receiver<u64>) {
    let mut stop = state.shutdown.clone();
    let mut tick = tokio::time::interval(REVOCATION_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep: Option<std::time::Instant> = None;
    let mut last_prune = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
            // The hub may have skipped a profile's change: read them all again.
            Ok(()) = resets.changed() => {
                app::profiles::load(&state).await;
                continue;
            }
        }
        if state.db.is_postgres() && last_prune.elapsed() >= PRUNE_LOG_EVERY {
            last_prune = std::time::Instant::now();
            let kept = LOG_EVENTS_KEPT.as_millis() as i64;
            if let Err(e) = state.db.prune_hub_events(kept).await {
                tracing::warn!("cannot delete old hub events: {e}");
            }
        }
        if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
            last_sweep = Some(std::time::Instant::now());
            match state.auth.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!("deleted {n} expired sessions"),
                Err(e) => tracing::warn!("cannot delete expired sessions: {e}"),
            }
            app::uploads::sweep(&state).await;
            app::previews::sweep(&state).await;
            app::hooks::sweep(&state).await;
        }
    }
}

/// Until the server stops: forget cached sessions and history tails, and close sockets whose
/// sessions another process revoked (`hearth user passwd`, `hearth user disable`, another
/// node's sign-out, ...) within a second (200 ms on PostgreSQL, where each look that finds
/// the node up to date renews its lease on the sessions it cached: `db::SESSIONS_LEASE`). A task of its own, so the
/// hourly sweeps (a folder listing on a shared disk) never hold a revocation back; a check
/// that failed is made again at the next poll.
async fn revocations(state: App) {
    let mut stop = state.shutdown.clone();
    let mut poll = tokio::time::interval(if state.db.is_postgres() {
        REVOCATION_POLL_CLUSTER
    } else {
        REVOCATION_POLL
    });
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut epochs = state.db.epochs().await.ok();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = poll.tick() => {}
        }
        let began = std::time::Instant::now();
        let Ok(now) = state.db.epochs().await else {
            continue;
        };
        let before = epochs.replace(now);
        let mut up_to_date = true;
        if before.is_none_or(|(sessions, _)| sessions != now.0) {
            state.db.forget_sessions();
            if !close_revoked(&state).await {
                epochs = before;
                up_to_date = false;
            }
        }
        if up_to_date {
            state.db.sessions_checked(began);
        }
        if before.is_none_or(|(_, history)| history != now.1) {
            // The command line deleted messages (`hearth user purge`).
            state.hub.tails().clear();
        }
    }
}

/// On PostgreSQL: while this node has not read the log for [`cluster::log::STALE`], close
/// every connection (1012) once a second, so that clients resume on a node that follows it.
/// The follower does so itself when its reads fail; this covers a follower stuck in a read
/// of a database that stopped answering, where its own check never runs. A task of its own:
/// housekeeping waits on the database too.
async fn log_watchdog(state: App) {
    let mut stop = state.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stalled = false;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let age = state.hub.metrics().log_lag().map(|(age, _)| age);
        if age.is_none_or(|age| age <= cluster::log::STALE) {
            stalled = false;
            continue;
        }
        if !stalled {
            stalled = true;
            tracing::error!(
                "this node has not read the log for {:?}: closing its connections until it does",
                age.unwrap_or_default()
            );
        }
        if state.hub.connection_count() > 0 {
            state.hub.close_all(protocol::CLOSE_RECONNECT, "reconnect");
        }
    }
}

/// Close, with 4001, every socket whose session no longer exists or whose user is disabled;
/// whether the check was made.
async fn close_revoked(state: &App) -> bool {
    let live = state.hub.live_sessions();
    let now = db::now_ms();
    let gone = state.db.ended_sessions(live, now).await;
    match gone {
        Ok(gone) => {
            for hash in gone {
                state
                    .hub
                    .close_session(hash, protocol::CLOSE_SESSION_ENDED, "session ended");
            }
            true
        }
        Err(e) => {
            tracing::warn!("cannot check sessions for revocation: {e}");
            false
        }
    }
}

/// Open the database, bind, and start serving. Returns once the socket is listening.
pub async fn run(config: Config) -> Result<Server, StartupError> {
    config.validate().map_err(StartupError::Config)?;
    #[cfg(feature = "faults")]
    tracing::error!(
        "this build has the test suites' `faults` feature: a message whose text is {:?} \
         closes every connection (and others starting with \"hearth-fault\" do harm too); \
         build with `cargo build --release` to serve people",
        hub::FAULT_BODY
    );
    let addr = config.bind_addr().map_err(StartupError::Config)?;
    let (commit_tx, commit_rx) = std::sync::mpsc::channel();
    let metrics = Arc::new(metrics::Metrics::default());
    let wake = commit_tx.clone();
    let claim = if config.database.url.is_empty() {
        Some(db::claim(&config.database.path)?)
    } else {
        None
    };
    let (db, writer) = if config.database.url.is_empty() {
        Db::open(
            &config.database.path,
            config.database.synchronous,
            commit_tx,
            metrics.clone(),
        )?
    } else {
        Db::open_postgres(&config.database.url, commit_tx, metrics.clone())?
    };
    let hub = Hub::new(
        HubLimits {
            queue: config.limits.outgoing_queue,
            per_user: config.limits.connections_per_user,
            per_address: config.limits.connections_per_address,
        },
        metrics.clone(),
    );
    // On PostgreSQL, the log's follower delivers this node's commits and every other
    // node's, in position order; on SQLite the writer's commits are all there is.
    let fan_out = match db.log_handoff() {
        Some(handoff) => cluster::log::start(
            (&config.database.url, !config.cluster.redis_url.is_empty()),
            hub.clone(),
            (commit_rx, wake),
            handoff,
        )?,
        None => {
            drop(wake);
            hub.spawn_fan_out(commit_rx)?
        }
    };
    // Several nodes (cluster.redis_url; "empty = this node alone") each have a writer that
    // moves and removes files in the one shared folder.
    let folder = config.uploads.folder(&config.database.path);
    let files = if config.cluster.redis_url.is_empty() {
        files::Files::open(&folder)
    } else {
        files::Files::open_shared(&folder)
    }
    .map_err(StartupError::Files)?;
    let tls = tls_acceptor(&config)?;
    let listener = server::listen(addr).map_err(|source| StartupError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    let (stop, stop_rx) = watch::channel(false);
    let (leave, leave_rx) = watch::channel(false);
    let cluster = cluster::Cluster::new(&config, metrics.clone())
        .map_err(|e| StartupError::Config(format!("cluster.redis_url: {e}")))?;
    let shared = cluster
        .as_ref()
        .map(|c| c.start(&hub, stop_rx.clone(), leave_rx))
        .unwrap_or_default();
    let state = app(
        (config, addr),
        (db, files),
        (hub, cluster),
        metrics.clone(),
        stop_rx.clone(),
    );
    state.auth.prewarm();
    // Taken before the profiles are read: a reset from then on reads them again.
    let resets = state.hub.resets();
    app::profiles::load(&state).await;
    let previews = app::previews::start(&state);
    let pushes = app::push::start(&state);
    let (deliveries, db) = (state.deliveries.clone(), state.db.clone());
    state
        .hub
        .watch_new_messages(Box::new(move |msg, mentioned| {
            if let Some(preview) = &previews {
                preview(msg, mentioned);
            }
            if let Some(push) = &pushes {
                push(msg, mentioned);
            }
            if db.has_webhooks() {
                deliveries.ring();
            }
        }));
    app::hooks::start(&state);
    let setup_code = announce_setup(&state, addr).await;
    tokio::spawn(housekeeping(state.clone(), resets));
    tokio::spawn(revocations(state.clone()));
    if state.db.is_postgres() {
        tokio::spawn(log_watchdog(state.clone()));
    }
    let accept = tokio::spawn(accept(&state, listener, tls, metrics, stop_rx));
    Ok(Server {
        setup_code,
        addr,
        stop,
        leave,
        accept,
        writer,
        fan_out,
        tracker: state.tracker.clone(),
        shared,
        state,
        claim,
    })
}

fn tls_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, StartupError> {
    if !config.server.tls.enabled() {
        return Ok(None);
    }
    server::tls_acceptor(
        std::path::Path::new(&config.server.tls.cert),
        std::path::Path::new(&config.server.tls.key),
    )
    .map(Some)
    .map_err(StartupError::Config)
}

/// The state every handler shares.
fn app(
    (config, local_addr): (Config, SocketAddr),
    (db, files): (Db, files::Files),
    (hub, cluster): (Hub, Option<cluster::Cluster>),
    metrics: Arc<metrics::Metrics>,
    shutdown: watch::Receiver<bool>,
) -> App {
    let auth = Auth::new(
        db.clone(),
        (config.auth.clone(), config.registration.member_invites),
        &config.limits,
        metrics.clone(),
        cluster
            .as_ref()
            .map(|c| &c.windows as &dyn limits::SharedWindows),
    );
    let quotas = limits::Limiter::new(
        cluster
            .as_ref()
            .map(|c| limits::SharedWindows::scoped(&c.windows, "quota")),
    );
    let (message_rate, change_rate) = match &cluster {
        Some(c) => (
            app::UserRate::Cluster(c.rate.clone()),
            app::UserRate::Cluster(c.change_rate.clone()),
        ),
        None => (
            app::UserRate::Node(Arc::new(limits::UserRate::new(
                config.limits.messages_per_second,
                config.limits.message_burst,
                metrics.clone(),
            ))),
            app::UserRate::Node(Arc::new(limits::UserRate::new(
                config.limits.changes_per_second,
                config.limits.change_burst,
                metrics,
            ))),
        ),
    };
    let per_user = match config.limits.searches_per_user {
        0 => usize::MAX,
        n => n as usize,
    };
    App::new(AppState {
        config: Arc::new(config),
        local_addr,
        db,
        auth,
        hub,
        shutdown,
        tracker: Tracker::default(),
        started: std::time::Instant::now(),
        quotas: Arc::new(quotas),
        message_rate,
        change_rate,
        cluster,
        searches: Arc::new(limits::Concurrency::new(SEARCHES_AT_ONCE, per_user)),
        files: Arc::new(files),
        decoders: Arc::new(tokio::sync::Semaphore::new(DECODES_AT_ONCE)),
        deliveries: Arc::default(),
        push_keys: app::push::PushKeys::default(),
    })
}

/// The accept loop over the routes, within the connection caps.
fn accept(
    state: &App,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<metrics::Metrics>,
    stop: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let limits = &state.config.limits;
    let caps = server::Caps {
        per_address: limits.http_connections_per_address as usize,
        total: server::connection_budget(limits.max_connections),
        websockets: state.tracker.clone(),
        metrics,
    };
    let front = server::Front::new(&state.config);
    server::accept_loop(
        listener,
        tls,
        http::routes(state.clone()),
        front,
        caps,
        stop,
    )
}

impl Server {
    /// The bound address (with the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The one-time setup code logged at start when the server had no administrator: the
    /// account registered with it becomes the administrator.
    pub fn setup_code(&self) -> Option<&str> {
        self.setup_code.as_deref()
    }

    /// Shared state, for tests and tools that need to look inside.
    pub fn state(&self) -> &App {
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
        // Out of Redis: this node's users go offline (unless held elsewhere) and its
        // connection places are free at once. The presence waits a moment more: clients
        // closed with 1001 come back within half a second, on another node, and are still
        // online there rather than offline and then online again.
        if !self.shared.is_empty() {
            tokio::time::sleep(PRESENCE_GRACE).await;
        }
        let _ = self.leave.send(true);
        let shared = futures_util::future::join_all(self.shared);
        if tokio::time::timeout(Duration::from_secs(5), shared)
            .await
            .is_err()
        {
            tracing::warn!("leaving Redis took more than 5 s: going on without it");
        }
        self.writer.shutdown().await;
        let _ = tokio::task::spawn_blocking(move || self.fan_out.join()).await;
        drop(self.claim);
    }
}
