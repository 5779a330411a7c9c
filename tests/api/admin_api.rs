//! Administrator routes: enforced on the server, effective at once on open sockets.

use hearth::db::sql::{args, Row as _, Sql as _};
use std::ops::{Deref, DerefMut};

use serde_json::{json, Value};

use crate::common::{http_client, json_body, Auth, TestApp, Ws};

/// A test server plus the calls these tests make with raw `hearth_session=…` cookie pairs.
struct App(TestApp);

impl Deref for App {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.0
    }
}

impl DerefMut for App {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.0
    }
}

async fn start() -> App {
    App(TestApp::start().await)
}

impl App {
    /// Register or log in. Registrations carry the server's setup code, so the first account
    /// created is the administrator (the code is used up by it).
    async fn account(&self, route: &str, name: &str) -> (u16, Option<String>) {
        let res = self
            .http
            .post(format!("{}/api/{route}", self.base))
            .json(&json!({
                "username": name,
                "password": "password123",
                "setup": self.server().setup_code(),
            }))
            .send()
            .await
            .unwrap();
        let cookie = res
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        (res.status().as_u16(), cookie)
    }

    async fn act(&self, cookie: &str, target: &str, action: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/api/admin/users/{target}", self.base))
            .header("cookie", cookie)
            .header("origin", &self.base)
            .json(&json!({ "action": action }))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }

