//! [`FileStore`]: the store as the operator commands use it. They run without the server's
//! writer thread, on a connection of their own to the database file (WAL, 5 s busy timeout),
//! so they work whether or not a server is running on the same file and never hold a lock for
//! long. Account and invitation changes run the same functions as [`Db`]'s. With a PostgreSQL
//! database (`database.url`) they run on a connection to it instead, taking their turn at
//! the log head like any node's writer.
//!
//! [`Db`]: crate::db::Db

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::admin::{self, AccountChange, NewInvite};
use crate::config::Synchronous;
use crate::db::queries::{self, InviteRow, RegistrationMode, UserSummary};
use crate::db::sql::{Conn, Sql, SqlError};
use crate::db::{open_writable, DbError, NewAdmin, OpenError, Room, StoredMessage, User};

/// How long a command waits for a lock held by a running server.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a backup step may find the source busy or locked before giving up.
const BACKUP_RETRIES: u32 = 100;
/// The pause between two such tries.
const BACKUP_PAUSE: Duration = Duration::from_millis(50);

/// Why `hearth backup` failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading the source or writing the copy failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The source stayed busy or locked for every try.
    #[error("backup stalled: {0}")]
    Stalled(String),
    /// The copy failed `PRAGMA integrity_check` (it was deleted).
    #[error("the copy failed its integrity check: {0}")]
    Damaged(String),
    /// The finished copy could not be moved into place.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Db(e.into())
    }
}

/// What [`FileStore::export`] hands out, in this order.
#[derive(Debug)]
pub enum Exported<'a> {
    /// Every room and DM, by id, first.
    Rooms(&'a [Room]),
    /// Then each message, by id.
    Message(StoredMessage),
}

/// A connection of the operator's own to the database.
pub struct FileStore {
    /// The SQLite file, or PostgreSQL (a `Conn`, so the store's shared steps run on it as on
    /// the server).
    conn: Conn,
}

/// Messages read at once by an export from PostgreSQL.
const EXPORT_PAGE: u32 = 1000;

