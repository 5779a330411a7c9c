//! Finding and linking, in a real browser: the quick switcher finds people (opening a DM) and
//! public rooms to join; bare `www.` addresses become https links; "Copy link to message" gives
//! a permalink that opens the room at that message, even far back in history (and says so when
//! the message is not available), and tells screen readers once; `@here` is highlighted; the
//! slash commands `/me`, `/topic` and `/invite` with their autocomplete list. axe-core on the
//! switcher and the list at both widths in both palettes, and no CSP violations.

use std::time::{Duration, Instant};

use fantoccini::key::Key;
use reqwest::Method;
use serde_json::json;

use crate::common::Auth;
use crate::harness::{
    assert_axe_clean_in, browser_tools, emulate_scheme, labelled, message_box, say, App, Browser,
    Driver, PASSWORD, WAIT,
};
use crate::{wait_room_open, TARGET_SHOWN, WATCH_CSP};

fn key(k: Key) -> String {
    char::from(k).to_string()
}

fn cookie(c: &str) -> Auth {
    Auth::Cookie(c.to_string())
}

/// Run axe-core on the element `selector` (and what is inside it); fail on any violation.
async fn assert_axe_clean(b: &Browser, selector: &str, phase: &str) {
    assert_axe_clean_in(b, selector, phase).await;
}

/// Sign `username` (registered through the API) in on `b`.
async fn sign_in(b: &Browser, base: &str, username: &str) {
    b.submit_sign_in(base, "Sign in", username, PASSWORD).await;
    b.wait_chat_ready().await;
}

/// Press Ctrl+K in the Message box and wait for the quick switcher's field.
async fn open_switcher(b: &Browser) -> fantoccini::elements::Element {
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.type_into(&input, &format!("{}k", key(Key::Control)))
        .await;
    b.wait_visible(
        "the quick switcher",
        &labelled("input", "Find a room or conversation"),
    )
    .await
}

