//! Open-loop fan-out engine, shared by the `fanout`, `everyday`, `slow` and `reactions`
//! scenarios.
//!
//! M connections join room `general`; S of them also send, each on a fixed schedule (open
//! loop). In the `reactions` scenario the senders do not post messages: each toggles its own
//! emoji on one of a few messages posted beforehand (on, off, on, ...), so every frame is a
//! real change and reaches every member as a `reaction` frame tracked by its position. The nonce of every message carries its *intended* send time, and every receiver
//! measures latency from that instant, so a server that falls behind is charged for the whole
//! backlog (no coordinated omission). Every receiver checks that it sees every message id exactly
//! once and in increasing order.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, send_text, Account, ConnectOpts, Target, Ws, ROOM};
use crate::util::{
    account, make_body, new_hist, now_us, push_quantiles, rss_kib, scan, send_frame,
    validate_message, CpuMark, FirstProblem, Nonce, Report, Res, Row, Track,
};

/// A second runtime on its own thread for the sending connections, so that a sender is never
/// queued behind thousands of receiver tasks of the main runtime when its send is due.
pub static SENDER_RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

fn spawn_on<F>(sender: bool, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match (sender, SENDER_RUNTIME.get()) {
        (true, Some(h)) => h.spawn(fut),
        _ => tokio::spawn(fut),
    }
}

pub struct StepSpec {
    pub label: String,
    pub msgs_per_s: f64,
    pub secs: f64,
    /// Slow clients stop reading from the start of this step on.
    pub pause_slow: bool,
}

pub struct FanoutCfg {
    pub members: usize,
    pub users: usize,
    pub senders: usize,
    pub steps: Vec<StepSpec>,
    pub body_bytes: usize,
    /// Number of connections (taken from the end, never senders) that stop reading.
    pub slow: usize,
    pub slow_rcvbuf: Option<u32>,
    pub drain_secs: f64,
    /// Longest wait for the backlog after the last step before undelivered messages count as lost.
    pub final_drain_secs: f64,
    pub settle_secs: f64,
    /// Skip the remaining steps once a step is not drained or its p99 exceeds this.
    pub stop_p99_ms: Option<f64>,
    pub connect_concurrency: usize,
    /// Senders toggle reactions instead of posting messages (Hearth only).
    pub reactions: bool,
    /// Clients uploading files during every step (Hearth only): how many, bytes per file,
    /// each one's link speed in MiB/s.
    pub uploads: Option<(usize, usize, f64)>,
}

/// Distinct emoji the reaction senders use on one message (the server's limit is 20).
const EMOJI: [&str; 20] = [
    "👍", "❤️", "😂", "🎉", "😮", "😢", "🔥", "👀", "🚀", "✅", "🙏", "💯", "🤔", "👏", "🍕", "☕",
    "🌟", "🎈", "🐢", "🦀",
];

/// What one reaction sender toggles: a message id and an emoji no other sender uses on it.
#[derive(Clone)]
struct Toggle {
    id: i64,
    emoji: &'static str,
}

#[derive(Default)]
struct Shared {
    hist: Vec<Mutex<Histogram<u64>>>,
    /// Per step: from a message's intended send time to its sender seeing it (the ack).
    ack: Vec<Mutex<Histogram<u64>>>,
    lag: Vec<Mutex<Histogram<u64>>>,
    delivered: Vec<AtomicU64>,
    sent: Vec<AtomicU64>,
    last_delivery_us: Vec<AtomicU64>,
    error_frames: AtomicU64,
    invalid: AtomicU64,
    validated: AtomicU64,
    healthy_closed: AtomicU64,
    send_failures: AtomicU64,
    problem: FirstProblem,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Open,
    Closed(Option<u16>),
    Error(String),
    Eof,
}

struct RecvEnd {
    track: Track,
    slow: bool,
    outcome: Outcome,
    frames_after_resume: u64,
}