impl FileStore {
    /// Open the database read-write as the server does: created if missing, WAL, migrated.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<FileStore, OpenError> {
        Ok(FileStore {
            conn: Conn::Lite(open_writable(path, synchronous)?),
        })
    }

    /// Connect to the PostgreSQL database at `url` and bring its schema up to date, as a
    /// server would.
    pub fn open_postgres(url: &str) -> Result<FileStore, OpenError> {
        let fail = |reason: String| OpenError {
            path: crate::db::pg::redacted(url),
            reason,
        };
        let config = crate::db::pg::open(url).map_err(fail)?;
        let conn = crate::db::pg::session(&config, "").map_err(fail)?;
        Ok(FileStore {
            conn: Conn::Pg(conn),
        })
    }

    /// Open an existing database read-only, neither creating nor migrating it: for copies and
    /// exports, which must not change the file they read.
    pub fn open_read_only(path: &Path) -> Result<FileStore, DbError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(FileStore {
            conn: Conn::Lite(conn),
        })
    }

    /// The SQLite connection, for SQLite's own tools (backups, streaming exports).
    fn lite(&self) -> Result<&Connection, DbError> {
        self.conn
            .lite()
            .ok_or_else(|| DbError::Task("not a SQLite database".into()))
    }

    /// Run `f` in one transaction that takes the write lock up front (waiting up to the busy
    /// timeout for a running server's writer), so it never fails half-way for want of it. On
    /// PostgreSQL the lock is the log head's, as the nodes' writers take it: what the command
    /// changes (a purge's deletions) takes positions in order with theirs.
    fn write<T>(&self, f: impl FnOnce(&Conn) -> Result<T, SqlError>) -> Result<T, DbError> {
        self.conn
            .batch(self.conn.dialect("BEGIN IMMEDIATE", "BEGIN"))?;
        // Rolled back however `f` ends without a commit: an error, or a panic.
        struct Open<'c>(&'c Conn);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                if self.0.in_transaction() {
                    let _ = self.0.batch("ROLLBACK");
                }
            }
        }
        let _open = Open(&self.conn);
        if self.conn.is_postgres() {
            queries::lock_log_head(&self.conn)?;
        }
        let done = f(&self.conn).and_then(|value| self.conn.batch("COMMIT").map(|()| value));
        Ok(done?)
    }

    fn read<T>(&self, f: impl FnOnce(&Conn) -> Result<T, SqlError>) -> Result<T, DbError> {
        Ok(f(&self.conn)?)
    }

    /// Create an account (whatever the registration mode says); `None` if the name is taken.
    pub fn create_user(
        &self,
        username: &str,
        key: &str,
        password_hash: &str,
        admin: NewAdmin,
        now_ms: i64,
    ) -> Result<Option<User>, DbError> {
        self.write(|c| queries::insert_user(c, username, key, password_hash, admin, now_ms))
    }

    /// Apply `change` to the account with this key; the account afterwards, or `None` when
    /// there is no such account. A running server closes the sockets of revoked sessions
    /// within a second; on PostgreSQL this returns only once no node trusts a cached copy
    /// of them any more ([`crate::db::SESSIONS_LEASE`] after the commit).
    pub fn change_account(
        &self,
        key: &str,
        change: &AccountChange,
    ) -> Result<Option<UserSummary>, DbError> {
        let changed = self.write(|c| admin::change_account(c, key, change))?;
        if self.is_postgres() {
            std::thread::sleep(crate::db::SESSIONS_LEASE);
        }
        Ok(changed)
    }

    /// Delete every message of the account with this key (spam clean-up); the account and
    /// how many messages were deleted, or `None` when there is no such account. Connected
    /// clients of a running server see the tombstones when they next load the history or
    /// resume: the history epoch moves, so the server drops the history it keeps in memory
    /// within a second.
    pub fn purge_messages(&self, key: &str) -> Result<Option<(UserSummary, usize)>, DbError> {
        let now = crate::db::now_ms();
        self.write(|c| {
            let purged = admin::purge_messages(c, key, (None, ""), now)?;
            queries::bump_history_epoch(c)?;
            Ok(purged)
        })
        .map(|r| r.map(|(user, deleted)| (user, deleted.len())))
    }

    /// Every account, by id.
    pub fn list_users(&self) -> Result<Vec<UserSummary>, DbError> {
        self.read(queries::list_users)
    }

    /// Who may create an account.
    pub fn registration_mode(&self) -> Result<RegistrationMode, DbError> {
        self.read(queries::registration_mode)
    }

    /// Change who may create an account.
    pub fn set_registration_mode(&self, mode: RegistrationMode) -> Result<(), DbError> {
        self.write(|c| queries::set_registration_mode(c, mode))
    }

    /// Store a new invitation; the stored row.
    pub fn create_invite(&self, new: &NewInvite) -> Result<InviteRow, DbError> {
        self.write(|c| admin::create_invite(c, new))
    }

    /// Every invitation, newest first.
    pub fn list_invites(&self) -> Result<Vec<InviteRow>, DbError> {
        self.read(queries::list_invites)
    }

    /// Revoke an invitation; `false` when there is no such invitation.
    pub fn revoke_invite(&self, id: i64) -> Result<bool, DbError> {
        self.write(|c| queries::revoke_invite(c, id))
    }

    /// Copy the whole database to `out` with SQLite's online backup API, as one snapshot (safe
    /// while a server writes). The copy is written beside `out` with the extension `partial`
    /// and moved into place once it passed its integrity check. Returns how many messages the
    /// copy holds.
    pub fn backup(&self, out: &Path) -> Result<i64, BackupError> {
        if let Some(dir) = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            return Err(BackupError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the folder {} does not exist", dir.display()),
            )));
        }
        let tmp = out.with_extension("partial");
        let mut dst = Connection::open(&tmp)?;
        copy_pages(self.lite()?, &mut dst)?;
        let check: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        let messages: i64 = dst.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        // A copy in rollback-journal mode is one file: reading it (as the uploads' copy does
        // next, or an operator's sqlite3) leaves no -wal and -shm beside it. Hearth turns WAL
        // back on when it opens a restored copy.
        let _: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))?;
        drop(dst);
        if check != "ok" {
            let _ = std::fs::remove_file(&tmp);
            return Err(BackupError::Damaged(check));
        }
        std::fs::rename(&tmp, out)?;
        Ok(messages)
    }

    /// The hashes of every file an upload uses (its bytes or its thumbnail).
    pub fn files_in_use(&self) -> Result<std::collections::HashSet<String>, DbError> {
        self.read(queries::files_in_use)
    }

    /// Hand every room, then every message in id order, to `f`, all from one read snapshot
    /// and without loading every message at once. Stops at the first error `f` returns.
    pub fn export<E: From<DbError>>(
        &self,
        mut f: impl FnMut(Exported<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.conn.is_postgres() {
            return self.export_pages(f);
        }
        let tx = self
            .lite()?
            .unchecked_transaction()
            .map_err(DbError::from)?;
        f(Exported::Rooms(
            &queries::all_rooms(&*tx).map_err(DbError::from)?,
        ))?;
        queries::for_each_message(&tx, |m| f(Exported::Message(m))).map_err(DbError::from)?
    }
}

impl FileStore {
    /// [`FileStore::export`] on PostgreSQL: page after page of messages, all in one
    /// repeatable-read transaction (one snapshot).
    fn export_pages<E: From<DbError>>(
        &self,
        mut f: impl FnMut(Exported<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let c = &self.conn;
        c.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .map_err(DbError::from)?;
        let done = (|| {
            f(Exported::Rooms(
                &queries::all_rooms(c).map_err(DbError::from)?,
            ))?;
            let mut after = 0;
            loop {
                let page = queries::messages_page(c, after, EXPORT_PAGE).map_err(DbError::from)?;
                let Some(last) = page.last().map(|m| m.id) else {
                    return Ok(());
                };
                after = last;
                for m in page {
                    f(Exported::Message(m))?;
                }
            }
        })();
        let _ = c.batch("ROLLBACK");
        done
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.conn.is_postgres()
    }
}

/// Copy every page of `src` into `dst` in one step (-1), so the copy is a single read
/// snapshot; a busy or locked source is retried for a while.
fn copy_pages(src: &Connection, dst: &mut Connection) -> Result<(), BackupError> {
    let backup = Backup::new(src, dst)?;
    let mut tries = 0;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if tries < BACKUP_RETRIES => {
                tries += 1;
                std::thread::sleep(BACKUP_PAUSE);
            }
            other => return Err(BackupError::Stalled(format!("{other:?}"))),
        }
    }
}
