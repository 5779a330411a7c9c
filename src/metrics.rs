//! Counters and histograms for `GET /metrics` (Prometheus text format). Lock-free: every update
//! is one or two relaxed atomic additions, cheap enough for the message path.
//!
//! Hand-written rather than `prometheus-client`: that crate's histograms take a lock on every
//! observation (the writer and fan-out threads observe once per batch and per message), and its
//! encoder writes OpenMetrics text (`# EOF`, `_total` added to counter names, `# UNIT` lines),
//! which would change the documented `/metrics` output that operators' scrapers and dashboards
//! already read. What is here is the exposition format and three atomic types, ~170 lines.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A fixed-bucket histogram.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths of the unit, to stay integral.
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    /// Record one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Everything `/metrics` reports besides live gauges.
pub struct Metrics {
    /// Messages committed.
    pub messages_stored: AtomicU64,
    /// Frames queued to connections.
    pub messages_delivered: AtomicU64,
    /// Connections closed for not reading (4008).
    pub dropped_slow: AtomicU64,
    /// `send` frames refused by the rate limit.
    pub rate_limited: AtomicU64,
    /// PBKDF2 computations (sign-ins, registrations, password changes).
    pub password_hashes: AtomicU64,
    /// Connections closed at accept because a connection cap was reached.
    pub connections_refused: AtomicU64,
    /// History pages answered from the rooms' tails in memory.
    pub pages_from_memory: AtomicU64,
    /// History pages read from the database.
    pub pages_from_store: AtomicU64,
    /// Time from a `send` being queued to its commit, seconds.
    pub commit_latency: Histogram,
    /// Commands per writer transaction.
    pub batch_size: Histogram,
    /// The last write transaction that failed, until a batch with messages commits again or
    /// `/healthz` finds writes working long enough after it.
    pub write_error: std::sync::Mutex<Option<WriteFailure>>,
    /// On PostgreSQL: when this node's follower last read the log, in ms after `started`
    /// plus one (0: never, or not on PostgreSQL), for `/healthz`.
    log_read: AtomicI64,
    /// The last position this node delivered (on PostgreSQL, of the log).
    log_position: AtomicI64,
    /// The highest position this node knows was committed, delivered or not: read by a new
    /// connection (its `ready` counts it) and, on PostgreSQL, heard of (every commit
    /// notifies every node).
    log_heard: AtomicI64,
    /// On PostgreSQL: reads of the log by the follower (each at most one chunk).
    pub log_reads: AtomicU64,
    /// On PostgreSQL: other nodes' commits delivered from their notification, unread.
    pub log_direct: AtomicU64,
    /// On PostgreSQL: microseconds the follower paused between chunks for queues to drain.
    pub log_paused_us: AtomicU64,
    /// On PostgreSQL: microseconds this node's own batches (and so their acknowledgements)
    /// waited for the follower to deliver what other nodes committed before them.
    pub log_behind_us: AtomicU64,
    /// On PostgreSQL: other nodes whose log listener this node heard lately.
    pub log_nodes: AtomicU64,
    /// Of those, the nodes that share through Redis where this one does not, or the other
    /// way round (a misconfiguration).
    pub log_nodes_apart: AtomicU64,
    /// The clock `log_read` counts on.
    started: std::time::Instant,
}

/// A write transaction that failed: why, and when.
#[derive(Clone, Debug)]
pub struct WriteFailure {
    pub why: String,
    pub at: std::time::Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            messages_stored: AtomicU64::new(0),
            messages_delivered: AtomicU64::new(0),
            dropped_slow: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            password_hashes: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            pages_from_memory: AtomicU64::new(0),
            pages_from_store: AtomicU64::new(0),
            commit_latency: Histogram::new(&[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            batch_size: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]),
            write_error: std::sync::Mutex::new(None),
            log_read: AtomicI64::new(0),
            log_position: AtomicI64::new(0),
            log_heard: AtomicI64::new(0),
            log_reads: AtomicU64::new(0),
            log_direct: AtomicU64::new(0),
            log_paused_us: AtomicU64::new(0),
            log_behind_us: AtomicU64::new(0),
            log_nodes: AtomicU64::new(0),
            log_nodes_apart: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

impl Metrics {
    /// Every counter: name, help text and value.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 8] {
        [
            (
                "hearth_messages_stored_total",
                "Messages committed to the database.",
                &self.messages_stored,
            ),
            (
                "hearth_messages_delivered_total",
                "Message frames queued to connections.",
                &self.messages_delivered,
            ),
            (
                "hearth_slow_clients_dropped_total",
                "Connections closed with 4008 for not reading.",
                &self.dropped_slow,
            ),
            (
                "hearth_rate_limited_total",
                "Frames refused by the per-user message rate.",
                &self.rate_limited,
            ),
            (
                "hearth_password_hashes_total",
                "PBKDF2 password hashes computed (sign-ins, registrations, password changes).",
                &self.password_hashes,
            ),
            (
                "hearth_connections_refused_total",
                "Connections closed at accept because a connection cap was reached.",
                &self.connections_refused,
            ),
            (
                "hearth_history_pages_memory_total",
                "History pages answered from the rooms' newest messages kept in memory.",
                &self.pages_from_memory,
            ),
            (
                "hearth_history_pages_database_total",
                "History pages read from the database.",
                &self.pages_from_store,
            ),
        ]
    }

