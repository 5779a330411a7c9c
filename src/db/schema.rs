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
    // 2: rooms and DMs, read markers and notification levels, mentions, full-text search,
    //    registration settings and invitations.
    r#"
    ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm'));
    ALTER TABLE rooms ADD COLUMN created_by INTEGER REFERENCES users(id) ON DELETE SET NULL;
    ALTER TABLE memberships ADD COLUMN last_read INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE memberships ADD COLUMN notify TEXT NOT NULL DEFAULT 'all'
        CHECK (notify IN ('all', 'mentions', 'nothing'));
    UPDATE memberships SET last_read =
        COALESCE((SELECT MAX(id) FROM messages m WHERE m.room_id = memberships.room_id), 0);
    CREATE TABLE mentions (
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, room_id, message_id)
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        body, content = 'messages', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
        INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
    END;
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE invites (
        id         INTEGER PRIMARY KEY,
        code_hash  BLOB    NOT NULL UNIQUE,
        created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        max_uses   INTEGER NOT NULL,
        uses       INTEGER NOT NULL DEFAULT 0,
        revoked    INTEGER NOT NULL DEFAULT 0
    );
    "#,
    // 3: bodies lose the search-snippet markers (STX, ETX) that new messages may no longer
    //    contain, so old ones cannot fake highlights either.
    r#"
    UPDATE messages SET body = replace(replace(body, char(2), ''), char(3), '')
        WHERE instr(body, char(2)) > 0 OR instr(body, char(3)) > 0;
    "#,
    // 4: message lifecycle. Messages may be edited (`edited_at`) and deleted (a tombstone with
    //    an empty body); each edit or deletion is a row of `message_changes` whose `seq` comes
    //    from the same counter as message ids (the AUTOINCREMENT sequence of `messages`), so
    //    a `?since=` resume replays messages and changes in one order.
    r#"
    ALTER TABLE messages ADD COLUMN edited_at INTEGER;
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE message_changes (
        seq        INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        kind       TEXT    NOT NULL CHECK (kind IN ('edit', 'delete')),
        body       TEXT    NOT NULL DEFAULT '',
        actor_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
        actor      TEXT    NOT NULL,
        ts         INTEGER NOT NULL
    );
    CREATE INDEX message_changes_by_room ON message_changes(room_id, seq);
    CREATE INDEX message_changes_by_message ON message_changes(message_id, seq);
    "#,
    // 5: replies and reactions. A message may answer another of its room (`reply_to`); a
    //    reaction is a row of `reactions` (one per message, emoji and user; `first_use` is the
    //    position at which its emoji came onto the message, shared by every row of that emoji
    //    while it stays there, so chips keep their order), and adding or removing one is a
    //    change (`react`,
    //    `unreact`, the emoji in `body`) at its own position. The change log is rebuilt
    //    because SQLite cannot widen a CHECK constraint in place. The search index turns on
    //    FTS5's secure-delete, so removing a message's entry removes its words from the index
    //    itself rather than adding a deletion marker beside them, and is rewritten once
    //    ('optimize') so words of messages deleted before this version are gone too.
    r#"
    ALTER TABLE messages ADD COLUMN reply_to INTEGER;
    CREATE TABLE reactions (
        message_id INTEGER NOT NULL REFERENCES messages(id),
        room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        emoji      TEXT    NOT NULL,
        first_use  INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (message_id, emoji, user_id)
    );
    CREATE INDEX reactions_by_room ON reactions(room_id, message_id);
    CREATE TABLE message_changes_v5 (
        seq        INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        kind       TEXT    NOT NULL CHECK (kind IN ('edit', 'delete', 'react', 'unreact')),
        body       TEXT    NOT NULL DEFAULT '',
        actor_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
        actor      TEXT    NOT NULL,
        ts         INTEGER NOT NULL
    );
    INSERT INTO message_changes_v5 SELECT * FROM message_changes;
    DROP TABLE message_changes;
    ALTER TABLE message_changes_v5 RENAME TO message_changes;
    CREATE INDEX message_changes_by_room ON message_changes(room_id, seq);
    CREATE INDEX message_changes_by_message ON message_changes(message_id, seq);
    INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
    INSERT INTO messages_fts (messages_fts) VALUES ('optimize');
    "#,
    // 6: the search index is written after the messages, in a transaction of its own (the
    //    writer indexes each committed batch right after acknowledging it), no longer by a
    //    trigger inside the message transaction. `search_index.indexed_through` is the
    //    high-water mark: every message with an id up to it is in the index (a deleted one
    //    with its empty body), none above it is. Every message stored so far was indexed by
    //    the old trigger. Edits and deletions touch the index only for messages under the
    //    mark: asking FTS5 to remove an entry it does not hold would corrupt it, and a message
    //    above the mark is indexed later with whatever its body is by then.
    r#"
    CREATE TABLE search_index (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_through INTEGER NOT NULL
    );
    INSERT INTO search_index (id, indexed_through) SELECT 1, COALESCE(MAX(id), 0) FROM messages;
    DROP TRIGGER messages_fts_insert;
    DROP TRIGGER messages_fts_delete;
    DROP TRIGGER messages_fts_update;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
        WHEN old.id <= (SELECT indexed_through FROM search_index) BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
        WHEN old.id <= (SELECT indexed_through FROM search_index) BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
        INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
    END;
    "#,
    // 7: files. Each stored file is kept once, named after the SHA-256 of its bytes, in the
    //    uploads folder beside the database; `uploads` says what each upload is (its name,
    //    type and size, an image's size and its thumbnail's file) and, once sent, the message
    //    it belongs to and its place among that message's attachments. When an upload row
    //    goes (its message deleted, never sent, its owner deleted) its files' hashes are
    //    queued in `file_gc`; the server removes every queued file no upload still uses.
    r#"
    CREATE TABLE uploads (
        id           TEXT    PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        message_id   INTEGER REFERENCES messages(id),
        position     INTEGER NOT NULL DEFAULT 0,
        name         TEXT    NOT NULL,
        type         TEXT    NOT NULL,
        size         INTEGER NOT NULL,
        sha256       TEXT    NOT NULL,
        width        INTEGER,
        height       INTEGER,
        thumb_sha256 TEXT,
        thumb_type   TEXT,
        created_at   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX uploads_by_message ON uploads(message_id, position) WHERE message_id IS NOT NULL;
    CREATE INDEX uploads_unsent ON uploads(created_at) WHERE message_id IS NULL;
    CREATE INDEX uploads_by_user ON uploads(user_id);
    CREATE INDEX uploads_by_file ON uploads(sha256);
    CREATE INDEX uploads_by_thumb ON uploads(thumb_sha256) WHERE thumb_sha256 IS NOT NULL;
    CREATE TABLE file_gc (sha256 TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TRIGGER uploads_gc AFTER DELETE ON uploads BEGIN
        INSERT OR IGNORE INTO file_gc (sha256) VALUES (old.sha256);
        INSERT OR IGNORE INTO file_gc (sha256)
            SELECT old.thumb_sha256 WHERE old.thumb_sha256 IS NOT NULL;
    END;
    "#,
    // 8: profiles. A display name and a status line (empty: none), and an avatar: a square
    //    image kept in the uploads folder like any stored file, by hash and type. An avatar
    //    replaced or an account deleted queues its old file in `file_gc`.
    r#"
    ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN avatar_sha256 TEXT;
    ALTER TABLE users ADD COLUMN avatar_type TEXT;
    CREATE TRIGGER users_avatar_gc AFTER UPDATE OF avatar_sha256 ON users
        WHEN old.avatar_sha256 IS NOT NULL AND old.avatar_sha256 IS NOT new.avatar_sha256 BEGIN
        INSERT OR IGNORE INTO file_gc (sha256) VALUES (old.avatar_sha256);
    END;
    CREATE TRIGGER users_deleted_avatar_gc AFTER DELETE ON users
        WHEN old.avatar_sha256 IS NOT NULL BEGIN
        INSERT OR IGNORE INTO file_gc (sha256) VALUES (old.avatar_sha256);
    END;
    "#,
    // 9: link previews. `link_previews` caches what a fetched page said about itself, per
    //    link (`ok = 0`: nothing to show, so it is not fetched again soon); `message_previews`
    //    is the preview a message shows, copied at the position it arrived (`removed = 1`: its
    //    author took it away, and no late fetch brings it back). Pictures are stored files,
    //    queued in `file_gc` when the last row naming them goes. A preview arriving or
    //    removed is a change (`preview`, the preview as JSON in `body`, empty once removed)
    //    at its own position; the change log is rebuilt to widen its CHECK again.
    r#"
    CREATE TABLE message_changes_v9 (
        seq        INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        kind       TEXT    NOT NULL
                   CHECK (kind IN ('edit', 'delete', 'react', 'unreact', 'preview')),
        body       TEXT    NOT NULL DEFAULT '',
        actor_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
        actor      TEXT    NOT NULL,
        ts         INTEGER NOT NULL
    );
    INSERT INTO message_changes_v9 SELECT * FROM message_changes;
    DROP TABLE message_changes;
    ALTER TABLE message_changes_v9 RENAME TO message_changes;
    CREATE INDEX message_changes_by_room ON message_changes(room_id, seq);
    CREATE INDEX message_changes_by_message ON message_changes(message_id, seq);
    CREATE TABLE link_previews (
        url          TEXT    PRIMARY KEY,
        ok           INTEGER NOT NULL,
        title        TEXT    NOT NULL DEFAULT '',
        description  TEXT    NOT NULL DEFAULT '',
        site_name    TEXT    NOT NULL DEFAULT '',
        image_sha256 TEXT,
        image_type   TEXT,
        fetched_at   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX link_previews_by_age ON link_previews(fetched_at);
    CREATE INDEX link_previews_by_image ON link_previews(image_sha256)
        WHERE image_sha256 IS NOT NULL;
    CREATE TABLE message_previews (
        message_id   INTEGER PRIMARY KEY REFERENCES messages(id),
        url          TEXT    NOT NULL,
        removed      INTEGER NOT NULL DEFAULT 0,
        title        TEXT    NOT NULL DEFAULT '',
        description  TEXT    NOT NULL DEFAULT '',
        site_name    TEXT    NOT NULL DEFAULT '',
        image_sha256 TEXT,
        image_type   TEXT
    );
    CREATE INDEX message_previews_by_image ON message_previews(image_sha256)
        WHERE image_sha256 IS NOT NULL;
    CREATE TRIGGER link_previews_gc AFTER DELETE ON link_previews
        WHEN old.image_sha256 IS NOT NULL BEGIN
        INSERT OR IGNORE INTO file_gc (sha256) VALUES (old.image_sha256);
    END;
    CREATE TRIGGER link_previews_image_gc AFTER UPDATE OF image_sha256 ON link_previews
        WHEN old.image_sha256 IS NOT NULL AND old.image_sha256 IS NOT new.image_sha256 BEGIN
        INSERT OR IGNORE INTO file_gc (sha256) VALUES (old.image_sha256);
    END;
    CREATE TRIGGER message_previews_gc AFTER DELETE ON message_previews
        WHEN old.image_sha256 IS NOT NULL BEGIN
        INSERT OR IGNORE INTO file_gc (sha256) VALUES (old.image_sha256);
    END;
    CREATE TRIGGER message_previews_image_gc AFTER UPDATE OF image_sha256 ON message_previews
        WHEN old.image_sha256 IS NOT NULL AND old.image_sha256 IS NOT new.image_sha256 BEGIN
        INSERT OR IGNORE INTO file_gc (sha256) VALUES (old.image_sha256);
    END;
    "#,
    // 10: webhooks. An incoming hook (`hooks`) posts to its room as an account of its own
    //     (`users.hook = 1`: no password, no session, a member of that room only), with a
    //     secret token stored hashed. An outgoing webhook (`webhooks`) is a URL each new
    //     message of its room is POSTed to; the writer queues the delivery in the message's
    //     own insert, so a message committed is a delivery owed, whatever happens next. The
    //     sender removes a row once the receiver answered 2xx (or after a day of failures,
    //     noted on the webhook).
    r#"
    ALTER TABLE users ADD COLUMN hook INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE hooks (
        id           TEXT    PRIMARY KEY,
        token_hash   BLOB    NOT NULL,
        room_id      INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX hooks_by_room ON hooks(room_id);
    CREATE TABLE webhooks (
        id              INTEGER PRIMARY KEY,
        room_id         INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        url             TEXT    NOT NULL,
        secret          TEXT    NOT NULL,
        created_by      INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_at      INTEGER NOT NULL,
        delivered       INTEGER NOT NULL DEFAULT 0,
        last_attempt_at INTEGER,
        last_status     INTEGER,
        last_error      TEXT    NOT NULL DEFAULT '',
        failing_since   INTEGER
    );
    CREATE INDEX webhooks_by_room ON webhooks(room_id);
    CREATE TABLE webhook_queue (
        webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        message_id INTEGER NOT NULL,
        queued_at  INTEGER NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        next_at    INTEGER NOT NULL,
        PRIMARY KEY (webhook_id, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX webhook_queue_due ON webhook_queue(next_at);
    "#,
    // 11: Web Push. `server_keys` keeps keys the server makes itself on first use (the VAPID
    //     key, PKCS#8); `push_subscriptions` is each browser's subscription, by endpoint.
    r#"
    CREATE TABLE server_keys (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE push_subscriptions (
        endpoint   TEXT    PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        p256dh     BLOB    NOT NULL,
        auth       BLOB    NOT NULL,
        created_at INTEGER NOT NULL,
        last_ok_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX push_subscriptions_by_user ON push_subscriptions(user_id);
    "#,
    // 12: What each device wants pushed: `level` ('mentions': mentions and direct messages;
    //     'all': every message of the rooms whose own level is "every message" as well;
    //     'nothing': paused) and quiet hours (`quiet_start`/`quiet_end`, minutes after the
    //     device's local midnight; none when NULL), with the device's offset from UTC in
    //     minutes, refreshed whenever the app opens on it. `session` is the sign-in that
    //     subscribed: signing out, a revocation or an expiry ends its pushes with it.
    r#"
    ALTER TABLE push_subscriptions ADD COLUMN level TEXT NOT NULL DEFAULT 'mentions'
        CHECK (level IN ('all', 'mentions', 'nothing'));
    ALTER TABLE push_subscriptions ADD COLUMN quiet_start INTEGER
        CHECK (quiet_start BETWEEN 0 AND 1439);
    ALTER TABLE push_subscriptions ADD COLUMN quiet_end INTEGER
        CHECK (quiet_end BETWEEN 0 AND 1439);
    ALTER TABLE push_subscriptions ADD COLUMN utc_offset INTEGER NOT NULL DEFAULT 0
        CHECK (utc_offset BETWEEN -840 AND 840);
    ALTER TABLE push_subscriptions ADD COLUMN session BLOB
        REFERENCES sessions(token_hash) ON DELETE CASCADE;
    CREATE INDEX push_subscriptions_every_message ON push_subscriptions(user_id)
        WHERE level = 'all';
    CREATE INDEX push_subscriptions_by_session ON push_subscriptions(session);
    "#,
    // 13: When each account was last seen, kept as its sessions end (signing out, a
    //     revocation, disabling the account, an expiry), so that the account list still
    //     says when someone last came by once none of their sessions is left. The latest of
    //     it and of the open sessions' own times is their last visit.
    r#"
    ALTER TABLE users ADD COLUMN last_seen_at INTEGER;
    CREATE TRIGGER sessions_end_keeps_last_seen AFTER DELETE ON sessions
    BEGIN
        UPDATE users SET last_seen_at = OLD.last_seen_at
         WHERE id = OLD.user_id
           AND (last_seen_at IS NULL OR last_seen_at < OLD.last_seen_at);
    END;
    "#,
];

/// The schema version a database is at (0 for a new file).
pub fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Bring the database to the latest schema. Refuses a database newer than this binary.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Result<u32, String>> {
    let current = version(conn)?;
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
