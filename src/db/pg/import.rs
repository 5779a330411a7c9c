//! `hearth migrate-to-postgres`: copy a SQLite community into an empty PostgreSQL database,
//! table by table, from one SQLite snapshot and in one PostgreSQL transaction, then verify it.
//!
//! Every table that holds community data is listed in [`TABLES`] with its columns; the copy
//! refuses a SQLite file with a table or column it does not know (a newer schema than this
//! list), so nothing is silently left behind. Rows go through `COPY … FROM STDIN`. Ids are
//! kept, the identity sequences continue after them, and the log head continues after the
//! last message or change position. Before committing, every table is read back from
//! PostgreSQL (`COPY … TO STDOUT`, in the same text form the copy wrote) and must hold the
//! same rows as the SQLite snapshot: the same count and the same sum of each row's SHA-256
//! (a digest that does not depend on the order rows come back in); otherwise nothing is kept.
//!
//! PostgreSQL text cannot hold the NUL character, which older versions of Hearth let into
//! message bodies and other text: it is left out of the copy and the report says where.

use std::io::{BufRead, Write};
use std::path::Path;

use postgres::{Client, NoTls};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::schema;

/// How a column is written to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `bigint` from an integer.
    Int,
    /// `text`.
    Text,
    /// `bytea` from a blob.
    Bytes,
    /// `boolean` from 0 or 1.
    Flag,
}

use Kind::{Bytes, Flag, Int, Text};

/// A table copied, with its columns in the order both sides name them.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
}

/// Every table copied, parents before children (foreign keys hold at each step).
const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &[
            ("id", Int),
            ("username", Text),
            ("username_key", Text),
            ("password_hash", Text),
            ("created_at", Int),
            ("is_admin", Flag),
            ("disabled", Flag),
            ("display_name", Text),
            ("status", Text),
            ("avatar_sha256", Text),
            ("avatar_type", Text),
            ("hook", Flag),
            ("last_seen_at", Int),
        ],
    },
    Table {
        name: "sessions",
        columns: &[
            ("token_hash", Bytes),
            ("user_id", Int),
            ("kind", Text),
            ("name", Text),
            ("created_at", Int),
            ("last_seen_at", Int),
            ("expires_at", Int),
        ],
    },
    Table {
        name: "rooms",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("topic", Text),
            ("is_public", Flag),
            ("created_at", Int),
            ("kind", Text),
            ("created_by", Int),
        ],
    },
    Table {
        name: "memberships",
        columns: &[
            ("room_id", Int),
            ("user_id", Int),
            ("joined_at", Int),
            ("last_read", Int),
            ("notify", Text),
        ],
    },
    Table {
        name: "messages",
        columns: &[
            ("id", Int),
            ("room_id", Int),
            ("user_id", Int),
            ("body", Text),
            ("nonce", Text),
            ("created_at", Int),
            ("edited_at", Int),
            ("deleted", Flag),
            ("reply_to", Int),
        ],
    },
    Table {
        name: "mentions",
        columns: &[("user_id", Int), ("room_id", Int), ("message_id", Int)],
    },
    Table {
        name: "settings",
        columns: &[("key", Text), ("value", Text)],
    },
    Table {
        name: "invites",
        columns: &[
            ("id", Int),
            ("code_hash", Bytes),
            ("created_by", Int),
            ("created_at", Int),
            ("expires_at", Int),
            ("max_uses", Int),
            ("uses", Int),
            ("revoked", Flag),
        ],
    },
    Table {
        name: "reactions",
        columns: &[
            ("message_id", Int),
            ("room_id", Int),
            ("user_id", Int),
            ("emoji", Text),
            ("first_use", Int),
            ("created_at", Int),
        ],
    },
    Table {
        name: "uploads",
        columns: &[
            ("id", Text),
            ("user_id", Int),
            ("message_id", Int),
            ("position", Int),
            ("name", Text),
            ("type", Text),
            ("size", Int),
            ("sha256", Text),
            ("width", Int),
            ("height", Int),
            ("thumb_sha256", Text),
            ("thumb_type", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "message_changes",
        columns: &[
            ("seq", Int),
            ("message_id", Int),
            ("room_id", Int),
            ("kind", Text),
            ("body", Text),
            ("actor_id", Int),
            ("actor", Text),
            ("ts", Int),
        ],
    },
    Table {
        name: "link_previews",
        columns: &[
            ("url", Text),
            ("ok", Flag),
            ("title", Text),
            ("description", Text),
            ("site_name", Text),
            ("image_sha256", Text),
            ("image_type", Text),
            ("fetched_at", Int),
        ],
    },
    Table {
        name: "message_previews",
        columns: &[
            ("message_id", Int),
            ("url", Text),
            ("removed", Flag),
            ("title", Text),
            ("description", Text),
            ("site_name", Text),
            ("image_sha256", Text),
            ("image_type", Text),
        ],
    },
    Table {
        name: "hooks",
        columns: &[
            ("id", Text),
            ("token_hash", Bytes),
            ("room_id", Int),
            ("user_id", Int),
            ("created_by", Int),
            ("created_at", Int),
            ("last_used_at", Int),
        ],
    },
    Table {
        name: "webhooks",
        columns: &[
            ("id", Int),
            ("room_id", Int),
            ("url", Text),
            ("secret", Text),
            ("created_by", Int),
            ("created_at", Int),
            ("delivered", Int),
            ("last_attempt_at", Int),
            ("last_status", Int),
            ("last_error", Text),
            ("failing_since", Int),
        ],
    },
    Table {
        name: "webhook_queue",
        columns: &[
            ("webhook_id", Int),
            ("message_id", Int),
            ("queued_at", Int),
            ("attempts", Int),
            ("next_at", Int),
        ],
    },
    Table {
        name: "server_keys",
        columns: &[("name", Text), ("value", Bytes)],
    },
    Table {
        name: "push_subscriptions",
        columns: &[
            ("endpoint", Text),
            ("user_id", Int),
            ("p256dh", Bytes),
            ("auth", Bytes),
            ("created_at", Int),
            ("last_ok_at", Int),
            ("level", Text),
            ("quiet_start", Int),
            ("quiet_end", Int),
            ("utc_offset", Int),
            ("session", Bytes),
        ],
    },
    Table {
        name: "file_gc",
        columns: &[("sha256", Text)],
    },
];

/// SQLite tables with nothing to copy: its own bookkeeping, the FTS5 index (PostgreSQL
/// indexes the body itself) and the search high-water mark.
const NOT_COPIED: &[&str] = &["sqlite_sequence", "search_index"];

/// Tables whose `id` is an identity column in PostgreSQL, to continue after the copied ids.
const IDENTITIES: &[&str] = &["users", "rooms", "invites", "webhooks"];

/// Why the copy did not happen (nothing was written to PostgreSQL).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The SQLite side.
    #[error("{0}")]
    Sqlite(String),
    /// The PostgreSQL side.
    #[error("postgresql: {0}")]
    Postgres(String),
    /// Something the operator must change first.
    #[error("{0}")]
    Refused(String),
}