/// Wait until the switcher's option of `kind` for `key` is listed and is the active one
/// (pressing Down until it is); checks the listbox semantics on the way.
async fn activate_option(
    b: &Browser,
    filter: &fantoccini::elements::Element,
    kind: &str,
    name: &str,
    label: &str,
) {
    b.wait_js(
        &format!("the {label} option for {name}"),
        "const o = Array.from(document.querySelectorAll('#switcher-list [role=\"option\"]'));
         return o.some((x) => x.dataset.kind === arguments[0] && x.dataset.key === arguments[1]
           && x.textContent.includes(arguments[2]));",
        vec![json!(kind), json!(name), json!(label)],
    )
    .await;
    for _ in 0..20 {
        let active = b
            .eval(
                "const f = document.getElementById('switcher-input');
                 const a = document.getElementById(f.getAttribute('aria-activedescendant'));
                 return a && a.getAttribute('role') === 'option' && a.getAttribute('aria-selected') === 'true'
                   ? [a.dataset.kind, a.dataset.key] : null;",
                vec![],
            )
            .await;
        if active == json!([kind, name]) {
            return;
        }
        b.type_into(filter, &key(Key::Down)).await;
    }
    panic!("the {label} option for {name} never became active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switcher_finds_people_and_public_rooms_to_join() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await;
    app.kit().create_room(&cookie(&bob), "lounge", true).await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("alice", 1200, 800).await;
    emulate_scheme(&driver, &b, "light").await;
    sign_in(&b, &app.base, "alice").await;
    b.eval(WATCH_CSP, vec![]).await;

    // A person: "Person", Enter opens (creates) the DM.
    let filter = open_switcher(&b).await;
    b.type_into(&filter, "bob").await;
    activate_option(&b, &filter, "person", "bobby", "Person").await;
    assert_axe_clean(&b, "#switcher", "switcher, desktop, light").await;
    emulate_scheme(&driver, &b, "dark").await;
    assert_axe_clean(&b, "#switcher", "switcher, desktop, dark").await;
    emulate_scheme(&driver, &b, "light").await;
    b.type_into(&filter, &key(Key::Enter)).await;
    wait_room_open(&b, "dm:alice,bobby", "bobby").await;
    let rooms = app.kit().my_rooms(&cookie(&alice)).await;
    assert!(
        rooms.iter().any(|r| r["name"] == "dm:alice,bobby"),
        "the DM exists: {rooms:?}"
    );

    // A public room not joined: "Join room", Enter joins and opens it.
    let filter = open_switcher(&b).await;
    b.type_into(&filter, "#lou").await;
    activate_option(&b, &filter, "join", "lounge", "Join room").await;
    b.type_into(&filter, &key(Key::Enter)).await;
    wait_room_open(&b, "lounge", "lounge").await;
    assert!(
        app.kit().my_room(&cookie(&alice), "lounge").await.is_some(),
        "alice joined lounge"
    );
    // Joined now: listed as a room, no longer as one to join.
    let filter = open_switcher(&b).await;
    b.type_into(&filter, "lou").await;
    b.wait_js(
        "lounge listed as a room of alice's",
        "const o = Array.from(document.querySelectorAll('#switcher-list [role=\"option\"]'));
         return o.length === 1 && o[0].dataset.kind === 'room' && o[0].dataset.room === 'lounge';",
        vec![],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kinds = b
        .eval(
            "return Array.from(document.querySelectorAll('#switcher-list [role=\"option\"]'), (o) => o.dataset.kind);",
            vec![],
        )
        .await;
    assert_eq!(kinds, json!(["room"]));
    b.type_into(&filter, &key(Key::Escape)).await;

    // 360 px, both palettes.
    b.set_viewport(360, 740).await;
    let filter = open_switcher(&b).await;
    b.type_into(&filter, "bo").await;
    b.wait_js(
        "the DM with bobby listed",
        "return Array.from(document.querySelectorAll('#switcher-list [role=\"option\"]')).length > 0;",
        vec![],
    )
    .await;
    assert_axe_clean(&b, "#switcher", "switcher, 360px, light").await;
    emulate_scheme(&driver, &b, "dark").await;
    assert_axe_clean(&b, "#switcher", "switcher, 360px, dark").await;
    b.assert_no_csp_violations("alice").await;
    b.close().await;
    drop(driver);
    eprintln!("switcher: {:.1} s", started.elapsed().as_secs_f64());
}

/// The id of the newest message in the log whose text contains `needle`.
async fn message_id(b: &Browser, needle: &str) -> i64 {
    b.wait_js(
        &format!("the message {needle:?}"),
        "const rows = Array.from(document.querySelectorAll('[role=\"log\"] .msg[data-id]'));
         const r = rows.reverse().find((x) => x.textContent.includes(arguments[0]));
         return r ? Number(r.dataset.id) : false;",
        vec![json!(needle)],
    )
    .await
    .as_i64()
    .expect("a message id")
}

/// Focus message `id` and press its "Copy link to message" button; returns the link shown.
async fn copy_link(b: &Browser, id: i64) -> String {
    b.eval(
        "document.querySelector('[role=\"log\"] .msg[data-id=\"' + arguments[0] + '\"]').focus();",
        vec![json!(id)],
    )
    .await;
    let btn = b
        .wait_visible(
            "Copy link to message",
            &format!(
                "//*[@data-id = '{id}']//*[@role = 'group' and @aria-label = 'Message actions']//button[@aria-label = 'Copy link to message']"
            ),
        )
        .await;
    b.click(&btn).await;
    let shown = b
        .wait_js(
            "the copied link to be shown",
            "const t = document.getElementById('composer-notice').textContent;
             const m = /(https?:\\/\\/\\S+)$/.exec(t); return m ? m[1] : false;",
            vec![],
        )
        .await;
    shown.as_str().expect("a link").to_string()
}

async fn wait_room_error(b: &Browser, text: &str) {
    b.wait_js(
        &format!("the note {text:?}"),
        "const e = document.getElementById('room-error');
         return !!e && !e.hidden && e.textContent.includes(arguments[0]);",
        vec![json!(text)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permalinks_www_links_and_here() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    app.register("alice").await;
    let bob = cookie(&app.register("bob").await);
    let kit = app.kit();
    let post = |room: &str, body: &str| {
        let room = room.to_string();
        let body = body.to_string();
        let bob = bob.clone();
        async move {
            let v = kit
                .api_ok(
                    Method::POST,
                    &format!("/api/rooms/{room}/messages"),
                    &bob,
                    Some(&json!({ "body": body })),
                    201,
                )
                .await;
            v["message"]["id"].as_i64().expect("an id")
        }
    };
    let target = post("general", "the permalink target").await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("alice", 1200, 800).await;
    sign_in(&b, &app.base, "alice").await;
    b.eval(WATCH_CSP, vec![]).await;

    let id = message_id(&b, "the permalink target").await;
    assert_eq!(id, target);
    let link = copy_link(&b, id).await;
    assert_eq!(link, format!("{}#general/{id}", app.base), "the permalink");

    // Far back in history: more than 100 messages after it.
    for i in 0..110 {
        post("general", &format!("filler {i}")).await;
    }
    // www links and @here, rendered for alice.
    post(
        "general",
        "docs at www.example.com/path/x?y=1. and (www.example.org) but not awww.example.com",
    )
    .await;
    post("general", "@here standup").await;
    post("general", &format!("see {link} for context")).await;
    b.wait_log_has("the last messages", &["@here standup", "for context"])
        .await;
    let www = b
        .eval(
            "const body = Array.from(document.querySelectorAll('[role=\"log\"] .msg-body')).find((x) => x.textContent.includes('docs at'));
             return Array.from(body.querySelectorAll('a'), (a) => [a.textContent, a.href, a.target, a.rel]);",
            vec![],
        )
        .await;
    let rel = "noopener noreferrer";
    assert_eq!(
        www,
        json!([
            [
                "www.example.com/path/x?y=1",
                "https://www.example.com/path/x?y=1",
                "_blank",
                rel
            ],
            ["www.example.org", "https://www.example.org/", "_blank", rel],
        ])
    );
    let here = b
        .eval(
            "const body = Array.from(document.querySelectorAll('[role=\"log\"] .msg-body')).find((x) => x.textContent.includes('standup'));
             const m = body.querySelector('mark.mention-me');
             return [m && m.textContent, body.closest('.msg').classList.contains('mentions-me')];",
            vec![],
        )
        .await;
    assert_eq!(here, json!(["@here", true]), "@here is highlighted");

    // A permalink inside a message opens in the page.
    let inner = b
        .eval(
            "const body = Array.from(document.querySelectorAll('[role=\"log\"] .msg-body')).find((x) => x.textContent.includes('for context'));
             const a = body.querySelector('a');
             return [a.getAttribute('href'), a.hasAttribute('target')];",
            vec![],
        )
        .await;
    assert_eq!(inner, json!([format!("#general/{id}"), false]));
    b.eval(
        "Array.from(document.querySelectorAll('[role=\"log\"] .msg-body')).find((x) => x.textContent.includes('for context')).querySelector('a').click();",
        vec![],
    )
    .await;
    b.wait_js(
        "the target shown after a click",
        TARGET_SHOWN,
        vec![json!(id)],
    )
    .await;

    // A fresh page at the permalink.
    b.goto("about:blank").await;
    b.goto(&link).await;
    b.wait_chat_ready().await;
    b.eval(WATCH_CSP, vec![]).await;
    b.wait_js(
        "the target shown on a fresh page",
        TARGET_SHOWN,
        vec![json!(id)],
    )
    .await;
    let far = b
        .eval(
            "return !document.querySelector('[role=\"log\"]').textContent.includes('for context');",
            vec![],
        )
        .await;
    assert_eq!(
        far,
        json!(true),
        "the page shows the history around the target"
    );

    // Not available: unknown, deleted, in a room alice is not in.
    let secret = {
        kit.create_room(&bob, "secret", false).await;
        post("secret", "private words").await
    };
    let gone = post("general", "soon gone").await;
    kit.api_ok(
        Method::DELETE,
        &format!("/api/messages/{gone}"),
        &bob,
        None,
        204,
    )
    .await;
    for (what, hash) in [
        ("unknown", "general/99999999".to_string()),
        ("deleted", format!("general/{gone}")),
        ("not a member", format!("secret/{secret}")),
    ] {
        b.eval("location.hash = '#general';", vec![]).await;
        b.eval(
            "document.getElementById('room-error').hidden = true;",
            vec![],
        )
        .await;
        b.eval("location.hash = arguments[0];", vec![json!(hash)])
            .await;
        say(&format!("permalink: {what}"));
        wait_room_error(&b, "That message is not available.").await;
    }
    // A fresh page at an unavailable message still opens the chat.
    b.goto("about:blank").await;
    b.goto(&format!("{}#secret/{secret}", app.base)).await;
    b.wait_chat_ready().await;
    wait_room_error(&b, "That message is not available.").await;
    b.assert_no_csp_violations("alice").await;
    b.close().await;
    drop(driver);
    eprintln!("permalinks: {:.1} s", started.elapsed().as_secs_f64());
}

/// Type `text` into the Message box (without sending).
async fn type_message(b: &Browser, text: &str) -> fantoccini::elements::Element {
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.type_into(&input, text).await;
    input
}

/// Clear the Message box.
async fn clear_box(b: &Browser) {
    b.eval(
        "const i = document.getElementById('composer-input'); i.value = ''; i.dispatchEvent(new Event('input', { bubbles: true }));",
        vec![],
    )
    .await;
}

async fn wait_notice(b: &Browser, text: &str) {
    b.wait_js(
        &format!("the notice {text:?}"),
        "return document.getElementById('composer-notice').textContent.includes(arguments[0]);",
        vec![json!(text)],
    )
    .await;
}

/// The bodies of den's messages, once there are at least `n` of them (sends are acknowledged
/// after the page shows them).
async fn den_bodies(kit: &crate::common::TestApp, auth: &Auth, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let history = kit.history(auth, "den", "").await;
        if history.len() >= n || Instant::now() > deadline {
            return history
                .iter()
                .filter_map(|m| m["body"].as_str().map(String::from))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Commands list: [visible, option texts, active option text].
const COMMAND_LIST: &str = r#"
const l = document.querySelector('[role="listbox"][aria-label="Commands"]');
if (!l || l.hidden) return [false, [], null];
const i = document.getElementById('composer-input');
const a = document.getElementById(i.getAttribute('aria-activedescendant') || '');
return [true, Array.from(l.querySelectorAll('[role="option"]'), (o) => o.textContent),
  a && a.getAttribute('aria-selected') === 'true' ? a.textContent : null];
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_me_topic_invite() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let alice = cookie(&app.register("alice").await);
    app.register("bob").await;
    let kit = app.kit();
    kit.create_room(&alice, "den", true).await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("alice", 1200, 800).await;
    emulate_scheme(&driver, &b, "light").await;
    b.goto(&format!("{}#den", app.base)).await;
    sign_in(&b, &app.base, "alice").await;
    wait_room_open(&b, "den", "den").await;
    b.eval(WATCH_CSP, vec![]).await;

    // The list: "/" opens it, arrows move, Escape closes, Tab completes.
    let input = type_message(&b, "/").await;
    let all = json!([
        "/me Send an action: /me waves",
        "/topic Set the room topic",
        "/invite Add someone to this room"
    ]);
    b.wait_js(
        "the Commands list",
        &format!("const v = (() => {{ {COMMAND_LIST} }})(); return v[0] && v[1].length === 3;"),
        vec![],
    )
    .await;
    assert_eq!(
        b.eval(COMMAND_LIST, vec![]).await,
        json!([true, all, "/me Send an action: /me waves"])
    );
    assert_axe_clean(&b, "#composer", "commands, desktop, light").await;
    emulate_scheme(&driver, &b, "dark").await;
    assert_axe_clean(&b, "#composer", "commands, desktop, dark").await;
    b.set_viewport(360, 740).await;
    assert_axe_clean(&b, "#composer", "commands, 360px, dark").await;
    emulate_scheme(&driver, &b, "light").await;
    assert_axe_clean(&b, "#composer", "commands, 360px, light").await;
    b.set_viewport(1200, 800).await;
    b.type_into(&input, &key(Key::Down)).await;
    assert_eq!(
        b.eval(COMMAND_LIST, vec![]).await[2],
        json!("/topic Set the room topic")
    );
    b.type_into(&input, &key(Key::Escape)).await;
    assert_eq!(b.eval(COMMAND_LIST, vec![]).await[0], json!(false));
    b.type_into(&input, "m").await;
    b.wait_js(
        "only /me listed",
        &format!("const v = (() => {{ {COMMAND_LIST} }})(); return v[0] && v[1].length === 1;"),
        vec![],
    )
    .await;
    b.type_into(&input, &key(Key::Tab)).await;
    b.wait_js(
        "Tab completes /me",
        "return document.getElementById('composer-input').value === '/me ';",
        vec![],
    )
    .await;

    // /me: sent with the prefix, shown as an action.
    b.type_into(&input, "waves hello").await;
    b.type_into(&input, &key(Key::Enter)).await;
    b.wait_log_has("the action line", &["* alice waves hello"])
        .await;
    let style = b
        .eval(
            "const body = Array.from(document.querySelectorAll('[role=\"log\"] .msg-body')).find((x) => x.textContent.includes('waves hello'));
             return [body.textContent, getComputedStyle(body.querySelector('p')).fontStyle];",
            vec![],
        )
        .await;
    assert_eq!(style, json!(["* alice waves hello", "italic"]));
    let bodies = den_bodies(kit, &alice, 1).await;
    assert_eq!(bodies, ["/me waves hello"], "the body keeps the /me prefix");

    // /topic: the header and the log say so.
    b.send_with_enter("/topic Snacks at four").await;
    b.wait_js(
        "the new topic in the header",
        "return document.getElementById('room-topic').textContent === 'Snacks at four';",
        vec![],
    )
    .await;
    b.wait_log_has("the topic line", &["Topic changed to “Snacks at four”"])
        .await;
    let room = kit
        .api_ok(Method::GET, "/api/rooms/den", &alice, None, 200)
        .await;
    assert_eq!(room["room"]["topic"], "Snacks at four");

    // /invite: bob is a member now; an unknown name is refused.
    b.send_with_enter("/invite @bob").await;
    wait_notice(&b, "bob was added to #den.").await;
    let room = kit
        .api_ok(Method::GET, "/api/rooms/den", &alice, None, 200)
        .await;
    let members: Vec<&str> = room["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["username"].as_str())
        .collect();
    assert!(members.contains(&"bob"), "{room}");
    type_message(&b, "/invite nobody").await;
    b.type_into(&input, &key(Key::Enter)).await;
    wait_notice(&b, "There is nobody called nobody.").await;
    assert_eq!(
        b.eval(
            "return document.getElementById('composer-input').value;",
            vec![]
        )
        .await,
        json!("/invite nobody"),
        "a refused command stays in the box"
    );
    clear_box(&b).await;

    // Unknown commands are not sent; `//` escapes.
    type_message(&b, "/foo bar").await;
    b.type_into(&input, &key(Key::Enter)).await;
    wait_notice(&b, "Unknown command /foo").await;
    clear_box(&b).await;
    b.send_with_enter("//shrug").await;
    b.wait_log_has("the escaped message", &["/shrug"]).await;
    let bodies = den_bodies(kit, &alice, 2).await;
    assert_eq!(
        bodies,
        ["/me waves hello", "/shrug"],
        "nothing else was sent"
    );

    // /invite in a direct message is refused with a reason.
    kit.open_dm(&alice, &["bob"]).await;
    // Named in any case, as a person may type it.
    b.eval("location.hash = '#DM%3AAlice%2CBob';", vec![]).await;
    wait_room_open(&b, "dm:alice,bob", "bob").await;
    let input = type_message(&b, "/invite carol").await;
    b.type_into(&input, &key(Key::Enter)).await;
    wait_notice(&b, "People can’t be added to a direct message.").await;
    clear_box(&b).await;

    // /topic where it is not allowed: general is for administrators.
    b.eval("location.hash = '#General';", vec![]).await;
    wait_room_open(&b, "general", "general").await;
    let input = type_message(&b, "/topic Mine now").await;
    b.type_into(&input, &key(Key::Enter)).await;
    wait_notice(&b, "You may not change the topic of #general").await;
    b.assert_no_csp_violations("alice").await;
    b.close().await;
    drop(driver);
    eprintln!("slash commands: {:.1} s", started.elapsed().as_secs_f64());
}

/// Record what live regions tell screen readers from now on, in `window.__said` as
/// `[region id, text]`: each time the text of a region (`aria-live` other than `off`,
/// `role="alert"` or `role="status"`; the message log is one too, but what it announces is
/// messages) changes to something, once per region per batch of changes. A second after
/// the first one, `window.__settled` is true: any timer the page started with it, with a
/// shorter delay, has fired by then.
const RECORD_ANNOUNCEMENTS: &str = r#"
window.__said = [];
window.__settled = false;
const REGION = '[aria-live], [role="alert"], [role="status"], [role="log"]';
const regionOf = (node) => {
  const el = node instanceof Element ? node : node.parentElement;
  const r = el && el.closest(REGION);
  if (!r || r.getAttribute('role') === 'log' || r.getAttribute('aria-live') === 'off') return null;
  return r.closest('[hidden]') ? null : r;
};
new MutationObserver((records) => {
  const touched = new Set();
  for (const rec of records) {
    const r = regionOf(rec.target);
    if (r) touched.add(r);
    for (const n of rec.addedNodes) {
      if (n instanceof Element && n.matches(REGION)) {
        const inner = regionOf(n);
        if (inner) touched.add(inner);
      }
    }
  }
  for (const r of touched) {
    const text = r.textContent.trim();
    if (!text) continue;
    window.__said.push([r.id || r.className, text]);
    if (window.__said.length === 1) setTimeout(() => { window.__settled = true; }, 1000);
  }
}).observe(document.body, { subtree: true, childList: true, characterData: true });
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_link_to_message_is_announced_once() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.member(&app.base, "alice", 1280, 800).await;
    let text = "A message worth linking to";
    b.send_with_enter(text).await;
    let id = message_id(&b, text).await;

    b.eval(RECORD_ANNOUNCEMENTS, vec![]).await;
    let link = copy_link(&b, id).await;
    assert_eq!(link, format!("{}#general/{id}", app.base), "the permalink");
    let said = b
        .wait_js(
            "the announcements to settle",
            "return window.__settled ? window.__said : false;",
            vec![],
        )
        .await;
    let said = said.as_array().expect("a list of announcements");
    assert_eq!(said.len(), 1, "announced exactly once: {said:?}");
    let words = said[0][1].as_str().unwrap_or_default();
    assert!(
        words.contains(&link),
        "the announcement gives the link: {said:?}"
    );
    b.assert_no_csp_violations("alice").await;
    b.close().await;
    drop(driver);
}
