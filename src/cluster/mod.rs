//! Cluster mode's ephemeral plane: state that every node must agree on but that no message
//! depends on, kept in Redis (see docs/ARCHITECTURE.md, "Cluster mode"). The durable plane,
//! messages and their order, is PostgreSQL's (`db::pg`); losing Redis loses none of it.
//!
//! - [`log`]: the node's follower of the log, which hands every position to the hub.
//! - [`caps`]: connection caps counted over every node.
//! - [`rate`]: the per-user message rate shared by every node.
//! - [`presence`]: who is online on any node.

pub mod caps;
pub mod log;
pub mod presence;
pub mod rate;

use std::sync::Mutex;
use std::time::{Duration, Instant};

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
