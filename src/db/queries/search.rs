//! Full-text search over the messages a user may read.

use rusqlite::{params, Connection, Params, Row};

use crate::db::sql::{PgConn, PgError};

use super::*;

/// What to search for; see [`search`].
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// An FTS5 query (already made safe).
    pub fts: String,
    /// The asking user: results come from their rooms and public rooms.
    pub user_id: i64,
    /// Only this room.
    pub room_id: Option<i64>,
    /// Only this author (case-folded name).
    pub author_key: Option<String>,
    /// Newest first below this id; `None` orders by relevance.
    pub before: Option<i64>,
    /// Relevance paging offset.
    pub offset: u32,
    /// Results wanted.
    pub limit: u32,
    /// Order by relevance (bm25) instead of newest first.
    pub by_relevance: bool,
}

/// `hits` with their messages' reactions, attachments and previews, as every other message
/// object carries them.
pub fn with_extras<C: Sql>(conn: &C, hits: Vec<SearchHit>) -> Result<Vec<SearchHit>, C::Error> {
    let (mut msgs, snippets): (Vec<StoredMessage>, Vec<String>) =
        hits.into_iter().map(|h| (h.msg, h.snippet)).unzip();
    fill_extras(conn, &mut msgs)?;
    Ok(msgs
        .into_iter()
        .zip(snippets)
        .map(|(msg, snippet)| SearchHit { msg, snippet })
        .collect())
}

/// Full-text search over every message `q.user_id` may read.
pub fn search(conn: &Connection, q: &SearchQuery) -> rusqlite::Result<Vec<SearchHit>> {
    if let Some(key) = &q.author_key {
        // An author filter that matches nobody would otherwise walk every match.
        if !username_taken(conn, key)? {
            return Ok(Vec::new());
        }
    }
    if q.by_relevance {
        return search_by_relevance(conn, q);
    }
    if let Some(room_id) = q.room_id {
        return search_in_room(conn, q, room_id);
    }
    let sql = format!(
        "SELECT {HIT_COLUMNS} \
         WHERE messages_fts MATCH ?1 AND f.rowid < ?2 AND {SEARCH_FILTER} \
         ORDER BY f.rowid DESC LIMIT ?6"
    );
    let before = q.before.unwrap_or(i64::MAX);
    let args = params![q.fts, before, q.user_id, q.room_id, q.author_key, q.limit];
    all_rows(conn, &sql, args, search_hit)
}

/// Newest-first search in one room (whose readability the caller checked), driven by the
/// room's own messages: the matches of the query are collected once from the index (`+m.id`
/// keeps SQLite from looking each of them up in `messages` instead), and the room is walked
/// newest first until the page is full. A common word in a small room no longer costs a
/// lookup per match in every other room.
fn search_in_room(
    conn: &Connection,
    q: &SearchQuery,
    room_id: i64,
) -> rusqlite::Result<Vec<SearchHit>> {
    let ids = "SELECT m.id FROM messages m JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = ?1 AND m.id < ?2 AND (?3 IS NULL OR u.username_key = ?3) \
         AND +m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?4) \
         ORDER BY m.id DESC LIMIT ?5";
    let before = q.before.unwrap_or(i64::MAX);
    let args = params![room_id, before, q.author_key, q.fts, q.limit];
    hits_for_ids(conn, &q.fts, ids, args)
}

/// Full hits for the message ids the query `ids_sql` picks with `args`, in its order: the ids
/// are chosen and paged first, so snippets are built for the page only.
fn hits_for_ids(
    conn: &Connection,
    fts: &str,
    ids_sql: &str,
    args: impl Params,
) -> rusqlite::Result<Vec<SearchHit>> {
    let ids: Vec<i64> = all_rows(conn, ids_sql, args, |r| r.get(0))?;
    hits_in_order(conn, fts, &ids)
}

/// Full hits with snippets for `ids`, in the order given.
fn hits_in_order(conn: &Connection, fts: &str, ids: &[i64]) -> rusqlite::Result<Vec<SearchHit>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT {HIT_COLUMNS} \
         WHERE messages_fts MATCH ?1 AND f.rowid IN (SELECT value FROM json_each(?2))"
    );
    let mut hits = all_rows(conn, &sql, params![fts, format!("[{list}]")], search_hit)?;
    hits.sort_by_key(|h| ids.iter().position(|id| *id == h.msg.id));
    Ok(hits)
}

