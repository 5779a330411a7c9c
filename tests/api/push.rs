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

use crate::common::{Received, Receiver, TestApp};

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
    let app = TestApp::builder()
        .config(|c| c.outbound.allow_private_networks = true)
        .start()
        .await;
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
    app.api_ok(
        Method::POST,
        "/api/push/subscriptions",
        &bob,
        Some(&json!({"endpoint": endpoint, "keys": keys, "expirationTime": null})),
        201,
    )
    .await;
    for bad in [
        json!({"endpoint": "not a url", "keys": keys}),
        json!({"endpoint": endpoint, "keys": {"p256dh": "AAAA", "auth": keys["auth"]}}),
        json!({"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": "AAAA"}}),
        json!({"endpoint": "ftp://push.example/x", "keys": keys}),
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
    app.api_ok(
        Method::POST,
        "/api/push/subscriptions",
        &carol,
        Some(&json!({"endpoint": carol_endpoint, "keys": carol_keys})),
        201,
    )
    .await;
    app.api_ok(
        Method::DELETE,
        "/api/push/subscriptions",
        &carol,
        Some(&json!({"endpoint": carol_endpoint})),
        204,
    )
    .await;

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
        json!({"room": "general", "id": sent["id"], "user": "alice", "body": "@bob the build is red, @carol"})
    );

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
        got.iter().all(|r| r.line.contains("/push/bob-phone")),
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
    app.api_ok(
        Method::POST,
        "/api/push/subscriptions",
        &carol,
        Some(&json!({"endpoint": "https://push.example/carol", "keys": keys})),
        201,
    )
    .await;
}
