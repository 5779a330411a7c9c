//! `search-db`: write a database of N chat messages with natural-language-like text into a
//! database that Hearth created (current schema); after each batch the FTS5 index
//! `messages_fts` is brought up to date the way the server's writer does it after each commit
//! (everything above the high-water mark `search_index.indexed_through`, in a second
//! transaction), and its triggers keep it in step with edits and deletions.
//! `search`: sign in, then time one-word (common, medium, rare, no match), two-word,
//! room-filtered and relevance-ordered queries against `GET /api/search`, sequentially and with
//! concurrent clients, checking every answer.
//!
//! The vocabulary is deterministic and shared by both commands: 140 frequent English words
//! followed by made-up words, drawn with a Zipf distribution (s = 1), so that the most
//! frequent words occur in a large share of the messages and the least frequent in a few
//! hundred of a million.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::client::{self, Target};
use crate::util::{err, new_hist, push_quantiles, CpuMark, FirstProblem, Report, Res, Row};

// ---------------------------------------------------------------------------
// Deterministic randomness and the vocabulary

/// SplitMix64: small, fast, reproducible.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as u128 * n as u128) >> 53) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Frequent English words, most frequent first (ranks 1..).
const COMMON: &[&str] = &[
    "the",
    "i",
    "you",
    "to",
    "a",
    "and",
    "it",
    "is",
    "that",
    "of",
    "in",
    "for",
    "on",
    "we",
    "this",
    "be",
    "have",
    "not",
    "but",
    "so",
    "with",
    "just",
    "do",
    "can",
    "are",
    "was",
    "what",
    "if",
    "at",
    "me",
    "my",
    "will",
    "know",
    "think",
    "yeah",
    "like",
    "get",
    "all",
    "no",
    "there",
    "they",
    "one",
    "about",
    "up",
    "out",
    "now",
    "ok",
    "time",
    "good",
    "would",
    "how",
    "when",
    "or",
    "from",
    "should",
    "here",
    "then",
    "see",
    "make",
    "need",
    "still",
    "also",
    "thanks",
    "right",
    "go",
    "work",
    "some",
    "new",
    "yes",
    "did",
    "more",
    "going",
    "want",
    "sure",
    "maybe",
    "really",
    "because",
    "could",
    "today",
    "got",
    "back",
    "any",
    "look",
    "build",
    "test",
    "fix",
    "use",
    "way",
    "try",
    "let",
    "day",
    "people",
    "next",
    "said",
    "last",
    "first",
    "well",
    "again",
    "something",
    "thing",
    "same",
    "before",
    "after",
    "tomorrow",
    "week",
    "other",
    "which",
    "why",
    "who",
    "them",
    "our",
    "us",
    "your",
    "has",
    "had",
    "been",
    "were",
    "very",
    "much",
    "too",
    "only",
    "even",
    "over",
    "into",
    "off",
    "than",
    "where",
    "meeting",
    "release",
    "server",
    "problem",
    "idea",
    "morning",
    "lunch",
    "coffee",
    "later",
    "great",
    "nice",
    "please",
    "sorry",
];

const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
    "cl", "dr", "fl", "gr", "pl", "st", "tr", "sh", "ch", "th", "sp",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"];
const CODAS: &[&str] = &[
    "", "", "", "n", "r", "s", "l", "t", "m", "nd", "rk", "st", "ng",
];

/// Words in rank order and the cumulative Zipf weights to draw them.
pub struct Vocab {
    pub words: Vec<String>,
    cdf: Vec<f64>,
}

/// Number of distinct words.
pub const VOCAB_SIZE: usize = 5000;

fn made_up_word(rng: &mut Rng) -> String {
    let syllables = 2 + rng.below(2);
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(ONSETS[rng.below(ONSETS.len())]);
        w.push_str(VOWELS[rng.below(VOWELS.len())]);
        w.push_str(CODAS[rng.below(CODAS.len())]);
    }
    w
}

