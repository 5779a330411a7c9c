//! Password change: the current password is checked, other sessions are signed out and their
//! open WebSockets close at once (code 4001), the changing session stays signed in.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn start() -> (hearth::Server, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = hearth::config::Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.database.path = dir.path().join("chat.db");
    c.auth.pbkdf2_iterations = 1000;
    let server = hearth::run(c).await.expect("starts");
    let base = format!("http://{}", server.local_addr());
    (server, base, dir)
}

async fn sign(base: &str, route: &str, user: &str, pw: &str) -> (u16, Option<String>) {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/{route}"))
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (res.status().as_u16(), cookie)
}

async fn change(base: &str, cookie: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/password"))
        .header("cookie", cookie)
        .header("origin", base)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

async fn me(base: &str, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_other_sessions_and_closes_their_sockets() {
    let (server, base, _dir) = start().await;
    let (status, a) = sign(&base, "register", "grace", "first-password").await;
    assert_eq!(status, 201);
    let a = a.unwrap();
    let (_, b) = sign(&base, "login", "grace", "first-password").await;
    let b = b.unwrap();

    // Session B has an open WebSocket.
    let mut req = format!("ws://{}/ws", server.local_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", b.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let ready = ws.next().await.unwrap().unwrap();
    assert!(ready.to_text().unwrap().contains("\"ready\""));

    // A wrong current password changes nothing.
    let (status, body) = change(
        &base,
        &a,
        serde_json::json!({"current_password":"nope-nope","new_password":"second-password"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let (status, body) = change(
        &base,
        &a,
        serde_json::json!({"current_password":"first-password","new_password":"short"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "weak_password");

    // The real change from session A.
    let (status, _) = change(
        &base,
        &a,
        serde_json::json!({"current_password":"first-password","new_password":"second-password"}),
    )
    .await;
    assert_eq!(status, 204);

    // B's socket is closed with 4001 right away (the hang guard is far above "at once").
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("socket closed");
    assert_eq!(close, Some(4001));
    assert_eq!(me(&base, &b).await, 401, "other session revoked");
    assert_eq!(me(&base, &a).await, 200, "changing session kept");
    assert_eq!(sign(&base, "login", "grace", "first-password").await.0, 401);
    assert_eq!(
        sign(&base, "login", "grace", "second-password").await.0,
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn password_change_needs_a_matching_origin_with_cookie_auth() {
    let (server, base, _dir) = start().await;
    let (_, a) = sign(&base, "register", "heidi", "first-password").await;
    let res = reqwest::Client::new()
        .post(format!("{base}/api/password"))
        .header("cookie", a.unwrap())
        .json(&serde_json::json!({"current_password":"first-password","new_password":"second-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    server.shutdown().await;
}
