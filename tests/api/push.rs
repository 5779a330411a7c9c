//! Web Push against a push endpoint on 127.0.0.1 that checks what a push service checks: the
//! VAPID JWT (signed with the server's key, for the endpoint's origin, not expired) and the
//! `aes128gcm` body, decrypted with the subscription's own keys. Mentions and direct messages
//! reach people with no open connection; nothing is pushed to someone online, for an ordinary
//! message, or to an endpoint that said it is gone.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hearth::outbound::webpush::{decrypt, verify_jwt};
use reqwest::Method;
use ring::agreement;
use serde_json::{json, Value};

use crate::common::{Auth, Received, Receiver, TestApp};

/// A browser's side of a subscription: its private key (good for one decryption) and what
/// it sends the server.
fn browser_keys() -> (agreement::EphemeralPrivateKey, Vec<u8>, [u8; 16], Value) {
    let rng = ring::rand::SystemRandom::new();
    let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).unwrap();
    let public = private.compute_public_key().unwrap().as_ref().to_vec();
    let mut auth = [0u8; 16];
    ring::rand::SecureRandom::fill(&rng, &mut auth).unwrap();
    let keys = json!({"p256dh": B64URL.encode(&public), "auth": B64URL.encode(auth)});
    (private, public, auth, keys)
}

/// Check a push as a push service would; the JWT's claims.
fn check_push(r: &Received, server_key: &[u8], origin: &str) -> Value {
    assert!(r.line.starts_with("POST "), "{}", r.line);
    assert_eq!(r.headers["content-encoding"], "aes128gcm");
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert!(r.headers["ttl"].parse::<u64>().unwrap() > 0);
    let auth = r.headers["authorization"].strip_prefix("vapid t=").unwrap();
    let (jwt, k) = auth.split_once(", k=").unwrap();
    assert_eq!(
        B64URL.decode(k).unwrap(),
        server_key,
        "k is the server's key"
    );
    let claims = verify_jwt(jwt, server_key).expect("the JWT verifies with the server's key");
    assert_eq!(claims["aud"], origin);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now && exp <= now + 24 * 3600, "{claims}");
    assert!(claims["sub"].as_str().unwrap().starts_with("mailto:"));
    claims
}

