//! `fill`: bring room `general` up to N messages through the normal WebSocket ingest path.
//! `history`: fill, then hammer the history routes with concurrent HTTP clients.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Account, ConnectOpts, Target, Ws, ROOM};
use crate::util::{
    err, make_body, new_hist, push_quantiles, scan, send_frame, CpuMark, FirstProblem, Nonce,
    Report, Res, Row,
};

pub struct FillCfg {
    pub messages: u64,
    pub conns: usize,
    pub window: usize,
}

pub struct FillStats {
    pub before: u64,
    pub after: u64,
    pub secs: f64,
}

async fn fill_conn(
    mut ws: Ws,
    idx: u32,
    share: u64,
    window: usize,
    progress: Arc<AtomicU64>,
) -> Res<u64> {
    let mut sent = 0u64;
    let mut acked = 0u64;
    let mut max_id = 0u64;
    while acked < share {
        while sent < share && sent - acked < window as u64 {
            let body = make_body(
                20 + (sent as usize * 37 + idx as usize * 11) % 140,
                sent ^ ((idx as u64) << 40),
            );
            let nonce = Nonce {
                step: 0,
                sender: idx,
                seq: sent,
                t_us: 0,
            }
            .encode();
            ws.feed(Message::text(send_frame(ROOM, &body, &nonce)))
                .await?;
            sent += 1;
        }
        ws.flush().await?;
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| format!("fill: no frame for 30 s ({acked}/{share} acknowledged)"))?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                let sc = scan(&t);
                match sc.kind {
                    "message" => {
                        if let Some(id) = sc.id {
                            max_id = max_id.max(id);
                        }
                        if sc
                            .nonce
                            .and_then(Nonce::parse)
                            .is_some_and(|n| n.sender == idx)
                        {
                            acked += 1;
                            progress.fetch_add(1, Relaxed);
                        }
                    }
                    "error" => return err(format!("fill: server refused a message: {t}")),
                    _ => {}
                }
            }
            Some(Ok(Message::Close(f))) => return err(format!("fill: connection closed: {f:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return err("fill: connection ended"),
        }
    }
    client::close_quietly(ws).await;
    Ok(max_id)
}

/// Send messages until the newest id reaches `cfg.messages` (ids start at 1 on a fresh database).
pub async fn fill(t: &Target, cfg: &FillCfg, accounts: &[Account]) -> Res<FillStats> {
    let conns =
        client::connect_many(t, accounts, cfg.conns, 16, |_| ConnectOpts { rcvbuf: None }).await?;
    let before = conns.iter().map(|(_, r)| r.last_id).max().unwrap_or(0);
    let need = cfg.messages.saturating_sub(before);
    let t0 = Instant::now();
    if need == 0 {
        for (ws, _) in conns {
            client::close_quietly(ws).await;
        }
        return Ok(FillStats {
            before,
            after: before,
            secs: 0.0,
        });
    }
    let progress = Arc::new(AtomicU64::new(0));
    let n = conns.len() as u64;
    let mut tasks = Vec::new();
    for (i, (ws, _)) in conns.into_iter().enumerate() {
        let share = need / n + u64::from((i as u64) < need % n);
        tasks.push(tokio::spawn(fill_conn(
            ws,
            i as u32,
            share,
            cfg.window,
            progress.clone(),
        )));
    }
    let reporter = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let p = progress.load(Relaxed);
                eprintln!(
                    "fill: {p}/{need} messages ({:.0}/s)",
                    p as f64 / t0.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut after = before;
    for task in tasks {
        after = after.max(task.await??);
    }
    reporter.abort();
    Ok(FillStats {
        before,
        after,
        secs: t0.elapsed().as_secs_f64(),
    })
}

pub struct HistoryCfg {
    pub fill: FillCfg,
    pub clients: usize,
    pub secs: f64,
    pub limit: u32,
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    http_errors: AtomicU64,
    invalid: AtomicU64,
    problem: FirstProblem,
}

fn check_page(body: &str, limit: u32, before: Option<u64>, last_id: u64) -> Result<(), String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let msgs = v["messages"].as_array().ok_or("no messages array")?;
    let ids: Vec<u64> = msgs.iter().filter_map(|m| m["id"].as_u64()).collect();
    if ids.len() != msgs.len() {
        return Err("message without id".into());
    }
    if !ids.windows(2).all(|w| w[0] < w[1]) {
        return Err("ids not ascending (oldest first)".into());
    }
    let top = before.map(|b| b - 1).unwrap_or(last_id);
    if top > 2 * limit as u64 && ids.len() != limit as usize {
        return Err(format!("{} messages, expected {limit}", ids.len()));
    }
    if ids.len() > limit as usize {
        return Err(format!("{} messages for limit {limit}", ids.len()));
    }
    if let Some(&newest) = ids.last() {
        if newest > top || (before.is_none() && newest != last_id) {
            return Err(format!("newest id {newest}, expected {top}"));
        }
    }
    for m in msgs {
        if m["room"] != ROOM
            || !m["body"].is_string()
            || !m["ts"].is_string()
            || !m["user"].is_string()
        {
            return Err(format!("malformed message {m}"));
        }
    }
    Ok(())
}