impl From<rusqlite::Error> for ImportError {
    fn from(e: rusqlite::Error) -> Self {
        ImportError::Sqlite(format!("sqlite: {e}"))
    }
}

/// The server's own message (with its detail) rather than "db error".
fn pg_text(e: &postgres::Error) -> String {
    super::error_text(e)
}

impl From<postgres::Error> for ImportError {
    fn from(e: postgres::Error) -> Self {
        ImportError::Postgres(pg_text(&e))
    }
}

impl From<schema::SchemaError> for ImportError {
    fn from(e: schema::SchemaError) -> Self {
        match e {
            schema::SchemaError::Postgres(e) => e.into(),
            e => ImportError::Refused(e.to_string()),
        }
    }
}

/// What was copied: each table with its row count (the same on both sides), and the log head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `(table, rows)` in copy order.
    pub tables: Vec<(&'static str, i64)>,
    /// The last position (message id or change `seq`) handed out.
    pub head: i64,
    /// `("table.column", values)`: the values that held NUL characters, which were left out.
    pub nuls: Vec<(String, i64)>,
}

/// A table's rows as the copy wrote them: how many, and the wrapping sum of each row's
/// digest ([`row_digest`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Digest {
    rows: i64,
    sum: u64,
}

impl Digest {
    fn add(&mut self, line: &[u8]) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(row_digest(line));
    }
}

/// The first 8 bytes of the SHA-256 of one row in `COPY`'s text form (without its newline).
fn row_digest(line: &[u8]) -> u64 {
    use sha2::{Digest as _, Sha256};
    let d = Sha256::digest(line);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Open the PostgreSQL database at `url` (a `postgres://` URL or `key=value` settings).
pub fn connect(url: &str) -> Result<Client, ImportError> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| ImportError::Refused(format!("not a PostgreSQL URL: {e}")))?;
    if config.get_application_name().is_none() {
        config.application_name("hearth-migrate");
    }
    super::with_defaults(&mut config, url);
    config
        .connect(NoTls)
        .map_err(|e| ImportError::Postgres(format!("cannot connect: {}", pg_text(&e))))
}

