//! The app without its server: once a page has been open, a reload while the server is down
//! opens the app itself (kept by the service worker) in its "reconnecting" state, with the
//! drafts and unsent messages of before; when the server is back the page reconnects on its
//! own, loads the room and sends what was written, once. A browser that signed out gets the
//! boot screen instead, never someone's chat. A page that comes back after missing more than
//! a replay holds gets the rest of every room, edits included, before anything live. Messages
//! refused for going too fast go again by themselves, in order.

use std::time::Instant;

use serde_json::json;

use crate::common::Auth;
use crate::harness::{browser_tools, cdp, message_box, App, Browser, Driver};
use crate::{room_link, wait_room_open, WATCH_CSP};

/// Wait until the service worker controls the page and keeps the page and its script.
async fn wait_shell_kept(b: &Browser) {
    b.wait_js(
        "the service worker to control the page and keep the shell",
        "if (!navigator.serviceWorker || !navigator.serviceWorker.controller) return false;
         return caches.open('hearth-shell-v1')
           .then((c) => c.keys())
           .then((keys) => {
             const paths = keys.map((r) => new URL(r.url).pathname);
             return paths.includes('/') && paths.includes('/js/app.js') && paths.includes('/js/chat.js')
                 && paths.includes('/main.css') && paths.includes('/config.js');
           })
           .catch(() => false);",
        vec![],
    )
    .await;
}

