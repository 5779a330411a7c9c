//! A database that cannot grow (the disk is full): sends are refused with an `unavailable`
//! error frame, nothing is acknowledged, `/healthz` says what is wrong, and everything recovers
//! once space is back — with the retried nonces stored exactly once.

use hearth::db::Db;
use serde_json::Value;

use crate::common::{send_frame, stored_nonces, text, TestApp, Ws};

/// Send `body {nonce}` to `general` and return the answer (the stored message or an error).
async fn send(ws: &mut Ws, nonce: &str) -> Value {
    ws.send_json(&send_frame(&format!("body {nonce}"), Some(nonce)))
        .await;
    ws.next_skipping(&["presence", "typing"]).await
}

async fn health(app: &TestApp) -> (u16, String) {
    let res = app.get("/healthz").await;
    (res.status().as_u16(), text(res).await)
}

/// The disk fills up (`full`) or has room again: the database may not grow by a single page,
/// or may grow as SQLite allows. Raw SQL on purpose: a full disk is a state of SQLite's file,
/// which no store method or API can produce.
async fn disk_full(db: &Db, full: bool) {
    db.write(move |c| {
        let c = c.lite().unwrap();
        let pages: i64 = if full {
            c.query_row("PRAGMA page_count", [], |r| r.get(0))?
        } else {
            1_073_741_823
        };
        Ok(c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?)
    })
    .await
    .unwrap();
}

/// Send 20 large messages to a full database: the nonces refused with `unavailable` (the
/// others may still fit in the last page).
async fn sends_to_a_full_database(ws: &mut Ws) -> Vec<String> {
    let big = "x".repeat(3900);
    let mut refused = Vec::new();
    for i in 0..20 {
        let nonce = format!("full-{i}");
        ws.send_json(&send_frame(&big, Some(&nonce))).await;
        let reply = ws.next_skipping(&["presence", "typing"]).await;
        match reply["type"].as_str() {
            Some("error") => {
                assert_eq!(reply["code"], "unavailable", "{reply}");
                assert_eq!(reply["nonce"], nonce.as_str());
                assert!(reply["retry_after_ms"].as_u64().is_some());
                refused.push(nonce);
            }
            Some("message") => assert_eq!(reply["nonce"], nonce.as_str()),
            other => panic!("unexpected {other:?}: {reply}"),
        }
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_refuses_sends_then_recovers_without_losing_or_duplicating() {
    if crate::common::sqlite_only("the database file filling its disk") {
        return;
    }
    let mut app = TestApp::start().await;
    let ivan = app.signup("ivan").await;
    let mut ws = app.ws_connect(&ivan, None).await;
    assert_eq!(send(&mut ws, "before").await["type"], "message");

    let db = app.server().state().db.clone();
    disk_full(&db, true).await;
    let refused = sends_to_a_full_database(&mut ws).await;
    assert!(!refused.is_empty(), "some sends must hit the full database");
    let (status, text) = health(&app).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("full"), "{text}");

    // Space comes back; the client retries what was refused, with the same nonces.
    disk_full(&db, false).await;
    let mut ids = Vec::new();
    for nonce in &refused {
        let reply = send(&mut ws, nonce).await;
        assert_eq!(reply["type"], "message", "{reply}");
        ids.push(reply["id"].as_i64().unwrap());
    }
    assert_eq!(health(&app).await.0, 200);
    // Retrying again changes nothing: each refused nonce is stored exactly once.
    for (nonce, id) in refused.iter().zip(&ids) {
        let reply = send(&mut ws, nonce).await;
        assert_eq!(reply["id"].as_i64(), Some(*id));
    }
    drop(ws);
    drop(db);
    app.stop().await;
    let stored = stored_nonces(&app.db_path());
    for nonce in &refused {
        let n = stored.iter().filter(|s| *s == nonce).count();
        assert_eq!(n, 1, "{nonce}");
    }
}

/// A failed write keeps `/healthz` at 503 for a while even when its own probe writes (a probe
/// that changes nothing proves little about a full disk); after that, a probe that writes
/// clears it, so a node a load balancer took out (and so sends no messages) comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_holds_healthz_down_for_a_while_then_a_probe_that_writes_clears_it() {
    if crate::common::sqlite_only("the database file filling its disk") {
        return;
    }
    let app = TestApp::start().await;
    let ivan = app.signup("ivan").await;
    let mut ws = app.ws_connect(&ivan, None).await;
    let db = app.server().state().db.clone();
    disk_full(&db, true).await;
    assert!(!sends_to_a_full_database(&mut ws).await.is_empty());
    disk_full(&db, false).await;

    // Space is back, but no message has been stored since: still held down.
    let (status, text) = health(&app).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("last database write failed"), "{text}");
    // With `?detail`, the same status and reason, then how each part fares: the database
    // answers its probes again (and probing it with `?detail` does not end the hold).
    let res = app.get("/healthz?detail").await;
    let (status, detail) = (res.status().as_u16(), crate::common::text(res).await);
    assert_eq!(status, 503, "{detail}");
    let lines: Vec<&str> = detail.lines().collect();
    assert!(
        lines[0].starts_with("unavailable: the last database write failed"),
        "{detail}"
    );
    assert_eq!(lines.get(1), Some(&"database: sqlite, ok"), "{detail}");
    assert_eq!(health(&app).await.0, 503);

    // The failure is older than the hold (set back in time, rather than waiting for it).
    let failure = || {
        app.server()
            .state()
            .hub
            .metrics()
            .write_error
            .lock()
            .unwrap()
    };
    {
        let mut failure = failure();
        let f = failure.as_mut().expect("the failed write is remembered");
        f.at = std::time::Instant::now()
            .checked_sub(std::time::Duration::from_secs(31))
            .unwrap();
    }
    let (status, text) = health(&app).await;
    assert_eq!(status, 200, "{text}");
    assert!(failure().is_none());
    assert_eq!(health(&app).await.0, 200);
    assert_eq!(send(&mut ws, "after").await["type"], "message");
}