impl Vocab {
    pub fn new() -> Self {
        let mut seen = HashSet::new();
        let mut words = Vec::with_capacity(VOCAB_SIZE);
        for w in COMMON {
            if seen.insert(w.to_string()) {
                words.push(w.to_string());
            }
        }
        let mut rng = Rng::new(7);
        while words.len() < VOCAB_SIZE {
            let w = made_up_word(&mut rng);
            // Made-up words never contain q or y: the "no match" words below do.
            if w.len() <= 12 && seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut cdf = Vec::with_capacity(words.len());
        let mut acc = 0.0;
        for r in 1..=words.len() {
            acc += 1.0 / r as f64;
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Vocab { words, cdf }
    }

    /// A word drawn with probability proportional to 1 / rank.
    pub fn draw(&self, rng: &mut Rng) -> &str {
        let u = rng.unit();
        let i = self
            .cdf
            .partition_point(|&c| c < u)
            .min(self.words.len() - 1);
        &self.words[i]
    }

    /// Words of ranks `from..=to` (1-based), at most `n` of them, spread evenly.
    pub fn ranks(&self, from: usize, to: usize, n: usize) -> Vec<String> {
        let span = to - from + 1;
        let n = n.min(span);
        (0..n)
            .map(|i| self.words[from - 1 + i * span / n].clone())
            .collect()
    }
}

/// Words that occur in no generated message (the made-up words never contain a `q`).
pub fn nomatch_words(n: usize) -> Vec<String> {
    let mut rng = Rng::new(99);
    (0..n)
        .map(|_| format!("q{}yx", made_up_word(&mut rng)))
        .collect()
}

/// One chat message: 1–60 words, mostly short, first letter capitalised, some punctuation.
pub fn message_body(v: &Vocab, rng: &mut Rng) -> String {
    let r = rng.unit();
    let n = if r < 0.6 {
        2 + rng.below(7)
    } else if r < 0.9 {
        8 + rng.below(13)
    } else {
        20 + rng.below(41)
    };
    let mut s = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            s.push(if rng.below(12) == 0 { ',' } else { ' ' });
            if s.ends_with(',') {
                s.push(' ');
            }
        }
        let w = v.draw(rng);
        if i == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                s.push(f.to_ascii_uppercase());
                s.push_str(c.as_str());
            }
        } else {
            s.push_str(w);
        }
    }
    match rng.below(6) {
        0 => s.push('?'),
        1 => s.push('!'),
        2 | 3 => s.push('.'),
        _ => {}
    }
    s
}

/// Public rooms created by the generator (besides `general`), busiest first.
pub const PUBLIC_ROOMS: &[&str] = &[
    "dev", "random", "ops", "support", "design", "releases", "music", "books", "games", "food",
    "travel", "hiring", "pets", "sports", "news",
];
/// The public room that room-filtered queries name.
pub const FILTER_ROOM: &str = "dev";
const PRIVATE_ROOMS: &[&str] = &["staff", "security", "board", "infra", "party-planning"];

// ---------------------------------------------------------------------------
// search-db: the generator