async fn hammer(
    t: &Target,
    token: Option<String>,
    cfg: &HistoryCfg,
    last_id: u64,
    paging: bool,
) -> Res<Row> {
    let http = t.http()?;
    let counters = Arc::new(Counters::default());
    let hist = Arc::new(Mutex::new(new_hist()));
    let pid = t.server_pid;
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(cfg.secs);
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let (http, counters, hist, token) =
            (http.clone(), counters.clone(), hist.clone(), token.clone());
        let base = format!("{}/api/rooms/{ROOM}/messages", t.base);
        let limit = cfg.limit;
        tasks.push(tokio::spawn(async move {
            let mut local = new_hist();
            let mut x: u64 = 0x9E3779B97F4A7C15 ^ (c as u64 + 1).wrapping_mul(0xBF58476D1CE4E5B9);
            let mut n = 0u64;
            tokio::time::sleep_until(start.into()).await;
            while Instant::now() < end {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let before = if paging && last_id > 1 {
                    Some(2 + x % (last_id - 1))
                } else {
                    None
                };
                let url = match before {
                    Some(b) => format!("{base}?before={b}&limit={limit}"),
                    None => format!("{base}?limit={limit}"),
                };
                let mut req = http.get(&url);
                if let Some(tok) = &token {
                    req = req.bearer_auth(tok);
                }
                let t0 = Instant::now();
                let resp = req.send().await;
                let result = match resp {
                    Ok(r) if r.status().as_u16() == 200 => {
                        r.text().await.map_err(|e| e.to_string())
                    }
                    Ok(r) => {
                        let status = r.status();
                        Err(format!("{status}: {}", r.text().await.unwrap_or_default()))
                    }
                    Err(e) => Err(e.to_string()),
                };
                let lat = t0.elapsed().as_micros() as u64;
                match result {
                    Ok(body) => {
                        local.saturating_record(lat.max(1));
                        counters.ok.fetch_add(1, Relaxed);
                        if n.is_multiple_of(64) {
                            if let Err(e) = check_page(&body, limit, before, last_id) {
                                counters.invalid.fetch_add(1, Relaxed);
                                counters.problem.record(format!("GET {url}: {e}"));
                            }
                        }
                    }
                    Err(e) => {
                        counters.http_errors.fetch_add(1, Relaxed);
                        counters.problem.record(format!("GET {url}: {e}"));
                    }
                }
                n += 1;
            }
            hist.lock().unwrap().add(&local).expect("same bounds");
        }));
    }
    tokio::time::sleep_until(start.into()).await;
    let mark = CpuMark::now(pid);
    for task in tasks {
        task.await?;
    }
    let (wall, server_cpu, client_cpu) = mark.since(pid);
    let ok = counters.ok.load(Relaxed);
    let mut m = vec![("req_per_s".to_string(), ok as f64 / wall)];
    push_quantiles(&mut m, &hist.lock().unwrap());
    if let Some(c) = server_cpu {
        m.push(("server_cpu_pct".into(), 100.0 * c / wall));
        if ok > 0 {
            m.push(("cpu_us_per_req".into(), c * 1e6 / ok as f64));
        }
    }
    m.push(("client_cpu_pct".into(), 100.0 * client_cpu / wall));
    m.extend(mark.core_metrics());
    m.push((
        "http_errors".into(),
        counters.http_errors.load(Relaxed) as f64,
    ));
    m.push((
        "invalid_pages".into(),
        counters.invalid.load(Relaxed) as f64,
    ));
    if let Some(p) = counters.problem.get() {
        eprintln!("history: first problem: {p}");
    }
    Ok(Row {
        label: if paging {
            format!("before=random&limit={}", cfg.limit)
        } else {
            format!("latest limit={}", cfg.limit)
        },
        metrics: m,
    })
}

/// The id of the newest message in the room, read from its latest page.
async fn newest_id(t: &Target, token: Option<&str>) -> Res<u64> {
    let mut req = t
        .http()?
        .get(format!("{}/api/rooms/{ROOM}/messages?limit=1", t.base));
    if let Some(tok) = token {
        req = req.bearer_auth(tok);
    }
    let page: Value = req.send().await?.error_for_status()?.json().await?;
    Ok(page["messages"][0]["id"].as_u64().unwrap_or(0))
}

pub async fn run(
    t: &Target,
    cfg: &HistoryCfg,
    accounts: &[Account],
    report: &mut Report,
) -> Res<()> {
    let stats = fill(t, &cfg.fill, accounts).await?;
    if t.raw {
        return err("history needs Hearth (raw-broadcast keeps no history)");
    }
    let token = accounts[0].token.clone();
    // The room's newest message, as the pages must end: `ready`'s `last_id` is the newest
    // position, which on PostgreSQL counts changes too (a sign-up's note in `general`).
    let last_id = newest_id(t, token.as_deref()).await?;
    report
        .info
        .push(("messages_in_room".into(), last_id as f64));
    if stats.after > stats.before {
        report
            .info
            .push(("fill_messages".into(), (stats.after - stats.before) as f64));
        report.info.push(("fill_secs".into(), stats.secs));
        report.info.push((
            "fill_msgs_per_s".into(),
            (stats.after - stats.before) as f64 / stats.secs,
        ));
    }
    let mut errors = 0;
    let mut invalid = 0;
    for paging in [false, true] {
        let row = hammer(t, token.clone(), cfg, last_id, paging).await?;
        for (k, v) in &row.metrics {
            match k.as_str() {
                "http_errors" => errors += *v as u64,
                "invalid_pages" => invalid += *v as u64,
                _ => {}
            }
        }
        report.rows.push(row);
    }
    report.checks.push(("http_errors".into(), errors));
    report.checks.push(("invalid_pages".into(), invalid));
    Ok(())
}
