//! Real-browser end-to-end tests: headless Chromium, driven over WebDriver by chromedriver,
//! against a real Hearth server started in-process on a free port with its own SQLite file.
//!
//! Elements are found by the accessible names the contract promises (PROTOCOL.md, "Browser
//! UI"): fields labelled "Username", "Password" and "Message", buttons "Sign in", "Create
//! account" and "Sign out", the `role="log"` message list and `role="alert"` errors. Every wait
//! polls with a 10 s hang guard.
//!
//! Needs `chromedriver` and `chromium` on PATH (`scripts/install-browser.sh` installs both).
//! Without them each test prints a note and passes, unless `CI` is set: then it fails.

mod a11y;
#[path = "../common/mod.rs"]
mod common;
mod emoji;
mod files;
mod harness;
mod hooks;
mod lifecycle;
mod links;
mod markdown;
mod offline;
mod onboarding;
mod polish;
mod previews;
mod profiles;
mod review;
mod settings;
mod ux;

use std::time::Instant;

use fantoccini::elements::Element;
use fantoccini::key::Key;
use harness::{
    account_menu_button, browser_tools, button, labelled, message_box, password_field, say,
    username_field, App, Driver, LOG, PASSWORD,
};
use reqwest::Method;
use serde_json::json;

use crate::common::Auth;

/// Each occurrence count of `needle` in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_real_time_and_history_survives_reload_and_restart() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let mut app = App::start().await;
    let driver = Driver::start(&tools).await;
    let (alice, bob) = tokio::join!(
        driver.browser("alice", 1280, 800),
        driver.browser("bob", 1280, 800)
    );
    tokio::join!(
        alice.create_account(&app.base, "alice"),
        bob.create_account(&app.base, "bob")
    );

    // A marker that a reload would wipe: proves bob's page receives messages live.
    bob.eval("window.__sameBobPage = true;", vec![]).await;

    let first = "Hi Bob, it's Alice <b>here</b> & the kettle's on";
    alice.send_with_enter(first).await;
    bob.wait_log_has("alice's message to reach bob live", &[first])
        .await;
    alice
        .wait_log_has("alice's own message to show", &[first])
        .await;

    let reply = "Hello Alice! Put me down for two cups, please.";
    bob.send_with_enter(reply).await;
    alice
        .wait_log_has("bob's reply to reach alice live", &[first, reply])
        .await;
    let same = bob
        .eval("return window.__sameBobPage === true;", vec![])
        .await;
    assert_eq!(same, json!(true), "bob's page was never reloaded");

    // Reload: the history comes back from the server, once each and in order.
    alice.reload().await;
    alice.wait_chat_ready().await;
    let log = alice
        .wait_log_has("the history after a reload", &[first, reply])
        .await;
    assert_eq!(count(&log, first), 1, "no duplicate after reload: {log}");
    assert_eq!(count(&log, reply), 1, "no duplicate after reload: {log}");

    // Restart the server on the same database file and the same port.
    app.restart().await;

    alice.reload().await;
    alice.wait_chat_ready().await;
    let log = alice
        .wait_log_has("the history after a server restart", &[first, reply])
        .await;
    assert_eq!(count(&log, first), 1, "no duplicate after restart: {log}");
    assert_eq!(count(&log, reply), 1, "no duplicate after restart: {log}");

    // Bob never reloads: his page reconnects by itself and still gets new messages live.
    let after = "Still here after the restart?";
    alice.send_with_enter(after).await;
    let log = bob
        .wait_log_has(
            "a new message to reach bob live after the restart",
            &[first, reply, after],
        )
        .await;
    assert_eq!(count(&log, after), 1, "no duplicate on bob's page: {log}");
    let same = bob
        .eval("return window.__sameBobPage === true;", vec![])
        .await;
    assert_eq!(same, json!(true), "bob's page was never reloaded");

    let answer = "Yes, reconnected on my own.";
    bob.send_with_enter(answer).await;
    alice
        .wait_log_has(
            "bob's answer to reach alice live after the restart",
            &[first, reply, after, answer],
        )
        .await;

    bob.reload().await;
    bob.wait_chat_ready().await;
    bob.wait_log_has(
        "bob's history after his reload",
        &[first, reply, after, answer],
    )
    .await;

    alice.close().await;
    bob.close().await;
    drop(driver);
    eprintln!("two_people_chat: {:.1} s", started.elapsed().as_secs_f64());
}

/// Message bodies that would do something if they were ever treated as markup or code. Each
/// sets `window.__xss` to its own number (the `§` in its template) (or the title to "pwned") if it runs. Every body is
/// already trimmed and at most 4000 characters, so the server stores it exactly.
fn hostile_bodies() -> Vec<String> {
    let long_word = "W".repeat(3900);
    let templates: Vec<String> = vec![
        "<script>window.__xss=§</script>".into(),
        "<script>window.__xss=§;alert(1)</script>".into(),
        "<img src=x onerror=\"window.__xss=§\">".into(),
        "<img src=x onerror=window.__xss=§//".into(),
        "<svg onload=window.__xss=§>".into(),
        "<svg><script>window.__xss=§</script></svg>".into(),
        "javascript:window.__xss=§".into(),
        "\"><iframe srcdoc=\"<script>parent.__xss=§</script>\">".into(),
        "'><iframe src=\"javascript:parent.__xss=§\"></iframe>".into(),
        "{{constructor.constructor('window.__xss=§')()}}".into(),
        "${window.__xss=§}".into(),
        // Two backticks open and one closes: not a Markdown code span, so it shows as typed.
        "``${window.__xss=§}`".into(),
        "x\u{202E}gnp.exe<img src=x onerror=window.__xss=§>".into(),
        "zero\u{200B}width\u{200C}join\u{200D}bom\u{FEFF}<scr\u{200B}ipt>window.__xss=§</scr\u{200B}ipt>"
            .into(),
        format!("{long_word}<img src=x onerror=window.__xss=§>"),
        "[click me](javascript:window.__xss=§)".into(),
        "<a href=\"javascript:window.__xss=§\">click me</a>".into(),
        "&lt;script&gt;window.__xss=§&lt;/script&gt; &amp;lt; &#60;b&#62;".into(),
        "</textarea><script>window.__xss=§</script>".into(),
        "<body onload=window.__xss=§>".into(),
        "<details open ontoggle=window.__xss=§>".into(),
        "<input autofocus onfocus=window.__xss=§>".into(),
        "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=§>".into(),
        "<noscript><p title=\"</noscript><img src=x onerror=window.__xss=§>\">".into(),
        "<style>@import 'javascript:window.__xss=§';body{display:none}</style>".into(),
        "<object data=\"javascript:window.__xss=§\"></object>".into(),
        "<embed src=\"javascript:window.__xss=§\">".into(),
        "<meta http-equiv=\"refresh\" content=\"0;url=javascript:window.__xss=§\">".into(),
        "<base href=\"javascript:window.__xss=§//\">".into(),
        "<form><button formaction=javascript:window.__xss=§>go</button></form>".into(),
        "https://example.com/\"onmouseover=\"window.__xss=§\"".into(),
        "https://example.com/?q=<script>window.__xss=§</script>".into(),
        "https://example.com/a'onclick='window.__xss=§'".into(),
        "<div style=\"background:url(javascript:window.__xss=§)\">styled</div>".into(),
        "<video><source onerror=\"window.__xss=§\"></video>".into(),
        "<<script>script>window.__xss=§<</script>/script>".into(),
        "<ScRiPt>window.__xss=§</sCrIpT>".into(),
        "<img src=\"x\" onerror=\"&#119;indow.__xss=§\">".into(),
        "data:text/html,<script>window.__xss=§</script>".into(),
        "';window.__xss=§;//\"-alert(1)-\"".into(),
        "<!--<img src=\"--><img src=x onerror=window.__xss=§//\">".into(),
        "<svg><animate onbegin=window.__xss=§ attributeName=x dur=1s>".into(),
        "<img src=x onerror=\"document.title='pwned'\">§".into(),
        "line one\n<script>window.__xss=§</script>\n  indented line three".into(),
        "<template><img src=x onerror=window.__xss=§></template>".into(),
        "%3Cscript%3Ewindow.__xss=§%3C/script%3E \\u003cb\\u003e".into(),
    ];
    templates
        .iter()
        .enumerate()
        .map(|(i, t)| t.replace('§', &(i + 1).to_string()))
        .collect()
}