fn handle_text(text: &str, track: &mut Track, shared: &Shared, healthy: bool, own: Option<u32>) {
    let sc = scan(text);
    match sc.kind {
        "reaction" => {
            let Some(seq) = sc.id else {
                shared.invalid.fetch_add(1, Relaxed);
                shared
                    .problem
                    .record(format!("reaction frame without seq: {text}"));
                return;
            };
            if track.see(seq) && healthy {
                record_latency(sc.nonce, shared, own);
            }
        }
        "message" => {
            let Some(id) = sc.id else {
                shared.invalid.fetch_add(1, Relaxed);
                shared
                    .problem
                    .record(format!("message frame without id: {text}"));
                return;
            };
            let n = shared.validated.fetch_add(1, Relaxed);
            if n < 64 || n.is_multiple_of(1024) {
                if let Err(e) = validate_message(text, ROOM) {
                    shared.invalid.fetch_add(1, Relaxed);
                    shared
                        .problem
                        .record(format!("invalid message frame ({e}): {text}"));
                }
            }
            if !track.see(id) || !healthy {
                return;
            }
            record_latency(sc.nonce, shared, own);
        }
        "error" => {
            shared.error_frames.fetch_add(1, Relaxed);
            shared.problem.record(format!("error frame: {text}"));
        }
        _ => {} // presence, typing, ...
    }
}

/// Count one delivery of the step its nonce names, with its latency from the intended send
/// time; on the sender's own connection (`own`), that is also its acknowledgement.
fn record_latency(nonce: Option<&str>, shared: &Shared, own: Option<u32>) {
    if let Some(n) = nonce.and_then(Nonce::parse) {
        let step = n.step as usize;
        if step < shared.hist.len() {
            let now = now_us();
            let lat = now.saturating_sub(n.t_us).max(1);
            shared.hist[step].lock().unwrap().saturating_record(lat);
            if own == Some(n.sender) {
                shared.ack[step].lock().unwrap().saturating_record(lat);
            }
            shared.delivered[step].fetch_add(1, Relaxed);
            shared.last_delivery_us[step].fetch_max(now, Relaxed);
        }
    }
}

async fn receive(
    mut stream: SplitStream<Ws>,
    (base, own): (u64, Option<u32>),
    shared: Arc<Shared>,
    slow: bool,
    mut pause: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> RecvEnd {
    let mut track = Track::new(base);
    let mut outcome = Outcome::Open;
    loop {
        if slow && *pause.borrow() {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = pause.changed(), if slow => continue,
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => handle_text(&t, &mut track, &shared, !slow, own),
                Some(Ok(Message::Close(f))) => {
                    outcome = Outcome::Closed(f.map(|f| u16::from(f.code)));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    outcome = Outcome::Error(e.to_string());
                    break;
                }
                None => {
                    outcome = Outcome::Eof;
                    break;
                }
            }
        }
    }
    if !slow {
        if outcome != Outcome::Open {
            shared.healthy_closed.fetch_add(1, Relaxed);
            shared
                .problem
                .record(format!("a healthy receiver was disconnected: {outcome:?}"));
        }
        return RecvEnd {
            track,
            slow,
            outcome,
            frames_after_resume: 0,
        };
    }
    // Slow client: stop reading until the end of the run, then see what the server did.
    let mut frames = 0;
    if outcome == Outcome::Open {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Close(f)))) => {
                    outcome = Outcome::Closed(f.map(|f| u16::from(f.code)));
                    break;
                }
                Ok(Some(Ok(_))) => frames += 1,
                Ok(Some(Err(e))) => {
                    outcome = Outcome::Error(e.to_string());
                    break;
                }
                Ok(None) => {
                    outcome = Outcome::Eof;
                    break;
                }
            }
        }
    }
    RecvEnd {
        track,
        slow,
        outcome,
        frames_after_resume: frames,
    }
}

type Sink = Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>;

/// What a sender sends on each tick: a message with this body, or a toggle of its reaction.
#[derive(Clone)]
enum Payload {
    Message(Arc<String>),
    Reaction(Toggle),
}

