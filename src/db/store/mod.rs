//! The typed face of the store: one async method per question the rest of Hearth asks, so no
//! SQL and no SQLite type leaves `db/`. Each method is one hop to a reader connection (or one
//! job for the writer); the SQL itself lives in [`super::queries`]. The operator commands,
//! which run without a server, use [`FileStore`], a synchronous handle on the same file.

mod accounts;
mod admin;
mod file;
mod hooks;
mod previews;
mod profiles;
mod push;
mod tx;
mod uploads;

pub use accounts::{Created, Gate, NewAccount};
pub use admin::{AccountChange, NewInvite};
pub use file::{BackupError, Exported, FileStore};
pub use hooks::{HookAuth, HookMade, NewHook};
pub use tx::Tx;
pub use uploads::{UploadFiles, UploadRefused};

use std::time::Duration;

use super::sql::{args, Conn, Row as _, Sql, SqlError};

use super::queries::{self, SearchQuery};
use super::{Db, DbError, Page, PageRows, Replayed, Room, RoomKey, SearchHit, StoredMessage};

/// Longest a search waits for the search index to catch up with the messages committed
/// before it began (it takes a millisecond or so; only a failing index takes this long).
pub const INDEX_WAIT: Duration = Duration::from_secs(1);

/// What a new connection starts from, read in one snapshot: the head position, the user's
/// rooms, and (when resuming) what they missed.
#[derive(Debug)]
pub struct Snapshot {
    /// The highest committed position (message id or change seq) at the time of the snapshot.
    pub head: i64,
    /// The user's rooms with their unread state.
    pub rooms: Vec<Room>,
    /// Messages and their changes above `since` in the user's rooms, in position order, when
    /// `since` was given.
    pub replay: Option<Vec<Replayed>>,
}

/// A room's newest messages and who may read them, as [`Db::room_tail`] reads them.
#[derive(Debug)]
pub struct RoomTail {
    /// The room, as the asking user sees it.
    pub room: RoomKey,
    /// Its newest messages, oldest first.
    pub messages: Vec<StoredMessage>,
    /// Its members' ids, ascending; `None` for a public room, which everyone may read.
    pub members: Option<Vec<i64>>,
}

impl Db {
    /// A trivial read, to tell whether the readers work.
    pub async fn ping_read(&self) -> Result<(), DbError> {
        self.read(|c| c.row("SELECT COUNT(*) FROM rooms", args![], |r| r.get::<i64>(0)))
            .await
            .map(|_| ())
    }

    /// A write that changes nothing, to tell whether the writer can commit.
    pub async fn ping_write(&self) -> Result<(), DbError> {
        self.write(|c| c.exec("UPDATE rooms SET id = id WHERE id = 0", args![]))
            .await
            .map(|_| ())
    }

    /// The rooms and DMs `user_id` belongs to, with their unread state.
    pub async fn rooms_for_user(&self, user_id: i64) -> Result<Vec<Room>, DbError> {
        self.read(move |c| queries::rooms_for_user(c, user_id))
            .await
    }

    /// The room called `name` as `user_id` sees it, without its counts (what access needs),
    /// if it exists.
    pub async fn room_key(&self, name: &str, user_id: i64) -> Result<Option<RoomKey>, DbError> {
        let name = name.to_string();
        self.read(move |c| queries::room_key_by_name(c, &name, user_id))
            .await
    }

    /// One page of the history of the room called `name`, read in one hop and one snapshot
    /// with the room, when `may_read` allows `user_id` to read it; `None` when there is no
    /// such room or it is not theirs to read (the caller answers both alike).
    pub async fn room_page(
        &self,
        name: &str,
        user_id: i64,
        page: Page,
        limit: u32,
        may_read: fn(&RoomKey) -> bool,
    ) -> Result<Option<PageRows>, DbError> {
        let name = name.to_string();
        self.read(move |c| {
            in_read_tx(c, |c| {
                let Some(room) = readable_room(c, &name, user_id, may_read)? else {
                    return Ok(None);
                };
                queries::room_page(c, &room, page, limit).map(Some)
            })
        })
        .await
    }

    /// The room called `name` with its newest `len` messages and, unless everyone may read it,
    /// its members' ids (ascending): what a room's history tail is made of, read in one hop
    /// when `may_read` allows `user_id` to read the room; `None` as for [`Db::room_page`].
    pub async fn room_tail(
        &self,
        name: &str,
        user_id: i64,
        len: u32,
        may_read: fn(&RoomKey) -> bool,
    ) -> Result<Option<RoomTail>, DbError> {
        let name = name.to_string();
        self.read(move |c| {
            in_read_tx(c, |c| {
                let Some(room) = readable_room(c, &name, user_id, may_read)? else {
                    return Ok(None);
                };
                let mut messages = queries::messages_before(c, room.id, None, len)?;
                queries::fill_extras(c, &mut messages)?;
                let members = if room.public && room.kind == super::RoomKind::Room {
                    None
                } else {
                    let mut ids: Vec<i64> = queries::room_members(c, room.id)?
                        .into_iter()
                        .map(|(id, _)| id)
                        .collect();
                    ids.sort_unstable();
                    Some(ids)
                };
                Ok(Some(RoomTail {
                    room,
                    messages,
                    members,
                }))
            })
        })
        .await
    }

