//! Replies, reactions, edits and deletions in a real browser (assets/js/actions.js, log.js,
//! chat.js): two people at desktop width reply, react, edit (with the toolbar and with the Up
//! arrow) and delete, and each sees the other's changes live, and the keyboard reaches the
//! toolbar; a phone opens the message toolbar with a tap, everything stays inside 360 px, and
//! a reply written while the server is away keeps its quote when it is resent; an
//! administrator deletes everything a user wrote from the administration page. An editor left
//! open when another room or DM is opened is cancelled. No Content-Security-Policy violations
//! anywhere.

use std::time::Instant;

use fantoccini::key::Key;
use serde_json::{json, Value};

use crate::common::Auth;
use crate::harness::{
    browser_tools, button, labelled, message_box, within, App, Browser, Driver, LOG, PASSWORD, WAIT,
};
use crate::{assert_no_horizontal_scroll, room_link, wait_room_open, TARGET_SHOWN, WATCH_CSP};

/// What a deleted message reads.
const TOMBSTONE: &str = "This message was deleted.";

/// The id of the confirmed message whose text holds `arguments[0]` (0 while there is none).
const FIND_ID: &str = r#"
const rows = Array.from(document.querySelectorAll('[role="log"] .msg[data-id]'));
const row = rows.find((r) => {
  const b = r.querySelector('.msg-body');
  return b && b.textContent.includes(arguments[0]);
});
return row ? Number(row.dataset.id) : 0;
"#;

/// Message `arguments[0]` as the page shows it (null when it is not in the log).
const MESSAGE: &str = r#"
const r = document.querySelector('[role="log"] .msg[data-id="' + arguments[0] + '"]');
if (!r) return null;
const body = r.querySelector('.msg-body');
const edited = r.querySelector('.msg-edited');
const quote = r.querySelector('.msg-quote');
return {
  body: body ? body.textContent : null,
  strong: body ? Array.from(body.querySelectorAll('strong'), (s) => s.textContent) : [],
  bubble: r.querySelector('.msg-bubble').textContent,
  edited: edited ? edited.textContent : null,
  editedTitle: edited ? edited.title : null,
  quote: quote ? quote.textContent : null,
  reactions: Array.from(r.querySelectorAll('.reaction'), (c) => ({
    name: c.getAttribute('aria-label'),
    pressed: c.getAttribute('aria-pressed'),
    title: c.title,
  })),
  tools: Array.from(r.querySelectorAll('[role="group"][aria-label="Message actions"] button'),
    (b) => b.getAttribute('aria-label')),
  editor: !!r.querySelector('textarea'),
};
"#;

/// The shown message toolbar: its buttons and whether it is inside the viewport and the log
/// (across and, `inLogY`, up and down: not hidden under the log's edges).
const TOOLBAR: &str = r#"
const bars = document.querySelectorAll('[role="group"][aria-label="Message actions"]');
if (bars.length !== 1) return { count: bars.length };
const r = bars[0].getBoundingClientRect();
const log = document.querySelector('[role="log"]').getBoundingClientRect();
return {
  count: 1,
  names: Array.from(bars[0].querySelectorAll('button'), (b) => b.getAttribute('aria-label')),
  inside: r.width > 0 && r.left >= 0 && r.right <= innerWidth && r.top >= 0 && r.bottom <= innerHeight,
  inLog: r.left >= log.left - 0.5 && r.right <= log.right + 0.5,
  inLogY: r.top >= log.top - 0.5 && r.bottom <= log.bottom + 0.5,
};
"#;

/// Where the bubble of message `arguments[0]` is on screen (its top, in CSS pixels), once the
/// page has drawn two more frames (a scroll the log makes after a change is done by then).
const BUBBLE_TOP: &str = r#"
const b = document.querySelector('[role="log"] .msg[data-id="' + arguments[0] + '"] .msg-bubble');
return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(
  () => done(b ? b.getBoundingClientRect().top : null))));
"#;

/// XPath for the row of message `id`.
fn row(id: i64) -> String {
    format!("//*[@role = 'log']//div[@data-id = '{id}']")
}

/// XPath for the bubble of message `id`.
fn bubble(id: i64) -> String {
    format!(
        "{}//div[contains(concat(' ', @class, ' '), ' msg-bubble ')]",
        row(id)
    )
}

/// XPath for the text of message `id` (in its bubble, below the quote of a reply).
fn text_of(id: i64) -> String {
    format!(
        "{}//div[contains(concat(' ', @class, ' '), ' msg-body ')]",
        row(id)
    )
}

