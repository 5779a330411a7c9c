//! Cluster mode's ephemeral plane against a real Redis (a private `redis-server` started by
//! each test): three node instances share one connection count, one message rate and one
//! count per windowed limit, a dead node's places return after its lease, and Redis going
//! away (and coming back empty) is survived without waiting for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hearth::cluster::caps::{Admission, CapLimits, ClusterCaps, Place};
use hearth::cluster::presence::ClusterPresence;
use hearth::cluster::rate::ClusterRate;
use hearth::cluster::windows::ClusterWindows;
use hearth::hub::SharedPresence as PresenceEvent;
use hearth::limits::{Limit, Limiter, Reservation};
use hearth::metrics::Metrics;

use crate::engines::Redis;

const LEASE: Duration = Duration::from_millis(1500);

fn nodes(redis: &Redis, per_user: u32, per_address: u32) -> Vec<ClusterCaps> {
    nodes_named(redis, &["a", "b", "c"], per_user, per_address)
}

fn nodes_named(redis: &Redis, names: &[&str], per_user: u32, per_address: u32) -> Vec<ClusterCaps> {
    names
        .iter()
        .map(|n| {
            ClusterCaps::new(
                &redis.url(),
                n,
                CapLimits {
                    per_user,
                    per_address,
                },
                LEASE,
            )
            .expect("a Redis URL")
        })
        .collect()
}

/// `n` admissions of `user` from `addr` at once, spread over the nodes in turn.
async fn storm(nodes: &[ClusterCaps], n: usize, user: i64, addr: &str) -> Vec<Admission> {
    join_all((0..n).map(|i| nodes[i % nodes.len()].admit(user, addr))).await
}

/// The places taken, and how many admissions found the user or the address full.
fn places(answers: Vec<Admission>) -> (Vec<Place>, usize, usize) {
    let (mut held, mut user_full, mut addr_full, mut unknown) = (Vec::new(), 0, 0, 0);
    for a in answers {
        match a {
            Admission::Admitted(p) => held.push(p),
            Admission::UserFull => user_full += 1,
            Admission::AddressFull => addr_full += 1,
            Admission::Unknown(_) => unknown += 1,
        }
    }
    assert_eq!(unknown, 0, "Redis answered every admission");
    (held, user_full, addr_full)
}

/// Wait until `f` holds (the releases are sent off the dropping thread), at most 5 s.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_users_connections_over_three_nodes_admit_exactly_the_cap() {
    let Some(redis) = Redis::start() else { return };
    let nodes = nodes(&redis, 10, 0);
    let instances: std::collections::HashSet<&str> = nodes.iter().map(|n| n.instance()).collect();
    assert_eq!(instances.len(), 3, "every instance has its own id");

    // 25 connections of one user, from 25 addresses, all at once over three nodes.
    let addrs: Vec<String> = (0..25).map(|i| format!("10.0.0.{i}")).collect();
    let answers = join_all((0..25).map(|i| nodes[i % 3].admit(7, &addrs[i]))).await;
    let (mut held, user_full, addr_full) = places(answers);
    assert_eq!(held.len(), 10, "exactly connections_per_user admitted");
    assert_eq!((user_full, addr_full), (15, 0));
    // Another user is not affected.
    let (other, _, _) = places(storm(&nodes, 4, 8, "10.0.1.1").await);
    assert_eq!(other.len(), 4);

    // Three closed connections free three places, wherever they were.
    held.truncate(7);
    eventually("three places come back", async || {
        let (more, _, _) = places(storm(&nodes, 5, 7, "10.0.2.1").await);
        let n = more.len();
        held.extend(more);
        held.len() == 10 && n > 0
    })
    .await;
    let (none, user_full, _) = places(storm(&nodes, 6, 7, "10.0.2.2").await);
    assert!(none.is_empty());
    assert_eq!(user_full, 6, "the cap holds again");
}

#[tokio::test]
async fn one_addresss_connections_over_three_nodes_admit_exactly_its_cap() {
    let Some(redis) = Redis::start() else { return };
    let nodes = nodes(&redis, 0, 4);
    // Nine users behind one address.
    let answers = join_all((0..9).map(|u| nodes[u % 3].admit(u as i64 + 1, "192.0.2.9"))).await;
    let (held, user_full, addr_full) = places(answers);
    assert_eq!((held.len(), user_full, addr_full), (4, 0, 5));
    let (elsewhere, _, _) = places(storm(&nodes, 3, 1, "192.0.2.10").await);
    assert_eq!(elsewhere.len(), 3, "other addresses are not affected");
}

