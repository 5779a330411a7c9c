//! Invite links made by members (`registration.member_invites`), their hourly quota, listing
//! and revoking one's own, the QR code that comes with every new link, and what `/api/me` and
//! `/api/share` tell the UI.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{Auth, TestApp};

/// Check the `qr` of an answer: a square of 21 + 4k modules a side, one `0`/`1` per module,
/// with the three finder patterns in their corners.
fn assert_qr(qr: &Value) {
    let size = qr["size"].as_u64().expect("qr.size") as usize;
    let modules = qr["modules"].as_str().expect("qr.modules");
    assert!(size >= 21 && (size - 21).is_multiple_of(4), "size {size}");
    assert_eq!(modules.len(), size * size);
    assert!(modules.bytes().all(|b| b == b'0' || b == b'1'));
    let row = |y: usize| &modules[y * size..(y + 1) * size];
    // Top-left and top-right finders, and the bottom-left one.
    assert_eq!(&row(0)[..7], "1111111");
    assert_eq!(&row(0)[size - 7..], "1111111");
    assert_eq!(&row(size - 1)[..7], "1111111");
    assert_eq!(&row(3)[..7], "1011101");
}

async fn set_mode(app: &TestApp, admin: &Auth, mode: &str) {
    app.api_ok(
        Method::PUT,
        "/api/admin/registration",
        admin,
        Some(&json!({ "mode": mode })),
        200,
    )
    .await;
}

