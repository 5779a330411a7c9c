//! `ingest`: closed-loop senders. Each client keeps `window` messages in flight and sends the
//! next one only when the server acknowledges one (its own `message` echo, which Hearth sends
//! only after the database commit). Measures acknowledged messages/s and ack latency.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Account, ConnectOpts, Target, Ws, ROOM};
use crate::util::{
    account, instant_at, make_body, new_hist, now_us, push_quantiles, scan, send_frame,
    validate_message, CpuMark, FirstProblem, Nonce, Report, Res, Row, Track,
};

pub struct IngestCfg {
    pub clients: usize,
    pub window: usize,
    pub secs: f64,
    pub warmup: f64,
    pub body_bytes: usize,
}

#[derive(Default)]
struct Shared {
    hist: Mutex<Option<Histogram<u64>>>,
    acked_in_window: AtomicU64,
    sent: AtomicU64,
    distinct: AtomicU64,
    finished_senders: AtomicU64,
    error_frames: AtomicU64,
    invalid: AtomicU64,
    validated: AtomicU64,
    disconnects: AtomicU64,
    timeouts: AtomicU64,
    problem: FirstProblem,
}

#[allow(clippy::too_many_arguments)]
async fn client_loop(
    mut ws: Ws,
    base: u64,
    idx: u32,
    window: usize,
    body: Arc<String>,
    start_us: u64,
    measure_us: u64,
    end_us: u64,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Track {
    let mut track = Track::new(base);
    let mut outstanding = 0usize;
    let mut seq = 0u64;
    let mut done_sending = false;
    let mut local_hist = new_hist();
    tokio::time::sleep_until(instant_at(start_us).into()).await;
    'outer: loop {
        // Top up the window.
        while !done_sending && outstanding < window {
            let now = now_us();
            if now >= end_us {
                break;
            }
            let nonce = Nonce {
                step: 0,
                sender: idx,
                seq,
                t_us: now,
            }
            .encode();
            if let Err(e) = ws
                .send(Message::text(send_frame(ROOM, &body, &nonce)))
                .await
            {
                shared.problem.record(format!("send failed: {e}"));
                shared.disconnects.fetch_add(1, Relaxed);
                break 'outer;
            }
            shared.sent.fetch_add(1, Relaxed);
            outstanding += 1;
            seq += 1;
        }
        if !done_sending && outstanding == 0 && now_us() >= end_us {
            done_sending = true;
            shared.finished_senders.fetch_add(1, Relaxed);
        }
        let msg = tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = tokio::time::timeout(Duration::from_secs(10), ws.next()) => m,
        };
        let text = match msg {
            Err(_) => {
                if !done_sending {
                    shared.timeouts.fetch_add(1, Relaxed);
                    shared.problem.record(format!(
                        "client {idx}: no frame for 10 s with {outstanding} messages unacknowledged"
                    ));
                    done_sending = true;
                    shared.finished_senders.fetch_add(1, Relaxed);
                }
                continue;
            }
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Close(f)))) => {
                shared.disconnects.fetch_add(1, Relaxed);
                shared
                    .problem
                    .record(format!("client {idx} closed by server: {f:?}"));
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => {
                shared.disconnects.fetch_add(1, Relaxed);
                shared.problem.record(format!("client {idx}: {e}"));
                break;
            }
            Ok(None) => {
                shared.disconnects.fetch_add(1, Relaxed);
                shared
                    .problem
                    .record(format!("client {idx}: connection ended"));
                break;
            }
        };
        let sc = scan(&text);
        match sc.kind {
            "message" => {
                let n = shared.validated.fetch_add(1, Relaxed);
                if n < 64 || n.is_multiple_of(1024) {
                    if let Err(e) = validate_message(&text, ROOM) {
                        shared.invalid.fetch_add(1, Relaxed);
                        shared
                            .problem
                            .record(format!("invalid message frame ({e}): {text}"));
                    }
                }
                let Some(id) = sc.id else {
                    shared.invalid.fetch_add(1, Relaxed);
                    continue;
                };
                if track.see(id) {
                    shared.distinct.fetch_add(1, Relaxed);
                }
                if let Some(n) = sc.nonce.and_then(Nonce::parse) {
                    if n.sender == idx && outstanding > 0 {
                        outstanding -= 1;
                        let now = now_us();
                        if now >= measure_us && now < end_us {
                            local_hist.saturating_record(now.saturating_sub(n.t_us).max(1));
                            shared.acked_in_window.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            "error" => {
                shared.error_frames.fetch_add(1, Relaxed);
                shared.problem.record(format!("error frame: {text}"));
                outstanding = outstanding.saturating_sub(1);
            }
            _ => {}
        }
    }
    if !done_sending {
        shared.finished_senders.fetch_add(1, Relaxed);
    }
    {
        let mut h = shared.hist.lock().unwrap();
        match h.as_mut() {
            Some(h) => h.add(&local_hist).expect("same bounds"),
            None => *h = Some(local_hist),
        }
    }
    client::close_quietly(ws).await;
    track
}

pub async fn run(
    t: &Target,
    cfg: &IngestCfg,
    accounts: &[Account],
    report: &mut Report,
) -> Res<()> {
    let pid = t.server_pid;
    let conns = client::connect_many(t, accounts, cfg.clients, 64, |_| ConnectOpts {
        rcvbuf: None,
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shared = Arc::new(Shared::default());
    let body = Arc::new(make_body(cfg.body_bytes, 3));
    let start_us = now_us() + 50_000;
    let measure_us = start_us + (cfg.warmup * 1e6) as u64;
    let end_us = measure_us + (cfg.secs * 1e6) as u64;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (i, (ws, ready)) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(client_loop(
            ws,
            ready.last_id,
            i as u32,
            cfg.window,
            body.clone(),
            start_us,
            measure_us,
            end_us,
            shared.clone(),
            stop_rx.clone(),
        )));
    }
    tokio::time::sleep_until(instant_at(measure_us).into()).await;
    let mark = CpuMark::now(pid);
    tokio::time::sleep_until(instant_at(end_us).into()).await;
    let (wall, server_cpu, client_cpu) = mark.since(pid);
    // Let every client finish its window and receive everybody's messages.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let clients = cfg.clients as u64;
    while std::time::Instant::now() < deadline {
        let sent = shared.sent.load(Relaxed);
        if shared.finished_senders.load(Relaxed) >= clients
            && shared.distinct.load(Relaxed) >= sent * (clients - shared.disconnects.load(Relaxed))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let mut tracks = Vec::new();
    for task in tasks {
        tracks.push(task.await?);
    }
    let sent = shared.sent.load(Relaxed);
    let (d, unacked) = account(&tracks, sent);
    let hist = shared.hist.lock().unwrap().take().unwrap_or_else(new_hist);
    let acked = shared.acked_in_window.load(Relaxed);
    let mut m = vec![
        ("acked_per_s".to_string(), acked as f64 / cfg.secs),
        (
            "deliveries_per_s".to_string(),
            acked as f64 * cfg.clients as f64 / cfg.secs,
        ),
    ];
    push_quantiles(&mut m, &hist);
    if let Some(c) = server_cpu {
        m.push(("server_cpu_pct".into(), 100.0 * c / wall));
        if acked > 0 {
            m.push(("cpu_us_per_msg".into(), c * 1e6 / acked as f64));
        }
    }
    m.push(("client_cpu_pct".into(), 100.0 * client_cpu / wall));
    m.extend(mark.core_metrics());
    report.rows.push(Row {
        label: format!("{}x{} closed loop", cfg.clients, cfg.window),
        metrics: m,
    });
    report.info.push(("messages_sent".into(), sent as f64));
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
    report
        .checks
        .push(("disconnects".into(), shared.disconnects.load(Relaxed)));
    report
        .checks
        .push(("ack_timeouts".into(), shared.timeouts.load(Relaxed)));
    shared.problem.note(report);
    Ok(())
}
