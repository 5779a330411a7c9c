//! The chat page as people use it, in a real browser: jumping to a search result leaves the app
//! shell where it is; every room and direct message keeps its own draft, and drafts and unsent
//! messages survive a reload; a fresh page opens at the first unread message; the phone header
//! has one members button and an account menu whose "Sign out" asks first; joins, leaves, topic
//! changes and renames show in the conversation; a tap shows the time of a grouped message.

use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::key::Key;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::Auth;
use crate::harness::{
    account_menu_button, browser_tools, button, labelled, message_box, sign_out_button,
    username_field, within, App, Browser, Driver, LOG, WAIT,
};
use crate::{
    assert_no_horizontal_scroll, room_link, wait_room_open, ON_SCREEN, TARGET_SHOWN, WATCH_CSP,
};

fn key(k: Key) -> String {
    char::from(k).to_string()
}

/// The text in the Message box.
async fn draft(b: &Browser) -> String {
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.eval(
        "return arguments[0].value;",
        vec![serde_json::to_value(&input).expect("an element reference")],
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Wait until the Message box holds exactly `text`.
async fn wait_draft(b: &Browser, what: &str, text: &str) {
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.wait_js(
        what,
        "return arguments[0].value === arguments[1];",
        vec![
            serde_json::to_value(&input).expect("an element reference"),
            json!(text),
        ],
    )
    .await;
}

/// `GET api/{path}` with the page's own session; the JSON body.
async fn page_get(b: &Browser, path: &str) -> Value {
    b.eval(
        "return fetch(arguments[0], { credentials: 'same-origin' }).then((r) => r.json());",
        vec![json!(format!("api/{path}"))],
    )
    .await
}

/// `room`'s unread count as the server has it for the page's user.
async fn unread_on_server(b: &Browser, room: &str) -> i64 {
    let v = page_get(b, "rooms").await;
    v["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["name"] == room))
        .and_then(|r| r["unread"].as_i64())
        .unwrap_or_else(|| panic!("no unread count for {room} in {v}"))
}

// ---- 1. a search result does not move the app --------------------------------------------

/// What is out of place in the app shell: the document or an ancestor of the log scrolled, the
/// header, the search box or the message box outside the window, the shell not filling it.
const SHELL_IN_PLACE: &str = r#"
const out = [];
const se = document.scrollingElement;
if (se.scrollTop !== 0) out.push('the document is scrolled by ' + se.scrollTop);
const log = document.querySelector('[role="log"]');
for (let el = log.parentElement; el; el = el.parentElement) {
  if (el.scrollTop !== 0) out.push((el.id || el.className || el.tagName) + ' is scrolled by ' + el.scrollTop);
}
const inside = (name, el) => {
  const r = el.getBoundingClientRect();
  if (r.top < -0.5 || r.bottom > innerHeight + 0.5) out.push(name + ' is at ' + r.top + '..' + r.bottom);
};
inside('the header', document.querySelector('.topbar'));
inside('the search box', document.getElementById('search-input'));
inside('the message box', document.getElementById('composer-input'));
const app = document.getElementById('chat-view').getBoundingClientRect();
if (Math.abs(app.top) > 0.5 || Math.abs(app.bottom - innerHeight) > 0.5) {
  out.push('the app shell spans ' + app.top + '..' + app.bottom + ' of ' + innerHeight);
}
return out.length ? out.join('; ') : 'ok';
"#;

/// Headless Chromium has no on-screen keyboard. On a phone, the keyboard that was up while the
/// search was typed shrinks the visual viewport but not the layout viewport, which leaves the
/// page scrollable by about the keyboard's height: this spacer under the app gives the document
/// that much room to scroll, as the keyboard does, so that a jump that scrolls anything but the
/// log shows.
const KEYBOARD_STAND_IN: &str = r#"
const spacer = document.createElement('div');
spacer.id = 'keyboard-stand-in';
spacer.style.height = '300px';
document.body.append(spacer);
"#;

/// Type `word` in the "Search messages" box (cleared first) and press Enter; the box.
async fn search_for(b: &Browser, word: &str) -> Element {
    let search = b
        .wait_visible(
            "the Search messages box",
            &labelled("input", "Search messages"),
        )
        .await;
    within(WAIT, "clearing the search box", search.clear())
        .await
        .expect("clear the search box");
    b.type_into(&search, word).await;
    b.type_into(&search, &key(Key::Enter)).await;
    search
}

/// Search for `word` and choose the result that holds it; wait until message `id` is shown.
async fn jump_to_result(b: &Browser, word: &str, id: i64) {
    search_for(b, word).await;
    b.click_xpath(
        "the search result",
        &format!("//*[@id = 'search-results']//button[@data-id = '{id}']"),
    )
    .await;
    b.wait_js(
        "the message to be shown in context",
        TARGET_SHOWN,
        vec![json!(id)],
    )
    .await;
}

/// Where the focus is after a search, and whether the conversation is out of reach.
const SEARCH_FOCUS: &str = r#"
const a = document.activeElement;
return {
  inResults: !!(a && a.closest('#search-results')),
  inBox: a === document.getElementById('search-input'),
  open: !document.getElementById('search-panel').hidden,
  covered: document.getElementById('conversation').inert,
};
"#;

/// Search for `word` with the keyboard: Tab from the box goes straight to the results (in the
/// page they come last); where they cover the conversation (`covers`: a phone) it is inert
/// until they close; Escape closes them, back in the box.
async fn search_by_keyboard(b: &Browser, word: &str, covers: bool) {
    let search = search_for(b, word).await;
    b.wait_visible("a search result", "//*[@id = 'search-results']//button")
        .await;
    let v = b.eval(SEARCH_FOCUS, vec![]).await;
    assert_eq!(v["inBox"], json!(true), "the box keeps the focus: {v}");
    assert_eq!(
        v["covered"],
        json!(covers),
        "the covered conversation is inert: {v}"
    );
    b.type_into(&search, &key(Key::Tab)).await;
    let v = b.eval(SEARCH_FOCUS, vec![]).await;
    assert_eq!(
        v["inResults"],
        json!(true),
        "Tab from the box: the results: {v}"
    );
    let el = within(WAIT, "the focused element", b.client.active_element())
        .await
        .expect("an active element");
    b.type_into(&el, &key(Key::Escape)).await;
    let v = b.eval(SEARCH_FOCUS, vec![]).await;
    assert_eq!(
        (&v["open"], &v["inBox"], &v["covered"]),
        (&json!(false), &json!(true), &json!(false)),
        "Escape closes the results, back in the box: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jumping_to_a_search_result_leaves_the_app_shell_in_place() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let (desk, phone) = tokio::join!(
        driver.browser("desk", 1280, 800),
        driver.browser("phone", 360, 740)
    );
    tokio::join!(
        desk.create_account(&app.base, "desk"),
        phone.create_account(&app.base, "pocket")
    );

    let mut bot = app.ws(&app.register("talker").await).await;
    let old = bot.say("The pineapple recipe is in the blue binder").await;
    let old_id = old["id"].as_i64().expect("a message id");
    for i in 1..=90 {
        bot.say(&format!("filler #{i:03}")).await;
    }
    // One near the newest end too: the window around it reaches the bottom.
    let recent = bot
        .say("The walnut cake goes in at four, says the binder")
        .await;
    let recent_id = recent["id"].as_i64().expect("a message id");
    let mut newest = 0;
    for i in 91..=95 {
        newest = bot.say(&format!("filler #{i:03}")).await["id"]
            .as_i64()
            .expect("a message id");
    }

    for (b, who) in [(&desk, "desktop"), (&phone, "phone")] {
        // Read up to the newest (a page with more unread than a page of history would open
        // at the first unread instead).
        let read = b
            .eval(
                "return fetch('api/rooms/general/read', {
                     method: 'POST',
                     credentials: 'same-origin',
                     headers: {'Content-Type': 'application/json'},
                     body: JSON.stringify({id: arguments[0]}),
                 }).then((r) => r.status);",
                vec![json!(newest)],
            )
            .await;
        assert_eq!(read, json!(200), "{who}: marked read");
        b.reload().await;
        b.wait_chat_ready().await;
        b.eval(WATCH_CSP, vec![]).await;
        b.eval(KEYBOARD_STAND_IN, vec![]).await;
        b.wait_log_has("the newest fillers", &["filler #095"]).await;
        search_by_keyboard(b, "walnut", who == "phone").await;

        // Far into the past: the history around it is loaded first.
        jump_to_result(b, "pineapple", old_id).await;
        let v = b.eval(SHELL_IN_PLACE, vec![]).await;
        assert_eq!(v, json!("ok"), "{who}: after jumping to an old result");

        jump_to_result(b, "walnut", recent_id).await;
        let v = b.eval(SHELL_IN_PLACE, vec![]).await;
        assert_eq!(v, json!("ok"), "{who}: after jumping to a recent result");

        // Another old one from the recent one, and the search box still works afterwards.
        jump_to_result(b, "pineapple", old_id).await;
        let v = b.eval(SHELL_IN_PLACE, vec![]).await;
        assert_eq!(v, json!("ok"), "{who}: after jumping back");
        b.assert_no_csp_violations(who).await;
    }
    assert_no_horizontal_scroll(&phone, "after the jumps").await;

    desk.close().await;
    phone.close().await;
    drop(driver);
    eprintln!("ux_search_shell: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 2. drafts per room, and unsent messages across a reload ------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_room_keeps_its_own_draft_and_unsent_messages_survive_a_reload() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let mut app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.member(&app.base, "alice", 1280, 800).await;
    let made = b
        .eval(
            "return fetch('api/rooms', {
                 method: 'POST',
                 credentials: 'same-origin',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({name: 'side'}),
             }).then((r) => r.status);",
            vec![],
        )
        .await;
    assert_eq!(made, json!(201), "POST /api/rooms");
    b.wait_visible("side in the sidebar", &room_link("side"))
        .await;
    wait_room_open(&b, "general", "general").await;

    // Half a message in general, then another room: its box is empty, and has its own draft.
    let general_draft = "Half a thought for general";
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.type_into(&input, general_draft).await;
    b.click_xpath("side in the sidebar", &room_link("side"))
        .await;
    wait_room_open(&b, "side", "side").await;
    assert_eq!(draft(&b).await, "", "side's box starts empty");
    let side_draft = "Something else for side";
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.type_into(&input, side_draft).await;

    // Back in general: its draft is there again (and side's is not).
    b.click_xpath("general in the sidebar", &room_link("general"))
        .await;
    wait_room_open(&b, "general", "general").await;
    wait_draft(&b, "general's draft to come back", general_draft).await;

    // A reload keeps both.
    b.reload().await;
    b.wait_chat_ready().await;
    wait_room_open(&b, "general", "general").await;
    wait_draft(&b, "general's draft after a reload", general_draft).await;
    b.click_xpath("side in the sidebar", &room_link("side"))
        .await;
    wait_room_open(&b, "side", "side").await;
    wait_draft(&b, "side's draft after a reload", side_draft).await;

    // Sending general's draft sends it to general, and the draft is gone for good.
    b.click_xpath("general in the sidebar", &room_link("general"))
        .await;
    wait_room_open(&b, "general", "general").await;
    wait_draft(&b, "general's draft", general_draft).await;
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.type_into(&input, &key(Key::Enter)).await;
    wait_draft(&b, "the box to empty after sending", "").await;
    b.wait_log_has("the sent draft in general", &[general_draft])
        .await;
    b.reload().await;
    b.wait_chat_ready().await;
    wait_room_open(&b, "general", "general").await;
    b.wait_log_has("the sent draft after a reload", &[general_draft])
        .await;
    assert_eq!(draft(&b).await, "", "a sent draft stays cleared");
    let side = page_get(&b, "rooms/side/messages?limit=50").await;
    assert_eq!(
        side["messages"].as_array().map(Vec::len),
        Some(0),
        "nothing went to side: {side}"
    );

    // Written while the server is away, then a reload (while it is still away): the message
    // is kept in the browser and goes out once the server is back, exactly once.
    app.stop().await;
    b.wait_js(
        "the page to notice the server is gone",
        "return document.getElementById('conn').dataset.state !== 'connected';",
        vec![],
    )
    .await;
    let offline = "Written while the server was away, then reloaded";
    b.send_with_enter(offline).await;
    b.wait_log_has("the unsent message in the log", &[offline])
        .await;
    // The server is down: the reload shows the kept app shell (tests/browser/offline.rs) or,
    // before the service worker took over, the browser's error page; either way the page's
    // storage stays.
    let _ = within(
        WAIT,
        "a reload while the server is down",
        b.client.refresh(),
    )
    .await;
    app.restart().await;
    b.goto(&app.base).await;
    b.wait_chat_ready().await;
    b.eval(WATCH_CSP, vec![]).await;
    b.wait_log_has("the kept message to be sent", &[offline])
        .await;
    let stored = b
        .wait_js(
            "the kept message to be stored",
            "return fetch('api/rooms/general/messages?limit=50', { credentials: 'same-origin' })
                 .then((r) => r.json())
                 .then((d) => d.messages.filter((m) => m.body === arguments[0]).length);",
            vec![json!(offline)],
        )
        .await;
    assert_eq!(stored, json!(1), "stored exactly once");
    b.wait_js(
        "the message to be confirmed (no longer pending)",
        "return document.querySelectorAll('[role=\"log\"] .msg.pending, [role=\"log\"] .msg.failed').length === 0;",
        vec![],
    )
    .await;
    b.reload().await;
    b.wait_chat_ready().await;
    let log = b
        .wait_log_has(
            "the message after another reload",
            &[general_draft, offline],
        )
        .await;
    assert_eq!(log.matches(offline).count(), 1, "shown once: {log}");
    let stored = page_get(&b, "rooms/general/messages?limit=50").await;
    let n = stored["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["body"] == offline).count());
    assert_eq!(n, Some(1), "still stored once: {stored}");
    b.assert_no_csp_violations("alice").await;

    b.close().await;
    drop(driver);
    eprintln!("ux_drafts: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 3. a fresh page opens at the first unread message ------------------------------------

/// The "New messages" divider: where it is, and which message follows it.
const DIVIDER: &str = r#"
const log = document.querySelector('[role="log"]');
const seps = Array.from(log.querySelectorAll('.new-sep')).filter((e) => !e.hidden);
if (seps.length !== 1) return { count: seps.length };
const row = seps[0].closest('.msg');
const body = row && row.querySelector('.msg-body');
const r = seps[0].getBoundingClientRect();
const l = log.getBoundingClientRect();
return {
  count: 1,
  text: seps[0].textContent,
  next: body ? body.textContent : null,
  inView: r.top >= l.top - 1 && r.bottom <= l.bottom + 1,
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_page_opens_at_the_first_unread_message() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let alice = driver.browser("alice", 1280, 800).await;
    alice.create_account(&app.base, "alice").await;
    let mut bob = app.ws(&app.register("bob").await).await;
    bob.say("Read before alice went away").await;
    alice
        .wait_log_has("bob's first message", &["Read before alice went away"])
        .await;
    alice
        .wait_js(
            "the read marker to reach it",
            "return fetch('api/rooms', { credentials: 'same-origin' }).then((r) => r.json())
                 .then((d) => d.rooms.find((r) => r.name === 'general').unread === 0);",
            vec![],
        )
        .await;

    // Alice is away; bob writes more than a screenful.
    alice.goto("about:blank").await;
    let total = 40;
    for i in 1..=total {
        bob.say(&format!("unread #{i:02} while alice was away"))
            .await;
    }

    alice.goto(&app.base).await;
    alice.wait_chat_ready().await;
    alice.eval(WATCH_CSP, vec![]).await;
    let d = alice
        .wait_js(
            "the New messages divider",
            &format!("const d = (() => {{ {DIVIDER} }})(); return d.count === 1 ? d : null;"),
            vec![],
        )
        .await;
    assert_eq!(d["text"], json!("New messages"), "{d}");
    assert_eq!(
        d["next"],
        json!("unread #01 while alice was away"),
        "the divider is right before the first unread message: {d}"
    );
    assert_eq!(d["inView"], json!(true), "the page opens at it: {d}");

    // Not all marked read at once: the newest is not on screen yet. (The page marks messages
    // read 400 ms after they could have been seen; wait well past that.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        unread_on_server(&alice, "general").await,
        total,
        "the unread messages are not marked read before they are seen"
    );

    // Reading down to the newest marks them read; the first unread is then out of view and
    // "Jump to first unread" brings it back.
    alice
        .eval(
            &format!("const l = {LOG}; l.scrollTop = l.scrollHeight;"),
            vec![],
        )
        .await;
    alice
        .wait_for("the read marker to move to the newest message", || async {
            (unread_on_server(&alice, "general").await == 0).then_some(())
        })
        .await;
    let jump = alice
        .wait_visible(
            "the Jump to first unread button",
            &button("Jump to first unread"),
        )
        .await;
    alice.click(&jump).await;
    alice
        .wait_js(
            "the divider to be in view again",
            &format!("const d = (() => {{ {DIVIDER} }})(); return d.count === 1 && d.inView;"),
            vec![],
        )
        .await;
    alice
        .wait_gone(
            "the Jump to first unread button to go once it is in view",
            &button("Jump to first unread"),
        )
        .await;

    // More unread than a page of history (50): the page still opens at the first of them, and
    // reading on down to the newest (loading the newer pages) marks them read.
    alice.goto("about:blank").await;
    let deep = 120;
    for i in 1..=deep {
        bob.say(&format!("deep unread #{i:03}")).await;
    }
    alice.goto(&app.base).await;
    alice.wait_chat_ready().await;
    alice.eval(WATCH_CSP, vec![]).await;
    let d = alice
        .wait_js(
            "the New messages divider above a long backlog",
            &format!("const d = (() => {{ {DIVIDER} }})(); return d.count === 1 ? d : null;"),
            vec![],
        )
        .await;
    assert_eq!(
        d["next"],
        json!("deep unread #001"),
        "the divider is right before the first of 120 unread messages: {d}"
    );
    alice
        .wait_js(
            "the divider in view",
            &format!("const d = (() => {{ {DIVIDER} }})(); return d.inView;"),
            vec![],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(unread_on_server(&alice, "general").await, deep);
    alice
        .wait_for("reading down to the newest of the backlog", || async {
            alice
                .eval(
                    &format!("const l = {LOG}; l.scrollTop = l.scrollHeight;"),
                    vec![],
                )
                .await;
            (unread_on_server(&alice, "general").await == 0).then_some(())
        })
        .await;
    alice
        .wait_log_has("the newest of the backlog", &["deep unread #120"])
        .await;
    alice.assert_no_csp_violations("alice").await;

    alice.close().await;
    drop(driver);
    eprintln!("ux_first_unread: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 4. the phone header -----------------------------------------------------------------

/// The header's buttons about people (members or who is online), as shown.
const PEOPLE_BUTTONS: &str = r#"
return Array.from(document.querySelectorAll('.topbar button, .room-header button'))
  .filter((b) => b.getClientRects().length > 0 && getComputedStyle(b).visibility !== 'hidden')
  .map((b) => (b.getAttribute('aria-label') || b.textContent).replace(/\s+/g, ' ').trim())
  .filter((name) => /member|online|people/i.test(name));
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_header_has_one_members_button_and_an_account_menu() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let phone = driver.browser("phone", 360, 740).await;
    phone.create_account(&app.base, "alice").await;
    phone.eval(WATCH_CSP, vec![]).await;
    // Someone else online, so that "online" and "members" counts would differ.
    let _bob = app.ws(&app.register("bob").await).await;

    let people = phone.eval(PEOPLE_BUTTONS, vec![]).await;
    let names = people.as_array().cloned().unwrap_or_default();
    assert_eq!(names.len(), 1, "exactly one people button: {people}");
    assert!(
        names[0].as_str().is_some_and(|n| n.contains("member")),
        "and it is the members button: {people}"
    );

    // The avatar opens the account menu: who is signed in, and Sign out.
    let menu_btn = phone
        .wait_visible("the Account menu button", &account_menu_button())
        .await;
    let v = phone
        .eval(
            ON_SCREEN,
            vec![serde_json::to_value(&menu_btn).expect("an element reference")],
        )
        .await;
    assert_eq!(v, json!("ok"), "the Account menu button at 360x740");
    phone.tap(&menu_btn).await;
    let menu = "//*[@id = 'account-menu']";
    phone
        .wait_visible(
            "the account menu naming alice",
            &format!("{menu}//*[contains(normalize-space(.), 'Signed in as alice')]"),
        )
        .await;
    let out = phone
        .wait_visible(
            "Sign out in the menu",
            &format!("{menu}{}", sign_out_button()),
        )
        .await;
    let v = phone
        .eval(
            ON_SCREEN,
            vec![serde_json::to_value(&out).expect("an element reference")],
        )
        .await;
    assert_eq!(v, json!("ok"), "Sign out at 360x740");
    assert_no_horizontal_scroll(&phone, "account menu open").await;

    // Escape closes the menu; Sign out asks first, and Cancel keeps the reader signed in.
    phone.type_into(&out, &key(Key::Escape)).await;
    phone.wait_gone("Escape to close the menu", menu).await;
    // So does Tab out of it (from its last item, "Sign out").
    let menu_btn = phone
        .wait_visible("the Account menu button", &account_menu_button())
        .await;
    phone.tap(&menu_btn).await;
    let out = phone
        .wait_visible(
            "Sign out in the menu",
            &format!("{menu}{}", sign_out_button()),
        )
        .await;
    phone.type_into(&out, &key(Key::Tab)).await;
    phone
        .wait_gone("Tab out of the menu to close it", menu)
        .await;
    phone.choose_sign_out().await;
    let confirm = "//dialog[@open and .//*[normalize-space(.) = 'Sign out?']]";
    phone
        .wait_visible("the Sign out? confirmation", confirm)
        .await;
    phone
        .click_xpath(
            "Cancel in the confirmation",
            &format!("{confirm}{}", button("Cancel")),
        )
        .await;
    phone.wait_gone("the confirmation to close", confirm).await;
    phone
        .wait_visible("the chat, still signed in", &message_box())
        .await;
    assert!(
        phone.visible(&username_field()).await.is_none(),
        "Cancel does not sign out"
    );

    phone.sign_out().await;
    phone
        .wait_visible("the sign-in page after Sign out", &username_field())
        .await;
    phone.wait_gone("the chat to close", &message_box()).await;
    phone.assert_no_csp_violations("phone").await;

    phone.close().await;
    drop(driver);
    eprintln!("ux_phone_header: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 5. joins, leaves, topic changes and renames in the conversation -----------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_leaves_topic_changes_and_renames_show_in_the_conversation() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let kit = app.kit();
    let alice = Auth::Cookie(app.register("alice").await);
    let carol = Auth::Cookie(app.register("carol").await);
    kit.create_room(&alice, "club", true).await;

    let driver = Driver::start(&tools).await;
    let b = driver.browser("alice", 1280, 800).await;
    b.submit_sign_in(&app.base, "Sign in", "alice", crate::harness::PASSWORD)
        .await;
    b.wait_chat_ready().await;
    b.eval(WATCH_CSP, vec![]).await;
    b.click_xpath("club in the sidebar", &room_link("club"))
        .await;
    wait_room_open(&b, "club", "club").await;
    let hello = "Welcome to the club";
    b.send_with_enter(hello).await;

    kit.join_room(&carol, "club").await;
    b.wait_log_has("carol's join", &[hello, "carol joined"])
        .await;
    kit.api_ok(Method::POST, "/api/rooms/club/leave", &carol, None, 204)
        .await;
    b.wait_log_has("carol's leave", &["carol joined", "carol left"])
        .await;
    kit.invite(&alice, "club", "carol").await;
    b.wait_log_has("carol's invitation", &["carol left", "carol joined"])
        .await;
    let topic = "Books & <b>biscuits</b>";
    let topic_line = format!("Topic changed to “{topic}”");
    kit.api_ok(
        Method::PATCH,
        "/api/rooms/club",
        &alice,
        Some(&json!({ "topic": topic })),
        200,
    )
    .await;
    b.wait_log_has("the topic change", &["carol joined", topic_line.as_str()])
        .await;
    kit.api_ok(
        Method::PATCH,
        "/api/rooms/club",
        &alice,
        Some(&json!({ "name": "book-club" })),
        200,
    )
    .await;
    wait_room_open(&b, "book-club", "book-club").await;
    b.wait_log_has(
        "the rename",
        &["Topic changed to", "Room renamed from #club to #book-club"],
    )
    .await;

    // They are lines about the room, not messages: no toolbar, no tab stop, never unread,
    // and their text is text.
    let lines = b
        .eval(
            "const log = document.querySelector('[role=\"log\"]');
             return {
               lines: Array.from(log.querySelectorAll('.sys-line'), (l) => ({
                 text: l.querySelector('.sys-line-text').textContent,
                 msg: !!l.closest('.msg'),
                 tabbable: l.tabIndex >= 0,
                 elements: l.querySelectorAll('.sys-line-text *').length,
               })),
               messages: log.querySelectorAll('.msg').length,
               title: document.title,
             };",
            vec![],
        )
        .await;
    let texts: Vec<&str> = lines["lines"]
        .as_array()
        .map(|l| l.iter().filter_map(|x| x["text"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        texts,
        vec![
            "carol joined",
            "carol left",
            "carol joined",
            topic_line.as_str(),
            "Room renamed from #club to #book-club",
        ],
        "{lines}"
    );
    for l in lines["lines"].as_array().into_iter().flatten() {
        assert_eq!(l["msg"], json!(false), "not a message row: {l}");
        assert_eq!(l["tabbable"], json!(false), "not a tab stop: {l}");
        assert_eq!(l["elements"], json!(0), "plain text: {l}");
    }
    assert_eq!(lines["messages"], json!(1), "one message: {lines}");
    assert_eq!(lines["title"], json!("Hearth"), "nothing unread: {lines}");
    let line = b
        .wait_visible(
            "the rename line",
            "//*[@role = 'log']//*[contains(@class, 'sys-line') and contains(., 'renamed')]",
        )
        .await;
    b.hover(&line).await;
    let tools_shown = b
        .eval(
            "return document.querySelectorAll('[role=\"group\"][aria-label=\"Message actions\"]').length;",
            vec![],
        )
        .await;
    assert_eq!(tools_shown, json!(0), "no message actions on a system line");
    b.assert_no_csp_violations("alice").await;

    b.close().await;
    drop(driver);
    eprintln!("ux_system_lines: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 6. a tap shows the time of a grouped message -------------------------------------------

/// The message whose text is `arguments[0]`: grouped under the one before, and its time as
/// shown (size and text).
const TIME_OF: &str = r#"
const rows = Array.from(document.querySelectorAll('[role="log"] .msg[data-id]'));
const row = rows.find((r) => {
  const b = r.querySelector('.msg-body');
  return b && b.textContent === arguments[0];
});
if (!row) return null;
const t = row.querySelector('time.msg-time');
const r = t.getBoundingClientRect();
const head = row.querySelector('.msg-head');
return {
  id: Number(row.dataset.id),
  grouped: row.classList.contains('cont'),
  text: t.textContent,
  shown: r.width > 10 && r.height > 5 && getComputedStyle(head).clipPath === 'none'
    && r.top >= 0 && r.bottom <= innerHeight,
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_shows_the_time_of_a_grouped_message() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let phone = driver.browser("phone", 360, 740).await;
    phone.create_account(&app.base, "pocket").await;
    phone.eval(WATCH_CSP, vec![]).await;
    let mut pal = app.ws(&app.register("pal").await).await;
    let first = "First of two, with the time above it";
    let second = "Second of two, grouped under the first";
    pal.say(first).await;
    pal.say(second).await;
    phone.wait_log_has("both messages", &[first, second]).await;

    let before = phone.eval(TIME_OF, vec![json!(second)]).await;
    assert_eq!(before["grouped"], json!(true), "grouped: {before}");
    assert_eq!(
        before["shown"],
        json!(false),
        "no time before the tap: {before}"
    );
    let id = before["id"].as_i64().expect("a message id");
    let bubble = format!(
        "//*[@role = 'log']//div[@data-id = '{id}']//div[contains(concat(' ', @class, ' '), ' msg-bubble ')]"
    );

    let el = phone.wait_visible("the grouped message", &bubble).await;
    phone.tap(&el).await;
    let after = phone
        .wait_js(
            "the time to show after a tap",
            &format!("const t = (() => {{ {TIME_OF} }})(); return t && t.shown ? t : null;"),
            vec![json!(second)],
        )
        .await;
    assert!(
        after["text"]
            .as_str()
            .is_some_and(|t| t.chars().any(|c| c.is_ascii_digit())),
        "a time: {after}"
    );
    phone
        .wait_visible(
            "the toolbar with it",
            &format!(
                "//*[@role = 'log']//div[@data-id = '{id}']//*[@role = 'group' and @aria-label = 'Message actions']"
            ),
        )
        .await;
    assert_no_horizontal_scroll(&phone, "time shown").await;

    // A second tap hides both again.
    let el = phone.wait_visible("the grouped message", &bubble).await;
    phone.tap(&el).await;
    phone
        .wait_js(
            "the time to hide after a second tap",
            &format!("const t = (() => {{ {TIME_OF} }})(); return t && !t.shown;"),
            vec![json!(second)],
        )
        .await;
    phone.assert_no_csp_violations("phone").await;

    phone.close().await;
    drop(driver);
    eprintln!("ux_grouped_time: {:.1} s", started.elapsed().as_secs_f64());
}
