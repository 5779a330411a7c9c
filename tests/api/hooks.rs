//! Webhooks: incoming hooks post to a room under their own name through a secret URL;
//! outgoing webhooks receive every later message of their room, signed, in order, retried
//! after failures until the receiver answers 2xx; members see the delivery state; only the
//! maker, the room's creator or an administrator removes them.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{
    assert_error, hmac_signature, http_client, id_of, json_body, within, Receiver, TestApp,
};

/// The path of a hook's URL (`http://host/api/hooks/...` → `/api/hooks/...`).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_string()
}

/// `GET /api/rooms/general/webhooks` as `auth`, asked again (for up to 10 s) until `ready`
/// holds of its first webhook; the whole answer.
async fn general_webhooks_once(
    app: &TestApp,
    auth: &crate::common::Auth,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let asked = async {
        loop {
            let v = app
                .api_ok(Method::GET, "/api/rooms/general/webhooks", auth, None, 200)
                .await;
            if ready(&v["webhooks"][0]) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    within(Duration::from_secs(10), what, asked).await
}

/// POST `body` to an incoming hook's URL the way a script would: no cookie, no Origin.
async fn post_hook(app: &TestApp, url: &str, body: &Value) -> reqwest::Response {
    http_client()
        .post(app.url(&path_of(url)))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_incoming_hook_posts_under_its_own_name() {
    let app = TestApp::start().await;
    let admin = app.signup_admin("root").await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut bw = app.ws_connect(&bob, None).await;

    let made = app
        .api_ok(
            Method::POST,
            "/api/rooms/general/hooks",
            &alice,
            Some(&json!({"name": "deploy-bot"})),
            201,
        )
        .await;
    let hook = &made["hook"];
    assert_eq!(hook["name"], "deploy-bot");
    assert_eq!(hook["room"], "general");
    assert_eq!(hook["created_by"], "alice");
    let url = hook["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&app.base), "{url}");

    let res = post_hook(&app, &url, &json!({"text": "deployed v1.2"})).await;
    assert_eq!(res.status(), 201);
    let posted = json_body(res).await["message"].clone();
    assert_eq!(posted["user"], "deploy-bot");
    let live = bw.wait_type("message").await;
    assert_eq!(live["body"], "deployed v1.2");
    assert_eq!(live["user"], "deploy-bot");
    assert_eq!(id_of(&live), id_of(&posted));

    // The secret is the key: a wrong one, an unknown hook, or no text are refused.
    let wrong = format!("{}x", &url[..url.len() - 1]);
    assert_error(
        post_hook(&app, &wrong, &json!({"text": "x"})).await,
        404,
        "unknown_hook",
    )
    .await;
    let unknown = url.replace("/api/hooks/", "/api/hooks/zz");
    assert_error(
        post_hook(&app, &unknown, &json!({"text": "x"})).await,
        404,
        "unknown_hook",
    )
    .await;
    assert_error(
        post_hook(&app, &url, &json!({"text": "  "})).await,
        400,
        "empty_message",
    )
    .await;
    assert_error(
        post_hook(&app, &url, &json!({})).await,
        400,
        "empty_message",
    )
    .await;
    // The hook's account cannot sign in.
    let res = app.try_login("deploy-bot", "").await;
    assert!(
        res.status() == 400 || res.status() == 401,
        "{}",
        res.status()
    );
    // It belongs to its room only: nobody can add it to another room or write to it, and
    // it is not offered among the people to write to.
    app.api_ok(
        Method::POST,
        "/api/rooms",
        &alice,
        Some(&json!({"name": "elsewhere"})),
        201,
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/elsewhere/members",
        &alice,
        Some(&json!({"username": "deploy-bot"})),
        404,
        "unknown_user",
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/dms",
        &alice,
        Some(&json!({"users": ["deploy-bot"]})),
        404,
        "unknown_user",
    )
    .await;
    let people = app
        .api_ok(Method::GET, "/api/users?q=deploy", &alice, None, 200)
        .await;
    assert_eq!(people["users"], json!([]), "{people}");

    // Names are accounts' names; bad ones, taken ones and DMs are refused.
    for (name, status, code) in [
        ("alice", 409, "username_taken"),
        ("Deploy-Bot", 409, "username_taken"),
        ("no spaces allowed", 400, "invalid_username"),
    ] {
        app.api_err(
            Method::POST,
            "/api/rooms/general/hooks",
            &alice,
            Some(&json!({"name": name})),
            status,
            code,
        )
        .await;
    }
    app.api_ok(
        Method::POST,
        "/api/rooms",
        &alice,
        Some(&json!({"name": "secret", "public": false})),
        201,
    )
    .await;
    app.api_err(
        Method::POST,
        "/api/rooms/secret/hooks",
        &bob,
        Some(&json!({"name": "spy"})),
        404,
        "unknown_room",
    )
    .await;

    // Members list them (without the secret URL).
    let list = app
        .api_ok(Method::GET, "/api/rooms/general/hooks", &bob, None, 200)
        .await;
    let listed = &list["hooks"][0];
    assert_eq!(listed["name"], "deploy-bot");
    assert!(listed["last_used_ts"].is_string());
    assert!(listed.get("url").is_none(), "{listed}");

    // Only its maker, the room's creator or an administrator removes it.
    let id = hook["id"].as_str().unwrap();
    app.api_err(
        Method::DELETE,
        &format!("/api/rooms/general/hooks/{id}"),
        &bob,
        None,
        403,
        "forbidden",
    )
    .await;
    let all = app
        .api_ok(Method::GET, "/api/admin/hooks", &admin, None, 200)
        .await;
    assert_eq!(all["hooks"][0]["id"], id);
    app.api_err(
        Method::GET,
        "/api/admin/hooks",
        &bob,
        None,
        403,
        "forbidden",
    )
    .await;
    app.api_ok(
        Method::DELETE,
        &format!("/api/rooms/general/hooks/{id}"),
        &alice,
        None,
        204,
    )
    .await;
    assert_error(
        post_hook(&app, &url, &json!({"text": "x"})).await,
        404,
        "unknown_hook",
    )
    .await;
    // What it posted keeps its author.
    let page = app.history(&bob, "general", "").await;
    assert!(page.iter().any(|m| m["user"] == "deploy-bot"));
}

#[tokio::test]
async fn outgoing_webhooks_receive_signed_messages_in_order_and_are_retried() {
    let receiver = Receiver::start(200).await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let made = app
        .api_ok(
            Method::POST,
            "/api/rooms/general/webhooks",
            &alice,
            Some(&json!({"url": receiver.url("/hook?x=1")})),
            201,
        )
        .await;
    let webhook = &made["webhook"];
    let secret = webhook["secret"].as_str().unwrap().to_string();
    let wid = webhook["id"].as_i64().unwrap();
    assert_eq!(webhook["url"], receiver.url("/hook?x=1").as_str());

    let mut aw = app.ws_connect(&alice, None).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(id_of(
            &aw.say("general", &format!("m{i}"), &format!("n{i}")).await,
        ));
    }
    let got = receiver
        .wait_until(Duration::from_secs(10), "three deliveries", |r| {
            r.len() >= 3
        })
        .await;
    let check = |r: &crate::common::Received| -> Value {
        assert_eq!(r.line, "POST /hook?x=1 HTTP/1.1");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(
            r.headers["x-hearth-signature"],
            hmac_signature(&secret, &r.body)
        );
        assert_eq!(r.headers["x-hearth-event"], "message");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["event"], "message");
        v["message"].clone()
    };
    let ids: Vec<i64> = got.iter().map(|r| id_of(&check(r))).collect();
    assert_eq!(ids, sent, "in id order");
    assert_eq!(check(&got[0])["body"], "m0");
    assert_eq!(check(&got[0])["user"], "alice");

    // The receiver fails: the messages wait, the members see why, in order after recovery.
    receiver.answer(500);
    let later = [
        id_of(&aw.say("general", "during the outage 1", "o1").await),
        id_of(&aw.say("general", "during the outage 2", "o2").await),
    ];
    receiver
        .wait_until(Duration::from_secs(10), "two failed attempts", |r| {
            r.iter().filter(|x| x.status == 500).count() >= 2
        })
        .await;
    let state = app
        .api_ok(Method::GET, "/api/rooms/general/webhooks", &bob, None, 200)
        .await;
    let w = &state["webhooks"][0];
    assert_eq!(w["id"], wid);
    assert_eq!(w["last_status"], 500);
    assert_eq!(w["delivered"], 3);
    assert_eq!(w["pending"], 2);
    assert!(w["failing_since"].is_string());
    assert!(w["last_error"].as_str().unwrap().contains("500"), "{w}");
    assert!(w.get("secret").is_none());
    // Only the head of the queue is tried while it fails.
    let failed: Vec<i64> = receiver
        .received()
        .iter()
        .filter(|r| r.status == 500)
        .map(|r| id_of(&check(r)))
        .collect();
    assert!(failed.iter().all(|id| *id == later[0]), "{failed:?}");
    receiver.answer(200);
    let got = receiver
        .wait_until(Duration::from_secs(20), "the queued messages", |r| {
            r.iter().filter(|x| x.status == 200).count() >= 5
        })
        .await;
    let ok: Vec<i64> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| id_of(&check(r)))
        .collect();
    assert_eq!(ok[3..], later[..], "in order after the recovery");
    // The receiver has the last request; the server records its answer a moment later.
    let state = general_webhooks_once(&app, &alice, "the last delivery recorded", |w| {
        w["pending"] == 0
    })
    .await;
    let w = &state["webhooks"][0];
    assert_eq!(
        (w["delivered"].clone(), w["pending"].clone()),
        (json!(5), json!(0))
    );
    assert!(w["failing_since"].is_null());
    assert_eq!(w["last_error"], "");

    // Removed: nothing more is sent.
    app.api_err(
        Method::DELETE,
        &format!("/api/rooms/general/webhooks/{wid}"),
        &bob,
        None,
        403,
        "forbidden",
    )
    .await;
    app.api_ok(
        Method::DELETE,
        &format!("/api/rooms/general/webhooks/{wid}"),
        &alice,
        None,
        204,
    )
    .await;
    let before = receiver.received().len();
    aw.say("general", "after removal", "r").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), before);
}

