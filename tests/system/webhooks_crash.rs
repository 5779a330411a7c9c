//! Outgoing webhooks survive `kill -9`: forty messages are committed while the receiver answers
//! 500, the server is killed with their deliveries still queued, restarted, killed again in the
//! middle of delivering once the receiver has recovered, and restarted. Every message reaches
//! the receiver at least once, correctly signed, and the messages arrive in id order (the
//! first 2xx delivery of each, in the order they were received).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{hmac_signature, http_client, json_body, Receiver};
use crate::durability::{create_account, start_server_with};
use crate::process::Hearth;

const MESSAGES: usize = 40;

/// `hearth` on `dir/chat.db`, allowed to reach the receiver on 127.0.0.1.
fn start(dir: &Path) -> Hearth {
    start_server_with(
        dir,
        &[
            ("CHAT_OUTBOUND__ALLOW_PRIVATE_NETWORKS", "true".into()),
            ("CHAT_PREVIEWS__ENABLED", "false".into()),
        ],
    )
}

/// Add a webhook to `general` through the server on `port`, posting to the receiver; its
/// signing secret.
async fn add_webhook(http: &reqwest::Client, port: u16, auth: &str, receiver: &Receiver) -> String {
    let res = http
        .post(format!(
            "http://127.0.0.1:{port}/api/rooms/general/webhooks"
        ))
        .header("authorization", auth)
        .json(&json!({"url": receiver.url("/deliveries")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    json_body(res).await["webhook"]["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Wait (up to `limit`) until every message of `sent` was answered 2xx by the receiver;
/// each request must carry the right signature, and the first 2xx delivery of each message
/// must come in id order.
async fn all_delivered_in_order(receiver: &Receiver, secret: &str, sent: &[i64], limit: Duration) {
    let got = receiver
        .wait_until(limit, "every delivery", |r| {
            let mut ids: Vec<i64> = r
                .iter()
                .filter(|x| x.status == 200)
                .filter_map(|x| serde_json::from_slice::<Value>(&x.body).ok())
                .filter_map(|v| v["message"]["id"].as_i64())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len() == sent.len()
        })
        .await;
    let mut first_seen = Vec::new();
    for r in &got {
        assert_eq!(
            r.headers["x-hearth-signature"],
            hmac_signature(secret, &r.body)
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let id = v["message"]["id"].as_i64().unwrap();
        if r.status == 200 && !first_seen.contains(&id) {
            first_seen.push(id);
        }
    }
    assert_eq!(first_seen, sent, "each message once at least, in id order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_never_loses_a_webhook_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(500).await;
    let server = start(dir.path());
    let http = http_client();
    let token = create_account(&http, server.port, "alice").await;
    let auth = format!("Bearer {token}");
    let base = format!("http://127.0.0.1:{}", server.port);
    let secret = add_webhook(&http, server.port, &auth, &receiver).await;

    let mut sent = Vec::new();
    for i in 0..MESSAGES {
        let res = http
            .post(format!("{base}/api/rooms/general/messages"))
            .header("authorization", &auth)
            .json(&json!({"body": format!("message {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        sent.push(json_body(res).await["message"]["id"].as_i64().unwrap());
    }
    receiver
        .wait_until(Duration::from_secs(30), "failed attempts", |r| r.len() >= 2)
        .await;
    server.kill_9();

    // Back, and the receiver recovers; killed again half-way through the deliveries.
    let server = start(dir.path());
    receiver.answer(200);
    let ok = |r: &[crate::common::Received]| r.iter().filter(|x| x.status == 200).count();
    receiver
        .wait_until(Duration::from_secs(60), "the first deliveries", |r| {
            ok(r) >= 10
        })
        .await;
    server.kill_9();
    let server = start(dir.path());
    all_delivered_in_order(&receiver, &secret, &sent, Duration::from_secs(60)).await;
    // Nothing is left queued once the last answer is recorded.
    let url = format!(
        "http://127.0.0.1:{}/api/rooms/general/webhooks",
        server.port
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let res = http
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        let w = json_body(res).await["webhooks"][0].clone();
        if w["pending"] == 0 {
            assert_eq!(w["last_error"], "", "{w}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still queued: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two nodes on one PostgreSQL database share a webhook's deliveries. Node a alone takes the
/// first delivery and is killed with `kill -9` while the receiver holds that request
/// unanswered; node b, started then, takes the delivery over once a's claim lapses and delivers
/// everything, each message at least once, correctly signed and in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_outlives_the_node_that_was_delivering_it() {
    let Some(pg) = tokio::task::spawn_blocking(crate::engines::Postgres::start)
        .await
        .expect("PostgreSQL starts")
    else {
        return;
    };
    let url = tokio::task::block_in_place(|| pg.create_database("hooks"));
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let node = |i: usize| {
        start_server_with(
            dirs[i].path(),
            &[
                ("CHAT_DATABASE__URL", url.clone()),
                ("CHAT_CLUSTER__NODE", format!("node{i}")),
                ("CHAT_OUTBOUND__ALLOW_PRIVATE_NETWORKS", "true".into()),
                ("CHAT_OUTBOUND__TIMEOUT_SECONDS", "1".into()),
                ("CHAT_PREVIEWS__ENABLED", "false".into()),
            ],
        )
    };
    let receiver = Receiver::start(0).await;
    let a = node(0);
    let http = http_client();
    let token = create_account(&http, a.port, "alice").await;
    let auth = format!("Bearer {token}");
    let secret = add_webhook(&http, a.port, &auth, &receiver).await;
    let post = |port: u16, i: usize| {
        http.post(format!(
            "http://127.0.0.1:{port}/api/rooms/general/messages"
        ))
        .header("authorization", &auth)
        .json(&json!({"body": format!("message {i}")}))
        .send()
    };
    let mut sent = Vec::new();
    for i in 0..MESSAGES / 2 {
        let res = post(a.port, i).await.unwrap();
        assert_eq!(res.status(), 201);
        sent.push(json_body(res).await["message"]["id"].as_i64().unwrap());
    }
    // A request is on its way from a (the only node) when a dies.
    receiver
        .wait_until(Duration::from_secs(30), "a held delivery", |r| {
            !r.is_empty()
        })
        .await;
    a.kill_9();
    let b = node(1);
    receiver.answer(200);
    for i in MESSAGES / 2..MESSAGES {
        let res = post(b.port, i).await.unwrap();
        assert_eq!(res.status(), 201);
        sent.push(json_body(res).await["message"]["id"].as_i64().unwrap());
    }
    all_delivered_in_order(&receiver, &secret, &sent, Duration::from_secs(120)).await;
    drop(b);
}
