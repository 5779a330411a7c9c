//! Counting what clients do: sliding windows keyed by user or address, with an atomic
//! check-and-reserve so concurrent requests cannot all slip under a limit, the per-user
//! message rate, and the address key that makes limits apply per IPv4 address or per IPv6
//! /64.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::metrics::Metrics;

/// Keys past which old windows are pruned, so a flood of distinct keys cannot grow the map
/// without bound.
const PRUNE_ABOVE: usize = 100_000;

/// The address limits are counted against: an IPv4 address as is (also when it arrives as an
/// IPv4-mapped IPv6 address), an IPv6 address as its /64, since one subscriber usually holds
/// a whole /64 and can pick any address in it.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Events per key within a window.
#[derive(Default)]
pub struct Windows {
    by_key: HashMap<String, VecDeque<Instant>>,
}

impl Windows {
    fn prune(q: &mut VecDeque<Instant>, window: Duration, now: Instant) {
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
    }

    /// Events for `key` still inside `window`, and the oldest of them.
    pub fn count(&mut self, key: &str, window: Duration, now: Instant) -> (usize, Option<Instant>) {
        let Some(q) = self.by_key.get_mut(key) else {
            return (0, None);
        };
        Self::prune(q, window, now);
        (q.len(), q.front().copied())
    }

    /// Record an event for `key` now.
    pub fn add(&mut self, key: &str, now: Instant, window: Duration) {
        if self.by_key.len() > PRUNE_ABOVE {
            self.by_key
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        match self.by_key.get_mut(key) {
            Some(q) => q.push_back(now),
            None => {
                self.by_key.insert(key.to_string(), VecDeque::from([now]));
            }
        }
    }

    /// Forget one event recorded at `at` (a reservation that turned out not to count).
    pub fn remove(&mut self, key: &str, at: Instant) {
        if let Some(q) = self.by_key.get_mut(key) {
            if let Some(i) = q.iter().rposition(|t| *t == at) {
                q.remove(i);
            }
            if q.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// Forget every event of `key`.
    pub fn clear(&mut self, key: &str) {
        self.by_key.remove(key);
    }
}

/// Seconds until the oldest event leaves the window (at least 1).
pub fn retry_after(oldest: Option<Instant>, window: Duration, now: Instant) -> u64 {
    oldest
        .map(|t| {
            window
                .saturating_sub(now.duration_since(t))
                .as_secs()
                .max(1)
        })
        .unwrap_or(1)
}

/// A limit: at most `max` events per key within `window`; `max == 0` means no limit.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Events allowed within the window.
    pub max: usize,
    /// The window.
    pub window: Duration,
}

/// Sliding-window counters for several limits at once, behind one lock.
#[derive(Default)]
pub struct Counter {
    windows: Mutex<Windows>,
}

/// An event counted ahead of the work it stands for; [`Counter::release`] (or
/// [`Limiter::release`]) takes it back where it was counted.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// The keys it was counted under (those with a limit).
    keys: Vec<String>,
    counted: Counted,
}

/// Where a reservation was counted.
#[derive(Debug, Clone)]
enum Counted {
    /// On this node, at this instant.
    Here(Instant),
    /// In Redis over every node, as this member of each key's window.
    Cluster(String),
}

impl Counter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Check every `(key, limit)` and, only if all of them have room, count one event for
    /// each, in one step: concurrent callers cannot all pass a limit they jointly exceed.
    /// `Err(seconds)` says when to retry.
    pub fn reserve(&self, checks: &[(&str, Limit)]) -> Result<Reservation, u64> {
        let now = Instant::now();
        let mut w = self.lock();
        for (key, limit) in checks {
            if limit.max == 0 {
                continue;
            }
            let (n, oldest) = w.count(key, limit.window, now);
            if n >= limit.max {
                return Err(retry_after(oldest, limit.window, now));
            }
        }
        let mut keys = Vec::with_capacity(checks.len());
        for (key, limit) in checks {
            if limit.max > 0 {
                w.add(key, now, limit.window);
                keys.push(key.to_string());
            }
        }
        Ok(Reservation {
            keys,
            counted: Counted::Here(now),
        })
    }

