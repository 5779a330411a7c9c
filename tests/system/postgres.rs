//! `hearth migrate-to-postgres` against a real PostgreSQL server started by the test: a
//! community with every kind of row (accounts, sessions and a bot token, public and private
//! rooms, a direct conversation, messages with a reply, an edit, a deletion, a reaction,
//! mentions, an attachment, an invite, a hook and a webhook, a push subscription) is copied
//! and read back from PostgreSQL: the same ids, bodies, bytes and flags, a working full-text
//! index, identities and the log head continuing after the copied ids. A second copy into the
//! same database and copies from bad sources are refused with a readable error and write
//! nothing.

use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{Auth, Receiver, TestApp};
use crate::engines::Postgres;
use crate::process::BIN;

/// What the community holds, as the server reported it.
struct Community {
    app: TestApp,
    _receiver: Receiver,
    message_ids: Vec<i64>,
    edited: i64,
    deleted: i64,
}

async fn post(app: &TestApp, who: &Auth, room: &str, body: &str, extra: Value) -> i64 {
    let mut payload = json!({ "body": body });
    if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let m = app
        .api_ok(
            Method::POST,
            &format!("/api/rooms/{room}/messages"),
            who,
            Some(&payload),
            201,
        )
        .await;
    m["message"]["id"].as_i64().expect("a message id")
}

