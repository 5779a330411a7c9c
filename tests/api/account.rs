//! Password change: the current password is checked, other sessions are signed out and their
//! open WebSockets close at once (code 4001), the changing session stays signed in.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{Auth, TestApp};

/// `POST /api/password` from the same origin; returns status and body.
async fn change(app: &TestApp, who: &Auth, body: Value) -> (u16, Value) {
    app.api(Method::POST, "/api/password", who, Some(&body))
        .await
}

/// The status of `GET /api/me`.
async fn me(app: &TestApp, who: &Auth) -> u16 {
    app.get_as("/api/me", who).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_other_sessions_and_closes_their_sockets() {
    let mut app = TestApp::start().await;
    let a = Auth::Cookie(app.register("grace", "first-password").await.1);
    let b = Auth::Cookie(app.login("grace", "first-password").await.1);

    // Session B has an open WebSocket.
    let mut ws = app.ws_connect(&b, None).await;

    // A wrong current password changes nothing.
    let (status, body) = change(
        &app,
        &a,
        json!({"current_password":"nope-nope","new_password":"second-password"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let (status, body) = change(
        &app,
        &a,
        json!({"current_password":"first-password","new_password":"short"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "weak_password");

    // The real change from session A.
    let (status, _) = change(
        &app,
        &a,
        json!({"current_password":"first-password","new_password":"second-password"}),
    )
    .await;
    assert_eq!(status, 204);

    // B's socket is closed with 4001 right away (the hang guard is far above "at once").
    assert_eq!(ws.expect_close().await, 4001);
    assert_eq!(me(&app, &b).await, 401, "other session revoked");
    assert_eq!(me(&app, &a).await, 200, "changing session kept");
    let status = |res: reqwest::Response| res.status().as_u16();
    assert_eq!(status(app.try_login("grace", "first-password").await), 401);
    assert_eq!(status(app.try_login("grace", "second-password").await), 200);
    app.stop().await;
}

#[tokio::test]
async fn password_change_needs_a_matching_origin_with_cookie_auth() {
    let mut app = TestApp::start().await;
    let (_, cookie) = app.register("heidi", "first-password").await;
    let res = app
        .send(
            app.request(Method::POST, "/api/password", Some(&Auth::Cookie(cookie)))
                .json(
                    &json!({"current_password":"first-password","new_password":"second-password"}),
                ),
        )
        .await;
    assert_eq!(res.status(), 403);
    app.stop().await;
}
