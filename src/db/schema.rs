//! Versioned schema migrations, tracked with `PRAGMA user_version`.
//!
//! Each entry runs once, in order, inside its own transaction. Never edit a released entry:
//! append a new one.

use rusqlite::Connection;

/// Ordered migrations; entry `i` moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: accounts, sessions, rooms, messages.
    r#"
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT    NOT NULL,
        username_key  TEXT    NOT NULL UNIQUE,
        password_hash TEXT    NOT NULL,
        created_at    INTEGER NOT NULL,
        is_admin      INTEGER NOT NULL DEFAULT 0,
        disabled      INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sessions (
        token_hash   BLOB    PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        kind         TEXT    NOT NULL CHECK (kind IN ('cookie', 'bot')),
        name         TEXT,
        created_at   INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at   INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_user ON sessions(user_id);
    CREATE TABLE rooms (
        id         INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL UNIQUE,
        topic      TEXT    NOT NULL DEFAULT '',
        is_public  INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE memberships (
        room_id   INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        joined_at INTEGER NOT NULL,
        PRIMARY KEY (room_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX memberships_by_user ON memberships(user_id, room_id);
    CREATE TABLE messages (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id    INTEGER NOT NULL REFERENCES rooms(id),
        user_id    INTEGER NOT NULL REFERENCES users(id),
        body       TEXT    NOT NULL,
        nonce      TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX messages_by_room ON messages(room_id, id);
    CREATE UNIQUE INDEX messages_by_nonce ON messages(user_id, nonce) WHERE nonce IS NOT NULL;
    INSERT INTO rooms (name, topic, is_public, created_at)
        VALUES ('general', 'Everyone is here.', 1, CAST(unixepoch('subsec') * 1000 AS INTEGER));
    "#,
];

/// Bring the database to the latest schema. Refuses a database newer than this binary.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Result<u32, String>> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.len() as u32;
    if current > latest {
        return Ok(Err(format!(
            "the database has schema version {current}, but this Hearth only knows up to {latest}; \
             run a newer Hearth or restore a backup"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(Ok(latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_in_order_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), Ok(MIGRATIONS.len() as u32));
        assert_eq!(migrate(&mut conn).unwrap(), Ok(MIGRATIONS.len() as u32));
        let general: String = conn
            .query_row("SELECT name FROM rooms WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(general, "general");
    }

    #[test]
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        assert!(migrate(&mut conn).unwrap().is_err());
    }
}