    /// Prometheus text exposition, with the live connection count.
    pub fn render(&self, connections: usize) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP hearth_connections Open WebSocket connections.\n# TYPE hearth_connections gauge\nhearth_connections {connections}"
        );
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters = self.counters();
        for (name, help, value) in counters {
            counter(&mut out, name, help, load(value));
        }
        self.commit_latency.render(
            &mut out,
            "hearth_commit_latency_seconds",
            "Time from a send frame being queued to its commit.",
        );
        self.batch_size.render(
            &mut out,
            "hearth_writer_batch_size",
            "Commands committed per writer transaction.",
        );
        if let Some((age, position)) = self.log_lag() {
            let age = age.as_secs_f64();
            let _ = writeln!(
                out,
                "# HELP hearth_log_position The last log position this node delivered.\n\
                 # TYPE hearth_log_position gauge\nhearth_log_position {position}\n\
                 # HELP hearth_log_read_age_seconds Time since this node last read the log.\n\
                 # TYPE hearth_log_read_age_seconds gauge\nhearth_log_read_age_seconds {age}\n\
                 # HELP hearth_log_nodes_heard Other nodes whose log listener this node heard \
                 lately (within 10 to 12 seconds).\n\
                 # TYPE hearth_log_nodes_heard gauge\nhearth_log_nodes_heard {}\n\
                 # HELP hearth_log_nodes_apart Of those, nodes whose cluster.redis_url is set \
                 where this node's is empty, or the other way round (they share no presence, \
                 caps or limits with this node).\n\
                 # TYPE hearth_log_nodes_apart gauge\nhearth_log_nodes_apart {}",
                load(&self.log_nodes),
                load(&self.log_nodes_apart)
            );
            counter(
                &mut out,
                "hearth_log_reads_total",
                "Reads of the log by this node's follower.",
                load(&self.log_reads),
            );
            counter(
                &mut out,
                "hearth_log_direct_total",
                "Other nodes' commits delivered from their notification without a read.",
                load(&self.log_direct),
            );
            let seconds = |a: &AtomicU64| load(a) as f64 / 1e6;
            let _ = writeln!(
                out,
                "# HELP hearth_log_paused_seconds_total Time the follower paused between \
                 chunks of a catch-up for queues to drain.\n\
                 # TYPE hearth_log_paused_seconds_total counter\n\
                 hearth_log_paused_seconds_total {}\n\
                 # HELP hearth_log_behind_seconds_total Time this node's own commits waited \
                 for the others' earlier commits to be delivered.\n\
                 # TYPE hearth_log_behind_seconds_total counter\n\
                 hearth_log_behind_seconds_total {}",
                seconds(&self.log_paused_us),
                seconds(&self.log_behind_us)
            );
        }
        out
    }

    /// On PostgreSQL, how long ago this node last read the log, and the position it
    /// delivered last (`None` on SQLite).
    pub fn log_lag(&self) -> Option<(std::time::Duration, i64)> {
        let read = self.log_read.load(Ordering::Relaxed);
        (read > 0).then(|| {
            let now = self.started.elapsed().as_millis() as i64 + 1;
            (
                std::time::Duration::from_millis((now - read).max(0) as u64),
                self.log_position.load(Ordering::Relaxed),
            )
        })
    }

    /// The node delivered its own writer's batch, up to `position` (not a read of the log).
    pub fn log_delivered(&self, position: i64) {
        self.log_position.fetch_max(position, Ordering::Release);
    }

    /// The follower read the log just now and has delivered up to `position`.
    pub fn log_read(&self, position: i64) {
        let now = self.started.elapsed().as_millis() as i64 + 1;
        self.log_read.store(now, Ordering::Relaxed);
        self.log_position.store(position, Ordering::Release);
    }

    /// Positions up to `position` are committed (a connection's `ready` counted them, or a
    /// commit's notification said so).
    pub fn log_heard(&self, position: i64) {
        self.log_heard.fetch_max(position, Ordering::Release);
    }

    /// Whether this node knows of commits it has not delivered yet: its rooms' newest
    /// messages in memory may then lack some.
    pub fn log_behind(&self) -> bool {
        self.log_position.load(Ordering::Acquire) < self.log_heard.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.batch_size.observe(1.0);
        m.batch_size.observe(3.0);
        m.batch_size.observe(5000.0);
        let text = m.render(7);
        assert!(text.contains("hearth_connections 7"));
        assert!(text.contains("hearth_writer_batch_size_bucket{le=\"1\"} 1"));
        assert!(text.contains("hearth_writer_batch_size_bucket{le=\"4\"} 2"));
        assert!(text.contains("hearth_writer_batch_size_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("hearth_writer_batch_size_count 3"));
    }
}
