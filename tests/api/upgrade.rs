//! Upgrading a database from an older schema: a copy is kept first, the new schema is
//! applied, and the old data stays readable (and searchable) through the real server.

use hearth::db::schema::MIGRATIONS;
use rusqlite::Connection;

use crate::common::{Auth, TestApp};

/// The bot token [`make_v1`] stores for `bob`.
const TOKEN: &str = "upgrade-test-token-0123456789abcdefghijklmn";

/// A database as the first release left it: schema 1, two users, a few messages.
fn make_v1(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(MIGRATIONS[0]).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    // The password is irrelevant here: the test signs in with a bot token it inserts.
    conn.execute_batch(
        "INSERT INTO users (id, username, username_key, password_hash, created_at, is_admin)
             VALUES (1, 'Ada', 'ada', 'x', 0, 1), (2, 'bob', 'bob', 'x', 0, 0);
         INSERT INTO memberships (room_id, user_id, joined_at) VALUES (1, 1, 0), (1, 2, 0);
         INSERT INTO messages (room_id, user_id, body, created_at) VALUES
             (1, 1, 'the kettle is on', 1000),
             (1, 2, 'Café au lait for me', 2000),
             (1, 1, 'coming right up', 3000);",
    )
    .unwrap();
    let token_hash: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(TOKEN.as_bytes()).into()
    };
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, kind, name, created_at, last_seen_at)
         VALUES (?1, 2, 'bot', 'test', 0, 0)",
        [&token_hash[..]],
    )
    .unwrap();
}

#[tokio::test]
async fn an_old_database_is_copied_then_upgraded_and_stays_usable() {
    if crate::common::sqlite_only("upgrades of old SQLite files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    make_v1(&path);
    let mut app = TestApp::builder().in_dir(dir).start().await;

    // The copy was taken before the upgrade: still schema 1, same messages.
    let copy = hearth::db::backup_path(&path, 1);
    assert!(copy.exists(), "no copy at {}", copy.display());
    let old = Connection::open(&copy).unwrap();
    let v: u32 = old
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 1);
    let n: i64 = old
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);

    let bob = Auth::Bearer(TOKEN.into());
    // Existing members start with nothing unread.
    let rooms = app.my_rooms(&bob).await;
    let general = &rooms[0];
    assert_eq!(general["name"], "general");
    assert_eq!(general["unread"], 0, "{rooms:?}");
    assert_eq!(general["last_read"], 3);
    // Old messages are in the new search index, accents folded.
    let found = app.search_ok(&bob, "cafe", "").await;
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{found}");
    assert_eq!(results[0]["body"], "Café au lait for me");
    app.stop().await;

    // A second start neither copies again nor fails.
    let before = std::fs::metadata(&copy).unwrap().modified().unwrap();
    app.restart().await;
    assert_eq!(
        std::fs::metadata(&copy).unwrap().modified().unwrap(),
        before
    );
    app.stop().await;
}