async fn register_with(app: &TestApp, name: &str, code: &str) -> (u16, Value) {
    let res = app
        .post_json(
            "/api/register",
            &json!({ "username": name, "password": crate::common::PASSWORD, "invite": code }),
        )
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_may_not_create_invite_links_by_default_and_me_says_so() {
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let member = app.signup("mia").await;
    let body = json!({ "max_uses": 3, "expires_in_hours": 24 });
    app.api_err(
        Method::POST,
        "/api/invites",
        &member,
        Some(&body),
        403,
        "forbidden",
    )
    .await;
    let me = app.api_ok(Method::GET, "/api/me", &member, None, 200).await;
    assert_eq!(me["can_invite"], json!(false), "{me}");
    let me = app.api_ok(Method::GET, "/api/me", &admin, None, 200).await;
    assert_eq!(me["can_invite"], json!(true), "{me}");
    // Administrators always may, through the members' route too, with a QR code.
    let v = app
        .api_ok(Method::POST, "/api/invites", &admin, Some(&body), 201)
        .await;
    assert_qr(&v["invite"]["qr"]);
    assert_eq!(v["invite"]["max_uses"], 3);
    assert_eq!(v["invite"]["created_by"], "root");
    // A signed-out caller is 401, a foreign Origin 403.
    let res = app.post_json("/api/invites", &body).await;
    assert_eq!(res.status().as_u16(), 401);
    let res = app
        .send(
            app.request(Method::POST, "/api/invites", Some(&admin))
                .header("origin", "http://evil.example")
                .json(&body),
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_invite_link_registers_people_in_invite_mode() {
    let app = TestApp::with_config(|c| c.registration.member_invites = true).await;
    let admin = app.signup_admin("root").await;
    let member = app.signup("mia").await;
    set_mode(&app, &admin, "invite").await;
    let me = app.api_ok(Method::GET, "/api/me", &member, None, 200).await;
    assert_eq!(me["can_invite"], json!(true), "{me}");

    let v = app
        .api_ok(
            Method::POST,
            "/api/invites",
            &member,
            Some(&json!({ "max_uses": 1, "expires_in_hours": 1 })),
            201,
        )
        .await;
    let invite = &v["invite"];
    let code = invite["code"].as_str().unwrap();
    let url = invite["url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/?invite={code}")), "{url}");
    assert_eq!(invite["created_by"], "mia");
    assert_qr(&invite["qr"]);

    // The matrix is the QR code of exactly this link.
    let expected = qrcode::QrCode::with_error_correction_level(url, qrcode::EcLevel::M).unwrap();
    let modules: String = expected
        .to_colors()
        .iter()
        .map(|c| if *c == qrcode::Color::Dark { '1' } else { '0' })
        .collect();
    assert_eq!(invite["qr"]["size"], expected.width());
    assert_eq!(invite["qr"]["modules"], modules);

    let (status, body) = register_with(&app, "newcomer", code).await;
    assert_eq!(status, 201, "{body}");
    // One use: a second registration is refused.
    let (status, body) = register_with(&app, "another", code).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "invalid_invite");
    // Bad limits are 400, as on the admin route.
    app.api_err(
        Method::POST,
        "/api/invites",
        &member,
        Some(&json!({ "max_uses": 0 })),
        400,
        "bad_request",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_have_an_hourly_quota_of_invite_links_and_admins_do_not() {
    let app = TestApp::with_config(|c| {
        c.registration.member_invites = true;
        c.limits.invite_links_per_hour = 2;
    })
    .await;
    let admin = app.signup_admin("root").await;
    let member = app.signup("mia").await;
    let body = json!({});
    for _ in 0..2 {
        app.api_ok(Method::POST, "/api/invites", &member, Some(&body), 201)
            .await;
    }
    let res = app
        .send(
            app.request(Method::POST, "/api/invites", Some(&member))
                .header("origin", &app.base)
                .json(&body),
        )
        .await;
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Administrators are not counted.
    for _ in 0..3 {
        app.api_ok(Method::POST, "/api/invites", &admin, Some(&body), 201)
            .await;
        app.api_ok(Method::POST, "/api/admin/invites", &admin, Some(&body), 201)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_list_and_revoke_only_their_own_links() {
    let app = TestApp::with_config(|c| c.registration.member_invites = true).await;
    let admin = app.signup_admin("root").await;
    let mia = app.signup("mia").await;
    let bob = app.signup("bob").await;
    set_mode(&app, &admin, "invite").await;
    let body = json!({ "max_uses": 5 });
    let mine = app
        .api_ok(Method::POST, "/api/invites", &mia, Some(&body), 201)
        .await;
    let theirs = app
        .api_ok(Method::POST, "/api/invites", &bob, Some(&body), 201)
        .await;
    let (mine_id, theirs_id) = (mine["invite"]["id"].clone(), theirs["invite"]["id"].clone());

    let list = app
        .api_ok(Method::GET, "/api/invites", &mia, None, 200)
        .await;
    let list = list["invites"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], mine_id);
    assert_eq!(list[0]["state"], "active");
    assert!(list[0].get("code").is_none(), "codes are shown only once");

    // Someone else's link: 404, and it still works.
    let theirs_path = format!("/api/invites/{theirs_id}");
    app.api_err(
        Method::DELETE,
        &theirs_path,
        &mia,
        None,
        404,
        "unknown_invite",
    )
    .await;
    app.api_err(
        Method::DELETE,
        "/api/invites/999",
        &mia,
        None,
        404,
        "unknown_invite",
    )
    .await;
    app.api_err(
        Method::DELETE,
        "/api/invites/x",
        &mia,
        None,
        400,
        "bad_request",
    )
    .await;
    let mine_path = format!("/api/invites/{mine_id}");
    app.api_ok(Method::DELETE, &mine_path, &mia, None, 204)
        .await;
    app.api_ok(Method::DELETE, &mine_path, &mia, None, 204)
        .await;
    let list = app
        .api_ok(Method::GET, "/api/invites", &mia, None, 200)
        .await;
    assert_eq!(list["invites"][0]["state"], "revoked");

    let code = mine["invite"]["code"].as_str().unwrap();
    let (status, _) = register_with(&app, "late", code).await;
    assert_eq!(status, 403, "a revoked link admits nobody");
    let code = theirs["invite"]["code"].as_str().unwrap();
    let (status, v) = register_with(&app, "early", code).await;
    assert_eq!(status, 201, "{v}");
    // The administrators see every link, with who made it.
    let all = app
        .api_ok(Method::GET, "/api/admin/invites", &admin, None, 200)
        .await;
    let makers: Vec<_> = all["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["created_by"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(makers, ["bob", "mia"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_invite_answers_carry_a_qr_code_and_share_tells_the_dialog_what_to_offer() {
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let member = app.signup("mia").await;
    let v = app
        .api_ok(
            Method::POST,
            "/api/admin/invites",
            &admin,
            Some(&json!({})),
            201,
        )
        .await;
    assert_qr(&v["invite"]["qr"]);
    let listed = app
        .api_ok(Method::GET, "/api/admin/invites", &admin, None, 200)
        .await;
    assert!(listed["invites"][0].get("qr").is_none());

    let share = app
        .api_ok(Method::GET, "/api/share", &member, None, 200)
        .await;
    assert_eq!(share["registration"], "open");
    assert_eq!(share["can_invite"], false);
    assert_eq!(share["url"], format!("{}/", app.base));
    assert_qr(&share["qr"]);
    set_mode(&app, &admin, "closed").await;
    let share = app
        .api_ok(Method::GET, "/api/share", &admin, None, 200)
        .await;
    assert_eq!(share["registration"], "closed");
    assert_eq!(share["can_invite"], true);
    let res = app.get("/api/share").await;
    assert_eq!(res.status().as_u16(), 401);
}

/// `who` makes an invite link for five people; its code.
async fn link_of(app: &TestApp, who: &Auth) -> String {
    let v = app
        .api_ok(
            Method::POST,
            "/api/invites",
            who,
            Some(&json!({ "max_uses": 5, "expires_in_hours": 1 })),
            201,
        )
        .await;
    v["invite"]["code"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_admits_nobody_while_its_maker_may_not_invite() {
    // Members may invite: a disabled member's links stop admitting, and work again once the
    // account is enabled.
    let app = TestApp::with_config(|c| c.registration.member_invites = true).await;
    let admin = app.signup_admin("root").await;
    let mia = app.signup("mia").await;
    set_mode(&app, &admin, "invite").await;
    let code = link_of(&app, &mia).await;
    app.admin_act(&admin, "mia", "disable").await;
    let (status, body) = register_with(&app, "spam1", &code).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("invalid_invite")),
        "{body}"
    );
    app.admin_act(&admin, "mia", "enable").await;
    let (status, body) = register_with(&app, "friend1", &code).await;
    assert_eq!(status, 201, "{body}");

    // Members may not invite: a link made by an administrator stops admitting once they are
    // no longer one; another administrator's still admits.
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let ann = app.signup("ann").await;
    set_mode(&app, &admin, "invite").await;
    app.admin_act(&admin, "ann", "promote").await;
    let anns = link_of(&app, &ann).await;
    let roots = link_of(&app, &admin).await;
    app.admin_act(&admin, "ann", "demote").await;
    let (status, body) = register_with(&app, "spam2", &anns).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("invalid_invite")),
        "{body}"
    );
    let (status, body) = register_with(&app, "friend2", &roots).await;
    assert_eq!(status, 201, "{body}");
}
