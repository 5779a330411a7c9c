//! What a review of the chat page in headless Chromium found, kept fixed: after a reconnection
//! the member count, an administrator's features and the room list come back; on a touch phone
//! the focus stays in the conversation after opening one; display names, statuses and pictures
//! show wherever people do (the online list, the members dialog, the sidebar, @mentions, the
//! quick switcher, "joined" lines), a direct message begins with its person and search labels
//! it as one, and only who may change a room sees its editor; right-to-left text reads right to
//! left; image previews are never too small to tap and file cards name their kind readably;
//! the conversation is one tab stop; the @mention list is a combobox; a reply whose message is
//! deleted lets go of it; signing out clears the address.

use std::time::Instant;

use fantoccini::key::Key;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{png, Auth};
use crate::harness::{
    assert_axe_clean_in, browser_tools, button, cdp, labelled, message_box, within, App, Browser,
    Driver, PASSWORD, WAIT,
};
use crate::offline::{wait_shell_kept, CUTTABLE_SOCKETS};
use crate::{dialog_named, room_link, wait_room_open, DRAWER_OPEN, WATCH_CSP};

fn key(k: Key) -> String {
    char::from(k).to_string()
}

/// Sign `name` (an account made through the API) in through the sign-in page.
async fn sign_in(b: &Browser, base: &str, name: &str) {
    b.submit_sign_in(base, "Sign in", name, PASSWORD).await;
    b.wait_chat_ready().await;
    b.eval(WATCH_CSP, vec![]).await;
}

/// The header's member count ("2" in "2 members, show list").
const MEMBER_COUNT: &str =
    "return document.getElementById('room-members-count').textContent.trim();";

/// Where the focus is: `body`, or the focused element's id (or tag), whether it is in the
/// conversation, whether it is a text field (which would open a phone's keyboard) and whether
/// it is on screen and reachable.
const FOCUS: &str = r#"
const a = document.activeElement;
if (!a || a === document.body) return { id: 'body' };
const r = a.getBoundingClientRect();
return {
  id: a.id || a.tagName,
  inConversation: !!a.closest('#conversation'),
  typing: a.matches('input, textarea, [contenteditable]'),
  shown: r.width > 0 && r.height > 0 && r.top >= 0 && r.bottom <= innerHeight && !a.closest('[inert]'),
};
"#;

/// Wait until the focus is in the conversation (not on the page's body, not in the closed
/// drawer) and return where it is.
async fn wait_focus_in_conversation(b: &Browser, after: &str) -> Value {
    b.wait_js(
        &format!("the focus in the conversation after {after}"),
        &format!("const f = (() => {{ {FOCUS} }})(); return f.inConversation ? f : null;"),
        vec![],
    )
    .await
}

// ---- after a reconnection ---------------------------------------------------------------------