/// Which hostile bodies are typed into the composer (ASCII, one line) rather than sent by the
/// bot: both paths must render the same way.
const TYPED: &[usize] = &[0, 2, 4, 7, 16, 18, 36];

/// Inspect the page after hostile messages rendered: nothing ran, nothing became markup, and
/// every body is in the log as text. Returns a description of each problem.
const INSPECT: &str = r#"
const bodies = arguments[0];
const problems = [];
if (window.__xss !== undefined) problems.push('window.__xss = ' + String(window.__xss));
if (/pwned/.test(document.title)) problems.push('document.title = ' + document.title);
if (window.__csp && window.__csp.length) problems.push('CSP violations: ' + window.__csp.join(' | '));
const log = document.querySelector('[role="log"]');
if (!log) return ['no role=log element'];
const never = 'script,iframe,frame,frameset,object,embed,applet,base,meta,link,style,form,input,'
  + 'textarea,select,video,audio,source,template,noscript,math,details,body,html,head,marquee,'
  + 'foreignObject,animate,set,x';
for (const el of log.querySelectorAll(never)) problems.push('element <' + el.tagName.toLowerCase() + '> in the log: ' + el.outerHTML.slice(0, 200));
for (const el of log.querySelectorAll('img')) {
  const u = new URL(el.getAttribute('src') || '', location.href);
  if (u.origin !== location.origin || !/\.(svg|png|webp|jpe?g|gif)$/.test(u.pathname))
    problems.push('img not from the app: ' + el.outerHTML.slice(0, 200));
}
for (const el of log.querySelectorAll('svg')) {
  if (el.getAttribute('aria-hidden') !== 'true') problems.push('svg not from the app: ' + el.outerHTML.slice(0, 200));
}
for (const el of log.querySelectorAll('*')) {
  for (const a of el.attributes) {
    const n = a.name.toLowerCase();
    if (n.startsWith('on') || n === 'srcdoc' || n === 'formaction' || n === 'style' || n === 'src' && el.tagName !== 'IMG')
      problems.push('attribute ' + n + ' on <' + el.tagName.toLowerCase() + '>: ' + el.outerHTML.slice(0, 200));
    if (/^\s*(javascript|data|vbscript):/i.test(a.value) && (n === 'href' || n === 'src' || n === 'action' || n === 'xlink:href'))
      problems.push('script URL in ' + n + ': ' + el.outerHTML.slice(0, 200));
  }
}
for (const a of log.querySelectorAll('a')) {
  const u = new URL(a.href, location.href);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') problems.push('link to ' + a.href);
}
const text = log.textContent;
bodies.forEach((b, i) => {
  if (!text.includes(b)) problems.push('body #' + (i + 1) + ' is not in the log as text: ' + JSON.stringify(b.slice(0, 120)));
});
return problems;
"#;

/// Record Content-Security-Policy violations (an injected inline script or handler would
/// cause one even though the policy stops it).
const WATCH_CSP: &str = r#"
window.__csp = window.__csp || [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
});
"#;

/// A stand-in for a successful injection, to show that [`INSPECT`] would notice one.
const PROBE: &str = r#"
const log = document.querySelector('[role="log"]');
const probe = document.createElement('div');
probe.id = 'inspection-probe';
const img = document.createElement('img');
img.setAttribute('src', 'x');
img.setAttribute('onclick', 'void 0');
const a = document.createElement('a');
a.setAttribute('href', 'javascript:void 0');
probe.append(img, a);
log.append(probe);
"#;

async fn inspect(browser: &harness::Browser, bodies: &[String]) -> Vec<String> {
    let v = browser.eval(INSPECT, vec![json!(bodies)]).await;
    v.as_array()
        .unwrap_or_else(|| panic!("inspection returned {v}"))
        .iter()
        .map(|p| p.as_str().unwrap_or("?").to_string())
        .collect()
}