#[tokio::test]
async fn a_dead_nodes_places_return_after_its_lease_and_a_clean_stop_returns_them_at_once() {
    let Some(redis) = Redis::start() else { return };
    let nodes = nodes(&redis, 6, 0);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    for n in &nodes[1..] {
        tokio::spawn(n.clone().keep_alive(stop_rx.clone()));
    }
    // Node a takes four places, then dies: it never renews and never releases.
    let (dead, _, _) = places(storm(&nodes[..1], 4, 3, "198.51.100.1").await);
    let died = Instant::now();
    assert_eq!(dead.len(), 4);
    std::mem::forget(dead);
    let (live, _, _) = places(storm(&nodes[1..], 6, 3, "198.51.100.2").await);
    assert_eq!(
        live.len(),
        2,
        "the dead node's places still count within its lease"
    );
    let mut live = live;
    eventually("the dead node's places come back", async || {
        let (more, _, _) = places(storm(&nodes[1..], 1, 3, "198.51.100.2").await);
        live.extend(more);
        live.len() == 6
    })
    .await;
    assert!(
        died.elapsed() >= LEASE / 2,
        "not before the lease could have run out"
    );
    // The live nodes kept their places through several renewals.
    tokio::time::sleep(LEASE * 2).await;
    let (none, _, _) = places(storm(&nodes[1..], 2, 3, "198.51.100.2").await);
    assert!(none.is_empty(), "renewed places still count");

    // A clean stop takes a node's places out at once. (Node a, which still believes in its
    // four places, would write them back: a node paused past its lease is not dead. A fresh
    // instance stands for the node that replaced it.)
    let before = Instant::now();
    std::mem::forget(live);
    stop.send(true).unwrap();
    let fresh = nodes_named(&redis, &["d"], 6, 0).remove(0);
    eventually("a stopped node's places come back", async || {
        let (more, _, _) = places(storm(std::slice::from_ref(&fresh), 6, 3, "198.51.100.3").await);
        more.len() == 6
    })
    .await;
    assert!(before.elapsed() < LEASE, "without waiting for the lease");
}

/// Poll `future` once: far enough to put its command on the shared Redis connection, not long
/// enough for the answer.
fn start<F: std::future::Future>(future: std::pin::Pin<&mut F>) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        future.poll(&mut cx).is_pending(),
        "the command is in flight, not answered yet"
    );
}

/// A renewal writes this instance's counts as absolute numbers. One that reads them while an
/// admission or a release is in flight, and lands in Redis after it, must leave Redis at or
/// above the truth, never below: below, another node admits one connection over the cap.
#[tokio::test]
async fn a_renewal_racing_an_admission_or_a_release_never_lets_another_node_over_the_cap() {
    let Some(redis) = Redis::start() else { return };
    let nodes = nodes(&redis, 2, 0);
    let (a, b) = (&nodes[0], &nodes[1]);
    let (mut held, _, _) = places(storm(&nodes[..1], 1, 4, "198.51.100.7").await);
    assert!(a.renew().await, "the renew script is loaded");
    // So is the release script (another user's place, taken and given back): a release is
    // then one command, not a failed one, a load and a retry.
    drop(places(storm(&nodes[..1], 1, 5, "198.51.100.6").await));

    // Node a's second admission is on the wire when its renewal reads the counts; the
    // renewal's script runs in Redis after the admission's (one connection, in order).
    let second = a.admit(4, "198.51.100.7");
    let mut second = std::pin::pin!(second);
    start(second.as_mut());
    assert!(a.renew().await);
    match second.await {
        Admission::Admitted(p) => held.push(p),
        other => panic!("the second place is free: {other:?}"),
    }
    let (over, user_full, _) = places(storm(std::slice::from_ref(b), 2, 4, "198.51.100.8").await);
    assert_eq!(
        (over.len(), user_full),
        (0, 2),
        "node a holds both places: none on node b"
    );

    // Node a closes one: its release is sent off the dropping task, and a renewal reads the
    // counts before it has run.
    held.pop();
    let renewal = a.renew();
    let mut renewal = std::pin::pin!(renewal);
    start(renewal.as_mut());
    tokio::task::yield_now().await;
    assert!(renewal.await);
    // Node b asks over its own connection: let node a's release land first. (Were it later,
    // Redis would count one place too many, which this test allows; it cannot hide one too few.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (first, _, _) = places(storm(std::slice::from_ref(b), 2, 4, "198.51.100.8").await);
    assert!(
        first.len() <= 1,
        "one place is free, not two: node b took {}",
        first.len()
    );
    // At worst Redis counted one place too many, until node a's next renewal.
    let mut taken = first;
    eventually("the freed place comes back", async || {
        assert!(a.renew().await);
        let (more, _, _) = places(storm(std::slice::from_ref(b), 1, 4, "198.51.100.8").await);
        taken.extend(more);
        taken.len() == 1
    })
    .await;
    let (none, _, _) = places(storm(&nodes, 3, 4, "198.51.100.9").await);
    assert!(none.is_empty(), "the cap holds over every node");
}