pub struct GenCfg {
    pub db: PathBuf,
    pub messages: u64,
    pub users: usize,
    pub dms: usize,
    pub days: u64,
    pub batch: usize,
    pub time_rebuild: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn user_name(rng: &mut Rng, i: usize) -> String {
    let mut n = made_up_word(rng);
    n.truncate(10);
    format!("{n}{i}")
}

struct GenRoom {
    id: i64,
    members: Vec<i64>,
    weight: f64,
}

/// Create users, rooms, memberships (every user in `general`, a share in each public room,
/// a few in each private room, pairs in DMs), then messages in increasing time order.
fn setup_rooms(conn: &Connection, cfg: &GenCfg, rng: &mut Rng) -> Res<Vec<GenRoom>> {
    let t0 = now_ms() - cfg.days as i64 * 86_400_000;
    let general: i64 = conn
        .query_row("SELECT id FROM rooms WHERE name = 'general'", [], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or("the database has no `general` room: create it by starting hearth on it first")?;
    let existing: i64 = conn.query_row(
        "SELECT COUNT(*) FROM rooms WHERE name IN ('dev', 'staff')",
        [],
        |r| r.get(0),
    )?;
    let mut users: Vec<(i64, String)> = Vec::new();
    if existing == 0 {
        let tx = conn.unchecked_transaction()?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO users (username, username_key, password_hash, created_at) \
                 VALUES (?1, ?2, '!generated', ?3)",
            )?;
            let mut mem = tx.prepare(
                "INSERT OR IGNORE INTO memberships (room_id, user_id, joined_at) VALUES (?1, ?2, ?3)",
            )?;
            for i in 0..cfg.users {
                let name = user_name(rng, i);
                ins.execute(params![name, name.to_lowercase(), t0])?;
                let id = tx.last_insert_rowid();
                mem.execute(params![general, id, t0])?;
                users.push((id, name));
            }
            let mut room = tx.prepare(
                "INSERT INTO rooms (name, topic, kind, is_public, created_by, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (i, name) in PUBLIC_ROOMS.iter().enumerate() {
                let creator = users[rng.below(users.len())].0;
                room.execute(params![
                    name,
                    format!("All about {name}."),
                    "room",
                    1,
                    creator,
                    t0
                ])?;
                let id = tx.last_insert_rowid();
                // Busier rooms have more members: 60% of the users down to about 5%.
                let p = 0.6 / (1.0 + i as f64 * 0.8);
                for (u, _) in &users {
                    if *u == creator || rng.unit() < p {
                        mem.execute(params![id, u, t0])?;
                    }
                }
            }
            for name in PRIVATE_ROOMS {
                let creator = users[rng.below(users.len())].0;
                room.execute(params![name, "", "room", 0, creator, t0])?;
                let id = tx.last_insert_rowid();
                mem.execute(params![id, creator, t0])?;
                for _ in 0..5 + rng.below(16) {
                    mem.execute(params![id, users[rng.below(users.len())].0, t0])?;
                }
            }
            let mut made = HashSet::new();
            while made.len() < cfg.dms.min(users.len() * (users.len() - 1) / 2) {
                let a = &users[rng.below(users.len())];
                let b = &users[rng.below(users.len())];
                if a.0 == b.0 {
                    continue;
                }
                let mut keys = [a.1.to_lowercase(), b.1.to_lowercase()];
                keys.sort();
                let name = format!("dm:{},{}", keys[0], keys[1]);
                if !made.insert(name.clone()) {
                    continue;
                }
                room.execute(params![name, "", "dm", 0, Option::<i64>::None, t0])?;
                let id = tx.last_insert_rowid();
                mem.execute(params![id, a.0, t0])?;
                mem.execute(params![id, b.0, t0])?;
            }
        }
        tx.commit()?;
    }
    // Rooms with their members, whatever created them (so that a second run appends).
    let mut rooms = Vec::new();
    let mut stmt =
        conn.prepare("SELECT r.id, r.name, r.kind, r.is_public FROM rooms r ORDER BY r.id")?;
    let all: Vec<(i64, String, String, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut mstmt =
        conn.prepare("SELECT user_id FROM memberships WHERE room_id = ?1 ORDER BY user_id")?;
    let dm_count = all.iter().filter(|r| r.2 == "dm").count().max(1) as f64;
    let private_count = all.iter().filter(|r| r.2 == "room" && !r.3).count().max(1) as f64;
    for (id, name, kind, public) in all {
        let members: Vec<i64> = mstmt
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if members.is_empty() {
            continue;
        }
        // Traffic shares: general 30%, public rooms 55% (busiest first), private rooms 10%,
        // DMs 5%.
        let weight = if name == "general" {
            0.30
        } else if kind == "dm" {
            0.05 / dm_count
        } else if !public {
            0.10 / private_count
        } else {
            let rank = PUBLIC_ROOMS.iter().position(|r| *r == name).unwrap_or(10) + 1;
            let h: f64 = (1..=PUBLIC_ROOMS.len()).map(|k| 1.0 / k as f64).sum();
            0.55 / (rank as f64 * h)
        };
        rooms.push(GenRoom {
            id,
            members,
            weight,
        });
    }
    let total: f64 = rooms.iter().map(|r| r.weight).sum();
    let mut acc = 0.0;
    for r in &mut rooms {
        acc += r.weight / total;
        r.weight = acc;
    }
    Ok(rooms)
}

/// Index every message above the search index's high-water mark and move the mark, in a
/// transaction of its own: what the server's writer does right after each commit.
fn index_new_messages(conn: &Connection) -> Res<()> {
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages
             WHERE id > (SELECT indexed_through FROM search_index) ORDER BY id;
         UPDATE search_index SET indexed_through = (SELECT COALESCE(MAX(id), 0) FROM messages);
         COMMIT;",
    )?;
    Ok(())
}

