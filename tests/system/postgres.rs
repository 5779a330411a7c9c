//! `hearth migrate-to-postgres` against a real PostgreSQL server started by the test: a
//! community with every kind of row (accounts, sessions and a bot token, public and private
//! rooms, a direct conversation, messages with a reply, an edit, a deletion, a reaction,
//! mentions, an attachment, an invite, a hook and a webhook, a push subscription) is copied
//! and read back from PostgreSQL: the same ids, bodies, bytes and flags, a working full-text
//! index, identities and the log head continuing after the copied ids. A second copy into the
//! same database and copies from bad sources are refused with a readable error and write
//! nothing. Then the log itself: concurrent appends and followers that lose their listening
//! connections.

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
    // A browser's public key: a point of P-256.
    let point = || {
        use base64::Engine;
        let rng = ring::rand::SystemRandom::new();
        let private =
            ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
                .expect("a key");
        let public = private.compute_public_key().expect("its public half");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.as_ref())
    };
    app.api_ok(
        Method::POST,
        "/api/push/subscriptions",
        &bob,
        Some(&json!({
            "endpoint": receiver.url("/push"),
            "keys": {"p256dh": point(), "auth": b64(16, 1)},
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
    // Text an older Hearth let in: a NUL (PostgreSQL text cannot hold it) and the control
    // characters `COPY` writes as escapes.
    {
        let sqlite = rusqlite::Connection::open(app.db_path()).unwrap();
        sqlite
            .execute(
                "UPDATE messages SET body = ?1 WHERE id = ?2",
                rusqlite::params!["ps\0st\u{8}", community.message_ids[3]],
            )
            .unwrap();
        sqlite
            .execute(
                "UPDATE rooms SET topic = ?1 WHERE name = 'ops'",
                ["vertical\u{b}tab, form\u{c}feed"],
            )
            .unwrap();
    }

    // A database whose tables change what they are given (a trigger here; a wrong encoding
    // in the copy would look the same): the read-back differs, nothing is kept.
    let tampered = pg.create_database("tampered");
    let mut db = pg.client("tampered");
    hearth::db::pg::schema::migrate(&mut db).unwrap();
    db.batch_execute(
        "CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN NEW.topic := NEW.topic || '!'; RETURN NEW; END $$; \
         CREATE TRIGGER tamper BEFORE INSERT ON rooms FOR EACH ROW EXECUTE FUNCTION tamper();",
    )
    .unwrap();
    let out = migrate(app, &tampered);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("rooms differs after the copy"),
        "{err}"
    );
    let kept: i64 = db
        .query_one("SELECT count(*) FROM messages", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 0, "nothing kept");
    drop(db);

    let url = pg.create_database("community");
    let out = migrate(app, &url);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("verified every table"), "{said}");
    assert!(said.contains("messages.body (1 value)"), "{said}");

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
    assert_eq!(
        body_of(ids[3]),
        "psst\u{8}",
        "the NUL left out, the rest kept"
    );
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
            "SELECT id FROM messages WHERE search @@ plainto_tsquery('hearth', 'zwölf')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hits, vec![ids[1]]);
    // Every copied message carries the vector Hearth makes of its body.
    assert_eq!(vectors_differing(&mut db), 0);
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
    let ops = db
        .query_one("SELECT is_public, topic FROM rooms WHERE name = 'ops'", &[])
        .unwrap();
    assert!(!ops.get::<_, bool>(0));
    assert_eq!(ops.get::<_, String>(1), "vertical\u{b}tab, form\u{c}feed");

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

    // A new database where the only thing made is an invite (`hearth invite create` on it):
    // refused as clearly, not with a clash of ids halfway.
    let invited = pg.create_database("invited");
    let made = Command::new(BIN)
        .args(["--config", "absent.toml", "invite", "create"])
        .env("CHAT_DATABASE__URL", &invited)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let out = migrate(app, &invited);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("already holds a community"),
        "{err}"
    );

    // A database a server runs on (started before the copy): refused while it runs, copied
    // once it has stopped.
    let running = pg.create_database("running");
    let mut node = {
        let url = running.clone();
        rt.block_on(
            TestApp::builder()
                .config(move |c| c.database.url = url)
                .start(),
        )
    };
    let out = migrate(app, &running);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("a Hearth server is connected"),
        "{err}"
    );
    rt.block_on(node.stop());
    drop(node);
    let out = migrate(app, &running);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

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
    // A database an older Hearth used (its nodes may still run): refused, not upgraded.
    pg.create_database("older");
    let mut older = pg.client("older");
    hearth::db::pg::schema::migrate_to(&mut older, 9).unwrap();
    let out = migrate(app, &pg.url("older"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("schema version 9"),
        "{err}"
    );
    let version: i32 = older
        .query_one("SELECT version FROM hearth_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, 9, "left as it was");

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

/// A server still serving the SQLite file (and writing to it) while it would be copied: the
/// copy is refused and copies nothing, rather than missing what the server acknowledges
/// meanwhile. (Its claim on the file says so before anything is read; a write during the
/// copy would be found at its end.)
#[test]
fn a_copy_while_a_server_writes_to_the_file_is_refused() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(TestApp::with_config(|c| c.limits.messages_per_second = 0.0));
    let ann = rt.block_on(app.signup("ann"));
    let url = pg.create_database("busy");
    let copying = std::thread::spawn({
        let path = app.db_path();
        move || {
            Command::new(BIN)
                .args(["--config", "absent.toml", "migrate-to-postgres", &url])
                .env("CHAT_DATABASE__PATH", path)
                .env("RUST_LOG", "warn")
                .output()
                .expect("hearth runs")
        }
    });
    let posted = rt.block_on(async {
        let mut n = 0;
        while !copying.is_finished() {
            post(&app, &ann, "general", &format!("still here {n}"), json!({})).await;
            n += 1;
        }
        n
    });
    let out = copying.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("is serving"),
        "{posted} messages posted meanwhile: {err}"
    );
    let mut db = pg.client("busy");
    let tables: i64 = db
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing was made or copied");
}