/// Sends the frames of one step on one connection when the pacer says so.
async fn send_step(
    sink: Sink,
    (sender, step): (u32, usize),
    mut ticks: mpsc::UnboundedReceiver<(u64, u64)>,
    payload: Payload,
    shared: Arc<Shared>,
    on: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut sink = sink.lock().await;
    while let Some((seq, t)) = ticks.recv().await {
        let lag = now_us().saturating_sub(t).max(1);
        shared.lag[step].lock().unwrap().saturating_record(lag);
        let nonce = Nonce {
            step: step as u32,
            sender,
            seq,
            t_us: t,
        }
        .encode();
        let frame = match &payload {
            Payload::Message(body) => send_frame(ROOM, body, &nonce),
            Payload::Reaction(Toggle { id, emoji }) => {
                // Alternate on and off, so that every frame is a change.
                let now_on = !on.fetch_xor(true, Relaxed);
                format!(
                    r#"{{"type":"react","id":{id},"emoji":"{emoji}","on":{now_on},"nonce":"{nonce}"}}"#
                )
            }
        };
        if let Err(e) = send_text(&mut *sink, frame).await {
            shared.send_failures.fetch_add(1, Relaxed);
            shared.problem.record(format!("send failed: {e}"));
            break;
        }
        shared.sent[step].fetch_add(1, Relaxed);
    }
}

/// The open-loop schedule, kept on its own OS thread because `thread::sleep` is far more precise
/// than the runtime's 1 ms timer: message g is due at start + g / rate and goes to sender g % S.
fn pacer(
    senders: Vec<mpsc::UnboundedSender<(u64, u64)>>,
    start_us: u64,
    end_us: u64,
    msgs_per_s: f64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let n = senders.len() as u64;
        let gap = 1e6 / msgs_per_s;
        let mut g = 0u64;
        loop {
            let t = start_us + (g as f64 * gap) as u64;
            if t >= end_us {
                break;
            }
            let now = now_us();
            if t > now {
                std::thread::sleep(Duration::from_micros(t - now));
            }
            if senders[(g % n) as usize].send((g / n, t)).is_err() {
                break;
            }
            g += 1;
        }
    })
}