/// The sidebar's direct messages list, as text.
const DM_LIST: &str = "return document.getElementById('dm-list').textContent.trim();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reconnection_the_member_count_admin_features_and_rooms_come_back() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let mut app = App::start().await;
    app.register_admin("ada").await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("ada", 1280, 800).await;
    cdp(
        &driver,
        &b,
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": CUTTABLE_SOCKETS }),
    )
    .await;
    sign_in(&b, &app.base, "ada").await;

    // "Got it" in the administrator's welcome: the focus is in the Message box, not lost on
    // the page's body (the welcome opened before anything had the focus).
    b.eval(
        "localStorage.setItem('hearth.welcome.ada', 'pending');",
        vec![],
    )
    .await;
    b.reload().await;
    b.wait_chat_ready().await;
    b.eval(WATCH_CSP, vec![]).await;
    b.wait_visible(
        "the administrator's welcome",
        &dialog_named("You are the administrator"),
    )
    .await;
    b.click_xpath(
        "Got it",
        "//dialog[@open]//button[normalize-space(.) = 'Got it']",
    )
    .await;
    let focus = wait_focus_in_conversation(&b, "Got it").await;
    assert_eq!(focus["id"], json!("composer-input"), "{focus}");
    b.wait_visible(
        "the Administration link",
        "//a[@id = 'admin-link' and normalize-space(.) = 'Administration']",
    )
    .await;
    b.wait_js(
        "one member in general",
        &format!("return (() => {{ {MEMBER_COUNT} }})() === '1';"),
        vec![],
    )
    .await;

    // Someone signs up while the page is not connected: the next `ready` counts them.
    b.eval("window.__sockets.cut();", vec![]).await;
    b.wait_js(
        "the page to notice it is offline",
        "return document.getElementById('conn').dataset.state !== 'connected';",
        vec![],
    )
    .await;
    app.register("bob").await;
    b.eval("window.__sockets.mend();", vec![]).await;
    b.wait_visible(
        "the connection to come back",
        "//*[@role = 'status' and normalize-space(.) = 'Connected']",
    )
    .await;
    b.wait_js(
        "the new member counted after the reconnection",
        &format!("return (() => {{ {MEMBER_COUNT} }})() === '2';"),
        vec![],
    )
    .await;
    b.click_xpath("the members button", &button("2 members, show list"))
        .await;
    b.wait_js(
        "the members dialog to list both",
        "const names = [...document.querySelectorAll('#member-list .member-name')].map((n) => n.textContent);
         return names.length === 2 && names.includes('bob');",
        vec![],
    )
    .await;
    b.eval(
        "document.querySelectorAll('dialog[open]').forEach((d) => d.close());",
        vec![],
    )
    .await;

    // A reload while the server is down: the room list is not known, and the sidebar says so
    // rather than "No conversations yet.".
    wait_shell_kept(&b).await;
    app.stop().await;
    b.reload().await;
    b.eval(WATCH_CSP, vec![]).await;
    b.wait_visible("the Message box after an offline reload", &message_box())
        .await;
    let dms = b
        .wait_js(
            "the direct messages list while offline",
            &format!(
                "const t = (() => {{ {DM_LIST} }})(); return t.startsWith('Offline') ? t : null;"
            ),
            vec![],
        )
        .await;
    assert_eq!(
        dms,
        json!("Offline — conversations appear when connected."),
        "no false empty state"
    );
    let admin_link = b
        .eval(
            "return document.getElementById('admin-link').hidden;",
            vec![],
        )
        .await;
    assert_eq!(
        admin_link,
        json!(true),
        "not known to be an administrator yet"
    );

    // The server is back: the administrator's features come back with the connection, and
    // the lists are the real ones.
    app.restart().await;
    b.wait_visible(
        "the connection to come back by itself",
        "//*[@role = 'status' and normalize-space(.) = 'Connected']",
    )
    .await;
    b.wait_visible(
        "the Administration link after reconnecting",
        "//a[@id = 'admin-link' and normalize-space(.) = 'Administration']",
    )
    .await;
    b.wait_js(
        "the direct messages list once the rooms are known",
        &format!("return (() => {{ {DM_LIST} }})() === 'No conversations yet.';"),
        vec![],
    )
    .await;
    b.wait_js(
        "both members counted after the offline reload",
        &format!("return (() => {{ {MEMBER_COUNT} }})() === '2';"),
        vec![],
    )
    .await;
    b.assert_no_csp_violations("ada").await;

    b.close().await;
    drop(driver);
    eprintln!("review_reconnect: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- the focus on a touch phone ---------------------------------------------------------------

/// On a phone: open the rooms drawer, press `action` there, type `text` into the dialog's
/// field labelled `field` and press Enter.
async fn from_the_drawer(phone: &Browser, action: &str, field: &str, text: &str) {
    phone
        .click_xpath("the Open rooms button", &button("Open rooms"))
        .await;
    phone
        .wait_js("the drawer to open", DRAWER_OPEN, vec![])
        .await;
    phone.click_xpath(action, &button(action)).await;
    let input = phone.wait_visible(field, &labelled("input", field)).await;
    phone.type_into(&input, text).await;
    phone.type_into(&input, &key(Key::Enter)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_touch_phone_opening_a_conversation_leaves_the_focus_in_it() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    app.register_admin("ada").await;
    app.register("bob").await;
    let driver = Driver::start(&tools).await;
    let phone = driver.browser("phone", 360, 740).await;
    cdp(
        &driver,
        &phone,
        "Emulation.setTouchEmulationEnabled",
        json!({ "enabled": true, "maxTouchPoints": 5 }),
    )
    .await;
    sign_in(&phone, &app.base, "ada").await;
    let coarse = phone
        .eval("return matchMedia('(pointer: coarse)').matches;", vec![])
        .await;
    assert_eq!(coarse, json!(true), "a touch screen");
    // No keyboard shortcut is hinted at on a touch screen.
    let hint = phone
        .eval(
            "return getComputedStyle(document.querySelector('#switcher-open .shortcut')).display;",
            vec![],
        )
        .await;
    assert_eq!(hint, json!("none"), "the Ctrl K hint on a touch screen");

    // "Got it" in the administrator's welcome.
    phone
        .eval(
            "localStorage.setItem('hearth.welcome.ada', 'pending');",
            vec![],
        )
        .await;
    phone.reload().await;
    phone.wait_chat_ready().await;
    phone.eval(WATCH_CSP, vec![]).await;
    phone
        .wait_visible(
            "the administrator's welcome",
            &dialog_named("You are the administrator"),
        )
        .await;
    phone
        .click_xpath(
            "Got it",
            "//dialog[@open]//button[normalize-space(.) = 'Got it']",
        )
        .await;
    let check = |f: Value, after: &str| {
        assert_eq!(
            f["typing"],
            json!(false),
            "{after}: no text field (the keyboard would open): {f}"
        );
        assert_eq!(f["shown"], json!(true), "{after}: on screen: {f}");
    };
    check(wait_focus_in_conversation(&phone, "Got it").await, "Got it");

    // Drawer → "Start a direct message" → a name → Enter.
    from_the_drawer(&phone, "Start a direct message", "Usernames", "bob").await;
    wait_room_open(&phone, "dm:ada,bob", "bob").await;
    let f = wait_focus_in_conversation(&phone, "starting a direct message").await;
    check(f.clone(), "a direct message");
    assert_eq!(f["id"], json!("room-heading"), "{f}");

    // Drawer → "Create a room" → a name → Enter.
    from_the_drawer(&phone, "Create a room", "Room name", "den").await;
    wait_room_open(&phone, "den", "den").await;
    check(
        wait_focus_in_conversation(&phone, "creating a room").await,
        "a new room",
    );
    phone.assert_no_csp_violations("phone").await;

    phone.close().await;
    drop(driver);
    eprintln!(
        "review_phone_focus: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- people -----------------------------------------------------------------------------------

/// What alice's page shows of bob: in the online list, the sidebar's direct message, the
/// "joined" line of general, and the members dialog when it is open.
const BOB: &str = r#"
const person = [...document.querySelectorAll('#online-list .person')]
  .find((p) => p.querySelector('[data-user="bob"]'));
const dm = document.querySelector('#dm-list a[data-room="dm:alice,bob"]');
const member = [...document.querySelectorAll('#member-list .member')]
  .find((m) => (m.querySelector('.person-handle') || {}).textContent === '@bob'
    || m.querySelector('.member-name').textContent === 'bob');
const lines = [...document.querySelectorAll('[role="log"] .sys-line-text')].map((l) => l.textContent);
const pic = (el) => !!(el && el.querySelector('.avatar img'));
return {
  online: person ? {
    name: person.querySelector('.person-name').textContent,
    handle: (person.querySelector('.person-handle') || {}).textContent || null,
    status: (person.querySelector('.person-status') || {}).textContent || null,
    picture: pic(person),
    label: person.querySelector('button').getAttribute('aria-label'),
  } : null,
  dm: dm ? { name: dm.querySelector('.room-link-name').textContent, picture: pic(dm) } : null,
  member: member ? {
    name: member.querySelector('.member-name').textContent,
    status: (member.querySelector('.person-status') || {}).textContent || null,
    picture: pic(member),
  } : null,
  lines,
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_names_statuses_and_pictures_show_wherever_people_do() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let kit = app.kit();
    let alice = Auth::Cookie(app.register("alice").await);
    let driver = Driver::start(&tools).await;
    let b = driver.browser("alice", 1280, 800).await;
    sign_in(&b, &app.base, "alice").await;

    // bob signs up while alice's page is open ("bob joined"), comes online and writes to her.
    let bob_cookie = app.register("bob").await;
    let bob = Auth::Cookie(bob_cookie.clone());
    let _bob_online = app.ws(&bob_cookie).await;
    let (_, dm) = kit.open_dm(&bob, &["alice"]).await;
    assert_eq!(dm["name"], json!("dm:alice,bob"), "{dm}");
    kit.api_ok(
        Method::POST,
        "/api/rooms/dm%3Aalice%2Cbob/messages",
        &bob,
        Some(&json!({ "body": "Can we fix the roof on Saturday?" })),
        201,
    )
    .await;
    b.wait_js(
        "bob online, his direct message and his join line",
        &format!(
            "const v = (() => {{ {BOB} }})();
             return v.online && v.dm && v.lines.includes('bob joined') ? v : null;"
        ),
        vec![],
    )
    .await;

    // Then he gives himself a display name, a status and a picture: alice's page follows live.
    kit.api_ok(
        Method::PATCH,
        "/api/me",
        &bob,
        Some(&json!({ "display_name": "Bob Builder", "status": "Fixing the roof" })),
        200,
    )
    .await;
    let res = kit
        .send(
            kit.request(Method::PUT, "/api/me/avatar", Some(&bob))
                .header("origin", &kit.base)
                .header("content-type", "image/png")
                .body(png(64, 64)),
        )
        .await;
    assert_eq!(res.status().as_u16(), 200, "PUT /api/me/avatar");
    let v = b
        .wait_js(
            "bob's profile everywhere on alice's page",
            &format!(
                "const v = (() => {{ {BOB} }})();
                 return v.online && v.online.picture && v.dm && v.dm.picture
                   && v.lines.includes('Bob Builder joined') ? v : null;"
            ),
            vec![],
        )
        .await;
    assert_eq!(
        v["online"],
        json!({
            "name": "Bob Builder",
            "handle": "@bob",
            "status": "Fixing the roof",
            "picture": true,
            "label": "Message Bob Builder (@bob)",
        }),
        "the online list: {v}"
    );
    assert_eq!(v["dm"]["name"], json!("Bob Builder"), "the sidebar: {v}");

    // The members dialog: name, picture and status.
    b.click_xpath("the members button", &button("2 members, show list"))
        .await;
    let v = b
        .wait_js(
            "bob in the members dialog",
            &format!("const v = (() => {{ {BOB} }})(); return v.member ? v : null;"),
            vec![],
        )
        .await;
    assert_eq!(
        v["member"],
        json!({ "name": "Bob Builder", "status": "Fixing the roof", "picture": true }),
        "{v}"
    );
    assert_axe_clean_in(&b, "#room-dialog", "the members dialog with a profile").await;
    b.eval(
        "document.querySelectorAll('dialog[open]').forEach((d) => d.close());",
        vec![],
    )
    .await;

    // The @mention list: his display name, and the @username it inserts.
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.type_into(&input, "@bo").await;
    let option = b
        .wait_js(
            "the mention list",
            "const o = document.querySelector('#mention-list [role=\"option\"]');
             return o ? { text: o.textContent, picture: !!o.querySelector('.avatar img') } : null;",
            vec![],
        )
        .await;
    assert_eq!(
        option,
        json!({ "text": "Bob Builder@bob", "picture": true }),
        "{option}"
    );
    b.type_into(&input, &key(Key::Escape)).await;
    within(WAIT, "clearing the Message box", input.clear())
        .await
        .expect("clear the Message box");

    // The quick switcher.
    b.eval(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'k', ctrlKey: true, bubbles: true}));",
        vec![],
    )
    .await;
    let filter = b
        .wait_visible(
            "the quick switcher",
            &labelled("input", "Find a room or conversation"),
        )
        .await;
    b.type_into(&filter, "bob").await;
    let found = b
        .wait_js(
            "the direct message in the switcher",
            "const o = document.querySelector('#switcher-list [data-room=\"dm:alice,bob\"]');
             return o ? { name: o.querySelector('.switcher-name').textContent,
                          picture: !!o.querySelector('.avatar img') } : null;",
            vec![],
        )
        .await;
    assert_eq!(
        found,
        json!({ "name": "Bob Builder", "picture": true }),
        "{found}"
    );
    b.type_into(&filter, &key(Key::Enter)).await;
    wait_room_open(&b, "dm:alice,bob", "Bob Builder").await;

    // A direct message begins with its person, not a "#".
    let start = b
        .wait_js(
            "the beginning of the direct message",
            "const s = document.getElementById('log-start');
             if (s.hidden) return null;
             const icon = s.querySelector('.log-start-icon');
             return { title: s.querySelector('.log-start-title').textContent,
                      hash: icon.textContent.includes('#'),
                      picture: !!icon.querySelector('.avatar img') };",
            vec![],
        )
        .await;
    assert_eq!(
        start,
        json!({
            "title": "Beginning of your conversation with Bob Builder",
            "hash": false,
            "picture": true,
        }),
        "{start}"
    );

    // Search labels a hit in a direct message as one.
    let search = b
        .wait_visible(
            "the Search messages box",
            &labelled("input", "Search messages"),
        )
        .await;
    b.type_into(&search, "roof").await;
    b.type_into(&search, &key(Key::Enter)).await;
    let place = b
        .wait_js(
            "the search result",
            "const r = document.querySelector('#search-results .result-room');
             return r ? r.textContent : null;",
            vec![],
        )
        .await;
    assert_eq!(place, json!("Direct message with Bob Builder"));
    b.type_into(&search, &key(Key::Escape)).await;

    // #general's topic is the administrators' to change: a member sees it as text, with no
    // editor the server would refuse; in another room any member may change it.
    kit.api_ok(
        Method::POST,
        "/api/rooms",
        &alice,
        Some(&json!({ "name": "den", "public": true, "topic": "Tea & toast" })),
        201,
    )
    .await;
    b.click_xpath("general in the sidebar", &room_link("general"))
        .await;
    wait_room_open(&b, "general", "general").await;
    let about = "const f = document.getElementById('room-edit-topic');
         const a = document.getElementById('room-about');
         return { editor: f.getClientRects().length > 0,
                  about: a.getClientRects().length > 0 ? a.textContent.replace(/\\s+/g, ' ').trim() : null };";
    b.click_xpath("Room settings", &button("Room settings"))
        .await;
    let v = b
        .wait_js(
            "general's details",
            &format!("return document.getElementById('room-dialog').open ? (() => {{ {about} }})() : null;"),
            vec![],
        )
        .await;
    assert_eq!(
        v["editor"],
        json!(false),
        "no topic editor in #general: {v}"
    );
    assert!(
        v["about"]
            .as_str()
            .is_some_and(|a| a.starts_with("About Topic:")
                && a.ends_with("Only an administrator can change #general.")),
        "the topic as text: {v}"
    );
    b.eval(
        "document.querySelectorAll('dialog[open]').forEach((d) => d.close());",
        vec![],
    )
    .await;
    b.click_xpath("den in the sidebar", &room_link("den")).await;
    wait_room_open(&b, "den", "den").await;
    b.click_xpath("Room settings", &button("Room settings"))
        .await;
    let v = b
        .wait_js(
            "den's details",
            &format!("return document.getElementById('room-dialog').open ? (() => {{ {about} }})() : null;"),
            vec![],
        )
        .await;
    assert_eq!(v, json!({ "editor": true, "about": null }), "{v}");
    b.assert_no_csp_violations("alice").await;

    b.close().await;
    drop(driver);
    eprintln!("review_people: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- messages ---------------------------------------------------------------------------------

/// The computed direction of the text of the message holding `arguments[0]` (its first
/// paragraph), or null while it is not shown.
const DIRECTION: &str = r#"
const body = [...document.querySelectorAll('[role="log"] .msg-body')]
  .find((b) => b.textContent.includes(arguments[0]));
if (!body) return null;
const p = body.querySelector('p') || body;
return getComputedStyle(p).direction;
"#;

/// Every image preview's size on screen, and every file card's kind.
const FILES: &str = r#"
return {
  images: [...document.querySelectorAll('[role="log"] .msg-image')].map((b) => {
    const r = b.getBoundingClientRect();
    return { name: b.getAttribute('aria-label'), w: Math.round(r.width), h: Math.round(r.height),
             grid: !!b.closest('.is-grid') };
  }),
  kinds: [...document.querySelectorAll('[role="log"] .file-meta')].map((m) => m.textContent.split(' · ')[1]),
};
"#;

/// The tab stops of the conversation: the log itself and the messages in the Tab order.
const TAB_STOPS: &str = r#"
const log = document.querySelector('[role="log"]');
return [log, ...log.querySelectorAll('.msg')]
  .filter((el) => el.tabIndex >= 0)
  .map((el) => el === log ? 'log' : 'message ' + el.dataset.id);
"#;

/// The @mention combobox: its role, state and the list it controls.
const COMBOBOX: &str = r#"
const input = document.getElementById('composer-input');
const box = input.closest('[role="combobox"]') || (input.getAttribute('role') === 'combobox' ? input : null);
if (!box) return { role: null };
const list = document.getElementById(box.getAttribute('aria-controls') || '');
return {
  role: 'combobox',
  expanded: box.getAttribute('aria-expanded'),
  controls: list ? list.getAttribute('role') : null,
  listShown: !!list && !list.hidden,
};
"#;

/// Upload `name` (`body`, of `mime`) as `auth`: the upload's id.
async fn upload(app: &App, auth: &Auth, name: &str, mime: &str, body: Vec<u8>) -> String {
    let kit = app.kit();
    let res = kit
        .send(
            kit.request(
                Method::POST,
                &format!("/api/uploads?name={name}"),
                Some(auth),
            )
            .header("origin", &kit.base)
            .header("content-type", mime)
            .body(body),
        )
        .await;
    assert_eq!(res.status().as_u16(), 201, "POST /api/uploads {name}");
    let v: Value = res.json().await.expect("an upload");
    v["upload"]["id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["upload"]["id"].as_i64().map(|n| n.to_string()))
        .unwrap_or_else(|| panic!("no upload id in {v}"))
}

/// Send `body` with the uploads `ids` to general as `auth`.
async fn send_files(app: &App, auth: &Auth, body: &str, ids: &[String]) {
    let ids: Vec<Value> = ids
        .iter()
        .map(|id| {
            id.parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| json!(id))
        })
        .collect();
    app.kit()
        .api_ok(
            Method::POST,
            "/api/rooms/general/messages",
            auth,
            Some(&json!({ "body": body, "attachments": ids })),
            201,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_read_in_their_direction_tap_well_and_take_one_tab_stop() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let kit = app.kit();
    app.register("alice").await;
    let bob_cookie = app.register("bob").await;
    let bob = Auth::Cookie(bob_cookie.clone());
    let driver = Driver::start(&tools).await;
    let b = driver.browser("alice", 1280, 800).await;
    sign_in(&b, &app.base, "alice").await;

    // An empty conversation: the log itself is the one tab stop (it scrolls).
    let stops = b.eval(TAB_STOPS, vec![]).await;
    assert_eq!(stops, json!(["log"]), "an empty log");

    // Right-to-left text reads right to left; left-to-right text stays as it is.
    let mut bot = app.ws(&bob_cookie).await;
    let hebrew = "שלום לכולם, מה שלומכם היום?";
    let english = "Hello everyone, how are you today?";
    bot.say(hebrew).await;
    let third = bot.say("third, to reply to").await;
    bot.say(english).await;
    b.wait_log_has("the messages", &[hebrew, "third, to reply to", english])
        .await;
    assert_eq!(b.eval(DIRECTION, vec![json!(hebrew)]).await, json!("rtl"));
    assert_eq!(b.eval(DIRECTION, vec![json!(english)]).await, json!("ltr"));
    let input = b.wait_visible("the Message box", &message_box()).await;
    b.type_into(&input, "מה נשמע").await;
    let typed = b
        .wait_js(
            "the Hebrew in the Message box",
            "const i = document.getElementById('composer-input');
             return i.value.includes(arguments[0])
               ? { value: i.value, direction: getComputedStyle(i).direction } : null;",
            vec![json!("מה נשמע")],
        )
        .await;
    assert_eq!(
        typed["direction"],
        json!("rtl"),
        "the Message box follows what is typed: {typed}"
    );
    within(WAIT, "clearing the Message box", input.clear())
        .await
        .expect("clear the Message box");

    // One tab stop: the newest message, not the log as well.
    let stops = b.eval(TAB_STOPS, vec![]).await;
    assert_eq!(
        stops.as_array().map(Vec::len),
        Some(1),
        "one tab stop in the conversation: {stops}"
    );
    assert!(
        stops[0].as_str().is_some_and(|s| s.starts_with("message ")),
        "{stops}"
    );

    // The @mention list is a combobox: expanded while its listbox shows.
    let closed = b.eval(COMBOBOX, vec![]).await;
    assert_eq!(
        closed,
        json!({ "role": "combobox", "expanded": "false", "controls": "listbox", "listShown": false }),
        "{closed}"
    );
    b.type_into(&input, "@bo").await;
    let open = b
        .wait_js(
            "the mention list to open",
            &format!("const c = (() => {{ {COMBOBOX} }})(); return c.listShown ? c : null;"),
            vec![],
        )
        .await;
    assert_eq!(open["expanded"], json!("true"), "{open}");
    assert_axe_clean_in(&b, "#composer", "the mention list open").await;
    b.type_into(&input, &key(Key::Escape)).await;
    let closed = b.eval(COMBOBOX, vec![]).await;
    assert_eq!(closed["expanded"], json!("false"), "{closed}");
    within(WAIT, "clearing the Message box", input.clear())
        .await
        .expect("clear the Message box");

    // Replying to a message deleted meanwhile: the reply bar lets go of it, and says so.
    let third_id = third["id"].as_i64().expect("an id");
    let row = format!("//*[@role = 'log']//div[@data-id = '{third_id}']");
    let bubble = b
        .wait_visible(
            "the message to reply to",
            &format!("{row}//div[contains(concat(' ', @class, ' '), ' msg-bubble ')]"),
        )
        .await;
    b.hover(&bubble).await;
    b.click_xpath(
        "Reply",
        &format!(
            "{row}//*[@role = 'group' and @aria-label = 'Message actions']//button[@aria-label = 'Reply']"
        ),
    )
    .await;
    b.wait_visible(
        "the reply bar",
        "//*[@id = 'reply-text' and normalize-space(.) = 'Replying to bob: third, to reply to']",
    )
    .await;
    kit.api_ok(
        Method::DELETE,
        &format!("/api/messages/{third_id}"),
        &bob,
        None,
        204,
    )
    .await;
    b.wait_gone("the reply bar to go", "//*[@id = 'reply-bar']")
        .await;
    let said = b
        .wait_js(
            "the polite notice",
            "const s = document.getElementById('composer-status').textContent;
             return s ? { status: s, shown: document.getElementById('composer-notice').textContent } : null;",
            vec![],
        )
        .await;
    assert_eq!(
        said,
        json!({
            "status": "The message you were replying to was deleted.",
            "shown": "The message you were replying to was deleted.",
        })
    );

    // Image previews of extreme shapes are still something to tap; file cards say what they
    // are in words.
    let tall = upload(&app, &bob, "tall.png", "image/png", png(60, 3000)).await;
    let wide = upload(&app, &bob, "wide.png", "image/png", png(3000, 60)).await;
    let dot = upload(&app, &bob, "dot.png", "image/png", png(1, 1)).await;
    send_files(&app, &bob, "tall", std::slice::from_ref(&tall)).await;
    send_files(&app, &bob, "wide", std::slice::from_ref(&wide)).await;
    send_files(&app, &bob, "dot", std::slice::from_ref(&dot)).await;
    let grid = vec![
        upload(&app, &bob, "tall2.png", "image/png", png(60, 3000)).await,
        upload(&app, &bob, "wide2.png", "image/png", png(3000, 60)).await,
        upload(&app, &bob, "dot2.png", "image/png", png(1, 1)).await,
    ];
    send_files(&app, &bob, "all three", &grid).await;
    let text = upload(&app, &bob, "notes.txt", "text/plain", b"hello".to_vec()).await;
    let svg = upload(
        &app,
        &bob,
        "logo.svg",
        "image/svg+xml",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
    )
    .await;
    send_files(&app, &bob, "two files", &[text, svg]).await;
    let files = b
        .wait_js(
            "the previews and the cards",
            &format!(
                "const f = (() => {{ {FILES} }})(); return f.images.length === 6 && f.kinds.length === 2 ? f : null;"
            ),
            vec![],
        )
        .await;
    for img in files["images"].as_array().into_iter().flatten() {
        let (w, h) = (
            img["w"].as_i64().unwrap_or(0),
            img["h"].as_i64().unwrap_or(0),
        );
        assert!(
            (48..=330).contains(&w) && (48..=330).contains(&h),
            "a preview at least 48 px a side (and at most about 320): {img}"
        );
    }
    let grid_sizes: Vec<(i64, i64)> = files["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["grid"] == json!(true))
        .map(|i| (i["w"].as_i64().unwrap_or(0), i["h"].as_i64().unwrap_or(0)))
        .collect();
    assert_eq!(grid_sizes.len(), 3, "{files}");
    assert!(
        grid_sizes.iter().all(|s| *s == grid_sizes[0] && s.0 == s.1),
        "grid tiles of one square size: {files}"
    );
    assert_eq!(files["kinds"], json!(["Text", "SVG image"]), "{files}");
    b.assert_no_csp_violations("alice").await;

    // Signing out clears the conversation from the address.
    let hash = b.eval("return location.hash;", vec![]).await;
    assert_eq!(hash, json!("#general"), "the open room is in the address");
    b.sign_out().await;
    b.wait_visible(
        "the sign-in page",
        "//button[normalize-space(.) = 'Sign in']",
    )
    .await;
    let hash = b.eval("return location.hash;", vec![]).await;
    assert_eq!(
        hash,
        json!(""),
        "no conversation in the address after Sign out"
    );

    b.close().await;
    drop(driver);
    eprintln!("review_messages: {:.1} s", started.elapsed().as_secs_f64());
}