#[tokio::test]
async fn webhook_urls_must_be_public_web_addresses() {
    let receiver = Receiver::start(200).await;
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    for url in [
        receiver.url("/"),
        format!("http://localhost:{}/", receiver.addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]/".to_string(),
        "ftp://files.example/".to_string(),
        "http://user:pw@hooks.example/".to_string(),
        "not a url".to_string(),
        "http://hooks.example:25/".to_string(),
    ] {
        let (status, body) = app
            .api(
                Method::POST,
                "/api/rooms/general/webhooks",
                &alice,
                Some(&json!({ "url": url })),
            )
            .await;
        // A name is resolved only when delivering: `localhost` is accepted here and refused
        // at delivery (below).
        if url.contains("localhost") {
            assert_eq!(status, 201, "{url}: {body}");
            continue;
        }
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["code"], "bad_url", "{url}");
        if url.ends_with(":25/") {
            let why = body["error"]["message"].as_str().unwrap_or_default();
            assert!(why.contains("port"), "{why}");
        }
    }
    let mut ws = app.ws_connect(&alice, None).await;
    ws.say("general", "to a refused address", "x").await;
    let state = general_webhooks_once(&app, &alice, "a delivery attempt", |w| {
        w["last_attempt_ts"].is_string()
    })
    .await;
    let err = state["webhooks"][0]["last_error"].as_str().unwrap();
    assert!(err.contains("loopback"), "{err}");
    assert_eq!(receiver.received().len(), 0, "never contacted");
}

