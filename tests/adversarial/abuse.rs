//! Resource abuse: registrations abandoned while they wait to hash, a raced login throttle,
//! a connection flood from one address, and one account pushing every quota. Each must be
//! refused with documented answers while everyone else is still served.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::common::{Auth, TestApp, PASSWORD};
use crate::judge::Tally;
use crate::{assert_still_serves, session, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_abuse_is_refused_without_server_errors() {
    let mut app = start(|c| {
        // Hashes slow enough that abandoned requests queue up for the cores.
        c.auth.pbkdf2_iterations = 20_000;
        c.limits.http_connections_per_address = 64;
    })
    .await;
    let tally = Tally::default();
    let started = Instant::now();
    hash_admission(&app, &tally).await;
    raced_throttle(&app, &tally).await;
    connection_flood(&app, &tally).await;
    quotas(&app, &tally).await;
    let totals = tally.totals();
    println!(
        "adversarial: abuse (hash admission, raced throttles, connection floods, quotas): \
         {} requests, {} server errors, {:.1} s",
        totals.http,
        totals.server_errors,
        started.elapsed().as_secs_f64()
    );
    assert_still_serves(&app, "abusesurvivor").await;
    app.stop().await;
    tally.assert_clean("");
}

/// Send one same-origin JSON request and record its answer: a 5xx or a hang is a server
/// error; the status is returned for the phase's own counting (0 when nothing came back).
async fn call(
    app: &TestApp,
    tally: &Tally,
    method: Method,
    path: &str,
    auth: Option<&Auth>,
    body: Option<Value>,
) -> u16 {
    let mut rb = app.request(method, path, auth).header("origin", &app.base);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    tally.http(1);
    match timeout(Duration::from_secs(30), rb.send()).await {
        Ok(Ok(res)) => {
            let status = res.status().as_u16();
            if status >= 500 {
                tally.server_error(format!("{path}: {status}"));
            }
            status
        }
        // Refused at accept by a connection cap: no HTTP answer; the caller decides.
        Ok(Err(_)) => 0,
        Err(_) => {
            tally.server_error(format!("{path}: hung"));
            0
        }
    }
}

/// `POST path` as `auth` with a JSON body.
async fn post(app: &TestApp, tally: &Tally, path: &str, auth: Option<&Auth>, body: Value) -> u16 {
    call(app, tally, Method::POST, path, auth, Some(body)).await
}

/// 200 registrations that hang up while they wait for a password-hashing slot, then a real
/// registration and login must still work at once.
async fn hash_admission(app: &TestApp, tally: &Tally) {
    let mut sockets = Vec::new();
    for i in 0..200 {
        let body = json!({ "username": format!("ghost{i}"), "password": PASSWORD }).to_string();
        let request = format!(
            "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let Ok(mut s) = TcpStream::connect(app.addr).await else {
            tally.problem("hash admission: cannot connect".into());
            continue;
        };
        let _ = s.write_all(request.as_bytes()).await;
        tally.http(1);
        sockets.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(sockets);
    let creds = json!({ "username": "realperson", "password": PASSWORD });
    // While the server is still closing the abandoned connections, the per-address cap may
    // refuse a new one for a moment (no answer at all); a leaked hashing place would instead
    // answer 429 `busy` for good.
    let mut status = 0;
    for _ in 0..20 {
        status = post(app, tally, "/api/register", None, creds.clone()).await;
        if status != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if status != 201 {
        tally.problem(format!("hash admission: a real registration got {status}"));
    }
    let status = post(app, tally, "/api/login", None, creds).await;
    if status != 200 {
        tally.problem(format!("hash admission: a real login got {status}"));
    }
}

/// 40 concurrent wrong passwords for one account: at most the documented 10 are checked.
async fn raced_throttle(app: &TestApp, tally: &Tally) {
    session(app, "target").await;
    let guesses = (0..40).map(|i| {
        let guess = json!({ "username": "target", "password": format!("guess {i}") });
        post(app, tally, "/api/login", None, guess)
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|s| **s == 401).count();
    let throttled = answers.iter().filter(|s| **s == 429).count();
    if checked > 10 || checked + throttled != answers.len() {
        tally.problem(format!(
            "raced throttle: {checked} guesses checked, {throttled} throttled of {}",
            answers.len()
        ));
    }
}

/// 600 idle sockets from one address: the server keeps answering everyone else.
async fn connection_flood(app: &TestApp, tally: &Tally) {
    let mut flood = Vec::new();
    for _ in 0..600 {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            break;
        };
        if socket.bind("127.0.0.4:0".parse().unwrap()).is_err() {
            tally.problem("connection flood: cannot bind 127.0.0.4".into());
            break;
        }
        match socket.connect(app.addr).await {
            Ok(s) => flood.push(s),
            Err(e) => {
                tally.problem(format!("connection flood: connect failed: {e}"));
                break;
            }
        }
    }
    for _ in 0..20 {
        let status = call(app, tally, Method::GET, "/healthz", None, None).await;
        if status != 200 {
            tally.problem(format!("connection flood: /healthz answered {status}"));
        }
    }
    drop(flood);
}

// ---------------------------------------------------------------------------------------------
// Quotas

/// One account tries to create 50 rooms, make 160 people-to-room additions, mint 50 tokens and
/// start 70 conversations: the quotas stop each with documented answers.
async fn quotas(app: &TestApp, tally: &Tally) {
    let spammer = Auth::Cookie(session(app, "spammer").await);
    for v in 0..8 {
        session(app, &format!("victim{v}")).await;
    }
    let rooms = room_quota(app, tally, &spammer).await;
    invitation_quota(app, tally, &spammer, &rooms).await;
    token_quota(app, tally, &spammer).await;
    conversation_quota(app, tally, &spammer).await;
}

/// 50 rooms asked for, 20 created; returns their names.
async fn room_quota(app: &TestApp, tally: &Tally, spammer: &Auth) -> Vec<String> {
    let mut created = Vec::new();
    let mut refused = 0;
    for i in 0..50 {
        let name = format!("spam-{i}");
        let body = json!({ "name": name, "public": true });
        match post(app, tally, "/api/rooms", Some(spammer), body).await {
            201 => created.push(name),
            429 => refused += 1,
            other => tally.problem(format!("quota: room creation answered {other}")),
        }
    }
    if created.len() != 20 || refused != 30 {
        tally.problem(format!(
            "quota: {} rooms created, {refused} refused",
            created.len()
        ));
    }
    created
}

/// 8 people invited to each of `rooms`: 100 additions pass, the rest are limited.
async fn invitation_quota(app: &TestApp, tally: &Tally, spammer: &Auth, rooms: &[String]) {
    let (mut added, mut limited) = (0, 0);
    for v in 0..8 {
        for room in rooms {
            let path = format!("/api/rooms/{room}/members");
            let body = json!({ "username": format!("victim{v}") });
            match post(app, tally, &path, Some(spammer), body).await {
                200 => added += 1,
                429 => limited += 1,
                other => tally.problem(format!("quota: an invitation answered {other}")),
            }
        }
    }
    if added != 100 || limited != 60 {
        tally.problem(format!(
            "quota: {added} invitations passed and {limited} were limited (cap 100 of 160)"
        ));
    }
}

/// 50 tokens asked for, 20 minted.
async fn token_quota(app: &TestApp, tally: &Tally, spammer: &Auth) {
    let mut tokens = 0;
    for i in 0..50 {
        let body = json!({ "name": format!("bot {i}") });
        if post(app, tally, "/api/tokens", Some(spammer), body).await == 201 {
            tokens += 1;
        }
    }
    if tokens != 20 {
        tally.problem(format!("quota: {tokens} tokens minted past a cap of 20"));
    }
}

/// 70 conversations asked for, 60 started.
async fn conversation_quota(app: &TestApp, tally: &Tally, spammer: &Auth) {
    for i in 0..70 {
        session(app, &format!("dm{i}")).await;
    }
    let mut dms = 0;
    for i in 0..70 {
        let body = json!({ "users": [format!("dm{i}")] });
        if post(app, tally, "/api/dms", Some(spammer), body).await == 201 {
            dms += 1;
        }
    }
    if dms != 60 {
        tally.problem(format!(
            "quota: {dms} conversations started past a cap of 60"
        ));
    }
}
