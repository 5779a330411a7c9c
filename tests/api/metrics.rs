//! `/metrics`: off by default, token-protected when configured, Prometheus text.

use crate::common::{text, Auth, TestApp};

#[tokio::test]
async fn metrics_are_not_served_unless_enabled() {
    let mut app = TestApp::start().await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn metrics_need_the_configured_token() {
    let mut app = TestApp::with_config(|c| {
        c.metrics.enabled = true;
        c.metrics.token = "s3cret-token".into();
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), 401);
    let wrong = Auth::Bearer("wrong".into());
    assert_eq!(app.get_as("/metrics", &wrong).await.status(), 401);
    let res = app
        .get_as("/metrics", &Auth::Bearer("s3cret-token".into()))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = text(res).await;
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
    app.stop().await;
}
