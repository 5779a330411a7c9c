//! Storage: one writer thread owns the SQLite write connection; a few reader threads, each
//! with a read-only connection, serve lookups off the async runtime (`readers`).
//!
//! - [`crate::model`]: the rows the store hands out (users, rooms, messages, sessions).
//! - [`schema`]: versioned migrations.
//! - [`queries`]: every SQL statement.
//! - `store`: typed methods on [`Db`], the only way the rest of Hearth reaches the data, and
//!   [`FileStore`], the synchronous handle the operator commands open on the file.
//! - [`writer`]: the writer thread and its group commit.
//! - [`search_index`]: the full-text index, written just after each commit behind a durable
//!   high-water mark.
//! - [`pg`]: PostgreSQL for cluster mode (its schema, and the copy of a SQLite community).

mod checkpoint;
pub mod pg;
pub mod queries;
mod readers;
pub mod schema;
pub mod search_index;
pub mod sql;
mod store;
pub mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::config::Synchronous;
pub use crate::events::{Change, Changes, Committed};
pub use crate::model::*;
pub use store::{
    AccountChange, BackupError, Created, Exported, FileStore, Gate, HookAuth, HookMade, NewAccount,
    NewHook, NewInvite, RoomTail, Snapshot, Tx, UploadFiles, UploadRefused,
};
pub use writer::NewMessage;