    /// Take a reservation back: the event did not happen or does not count. (One counted in
    /// Redis is not here: [`Limiter::release`] takes it back there.)
    pub fn release(&self, r: &Reservation) {
        let Counted::Here(at) = r.counted else {
            return;
        };
        let mut w = self.lock();
        for key in &r.keys {
            w.remove(key, at);
        }
    }

    /// Forget everything counted for `key`.
    pub fn clear(&self, key: &str) {
        self.lock().clear(key);
    }
}

/// What a count over every node said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key had room; the event is counted under this member of each key's window.
    Counted(String),
    /// A key is full: retry after this many seconds (at least 1).
    Full(u64),
    /// The shared count did not answer in time: count on this node.
    Unknown,
}

/// Sliding windows counted over every node (cluster mode: `cluster::windows`, in Redis). A
/// trait so that this module, and the services holding a [`Limiter`], need not know where.
pub trait SharedWindows: Send + Sync {
    /// Check every `(key, limit)` with `max > 0` and, only if all have room, count one event
    /// for each, in one step over every node.
    fn reserve<'a>(&'a self, checks: &'a [(&'a str, Limit)]) -> BoxFuture<'a, Verdict>;
    /// Take back the event counted as `member` under `keys`. Whether it was taken back.
    fn release<'a>(&'a self, keys: &'a [String], member: &'a str) -> BoxFuture<'a, bool>;
    /// Forget every event of `key`. Whether it was forgotten.
    fn clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, bool>;
    /// The same windows with keys apart from every other scope's (one scope per
    /// [`Limiter`], so that two limiters' keys of the same name do not meet).
    fn scoped(&self, scope: &str) -> Arc<dyn SharedWindows>;
}

/// Sliding-window limits counted on this node, or over every node (cluster mode), so that N
/// nodes allow each limit once rather than N times.
///
/// In cluster mode a request the shared count does not answer in time (Redis down, slow, or
/// failed less than a second ago) is counted on this node instead: while Redis is away each
/// node applies the whole limit alone, and no request waits for Redis. A [`Reservation`]
/// remembers where it was counted, so it is taken back there.
#[derive(Default)]
pub struct Limiter {
    here: Counter,
    shared: Option<Arc<dyn SharedWindows>>,
}

impl Limiter {
    /// Limits counted over every node through `shared` (falling back to this node), or on
    /// this node alone without it.
    pub fn new(shared: Option<Arc<dyn SharedWindows>>) -> Self {
        Limiter {
            here: Counter::default(),
            shared,
        }
    }

    /// Whether the limits are counted over every node.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Check every `(key, limit)` and, only if all of them have room, count one event for
    /// each, in one step (over every node in cluster mode): concurrent callers cannot all
    /// pass a limit they jointly exceed. `Err(seconds)` says when to retry.
    pub async fn reserve(&self, checks: &[(&str, Limit)]) -> Result<Reservation, u64> {
        let limited = checks.iter().any(|(_, l)| l.max > 0);
        if let (Some(shared), true) = (&self.shared, limited) {
            match shared.reserve(checks).await {
                Verdict::Counted(member) => {
                    let keys = checks
                        .iter()
                        .filter(|(_, l)| l.max > 0)
                        .map(|(k, _)| k.to_string())
                        .collect();
                    return Ok(Reservation {
                        keys,
                        counted: Counted::Cluster(member),
                    });
                }
                Verdict::Full(secs) => return Err(secs),
                Verdict::Unknown => {}
            }
        }
        self.here.reserve(checks)
    }

    /// [`Limiter::reserve`] on this node only, for a caller that cannot wait (inside a
    /// database transaction). Only meaningful when not shared: then this node's count holds
    /// only what it counted while Redis was away.
    pub fn reserve_here(&self, checks: &[(&str, Limit)]) -> Result<Reservation, u64> {
        self.here.reserve(checks)
    }

    /// Take a reservation back where it was counted: the event did not happen or does not
    /// count. One the shared count does not take back in time stays counted until it leaves
    /// its window.
    pub async fn release(&self, r: &Reservation) {
        match (&r.counted, &self.shared) {
            (Counted::Cluster(member), Some(shared)) => {
                shared.release(&r.keys, member).await;
            }
            _ => self.here.release(r),
        }
    }

