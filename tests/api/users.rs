//! `GET /api/users?q=PREFIX&limit=N`: finding people by the start of their name.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn names(v: &Value) -> Vec<String> {
    v["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users array: {v}"))
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn people_are_found_by_prefix_ignoring_case() {
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let alice = app.signup("Alice").await;
    app.signup("alfred").await;
    app.signup("Al.x").await;
    app.signup("bob").await;
    app.signup("alvin").await;

    let v = app
        .api_ok(Method::GET, "/api/users?q=AL", &alice, None, 200)
        .await;
    assert_eq!(names(&v), ["Al.x", "alfred", "Alice", "alvin"], "{v}");
    // Each entry is exactly {username, online}; alice has no WebSocket open.
    assert_eq!(
        v["users"][2],
        json!({"username": "Alice", "online": false}),
        "{v}"
    );
    let v = app
        .api_ok(Method::GET, "/api/users?q=alf", &alice, None, 200)
        .await;
    assert_eq!(names(&v), ["alfred"]);
    let v = app
        .api_ok(Method::GET, "/api/users?q=zed", &alice, None, 200)
        .await;
    assert_eq!(v, json!({"users": []}));

    // Online comes from the open connections.
    let _ws = app.ws_connect(&alice, None).await;
    let v = app
        .api_ok(Method::GET, "/api/users?q=alice", &alice, None, 200)
        .await;
    assert_eq!(v, json!({"users": [{"username": "Alice", "online": true}]}));

    // Disabled accounts are not offered.
    app.api_ok(
        Method::POST,
        "/api/admin/users/alvin",
        &admin,
        Some(&json!({"action": "disable"})),
        200,
    )
    .await;
    let v = app
        .api_ok(Method::GET, "/api/users?q=al", &alice, None, 200)
        .await;
    assert_eq!(names(&v), ["Al.x", "alfred", "Alice"], "{v}");

    // A limit, and an empty prefix (everyone, in name order).
    let v = app
        .api_ok(Method::GET, "/api/users?q=al&limit=2", &alice, None, 200)
        .await;
    assert_eq!(names(&v), ["Al.x", "alfred"]);
    let v = app
        .api_ok(Method::GET, "/api/users", &alice, None, 200)
        .await;
    assert_eq!(names(&v), ["Al.x", "alfred", "Alice", "bob", "root"]);
}

#[tokio::test]
async fn at_most_twenty_people_are_returned() {
    let app = TestApp::start().await;
    let me = app.signup("me").await;
    for i in 0..25 {
        app.signup(&format!("user{i:02}")).await;
    }
    let v = app
        .api_ok(Method::GET, "/api/users?q=user", &me, None, 200)
        .await;
    assert_eq!(names(&v).len(), 20, "{v}");
    assert_eq!(names(&v)[0], "user00");
    let v = app
        .api_ok(Method::GET, "/api/users?q=user&limit=20", &me, None, 200)
        .await;
    assert_eq!(names(&v).len(), 20);
}

#[tokio::test]
async fn bad_parameters_and_strangers_are_refused() {
    let app = TestApp::start().await;
    let me = app.signup("me").await;
    for q in [
        "/api/users?q=a%20b",
        "/api/users?q=%25",
        "/api/users?q=a*",
        "/api/users?q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "/api/users?limit=0",
        "/api/users?limit=21",
        "/api/users?limit=-1",
        "/api/users?limit=ten",
    ] {
        app.api_err(Method::GET, q, &me, None, 400, "bad_request")
            .await;
    }
    let res = app.get("/api/users?q=me").await;
    assert_error(res, 401, "unauthorized").await;
}
