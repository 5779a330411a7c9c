//! Search behind ingest: messages are indexed in a transaction of their own just after they
//! are acknowledged, behind a durable high-water mark (`search_index.indexed_through`), and
//! whatever a crash left unindexed is indexed when the server starts again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::Method;
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::common::*;

/// How long a message may take to become searchable after its acknowledgement.
const SEARCHABLE_WITHIN: Duration = Duration::from_secs(2);

/// The ids a search for `q` finds (newest first, up to 50).
async fn found(app: &TestApp, auth: &Auth, q: &str) -> Vec<i64> {
    result_ids(&app.search_ok(auth, q, "limit=50").await)
}

/// Search for `q` until `done` approves of the ids found, for at most [`SEARCHABLE_WITHIN`];
/// the last ids found.
async fn poll_search(
    app: &TestApp,
    auth: &Auth,
    q: &str,
    done: impl Fn(&[i64]) -> bool,
) -> Vec<i64> {
    poll_search_for(SEARCHABLE_WITHIN, app, auth, q, done).await
}

/// [`poll_search`] for at most `limit`.
async fn poll_search_for(
    limit: Duration,
    app: &TestApp,
    auth: &Auth,
    q: &str,
    done: impl Fn(&[i64]) -> bool,
) -> Vec<i64> {
    let deadline = Instant::now() + limit;
    loop {
        let ids = found(app, auth, q).await;
        if done(&ids) || Instant::now() >= deadline {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The search index's high-water mark and the highest message id, read from the database
/// file.
fn mark_and_last(conn: &Connection) -> (i64, i64) {
    let mark = conn
        .query_row("SELECT indexed_through FROM search_index", [], |r| r.get(0))
        .expect("the search index has a high-water mark");
    let last = conn
        .query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |r| {
            r.get(0)
        })
        .unwrap();
    (mark, last)
}

/// The search index's high-water mark, the highest message id, and the result of FTS5's
/// integrity check of the index against the messages, read from the database file.
fn index_state(app: &TestApp) -> (i64, i64, Result<(), String>) {
    let conn = Connection::open(app.db_path()).expect("opens the database");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let (mark, last) = mark_and_last(&conn);
    let check = conn
        .execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
    (mark, last, check)
}

#[tokio::test]
async fn messages_are_searchable_right_after_their_acknowledgement() {
    if crate::common::sqlite_only("the SQLite search index and its high-water mark") {
        return;
    }
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut ws = app.ws_connect(&alice, None).await;
    for i in 0..10 {
        let m = ws
            .say("general", &format!("walrus sighting {i}"), &format!("w{i}"))
            .await;
        let id = id_of(&m);
        let ids = poll_search(&app, &bob, &format!("walrus {i}"), |ids| ids.contains(&id)).await;
        assert_eq!(ids, [id], "message {i} is found by another user");
    }
    let (mark, last, check) = index_state(&app);
    assert_eq!(mark, last, "the high-water mark follows the messages");
    check.expect("the index matches the messages");
}

#[tokio::test]
async fn an_edit_changes_what_search_finds_and_a_delete_removes_the_message() {
    if crate::common::sqlite_only("the SQLite search index and its high-water mark") {
        return;
    }
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let kept = id_of(&ws.say("general", "otter before", "k").await);
    let edited = id_of(&ws.say("general", "otter original", "e").await);
    let deleted = id_of(&ws.say("general", "otter doomed", "d").await);
    let all = [deleted, edited, kept];
    let ids = poll_search(&app, &alice, "otter", |ids| ids == all).await;
    assert_eq!(ids, all);

    let body = json!({"body": "beaver rewritten"});
    app.api_ok(
        Method::PATCH,
        &format!("/api/messages/{edited}"),
        &alice,
        Some(&body),
        200,
    )
    .await;
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/messages/{deleted}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 204);

    assert_eq!(found(&app, &alice, "otter").await, [kept]);
    assert_eq!(found(&app, &alice, "original").await, Vec::<i64>::new());
    assert_eq!(found(&app, &alice, "doomed").await, Vec::<i64>::new());
    assert_eq!(found(&app, &alice, "beaver rewritten").await, [edited]);
    // Straight after sending: an edit and a delete of messages that may not be indexed yet.
    let fresh = app
        .api_ok(
            Method::POST,
            "/api/rooms/general/messages",
            &alice,
            Some(&json!({"body": "heron fresh"})),
            201,
        )
        .await;
    let fresh = fresh["message"]["id"].as_i64().expect("an id");
    let gone = id_of(&ws.say("general", "heron gone", "g").await);
    let body = json!({"body": "heron changed"});
    let path = format!("/api/messages/{fresh}");
    app.api_ok(Method::PATCH, &path, &alice, Some(&body), 200)
        .await;
    let path = format!("/api/messages/{gone}");
    assert_eq!(app.api(Method::DELETE, &path, &alice, None).await.0, 204);
    let ids = poll_search(&app, &alice, "heron", |ids| ids == [fresh]).await;
    assert_eq!(ids, [fresh]);
    assert!(found(&app, &alice, "fresh").await.is_empty());
    let (mark, last, check) = index_state(&app);
    assert_eq!(mark, last);
    check.expect("edits and deletions left the index sound");
}

#[tokio::test]
async fn many_messages_sent_quickly_all_become_searchable() {
    if crate::common::sqlite_only("the SQLite search index and its high-water mark") {
        return;
    }
    let app = TestApp::start().await;
    let mut senders = Vec::new();
    let mut sockets = Vec::new();
    // Everyone signed up before anyone connects: a sign-up is announced in `general`.
    for name in ["ann", "ben", "cat"] {
        senders.push(app.signup(name).await);
    }
    for auth in &senders {
        sockets.push(app.ws_connect(auth, None).await);
    }
    // Three connections pipelining 300 messages each, all at once.
    let posts = sockets
        .iter_mut()
        .enumerate()
        .map(|(n, ws)| async move { ws.post_many(300, &format!("pelican-s{n}")).await });
    let acked: Vec<i64> = futures_util::future::join_all(posts)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(acked.len(), 900);
    // Every acknowledged message is found, by newest-first paging over a shared word.
    let mut seen = HashSet::new();
    let mut extra = "limit=50".to_string();
    loop {
        let v = app.search_ok(&senders[0], "pelican", &extra).await;
        seen.extend(result_ids(&v));
        match v["next_before"].as_i64() {
            Some(before) => extra = format!("limit=50&before={before}"),
            None => break,
        }
    }
    let missing: Vec<&i64> = acked.iter().filter(|id| !seen.contains(id)).collect();
    assert!(missing.is_empty(), "not searchable: {missing:?}");
    // And each by its own words.
    let by_word: HashMap<String, i64> = (0..300)
        .step_by(37)
        .map(|k| (format!("s1 {k}"), acked[300 + k]))
        .collect();
    for (q, id) in by_word {
        assert_eq!(
            found(&app, &senders[2], &format!("\"{q}\"")).await,
            [id],
            "{q}"
        );
    }
    let (mark, last, check) = index_state(&app);
    assert_eq!(mark, last);
    check.expect("the index matches the messages");
}

/// Messages committed while the indexing pass never ran, as a crash between the two
/// transactions leaves them: stored straight into the file, the mark left where it was.
fn commit_without_indexing(app: &TestApp, bodies: &[&str]) -> Vec<i64> {
    let conn = Connection::open(app.db_path()).expect("opens the database");
    bodies
        .iter()
        .map(|body| {
            conn.execute(
                "INSERT INTO messages (room_id, user_id, body, created_at) VALUES (1, 1, ?1, 0)",
                [body],
            )
            .unwrap();
            conn.last_insert_rowid()
        })
        .collect()
}

#[tokio::test]
async fn messages_a_crash_left_unindexed_are_searchable_after_a_restart() {
    if crate::common::sqlite_only("the SQLite search index and its high-water mark") {
        return;
    }
    let mut app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let before = id_of(&ws.say("general", "lantern indexed", "a").await);
    let _ = poll_search(&app, &alice, "lantern", |ids| ids == [before]).await;
    drop(ws);
    app.stop().await;

    let ids = commit_without_indexing(&app, &["lantern one", "lantern two", "lantern three"]);
    {
        // A deletion after the crash's commit, before any indexing (as the next batch may do).
        let conn = Connection::open(app.db_path()).unwrap();
        conn.execute(
            "UPDATE messages SET body = '', deleted = 1 WHERE id = ?1",
            [ids[2]],
        )
        .unwrap();
        let (mark, _, _) = index_state(&app);
        assert_eq!(mark, before, "the mark was left behind");
    }

    app.restart().await;
    let (mark, last, check) = index_state(&app);
    assert_eq!((mark, last), (ids[2], ids[2]), "indexed before serving");
    check.expect("the index matches the messages");
    let mut want = vec![ids[1], ids[0], before];
    assert_eq!(found(&app, &alice, "lantern").await, want);
    assert!(found(&app, &alice, "three").await.is_empty(), "deleted");
    // And the index goes on from there.
    let mut ws = app.ws_connect(&alice, None).await;
    want.insert(0, id_of(&ws.say("general", "lantern after", "b").await));
    let ids = poll_search(&app, &alice, "lantern", |ids| ids == want).await;
    assert_eq!(ids, want);
}

#[tokio::test]
async fn a_new_database_starts_with_an_empty_index_and_its_mark_at_zero() {
    if crate::common::sqlite_only("the SQLite search index and its high-water mark") {
        return;
    }
    let app = TestApp::start().await;
    let (mark, last, check) = index_state(&app);
    assert_eq!((mark, last), (0, 0));
    check.expect("an empty index is sound");
    let alice = app.signup("alice").await;
    assert!(found(&app, &alice, "anything").await.is_empty());
    let v: Value = app.search_ok(&alice, "anything", "").await;
    assert_eq!(v["next_before"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_index_pass_is_retried_and_loses_no_message() {
    if crate::common::sqlite_only("the SQLite search index and its high-water mark") {
        return;
    }
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    // Every indexing pass fails (as on a full disk) while messages still commit: a trigger of
    // the writer connection's own, which only the index's high-water mark trips.
    let db = app.server().state().db.clone();
    db.write(|c| {
        Ok(c.lite().unwrap().execute_batch(
            "CREATE TEMP TRIGGER refuse_index BEFORE UPDATE ON main.search_index \
             BEGIN SELECT RAISE(ABORT, 'no room for the index'); END;",
        )?)
    })
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = ws
            .say("general", &format!("puffin {i}"), &format!("p{i}"))
            .await;
        ids.push(id_of(&m));
    }
    let conn = Connection::open(app.db_path()).unwrap();
    let (mark, last) = mark_and_last(&conn);
    assert!(mark < ids[0], "nothing indexed while passes fail");
    assert_eq!(last, ids[4], "every message acknowledged and stored");
    // Searches still answer (after a bounded wait), from what is indexed.
    assert!(found(&app, &alice, "puffin").await.is_empty());
    assert_healthy(&app).await;

    db.write(|c| {
        Ok(c.lite()
            .unwrap()
            .execute_batch("DROP TRIGGER temp.refuse_index")?)
    })
    .await
    .unwrap();
    let want: Vec<i64> = ids.iter().rev().copied().collect();
    let got = poll_search_for(Duration::from_secs(15), &app, &alice, "puffin", |f| {
        f == want
    })
    .await;
    assert_eq!(got, want, "indexed by a retry");
    let (mark, last, check) = index_state(&app);
    assert_eq!(mark, last);
    check.expect("the index matches the messages");
    // And the writer goes on.
    let next = id_of(&ws.say("general", "puffin after", "p5").await);
    let got = poll_search(&app, &alice, "after", |f| f == [next]).await;
    assert_eq!(got, [next]);
}