async fn connection_text(b: &Browser) -> String {
    b.eval(
        "return document.getElementById('conn-text').textContent;",
        vec![],
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_while_the_server_is_down_opens_the_app_reconnecting() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let mut app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("alice", 1280, 800).await;
    b.create_account(&app.base, "alice").await;
    let before = "Said before the outage";
    b.send_with_enter(before).await;
    b.wait_log_has("the first message", &[before]).await;
    wait_shell_kept(&b).await;
    // Installable: the page links a manifest the browser can read, whose icons load.
    b.wait_js(
        "the web app manifest and its icons",
        "const link = document.querySelector('link[rel=\"manifest\"]');
         if (!link) return false;
         return fetch(link.href).then((r) => r.json()).then((m) => {
           if (m.display !== 'standalone' || !Array.isArray(m.icons)) return false;
           return Promise.all(m.icons.map((i) => new Promise((ok) => {
             const img = new Image();
             img.onload = () => ok(img.naturalWidth > 0);
             img.onerror = () => ok(false);
             img.src = new URL(i.src, link.href).href;
           }))).then((loaded) => loaded.length >= 3 && loaded.every(Boolean));
         }).catch(() => false);",
        vec![],
    )
    .await;

    // The server goes away; the reload still opens the app (not an error page), reconnecting.
    app.stop().await;
    b.reload().await;
    b.eval(WATCH_CSP, vec![]).await;
    b.wait_visible("the Message box after an offline reload", &message_box())
        .await;
    b.wait_js(
        "the connection status to say the app is offline and reconnecting",
        "const c = document.getElementById('conn');
         return c.dataset.state !== 'connected' && !document.getElementById('boot').checkVisibility();",
        vec![],
    )
    .await;
    b.wait_js(
        "the offline status text",
        "return document.getElementById('conn-text').textContent === 'Offline, reconnecting…';",
        vec![],
    )
    .await;
    assert_ne!(connection_text(&b).await, "Connected");

    // Written while offline: kept, shown as pending, sent once the server is back.
    let offline = "Written after an offline reload";
    b.send_with_enter(offline).await;
    b.wait_log_has("the pending message", &[offline]).await;

    app.restart().await;
    b.wait_visible(
        "the connection to come back by itself",
        "//*[@role = 'status' and normalize-space(.) = 'Connected']",
    )
    .await;
    wait_room_open(&b, "general", "general").await;
    b.wait_log_has("the history and the kept message", &[before, offline])
        .await;
    let stored = b
        .wait_js(
            "the kept message to be stored once",
            "return fetch('api/rooms/general/messages?limit=50', { credentials: 'same-origin' })
               .then((r) => r.json())
               .then((d) => d.messages.filter((m) => m.body === arguments[0]).length === 1 ? 1 : false)
               .catch(() => false);",
            vec![json!(offline)],
        )
        .await;
    assert_eq!(stored, json!(1));
    b.assert_no_csp_violations("the page").await;

    // Signed out: an offline reload shows the boot screen, not the last person's chat.
    b.sign_out().await;
    b.wait_visible(
        "the sign-in page",
        "//button[normalize-space(.) = 'Sign in']",
    )
    .await;
    app.stop().await;
    b.reload().await;
    b.wait_js(
        "the boot screen saying Hearth cannot be reached",
        "const s = document.getElementById('boot-status');
         return Boolean(s && s.checkVisibility() && s.textContent.includes('Can’t reach Hearth'));",
        vec![],
    )
    .await;
    let chat_shown = b
        .eval(
            "return Boolean(document.querySelector('[role=\"log\"]')?.checkVisibility());",
            vec![],
        )
        .await;
    assert_eq!(chat_shown, json!(false), "no chat for a signed-out browser");
    eprintln!("offline_reload: {:.1} s", started.elapsed().as_secs_f64());
}

/// Installed before the page's own scripts: the page's WebSockets can be cut
/// (`__sockets.cut()`) and kept from coming back (while `__sockets.blocked`, a new one asks
/// for a path that refuses the upgrade) until `__sockets.mend()`, which also tells the page
/// it is online again.
const CUTTABLE_SOCKETS: &str = r#"
(() => {
  const Real = window.WebSocket;
  const state = { sockets: [], blocked: false };
  state.cut = () => { state.blocked = true; for (const s of state.sockets) s.close(); };
  state.mend = () => { state.blocked = false; window.dispatchEvent(new Event('online')); };
  function Cuttable(url, protocols) {
    const target = state.blocked ? String(url).replace('/ws', '/ws-cut') : url;
    const ws = protocols === undefined ? new Real(target) : new Real(target, protocols);
    state.sockets.push(ws);
    return ws;
  }
  Cuttable.prototype = Real.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Cuttable[k] = Real[k];
  window.WebSocket = Cuttable;
  window.__sockets = state;
})();
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_missed_more_than_a_replay_gets_every_room_and_edit_back_in_order() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("ann", 1280, 800).await;
    cdp(
        &driver,
        &b,
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": CUTTABLE_SOCKETS }),
    )
    .await;
    b.create_account(&app.base, "ann").await;
    b.eval(WATCH_CSP, vec![]).await;
    let bob_cookie = app.register("bob").await;
    let bob_auth = Auth::Cookie(bob_cookie.clone());
    app.kit().create_room(&bob_auth, "side", false).await;
    app.kit().invite(&bob_auth, "side", "ann").await;
    let mut bob = app.ws(&bob_cookie).await;
    let early = bob.say_in("side", "side: written before the cut").await;
    let early_id = early["id"].as_i64().unwrap();

    // Ann has read both rooms (each is loaded in the page) and is in general.
    b.click_xpath("side in the sidebar", &room_link("side"))
        .await;
    wait_room_open(&b, "side", "side").await;
    b.wait_log_has("side's history", &["side: written before the cut"])
        .await;
    b.click_xpath("general in the sidebar", &room_link("general"))
        .await;
    wait_room_open(&b, "general", "general").await;

    // Her connection drops; meanwhile more happens than one replay holds (1,000 positions).
    b.eval("window.__sockets.cut();", vec![]).await;
    b.wait_js(
        "the page to notice it is offline",
        "return document.getElementById('conn').dataset.state !== 'connected';",
        vec![],
    )
    .await;
    for i in 0..1010 {
        bob.say(&format!("general {i}")).await;
    }
    bob.say_in("side", "side: written in the gap").await;
    app.kit()
        .api_ok(
            reqwest::Method::PATCH,
            &format!("/api/messages/{early_id}"),
            &bob_auth,
            Some(&json!({ "body": "side: edited in the gap" })),
            200,
        )
        .await;

    // Back: the replay (the oldest 1,000) and then the rest over HTTP, in every room; what
    // is said live meanwhile comes after it.
    b.eval("window.__sockets.mend();", vec![]).await;
    b.wait_visible(
        "the connection to come back",
        "//*[@role = 'status' and normalize-space(.) = 'Connected']",
    )
    .await;
    bob.say("general: live after the gap").await;
    b.wait_log_has(
        "the end of general's gap and the live message",
        &["general 1009", "general: live after the gap"],
    )
    .await;
    let order = b
        .eval(
            "const t = document.querySelector('[role=\"log\"]').textContent;
             return [t.indexOf('general 999'), t.indexOf('general 1009'),
                     t.indexOf('general: live after the gap')];",
            vec![],
        )
        .await;
    let at: Vec<i64> = serde_json::from_value(order).unwrap();
    assert!(
        at[0] >= 0 && at[0] < at[1] && at[1] < at[2],
        "in order: {at:?}"
    );
    b.click_xpath("side in the sidebar", &room_link("side"))
        .await;
    wait_room_open(&b, "side", "side").await;
    let shown = b
        .wait_log_has(
            "side's message and edit from the gap",
            &["side: edited in the gap", "side: written in the gap"],
        )
        .await;
    assert!(!shown.contains("written before the cut"), "{shown}");
    let since = b
        .eval(
            "const s = window.__sockets.sockets.map((w) => new URL(w.url).searchParams.get('since'));
             return s[s.length - 1];",
            vec![],
        )
        .await;
    assert!(since.is_string(), "the page resumed with since=: {since}");
    b.assert_no_csp_violations("the page").await;
    eprintln!("gap: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_refused_for_going_too_fast_are_sent_again_by_themselves_in_order() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start_with(|c| {
        c.limits.messages_per_second = 1.0;
        c.limits.message_burst = 3;
    })
    .await;
    let driver = Driver::start(&tools).await;
    let b = driver.member(&app.base, "quick", 1280, 800).await;
    let texts: Vec<String> = (1..=5).map(|i| format!("quick message {i}")).collect();
    for t in &texts {
        b.send_with_enter(t).await;
    }
    // While one waits it is still unsent: kept in the outbox (a reload would send it).
    let kept = b
        .wait_js(
            "a message waiting for the rate, kept in the outbox",
            "const waiting = Array.from(document.querySelectorAll('[role=\"log\"] .msg.pending'))
               .filter((r) => r.textContent.includes('waiting: too many messages at once'))
               .map((r) => r.querySelector('.msg-body').textContent);
             const outbox = localStorage.getItem('hearth:outbox:quick') || '';
             return waiting.length && waiting.every((t) => outbox.includes(t)) ? waiting.length : false;",
            vec![],
        )
        .await;
    assert!(kept.as_i64().unwrap_or(0) >= 1, "{kept}");
    // Written while others wait: they wait their turn behind them.
    let mut texts = texts;
    for i in 6..=7 {
        texts.push(format!("quick message {i}, written while others wait"));
        b.send_with_enter(&texts[i - 1]).await;
    }
    let wanted: Vec<&str> = texts.iter().map(String::as_str).collect();
    b.wait_log_has("every message, in order", &wanted).await;
    b.wait_for("every message to be sent, none waiting or failed", || async {
        let left = b
            .eval(
                "return document.querySelectorAll('[role=\"log\"] .msg.pending, [role=\"log\"] .msg.failed').length;",
                vec![],
            )
            .await;
        (left == json!(0)).then_some(())
    })
    .await;
    let stored = b
        .eval(
            "return fetch('api/rooms/general/messages?limit=50', { credentials: 'same-origin' })
               .then((r) => r.json()).then((d) => d.messages.map((m) => m.body));",
            vec![],
        )
        .await;
    assert_eq!(
        stored,
        json!(texts),
        "stored once each, in the order written"
    );
    b.assert_no_csp_violations("the page").await;
}