async fn assert_inert(browser: &harness::Browser, bodies: &[String], phase: &str) {
    let problems = inspect(browser, bodies).await;
    assert!(
        problems.is_empty(),
        "{phase}: hostile message bodies were not inert:\n  {}",
        problems.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_render_as_text_and_never_execute() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let bodies = hostile_bodies();
    assert!(bodies.len() >= 30, "a corpus of at least 30");
    // The page shows the newest 50 messages on load; keep them all on one page.
    assert!(
        bodies.len() < 50,
        "the corpus fits the first page of history"
    );
    assert!(bodies
        .iter()
        .all(|b| b.trim() == b && b.chars().count() <= 4000));

    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let viewer = driver.browser("viewer", 1280, 800).await;
    viewer.create_account(&app.base, "viewer").await;

    // The inspection itself: the app's own markup passes, an injected element does not.
    assert_inert(&viewer, &[], "before any message").await;
    viewer.eval(PROBE, vec![]).await;
    let found = inspect(&viewer, &["never sent".to_string()])
        .await
        .join("\n");
    for expected in [
        "img not from the app",
        "attribute onclick",
        "script URL in href",
        "link to javascript:",
        "body #1 is not in the log",
    ] {
        assert!(
            found.contains(expected),
            "the probe shows {expected:?}:\n{found}"
        );
    }
    viewer
        .eval(
            "document.getElementById('inspection-probe').remove();",
            vec![],
        )
        .await;
    viewer.eval(WATCH_CSP, vec![]).await;

    // A valid username made of every punctuation character usernames allow.
    let sender = "a.b-c_d";
    let cookie = app.register(sender).await;
    let mut bot = app.ws(&cookie).await;

    for &i in TYPED {
        let body = &bodies[i];
        assert!(
            body.is_ascii() && !body.contains('\n'),
            "typed bodies are one ASCII line"
        );
        viewer.send_with_enter(body).await;
        viewer
            .wait_log_has(&format!("typed body #{} to show", i + 1), &[body])
            .await;
    }
    for (i, body) in bodies.iter().enumerate() {
        if !TYPED.contains(&i) {
            let echo = bot.say(body).await;
            assert_eq!(echo["body"], json!(body), "stored exactly as sent");
        }
    }
    let wanted: Vec<&str> = bodies.iter().map(String::as_str).collect();
    viewer
        .wait_for("every hostile body to render", || async {
            let log = viewer.log_text().await;
            wanted.iter().all(|b| log.contains(b)).then_some(())
        })
        .await;
    let log = viewer.log_text().await;
    assert!(log.contains(sender), "the sender's name {sender} is shown");
    assert_inert(&viewer, &bodies, "live").await;

    // The same bodies again, this time rendered from history.
    viewer.reload().await;
    viewer.wait_chat_ready().await;
    viewer.eval(WATCH_CSP, vec![]).await;
    viewer
        .wait_for("every hostile body to render from history", || async {
            let log = viewer.log_text().await;
            wanted.iter().all(|b| log.contains(b)).then_some(())
        })
        .await;
    assert_inert(&viewer, &bodies, "after reload").await;
    let title = viewer.eval("return document.title;", vec![]).await;
    assert!(
        !title.as_str().unwrap_or("").contains("pwned"),
        "title {title}"
    );

    viewer.close().await;
    drop(driver);
    say(&format!(
        "xss: {} hostile strings rendered literally, 0 executed",
        bodies.len()
    ));
    eprintln!("hostile_strings: {:.1} s", started.elapsed().as_secs_f64());
}

/// Is the element fully inside the viewport and the topmost thing at its centre?
const ON_SCREEN: &str = r#"
const el = arguments[0];
const r = el.getBoundingClientRect();
if (r.width < 1 || r.height < 1) return 'zero size';
if (r.left < -0.5 || r.top < -0.5 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5)
  return 'outside the viewport: ' + JSON.stringify(r);
const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
if (!top || !(el === top || el.contains(top) || top.contains(el) && top.tagName === 'LABEL'))
  return 'covered by ' + (top ? top.outerHTML.slice(0, 120) : 'nothing');
return 'ok';
"#;

/// Horizontal overflow of the page and of the message log.
const WIDTHS: &str = r#"
const d = document.documentElement;
const log = document.querySelector('[role="log"]');
return {
  inner: innerWidth,
  doc: d.scrollWidth,
  body: document.body.scrollWidth,
  log: log ? log.scrollWidth - log.clientWidth : 0,
};
"#;

async fn assert_no_horizontal_scroll(browser: &harness::Browser, phase: &str) {
    let w = browser.eval(WIDTHS, vec![]).await;
    assert_eq!(w["inner"], json!(360), "{phase}: viewport width {w}");
    assert!(
        w["doc"].as_i64().unwrap_or(i64::MAX) <= 360,
        "{phase}: document.documentElement.scrollWidth > 360: {w}"
    );
    assert!(
        w["body"].as_i64().unwrap_or(i64::MAX) <= 360,
        "{phase}: document.body.scrollWidth > 360: {w}"
    );
    assert!(
        w["log"].as_i64().unwrap_or(i64::MAX) <= 0,
        "{phase}: the message log scrolls sideways: {w}"
    );
}

/// The message whose text holds `arguments[0]`, once its author shows as `arguments[1]`: whether
/// its time is inside the log, and its role and accessible name.
const LONG_AUTHOR: &str = r#"
const rows = Array.from(document.querySelectorAll('[role="log"] .msg[data-id]'));
const row = rows.find((r) => r.textContent.includes(arguments[0]));
if (!row || row.querySelector('.msg-author').textContent !== arguments[1]) return null;
const time = row.querySelector('time.msg-time');
const t = time.getBoundingClientRect();
const log = document.querySelector('[role="log"]').getBoundingClientRect();
return {
  timeShown: t.width > 10 && t.left >= log.left && t.right <= log.right - 4,
  time: time.textContent,
  role: row.getAttribute('role'),
  name: row.getAttribute('aria-label'),
};
"#;

/// The sidebar's link to room `arguments[0]`: its name cut (an ellipsis), inside the sidebar,
/// and how far the sidebar scrolls sideways.
const LONG_ROOM: &str = r#"
const a = document.querySelector('#room-list a[data-room="' + arguments[0] + '"]');
if (!a) return null;
const n = a.querySelector('.room-link-name');
const nav = document.getElementById('sidebar').getBoundingClientRect();
const r = a.getBoundingClientRect();
const scroll = document.querySelector('#sidebar .sidebar-scroll');
return {
  cut: n.scrollWidth > n.clientWidth && getComputedStyle(n).textOverflow === 'ellipsis',
  inside: r.right <= nav.right + 0.5,
  sideways: scroll.scrollWidth - scroll.clientWidth,
};
"#;

/// The open room details, once they list `arguments[0]` (a username: shown as such, or as
/// `@username` beside a display name): how far they scroll sideways and the controls that stick
/// out of them.
const ROOM_DIALOG_FITS: &str = r#"
const d = document.getElementById('room-dialog');
const names = Array.from(d.querySelectorAll('.member-name, .member .person-handle'), (n) => n.textContent);
if (!d.open || !(names.includes(arguments[0]) || names.includes('@' + arguments[0]))) return null;
const box = d.getBoundingClientRect();
const out = Array.from(d.querySelectorAll('button, input, select'))
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => {
    const r = el.getBoundingClientRect();
    return r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.right > innerWidth;
  })
  .map((el) => el.getAttribute('aria-label') || el.textContent.trim() || el.id);
