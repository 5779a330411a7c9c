//! A database from before rooms, read markers and search (schema version 1) is upgraded on
//! start: its messages become searchable and nobody finds old messages unread.

use reqwest::Method;
use rusqlite::{params, Connection};

use crate::common::*;

#[tokio::test]
async fn a_version_1_database_is_upgraded_and_indexed() {
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
