//! `failover`: clients spread over the nodes of a cluster, senders at a steady rate in one
//! room, then one node is killed (SIGKILL) under that load. Every client that loses its
//! connection moves to the next node at once, resumes with `?since=` the last position it
//! saw, and its senders send their unacknowledged messages again with the same nonces.
//!
//! Measured: failover time, from the kill to the moved client's `resumed` frame (the replay of
//! what it missed is complete), over every moved client; and the acknowledgement delay of the
//! messages in flight. Checked: every acknowledged message reached every client exactly once
//! and in order, every message sent was acknowledged, and every moved client resumed.
//! Clients reconnect without back-off, so what is measured is the cluster's part.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Account, ConnectOpts, Target, Ws, ROOM};
use crate::util::{
    err, make_body, new_hist, now_us, push_quantiles, scan, send_frame, FirstProblem,
};
use crate::util::{Report, Res, Row, Track};

pub struct FailoverCfg {
    pub clients: usize,
    pub senders: usize,
    /// Messages per second over all senders.
    pub rate: f64,
    /// Seconds of traffic before the kill.
    pub before: f64,
    /// Seconds of traffic after the kill.
    pub after: f64,
    /// The node process to kill.
    pub kill_pid: u32,
    pub body_bytes: usize,
}

/// A moved client that has not resumed this long after the kill counts as not resumed.
const RESUME_LIMIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Shared {
    /// When the node was killed (µs since the origin; 0: not yet).
    kill_at: AtomicU64,
    /// Senders stop sending new messages.
    stop_sending: AtomicBool,
    /// Acknowledged messages, and messages sent and not yet acknowledged.
    acked: AtomicU64,
    pending: AtomicU64,
    error_frames: AtomicU64,
    /// Failover times (µs) of the clients that lost their connection after the kill.
    resumes: Mutex<Vec<u64>>,
    /// Acknowledgement delays (µs, from the first send of a nonce).
    ack_hist: Mutex<Option<Histogram<u64>>>,
    problem: FirstProblem,
}

/// What one client saw.
struct Outcome {
    track: Track,
    /// Ids acknowledged to this client as a sender.
    acked: Vec<u64>,
    /// Its messages never acknowledged.
    unacked: u64,
    /// It lost its connection after the kill, and whether it resumed.
    moved: bool,
    resumed: bool,
}

/// One client: a reader of room general and, when `rate` > 0, a sender at that rate.
struct Client {
    t: Target,
    idx: usize,
    acct: Account,
    node: usize,
    rate: f64,
    body: Arc<String>,
    shared: Arc<Shared>,
    track: Track,
    /// Unacknowledged nonces by sequence: (nonce, first sent at µs).
    pending: BTreeMap<u64, (String, u64)>,
    /// Sequences sent again after a reconnect (their answer may repeat an id already seen).
    resent: HashSet<u64>,
    /// Sequences refused as `unavailable` (or `rate_limited`): sent again at the next tick.
    retry: HashSet<u64>,
    acked: Vec<u64>,
    seq: u64,
    moved: bool,
    resumed: bool,
    awaiting_resume: bool,
    seen: Arc<AtomicU64>,
}

