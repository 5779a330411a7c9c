//! Who is online over every node, and who is typing. Each node tells Redis when a user's
//! first connection to it opens and their last one closes; a user is online while any live
//! node holds them, and the moments that changes are published on `hearth:eph` for every node
//! to hand to its hub. Typing notices go over the same channel, fire and forget, as they do
//! inside one node.
//!
//! - `hearth:pr:{user}`: a hash with one field per node instance holding the user.
//! - `hearth:online`: user id → name, for everyone online somewhere (what a new connection's
//!   `ready` lists, and what a node reloads after missing messages).
//! - `hearth:pr:nodes`: the instances' leases, on Redis' clock; `hearth:pr:of:{instance}`:
//!   the users an instance holds. A renewal also reaps the instances whose lease ran out:
//!   their users go offline (and it is published) unless another node holds them, so a
//!   killed node's users are offline within a lease and a renewal.
//! - Redis restarted empty: the next renewal finds its lease gone and announces every user
//!   the node holds again. Redis brought back from an old snapshot (Debian's Redis saves one
//!   now and then): each change of an instance counts in `hearth:pr:ver:{instance}`, so a
//!   renewal finds Redis counting other changes than the node made, takes out the users
//!   Redis says it holds and it no longer does (who left since), and announces the others
//!   again. Pub/sub loses what is published while a node is not subscribed, so after every
//!   (re)subscription the node reloads the whole list ([`PresenceEvent::Everyone`]): at once
//!   the first time; a lease later when subscribed again, adding who is online meanwhile.
//! - Redis away: the node goes on with the last list it heard, and once the subscription
//!   has been lost for as long as the other nodes keep showing its users (a lease and a
//!   renewal), it shows its own users only ([`PresenceEvent::Local`]) until subscribed
//!   again: both sides of the cut then agree, rather than each showing whoever was online
//!   when it began for as long as it lasts.
//!
//! The scripts touch keys they compute (`hearth:pr:{user}` of each reaped user), which a
//! single Redis allows and Redis Cluster would not; cluster mode uses one Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::Script;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::{connect_lazily, Breaker, LUA_NOW_MS};
use crate::hub::SharedPresence as PresenceEvent;

/// Longest a presence change waits for Redis.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// Users a repair (or a node's leave) tells Redis about in one round trip.
const REPAIR_CHUNK: usize = 128;
/// The channel presence changes are published on.
const CHANNEL: &str = "hearth:eph";
const NODES: &str = "hearth:pr:nodes";
const ONLINE: &str = "hearth:online";

/// Whether instance `inst`'s lease is live: there, and not run out (a lease that ran out
/// counts as gone before a renewal reaps it).
const LIVE_FN: &str = r"
local function live(inst)
  local lease = redis.call('ZSCORE', 'hearth:pr:nodes', inst)
  return lease and tonumber(lease) > now
end
";

/// ARGV: instance, user id, name, lease ms. Returns 1 when the lease had to be created (it
/// was gone, or had run out: another node's leave may then have taken this one's users out),
/// and the instance's count of changes (`hearth:pr:ver:{instance}`) after this one.
const CONNECT: &str = r"
local missing = 0
if not live(ARGV[1]) then missing = 1 end
redis.call('ZADD', 'hearth:pr:nodes', now + tonumber(ARGV[4]), ARGV[1])
redis.call('HSET', 'hearth:pr:' .. ARGV[2], ARGV[1], 1)
redis.call('SADD', 'hearth:pr:of:' .. ARGV[1], ARGV[2])
if redis.call('HSETNX', 'hearth:online', ARGV[2], ARGV[3]) == 1 then
  redis.call('PUBLISH', 'hearth:eph', cjson.encode({online = true, user = ARGV[3]}))
end
return {missing, redis.call('INCR', 'hearth:pr:ver:' .. ARGV[1])}
";

/// The user `uid` (a string) lost instance `inst`: offline (published) unless a live
/// instance still holds them.
const LEAVE_FN: &str = r"
local function leave(inst, uid)
  local key = 'hearth:pr:' .. uid
  redis.call('HDEL', key, inst)
  redis.call('SREM', 'hearth:pr:of:' .. inst, uid)
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if live(f) then return end
    redis.call('HDEL', key, f)
  end
  local name = redis.call('HGET', 'hearth:online', uid)
  if name then
    redis.call('HDEL', 'hearth:online', uid)
    redis.call('PUBLISH', 'hearth:eph', cjson.encode({online = false, user = name}))
  end