    /// Any request: `cookie` (if any) as the session, with a same-origin `Origin` when `origin`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        origin: bool,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = cookie {
            rb = rb.header("cookie", c);
        }
        if origin {
            rb = rb.header("origin", &self.base);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }

    async fn get(&self, path: &str, cookie: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(cookie), false, None)
            .await
    }

    async fn set_mode(&self, cookie: &str, mode: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::PUT,
            "/api/admin/registration",
            Some(cookie),
            true,
            Some(json!({ "mode": mode })),
        )
        .await
    }

    async fn invite(&self, cookie: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "/api/admin/invites",
            Some(cookie),
            true,
            Some(body),
        )
        .await
    }

    /// Register with an optional invite code; the status and the error code (if any).
    async fn join(&self, name: &str, invite: Option<&str>) -> (u16, String) {
        let mut body = json!({"username": name, "password": "password123"});
        if let Some(code) = invite {
            body["invite"] = json!(code);
        }
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                "/api/register",
                None,
                false,
                Some(body),
            )
            .await;
        let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
        (status, code)
    }

    async fn invites(&self, cookie: &str) -> Vec<Value> {
        let (status, v) = self.get("/api/admin/invites", cookie).await;
        assert_eq!(status, 200, "{v}");
        v["invites"].as_array().unwrap().clone()
    }

    async fn ws(&self, cookie: &str) -> Ws {
        let value = cookie.trim_start_matches("hearth_session=").to_string();
        self.ws_connect(&Auth::Cookie(value), None).await
    }

    async fn list(&self, cookie: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}/api/admin/users", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_account_administers_and_disabling_closes_sockets_at_once() {
    let mut app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();
    let (_, member) = app.account("register", "bob").await;
    let member = member.unwrap();

    // Members cannot use admin routes.
    let (status, body) = app.list(&member).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(app.act(&member, "alice", "disable").await.0, 403);

    let (status, body) = app.list(&admin).await;
    assert_eq!(status, 200);
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["is_admin"], true);
    assert_eq!(users[1]["is_admin"], false);

    // Bob has a socket open; disabling him closes it with 4001.
    let mut ws = app.ws(&member).await;
    let (status, body) = app.act(&admin, "Bob", "disable").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["disabled"], true);
    assert_eq!(ws.expect_close().await, 4001);
    assert_eq!(app.account("login", "bob").await.0, 401);

    assert_eq!(app.act(&admin, "bob", "enable").await.0, 200);
    let (status, again) = app.account("login", "bob").await;
    assert_eq!(status, 200);
    assert_eq!(
        app.act(&admin, "bob", "promote").await.1["user"]["is_admin"],
        true
    );
    assert_eq!(
        app.list(&again.unwrap()).await.0,
        200,
        "bob is now an admin"
    );

    // Guard rails.
    assert_eq!(app.act(&admin, "alice", "disable").await.0, 400);
    assert_eq!(
        app.act(&admin, "nobody", "disable").await.1["error"]["code"],
        "unknown_user"
    );
    assert_eq!(app.act(&admin, "bob", "explode").await.0, 400);
    let res = app
        .http
        .post(format!("{}/api/admin/users/bob", app.base))
        .header("cookie", &admin)
        .json(&json!({"action": "demote"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "cookie auth without Origin is refused");
    app.stop().await;
}

/// The account list says when each person last came by, also once none of their sessions is
/// left (disabled, signed out): only an account that never signed in shows none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_visit_outlives_the_sessions_that_made_it() {
    let mut app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();
    app.account("register", "bob").await;
    let (_, carol) = app.account("register", "carol").await;
    let last_seen = |body: &Value, who: &str| {
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == who)
            .unwrap_or_else(|| panic!("{who} is listed: {body}"))["last_seen"]
            .clone()
    };
    let (_, before) = app.list(&admin).await;
    let bobs = last_seen(&before, "bob");
    assert!(bobs.is_string(), "{before}");
    assert!(last_seen(&before, "carol").is_string(), "{before}");

    // Disabling bob ends his sessions; signing out ends carol's only one.
    assert_eq!(app.act(&admin, "bob", "disable").await.0, 200);
    let res = app
        .http
        .post(format!("{}/api/logout", app.base))
        .header("cookie", carol.unwrap())
        .header("origin", &app.base)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (_, after) = app.list(&admin).await;
    assert_eq!(last_seen(&after, "bob"), bobs, "{after}");
    assert!(last_seen(&after, "carol").is_string(), "{after}");

    // An account made by the operator that never signed in has no last visit.
    let c = app.config.clone();
    crate::common::operator(&c, |c| hearth::admin::user_add(c, "dave", "password123"))
        .await
        .expect("add");
    let (_, listed) = app.list(&admin).await;
    assert!(last_seen(&listed, "dave").is_null(), "{listed}");
    // The command line says the same.
    let out = crate::common::operator(&c, |c| {
        let mut out = Vec::new();
        hearth::admin::user_list(c, &mut out).map(|()| out)
    })
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = |who: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(who))
            .unwrap_or_else(|| panic!("{who} in {text}"))
            .to_string()
    };
    assert!(!line("bob").contains("never"), "{text}");
    assert!(line("dave").contains("never"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_version_uptime_connections_and_totals() {
    let mut app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();
    let (_, member) = app.account("register", "bob").await;
    let member = member.unwrap();
    let _a = app.ws(&admin).await;
    let _b1 = app.ws(&member).await;
    let _b2 = app.ws(&member).await;

    let (status, s) = app.get("/api/admin/status", &admin).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert!(s["uptime_seconds"].as_u64().is_some(), "{s}");
    assert_eq!(s["connections"], 3);
    assert_eq!(s["online_users"], 2);
    assert_eq!(s["users"], 2);
    assert!(s["rooms"].as_i64().unwrap() >= 1, "general exists");
    assert_eq!(s["messages"], 0);
    assert!(s["database_bytes"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["registration"], "open");
    assert!(s["cluster"].is_null(), "a single node: {s}");

    // Counts follow the database.
    app.server()
        .state()
        .db
        .write(|c| hearth::db::queries::insert_message(c, (1, 1), "hello", (None, None), 0))
        .await
        .unwrap();
    let (_, s) = app.get("/api/admin/status", &admin).await;
    assert_eq!(s["messages"], 1);

    let (status, body) = app.get("/api/admin/status", &member).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_password_hands_out_a_temporary_password_once_and_signs_out_everywhere() {
    let mut app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();
    let (_, member) = app.account("register", "bob").await;
    let member = member.unwrap();
    let mut ws = app.ws(&member).await;

    // Members cannot reset anyone's password.
    assert_eq!(app.act(&member, "alice", "reset_password").await.0, 403);

    let (status, body) = app.act(&admin, "bob", "reset_password").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "bob");
    let temp = body["temporary_password"].as_str().unwrap().to_string();
    assert_eq!(temp.len(), 16);
    assert!(temp
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(
        Some(ws.expect_close().await),
        Some(4001),
        "socket closed at once"
    );

    // The old session and the old password are gone; the temporary one works.
    let (status, _) = app.get("/api/me", &member).await;
    assert_eq!(status, 401);
    assert_eq!(app.account("login", "bob").await.0, 401);
    let res = app
        .http
        .post(format!("{}/api/login", app.base))
        .json(&json!({"username": "bob", "password": temp}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Another reset gives another password; other actions never return one.
    let (_, again) = app.act(&admin, "bob", "reset_password").await;
    assert_ne!(again["temporary_password"], json!(temp));
    let (_, plain) = app.act(&admin, "bob", "sign_out").await;
    assert!(plain.get("temporary_password").is_none());
    let (status, body) = app.act(&admin, "nobody", "reset_password").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_user");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_modes_open_invite_and_closed_are_enforced() {
    let mut app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();

    async fn public(app: &App) -> String {
        let v = json_body(app.0.get("/api/registration").await).await;
        v["mode"].as_str().unwrap().to_string()
    }
    assert_eq!(public(&app).await, "open");
    assert_eq!(
        app.get("/api/admin/registration", &admin).await.1["mode"],
        "open"
    );

    let (status, body) = app.set_mode(&admin, "closed").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "closed");
    assert_eq!(public(&app).await, "closed");
    assert_eq!(
        app.join("bob", None).await,
        (403, "registration_closed".into())
    );
    assert_eq!(
        app.join("bob", Some("whatever")).await,
        (403, "registration_closed".into())
    );
    // Signing in still works.
    assert_eq!(app.account("login", "alice").await.0, 200);

    assert_eq!(app.set_mode(&admin, "invite").await.0, 200);
    assert_eq!(public(&app).await, "invite");
    assert_eq!(app.join("bob", None).await, (403, "invite_required".into()));
    assert_eq!(
        app.join("bob", Some("")).await,
        (403, "invite_required".into())
    );
    assert_eq!(
        app.join("bob", Some("not-a-real-code")).await,
        (403, "invalid_invite".into())
    );
    let (status, status_body) = app.get("/api/admin/status", &admin).await;
    assert_eq!(
        (status, &status_body["registration"]),
        (200, &json!("invite"))
    );

    assert_eq!(app.set_mode(&admin, "open").await.0, 200);
    assert_eq!(app.join("bob", None).await.0, 201);
    // In open mode an invite code is simply ignored.
    assert_eq!(app.join("carol", Some("not-a-real-code")).await.0, 201);

    // Bad input is a JSON 400.
    for bad in [json!({"mode": "sometimes"}), json!({}), json!({"mode": 3})] {
        let (status, body) = app
            .call(
                reqwest::Method::PUT,
                "/api/admin/registration",
                Some(&admin),
                true,
                Some(bad),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "bad_request");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_are_counted_expire_run_out_and_can_be_revoked() {
    let mut app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();
    assert_eq!(app.set_mode(&admin, "invite").await.0, 200);

    // Create: the code is shown once, with a link to the sign-in page.
    let (status, body) = app
        .invite(&admin, json!({"max_uses": 2, "expires_in_hours": 1}))
        .await;
    assert_eq!(status, 201, "{body}");
    let inv = &body["invite"];
    let code = inv["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 43);
    assert_eq!(inv["url"], format!("{}/?invite={code}", app.base));
    assert_eq!(inv["max_uses"], 2);
    assert_eq!(inv["uses"], 0);
    assert_eq!(inv["state"], "active");
    assert!(inv["expires_at"].as_str().unwrap().ends_with('Z'));
    let first_id = inv["id"].as_i64().unwrap();

    // Listed without the code, and only its hash is stored.
    let list = app.invites(&admin).await;
    assert_eq!(list.len(), 1);
    assert!(list[0].get("code").is_none() && list[0].get("url").is_none());
    assert_eq!(list[0]["created_by"], "alice");
    let stored: Vec<u8> = app
        .server()
        .state()
        .db
        .read(|c| {
            c.row("SELECT code_hash FROM invites", args![], |r| {
                r.get::<Vec<u8>>(0)
            })
            .map(Option::unwrap)
        })
        .await
        .unwrap();
    assert_eq!(stored, hearth::auth::token::digest(&code).to_vec());

    // Two uses, then it is used up.
    assert_eq!(app.join("bob", Some(&code)).await.0, 201);
    assert_eq!(app.invites(&admin).await[0]["uses"], 1);
    // A refused registration (name taken) does not spend a use.
    assert_eq!(
        app.join("BOB", Some(&code)).await,
        (409, "username_taken".into())
    );
    assert_eq!(app.invites(&admin).await[0]["uses"], 1);
    assert_eq!(app.join("carol", Some(&code)).await.0, 201);
    let list = app.invites(&admin).await;
    assert_eq!(
        (&list[0]["uses"], &list[0]["state"]),
        (&json!(2), &json!("used_up"))
    );
    assert_eq!(
        app.join("dave", Some(&code)).await,
        (403, "invalid_invite".into())
    );

    // Expiry.
    let (_, body) = app.invite(&admin, json!({})).await;
    assert_eq!(body["invite"]["max_uses"], 1, "default: one use");
    let expiring = body["invite"]["code"].as_str().unwrap().to_string();
    let expiring_id = body["invite"]["id"].as_i64().unwrap();
    app.server()
        .state()
        .db
        .write(move |c| {
            c.exec(
                "UPDATE invites SET expires_at = ?1 WHERE id = ?2",
                args![hearth::db::now_ms() - 1, expiring_id],
            )
        })
        .await
        .unwrap();
    assert_eq!(
        app.join("dave", Some(&expiring)).await,
        (403, "invalid_invite".into())
    );
    let list = app.invites(&admin).await;
    let row = list.iter().find(|i| i["id"] == expiring_id).unwrap();
    assert_eq!(row["state"], "expired");

    // Revocation.
    let (_, body) = app.invite(&admin, json!({"max_uses": 5})).await;
    let revoked = body["invite"]["code"].as_str().unwrap().to_string();
    let revoked_id = body["invite"]["id"].as_i64().unwrap();
    let path = format!("/api/admin/invites/{revoked_id}");
    let (status, _) = app
        .call(reqwest::Method::DELETE, &path, Some(&admin), false, None)
        .await;
    assert_eq!(status, 403, "cookie auth without Origin is refused");
    let (status, _) = app
        .call(reqwest::Method::DELETE, &path, Some(&admin), true, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        app.join("dave", Some(&revoked)).await,
        (403, "invalid_invite".into())
    );
    let list = app.invites(&admin).await;
    let row = list.iter().find(|i| i["id"] == revoked_id).unwrap();
    assert_eq!(
        (&row["state"], &row["revoked"]),
        (&json!("revoked"), &json!(true))
    );
    assert_eq!(list.last().unwrap()["id"], first_id, "newest first");

    // Unknown and malformed ids.
    let (status, body) = app
        .call(
            reqwest::Method::DELETE,
            "/api/admin/invites/9999",
            Some(&admin),
            true,
            None,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_invite"))
    );
    for bad in ["abc", "-1", "0", "1.5"] {
        let (status, body) = app
            .call(
                reqwest::Method::DELETE,
                &format!("/api/admin/invites/{bad}"),
                Some(&admin),
                true,
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }

    // Limits on new invites.
    for bad in [
        json!({"max_uses": 0}),
        json!({"max_uses": 1001}),
        json!({"max_uses": -3}),
        json!({"expires_in_hours": 0}),
        json!({"expires_in_hours": 721}),
        json!({"max_uses": "two"}),
        json!({"max_uses": 1.5}),
    ] {
        let (status, body) = app.invite(&admin, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
    let (status, body) = app
        .invite(&admin, json!({"max_uses": 1000, "expires_in_hours": 720}))
        .await;
    assert_eq!(status, 201, "the limits themselves are allowed: {body}");

    // A valid invite also works when the mode is open (and is then not spent).
    assert_eq!(app.set_mode(&admin, "open").await.0, 200);
    let (_, body) = app.invite(&admin, json!({})).await;
    let spare = body["invite"]["code"].as_str().unwrap().to_string();
    assert_eq!(app.join("erin", Some(&spare)).await.0, 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_use_invite_admits_exactly_one_of_many_concurrent_registrations() {
    let mut app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();
    assert_eq!(app.set_mode(&admin, "invite").await.0, 200);
    let (_, body) = app.invite(&admin, json!({"max_uses": 1})).await;
    let code = body["invite"]["code"].as_str().unwrap().to_string();

    let url = format!("{}/api/register", app.base);
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let (url, code) = (url.clone(), code.clone());
            tokio::spawn(async move {
                http_client()
                    .post(url)
                    .json(&json!({
                        "username": format!("racer{i}"),
                        "password": "password123",
                        "invite": code,
                    }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 403, 403, 403, 403, 403, 403, 403]);
    let list = app.invites(&admin).await;
    assert_eq!(
        (&list[0]["uses"], &list[0]["state"]),
        (&json!(1), &json!("used_up"))
    );
    let (_, users) = app.list(&admin).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_refuses_members_strangers_and_foreign_origins() {
    use reqwest::Method;
    let mut app = start().await;
    let (_, admin) = app.account("register", "alice").await;
    let admin = admin.unwrap();
    let (_, member) = app.account("register", "bob").await;
    let member = member.unwrap();
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/admin/users", None),
        (
            Method::POST,
            "/api/admin/users/alice",
            Some(json!({"action": "reset_password"})),
        ),
        (Method::GET, "/api/admin/status", None),
        (Method::GET, "/api/admin/registration", None),
        (
            Method::PUT,
            "/api/admin/registration",
            Some(json!({"mode": "closed"})),
        ),
        (Method::GET, "/api/admin/invites", None),
        (Method::POST, "/api/admin/invites", Some(json!({}))),
        (Method::DELETE, "/api/admin/invites/1", None),
    ];
    for (method, path, body) in &routes {
        let (status, v) = app
            .call(method.clone(), path, Some(&member), true, body.clone())
            .await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{method} {path}");
        let (status, v) = app
            .call(method.clone(), path, None, true, body.clone())
            .await;
        assert_eq!(status, 401, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "unauthorized");
    }

    // State changes by cookie need a same-origin Origin (or Referer).
    let changes = routes.iter().filter(|(m, _, _)| *m != Method::GET);
    for (method, path, body) in changes {
        let (status, v) = app
            .call(method.clone(), path, Some(&admin), false, body.clone())
            .await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "bad_origin", "{method} {path}");
        let mut rb = app
            .http
            .request(method.clone(), format!("{}{path}", app.base))
            .header("cookie", &admin)
            .header("origin", "http://evil.example");
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let res = rb.send().await.unwrap();
        assert_eq!(res.status(), 403, "{method} {path}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "bad_origin");
    }
    // Nothing changed.
    assert_eq!(
        app.get("/api/admin/registration", &admin).await.1["mode"],
        "open"
    );
    assert!(app.invites(&admin).await.is_empty());

    // A bearer token needs no Origin.
    let res = app
        .http
        .post(format!("{}/api/tokens", app.base))
        .header("cookie", &admin)
        .header("origin", &app.base)
        .json(&json!({"name": "ops"}))
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .http
        .post(format!("{}/api/admin/invites", app.base))
        .bearer_auth(&token)
        .json(&json!({"max_uses": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // Wrong content type and oversized bodies are JSON errors too.
    let res = app
        .http
        .post(format!("{}/api/admin/invites", app.base))
        .header("cookie", &admin)
        .header("origin", &app.base)
        .body("max_uses=3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let (status, v) = app
        .call(
            Method::PUT,
            "/api/admin/registration",
            Some(&admin),
            true,
            Some(json!({"mode": "x".repeat(20_000)})),
        )
        .await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
    app.stop().await;
}
