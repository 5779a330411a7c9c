//! Storage: one writer thread owns the SQLite write connection; a small pool of read-only
//! connections serves lookups off the async runtime.
//!
//! - [`schema`]: versioned migrations.
//! - [`queries`]: every SQL statement.
//! - [`writer`]: the writer thread and its group commit.

pub mod queries;
pub mod schema;
pub mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::config::Synchronous;
pub use writer::{Committed, NewMessage};

/// Whether a new account administers the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewAdmin {
    /// An ordinary member.
    No,
    /// An administrator when it is the first account (`hearth user add`).
    IfFirst,
    /// An administrator when the server has none (registration with the setup link).
    IfNoAdmin,
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Name as chosen at registration.
    pub username: String,
}

/// A room or direct conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Row id.
    pub id: i64,
    /// Unique name used in URLs and frames.
    pub name: String,
    /// Free-text topic.
    pub topic: String,
    /// A room or a DM.
    pub kind: RoomKind,
    /// Listed in the directory and readable by everyone.
    pub public: bool,
    /// Creator's username (none for `general` and DMs).
    pub created_by: Option<String>,
    /// Number of members.
    pub members: i64,
    /// DMs: every participant's username, sorted ignoring case. Empty for rooms.
    pub users: Vec<String>,
    /// Newest message id in the room (0 when empty).
    pub last_id: i64,
    /// The asking user's membership, when they are a member.
    pub membership: Option<Membership>,
}

/// Whether a room is a named room or a direct conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// A named room, public or private.
    Room,
    /// A direct conversation between 2–8 users.
    Dm,
}

impl RoomKind {
    /// Value stored in the `kind` column and sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Room => "room",
            RoomKind::Dm => "dm",
        }
    }
}

/// How much a member wants to be notified about a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notify {
    /// Every message.
    All,
    /// Only mentions.
    Mentions,
    /// Nothing.
    Nothing,
}

impl Notify {
    /// Value stored in the `notify` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Notify::All => "all",
            Notify::Mentions => "mentions",
            Notify::Nothing => "nothing",
        }
    }

    pub(crate) fn parse(s: &str) -> Notify {
        match s {
            "mentions" => Notify::Mentions,
            "nothing" => Notify::Nothing,
            _ => Notify::All,
        }
    }
}

/// One user's state in a room they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// Highest message id read.
    pub last_read: i64,
    /// Messages by others after `last_read` (counted up to [`UNREAD_CAP`]).
    pub unread: i64,
    /// Of those, the ones that mention the user.
    pub mentions: i64,
    /// Notification level.
    pub notify: Notify,
}

/// Unread counts stop at this number.
pub const UNREAD_CAP: i64 = 1000;

/// A committed message with everything a frame needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Global, increasing id.
    pub id: i64,
    /// Room row id.
    pub room_id: i64,
    /// Room name.
    pub room: String,
    /// Author's username.
    pub user: String,
    /// Trimmed body.
    pub body: String,
    /// The sender's nonce, if it gave one.
    pub nonce: Option<String>,
    /// Commit time, milliseconds since the Unix epoch.
    pub ts_ms: i64,
}

/// A search hit: the message and a snippet with matches between U+0002 and U+0003.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The message.
    pub msg: StoredMessage,
    /// Part of the body around the match.
    pub snippet: String,
}

/// How a session token was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Browser session cookie.
    Cookie,
    /// Bearer token for bots.
    Bot,
}

impl SessionKind {
    /// Value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Cookie => "cookie",
            SessionKind::Bot => "bot",
        }
    }

    /// The kind stored as `s` in the `kind` column (`cookie` unless it says `bot`).
    pub fn parse(s: &str) -> Self {
        if s == "bot" {
            SessionKind::Bot
        } else {
            SessionKind::Cookie
        }
    }
}

/// A live session, as looked up by token.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Owner.
    pub user: User,
    /// Cookie or bot.
    pub kind: SessionKind,
    /// Last recorded activity (ms).
    pub last_seen_at: i64,
    /// Whether the owner is an administrator.
    pub is_admin: bool,
}