end
";

/// ARGV: instance, user id. Returns the instance's count of changes after this one.
const DISCONNECT: &str = r"
leave(ARGV[1], ARGV[2])
return redis.call('INCR', 'hearth:pr:ver:' .. ARGV[1])
";

/// ARGV: instance, lease ms. Renews the lease, reaps the instances whose lease ran out.
/// Returns 1 when this instance's lease was gone or had run out (as in `CONNECT`), and the
/// instance's count of changes (0 when Redis has none).
const RENEW: &str = r"
local missing = 0
if not live(ARGV[1]) then missing = 1 end
redis.call('ZADD', 'hearth:pr:nodes', now + tonumber(ARGV[2]), ARGV[1])
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', 'hearth:pr:nodes', '-inf', now)) do
  redis.call('ZREM', 'hearth:pr:nodes', dead)
  for _, uid in ipairs(redis.call('SMEMBERS', 'hearth:pr:of:' .. dead)) do
    leave(dead, uid)
  end
  redis.call('DEL', 'hearth:pr:of:' .. dead, 'hearth:pr:ver:' .. dead)
end
return {missing, tonumber(redis.call('GET', 'hearth:pr:ver:' .. ARGV[1]) or '0')}
";

/// When a subscription sends the whole list of who is online.
enum Reload {
    /// At once: it is the first.
    First,
    /// Sent; due again a lease after a subscription made again.
    Sent,
    /// Due at this moment (kept over the subscriptions made again until it is sent).
    Due(tokio::time::Instant),
}

/// Where [`ClusterPresence::run`] stands in following what every node says.
struct Following {
    /// When the whole list is sent.
    reload: Reload,
    /// Since when the subscription is lost (`None` while subscribed, and before the first).
    lost: Option<tokio::time::Instant>,
    /// Whether [`PresenceEvent::Local`] was sent since it was lost.
    local: bool,
}

/// What goes over `hearth:eph`: a presence change (`online`), or a typing notice (with its
/// room, the typer's id and the instance it came from, which ignores its own).
#[derive(serde::Serialize, Deserialize)]
struct Published {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    online: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    user: String,
}

/// Presence over every node. Cheap to clone.
#[derive(Clone)]
pub struct ClusterPresence {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    redis: ConnectionManager,
    instance: String,
    lease_ms: u64,
    connect: Script,
    disconnect: Script,
    renew: Script,
    /// The users this instance holds: id → name.
    here: Mutex<Held>,
    /// Skips Redis for a moment after it failed, so changes do not queue up behind it.
    breaker: Breaker,
    /// Taken around each presence write to Redis (a connect, a leave, a chunk of a renewal's
    /// repair), with what is held here checked under it: a repair never lands after a newer
    /// change of the same user and undoes it.
    writes: tokio::sync::Mutex<()>,
    /// The instance left Redis (shutdown): later changes are not told, since one would
    /// bring back a lease nothing renews or reaps any more.
    left: std::sync::atomic::AtomicBool,
    /// Whether this node follows what every node says (subscribed); false before the first
    /// subscription and while it is lost.
    following: std::sync::atomic::AtomicBool,
}

/// What this instance holds, and what Redis may not know yet.
#[derive(Default)]
struct Held {
    users: HashMap<i64, String>,
    /// A change Redis did not take: the next renewal announces every user held here again.
    resync: bool,
    /// Users whose last connection here closed while Redis did not answer: the next
    /// renewal takes them out.
    unleft: std::collections::HashSet<i64>,
    /// The count of this instance's changes Redis gave with the last one it took. A renewal
    /// that reads another count finds Redis did not keep them all (it restarted, perhaps
    /// from an old snapshot) and repairs.
    changes: u64,
}

