//! The app without its server: once a page has been open, a reload while the server is down
//! opens the app itself (kept by the service worker) in its "reconnecting" state, with the
//! drafts and unsent messages of before; when the server is back the page reconnects on its
//! own, loads the room and sends what was written, once. A browser that signed out gets the
//! boot screen instead, never someone's chat. A page that comes back after missing more than
//! a replay holds gets the rest of every room, edits included, before anything live. Messages
//! refused for going too fast go again by themselves, in order. A message Not sent that is
//! discarded in one tab of a browser stays discarded in its other tabs.

use std::time::Instant;

use serde_json::json;

use crate::common::Auth;
use crate::harness::{browser_tools, cdp, message_box, within, App, Browser, Driver, WAIT};
use crate::{room_link, wait_room_open, WATCH_CSP};

/// A 1280×800 window for `name` whose pages run `script` before their own, signed up as
/// `name` and watching for CSP violations.
async fn signed_up_with(driver: &Driver, app: &App, name: &str, script: &str) -> Browser {
    let b = driver.browser(name, 1280, 800).await;
    cdp(
        driver,
        &b,
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": script }),
    )
    .await;
    b.create_account(&app.base, name).await;
    b.eval(WATCH_CSP, vec![]).await;
    b
}

/// Wait until the service worker controls the page and keeps the page and its script.
pub(crate) async fn wait_shell_kept(b: &Browser) {
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
    // A room of two, open when the server goes away: the reload opens it again.
    let bob = Auth::Cookie(app.register("bob").await);
    app.kit().create_room(&bob, "side", false).await;
    app.kit().invite(&bob, "side", "alice").await;
    b.click_xpath("side in the sidebar", &room_link("side"))
        .await;
    wait_room_open(&b, "side", "side").await;
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

    // The room it was in, not #general: what was written there (and is written now) shows.
    wait_room_open(&b, "side", "side").await;
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
    wait_room_open(&b, "side", "side").await;
    b.wait_log_has("the history and the kept message", &[before, offline])
        .await;
    let stored = b
        .wait_js(
            "the kept message to be stored once",
            "return fetch('api/rooms/side/messages?limit=50', { credentials: 'same-origin' })
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
pub(crate) const CUTTABLE_SOCKETS: &str = r#"
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
    let b = signed_up_with(&driver, &app, "ann", CUTTABLE_SOCKETS).await;
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

/// Write each of `arguments[0]` in the Message box and press Enter, all in one go.
const TYPE_ALL: &str = "
const box = document.getElementById('composer-input');
for (const text of arguments[0]) {
  box.value = text;
  box.dispatchEvent(new Event('input', { bubbles: true }));
  box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
}
return box.value;";

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
    // All five at once (typed one by one, a slow machine lets the rate refill between them).
    b.wait_visible("the Message box", &message_box()).await;
    b.eval(TYPE_ALL, vec![json!(texts)]).await;
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
    // Written while others wait: they wait their turn behind them. (At once again: typed,
    // they could come after the line emptied.)
    let mut texts = texts;
    let more: Vec<String> = (6..=7)
        .map(|i| format!("quick message {i}, written while others wait"))
        .collect();
    b.eval(TYPE_ALL, vec![json!(more)]).await;
    texts.extend(more);
    // One waiting can be taken back: it leaves the log and the outbox and is never sent.
    let discarded = texts.pop().expect("seven messages");
    let gone = b
        .eval(
            "const row = Array.from(document.querySelectorAll('[role=\"log\"] .msg.pending'))
               .find((r) => r.querySelector('.msg-body').textContent === arguments[0]
                 && r.textContent.includes('waiting: too many messages at once'));
             const button = row && Array.from(row.querySelectorAll('button'))
               .find((x) => x.textContent === 'Discard');
             if (!button) return false;
             button.click();
             return !(localStorage.getItem('hearth:outbox:quick') || '').includes(arguments[0]);",
            vec![json!(discarded)],
        )
        .await;
    assert_eq!(
        gone,
        json!(true),
        "a waiting message has Discard, which empties it from the outbox"
    );
    // Written after it: were the discarded one sent, it would be stored before this one.
    texts.push("quick message 8, after the discarded one".to_string());
    b.send_with_enter(&texts[6]).await;
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
        "stored once each, in the order written, but the one discarded"
    );
    let shown = b
        .eval(
            "return document.querySelector('[role=\"log\"]').textContent.includes(arguments[0]);",
            vec![json!(discarded)],
        )
        .await;
    assert_eq!(shown, json!(false), "the discarded message is not shown");
    b.assert_no_csp_violations("the page").await;
}