fn file_bytes(db: &Path) -> u64 {
    std::fs::metadata(db).map(|m| m.len()).unwrap_or(0)
}

pub fn generate(cfg: &GenCfg, report: &mut Report) -> Res<()> {
    if !cfg.db.exists() {
        return err(format!(
            "{} does not exist: start hearth on it once first so that it has the current schema",
            cfg.db.display()
        ));
    }
    let conn = Connection::open(&cfg.db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let fts: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages_fts'",
        [],
        |r| r.get(0),
    )?;
    let mark: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'search_index'",
        [],
        |r| r.get(0),
    )?;
    if fts == 0 || mark == 0 {
        return err(format!(
            "{} has no messages_fts index with a high-water mark: it was not created by a \
             current Hearth (start hearth on it once first)",
            cfg.db.display()
        ));
    }
    let have: i64 = conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
    report.info.push(("messages_before".into(), have as f64));
    let need = cfg.messages.saturating_sub(have as u64);
    let mut rng = Rng::new(0x5EA7C4 ^ have as u64);
    let vocab = Vocab::new();
    if need > 0 {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return err(format!("could not enable WAL (journal_mode is {mode})"));
        }
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.pragma_update(None, "cache_size", -262_144)?; // 256 MiB
        let t_setup = Instant::now();
        let rooms = setup_rooms(&conn, cfg, &mut rng)?;
        let setup_secs = t_setup.elapsed().as_secs_f64();
        let start_ms = conn
            .query_row("SELECT MAX(created_at) FROM messages", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?
            .unwrap_or(now_ms() - cfg.days as i64 * 86_400_000);
        let step_ms = ((now_ms() - start_ms).max(0) as f64 / need as f64).max(0.001);
        let t0 = Instant::now();
        let mut done = 0u64;
        let mut body_bytes = 0u64;
        let mut last_report = Instant::now();
        while done < need {
            let n = (need - done).min(cfg.batch as u64);
            let tx = conn.unchecked_transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO messages (room_id, user_id, body, nonce, created_at) \
                     VALUES (?1, ?2, ?3, NULL, ?4)",
                )?;
                for k in 0..n {
                    let u = rng.unit();
                    let room = &rooms[rooms.partition_point(|r| r.weight < u).min(rooms.len() - 1)];
                    // A few members write most of a room's messages.
                    let m = room.members.len();
                    let idx = ((rng.unit().powi(3)) * m as f64) as usize;
                    let author = room.members[idx.min(m - 1)];
                    let body = message_body(&vocab, &mut rng);
                    body_bytes += body.len() as u64;
                    let ts =
                        start_ms + ((done + k) as f64 * step_ms) as i64 + rng.below(1000) as i64;
                    ins.execute(params![room.id, author, body, ts])?;
                }
            }
            tx.commit()?;
            index_new_messages(&conn)?;
            done += n;
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!(
                    "search-db: {done}/{need} messages ({:.0}/s)",
                    done as f64 / t0.elapsed().as_secs_f64()
                );
            }
        }
        let insert_secs = t0.elapsed().as_secs_f64();
        // Read markers at the newest message, as for members who keep up.
        conn.execute_batch(
            "UPDATE memberships SET last_read = COALESCE((SELECT MAX(id) FROM messages m \
             WHERE m.room_id = memberships.room_id), 0);",
        )?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        report.info.push(("setup_secs".into(), setup_secs));
        report.info.push(("insert_secs".into(), insert_secs));
        report
            .info
            .push(("insert_msgs_per_s".into(), need as f64 / insert_secs));
        report.info.push((
            "mean_body_bytes".into(),
            body_bytes as f64 / need.max(1) as f64,
        ));
        println!(
            "search-db: {need} messages inserted in {insert_secs:.1} s ({:.0}/s), \
             indexed after each batch as the server does",
            need as f64 / insert_secs
        );
    } else {
        println!(
            "search-db: {} already has {have} messages",
            cfg.db.display()
        );
    }
    if cfg.time_rebuild {
        // What migration 2 does to a database that predates search; rolled back afterwards so
        // the database stays as the batches indexed it.
        let t = Instant::now();
        conn.execute_batch("BEGIN; INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');")?;
        let secs = t.elapsed().as_secs_f64();
        conn.execute_batch("ROLLBACK;")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        println!("search-db: rebuilding messages_fts from scratch took {secs:.1} s (rolled back)");
        report.info.push(("fts_rebuild_secs".into(), secs));
    }
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
    let rooms: i64 = conn.query_row("SELECT COUNT(*) FROM rooms", [], |r| r.get(0))?;
    let users: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
    let fts_bytes: Option<i64> = conn
        .query_row(
            "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'messages_fts%'",
            [],
            |r| r.get(0),
        )
        .ok()
        .flatten();
    drop(conn);
    report.info.push(("messages".into(), total as f64));
    report.info.push(("rooms".into(), rooms as f64));
    report.info.push(("users".into(), users as f64));
    report
        .info
        .push(("db_mib".into(), file_bytes(&cfg.db) as f64 / 1048576.0));
    if let Some(b) = fts_bytes {
        report.info.push(("fts_mib".into(), b as f64 / 1048576.0));
    }
    // How many messages the words at the edges of each query class match.
    let conn = Connection::open(&cfg.db)?;
    for r in [1, 20, 200, 400, 3000, 5000] {
        let w = &vocab.words[r - 1];
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH ?1",
            [format!("\"{w}\"")],
            |row| row.get(0),
        )?;
        println!("search-db: rank {r} word {w:?} is in {n} messages");
        report.info.push((format!("hits_rank_{r}"), n as f64));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// search: the scenario