/// Copy the SQLite community at `sqlite` into the empty PostgreSQL database `pg`.
pub fn copy(sqlite: &Path, pg: &mut Client) -> Result<Report, ImportError> {
    let source = open_source(sqlite)?;
    check_tables(&source)?;
    // A server still writing to the file would go on acknowledging messages the copy never
    // sees, whose ids PostgreSQL then hands out again: watched from a connection of its own
    // (`data_version` moves with every commit another connection makes).
    let watch = open_source(sqlite)?;
    let data_version =
        |c: &Connection| c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0));
    let before = data_version(&watch)?;
    refuse_another_version(pg)?;
    refuse_running_servers(pg)?;
    schema::migrate(pg)?;
    let mut tx = pg.transaction()?;
    // A server started on the new database before anyone used it has created `general` and
    // perhaps its own settings and keys: those give way to the community's.
    // Any row of the community's tables counts (an invite made with `hearth invite create`
    // on the new database too), but for those a server makes at start.
    let made_at_start = ["rooms", "settings", "server_keys", "file_gc"];
    let taken_if = TABLES
        .iter()
        .filter(|t| !made_at_start.contains(&t.name))
        .map(|t| format!("EXISTS (SELECT 1 FROM {})", t.name))
        .chain(["EXISTS (SELECT 1 FROM rooms WHERE name <> 'general')".to_string()])
        .collect::<Vec<_>>()
        .join(" OR ");
    let taken: bool = tx.query_one(&format!("SELECT {taken_if}"), &[])?.get(0);
    if !taken {
        let clear: String = made_at_start
            .iter()
            .map(|t| format!("DELETE FROM {t}; "))
            .collect();
        tx.batch_execute(&clear)?;
    }
    if taken {
        return Err(ImportError::Refused(
            "the PostgreSQL database already holds a community; copy into a new, empty database"
                .into(),
        ));
    }
    // One read transaction: every table from the same snapshot, even with a server writing.
    let snapshot = source.unchecked_transaction()?;
    // The read-back compares text, so `bytea` must come back in the form it went in.
    tx.batch_execute("SET LOCAL bytea_output = 'hex'")?;
    let mut tables = Vec::with_capacity(TABLES.len());
    let mut digests = Vec::with_capacity(TABLES.len());
    let mut nuls = Vec::new();
    for table in TABLES {
        let (digest, nul) = copy_table(&snapshot, &mut tx, table)?;
        tables.push((table.name, digest.rows));
        digests.push(digest);
        nuls.extend(nul);
    }
    for name in IDENTITIES {
        tx.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{name}', 'id'), \
             COALESCE((SELECT max(id) FROM {name}), 1), \
             (SELECT max(id) FROM {name}) IS NOT NULL)"
        ))?;
    }
    let head: i64 = snapshot.query_row(
        "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0), \
         COALESCE((SELECT max(id) FROM messages), 0), \
         COALESCE((SELECT max(seq) FROM message_changes), 0))",
        [],
        |r| r.get(0),
    )?;
    tx.execute("UPDATE hearth_log_head SET pos = $1 WHERE id = 1", &[&head])?;
    verify(&snapshot, &mut tx, &digests)?;
    if data_version(&watch)? != before {
        return Err(ImportError::Refused(format!(
            "{} changed while it was copied: is a server still running on it? Stop it and \
             copy again (nothing was copied)",
            sqlite.display()
        )));
    }
    tx.commit()?;
    Ok(Report { tables, head, nuls })
}

/// Refuse a database another version of Hearth has used: migrating it here would upgrade it
/// under nodes that may still run (a cluster is upgraded whole), and it is not empty anyway.
fn refuse_another_version(pg: &mut Client) -> Result<(), ImportError> {
    // `version` makes its table on a database Hearth never touched: not kept (rolled back).
    let found = schema::version(&mut pg.transaction()?)?;
    let known = schema::MIGRATIONS.len() as i32;
    if found != 0 && found != known {
        return Err(ImportError::Refused(format!(
            "the PostgreSQL database is at schema version {found}, not this Hearth's {known}: \
             copy into a new, empty database"
        )));
    }
    Ok(())
}

