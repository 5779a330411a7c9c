//! The log of cluster mode as each node follows it (PostgreSQL only): the hub's events at
//! their positions, and everything committed in a range of positions.

use super::*;
use crate::db::sql::PgConn;

/// Lock the log head for the rest of the transaction (every other writer waits for its
/// end); the head as locked.
pub fn lock_log_head<C: Sql>(conn: &C) -> Result<i64, C::Error> {
    conn.row(LOCK_LOG_HEAD, args![], |r| r.get(0))?
        .ok_or_else(|| C::missing("the log head"))
}

/// Locks the log head; its position.
pub const LOCK_LOG_HEAD: &str = "SELECT pos FROM hearth_log_head WHERE id = 1 FOR UPDATE";

/// The head, when it moved above `locked`, with a notification to every node's follower sent
/// with the commit: one statement without parameters, for the round trip that commits. The
/// notification carries the positions taken and, when given, `parts`: what was committed
/// there as JSON arrays, so that followers need not read it (see `cluster::log`). One part
/// goes as `{"a":locked,"u":head,"i":items}`; several as one notification each,
/// `{"a","u","k":index,"n":count,"j":items}` (a transaction's notifications reach listeners
/// together, in order; a follower that does not know parts sees no `i` and reads the log).
pub fn notify_log_sql(locked: i64, parts: Option<&[String]>) -> String {
    // The items as an escape string literal, so the statement means the same whatever
    // `standard_conforming_strings` says.
    let quote = |s: String| s.replace('\\', "\\\\").replace('\'', "''");
    let notes: Vec<String> = match parts {
        None => vec![String::new()],
        Some([one]) => vec![quote(format!(",\"i\":{one}"))],
        Some(parts) => {
            let n = parts.len();
            parts
                .iter()
                .enumerate()
                .map(|(k, part)| quote(format!(",\"k\":{k},\"n\":{n},\"j\":{part}")))
                .collect()
        }
    };
    let calls: Vec<String> = notes
        .iter()
        .map(|rest| {
            format!("pg_notify('hearth_log', '{{\"a\":{locked},\"u\":' || pos || E'{rest}}}')")
        })
        .collect();
    format!(
        "SELECT pos FROM (SELECT pos, {} FROM hearth_log_head \
         WHERE id = 1 AND pos > {locked}) moved",
        calls.join(", ")
    )
}

/// The most bytes of items one notification carries (PostgreSQL's limit for a payload is
/// 8,000).
pub const NOTIFY_ITEMS_MAX: usize = 7_000;

/// The most notifications one commit sends for its items; a larger batch is announced
/// without them (its followers read it from the log).
pub const NOTIFY_PARTS_MAX: usize = 64;

/// PostgreSQL's clock in Unix milliseconds, as SQL: the hub events' age is measured on the
/// one clock every node shares, so no node's own clock (perhaps minutes off) matters.
const PG_NOW_MS: &str = "(extract(epoch FROM statement_timestamp()) * 1000)::bigint";

/// Store the hub's changes of a committed write at position `pos` (as JSON), stamped with
/// PostgreSQL's clock. PostgreSQL only.
pub fn insert_hub_event<C: Sql>(conn: &C, pos: i64, changes: &str) -> Result<usize, C::Error> {
    conn.exec(
        &format!("INSERT INTO hub_events (pos, changes, ts) VALUES (?1, ?2, {PG_NOW_MS})"),
        args![pos, changes],
    )
}

/// Delete the hub's events stored more than `kept_ms` ago on PostgreSQL's clock (every node
/// has long applied them), and raise the mark of how far events were deleted to the last one
/// deleted (see [`log_head_and_pruned`]), in one statement. PostgreSQL only; 1 when any was
/// deleted.
pub fn prune_hub_events<C: Sql>(conn: &C, kept_ms: i64) -> Result<usize, C::Error> {
    conn.exec(
        &format!(
            "WITH gone AS (DELETE FROM hub_events WHERE ts < {PG_NOW_MS} - ?1 RETURNING pos) \
             UPDATE hearth_log_pruned SET pos = GREATEST(pos, (SELECT max(pos) FROM gone)) \
             WHERE id = 1 AND EXISTS (SELECT 1 FROM gone)"
        ),
        args![kept_ms],
    )
}

/// Everything committed at positions in `(after, upto]`.
#[derive(Debug, Default)]
pub struct LogRange {
    /// The messages, in position order, each with the members it mentions.
    pub messages: Vec<(StoredMessage, Vec<i64>)>,
    /// The hub's events, in position order: (position, changes as JSON).
    pub events: Vec<(i64, String)>,
}

/// The log head as committed, and every room's name there (by id), in one snapshot.
pub fn log_head_and_names(
    conn: &PgConn,
) -> Result<(i64, Vec<(i64, String)>), crate::db::sql::PgError> {
    let rows: Vec<(i64, Option<(i64, String)>)> = conn.rows(
        "SELECT h.pos, r.id, r.name FROM hearth_log_head h LEFT JOIN rooms r ON TRUE \
         WHERE h.id = 1",
        args![],
        |r| {
            let room = match SqlRow::get::<Option<i64>>(r, 1)? {
                Some(id) => Some((id, SqlRow::get(r, 2)?)),
                None => None,
            };
            Ok((SqlRow::get(r, 0)?, room))
        },
    )?;
    let head = rows
        .first()
        .map(|(head, _)| *head)
        .ok_or(crate::db::sql::PgError::Missing("the log head"))?;
    Ok((
        head,
        rows.into_iter().filter_map(|(_, room)| room).collect(),
    ))
}

/// The log head as committed, and the last position whose hub event was deleted (0 when
/// none was): a follower that has delivered less than that may have missed an event.
pub fn log_head_and_pruned(conn: &PgConn) -> Result<(i64, i64), crate::db::sql::PgError> {
    conn.row(
        "SELECT h.pos, p.pos FROM hearth_log_head h, hearth_log_pruned p \
         WHERE h.id = 1 AND p.id = 1",
        args![],
        |r| Ok((SqlRow::get(r, 0)?, SqlRow::get(r, 1)?)),
    )?
    .ok_or(crate::db::sql::PgError::Missing("the log head"))
}

/// Everything committed at positions in `(after, upto]` (read inside one snapshot by the
/// caller).
pub fn log_range(
    conn: &PgConn,
    after: i64,
    upto: i64,
) -> Result<LogRange, crate::db::sql::PgError> {
    let mut messages = conn.rows(
        &format!("SELECT {MESSAGE_COLUMNS} WHERE m.id > ?1 AND m.id <= ?2 ORDER BY m.id"),
        args![after, upto],
        message_row,
    )?;
    fill_extras(conn, &mut messages)?;
    let mentions: Vec<(i64, i64)> = conn.rows(
        "SELECT message_id, user_id FROM mentions WHERE message_id > ?1 AND message_id <= ?2 \
         ORDER BY message_id, user_id",
        args![after, upto],
        |r| Ok((SqlRow::get(r, 0)?, SqlRow::get(r, 1)?)),
    )?;
    let messages = messages
        .into_iter()
        .map(|m| {
            let mentioned = mentions
                .iter()
                .filter(|(id, _)| *id == m.id)
                .map(|(_, user)| *user)
                .collect();
            (m, mentioned)
        })
        .collect();
    let events = conn.rows(
        "SELECT pos, changes FROM hub_events WHERE pos > ?1 AND pos <= ?2 ORDER BY pos",
        args![after, upto],
        |r| Ok((SqlRow::get(r, 0)?, SqlRow::get(r, 1)?)),
    )?;
    Ok(LogRange { messages, events })
}
