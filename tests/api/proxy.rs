//! Behind a trusted reverse proxy, `X-Forwarded-For` decides the client address used for
//! connection caps and throttling, and `X-Forwarded-Proto` the scheme of the derived public
//! URL, cookie and Origin check; from anyone else both headers are ignored.

use reqwest::Method;
use serde_json::json;

use crate::common::{set_cookie, text, Auth, TestApp, Ws};

/// A server that trusts `trusted` as proxies, with `public_url` (empty: derived).
async fn start(trusted: &[&str], public_url: &str) -> TestApp {
    let trusted: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
    let public_url = public_url.to_string();
    TestApp::with_config(move |c| {
        c.server.trusted_proxies = trusted;
        c.server.public_url = public_url;
    })
    .await
}

/// Open a WebSocket as if forwarded for `client`; the HTTP status when refused.
async fn connect(app: &TestApp, who: &Auth, client: &str) -> Result<Ws, u16> {
    app.try_ws_with_headers(Some(who), "", &[("x-forwarded-for", client)])
        .await
        .map_err(|(status, _)| status)
}

#[tokio::test]
async fn a_trusted_proxy_forwards_each_visitors_address() {
    let mut app = TestApp::with_config(|c| {
        c.limits.connections_per_address = 1;
        c.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let kim = app.signup("kim").await;
    let _a = connect(&app, &kim, "198.51.100.1")
        .await
        .expect("first visitor");
    let _b = connect(&app, &kim, "198.51.100.2")
        .await
        .expect("another visitor is another address");
    assert_eq!(
        connect(&app, &kim, "203.0.113.9, 198.51.100.1").await.err(),
        Some(429),
        "the rightmost untrusted hop is the client, and it already has its one connection"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_trusted_proxy_the_header_is_ignored() {
    let mut app = TestApp::with_config(|c| c.limits.connections_per_address = 1).await;
    let kim = app.signup("kim").await;
    let _a = connect(&app, &kim, "198.51.100.1").await.expect("first");
    assert_eq!(
        connect(&app, &kim, "198.51.100.2").await.err(),
        Some(429),
        "a spoofed X-Forwarded-For does not escape the per-address cap"
    );
    app.stop().await;
}

/// A request as a TLS-terminating proxy at chat.example.org would forward it.
fn forwarded(
    app: &TestApp,
    method: Method,
    path: &str,
    proto: Option<&str>,
) -> reqwest::RequestBuilder {
    let rb = app
        .request(method, path, None)
        .header("host", "chat.example.org")
        .header("x-forwarded-for", "198.51.100.4");
    match proto {
        Some(p) => rb.header("x-forwarded-proto", p),
        None => rb,
    }
}

async fn config_js(app: &TestApp, proto: Option<&str>) -> String {
    let res = app
        .send(forwarded(app, Method::GET, "/config.js", proto))
        .await;
    assert_eq!(res.status(), 200);
    text(res).await.trim_end().to_string()
}

/// Register `name` with the given Origin; returns (status, Set-Cookie line, HSTS present).
async fn register_via_proxy(
    app: &TestApp,
    proto: Option<&str>,
    origin: &str,
    name: &str,
) -> (u16, String, bool) {
    let res = app
        .send(
            forwarded(app, Method::POST, "/api/register", proto)
                .header("origin", origin)
                .json(&json!({"username": name, "password": "password123"})),
        )
        .await;
    let cookie = set_cookie(&res).unwrap_or_default();
    let hsts = res.headers().contains_key("strict-transport-security");
    (res.status().as_u16(), cookie, hsts)
}

/// The status of a WebSocket upgrade forwarded with `proto` and `origin`.
async fn ws_status(app: &TestApp, who: &Auth, proto: &str, origin: &str) -> u16 {
    let headers = [
        ("host", "chat.example.org"),
        ("origin", origin),
        ("x-forwarded-proto", proto),
    ];
    match app.try_ws_with_headers(Some(who), "", &headers).await {
        Ok(_) => 101,
        Err((status, _)) => status,
    }
}

#[tokio::test]
async fn forwarded_https_from_a_trusted_proxy_makes_the_derived_url_https() {
    let mut app = start(&["127.0.0.1/32"], "").await;
    assert_eq!(
        config_js(&app, Some("https")).await,
        r#"window.HEARTH = {"url":"https://chat.example.org","ws":"wss://chat.example.org/ws"};"#
    );
    // The page's CSP lets it reach the wss:// URL.
    let page = app
        .send(forwarded(&app, Method::GET, "/", Some("https")))
        .await;
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("connect-src 'self' wss://chat.example.org;"),
        "{csp}"
    );

    // The cookie is Secure, HSTS is sent, and the Origin must be https://HOST.
    let (status, cookie, hsts) =
        register_via_proxy(&app, Some("https"), "https://chat.example.org", "ann").await;
    assert_eq!(status, 201);
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert_eq!(cookie.matches("Secure").count(), 1, "{cookie}");
    assert!(hsts);
    let (status, _, _) =
        register_via_proxy(&app, Some("https"), "http://chat.example.org", "bob").await;
    assert_eq!(
        status, 403,
        "plain http is not where this visitor came from"
    );

    let value = cookie.split(';').next().unwrap();
    let ann = Auth::Cookie(value.trim_start_matches("hearth_session=").to_string());
    assert_eq!(
        ws_status(&app, &ann, "https", "https://chat.example.org").await,
        101
    );
    assert_eq!(
        ws_status(&app, &ann, "https", "http://chat.example.org").await,
        403
    );

    // Forwarded plain http: http URLs, no Secure.
    assert_eq!(
        config_js(&app, Some("http")).await,
        r#"window.HEARTH = {"url":"http://chat.example.org","ws":"ws://chat.example.org/ws"};"#
    );
    let (status, cookie, hsts) =
        register_via_proxy(&app, Some("http"), "http://chat.example.org", "cid").await;
    assert_eq!(status, 201);
    assert!(!cookie.contains("Secure") && !hsts, "{cookie}");
    app.stop().await;
}

#[tokio::test]
async fn forwarded_proto_from_an_untrusted_peer_is_ignored() {
    // The test client (127.0.0.1) is not in the trusted range.
    let mut app = start(&["10.0.0.0/8"], "").await;
    assert_eq!(
        config_js(&app, Some("https")).await,
        r#"window.HEARTH = {"url":"http://chat.example.org","ws":"ws://chat.example.org/ws"};"#
    );
    let (status, cookie, hsts) =
        register_via_proxy(&app, Some("https"), "http://chat.example.org", "dee").await;
    assert_eq!(status, 201);
    assert!(!cookie.contains("Secure") && !hsts, "{cookie}");
    app.stop().await;
}

#[tokio::test]
async fn odd_forwarded_proto_values_are_ignored() {
    let mut app = start(&["127.0.0.1/32"], "").await;
    for junk in ["gopher", "", "https;x", "https, ftp"] {
        assert_eq!(
            config_js(&app, Some(junk)).await,
            r#"window.HEARTH = {"url":"http://chat.example.org","ws":"ws://chat.example.org/ws"};"#,
            "{junk:?}"
        );
    }
    // Absent, and from a trusted proxy: as before, either scheme of the Host is accepted.
    let (status, cookie, _) =
        register_via_proxy(&app, None, "https://chat.example.org", "eve").await;
    assert_eq!(status, 201);
    assert!(!cookie.contains("Secure"), "{cookie}");
    app.stop().await;
}

#[tokio::test]
async fn a_configured_public_url_outranks_forwarded_proto() {
    let mut app = start(&["127.0.0.1/32"], "http://chat.example.org").await;
    assert_eq!(
        config_js(&app, Some("https")).await,
        r#"window.HEARTH = {"url":"http://chat.example.org","ws":"ws://chat.example.org/ws"};"#
    );
    let (status, cookie, hsts) =
        register_via_proxy(&app, Some("https"), "http://chat.example.org", "fay").await;
    assert_eq!(status, 201);
    assert!(!cookie.contains("Secure") && !hsts, "{cookie}");
    app.stop().await;
}