#[tokio::test]
async fn without_redis_admission_is_unknown_and_an_empty_restart_is_repaired() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let nodes = nodes(&redis, 3, 0);
    let (held, _, _) = places(storm(&nodes[..1], 3, 5, "203.0.113.1").await);
    assert_eq!(held.len(), 3);

    redis.kill();
    let asked = Instant::now();
    let answers = storm(&nodes, 3, 5, "203.0.113.2").await;
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "a missing Redis is noticed quickly, not waited for: {:?}",
        asked.elapsed()
    );
    // Each node admits on its own caps and counts the place itself; one stays open.
    let mut unchecked: Vec<Place> = answers
        .into_iter()
        .filter_map(|a| match a {
            Admission::Unknown(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(unchecked.len(), 3, "every admission decided without Redis");
    unchecked.truncate(1);
    // A connection closing meanwhile is counted locally; its release is lost with Redis.
    let mut held = held;
    held.pop();
    // (Its release is tried, and fails, before Redis is back.)
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Redis comes back empty; node a writes what it holds again at its renewal.
    redis.restart();
    eventually("node a renews its counts", async || nodes[0].renew().await).await;
    // Nodes b and c reach Redis again at their renewals (their keep-alive's work).
    for n in &nodes[1..] {
        eventually("the node reaches Redis again", async || n.renew().await).await;
    }
    let (more, user_full, _) = places(storm(&nodes[1..], 3, 5, "203.0.113.3").await);
    assert_eq!(
        (more.len(), user_full),
        (0, 3),
        "two places held on node a and one taken while Redis was away: none free"
    );
    drop(unchecked);
    eventually("the place taken without Redis is given back", async || {
        let (more, _, _) = places(storm(&nodes[1..2], 1, 5, "203.0.113.4").await);
        !more.is_empty()
    })
    .await;
}

/// Three nodes' rates, connected and with their script loaded (as a node does at start).
async fn rates(redis: &Redis, rate: f64, burst: u32) -> Vec<ClusterRate> {
    let rates: Vec<ClusterRate> = (0..3)
        .map(|_| {
            ClusterRate::new(&redis.url(), "u", rate, burst, Arc::new(Metrics::default()))
                .expect("a Redis URL")
        })
        .collect();
    for r in &rates {
        assert!(r.warm().await, "Redis answers");
    }
    rates
}

/// `n` sends of `user` at once, spread over the nodes in turn: how many were allowed, and
/// the retry delays of the others.
async fn sends(rates: &[ClusterRate], n: usize, user: i64) -> (usize, Vec<u64>) {
    let answers = join_all((0..n).map(|i| rates[i % rates.len()].take(user))).await;
    let allowed = answers.iter().filter(|a| a.is_ok()).count();
    (
        allowed,
        answers.into_iter().filter_map(|a| a.err()).collect(),
    )
}

#[tokio::test]
async fn one_users_sends_over_three_nodes_share_one_rate_and_burst() {
    let Some(redis) = Redis::start() else { return };
    let rates = rates(&redis, 5.0, 10).await;
    // 30 sends at once over three nodes: the burst of 10, once.
    let burst_at = Instant::now();
    let (allowed, retry) = sends(&rates, 30, 1).await;
    assert_eq!(allowed, 10, "one burst over the cluster");
    assert_eq!(retry.len(), 20);
    assert!(
        retry.iter().all(|&ms| (1..=200).contains(&ms)),
        "retry within one emission interval (200 ms): {retry:?}"
    );
    // Another user has a burst of their own.
    assert_eq!(sends(&rates, 12, 2).await.0, 10);
    // After the retry delay, the rate has refilled: as many more as the time since allows
    // (at least one, and never a second burst), wherever they are sent.
    let wait = retry.iter().max().copied().unwrap();
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    let (more, _) = sends(&rates, 10, 1).await;
    let refilled = 1 + (burst_at.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    assert!(
        (1..=refilled).contains(&more),
        "{more} more after {:?}",
        burst_at.elapsed()
    );
}

#[tokio::test]
async fn without_redis_each_node_keeps_its_share_of_the_rate_and_sends_never_wait() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let nodes = nodes(&redis, 0, 0);
    // Three live instances (their leases come with an admission).
    for (i, n) in nodes.iter().enumerate() {
        let Admission::Admitted(p) = n.admit(1, &format!("192.0.2.{i}")).await else {
            panic!("admitted")
        };
        std::mem::forget(p);
    }
    let rates = rates(&redis, 6.0, 9).await;
    assert_eq!(
        sends(&rates, 1, 4).await.0,
        1,
        "Redis knows three nodes now"
    );
    redis.kill();
    let asked = Instant::now();
    // Node a alone: its share of the burst is 9 / 3.
    let (allowed, retry) = sends(&rates[..1], 10, 5).await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "sends decide without waiting for Redis: {:?}",
        asked.elapsed()
    );
    assert_eq!(allowed, 3, "a third of the burst on each node");
    assert!(
        retry.iter().all(|&ms| (1..=500).contains(&ms)),
        "at a third of the rate (one message per 500 ms): {retry:?}"
    );
    // Back: the shared state again (empty after the restart), once each node reached Redis.
    redis.restart();
    for r in &rates {
        eventually("the node reaches Redis again", async || r.warm().await).await;
    }
    assert_eq!(
        sends(&rates, 12, 6).await.0,
        9,
        "one burst over the cluster again"
    );
}

/// The next presence event a node hands to its hub (within 10 s).
async fn next_event(
    rx: &mut tokio::sync::mpsc::Receiver<PresenceEvent>,
    what: &str,
) -> PresenceEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no presence event: {what}"))
        .expect("the node runs")
}

