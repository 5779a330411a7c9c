//! Garbage in never yields a 500, and the server stays healthy.

use reqwest::Method;

use crate::common::{assert_healthy, raw_http, TestApp, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_on_every_route_are_client_errors() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let bodies: [&[u8]; 6] = [
        b"{",
        b"\xff\xfe\x00garbage",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"{\"username\":\"a\",\"password\":\"b\",\"username\":\"c\"}",
        b"{\"name\":\"\"}",
        b"{\"name\":\"x\",\"extra\":{\"deep\":[1,2,3]}}",
    ];

    for path in ["/api/register", "/api/login", "/api/tokens", "/api/logout"] {
        for body in bodies {
            let res = app
                .send(
                    app.request(Method::POST, path, Some(&auth))
                        .header("origin", &app.base)
                        .header("content-type", "application/json")
                        .body(body.to_vec()),
                )
                .await;

            let status = res.status().as_u16();
            assert!(status < 500, "{path} with {body:?}: {status}");
        }
    }
    assert_healthy(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_are_client_errors() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    for (method, path) in [
        (Method::GET, "/api/register"),
        (Method::GET, "/api/login"),
        (Method::GET, "/api/logout"),
        (Method::DELETE, "/api/me"),
        (Method::PUT, "/api/tokens"),
        (Method::POST, "/api/rooms"),
        (Method::PATCH, "/api/rooms/general/messages"),
        (Method::POST, "/healthz"),
        (Method::DELETE, "/"),
        (Method::POST, "/ws"),
        (Method::OPTIONS, "/api/me"),
    ] {
        let res = app
            .send(
                app.request(method.clone(), path, Some(&auth))
                    .header("origin", &app.base),
            )
            .await;

        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{method} {path}: {status}");
    }
    assert_healthy(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_are_refused_without_a_500() {
    let app = TestApp::start().await;
    let big = "x".repeat(64 * 1024);

    let res = raw_http(
        app.addr,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;

    assert!(
        res.status == 0 || (400..500).contains(&res.status),
        "{}",
        res.status
    );
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let res = raw_http(
        app.addr,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        res.status == 0 || (400..500).contains(&res.status),
        "{}",
        res.status
    );
    assert_healthy(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_socket_gets_no_500_and_the_server_stays_healthy() {
    let app = TestApp::start().await;

    for garbage in [
        &b"\x00\x01\x02\x03\r\n\r\n"[..],
        b"HELLO WORLD\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nConnection: close\r\n\r\nzz\r\n",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n",
        b"GET /api/rooms/%ff%fe/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let res = raw_http(app.addr, garbage).await;

        assert!(
            res.status != 500 && res.status < 500,
            "{:?}: {} {}",
            String::from_utf8_lossy(garbage),
            res.status,
            res.body
        );
    }
    assert_healthy(&app).await;
    app.register("alice", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_get_of_the_websocket_endpoint_is_400() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let res = app.get_as("/ws", &auth).await;

    crate::common::assert_error(res, 400, "bad_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_long_url_is_a_client_error() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let long = "a".repeat(20 * 1024);

    let res = app
        .get_as(&format!("/api/rooms/{long}/messages"), &auth)
        .await;

    assert!(
        (400..500).contains(&res.status().as_u16()),
        "{}",
        res.status()
    );
    assert_healthy(&app).await;
}

/// A request target without a path (`CONNECT host:port`) is answered 400 with the JSON error
/// shape; the router, which expects a path, never sees it (it panicked on one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_target_without_a_path_is_400() {
    let app = TestApp::start().await;
    let res = raw_http(
        app.addr,
        b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.body.contains("\"bad_request\""), "{}", res.body);
    assert_healthy(&app).await;
}