return { sideways: d.scrollWidth - d.clientWidth, out };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_width_layout_has_no_horizontal_scroll() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let phone = driver.browser("phone", 360, 740).await;

    phone.goto(&app.base).await;
    phone
        .wait_visible("the Username field", &username_field())
        .await;
    assert_no_horizontal_scroll(&phone, "sign-in page").await;

    phone.create_account(&app.base, "pocket").await;
    for (what, xpath) in [
        ("the Message box", message_box()),
        ("the Account menu button", account_menu_button()),
    ] {
        let el = phone.wait_visible(what, &xpath).await;
        let v = phone
            .eval(
                ON_SCREEN,
                vec![serde_json::to_value(&el).expect("an element reference")],
            )
            .await;
        assert_eq!(v, json!("ok"), "{what} at 360x740");
    }
    assert_no_horizontal_scroll(&phone, "empty chat").await;

    let hello = "Typing on a small screen works fine.";
    phone.send_with_enter(hello).await;
    phone.wait_log_has("the message to show", &[hello]).await;

    // Things that push a narrow layout sideways: an unbroken word and a long link.
    let word = "Supercalifragilistic".repeat(10);
    let link = format!("https://example.com/{}/end", "path-segment".repeat(12));
    phone.send_with_enter(&word).await;
    phone.send_with_enter(&link).await;
    phone
        .wait_log_has("the long word and link to show", &[hello, &word, &link])
        .await;
    assert_no_horizontal_scroll(&phone, "after long messages").await;

    // Long names. A 31-character username with a longer display name: the name gives way to
    // an ellipsis, the time beside it stays on screen, and the message is an article named
    // by both, for screen readers.
    let long_user = "Maximiliano_Alessandro_Longname";
    let long_name = "Maximiliano Alessandro de la Santísima Trinidad";
    let cookie = app.register(long_user).await;
    app.kit()
        .api_ok(
            Method::PATCH,
            "/api/me",
            &Auth::Cookie(cookie.clone()),
            Some(&json!({ "display_name": long_name })),
            200,
        )
        .await;
    let long_hello = "Hello from a person with a very long name";
    app.ws(&cookie).await.say(long_hello).await;
    let row = phone
        .wait_js(
            "the long display name beside the message",
            LONG_AUTHOR,
            vec![json!(long_hello), json!(long_name)],
        )
        .await;
    assert_eq!(
        row["timeShown"],
        json!(true),
        "the time stays on screen: {row}"
    );
    assert_eq!(
        row["role"],
        json!("article"),
        "a message is an article: {row}"
    );
    assert_eq!(
        row["name"],
        json!(format!(
            "{long_name}, {}",
            row["time"].as_str().unwrap_or("?")
        )),
        "named by its author and time: {row}"
    );
    assert_no_horizontal_scroll(&phone, "a long display name").await;

    // A 48-character room name is cut with an ellipsis inside the sidebar (the drawer here,
    // the column at desktop width).
    let long_room = "a-very-long-room-name-that-fills-the-whole-limit";
    let created = phone
        .eval(
            "return fetch('api/rooms', { method: 'POST', credentials: 'same-origin', \
             headers: { 'Content-Type': 'application/json' }, \
             body: JSON.stringify({ name: arguments[0] }) }).then((r) => r.status);",
            vec![json!(long_room)],
        )
        .await;
    assert_eq!(created, json!(201), "the room is created");
    for width in [360, 1280] {
        phone.set_viewport(width, 740).await;
        let v = phone
            .wait_js(
                "the long room in the sidebar",
                LONG_ROOM,
                vec![json!(long_room)],
            )
            .await;
        assert_eq!(
            (&v["cut"], &v["inside"], &v["sideways"]),
            (&json!(true), &json!(true), &json!(0)),
            "at {width} px the room name ends in an ellipsis inside the sidebar: {v}"
        );
    }
    phone.set_viewport(360, 740).await;

    // The room's details list the long username without widening past the screen.
    phone
        .click_xpath("Room settings", &button("Room settings"))
        .await;
    let v = phone
        .wait_js(
            "the room details listing the long username",
            ROOM_DIALOG_FITS,
            vec![json!(long_user)],
        )
        .await;
    assert_eq!(
        (&v["sideways"], &v["out"]),
        (&json!(0), &json!([])),
        "the room details fit 360 px: {v}"
    );
    phone
        .eval("document.getElementById('room-dialog').close();", vec![])
        .await;
    assert_no_horizontal_scroll(&phone, "long names").await;

    phone.close().await;
    drop(driver);
    eprintln!("phone_width: {:.1} s", started.elapsed().as_secs_f64());
}