    /// The head position, `user_id`'s rooms and, with `since`, up to `replay_limit` messages
    /// above it in those rooms, all from one read transaction so they agree with each other.
    pub async fn snapshot(
        &self,
        user_id: i64,
        since: Option<i64>,
        replay_limit: u32,
    ) -> Result<Snapshot, DbError> {
        self.read(move |c| {
            in_read_tx(c, |c| {
                let head = queries::head(c)?;
                let rooms = queries::rooms_for_user(c, user_id)?;
                let replay = match since {
                    Some(s) => Some(queries::replay_for_user(c, user_id, s, replay_limit)?),
                    None => None,
                };
                Ok(Snapshot {
                    head,
                    rooms,
                    replay,
                })
            })
        })
        .await
    }

    /// One message by id in its current state, with its author's row id.
    pub async fn message_by_id(&self, id: i64) -> Result<Option<(StoredMessage, i64)>, DbError> {
        self.read(move |c| queries::message_by_id(c, id)).await
    }

    /// The head position and up to `limit` messages and changes above `after` in `user_id`'s
    /// rooms, in position order, read in one snapshot.
    pub async fn events(
        &self,
        user_id: i64,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<Replayed>, i64), DbError> {
        self.read(move |c| {
            in_read_tx(c, |c| {
                let head = queries::head(c)?;
                let events = queries::replay_for_user(c, user_id, after, limit)?;
                Ok((events, head))
            })
        })
        .await
    }

    /// Run a search on a connection kept for expensive reads, stopped after `budget` (or when
    /// the caller goes away) with [`DbError::Interrupted`]. It first waits (a moment, at most
    /// [`INDEX_WAIT`]) for the search index to hold every message committed before it began,
    /// so a message acknowledged before the search is found.
    pub async fn search(
        &self,
        query: SearchQuery,
        budget: Duration,
    ) -> Result<Vec<SearchHit>, DbError> {
        if self.is_postgres() {
            return self.search_postgres(query, budget).await;
        }
        self.search_index.caught_up(INDEX_WAIT).await;
        self.read_bounded(budget, move |c| {
            queries::search(c, &query).and_then(|hits| queries::with_extras(c, hits))
        })
        .await
    }

    /// A search on PostgreSQL, on a reader: the index is written with each message, so
    /// there is nothing to wait for; `budget` is the statement timeout of its transaction.
    async fn search_postgres(
        &self,
        query: SearchQuery,
        budget: Duration,
    ) -> Result<Vec<SearchHit>, DbError> {
        let ms = budget.as_millis().clamp(1, i32::MAX as u128);
        let found = self
            .read(move |c| {
                let Conn::Pg(pg) = c else {
                    return Err(SqlError::Missing("a PostgreSQL connection"));
                };
                c.batch(&format!(
                    "BEGIN READ ONLY; SET LOCAL statement_timeout = {ms}"
                ))?;
                let found =
                    queries::search_pg(pg, &query).and_then(|hits| queries::with_extras(pg, hits));
                c.batch(if found.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
                match found {
                    Ok(hits) => Ok(Some(hits)),
                    Err(e) if e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) => {
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        found.ok_or(DbError::Interrupted)
    }

    /// Delete the hub's events (PostgreSQL) stored more than `kept_ms` ago on PostgreSQL's
    /// clock, and mark how far they were deleted.
    pub async fn prune_hub_events(&self, kept_ms: i64) -> Result<(), DbError> {
        self.write(move |c| queries::prune_hub_events(c, kept_ms).map(drop))
            .await
    }

    /// The counters other processes move: (revocations, deleted history).
    pub async fn epochs(&self) -> Result<(i64, i64), DbError> {
        self.read(|c| Ok((queries::sessions_epoch(c)?, queries::history_epoch(c)?)))
            .await
    }

    /// Of these session hashes, the ones that no longer sign anybody in (revoked, expired or
    /// belonging to a disabled account) at `now_ms`.
    pub async fn ended_sessions(
        &self,
        hashes: Vec<[u8; 32]>,
        now_ms: i64,
    ) -> Result<Vec<[u8; 32]>, DbError> {
        self.read(move |c| {
            let live = queries::live_among(c, &hashes, now_ms)?;
            Ok(hashes.into_iter().filter(|h| !live.contains(h)).collect())
        })
        .await
    }
}

/// The room called `name` as `user_id` sees it, when it exists and `may_read` allows them to
/// read it.
fn readable_room(
    c: &Conn,
    name: &str,
    user_id: i64,
    may_read: fn(&RoomKey) -> bool,
) -> Result<Option<RoomKey>, SqlError> {
    Ok(queries::room_key_by_name(c, name, user_id)?.filter(may_read))
}

/// Run `f` inside one read transaction, so its statements see one snapshot (on PostgreSQL a
/// repeatable-read one: `head` and what is replayed above it must agree). On SQLite, `BEGIN`
/// and its end are cached statements: every new connection's greeting reads this way, and
/// parsing them again each time was a measurable part of a connect. (A panic inside `f` is
/// rolled back by the reader thread.)
fn in_read_tx<T>(c: &Conn, f: impl FnOnce(&Conn) -> Result<T, SqlError>) -> Result<T, SqlError> {
    let begin = c.dialect("BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    c.exec(begin, args![])?;
    let out = f(c);
    let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = c.exec(end, args![]);
    let out = out?;
    ended?;
    Ok(out)
}