/// A node instance that renews and follows; its events.
fn presence_node(
    redis: &Redis,
    name: &str,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> (ClusterPresence, tokio::sync::mpsc::Receiver<PresenceEvent>) {
    let node = ClusterPresence::new(&redis.url(), name, LEASE).expect("a Redis URL");
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(node.clone().run(tx, stop.clone()));
    (node, rx)
}

#[tokio::test]
async fn presence_over_three_nodes_is_announced_once_and_a_dead_nodes_users_go_offline() {
    let Some(redis) = Redis::start() else { return };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (a, mut a_events) = presence_node(&redis, "a", &stop_rx);
    let (b, _b_events) = presence_node(&redis, "b", &stop_rx);
    // (Node c, which watches, is not stopped with the others.)
    let (_keep_c, c_stop) = tokio::sync::watch::channel(false);
    let (c, mut events) = presence_node(&redis, "c", &c_stop);
    assert_eq!(
        next_event(&mut events, "the list").await,
        PresenceEvent::Everyone(vec![])
    );

    // Ada opens connections on a and b, then closes both: online once, offline once.
    assert!(a.connected(1, "ada").await);
    assert!(b.connected(1, "ada").await);
    assert!(a.disconnected(1).await);
    assert!(b.disconnected(1).await);
    assert_eq!(
        next_event(&mut events, "ada online").await,
        PresenceEvent::Online("ada".into())
    );
    assert_eq!(
        next_event(&mut events, "ada offline").await,
        PresenceEvent::Offline("ada".into())
    );

    // Bo is on node d, which then dies (it never renews): offline once its lease is over.
    let d = ClusterPresence::new(&redis.url(), "d", LEASE).unwrap();
    let died = Instant::now();
    assert!(d.connected(2, "bo").await);
    assert!(b.connected(3, "cy").await);
    // Who, of some users, is online anywhere (what a node asks before a push).
    assert_eq!(c.online_among(&[1, 2, 3, 99]).await, Some(vec![2, 3]));
    assert_eq!(
        next_event(&mut events, "bo online").await,
        PresenceEvent::Online("bo".into())
    );
    assert_eq!(
        next_event(&mut events, "cy online").await,
        PresenceEvent::Online("cy".into())
    );
    assert_eq!(
        next_event(&mut events, "bo offline").await,
        PresenceEvent::Offline("bo".into())
    );
    assert!(
        died.elapsed() >= LEASE / 2,
        "not before its lease: {:?}",
        died.elapsed()
    );
    assert_eq!(
        c.online().await,
        Some(vec!["cy".to_string()]),
        "the live node's user stays"
    );

    // Typing goes to the other nodes, not back to the one it came from.
    a.typing((9, "nine"), (3, "cy")).await;
    assert_eq!(
        next_event(&mut events, "typing").await,
        PresenceEvent::Typing {
            room: 9,
            room_name: "nine".into(),
            user: 3,
            name: "cy".into()
        }
    );
    c.typing((9, "nine"), (5, "eve")).await;
    assert!(a.connected(6, "fay").await);
    assert_eq!(
        next_event(&mut events, "fay online").await,
        PresenceEvent::Online("fay".into()),
        "node c does not hear its own typing"
    );
    // Everything node a heard up to fay's arrival (published after eve's typing).
    let mut from_a = Vec::new();
    loop {
        let e = next_event(&mut a_events, "node a's events").await;
        let done = e == PresenceEvent::Online("fay".into());
        from_a.push(e);
        if done {
            break;
        }
    }
    assert!(
        from_a.contains(&PresenceEvent::Typing {
            room: 9,
            room_name: "nine".into(),
            user: 5,
            name: "eve".into()
        }) && !from_a
            .iter()
            .any(|e| matches!(e, PresenceEvent::Typing { name, .. } if name == "cy")),
        "{from_a:?}"
    );

    // A clean stop of nodes a and b takes their users offline at once.
    stop.send(true).unwrap();
    let stopped = Instant::now();
    let mut offline = vec![
        next_event(&mut events, "offline").await,
        next_event(&mut events, "offline").await,
    ];
    offline.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        offline,
        [
            PresenceEvent::Offline("cy".into()),
            PresenceEvent::Offline("fay".into())
        ]
    );
    assert!(stopped.elapsed() < LEASE, "without waiting for the lease");
}

/// Redis and two presence nodes: `a`, with di connected, and `c`, which heard the list and
/// di come online (its events). The nodes run while `_stop` is held (bind it: a field left to
/// `..` goes at once).
struct DiOnline {
    redis: Redis,
    _stop: tokio::sync::watch::Sender<bool>,
    a: ClusterPresence,
    _a_events: tokio::sync::mpsc::Receiver<PresenceEvent>,
    c: ClusterPresence,
    events: tokio::sync::mpsc::Receiver<PresenceEvent>,
}