/// The text of the visible `role="alert"` element once it says something.
async fn alert_text(browser: &harness::Browser, what: &str, expected: &str) {
    let xpath = "//*[@role = 'alert' and normalize-space(.) != '']";
    let got = browser
        .wait_for(what, || async {
            let el = browser.visible(xpath).await?;
            let text = el.text().await.ok()?;
            (text.trim() == expected.trim()).then_some(text)
        })
        .await;
    assert_eq!(got.trim(), expected.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_errors_are_shown_inline() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    app.register("carol").await;
    let wrong = json!({"username": "carol", "password": "not the password"});
    let bad_password = app.error_message("login", &wrong).await;
    let taken = app
        .error_message(
            "register",
            &json!({"username": "Carol", "password": PASSWORD}),
        )
        .await;
    assert_ne!(bad_password, taken);

    let driver = Driver::start(&tools).await;
    let b = driver.browser("carol", 1280, 800).await;

    b.submit_sign_in(&app.base, "Sign in", "carol", "not the password")
        .await;
    alert_text(&b, "the wrong-password error", &bad_password).await;
    assert!(
        b.visible(&message_box()).await.is_none(),
        "a wrong password does not open the chat"
    );

    b.submit_sign_in(&app.base, "Create account", "Carol", PASSWORD)
        .await;
    alert_text(&b, "the username-taken error", &taken).await;

    b.submit_sign_in(&app.base, "Sign in", "carol", PASSWORD)
        .await;
    b.wait_chat_ready().await;

    b.sign_out().await;
    b.wait_visible("the sign-in page after Sign out", &username_field())
        .await;
    b.wait_visible("the Password field", &password_field())
        .await;
    b.wait_gone("the chat to close", &message_box()).await;

    // The session is gone on the server too: a reload stays on the sign-in page.
    b.reload().await;
    b.wait_visible("the sign-in page after a reload", &username_field())
        .await;
    assert!(b.visible(&message_box()).await.is_none());
    let log_shown = b
        .eval(
            &format!("const l = {LOG}; return !!l && l.offsetParent !== null;"),
            vec![],
        )
        .await;
    assert_eq!(log_shown, json!(false), "no message log when signed out");

    b.close().await;
    drop(driver);
    eprintln!("sign_in_errors: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- rooms, direct messages, unread state, search and the phone layout ---------------------

/// XPath for the sidebar entry of `room` (its name as the API spells it).
fn room_link(room: &str) -> String {
    format!("//nav//a[@data-room = '{room}']")
}

/// XPath for the unread-count badge of the sidebar entry of `room`.
fn unread_badge(room: &str) -> String {
    format!(
        "{}//span[contains(concat(' ', @class, ' '), ' room-unread ')]",
        room_link(room)
    )
}

/// Wait until `room` is the open room: its sidebar entry is the current page and the
/// conversation header shows `title`.
async fn wait_room_open(b: &harness::Browser, room: &str, title: &str) {
    b.wait_js(
        &format!("{room} to be the open room"),
        "const a = document.querySelector('nav a[aria-current=\"page\"]');
         const h = document.getElementById('room-name');
         return !!a && a.dataset.room === arguments[0] && !!h && h.textContent === arguments[1];",
        vec![json!(room), json!(title)],
    )
    .await;
}

/// Wait until the page title is exactly `title`.
async fn wait_title(b: &harness::Browser, title: &str) {
    b.wait_js(
        &format!("the page title to be {title:?}"),
        "return document.title === arguments[0];",
        vec![json!(title)],
    )
    .await;
}

/// Find the visible element at `xpath` and click it.
async fn click_on(b: &harness::Browser, what: &str, xpath: &str) {
    b.click_xpath(what, xpath).await;
}

/// Find the visible field at `xpath` and type `text` into it.
async fn type_in(b: &harness::Browser, what: &str, xpath: &str, text: &str) -> Element {
    let el = b.wait_visible(what, xpath).await;
    b.type_into(&el, text).await;
    el
}

fn key(k: Key) -> String {
    char::from(k).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_invitations_unread_badges_and_direct_messages() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let (alice, bob) = tokio::join!(
        driver.browser("alice", 1280, 800),
        driver.browser("bob", 1280, 800)
    );
    tokio::join!(
        alice.create_account(&app.base, "alice"),
        bob.create_account(&app.base, "bob")
    );
    // Bob's second tab (another browser, same account): read markers must reach it too.
    let bob2 = driver.browser("bob-tab-2", 1280, 800).await;
    bob2.submit_sign_in(&app.base, "Sign in", "bob", PASSWORD)
        .await;
    bob2.wait_chat_ready().await;
    for b in [&alice, &bob, &bob2] {
        wait_room_open(b, "general", "general").await;
    }

    // Alice creates a private room.
    click_on(&alice, "the Create a room button", &button("Create a room")).await;
    type_in(
        &alice,
        "the Room name field",
        &labelled("input", "Room name"),
        "secret",
    )
    .await;
    type_in(
        &alice,
        "the Topic field",
        &labelled("input", "Topic (optional)"),
        "Plans nobody else should read",
    )
    .await;
    click_on(
        &alice,
        "the Private choice",
        "//dialog//input[@name = 'visibility' and @value = 'private']",
    )
    .await;
    click_on(&alice, "the Create room button", &button("Create room")).await;
    wait_room_open(&alice, "secret", "secret").await;
    alice
        .wait_visible(
            "the topic in the header",
            "//*[@id = 'room-topic' and normalize-space(.) = 'Plans nobody else should read']",
        )
        .await;

    // ... and invites Bob.
    click_on(
        &alice,
        "the Invite someone button",
        &button("Invite someone"),
    )
    .await;
    let field = type_in(
        &alice,
        "the invite field",
        &labelled("input", "Username to invite"),
        "bob",
    )
    .await;
    click_on(&alice, "the Invite button", &button("Invite")).await;
    alice
        .wait_visible(
            "the invitation to be confirmed",
            "//*[@role = 'status' and contains(normalize-space(.), 'bob is now a member')]",
        )
        .await;
    alice.type_into(&field, &key(Key::Escape)).await;
    alice
        .wait_gone("the room dialog to close", "//dialog[@id = 'room-dialog']")
        .await;

    // Both of Bob's tabs learn about the room live, and stay in general.
    for b in [&bob, &bob2] {
        b.wait_visible("the new room in the sidebar", &room_link("secret"))
            .await;
        wait_room_open(b, "general", "general").await;
    }

    // Alice writes while Bob is elsewhere: an unread badge (and the title) on both tabs.
    let first = "Meet me by the old oak at noon";
    alice.send_with_enter(first).await;
    for b in [&bob, &bob2] {
        let badge = b
            .wait_visible("the unread badge of secret", &unread_badge("secret"))
            .await;
        assert_eq!(badge.text().await.expect("badge text").trim(), "1");
        wait_title(b, "(1) Hearth").await;
        let bold = b
            .eval(
                "return document.querySelector('nav a[data-room=\"secret\"]').classList.contains('is-unread');",
                vec![],
            )
            .await;
        assert_eq!(bold, json!(true), "an unread room is shown in bold");
    }
    assert!(
        !bob.log_text().await.contains(first),
        "the message stays out of general's log"
    );

    // Bob opens the room: the message is there, after a "New messages" divider, and the badge
    // clears here and, through the server's read marker, on his other tab.
    click_on(&bob, "the secret room", &room_link("secret")).await;
    wait_room_open(&bob, "secret", "secret").await;
    bob.wait_log_has("alice's message in secret", &[first])
        .await;
    bob.wait_visible(
        "the New messages divider",
        "//*[@role = 'log']//*[contains(@class, 'new-sep') and normalize-space(.) = 'New messages']",
    )
    .await;
    bob.wait_gone("bob's badge to clear", &unread_badge("secret"))
        .await;
    wait_title(&bob, "Hearth").await;
    bob2.wait_gone(
        "the badge to clear on bob's other tab",
        &unread_badge("secret"),
    )
    .await;
    wait_title(&bob2, "Hearth").await;

    // The reply mentions alice through the @ autocomplete: type "@al", pick from the listbox.
    let reply = "On my way, @alice";
    let input = type_in(&bob, "the Message box", &message_box(), "On my way, @al").await;
    bob.wait_visible(
        "alice offered in the mention listbox",
        "//*[@role = 'listbox']//*[@role = 'option' and @aria-selected = 'true'][.//span[normalize-space(.) = 'alice']]",
    )
    .await;
    let active = bob
        .eval(
            "return arguments[0].getAttribute('aria-activedescendant');",
            vec![serde_json::to_value(&input).expect("an element reference")],
        )
        .await;
    assert!(
        active.as_str().is_some_and(|id| !id.is_empty()),
        "the message box points at the active option: {active}"
    );
    bob.type_into(&input, &key(Key::Enter)).await;
    bob.wait_js(
        "the mention to be completed",
        "return arguments[0].value === 'On my way, @alice ';",
        vec![serde_json::to_value(&input).expect("an element reference")],
    )
    .await;
    bob.type_into(&input, &key(Key::Enter)).await;
    bob.wait_js(
        "Enter to send the reply",
        "return arguments[0].value === '';",
        vec![serde_json::to_value(&input).expect("an element reference")],
    )
    .await;
    alice
        .wait_log_has("bob's reply in secret", &[first, reply])
        .await;
    // The mention of alice is highlighted on her page, as text.
    alice
        .wait_visible(
            "the highlighted mention",
            "//*[@role = 'log']//mark[contains(@class, 'mention-me') and normalize-space(.) = '@alice']",
        )
        .await;

    // A direct message, started from the online list.
    click_on(
        &alice,
        "Message bob in the online list",
        &button("Message bob"),
    )
    .await;
    wait_room_open(&alice, "dm:alice,bob", "bob").await;
    let dm = "Just between us: the cake is for Carol";
    alice.send_with_enter(dm).await;
    alice.wait_log_has("the direct message", &[dm]).await;
    let badge = bob
        .wait_visible(
            "the direct message's unread badge",
            &unread_badge("dm:alice,bob"),
        )
        .await;
    assert_eq!(badge.text().await.expect("badge text").trim(), "1");
    let in_dm_list = bob
        .eval(
            "return !!document.querySelector('#dm-list a[data-room=\"dm:alice,bob\"]');",
            vec![],
        )
        .await;
    assert_eq!(in_dm_list, json!(true), "listed under Direct messages");
    click_on(&bob, "the direct message", &room_link("dm:alice,bob")).await;
    wait_room_open(&bob, "dm:alice,bob", "alice").await;
    bob.wait_log_has("the direct message on bob's page", &[dm])
        .await;
    assert!(
        !bob.log_text().await.contains(first),
        "each room shows only its own messages"
    );

    // Switching back is instant and keeps the room's messages.
    click_on(&bob, "the secret room", &room_link("secret")).await;
    wait_room_open(&bob, "secret", "secret").await;
    let log = bob
        .wait_log_has("secret's messages again", &[first, reply])
        .await;
    assert_eq!(count(&log, first), 1, "no duplicate: {log}");

    alice.close().await;
    bob.close().await;
    bob2.close().await;
    drop(driver);
    eprintln!("rooms_and_dms: {:.1} s", started.elapsed().as_secs_f64());
}

/// Is message `id` in the log, highlighted as the one jumped to, and fully on screen in the
/// log?
const TARGET_SHOWN: &str = r#"
const log = document.querySelector('[role="log"]');
const el = log && log.querySelector('[data-id="' + arguments[0] + '"]');
if (!el) return false;
if (!el.classList.contains('is-target')) return false;
const r = el.getBoundingClientRect();
const l = log.getBoundingClientRect();
return r.height > 0 && r.top >= l.top - 1 && r.bottom <= l.bottom + 1;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_a_message_and_jumps_to_it_in_context() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let reader = driver.browser("reader", 1280, 800).await;
    reader.create_account(&app.base, "reader").await;

    let cookie = app.register("talker").await;
    app.kit()
        .api_ok(
            Method::PATCH,
            "/api/me",
            &Auth::Cookie(cookie.clone()),
            Some(&json!({ "display_name": "Tilly Talker" })),
            200,
        )
        .await;
    let mut bot = app.ws(&cookie).await;
    let markdown = "**Mango** salsa, the way I make it:\n```\nchop(mango)\n```\n> and _lime_";
    bot.say(markdown).await;
    let target_text = "The pineapple recipe is in the blue binder";
    let target = bot.say(target_text).await;
    let target_id = target["id"].as_i64().expect("a message id");
    let fillers: Vec<String> = (1..=120).map(|i| format!("filler #{i:03}")).collect();
    for f in &fillers {
        bot.say(f).await;
    }

    // A fresh page shows only the newest page of history: the target is far above it.
    reader.mark_read("general").await;
    reader.reload().await;
    reader.wait_chat_ready().await;
    let log = reader
        .wait_log_has("the newest fillers", &["filler #120"])
        .await;
    assert!(
        !log.contains(target_text),
        "the target is not in the first page"
    );

    let search = type_in(
        &reader,
        "the Search messages box",
        &labelled("input", "Search messages"),
        "pineapple",
    )
    .await;
    reader.type_into(&search, &key(Key::Enter)).await;
    let result = reader
        .wait_visible(
            "a search result with the word highlighted",
            "//*[@id = 'search-results']//button[.//mark[normalize-space(.) = 'pineapple']]",
        )
        .await;
    let text = result.text().await.expect("result text");
    assert!(
        text.contains("Tilly Talker"),
        "the result names its author by the display name: {text}"
    );
    reader.click(&result).await;

    reader
        .wait_js(
            "the message to be shown in context and highlighted",
            TARGET_SHOWN,
            vec![json!(target_id)],
        )
        .await;
    // In context: its neighbours are there too.
    reader
        .wait_log_has("the messages after it", &[target_text, "filler #001"])
        .await;
    assert!(
        !reader.log_text().await.contains("filler #120"),
        "the window around the message does not reach the newest one"
    );

    // Scrolling down pages in the newer messages until the newest one, each once.
    let log = reader
        .wait_js(
            "the newer messages to load down to the newest",
            &format!(
                "const l = {LOG}; l.scrollTop = l.scrollHeight;
                 const t = l.textContent;
                 return t.includes('filler #120') && document.getElementById('log-newer').hidden ? t : '';"
            ),
            vec![],
        )
        .await;
    let log = log.as_str().unwrap_or_default().to_string();
    for f in &fillers {
        assert_eq!(count(&log, f), 1, "{f} exactly once after paging");
    }
    assert_eq!(count(&log, target_text), 1);

    // Live messages keep arriving at the bottom.
    let live = "filler live, after the jump";
    bot.say(live).await;
    reader
        .wait_log_has("a live message after paging", &["filler #120", live])
        .await;

    // A result shows the words of its message, not its Markdown: no fences, stars or quote
    // marks; the matches still highlighted.
    let search = reader
        .wait_visible(
            "the Search messages box",
            &labelled("input", "Search messages"),
        )
        .await;
    search.clear().await.expect("clear the search box");
    reader.type_into(&search, "mango").await;
    reader.type_into(&search, &key(Key::Enter)).await;
    let v = reader
        .wait_js(
            "the Markdown result",
            "const b = document.querySelector('#search-results .result-btn');
             if (!b) return null;
             const s = b.querySelector('.result-snippet');
             const a = b.querySelector('.result-author');
             return { snippet: s.textContent, marks: Array.from(s.querySelectorAll('mark'), (m) => m.textContent),
                      author: a.textContent, title: a.title };",
            vec![],
        )
        .await;
    assert_eq!(
        v["snippet"],
        json!("Mango salsa, the way I make it: chop(mango) and lime"),
        "plain words: {v}"
    );
    assert_eq!(v["marks"], json!(["Mango", "mango"]), "highlighted: {v}");
    assert_eq!(
        (&v["author"], &v["title"]),
        (&json!("Tilly Talker"), &json!("@talker")),
        "{v}"
    );

    reader.close().await;
    drop(driver);
    eprintln!("search_jump: {:.1} s", started.elapsed().as_secs_f64());
}

/// Is the rooms drawer on screen?
const DRAWER_OPEN: &str = r#"
const nav = document.getElementById('sidebar');
const r = nav.getBoundingClientRect();
const shown = getComputedStyle(nav).visibility === 'visible' && r.right > 100 && r.left >= -1;
return shown;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_drawer_and_quick_switcher() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let phone = driver.browser("phone", 360, 740).await;
    phone.create_account(&app.base, "thumbs").await;
    assert_no_horizontal_scroll(&phone, "chat").await;

    let open_rooms = button("Open rooms");
    let drawer_closed = || async {
        let open = phone.eval(DRAWER_OPEN, vec![]).await;
        (open == json!(false)).then_some(())
    };
    phone
        .wait_for("the drawer to start closed", drawer_closed)
        .await;
    assert!(
        phone.visible(&room_link("general")).await.is_none(),
        "the room list is hidden"
    );

    // Open with the menu button, close with Escape.
    click_on(&phone, "the Open rooms button", &open_rooms).await;
    phone
        .wait_js("the drawer to open", DRAWER_OPEN, vec![])
        .await;
    phone
        .wait_visible("general in the drawer", &room_link("general"))
        .await;
    assert_no_horizontal_scroll(&phone, "drawer open").await;
    let expanded = phone
        .eval(
            "return document.getElementById('drawer-toggle').getAttribute('aria-expanded');",
            vec![],
        )
        .await;
    assert_eq!(expanded, json!("true"));
    let focused = phone
        .eval(
            "return document.activeElement.closest('#sidebar') !== null;",
            vec![],
        )
        .await;
    assert_eq!(focused, json!(true), "focus moves into the drawer");
    phone
        .eval(
            "document.activeElement.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));",
            vec![],
        )
        .await;
    phone
        .wait_for("Escape to close the drawer", drawer_closed)
        .await;

    // Open, then tap outside it.
    click_on(&phone, "the Open rooms button", &open_rooms).await;
    phone
        .wait_js("the drawer to open again", DRAWER_OPEN, vec![])
        .await;
    phone
        .eval("document.elementFromPoint(350, 400).click();", vec![])
        .await;
    phone
        .wait_for("a tap outside to close the drawer", drawer_closed)
        .await;

    // Create a room from the drawer: choosing it closes the drawer.
    click_on(&phone, "the Open rooms button", &open_rooms).await;
    phone
        .wait_js("the drawer to open a third time", DRAWER_OPEN, vec![])
        .await;
    click_on(&phone, "the Create a room button", &button("Create a room")).await;
    let name = type_in(
        &phone,
        "the Room name field",
        &labelled("input", "Room name"),
        "Pocket-Room",
    )
    .await;
    assert_no_horizontal_scroll(&phone, "dialog open").await;
    phone.type_into(&name, &key(Key::Enter)).await;
    wait_room_open(&phone, "pocket-room", "pocket-room").await;
    phone
        .wait_for("the drawer to close after choosing a room", drawer_closed)
        .await;
    let hello = "Small screens, big plans.";
    phone.send_with_enter(hello).await;
    phone
        .wait_log_has("the message in pocket-room", &[hello])
        .await;
    assert_no_horizontal_scroll(&phone, "in a new room").await;

    // Back to general through the drawer: selecting a room closes it.
    click_on(&phone, "the Open rooms button", &open_rooms).await;
    click_on(&phone, "general in the drawer", &room_link("general")).await;
    wait_room_open(&phone, "general", "general").await;
    phone
        .wait_for("selecting a room to close the drawer", drawer_closed)
        .await;

    // Ctrl+K: the quick switcher, filtered, Enter opens.
    let input = phone.wait_visible("the Message box", &message_box()).await;
    phone
        .type_into(&input, &format!("{}k", key(Key::Control)))
        .await;
    let filter = phone
        .wait_visible(
            "the quick switcher",
            &labelled("input", "Find a room or conversation"),
        )
        .await;
    assert_no_horizontal_scroll(&phone, "switcher open").await;
    phone.type_into(&filter, "pock").await;
    phone
        .wait_js(
            "the list to be filtered",
            "const o = document.querySelectorAll('#switcher-list [role=\"option\"]');
             return o.length === 1 && o[0].dataset.room === 'pocket-room';",
            vec![],
        )
        .await;
    phone.type_into(&filter, &key(Key::Enter)).await;
    wait_room_open(&phone, "pocket-room", "pocket-room").await;
    phone
        .wait_gone("the switcher to close", "//dialog[@id = 'switcher']")
        .await;
    phone.wait_log_has("pocket-room's message", &[hello]).await;

    // Ctrl+K again, then Escape closes it and focus returns.
    let input = phone.wait_visible("the Message box", &message_box()).await;
    phone
        .type_into(&input, &format!("{}k", key(Key::Control)))
        .await;
    let filter = phone
        .wait_visible(
            "the quick switcher again",
            &labelled("input", "Find a room or conversation"),
        )
        .await;
    phone.type_into(&filter, &key(Key::Escape)).await;
    phone
        .wait_gone("Escape to close the switcher", "//dialog[@id = 'switcher']")
        .await;
    let back = phone
        .eval(
            "return document.activeElement && document.activeElement.id;",
            vec![],
        )
        .await;
    assert_eq!(
        back,
        json!("composer-input"),
        "focus returns to the message box"
    );

    phone.close().await;
    drop(driver);
    eprintln!("phone_drawer: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- signed-in devices ------------------------------------------------------------------------

/// XPath for the open dialog whose accessible name (its `aria-labelledby` heading) is `name`.
fn dialog_named(name: &str) -> String {
    format!("//dialog[@open and @aria-labelledby = //*[normalize-space(.) = '{name}']/@id]")
}

/// `GET /api/me` with `token` as a bearer token, as a bot would: the status code.
async fn me_status_with_token(base: &str, token: &str) -> u16 {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(harness::WAIT)
        .build()
        .expect("an HTTP client");
    let res = harness::within(
        harness::WAIT,
        "GET /api/me with a bot token",
        http.get(format!("{base}api/me")).bearer_auth(token).send(),
    )
    .await
    .expect("the HTTP request completes");
    res.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_devices_can_be_listed_and_revoked() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("dana", 1280, 800).await;
    b.create_account(&app.base, "dana").await;

    // A bot token, made with the page's own session (its cookie, a same-origin Origin).
    let made = b
        .eval(
            "return fetch('api/tokens', {
                 method: 'POST',
                 credentials: 'same-origin',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({name: 'ci bot'}),
             }).then(async (r) => ({status: r.status, body: await r.json()}));",
            vec![],
        )
        .await;
    assert_eq!(made["status"], json!(201), "POST /api/tokens: {made}");
    let token = made["body"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {made}"))
        .to_string();
    assert_eq!(
        me_status_with_token(&app.base, &token).await,
        200,
        "the new token works"
    );

    // Settings, in the account menu, opens the "Settings" dialog; its "Devices and bots"
    // section lists both.
    click_on(&b, "the Account menu button", &account_menu_button()).await;
    click_on(&b, "the Settings button", &button("Settings")).await;
    let dialog = dialog_named("Settings");
    b.wait_visible("the Settings dialog", &dialog).await;
    let this_device =
        format!("{dialog}//li[contains(normalize-space(.), 'Browser session (this device)')]");
    let bot_row = format!("{dialog}//li[contains(normalize-space(.), 'Bot token: ci bot')]");
    b.wait_visible("this browser's session in the list", &this_device)
        .await;
    b.wait_visible("the ci bot token in the list", &bot_row)
        .await;
    b.wait_visible(
        "the Sign out this device button on this browser's row",
        &format!("{this_device}{}", button("Sign out this device")),
    )
    .await;

    // Revoke the token with its own button: the row goes, the token stops working.
    click_on(
        &b,
        "the Revoke button of the ci bot token",
        &format!("{dialog}{}", button("Revoke Bot token: ci bot")),
    )
    .await;
    b.wait_gone("the ci bot token to leave the list", &bot_row)
        .await;
    b.wait_visible(
        "the revocation to be confirmed",
        &format!(
            "{dialog}//*[@role = 'status' and contains(normalize-space(.), 'Bot token: ci bot revoked.')]"
        ),
    )
    .await;
    b.wait_visible("this browser's session to stay listed", &this_device)
        .await;
    let errors = b
        .eval(
            "return [...document.querySelectorAll('#settings-dialog [role=\"alert\"]')]
                 .map((e) => e.textContent).join('');",
            vec![],
        )
        .await;
    assert_eq!(errors, json!(""), "no error in the dialog");
    assert_eq!(
        me_status_with_token(&app.base, &token).await,
        401,
        "a revoked token is refused"
    );

    // At phone width the dialog and the header still fit.
    b.set_viewport(360, 740).await;
    let sign_out_here = b
        .wait_visible(
            "Sign out this device at 360px",
            &format!("{dialog}{}", button("Sign out this device")),
        )
        .await;
    // The Settings dialog scrolls: bring the row into view, as a reader would.
    let v = b
        .eval(
            &format!("arguments[0].scrollIntoView({{block: 'center'}});\n{ON_SCREEN}"),
            vec![serde_json::to_value(&sign_out_here).expect("an element reference")],
        )
        .await;
    assert_eq!(v, json!("ok"), "Sign out this device at 360x740");
    assert_no_horizontal_scroll(&b, "settings dialog at 360px").await;
    b.type_into(&sign_out_here, &key(Key::Escape)).await;
    b.wait_gone("Escape to close the dialog", &dialog).await;
    click_on(&b, "the Account menu button", &account_menu_button()).await;
    let devices = b
        .wait_visible("the Settings button", &button("Settings"))
        .await;
    let v = b
        .eval(
            ON_SCREEN,
            vec![serde_json::to_value(&devices).expect("an element reference")],
        )
        .await;
    assert_eq!(v, json!("ok"), "the Settings button at 360x740");
    assert_no_horizontal_scroll(&b, "chat with the Settings button at 360px").await;

    // Signing this device out from the list ends the session here, like Sign out does.
    b.click(&devices).await;
    click_on(
        &b,
        "Sign out this device",
        &format!("{dialog}{}", button("Sign out this device")),
    )
    .await;
    b.wait_visible("the sign-in page", &username_field()).await;
    b.wait_gone("the chat to close", &message_box()).await;
    b.reload().await;
    b.wait_visible("the sign-in page after a reload", &username_field())
        .await;

    b.close().await;
    drop(driver);
    eprintln!(
        "signed_in_devices: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