/// Storage failures. Their text is logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error.
    #[error("postgresql: {0}")]
    Postgres(#[from] sql::PgError),
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

impl From<sql::SqlError> for DbError {
    fn from(e: sql::SqlError) -> DbError {
        match e {
            sql::SqlError::Lite(e) => DbError::Sqlite(e),
            sql::SqlError::Pg(e) => DbError::Postgres(e),
            sql::SqlError::Missing(what) => DbError::Task(format!("{what} is missing")),
            sql::SqlError::Io(e) => DbError::Task(format!("file: {e}")),
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("database {path}: {reason}")]
pub struct OpenError {
    path: String,
    reason: String,
}

/// The file beside the SQLite file at `path` that a serving process holds locked.
pub fn serving_lock_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-lock");
    std::path::PathBuf::from(name)
}

/// Claim the SQLite file at `path` for this process's server: an exclusive lock on
/// [`serving_lock_path`], held as long as the returned file is open (the kernel lets it go
/// if the process dies). A second server on the same file would keep its own view of the
/// rooms in memory and never hear of the first one's messages, so it is refused. Operator
/// commands do not claim the file (they run beside a live server);
/// `hearth migrate-to-postgres` asks [`serving_elsewhere`] first.
pub fn claim(path: &Path) -> Result<std::fs::File, OpenError> {
    let lock = serving_lock_path(path);
    let fail = |reason: String| OpenError {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| fail(format!("cannot open {}: {e}", lock.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(fail(
            "another Hearth server is serving this file; stop it first (one SQLite file \
             has one server: several nodes share a PostgreSQL database instead)"
                .into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(fail(format!("cannot lock {}: {e}", lock.display())))
        }
    }
}

/// Whether a server holds the SQLite file at `path` now (see [`claim`]).
pub fn serving_elsewhere(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(serving_lock_path(path)) else {
        return false;
    };
    matches!(
        file.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    )
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Connections for bounded reads, each used by one blocking task at a time.
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

/// On PostgreSQL, how long a node answers from the sessions it cached after its last look at
/// the revocation counter began (every node looks every 200 ms; past this it asks the
/// database for every session until a look succeeds again). A revocation answers only this
/// long after its commit, so by then every node has seen it or stopped trusting its cache:
/// a session revoked through one node is refused by every node from the moment the
/// revocation was answered, even by a node that was frozen or cut off from the database.
pub const SESSIONS_LEASE: std::time::Duration = std::time::Duration::from_millis(500);

/// When a node last began a look at the revocation counter that brought it up to date.
struct SessionsLease {
    born: std::time::Instant,
    /// Milliseconds from `born` to the start of that look, plus one; 0 before the first.
    checked: AtomicU64,
}

impl Default for SessionsLease {
    fn default() -> Self {
        SessionsLease {
            born: std::time::Instant::now(),
            checked: AtomicU64::new(0),
        }
    }
}

/// Cheap-to-clone handle to the store.
#[derive(Clone)]
pub struct Db {
    writer: mpsc::Sender<writer::WriteCmd>,
    readers: Arc<readers::Readers>,
    /// Connections for expensive, bounded reads (search on SQLite), so those never hold the
    /// readers that sign-ins, history and new connections need. PostgreSQL bounds a search
    /// with a statement timeout instead, on a reader.
    heavy: Option<Arc<ReadPool>>,
    /// Bumped after every change to a session or an account (a revocation, a password, the
    /// administrator flag, disabling): caches of sessions compare it to know they are current.
    sessions_generation: Arc<AtomicU64>,
    /// On PostgreSQL: when this node last found itself up to date with the revocation
    /// counter (see [`SESSIONS_LEASE`]).
    sessions_lease: Option<Arc<SessionsLease>>,
    /// How far the full-text index has caught up with the committed messages.
    search_index: Arc<search_index::IndexProgress>,
    /// Outgoing webhooks that exist (or may: raised inside the job that adds one, lowered
    /// only after a removal committed), so the writer queues deliveries only when there can
    /// be any, and never misses one. On PostgreSQL another node may add one unseen: the
    /// writer always looks the room's webhooks up there, and this count (read again by the
    /// deliverer) only decides whether new messages wake the deliverer.
    webhooks: Arc<AtomicUsize>,
    /// On PostgreSQL: what the writer tells the node's log follower.
    handoff: Option<Arc<pg::log::Handoff>>,
}

/// Connections (and threads) in the general read pool.
const READERS: usize = 4;
/// Connections reserved for bounded, expensive reads.
const HEAVY_READERS: usize = 2;
/// SQLite virtual machine steps between two checks of a bounded read's deadline.
const PROGRESS_STEPS: i32 = 4096;

/// Set on every connection, writer and readers.
fn common_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Plans must not depend on the values bound to a statement. SQLite reads the value of a
    // `LIMIT ?n` while planning, which marks the statement to be compiled again whenever that
    // parameter is bound anew: every run of a cached statement with `LIMIT ?n` (history
    // pages, replays) was parsed and planned from scratch. With the stability guarantee a
    // plan is made once per statement.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Open a read-only connection to the database at `path` (which exists and is migrated), as
/// the read pools use it.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    common_pragmas(&c)?;
    // Read the file through a mapping: a page the kernel has cached costs no `pread` and no
    // copy. 256 MiB covers a database of about a million messages with their search index;
    // beyond it pages are read as usual.
    c.pragma_update(None, "mmap_size", 256i64 << 20)?;
    Ok(c)
}

/// Open a read-write connection: create the file if needed, WAL, pragmas, migrations. Used by
/// the writer thread and by [`FileStore`] for the operator commands (which may run beside a
/// live server).
pub(in crate::db) fn open_writable(
    path: &Path,
    synchronous: Synchronous,
) -> Result<Connection, OpenError> {
    let fail = |reason: String| OpenError {
        path: path.display().to_string(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(fail(format!("folder {} does not exist", dir.display())));
        }
    }
    let access = "may this user write the file and its folder?";
    let mut conn = Connection::open(path).map_err(|e| fail(format!("{e} ({access})")))?;
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
        // A deleted message must be gone from the file, not just unlinked: SQLite overwrites
        // the space of deleted rows and freed pages with zeros, so neither the database nor
        // a backup made afterwards holds the text.
        conn.pragma_update(None, "secure_delete", "ON")?;
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
    // SQLite opens a file it may not write read-only without a word, and a database already
    // up to date needs no write to open: ask for the write lock now rather than fail every
    // write later.
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK")
        .map_err(|e| fail(format!("cannot write it: {e} ({access})")))?;
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
    /// Open (creating if needed) the database, migrate it, index for search whatever a crash
    /// left unindexed, start the writer thread.
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
        let open_readers = |n: usize| {
            (0..n)
                .map(|_| open_reader(path))
                .collect::<rusqlite::Result<Vec<Connection>>>()
                .map_err(|e| fail(e.to_string()))
        };
        let readers = readers::Readers::start(
            open_readers(READERS)?
                .into_iter()
                .map(sql::Conn::Lite)
                .collect(),
        )
        .map(Arc::new)
        .map_err(|e| fail(e.to_string()))?;
        let heavy = Some(Arc::new(ReadPool {
            conns: open_readers(HEAVY_READERS)?
                .into_iter()
                .map(Mutex::new)
                .collect(),
            next: AtomicUsize::new(0),
        }));

        let count = queries::webhook_count(&conn).map_err(|e| fail(e.to_string()))?;
        let webhooks = Arc::new(AtomicUsize::new(count.max(0) as usize));
        // Everything committed before this start counts as delivered: nothing of it is on its
        // way to the fan-out (`Metrics::log_behind`).
        metrics.log_delivered(queries::head(&conn).map_err(|e| fail(e.to_string()))?);
        let (tx, handle, search_index) = writer::spawn(
            sql::Conn::Lite(conn),
            commits,
            metrics,
            (webhooks.clone(), None),
        )
        .map_err(|e| fail(e.to_string()))?;
        Ok((
            Db {
                writer: tx,
                readers,
                heavy,
                sessions_generation: Arc::new(AtomicU64::new(0)),
                sessions_lease: None,
                search_index,
                webhooks,
                handoff: None,
            },
            handle,
        ))
    }

    /// Open the PostgreSQL database at `url` (cluster mode): bring its schema up to date,
    /// connect the readers, start the writer. Committed messages are handed, batch by batch,
    /// to `commits`, as with [`Db::open`].
    pub fn open_postgres(
        url: &str,
        commits: std::sync::mpsc::Sender<Vec<Committed>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<(Db, writer::WriterHandle), OpenError> {
        // The driver blocks on a runtime of its own, which may not start on one of tokio's
        // threads: connect from a thread of our own.
        std::thread::scope(|s| {
            s.spawn(|| Db::connect_postgres(url, commits, metrics))
                .join()
                .unwrap_or_else(|_| {
                    Err(OpenError {
                        path: pg::redacted(url),
                        reason: "connecting failed".into(),
                    })
                })
        })
    }

    fn connect_postgres(
        url: &str,
        commits: std::sync::mpsc::Sender<Vec<Committed>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<(Db, writer::WriterHandle), OpenError> {
        let fail = |reason: String| OpenError {
            path: pg::redacted(url),
            reason,
        };
        let config = pg::open(url).map_err(fail)?;
        let connect = |setup| pg::session(&config, setup).map_err(fail);
        let readers = (0..READERS)
            .map(|_| connect(pg::READER_SESSION).map(sql::Conn::Pg))
            .collect::<Result<Vec<_>, _>>()?;
        let readers = readers::Readers::start(readers)
            .map(Arc::new)
            .map_err(|e| fail(e.to_string()))?;
        let writer = connect(pg::WRITER_SESSION)?;
        let handoff = Arc::new(pg::log::Handoff::default());
        let count = queries::webhook_count(&writer).map_err(|e| fail(e.to_string()))?;
        let webhooks = Arc::new(AtomicUsize::new(count.max(0) as usize));
        let (tx, handle, search_index) = writer::spawn(
            sql::Conn::Pg(writer),
            commits,
            metrics,
            (webhooks.clone(), Some(handoff.clone())),
        )
        .map_err(|e| fail(e.to_string()))?;
        Ok((
            Db {
                writer: tx,
                readers,
                heavy: None,
                sessions_generation: Arc::new(AtomicU64::new(0)),
                sessions_lease: Some(Arc::new(SessionsLease::default())),
                search_index,
                webhooks,
                handoff: Some(handoff),
            },
            handle,
        ))
    }

    /// On PostgreSQL, what the writer tells the node's log follower.
    pub fn log_handoff(&self) -> Option<Arc<pg::log::Handoff>> {
        self.handoff.clone()
    }

    /// Whether this store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.handoff.is_some()
    }

    /// Whether any outgoing webhook may exist.
    pub fn has_webhooks(&self) -> bool {
        self.webhooks.load(Ordering::Relaxed) > 0
    }

    /// The current generation of sessions and accounts: it changes after every revocation,
    /// password change or account change made through this store, and when
    /// [`Db::forget_sessions`] is called.
    pub fn sessions_generation(&self) -> u64 {
        self.sessions_generation.load(Ordering::Acquire)
    }

    /// Sessions or accounts changed (here, or in another process: the command line): every
    /// session cached so far is stale.
    pub fn forget_sessions(&self) {
        self.sessions_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A look at the revocation counter that began at `began` found this node up to date
    /// (every session revoked before then forgotten, its sockets closed).
    pub fn sessions_checked(&self, began: std::time::Instant) {
        if let Some(lease) = &self.sessions_lease {
            let ms = began.saturating_duration_since(lease.born).as_millis() as u64 + 1;
            lease.checked.fetch_max(ms, Ordering::AcqRel);
        }
    }

    /// Whether the sessions cached here may answer a request: always on SQLite (every
    /// revocation but the command line's goes through this server); on PostgreSQL while
    /// the last successful look at the revocation counter began less than
    /// [`SESSIONS_LEASE`] ago.
    pub fn cached_sessions_usable(&self) -> bool {
        let Some(lease) = &self.sessions_lease else {
            return true;
        };
        match lease.checked.load(Ordering::Acquire) {
            0 => false,
            ms => {
                let began = lease.born + std::time::Duration::from_millis(ms - 1);
                began.elapsed() < SESSIONS_LEASE
            }
        }
    }

    /// After a revocation through this store committed: forget the sessions cached here
    /// and, on PostgreSQL, wait out [`SESSIONS_LEASE`], so that no node still trusts a
    /// cache that holds the revoked sessions when the caller answers.
    async fn sessions_revoked(&self) {
        self.forget_sessions();
        if self.sessions_lease.is_some() {
            tokio::time::sleep(SESSIONS_LEASE).await;
        }
    }

    /// Run a read-only closure on one of the reader threads' connections, off the async
    /// runtime.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&sql::Conn) -> Result<T, sql::SqlError> + Send + 'static,
    {
        self.readers.run(f).await
    }

    /// Run `f` over a [`Tx`] on a reader connection: for use cases that check their rules
    /// against several rows in one go.
    pub async fn read_tx<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        self.read(move |c| Ok(f(&Tx(c)))).await.map_err(E::from)?
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
        let Some(pool) = self.heavy.clone() else {
            return Err(DbError::Task("bounded reads are SQLite's".into()));
        };
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
        F: FnOnce(&sql::Conn) -> Result<T, sql::SqlError> + Send + 'static,
    {
        self.write_if(f, |_| true).await
    }

    /// Like [`Db::write`], but everything `f` wrote is rolled back unless `keep` approves of
    /// the value it returned (the value is returned either way). For changes that may turn
    /// out to be refusals half-way through.
    pub async fn write_if<T, F>(&self, f: F, keep: fn(&T) -> bool) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&sql::Conn) -> Result<T, sql::SqlError> + Send + 'static,
    {
        // Answered on commit, from the writer thread: no detour through the fan-out.
        let (tx, rx) = oneshot::channel();
        let job: writer::Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = matches!(&result, Ok(value) if keep(value));
            let reply = move |commit: Result<(), DbError>| {
                let _ = tx.send(commit.and_then(|()| result.map_err(DbError::from)));
            };
            writer::JobDone::new(ok, reply, None)
        });
        self.writer
            .send(writer::WriteCmd::Exec(job, false))
            .await
            .map_err(|_| DbError::Closed)?;
        rx.await.map_err(|_| DbError::Closed)?
    }

    /// Run `f` inside the writer's next transaction and, once that committed, `then` with its
    /// value on the write connection, outside any transaction and before the writer starts
    /// another: for work that must not happen unless the commit did, and that must see
    /// only committed rows (a job later in the same batch may write rows `f` did not see,
    /// and a batch that fails rolls back what `f` saw other jobs write). Returns what `then`
    /// returned; when `f` fails or the commit does, `then` does not run.
    pub(crate) async fn write_then<T, U, F, G>(&self, f: F, then: G) -> Result<U, DbError>
    where
        T: Send + 'static,
        U: Send + 'static,
        F: FnOnce(&sql::Conn) -> Result<T, sql::SqlError> + Send + 'static,
        G: FnOnce(&sql::Conn, T) -> Result<U, sql::SqlError> + Send + 'static,
    {
        let (committed, on_commit) = oneshot::channel::<Result<(), DbError>>();
        let (done, on_done) = oneshot::channel::<Result<U, DbError>>();
        let job: writer::Job = Box::new(move |conn| {
            let value = match f(conn) {
                Ok(value) => value,
                Err(e) => {
                    let e = DbError::from(e);
                    return writer::JobDone::new(
                        false,
                        move |_| drop(committed.send(Err(e))),
                        None,
                    );
                }
            };
            let reply = move |commit: Result<(), DbError>| drop(committed.send(commit));
            writer::JobDone::new(true, reply, None).then(move |conn| {
                let _ = done.send(then(conn, value).map_err(DbError::from));
            })
        });
        self.writer
            .send(writer::WriteCmd::Exec(job, false))
            .await
            .map_err(|_| DbError::Closed)?;
        on_commit.await.map_err(|_| DbError::Closed)??;
        on_done.await.map_err(|_| DbError::Closed)?
    }

    /// Like [`Db::write`] for changes that others must see in order with messages: `f` returns
    /// its value and the [`Change`]s it made; once committed, the fan-out thread applies them
    /// after every message committed before and before any committed after, and only then is
    /// the value returned. When `f` refuses (`Err`), everything it wrote is rolled back and
    /// nothing reaches the hub.
    pub async fn transact<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<(T, Vec<Change>), E> + Send + 'static,
    {
        self.transact_then(f, true).await
    }

    /// [`Db::transact`], returning on the commit when `wait_applied` is false: for a
    /// WebSocket command, whose acknowledgement is its echo through the hub anyway, and
    /// whose session must go on forwarding its queue meanwhile (with several nodes, the hub
    /// applies the change once this node has read the log that far, which a node catching
    /// up takes a while to).
    pub async fn transact_then<T, E, F>(&self, f: F, wait_applied: bool) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<(T, Vec<Change>), E> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let (applied, on_applied) = oneshot::channel::<()>();
        let job: writer::Job = Box::new(move |conn| match f(&Tx(conn)) {
            Ok((value, changes)) => writer::JobDone::new(
                true,
                move |commit: Result<(), DbError>| {
                    let _ = tx.send(commit.map(|()| value).map_err(E::from));
                },
                Some(Changes { changes, applied }),
            ),
            Err(e) => writer::JobDone::new(
                false,
                move |commit: Result<(), DbError>| {
                    let _ = tx.send(Err(commit.map_err(E::from).err().unwrap_or(e)));
                },
                None,
            ),
        });
        self.writer
            .send(writer::WriteCmd::Exec(job, true))
            .await
            .map_err(|_| E::from(DbError::Closed))?;
        let value = rx.await.map_err(|_| E::from(DbError::Closed))??;
        // Committed: wait until the hub has applied the changes, so the caller's next step
        // (a message to the room just joined, say) finds the hub up to date.
        if wait_applied {
            on_applied.await.map_err(|_| E::from(DbError::Closed))?;
        }
        Ok(value)
    }

    /// Resolve once everything queued to the writer before this call is committed (or has
    /// failed) and the hub has delivered its outcomes: the answers to earlier sends are then
    /// in their connections' queues. Runs no SQL; resolves at once when the writer has
    /// stopped.
    pub async fn barrier(&self) {
        let (applied, delivered) = oneshot::channel();
        if self
            .writer
            .send(writer::WriteCmd::Barrier(applied))
            .await
            .is_ok()
        {
            let _ = delivered.await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// A cached statement with `LIMIT ?n` runs again with another limit without being
    /// compiled again, on the writer's connection and on a reader's.
    #[test]
    fn cached_statements_with_a_bound_limit_are_planned_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let writer = open_writable(&path, Synchronous::Full).unwrap();
        let reader = open_reader(&path).unwrap();
        let sql = "SELECT id FROM users WHERE id < ?1 ORDER BY id DESC LIMIT ?2";
        for conn in [&writer, &reader] {
            for limit in 1..=5i64 {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                let ids: Vec<i64> = stmt
                    .query_map(rusqlite::params![i64::MAX, limit], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert!(ids.len() <= limit as usize);
                assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
            }
        }
    }

    /// A page written straight from its rows (`queries::room_page`, `history_body_of`) is
    /// byte for byte the page of its messages' own objects (`message_json`, which pages
    /// from memory are made of): replies, tombstones, edits, reactions, files, previews,
    /// text that needs escaping, and another room's message among the ids.
    #[test]
    fn a_page_from_its_rows_is_the_page_of_its_messages() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writable(&dir.path().join("chat.db"), Synchronous::Full).unwrap();
        conn.execute_batch(
            r#"
            INSERT INTO users (id, username, username_key, password_hash, created_at)
                VALUES (1, 'Ann', 'ann', 'x', 0), (2, 'bob', 'bob', 'x', 0);
            INSERT INTO rooms (id, name, created_at) VALUES (2, 'other', 0);
            INSERT INTO messages (id, room_id, user_id, body, nonce, created_at, edited_at,
                                  deleted, reply_to) VALUES
                (1, 1, 1, 'hello "world" \ /', 'n1', 1764000000123, NULL, 0, NULL),
                (2, 1, 2, 'café 😀 ' || char(10) || 'line' || char(9) || char(1), NULL,
                    1764000001000, 1764000009999, 0, NULL),
                (3, 1, 1, 'a reply', 'n3', 1764000002000, NULL, 0, 1),
                (4, 1, 2, '', 'n4', 1764000003000, 1764000004000, 1, 2),
                (5, 2, 1, 'in another room', NULL, 1764000005000, NULL, 0, NULL),
                (6, 1, 1, 'reacted to', NULL, 1764000006000, NULL, 0, NULL),
                (7, 1, 2, 'files and a link https://example.com', NULL, 1764000007000, NULL,
                    0, NULL),
                (8, 1, 1, 'a removed preview', NULL, 1764000008000, NULL, 0, NULL),
                (9, 1, 2, 'answers a tombstone', NULL, 1764000009000, NULL, 0, 4);
            INSERT INTO reactions (message_id, room_id, user_id, emoji, first_use, created_at)
                VALUES (6, 1, 2, '🎉', 2, 5), (6, 1, 1, '👍', 1, 6), (6, 1, 2, '👍', 1, 7),
                       (4, 1, 1, '👀', 1, 8);
            INSERT INTO uploads (id, user_id, message_id, position, name, type, size, sha256,
                                 width, height, thumb_sha256, thumb_type, created_at) VALUES
                ('b', 2, 7, 1, 'notes "v2".txt', 'text/plain', 12, 'h2', NULL, NULL, NULL,
                    NULL, 0),
                ('a', 2, 7, 0, 'cat.png', 'image/png', 3000, 'h1', 640, 480, 't1',
                    'image/webp', 0),
                ('c', 1, 5, 0, 'elsewhere.txt', 'text/plain', 1, 'h3', NULL, NULL, NULL,
                    NULL, 0);
            INSERT INTO message_previews (message_id, url, removed, title, description,
                                          site_name, image_sha256, image_type) VALUES
                (7, 'https://example.com', 0, 'Example', 'A "page"', 'example', 'p1',
                    'image/png'),
                (8, 'https://example.org', 1, 'Gone', '', '', NULL, NULL);
            "#,
        )
        .unwrap();
        let conn = sql::Conn::Lite(conn);
        let room = queries::room_key_by_id(&conn, 1, 1).unwrap().unwrap();
        let expected = |ids: &[i64]| {
            let items: Vec<_> = ids
                .iter()
                .map(|&id| {
                    let (m, _) = queries::message_by_id(&conn, id).unwrap().unwrap();
                    crate::protocol::message_json(&m)
                })
                .collect();
            crate::protocol::history_body(&items)
        };
        for (page, limit, ids) in [
            (Page::Before(None), 50, &[1, 2, 3, 4, 6, 7, 8, 9][..]),
            (Page::Before(Some(7)), 3, &[3, 4, 6]),
            (Page::After(2), 4, &[3, 4, 6, 7]),
            (Page::Around(6), 5, &[3, 4, 6, 7, 8]),
            (Page::After(9), 50, &[]),
        ] {
            let rows = queries::room_page(&conn, &room, page, limit).unwrap();
            let ids_read: Vec<i64> = rows.rows.iter().map(|r| r.id).collect();
            assert_eq!(ids_read, ids, "{page:?}");
            let body = crate::protocol::history_body_of(&rows);
            assert_eq!(
                String::from_utf8(body).unwrap(),
                String::from_utf8(expected(ids)).unwrap(),
                "{page:?}"
            );
        }
        let empty = queries::room_page(&conn, &room, Page::After(9), 50).unwrap();
        assert_eq!(
            crate::protocol::history_body_of(&empty),
            b"{\"messages\":[]}"
        );
        // What the page says, checked once by hand as well.
        let rows = queries::room_page(&conn, &room, Page::Around(6), 5).unwrap();
        let page: serde_json::Value =
            serde_json::from_slice(&crate::protocol::history_body_of(&rows)).unwrap();
        let m = &page["messages"];
        assert_eq!(m[0]["reply_to"]["excerpt"], "hello \"world\" \\ /");
        assert_eq!(m[1]["deleted"], true);
        assert!(m[1].get("reactions").is_none() && m[1].get("nonce").is_none());
        assert_eq!(m[2]["reactions"][0]["emoji"], "👍");
        assert_eq!(
            m[2]["reactions"][0]["users"],
            serde_json::json!(["Ann", "bob"])
        );
        assert_eq!(m[3]["attachments"][0]["name"], "cat.png");
        assert_eq!(m[3]["attachments"].as_array().unwrap().len(), 2);
        assert_eq!(m[3]["preview"]["description"], "A \"page\"");
        assert!(m[4].get("preview").is_none());
    }

    /// Text that is not UTF-8 (a damaged file) is written with U+FFFD instead of failing the
    /// page.
    #[test]
    fn a_page_with_bytes_that_are_not_utf8_is_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writable(&dir.path().join("chat.db"), Synchronous::Full).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, username, username_key, password_hash, created_at)
                 VALUES (1, 'Ann', 'ann', 'x', 0);
             INSERT INTO messages (room_id, user_id, body, created_at)
                 VALUES (1, 1, CAST(x'6f6bff20c3' AS TEXT), 0);",
        )
        .unwrap();
        let conn = sql::Conn::Lite(conn);
        let room = queries::room_key_by_id(&conn, 1, 1).unwrap().unwrap();
        let rows = queries::room_page(&conn, &room, Page::Before(None), 50).unwrap();
        let page: serde_json::Value =
            serde_json::from_slice(&crate::protocol::history_body_of(&rows)).unwrap();
        assert_eq!(page["messages"][0]["body"], "ok\u{fffd} \u{fffd}");
    }
}
