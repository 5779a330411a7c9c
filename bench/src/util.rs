//! Clock, /proc readers, nonce format, fast frame scanning, histograms and result reports.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = Result<T, Error>;

pub fn err<T>(msg: impl Into<String>) -> Res<T> {
    Err(msg.into().into())
}

// ---------------------------------------------------------------------------
// Clock: one monotonic origin for the whole process, so the nonce can carry an
// intended send time that any receiver in this process can subtract from.

static START: OnceLock<Instant> = OnceLock::new();

pub fn origin() -> Instant {
    *START.get_or_init(Instant::now)
}

/// Microseconds since the process-wide origin.
pub fn now_us() -> u64 {
    origin().elapsed().as_micros() as u64
}

pub fn instant_at(us: u64) -> Instant {
    origin() + Duration::from_micros(us)
}

// ---------------------------------------------------------------------------
// /proc readers

fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(100.0)
    })
}

fn cpu_from_stat(text: &str) -> Option<f64> {
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// User + system CPU seconds consumed by a process so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds of the load generator itself.
pub fn self_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| cpu_from_stat(&t))
        .unwrap_or(0.0)
}

/// (VmRSS, VmHWM) in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:").unwrap_or(0)))
}

/// The core the server is pinned to (`--server-core`), for whole-core accounting.
pub static SERVER_CORE: OnceLock<Option<u32>> = OnceLock::new();

/// Per-core jiffies from /proc/stat: user nice system idle iowait irq softirq steal.
fn core_jiffies(core: u32) -> Option<[u64; 8]> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&format!("cpu{core}")))?;
    let mut out = [0u64; 8];
    for (i, v) in line.split_whitespace().skip(1).take(8).enumerate() {
        out[i] = v.parse().ok()?;
    }
    Some(out)
}

/// Busy % of the whole machine over `ms` (other tenants' load, sampled before a run).
pub fn machine_busy_pct(ms: u64) -> Option<f64> {
    let read = || -> Option<Vec<u64>> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().next()?;
        line.split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().ok())
            .collect()
    };
    let a = read()?;
    std::thread::sleep(Duration::from_millis(ms));
    let b = read()?;
    let d: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| y.saturating_sub(*x) as f64)
        .collect();
    let total: f64 = d.iter().sum();
    (total > 0.0).then(|| 100.0 * (total - d[3] - d[4]) / total)
}

/// Samples of a server process's CPU time, plus our own, over an interval.
#[derive(Clone, Copy)]
pub struct CpuMark {
    pub at: Instant,
    pub server: Option<f64>,
    pub client: f64,
    core: Option<[u64; 8]>,
}

impl CpuMark {
    pub fn now(pid: Option<u32>) -> Self {
        CpuMark {
            at: Instant::now(),
            server: pid.and_then(cpu_seconds),
            client: self_cpu_seconds(),
            core: SERVER_CORE.get().copied().flatten().and_then(core_jiffies),
        }
    }

    /// Whole-core view of the server's core since `self`: busy % (everything that ran there,
    /// including loopback TCP work done in softirq context, which is not charged to the
    /// process) and the softirq share alone.
    pub fn core_metrics(&self) -> Vec<(String, f64)> {
        let (Some(a), Some(b)) = (
            self.core,
            SERVER_CORE.get().copied().flatten().and_then(core_jiffies),
        ) else {
            return Vec::new();
        };
        let d: Vec<f64> = (0..8).map(|i| b[i].saturating_sub(a[i]) as f64).collect();
        let total: f64 = d.iter().sum();
        if total <= 0.0 {
            return Vec::new();
        }
        let idle = d[3] + d[4];
        vec![
            (
                "server_core_busy_pct".into(),
                100.0 * (total - idle) / total,
            ),
            ("server_core_softirq_pct".into(), 100.0 * d[6] / total),
        ]
    }

    /// (wall seconds, server CPU seconds, client CPU seconds) since `self`.
    pub fn since(&self, pid: Option<u32>) -> (f64, Option<f64>, f64) {
        let end = CpuMark::now(pid);
        let wall = end.at.duration_since(self.at).as_secs_f64();
        let server = match (self.server, end.server) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        (wall, server, end.client - self.client)
    }
}

// ---------------------------------------------------------------------------
// Nonce: "step.sender.seq.t_us" (t_us = intended send time, µs since origin).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nonce {
    pub step: u32,
    pub sender: u32,
    pub seq: u64,
    pub t_us: u64,
}