/// Sends whose text contains `FAIL-ME` go to a room that does not exist, so the server
/// refuses them (`unknown_room`) and the page shows them "Not sent".
const REFUSED_SENDS: &str = r#"
(() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data === 'string' && data.includes('FAIL-ME')) {
      const f = JSON.parse(data);
      if (f.type === 'send') data = JSON.stringify({ ...f, room: 'nowhere-at-all' });
    }
    return send.call(this, data);
  };
})();
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_not_sent_survives_a_reload_until_discarded() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = signed_up_with(&driver, &app, "nell", REFUSED_SENDS).await;
    let text = "FAIL-ME: words worth keeping";
    let failed = |what: &'static str| {
        let b = &b;
        async move {
            b.wait_js(
                what,
                "const row = Array.from(document.querySelectorAll('[role=\"log\"] .msg.failed'))
                   .find((r) => r.querySelector('.msg-body').textContent === arguments[0]);
                 return Boolean(row && row.textContent.includes('Not sent')
                   && Array.from(row.querySelectorAll('button')).some((x) => x.textContent === 'Retry'));",
                vec![json!(text)],
            )
            .await;
        }
    };
    b.send_with_enter(text).await;
    failed("the refused message, Not sent").await;
    let outbox = "return localStorage.getItem('hearth:outbox:nell') || '';";
    let kept = b.eval(outbox, vec![]).await;
    assert!(kept.as_str().unwrap_or("").contains(text), "{kept}");

    // A reload (or a crash) keeps it, still Not sent: not sent again by itself.
    b.reload().await;
    b.eval(WATCH_CSP, vec![]).await;
    failed("the refused message after the reload").await;
    b.send_with_enter("said after the reload").await;
    b.wait_log_has("a later message", &["said after the reload"])
        .await;
    let stored = b
        .eval(
            "return fetch('api/rooms/general/messages?limit=50', { credentials: 'same-origin' })
               .then((r) => r.json()).then((d) => d.messages.map((m) => m.body));",
            vec![],
        )
        .await;
    assert_eq!(stored, json!(["said after the reload"]), "never stored");

    // Discard takes it out of the page and the outbox for good.
    b.eval(
        "const row = Array.from(document.querySelectorAll('[role=\"log\"] .msg.failed'))
           .find((r) => r.querySelector('.msg-body').textContent === arguments[0]);
         Array.from(row.querySelectorAll('button')).find((x) => x.textContent === 'Discard').click();",
        vec![json!(text)],
    )
    .await;
    let left = b.eval(outbox, vec![]).await;
    assert!(!left.as_str().unwrap_or("").contains(text), "{left}");
    b.reload().await;
    b.wait_log_has(
        "the history after a second reload",
        &["said after the reload"],
    )
    .await;
    let shown = b
        .eval(
            "return document.querySelector('[role=\"log\"]').textContent.includes(arguments[0]);",
            vec![json!(text)],
        )
        .await;
    assert_eq!(shown, json!(false), "discarded for good");
    b.assert_no_csp_violations("the page").await;
}

/// Pages of history asked for `around=` a message answer 2 s late.
const SLOW_JUMPS: &str = "
const real = window.fetch;
window.fetch = (input, init) => {
  const url = String((input && input.url) || input);
  const answer = real(input, init);
  return url.includes('around=') ? answer.then((r) => new Promise((ok) => setTimeout(() => ok(r), 2000))) : answer;
};";

/// A jump into the past (a link to an old message) still loading when a message is sent:
/// sending shows the newest messages, and the jump's late page must not come back over them
/// (before, it did: the log was left as a window into the past, holding back live messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_still_loading_when_a_message_is_sent_does_not_come_back_over_the_newest() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let mut bob = app.ws(&app.register("bob").await).await;
    let first = bob.say("old 0").await;
    let old = first["id"].as_i64().expect("an id");
    for i in 1..120 {
        bob.say(&format!("old {i}")).await;
    }
    // The page loads the newest page only: "old 0" is far outside it.
    let b = driver.member(&app.base, "amy", 1280, 800).await;
    b.wait_log_has("the newest", &["old 119"]).await;
    b.eval(SLOW_JUMPS, vec![]).await;
    b.eval(
        "window.location.hash = `general/${arguments[0]}`;",
        vec![json!(old)],
    )
    .await;
    b.send_with_enter("sent while the jump loads").await;
    b.wait_log_has("the message sent", &["sent while the jump loads"])
        .await;
    // Past the late page: still the newest, following what is said live.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    bob.say("live after the jump").await;
    b.wait_log_has("a live message", &["live after the jump"])
        .await;
    let state = b
        .eval(
            "return {
               newer: !document.getElementById('log-newer').hidden,
               oldest: document.querySelector('[role=\"log\"] .msg[data-id] .msg-body').textContent,
             };",
            vec![],
        )
        .await;
    assert_eq!(state["newer"], false, "no Load newer: {state}");
    assert_ne!(
        state["oldest"], "old 0",
        "the jump's window is gone: {state}"
    );
    b.assert_no_csp_violations("the page").await;
}