/// The log under concurrent appends from three writers (one connection each, as three nodes
/// would), a retry storm of one nonce through all three, rows from a non-member, and two
/// followers whose listening connections are killed again and again: every follower hands
/// out every stored message exactly once, in position order, with no gap; positions are
/// gapless and each writer's acknowledged positions increase (commit order is position
/// order); a nonce is stored once; a non-member's row never.
#[test]
fn the_log_reaches_every_follower_in_order_through_lost_listeners() {
    use hearth::db::pg::log::{append, Appended, Follower, NewRow};
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.create_database("log");
    let mut admin = pg.client("log");
    hearth::db::pg::schema::migrate(&mut admin).unwrap();
    admin
        .batch_execute(
            "DELETE FROM rooms; \
             INSERT INTO users (id, username, username_key, password_hash, created_at) VALUES \
             (1, 'ann', 'ann', 'x', 0), (2, 'ben', 'ben', 'x', 0), (3, 'cy', 'cy', 'x', 0), \
             (4, 'outsider', 'outsider', 'x', 0); \
             INSERT INTO rooms (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0); \
             INSERT INTO memberships (room_id, user_id, joined_at) \
             SELECT r, u, 0 FROM generate_series(1, 2) r, generate_series(1, 3) u",
        )
        .unwrap();

    const WRITERS: usize = 3;
    const BATCHES: usize = 120;
    const ROWS: usize = 8;
    let final_head = Arc::new(AtomicI64::new(i64::MAX));
    let followers: Vec<_> = (0..2)
        .map(|_| {
            let (url, final_head) = (url.clone(), final_head.clone());
            std::thread::spawn(move || {
                let mut f = Follower::start(&url, 0, Duration::from_millis(100)).unwrap();
                let mut seen = Vec::new();
                while f.applied() < final_head.load(Ordering::SeqCst) {
                    seen.extend(f.next_batch().expect("the log stays readable"));
                }
                seen
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut client = pg.client("log");
            std::thread::spawn(move || {
                let mut rng = crate::common::Rng::new(7 + w as u64);
                let mut out: Vec<(Vec<NewRow>, Vec<Appended>)> = Vec::new();
                for b in 0..BATCHES {
                    let mut rows: Vec<NewRow> = (0..ROWS)
                        .map(|i| {
                            let outsider = rng.chance(5);
                            NewRow {
                                room_id: 1 + rng.below(2) as i64,
                                user_id: if outsider { 4 } else { 1 + rng.below(3) as i64 },
                                body: format!("w{w} b{b} r{i}"),
                                nonce: Some(format!("w{w}-{b}-{i}")),
                            }
                        })
                        .collect();
                    if b % 10 == 0 {
                        // The same message retried through every node at once.
                        rows.push(NewRow {
                            room_id: 1,
                            user_id: 1,
                            body: format!("storm {b}"),
                            nonce: Some(format!("storm-{b}")),
                        });
                    }
                    let got = append(&mut client, &rows, 0).expect("the append commits");
                    out.push((rows, got));
                }
                out
            })
        })
        .collect();
    // Kill the followers' listening connections again and again while the writers run.
    let mut killed = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        std::thread::sleep(Duration::from_millis(40));
        let n: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = 'log' AND query LIKE 'LISTEN%'",
                &[],
            )
            .unwrap()
            .get(0);
        killed += n;
    }
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let head: i64 = admin
        .query_one("SELECT pos FROM hearth_log_head", &[])
        .unwrap()
        .get(0);
    final_head.store(head, Ordering::SeqCst);
    let seen: Vec<_> = followers.into_iter().map(|f| f.join().unwrap()).collect();

    // Positions are gapless and every stored row is there once.
    let stored: Vec<(i64, String)> = admin
        .query("SELECT id, body FROM messages ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ids: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=head).collect::<Vec<_>>(), "gapless positions");
    for (i, follower) in seen.iter().enumerate() {
        let got: Vec<(i64, String)> = follower.iter().map(|m| (m.id, m.body.clone())).collect();
        assert_eq!(got, stored, "follower {i}: everything, once, in order");
    }
    // What each writer was told.
    let mut storm_ids = std::collections::HashMap::new();
    let mut refused = 0;
    for batches in &results {
        let mut last = 0;
        for (rows, got) in batches {
            for (row, outcome) in rows.iter().zip(got) {
                match *outcome {
                    Appended::Stored(id) => {
                        assert!(id > last, "a writer's positions increase");
                        last = id;
                        let at = (id - 1) as usize;
                        assert_eq!(stored[at].1, row.body, "stored at the position it was told");
                    }
                    Appended::Duplicate(id) => {
                        assert!(row.body.starts_with("storm"), "{row:?}");
                        assert!(id <= head);
                    }
                    Appended::NotAMember => {
                        assert_eq!(row.user_id, 4, "{row:?}");
                        refused += 1;
                    }
                }
                if row.body.starts_with("storm") {
                    let id = match *outcome {
                        Appended::Stored(id) | Appended::Duplicate(id) => id,
                        Appended::NotAMember => panic!("a member's storm row refused"),
                    };
                    let first = *storm_ids.entry(row.nonce.clone()).or_insert(id);
                    assert_eq!(first, id, "one message per nonce");
                }
            }
        }
    }
    assert!(refused > 0, "non-members were among the rows");
    let outsiders: i64 = admin
        .query_one("SELECT count(*) FROM messages WHERE user_id = 4", &[])
        .unwrap()
        .get(0);
    assert_eq!(outsiders, 0);
    let storms: i64 = admin
        .query_one(
            "SELECT count(*) FROM messages WHERE body LIKE 'storm%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(storms as usize, BATCHES / 10, "each storm stored once");
    assert!(killed >= 3, "listening connections were killed ({killed})");
    eprintln!(
        "log: {head} positions, {killed} listeners killed, {refused} non-member rows refused"
    );
}

/// How many messages' search vector is not the one Hearth makes of their body.
fn vectors_differing(db: &mut postgres::Client) -> i64 {
    let rows = db.query("SELECT id, body FROM messages", &[]).unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let vectors: Vec<String> = rows
        .iter()
        .map(|r| hearth::db::pg::words::vector(r.get(1)))
        .collect();
    db.query_one(
        "SELECT count(*) FROM unnest($1::bigint[], $2::text[]) AS v(id, s) \
         JOIN messages m ON m.id = v.id WHERE m.search IS DISTINCT FROM v.s::tsvector",
        &[&ids, &vectors],
    )
    .unwrap()
    .get(0)
}

/// Upgrading from the schema whose search vectors PostgreSQL generated: the stored vectors
/// are made again by Hearth in the migration (an address, a decimal and a hyphenated word are
/// found by their parts, as on SQLite), and the append of the previous version still stores
/// and indexes messages.
#[test]
fn an_upgrade_makes_the_stored_search_vectors_again() {
    use hearth::db::pg::log::{append, Appended, NewRow};

    let Some(pg) = Postgres::start() else {
        return;
    };
    pg.create_database("upgrade");
    let mut db = pg.client("upgrade");
    hearth::db::pg::schema::migrate_to(&mut db, 9).unwrap();
    db.batch_execute(
        "INSERT INTO users (id, username, username_key, password_hash, created_at) \
         VALUES (1, 'ann', 'ann', 'x', 0); \
         INSERT INTO memberships (room_id, user_id, joined_at) SELECT id, 1, 0 FROM rooms; \
         INSERT INTO messages (id, room_id, user_id, body, created_at) \
         SELECT 1, id, 1, 'mail bob@example.com', 0 FROM rooms; \
         INSERT INTO messages (id, room_id, user_id, body, created_at) \
         SELECT 2, id, 1, 'pi is 3.14, well-known', 0 FROM rooms; \
         UPDATE hearth_log_head SET pos = 2",
    )
    .unwrap();
    let found = |db: &mut postgres::Client, word: &str| -> Vec<i64> {
        let terms = [word.to_string()];
        let query = hearth::db::pg::words::query(&terms).unwrap();
        db.query(
            "SELECT id FROM messages WHERE search @@ $1::text::tsquery ORDER BY id",
            &[&query],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    // PostgreSQL's parser keeps an address and a decimal whole.
    assert_eq!(found(&mut db, "example"), Vec::<i64>::new());
    assert_eq!(found(&mut db, "14"), Vec::<i64>::new());
    assert_eq!(vectors_differing(&mut db), 2);

    let version = hearth::db::pg::schema::migrate(&mut db).unwrap();
    assert_eq!(version as usize, hearth::db::pg::schema::MIGRATIONS.len());
    assert_eq!(vectors_differing(&mut db), 0);
    assert_eq!(found(&mut db, "example"), vec![1]);
    assert_eq!(found(&mut db, "bob@example.com"), vec![1]);
    assert_eq!(found(&mut db, "14"), vec![2]);
    assert_eq!(found(&mut db, "well-known"), vec![2]);

    // The previous version's append (no vectors given) indexes its messages itself.
    let room: i64 = db.query_one("SELECT id FROM rooms", &[]).unwrap().get(0);
    let old = db
        .query_one(
            "SELECT o_id FROM hearth_append(ARRAY[$1]::bigint[], ARRAY[1]::bigint[], \
             ARRAY['Über alles']::text[], ARRAY[NULL]::text[], 0)",
            &[&room],
        )
        .unwrap()
        .get::<_, Option<i64>>(0);
    assert_eq!(old, Some(3));
    assert_eq!(found(&mut db, "uber"), vec![3]);
    // This version's append gives Hearth's vectors.
    let row = NewRow {
        room_id: room,
        user_id: 1,
        body: "Ça va? ça-va".into(),
        nonce: None,
    };
    assert_eq!(append(&mut db, &[row], 0).unwrap(), [Appended::Stored(4)]);
    assert_eq!(found(&mut db, "ca va"), vec![4]);
    assert_eq!(found(&mut db, "\"va ca\""), vec![4]);
}