#[tokio::test]
async fn mentions_and_direct_messages_reach_people_who_are_away() {
    let receiver = Receiver::start(201).await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let key = app
        .api_ok(Method::GET, "/api/push/key", &bob, None, 200)
        .await;
    let server_key = B64URL.decode(key["public_key"].as_str().unwrap()).unwrap();
    assert_eq!((server_key.len(), server_key[0]), (65, 4));
    let again = app
        .api_ok(Method::GET, "/api/push/key", &alice, None, 200)
        .await;
    assert_eq!(again, key, "one key, kept");

    let (private, public, auth, keys) = browser_keys();
    let endpoint = receiver.url("/push/bob-phone");
    subscribe(
        &app,
        &bob,
        json!({"endpoint": endpoint, "keys": keys, "expirationTime": null}),
    )
    .await;
    let listed = devices(&app, &bob).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let phone = &listed[0];
    assert_eq!(
        (&phone["endpoint"], &phone["level"], &phone["quiet"]),
        (&json!(endpoint), &json!("mentions"), &Value::Null)
    );
    for bad in [
        json!({"endpoint": "not a url", "keys": keys}),
        json!({"endpoint": endpoint, "keys": {"p256dh": "AAAA", "auth": keys["auth"]}}),
        json!({"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": "AAAA"}}),
        json!({"endpoint": "ftp://push.example/x", "keys": keys}),
        // The shape of a key (65 bytes, uncompressed) but not a point of the curve.
        json!({"endpoint": endpoint, "keys": {"p256dh": B64URL.encode([4u8; 65]), "auth": keys["auth"]}}),
    ] {
        app.api_err(
            Method::POST,
            "/api/push/subscriptions",
            &bob,
            Some(&bad),
            400,
            "bad_endpoint",
        )
        .await;
    }

    // Carol subscribes and changes her mind.
    let (_, _, _, carol_keys) = browser_keys();
    let carol_endpoint = receiver.url("/push/carol");
    subscribe(
        &app,
        &carol,
        json!({"endpoint": carol_endpoint, "keys": carol_keys}),
    )
    .await;
    unsubscribe(&app, &carol, &carol_endpoint).await;

    // Bob has no open connection: a mention is pushed, readable only with his keys.
    let mut aw = app.ws_connect(&alice, None).await;
    let sent = aw
        .say("general", "@bob the build is red, @carol", "m1")
        .await;
    let got = receiver
        .wait_until(Duration::from_secs(10), "the push", |r| r.len() == 1)
        .await;
    let origin = format!("http://{}", receiver.addr);
    check_push(&got[0], &server_key, &origin);
    assert_eq!(got[0].line, "POST /push/bob-phone HTTP/1.1");
    let clear = decrypt(private, &public, &auth, &got[0].body).expect("decrypts");
    let note: Value = serde_json::from_slice(&clear).unwrap();
    assert_eq!(
        note,
        json!({"room": "general", "id": sent["id"], "user": "alice", "body": "@bob the build is red, @carol", "reason": "mention"})
    );
    // A long message is pushed as its first 200 characters (characters, not bytes: a cut
    // inside "é" would not even be JSON).
    // (Bob's phone's key decrypts once; a second device of his, with keys of its own, reads
    // this push and is then removed.)
    let (tablet_private, tablet_public, tablet_auth, tablet_keys) = browser_keys();
    let tablet = receiver.url("/push/bob-tablet");
    subscribe(&app, &bob, json!({"endpoint": tablet, "keys": tablet_keys})).await;
    let long = format!("@bob {}", "déjà vu, ".repeat(40));
    let sent_long = aw.say("general", &long, "m1-long").await;
    let got = receiver
        .wait_until(Duration::from_secs(10), "the long message's pushes", |r| {
            r.len() == 3
        })
        .await;
    let to_tablet = got
        .iter()
        .find(|r| r.line == "POST /push/bob-tablet HTTP/1.1")
        .expect("a push to the tablet");
    let clear = decrypt(
        tablet_private,
        &tablet_public,
        &tablet_auth,
        &to_tablet.body,
    )
    .expect("decrypts");
    let note: Value = serde_json::from_slice(&clear).unwrap();
    assert_eq!(note["id"], sent_long["id"]);
    let excerpt = note["body"].as_str().unwrap();
    assert_eq!(excerpt.chars().count(), 200, "{excerpt}");
    assert!(long.starts_with(excerpt) && long.chars().count() > 200);
    unsubscribe(&app, &bob, &tablet).await;

    // Ordinary messages are not pushed; nothing is pushed while bob is online.
    aw.say("general", "just chatting", "m2").await;
    let mut bw = app.ws_connect(&bob, None).await;
    aw.say("general", "@bob are you there?", "m3").await;
    bw.wait_for("the mention", |f| {
        f["type"] == "message" && f["nonce"] == "m3"
    })
    .await;
    bw.close().await;
    // A direct message to bob, away again.
    let (_, dm) = app.open_dm(&alice, &["bob"]).await;
    let dm_name = dm["name"].as_str().unwrap().to_string();
    let mut aw = app.ws_connect(&alice, None).await;
    let before = receiver.received().len().max(1);
    aw.say(&dm_name, "lunch?", "d1").await;
    // (Bob closed his socket right after the mention above; whether that mention is pushed
    // depends on which the sender saw first, so only the DM's push is waited for.)
    let got = receiver
        .wait_until(Duration::from_secs(10), "the DM's push", |r| {
            r.len() > before
        })
        .await;
    let last = got.last().unwrap();
    check_push(last, &server_key, &origin);
    assert!(last.body.len() > 16 + 4 + 1 + 65 + 16, "an encrypted body");

    // The endpoint is gone (410): forgotten after that answer, never asked again.
    receiver.answer(410);
    aw.say(&dm_name, "hello?", "d2").await;
    receiver
        .wait_until(Duration::from_secs(10), "the refused push", |r| {
            r.iter().any(|x| x.status == 410)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = receiver.received().len();
    aw.say(&dm_name, "still there?", "d3").await;
    aw.say("general", "@bob once more", "m4").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = receiver.received();
    assert_eq!(got.len(), settled, "a gone endpoint is forgotten");
    assert!(
        got.iter()
            .all(|r| r.line.contains("/push/bob-phone") || r.line.contains("/push/bob-tablet")),
        "none for carol"
    );
}

#[tokio::test]
async fn endpoints_must_be_https_and_public_by_default() {
    let app = TestApp::start().await;
    let carol = app.signup("carol").await;
    let (_, _, _, keys) = browser_keys();
    for endpoint in [
        "http://push.example/x",
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://169.254.169.254/x",
        "https://10.1.2.3/x",
    ] {
        app.api_err(
            Method::POST,
            "/api/push/subscriptions",
            &carol,
            Some(&json!({"endpoint": endpoint, "keys": keys})),
            400,
            "bad_endpoint",
        )
        .await;
    }
    subscribe(
        &app,
        &carol,
        json!({"endpoint": "https://push.example/carol", "keys": keys}),
    )
    .await;
}

/// `POST /api/push/subscriptions` as `who`, which must succeed; the device object.
async fn subscribe(app: &TestApp, who: &Auth, body: Value) -> Value {
    app.api_ok(
        Method::POST,
        "/api/push/subscriptions",
        who,
        Some(&body),
        201,
    )
    .await
}

/// `PATCH /api/push/subscriptions` as `who`, which must succeed; the device object.
async fn change(app: &TestApp, who: &Auth, body: Value) -> Value {
    app.api_ok(
        Method::PATCH,
        "/api/push/subscriptions",
        who,
        Some(&body),
        200,
    )
    .await
}

/// `who` stops pushes to `endpoint`.
async fn unsubscribe(app: &TestApp, who: &Auth, endpoint: &str) {
    app.api_ok(
        Method::DELETE,
        "/api/push/subscriptions",
        who,
        Some(&json!({ "endpoint": endpoint })),
        204,
    )
    .await;
}

/// `who`'s devices.
async fn devices(app: &TestApp, who: &Auth) -> Value {
    app.api_ok(Method::GET, "/api/push/subscriptions", who, None, 200)
        .await["subscriptions"]
        .clone()
}

/// Pushes received so far, per endpoint path.
fn counts(receiver: &Receiver) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for r in receiver.received() {
        let path = r.line.split(' ').nth(1).unwrap_or("").to_string();
        *out.entry(path).or_insert(0) += 1;
    }
    out
}

