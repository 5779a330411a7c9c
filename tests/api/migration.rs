//! A database from before rooms, read markers and search (schema version 1) is upgraded on
//! start: its messages become searchable and nobody finds old messages unread.

use reqwest::Method;
use rusqlite::{params, Connection};

use crate::common::*;

#[tokio::test]
async fn a_version_1_database_is_upgraded_and_indexed() {
    if crate::common::sqlite_only("upgrades of old SQLite files") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("chat.db");
    let mut ids = Vec::new();
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(hearth::db::schema::MIGRATIONS[0])
            .expect("schema version 1");
        conn.pragma_update(None, "user_version", 1).unwrap();
        let hash = hearth::auth::password::hash(PASSWORD, 1000);
        let now = 1_700_000_000_000i64;
        for (i, name) in ["alice", "Bob"].iter().enumerate() {
            conn.execute(
                "INSERT INTO users (username, username_key, password_hash, created_at, is_admin) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, name.to_ascii_lowercase(), hash, now, i == 0],
            )
            .unwrap();
            let uid = conn.last_insert_rowid();
            conn.execute(
                "INSERT INTO memberships (room_id, user_id, joined_at) \
                 SELECT id, ?1, ?2 FROM rooms WHERE is_public = 1",
                params![uid, now],
            )
            .unwrap();
        }
        let bodies = [
            (1, "legacy hello from alice"),
            (2, "legacy Crème brûlée from bob"),
            (1, "@Bob the legacy deploy is done"),
            (2, "nothing to see"),
        ];
        for (k, (user, body)) in bodies.iter().enumerate() {
            conn.execute(
                "INSERT INTO messages (room_id, user_id, body, nonce, created_at) \
                 VALUES (1, ?1, ?2, ?3, ?4)",
                params![user, body, format!("old-{k}"), now + k as i64],
            )
            .unwrap();
            ids.push(conn.last_insert_rowid());
        }
    }

    let app = TestApp::builder().in_dir(dir).start().await;
    let (_, cookie) = app.login("alice", PASSWORD).await;
    let alice = Auth::Cookie(cookie);
    let (_, cookie) = app.login("bob", PASSWORD).await;
    let bob = Auth::Cookie(cookie);

    let v = app.search_ok(&alice, "legacy", "").await;
    assert_eq!(result_ids(&v), [ids[2], ids[1], ids[0]], "{v}");
    let v = app.search_ok(&bob, "creme brulee", "").await;
    assert_eq!(result_ids(&v), [ids[1]], "{v}");
    let snippet = v["results"][0]["snippet"].as_str().unwrap().to_string();
    assert!(snippet.contains("\u{2}Crème\u{3}"), "{snippet:?}");

    for who in [&alice, &bob] {
        let general = app.my_room(who, "general").await.unwrap();
        assert_eq!(general["last_read"], ids[3], "{general}");
        assert_eq!(general["unread"], 0, "{general}");
        assert_eq!(general["mentions"], 0, "{general}");
        assert_eq!(general["notify"], "all");
        assert_eq!(general["kind"], "room");
        assert_eq!(general["public"], true);
        assert_eq!(general["members"], 2);
        assert_eq!(general["created_by"], serde_json::Value::Null);
    }
    assert_eq!(app.history(&alice, "general", "").await.len(), 4);

    // New messages go on from there: indexed, counted and delivered.
    let mut a1 = app.ws_connect(&alice, None).await;
    let m = a1
        .say("general", "fresh legacy words for @bob", "new")
        .await;
    assert!(id_of(&m) > ids[3]);
    let v = app.search_ok(&bob, "legacy", "").await;
    assert_eq!(result_ids(&v)[0], id_of(&m));
    let general = app.my_room(&bob, "general").await.unwrap();
    assert_eq!(general["unread"], 1);
    assert_eq!(general["mentions"], 1);
    // The room features work on the upgraded database.
    app.create_room(&alice, "after-upgrade", false).await;
    let (status, _) = app.open_dm(&alice, &["bob"]).await;
    assert_eq!(status, 201);
    let dir = app
        .api_ok(Method::GET, "/api/directory", &bob, None, 200)
        .await;
    assert_eq!(dir["rooms"].as_array().unwrap().len(), 1);
}