impl Nonce {
    pub fn encode(&self) -> String {
        format!("{}.{}.{}.{}", self.step, self.sender, self.seq, self.t_us)
    }

    pub fn parse(s: &str) -> Option<Nonce> {
        let mut it = s.split('.');
        let n = Nonce {
            step: it.next()?.parse().ok()?,
            sender: it.next()?.parse().ok()?,
            seq: it.next()?.parse().ok()?,
            t_us: it.next()?.parse().ok()?,
        };
        if it.next().is_some() {
            return None;
        }
        Some(n)
    }
}

pub fn send_frame(room: &str, body: &str, nonce: &str) -> String {
    // body and nonce are generated by this tool and contain no characters that need escaping.
    format!(r#"{{"type":"send","room":"{room}","body":"{body}","nonce":"{nonce}"}}"#)
}

/// Deterministic printable body of `len` bytes (no characters that need JSON escaping).
pub fn make_body(len: usize, salt: u64) -> String {
    const WORDS: &[&str] = &[
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hearth", "chat", "fire",
        "warm", "evening", "tea", "soon", "yes", "maybe", "ok", "see", "you",
    ];
    let mut s = String::with_capacity(len + 8);
    let mut x = salt
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while s.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
    }
    s.truncate(len.max(1));
    let t = s.trim_end().len();
    s.truncate(t.max(1));
    s
}

// ---------------------------------------------------------------------------
// Fast scanning of server frames. Every key looked up here is matched as `"key":`, which
// cannot occur inside a JSON string value (an unescaped quote cannot follow a letter there),
// so the scan is exact for the flat `message` frame. A sample of frames is cross-checked
// against a full parse (`validate_message`).

fn raw_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let bytes = text.as_bytes();
    let pat_len = key.len() + 3;
    let mut from = 0;
    while let Some(pos) = text[from..].find(key) {
        let start = from + pos;
        from = start + key.len();
        if start == 0 || bytes[start - 1] != b'"' {
            continue;
        }
        let after = start + key.len();
        if bytes.get(after) != Some(&b'"') || bytes.get(after + 1) != Some(&b':') {
            continue;
        }
        let mut i = start - 1 + pat_len;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'"' {
            // String value: our fields never contain escapes, stop at the next quote.
            let end = text[i + 1..].find('"')?;
            return Some(&text[i + 1..i + 1 + end]);
        }
        let end = text[i..]
            .find([',', '}', ' '])
            .map(|e| i + e)
            .unwrap_or(bytes.len());
        return Some(&text[i..end]);
    }
    None
}

pub struct Scanned<'a> {
    pub kind: &'a str,
    pub id: Option<u64>,
    pub nonce: Option<&'a str>,
}

pub fn scan(text: &str) -> Scanned<'_> {
    let kind = raw_field(text, "type").unwrap_or("");
    if kind == "message" || kind == "reaction" {
        // A reaction is tracked by its position, `seq`.
        let pos = if kind == "message" { "id" } else { "seq" };
        Scanned {
            kind,
            id: raw_field(text, pos).and_then(|v| v.parse().ok()),
            nonce: raw_field(text, "nonce"),
        }
    } else {
        Scanned {
            kind,
            id: None,
            nonce: None,
        }
    }
}