/// A hook or webhook works only while its maker is in its room with an enabled account:
/// someone who left (or was disabled) neither posts into the room nor receives its messages
/// through what they made there. Once they are back (and may read the room again), both work
/// again, and what was said meanwhile is delivered, in order.
#[tokio::test]
async fn hooks_and_webhooks_stop_while_their_maker_is_out_of_the_room() {
    let receiver = Receiver::start(200).await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let admin = app.signup_admin("root").await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    app.create_room(&alice, "ops", true).await;
    app.api_ok(Method::POST, "/api/rooms/ops/join", &bob, None, 200)
        .await;
    let made = app
        .api_ok(
            Method::POST,
            "/api/rooms/ops/hooks",
            &alice,
            Some(&json!({"name": "ci-bot"})),
            201,
        )
        .await;
    let hook_url = made["hook"]["url"].as_str().unwrap().to_string();
    app.api_ok(
        Method::POST,
        "/api/rooms/ops/webhooks",
        &alice,
        Some(&json!({"url": receiver.url("/out")})),
        201,
    )
    .await;
    // Bob's webhook in the same room: the control, never held up by alice's.
    let control = Receiver::start(200).await;
    app.api_ok(
        Method::POST,
        "/api/rooms/ops/webhooks",
        &bob,
        Some(&json!({"url": control.url("/out")})),
        201,
    )
    .await;
    let mut bw = app.ws_connect(&bob, None).await;
    let delivered = async |n: usize| -> Vec<String> {
        let got = receiver
            .wait_until(Duration::from_secs(10), "deliveries", |r| r.len() >= n)
            .await;
        got.iter()
            .map(|r| {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                v["message"]["body"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let hook_says = async |text: &str| {
        post_hook(&app, &hook_url, &json!({ "text": text }))
            .await
            .status()
            .as_u16()
    };

    bw.say("ops", "one", "n1").await;
    assert_eq!(hook_says("from ci").await, 201);
    assert_eq!(delivered(2).await, ["one", "from ci"]);

    // Alice leaves: nothing of the room reaches her webhook, her hook is refused.
    app.api_ok(Method::POST, "/api/rooms/ops/leave", &alice, None, 204)
        .await;
    bw.say("ops", "while alice is away", "n2").await;
    let res = post_hook(&app, &hook_url, &json!({"text": "ghost"})).await;
    assert_error(res, 403, "forbidden").await;
    // Bob's webhook receives it; alice's, paused, does not.
    control
        .wait_until(Duration::from_secs(10), "the control's deliveries", |r| {
            r.len() >= 3
        })
        .await;
    assert_eq!(receiver.received().len(), 2, "nothing while alice is away");
    // Back: what was said meanwhile comes first.
    app.api_ok(Method::POST, "/api/rooms/ops/join", &alice, None, 200)
        .await;
    bw.say("ops", "welcome back", "n3").await;
    assert_eq!(hook_says("ci again").await, 201);
    assert_eq!(
        delivered(5).await,
        [
            "one",
            "from ci",
            "while alice is away",
            "welcome back",
            "ci again"
        ]
    );

    // Disabled: the same until enabled again.
    let act = async |action: &str| {
        app.api_ok(
            Method::POST,
            "/api/admin/users/alice",
            &admin,
            Some(&json!({ "action": action })),
            200,
        )
        .await;
    };
    act("disable").await;
    bw.say("ops", "while alice is disabled", "n4").await;
    assert_eq!(hook_says("ghost").await, 403);
    control
        .wait_until(Duration::from_secs(10), "the control's deliveries", |r| {
            r.len() >= 6
        })
        .await;
    assert_eq!(
        receiver.received().len(),
        5,
        "nothing while alice is disabled"
    );
    act("enable").await;
    bw.say("ops", "enabled", "n5").await;
    assert_eq!(
        delivered(7).await[5..],
        ["while alice is disabled", "enabled"]
    );
    assert!(
        !app.history(&bob, "ops", "")
            .await
            .iter()
            .any(|m| m["body"] == "ghost"),
        "nothing posted through the hook while its maker was out"
    );
}

#[tokio::test]
async fn a_room_takes_ten_hooks_and_ten_webhooks_even_when_asked_for_at_once() {
    let receiver = Receiver::start(200).await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let alice = app.signup("alice").await;
    // Fourteen of each asked for together: the count is taken where they are added, so no
    // two requests both see room for one more.
    let hooks = (0..14).map(|i| {
        let body = json!({"name": format!("bot-{i}")});
        let (app, alice) = (&app, &alice);
        async move {
            app.api(Method::POST, "/api/rooms/general/hooks", alice, Some(&body))
                .await
        }
    });
    let webhooks = (0..14).map(|i| {
        let body = json!({"url": receiver.url(&format!("/hook/{i}"))});
        let (app, alice) = (&app, &alice);
        async move {
            app.api(
                Method::POST,
                "/api/rooms/general/webhooks",
                alice,
                Some(&body),
            )
            .await
        }
    });
    let (hooks, webhooks) = tokio::join!(
        futures_util::future::join_all(hooks),
        futures_util::future::join_all(webhooks)
    );
    for (what, answers) in [("hooks", hooks), ("webhooks", webhooks)] {
        let made = answers.iter().filter(|(status, _)| *status == 201).count();
        let refused: Vec<&Value> = answers
            .iter()
            .filter(|(status, _)| *status != 201)
            .map(|(status, body)| {
                assert_eq!(*status, 409, "{what}: {body}");
                assert_eq!(body["error"]["code"], "too_many_hooks", "{what}: {body}");
                body
            })
            .collect();
        assert_eq!((made, refused.len()), (10, 4), "{what}");
    }
    let (_, listed) = app
        .api(Method::GET, "/api/rooms/general/hooks", &alice, None)
        .await;
    assert_eq!(
        listed["hooks"].as_array().map(Vec::len),
        Some(10),
        "{listed}"
    );
    let (_, listed) = app
        .api(Method::GET, "/api/rooms/general/webhooks", &alice, None)
        .await;
    assert_eq!(
        listed["webhooks"].as_array().map(Vec::len),
        Some(10),
        "{listed}"
    );
}

/// The senders go round the webhooks tried longest ago first: eight webhooks whose receiver
/// answers slowly, each with a queue of messages, do not keep a ninth waiting until they are
/// all done (ordered by when each message fell due, the ninth came last).
#[tokio::test]
async fn webhooks_with_long_queues_do_not_keep_another_waiting() {
    use crate::common::{Answer, Site};
    let site = Site::start(std::collections::HashMap::from([
        (
            "/busy",
            Answer::Late(Duration::from_millis(400), "text/plain", b"ok".to_vec()),
        ),
        ("/quiet", Answer::Ok("text/plain", b"ok".to_vec())),
    ]))
    .await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let alice = app.signup("alice").await;
    app.create_room(&alice, "busy", true).await;
    app.create_room(&alice, "quiet", true).await;
    let hook = |room: &'static str, path: &'static str| {
        let body = json!({"url": site.url(path)});
        let (app, alice) = (&app, &alice);
        async move {
            app.api_ok(
                Method::POST,
                &format!("/api/rooms/{room}/webhooks"),
                alice,
                Some(&body),
                201,
            )
            .await
        }
    };
    for _ in 0..8 {
        hook("busy", "/busy").await;
    }
    hook("quiet", "/quiet").await;

    let mut aw = app.ws_connect(&alice, None).await;
    const QUEUED: usize = 4;
    for i in 0..QUEUED {
        aw.say("busy", &format!("busy {i}"), &format!("b{i}")).await;
    }
    aw.say("quiet", "quiet", "q").await;
    within(
        Duration::from_secs(20),
        "the quiet webhook's delivery",
        async {
            while site.hits("/quiet") == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
    )
    .await;
    let busy = site.hits("/busy");
    assert!(
        busy < 8 * QUEUED,
        "the quiet webhook waited for all {busy} busy deliveries"
    );
    within(Duration::from_secs(20), "every busy delivery", async {
        while site.hits("/busy") < 8 * QUEUED {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
