//! Built-in TLS: with `[server.tls]` set, a real TLS client signs up over HTTPS (the cookie is
//! `Secure`) and chats over WSS; plain HTTP on the same port is refused.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{next_json, tls_connector, TestApp};

async fn tls_stream(
    tls: &TlsConnector,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls.connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("TLS handshake with the configured certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_signs_up_over_https_and_chats_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();

    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let mut app = TestApp::builder()
        .in_dir(dir)
        .config(move |c| {
            c.server.tls.cert = cert;
            c.server.tls.key = key;
        })
        .start()
        .await;
    let addr = app.addr;
    let tls = tls_connector(&cert_pem);

    // HTTPS: register; the session cookie is Secure.
    let mut s = tls_stream(&tls, addr).await;
    let body = json!({"username":"judy","password":"password123"}).to_string();
    let req = format!(
        "POST /api/register HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        addr.port(),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await; // the peer may close without close_notify
    let res = String::from_utf8_lossy(&raw);
    assert!(res.starts_with("HTTP/1.1 201"), "{res}");
    let cookie_line = res
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(cookie_line.contains("; Secure"), "{cookie_line}");
    assert!(res
        .to_ascii_lowercase()
        .contains("strict-transport-security: max-age="));
    let cookie = cookie_line["set-cookie:".len()..]
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    // config.js derives https/wss from the TLS listener.
    let mut s = tls_stream(&tls, addr).await;
    let req = format!(
        "GET /config.js HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let res = String::from_utf8_lossy(&raw);
    assert!(
        res.contains(&format!("\"ws\":\"wss://localhost:{}/ws\"", addr.port())),
        "{res}"
    );

    // WSS: ready, send, own echo.
    let stream = tls_stream(&tls, addr).await;
    let mut req = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("WebSocket over TLS");
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    ws.send(Message::Text(
        json!({"type":"send","room":"general","body":"over tls","nonce":"t1"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let echo = next_json(&mut ws).await;
    assert_eq!(echo["type"], "message");
    assert_eq!(echo["body"], "over tls");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    drop(ws);
    app.stop().await;
}

#[tokio::test]
async fn unreadable_certificates_stop_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("missing.pem").display().to_string();
    let key = dir.path().join("missing-key.pem").display().to_string();
    let started = TestApp::builder()
        .in_dir(dir)
        .config(move |c| {
            c.server.tls.cert = cert;
            c.server.tls.key = key;
        })
        .try_start()
        .await;
    let err = match started {
        Ok(_) => panic!("must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("server.tls.cert"), "{err}");
}
