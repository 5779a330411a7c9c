//! A database that cannot grow (the disk is full): sends are refused with an `unavailable`
//! error frame, nothing is acknowledged, `/healthz` says what is wrong, and everything recovers
//! once space is back — with the retried nonces stored exactly once.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame arrives")
            .expect("open")
            .expect("valid");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "presence" && v["type"] != "typing" {
                return v;
            }
        }
    }
}

async fn send(ws: &mut Ws, nonce: &str) -> Value {
    let frame =
        json!({"type":"send","room":"general","body": format!("body {nonce}"),"nonce": nonce});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    next_json(ws).await
}

async fn health(base: &str) -> (u16, String) {
    let res = reqwest::get(format!("{base}/healthz")).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_refuses_sends_then_recovers_without_losing_or_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = hearth::config::Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.database.path = dir.path().join("chat.db");
    c.auth.pbkdf2_iterations = 1000;
    c.limits.messages_per_second = 0.0;
    let server = hearth::run(c).await.expect("starts");
    let base = format!("http://{}", server.local_addr());
    let res = reqwest::Client::new()
        .post(format!("{base}/api/register"))
        .json(&json!({"username":"ivan","password":"password123"}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut req = format!("ws://{}/ws", server.local_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    assert_eq!(send(&mut ws, "before").await["type"], "message");

    // The disk fills up: the database may not grow by a single page.
    let db = server.state().db.clone();
    db.write(|c| {
        let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
    })
    .await
    .unwrap();
    let big = "x".repeat(3900);
    let mut refused = Vec::new();
    for i in 0..20 {
        let nonce = format!("full-{i}");
        let frame = json!({"type":"send","room":"general","body": big,"nonce": nonce});
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
        let reply = next_json(&mut ws).await;
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
    assert!(!refused.is_empty(), "some sends must hit the full database");
    let (status, text) = health(&base).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("full"), "{text}");

    // Space comes back; the client retries what was refused, with the same nonces.
    db.write(|c| c.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(())))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for nonce in &refused {
        let reply = send(&mut ws, nonce).await;
        assert_eq!(reply["type"], "message", "{reply}");
        ids.push(reply["id"].as_i64().unwrap());
    }
    assert_eq!(health(&base).await.0, 200);
    // Retrying again changes nothing: each refused nonce is stored exactly once.
    for (nonce, id) in refused.iter().zip(&ids) {
        let reply = send(&mut ws, nonce).await;
        assert_eq!(reply["id"].as_i64(), Some(*id));
    }
    drop(ws);
    server.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join("chat.db")).unwrap();
    for nonce in &refused {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM messages WHERE nonce = ?1",
                [nonce],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{nonce}");
    }
}