pub struct SearchCfg {
    /// Sequential queries per one-word class.
    pub queries: usize,
    /// Concurrent clients and seconds of the throughput phase.
    pub clients: usize,
    pub secs: f64,
    /// Relevance-ordered queries (they can be slow: bounded by count and by `rel_secs`).
    pub rel_queries: usize,
    pub rel_secs: f64,
    pub warmup: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// At least one result.
    Some,
    /// Possibly none.
    Any,
    /// No result at all.
    None,
}

#[derive(Clone)]
struct Query {
    /// Value of `q`.
    q: String,
    /// Every word must occur in each result's body and be highlighted in its snippet.
    words: Vec<String>,
    room: Option<&'static str>,
    relevance: bool,
    expect: Expect,
}

impl Query {
    fn one(w: &str, expect: Expect) -> Self {
        Query {
            q: w.to_string(),
            words: vec![w.to_string()],
            room: None,
            relevance: false,
            expect,
        }
    }

    fn url(&self, base: &str) -> String {
        let mut u = format!("{base}/api/search?q={}", self.q.replace(' ', "+"));
        if let Some(r) = self.room {
            u.push_str("&room=");
            u.push_str(r);
        }
        if self.relevance {
            u.push_str("&sort=relevance");
        }
        u
    }
}

fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
}

/// Check one answer: every result contains every word in its body and highlights one in its
/// snippet, is in
/// the asked room, newest first unless by relevance; emptiness as expected.
/// Returns the number of results.
fn check(q: &Query, body: &str) -> Result<usize, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let results = v["results"].as_array().ok_or("no results array")?;
    match q.expect {
        Expect::Some if results.is_empty() => return Err("no results".into()),
        Expect::None if !results.is_empty() => {
            return Err(format!("{} results, expected none", results.len()))
        }
        _ => {}
    }
    if results.len() > 20 {
        return Err(format!(
            "{} results for the default limit 20",
            results.len()
        ));
    }
    let mut prev: Option<u64> = None;
    for r in results {
        let id = r["id"].as_u64().ok_or("result without id")?;
        let text = r["body"].as_str().ok_or("result without body")?;
        let snippet = r["snippet"]
            .as_str()
            .ok_or("result without snippet")?
            .to_lowercase();
        for w in &q.words {
            if !tokens(text).any(|t| t == *w) {
                return Err(format!("message {id} does not contain {w:?}: {text:?}"));
            }
        }
        // The snippet is a window of the body: it highlights at least one of the words (with
        // several words the others may lie outside the window).
        if !q
            .words
            .iter()
            .any(|w| snippet.contains(&format!("\u{2}{w}\u{3}")))
        {
            return Err(format!(
                "snippet of {id} highlights none of {:?}: {snippet:?}",
                q.words
            ));
        }
        if let Some(room) = q.room {
            if r["room"] != room {
                return Err(format!("message {id} is in {}, not {room}", r["room"]));
            }
        }
        if !q.relevance {
            if let Some(p) = prev {
                if id >= p {
                    return Err(format!("ids not newest first: {p} then {id}"));
                }
            }
        }
        prev = Some(id);
    }
    Ok(results.len())
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    http_errors: AtomicU64,
    wrong: AtomicU64,
    results: AtomicU64,
    problem: FirstProblem,
}