impl ClusterPresence {
    /// Presence in the Redis at `url` for a new instance of node `node`, whose users count as
    /// online until `lease` after its last renewal.
    pub fn new(url: &str, node: &str, lease: Duration) -> redis::RedisResult<ClusterPresence> {
        let redis = connect_lazily(url, TIMEOUT)?;
        Ok(ClusterPresence {
            inner: Arc::new(Inner {
                url: url.to_string(),
                redis,
                instance: super::instance_id(node)?,
                lease_ms: lease.as_millis().max(3) as u64,
                connect: Script::new(&format!("{LUA_NOW_MS}{LIVE_FN}{CONNECT}")),
                disconnect: Script::new(&format!("{LUA_NOW_MS}{LIVE_FN}{LEAVE_FN}{DISCONNECT}")),
                renew: Script::new(&format!("{LUA_NOW_MS}{LIVE_FN}{LEAVE_FN}{RENEW}")),
                here: Mutex::new(Held::default()),
                breaker: Breaker::default(),
                writes: tokio::sync::Mutex::new(()),
                left: std::sync::atomic::AtomicBool::new(false),
                following: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// `user`'s first connection to this node opened. Whether Redis took it (if not, the
    /// next renewal that reaches Redis announces them).
    pub async fn connected(&self, user: i64, name: &str) -> bool {
        let _turn = self.inner.writes.lock().await;
        if self.has_left() {
            return false;
        }
        if let Ok(mut here) = self.inner.here.lock() {
            here.users.insert(user, name.to_string());
            here.unleft.remove(&user);
        }
        let answer = if self.inner.breaker.closed() {
            self.announce(user, name).await
        } else {
            None
        };
        match answer {
            Some(missing) => {
                if missing {
                    // Redis lost this node's lease (it restarted empty, or the node was
                    // paused past it): the users held here before may be gone from it too.
                    self.mark(|h| h.resync = true);
                }
                true
            }
            None => {
                self.inner.breaker.trip();
                self.mark(|h| h.resync = true);
                false
            }
        }
    }

    /// Whether changes skip Redis for a moment (it failed just now).
    #[cfg(test)]
    pub(super) fn skipping_redis(&self) -> bool {
        !self.inner.breaker.closed()
    }

    /// Whether this node hears what every node says (for the status panels): false while
    /// it cannot follow Redis, when its view is first the last one it knew and, after
    /// [`ClusterPresence::local_after`], its own users alone.
    pub fn following(&self) -> bool {
        self.inner
            .following
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long after losing the subscription this node shows only its own users: the
    /// longest the other nodes go on showing its users (a lease after its last renewal, and
    /// a renewal of theirs to reap it), so that the two sides of a cut agree that long after.
    fn local_after(&self) -> Duration {
        Duration::from_millis(self.inner.lease_ms + self.inner.lease_ms / 3)
    }

    /// Whether this instance left Redis.
    fn has_left(&self) -> bool {
        self.inner.left.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether `user` has a connection to this node.
    fn holds(&self, user: i64) -> bool {
        self.inner
            .here
            .lock()
            .map(|h| h.users.contains_key(&user))
            .unwrap_or(false)
    }

    /// Note something for the next renewal to repair.
    fn mark(&self, f: impl FnOnce(&mut Held)) {
        if let Ok(mut here) = self.inner.here.lock() {
            f(&mut here);
        }
    }

    /// Run the connect script; whether the lease was missing, or `None` without an answer.
    /// Called under the writes' turn.
    async fn announce(&self, user: i64, name: &str) -> Option<bool> {
        let mut call = self.inner.connect.prepare_invoke();
        call.arg(&self.inner.instance)
            .arg(user)
            .arg(name)
            .arg(self.inner.lease_ms);
        let mut redis = self.inner.redis.clone();
        match tokio::time::timeout(TIMEOUT, call.invoke_async::<(u8, u64)>(&mut redis)).await {
            Ok(Ok((missing, changes))) => {
                self.mark(|h| h.changes = changes);
                Some(missing == 1)
            }
            Ok(Err(e)) => {
                tracing::debug!("cluster presence: Redis failed: {e}");
                None
            }
            Err(_) => None,
        }
    }

    /// `user`'s last connection to this node closed. Whether Redis took it (if not, the next
    /// renewal that reaches Redis takes them out).
    pub async fn disconnected(&self, user: i64) -> bool {
        let _turn = self.inner.writes.lock().await;
        if self.has_left() {
            return false;
        }
        if let Ok(mut here) = self.inner.here.lock() {
            here.users.remove(&user);
        }
        let took = self.inner.breaker.closed() && self.leave_one(user).await;
        if !took {
            self.inner.breaker.trip();
            self.mark(|h| {
                h.unleft.insert(user);
            });
        }
        took
    }

    /// Run the disconnect script for `user`; whether Redis answered. Called under the
    /// writes' turn.
    async fn leave_one(&self, user: i64) -> bool {
        let mut call = self.inner.disconnect.prepare_invoke();
        call.arg(&self.inner.instance).arg(user);
        let mut redis = self.inner.redis.clone();
        match tokio::time::timeout(TIMEOUT, call.invoke_async::<u64>(&mut redis)).await {
            Ok(Ok(changes)) => {
                self.mark(|h| h.changes = changes);
                true
            }
            _ => false,
        }
    }

    /// Tell the other nodes that `user` is typing in `room` (at most once per notice the
    /// node's own hub sends). Lost when Redis is away, like any typing notice can be.
    pub async fn typing(&self, (room, room_name): (i64, &str), (uid, user): (i64, &str)) {
        if !self.inner.breaker.closed() {
            return;
        }
        let Ok(payload) = serde_json::to_string(&Published {
            online: None,
            room: Some(room),
            room_name: Some(room_name.to_string()),
            uid: Some(uid),
            from: Some(self.inner.instance.clone()),
            user: user.to_string(),
        }) else {
            return;
        };
        let mut redis = self.inner.redis.clone();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(CHANNEL).arg(payload);
        let published = tokio::time::timeout(TIMEOUT, cmd.query_async::<i64>(&mut redis)).await;
        if !matches!(published, Ok(Ok(_))) {
            // Skip Redis for a moment, so that the next notices (and the connects queued
            // behind them) do not each wait for it.
            self.inner.breaker.trip();
        }
    }

    /// Of `users`, those online on any node, or `None` when Redis does not answer (or
    /// failed a moment ago: Web Push does not wait for it each time).
    pub async fn online_among(&self, users: &[i64]) -> Option<Vec<i64>> {
        if users.is_empty() {
            return Some(Vec::new());
        }
        if !self.inner.breaker.closed() {
            return None;
        }
        let mut redis = self.inner.redis.clone();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(ONLINE).arg(users);
        match tokio::time::timeout(TIMEOUT, cmd.query_async::<Vec<Option<String>>>(&mut redis))
            .await
        {
            Ok(Ok(names)) => Some(
                users
                    .iter()
                    .zip(names)
                    .filter(|(_, n)| n.is_some())
                    .map(|(u, _)| *u)
                    .collect(),
            ),
            _ => {
                self.inner.breaker.trip();
                None
            }
        }
    }

    /// Everyone online on any node, or `None` when Redis does not answer.
    pub async fn online(&self) -> Option<Vec<String>> {
        let mut redis = self.inner.redis.clone();
        let mut cmd = redis::cmd("HVALS");
        cmd.arg(ONLINE);
        match tokio::time::timeout(TIMEOUT, cmd.query_async::<Vec<String>>(&mut redis)).await {
            Ok(Ok(mut names)) => {
                names.sort_unstable_by(|a, b| crate::domain::cmp_folded(a, b));
                Some(names)
            }
            _ => None,
        }
    }

    /// Renew the lease and reap dead instances; when the lease was gone (Redis restarted, or
    /// this node was paused past it), a change did not reach Redis, or Redis counts other
    /// changes of this node than it made (Redis brought back from an old snapshot: users who
    /// left since are in it again), announce every user held here again and take out those
    /// Redis has and this node does not hold. Whether Redis answered.
    pub async fn renew(&self) -> bool {
        let mut call = self.inner.renew.prepare_invoke();
        call.arg(&self.inner.instance).arg(self.inner.lease_ms);
        let mut redis = self.inner.redis.clone();
        // Under the writes' turn, so that no change of this node is halfway (counted in
        // Redis, not yet here) when the counts are compared.
        let turn = self.inner.writes.lock().await;
        let renewed = call.invoke_async::<(u8, u64)>(&mut redis);
        let (missing, changes) = match tokio::time::timeout(TIMEOUT, renewed).await {
            Ok(Ok((m, changes))) => (m == 1, changes),
            _ => return false,
        };
        self.inner.breaker.reset();
        let (users, mut unleft) = match self.inner.here.lock() {
            Ok(mut h) if missing || h.resync || !h.unleft.is_empty() || changes != h.changes => {
                // Level from here (still under the turn): the repair's own scripts count on
                // from it, and a node with nobody to repair does not repair again at every
                // renewal.
                h.changes = changes;
                h.resync = false;
                let users: Vec<(i64, String)> =
                    h.users.iter().map(|(u, n)| (*u, n.clone())).collect();
                (users, std::mem::take(&mut h.unleft))
            }
            Ok(_) => return true,
            Err(_) => return false,
        };
        drop(turn);
        let Some(recorded) = self.recorded().await else {
            self.retry_later(unleft);
            return false;
        };
        unleft.extend(recorded.into_iter().filter(|u| !self.holds(*u)));
        let unleft: Vec<i64> = unleft.into_iter().collect();
        // In chunks, each under the writes' turn with who is held checked again under it:
        // one who came back or left meanwhile was told by their own connect or leave, which a
        // repair must not undo. The first chunk Redis does not take ends the repair until the
        // next renewal; a long one (many users, a slow Redis) renews the lease on the way, as
        // the renewals it holds up would.
        let period = Duration::from_millis(self.inner.lease_ms / 3);
        let mut renew_at = std::time::Instant::now() + period;
        for (i, chunk) in unleft.chunks(REPAIR_CHUNK).enumerate() {
            let turn = self.inner.writes.lock().await;
            let gone: Vec<i64> = chunk.iter().copied().filter(|u| !self.holds(*u)).collect();
            if !self.leave_many(&gone).await || !self.keep_lease(&mut renew_at, period).await {
                drop(turn);
                self.retry_later(unleft[i * REPAIR_CHUNK..].iter().copied());
                return false;
            }
        }
        for chunk in users.chunks(REPAIR_CHUNK) {
            let turn = self.inner.writes.lock().await;
            let held: Vec<&(i64, String)> = chunk.iter().filter(|(u, _)| self.holds(*u)).collect();
            if !self.announce_many(&held).await || !self.keep_lease(&mut renew_at, period).await {
                drop(turn);
                self.retry_later([]);
                return false;
            }
        }
        true
    }

    /// During a repair: renew the lease when `at` has come (then due again a `period`
    /// later). Whether Redis answered (or nothing was due). Called under the writes' turn.
    async fn keep_lease(&self, at: &mut std::time::Instant, period: Duration) -> bool {
        if std::time::Instant::now() < *at {
            return true;
        }
        *at = std::time::Instant::now() + period;
        let mut call = self.inner.renew.prepare_invoke();
        call.arg(&self.inner.instance).arg(self.inner.lease_ms);
        let mut redis = self.inner.redis.clone();
        let renewed = call.invoke_async::<(u8, u64)>(&mut redis);
        match tokio::time::timeout(TIMEOUT, renewed).await {
            Ok(Ok((missing, changes))) => {
                // The lease ran out (or Redis restarted) during the repair: the users
                // announced before may have been reaped, so the next renewal repairs again.
                // (Every script of this instance runs under the turn held here, so the
                // counts compare.)
                self.mark(|h| h.resync |= missing == 1 || changes != h.changes);
                true
            }
            _ => false,
        }
    }

    /// A repair Redis did not take: the next renewal announces everyone again and takes out
    /// `unleft` (those of them not held here meanwhile); connects and leaves skip Redis for
    /// a moment.
    fn retry_later(&self, unleft: impl IntoIterator<Item = i64>) {
        self.inner.breaker.trip();
        self.mark(|h| {
            h.resync = true;
            let gone: Vec<i64> = unleft
                .into_iter()
                .filter(|u| !h.users.contains_key(u))
                .collect();
            h.unleft.extend(gone);
        });
    }

    /// The users Redis says this instance holds, or `None` without an answer.
    async fn recorded(&self) -> Option<Vec<i64>> {
        let mut redis = self.inner.redis.clone();
        let mut smembers = redis::cmd("SMEMBERS");
        smembers.arg(format!("hearth:pr:of:{}", self.inner.instance));
        match tokio::time::timeout(TIMEOUT, smembers.query_async::<Vec<i64>>(&mut redis)).await {
            Ok(Ok(recorded)) => Some(recorded),
            _ => None,
        }
    }

    /// Run the disconnect script for each of `users` in one round trip; whether Redis took
    /// them all. Called under the writes' turn.
    async fn leave_many(&self, users: &[i64]) -> bool {
        if users.is_empty() {
            return true;
        }
        let script = &self.inner.disconnect;
        let mut pipe = redis::pipe();
        pipe.load_script(script).ignore();
        for user in users {
            pipe.invoke_script(script.arg(&self.inner.instance).arg(*user));
        }
        let mut redis = self.inner.redis.clone();
        match tokio::time::timeout(TIMEOUT, pipe.query_async::<Vec<u64>>(&mut redis)).await {
            Ok(Ok(counts)) => {
                if let Some(&changes) = counts.last() {
                    self.mark(|h| h.changes = changes);
                }
                true
            }
            _ => false,
        }
    }

    /// Run the connect script for each of `users` in one round trip; whether Redis took them
    /// all. One that had to make the lease again (Redis restarted, or the lease ran out and
    /// the users before it were reaped) makes the next renewal announce everyone again, as
    /// after a connect. Called under the writes' turn.
    async fn announce_many(&self, users: &[&(i64, String)]) -> bool {
        if users.is_empty() {
            return true;
        }
        let script = &self.inner.connect;
        let lease = self.inner.lease_ms;
        let mut pipe = redis::pipe();
        pipe.load_script(script).ignore();
        for (user, name) in users.iter().copied() {
            pipe.invoke_script(
                script
                    .arg(&self.inner.instance)
                    .arg(*user)
                    .arg(name)
                    .arg(lease),
            );
        }
        let mut redis = self.inner.redis.clone();
        let asked = pipe.query_async::<Vec<(u8, u64)>>(&mut redis);
        match tokio::time::timeout(TIMEOUT, asked).await {
            Ok(Ok(answers)) => {
                let missing = answers.iter().any(|(m, _)| *m == 1);
                if let Some(&(_, changes)) = answers.last() {
                    self.mark(|h| {
                        h.changes = changes;
                        h.resync |= missing;
                    });
                }
                true
            }
            _ => false,
        }
    }

    /// Until `stop` flips: renew every third of the lease, and hand every presence change
    /// published by any node to `events` (with the whole list after each subscription).
    /// Then take this instance out: its users go offline unless held elsewhere.
    pub async fn run(self, events: mpsc::Sender<PresenceEvent>, mut stop: watch::Receiver<bool>) {
        let renewals = {
            let me = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let period = Duration::from_millis(me.inner.lease_ms / 3);
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => { me.renew().await; }
                        _ = stop.changed() => break,
                    }
                }
            })
        };
        let mut follow = Following {
            reload: Reload::First,
            lost: None,
            local: false,
        };
        loop {
            tokio::select! {
                _ = self.follow(&events, &mut follow) => {}
                _ = stop.changed() => break,
            }
            self.inner
                .following
                .store(false, std::sync::atomic::Ordering::Relaxed);
            // Lost the subscription (Redis down or restarted): try again shortly. Lost for
            // as long as the other nodes take to drop this node's users, drop theirs: show
            // this node's own users only, rather than the last ones known for ever.
            let lost = *follow.lost.get_or_insert_with(tokio::time::Instant::now);
            if !follow.local && lost.elapsed() >= self.local_after() {
                tracing::warn!(
                    "cluster presence: Redis away for {} s, showing this node's users only",
                    lost.elapsed().as_secs()
                );
                if events.send(PresenceEvent::Local).await.is_err() {
                    break;
                }
                follow.local = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => break,
            }
        }
        let _ = renewals.await;
        self.leave().await;
    }

    /// Subscribe, send the whole list, then forward published changes until the
    /// subscription ends. Subscribed again (Redis restarted, perhaps empty, or the
    /// subscription was lost), only those on the list are sent at once, as online
    /// ([`PresenceEvent::Back`]): the whole list, which takes out who is not on it, follows
    /// a lease later (the deadline in `due` outlives this subscription), once every node has
    /// written again what it holds (else every user of the other nodes would be shown
    /// offline, then online again).
    async fn follow(&self, events: &mpsc::Sender<PresenceEvent>, follow: &mut Following) {
        let Ok(client) = redis::Client::open(self.inner.url.as_str()) else {
            return;
        };
        let Ok(Ok(mut pubsub)) = tokio::time::timeout(TIMEOUT, client.get_async_pubsub()).await
        else {
            return;
        };
        let subscribed = tokio::time::timeout(TIMEOUT, pubsub.subscribe(CHANNEL)).await;
        if !matches!(subscribed, Ok(Ok(()))) {
            return;
        }
        // Subscribed first, then read: nothing published in between is missed.
        let Some(everyone) = self.online().await else {
            return;
        };
        follow.lost = None;
        follow.local = false;
        self.inner
            .following
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let due = &mut follow.reload;
        let period = Duration::from_millis(self.inner.lease_ms / 3);
        if let Reload::First = due {
            if events
                .send(PresenceEvent::Everyone(everyone))
                .await
                .is_err()
            {
                return;
            }
            *due = Reload::Sent;
        } else {
            if events.send(PresenceEvent::Back(everyone)).await.is_err() {
                return;
            }
            if let Reload::Sent = due {
                *due = Reload::Due(tokio::time::Instant::now() + period * 3 + TIMEOUT);
            }
        }
        let due = &mut follow.reload;
        let (mut sink, mut messages) = pubsub.split();
        // A subscription only listens, so a connection that went silent (a Redis host gone
        // without a reset, a frozen server) would never end it: ask Redis every third of a
        // lease, and subscribe again when it does not answer.
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            let reload = match *due {
                Reload::Due(at) => Some(at),
                _ => None,
            };
            let msg = tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => msg,
                    None => return,
                },
                _ = tokio::time::sleep_until(reload.unwrap_or_else(tokio::time::Instant::now)),
                    if reload.is_some() =>
                {
                    let Some(everyone) = self.online().await else {
                        return;
                    };
                    if events.send(PresenceEvent::Everyone(everyone)).await.is_err() {
                        return;
                    }
                    *due = Reload::Sent;
                    continue;
                }
                _ = check.tick() => {
                    let pong = tokio::time::timeout(TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        tracing::debug!("cluster presence: the subscription went silent");
                        return;
                    }
                    continue;
                }
            };
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            let Ok(p) = serde_json::from_str::<Published>(&payload) else {
                continue;
            };
            let event = match (p.online, p.room) {
                (Some(true), _) => PresenceEvent::Online(p.user),
                (Some(false), _) => PresenceEvent::Offline(p.user),
                (None, Some(room)) if p.from.as_deref() != Some(&self.inner.instance) => {
                    PresenceEvent::Typing {
                        room,
                        room_name: p.room_name.unwrap_or_default(),
                        user: p.uid.unwrap_or(0),
                        name: p.user,
                    }
                }
                _ => continue,
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    }

    /// Take this instance out of Redis: each of its users goes offline unless held elsewhere.
    pub async fn leave(&self) {
        // After any change in flight, and before any later one (which then is not told).
        let _turn = self.inner.writes.lock().await;
        self.inner
            .left
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut users: std::collections::HashSet<i64> = match self.inner.here.lock() {
            Ok(mut h) => {
                let unleft = std::mem::take(&mut h.unleft);
                h.users.drain().map(|(u, _)| u).chain(unleft).collect()
            }
            Err(_) => return,
        };
        // And whoever Redis says this instance holds (after a Redis brought back from an old
        // snapshot, not yet repaired): no renewal or reaping takes them out later.
        users.extend(self.recorded().await.unwrap_or_default());
        let users: Vec<i64> = users.into_iter().collect();
        for chunk in users.chunks(REPAIR_CHUNK) {
            // Without Redis, the lease running out takes them offline instead.
            if !self.leave_many(chunk).await {
                return;
            }
        }
        let mut redis = self.inner.redis.clone();
        let mut pipe = redis::pipe();
        pipe.zrem(NODES, &self.inner.instance)
            .ignore()
            .del(format!("hearth:pr:of:{}", self.inner.instance))
            .ignore()
            .del(format!("hearth:pr:ver:{}", self.inner.instance))
            .ignore();
        let _ = tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut redis)).await;
    }
}
