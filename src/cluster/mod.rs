//! Cluster mode's ephemeral plane: state that every node must agree on but that no message
//! depends on, kept in Redis (see docs/ARCHITECTURE.md, "Cluster mode"). The durable plane,
//! messages and their order, is PostgreSQL's (`db::pg`); losing Redis loses none of it.
//!
//! - [`log`]: the node's follower of the log, which hands every position to the hub.
//! - [`caps`]: connection caps counted over every node.
//! - [`rate`]: the per-user message rate shared by every node.
//! - [`presence`]: who is online on any node.
//! - [`windows`]: the sliding-window limits (failed logins, registrations, hourly quotas)
//!   counted over every node.
//!
//! [`Cluster`] puts them together for a server (`cluster.redis_url`).

pub mod caps;
pub mod log;
pub mod presence;
pub mod rate;
pub mod windows;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::hub::{Hub, LocalPresence};
use crate::metrics::Metrics;

/// One node's share of the ephemeral plane: the connection caps, the message rate, the
/// windowed limits and presence over every node, all in the Redis at `cluster.redis_url`.
#[derive(Clone)]
pub struct Cluster {
    /// Connection caps over every node.
    pub caps: caps::ClusterCaps,
    /// The per-user message rate over every node.
    pub rate: rate::ClusterRate,
    /// The per-user rate of other changes others see (edits, reactions, joins…) over every
    /// node.
    pub change_rate: rate::ClusterRate,
    /// Sliding-window limits over every node (see `limits::Limiter`); scope it per counter.
    pub windows: windows::ClusterWindows,
    /// Who is online on any node, and typing.
    pub presence: presence::ClusterPresence,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.caps.instance())
            .finish()
    }
}

impl Cluster {
    /// The ephemeral plane for `config`, or `None` without `cluster.redis_url`. Connects
    /// lazily: a Redis that is down at start only makes the first calls decide without it.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> redis::RedisResult<Option<Cluster>> {
        let url = &config.cluster.redis_url;
        if url.is_empty() {
            return Ok(None);
        }
        let node = config.cluster.node_name();
        let limits = caps::CapLimits {
            per_user: config.limits.connections_per_user,
            per_address: config.limits.connections_per_address,
        };
        Ok(Some(Cluster {
            caps: caps::ClusterCaps::new(url, &node, limits, caps::LEASE)?,
            rate: rate::ClusterRate::new(
                url,
                "u",
                config.limits.messages_per_second,
                config.limits.message_burst,
                metrics.clone(),
            )?,
            change_rate: rate::ClusterRate::new(
                url,
                "c",
                config.limits.changes_per_second,
                config.limits.change_burst,
                metrics,
            )?,
            windows: windows::ClusterWindows::new(url, &node)?,
            presence: presence::ClusterPresence::new(url, &node, caps::LEASE)?,
        }))
    }

    /// Whether Redis answers a `PING` now (for `/healthz`).
    pub async fn ping(&self) -> bool {
        self.caps.ping().await
    }

    /// Start sharing with the other nodes until `stop` flips: the leases' renewals, what
    /// the hub sees told to Redis in order, and what every node says handed to the hub.
    /// The tasks end after taking this node out of Redis; the presence's once `leave` flips
    /// (the node's users stay online meanwhile: its sockets close after `stop`, and their
    /// clients reconnect to other nodes).
    pub fn start(
        &self,
        hub: &Hub,
        stop: watch::Receiver<bool>,
        leave: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let (rate, windows) = (self.rate.clone(), self.windows.clone());
        tokio::spawn(async move { rate.warm().await });
        let changes = self.change_rate.clone();
        tokio::spawn(async move { changes.warm().await });
        tokio::spawn(async move { windows.warm().await });
        let local = hub.share_presence();
        let (events_tx, events) = mpsc::channel(256);
        vec![
            tokio::spawn(self.caps.clone().keep_alive(stop.clone())),
            tokio::spawn(self.presence.clone().run(events_tx, leave)),
            tokio::spawn(tell(self.presence.clone(), local, stop)),
            tokio::spawn(hear(hub.clone(), events)),
        ]
    }
}

