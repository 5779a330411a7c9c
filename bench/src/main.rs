//! hearth-bench: load generator for Hearth and for the `raw-broadcast` reference server.
//!
//! Every scenario prints a human-readable table and one `RESULT {json}` line. With `--tiny`
//! (or `--strict`) the process exits non-zero when any delivery was lost, duplicated or
//! reordered, or any other correctness check failed.

mod client;
mod failover;
mod fanout;
mod history;
mod idle;
mod ingest;
mod pglog;
mod search;
mod startup;
mod summary;
mod uploads;
mod util;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use client::Target;
use util::{Report, Res};

#[derive(Parser)]
#[command(
    name = "hearth-bench",
    version,
    about = "Load generator for the Hearth chat server"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Base URL of the server under test; loopback addresses only.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// PID of the server process, for CPU time and RSS from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// `hearth` (accounts + bearer tokens) or `raw` (raw-broadcast reference server, no auth).
    #[arg(long, global = true, default_value = "hearth")]
    target: String,
    /// Small sizes for a smoke test of a few seconds; implies --strict.
    #[arg(long, global = true)]
    tiny: bool,
    /// Exit non-zero when a correctness check fails (lost, duplicated, reordered, ...).
    #[arg(long, global = true)]
    strict: bool,
    /// Run number, copied into the RESULT line.
    #[arg(long, global = true, default_value_t = 1)]
    run: u32,
    /// Spread client sockets over 127.0.0.2 ..= 127.0.0.(1+N); 0 lets the kernel choose.
    #[arg(long, global = true, default_value_t = 16)]
    src_addrs: u32,
    /// WebSocket read buffer per client connection, bytes.
    #[arg(long, global = true, default_value_t = 16 * 1024)]
    read_buffer: usize,
    /// Core the server is pinned to: adds whole-core busy and softirq percentages.
    #[arg(long, global = true)]
    server_core: Option<u32>,
    /// Runtime worker threads of the load generator (it is normally pinned to one core).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Closed-loop senders: acknowledged messages/s and ack (commit) latency.
    Ingest {
        #[arg(long)]
        clients: Option<usize>,
        /// Messages in flight per client.
        #[arg(long)]
        window: Option<usize>,
        #[arg(long)]
        secs: Option<f64>,
        #[arg(long)]
        warmup: Option<f64>,
        #[arg(long, default_value_t = 64)]
        body: usize,
    },
    /// Cluster failover: clients spread over the nodes in --url, senders at a steady rate, then
    /// the node process --kill-pid is killed (SIGKILL); the moved clients resume on the next
    /// node. Failover time (kill to `resumed`), 0 lost, 0 duplicated.
    Failover {
        #[arg(long)]
        clients: Option<usize>,
        #[arg(long)]
        senders: Option<usize>,
        /// Messages per second over all senders.
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of traffic before the kill.
        #[arg(long)]
        before: Option<f64>,
        /// Seconds of traffic after the kill.
        #[arg(long)]
        after: Option<f64>,
        /// PID of the node to kill.
        #[arg(long)]
        kill_pid: u32,
        #[arg(long, default_value_t = 64)]
        body: usize,
    },
    /// One room, M members, open-loop senders at stepped delivery rates.
    Fanout {
        #[arg(long)]
        members: Option<usize>,
        #[arg(long)]
        users: Option<usize>,
        #[arg(long)]
        senders: Option<usize>,
        /// Comma-separated targets in deliveries/s (messages/s x members).
        #[arg(long)]
        steps: Option<String>,
        #[arg(long)]
        step_secs: Option<f64>,
        #[arg(long)]
        drain_secs: Option<f64>,
        /// Stop stepping once a step's p99 exceeds this (ms) or it does not drain.
        #[arg(long)]
        stop_p99_ms: Option<f64>,
        #[arg(long, default_value_t = 64)]
        body: usize,
    },
    /// A reaction storm: M members in one room, senders toggling reactions on a few messages
    /// at stepped rates; every change reaches every member (Hearth only).
    Reactions {
        #[arg(long)]
        members: Option<usize>,
        #[arg(long)]
        users: Option<usize>,
        #[arg(long)]
        senders: Option<usize>,
        /// Comma-separated reaction changes per second, one step each.
        #[arg(long)]
        rates: Option<String>,
        #[arg(long)]
        step_secs: Option<f64>,
    },
    /// 1,000 clients, 200 messages/s into one room: e2e latency and server CPU.
    Everyday {
        #[arg(long)]
        clients: Option<usize>,
        #[arg(long)]
        users: Option<usize>,
        #[arg(long)]
        senders: Option<usize>,
        /// Messages per second into the room.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long)]
        secs: Option<f64>,
        #[arg(long, default_value_t = 64)]
        body: usize,
        /// Clients uploading files meanwhile (0: none), each one file after the other.
        #[arg(long, default_value_t = 0)]
        uploaders: usize,
        /// Bytes of each uploaded file.
        #[arg(long, default_value_t = 5 * 1024 * 1024)]
        upload_bytes: usize,
        /// Each uploader's link speed, MiB/s (0: as fast as it goes).
        #[arg(long, default_value_t = 2.0)]
        upload_mib_per_s: f64,
    },
    /// Fan-out with a share of clients that stop reading: a clean phase, then a slow phase.
    /// Defaults: 1,000 members at 100,000 deliveries/s (100 messages/s of 1,000 bytes), 30 s
    /// clean then 60 s with 5% stalled readers, so that a stalled reader can overflow the
    /// server's socket buffer and a 1,024-message queue.
    Slow {
        #[arg(long)]
        members: Option<usize>,
        #[arg(long)]
        users: Option<usize>,
        #[arg(long)]
        senders: Option<usize>,
        /// Deliveries/s (messages/s x members).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of the clean phase.
        #[arg(long)]
        secs: Option<f64>,
        /// Seconds of the slow phase: long enough for a stalled reader to fill the kernel's
        /// socket buffers (up to ~4 MB on loopback) and then the server's queue.
        #[arg(long)]
        slow_secs: Option<f64>,
        /// Percentage of connections that stop reading in the second phase.
        #[arg(long, default_value_t = 5.0)]
        slow_pct: f64,
        /// SO_RCVBUF of the slow connections, bytes (0 = kernel default).
        #[arg(long, default_value_t = 4096)]
        slow_rcvbuf: u32,
        /// Body bytes: large enough that a stalled reader fills the kernel socket buffers (about
        /// 1.3 MB on loopback) and then a 1,024-message queue within one phase.
        #[arg(long, default_value_t = 1000)]
        body: usize,
    },
    /// C idle authenticated connections: server RSS per connection, idle and after traffic.
    Idle {
        #[arg(long)]
        conns: Option<usize>,
        #[arg(long)]
        users: Option<usize>,
        #[arg(long)]
        settle_secs: Option<f64>,
        /// Messages sent to everybody between the two measurements.
        #[arg(long)]
        messages: Option<usize>,
        #[arg(long, default_value_t = 64)]
        body: usize,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
    /// Fill room general to N messages, then hammer the history routes over HTTP.
    History {
        #[arg(long)]
        messages: Option<u64>,
        #[arg(long)]
        fill_conns: Option<usize>,
        #[arg(long)]
        fill_window: Option<usize>,
        /// Concurrent HTTP clients.
        #[arg(long)]
        clients: Option<usize>,
        /// Seconds per phase (latest, then before= paging).
        #[arg(long)]
        secs: Option<f64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Only fill room general up to N messages (through the WebSocket ingest path).
    Fill {
        #[arg(long)]
        messages: Option<u64>,
        #[arg(long)]
        fill_conns: Option<usize>,
        #[arg(long)]
        fill_window: Option<usize>,
    },
    /// The PostgreSQL log of cluster mode alone: writers appending batches as nodes would, a
    /// follower reading it; appended messages/s, append latency, delivery latency.
    PgLog {
        /// The empty PostgreSQL database to use (run.sh starts a private server).
        #[arg(long)]
        pg: String,
        /// Concurrent writers (one connection each, as nodes).
        #[arg(long, default_value_t = 3)]
        writers: usize,
        /// Messages per append.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long)]
        secs: Option<f64>,
        #[arg(long)]
        warmup: Option<f64>,
    },
    /// Write N messages of natural-language-like text over several rooms, users and DMs into a
    /// database that hearth created (the server's triggers keep its search index). Adds only
    /// what is missing, so an existing database is reused.
    SearchDb {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        messages: Option<u64>,
        #[arg(long, default_value_t = 500)]
        users: usize,
        #[arg(long, default_value_t = 60)]
        dms: usize,
        /// The messages are spread over this many days up to now.
        #[arg(long, default_value_t = 180)]
        days: u64,
        /// Messages per transaction.
        #[arg(long, default_value_t = 20_000)]
        batch: usize,
        /// Also time rebuilding the whole index (what migration 2 does to an older database),
        /// then roll that back.
        #[arg(long)]
        time_rebuild: bool,
    },
    /// Sign in, then time one-word (common, medium, rare, no match), two-word, room-filtered and
    /// relevance-ordered searches, sequentially and concurrently. Needs a `search-db` database.
    Search {
        /// Sequential queries per one-word class (half as many two-word and room-filtered).
        #[arg(long)]
        queries: Option<usize>,
        /// Concurrent clients in the throughput phase.
        #[arg(long)]
        clients: Option<usize>,
        /// Seconds of the throughput phase.
        #[arg(long)]
        secs: Option<f64>,
        /// Relevance-ordered queries (also stopped after --rel-secs).
        #[arg(long)]
        rel_queries: Option<usize>,
        #[arg(long, default_value_t = 30.0)]
        rel_secs: f64,
        /// Unrecorded warm-up queries per one-word class.
        #[arg(long)]
        warmup: Option<usize>,
    },
    /// Spawn the server on an existing database; time to the `listening on` line.
    Startup {
        #[arg(long)]
        server_bin: PathBuf,
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        runs: Option<usize>,
        /// Core to pin the server to with taskset (-1: no pinning).
        #[arg(long, default_value_t = 0)]
        core: i32,
    },
    /// Wait (bounded) until the machine is quiet: busy below PCT % over a 1 s sample.
    Quiet {
        #[arg(long, default_value_t = 25.0)]
        below: f64,
        #[arg(long, default_value_t = 120.0)]
        max_secs: f64,
    },
    /// Medians over runs and Hearth / raw ratios from files of RESULT lines (stdin if none).
    Summarize {
        files: Vec<PathBuf>,
        #[arg(long)]
        markdown: bool,
    },
}

fn pick<T>(v: Option<T>, tiny: bool, small: T, full: T) -> T {
    v.unwrap_or(if tiny { small } else { full })
}

fn parse_steps(s: &str) -> Res<Vec<f64>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .replace('_', "")
                .parse::<f64>()
                .map_err(|e| format!("bad step {x:?}: {e}").into())
        })
        .collect()
}