/// Wait until the pushes per path are `want`, then check that nothing more arrives.
async fn expect_pushes(receiver: &Receiver, want: &[(&str, usize)], what: &str) {
    let want: std::collections::BTreeMap<String, usize> = want
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(p, n)| (p.to_string(), *n))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counts(receiver) != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: pushes {:?}, wanted {want:?}",
            counts(receiver)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counts(receiver), want, "{what}: nothing more");
}

#[tokio::test]
async fn each_device_chooses_what_is_pushed_and_when() {
    let receiver = Receiver::start(201).await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let (phone, tablet, laptop) = (
        receiver.url("/phone"),
        receiver.url("/tablet"),
        receiver.url("/laptop"),
    );
    let (_, _, _, phone_keys) = browser_keys();
    let (_, _, _, tablet_keys) = browser_keys();
    let (_, _, _, laptop_keys) = browser_keys();
    subscribe(&app, &bob, json!({"endpoint": phone, "keys": phone_keys})).await;
    let made = subscribe(
        &app,
        &bob,
        json!({"endpoint": tablet, "keys": tablet_keys, "level": "all", "utc_offset": 60}),
    )
    .await;
    assert_eq!(
        (&made["level"], &made["utc_offset"]),
        (&json!("all"), &json!(60))
    );
    subscribe(&app, &bob, json!({"endpoint": laptop, "keys": laptop_keys})).await;
    let paused = change(&app, &bob, json!({"endpoint": laptop, "level": "nothing"})).await;
    assert_eq!(paused["level"], "nothing");

    // Settings that cannot be: clear errors, nothing changed.
    for (body, status, code) in [
        (
            json!({"endpoint": receiver.url("/other"), "level": "all"}),
            404,
            "unknown_subscription",
        ),
        (
            json!({"endpoint": phone, "level": "loud"}),
            400,
            "bad_request",
        ),
        (
            json!({"endpoint": phone, "quiet": {"start": "25:00", "end": "07:00"}}),
            400,
            "bad_request",
        ),
        (
            json!({"endpoint": phone, "quiet": {"start": "22:00", "end": "22:00"}}),
            400,
            "bad_request",
        ),
        (
            json!({"endpoint": phone, "quiet": {"start": "22:00"}}),
            400,
            "bad_request",
        ),
        (
            json!({"endpoint": phone, "utc_offset": 900}),
            400,
            "bad_request",
        ),
        (
            json!({"endpoint": phone, "utc_offset": "+01:00"}),
            400,
            "bad_request",
        ),
        (
            json!({"endpoint": phone, "utc_offset": i64::MIN}),
            400,
            "bad_request",
        ),
        (
            json!({"endpoint": phone, "utc_offset": -841}),
            400,
            "bad_request",
        ),
    ] {
        app.api_err(
            Method::PATCH,
            "/api/push/subscriptions",
            &bob,
            Some(&body),
            status,
            code,
        )
        .await;
    }
    // Someone else's device is not theirs to change.
    app.api_err(
        Method::PATCH,
        "/api/push/subscriptions",
        &alice,
        Some(&json!({"endpoint": phone, "level": "nothing"})),
        404,
        "unknown_subscription",
    )
    .await;
    // Subscribing again (new keys) keeps what the device chose.
    let (tablet_key2, tablet_public2, tablet_auth2, tablet_keys2) = browser_keys();
    let again = subscribe(
        &app,
        &bob,
        json!({"endpoint": tablet, "keys": tablet_keys2}),
    )
    .await;
    assert_eq!(
        (&again["level"], &again["utc_offset"]),
        (&json!("all"), &json!(60))
    );
    let listed = devices(&app, &bob).await;
    let levels: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["endpoint"].as_str().unwrap().rsplit('/').next().unwrap(),
                s["level"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            ("phone", "mentions"),
            ("tablet", "all"),
            ("laptop", "nothing")
        ]
    );
    assert_eq!(devices(&app, &alice).await, json!([]));

    // An ordinary message reaches only the device that wants every message.
    let mut aw = app.ws_connect(&alice, None).await;
    let sent = aw.say("general", "standup in five", "g1").await;
    expect_pushes(&receiver, &[("/tablet", 1)], "an ordinary message").await;
    let first = &receiver.received()[0];
    let clear = decrypt(tablet_key2, &tablet_public2, &tablet_auth2, &first.body).unwrap();
    let note: Value = serde_json::from_slice(&clear).unwrap();
    assert_eq!(
        (&note["id"], &note["reason"]),
        (&sent["id"], &json!("message"))
    );
    // The accepted push shows as the tablet's last push; the others have had none.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = devices(&app, &bob).await;
        let last = |name: &str| {
            listed
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["endpoint"].as_str().unwrap().ends_with(name))
                .unwrap()["last_ok_at"]
                .clone()
        };
        if last("/tablet").is_i64() {
            assert_eq!(
                (last("/phone"), last("/laptop")),
                (Value::Null, Value::Null)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no last push: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A mention reaches both devices that want mentions, once each; the paused one nothing.
    aw.say("general", "@bob can you run it?", "g2").await;
    expect_pushes(&receiver, &[("/tablet", 2), ("/phone", 1)], "a mention").await;

    // The room at "mentions only": its ordinary messages stop, mentions go on.
    let room_level = |level: &'static str| {
        let body = json!({ "level": level });
        let (app, bob) = (&app, &bob);
        async move {
            app.api_ok(
                Method::PUT,
                "/api/rooms/general/notify",
                bob,
                Some(&body),
                200,
            )
            .await;
        }
    };
    room_level("mentions").await;
    aw.say("general", "anyone?", "g3").await;
    aw.say("general", "@bob ping", "g4").await;
    expect_pushes(
        &receiver,
        &[("/tablet", 3), ("/phone", 2)],
        "a room at mentions",
    )
    .await;
    // Muted: not even mentions.
    room_level("nothing").await;
    aw.say("general", "@bob muted?", "g5").await;
    // A direct message still reaches both (the DM's own level is "every message").
    let (_, dm) = app.open_dm(&alice, &["bob"]).await;
    let dm_name = dm["name"].as_str().unwrap().to_string();
    aw.say(&dm_name, "psst", "d1").await;
    expect_pushes(
        &receiver,
        &[("/tablet", 4), ("/phone", 3)],
        "a muted room, a DM",
    )
    .await;

    // Quiet hours around the present moment on the tablet's clock: nothing for it.
    let now_min = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60) as i64;
    let clock = |m: i64| {
        let m = m.rem_euclid(1440);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let quiet = change(
        &app,
        &bob,
        json!({
            "endpoint": tablet,
            "quiet": {"start": clock(now_min - 60), "end": clock(now_min + 60)},
            "utc_offset": 0,
        }),
    )
    .await;
    assert_eq!(quiet["quiet"]["start"], clock(now_min - 60));
    assert_eq!(quiet["level"], "all", "left as it was");
    aw.say(&dm_name, "quiet now?", "d2").await;
    expect_pushes(&receiver, &[("/tablet", 4), ("/phone", 4)], "quiet hours").await;
    // The same hours on a clock twelve hours ahead are not now.
    change(&app, &bob, json!({"endpoint": tablet, "utc_offset": 720})).await;
    aw.say(&dm_name, "and now?", "d3").await;
    expect_pushes(&receiver, &[("/tablet", 5), ("/phone", 5)], "another clock").await;
    // Quiet hours removed with null; the paused laptop back to mentions and DMs.
    let cleared = change(&app, &bob, json!({"endpoint": tablet, "quiet": null})).await;
    assert_eq!(cleared["quiet"], Value::Null);
    change(&app, &bob, json!({"endpoint": laptop, "level": "mentions"})).await;
    aw.say(&dm_name, "all of you", "d4").await;
    expect_pushes(
        &receiver,
        &[("/tablet", 6), ("/phone", 6), ("/laptop", 1)],
        "back on",
    )
    .await;

    // A device's pushes end with the sign-in that subscribed it: signing out there (or a
    // revocation elsewhere) stops them.
    let (_, cookie) = app.login("bob", crate::common::PASSWORD).await;
    let kiosk = Auth::Cookie(cookie);
    let (_, _, _, kiosk_keys) = browser_keys();
    let kiosk_url = receiver.url("/kiosk");
    subscribe(
        &app,
        &kiosk,
        json!({"endpoint": kiosk_url, "keys": kiosk_keys}),
    )
    .await;
    aw.say(&dm_name, "kiosk too", "d5").await;
    let mut want = vec![("/tablet", 7), ("/phone", 7), ("/laptop", 2), ("/kiosk", 1)];
    expect_pushes(&receiver, &want, "a fourth device").await;
    app.api_ok(Method::POST, "/api/logout", &kiosk, None, 204)
        .await;
    let listed = devices(&app, &bob).await;
    assert!(
        !listed.to_string().contains("/kiosk"),
        "signed out, forgotten: {listed}"
    );
    aw.say(&dm_name, "kiosk gone", "d6").await;
    want = vec![("/tablet", 8), ("/phone", 8), ("/laptop", 3), ("/kiosk", 1)];
    expect_pushes(&receiver, &want, "after signing out").await;
}