/// Issue one query, record its latency (µs) in `hist`, check the answer.
async fn one(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    q: &Query,
    hist: &mut Histogram<u64>,
    c: &Counters,
) {
    let url = q.url(base);
    let t0 = Instant::now();
    let result = match http.get(&url).bearer_auth(token).send().await {
        Ok(r) if r.status().as_u16() == 200 => r.text().await.map_err(|e| e.to_string()),
        Ok(r) => {
            let status = r.status();
            Err(format!("{status}: {}", r.text().await.unwrap_or_default()))
        }
        Err(e) => Err(e.to_string()),
    };
    let lat = t0.elapsed().as_micros() as u64;
    match result {
        Ok(body) => {
            hist.saturating_record(lat.max(1));
            c.ok.fetch_add(1, Relaxed);
            match check(q, &body) {
                Ok(n) => {
                    c.results.fetch_add(n as u64, Relaxed);
                }
                Err(e) => {
                    c.wrong.fetch_add(1, Relaxed);
                    c.problem.record(format!("GET {url}: {e}"));
                }
            }
        }
        Err(e) => {
            c.http_errors.fetch_add(1, Relaxed);
            c.problem.record(format!("GET {url}: {e}"));
        }
    }
}

struct Phase {
    label: String,
    hist: Histogram<u64>,
    counters: Arc<Counters>,
    wall: f64,
    server_cpu: Option<f64>,
}

impl Phase {
    fn row(&self) -> Row {
        let ok = self.counters.ok.load(Relaxed);
        let mut m = vec![
            ("requests".to_string(), ok as f64),
            ("req_per_s".to_string(), ok as f64 / self.wall.max(1e-9)),
        ];
        push_quantiles(&mut m, &self.hist);
        m.push(("mean_ms".into(), self.hist.mean() / 1000.0));
        if let Some(c) = self.server_cpu {
            m.push(("server_cpu_pct".into(), 100.0 * c / self.wall.max(1e-9)));
            if ok > 0 {
                m.push(("cpu_ms_per_req".into(), c * 1e3 / ok as f64));
            }
        }
        m.push((
            "results_per_req".into(),
            self.counters.results.load(Relaxed) as f64 / ok.max(1) as f64,
        ));
        m.push((
            "http_errors".into(),
            self.counters.http_errors.load(Relaxed) as f64,
        ));
        m.push((
            "wrong_results".into(),
            self.counters.wrong.load(Relaxed) as f64,
        ));
        Row {
            label: self.label.clone(),
            metrics: m,
        }
    }
}

