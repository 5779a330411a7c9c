//! The per-user message rate over every node: one GCRA state per user in Redis, so a user
//! who spreads their sends over three nodes gets the configured rate and burst once, not
//! three times.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per user, the theoretical arrival
//! time of their next message, and allows a message when it is at most `burst - 1` emission
//! intervals ahead of now; that is the same rule as the single node's token bucket
//! (`limits::UserRate`). The script reads Redis' own clock, so node clocks do not matter,
//! and costs one round trip per send.
//!
//! When Redis does not answer within [`TIMEOUT`] the node falls back to a local bucket at
//! `rate / N` and `burst / N` (N: the live node instances Redis last reported, at least 1):
//! abuse control stays roughly the same over the cluster, and sending never waits for Redis.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::{connect_lazily, Breaker, LUA_NOW_MS};
use crate::limits::UserRate;
use crate::metrics::Metrics;

/// Longest a send waits for Redis before deciding without it.
pub const TIMEOUT: Duration = Duration::from_millis(250);

/// KEYS: the user's state, the instance leases (`caps`). ARGV: the emission interval and the
/// burst. Returns {allowed, retry_after_ms, live_instances}.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local live = redis.call('ZCOUNT', KEYS[2], now, '+inf')
-- (A microsecond of slack: the burst's last message sits exactly on the boundary.)
if now + 0.001 < tat - tolerance then
  return {0, math.ceil(tat - tolerance - now), live}
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', math.ceil(tat - now) + 1)
return {1, 0, live}
";

/// The message rate over every node. Cheap to clone.
#[derive(Clone)]
pub struct ClusterRate {
    inner: Arc<Inner>,
}

struct Inner {
    redis: ConnectionManager,
    /// What the budget pays for, in its keys (`hearth:rate:{scope}:{user}`).
    scope: &'static str,
    rate: f64,
    burst: u32,
    script: Script,
    breaker: Breaker,
    /// Live node instances when Redis last answered.
    nodes: AtomicU32,
    /// The fallback: `rate / nodes` with `burst / nodes`, rebuilt when `nodes` changes.
    local: std::sync::Mutex<(u32, Arc<UserRate>)>,
    metrics: Arc<Metrics>,
}

impl ClusterRate {
    /// `rate` messages (or other actions: `scope` names the budget in Redis' keys) per
    /// second per user with bursts of `burst` (`rate` 0: no limit), over every node using the
    /// Redis at `url`; refusals are counted in `metrics`.
    pub fn new(
        url: &str,
        scope: &'static str,
        rate: f64,
        burst: u32,
        metrics: Arc<Metrics>,
    ) -> redis::RedisResult<ClusterRate> {
        let redis = connect_lazily(url, TIMEOUT)?;
        let local = Arc::new(UserRate::new(rate, burst, metrics.clone()));
        Ok(ClusterRate {
            inner: Arc::new(Inner {
                redis,
                scope,
                rate,
                burst,
                script: Script::new(&format!("{LUA_NOW_MS}{GCRA}")),
                breaker: Breaker::default(),
                nodes: AtomicU32::new(1),
                local: std::sync::Mutex::new((1, local)),
                metrics,
            }),
        })
    }

    /// Connect and load the script, so the first send does not pay for both (and for a
    /// `NOSCRIPT` round trip) within its [`TIMEOUT`]; sends use Redis again at once if it
    /// answered. Whether it did.
    pub async fn warm(&self) -> bool {
        let mut redis = self.inner.redis.clone();
        let load = self.inner.script.load_async(&mut redis);
        let answered = matches!(tokio::time::timeout(TIMEOUT * 4, load).await, Ok(Ok(_)));
        if answered {
            self.inner.breaker.reset();
        }
        answered
    }

    /// Spend one message of `user`'s rate; `Err(ms)` says when to retry.
    pub async fn take(&self, user: i64) -> Result<(), u64> {
        let inner = &self.inner;
        if inner.rate <= 0.0 {
            return Ok(());
        }
        if inner.breaker.closed() {
            let mut call = inner.script.prepare_invoke();
            call.key(format!("hearth:rate:{}:{user}", inner.scope))
                .key("hearth:nodes")
                .arg(1000.0 / inner.rate)
                .arg(inner.burst.max(1));
            let mut redis = inner.redis.clone();
            match tokio::time::timeout(TIMEOUT, call.invoke_async::<(u8, u64, u32)>(&mut redis))
                .await
            {
                Ok(Ok((allowed, retry_ms, live))) => {
                    inner.breaker.reset();
                    inner.nodes.store(live.max(1), Ordering::Relaxed);
                    if allowed == 1 {
                        return Ok(());
                    }
                    inner.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                    return Err(retry_ms.max(1));
                }
                Ok(Err(e)) => {
                    tracing::debug!("cluster message rate: Redis failed: {e}");
                    inner.breaker.trip();
                }
                Err(_) => inner.breaker.trip(),
            }
        }
        self.local().take(user)
    }

    /// The local bucket for the node count Redis last reported.
    fn local(&self) -> Arc<UserRate> {
        let inner = &self.inner;
        let nodes = inner.nodes.load(Ordering::Relaxed).max(1);
        let mut local = inner.local.lock().unwrap_or_else(|p| p.into_inner());
        if local.0 != nodes {
            let share = UserRate::new(
                inner.rate / f64::from(nodes),
                (inner.burst / nodes).max(1),
                inner.metrics.clone(),
            );
            *local = (nodes, Arc::new(share));
        }
        local.1.clone()
    }
}