/// [`DiOnline`], or `None` without redis-server.
async fn di_online_on_a() -> Option<DiOnline> {
    let redis = Redis::start()?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (a, a_events) = presence_node(&redis, "a", &stop_rx);
    let (c, mut events) = presence_node(&redis, "c", &stop_rx);
    assert_eq!(
        next_event(&mut events, "the list").await,
        PresenceEvent::Everyone(vec![])
    );
    assert!(a.connected(4, "di").await);
    assert_eq!(
        next_event(&mut events, "di online").await,
        PresenceEvent::Online("di".into())
    );
    Some(DiOnline {
        redis,
        _stop: stop,
        a,
        _a_events: a_events,
        c,
        events,
    })
}

#[tokio::test]
async fn presence_survives_redis_restarting_empty() {
    let Some(DiOnline {
        mut redis,
        _stop,
        a,
        _a_events,
        c,
        mut events,
    }) = di_online_on_a().await
    else {
        return;
    };

    redis.kill();
    let killed = Instant::now();
    // While Redis is away a change cannot be told; the node keeps it.
    assert!(!a.connected(5, "ed").await);
    redis.restart();
    // Node a announces its users again at its next renewal; node c subscribes again, takes
    // who is on the list at once and the whole list a lease later, so it learns of both
    // whichever came first, and never shows di offline meanwhile (the list read at once,
    // before node a wrote again, lacks di).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut known: Vec<String> = vec!["di".to_string()];
    let mut whole = false;
    while !(whole && known.contains(&"di".to_string()) && known.contains(&"ed".to_string())) {
        assert!(Instant::now() < deadline, "node c knows {known:?}");
        match next_event(&mut events, "after the restart").await {
            PresenceEvent::Everyone(all) => {
                assert!(all.contains(&"di".to_string()), "di dropped: {all:?}");
                (known, whole) = (all, true);
            }
            PresenceEvent::Online(u) => known.push(u),
            PresenceEvent::Back(all) => known.extend(all),
            PresenceEvent::Offline(u) => panic!("{u} shown offline after the restart"),
            // (Only on a machine so slow that the restart took longer than a lease.)
            PresenceEvent::Local => {
                assert!(killed.elapsed() >= LEASE, "{:?}", killed.elapsed());
                known.clear();
            }
            PresenceEvent::Typing { .. } => {}
        }
    }
    let mut online = c.online().await.expect("Redis answers");
    online.sort();
    assert_eq!(online, ["di", "ed"]);
}

/// Redis away for longer than the other nodes go on showing a node's users: each node shows
/// its own users only (rather than whoever was online when Redis went, for ever), says it no
/// longer follows, and takes everyone back once Redis is back.
#[tokio::test]
async fn without_redis_past_a_lease_a_node_shows_its_own_users_until_redis_is_back() {
    let Some(DiOnline {
        mut redis,
        _stop,
        a: _a,
        _a_events,
        c,
        mut events,
    }) = di_online_on_a().await
    else {
        return;
    };
    assert!(c.following());

    redis.kill();
    let killed = Instant::now();
    assert_eq!(
        next_event(&mut events, "the local view").await,
        PresenceEvent::Local
    );
    let after = killed.elapsed();
    assert!(
        after >= LEASE + LEASE / 3 && after < LEASE * 3,
        "as long as the other nodes keep showing its users: {after:?}"
    );
    assert!(!c.following(), "the node says it no longer follows");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "di never came back");
        match next_event(&mut events, "after Redis came back").await {
            PresenceEvent::Back(all) | PresenceEvent::Everyone(all)
                if all.contains(&"di".to_string()) =>
            {
                break
            }
            PresenceEvent::Online(u) if u == "di" => break,
            PresenceEvent::Local => panic!("the local view twice in one absence"),
            _ => {}
        }
    }
    assert!(c.following(), "following again");
}