#[tokio::test]
async fn an_edit_that_mentions_someone_away_pushes_it_to_them_alone() {
    let receiver = Receiver::start(201).await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let (bob_private, bob_public, bob_auth, bob_keys) = browser_keys();
    let (_, _, _, carol_keys) = browser_keys();
    let (to_bob, to_carol) = (receiver.url("/bob"), receiver.url("/carol"));
    subscribe(&app, &bob, json!({"endpoint": to_bob, "keys": bob_keys})).await;
    subscribe(
        &app,
        &carol,
        json!({"endpoint": to_carol, "keys": carol_keys, "level": "all"}),
    )
    .await;

    // Carol hears every message; bob only what mentions him.
    let mut aw = app.ws_connect(&alice, None).await;
    let sent = aw.say("general", "the build is red", "m1").await;
    let id = sent["id"].as_i64().unwrap();
    expect_pushes(&receiver, &[("/carol", 1)], "the message").await;

    // Alice edits it to mention bob: he is pushed it (the edited text), carol not again.
    let edit = |body: &str| json!({ "body": body });
    app.api_ok(
        Method::PATCH,
        &format!("/api/messages/{id}"),
        &alice,
        Some(&edit("@bob the build is red")),
        200,
    )
    .await;
    expect_pushes(&receiver, &[("/carol", 1), ("/bob", 1)], "the edit").await;
    let got = receiver.received();
    let push = got
        .iter()
        .find(|r| r.line.starts_with("POST /bob "))
        .unwrap();
    let clear = decrypt(bob_private, &bob_public, &bob_auth, &push.body).expect("decrypts");
    let note: Value = serde_json::from_slice(&clear).unwrap();
    assert_eq!(
        note,
        json!({"room": "general", "id": id, "user": "alice", "body": "@bob the build is red", "reason": "mention"})
    );

    // An edit that keeps the mention mentions nobody new: nothing is pushed.
    app.api_ok(
        Method::PATCH,
        &format!("/api/messages/{id}"),
        &alice,
        Some(&edit("@bob the build is green")),
        200,
    )
    .await;
    expect_pushes(&receiver, &[("/carol", 1), ("/bob", 1)], "a second edit").await;
}

