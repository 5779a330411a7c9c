//! Behind a trusted reverse proxy, `X-Forwarded-For` decides the client address used for
//! connection caps and throttling; from anyone else the header is ignored.

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn start(trusted: &[&str]) -> (hearth::Server, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = hearth::config::Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.database.path = dir.path().join("chat.db");
    c.auth.pbkdf2_iterations = 1000;
    c.limits.connections_per_address = 1;
    c.server.trusted_proxies = trusted.iter().map(|s| s.to_string()).collect();
    let server = hearth::run(c).await.expect("starts");
    let base = format!("http://{}", server.local_addr());
    (server, base, dir)
}

async fn cookie(base: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/register"))
        .json(&json!({"username":"kim","password":"password123"}))
        .send()
        .await
        .unwrap();
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Open a WebSocket as if forwarded for `client`; returns the HTTP status of the upgrade.
async fn connect(
    server: &hearth::Server,
    cookie: &str,
    client: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    let mut req = format!("ws://{}/ws", server.local_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            ws.next().await.unwrap().unwrap(); // ready
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_trusted_proxy_forwards_each_visitors_address() {
    let (server, base, _dir) = start(&["127.0.0.1/32"]).await;
    let c = cookie(&base).await;
    let _a = connect(&server, &c, "198.51.100.1")
        .await
        .expect("first visitor");
    let _b = connect(&server, &c, "198.51.100.2")
        .await
        .expect("another visitor is another address");
    assert_eq!(
        connect(&server, &c, "203.0.113.9, 198.51.100.1")
            .await
            .err(),
        Some(429),
        "the rightmost untrusted hop is the client, and it already has its one connection"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_trusted_proxy_the_header_is_ignored() {
    let (server, base, _dir) = start(&[]).await;
    let c = cookie(&base).await;
    let _a = connect(&server, &c, "198.51.100.1").await.expect("first");
    assert_eq!(
        connect(&server, &c, "198.51.100.2").await.err(),
        Some(429),
        "a spoofed X-Forwarded-For does not escape the per-address cap"
    );
    server.shutdown().await;
}