/// Refuse a database a Hearth server is connected to (sessions named `hearth`, as servers
/// name theirs): started on the new database before the copy, it would go on with what it
/// read at start (no community, its own keys) and hand the copied history out as new.
fn refuse_running_servers(pg: &mut Client) -> Result<(), ImportError> {
    let servers: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'hearth' AND pid <> pg_backend_pid()",
            &[],
        )?
        .get(0);
    if servers > 0 {
        return Err(ImportError::Refused(format!(
            "a Hearth server is connected to the PostgreSQL database ({servers} sessions): \
             stop every node on it, then copy"
        )));
    }
    Ok(())
}

fn open_source(path: &Path) -> Result<Connection, ImportError> {
    if !path.exists() {
        return Err(ImportError::Refused(format!(
            "no database at {}",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let found = crate::db::schema::version(&conn)?;
    let known = crate::db::schema::MIGRATIONS.len() as u32;
    if found != known {
        return Err(ImportError::Refused(format!(
            "{} is at schema version {found} and this Hearth copies version {known}: {}",
            path.display(),
            if found < known {
                "start this Hearth on it once to upgrade it, then copy it"
            } else {
                "use the Hearth that wrote it"
            }
        )));
    }
    Ok(conn)
}

/// Refuse a file holding a table or a column this copy does not know.
fn check_tables(conn: &Connection) -> Result<(), ImportError> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'messages_fts%' AND name NOT LIKE 'sqlite_%'",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for name in &names {
        let Some(table) = TABLES.iter().find(|t| t.name == name) else {
            if NOT_COPIED.contains(&name.as_str()) {
                continue;
            }
            return Err(ImportError::Refused(format!(
                "this Hearth does not know how to copy the table {name}"
            )));
        };
        let mut info = conn.prepare(&format!("PRAGMA table_info({name})"))?;
        let columns = info
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<Vec<_>, _>>()?;
        let known: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        if columns != known {
            return Err(ImportError::Refused(format!(
                "the table {name} has the columns {columns:?}; this Hearth copies {known:?}"
            )));
        }
    }
    Ok(())
}

/// Copy one table: the digest of what went in, and `("table.column", values)` for the
/// columns whose values held NUL characters (left out).
fn copy_table(
    source: &Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &Table,
) -> Result<(Digest, Vec<(String, i64)>), ImportError> {
    let names: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let list = names.join(", ");
    let mut stmt = source.prepare(&format!("SELECT {list} FROM {} ", table.name))?;
    let mut rows = stmt.query([])?;
    // A message's search vector is not a SQLite column: it is made from the body here.
    let body_at = (table.name == "messages")
        .then(|| names.iter().position(|c| *c == "body"))
        .flatten();
    let target = match body_at {
        Some(_) => format!("{list}, search"),
        None => list.clone(),
    };
    let mut writer = tx.copy_in(&format!("COPY {} ({target}) FROM STDIN", table.name))?;
    let mut line = String::new();
    let mut digest = Digest::default();
    let mut nuls = vec![0i64; names.len()];
    while let Some(row) = rows.next()? {
        line.clear();
        for (i, (column, kind)) in table.columns.iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            let left_out = field(&mut line, row.get_ref(i)?, *kind).map_err(|why| {
                ImportError::Refused(format!(
                    "{}.{column} of the row whose {}: {why}",
                    table.name,
                    row_name(names[0], row.get_ref(0))
                ))
            })?;
            nuls[i] += i64::from(left_out);
        }
        digest.add(line.as_bytes());
        if let Some(at) = body_at {
            line.push('\t');
            let body = match row.get_ref(at)? {
                ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or_default(),
                _ => "",
            };
            let vector = super::words::vector(&body.replace('\0', ""));
            field(&mut line, ValueRef::Text(vector.as_bytes()), Text)
                .map_err(|why| ImportError::Refused(format!("messages.search: {why}")))?;
        }
        line.push('\n');
        writer
            .write_all(line.as_bytes())
            .map_err(|e| ImportError::Postgres(format!("copying {}: {e}", table.name)))?;
    }
    let written = writer.finish()?;
    if written as i64 != digest.rows {
        return Err(ImportError::Postgres(format!(
            "{}: {} rows sent, {written} stored",
            table.name, digest.rows
        )));
    }
    let nuls = names
        .iter()
        .zip(nuls)
        .filter(|(_, n)| *n > 0)
        .map(|(column, n)| (format!("{}.{column}", table.name), n))
        .collect();
    Ok((digest, nuls))
}

/// How an error names a row: by its first column (its key, or the first part of it).
fn row_name(column: &str, value: rusqlite::Result<ValueRef<'_>>) -> String {
    match value {
        Ok(ValueRef::Integer(n)) => format!("{column} is {n}"),
        Ok(ValueRef::Text(t)) => {
            let t: String = String::from_utf8_lossy(t).chars().take(60).collect();
            format!("{column} is {t:?}")
        }
        _ => format!("{column} is not shown"),
    }
}

/// One value in `COPY`'s text form, escaped exactly as `COPY … TO` writes it (so a row read
/// back is the same text); whether a NUL character was left out of it.
fn field(out: &mut String, value: ValueRef<'_>, kind: Kind) -> Result<bool, String> {
    let mut left_out = false;
    match (value, kind) {
        (ValueRef::Null, _) => out.push_str("\\N"),
        (ValueRef::Integer(n), Int) => out.push_str(&n.to_string()),
        (ValueRef::Integer(n), Flag) => out.push(if n != 0 { 't' } else { 'f' }),
        (ValueRef::Text(t), Text) => {
            let t = std::str::from_utf8(t).map_err(|_| "text that is not UTF-8".to_string())?;
            for c in t.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{b}' => out.push_str("\\v"),
                    '\u{c}' => out.push_str("\\f"),
                    '\0' => left_out = true,
                    c => out.push(c),
                }
            }
        }
        (ValueRef::Blob(b), Bytes) => {
            out.push_str("\\\\x");
            for byte in b {
                out.push_str(&format!("{byte:02x}"));
            }
        }
        (other, kind) => {
            return Err(format!(
                "a {:?} value where {kind:?} was expected",
                other.data_type()
            ))
        }
    }
    Ok(left_out)
}

