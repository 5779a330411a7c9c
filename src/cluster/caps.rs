//! Connection caps across nodes: the WebSocket connections one user (and one address) holds on
//! every node together, so that 25 connections of one user spread over 3 nodes admit exactly
//! `connections_per_user`.
//!
//! - Each node instance counts its own connections in Redis hashes, one field per instance:
//!   `hearth:cc:u:{user}` and `hearth:cc:a:{address}`. One Lua script adds the live fields and
//!   takes a place only when both totals are under their caps, atomically.
//! - An instance holds a lease in the sorted set `hearth:nodes`, scored by its expiry on
//!   Redis' own clock (no node clock matters) and renewed every third of it. Fields of an
//!   instance whose lease ran out are not counted, and the admission that finds them deletes
//!   them: a killed node's connections stop counting within one lease ([`LEASE`]).
//! - Every instance has a fresh id (the node's name and a random suffix), so a restarted
//!   node never inherits its dead self's counts.
//! - The node's own counts (kept here, in memory) are the truth about its connections: each
//!   renewal writes them all to Redis again (and deletes the fields that dropped to zero), so
//!   a release lost to a Redis outage, or a Redis that restarted empty, is repaired within one
//!   renewal.
//! - Redis is not needed to chat: when it does not answer within [`TIMEOUT`], an admission
//!   says [`Admission::Unknown`] and the node applies its own caps alone (a user may then
//!   hold up to the cap on each node). The place is still counted here, so the first
//!   renewal that reaches Redis again writes it: from then on it counts over the cluster.
//!   (A renewal that overtakes a release or an admission in flight can leave Redis a place
//!   off until the next renewal.)

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::{connect_lazily, Breaker, LUA_NOW_MS};

/// How long an instance's counts are trusted without a renewal, by default.
pub const LEASE: Duration = Duration::from_secs(10);
/// Longest a node waits for Redis before deciding without it.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// The sorted set of instance leases.
const NODES: &str = "hearth:nodes";

/// Takes a place when the live totals allow it. KEYS: the leases, the user's hash, the
/// address's hash. ARGV: this instance, the user cap, the address cap (0: none), the lease in
/// ms. Returns {outcome, lease_was_missing}: outcome 0 admitted, 1 user full, 2 address full.
const ADMIT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local missing = 0
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then missing = 1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
local function total(key)
  local fields = redis.call('HGETALL', key)
  local sum = 0
  for i = 1, #fields, 2 do
    if redis.call('ZSCORE', KEYS[1], fields[i]) then
      sum = sum + tonumber(fields[i + 1])
    else
      redis.call('HDEL', key, fields[i])
    end
  end
  return sum
end
local ucap, acap = tonumber(ARGV[2]), tonumber(ARGV[3])
if ucap > 0 and total(KEYS[2]) >= ucap then return {1, missing} end
if acap > 0 and total(KEYS[3]) >= acap then return {2, missing} end
for i = 2, 3 do
  redis.call('HINCRBY', KEYS[i], ARGV[1], 1)
  redis.call('PEXPIRE', KEYS[i], 3 * tonumber(ARGV[4]))
end
return {0, missing}
";

/// Gives a place back. KEYS: the user's and the address's hashes. ARGV: this instance.
const RELEASE: &str = r"
for i = 1, #KEYS do
  if redis.call('HINCRBY', KEYS[i], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[i], ARGV[1])
  end
end
return 0
";

/// Renews the lease and writes this instance's counts. KEYS: the leases, then the hashes.
/// ARGV: this instance, the lease in ms, then one count per hash (0: delete the field).
/// Returns 1 when the lease had expired or vanished (Redis restarted).
const RENEW: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local missing = 0
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then missing = 1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
for i = 2, #KEYS do
  local n = tonumber(ARGV[i + 1])
  if n > 0 then
    redis.call('HSET', KEYS[i], ARGV[1], n)
    redis.call('PEXPIRE', KEYS[i], 3 * tonumber(ARGV[2]))
  else
    redis.call('HDEL', KEYS[i], ARGV[1])
  end
end
return missing
";

/// The caps to apply; 0 means none.
#[derive(Clone, Copy, Debug)]
pub struct CapLimits {
    /// Connections of one user over every node.
    pub per_user: u32,
    /// Connections from one address (an IPv4 address or an IPv6 /64) over every node.
    pub per_address: u32,
}