#[tokio::test]
async fn a_user_keeps_twenty_devices_and_an_endpoint_that_does_not_answer_is_left_out() {
    let receiver = Receiver::start(201).await;
    let app = TestApp::builder().reaching_loopback().start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;

    // Twenty-two subscriptions: the two oldest are forgotten.
    for i in 0..22 {
        let (_, _, _, keys) = browser_keys();
        let endpoint = receiver.url(&format!("/device/{i}"));
        subscribe(&app, &bob, json!({"endpoint": endpoint, "keys": keys})).await;
        // (Apart in time: the oldest are told by when they were subscribed.)
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let listed = devices(&app, &bob).await;
    let endpoints: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints.len(), 20, "{endpoints:?}");
    for gone in [receiver.url("/device/0"), receiver.url("/device/1")] {
        assert!(!endpoints.contains(&gone.as_str()), "{gone} kept");
    }
    assert!(endpoints.contains(&receiver.url("/device/21").as_str()));

    // Carol's push service takes the connection and closes it without an answer: after
    // three such failures in a row it is left out for a while, not tried on every message.
    let carol = app.signup("carol").await;
    let (silent_addr, tried) = unanswering_service(false).await;
    let (_, _, _, keys) = browser_keys();
    let endpoint = format!("http://{silent_addr}/push/carol");
    subscribe(&app, &carol, json!({"endpoint": endpoint, "keys": keys})).await;
    let mut aw = app.ws_connect(&alice, None).await;
    for i in 1..=3 {
        aw.say(
            "general",
            &format!("@carol are you there? {i}"),
            &format!("c{i}"),
        )
        .await;
        tried_at_least(&tried, i).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = tried.load(std::sync::atomic::Ordering::SeqCst);
    for i in 4..=6 {
        aw.say("general", &format!("@carol again {i}"), &format!("c{i}"))
            .await;
    }
    // Bob's devices are pushed the mentions of him meanwhile, so the sender is not stuck.
    aw.say("general", "@bob still there?", "b1").await;
    receiver
        .wait_until(Duration::from_secs(10), "bob's pushes", |r| r.len() >= 20)
        .await;
    assert_eq!(
        tried.load(std::sync::atomic::Ordering::SeqCst),
        first,
        "the silent endpoint was not tried again"
    );
    assert_eq!(
        devices(&app, &carol).await.as_array().map(Vec::len),
        Some(1),
        "still subscribed"
    );
}

/// A push service that takes the connection and never answers is left out at once after
/// one timeout (not after three): each try holds a sender for the whole timeout.
#[tokio::test]
async fn an_endpoint_that_times_out_is_left_out_after_one_try() {
    let app = TestApp::builder()
        .reaching_loopback()
        .config(|c| c.outbound.timeout_seconds = 1)
        .start()
        .await;
    let alice = app.signup("alice").await;
    let carol = app.signup("carol").await;
    let (mute_addr, tried) = unanswering_service(true).await;
    let (_, _, _, keys) = browser_keys();
    let endpoint = format!("http://{mute_addr}/push/carol");
    subscribe(&app, &carol, json!({"endpoint": endpoint, "keys": keys})).await;
    let mut aw = app.ws_connect(&alice, None).await;
    aw.say("general", "@carol one", "t1").await;
    tried_at_least(&tried, 1).await;
    // Past the timeout (and the time to record it).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    aw.say("general", "@carol two", "t2").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        tried.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the endpoint that timed out was not tried again"
    );
}

/// A push service on 127.0.0.1 that takes connections and never answers: it closes each at
/// once, or holds it open and silent (`hold`) until the test ends. Its address, and how
/// many connections it took.
async fn unanswering_service(
    hold: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tried = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = tried.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if hold {
                held.push(stream);
            }
        }
    });
    (addr, tried)
}

/// Wait (up to 10 s) until the service behind `tried` took `n` connections.
async fn tried_at_least(tried: &std::sync::atomic::AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tried.load(std::sync::atomic::Ordering::SeqCst) < n {
        assert!(tokio::time::Instant::now() < deadline, "push {n} is tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