/// Wait until `node`'s connection to Redis answers again (after a restart).
async fn until_redis_answers(node: &ClusterPresence) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.online().await.is_none() {
        assert!(Instant::now() < deadline, "Redis answers again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis restarts empty and the first thing this node tells it is a new connection (no change
/// failed meanwhile): the node's lease had to be made again, so its next renewal announces the
/// users it held before too. (The nodes here renew only when the test says.)
#[tokio::test]
async fn a_connect_that_finds_the_lease_gone_makes_the_next_renewal_announce_everyone() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let a = ClusterPresence::new(&redis.url(), "a", LEASE).unwrap();
    assert!(a.connected(4, "di").await);
    redis.kill();
    redis.restart();
    until_redis_answers(&a).await;
    assert!(a.connected(5, "ed").await, "Redis takes the connect");
    assert_eq!(a.online().await, Some(vec!["ed".to_string()]));
    assert!(a.renew().await);
    assert_eq!(
        a.online().await,
        Some(vec!["di".to_string(), "ed".to_string()]),
        "the renewal announced the user held before the restart"
    );
}

/// Redis brought back from an old snapshot (Debian's Redis saves one now and then), within
/// the node's lease: a user who left since is in it again, held by a live instance. The
/// node's next renewal finds Redis counting other users for it than it holds, takes out the
/// one it no longer holds, and announces the one who connected since.
#[tokio::test]
async fn a_redis_brought_back_from_an_old_snapshot_forgets_who_left_since() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let a = ClusterPresence::new(&redis.url(), "a", LEASE).unwrap();
    assert!(a.connected(4, "di").await);
    assert!(a.connected(5, "ed").await);
    redis.save();
    assert!(a.disconnected(4).await);
    assert!(a.connected(6, "flo").await);
    redis.kill();
    redis.restart();
    until_redis_answers(&a).await;
    assert_eq!(
        a.online().await,
        Some(vec!["di".to_string(), "ed".to_string()]),
        "the snapshot, from before di left and flo came"
    );
    assert!(a.renew().await);
    assert_eq!(
        a.online().await,
        Some(vec!["ed".to_string(), "flo".to_string()]),
        "di taken out, flo announced"
    );
}

/// The same with hundreds of users: the repair goes in chunks (of 128 users a round trip), and
/// every user who left since the snapshot is taken out, every one who came is announced.
#[tokio::test]
async fn a_repair_of_hundreds_of_users_takes_out_and_announces_every_one() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let a = ClusterPresence::new(&redis.url(), "a", LEASE).unwrap();
    let name = |u: i64| format!("u{u:03}");
    for u in 0..300 {
        assert!(a.connected(u, &name(u)).await);
    }
    redis.save();
    // 0..170 leave, 300..450 come.
    for u in 0..170 {
        assert!(a.disconnected(u).await);
    }
    for u in 300..450 {
        assert!(a.connected(u, &name(u)).await);
    }
    redis.kill();
    redis.restart();
    until_redis_answers(&a).await;
    assert_eq!(a.online().await.map(|o| o.len()), Some(300), "the snapshot");
    assert!(a.renew().await);
    let expected: Vec<String> = (170..450).map(name).collect();
    assert_eq!(a.online().await, Some(expected));
}

/// How many times Redis ran `SMEMBERS` (the first step of a repair) since it started.
fn repairs_begun(redis: &Redis) -> u64 {
    let info: String = redis.query(redis::cmd("INFO").arg("commandstats"));
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_smembers:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

/// A node with nobody to repair, after Redis restarted empty: the first renewal repairs
/// (nothing to do) and takes Redis' count of its changes (none) as its own; the next
/// renewals do not repair again.
#[tokio::test]
async fn an_idle_node_repairs_once_after_redis_restarted_empty() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let a = ClusterPresence::new(&redis.url(), "a", LEASE).unwrap();
    assert!(a.connected(8, "vi").await);
    assert!(a.disconnected(8).await);
    redis.kill();
    redis.restart();
    until_redis_answers(&a).await;
    let before = repairs_begun(&redis);
    for _ in 0..3 {
        assert!(a.renew().await);
    }
    assert_eq!(
        repairs_begun(&redis) - before,
        1,
        "one repair, not one per renewal"
    );
}

/// A node paused past its lease, not yet reaped: another node's leave takes the user it
/// shares with it offline (the paused node's lease ran out). When the paused node renews, it
/// finds its lease had run out and announces its users again.
#[tokio::test]
async fn a_node_whose_lease_ran_out_announces_its_users_again_when_it_renews() {
    let Some(redis) = Redis::start() else { return };
    let a = ClusterPresence::new(&redis.url(), "a", LEASE).unwrap();
    let b = ClusterPresence::new(&redis.url(), "b", LEASE).unwrap();
    assert!(a.connected(7, "ul").await);
    assert!(b.connected(7, "ul").await);
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
    assert!(b.disconnected(7).await);
    assert_eq!(a.online().await, Some(vec![]), "node a's lease ran out");
    assert!(a.renew().await);
    assert_eq!(
        a.online().await,
        Some(vec!["ul".to_string()]),
        "node a still holds ul"
    );
}

/// Redis stops answering without closing anything (frozen with SIGSTOP, as a host that
/// vanished without a reset): a node notices that its subscription went silent and, once
/// Redis answers again, subscribes again and reloads the list (a silent subscription would
/// otherwise never end, and what was published meanwhile would never be made up for).
#[tokio::test]
async fn a_subscription_that_went_silent_is_made_again() {
    let Some(redis) = Redis::start() else { return };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let (_c, mut events) = presence_node(&redis, "c", &stop_rx);
    assert_eq!(
        next_event(&mut events, "the list").await,
        PresenceEvent::Everyone(vec![])
    );
    let frozen = redis.freeze();
    tokio::time::sleep(LEASE).await;
    drop(frozen);
    // Subscribed again: who is on the list at once, the whole list a lease later. (A slow
    // machine may have taken long enough to notice for the node to show its own users
    // only in between.)
    let mut again = next_event(&mut events, "the list, after subscribing again").await;
    if again == PresenceEvent::Local {
        again = next_event(&mut events, "the list, after subscribing again").await;
    }
    assert_eq!(again, PresenceEvent::Back(vec![]));
    assert_eq!(
        next_event(&mut events, "the whole list, a lease later").await,
        PresenceEvent::Everyone(vec![])
    );
}