    /// Forget everything counted for `key`, here and over every node.
    pub async fn clear(&self, key: &str) {
        self.here.clear(key);
        if let Some(shared) = &self.shared {
            shared.clear(key).await;
        }
    }
}

/// The per-user message rate: a token bucket per user, holding up to `burst` messages and
/// refilled at `rate` messages per second.
///
/// Hand-written rather than the `governor` crate. Governor's keyed limiter could do the same
/// job (its GCRA is equivalent to this bucket; `Quota::with_period` and `allow_burst` express a
/// fractional rate and the burst, `check_key`'s `NotUntil` says when to retry, and
/// `retain_recent` prunes idle keys), but it would add some eight crates not in the lock file
/// yet (governor, dashmap, quanta, spinning_top, nonzero_ext, ...) to a deliberately short
/// dependency list to replace thirty lines, and this way the tests drive the bucket with
/// explicit instants.
pub struct UserRate {
    /// Sustained messages per second per user; 0 or less means no limit.
    rate: f64,
    /// Messages a user may send at once after being quiet.
    burst: u32,
    /// One bucket per user who sent recently. A `Mutex`: every check is a few float
    /// operations, shorter than any contention it could cause.
    buckets: Mutex<HashMap<i64, Bucket>>,
    /// Where refusals are counted (`hearth_rate_limited_total`).
    metrics: Arc<Metrics>,
}

/// One user's tokens as of `at`; refilled lazily on the next check.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl UserRate {
    /// `rate` messages per second per user with bursts of `burst` (`rate` 0 = unlimited),
    /// counting refusals in `metrics`.
    pub fn new(rate: f64, burst: u32, metrics: Arc<Metrics>) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Spend one message from the user's bucket; `Err(ms)` says when to retry.
    pub fn take(&self, user_id: i64) -> Result<(), u64> {
        self.take_at(user_id, Instant::now())
    }

    fn take_at(&self, user_id: i64, now: Instant) -> Result<(), u64> {
        let (rate, burst) = (self.rate, f64::from(self.burst));
        if rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            // A full bucket is the same as no bucket: forget those.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(user_id).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            Err((((1.0 - b.tokens) / rate) * 1000.0).ceil() as u64)
        }
    }
}

/// Work that may run only so many times at once, overall and per user.
pub struct Concurrency {
    total: std::sync::Arc<tokio::sync::Semaphore>,
    per_user: usize,
    by_user: Mutex<HashMap<i64, usize>>,
}

/// Why [`Concurrency::enter`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowded {
    /// The user already runs as many as allowed.
    User,
    /// No slot came free in time.
    Server,
}

/// A running unit of work; dropping it frees its slots.
pub struct Running<'a> {
    owner: &'a Concurrency,
    user: i64,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut m = self.owner.by_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

impl Concurrency {
    /// At most `total` at once, and `per_user` for any one user.
    pub fn new(total: usize, per_user: usize) -> Self {
        Self {
            total: std::sync::Arc::new(tokio::sync::Semaphore::new(total.max(1))),
            per_user: per_user.max(1),
            by_user: Mutex::new(HashMap::new()),
        }
    }

