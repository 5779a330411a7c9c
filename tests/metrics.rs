//! `/metrics`: off by default, token-protected when configured, Prometheus text.

use hearth::config::Config;

async fn start(enabled: bool, token: &str) -> (hearth::Server, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.database.path = dir.path().join("chat.db");
    c.auth.pbkdf2_iterations = 1000;
    c.metrics.enabled = enabled;
    c.metrics.token = token.into();
    let server = hearth::run(c).await.expect("starts");
    let base = format!("http://{}", server.local_addr());
    (server, base, dir)
}

#[tokio::test]
async fn metrics_are_not_served_unless_enabled() {
    let (server, base, _dir) = start(false, "").await;
    let res = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(res.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_need_the_configured_token() {
    let (server, base, _dir) = start(true, "s3cret-token").await;
    let client = reqwest::Client::new();
    let res = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .get(format!("{base}/metrics"))
        .header("authorization", "Bearer wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .get(format!("{base}/metrics"))
        .header("authorization", "Bearer s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    for name in [
        "hearth_connections 0",
        "hearth_messages_stored_total",
        "hearth_messages_delivered_total",
        "hearth_slow_clients_dropped_total",
        "hearth_rate_limited_total",
        "hearth_commit_latency_seconds_bucket",
        "hearth_writer_batch_size_count",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    server.shutdown().await;
}