// The sliding-window limits (failed logins, registrations, hourly quotas).

/// Three nodes' windowed limits on one Redis, connected and with their scripts loaded.
async fn limiters(redis: &Redis) -> Vec<Limiter> {
    let mut out = Vec::new();
    for windows in windows(redis).await {
        out.push(Limiter::new(Some(Arc::new(windows.scoped("test")))));
    }
    out
}

/// Three nodes' connections for windowed limits, connected and with their scripts loaded.
async fn windows(redis: &Redis) -> Vec<ClusterWindows> {
    let mut out = Vec::new();
    for name in ["a", "b", "c"] {
        let windows = ClusterWindows::new(&redis.url(), name).expect("a Redis URL");
        assert!(windows.warm().await, "Redis answers");
        out.push(windows);
    }
    out
}

fn per_minute(max: usize) -> Limit {
    Limit {
        max,
        window: Duration::from_secs(60),
    }
}

/// `n` reservations of `checks` at once, spread over the nodes in turn: those taken, and the
/// retry delays of the refused.
async fn attempts(
    nodes: &[Limiter],
    n: usize,
    checks: &[(&str, Limit)],
) -> (Vec<Reservation>, Vec<u64>) {
    let answers = join_all((0..n).map(|i| nodes[i % nodes.len()].reserve(checks))).await;
    let (mut taken, mut refused) = (Vec::new(), Vec::new());
    for a in answers {
        match a {
            Ok(r) => taken.push(r),
            Err(secs) => refused.push(secs),
        }
    }
    (taken, refused)
}

#[tokio::test]
async fn a_windowed_limit_over_three_nodes_admits_exactly_the_limit() {
    let Some(redis) = Redis::start() else { return };
    let nodes = limiters(&redis).await;
    assert!(nodes.iter().all(Limiter::is_shared));
    let ten = per_minute(10);

    // 30 attempts at once over three nodes: the limit, once.
    let (taken, refused) = attempts(&nodes, 30, &[("u:ann", ten)]).await;
    assert_eq!(taken.len(), 10, "one limit over the cluster");
    assert!(
        refused.iter().all(|s| (59..=60).contains(s)),
        "retry when the oldest leaves the window: {refused:?}"
    );
    // Another key has a limit of its own; no limit (0) is no limit.
    assert_eq!(attempts(&nodes, 12, &[("u:ben", ten)]).await.0.len(), 10);
    assert_eq!(
        attempts(&nodes, 30, &[("u:cy", per_minute(0))])
            .await
            .0
            .len(),
        30
    );
    // A refusal by one key counts nothing for the others.
    let one = per_minute(1);
    let (none, _) = attempts(&nodes, 3, &[("a:192.0.2.1", one), ("u:ann", ten)]).await;
    assert!(none.is_empty());
    assert_eq!(
        attempts(&nodes, 3, &[("a:192.0.2.1", one)]).await.0.len(),
        1,
        "the refused attempts took nothing from the address"
    );

    // A place given back on any node is free on every node, once.
    nodes[1].release(&taken[0]).await;
    assert_eq!(attempts(&nodes, 3, &[("u:ann", ten)]).await.0.len(), 1);
    // Forgetting a key (a successful login) frees the whole limit everywhere.
    nodes[2].clear("u:ann").await;
    assert_eq!(attempts(&nodes, 30, &[("u:ann", ten)]).await.0.len(), 10);
    // Keys of another scope are apart: the same name counts anew.
    let other = ClusterWindows::new(&redis.url(), "d")
        .unwrap()
        .scoped("other");
    assert_eq!(
        attempts(&[Limiter::new(Some(Arc::new(other)))], 3, &[("u:ann", one)])
            .await
            .0
            .len(),
        1
    );
}

#[tokio::test]
async fn events_leave_a_windowed_limit_after_its_window_on_redis_clock() {
    let Some(redis) = Redis::start() else { return };
    let nodes = limiters(&redis).await;
    let short = Limit {
        max: 2,
        window: Duration::from_millis(800),
    };
    let (taken, refused) = attempts(&nodes, 6, &[("r:198.51.100.7", short)]).await;
    assert_eq!((taken.len(), refused), (2, vec![1; 4]), "at least a second");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        attempts(&nodes, 6, &[("r:198.51.100.7", short)])
            .await
            .0
            .len(),
        2,
        "the window slid past the first two"
    );
}