pub async fn run(
    t: &Target,
    cfg: &FanoutCfg,
    accounts: &[Account],
    report: &mut Report,
) -> Res<()> {
    let pid = t.server_pid;
    let nsteps = cfg.steps.len();
    let shared = Arc::new(Shared {
        hist: (0..nsteps).map(|_| Mutex::new(new_hist())).collect(),
        ack: (0..nsteps).map(|_| Mutex::new(new_hist())).collect(),
        lag: (0..nsteps).map(|_| Mutex::new(new_hist())).collect(),
        delivered: (0..nsteps).map(|_| AtomicU64::new(0)).collect(),
        sent: (0..nsteps).map(|_| AtomicU64::new(0)).collect(),
        last_delivery_us: (0..nsteps).map(|_| AtomicU64::new(0)).collect(),
        ..Default::default()
    });
    let members = cfg.members;
    let senders = cfg.senders.min(members).max(1);
    let slow = cfg.slow.min(members - senders);
    let healthy = (members - slow) as u64;
    let rss0 = pid.and_then(rss_kib).map(|r| r.0).unwrap_or(0);

    let toggles = if cfg.reactions {
        post_targets(t, &accounts[0], senders).await?
    } else {
        Vec::new()
    };
    let t0 = std::time::Instant::now();
    let rcvbuf = cfg.slow_rcvbuf;
    let conns = client::connect_many_on(
        t,
        accounts,
        members,
        cfg.connect_concurrency,
        |i| ConnectOpts {
            rcvbuf: if i >= members - slow { rcvbuf } else { None },
        },
        |i| {
            (i < senders)
                .then(|| SENDER_RUNTIME.get().cloned())
                .flatten()
        },
    )
    .await?;
    let connect_secs = t0.elapsed().as_secs_f64();

    let (pause_tx, pause_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sinks: Vec<Sink> = Vec::with_capacity(senders);
    let mut idle_sinks = Vec::with_capacity(members);
    let mut receivers = Vec::with_capacity(members);
    let mut pre_ready = 0;
    for (i, (ws, ready)) in conns.into_iter().enumerate() {
        pre_ready += ready.frames_before_ready;
        let (sink, stream) = ws.split();
        if i < senders {
            sinks.push(Arc::new(tokio::sync::Mutex::new(sink)));
        } else {
            idle_sinks.push(sink);
        }
        receivers.push(spawn_on(
            i < senders,
            receive(
                stream,
                (ready.last_id, (i < senders).then_some(i as u32)),
                shared.clone(),
                i >= members - slow,
                pause_rx.clone(),
                stop_rx.clone(),
            ),
        ));
    }
    // Let presence traffic from the connection phase settle.
    tokio::time::sleep(Duration::from_secs_f64(cfg.settle_secs)).await;
    let rss_connected = pid.and_then(rss_kib).map(|r| r.0).unwrap_or(0);

    // Server RSS sampler (max per step).
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = pid.map(|pid| {
        let rss_max = rss_max.clone();
        tokio::spawn(async move {
            loop {
                if let Some((rss, _)) = rss_kib(pid) {
                    rss_max.fetch_max(rss, Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    });

    let body = Arc::new(make_body(cfg.body_bytes, 7));
    // Each reaction sender's state (on or off) carries over from one step to the next.
    let reacted: Vec<_> = (0..senders)
        .map(|_| Arc::new(std::sync::atomic::AtomicBool::new(false)))
        .collect();
    let mut p99_by_step = Vec::new();
    for (si, step) in cfg.steps.iter().enumerate() {
        if step.pause_slow && !*pause_tx.borrow() {
            let _ = pause_tx.send(true);
        }
        rss_max.store(pid.and_then(rss_kib).map(|r| r.0).unwrap_or(0), Relaxed);
        let mark = CpuMark::now(pid);
        let start_us = now_us() + 20_000;
        let end_us = start_us + (step.secs * 1e6) as u64;
        let mut tasks = Vec::with_capacity(senders);
        let mut txs = Vec::with_capacity(senders);
        for (j, sink) in sinks.iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            txs.push(tx);
            let payload = match toggles.get(j) {
                Some(toggle) => Payload::Reaction(toggle.clone()),
                None => Payload::Message(body.clone()),
            };
            tasks.push(spawn_on(
                true,
                send_step(
                    sink.clone(),
                    (j as u32, si),
                    rx,
                    payload,
                    shared.clone(),
                    reacted[j].clone(),
                ),
            ));
        }
        let uploading = match cfg.uploads.filter(|_| !t.raw) {
            Some(spec) => {
                let (stop, stop_rx) = watch::channel(false);
                let (tally, tasks) = crate::uploads::start(t, accounts, spec, stop_rx);
                Some((stop, tally, tasks))
            }
            None => None,
        };
        let pacer = pacer(txs, start_us, end_us, step.msgs_per_s);
        for task in tasks {
            task.await?;
        }
        let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
        let uploaded = match uploading {
            Some((stop, tally, tasks)) => {
                let _ = stop.send(true);
                for t in tasks {
                    let _ = t.await;
                }
                Some(tally)
            }
            None => None,
        };
        // Drain: wait until every healthy receiver has every message of this step.
        let drain_deadline = std::time::Instant::now() + Duration::from_secs_f64(cfg.drain_secs);
        let sent = shared.sent[si].load(Relaxed);
        let mut drained;
        loop {
            let alive = healthy - shared.healthy_closed.load(Relaxed);
            drained = shared.delivered[si].load(Relaxed) >= sent * alive;
            if drained || std::time::Instant::now() >= drain_deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (wall, server_cpu, client_cpu) = mark.since(pid);
        let delivered = shared.delivered[si].load(Relaxed);
        let last = shared.last_delivery_us[si].load(Relaxed);
        let active_secs = (last.saturating_sub(start_us) as f64 / 1e6).max(step.secs);
        let hist = shared.hist[si].lock().unwrap().clone();
        let lag = shared.lag[si].lock().unwrap().clone();
        let mut m = vec![
            ("target_dps".to_string(), step.msgs_per_s * members as f64),
            ("msgs_per_s".to_string(), sent as f64 / step.secs),
            ("delivered".to_string(), delivered as f64),
            ("achieved_dps".to_string(), delivered as f64 / active_secs),
        ];
        push_quantiles(&mut m, &hist);
        let p99 = crate::util::quantiles_ms(&hist)[2];
        p99_by_step.push(p99);
        m.push(("send_lag_p99_ms".into(), crate::util::quantiles_ms(&lag)[2]));
        let ack = shared.ack[si].lock().unwrap().clone();
        let [ack_p50, _, ack_p99, _, _] = crate::util::quantiles_ms(&ack);
        m.push(("ack_p50_ms".into(), ack_p50));
        m.push(("ack_p99_ms".into(), ack_p99));
        if let Some(tally) = &uploaded {
            let done = tally.done.load(Relaxed);
            m.push(("uploads".into(), done as f64));
            m.push((
                "upload_mib_per_s".into(),
                tally.bytes.load(Relaxed) as f64 / (1024.0 * 1024.0) / step.secs,
            ));
            m.push(("upload_failures".into(), tally.failed.load(Relaxed) as f64));
            if let Some(h) = tally.took.lock().unwrap().as_ref() {
                m.push(("upload_p50_ms".into(), crate::util::quantiles_ms(h)[0]));
            }
            if let Some(p) = tally.problem.lock().unwrap().as_ref() {
                report.notes.push(format!("an upload failed: {p}"));
            }
        }
        if let Some(c) = server_cpu {
            m.push(("server_cpu_pct".into(), 100.0 * c / wall));
            if delivered > 0 {
                m.push(("cpu_us_per_delivery".into(), c * 1e6 / delivered as f64));
            }
        }
        m.push(("client_cpu_pct".into(), 100.0 * client_cpu / wall));
        m.extend(mark.core_metrics());
        if pid.is_some() {
            m.push(("rss_max_mib".into(), rss_max.load(Relaxed) as f64 / 1024.0));
        }
        m.push(("drained".into(), if drained { 1.0 } else { 0.0 }));
        report.rows.push(Row {
            label: step.label.clone(),
            metrics: m,
        });
        if let Some(limit) = cfg.stop_p99_ms {
            if !drained || p99 > limit {
                let skipped = cfg.steps.len() - si - 1;
                if skipped > 0 {
                    report.notes.push(format!(
                        "stopped after step {}: {} (p99 {p99:.1} ms); {skipped} higher steps skipped",
                        step.label,
                        if drained { "p99 over the limit" } else { "not drained" },
                    ));
                }
                break;
            }
        }
    }
    // Final drain before counting: a message not delivered within this time counts as lost.
    let total_sent: u64 = shared.sent.iter().map(|s| s.load(Relaxed)).sum();
    let t_final = std::time::Instant::now();
    let final_deadline = t_final + Duration::from_secs_f64(cfg.final_drain_secs);
    loop {
        let alive = healthy - shared.healthy_closed.load(Relaxed);
        let delivered: u64 = shared.delivered.iter().map(|d| d.load(Relaxed)).sum();
        if delivered >= total_sent * alive || std::time::Instant::now() >= final_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    report
        .info
        .push(("final_drain_secs".into(), t_final.elapsed().as_secs_f64()));
    let rss_end = pid.and_then(rss_kib).map(|r| r.0).unwrap_or(0);
    let _ = stop_tx.send(true);
    let mut tracks = Vec::with_capacity(members);
    let mut slow_ends = Vec::new();
    for r in receivers {
        let end = r.await?;
        if end.slow {
            slow_ends.push(end);
        } else {
            tracks.push(end.track);
        }
    }
    if let Some(s) = sampler {
        s.abort();
    }
    drop(idle_sinks);
    drop(sinks);
    let (d, unacked) = account(&tracks, total_sent);

    report.info.push(("connect_secs".into(), connect_secs));
    if pid.is_some() {
        report
            .info
            .push(("rss_before_mib".into(), rss0 as f64 / 1024.0));
        report
            .info
            .push(("rss_connected_mib".into(), rss_connected as f64 / 1024.0));
        report
            .info
            .push(("rss_end_mib".into(), rss_end as f64 / 1024.0));
    }
    report
        .info
        .push(("messages_sent".into(), total_sent as f64));
    report
        .info
        .push(("deliveries_checked".into(), d.delivered as f64));
    report
        .info
        .push(("distinct_messages".into(), d.messages as f64));
    report.info.push((
        "frames_validated".into(),
        shared.validated.load(Relaxed) as f64,
    ));
    if slow > 0 && p99_by_step.len() >= 2 && p99_by_step[0] > 0.0 {
        report.info.push((
            "healthy_p99_ratio".into(),
            p99_by_step[p99_by_step.len() - 1] / p99_by_step[0],
        ));
    }
    if slow > 0 {
        let count = |f: &dyn Fn(&Outcome) -> bool| {
            slow_ends.iter().filter(|e| f(&e.outcome)).count() as f64
        };
        report.info.push(("slow_clients".into(), slow as f64));
        report.info.push((
            "slow_closed_4008".into(),
            count(&|o| *o == Outcome::Closed(Some(4008))),
        ));
        report.info.push((
            "slow_closed_other".into(),
            count(&|o| matches!(o, Outcome::Closed(c) if *c != Some(4008))),
        ));
        report.info.push((
            "slow_reset".into(),
            count(&|o| matches!(o, Outcome::Error(_))),
        ));
        report
            .info
            .push(("slow_eof".into(), count(&|o| *o == Outcome::Eof)));
        report
            .info
            .push(("slow_still_open".into(), count(&|o| *o == Outcome::Open)));
        let disconnected = slow_ends
            .iter()
            .filter(|e| e.outcome != Outcome::Open)
            .count();
        report
            .info
            .push(("slow_disconnected".into(), disconnected as f64));
        let frames: u64 = slow_ends.iter().map(|e| e.frames_after_resume).sum();
        report
            .info
            .push(("slow_frames_read_at_end".into(), frames as f64));
        if let Some(e) = slow_ends.iter().find_map(|e| match &e.outcome {
            Outcome::Error(s) => Some(s.clone()),
            _ => None,
        }) {
            report
                .notes
                .push(format!("a slow client's connection ended with: {e}"));
        }
    }
    report.checks.push(("lost".into(), d.lost));
    report.checks.push(("duplicated".into(), d.dup));
    report.checks.push(("reordered".into(), d.reordered));
    report.checks.push(("unacked".into(), unacked));
    report.checks.push(("stale".into(), d.stale));
    report
        .checks
        .push(("error_frames".into(), shared.error_frames.load(Relaxed)));
    report
        .checks
        .push(("invalid_frames".into(), shared.invalid.load(Relaxed)));
    report.checks.push((
        "healthy_disconnects".into(),
        shared.healthy_closed.load(Relaxed),
    ));
    report
        .checks
        .push(("send_failures".into(), shared.send_failures.load(Relaxed)));
    report
        .checks
        .push(("frames_before_ready".into(), pre_ready));
    shared.problem.note(report);
    Ok(())
}

/// Post the messages the reaction senders react to (one per 20 senders, over HTTP as
/// `account`) and give each sender its message and emoji.
async fn post_targets(t: &Target, account: &Account, senders: usize) -> Res<Vec<Toggle>> {
    let http = t.http()?;
    let token = account
        .token
        .as_deref()
        .ok_or("reactions need Hearth accounts")?;
    let mut ids = Vec::new();
    for i in 0..senders.div_ceil(EMOJI.len()) {
        let resp = http
            .post(format!("{}/api/rooms/{ROOM}/messages", t.base))
            .bearer_auth(token)
            .json(&serde_json::json!({ "body": format!("react to me ({i})") }))
            .send()
            .await?;
        if resp.status().as_u16() != 201 {
            return Err(format!("posting a message to react to: {}", resp.status()).into());
        }
        let v: serde_json::Value = resp.json().await?;
        ids.push(v["message"]["id"].as_i64().ok_or("no message id")?);
    }
    Ok((0..senders)
        .map(|j| Toggle {
            id: ids[j / EMOJI.len()],
            emoji: EMOJI[j % EMOJI.len()],
        })
        .collect())
}