async fn run(cli: Cli) -> Res<bool> {
    let c = &cli.common;
    let tiny = c.tiny;
    let strict = c.tiny || c.strict;
    let background = match cli.cmd {
        Cmd::Summarize { .. } | Cmd::Quiet { .. } => None,
        _ => util::machine_busy_pct(500),
    };
    let target = || Target::new(&c.url, &c.target, c.src_addrs, c.read_buffer, c.server_pid);
    let report = match cli.cmd {
        Cmd::Summarize { files, markdown } => return summary::run(&files, markdown),
        Cmd::Quiet { below, max_secs } => {
            let t0 = std::time::Instant::now();
            loop {
                let busy = util::machine_busy_pct(1000).unwrap_or(0.0);
                let waited = t0.elapsed().as_secs_f64();
                if busy < below {
                    println!("quiet: machine {busy:.0}% busy after waiting {waited:.0} s");
                    return Ok(true);
                }
                if waited >= max_secs {
                    println!("quiet: machine still {busy:.0}% busy after {waited:.0} s; going on");
                    return Ok(true);
                }
            }
        }
        Cmd::PgLog {
            pg,
            writers,
            batch,
            secs,
            warmup,
        } => {
            let cfg = pglog::PgLogCfg {
                url: pg,
                writers: writers.max(1),
                batch: batch.max(1),
                secs: pick(secs, tiny, 1.0, 10.0),
                warmup: pick(warmup, tiny, 0.2, 2.0),
            };
            let mut r = Report::new("pglog", "postgresql", c.run);
            r.param("writers", cfg.writers);
            r.param("batch", cfg.batch);
            r.param("secs", cfg.secs);
            // The PostgreSQL client blocks: off the runtime.
            tokio::task::spawn_blocking(move || pglog::run(&cfg, &mut r).map(|()| r)).await??
        }
        Cmd::Startup {
            server_bin,
            db,
            runs,
            core,
        } => {
            let cfg = startup::StartupCfg {
                server_bin,
                db,
                runs: pick(runs, tiny, 2, 5),
                core: u32::try_from(core).ok(),
            };
            let mut r = Report::new("startup", &c.target, c.run);
            r.param("runs", cfg.runs);
            r.param("db", cfg.db.display().to_string());
            startup::run(&cfg, &mut r).await?;
            r
        }
        Cmd::SearchDb {
            db,
            messages,
            users,
            dms,
            days,
            batch,
            time_rebuild,
        } => {
            let cfg = search::GenCfg {
                db,
                messages: pick(messages, tiny, 20_000, 1_000_000),
                users,
                dms,
                days,
                batch: batch.max(1),
                time_rebuild,
            };
            let mut r = Report::new("search-db", "hearth", c.run);
            r.param("messages", cfg.messages);
            r.param("db", cfg.db.display().to_string());
            search::generate(&cfg, &mut r)?;
            r
        }
        Cmd::Search {
            queries,
            clients,
            secs,
            rel_queries,
            rel_secs,
            warmup,
        } => {
            let t = target()?;
            let cfg = search::SearchCfg {
                queries: pick(queries, tiny, 8, 200),
                clients: pick(clients, tiny, 2, 8),
                secs: pick(secs, tiny, 1.0, 10.0),
                rel_queries: pick(rel_queries, tiny, 4, 40),
                rel_secs: if tiny { 5.0 } else { rel_secs },
                warmup: pick(warmup, tiny, 2, 10),
            };
            let mut r = Report::new("search", &t.name, c.run);
            r.param("queries_per_class", cfg.queries);
            r.param("clients", cfg.clients);
            r.param("secs", cfg.secs);
            search::run(&t, &cfg, &mut r).await?;
            r
        }
        Cmd::Ingest {
            clients,
            window,
            secs,
            warmup,
            body,
        } => {
            let t = target()?;
            let cfg = ingest::IngestCfg {
                clients: pick(clients, tiny, 4, 50),
                window: pick(window, tiny, 1, 1).max(1),
                secs: pick(secs, tiny, 2.0, 10.0),
                warmup: pick(warmup, tiny, 0.5, 2.0),
                body_bytes: body,
            };
            let mut r = Report::new("ingest", &t.name, c.run);
            r.param("clients", cfg.clients);
            r.param("window", cfg.window);
            r.param("secs", cfg.secs);
            r.param("body", body);
            let accounts =
                client::make_accounts(&t, &client::user_prefix("in"), cfg.clients).await?;
            ingest::run(&t, &cfg, &accounts, &mut r).await?;
            r
        }
        Cmd::Failover {
            clients,
            senders,
            rate,
            before,
            after,
            kill_pid,
            body,
        } => {
            let t = target()?;
            let cfg = failover::FailoverCfg {
                clients: pick(clients, tiny, 12, 300).max(1),
                senders: pick(senders, tiny, 3, 10).max(1),
                rate: pick(rate, tiny, 30.0, 200.0),
                before: pick(before, tiny, 1.0, 10.0),
                after: pick(after, tiny, 3.0, 10.0),
                kill_pid,
                body_bytes: body,
            };
            let mut r = Report::new("failover", &t.name, c.run);
            r.param("nodes", t.addrs.len());
            r.param("clients", cfg.clients);
            r.param("senders", cfg.senders);
            r.param("rate", cfg.rate);
            r.param("before", cfg.before);
            r.param("after", cfg.after);
            let accounts =
                client::make_accounts(&t, &client::user_prefix("fo"), cfg.clients).await?;
            failover::run(&t, &cfg, &accounts, &mut r).await?;
            r
        }
        Cmd::Fanout {
            members,
            users,
            senders,
            steps,
            step_secs,
            drain_secs,
            stop_p99_ms,
            body,
        } => {
            let t = target()?;
            let members = pick(members, tiny, 60, 5000);
            let steps = parse_steps(&pick(
                steps,
                tiny,
                "600,1200".into(),
                "50000,100000,150000,200000,250000,300000,400000".into(),
            ))?;
            let secs = pick(step_secs, tiny, 2.0, 10.0);
            let cfg = fanout::FanoutCfg {
                members,
                users: pick(users, tiny, 6, 100),
                senders: pick(senders, tiny, 6, 50),
                steps: steps
                    .iter()
                    .map(|d| fanout::StepSpec {
                        label: format!("{d} dl/s"),
                        msgs_per_s: d / members as f64,
                        secs,
                        pause_slow: false,
                    })
                    .collect(),
                body_bytes: body,
                slow: 0,
                slow_rcvbuf: None,
                drain_secs: pick(drain_secs, tiny, 3.0, 5.0),
                final_drain_secs: if tiny { 10.0 } else { 60.0 },
                settle_secs: if tiny { 0.5 } else { 2.0 },
                stop_p99_ms: if tiny {
                    None
                } else {
                    Some(stop_p99_ms.unwrap_or(1000.0))
                },
                connect_concurrency: 256,
                reactions: false,
                uploads: None,
            };
            let mut r = Report::new("fanout", &t.name, c.run);
            r.param("members", cfg.members);
            r.param("users", cfg.users);
            r.param("senders", cfg.senders);
            r.param("step_secs", secs);
            r.param("body", body);
            let accounts = client::make_accounts(&t, &client::user_prefix("fo"), cfg.users).await?;
            fanout::run(&t, &cfg, &accounts, &mut r).await?;
            r
        }
        Cmd::Reactions {
            members,
            users,
            senders,
            rates,
            step_secs,
        } => {
            let t = target()?;
            if t.raw {
                return Err(
                    "the reactions scenario needs Hearth (raw-broadcast has no reactions)".into(),
                );
            }
            let members = pick(members, tiny, 40, 1000);
            let rates = parse_steps(&pick(rates, tiny, "20,40".into(), "50,100,200,400".into()))?;
            let secs = pick(step_secs, tiny, 2.0, 10.0);
            let cfg = fanout::FanoutCfg {
                members,
                users: pick(users, tiny, 6, 100),
                senders: pick(senders, tiny, 6, 40),
                steps: rates
                    .iter()
                    .map(|r| fanout::StepSpec {
                        label: format!("{r} reactions/s"),
                        msgs_per_s: *r,
                        secs,
                        pause_slow: false,
                    })
                    .collect(),
                body_bytes: 0,
                slow: 0,
                slow_rcvbuf: None,
                drain_secs: 5.0,
                final_drain_secs: if tiny { 10.0 } else { 60.0 },
                settle_secs: if tiny { 0.5 } else { 2.0 },
                stop_p99_ms: None,
                connect_concurrency: 256,
                reactions: true,
                uploads: None,
            };
            let mut r = Report::new("reactions", &t.name, c.run);
            r.param("members", cfg.members);
            r.param("users", cfg.users);
            r.param("senders", cfg.senders);
            r.param("step_secs", secs);
            let accounts = client::make_accounts(&t, &client::user_prefix("re"), cfg.users).await?;
            fanout::run(&t, &cfg, &accounts, &mut r).await?;
            r
        }
        Cmd::Everyday {
            clients,
            users,
            senders,
            rate,
            secs,
            body,
            uploaders,
            upload_bytes,
            upload_mib_per_s,
        } => {
            let t = target()?;
            let members = pick(clients, tiny, 50, 1000);
            let rate = pick(rate, tiny, 20.0, 200.0);
            let secs = pick(secs, tiny, 3.0, 30.0);
            let cfg = fanout::FanoutCfg {
                members,
                users: pick(users, tiny, 50, 1000),
                senders: pick(senders, tiny, 10, 100),
                steps: vec![fanout::StepSpec {
                    label: format!("{rate} msg/s"),
                    msgs_per_s: rate,
                    secs,
                    pause_slow: false,
                }],
                body_bytes: body,
                slow: 0,
                slow_rcvbuf: None,
                drain_secs: 5.0,
                final_drain_secs: if tiny { 10.0 } else { 60.0 },
                settle_secs: if tiny { 0.5 } else { 3.0 },
                stop_p99_ms: None,
                connect_concurrency: 256,
                reactions: false,
                uploads: (uploaders > 0).then_some((uploaders, upload_bytes, upload_mib_per_s)),
            };
            let mut r = Report::new("everyday", &t.name, c.run);
            r.param("clients", cfg.members);
            r.param("users", cfg.users);
            r.param("senders", cfg.senders);
            r.param("rate", rate);
            r.param("secs", secs);
            r.param("body", body);
            if uploaders > 0 {
                r.param("uploaders", uploaders);
                r.param("upload_bytes", upload_bytes);
                r.param("upload_mib_per_s", upload_mib_per_s);
            }
            let accounts = client::make_accounts(&t, &client::user_prefix("ed"), cfg.users).await?;
            fanout::run(&t, &cfg, &accounts, &mut r).await?;
            r
        }
        Cmd::Slow {
            members,
            users,
            senders,
            rate,
            secs,
            slow_secs,
            slow_pct,
            slow_rcvbuf,
            body,
        } => {
            let t = target()?;
            let members = pick(members, tiny, 60, 1000);
            let rate = pick(rate, tiny, 600.0, 100_000.0);
            let secs = pick(secs, tiny, 3.0, 30.0);
            let slow_secs = pick(slow_secs, tiny, 3.0, 60.0);
            let slow = ((members as f64) * slow_pct / 100.0).round() as usize;
            let step = |label: &str, pause, secs| fanout::StepSpec {
                label: label.to_string(),
                msgs_per_s: rate / members as f64,
                secs,
                pause_slow: pause,
            };
            let cfg = fanout::FanoutCfg {
                members,
                users: pick(users, tiny, 6, 100),
                senders: pick(senders, tiny, 6, 50),
                steps: vec![
                    step("clean", false, secs),
                    step("slow readers", true, slow_secs),
                ],
                body_bytes: body,
                slow,
                slow_rcvbuf: (slow_rcvbuf > 0).then_some(slow_rcvbuf),
                drain_secs: 5.0,
                final_drain_secs: if tiny { 10.0 } else { 60.0 },
                settle_secs: if tiny { 0.5 } else { 2.0 },
                stop_p99_ms: None,
                connect_concurrency: 256,
                reactions: false,
                uploads: None,
            };
            let mut r = Report::new("slow", &t.name, c.run);
            r.param("members", members);
            r.param("slow_clients", slow);
            r.param("rate_dps", rate);
            r.param("clean_secs", secs);
            r.param("slow_secs", slow_secs);
            r.param("slow_rcvbuf", slow_rcvbuf);
            r.param("body", body);
            let accounts = client::make_accounts(&t, &client::user_prefix("sl"), cfg.users).await?;
            fanout::run(&t, &cfg, &accounts, &mut r).await?;
            r
        }
        Cmd::Idle {
            conns,
            users,
            settle_secs,
            messages,
            body,
            concurrency,
        } => {
            let t = target()?;
            let cfg = idle::IdleCfg {
                conns: pick(conns, tiny, 300, 19_000),
                settle_secs: pick(settle_secs, tiny, 1.0, 5.0),
                messages: pick(messages, tiny, 3, 5),
                body_bytes: body,
                concurrency,
            };
            let users = pick(users, tiny, 10, 100);
            let mut r = Report::new("idle", &t.name, c.run);
            r.param("conns", cfg.conns);
            r.param("users", users);
            r.param("messages", cfg.messages);
            r.param("src_addrs", c.src_addrs);
            let accounts = client::make_accounts(&t, &client::user_prefix("id"), users).await?;
            idle::run(&t, &cfg, &accounts, &mut r).await?;
            r
        }
        Cmd::History {
            messages,
            fill_conns,
            fill_window,
            clients,
            secs,
            limit,
        } => {
            let t = target()?;
            let cfg = history::HistoryCfg {
                fill: history::FillCfg {
                    messages: pick(messages, tiny, 2000, 1_000_000),
                    conns: pick(fill_conns, tiny, 4, 8),
                    window: pick(fill_window, tiny, 16, 64),
                },
                clients: pick(clients, tiny, 4, 32),
                secs: pick(secs, tiny, 2.0, 10.0),
                limit,
            };
            let mut r = Report::new("history", &t.name, c.run);
            r.param("messages", cfg.fill.messages);
            r.param("clients", cfg.clients);
            r.param("secs", cfg.secs);
            r.param("limit", limit);
            let accounts =
                client::make_accounts(&t, &client::user_prefix("hi"), cfg.fill.conns).await?;
            history::run(&t, &cfg, &accounts, &mut r).await?;
            r
        }
        Cmd::Fill {
            messages,
            fill_conns,
            fill_window,
        } => {
            let t = target()?;
            let cfg = history::FillCfg {
                messages: pick(messages, tiny, 2000, 1_000_000),
                conns: pick(fill_conns, tiny, 4, 8),
                window: pick(fill_window, tiny, 16, 64),
            };
            let accounts = client::make_accounts(&t, &client::user_prefix("fi"), cfg.conns).await?;
            let s = history::fill(&t, &cfg, &accounts).await?;
            let added = s.after - s.before;
            println!(
                "fill: room {} now at id {} ({added} added in {:.1} s, {:.0} msgs/s)",
                client::ROOM,
                s.after,
                s.secs,
                if s.secs > 0.0 {
                    added as f64 / s.secs
                } else {
                    0.0
                }
            );
            return Ok(true);
        }
    };
    let mut report = report;
    if let Some(b) = background {
        report.info.push(("machine_busy_before_pct".into(), b));
        if b > 10.0 {
            report.notes.push(format!(
                "the machine was {b:.0}% busy before the run started: other load may distort it"
            ));
        }
    }
    report.print();
    Ok(report.ok() || !strict)
}

fn main() {
    let cli = Cli::parse();
    util::origin();
    let _ = util::SERVER_CORE.set(cli.common.server_core);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let senders = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("senders")
        .enable_all()
        .build()
        .expect("sender runtime");
    let _ = fanout::SENDER_RUNTIME.set(senders.handle().clone());
    match rt.block_on(run(cli)) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("hearth-bench: correctness checks failed");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("hearth-bench: {e}");
            std::process::exit(2);
        }
    }
    // Do not wait for lingering connection tasks.
    rt.shutdown_background();
    senders.shutdown_background();
}