/// What the cluster-wide count said.
#[derive(Debug)]
pub enum Admission {
    /// A place was taken; it is given back when the [`Place`] is dropped.
    Admitted(Place),
    /// The user holds as many connections as allowed.
    UserFull,
    /// The address holds as many connections as allowed.
    AddressFull,
    /// Redis did not answer: decide with the node's own caps alone. The place is counted
    /// here and written to Redis by the first renewal that reaches it.
    Unknown(Place),
}

/// Connection caps counted in Redis over every node. Cheap to clone.
#[derive(Clone)]
pub struct ClusterCaps {
    inner: Arc<Inner>,
}

struct Inner {
    redis: ConnectionManager,
    instance: String,
    limits: CapLimits,
    lease_ms: u64,
    admit: Script,
    release: Script,
    renew: Script,
    breaker: Breaker,
    /// This instance's places per hash key: the truth that renewals write.
    local: Mutex<Local>,
}

#[derive(Default)]
struct Local {
    held: HashMap<String, u32>,
    /// Keys whose count fell to zero since the last renewal: their fields are deleted.
    emptied: HashSet<String>,
}

impl std::fmt::Debug for ClusterCaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCaps")
            .field("instance", &self.inner.instance)
            .finish()
    }
}

/// A place held in the cluster-wide count.
#[derive(Debug)]
pub struct Place {
    caps: ClusterCaps,
    keys: [String; 2],
    /// Whether Redis counted it when it was taken (else only a renewal wrote it there).
    counted: bool,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.caps
            .give_back(std::mem::take(&mut self.keys), self.counted);
    }
}

fn user_key(user: i64) -> String {
    format!("hearth:cc:u:{user}")
}

fn address_key(addr: &str) -> String {
    format!("hearth:cc:a:{addr}")
}

impl ClusterCaps {
    /// Caps counted in the Redis at `url` by a new instance of node `node`, whose counts stop
    /// counting `lease` after its last renewal ([`LEASE`] normally). Connects lazily: a Redis
    /// that is down now only makes admissions [`Admission::Unknown`] until it is up.
    pub fn new(
        url: &str,
        node: &str,
        limits: CapLimits,
        lease: Duration,
    ) -> redis::RedisResult<ClusterCaps> {
        let redis = connect_lazily(url, TIMEOUT)?;
        Ok(ClusterCaps {
            inner: Arc::new(Inner {
                redis,
                instance: super::instance_id(node)?,
                limits,
                lease_ms: lease.as_millis().max(3) as u64,
                admit: Script::new(&format!("{LUA_NOW_MS}{ADMIT}")),
                release: Script::new(RELEASE),
                renew: Script::new(&format!("{LUA_NOW_MS}{RENEW}")),
                breaker: Breaker::default(),
                local: Mutex::new(Local::default()),
            }),
        })
    }

    /// This instance's id in Redis.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Whether Redis answers a `PING` within [`TIMEOUT`].
    pub async fn ping(&self) -> bool {
        let mut redis = self.inner.redis.clone();
        let ping = redis::cmd("PING");
        let answer = ping.query_async::<String>(&mut redis);
        matches!(tokio::time::timeout(TIMEOUT, answer).await, Ok(Ok(_)))
    }

    /// Take a place for a connection of `user` from `addr` (the per-address key), if the
    /// totals over every live node allow it.
    ///
    /// The place is counted here before Redis is asked, and a refusal takes it back after:
    /// a renewal that overtakes the admission then writes one place too many for a moment,
    /// never one too few (which would let another node admit one over the cap). Held as a
    /// [`Place`] from the start, so an admission abandoned while Redis answers (the client
    /// went away) gives it back too.
    pub async fn admit(&self, user: i64, addr: &str) -> Admission {
        let keys = [user_key(user), address_key(addr)];
        self.count(&keys, 1);
        let mut place = Place {
            caps: self.clone(),
            keys,
            counted: false,
        };
        if !self.inner.breaker.closed() {
            return Admission::Unknown(place);
        }
        let mut redis = self.inner.redis.clone();
        let mut call = self.inner.admit.prepare_invoke();
        call.key(NODES)
            .key(&place.keys[0])
            .key(&place.keys[1])
            .arg(&self.inner.instance)
            .arg(self.inner.limits.per_user)
            .arg(self.inner.limits.per_address)
            .arg(self.inner.lease_ms);
        let answer = tokio::time::timeout(TIMEOUT, call.invoke_async::<(u8, u8)>(&mut redis)).await;
        let (outcome, lease_missing) = match answer {
            Ok(Ok(a)) => {
                self.inner.breaker.reset();
                a
            }
            Ok(Err(e)) => {
                tracing::debug!("cluster connection caps: Redis failed: {e}");
                self.inner.breaker.trip();
                return Admission::Unknown(place);
            }
            Err(_) => {
                self.inner.breaker.trip();
                return Admission::Unknown(place);
            }
        };
        if lease_missing == 1 {
            // The lease was gone (Redis restarted, or this node was paused past it): write
            // every count now rather than at the next renewal.
            let caps = self.clone();
            tokio::spawn(async move { caps.renew().await });
        }
        match outcome {
            0 => {
                place.counted = true;
                Admission::Admitted(place)
            }
            // Redis took nothing: dropped, the place is only taken back here.
            1 => Admission::UserFull,
            _ => Admission::AddressFull,
        }
    }