/// Tell Redis what this node's hub sees, one change after the other (a user's connect and
/// disconnect must not overtake each other). Ends when the hub is gone, or when `stop` flips
/// (the node then takes itself out of Redis whole: see [`presence::ClusterPresence::run`]).
async fn tell(
    presence: presence::ClusterPresence,
    mut local: mpsc::UnboundedReceiver<LocalPresence>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let change = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => None,
            change = local.recv() => change,
        };
        let Some(change) = change else { return };
        match change {
            LocalPresence::Connected { user, name } => {
                presence.connected(user, &name).await;
            }
            LocalPresence::Disconnected { user } => {
                presence.disconnected(user).await;
            }
            // Behind a slow Redis, stale notices are dropped unsent, so the queue (every
            // connection's notices, at most one a second each) drains at once.
            LocalPresence::Typing { at, .. } if at.elapsed() > TYPING_STALE => {}
            LocalPresence::Typing {
                room,
                room_name,
                user,
                name,
                ..
            } => presence.typing((room, &room_name), (user, &name)).await,
        }
    }
}

/// Oldest typing notice still told to the other nodes (a client shows one for a few
/// seconds).
const TYPING_STALE: std::time::Duration = std::time::Duration::from_secs(2);

/// Hand what every node says to the hub.
async fn hear(hub: Hub, mut events: mpsc::Receiver<crate::hub::SharedPresence>) {
    while let Some(event) = events.recv().await {
        hub.apply_presence(event);
    }
}

/// Time Redis' own clock (`TIME`) in milliseconds, for the scripts.
const LUA_NOW_MS: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
";

/// After Redis failed to answer, how long calls skip it: a send or a connect must not wait
/// for a Redis that is down each time.
const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Remembers a failed call to Redis, so the next ones decide without it for a moment.
#[derive(Default)]
struct Breaker(Mutex<Option<Instant>>);

impl Breaker {
    /// Whether Redis should be asked now.
    fn closed(&self) -> bool {
        let Ok(until) = self.0.lock() else {
            return true;
        };
        until.is_none_or(|t| Instant::now() >= t)
    }

    /// Redis failed: skip it for a moment.
    fn trip(&self) {
        if let Ok(mut until) = self.0.lock() {
            *until = Some(Instant::now() + SKIP_AFTER_FAILURE);
        }
    }

    /// Redis answered.
    fn reset(&self) {
        if let Ok(mut until) = self.0.lock() {
            *until = None;
        }
    }
}

/// A Redis connection that reconnects by itself, created without connecting (a Redis that is
/// down at start only makes the first calls fail).
fn connect_lazily(
    url: &str,
    timeout: Duration,
) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    redis::aio::ConnectionManager::new_lazy_with_config(client, config)
}

/// A fresh id for an instance of node `node`: its name and a random suffix, so a restarted
/// node never takes over what its previous run left in Redis.
fn instance_id(node: &str) -> redis::RedisResult<String> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "no random source for the instance id",
            e.to_string(),
        ))
    })?;
    Ok(format!("{node}:{:016x}", u64::from_le_bytes(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typing notice that waited more than 2 s behind Redis is dropped unsent; a fresh one
    /// is sent (here to a Redis that refuses connections, which trips the breaker).
    #[tokio::test]
    async fn stale_typing_notices_are_dropped_unsent() {
        let presence =
            presence::ClusterPresence::new("redis://127.0.0.1:1", "n", Duration::from_secs(10))
                .expect("a Redis URL");
        let (tx, rx) = mpsc::unbounded_channel();
        let (_stop_tx, stop) = watch::channel(false);
        let told = tokio::spawn(tell(presence.clone(), rx, stop));
        let notice = |age: Duration| LocalPresence::Typing {
            room: 1,
            room_name: "general".into(),
            user: 2,
            name: "ann".into(),
            at: std::time::Instant::now() - age,
        };
        tx.send(notice(TYPING_STALE + Duration::from_millis(100)))
            .unwrap();
        // Longer than a refused connection takes to trip the breaker (the fresh notice
        // below shows how long: well under this).
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!presence.skipping_redis(), "the stale notice went to Redis");
        tx.send(notice(Duration::ZERO)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !presence.skipping_redis() {
            assert!(
                std::time::Instant::now() < deadline,
                "the fresh notice was not sent"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(tx);
        told.await.unwrap();
    }
}
