//! `GET /config.js`: generated from the configuration, or from the `Host` header when no
//! public URL is configured.

use crate::common::{raw_http, text, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_js_without_public_url_is_derived_from_the_host_header() {
    let app = TestApp::start().await;
    let port = app.addr.port();

    let res = app.get("/config.js").await;

    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ct.starts_with("application/javascript"),
        "content type {ct:?}"
    );
    let body = text(res).await;
    assert_eq!(
        body.trim_end(),
        format!(
            r#"window.HEARTH = {{"url":"http://127.0.0.1:{port}","ws":"ws://127.0.0.1:{port}/ws"}};"#
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_js_follows_the_host_a_friend_used_to_reach_the_server() {
    let app = TestApp::start().await;

    let res = raw_http(
        app.addr,
        b"GET /config.js HTTP/1.1\r\nHost: 192.168.1.20:12345\r\nConnection: close\r\n\r\n",
    )
    .await;

    assert_eq!(res.status, 200, "{res:?}");
    let ct = res.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/javascript"), "{ct:?}");
    assert_eq!(
        res.body.trim_end(),
        r#"window.HEARTH = {"url":"http://192.168.1.20:12345","ws":"ws://192.168.1.20:12345/ws"};"#
    );
}

/// An HTTP/1.0 client may send no `Host`: the URLs then name the address the server
/// listens on, port included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_js_without_a_host_names_the_address_the_server_listens_on() {
    let app = TestApp::start().await;

    let res = raw_http(app.addr, b"GET /config.js HTTP/1.0\r\n\r\n").await;

    assert_eq!(res.status, 200, "{res:?}");
    let port = app.addr.port();
    assert_eq!(
        res.body.trim_end(),
        format!(
            r#"window.HEARTH = {{"url":"http://127.0.0.1:{port}","ws":"ws://127.0.0.1:{port}/ws"}};"#
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_js_with_an_https_public_url_shows_it_and_a_wss_url() {
    let app =
        TestApp::with_config(|c| c.server.public_url = "https://chat.example.org".into()).await;

    let res = app.get("/config.js").await;

    assert_eq!(res.status(), 200);
    assert_eq!(
        text(res).await.trim_end(),
        r#"window.HEARTH = {"url":"https://chat.example.org","ws":"wss://chat.example.org/ws"};"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_js_with_a_public_url_ignores_the_host_header() {
    let app = TestApp::with_config(|c| c.server.public_url = "http://10.0.0.5:8080".into()).await;

    let res = raw_http(
        app.addr,
        b"GET /config.js HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;

    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        res.body.trim_end(),
        r#"window.HEARTH = {"url":"http://10.0.0.5:8080","ws":"ws://10.0.0.5:8080/ws"};"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_js_tells_the_page_about_a_limited_edit_window() {
    let app = TestApp::with_config(|c| {
        c.server.public_url = "http://10.0.0.5:8080".into();
        c.messages.edit_window_minutes = 15;
    })
    .await;

    let res = app.get("/config.js").await;

    assert_eq!(res.status(), 200);
    assert_eq!(
        text(res).await.trim_end(),
        r#"window.HEARTH = {"edit_window_minutes":15,"url":"http://10.0.0.5:8080","ws":"ws://10.0.0.5:8080/ws"};"#
    );
}
