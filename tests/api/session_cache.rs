//! Signed-in requests are answered from sessions the server keeps in memory; every way a
//! session or an account changes must take effect at once all the same. Each case first uses
//! the credentials (so they are cached), then changes them, then asks again straight away.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::{operator, Auth, TestApp, PASSWORD};

/// The status of `GET /api/me` with these credentials.
async fn me(app: &TestApp, who: &Auth) -> u16 {
    app.get_as("/api/me", who).await.status().as_u16()
}

/// The status of `GET /api/admin/users` with these credentials.
async fn admin_list(app: &TestApp, who: &Auth) -> u16 {
    app.get_as("/api/admin/users", who).await.status().as_u16()
}

/// Use the credentials a few times so that they are cached, asserting `status`.
async fn warm(app: &TestApp, who: &Auth, status: u16) {
    for _ in 0..3 {
        assert_eq!(me(app, who).await, status);
    }
}

async fn login(app: &TestApp, name: &str) -> Auth {
    Auth::Cookie(app.login(name, PASSWORD).await.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_revoking_a_device_take_effect_at_once() {
    let app = TestApp::start().await;
    let first = app.signup("alice").await;
    let second = login(&app, "alice").await;
    warm(&app, &first, 200).await;
    warm(&app, &second, 200).await;

    app.api_ok(Method::POST, "/api/logout", &first, Some(&json!({})), 204)
        .await;
    assert_eq!(me(&app, &first).await, 401, "logged out");
    assert_eq!(me(&app, &second).await, 200, "the other session lives");

    let third = login(&app, "alice").await;
    warm(&app, &third, 200).await;
    let list = app
        .api_ok(Method::GET, "/api/sessions", &second, None, 200)
        .await;
    let sessions = list["sessions"].as_array().expect("sessions");
    let other = sessions
        .iter()
        .find(|s| s["current"] != json!(true))
        .expect("another session");
    let id = other["id"].as_str().expect("an id");
    app.api_ok(
        Method::DELETE,
        &format!("/api/sessions/{id}"),
        &second,
        None,
        204,
    )
    .await;
    assert_eq!(me(&app, &third).await, 401, "revoked from another device");
    assert_eq!(me(&app, &second).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_tokens_and_other_sessions_at_once() {
    let app = TestApp::start().await;
    let mine = app.signup("alice").await;
    let Auth::Cookie(cookie) = &mine else {
        unreachable!()
    };
    let bot = Auth::Bearer(app.token(cookie).await);
    let other = login(&app, "alice").await;
    warm(&app, &mine, 200).await;
    warm(&app, &bot, 200).await;
    warm(&app, &other, 200).await;

    app.api_ok(
        Method::POST,
        "/api/password",
        &mine,
        Some(&json!({
            "current_password": PASSWORD,
            "new_password": "a brand new password",
            "sign_out_others": true,
        })),
        204,
    )
    .await;
    assert_eq!(me(&app, &bot).await, 401, "the bot token");
    assert_eq!(me(&app, &other).await, 401, "the other browser");
    assert_eq!(me(&app, &mine).await, 200, "the session that changed it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_changes_take_effect_at_once() {
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let bob = app.signup("bob").await;
    warm(&app, &bob, 200).await;
    assert_eq!(admin_list(&app, &bob).await, 403);

    // Promoted: bob's cached session knows at once; demoted: likewise.
    app.admin_act(&admin, "bob", "promote").await;
    assert_eq!(admin_list(&app, &bob).await, 200, "promoted");
    app.admin_act(&admin, "bob", "demote").await;
    assert_eq!(admin_list(&app, &bob).await, 403, "demoted");

    app.admin_act(&admin, "bob", "disable").await;
    assert_eq!(me(&app, &bob).await, 401, "disabled");
    app.admin_act(&admin, "bob", "enable").await;

    // Signing bob out everywhere, then resetting his password (which must come last: it
    // changes the password these sign-ins use).
    for action in ["sign_out", "reset_password"] {
        let bob = login(&app, "bob").await;
        warm(&app, &bob, 200).await;
        app.admin_act(&admin, "bob", action).await;
        assert_eq!(me(&app, &bob).await, 401, "{action}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_the_command_line_take_effect_within_a_second_or_so() {
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let carol = app.signup("carol").await;
    warm(&app, &carol, 200).await;
    warm(&app, &admin, 200).await;

    operator(&app.config, move |c| {
        hearth::admin::user_set_admin(c, "carol", true)
    })
    .await
    .expect("promote");
    wait_for(
        &app,
        "carol to be an administrator",
        || admin_list(&app, &carol),
        200,
    )
    .await;
    operator(&app.config, move |c| {
        hearth::admin::user_set_admin(c, "root", false)
    })
    .await
    .expect("demote");
    wait_for(&app, "root to be demoted", || admin_list(&app, &admin), 403).await;
    operator(&app.config, move |c| {
        hearth::admin::user_set_disabled(c, "carol", true)
    })
    .await
    .expect("disable");
    wait_for(&app, "carol to be signed out", || me(&app, &carol), 401).await;
}

/// Poll `status` until it answers `want` (the server polls the database every second).
async fn wait_for<F, Fut>(_app: &TestApp, what: &str, status: F, want: u16)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let started = Instant::now();
    loop {
        let got = status().await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: still {got} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Another node records a session's activity in the shared store, not in this node's cache:
/// a cached session that looks idle for too long is read again before it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_looks_idle_in_the_cache_is_read_again_from_the_store() {
    use hearth::db::sql::{args, Sql as _};
    let app = TestApp::with_config(|c| c.auth.session_idle_hours = 1).await;
    let alice = app.signup("alice").await;
    let state = app.server().state().clone();
    let seen = |at: i64| {
        let db = state.db.clone();
        async move {
            db.write(move |c| c.exec("UPDATE sessions SET last_seen_at = ?1", args![at]))
                .await
                .expect("the session's activity");
            db.forget_sessions();
        }
    };
    let now = hearth::db::now_ms();
    // Idle for two hours in the store, and so in the cache that reads it.
    seen(now - 2 * 3_600_000).await;
    assert_eq!(me(&app, &alice).await, 401, "idle for longer than allowed");
    // Active since, as another node recorded; this node's cache still says two hours.
    state
        .db
        .write(move |c| c.exec("UPDATE sessions SET last_seen_at = ?1", args![now]))
        .await
        .expect("the session's activity");
    assert_eq!(me(&app, &alice).await, 200, "the store has the last word");
    warm(&app, &alice, 200).await;
}
