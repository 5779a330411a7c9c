//! Adversarial inputs and protocol properties against a real server (port 0, its own SQLite
//! file).
//!
//! Thousands of malformed HTTP requests (over reqwest and over raw TCP) and WebSocket frames
//! (over tungstenite and over a hand-rolled frame writer that can break the framing itself)
//! are thrown at one server, several phases at once. Every answer is checked against the
//! contract: an application error is `{"error":{"code","message"}}` with a documented code and
//! its documented status, a refused frame is an `error` frame with a documented code, nothing is
//! ever a 5xx, and nothing hangs. Afterwards the server must still be healthy: `/healthz` says
//! `ok`, and a new user can register, chat and receive their own message.
//!
//! `headers_that_are_not_text_are_bad_requests` checks the exact codes for header values that
//! are not visible ASCII (Origin, Content-Type, Authorization, ...): 400 or the failed check's
//! own code, not 405.
//!
//! The `properties` module checks the protocol's promises with generated cases (a nonce is
//! stored once, delivery follows id order, `?since=` replays exactly what was committed) and
//! the parsers with pure properties; `PROPTEST_CASES=N` runs more cases.
//!
//! `cargo test --test adversarial -- --nocapture` prints the summary line
//! `adversarial: N HTTP requests, M WebSocket frames, 0 server errors`, and for the resource
//! abuse cases (abandoned password hashes, raced throttles, connection floods, quota abuse)
//! `adversarial: abuse (...): N requests, 0 server errors`.
//! `HEARTH_ADVERSARIAL_SEED=<u64>` replays another sequence of generated (mutated) inputs.
//!
//! The modules: `judge` (what an answer must look like), `mutate` (generated inputs), one per
//! surface (`raw_http`, `http`, `ws`, `raw_ws`), `abuse` (resource abuse) and `properties`.

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod http;
mod judge;
mod mutate;
mod properties;
mod raw_http;
mod raw_ws;
mod ws;

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hearth::config::Config;

use common::{assert_healthy, id_of, seed, send_frame, Auth, TestApp, PASSWORD};
use judge::Tally;

/// The longest any single answer may take before it counts as a hang.
const ANSWER: Duration = Duration::from_secs(5);
/// Generated (mutated) inputs per phase.
const MUTANTS: usize = 1000;

/// Start a server with the test configuration adjusted by `tweak`. Its client gives up after
/// [`ANSWER`], so that a hang is recorded as one instead of stalling a phase, and keeps enough
/// idle connections for the phases that send several requests at once.
async fn start(tweak: impl FnOnce(&mut Config) + 'static) -> TestApp {
    let mut app = TestApp::with_config(tweak).await;
    app.http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ANSWER)
        .pool_max_idle_per_host(16)
        .build()
        .expect("http client");
    app
}

/// Register `name` and return its session cookie, which the raw phases write into requests
/// of their own.
async fn session(app: &TestApp, name: &str) -> String {
    let (_, cookie) = app.register(name, PASSWORD).await;
    assert!(
        !cookie.is_empty(),
        "register {name}: an empty session cookie"
    );
    cookie
}

/// What a phase works with: the server, the shared tally, and the phase's own account.
#[derive(Clone, Copy)]
struct Phase<'a> {
    app: &'a TestApp,
    tally: &'a Tally,
    cookie: &'a str,
}

impl Phase<'_> {
    /// The phase's account as credentials for the kit's requests.
    fn auth(&self) -> Auth {
        Auth::Cookie(self.cookie.to_string())
    }
}

/// `/healthz` is ok, and a new user `who` can register, chat and receive their own message.
async fn assert_still_serves(app: &TestApp, who: &str) {
    assert_healthy(app).await;
    let auth = Auth::Cookie(session(app, who).await);
    let mut ws = app.ws_connect(&auth, None).await;
    let nonce = format!("{who}-hello");
    ws.send_json(&send_frame("  still here  ", Some(&nonce)))
        .await;
    let id = loop {
        let v = ws.next_frame().await;
        if v["type"] == "message" && v["nonce"] == nonce.as_str() {
            assert_eq!(v["user"], who);
            assert_eq!(v["body"], "still here");
            break id_of(&v);
        }
        assert_ne!(v["type"], "error", "sending failed: {v}");
    };
    let messages = app
        .history(&auth, "general", &format!("after={}", id - 1))
        .await;
    assert_eq!(
        messages.first().and_then(|m| m["id"].as_i64()),
        Some(id),
        "{messages:?}"
    );
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_documented_answers_and_the_server_stays_healthy() {
    let mut app = start(|_| {}).await;
    let seed = seed(
        "adversarial",
        "HEARTH_ADVERSARIAL_SEED",
        Some(0x4845_4152_5448),
    );
    let tally = Tally::default();
    let fuzzer = session(&app, "fuzzer").await;
    let raw_user = session(&app, "rawfuzzer").await;
    let ws_user = session(&app, "wsfuzzer").await;
    let phase = |cookie| Phase {
        app: &app,
        tally: &tally,
        cookie,
    };

    let started = Instant::now();
    let timed = |name: &'static str| {
        move |_| {
            eprintln!(
                "adversarial: {name} phase done after {:.1} s",
                started.elapsed().as_secs_f64()
            )
        }
    };
    tokio::join!(
        raw_http::phase(phase(&raw_user), seed).map(timed("raw HTTP")),
        http::phase(phase(&fuzzer), seed).map(timed("HTTP")),
        async {
            ws::phase(phase(&ws_user), seed).await;
            timed("WebSocket")(());
            raw_ws::phase(phase(&ws_user)).await;
        }
        .map(timed("raw WebSocket")),
    );
    let totals = tally.totals();
    let (http, ws, server_errors) = (totals.http, totals.ws, totals.server_errors);
    println!(
        "adversarial: {http} HTTP requests, {ws} WebSocket frames, {server_errors} server errors"
    );
    println!(
        "adversarial: seed {seed}, {:.1} s, {} garbage requests closed without an answer",
        started.elapsed().as_secs_f64(),
        totals.unanswered
    );

    assert_still_serves(&app, "survivor").await;
    // The accounts used for the abuse still work too.
    let res = app.get_as("/api/me", &Auth::Cookie(fuzzer)).await;
    assert_eq!(res.status(), 200);

    app.stop().await;
    tally.assert_clean(&format!(" (seed {seed})"));
    assert!(
        http >= 1000 && ws >= 1000,
        "too few inputs: {http} HTTP, {ws} WebSocket"
    );
}