/// A session row to insert.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Owner.
    pub user_id: i64,
    /// Cookie or bot.
    pub kind: SessionKind,
    /// Bot token name.
    pub name: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Absolute expiry (ms), none for bot tokens.
    pub expires_at: Option<i64>,
}

/// Storage failures. Their text is logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The transaction holding this change failed to commit.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writer has shut down.
    #[error("the database writer has stopped")]
    Closed,
    /// A blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
    /// A bounded read used up its time budget (or its caller went away) and was stopped.
    #[error("the query took too long and was stopped")]
    Interrupted,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("database {path}: {reason}")]
pub struct OpenError {
    path: String,
    reason: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReadPool {
    /// The first idle connection, else wait for the round-robin one.
    fn take(&self) -> Result<std::sync::MutexGuard<'_, Connection>, DbError> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .find_map(|i| self.conns[(start + i) % n].try_lock().ok())
            .map(Ok)
            .unwrap_or_else(|| self.conns[start % n].lock())
            .map_err(|_| DbError::Task("reader poisoned".into()))
    }
}

/// Cheap-to-clone handle to the store.
#[derive(Clone)]
pub struct Db {
    writer: mpsc::Sender<writer::WriteCmd>,
    readers: Arc<ReadPool>,
    /// Connections for expensive, bounded reads (search), so those never hold the readers
    /// that sign-ins, history and new connections need.
    heavy: Arc<ReadPool>,
}

/// Connections in the general read pool.
const READERS: usize = 4;
/// Connections reserved for bounded, expensive reads.
const HEAVY_READERS: usize = 2;
/// SQLite virtual machine steps between two checks of a bounded read's deadline.
const PROGRESS_STEPS: i32 = 4096;

/// Set on every connection, writer and readers.
fn common_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Open a read-write connection: create the file if needed, WAL, pragmas, migrations. Used by
/// the writer thread and by the operator commands (which may run beside a live server).
pub fn open_writable(path: &Path, synchronous: Synchronous) -> Result<Connection, OpenError> {
    let fail = |reason: String| OpenError {
        path: path.display().to_string(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(fail(format!("folder {} does not exist", dir.display())));
        }
    }
    let mut conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
    let setup = |conn: &mut Connection| -> rusqlite::Result<Result<u32, String>> {
        common_pragmas(conn)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(Err(format!(
                "could not enable WAL (journal_mode is {mode})"
            )));
        }
        let sync = match synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        let current = schema::version(conn)?;
        if current > 0 && current < schema::MIGRATIONS.len() as u32 {
            let copy = backup_path(path, current);
            tracing::info!(
                "upgrading the database from schema {current}; a copy of it is kept at {}",
                copy.display()
            );
            if !copy.exists() {
                conn.backup(rusqlite::MAIN_DB, &copy, None)?;
            }
        }
        schema::migrate(conn)
    };
    setup(&mut conn)
        .map_err(|e| fail(e.to_string()))?
        .map_err(fail)?;
    Ok(conn)
}

/// Where the copy taken before upgrading from schema `version` goes: `chat.db` →
/// `chat.db.schema-1.bak`, next to the database.
pub fn backup_path(path: &Path, version: u32) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".schema-{version}.bak"));
    path.with_file_name(name)
}