/// Wait until `b` shows `text` as a message "Not sent", with Retry.
async fn wait_not_sent(b: &Browser, what: &str, text: &str) {
    b.wait_js(
        what,
        "const row = Array.from(document.querySelectorAll('[role=\"log\"] .msg.failed'))
           .find((r) => r.querySelector('.msg-body').textContent === arguments[0]);
         return Boolean(row && row.textContent.includes('Not sent')
           && Array.from(row.querySelectorAll('button')).some((x) => x.textContent === 'Retry'));",
        vec![json!(text)],
    )
    .await;
}

/// Two tabs of one browser share its storage, and each takes on the stored outbox when it
/// opens: a message Not sent that is discarded in one tab must not be written back by the
/// other (before, it was, as soon as that tab saved its own outbox, and it came back on the
/// next reload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_discarded_in_one_tab_stays_discarded_in_the_others() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = signed_up_with(&driver, &app, "nell", REFUSED_SENDS).await;
    let text = "FAIL-ME: taken back in the first tab";
    b.send_with_enter(text).await;
    wait_not_sent(&b, "the refused message, Not sent", text).await;
    let outbox = "return localStorage.getItem('hearth:outbox:nell') || '';";
    let kept = b.eval(outbox, vec![]).await;
    assert!(kept.as_str().unwrap_or("").contains(text), "{kept}");

    // A second tab of the same browser opens the chat: it shows the message Not sent too.
    let first = within(WAIT, "the first tab", b.client.window())
        .await
        .expect("the first tab's handle");
    let second = within(WAIT, "a new tab", b.client.new_window(true))
        .await
        .expect("a second tab")
        .handle;
    within(
        WAIT,
        "switching tabs",
        b.client.switch_to_window(second.clone()),
    )
    .await
    .expect("the second tab");
    b.goto(&app.base).await;
    b.wait_chat_ready().await;
    b.eval(WATCH_CSP, vec![]).await;
    wait_not_sent(&b, "the message Not sent in the second tab", text).await;

    // Discarded in the first tab: out of its log and of the stored outbox.
    within(WAIT, "switching tabs", b.client.switch_to_window(first))
        .await
        .expect("the first tab");
    b.eval(
        "const row = Array.from(document.querySelectorAll('[role=\"log\"] .msg.failed'))
           .find((r) => r.querySelector('.msg-body').textContent === arguments[0]);
         Array.from(row.querySelectorAll('button')).find((x) => x.textContent === 'Discard').click();",
        vec![json!(text)],
    )
    .await;
    let left = b.eval(outbox, vec![]).await;
    assert!(!left.as_str().unwrap_or("").contains(text), "{left}");

    // The second tab saves its outbox (a message is sent there): the discarded one is not
    // written back, and it leaves that tab's log too.
    within(WAIT, "switching tabs", b.client.switch_to_window(second))
        .await
        .expect("the second tab");
    let later = "said in the second tab";
    b.send_with_enter(later).await;
    b.wait_js(
        "the second tab's message to be stored",
        "return Array.from(document.querySelectorAll('[role=\"log\"] .msg[data-id] .msg-body'))
           .some((e) => e.textContent === arguments[0]);",
        vec![json!(later)],
    )
    .await;
    let left = b.eval(outbox, vec![]).await;
    assert!(
        !left.as_str().unwrap_or("").contains(text),
        "the second tab wrote the discarded message back: {left}"
    );
    b.wait_js(
        "the discarded message to leave the second tab",
        "return !document.querySelector('[role=\"log\"]').textContent.includes(arguments[0]);",
        vec![json!(text)],
    )
    .await;
    b.assert_no_csp_violations("the second tab").await;

    // A reload of either tab does not bring it back.
    b.reload().await;
    b.wait_log_has("the second tab after a reload", &[later])
        .await;
    let shown = b
        .eval(
            "return document.querySelector('[role=\"log\"]').textContent.includes(arguments[0]);",
            vec![json!(text)],
        )
        .await;
    assert_eq!(shown, json!(false), "discarded for good");
    let stored = b
        .eval(
            "return fetch('api/rooms/general/messages?limit=50', { credentials: 'same-origin' })
               .then((r) => r.json()).then((d) => d.messages.map((m) => m.body));",
            vec![],
        )
        .await;
    assert_eq!(stored, json!([later]), "never stored");
}
