//! `GET /healthz`.

use crate::common::{text, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_200_text_plain_ok() {
    let app = TestApp::start().await;

    let res = app.get("/healthz").await;

    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "content type {ct:?}");
    assert_eq!(text(res).await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_needs_no_authentication_and_keeps_answering_after_a_restart() {
    let mut app = TestApp::start().await;
    app.register("alice", crate::common::PASSWORD).await;

    app.restart().await;
    let res = app.get("/healthz").await;

    assert_eq!(res.status(), 200);
    assert_eq!(text(res).await, "ok");
}