/// Every table, read back from PostgreSQL, against what the copy wrote from the snapshot:
/// the row count (the snapshot's own count too) and the sum of row digests.
fn verify(
    source: &Connection,
    tx: &mut postgres::Transaction<'_>,
    copied: &[Digest],
) -> Result<(), ImportError> {
    for (table, wrote) in TABLES.iter().zip(copied) {
        let name = table.name;
        let here: i64 =
            source.query_row(&format!("SELECT COUNT(*) FROM {name}"), [], |r| r.get(0))?;
        let list: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let mut reader = std::io::BufReader::new(tx.copy_out(&format!(
            "COPY (SELECT {} FROM {name}) TO STDOUT",
            list.join(", ")
        ))?);
        let mut there = Digest::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| ImportError::Postgres(format!("reading {name} back: {e}")))?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            there.add(&line);
        }
        if here != wrote.rows || there != *wrote {
            return Err(ImportError::Postgres(format!(
                "{name} differs after the copy ({here} rows in SQLite, {} copied, {} read back{}); \
                 nothing kept",
                wrote.rows,
                there.rows,
                if there.rows == wrote.rows {
                    ", with other values"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy knows every table and column of a database made by this Hearth: a migration
    /// that adds one must teach the copy (and the PostgreSQL schema) about it.
    #[test]
    fn the_copy_knows_the_whole_sqlite_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let mut conn = Connection::open(&path).unwrap();
        crate::db::schema::migrate(&mut conn).unwrap().unwrap();
        check_tables(&conn).unwrap();
        for table in TABLES {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table.name],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{} exists in SQLite", table.name);
        }
    }

    #[test]
    fn values_are_written_in_copy_text_format() {
        let mut out = String::new();
        field(&mut out, ValueRef::Text(b"a\tb\\c\nd\re"), Text).unwrap();
        assert_eq!(out, "a\\tb\\\\c\\nd\\re");
        out.clear();
        field(&mut out, ValueRef::Blob(&[0, 0xab, 0xff]), Bytes).unwrap();
        assert_eq!(out, "\\\\x00abff");
        out.clear();
        field(&mut out, ValueRef::Null, Int).unwrap();
        field(&mut out, ValueRef::Integer(1), Flag).unwrap();
        field(&mut out, ValueRef::Integer(0), Flag).unwrap();
        field(&mut out, ValueRef::Integer(-42), Int).unwrap();
        assert_eq!(out, "\\Ntf-42");
        assert!(field(&mut out, ValueRef::Text(b"12"), Int).is_err());
        // Written as `COPY … TO` writes them, so that a row read back is the same text; a
        // NUL, which PostgreSQL text cannot hold, is left out (and said so).
        out.clear();
        assert!(!field(&mut out, ValueRef::Text(b"\x08\x0b\x0c\x01"), Text).unwrap());
        assert_eq!(out, "\\b\\v\\f\u{1}");
        out.clear();
        assert!(field(&mut out, ValueRef::Text(b"x\0y"), Text).unwrap());
        assert_eq!(out, "xy");
    }
}