    /// Take a slot for `user`: refused at once when the user is at their limit, else waits
    /// up to `wait` for an overall slot. Cancellation-safe.
    pub async fn enter(&self, user: i64, wait: Duration) -> Result<Running<'_>, Crowded> {
        {
            let mut m = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(user).or_insert(0);
            if *n >= self.per_user {
                return Err(Crowded::User);
            }
            *n += 1;
        }
        // From here on the user's count is given back by `Running` or by `Undo`.
        struct Undo<'a>(&'a Concurrency, i64, bool);
        impl Drop for Undo<'_> {
            fn drop(&mut self) {
                if self.2 {
                    let mut m = self.0.by_user.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(n) = m.get_mut(&self.1) {
                        *n -= 1;
                        if *n == 0 {
                            m.remove(&self.1);
                        }
                    }
                }
            }
        }
        let mut undo = Undo(self, user, true);
        let slot = tokio::time::timeout(wait, self.total.clone().acquire_owned()).await;
        match slot {
            Ok(Ok(slot)) => {
                undo.2 = false;
                Ok(Running {
                    owner: self,
                    user,
                    _slot: slot,
                })
            }
            _ => Err(Crowded::Server),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn concurrency_is_bounded_per_user_and_overall() {
        let c = Concurrency::new(2, 1);
        assert_eq!(Concurrency::new(1, 0).per_user, 1, "at least one per user");
        let wait = Duration::from_millis(20);
        let a = c.enter(1, wait).await.unwrap();
        assert_eq!(c.enter(1, wait).await.err(), Some(Crowded::User));
        let b = c.enter(2, wait).await.unwrap();
        assert_eq!(c.enter(3, wait).await.err(), Some(Crowded::Server));
        // A refusal for lack of room overall leaves the user's own count untouched.
        drop(a);
        let again = c.enter(3, wait).await;
        assert!(again.is_ok());
        drop(again);
        drop(b);
        assert!(c.by_user.lock().unwrap().is_empty());
    }

    #[test]
    fn reservations_are_atomic_and_can_be_released() {
        let c = Counter::default();
        let limit = Limit {
            max: 3,
            window: Duration::from_secs(60),
        };
        let r: Vec<_> = (0..3)
            .map(|_| c.reserve(&[("k", limit)]).unwrap())
            .collect();
        assert!(c.reserve(&[("k", limit)]).is_err());
        c.release(&r[0]);
        assert!(c.reserve(&[("k", limit)]).is_ok());
        // A refusal by one key counts nothing for the others.
        let other = Limit {
            max: 10,
            window: Duration::from_secs(60),
        };
        assert!(c.reserve(&[("o", other), ("k", limit)]).is_err());
        let (n, _) = c.lock().count("o", other.window, Instant::now());
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn a_limiter_without_a_cluster_counts_here() {
        let l = Limiter::new(None);
        assert!(!l.is_shared());
        let limit = Limit {
            max: 2,
            window: Duration::from_secs(60),
        };
        let a = l.reserve(&[("k", limit)]).await.unwrap();
        let _b = l.reserve(&[("k", limit)]).await.unwrap();
        let retry = l.reserve(&[("k", limit)]).await.err();
        assert!(retry.is_some_and(|s| (59..=60).contains(&s)), "{retry:?}");
        l.release(&a).await;
        let _c = l.reserve(&[("k", limit)]).await.unwrap();
        assert!(l.reserve(&[("k", limit)]).await.is_err());
        l.clear("k").await;
        assert!(l.reserve(&[("k", limit)]).await.is_ok());
    }

    fn rate(rate: f64, burst: u32) -> UserRate {
        UserRate::new(rate, burst, Arc::new(Metrics::default()))
    }

    #[test]
    fn message_rate_allows_a_burst_then_says_when_to_retry() {
        let r = rate(2.0, 3);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.take_at(1, t), Ok(()));
        }
        assert_eq!(r.take_at(1, t), Err(500), "one token at 2/s takes 500 ms");
        assert_eq!(r.take_at(2, t), Ok(()), "buckets are per user");
        assert_eq!(r.metrics.rate_limited.load(Ordering::Relaxed), 1);
        // A quarter second refills half a token: still refused, and sooner.
        assert_eq!(r.take_at(1, t + Duration::from_millis(250)), Err(250));
        assert_eq!(r.take_at(1, t + Duration::from_millis(500)), Ok(()));
        // A long pause refills no more than the burst.
        let later = t + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(r.take_at(1, later), Ok(()));
        }
        assert!(r.take_at(1, later).is_err());
    }

    #[test]
    fn message_rate_zero_is_unlimited() {
        let r = rate(0.0, 0);
        let t = Instant::now();
        assert!((0..1000).all(|_| r.take_at(1, t).is_ok()));
        assert!(r.buckets.lock().unwrap().is_empty());
        assert_eq!(r.metrics.rate_limited.load(Ordering::Relaxed), 0);
    }
}