impl Client {
    /// Open the next connection: the current node first when `since` is None, else the
    /// nodes after it in turn until one answers.
    async fn open(&mut self, since: Option<u64>) -> Res<Ws> {
        let nodes = self.t.addrs.len();
        let opts = ConnectOpts { rcvbuf: None };
        if since.is_none() {
            let (ws, ready) =
                client::connect_node(&self.t, self.node, self.idx, &self.acct, &opts, None).await?;
            self.track = Track::new(ready.last_id);
            return Ok(ws);
        }
        let started = std::time::Instant::now();
        loop {
            self.node = (self.node + 1) % nodes;
            match client::connect_node(&self.t, self.node, self.idx, &self.acct, &opts, since).await
            {
                Ok((ws, _)) => return Ok(ws),
                Err(e) if started.elapsed() > RESUME_LIMIT => {
                    return err(format!("client {}: no node took it: {e}", self.idx))
                }
                Err(_) => {
                    if self.node == 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }

    fn nonce(&self, seq: u64) -> String {
        format!("{}.{seq}", self.idx)
    }

    /// Our own sequence number in `nonce`, if it is ours.
    fn own(&self, nonce: &str) -> Option<u64> {
        let (who, seq) = nonce.split_once('.')?;
        (who.parse::<usize>().ok()? == self.idx)
            .then(|| seq.parse().ok())
            .flatten()
    }

    /// Take one text frame.
    fn frame(&mut self, text: &str) {
        let s = scan(text);
        match s.kind {
            "message" => {
                let Some(id) = s.id else {
                    self.shared
                        .problem
                        .record(format!("a message without id: {text}"));
                    return;
                };
                let own = s.nonce.and_then(|n| self.own(n));
                if let Some(seq) = own {
                    if let Some((_, first)) = self.pending.remove(&seq) {
                        self.acked.push(id);
                        self.shared.acked.fetch_add(1, Relaxed);
                        self.shared.pending.fetch_sub(1, Relaxed);
                        let mut h = self.shared.ack_hist.lock().unwrap();
                        let _ = h
                            .get_or_insert_with(new_hist)
                            .record(now_us().saturating_sub(first).max(1));
                    }
                    // The answer to a resend goes to this connection only and may repeat a
                    // message the replay already brought.
                    if self.resent.contains(&seq) && self.track.ids().any(|i| i == id) {
                        return;
                    }
                }
                if self.track.see(id) {
                    self.seen.fetch_add(1, Relaxed);
                }
            }
            "resumed" if self.awaiting_resume => {
                self.awaiting_resume = false;
                let kill = self.shared.kill_at.load(Relaxed);
                if self.moved && kill > 0 {
                    let took = now_us().saturating_sub(kill);
                    if took <= RESUME_LIMIT.as_micros() as u64 {
                        self.resumed = true;
                        self.shared.resumes.lock().unwrap().push(took);
                    }
                }
            }
            "error" => {
                let v: Value = serde_json::from_str(text).unwrap_or_default();
                let code = v["code"].as_str().unwrap_or("");
                let ours = v["nonce"].as_str().and_then(|n| self.own(n));
                if ours.is_some() && (code == "unavailable" || code == "rate_limited") {
                    // Still pending: sent again at the next tick (or after a reconnect).
                    if let Some(seq) = ours {
                        self.retry.insert(seq);
                    }
                    return;
                }
                self.shared.error_frames.fetch_add(1, Relaxed);
                self.shared
                    .problem
                    .record(format!("client {}: {text}", self.idx));
            }
            _ => {}
        }
    }

    async fn send_pending(&mut self, ws: &mut Ws, only: Option<&HashSet<u64>>) -> Res<()> {
        let frames: Vec<(u64, String)> = self
            .pending
            .iter()
            .filter(|(seq, _)| only.is_none_or(|o| o.contains(seq)))
            .map(|(seq, (nonce, _))| (*seq, send_frame(ROOM, &self.body, nonce)))
            .collect();
        for (seq, f) in frames {
            self.resent.insert(seq);
            ws.feed(Message::text(f)).await?;
        }
        ws.flush().await?;
        Ok(())
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>, ready: Arc<AtomicU64>) -> Outcome {
        let mut ws = match self.open(None).await {
            Ok(ws) => ws,
            Err(e) => {
                self.shared
                    .problem
                    .record(format!("client {}: {e}", self.idx));
                return self.outcome();
            }
        };
        ready.fetch_add(1, Relaxed);
        let period = if self.rate > 0.0 {
            Duration::from_secs_f64(1.0 / self.rate)
        } else {
            Duration::from_secs(3600)
        };
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let lost = tokio::select! {
                biased;
                _ = stop.changed() => break,
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        self.frame(&t);
                        false
                    }
                    Some(Ok(_)) => false,
                    Some(Err(_)) | None => true,
                },
                _ = tick.tick(), if self.rate > 0.0 => {
                    let mut failed = false;
                    if !self.retry.is_empty() {
                        let refused = std::mem::take(&mut self.retry);
                        failed = self.send_pending(&mut ws, Some(&refused)).await.is_err();
                    }
                    if !failed && !self.shared.stop_sending.load(Relaxed) {
                        let seq = self.seq;
                        self.seq += 1;
                        let nonce = self.nonce(seq);
                        let frame = send_frame(ROOM, &self.body, &nonce);
                        self.pending.insert(seq, (nonce, now_us()));
                        self.shared.pending.fetch_add(1, Relaxed);
                        failed = ws.send(Message::text(frame)).await.is_err();
                    }
                    failed
                }
            };
            if !lost {
                continue;
            }
            if self.shared.kill_at.load(Relaxed) > 0 {
                self.moved = true;
            }
            let since = self.track.last;
            ws = match self.open(Some(since)).await {
                Ok(ws) => ws,
                Err(e) => {
                    self.shared.problem.record(e.to_string());
                    return self.outcome();
                }
            };
            self.awaiting_resume = true;
            self.retry.clear();
            // A failure here shows as the new connection's end and is handled there.
            let _ = self.send_pending(&mut ws, None).await;
        }
        client::close_quietly(ws).await;
        self.outcome()
    }

    fn outcome(self) -> Outcome {
        Outcome {
            unacked: self.pending.len() as u64,
            track: self.track,
            acked: self.acked,
            moved: self.moved,
            resumed: self.resumed,
        }
    }
}