/// Columns of a hit as [`search_hit`] reads them (a message, then its snippet), from the index
/// joined with the messages, their rooms and authors.
const HIT_COLUMNS: &str = "m.id, m.room_id, r.name, u.username, m.body, m.nonce, m.created_at, \
     m.edited_at, m.deleted, m.reply_to, pu.username, substr(p.body, 1, 200), \
     snippet(messages_fts, 0, char(2), char(3), '…', 24) \
     FROM messages_fts f JOIN messages m ON m.id = f.rowid \
     JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id \
     LEFT JOIN messages p ON p.id = m.reply_to LEFT JOIN users pu ON pu.id = p.user_id";

/// Who may read a search hit and the optional room/author filters (`?3`–`?5`).
const SEARCH_FILTER: &str = "((r.kind = 'room' AND r.is_public = 1) OR EXISTS (SELECT 1 \
     FROM memberships x WHERE x.room_id = m.room_id AND x.user_id = ?3)) \
     AND (?4 IS NULL OR m.room_id = ?4) AND (?5 IS NULL OR u.username_key = ?5)";

/// Relevance is ranked among the newest this many matches the user may read, so a very
/// common word costs about the same as a rare one.
pub const RELEVANCE_WINDOW: u32 = 5000;

fn search_hit(r: &Row<'_>) -> rusqlite::Result<SearchHit> {
    Ok(SearchHit {
        msg: message_row(r)?,
        snippet: r.get(12)?,
    })
}

/// bm25 order over the newest [`RELEVANCE_WINDOW`] matches: rank and page the ids first, then
/// build snippets for the page only.
fn search_by_relevance(conn: &Connection, q: &SearchQuery) -> rusqlite::Result<Vec<SearchHit>> {
    let ids = format!(
        "WITH hits AS (SELECT f.rowid AS id, bm25(messages_fts) AS score \
             FROM messages_fts f JOIN messages m ON m.id = f.rowid \
             JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id \
             WHERE messages_fts MATCH ?1 AND {SEARCH_FILTER} \
             ORDER BY f.rowid DESC LIMIT {RELEVANCE_WINDOW}) \
         SELECT id FROM hits ORDER BY score, id DESC LIMIT ?6 OFFSET ?7"
    );
    let args = params![
        q.fts,
        0,
        q.user_id,
        q.room_id,
        q.author_key,
        q.limit,
        q.offset
    ];
    hits_for_ids(conn, &q.fts, &ids, args)
}

/// The search index's high-water mark: every message with an id up to it is in the index,
/// none above it is.
pub fn search_indexed_through(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT indexed_through FROM search_index WHERE id = 1")?
        .query_row([], |r| r.get(0))
}

/// The highest message id (0 when there is none).
pub fn last_message_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM messages")?
        .query_row([], |r| r.get(0))
}

/// Index the messages above the mark, up to `through`, each with its body as it is now (a
/// deleted message's is empty, so it is found by nothing), and move the mark to `through`;
/// how many were indexed. Must run inside a write transaction, which makes reading the mark
/// and moving it one step.
pub fn index_messages_through(conn: &Connection, through: i64) -> rusqlite::Result<usize> {
    let after = search_indexed_through(conn)?;
    if through <= after {
        return Ok(0);
    }
    let indexed = conn
        .prepare_cached(
            "INSERT INTO messages_fts (rowid, body) \
             SELECT id, body FROM messages WHERE id > ?1 AND id <= ?2 ORDER BY id",
        )?
        .execute(params![after, through])?;
    conn.prepare_cached("UPDATE search_index SET indexed_through = ?1 WHERE id = 1")?
        .execute([through])?;
    Ok(indexed)
}

// ---- PostgreSQL ----------------------------------------------------------------------------

/// The words and phrases of a query made by [`crate::domain::fts_query`] (each quoted, `""`
/// an escaped quote), in order.
pub fn fts_terms(fts: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut rest = fts.trim_start();
    while let Some(after) = rest.strip_prefix('"') {
        let mut term = String::new();
        let mut chars = after.char_indices().peekable();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|&(_, d)| d) == Some('"') {
                    term.push('"');
                    chars.next();
                    continue;
                }
                end = i + 1;
                break;
            }
            term.push(c);
        }
        terms.push(term);
        rest = after[end..].trim_start();
    }
    terms
}

