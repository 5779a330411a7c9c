//! The use cases, independent of the transport: HTTP handlers and WebSocket commands parse
//! their input, call in here, and render what comes back.
//!
//! - [`access`]: the one rule for who may read or post in a room.
//! - [`admin`]: accounts, registration mode, invitations and status, for the admin routes and
//!   the operator commands.
//! - [`error`]: [`error::AppError`] and the one table of error codes.
//! - [`invites`]: invite links made by members, their quota, and the QR code of a link.
//! - [`history`]: reading a room's history and searching messages.
//! - [`hooks`]: incoming hooks, outgoing webhooks and the sender that delivers to them.
//! - [`messages`]: posting a message: the checks, the room it goes to, the hand-off to the
//!   writer.
//! - [`rooms`]: rooms and DMs: membership rules, read markers, notification levels.
//! - [`people`]: finding people by name.
//! - [`previews`]: link previews, fetched off the message path by a bounded worker pool.
//! - [`profiles`]: display names, status lines and avatars.
//! - [`push`]: Web Push to the browsers of people with no open connection.
//! - [`uploads`]: storing an upload, deciding who may download it, removing unused files.

pub mod access;
pub mod admin;
pub mod error;
pub mod history;
pub mod hooks;
pub mod invites;
pub mod lifecycle;
pub mod messages;
pub mod people;
pub mod previews;
pub mod profiles;
pub mod push;
pub mod rooms;
pub mod uploads;

use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::hub::Hub;
use crate::limits;
use crate::shutdown::Tracker;

/// Shared state handed to every handler: one reference-counted [`AppState`], so a clone is one
/// counter increment (warp clones the routes, each with its copy, for every request).
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl App {
    /// Share `state`.
    pub fn new(state: AppState) -> Self {
        App(Arc::new(state))
    }
}

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

/// A per-user rate (of messages, or of other changes others see): this node's own, or one
/// shared by every node (cluster mode).
pub enum UserRate {
    /// Counted here.
    Node(Arc<limits::UserRate>),
    /// Counted in Redis over every node.
    Cluster(crate::cluster::rate::ClusterRate),
}

impl UserRate {
    /// Spend one message of `user`'s rate; `Err(ms)` says when to retry.
    pub async fn take(&self, user: i64) -> Result<(), u64> {
        match self {
            UserRate::Node(rate) => rate.take(user),
            UserRate::Cluster(rate) => rate.take(user).await,
        }
    }

    /// [`UserRate::take`] for a change others see (a message or a file; with the change
    /// rate, an edit, a reaction, a join, a room's topic): `rate_limited` saying `why`, with
    /// when to retry.
    pub async fn spend(&self, user: i64, why: &'static str) -> Result<(), error::AppError> {
        self.take(user).await.map_err(|ms| {
            error::AppError::new(error::Code::RateLimited, why)
                .retry_after(std::time::Duration::from_millis(ms))
        })
    }
}

/// What every handler shares (through [`App`]).
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The address this server listens on (its port when `server.port` is 0).
    pub local_addr: std::net::SocketAddr,
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
    /// Per-user quotas on rooms, DMs, people added and invite links (over every node in
    /// cluster mode).
    pub quotas: Arc<limits::Limiter>,
    /// The per-user message rate, checked before a message (or file) is queued for the
    /// writer.
    pub message_rate: UserRate,
    /// The per-user rate of the other changes others see: edits, deletions, reactions,
    /// joins and leaves, room and profile changes (`limits.changes_per_second`).
    pub change_rate: UserRate,
    /// Cluster mode's shared state in Redis (`cluster.redis_url`), when set.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Searches running now, bounded per user and in total.
    pub searches: Arc<limits::Concurrency>,
    /// The uploads folder.
    pub files: Arc<crate::files::Files>,
    /// Image decodes running now (thumbnails), bounded to keep memory in check.
    pub decoders: Arc<tokio::sync::Semaphore>,
    /// The outgoing webhooks' sender: rung when a message may owe deliveries.
    pub deliveries: Arc<hooks::Deliveries>,
    /// The Web Push (VAPID) key, read or made on first use.
    pub push_keys: push::PushKeys,
}
