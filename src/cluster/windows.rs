//! Sliding-window limits over every node: failed logins, registration attempts, and the
//! hourly quotas on rooms, DMs, people added and invite links. Counted on one node each, three
//! nodes would allow three times each limit; counted here, the limit holds once over the
//! cluster.
//!
//! - A key is a sorted set `hearth:w:{scope}:{key}` with one member per event, scored by the
//!   event's time on Redis' own clock (no node clock matters). A member is this instance's id
//!   and a sequence number, unique over the cluster, so one event can be taken back alone.
//! - One Lua script checks every key of a request and, only if all are under their limit,
//!   adds the event to each, atomically: concurrent requests on several nodes cannot all
//!   pass a limit they jointly exceed (the same rule as `limits::Counter` on one node). A
//!   key expires one window after its last event, so Redis holds nothing idle.
//! - When Redis does not answer within [`TIMEOUT`] (or failed less than a second ago), the
//!   caller counts on its own node instead (`Verdict::Unknown`; see `limits::Limiter`):
//!   while Redis is away each node allows the whole limit alone, and nothing waits for
//!   Redis. What was counted there stays there; what was counted here is taken back here.
//!   A reservation that timed out may still run in Redis later: it is taken back there at
//!   once (the release follows it on the same connection), so it counts once, here. A clear
//!   Redis did not take (a successful login forgiving failures) is kept for a minute and
//!   made with the next reservation that reaches Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::Script;

use super::{connect_lazily, Breaker, LUA_NOW_MS};
use futures_util::future::BoxFuture;

use crate::limits::{Limit, SharedWindows, Verdict};

/// Longest a request waits for Redis before counting on its own node.
pub const TIMEOUT: Duration = Duration::from_millis(250);

/// Counts one event under every key if each has room. KEYS: the windows. ARGV: the event's
/// member, then a limit and a window in ms per key (every limit at least 1). Returns 0 when
/// counted, else the ms until the oldest event of the first full key leaves its window.
const RESERVE: &str = r"
local t = math.floor(now)
for i = 1, #KEYS do
  local max, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', t - window)
  if redis.call('ZCARD', KEYS[i]) >= max then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return math.max(tonumber(oldest[2]) + window - t, 1)
  end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], t, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i + 1]))
end
return 0
";

/// Takes one event back. KEYS: its windows. ARGV: its member.
const RELEASE: &str = r"
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 0
";

/// Sliding windows counted in Redis over every node. Cheap to clone; clones share one
/// connection.
#[derive(Clone)]
pub struct ClusterWindows {
    inner: Arc<Inner>,
    /// Prefix of this counter's keys, so that counters using the same key names stay apart.
    prefix: Arc<str>,
}

struct Inner {
    redis: ConnectionManager,
    instance: String,
    /// The sequence behind members.
    next: AtomicU64,
    reserve: Script,
    release: Script,
    breaker: Breaker,
    /// Keys (whole) cleared while Redis did not answer, with when, to clear there with the
    /// next reservation that reaches it; at most [`PENDING_CLEARS`].
    pending_clears: std::sync::Mutex<HashMap<String, Instant>>,
}

/// Clears kept for Redis at most; more (a long outage with many logins) are forgotten, and
/// what they would have cleared leaves its window on its own.
const PENDING_CLEARS: usize = 10_000;

/// How long a clear is kept for Redis. One sent much later would also forgive the failures
/// counted since (through other nodes); one dropped leaves them to leave their window.
const PENDING_CLEAR_FOR: Duration = Duration::from_secs(60);

