//! `idle`: open C authenticated connections and measure the server's resident memory per
//! connection, idle and after every connection has received a few messages.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, send_text, Account, ConnectOpts, Target, Ws, ROOM};
use crate::util::{
    account, make_body, new_hist, now_us, push_quantiles, rss_kib, scan, send_frame,
    validate_message, CpuMark, FirstProblem, Nonce, Report, Res, Row, Track,
};

pub struct IdleCfg {
    pub conns: usize,
    pub settle_secs: f64,
    pub messages: usize,
    pub body_bytes: usize,
    pub concurrency: usize,
}

#[derive(Default)]
struct Shared {
    distinct: AtomicU64,
    closed: AtomicU64,
    error_frames: AtomicU64,
    invalid: AtomicU64,
    validated: AtomicU64,
    hist: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    problem: FirstProblem,
}

async fn reader(
    mut stream: SplitStream<Ws>,
    base: u64,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Track {
    let mut track = Track::new(base);
    loop {
        let m = tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = stream.next() => m,
        };
        match m {
            Some(Ok(Message::Text(text))) => {
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
                        if let Some(id) = sc.id {
                            if track.see(id) {
                                shared.distinct.fetch_add(1, Relaxed);
                                if let Some(n) = sc.nonce.and_then(Nonce::parse) {
                                    let lat = now_us().saturating_sub(n.t_us).max(1);
                                    let mut h = shared.hist.lock().unwrap();
                                    h.get_or_insert_with(new_hist).saturating_record(lat);
                                }
                            }
                        }
                    }
                    "error" => {
                        shared.error_frames.fetch_add(1, Relaxed);
                        shared.problem.record(format!("error frame: {text}"));
                    }
                    _ => {}
                }
            }
            Some(Ok(Message::Close(f))) => {
                shared.closed.fetch_add(1, Relaxed);
                shared
                    .problem
                    .record(format!("connection closed by server: {f:?}"));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                shared.closed.fetch_add(1, Relaxed);
                shared.problem.record(format!("connection error: {e}"));
                break;
            }
            None => {
                shared.closed.fetch_add(1, Relaxed);
                shared.problem.record("connection ended".into());
                break;
            }
        }
    }
    track
}

fn rss(pid: Option<u32>) -> (f64, f64) {
    pid.and_then(rss_kib)
        .map(|(r, h)| (r as f64, h as f64))
        .unwrap_or((0.0, 0.0))
}

pub async fn run(t: &Target, cfg: &IdleCfg, accounts: &[Account], report: &mut Report) -> Res<()> {
    let pid = t.server_pid;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss0, _) = rss(pid);
    let mark = CpuMark::now(pid);
    let t0 = Instant::now();
    let conns = client::connect_many(t, accounts, cfg.conns, cfg.concurrency, |_| ConnectOpts {
        rcvbuf: None,
    })
    .await?;
    let connect_secs = t0.elapsed().as_secs_f64();
    let (_, connect_cpu, _) = mark.since(pid);
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sinks = Vec::with_capacity(conns.len());
    let mut tasks = Vec::with_capacity(conns.len());
    for (ws, ready) in conns {
        let (sink, stream) = ws.split();
        sinks.push(sink);
        tasks.push(tokio::spawn(reader(
            stream,
            ready.last_id,
            shared.clone(),
            stop_rx.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs_f64(cfg.settle_secs)).await;
    let (rss1, _) = rss(pid);

    // Traffic: a few messages from one connection to everybody.
    let body = make_body(cfg.body_bytes, 11);
    let t1 = Instant::now();
    let mut sent = 0u64;
    for seq in 0..cfg.messages {
        let nonce = Nonce {
            step: 0,
            sender: 0,
            seq: seq as u64,
            t_us: now_us(),
        }
        .encode();
        send_text(&mut sinks[0], send_frame(ROOM, &body, &nonce)).await?;
        sent += 1;
    }
    let expected = sent * cfg.conns as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.distinct.load(Relaxed) < expected && Instant::now() < deadline {
        if shared.closed.load(Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let broadcast_secs = t1.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(cfg.settle_secs)).await;
    let (rss2, hwm2) = rss(pid);
    let _ = stop_tx.send(true);
    let mut tracks = Vec::with_capacity(tasks.len());
    for task in tasks {
        tracks.push(task.await?);
    }
    drop(sinks);
    let (d, unacked) = account(&tracks, sent);
    let n = cfg.conns as f64;
    let mut m = vec![("connections".to_string(), n)];
    if pid.is_some() {
        m.extend([
            ("rss_before_mib".to_string(), rss0 / 1024.0),
            ("rss_idle_mib".to_string(), rss1 / 1024.0),
            ("kib_per_conn_idle".to_string(), (rss1 - rss0) / n),
            ("rss_after_traffic_mib".to_string(), rss2 / 1024.0),
            ("kib_per_conn_after".to_string(), (rss2 - rss0) / n),
            ("hwm_mib".to_string(), hwm2 / 1024.0),
        ]);
        if let Some(c) = connect_cpu {
            m.push(("connect_cpu_ms_per_conn".into(), c * 1000.0 / n));
        }
    }
    m.push(("connects_per_s".into(), n / connect_secs));
    m.push(("broadcast_secs".into(), broadcast_secs));
    report.rows.push(Row {
        label: format!("{} idle conns", cfg.conns),
        metrics: m,
    });
    let hist = shared.hist.lock().unwrap().take().unwrap_or_else(new_hist);
    let mut lat = Vec::new();
    push_quantiles(&mut lat, &hist);
    for (k, v) in lat {
        report.info.push((format!("traffic_{k}"), v));
    }
    report.info.push(("messages_sent".into(), sent as f64));
    report
        .info
        .push(("deliveries_checked".into(), d.delivered as f64));
    report
        .info
        .push(("distinct_messages".into(), d.messages as f64));
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
        .push(("disconnects".into(), shared.closed.load(Relaxed)));
    shared.problem.note(report);
    Ok(())
}
