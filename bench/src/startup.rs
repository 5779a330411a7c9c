//! `startup`: time from process spawn to the `listening on` line on an existing database,
//! plus the release binary size.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::util::{err, Report, Res, Row};

pub struct StartupCfg {
    pub server_bin: PathBuf,
    pub db: PathBuf,
    pub runs: usize,
    /// Pin the server to this core with `taskset -c` (None: do not pin).
    pub core: Option<u32>,
}

fn command(cfg: &StartupCfg) -> Command {
    let mut cmd = match cfg.core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(&cfg.server_bin);
            cmd
        }
        None => Command::new(&cfg.server_bin),
    };
    cmd.arg("--config")
        .arg("/nonexistent.toml")
        .env("CHAT_SERVER__HOST", "127.0.0.1")
        .env("CHAT_SERVER__PORT", "0")
        .env("CHAT_DATABASE__PATH", &cfg.db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

struct Sample {
    listening_ms: f64,
    healthz_ms: f64,
    shutdown_ms: f64,
}

async fn one(cfg: &StartupCfg, http: &reqwest::Client, log: &std::path::Path) -> Res<Sample> {
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = command(cfg);
    cmd.stderr(Stdio::from(logf));
    let t0 = Instant::now();
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await? {
            if l.starts_with("listening on http://") {
                return Ok::<_, std::io::Error>(Some(l));
            }
        }
        Ok(None)
    })
    .await
    .map_err(|_| "no `listening on` line within 120 s")??;
    let listening_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let Some(line) = line else {
        return err(format!(
            "server exited without `listening on` (see {})",
            log.display()
        ));
    };
    let base = line.trim_start_matches("listening on ").trim().to_string();
    let port_ok = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .is_some_and(|p| p > 0);
    if !port_ok {
        return err(format!("bad listening line: {line}"));
    }
    let mut healthz_ms = f64::NAN;
    for _ in 0..2000 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                healthz_ms = t0.elapsed().as_secs_f64() * 1000.0;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let pid = child.id().ok_or("server already exited")?;
    let t1 = Instant::now();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| "server did not exit within 30 s of SIGTERM")??;
    let shutdown_ms = t1.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        return err(format!("server exited with {status} after SIGTERM"));
    }
    // Drain the rest of stdout so nothing blocks.
    while let Ok(Some(_)) = lines.next_line().await {}
    Ok(Sample {
        listening_ms,
        healthz_ms,
        shutdown_ms,
    })
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

pub async fn run(cfg: &StartupCfg, report: &mut Report) -> Res<()> {
    if !cfg.db.exists() {
        return err(format!(
            "database {} does not exist (fill it first)",
            cfg.db.display()
        ));
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let log = cfg.db.with_extension("startup.log");
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let db_bytes = size(cfg.db.clone());
    let mut samples = Vec::new();
    for _ in 0..cfg.runs {
        samples.push(one(cfg, &http, &log).await?);
    }
    // Baseline: what spawning through taskset costs by itself.
    let mut base = Vec::new();
    if let Some(c) = cfg.core {
        for _ in 0..cfg.runs {
            let t0 = Instant::now();
            Command::new("taskset")
                .arg("-c")
                .arg(c.to_string())
                .arg("true")
                .status()
                .await?;
            base.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (l50, lmin, lmax) = stats(samples.iter().map(|s| s.listening_ms).collect());
    let (h50, _, _) = stats(samples.iter().map(|s| s.healthz_ms).collect());
    let (s50, _, smax) = stats(samples.iter().map(|s| s.shutdown_ms).collect());
    let bin_bytes = size(cfg.server_bin.clone());
    let mut m = vec![
        ("listening_ms_median".to_string(), l50),
        ("listening_ms_min".to_string(), lmin),
        ("listening_ms_max".to_string(), lmax),
        ("healthz_ms_median".to_string(), h50),
        ("sigterm_exit_ms_median".to_string(), s50),
        ("sigterm_exit_ms_max".to_string(), smax),
        ("binary_mb".to_string(), bin_bytes as f64 / 1e6),
        ("db_mb".to_string(), db_bytes as f64 / 1e6),
    ];
    if !base.is_empty() {
        m.push(("taskset_true_ms".into(), stats(base).0));
    }
    report.rows.push(Row {
        label: format!("{} starts", cfg.runs),
        metrics: m,
    });
    report.info.push(("binary_bytes".into(), bin_bytes as f64));
    Ok(())
}