#[tokio::test]
async fn without_redis_each_node_counts_a_windowed_limit_alone_and_never_waits() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let shared = windows(&redis).await;
    let nodes: Vec<Limiter> = shared
        .iter()
        .map(|w| Limiter::new(Some(Arc::new(w.scoped("test")))))
        .collect();
    let three = per_minute(3);
    let (held, _) = attempts(&nodes, 2, &[("u:dee", three)]).await;
    assert_eq!(held.len(), 2);

    redis.kill();
    let asked = Instant::now();
    // Each node alone: the whole limit on each (what Redis counted is not known here).
    let (a, _) = attempts(&nodes[..1], 5, &[("u:dee", three)]).await;
    let (b, _) = attempts(&nodes[1..2], 5, &[("u:dee", three)]).await;
    assert!(
        asked.elapsed() < Duration::from_millis(800),
        "a missing Redis is not waited for: {:?}",
        asked.elapsed()
    );
    assert_eq!((a.len(), b.len()), (3, 3), "each node counts alone");
    // Taken back and forgotten where they were counted: on the node.
    nodes[0].release(&a[0]).await;
    assert_eq!(
        attempts(&nodes[..1], 3, &[("u:dee", three)]).await.0.len(),
        1
    );
    nodes[1].clear("u:dee").await;
    assert_eq!(
        attempts(&nodes[1..2], 5, &[("u:dee", three)]).await.0.len(),
        3
    );
    // A place Redis counted is given back without waiting either (and is lost with it).
    let released = Instant::now();
    nodes[2].release(&held[0]).await;
    assert!(released.elapsed() < Duration::from_millis(500));

    // Back (empty): counted over the cluster again once each node reached Redis.
    redis.restart();
    for w in &shared {
        eventually("the node reaches Redis again", async || w.warm().await).await;
    }
    let (again, _) = attempts(&nodes, 9, &[("u:eve", three)]).await;
    assert_eq!(again.len(), 3, "one limit over the cluster again");
}

#[tokio::test]
async fn a_frozen_redis_is_waited_for_once_briefly_then_skipped() {
    let Some(redis) = Redis::start() else { return };
    let nodes = limiters(&redis).await;
    let two = per_minute(2);
    let frozen = redis.freeze();
    let asked = Instant::now();
    assert!(nodes[0].reserve(&[("u:fay", two)]).await.is_ok());
    let first = asked.elapsed();
    assert!(
        first < Duration::from_millis(500),
        "at most the timeout: {first:?}"
    );
    let asked = Instant::now();
    let (taken, _) = attempts(&nodes[..1], 3, &[("u:fay", two)]).await;
    // Well under the 250 ms a single call would wait for Redis (slack for a busy machine).
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "the next ones do not wait for Redis: {:?}",
        asked.elapsed()
    );
    assert_eq!(taken.len(), 1, "counted on the node: two in all");
    drop(frozen);
}

/// A reservation Redis runs only after its caller stopped waiting (frozen, then thawed)
/// counts once: on the node that counted it instead, since it is taken back in Redis. A clear
/// (a successful login forgiving failures) that Redis did not take is made with the node's
/// next reservation that reaches it.
#[tokio::test]
async fn a_late_reservation_is_taken_back_and_a_missed_clear_made_later() {
    let Some(redis) = Redis::start() else { return };
    let nodes = limiters(&redis).await;
    let three = per_minute(3);
    let (held, _) = attempts(&nodes[1..2], 2, &[("u:gus", three)]).await;
    assert_eq!(held.len(), 2, "two of gus' failures counted in Redis");

    let frozen = redis.freeze();
    assert!(nodes[0].reserve(&[("u:hal", three)]).await.is_ok());
    // Node b finds Redis frozen too, then skips it: its clear is not sent.
    assert!(nodes[1].reserve(&[("u:jo", three)]).await.is_ok());
    nodes[1].clear("u:gus").await;
    drop(frozen);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counted = |key: &str| -> usize {
        redis.query(redis::cmd("ZCARD").arg(format!("hearth:w:test:{key}")))
    };
    assert_eq!(
        counted("u:gus"),
        2,
        "the clear waits for node b's next reservation"
    );
    assert_eq!(
        counted("u:jo"),
        0,
        "node b's late reservation was taken back"
    );

    // Node c asks Redis: hal's late reservation was taken back there.
    let (hal, _) = attempts(&nodes[2..3], 5, &[("u:hal", three)]).await;
    assert_eq!(
        hal.len(),
        3,
        "hal's timed-out reservation counted in Redis too"
    );
    // Node b's next reservation (of anything) reaches Redis once its breaker closed (a
    // second after the failure), and clears gus there first.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let one = per_minute(1);
    assert!(nodes[1].reserve(&[("u:ivy", one)]).await.is_ok());
    let (ivy, _) = attempts(&nodes[2..3], 1, &[("u:ivy", one)]).await;
    assert!(ivy.is_empty(), "node b's reservation was counted in Redis");
    let (gus, _) = attempts(&nodes[2..3], 5, &[("u:gus", three)]).await;
    assert_eq!(gus.len(), 3, "gus' failures were forgiven in Redis too");
}
