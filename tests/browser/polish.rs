//! What a second review of the chat page in headless Chromium found, kept fixed: cards,
//! mentions and "(edited)" in the reader's own bubble stay readable in both themes; the focus
//! lands where the reader acts (Tab flows out of the search results, a new direct message, a
//! reaction picked with the keyboard, "Change password", a room's "Save", the online list on a
//! phone); "Jump to latest" after a jump into the past; the lightbox never enlarges a small
//! picture; an edit is not lost to a deletion nor silently overwrites an edit made elsewhere;
//! a growing editor keeps its buttons in view on a phone; the page title counts what the
//! sidebar counts; accessible names read cleanly and the day line is not part of a message.

use std::collections::HashMap;
use std::time::Instant;

use fantoccini::key::Key;
use serde_json::{json, Value};

use crate::common::{Answer, Site};
use crate::files::give;
use crate::harness::{
    axe_source, browser_tools, button, cdp, emulate_scheme, labelled, message_box, within, App,
    Browser, Driver, WAIT,
};

fn k(key: Key) -> String {
    char::from(key).to_string()
}

/// Press `keys` (WebDriver key codes allowed) on whatever has focus.
async fn press(b: &Browser, keys: &str) {
    let el = within(WAIT, "the focused element", b.client.active_element())
        .await
        .expect("an active element");
    b.type_into(&el, keys).await;
}

/// Where the focus is: `body`, or the focused element's id, name and surroundings.
const FOCUS: &str = r#"
const a = document.activeElement;
if (!a || a === document.body) return { id: 'body' };
const row = a.closest('.msg');
const input = document.getElementById('search-input');
return {
  id: a.id || a.tagName,
  name: a.getAttribute('aria-label') || (a.textContent || '').trim().slice(0, 60),
  action: a.dataset.action || null,
  inPanel: !!a.closest('#search-panel'),
  inOnline: !!a.closest('#online-panel'),
  afterBox: !!(input.compareDocumentPosition(a) & Node.DOCUMENT_POSITION_FOLLOWING),
  tools: !!(row && row.querySelector('.msg-tools')),
};
"#;

async fn focus(b: &Browser) -> Value {
    b.eval(FOCUS, vec![]).await
}

/// Wait until the focus satisfies `check`, and return where it is.
async fn wait_focus(b: &Browser, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    b.wait_for(what, || async {
        let f = focus(b).await;
        check(&f).then_some(f)
    })
    .await
}

/// `fetch` in the page (the reader's own session): the status code.
async fn page_fetch(b: &Browser, method: &str, path: &str, body: Value) -> u64 {
    let v = within(
        WAIT,
        "a fetch in the page",
        b.client.execute_async(
            "const [method, path, body] = arguments;
             const done = arguments[arguments.length - 1];
             fetch(path, { method, headers: { 'content-type': 'application/json' },
                           body: body === null ? undefined : JSON.stringify(body) })
               .then((r) => done(r.status)).catch((e) => done(String(e)));",
            vec![json!(method), json!(path), body],
        ),
    )
    .await
    .expect("the fetch runs");
    v.as_u64().unwrap_or_else(|| panic!("{method} {path}: {v}"))
}

/// The id of the newest message whose text includes `text`.
async fn message_id(b: &Browser, text: &str) -> u64 {
    b.wait_js(
        &format!("the message {text:?}"),
        "const rows = Array.from(document.querySelectorAll('[role=\"log\"] .msg[data-id]'))
           .filter((r) => (r.querySelector('.msg-body') || {}).textContent?.includes(arguments[0]));
         return rows.length ? Number(rows[rows.length - 1].dataset.id) : null;",
        vec![json!(text)],
    )
    .await
    .as_u64()
    .expect("a message id")
}

/// Create the public room `name` through the API and open it.
async fn open_new_room(b: &Browser, name: &str) {
    let status = page_fetch(
        b,
        "POST",
        "/api/rooms",
        json!({ "name": name, "topic": "", "public": true }),
    )
    .await;
    assert!(status < 300, "creating {name}: {status}");
    b.eval("location.hash = '#' + arguments[0];", vec![json!(name)])
        .await;
    b.wait_js(
        &format!("{name} to open"),
        "const a = document.querySelector('nav a[aria-current=\"page\"]');
         return !!a && a.dataset.room === arguments[0];",
        vec![json!(name)],
    )
    .await;
}

