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

/// A server with `trusted_proxies` and `public_url` as given (port 0, temp database).
async fn start_with(
    trusted: &[&str],
    public_url: &str,
) -> (hearth::Server, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = hearth::config::Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.server.public_url = public_url.into();
    c.database.path = dir.path().join("chat.db");
    c.auth.pbkdf2_iterations = 1000;
    c.limits.registrations_per_hour = 0;
    c.server.trusted_proxies = trusted.iter().map(|s| s.to_string()).collect();
    let server = hearth::run(c).await.expect("starts");
    let base = format!("http://{}", server.local_addr());
    (server, base, dir)
}

/// A request as a TLS-terminating proxy at chat.example.org would forward it.
fn forwarded(method: reqwest::Method, url: String, proto: Option<&str>) -> reqwest::RequestBuilder {
    let rb = reqwest::Client::new()
        .request(method, url)
        .header("host", "chat.example.org")
        .header("x-forwarded-for", "198.51.100.4");
    match proto {
        Some(p) => rb.header("x-forwarded-proto", p),
        None => rb,
    }
}

async fn config_js(base: &str, proto: Option<&str>) -> String {
    let res = forwarded(reqwest::Method::GET, format!("{base}/config.js"), proto)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap().trim_end().to_string()
}

/// Register `name` with the given Origin; returns (status, Set-Cookie line, HSTS present).
async fn register_via_proxy(
    base: &str,
    proto: Option<&str>,
    origin: &str,
    name: &str,
) -> (u16, String, bool) {
    let res = forwarded(reqwest::Method::POST, format!("{base}/api/register"), proto)
        .header("origin", origin)
        .json(&json!({"username": name, "password": "password123"}))
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let hsts = res.headers().contains_key("strict-transport-security");
    (res.status().as_u16(), cookie, hsts)
}

/// The status of a WebSocket upgrade forwarded with `proto` and `origin`.
async fn ws_status(server: &hearth::Server, cookie: &str, proto: &str, origin: &str) -> u16 {
    let mut req = format!("ws://{}/ws", server.local_addr())
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("host", "chat.example.org".parse().unwrap());
    h.insert("cookie", cookie.parse().unwrap());
    h.insert("origin", origin.parse().unwrap());
    h.insert("x-forwarded-proto", proto.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((_ws, res)) => res.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn forwarded_https_from_a_trusted_proxy_makes_the_derived_url_https() {
    let (server, base, _dir) = start_with(&["127.0.0.1/32"], "").await;
    assert_eq!(
        config_js(&base, Some("https")).await,
        r#"window.HEARTH = {"url":"https://chat.example.org","ws":"wss://chat.example.org/ws"};"#
    );
    // The page's CSP lets it reach the wss:// URL.
    let page = forwarded(reqwest::Method::GET, format!("{base}/"), Some("https"))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("connect-src 'self' wss://chat.example.org;"),
        "{csp}"
    );

    // The cookie is Secure, HSTS is sent, and the Origin must be https://HOST.
    let (status, cookie, hsts) =
        register_via_proxy(&base, Some("https"), "https://chat.example.org", "ann").await;
    assert_eq!(status, 201);
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert_eq!(cookie.matches("Secure").count(), 1, "{cookie}");
    assert!(hsts);
    let (status, _, _) =
        register_via_proxy(&base, Some("https"), "http://chat.example.org", "bob").await;
    assert_eq!(
        status, 403,
        "plain http is not where this visitor came from"
    );

    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        ws_status(&server, pair, "https", "https://chat.example.org").await,
        101
    );
    assert_eq!(
        ws_status(&server, pair, "https", "http://chat.example.org").await,
        403
    );

    // Forwarded plain http: http URLs, no Secure.
    assert_eq!(
        config_js(&base, Some("http")).await,
        r#"window.HEARTH = {"url":"http://chat.example.org","ws":"ws://chat.example.org/ws"};"#
    );
    let (status, cookie, hsts) =
        register_via_proxy(&base, Some("http"), "http://chat.example.org", "cid").await;
    assert_eq!(status, 201);
    assert!(!cookie.contains("Secure") && !hsts, "{cookie}");
    server.shutdown().await;
}

#[tokio::test]
async fn forwarded_proto_from_an_untrusted_peer_is_ignored() {
    // The test client (127.0.0.1) is not in the trusted range.
    let (server, base, _dir) = start_with(&["10.0.0.0/8"], "").await;
    assert_eq!(
        config_js(&base, Some("https")).await,
        r#"window.HEARTH = {"url":"http://chat.example.org","ws":"ws://chat.example.org/ws"};"#
    );
    let (status, cookie, hsts) =
        register_via_proxy(&base, Some("https"), "http://chat.example.org", "dee").await;
    assert_eq!(status, 201);
    assert!(!cookie.contains("Secure") && !hsts, "{cookie}");
    server.shutdown().await;
}

#[tokio::test]
async fn odd_forwarded_proto_values_are_ignored() {
    let (server, base, _dir) = start_with(&["127.0.0.1/32"], "").await;
    for junk in ["gopher", "", "https;x", "https, ftp"] {
        assert_eq!(
            config_js(&base, Some(junk)).await,
            r#"window.HEARTH = {"url":"http://chat.example.org","ws":"ws://chat.example.org/ws"};"#,
            "{junk:?}"
        );
    }
    // Absent, and from a trusted proxy: as before, either scheme of the Host is accepted.
    let (status, cookie, _) =
        register_via_proxy(&base, None, "https://chat.example.org", "eve").await;
    assert_eq!(status, 201);
    assert!(!cookie.contains("Secure"), "{cookie}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_configured_public_url_outranks_forwarded_proto() {
    let (server, base, _dir) = start_with(&["127.0.0.1/32"], "http://chat.example.org").await;
    assert_eq!(
        config_js(&base, Some("https")).await,
        r#"window.HEARTH = {"url":"http://chat.example.org","ws":"ws://chat.example.org/ws"};"#
    );
    let (status, cookie, hsts) =
        register_via_proxy(&base, Some("https"), "http://chat.example.org", "fay").await;
    assert_eq!(status, 201);
    assert!(!cookie.contains("Secure") && !hsts, "{cookie}");
    server.shutdown().await;
}