/// Full parse of a `message` frame, checked against the contract and the fast scan.
pub fn validate_message(text: &str, room: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let o = v.as_object().ok_or("not an object")?;
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    if s("type") != Some("message") {
        return Err("type is not message".into());
    }
    let id = o.get("id").and_then(Value::as_u64).ok_or("id missing")?;
    if s("room") != Some(room) {
        return Err(format!("room {:?} != {room}", o.get("room")));
    }
    if s("user").is_none_or(str::is_empty) {
        return Err("user missing".into());
    }
    if s("body").is_none() {
        return Err("body missing".into());
    }
    let ts = s("ts").ok_or("ts missing")?;
    if ts.len() < 20 || ts.as_bytes()[10] != b'T' {
        return Err(format!("ts {ts:?} is not RFC 3339"));
    }
    let sc = scan(text);
    if sc.id != Some(id) || sc.nonce != s("nonce") {
        return Err("fast scan disagrees with full parse".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Per-connection delivery tracking: every message id exactly once, in increasing order.

#[derive(Default, Clone)]
pub struct Track {
    pub base: u64,
    bits: Vec<u64>,
    pub last: u64,
    pub distinct: u64,
    pub dup: u64,
    pub reorder: u64,
    pub stale: u64,
}

impl Track {
    pub fn new(base: u64) -> Self {
        Track {
            base,
            last: base,
            ..Default::default()
        }
    }

    /// Returns true when the id is new for this connection.
    pub fn see(&mut self, id: u64) -> bool {
        if id <= self.base {
            self.stale += 1;
            return false;
        }
        let off = (id - self.base - 1) as usize;
        let (w, b) = (off / 64, off % 64);
        if w >= self.bits.len() {
            self.bits.resize((w + 1).max(self.bits.len() * 2), 0);
        }
        if self.bits[w] & (1 << b) != 0 {
            self.dup += 1;
            return false;
        }
        self.bits[w] |= 1 << b;
        self.distinct += 1;
        if id < self.last {
            self.reorder += 1;
        } else {
            self.last = id;
        }
        true
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.bits.iter().enumerate().flat_map(move |(w, &word)| {
            (0..64)
                .filter(move |b| word & (1u64 << b) != 0)
                .map(move |b| self.base + 1 + (w * 64 + b) as u64)
        })
    }
}

/// Loss accounting over a set of receivers that were all connected before the traffic began.
#[derive(Default, Debug, Clone, Copy)]
pub struct Delivery {
    pub messages: u64,
    pub delivered: u64,
    pub lost: u64,
    pub dup: u64,
    pub reordered: u64,
    pub stale: u64,
}

pub fn account(tracks: &[Track], sent: u64) -> (Delivery, u64) {
    let mut union: Vec<u64> = Vec::new();
    for t in tracks {
        union.extend(t.ids());
    }
    union.sort_unstable();
    union.dedup();
    let mut d = Delivery {
        messages: union.len() as u64,
        ..Default::default()
    };
    // Messages that were sent but reached nobody are lost for every receiver.
    let unacked = sent.saturating_sub(union.len() as u64);
    for t in tracks {
        let expected = (union.len() - union.partition_point(|&id| id <= t.base)) as u64;
        d.delivered += t.distinct;
        d.lost += expected.saturating_sub(t.distinct) + unacked;
        d.dup += t.dup;
        d.reordered += t.reorder;
        d.stale += t.stale;
    }
    (d, unacked)
}

// ---------------------------------------------------------------------------
// Problems

/// The first problem a scenario saw (later ones are mostly its consequences).
#[derive(Default)]
pub struct FirstProblem(std::sync::Mutex<Option<String>>);

impl FirstProblem {
    /// Keep `what` unless a problem was seen before.
    pub fn record(&self, what: String) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none() {
            *p = Some(what);
        }
    }

    /// The first problem, if any.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Add it to `report`'s notes.
    pub fn note(&self, report: &mut Report) {
        if let Some(p) = self.get() {
            report.notes.push(format!("first problem seen: {p}"));
        }
    }
}

// ---------------------------------------------------------------------------
// Histograms

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

/// (p50, p90, p99, p99.9, max) in milliseconds.
pub fn quantiles_ms(h: &Histogram<u64>) -> [f64; 5] {
    if h.is_empty() {
        return [0.0; 5];
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    [q(0.5), q(0.9), q(0.99), q(0.999), h.max() as f64 / 1000.0]
}

pub fn push_quantiles(m: &mut Vec<(String, f64)>, h: &Histogram<u64>) {
    let [p50, p90, p99, p999, max] = quantiles_ms(h);
    for (k, v) in [
        ("p50_ms", p50),
        ("p90_ms", p90),
        ("p99_ms", p99),
        ("p999_ms", p999),
        ("max_ms", max),
    ] {
        m.push((k.to_string(), v));
    }
}

// ---------------------------------------------------------------------------
// Reports: one human table and one `RESULT {json}` line per scenario run.

pub struct Row {
    pub label: String,
    pub metrics: Vec<(String, f64)>,
}

pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    pub run: u32,
    pub params: Map<String, Value>,
    pub rows: Vec<Row>,
    /// Correctness counters; any non-zero value makes the run fail in strict mode.
    pub checks: Vec<(String, u64)>,
    /// Informational counters.
    pub info: Vec<(String, f64)>,
    pub notes: Vec<String>,
}

pub fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

pub fn print_table(headers: &[String], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.len());
            }
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<width$}", width = w[i])
                } else {
                    format!("{c:>width$}", width = w[i])
                }
            })
            .collect();
        println!("  {}", parts.join("  "));
    };
    line(headers);
    let sep: Vec<String> = w.iter().map(|n| "-".repeat(*n)).collect();
    line(&sep);
    for r in rows {
        line(r);
    }
}