/// axe-core's colour-contrast rule over the reader's own messages: the failures.
async fn own_contrast_failures(b: &Browser) -> Option<Value> {
    let source = axe_source()?;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    if b.eval("return typeof window.axe !== 'undefined';", vec![])
        .await
        != json!(true)
    {
        b.eval(&format!("{source}\nreturn true;"), vec![]).await;
    }
    Some(
        within(
            WAIT * 3,
            "axe-core",
            b.client.execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run({ include: [['.msg.own']] }, { runOnly: ['color-contrast'], resultTypes: ['violations'] })
                   .then((r) => done(r.violations.flatMap((v) => v.nodes.map((n) => n.html.slice(0, 80) + ' => ' + n.any.map((x) => x.message).join(' ')))))
                   .catch((e) => done(['axe failed: ' + e]));",
                vec![],
            ),
        )
        .await
        .expect("axe-core runs"),
    )
}

// ---- 1, 6: the reader's own bubble ------------------------------------------------------------

/// The contrast of a file card's name and a link preview's title in the reader's own bubble
/// against the card they sit on (the first opaque background behind them).
const CARD_CONTRAST: &str = r#"
const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const ratio = (el) => {
  const fg = rgb(getComputedStyle(el).color);
  let n = el;
  let bg = null;
  while (n && n.nodeType === 1) {
    const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length >= 3 && (c.length < 4 || c[3] === 1)) { bg = c; break; }
    n = n.parentElement;
  }
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return Math.round(((a + 0.05) / (b + 0.05)) * 100) / 100;
};
const own = '[role="log"] .msg.own .msg-bubble ';
return {
  'file card name': ratio(document.querySelector(own + '.file-card .file-name')),
  'preview title': ratio(document.querySelector(own + '.preview-title')),
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_mentions_and_edited_in_your_own_bubble_are_readable_in_both_themes() {
    let Some(tools) = browser_tools() else {
        return;
    };
    if axe_source().is_none() {
        return;
    }
    let started = Instant::now();
    let page = "<html><head><meta property=og:title content='Baking bread'>\
        <meta property=og:description content='Flour, water, salt and time.'>\
        <meta property=og:site_name content='Kitchen'></head><body></body></html>";
    let mut pages = HashMap::new();
    pages.insert("/bread", Answer::Ok("text/html", page.as_bytes().to_vec()));
    let site = Site::start(pages).await;
    let app = App::start_with(|c| {
        c.previews.enabled = true;
        c.outbound.allow_private_networks = true;
    })
    .await;
    let driver = Driver::start(&tools).await;
    let alice = driver.member(&app.base, "alice", 1280, 800).await;

    alice
        .send_with_enter(&format!("try this {} @here", site.url("/bread")))
        .await;
    give(
        &alice,
        "paste",
        json!([{ "name": "notes.txt", "type": "text/plain", "text": "some notes" }]),
    )
    .await;
    alice
        .wait_js(
            "the file to be ready",
            "return Array.from(document.querySelectorAll('#upload-tray .upload-status')).some((s) => s.textContent === 'Ready');",
            vec![],
        )
        .await;
    alice.send_with_enter("the notes").await;
    let id = message_id(&alice, "the notes").await;
    let status = page_fetch(
        &alice,
        "PATCH",
        &format!("/api/messages/{id}"),
        json!({ "body": "the notes, see the card" }),
    )
    .await;
    assert!(status < 300, "the edit: {status}");
    alice
        .wait_js(
            "the card, the preview, the mention and (edited) in alice's bubbles",
            "const own = document.querySelectorAll('[role=\"log\"] .msg.own');
             const q = (s) => Array.from(own).some((r) => r.querySelector(s));
             return q('.msg-bubble .file-card') && q('.msg-bubble .preview-title') && q('.mention-me')
               && q('.msg-edited') && !document.querySelector('[role=\"log\"] .msg.pending');",
            vec![],
        )
        .await;

    for scheme in ["light", "dark"] {
        emulate_scheme(&driver, &alice, scheme).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let cards = alice.eval(CARD_CONTRAST, vec![]).await;
        for (what, ratio) in cards.as_object().expect("the cards").iter() {
            assert!(
                ratio.as_f64().unwrap_or(0.0) >= 4.5,
                "{scheme}: {what} in alice's own bubble: {cards}"
            );
        }
        let failures = own_contrast_failures(&alice).await.expect("axe-core");
        assert_eq!(
            failures,
            json!([]),
            "{scheme}: text in alice's own bubbles below 4.5:1"
        );
    }

    alice.assert_no_csp_violations("alice").await;
    alice.close().await;
    drop(driver);
    eprintln!(
        "polish_own_bubble: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- 2, 3, 4, 5: where the focus goes ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_focus_lands_where_the_reader_acts() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    app.register("bob").await;
    let driver = Driver::start(&tools).await;
    let alice = driver.member(&app.base, "alice", 1280, 800).await;

    // 2. With the search results open beside the conversation, Tab goes box → results → on
    // to the rest of the page (what follows the box), and Shift+Tab comes back.
    alice.send_with_enter("needle one").await;
    alice.send_with_enter("needle two").await;
    let search = alice
        .wait_visible("the search box", "//input[@id = 'search-input']")
        .await;
    alice.type_into(&search, "needle").await;
    alice.type_into(&search, &k(Key::Enter)).await;
    alice
        .wait_visible("a search result", "//*[@id = 'search-results']//button")
        .await;
    alice
        .eval("document.getElementById('search-input').focus();", vec![])
        .await;
    press(&alice, &k(Key::Tab)).await;
    let f = focus(&alice).await;
    assert_eq!(
        f["inPanel"],
        json!(true),
        "Tab from the box: the results: {f}"
    );
    let mut left = None;
    for _ in 0..15 {
        press(&alice, &k(Key::Tab)).await;
        let f = focus(&alice).await;
        if f["inPanel"] != json!(true) {
            left = Some(f);
            break;
        }
    }
    let left = left.expect("Tab leaves the search results");
    assert_ne!(left["id"], json!("body"), "{left}");
    assert_ne!(left["id"], json!("search-input"), "{left}");
    assert_eq!(
        left["afterBox"],
        json!(true),
        "Tab goes on to what follows the search box: {left}"
    );
    press(&alice, &format!("{}{}", k(Key::Shift), k(Key::Tab))).await;
    let back = focus(&alice).await;
    assert_eq!(back["inPanel"], json!(true), "Shift+Tab comes back: {back}");
    alice
        .click_xpath("Close search", &button("Close search"))
        .await;

    // 3. A direct message started from its dialog: the focus is in its Message box.
    alice
        .click_xpath("Start a direct message", &button("Start a direct message"))
        .await;
    let users = alice
        .wait_visible("the people field", "//input[@id = 'dm-users']")
        .await;
    alice.type_into(&users, "bob").await;
    alice.type_into(&users, &k(Key::Enter)).await;
    alice
        .wait_js(
            "the direct message with bob to open",
            "const a = document.querySelector('nav a[aria-current=\"page\"]');
             return !!a && a.dataset.room.startsWith('dm:');",
            vec![],
        )
        .await;
    wait_focus(&alice, "the focus in the DM's Message box", |f| {
        f["id"] == json!("composer-input")
    })
    .await;

    // 4. A reaction picked with the keyboard from "Add reaction": the focus is back on it,
    // with the message's toolbar.
    alice.send_with_enter("react to me").await;
    let id = message_id(&alice, "react to me").await;
    alice
        .eval(
            "document.querySelector('[role=\"log\"] .msg[data-id=\"' + arguments[0] + '\"]').focus();",
            vec![json!(id.to_string())],
        )
        .await;
    alice
        .wait_js(
            "the toolbar on the focused message",
            "const b = document.querySelector('.msg[data-id=\"' + arguments[0] + '\"] .msg-tools button[data-action=\"react\"]');
             if (b) b.focus();
             return !!b && document.activeElement === b;",
            vec![json!(id.to_string())],
        )
        .await;
    press(&alice, &k(Key::Enter)).await;
    alice
        .wait_js(
            "the focus in the emoji picker",
            "const p = document.querySelector('.emoji-picker[role=\"dialog\"]');
             return !!p && p.contains(document.activeElement);",
            vec![],
        )
        .await;
    press(&alice, "tada").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    press(&alice, &k(Key::Enter)).await;
    alice
        .wait_js(
            "the reaction on the message",
            "const r = document.querySelector('.msg[data-id=\"' + arguments[0] + '\"] .msg-reactions');
             return !!r && !r.hidden && r.textContent.includes('🎉');",
            vec![json!(id.to_string())],
        )
        .await;
    let f = focus(&alice).await;
    assert_eq!(
        f["action"],
        json!("react"),
        "the focus is back on Add reaction: {f}"
    );
    assert_eq!(f["tools"], json!(true), "the toolbar stays: {f}");

    // 5a. "Change password": the focus stays on the button (the status says what happened).
    alice.goto(&format!("{}?settings=password", app.base)).await;
    alice.wait_chat_ready().await;
    for (label, value) in [
        ("Current password", crate::harness::PASSWORD),
        ("New password", "a brand new password"),
        ("Confirm new password", "a brand new password"),
    ] {
        let field = alice.wait_visible(label, &labelled("input", label)).await;
        alice.type_into(&field, value).await;
    }
    alice
        .eval(
            "document.getElementById('password-submit').focus();",
            vec![],
        )
        .await;
    press(&alice, &k(Key::Enter)).await;
    alice
        .wait_js(
            "the password changed",
            "return document.getElementById('password-status').textContent.includes('changed');",
            vec![],
        )
        .await;
    let f = wait_focus(&alice, "the focus after Change password", |f| {
        f["id"] != json!("body")
    })
    .await;
    assert_eq!(f["id"], json!("password-submit"), "{f}");
    press(&alice, &k(Key::Escape)).await;

    // 5b. A room's "Save": the focus stays on it.
    open_new_room(&alice, "den").await;
    alice
        .click_xpath("Room settings", &button("Room settings"))
        .await;
    let topic = alice
        .wait_visible("the Topic field", &labelled("input", "Topic"))
        .await;
    alice.type_into(&topic, "Tea and biscuits").await;
    alice
        .eval(
            "document.querySelector('#room-edit-form button[type=\"submit\"]').focus();",
            vec![],
        )
        .await;
    press(&alice, &k(Key::Enter)).await;
    alice
        .wait_js(
            "the topic saved",
            "return document.getElementById('room-about-topic').textContent === 'Tea and biscuits';",
            vec![],
        )
        .await;
    let f = wait_focus(&alice, "the focus after Save", |f| f["id"] != json!("body")).await;
    assert_eq!(f["name"], json!("Save"), "{f}");

    alice.assert_no_csp_violations("alice").await;
    alice.close().await;
    drop(driver);
    eprintln!("polish_focus: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 7, 12: far back in a long history, and the title -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jump_to_latest_after_a_jump_back_and_a_title_like_the_sidebar() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let mut bob = app.ws(&app.register("bob").await).await;
    let driver = Driver::start(&tools).await;
    let alice = driver.member(&app.base, "alice", 1280, 800).await;
    open_new_room(&alice, "den").await;

    let first = bob.say("the very first words").await;
    let first_id = first["id"].as_u64().expect("an id");
    for i in 1..=70 {
        bob.say(&format!("chatter #{i:02}")).await;
    }
    alice
        .wait_js(
            "the title to count general's unread",
            "return document.title === '(71) Hearth';",
            vec![],
        )
        .await;

    // 12. Opening general (at its first unread, far from the newest): its badge clears, and
    // so does the title, though the newest message has not been seen yet.
    alice
        .click_xpath("general", "//nav//a[@data-room = 'general']")
        .await;
    alice
        .wait_gone(
            "general's badge to clear",
            "//nav//a[@data-room = 'general']//span[contains(@class, 'room-unread')]",
        )
        .await;
    alice
        .wait_js(
            "the title to follow the sidebar",
            "return document.title === 'Hearth';",
            vec![],
        )
        .await;

    // 7. A link to the first message, far back: "Jump to latest" brings the newest.
    alice
        .eval(
            "location.hash = '#general/' + arguments[0];",
            vec![json!(first_id)],
        )
        .await;
    alice
        .wait_js(
            "the first message highlighted",
            "const r = document.querySelector('.msg[data-id=\"' + arguments[0] + '\"]');
             return !!r && r.classList.contains('is-target');",
            vec![json!(first_id.to_string())],
        )
        .await;
    let jump = "//button[@id = 'jump' and starts-with(normalize-space(.), 'Jump to latest')]";
    let btn = alice.wait_visible("the Jump to latest button", jump).await;
    alice.click(&btn).await;
    alice
        .wait_js(
            "the newest message loaded and in view",
            "const log = document.querySelector('[role=\"log\"]');
             const rows = Array.from(log.querySelectorAll('.msg[data-id]'));
             const last = rows[rows.length - 1];
             if (!last || !last.textContent.includes('chatter #70')) return false;
             const r = last.getBoundingClientRect();
             const l = log.getBoundingClientRect();
             return r.bottom <= l.bottom + 2 && r.top >= l.top;",
            vec![],
        )
        .await;
    alice
        .wait_gone("the Jump to latest button to go", "//button[@id = 'jump']")
        .await;

    alice.assert_no_csp_violations("alice").await;
    alice.close().await;
    drop(driver);
    eprintln!("polish_jump: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 8, 9, 11: on a phone ----------------------------------------------------------------------

/// The lightbox's picture: how much it is scaled as painted (object-fit in its content box).
const LIGHTBOX_SCALE: &str = r#"
const d = document.getElementById('lightbox');
const i = d && d.open ? d.querySelector('.lightbox-img') : null;
if (!i || !i.complete || !i.naturalWidth) return null;
const cs = getComputedStyle(i);
const r = i.getBoundingClientRect();
const px = (p) => parseFloat(cs[p]) || 0;
const w = r.width - px('paddingLeft') - px('paddingRight') - px('borderLeftWidth') - px('borderRightWidth');
const h = r.height - px('paddingTop') - px('paddingBottom') - px('borderTopWidth') - px('borderBottomWidth');
const fit = cs.objectFit;
let sx = w / i.naturalWidth;
let sy = h / i.naturalHeight;
if (fit === 'contain') { sx = sy = Math.min(sx, sy); }
else if (fit === 'cover') { sx = sy = Math.max(sx, sy); }
else if (fit === 'scale-down') { sx = sy = Math.min(1, sx, sy); }
else if (fit === 'none') { sx = sy = 1; }
return { scale: Math.max(sx, sy), natural: [i.naturalWidth, i.naturalHeight], box: [w, h], fit };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_online_list_the_lightbox_and_a_growing_editor_behave() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let alice = driver.member(&app.base, "alice", 360, 740).await;

    // 8. "People online" from the account menu: the focus goes into the list; Escape closes
    // it and gives the focus back to the account button.
    alice
        .click_xpath("Account menu", &button("Account menu"))
        .await;
    alice
        .click_xpath("People online", "//button[@id = 'online-toggle']")
        .await;
    wait_focus(&alice, "the focus in the online list", |f| {
        f["inOnline"] == json!(true)
    })
    .await;
    press(&alice, &k(Key::Escape)).await;
    let f = wait_focus(&alice, "the focus back after Escape", |f| {
        f["inOnline"] != json!(true)
    })
    .await;
    assert_eq!(f["name"], json!("Account menu"), "{f}");
    let open = alice
        .eval(
            "return document.getElementById('online-panel').classList.contains('is-open');",
            vec![],
        )
        .await;
    assert_eq!(open, json!(false), "Escape closes the online list");

    // 9. A picture smaller than the screen opens at its own size, not enlarged.
    give(
        &alice,
        "paste",
        json!([{ "name": "tiny.png", "png": [24, 16] }]),
    )
    .await;
    alice
        .wait_js(
            "the picture to be ready",
            "return Array.from(document.querySelectorAll('#upload-tray .upload-status')).some((s) => s.textContent === 'Ready');",
            vec![],
        )
        .await;
    alice.send_with_enter("a tiny picture").await;
    alice
        .click_xpath("Open image tiny.png", &button("Open image tiny.png"))
        .await;
    let shown = alice
        .wait_js("the picture in the lightbox", LIGHTBOX_SCALE, vec![])
        .await;
    assert!(
        shown["scale"].as_f64().unwrap_or(f64::MAX) <= 1.001,
        "the lightbox enlarges a small picture: {shown}"
    );
    press(&alice, &k(Key::Escape)).await;
    alice
        .wait_gone("the lightbox to close", "//dialog[@id = 'lightbox']")
        .await;

    // 11. Editing a message near the bottom of the log (newer ones below, out of view): as
    // the editor grows, its Save and Cancel stay in view above the message box.
    let mut bob = app.ws(&app.register("bob").await).await;
    for i in 1..=20 {
        bob.say(&format!("earlier #{i:02}")).await;
    }
    alice
        .wait_log_has("the earlier messages", &["earlier #20"])
        .await;
    alice.send_with_enter("edit me on the phone").await;
    for i in 1..=30 {
        bob.say(&format!("later #{i:02}")).await;
    }
    alice
        .wait_log_has("the later messages", &["later #30"])
        .await;
    let id = message_id(&alice, "edit me on the phone").await;
    alice
        .wait_js(
            "the message at the bottom of the log",
            "const log = document.querySelector('[role=\"log\"]');
             const row = log.querySelector('.msg[data-id=\"' + arguments[0] + '\"]');
             const r = row.getBoundingClientRect();
             const l = log.getBoundingClientRect();
             log.scrollTop += r.bottom - (l.bottom - 12);
             const now = row.getBoundingClientRect();
             return Math.abs(now.bottom - (l.bottom - 12)) < 3;",
            vec![json!(id.to_string())],
        )
        .await;
    // The reader's last message: the Up arrow in the empty box edits it.
    let input = alice.wait_visible("the message box", &message_box()).await;
    alice.type_into(&input, &k(Key::Up)).await;
    let editor = alice
        .wait_visible("the editor", &labelled("textarea", "Edit message"))
        .await;
    alice
        .eval(
            "const r = document.querySelector('.msg[data-id=\"' + arguments[0] + '\"]');
             const log = document.querySelector('[role=\"log\"]');
             const l = log.getBoundingClientRect();
             log.scrollTop += r.getBoundingClientRect().bottom - (l.bottom - 12);",
            vec![json!(id.to_string())],
        )
        .await;
    for i in 1..=8 {
        alice.type_into(&editor, &format!("line {i}")).await;
        alice
            .type_into(&editor, &format!("{}{}", k(Key::Shift), k(Key::Enter)))
            .await;
    }
    alice
        .wait_js(
            "Save and Cancel in view",
            "const ed = document.querySelector('.msg-editor');
             const log = document.querySelector('[role=\"log\"]').getBoundingClientRect();
             const b = ed.querySelector('.msg-editor-buttons').getBoundingClientRect();
             return b.top >= log.top - 1 && b.bottom <= log.bottom + 1;",
            vec![],
        )
        .await;

    alice.assert_no_csp_violations("alice").await;
    alice.close().await;
    drop(driver);
    eprintln!("polish_phone: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 10: an edit meets a change made elsewhere -----------------------------------------------

/// Edit the reader's last message: the Up arrow in the empty Message box. The editor.
async fn start_edit(b: &Browser) -> fantoccini::elements::Element {
    let input = b.wait_visible("the message box", &message_box()).await;
    b.type_into(&input, &k(Key::Up)).await;
    b.wait_visible("the editor", &labelled("textarea", "Edit message"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_hears_of_an_edit_elsewhere_and_survives_a_deletion() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let alice = driver.member(&app.base, "alice", 1280, 800).await;
    alice.send_with_enter("race target").await;
    let id = message_id(&alice, "race target").await;

    // Edited elsewhere (another device) while being edited here: the editor says so, politely.
    let editor = start_edit(&alice).await;
    alice.type_into(&editor, " with my words").await;
    let status = page_fetch(
        &alice,
        "PATCH",
        &format!("/api/messages/{id}"),
        json!({ "body": "changed on the phone" }),
    )
    .await;
    assert!(status < 300, "the other edit: {status}");
    let note = alice
        .wait_js(
            "the editor to say the message changed elsewhere",
            "const n = document.querySelector('.msg-editor [role=\"status\"]:not(.visually-hidden)');
             return n && n.textContent.includes('edited elsewhere') ? n.textContent : null;",
            vec![],
        )
        .await;
    assert!(note.as_str().is_some_and(|n| !n.is_empty()), "{note}");
    let typed = alice
        .eval(
            "return document.querySelector('.msg-editor-input').value;",
            vec![],
        )
        .await;
    assert_eq!(
        typed,
        json!("race target with my words"),
        "the typed text stays"
    );
    press(&alice, &k(Key::Escape)).await;

    // Deleted while being edited: the typed text goes to the Message box, and the page says so.
    let editor = start_edit(&alice).await;
    alice.type_into(&editor, " and more").await;
    let status = page_fetch(
        &alice,
        "DELETE",
        &format!("/api/messages/{id}"),
        Value::Null,
    )
    .await;
    assert!(status < 300, "the deletion: {status}");
    let box_text = alice
        .wait_js(
            "the typed text in the Message box",
            "return !document.querySelector('.msg-editor') && document.getElementById('composer-input').value;",
            vec![],
        )
        .await;
    assert_eq!(box_text, json!("changed on the phone and more"));
    alice
        .wait_js(
            "a polite word about the deletion",
            "return document.getElementById('composer-status').textContent.includes('was deleted');",
            vec![],
        )
        .await;

    alice.assert_no_csp_violations("alice").await;
    alice.close().await;
    drop(driver);
    eprintln!(
        "polish_edit_races: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- 13: accessible names ---------------------------------------------------------------------

/// The accessible names of the nodes with `role`, as Chromium computes them.
async fn ax_names(driver: &Driver, b: &Browser, role: &str) -> Vec<String> {
    cdp(driver, b, "Accessibility.enable", json!({})).await;
    let tree = cdp(driver, b, "Accessibility.getFullAXTree", json!({})).await;
    tree["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| n["role"]["value"] == json!(role))
                .filter_map(|n| n["name"]["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_read_cleanly_and_the_reply_bar_uses_the_display_name() {
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
    let status = page_fetch(&bob, "PATCH", "/api/me", json!({ "display_name": "Bob B" })).await;
    assert!(status < 300, "bob's display name: {status}");

    // Elsewhere while bob writes: general's sidebar entry is named in one piece.
    open_new_room(&alice, "den").await;
    bob.send_with_enter("hello there").await;
    bob.send_with_enter("anyone about?").await;
    alice
        .wait_visible(
            "general's unread badge",
            "//nav//a[@data-room = 'general']//span[contains(@class, 'room-unread')]",
        )
        .await;
    let links = ax_names(&driver, &alice, "link").await;
    assert!(
        links.iter().any(|n| n == "general, 2 unread"),
        "general's entry: {links:?}"
    );
    assert!(
        links.iter().all(|n| !n.contains(" ,")),
        "no stray spaces: {links:?}"
    );

    // In general: the day line is not part of a message.
    alice
        .click_xpath("general", "//nav//a[@data-room = 'general']")
        .await;
    alice.wait_log_has("bob's messages", &["hello there"]).await;
    let days = alice
        .eval(
            "const log = document.querySelector('[role=\"log\"]');
             return {
               shown: Array.from(log.querySelectorAll('.day-sep'), (d) => d.hidden ? null : d.textContent).filter(Boolean),
               inside: log.querySelectorAll('[role=\"article\"] .day-sep').length,
             };",
            vec![],
        )
        .await;
    assert_eq!(days["shown"], json!(["Today"]), "{days}");
    assert_eq!(
        days["inside"],
        json!(0),
        "the day line is outside the messages: {days}"
    );

    // Replying to bob: the bar names him as his messages do, with his username beside.
    let id = message_id(&alice, "hello there").await;
    alice
        .eval(
            "document.querySelector('.msg[data-id=\"' + arguments[0] + '\"]').focus();",
            vec![json!(id.to_string())],
        )
        .await;
    alice
        .click_xpath(
            "Reply",
            &format!("//*[@data-id = '{id}']//button[@aria-label = 'Reply']"),
        )
        .await;
    let bar = alice
        .wait_js(
            "the reply bar",
            "const t = document.getElementById('reply-text');
             return t && !document.getElementById('reply-bar').hidden ? t.textContent.replace(/\\s+/g, ' ').trim() : null;",
            vec![],
        )
        .await;
    assert_eq!(bar, json!("Replying to Bob B @bob: hello there"));
    alice.send_with_enter("hello bob").await;
    alice
        .wait_visible(
            "the quote in alice's reply",
            "//*[@role = 'log']//button[contains(@class, 'msg-quote')]",
        )
        .await;
    let buttons = ax_names(&driver, &alice, "button").await;
    assert!(
        buttons.iter().any(|n| n == "In reply to bob: hello there"),
        "the quote's name: {buttons:?}"
    );

    alice.assert_no_csp_violations("alice").await;
    alice.close().await;
    bob.close().await;
    drop(driver);
    eprintln!("polish_names: {:.1} s", started.elapsed().as_secs_f64());
}