/// Sequential: queries round-robin over the given lists (one list per class), one at a time.
/// Returns one phase per class plus, when `overall` is set, their union.
async fn sequential(
    t: &Target,
    token: &str,
    classes: &[(String, Vec<Query>)],
    per_class: usize,
    max_secs: Option<f64>,
    overall: Option<&str>,
) -> Res<Vec<Phase>> {
    let http = t.http()?;
    let mut phases: Vec<Phase> = classes
        .iter()
        .map(|(label, _)| Phase {
            label: label.clone(),
            hist: new_hist(),
            counters: Arc::new(Counters::default()),
            wall: 0.0,
            server_cpu: None,
        })
        .collect();
    let t_end = max_secs.map(|s| Instant::now() + Duration::from_secs_f64(s));
    // Server CPU time is read from /proc in clock ticks (10 ms): it is measured over the whole
    // loop and reported for a single class or for the union of the classes.
    let mark = CpuMark::now(t.server_pid);
    for i in 0..per_class {
        if t_end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        for (k, (_, qs)) in classes.iter().enumerate() {
            let q = &qs[i % qs.len()];
            let p = &mut phases[k];
            let t0 = Instant::now();
            one(&http, &t.base, token, q, &mut p.hist, &p.counters).await;
            p.wall += t0.elapsed().as_secs_f64();
        }
    }
    let (_, server_cpu, _) = mark.since(t.server_pid);
    if phases.len() == 1 {
        phases[0].server_cpu = server_cpu;
    }
    if let Some(label) = overall {
        let mut all = Phase {
            label: label.to_string(),
            hist: new_hist(),
            counters: Arc::new(Counters::default()),
            wall: 0.0,
            server_cpu: None,
        };
        for p in &phases {
            all.hist.add(&p.hist).expect("same bounds");
            for (a, b) in [
                (&all.counters.ok, &p.counters.ok),
                (&all.counters.http_errors, &p.counters.http_errors),
                (&all.counters.wrong, &p.counters.wrong),
                (&all.counters.results, &p.counters.results),
            ] {
                a.fetch_add(b.load(Relaxed), Relaxed);
            }
            all.wall += p.wall;
        }
        all.server_cpu = server_cpu;
        phases.push(all);
    }
    Ok(phases)
}

/// Concurrent closed loop: `clients` tasks, each picking queries from `mix` for `secs`.
/// Each request picks a class uniformly, then a query of that class uniformly.
async fn concurrent(t: &Target, token: &str, mix: &[Vec<Query>], cfg: &SearchCfg) -> Res<Phase> {
    let http = t.http()?;
    let counters = Arc::new(Counters::default());
    let hist = Arc::new(Mutex::new(new_hist()));
    let mix = Arc::new(mix.to_vec());
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(cfg.secs);
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let (http, counters, hist, mix) =
            (http.clone(), counters.clone(), hist.clone(), mix.clone());
        let (base, token) = (t.base.clone(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut local = new_hist();
            let mut rng = Rng::new(1000 + c as u64);
            tokio::time::sleep_until(start.into()).await;
            while Instant::now() < end {
                let class = &mix[rng.below(mix.len())];
                let q = &class[rng.below(class.len())];
                one(&http, &base, &token, q, &mut local, &counters).await;
            }
            hist.lock().unwrap().add(&local).expect("same bounds");
        }));
    }
    tokio::time::sleep_until(start.into()).await;
    let mark = CpuMark::now(t.server_pid);
    for task in tasks {
        task.await?;
    }
    let (wall, server_cpu, _) = mark.since(t.server_pid);
    let hist = hist.lock().unwrap().clone();
    Ok(Phase {
        label: format!("concurrent one-word mix, {} clients", cfg.clients),
        hist,
        counters,
        wall,
        server_cpu,
    })
}