/// XPath for the toolbar button `name` of message `id`.
fn tool(id: i64, name: &str) -> String {
    format!(
        "{}//*[@role = 'group' and @aria-label = 'Message actions']//button[@aria-label = '{name}']",
        row(id)
    )
}

/// XPath for the reaction chip of message `id` whose name holds `emoji` and `count`.
fn chip(id: i64, emoji: &str, count: u32) -> String {
    format!(
        "{}//button[@aria-pressed and contains(@aria-label, '{emoji}') and contains(@aria-label, ' {count}')]",
        row(id)
    )
}

/// The open confirmation dialog's button `name`.
fn dialog_button(name: &str) -> String {
    format!("//dialog[@open]//button[normalize-space(.) = '{name}']")
}

fn key(k: Key) -> String {
    char::from(k).to_string()
}

/// Wait until the confirmed message with `text` is in `b`'s log; its id.
async fn message_id(b: &Browser, text: &str) -> i64 {
    b.wait_js(
        &format!("the message {text:?} in the log"),
        FIND_ID,
        vec![json!(text)],
    )
    .await
    .as_i64()
    .expect("a message id")
}

async fn message(b: &Browser, id: i64) -> Value {
    b.eval(MESSAGE, vec![json!(id)]).await
}

/// Wait until message `id` satisfies `check`; its state.
async fn wait_message(b: &Browser, what: &str, id: i64, check: impl Fn(&Value) -> bool) -> Value {
    b.wait_for(what, || async {
        let m = message(b, id).await;
        (!m.is_null() && check(&m)).then_some(m)
    })
    .await
}

/// Put message `id` in the middle of the log (it may have scrolled out of view).
async fn reveal(b: &Browser, id: i64) {
    b.eval(
        "document.querySelector('[role=\"log\"] .msg[data-id=\"' + arguments[0] + '\"]')\
           .scrollIntoView({ block: 'center' });",
        vec![json!(id)],
    )
    .await;
}

/// Hover message `id` with the mouse and wait for its toolbar; the names of its buttons.
async fn hover_tools(b: &Browser, id: i64) -> Value {
    reveal(b, id).await;
    let el = b.wait_visible("the message bubble", &bubble(id)).await;
    b.hover(&el).await;
    b.wait_visible(
        "the message toolbar",
        &format!(
            "{}//*[@role = 'group' and @aria-label = 'Message actions']",
            row(id)
        ),
    )
    .await;
    message(b, id).await["tools"].clone()
}

/// Press `keys` (WebDriver key codes allowed) on whatever has focus.
async fn press(b: &Browser, keys: &str) {
    let el = within(WAIT, "the focused element", b.client.active_element())
        .await
        .expect("an active element");
    b.type_into(&el, keys).await;
}

/// The id of the message row that has focus (0 when focus is elsewhere).
async fn focused_message(b: &Browser) -> i64 {
    b.eval(
        "const a = document.activeElement;
         return a && a.classList.contains('msg') && a.dataset.id ? Number(a.dataset.id) : 0;",
        vec![],
    )
    .await
    .as_i64()
    .unwrap_or(0)
}

