//! `pglog`: the PostgreSQL log of cluster mode on its own (no Hearth server): writers append
//! batches through `hearth_append` as nodes would, one follower (as another node) reads the
//! log. Reports appended messages/s with the append's latency (what a sender's
//! acknowledgement would wait for), and how long after its append started each message
//! reached the follower. Fails in strict mode on any message lost, repeated or out of order
//! at the follower.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hearth::db::pg::log::{append, Appended, Follower, NewRow};
use hearth::db::pg::schema;

use crate::util::{push_quantiles, Report, Res, Row};

pub struct PgLogCfg {
    pub url: String,
    pub writers: usize,
    pub batch: usize,
    pub secs: f64,
    pub warmup: f64,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

pub fn run(cfg: &PgLogCfg, report: &mut Report) -> Res<()> {
    let mut admin = postgres::Client::connect(&cfg.url, postgres::NoTls)?;
    schema::migrate(&mut admin)?;
    // A new database starts with `general`; the bench's own room replaces it.
    admin.batch_execute(
        "DELETE FROM rooms; \
         INSERT INTO users (id, username, username_key, password_hash, created_at) \
         SELECT u, 'u' || u, 'u' || u, 'x', 0 FROM generate_series(1, 8) u; \
         INSERT INTO rooms (id, name, created_at) VALUES (1, 'bench', 0); \
         INSERT INTO memberships (room_id, user_id, joined_at) \
         SELECT 1, u, 0 FROM generate_series(1, 8) u",
    )?;
    let t0 = Instant::now();
    let warm = Duration::from_secs_f64(cfg.warmup);
    let end = warm + Duration::from_secs_f64(cfg.secs);
    let final_head = Arc::new(AtomicI64::new(i64::MAX));
    let stop = Arc::new(AtomicBool::new(false));

    let follower = {
        let (url, final_head) = (cfg.url.clone(), final_head.clone());
        std::thread::spawn(move || -> Result<(Histogram<u64>, u64, u64, u64), String> {
            let mut f =
                Follower::start(&url, 0, Duration::from_millis(50)).map_err(|e| e.to_string())?;
            let mut h = hist();
            let (mut seen, mut gaps, mut repeats) = (0u64, 0u64, 0u64);
            let mut last = 0i64;
            while f.applied() < final_head.load(Ordering::SeqCst) {
                for m in f.next_batch().map_err(|e| e.to_string())? {
                    match m.id.cmp(&(last + 1)) {
                        std::cmp::Ordering::Equal => {}
                        std::cmp::Ordering::Greater => gaps += 1,
                        std::cmp::Ordering::Less => repeats += 1,
                    }
                    last = last.max(m.id);
                    seen += 1;
                    let sent: u64 = m.body.parse().unwrap_or(0);
                    let now = t0.elapsed().as_micros() as u64;
                    if sent >= warm.as_micros() as u64 {
                        let _ = h.record(now.saturating_sub(sent).max(1));
                    }
                }
            }
            Ok((h, seen, gaps, repeats))
        })
    };
    let writers: Vec<_> = (0..cfg.writers)
        .map(|w| {
            let (url, batch, stop) = (cfg.url.clone(), cfg.batch, stop.clone());
            std::thread::spawn(move || -> Result<(Histogram<u64>, u64, u64), String> {
                let mut c =
                    postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
                let mut h = hist();
                let (mut stored, mut measured) = (0u64, 0u64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = t0.elapsed();
                    let sent = started.as_micros() as u64;
                    let rows: Vec<NewRow> = (0..batch)
                        .map(|i| NewRow {
                            room_id: 1,
                            user_id: 1 + ((w + i) % 8) as i64,
                            body: sent.to_string(),
                            nonce: Some(format!("{w}-{n}-{i}")),
                        })
                        .collect();
                    n += 1;
                    let got = append(&mut c, &rows, 0).map_err(|e| e.to_string())?;
                    let took = (t0.elapsed() - started).as_micros() as u64;
                    let ok = got
                        .iter()
                        .filter(|a| matches!(a, Appended::Stored(_)))
                        .count() as u64;
                    stored += ok;
                    if started >= warm {
                        measured += ok;
                        for _ in 0..ok {
                            let _ = h.record(took.max(1));
                        }
                    }
                }
                Ok((h, stored, measured))
            })
        })
        .collect();
    while t0.elapsed() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut acks = hist();
    let (mut stored, mut measured) = (0u64, 0u64);
    for w in writers {
        let (h, s, m) = w.join().map_err(|_| "a writer panicked")??;
        acks.add(h)?;
        stored += s;
        measured += m;
    }
    let head: i64 = admin
        .query_one("SELECT pos FROM hearth_log_head", &[])?
        .get(0);
    final_head.store(head, Ordering::SeqCst);
    let (delivery, seen, gaps, repeats) =
        follower.join().map_err(|_| "the follower panicked")??;

    let mut m = vec![
        ("appended_per_s".to_string(), measured as f64 / cfg.secs),
        ("stored".to_string(), stored as f64),
    ];
    push_quantiles(&mut m, &acks);
    report.rows.push(Row {
        label: "append (ack)".into(),
        metrics: m,
    });
    let mut m = vec![("delivered".to_string(), seen as f64)];
    push_quantiles(&mut m, &delivery);
    report.rows.push(Row {
        label: "follower (delivery)".into(),
        metrics: m,
    });
    report
        .checks
        .push(("lost".into(), (head as u64).saturating_sub(seen)));
    report.checks.push(("gaps".into(), gaps));
    report.checks.push(("repeated".into(), repeats));
    report
        .checks
        .push(("head_mismatch".into(), u64::from(head as u64 != stored)));
    Ok(())
}
