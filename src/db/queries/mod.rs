//! Every SQL statement Hearth runs. Functions take a connection and return domain rows; the
//! [`super::Db`] handle decides which connection (writer or reader) runs them.
//!
//! One file per table (or group of tables); every function is re-exported here, so callers
//! write `queries::rooms_for_user`.

/// SQL: the maker of the hook or webhook `w` (a row with `room_id` and `created_by`) is still
/// a member of its room and their account is enabled. A hook or webhook works only while this
/// holds: someone who left a room (or was disabled) neither posts into it nor receives its
/// messages through what they made there.
const MAKER_IN_ROOM: &str = "EXISTS (SELECT 1 FROM memberships mm JOIN users mu \
     ON mu.id = mm.user_id WHERE mm.room_id = w.room_id AND mm.user_id = w.created_by \
     AND mu.disabled = FALSE)";

mod changes;
mod hooks;
mod invites;
mod log;
mod messages;
mod previews;
mod profiles;
mod push;
mod reactions;
mod rooms;
mod search;
mod server;
mod sessions;
mod uploads;
mod users;

pub use changes::*;
pub use hooks::*;
pub use invites::*;
pub use log::*;
pub use messages::*;
pub use previews::*;
pub use profiles::*;
pub use push::*;
pub use reactions::*;
pub use rooms::*;
pub use search::*;
pub use server::*;
pub use sessions::*;
pub use uploads::*;
pub use users::*;

use rusqlite::{Connection, Params, Row};

use super::sql::{args, Arg, Row as SqlRow, Sql};

use super::{
    Attachment, Membership, NewAdmin, Notify, Page, PageRow, PageRows, Profile, Replayed, ReplyTo,
    Room, RoomKey, RoomKind, SearchHit, SessionInfo, SessionKind, SessionRow, Span, StoredMessage,
    User, UNREAD_CAP,
};

/// Every row the cached statement `sql` returns for `args`, each read by `row`.
fn all_rows<T>(
    conn: &Connection,
    sql: &str,
    args: impl Params,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(args, row)?;
    rows.collect()
}

const MESSAGE_COLUMNS: &str =
    "m.id, m.room_id, r.name, u.username, m.body, m.nonce, m.created_at, m.edited_at, m.deleted, \
     m.reply_to, pu.username, substr(p.body, 1, 200) \
     FROM messages m \
     JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id \
     LEFT JOIN messages p ON p.id = m.reply_to LEFT JOIN users pu ON pu.id = p.user_id";

/// The columns of a message in a page of history, as [`page_row`] reads them: those of
/// [`MESSAGE_COLUMNS`] but the room, which the page knows.
const PAGE_COLUMNS: &str =
    "m.id, u.username, m.body, m.nonce, m.created_at, m.edited_at, m.deleted, \
     m.reply_to, pu.username, substr(p.body, 1, 200) \
     FROM messages m JOIN users u ON u.id = m.user_id \
     LEFT JOIN messages p ON p.id = m.reply_to LEFT JOIN users pu ON pu.id = p.user_id";

/// [`MESSAGE_COLUMNS`] with the author's row id as column 12.
const MESSAGE_COLUMNS_WITH_AUTHOR: &str =
    "m.id, m.room_id, r.name, u.username, m.body, m.nonce, m.created_at, m.edited_at, m.deleted, \
     m.reply_to, pu.username, substr(p.body, 1, 200), m.user_id \
     FROM messages m \
     JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id \
     LEFT JOIN messages p ON p.id = m.reply_to LEFT JOIN users pu ON pu.id = p.user_id";

