//! Administrator routes: enforced on the server, effective at once on open sockets.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct App {
    server: hearth::Server,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start() -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut c = hearth::config::Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.database.path = dir.path().join("chat.db");
    c.auth.pbkdf2_iterations = 1000;
    let server = hearth::run(c).await.expect("starts");
    let base = format!("http://{}", server.local_addr());
    App {
        server,
        base,
        _dir: dir,
    }
}

impl App {
    async fn account(&self, route: &str, name: &str) -> (u16, Option<String>) {
        let res = reqwest::Client::new()
            .post(format!("{}/api/{route}", self.base))
            .json(&json!({"username": name, "password": "password123"}))
            .send()
            .await
            .unwrap();
        let cookie = res
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        (res.status().as_u16(), cookie)
    }

    async fn act(&self, cookie: &str, target: &str, action: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}/api/admin/users/{target}", self.base))
            .header("cookie", cookie)
            .header("origin", &self.base)
            .json(&json!({ "action": action }))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }

    async fn list(&self, cookie: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .get(format!("{}/api/admin/users", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_account_administers_and_disabling_closes_sockets_at_once() {
    let app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();
    let (_, member) = app.account("register", "bob").await;
    let member = member.unwrap();

    // Members cannot use admin routes.
    let (status, body) = app.list(&member).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(app.act(&member, "alice", "disable").await.0, 403);

    let (status, body) = app.list(&admin).await;
    assert_eq!(status, 200);
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["is_admin"], true);
    assert_eq!(users[1]["is_admin"], false);

    // Bob has a socket open; disabling him closes it with 4001.
    let mut req = format!("ws://{}/ws", app.server.local_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", member.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.next().await.unwrap().unwrap(); // ready
    let (status, body) = app.act(&admin, "Bob", "disable").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["disabled"], true);
    let code = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed");
    assert_eq!(code, Some(4001));
    assert_eq!(app.account("login", "bob").await.0, 401);

    assert_eq!(app.act(&admin, "bob", "enable").await.0, 200);
    let (status, again) = app.account("login", "bob").await;
    assert_eq!(status, 200);
    assert_eq!(
        app.act(&admin, "bob", "promote").await.1["user"]["is_admin"],
        true
    );
    assert_eq!(
        app.list(&again.unwrap()).await.0,
        200,
        "bob is now an admin"
    );

    // Guard rails.
    assert_eq!(app.act(&admin, "alice", "disable").await.0, 400);
    assert_eq!(
        app.act(&admin, "nobody", "disable").await.1["error"]["code"],
        "unknown_user"
    );
    assert_eq!(app.act(&admin, "bob", "explode").await.0, 400);
    let res = reqwest::Client::new()
        .post(format!("{}/api/admin/users/bob", app.base))
        .header("cookie", &admin)
        .json(&json!({"action": "demote"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "cookie auth without Origin is refused");
    app.server.shutdown().await;
}