impl Report {
    pub fn new(scenario: &'static str, target: &str, run: u32) -> Self {
        Report {
            scenario,
            target: target.to_string(),
            run,
            params: Map::new(),
            rows: Vec::new(),
            checks: Vec::new(),
            info: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn param(&mut self, k: &str, v: impl Into<Value>) {
        self.params.insert(k.to_string(), v.into());
    }

    pub fn ok(&self) -> bool {
        self.checks.iter().all(|(_, v)| *v == 0)
    }

    pub fn print(&self) {
        println!();
        println!(
            "== {} against {} (run {}) ==",
            self.scenario, self.target, self.run
        );
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  params: {}", params.join(" "));
        let mut headers = vec!["".to_string()];
        for r in &self.rows {
            for (k, _) in &r.metrics {
                if !headers.contains(k) {
                    headers.push(k.clone());
                }
            }
        }
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = vec![r.label.clone()];
                for h in &headers[1..] {
                    cells.push(
                        r.metrics
                            .iter()
                            .find(|(k, _)| k == h)
                            .map(|(_, v)| fmt_num(*v))
                            .unwrap_or_else(|| "-".into()),
                    );
                }
                cells
            })
            .collect();
        print_table(&headers, &rows);
        if !self.info.is_empty() {
            let s: Vec<String> = self
                .info
                .iter()
                .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
                .collect();
            println!("  info: {}", s.join(" "));
        }
        let s: Vec<String> = self
            .checks
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "  checks: {} => {}",
            s.join(" "),
            if self.ok() { "OK" } else { "FAILED" }
        );
        for n in &self.notes {
            println!("  note: {n}");
        }
        println!("RESULT {}", self.json());
    }

    pub fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("label".into(), r.label.clone().into());
                for (k, v) in &r.metrics {
                    o.insert(k.clone(), num(*v));
                }
                Value::Object(o)
            })
            .collect();
        let checks: Map<String, Value> = self
            .checks
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect();
        let info: Map<String, Value> = self
            .info
            .iter()
            .map(|(k, v)| (k.clone(), num(*v)))
            .collect();
        json!({
            "scenario": self.scenario,
            "target": self.target,
            "run": self.run,
            "params": self.params,
            "rows": rows,
            "info": info,
            "checks": checks,
            "ok": self.ok(),
            "notes": self.notes,
        })
    }
}

pub fn num(v: f64) -> Value {
    if v.is_finite() {
        let r = (v * 1000.0).round() / 1000.0;
        serde_json::Number::from_f64(r)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_message() {
        let t = r#"{"type":"message","id":42,"room":"general","user":"a","body":"say \"id\":7 \"nonce\":\"x\"","ts":"2026-11-25T10:00:00.000Z","nonce":"1.2.3.4"}"#;
        let s = scan(t);
        assert_eq!(s.kind, "message");
        assert_eq!(s.id, Some(42));
        assert_eq!(s.nonce, Some("1.2.3.4"));
        assert!(validate_message(t, "general").is_ok());
        let r =
            r#"{"type":"ready","user":{"id":1,"username":"a"},"rooms":[],"online":[],"last_id":9}"#;
        assert_eq!(scan(r).kind, "ready");
    }

    #[test]
    fn nonce_roundtrip() {
        let n = Nonce {
            step: 3,
            sender: 17,
            seq: 99,
            t_us: 123456789,
        };
        assert_eq!(Nonce::parse(&n.encode()), Some(n));
        assert!(n.encode().len() <= 64);
    }

    #[test]
    fn track_counts() {
        let mut t = Track::new(10);
        assert!(t.see(11));
        assert!(t.see(13));
        assert!(t.see(12)); // reordered
        assert!(!t.see(13)); // duplicate
        assert!(!t.see(5)); // stale
        assert_eq!((t.distinct, t.dup, t.reorder, t.stale), (3, 1, 1, 1));
        let mut u = Track::new(10);
        u.see(11);
        let (d, unacked) = account(&[t, u], 3);
        assert_eq!(unacked, 0);
        assert_eq!(d.lost, 2);
    }

    #[test]
    fn body_is_plain() {
        for n in [1, 5, 64, 300] {
            let b = make_body(n, n as u64);
            assert!(!b.is_empty() && b.len() <= n);
            assert!(b.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '));
        }
    }
}