pub async fn run(
    t: &Target,
    cfg: &FailoverCfg,
    accounts: &[Account],
    report: &mut Report,
) -> Res<()> {
    if t.addrs.len() < 2 {
        return err("failover needs at least two servers in --url");
    }
    let shared = Arc::new(Shared::default());
    let ready = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let senders = cfg.senders.min(cfg.clients);
    let body = Arc::new(make_body(cfg.body_bytes, 7));
    let mut tasks = Vec::new();
    let mut seen = Vec::new();
    for (idx, acct) in accounts.iter().enumerate().take(cfg.clients) {
        let c = Client {
            t: t.clone(),
            idx,
            acct: acct.clone(),
            node: idx % t.addrs.len(),
            rate: if idx < senders {
                cfg.rate / senders as f64
            } else {
                0.0
            },
            body: body.clone(),
            shared: shared.clone(),
            track: Track::new(0),
            pending: BTreeMap::new(),
            resent: HashSet::new(),
            retry: HashSet::new(),
            acked: Vec::new(),
            seq: 0,
            moved: false,
            resumed: false,
            awaiting_resume: false,
            seen: Arc::new(AtomicU64::new(0)),
        };
        seen.push(c.seen.clone());
        tasks.push(tokio::spawn(c.run(stop_rx.clone(), ready.clone())));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while ready.load(Relaxed) < cfg.clients as u64 {
        if std::time::Instant::now() > deadline || shared.problem.get().is_some() {
            let _ = stop_tx.send(true);
            let p = shared.problem.get();
            return err(format!(
                "only {} of {} clients connected: {}",
                ready.load(Relaxed),
                cfg.clients,
                p.unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(cfg.before)).await;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &cfg.kill_pid.to_string()])
        .status()?;
    shared.kill_at.store(now_us(), Relaxed);
    if !status.success() {
        return err(format!("kill -KILL {} failed", cfg.kill_pid));
    }
    tokio::time::sleep(Duration::from_secs_f64(cfg.after)).await;
    shared.stop_sending.store(true, Relaxed);
    // Drain: every message acknowledged and seen by every client (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let acked = shared.acked.load(Relaxed);
        if shared.pending.load(Relaxed) == 0 && seen.iter().all(|s| s.load(Relaxed) >= acked) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await?);
    }
    let mut all_acked: Vec<u64> = outcomes
        .iter()
        .flat_map(|o| o.acked.iter().copied())
        .collect();
    all_acked.sort_unstable();
    let distinct_acked = {
        let mut d = all_acked.clone();
        d.dedup();
        d
    };
    // Two acknowledgements of one message under different nonces would be a duplicate store.
    let double_stored = (all_acked.len() - distinct_acked.len()) as u64;
    let (mut lost, mut dup, mut reordered, mut unacked) = (0u64, 0u64, 0u64, 0u64);
    let (mut moved, mut not_resumed) = (0u64, 0u64);
    for o in &outcomes {
        let got: HashSet<u64> = o.track.ids().collect();
        lost += distinct_acked
            .iter()
            .filter(|id| **id > o.track.base && !got.contains(id))
            .count() as u64;
        dup += o.track.dup;
        reordered += o.track.reorder;
        unacked += o.unacked;
        if o.moved {
            moved += 1;
            if !o.resumed {
                not_resumed += 1;
            }
        }
    }
    let mut resume_hist = new_hist();
    for us in shared.resumes.lock().unwrap().iter() {
        let _ = resume_hist.record((*us).max(1));
    }
    let mut m = vec![("moved_clients".to_string(), moved as f64)];
    let q = crate::util::quantiles_ms(&resume_hist);
    m.push(("resume_p50_ms".into(), q[0]));
    m.push(("resume_p99_ms".into(), q[2]));
    m.push(("resume_max_ms".into(), q[4]));
    report.rows.push(Row {
        label: format!("kill 1 of {} nodes", t.addrs.len()),
        metrics: m,
    });
    let mut a = vec![(
        "acked_per_s".to_string(),
        distinct_acked.len() as f64 / (cfg.before + cfg.after),
    )];
    let ack = shared
        .ack_hist
        .lock()
        .unwrap()
        .take()
        .unwrap_or_else(new_hist);
    push_quantiles(&mut a, &ack);
    report.rows.push(Row {
        label: "acknowledgements".into(),
        metrics: a,
    });
    report
        .info
        .push(("messages_acked".into(), distinct_acked.len() as f64));
    report.checks.push(("lost".into(), lost));
    report
        .checks
        .push(("duplicated".into(), dup + double_stored));
    report.checks.push(("reordered".into(), reordered));
    report.checks.push(("unacked".into(), unacked));
    report.checks.push(("not_resumed".into(), not_resumed));
    report
        .checks
        .push(("nobody_moved".into(), u64::from(moved == 0)));
    report
        .checks
        .push(("error_frames".into(), shared.error_frames.load(Relaxed)));
    shared.problem.note(report);
    Ok(())
}