async fn build() -> Community {
    let receiver = Receiver::start(201).await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let admin = app.signup_admin("root").await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "ops", false).await;
    app.invite(&alice, "ops", "bob").await;
    let (_, dm) = app.open_dm(&alice, &["bob"]).await;
    let dm = dm["name"].as_str().unwrap().to_string();

    let mut ids = Vec::new();
    let first = post(
        &app,
        &alice,
        "general",
        "Tabs\tand\nnew lines \\ back",
        json!({}),
    )
    .await;
    ids.push(first);
    ids.push(
        post(
            &app,
            &bob,
            "general",
            "@alice zwölf Äpfel, naïve café",
            json!({"reply_to": first}),
        )
        .await,
    );
    ids.push(
        post(
            &app,
            &alice,
            "ops",
            "deploy at noon",
            json!({"nonce": "n-1"}),
        )
        .await,
    );
    ids.push(post(&app, &bob, &dm, "psst", json!({})).await);
    let edited = post(&app, &alice, "general", "tpyo", json!({})).await;
    ids.push(edited);
    app.api_ok(
        Method::PATCH,
        &format!("/api/messages/{edited}"),
        &alice,
        Some(&json!({"body": "typo fixed"})),
        200,
    )
    .await;
    let deleted = post(&app, &bob, "general", "oops, wrong room", json!({})).await;
    ids.push(deleted);
    app.api_ok(
        Method::DELETE,
        &format!("/api/messages/{deleted}"),
        &bob,
        None,
        204,
    )
    .await;
    app.api_ok(
        Method::PUT,
        &format!("/api/messages/{first}/reactions/%F0%9F%91%8D"),
        &bob,
        None,
        204,
    )
    .await;
    // An attachment.
    let res = app
        .send(
            app.request(Method::POST, "/api/uploads?name=notes.txt", Some(&alice))
                .header("origin", &app.base)
                .header("content-type", "text/plain")
                .body("file contents"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let upload: Value = res.json().await.unwrap();
    ids.push(
        post(
            &app,
            &alice,
            "general",
            "see attached",
            json!({"attachments": [upload["upload"]["id"]]}),
        )
        .await,
    );
    // A setting, an invite, a bot token, a hook, a webhook, a push subscription.
    app.api_ok(
        Method::PUT,
        "/api/admin/registration",
        &admin,
        Some(&json!({"mode": "invite"})),
        200,
    )
    .await;
    app.api_ok(
        Method::POST,
        "/api/admin/invites",
        &admin,
        Some(&json!({"max_uses": 3, "expires_in_hours": 24})),
        201,
    )
    .await;
    app.api_ok(
        Method::POST,
        "/api/tokens",
        &alice,
        Some(&json!({"name": "backup bot"})),
        201,
    )
    .await;
    app.api_ok(
        Method::POST,
        "/api/rooms/general/hooks",
        &alice,
        Some(&json!({"name": "ci"})),
        201,
    )
    .await;
    app.api_ok(
        Method::POST,
        "/api/rooms/general/webhooks",
        &alice,
        Some(&json!({"url": receiver.url("/hook")})),
        201,
    )
    .await;
    app.api_ok(Method::GET, "/api/push/key", &bob, None, 200)
        .await;
    let b64 = |n: usize, first: u8| {
        use base64::Engine;
        let mut bytes = vec![7u8; n];
        bytes[0] = first;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    app.api_ok(
        Method::POST,
        "/api/push/subscriptions",
        &bob,
        Some(&json!({
            "endpoint": receiver.url("/push"),
            "keys": {"p256dh": b64(65, 4), "auth": b64(16, 1)},
            "level": "all",
            "quiet": {"start": "22:00", "end": "07:00"},
        })),
        201,
    )
    .await;
    Community {
        app,
        _receiver: receiver,
        message_ids: ids,
        edited,
        deleted,
    }
}

fn migrate(app: &TestApp, url: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["--config", "absent.toml", "migrate-to-postgres", url])
        .env("CHAT_DATABASE__PATH", app.db_path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("hearth runs")
}

#[test]
fn a_sqlite_community_is_copied_into_postgres_and_verified() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut community = rt.block_on(build());
    // The copy is made from a snapshot even while the server runs; stopped here so that the
    // counts below are final.
    rt.block_on(community.app.stop());
    let app = &community.app;

    let url = pg.create_database("community");
    let out = migrate(app, &url);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("verified every table"), "{said}");

    let mut db = pg.client("community");
    let count = |db: &mut postgres::Client, table: &str| -> i64 {
        db.query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .get(0)
    };
    let sqlite = rusqlite::Connection::open(app.db_path()).unwrap();
    for table in [
        "users",
        "sessions",
        "rooms",
        "memberships",
        "messages",
        "mentions",
        "settings",
        "invites",
        "reactions",
        "uploads",
        "message_changes",
        "hooks",
        "webhooks",
        "server_keys",
        "push_subscriptions",
    ] {
        let here: i64 = sqlite
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert!(here > 0, "the community has {table}");
        assert_eq!(count(&mut db, table), here, "{table}");
        assert!(said.contains(table), "the report names {table}: {said}");
    }

    // Messages: the same ids, bodies (tabs, new lines, backslashes, accents) and states.
    let rows = db
        .query(
            "SELECT id, body, deleted, edited_at IS NOT NULL, reply_to FROM messages ORDER BY id",
            &[],
        )
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, community.message_ids);
    let body_of = |id: i64| -> String {
        rows.iter()
            .find(|r| r.get::<_, i64>(0) == id)
            .unwrap()
            .get(1)
    };
    assert_eq!(body_of(ids[0]), "Tabs\tand\nnew lines \\ back");
    assert_eq!(body_of(ids[1]), "@alice zwölf Äpfel, naïve café");
    let reply: Option<i64> = rows[1].get(4);
    assert_eq!(reply, Some(ids[0]));
    for r in &rows {
        let id: i64 = r.get(0);
        assert_eq!(
            r.get::<_, bool>(2),
            id == community.deleted,
            "deleted flag of {id}"
        );
        assert_eq!(
            r.get::<_, bool>(3),
            id == community.edited,
            "edited of {id}"
        );
    }
    // Full-text search over the copied bodies.
    let hits: Vec<i64> = db
        .query(
            "SELECT id FROM messages WHERE search @@ plainto_tsquery('simple', 'zwölf')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hits, vec![ids[1]]);
    // Bytes and flags.
    let admins: Vec<String> = db
        .query("SELECT username FROM users WHERE is_admin", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(admins, ["root"]);
    let (hash_here, hash_there): (Vec<u8>, Vec<u8>) = (
        sqlite
            .query_row(
                "SELECT token_hash FROM sessions ORDER BY token_hash LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap(),
        db.query_one(
            "SELECT token_hash FROM sessions ORDER BY token_hash LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0),
    );
    assert_eq!(hash_here.len(), 32);
    assert_eq!(hash_here, hash_there);
    let device = db
        .query_one(
            "SELECT level, quiet_start, quiet_end, length(p256dh) FROM push_subscriptions",
            &[],
        )
        .unwrap();
    assert_eq!(device.get::<_, String>(0), "all");
    assert_eq!(
        (
            device.get::<_, Option<i64>>(1),
            device.get::<_, Option<i64>>(2)
        ),
        (Some(22 * 60), Some(7 * 60))
    );
    assert_eq!(device.get::<_, i32>(3), 65);
    let private: bool = db
        .query_one("SELECT is_public FROM rooms WHERE name = 'ops'", &[])
        .unwrap()
        .get(0);
    assert!(!private);

    // Positions and identities go on after the copied ones.
    let head_here: i64 = sqlite
        .query_row(
            "SELECT max((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), \
             (SELECT max(seq) FROM message_changes))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let head: i64 = db
        .query_one("SELECT pos FROM hearth_log_head", &[])
        .unwrap()
        .get(0);
    assert_eq!(head, head_here);
    assert!(head >= *ids.last().unwrap());
    let next_user: i64 = db
        .query_one(
            "INSERT INTO users (username, username_key, password_hash, created_at) \
             VALUES ('zed', 'zed', 'x', 0) RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    let max_here: i64 = sqlite
        .query_row("SELECT max(id) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        next_user,
        max_here + 1,
        "new accounts continue after the copied ids"
    );

    // Again into the same database: refused, nothing changed.
    let before = count(&mut db, "messages");
    let out = migrate(app, &url);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds a community"), "{err}");
    assert_eq!(count(&mut db, "messages"), before);

    // A database that does not exist, a URL that is not one, a missing SQLite file.
    let out = migrate(app, &pg.url("missing"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not exist"),
        "{err}"
    );
    let out = migrate(app, "mysql://localhost/chat");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not a PostgreSQL URL"),
        "{err}"
    );
    let empty = pg.create_database("spare");
    let out = Command::new(BIN)
        .args(["--config", "absent.toml", "migrate-to-postgres", &empty])
        .env("CHAT_DATABASE__PATH", app.dir.path().join("nothing.db"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no database at"),
        "{err}"
    );
}