async fn focused_id(b: &Browser) -> String {
    b.eval(
        "const a = document.activeElement; return a ? (a.id || a.getAttribute('aria-label') || a.tagName) : '';",
        vec![],
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_reply_react_edit_and_delete_and_see_each_others_changes() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let (alice, bob) = tokio::join!(
        driver.member(&app.base, "alice", 1280, 800),
        driver.member(&app.base, "bob", 1280, 800)
    );
    let mut pal = app.ws(&app.register("pal").await).await;

    // ---- reply -------------------------------------------------------------------------
    let lunch_text = "Lunch at noon?";
    alice.send_with_enter(lunch_text).await;
    let lunch = message_id(&bob, lunch_text).await;
    assert_eq!(message_id(&alice, lunch_text).await, lunch);

    // Someone else's message: reply and react, but neither edit nor delete.
    assert_eq!(
        hover_tools(&bob, lunch).await,
        json!(["Reply", "Add reaction", "Copy link to message"])
    );
    bob.click_xpath("Reply", &tool(lunch, "Reply")).await;
    let banner =
        "//*[@id = 'reply-text' and normalize-space(.) = 'Replying to alice: Lunch at noon?']";
    bob.wait_visible("the reply banner", banner).await;
    assert_eq!(
        focused_id(&bob).await,
        "composer-input",
        "Reply puts the cursor in the message box"
    );
    // Escape cancels the reply; "Reply" again, then "Cancel reply" does too.
    let input = bob.wait_visible("the Message box", &message_box()).await;
    bob.type_into(&input, &key(Key::Escape)).await;
    bob.wait_gone("the reply banner to go", banner).await;
    hover_tools(&bob, lunch).await;
    bob.click_xpath("Reply", &tool(lunch, "Reply")).await;
    bob.wait_visible("the reply banner", banner).await;
    bob.click_xpath("Cancel reply", &button("Cancel reply"))
        .await;
    bob.wait_gone("the reply banner to go", banner).await;
    hover_tools(&bob, lunch).await;
    bob.click_xpath("Reply", &tool(lunch, "Reply")).await;
    bob.wait_visible("the reply banner", banner).await;

    // Enough chatter in between that the original is far above, and not in a fresh page.
    for i in 1..=60 {
        pal.say(&format!("chatter #{i:02}")).await;
    }
    let answer_text = "Yes, see you there";
    bob.wait_log_has("the chatter", &["chatter #60"]).await;
    bob.send_with_enter(answer_text).await;
    bob.wait_gone("the reply banner to go after sending", banner)
        .await;
    let answer = message_id(&bob, answer_text).await;
    let quoted = "In reply to alice: Lunch at noon?";
    for b in [&alice, &bob] {
        wait_message(b, "the reply to quote the original", answer, |m| {
            m["quote"] == json!(quoted)
        })
        .await;
    }

    // The quote leads to the original: scrolled to and highlighted where it is loaded...
    alice
        .click_xpath(
            "the quote",
            &format!("{}//button[contains(@class, 'msg-quote')]", row(answer)),
        )
        .await;
    alice
        .wait_js(
            "the original to be shown and highlighted",
            TARGET_SHOWN,
            vec![json!(lunch)],
        )
        .await;
    // ...and loaded around it where it is not.
    bob.mark_read("general").await;
    bob.reload().await;
    bob.wait_chat_ready().await;
    bob.eval(WATCH_CSP, vec![]).await;
    wait_message(&bob, "the reply after a reload", answer, |m| {
        m["quote"] == json!(quoted)
    })
    .await;
    assert_eq!(
        bob.eval(FIND_ID, vec![json!(lunch_text)]).await,
        json!(0),
        "the original is not in the newest page"
    );
    bob.click_xpath(
        "the quote",
        &format!("{}//button[contains(@class, 'msg-quote')]", row(answer)),
    )
    .await;
    bob.wait_js(
        "the original to be loaded and highlighted",
        TARGET_SHOWN,
        vec![json!(lunch)],
    )
    .await;
    // Back to the newest messages: scrolling down pages them in.
    bob.wait_js(
        "the newer messages down to the reply",
        &format!(
            "const l = {LOG}; l.scrollTop = l.scrollHeight;
             return document.getElementById('log-newer').hidden
               && !!l.querySelector('.msg[data-id=\"{answer}\"]');"
        ),
        vec![],
    )
    .await;

    // ---- reactions -------------------------------------------------------------------------
    assert_eq!(
        hover_tools(&alice, answer).await,
        json!(["Reply", "Add reaction", "Copy link to message"])
    );
    alice
        .click_xpath("Add reaction", &tool(answer, "Add reaction"))
        .await;
    let picker = "//*[@role = 'dialog' and @aria-label = 'Choose a reaction']";
    alice.wait_visible("the emoji picker", picker).await;
    alice
        .click_xpath(
            "thumbs up",
            &format!("{picker}//button[@aria-label = 'thumbs up']"),
        )
        .await;
    alice.wait_gone("the picker to close", picker).await;
    for (b, mine) in [(&alice, "true"), (&bob, "false")] {
        let m = wait_message(b, "👍 1", answer, |m| {
            m["reactions"].as_array().is_some_and(|r| r.len() == 1)
        })
        .await;
        assert_eq!(
            m["reactions"],
            json!([{ "name": "👍 1", "pressed": mine, "title": "alice" }])
        );
    }
    bob.click_xpath("the 👍 chip", &chip(answer, "👍", 1)).await;
    for b in [&alice, &bob] {
        b.wait_visible("👍 2", &chip(answer, "👍", 2)).await;
    }
    let m = message(&bob, answer).await;
    assert_eq!(
        m["reactions"],
        json!([{ "name": "👍 2", "pressed": "true", "title": "alice, bob" }])
    );
    bob.click_xpath("the 👍 chip", &chip(answer, "👍", 2)).await;
    for (b, mine) in [(&alice, "true"), (&bob, "false")] {
        let m = wait_message(b, "👍 back to 1", answer, |m| {
            m["reactions"][0]["name"] == json!("👍 1")
        })
        .await;
        assert_eq!(
            m["reactions"],
            json!([{ "name": "👍 1", "pressed": mine, "title": "alice" }])
        );
    }

    // ---- edit with the toolbar -------------------------------------------------------------
    let noon = "See you at noon";
    alice.send_with_enter(noon).await;
    let see = message_id(&alice, noon).await;
    message_id(&bob, noon).await;
    assert_eq!(
        hover_tools(&alice, see).await,
        json!([
            "Reply",
            "Add reaction",
            "Edit",
            "Copy link to message",
            "Delete"
        ])
    );
    assert_eq!(
        hover_tools(&bob, see).await,
        json!(["Reply", "Add reaction", "Copy link to message"]),
        "bob may not edit or delete alice's message"
    );
    let editor = labelled("textarea", "Edit message");
    alice.click_xpath("Edit", &tool(see, "Edit")).await;
    let field = alice.wait_visible("the inline editor", &editor).await;
    assert_eq!(
        field.prop("value").await.expect("the editor's text"),
        Some(noon.to_string()),
        "the editor holds the raw text"
    );
    // Escape cancels without a change.
    alice.type_into(&field, " or never").await;
    alice.type_into(&field, &key(Key::Escape)).await;
    alice.wait_gone("the editor to close", &editor).await;
    let m = message(&alice, see).await;
    assert_eq!(m["body"], json!(noon), "Escape keeps the text: {m}");
    assert_eq!(m["edited"], Value::Null, "not edited: {m}");

    alice.click_xpath("Edit", &tool(see, "Edit")).await;
    let field = alice.wait_visible("the inline editor", &editor).await;
    field.clear().await.expect("clear the editor");
    alice.type_into(&field, "See you at **one**").await;
    alice.type_into(&field, &key(Key::Enter)).await;
    alice
        .wait_gone("the editor to close after saving", &editor)
        .await;
    for b in [&alice, &bob] {
        let m = wait_message(b, "the edit", see, |m| m["body"] == json!("See you at one")).await;
        assert_eq!(m["strong"], json!(["one"]), "Markdown in an edit: {m}");
        assert_eq!(m["edited"], json!("(edited)"), "{m}");
        assert!(
            m["editedTitle"]
                .as_str()
                .is_some_and(|t| t.starts_with("Edited ")),
            "the edit time in a tooltip: {m}"
        );
    }

    // ---- edit with the Up arrow in the empty message box ---------------------------------------
    let input = alice.wait_visible("the Message box", &message_box()).await;
    alice.click(&input).await;
    alice.type_into(&input, &key(Key::Up)).await;
    let field = alice.wait_visible("the inline editor", &editor).await;
    assert_eq!(
        field.prop("value").await.expect("the editor's text"),
        Some("See you at **one**".to_string()),
        "Up edits the last message"
    );
    field.clear().await.expect("clear the editor");
    alice.type_into(&field, "Make it half past one").await;
    alice.type_into(&field, &key(Key::Enter)).await;
    alice
        .wait_gone("the editor to close after saving", &editor)
        .await;
    for b in [&alice, &bob] {
        wait_message(b, "the second edit", see, |m| {
            m["body"] == json!("Make it half past one") && m["edited"] == json!("(edited)")
        })
        .await;
    }
    assert_eq!(
        focused_id(&alice).await,
        "composer-input",
        "back in the message box"
    );

    // ---- delete -------------------------------------------------------------------------------
    hover_tools(&alice, see).await;
    alice.click_xpath("Delete", &tool(see, "Delete")).await;
    alice
        .wait_visible(
            "the confirmation",
            "//dialog[@open and .//h2[normalize-space(.) = 'Delete this message?']]",
        )
        .await;
    alice
        .click_xpath("Delete (confirm)", &dialog_button("Delete"))
        .await;
    for b in [&alice, &bob] {
        let m = wait_message(b, "the tombstone", see, |m| m["bubble"] == json!(TOMBSTONE)).await;
        assert_eq!(m["body"], Value::Null, "{m}");
        assert_eq!(m["edited"], Value::Null, "{m}");
    }
    // A deleted message offers nothing.
    let el = alice.wait_visible("the tombstone", &bubble(see)).await;
    alice.hover(&el).await;
    assert_eq!(message(&alice, see).await["tools"], json!([]));

    // Deleting the original empties the quotes of its replies.
    hover_tools(&alice, lunch).await;
    alice.click_xpath("Delete", &tool(lunch, "Delete")).await;
    alice
        .click_xpath("Delete (confirm)", &dialog_button("Delete"))
        .await;
    for b in [&alice, &bob] {
        wait_message(b, "the quote of a deleted message", answer, |m| {
            m["quote"] == json!("In reply to alice: Original message deleted")
        })
        .await;
    }

    // ---- the keyboard ------------------------------------------------------------------------
    // The messages are one tab stop in the log: Shift+Tab from the message box reaches it, End
    // goes to the newest message, Up to the one before, and Tab into that one's toolbar.
    let input = alice.wait_visible("the Message box", &message_box()).await;
    alice.click(&input).await;
    let mut on_row = false;
    for _ in 0..12 {
        press(&alice, &format!("{}{}", key(Key::Shift), key(Key::Tab))).await;
        if focused_message(&alice).await != 0 {
            on_row = true;
            break;
        }
    }
    assert!(on_row, "Shift+Tab from the message box reaches a message");
    press(&alice, &key(Key::End)).await;
    assert_eq!(
        focused_message(&alice).await,
        see,
        "End: the newest message"
    );
    press(&alice, &key(Key::Up)).await;
    assert_eq!(focused_message(&alice).await, answer, "Up: the one before");
    assert_eq!(
        alice.eval(TOOLBAR, vec![]).await["names"],
        json!(["Reply", "Add reaction", "Copy link to message"]),
        "a focused message shows its toolbar"
    );
    press(&alice, &key(Key::Tab)).await;
    assert_eq!(focused_id(&alice).await, "Reply", "Tab: into the toolbar");
    press(&alice, &key(Key::Enter)).await;
    alice
        .wait_visible(
            "the reply banner",
            "//*[@id = 'reply-text' and normalize-space(.) = 'Replying to bob: Yes, see you there']",
        )
        .await;
    assert_eq!(focused_id(&alice).await, "composer-input");

    alice.assert_no_csp_violations("alice").await;
    bob.assert_no_csp_violations("bob").await;
    alice.close().await;
    bob.close().await;
    drop(driver);
    eprintln!(
        "lifecycle_desktop: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_opens_the_message_toolbar_on_a_phone_and_everything_fits() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let mut app = App::start().await;
    let driver = Driver::start(&tools).await;
    let phone = driver.browser("phone", 360, 740).await;
    phone.create_account(&app.base, "pocket").await;
    phone.eval(WATCH_CSP, vec![]).await;
    let mut pal = app.ws(&app.register("pal").await).await;

    // Enough before it that the log scrolls, and keeps itself at the bottom.
    for i in 1..=12 {
        pal.say(&format!("Earlier words #{i}")).await;
    }
    let hello = "Tap me for options, there are a few of them";
    pal.say(hello).await;
    let id = message_id(&phone, hello).await;
    let toolbar = format!(
        "{}//*[@role = 'group' and @aria-label = 'Message actions']",
        row(id)
    );

    // A tap shows the toolbar, inside the screen; a second tap hides it.
    let el = phone.wait_visible("the message", &bubble(id)).await;
    phone.tap(&el).await;
    phone
        .wait_visible("the toolbar after a tap", &toolbar)
        .await;
    let t = phone.eval(TOOLBAR, vec![]).await;
    assert_eq!(
        t["names"],
        json!(["Reply", "Add reaction", "Copy link to message"]),
        "{t}"
    );
    assert_eq!(t["inside"], json!(true), "the toolbar is on screen: {t}");
    assert_eq!(
        t["inLog"],
        json!(true),
        "the toolbar is inside the log: {t}"
    );
    assert_no_horizontal_scroll(&phone, "toolbar shown").await;
    let el = phone.wait_visible("the message", &bubble(id)).await;
    phone.tap(&el).await;
    phone
        .wait_gone("the toolbar after a second tap", &toolbar)
        .await;

    // React from the toolbar: the picker is a sheet, the chip fits.
    let el = phone.wait_visible("the message", &bubble(id)).await;
    phone.tap(&el).await;
    let add = phone
        .wait_visible("Add reaction", &tool(id, "Add reaction"))
        .await;
    phone.tap(&add).await;
    let picker = "//*[@role = 'dialog' and @aria-label = 'Choose a reaction']";
    phone.wait_visible("the emoji picker", picker).await;
    let thumbs = phone
        .wait_visible(
            "thumbs up",
            &format!("{picker}//button[@aria-label = 'thumbs up']"),
        )
        .await;
    phone.tap(&thumbs).await;
    phone.wait_visible("the 👍 chip", &chip(id, "👍", 1)).await;
    assert_no_horizontal_scroll(&phone, "reaction").await;

    // Reply from the toolbar.
    let el = phone.wait_visible("the message", &bubble(id)).await;
    phone.tap(&el).await;
    let reply = phone.wait_visible("Reply", &tool(id, "Reply")).await;
    phone.tap(&reply).await;
    phone
        .wait_visible(
            "the reply banner",
            "//*[@id = 'reply-text' and starts-with(normalize-space(.), 'Replying to pal: Tap me')]",
        )
        .await;
    assert_no_horizontal_scroll(&phone, "reply banner").await;
    let mine_text = "On my way";
    phone.send_with_enter(mine_text).await;
    let mine = message_id(&phone, mine_text).await;
    wait_message(&phone, "the quote", mine, |m| {
        m["quote"]
            .as_str()
            .is_some_and(|q| q.starts_with("In reply to pal: Tap me"))
    })
    .await;
    assert_no_horizontal_scroll(&phone, "reply").await;

    // Own message, the newest, at the bottom of the log: the toolbar floats over the log
    // instead of pushing the message up (keeping the log at its bottom would move it from under
    // the finger), so a second tap hides it again instead of landing on "Edit".
    let top = phone.eval(BUBBLE_TOP, vec![json!(mine)]).await;
    // (Its text, not the middle of the bubble: that is the quote, which leads to the original.)
    let el = phone.wait_visible("my message", &text_of(mine)).await;
    phone.tap(&el).await;
    phone
        .wait_visible("the toolbar of my message", &tool(mine, "Delete"))
        .await;
    let moved = phone.eval(BUBBLE_TOP, vec![json!(mine)]).await;
    assert!(
        (moved.as_f64().unwrap_or(f64::MAX) - top.as_f64().unwrap_or(0.0)).abs() < 1.0,
        "the tapped message stays under the finger: top {top} before, {moved} with the toolbar"
    );
    let t = phone.eval(TOOLBAR, vec![]).await;
    assert_eq!(
        t["inLogY"],
        json!(true),
        "the toolbar is in the log's view: {t}"
    );
    let el = phone.wait_visible("my message", &text_of(mine)).await;
    phone.tap(&el).await;
    phone
        .wait_gone("the toolbar after a second tap", &tool(mine, "Delete"))
        .await;
    assert_eq!(
        message(&phone, mine).await["editor"],
        json!(false),
        "the second tap does not open the editor"
    );

    // Edit and delete too; the toolbar still fits.
    let el = phone.wait_visible("my message", &text_of(mine)).await;
    phone.tap(&el).await;
    phone
        .wait_visible("the toolbar of my message", &tool(mine, "Delete"))
        .await;
    let t = phone.eval(TOOLBAR, vec![]).await;
    assert_eq!(
        t["names"],
        json!([
            "Reply",
            "Add reaction",
            "Edit",
            "Copy link to message",
            "Delete"
        ]),
        "{t}"
    );
    assert_eq!(t["inside"], json!(true), "the toolbar is on screen: {t}");
    assert_eq!(
        t["inLog"],
        json!(true),
        "the toolbar is inside the log: {t}"
    );
    assert_no_horizontal_scroll(&phone, "own toolbar").await;
    let delete = phone.wait_visible("Delete", &tool(mine, "Delete")).await;
    phone.tap(&delete).await;
    let confirm = phone
        .wait_visible("the confirmation's Delete", &dialog_button("Delete"))
        .await;
    phone.tap(&confirm).await;
    wait_message(&phone, "the tombstone", mine, |m| {
        m["bubble"] == json!(TOMBSTONE)
    })
    .await;
    assert_no_horizontal_scroll(&phone, "tombstone").await;

    // A reply written while the server is away keeps its quote when the outbox sends it.
    let el = phone.wait_visible("the message", &bubble(id)).await;
    phone.tap(&el).await;
    let reply = phone.wait_visible("Reply", &tool(id, "Reply")).await;
    phone.tap(&reply).await;
    app.stop().await;
    phone
        .wait_js(
            "the page to notice the server is gone",
            "return document.getElementById('conn').dataset.state !== 'connected';",
            vec![],
        )
        .await;
    // At 360 px the badge says it in a word too, not by the colour of its dot alone.
    phone
        .wait_js(
            "the connection badge to show a word",
            "const c = document.getElementById('conn');
             const r = c.getBoundingClientRect();
             return c.dataset.state !== 'connected' && c.dataset.short === 'Offline'
               && /data-short|Offline/.test(getComputedStyle(c, '::after').content)
               && r.width > 50 && r.right <= innerWidth;",
            vec![],
        )
        .await;
    assert_no_horizontal_scroll(&phone, "offline badge").await;
    let offline = "Written while the server was away";
    phone.send_with_enter(offline).await;
    app.restart().await;
    let later = message_id(&phone, offline).await;
    let from_pal = |m: &Value| {
        m["quote"]
            .as_str()
            .is_some_and(|q| q.starts_with("In reply to pal: Tap me"))
    };
    wait_message(&phone, "the quote after the resend", later, from_pal).await;
    // The server stored it as a reply: a fresh page shows the quote too.
    phone.reload().await;
    phone.wait_chat_ready().await;
    phone.eval(WATCH_CSP, vec![]).await;
    wait_message(&phone, "the quote after a reload", later, from_pal).await;
    assert_no_horizontal_scroll(&phone, "after a reload").await;

    phone.assert_no_csp_violations("phone").await;
    phone.close().await;
    drop(driver);
    eprintln!("lifecycle_phone: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_deletes_everything_a_user_wrote() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    app.register_admin("boss").await;
    let driver = Driver::start(&tools).await;
    let (admin, reader) = tokio::join!(
        driver.browser("boss", 1280, 800),
        driver.browser("reader", 1280, 800)
    );
    admin
        .submit_sign_in(&app.base, "Sign in", "boss", PASSWORD)
        .await;
    tokio::join!(
        admin.wait_chat_ready(),
        reader.create_account(&app.base, "reader")
    );
    admin.eval(WATCH_CSP, vec![]).await;
    reader.eval(WATCH_CSP, vec![]).await;

    let mut troll = app.ws(&app.register("troll").await).await;
    let spam = ["spam number one", "spam number two", "spam number three"];
    for s in spam {
        troll.say(s).await;
    }
    let kept = "a message that stays";
    reader.send_with_enter(kept).await;
    let first = message_id(&admin, spam[0]).await;
    for s in spam {
        message_id(&reader, s).await;
    }

    // An administrator may delete anyone's message (but edits only their own).
    assert_eq!(
        hover_tools(&admin, first).await,
        json!(["Reply", "Add reaction", "Copy link to message", "Delete"])
    );

    admin.goto(&format!("{}admin.html", app.base)).await;
    admin.eval(WATCH_CSP, vec![]).await;
    admin
        .click_xpath(
            "Delete all messages by troll",
            &button("Delete all messages by troll"),
        )
        .await;
    admin
        .wait_visible(
            "the confirmation",
            "//dialog[@open and .//h2[normalize-space(.) = 'Delete every message by troll?']]",
        )
        .await;
    admin
        .click_xpath("Delete all messages", &dialog_button("Delete all messages"))
        .await;
    admin
        .wait_visible(
            "the announcement",
            "//*[@role = 'status' and normalize-space(.) = 'Deleted 3 messages by troll.']",
        )
        .await;

    let log = reader
        .wait_for("three tombstones in the reader's chat", || async {
            let log = reader.log_text().await;
            (log.matches(TOMBSTONE).count() == 3).then_some(log)
        })
        .await;
    for s in spam {
        assert!(!log.contains(s), "{s:?} is gone: {log}");
    }
    assert!(log.contains(kept), "other people's messages stay");

    admin.assert_no_csp_violations("admin").await;
    reader.assert_no_csp_violations("reader").await;
    admin.close().await;
    reader.close().await;
    drop(driver);
    eprintln!("lifecycle_purge: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_left_open_is_cancelled_when_another_room_or_dm_is_opened() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let alice = driver.member(&app.base, "alice", 1280, 800).await;
    let bob_cookie = app.register("bob").await;
    let bob = Auth::Cookie(bob_cookie.clone());
    app.kit().create_room(&bob, "side", false).await;
    app.kit().invite(&bob, "side", "alice").await;
    let (_, dm) = app.kit().open_dm(&bob, &["alice"]).await;
    let dm = dm["name"].as_str().expect("the DM's name").to_string();
    app.ws(&bob_cookie).await.say_in(&dm, "Hi Alice").await;
    alice
        .wait_visible("side in the sidebar", &room_link("side"))
        .await;
    alice
        .wait_visible("the DM in the sidebar", &room_link(&dm))
        .await;

    let text = "Meet at the north gate";
    alice.send_with_enter(text).await;
    let id = message_id(&alice, text).await;
    let editor = labelled("textarea", "Edit message");
    // Nothing was edited: the message shows its text, without an editor, and the server has
    // it as it was sent.
    let unchanged = |phase: &'static str| {
        let alice = &alice;
        let editor = &editor;
        async move {
            let m = wait_message(alice, phase, id, |m| m["body"] == json!(text)).await;
            assert_eq!(m["editor"], json!(false), "{phase}: no editor: {m}");
            assert_eq!(m["edited"], Value::Null, "{phase}: not edited: {m}");
            assert!(
                alice.visible(editor).await.is_none(),
                "{phase}: no editor anywhere"
            );
            let stored = alice
                .eval(
                    "return fetch('api/rooms/general/messages?limit=50', { credentials: 'same-origin' })
                       .then((r) => r.json())
                       .then((d) => d.messages.filter((m) => m.id === arguments[0]).map((m) => m.body));",
                    vec![json!(id)],
                )
                .await;
            assert_eq!(stored, json!([text]), "{phase}: stored as sent");
        }
    };

    // The toolbar's Edit, a change half written, then another room from the sidebar.
    hover_tools(&alice, id).await;
    alice.click_xpath("Edit", &tool(id, "Edit")).await;
    let field = alice.wait_visible("the inline editor", &editor).await;
    alice.type_into(&field, " or the south one").await;
    alice
        .click_xpath("side in the sidebar", &room_link("side"))
        .await;
    wait_room_open(&alice, "side", "side").await;
    // Enter in the message box there sends a new message to that room.
    let there = "A new message in side";
    alice.send_with_enter(there).await;
    message_id(&alice, there).await;
    alice
        .click_xpath("general in the sidebar", &room_link("general"))
        .await;
    wait_room_open(&alice, "general", "general").await;
    unchanged("back in general after side").await;

    // The Up arrow in the empty message box, a change half written, then the DM from the
    // quick switcher (Ctrl+K from inside the editor).
    let input = alice.wait_visible("the Message box", &message_box()).await;
    alice.click(&input).await;
    alice.type_into(&input, &key(Key::Up)).await;
    let field = alice.wait_visible("the inline editor", &editor).await;
    alice.type_into(&field, ", at noon").await;
    alice
        .type_into(&field, &format!("{}k", key(Key::Control)))
        .await;
    let filter = alice
        .wait_visible(
            "the quick switcher",
            &labelled("input", "Find a room or conversation"),
        )
        .await;
    alice.type_into(&filter, "bob").await;
    alice
        .wait_js(
            "the DM with bob to be the only option",
            "const o = document.querySelectorAll('#switcher-list [role=\"option\"]');
             return o.length === 1 && o[0].dataset.room === arguments[0];",
            vec![json!(dm)],
        )
        .await;
    alice.type_into(&filter, &key(Key::Enter)).await;
    wait_room_open(&alice, &dm, "bob").await;
    let in_dm = "A new message to bob";
    alice.send_with_enter(in_dm).await;
    message_id(&alice, in_dm).await;
    alice
        .click_xpath("general in the sidebar", &room_link("general"))
        .await;
    wait_room_open(&alice, "general", "general").await;
    unchanged("back in general after the DM").await;

    // A new editor starts from the message as it is.
    hover_tools(&alice, id).await;
    alice.click_xpath("Edit", &tool(id, "Edit")).await;
    let field = alice.wait_visible("the inline editor", &editor).await;
    assert_eq!(
        field.prop("value").await.expect("the editor's text"),
        Some(text.to_string()),
        "a new editor starts from the message's text"
    );
    alice.type_into(&field, &key(Key::Escape)).await;
    alice.wait_gone("the editor to close", &editor).await;

    alice.assert_no_csp_violations("alice").await;
    alice.close().await;
    drop(driver);
    eprintln!(
        "lifecycle_switch_while_editing: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A mention that an edit adds to a message written before the page loaded (so below the
/// room's `last_id` in `ready`) still shows on the room's entry: the edit is news, and the
/// server, not the message's id, says whether `ready` counted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_mentions_you_in_an_older_unread_message_shows_on_the_room() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let kit = app.kit();
    let alice = Auth::Cookie(app.register("alice").await);
    let bob = Auth::Cookie(app.register("bob").await);
    kit.create_room(&alice, "side", true).await;
    kit.join_room(&bob, "side").await;
    let mut ws = kit.ws_connect(&alice, None).await;
    let id = ws.say("side", "Lunch at noon?", "l1").await["id"].clone();

    let driver = Driver::start(&tools).await;
    let b = driver.browser("bob", 1280, 800).await;
    b.submit_sign_in(&app.base, "Sign in", "bob", PASSWORD)
        .await;
    b.wait_chat_ready().await;
    wait_room_open(&b, "general", "general").await;
    let entry = room_link("side");
    let mentions = format!("{entry}//span[contains(concat(' ', @class, ' '), ' room-mentions ')]");
    b.wait_visible(
        "side's unread count",
        &format!("{entry}//span[contains(concat(' ', @class, ' '), ' room-unread ')]"),
    )
    .await;
    assert!(b.visible(&mentions).await.is_none(), "no mention yet");

    ws.send_json(&json!({"type": "edit", "id": id, "body": "Lunch at noon, @bob?", "nonce": "e1"}))
        .await;
    ws.wait_for("the edit's echo", |f| {
        f["type"] == "edited" && f["nonce"] == "e1"
    })
    .await;
    let badge = b.wait_visible("side's mention badge", &mentions).await;
    assert_eq!(badge.text().await.expect("badge text").trim(), "@1");
    drop(ws);
    b.close().await;
}