pub async fn run(t: &Target, cfg: &SearchCfg, report: &mut Report) -> Res<()> {
    if t.raw {
        return err("search needs Hearth (raw-broadcast has no search)");
    }
    let http = t.http()?;
    let acct = client::make_account(t, &http, &client::user_prefix("se")).await?;
    let token = acct.token.clone().ok_or("no token")?;
    let v = Vocab::new();
    // Word classes by rank. In a generated database rank 1 occurs in about 59% of the
    // messages, rank 20 in 5.8%, ranks 200–400 in 0.3–0.6% and ranks 3,000–5,000 in
    // 0.025–0.045%.
    let common = v.ranks(1, 20, 20);
    let medium = v.ranks(200, 400, 50);
    let rare = v.ranks(3000, 5000, 200);
    let none = nomatch_words(50);
    let q1 =
        |ws: &[String], e: Expect| -> Vec<Query> { ws.iter().map(|w| Query::one(w, e)).collect() };
    let one_word = vec![
        ("one-word common".to_string(), q1(&common, Expect::Some)),
        ("one-word medium".to_string(), q1(&medium, Expect::Any)),
        ("one-word rare".to_string(), q1(&rare, Expect::Any)),
        ("one-word no match".to_string(), q1(&none, Expect::None)),
    ];
    let two_word: Vec<Query> = (0..medium.len())
        .map(|i| {
            let (a, b) = (&common[i % common.len()], &medium[i]);
            Query {
                q: format!("{a} {b}"),
                words: vec![a.clone(), b.clone()],
                room: None,
                relevance: false,
                expect: Expect::Any,
            }
        })
        .collect();
    let in_room: Vec<Query> = common
        .iter()
        .map(|w| Query {
            room: Some(FILTER_ROOM),
            ..Query::one(w, Expect::Some)
        })
        .collect();
    let relevance: Vec<Query> = common
        .iter()
        .map(|w| Query {
            relevance: true,
            ..Query::one(w, Expect::Some)
        })
        .collect();
    report.param("common_ranks", "1-20");
    report.param("medium_ranks", "200-400");
    report.param("rare_ranks", "3000-5000");

    // Warm-up: not recorded.
    let warm: Vec<(String, Vec<Query>)> = one_word
        .iter()
        .map(|(l, qs)| (l.clone(), qs.clone()))
        .collect();
    let w = sequential(t, &token, &warm, cfg.warmup, None, None).await?;
    let mut errors = 0u64;
    let mut wrong = 0u64;
    let mut problems = Vec::new();
    let mut account = |phases: &[Phase], report: &mut Report, record: bool| {
        for p in phases {
            errors += p.counters.http_errors.load(Relaxed);
            wrong += p.counters.wrong.load(Relaxed);
            if let Some(e) = p.counters.problem.get() {
                problems.push(e);
            }
            if record {
                report.rows.push(p.row());
            }
        }
    };
    account(&w, report, false);

    let phases = sequential(
        t,
        &token,
        &one_word,
        cfg.queries,
        None,
        Some("one-word all classes"),
    )
    .await?;
    account(&phases, report, true);
    let extra = vec![
        ("two-word (common + medium)".to_string(), two_word),
        (format!("one-word common, room={FILTER_ROOM}"), in_room),
    ];
    let phases = sequential(t, &token, &extra, cfg.queries / 2, None, None).await?;
    account(&phases, report, true);
    let rel = vec![("one-word common, sort=relevance".to_string(), relevance)];
    let phases = sequential(t, &token, &rel, cfg.rel_queries, Some(cfg.rel_secs), None).await?;
    account(&phases, report, true);

    let mix: Vec<Vec<Query>> = one_word.iter().map(|(_, qs)| qs.clone()).collect();
    let p = concurrent(t, &token, &mix, cfg).await?;
    account(std::slice::from_ref(&p), report, true);

    for e in problems.iter().take(5) {
        eprintln!("search: problem: {e}");
    }
    report.checks.push(("http_errors".into(), errors));
    report.checks.push(("wrong_results".into(), wrong));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_stable_and_plain() {
        let v = Vocab::new();
        assert_eq!(v.words.len(), VOCAB_SIZE);
        assert_eq!(v.words[0], "the");
        let set: HashSet<&String> = v.words.iter().collect();
        assert_eq!(set.len(), VOCAB_SIZE);
        assert!(v
            .words
            .iter()
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase())));
        for w in nomatch_words(50) {
            assert!(!set.contains(&w), "{w}");
        }
        let mut rng = Rng::new(1);
        let b = message_body(&v, &mut rng);
        assert!(!b.is_empty() && b.len() < 1000);
    }

    #[test]
    fn answers_are_checked() {
        let q = Query::one("fox", Expect::Some);
        let ok = r#"{"results":[{"id":9,"room":"general","body":"A Fox.","snippet":"A \u0002Fox\u0003."},
            {"id":3,"room":"dev","body":"fox","snippet":"\u0002fox\u0003"}]}"#;
        assert_eq!(check(&q, ok), Ok(2));
        let missing = r#"{"results":[{"id":9,"body":"foxes","snippet":"\u0002foxes\u0003"}]}"#;
        assert!(check(&q, missing).is_err());
        let order = r#"{"results":[{"id":3,"body":"fox","snippet":"\u0002fox\u0003"},
            {"id":9,"body":"fox","snippet":"\u0002fox\u0003"}]}"#;
        assert!(check(&q, order).is_err());
        assert!(check(&q, r#"{"results":[]}"#).is_err());
        let none = Query::one("qux", Expect::None);
        assert_eq!(check(&none, r#"{"results":[]}"#), Ok(0));
    }
}
