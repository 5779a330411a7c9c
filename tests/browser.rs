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

#[path = "browser/harness.rs"]
mod harness;

use std::time::Instant;

use harness::{
    browser_tools, message_box, password_field, say, sign_out_button, username_field, App, Driver,
    LOG, PASSWORD,
};
use serde_json::json;

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
        "`${window.__xss=§}`".into(),
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
        ("the Sign out control", sign_out_button()),
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

    let out = b
        .wait_visible("the Sign out control", &sign_out_button())
        .await;
    b.click(&out).await;
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