impl std::fmt::Debug for ClusterWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterWindows")
            .field("instance", &self.inner.instance)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ClusterWindows {
    /// Windows in the Redis at `url`, counted by a new instance of node `node`. Connects
    /// lazily: a Redis that is down now only makes requests count on this node until it is
    /// up. Its keys are under `hearth:w:`; see [`ClusterWindows::scoped`].
    pub fn new(url: &str, node: &str) -> redis::RedisResult<ClusterWindows> {
        let redis = connect_lazily(url, TIMEOUT)?;
        Ok(ClusterWindows {
            inner: Arc::new(Inner {
                redis,
                instance: super::instance_id(node)?,
                next: AtomicU64::new(0),
                reserve: Script::new(&format!("{LUA_NOW_MS}{RESERVE}")),
                release: Script::new(RELEASE),
                breaker: Breaker::default(),
                pending_clears: std::sync::Mutex::new(HashMap::new()),
            }),
            prefix: Arc::from("hearth:w:"),
        })
    }

    /// The same windows with keys under `hearth:w:{scope}:`, sharing the connection.
    pub fn scoped(&self, scope: &str) -> ClusterWindows {
        ClusterWindows {
            inner: self.inner.clone(),
            prefix: Arc::from(format!("hearth:w:{scope}:")),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Connect and load the scripts, so the first request does not pay for both within its
    /// [`TIMEOUT`]; requests use Redis again at once if it answered. Whether it did.
    pub async fn warm(&self) -> bool {
        let inner = &self.inner;
        let mut redis = inner.redis.clone();
        let load = async {
            inner.reserve.load_async(&mut redis).await?;
            inner.release.load_async(&mut redis).await
        };
        let answered = matches!(tokio::time::timeout(TIMEOUT * 4, load).await, Ok(Ok(_)));
        if answered {
            inner.breaker.reset();
        }
        answered
    }

    /// Check every `(key, limit)` with a limit (`max > 0`) over every node and, only if all
    /// have room, count one event for each.
    pub async fn reserve(&self, checks: &[(&str, Limit)]) -> Verdict {
        let inner = &self.inner;
        if !inner.breaker.closed() {
            return Verdict::Unknown;
        }
        let n = inner.next.fetch_add(1, Ordering::Relaxed);
        let member = format!("{}:{n}", inner.instance);
        let mut call = inner.reserve.prepare_invoke();
        call.arg(&member);
        let mut keys = Vec::new();
        for (key, limit) in checks.iter().filter(|(_, l)| l.max > 0) {
            call.key(self.key(key))
                .arg(limit.max)
                .arg(limit.window.as_millis().max(1) as u64);
            keys.push(key.to_string());
        }
        let mut redis = inner.redis.clone();
        let clears = self.take_pending_clears();
        let answer = if clears.is_empty() {
            tokio::time::timeout(TIMEOUT, call.invoke_async::<u64>(&mut redis)).await
        } else {
            // The clears first, in the same round trip.
            let mut pipe = redis::pipe();
            let cleared: Vec<&String> = clears.iter().map(|(key, _)| key).collect();
            pipe.load_script(&inner.reserve)
                .ignore()
                .del(cleared)
                .ignore()
                .invoke_script(&call);
            let asked = pipe.query_async::<(u64,)>(&mut redis);
            let answer = tokio::time::timeout(TIMEOUT, asked).await;
            let answer = answer.map(|r| r.map(|(retry_ms,)| retry_ms));
            if !matches!(answer, Ok(Ok(_))) {
                self.keep_pending_clears(clears);
            }
            answer
        };
        match answer {
            Ok(Ok(retry_ms)) => {
                inner.breaker.reset();
                match retry_ms {
                    0 => Verdict::Counted(member),
                    ms => Verdict::Full((ms / 1000).max(1)),
                }
            }
            failed => {
                if let Ok(Err(e)) = failed {
                    tracing::debug!("cluster windows: Redis failed: {e}");
                }
                // Perhaps asked and not answered (a timeout, a connection lost): Redis may
                // still count it. Taken back there (after it, on the same connection), since
                // the caller counts it here instead.
                inner.breaker.trip();
                let me = self.clone();
                tokio::spawn(async move { me.take_back(&keys, &member).await });
                Verdict::Unknown
            }
        }
    }

    /// Take back in Redis the event a reservation that failed may still count there. Leaves
    /// the breaker as it is: an answer to this one (behind the reservation that did not
    /// answer in time) does not say that Redis answers in time again.
    async fn take_back(&self, keys: &[String], member: &str) {
        let inner = &self.inner;
        let mut call = inner.release.prepare_invoke();
        call.arg(member);
        for key in keys {
            call.key(self.key(key));
        }
        let mut redis = inner.redis.clone();
        let _ = tokio::time::timeout(TIMEOUT, call.invoke_async::<i64>(&mut redis)).await;
    }

    /// The clears Redis did not take yet (those kept no longer than [`PENDING_CLEAR_FOR`]),
    /// with when each was made.
    fn take_pending_clears(&self) -> Vec<(String, Instant)> {
        match self.inner.pending_clears.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending)
                .into_iter()
                .filter(|(_, at)| at.elapsed() <= PENDING_CLEAR_FOR)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Keep the clears of `keys` (whole, with when each was made) for a later reservation.
    fn keep_pending_clears(&self, keys: impl IntoIterator<Item = (String, Instant)>) {
        if let Ok(mut pending) = self.inner.pending_clears.lock() {
            for (key, at) in keys {
                if pending.len() >= PENDING_CLEARS && !pending.contains_key(&key) {
                    pending.retain(|_, at| at.elapsed() <= PENDING_CLEAR_FOR);
                    if pending.len() >= PENDING_CLEARS {
                        break;
                    }
                }
                // The newer of two clears of one key says how long it is kept.
                let kept = pending.entry(key).or_insert(at);
                *kept = (*kept).max(at);
            }
        }
    }

    /// Take back the event counted as `member` under `keys`. Whether Redis took it; one it
    /// did not take stays counted until it leaves its window.
    pub async fn release(&self, keys: &[String], member: &str) -> bool {
        if keys.is_empty() {
            return true;
        }
        let inner = &self.inner;
        let mut call = inner.release.prepare_invoke();
        call.arg(member);
        for key in keys {
            call.key(self.key(key));
        }
        let mut redis = inner.redis.clone();
        self.answer(call.invoke_async::<i64>(&mut redis))
            .await
            .is_some()
    }

    /// Forget every event of `key` on every node. Whether Redis took it now. Skipped for a
    /// moment after Redis failed, like a reservation; one not taken is made with the next
    /// reservation that reaches Redis.
    pub async fn clear(&self, key: &str) -> bool {
        let key = self.key(key);
        if !self.inner.breaker.closed() {
            self.keep_pending_clears([(key, Instant::now())]);
            return false;
        }
        let mut redis = self.inner.redis.clone();
        let mut del = redis::cmd("DEL");
        del.arg(&key);
        let took = self
            .answer(del.query_async::<i64>(&mut redis))
            .await
            .is_some();
        if !took {
            self.keep_pending_clears([(key, Instant::now())]);
        } else if let Ok(mut pending) = self.inner.pending_clears.lock() {
            pending.remove(&key); // made now: not again later
        }
        took
    }

    /// The answer to `call` if it came within [`TIMEOUT`]; a failure makes the next requests
    /// count on this node for a moment. (A release is tried even then: an event counted in
    /// Redis can only be taken back there, and Redis answered it moments ago.)
    async fn answer<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(answer)) => {
                self.inner.breaker.reset();
                Some(answer)
            }
            Ok(Err(e)) => {
                tracing::debug!("cluster windows: Redis failed: {e}");
                self.inner.breaker.trip();
                None
            }
            Err(_) => {
                self.inner.breaker.trip();
                None
            }
        }
    }
}

impl SharedWindows for ClusterWindows {
    fn reserve<'a>(&'a self, checks: &'a [(&'a str, Limit)]) -> BoxFuture<'a, Verdict> {
        Box::pin(ClusterWindows::reserve(self, checks))
    }

    fn release<'a>(&'a self, keys: &'a [String], member: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(ClusterWindows::release(self, keys, member))
    }

    fn clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(ClusterWindows::clear(self, key))
    }

    fn scoped(&self, scope: &str) -> Arc<dyn SharedWindows> {
        Arc::new(ClusterWindows::scoped(self, scope))
    }
}