impl Db {
    /// Open (creating if needed) the database, migrate it, start the writer thread.
    ///
    /// Committed messages are handed, batch by batch, to `commits`.
    pub fn open(
        path: &Path,
        synchronous: Synchronous,
        commits: std::sync::mpsc::Sender<Vec<Committed>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<(Db, writer::WriterHandle), OpenError> {
        let fail = |reason: String| OpenError {
            path: path.display().to_string(),
            reason,
        };
        let conn = open_writable(path, synchronous)?;
        let pool = |n: usize| {
            (0..n)
                .map(|_| {
                    let c = Connection::open_with_flags(
                        path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    common_pragmas(&c)?;
                    Ok(Mutex::new(c))
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(|conns| {
                    Arc::new(ReadPool {
                        conns,
                        next: AtomicUsize::new(0),
                    })
                })
                .map_err(|e| fail(e.to_string()))
        };
        let readers = pool(READERS)?;
        let heavy = pool(HEAVY_READERS)?;

        let (tx, handle) =
            writer::spawn(conn, commits, metrics).map_err(|e| fail(e.to_string()))?;
        Ok((
            Db {
                writer: tx,
                readers,
                heavy,
            },
            handle,
        ))
    }

    /// Run a read-only closure on a pooled connection, off the async runtime.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            f(&conn).map_err(DbError::from)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Run an expensive read-only closure on one of the connections kept for such reads,
    /// stopped with [`DbError::Interrupted`] once it has run for `budget` or as soon as the
    /// returned future is dropped (its client went away).
    pub async fn read_bounded<T, F>(&self, budget: Duration, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        struct CancelOnDrop(Arc<AtomicBool>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel = CancelOnDrop(cancelled.clone());
        let pool = self.heavy.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            if cancelled.load(Ordering::Relaxed) {
                return Err(DbError::Interrupted);
            }
            let deadline = std::time::Instant::now() + budget;
            let stop = cancelled.clone();
            conn.progress_handler(
                PROGRESS_STEPS,
                Some(move || stop.load(Ordering::Relaxed) || std::time::Instant::now() >= deadline),
            );
            let result = f(&conn);
            conn.progress_handler(0, None::<fn() -> bool>);
            result.map_err(|e| match e {
                rusqlite::Error::SqliteFailure(ref err, _)
                    if err.code == rusqlite::ErrorCode::OperationInterrupted =>
                {
                    DbError::Interrupted
                }
                e => DbError::from(e),
            })
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Run a closure on the write connection inside the writer's next transaction.
    ///
    /// The result is returned only after that transaction committed; if the closure fails,
    /// its changes are rolled back and the rest of the batch is unaffected.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        // Answered on commit, from the writer thread: no detour through the fan-out.
        let (tx, rx) = oneshot::channel();
        let job: writer::Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: writer::Reply = Box::new(move |commit: Result<(), DbError>| {
                let _ = tx.send(commit.and_then(|()| result.map_err(DbError::from)));
            });
            (ok, reply, None)
        });
        self.writer
            .send(writer::WriteCmd::Exec(job))
            .await
            .map_err(|_| DbError::Closed)?;
        rx.await.map_err(|_| DbError::Closed)?
    }

    /// Like [`Db::write`] for changes that others must see in order with messages: `then`
    /// runs on the fan-out thread after the commit, after every message committed before
    /// this change was delivered and before any committed after it, and the result is
    /// returned once it ran. When `f` fails (`Err(E)`), everything it wrote is rolled back and
    /// `then` does not run.
    pub async fn transact<T, E, F, H>(&self, f: F, then: H) -> Result<Result<T, E>, DbError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        H: FnOnce(&T) + Send + 'static,
    {
        type Answer<T, E> = Result<Result<T, E>, DbError>;
        let (tx, rx) = oneshot::channel::<Answer<T, E>>();
        let job: writer::Job = Box::new(move |conn| match f(conn) {
            Ok(value) => {
                let tx = Arc::new(Mutex::new(Some(tx)));
                let on_fail = tx.clone();
                let reply: writer::Reply = Box::new(move |commit: Result<(), DbError>| {
                    if let Err(e) = commit {
                        if let Some(tx) = on_fail.lock().ok().and_then(|mut t| t.take()) {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
                let hook: writer::Hook = Box::new(move || {
                    then(&value);
                    if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(Ok(Ok(value)));
                    }
                });
                (true, reply, Some(hook))
            }
            Err(e) => {
                let reply: writer::Reply = Box::new(move |commit: Result<(), DbError>| {
                    let _ = tx.send(commit.map(|()| Err(e)));
                });
                (false, reply, None)
            }
        });
        self.writer
            .send(writer::WriteCmd::Exec(job))
            .await
            .map_err(|_| DbError::Closed)?;
        rx.await.map_err(|_| DbError::Closed)?
    }

    /// Queue a message for the next commit. Its outcome arrives through the commit channel.
    /// Waits only if the writer's queue is full.
    pub async fn submit(&self, msg: NewMessage) -> Result<(), DbError> {
        self.writer
            .send(writer::WriteCmd::Message(msg))
            .await
            .map_err(|_| DbError::Closed)
    }
}