/// Columns of a room as [`room_row`] reads them, given the engine's way of joining names
/// with newlines; `?1` is the asking user.
macro_rules! room_columns {
    ($names:literal) => {
        concat!(
            "r.id, r.name, r.topic, r.kind, r.is_public, cu.username, \
             (SELECT COUNT(*) FROM memberships x WHERE x.room_id = r.id), \
             CASE WHEN r.kind = 'dm' THEN (SELECT ",
            $names,
            " FROM memberships x JOIN users du ON du.id = x.user_id WHERE x.room_id = r.id) END, \
             COALESCE((SELECT MAX(id) FROM messages WHERE room_id = r.id), 0), \
             me.last_read, \
             CASE WHEN me.user_id IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM (SELECT 1 FROM messages mm \
                WHERE mm.room_id = r.id AND mm.id > me.last_read AND mm.user_id != ?1 \
                AND mm.deleted = FALSE LIMIT 1000) AS unread) END, \
             CASE WHEN me.user_id IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM (SELECT 1 FROM mentions mn \
                WHERE mn.user_id = ?1 AND mn.room_id = r.id AND mn.message_id > me.last_read \
                LIMIT 1000) AS mentioned) END, \
             me.notify \
             FROM rooms r LEFT JOIN users cu ON cu.id = r.created_by \
             LEFT JOIN memberships me ON me.room_id = r.id AND me.user_id = ?1"
        )
    };
}

/// The columns [`room_row`] reads, in `conn`'s dialect.
fn room_columns<C: Sql>(conn: &C) -> &'static str {
    conn.dialect(
        room_columns!("group_concat(du.username, char(10))"),
        room_columns!("string_agg(du.username, chr(10))"),
    )
}

fn room_row<R: SqlRow + ?Sized>(row: &R) -> Result<Room, R::Error> {
    let kind: String = row.get(3)?;
    let users: Option<String> = row.get(7)?;
    let mut users: Vec<String> = users
        .map(|u| u.split('\n').map(str::to_string).collect())
        .unwrap_or_default();
    users.sort_unstable_by(|a, b| crate::domain::cmp_folded(a, b));
    let last_read: Option<i64> = row.get(9)?;
    let membership = match last_read {
        Some(last_read) => Some(Membership {
            last_read,
            unread: row.get::<i64>(10)?.min(UNREAD_CAP),
            mentions: row.get::<i64>(11)?.min(UNREAD_CAP),
            notify: Notify::parse(&row.get::<String>(12)?),
        }),
        None => None,
    };
    Ok(Room {
        id: row.get(0)?,
        name: row.get(1)?,
        topic: row.get(2)?,
        kind: RoomKind::parse(&kind),
        public: row.get(4)?,
        created_by: row.get(5)?,
        members: row.get(6)?,
        users,
        last_id: row.get(8)?,
        membership,
    })
}

/// A row of [`PAGE_COLUMNS`], its text kept in `page`'s buffer.
fn page_row<R: SqlRow + ?Sized>(row: &R, page: &mut PageRows) -> Result<PageRow, R::Error> {
    let mut keep =
        |i: usize| -> Result<Option<Span>, R::Error> { Ok(row.text(i)?.map(|t| page.keep(t))) };
    let user = keep(1)?.unwrap_or_default();
    let body = keep(2)?.unwrap_or_default();
    let nonce = keep(3)?;
    let reply_to = match row.get::<Option<i64>>(7)? {
        Some(id) => Some((
            id,
            keep(8)?.unwrap_or_default(),
            keep(9)?.unwrap_or_default(),
        )),
        None => None,
    };
    Ok(PageRow {
        id: row.get(0)?,
        user,
        body,
        nonce,
        ts_ms: row.get(4)?,
        edited_ms: row.get(5)?,
        deleted: row.get(6)?,
        reply_to,
    })
}

/// A row of [`MESSAGE_COLUMNS`].
fn message_row<R: SqlRow + ?Sized>(row: &R) -> Result<StoredMessage, R::Error> {
    Ok(StoredMessage {
        id: row.get(0)?,
        room_id: row.get(1)?,
        room: row.get(2)?,
        user: row.get(3)?,
        body: row.get(4)?,
        nonce: row.get(5)?,
        ts_ms: row.get(6)?,
        edited_ms: row.get(7)?,
        deleted: row.get(8)?,
        reply_to: match row.get::<Option<i64>>(9)? {
            Some(id) => Some(Box::new(ReplyTo {
                id,
                user: row.get::<Option<String>>(10)?.unwrap_or_default(),
                excerpt: row.get::<Option<String>>(11)?.unwrap_or_default(),
            })),
            None => None,
        },
        reactions: Vec::new(),
        attachments: Vec::new(),
        preview: None,
    })
}