/// A database at schema 4 (edits and deletions, no replies or reactions) keeps its change log
/// through the upgrade: a copy is taken first, positions and replay go on, and the new
/// features work on the old messages.
#[tokio::test]
async fn a_version_4_change_log_survives_the_upgrade_to_reactions() {
    if crate::common::sqlite_only("upgrades of old SQLite files") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("chat.db");
    {
        let conn = Connection::open(&path).expect("open");
        for sql in &hearth::db::schema::MIGRATIONS[..4] {
            conn.execute_batch(sql).expect("schema 1 to 4");
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        let hash = hearth::auth::password::hash(PASSWORD, 1000);
        let now = 1_700_000_000_000i64;
        conn.execute(
            "INSERT INTO users (username, username_key, password_hash, created_at, is_admin) \
             VALUES ('alice', 'alice', ?1, ?2, 1)",
            params![hash, now],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO memberships (room_id, user_id, joined_at, last_read) VALUES (1, 1, ?1, 0)",
            params![now],
        )
        .unwrap();
        // Message 1 edited at position 2, message 3 deleted at position 4.
        conn.execute_batch(
            "INSERT INTO messages (id, room_id, user_id, body, created_at, edited_at) \
               VALUES (1, 1, 1, 'fixed words', 1700000000000, 1700000000500);
             UPDATE sqlite_sequence SET seq = 2 WHERE name = 'messages';
             INSERT INTO message_changes (seq, message_id, room_id, kind, body, actor_id, actor, ts)
               VALUES (2, 1, 1, 'edit', 'fixed words', 1, '', 1700000000500);
             INSERT INTO messages (id, room_id, user_id, body, created_at, deleted)
               VALUES (3, 1, 1, '', 1700000001000, 1);
             UPDATE sqlite_sequence SET seq = 4 WHERE name = 'messages';
             INSERT INTO message_changes (seq, message_id, room_id, kind, body, actor_id, actor, ts)
               VALUES (4, 3, 1, 'delete', '', 1, 'alice', 1700000001500);",
        )
        .expect("a schema-4 change log");
    }

    let app = TestApp::builder().in_dir(dir).start().await;
    assert!(
        hearth::db::backup_path(&app.db_path(), 4).exists(),
        "the schema-4 file is copied before the upgrade"
    );
    let (_, cookie) = app.login("alice", PASSWORD).await;
    let alice = Auth::Cookie(cookie);
    let events = app
        .api_ok(Method::GET, "/api/events?after=0", &alice, None, 200)
        .await;
    let kinds: Vec<(&str, i64)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let pos = e.get("seq").unwrap_or(&e["id"]);
            (e["type"].as_str().unwrap(), pos.as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("message", 1),
            ("edited", 2),
            ("message", 3),
            ("deleted", 4)
        ]
    );
    assert_eq!(events["head"], 4);

    let mut a = app.ws_connect(&alice, None).await;
    assert_eq!(a.ready["last_id"], 4);
    a.send_json(
        &serde_json::json!({"type": "react", "id": 1, "emoji": "👍", "on": true, "nonce": "r"}),
    )
    .await;
    let r = a.wait_type("reaction").await;
    assert_eq!(r["seq"], 5, "the next position after the old log");
    let reply = serde_json::json!({"type": "send", "room": "general", "body": "re", "reply_to": 1, "nonce": "n"});
    a.send_json(&reply).await;
    let m = a.wait_type("message").await;
    assert_eq!(id_of(&m), 6);
    assert_eq!(m["reply_to"]["excerpt"], "fixed words");
}