/// The query as one `tsquery` (`?1`, its literal as [`crate::db::pg::words::query`] makes
/// it): every word or phrase must match.
const PG_QUERY: &str = "WITH q AS (SELECT CAST(CAST(?1 AS TEXT) AS tsquery) AS q)";

/// A hit's columns on PostgreSQL: a message (its excerpt is cut by Hearth,
/// [`crate::db::pg::words::excerpt`], with the words of the query marked as FTS5's
/// `snippet` marks them).
const PG_HIT_COLUMNS: &str = "m.id, m.room_id, r.name, u.username, m.body, m.nonce, m.created_at, \
     m.edited_at, m.deleted, m.reply_to, pu.username, substr(p.body, 1, 200) \
     FROM q, messages m JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id \
     LEFT JOIN messages p ON p.id = m.reply_to LEFT JOIN users pu ON pu.id = p.user_id";

/// [`SEARCH_FILTER`] as PostgreSQL reads it (the same parameters).
const PG_SEARCH_FILTER: &str = "((r.kind = 'room' AND r.is_public = TRUE) OR EXISTS (SELECT 1 \
     FROM memberships x WHERE x.room_id = m.room_id AND x.user_id = ?3)) \
     AND (CAST(?4 AS BIGINT) IS NULL OR m.room_id = ?4) \
     AND (CAST(?5 AS TEXT) IS NULL OR u.username_key = ?5)";

/// [`search`] on PostgreSQL: the `tsvector` of each message and its GIN index,
/// newest first below `before`, or ranked (`ts_rank` over 1 + log2 of the length, so
/// more occurrences and shorter messages rank first, as with bm25) among the newest
/// [`RELEVANCE_WINDOW`] matches.
pub fn search_pg(conn: &PgConn, q: &SearchQuery) -> Result<Vec<SearchHit>, PgError> {
    if let Some(key) = &q.author_key {
        if !username_taken(conn, key)? {
            return Ok(Vec::new());
        }
    }
    let words = fts_terms(&q.fts);
    let Some(terms) = crate::db::pg::words::query(&words) else {
        return Ok(Vec::new());
    };
    let phrases = crate::db::pg::words::Phrases::new(&words);
    let hit = |r: &postgres::Row| -> Result<SearchHit, PgError> {
        let msg = message_row(r)?;
        let snippet = crate::db::pg::words::excerpt(&msg.body, &phrases);
        Ok(SearchHit { msg, snippet })
    };
    if q.by_relevance {
        let sql = format!(
            "{PG_QUERY}, hits AS (SELECT m.id, ts_rank(m.search, q.q, 1) AS score \
                 FROM q, messages m JOIN rooms r ON r.id = m.room_id \
                 JOIN users u ON u.id = m.user_id \
                 WHERE m.search @@ q.q AND m.id < ?2 AND {PG_SEARCH_FILTER} \
                 ORDER BY m.id DESC LIMIT {RELEVANCE_WINDOW}), \
             page AS (SELECT id, score FROM hits ORDER BY score DESC, id DESC \
                 LIMIT ?6 OFFSET ?7) \
             SELECT {PG_HIT_COLUMNS} JOIN page ON page.id = m.id \
             ORDER BY page.score DESC, m.id DESC"
        );
        let args = args![
            terms,
            i64::MAX,
            q.user_id,
            q.room_id,
            q.author_key,
            i64::from(q.limit),
            i64::from(q.offset)
        ];
        return conn.rows(&sql, args, hit);
    }
    let sql = format!(
        "{PG_QUERY} SELECT {PG_HIT_COLUMNS} \
         WHERE m.search @@ q.q AND m.id < ?2 AND {PG_SEARCH_FILTER} \
         ORDER BY m.id DESC LIMIT ?6"
    );
    let before = q.before.unwrap_or(i64::MAX);
    let args = args![
        terms,
        before,
        q.user_id,
        q.room_id,
        q.author_key,
        i64::from(q.limit)
    ];
    conn.rows(&sql, args, hit)
}