    /// Adjust this instance's own counts of `keys` by `delta`.
    fn count(&self, keys: &[String], delta: i32) {
        let Ok(mut local) = self.inner.local.lock() else {
            return;
        };
        for key in keys {
            let n = local.held.entry(key.clone()).or_insert(0);
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                local.held.remove(key);
                local.emptied.insert(key.clone());
            } else {
                local.emptied.remove(key);
            }
        }
    }

    /// A place is given back. One Redis counted is released there first and only then here,
    /// so that a renewal meanwhile writes one place too many, never one too few. One Redis
    /// did not count (admitted while it did not answer) is only taken out here: Redis has
    /// it only if a renewal wrote it, and the next renewal writes the count again.
    fn give_back(&self, keys: [String; 2], counted: bool) {
        let rt = tokio::runtime::Handle::try_current();
        let (true, Ok(rt)) = (counted, rt) else {
            self.count(&keys, -1);
            return;
        };
        let caps = self.clone();
        rt.spawn(async move {
            let mut redis = caps.inner.redis.clone();
            let mut call = caps.inner.release.prepare_invoke();
            call.key(&keys[0]).key(&keys[1]).arg(&caps.inner.instance);
            // A release lost here is repaired by the next renewal, which writes the counts.
            let _ = tokio::time::timeout(TIMEOUT, call.invoke_async::<i64>(&mut redis)).await;
            caps.count(&keys, -1);
        });
    }

    /// Renew the lease and write every count this instance holds (and delete the fields that
    /// fell to zero). Whether Redis took it. (Renewals ask Redis even while admissions skip
    /// it after a failure: they are what notices that it is back.)
    pub async fn renew(&self) -> bool {
        let (keys, counts): (Vec<String>, Vec<u32>) = {
            let Ok(local) = self.inner.local.lock() else {
                return false;
            };
            local
                .held
                .iter()
                .map(|(k, n)| (k.clone(), *n))
                .chain(local.emptied.iter().map(|k| (k.clone(), 0)))
                .unzip()
        };
        let mut call = self.inner.renew.prepare_invoke();
        call.key(NODES)
            .arg(&self.inner.instance)
            .arg(self.inner.lease_ms);
        for (key, n) in keys.iter().zip(&counts) {
            call.key(key).arg(*n);
        }
        let mut redis = self.inner.redis.clone();
        match tokio::time::timeout(TIMEOUT, call.invoke_async::<i64>(&mut redis)).await {
            Ok(Ok(_)) => {
                self.inner.breaker.reset();
                if let Ok(mut local) = self.inner.local.lock() {
                    // Only what was written: a key emptied meanwhile is deleted next time.
                    for (key, n) in keys.iter().zip(&counts) {
                        if *n == 0 && !local.held.contains_key(key) {
                            local.emptied.remove(key);
                        }
                    }
                }
                true
            }
            Ok(Err(e)) => {
                tracing::debug!("cluster connection caps: renewal failed: {e}");
                false
            }
            Err(_) => false,
        }
    }

    /// Renew every third of the lease until `stop` flips; then take this instance's lease and counts
    /// out of Redis, so its places are free at once after a clean stop.
    pub async fn keep_alive(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.inner.lease_ms / 3));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => { self.renew().await; }
                _ = stop.changed() => break,
            }
        }
        self.leave().await;
    }

    /// Take this instance's lease and every field it wrote out of Redis.
    pub async fn leave(&self) {
        let keys: Vec<String> = match self.inner.local.lock() {
            Ok(mut local) => {
                let keys = local.held.keys().chain(&local.emptied).cloned().collect();
                local.held.clear();
                local.emptied.clear();
                keys
            }
            Err(_) => return,
        };
        let mut pipe = redis::pipe();
        pipe.zrem(NODES, &self.inner.instance).ignore();
        for key in &keys {
            pipe.hdel(key, &self.inner.instance).ignore();
        }
        let mut redis = self.inner.redis.clone();
        let _ = tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut redis)).await;
    }
}
