//! Getting started, in a real browser: the setup link makes the first account the
//! administrator, who is welcomed ("You are the administrator") and invites people through a
//! share dialog with the link and a QR code drawn locally; the invite link leads with "Create
//! account"; an empty #general greets its first visitor until the first message; members see
//! "Invite people" only when `registration.member_invites` is on. The welcome and the dialog
//! are checked with axe-core (`scripts/install-axe.sh`; see `harness::axe_source`) at
//! desktop and phone widths, light and dark.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::Auth;
use crate::harness::{
    account_menu_button, axe_source, browser_tools, button, labelled, password_field, say,
    username_field, App, Browser, Driver, PASSWORD,
};
use crate::WATCH_CSP;

const WELCOME: &str = "You are the administrator";
const INVITE: &str = "Invite people";
const QR: &str =
    "//*[name() = 'svg' and @role = 'img' and @aria-label = 'QR code for the invite link']";
const GREETING: &str = "//*[@role = 'log']//*[normalize-space(.) = 'Welcome to #general']";

/// XPath for the open dialog whose accessible name (its `aria-labelledby` heading) is `name`.
fn dialog_named(name: &str) -> String {
    format!("//dialog[@open and @aria-labelledby = //*[normalize-space(.) = '{name}']/@id]")
}

/// Run axe-core on the open dialog named `name`; fail on any violation.
async fn axe_clean(b: &Browser, axe: Option<&str>, name: &str, when: &str) {
    let Some(source) = axe else { return };
    if b.eval("return typeof axe !== 'undefined';", vec![]).await != json!(true) {
        b.eval(source, vec![]).await;
    }
    let dialog = b.wait_visible(name, &dialog_named(name)).await;
    // Let the opening animation finish, or colours are measured half faded in.
    b.eval("return new Promise((r) => setTimeout(r, 300));", vec![])
        .await;
    let found = b
        .eval(
            "return axe.run(arguments[0], { resultTypes: ['violations'] }).then((r) => \
             r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', ')));",
            vec![serde_json::to_value(&dialog).expect("an element reference")],
        )
        .await;
    assert_eq!(found, json!([]), "axe on “{name}” ({when})");
}

/// A JSON call from the page, with its own session (and the Origin a browser adds).
async fn page_call(b: &Browser, method: &str, path: &str, body: Value) -> Value {
    b.eval(
        "return fetch(arguments[0], { method: arguments[1], credentials: 'same-origin', \
           headers: { 'Content-Type': 'application/json' }, \
           body: arguments[1] === 'GET' ? undefined : JSON.stringify(arguments[2]) }) \
         .then(async (r) => ({ status: r.status, body: await r.json().catch(() => null) }));",
        vec![json!(format!("api/{path}")), json!(method), body],
    )
    .await
}

/// In the open Invite people dialog: create a link; its URL.
async fn create_link(b: &Browser) -> String {
    b.wait_visible("the Uses field", &labelled("input", "Uses"))
        .await;
    b.click_xpath("Create invite link", &button("Create invite link"))
        .await;
    let v = b
        .wait_js(
            "the new invite link",
            "const i = document.getElementById('invite-people-url'); \
             return i && i.value.includes('?invite=') ? i.value : null;",
            vec![],
        )
        .await;
    v.as_str().expect("a link").to_string()
}

/// The QR code shown is a square of `21 + 4k` modules plus the quiet zone, drawn as one path.
async fn check_qr(b: &Browser) {
    b.wait_visible("the QR code", QR).await;
    let v = b
        .eval(
            "const svg = [...document.querySelectorAll('svg.qr-code')].find((s) => s.getClientRects().length); \
             const box = svg.getAttribute('viewBox').split(' ').map(Number); \
             return { side: box[2], paths: svg.querySelectorAll('path').length, \
                      d: svg.querySelector('path').getAttribute('d').length, html: svg.innerHTML.includes('<script') };",
            vec![],
        )
        .await;
    let side = v["side"].as_u64().expect("a viewBox") - 8;
    assert!(
        side >= 21 && (side - 21).is_multiple_of(4),
        "QR size {side}: {v}"
    );
    assert_eq!(v["paths"], 1, "{v}");
    assert!(v["d"].as_u64().unwrap_or(0) > 100, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_administrator_is_welcomed_invites_people_and_general_greets_its_first_visitor() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let root = driver.browser("root", 1280, 800).await;
    let code = app
        .kit()
        .server()
        .setup_code()
        .expect("a setup code")
        .to_string();

    // The setup link leads with "Create account".
    root.goto(&format!("{}?setup={code}", app.base)).await;
    root.eval(WATCH_CSP, vec![]).await;
    root.wait_visible(
        "the setup heading",
        "//h1[normalize-space(.) = 'Set up Hearth']",
    )
    .await;
    root.submit_sign_in(&app.base, "Create account", "root", PASSWORD)
        .await;
    root.wait_chat_ready().await;

    // The welcome says what being the administrator means.
    let welcome = root
        .wait_visible("the administrator's welcome", &dialog_named(WELCOME))
        .await;
    let text = welcome.text().await.expect("the welcome's text");
    assert!(text.contains("Registration is open"), "{text}");
    assert!(text.contains("administration page"), "{text}");
    root.wait_visible(
        "the admin page link",
        "//dialog[@open]//a[@href = 'admin.html']",
    )
    .await;

    // "Invite people": registration is open, so the plain address is the link, with its QR code.
    root.click_xpath(
        "Invite people in the welcome",
        &format!(
            "//dialog[@open]{}",
            "//button[normalize-space(.) = 'Invite people']"
        ),
    )
    .await;
    root.wait_gone("the welcome", &dialog_named(WELCOME)).await;
    root.wait_visible("the Invite people dialog", &dialog_named(INVITE))
        .await;
    root.wait_visible(
        "the open registration note",
        "//dialog[@open]//*[contains(normalize-space(.), 'Registration is open on this server.')]",
    )
    .await;
    let field = root
        .wait_visible("the Invite link field", &labelled("input", "Invite link"))
        .await;
    let value = field
        .prop("value")
        .await
        .expect("a value")
        .unwrap_or_default();
    assert_eq!(value, app.base, "the site's address");
    check_qr(&root).await;
    root.click_xpath(
        "Close",
        "//dialog[@open]//button[normalize-space(.) = 'Close']",
    )
    .await;

    // The empty #general greets its first visitor, with "Invite people".
    root.wait_visible("the greeting of an empty #general", GREETING)
        .await;
    root.wait_visible(
        "Invite people in the greeting",
        "//*[@role = 'log']//button[normalize-space(.) = 'Invite people']",
    )
    .await;

    // Invite only: the dialog creates a link; Copy link copies it.
    let r = page_call(
        &root,
        "PUT",
        "admin/registration",
        json!({ "mode": "invite" }),
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    root.click_xpath(
        "Invite people in the greeting",
        "//*[@role = 'log']//button[normalize-space(.) = 'Invite people']",
    )
    .await;
    root.wait_visible("the Invite people dialog", &dialog_named(INVITE))
        .await;
    let link = create_link(&root).await;
    assert!(link.starts_with(&format!("{}?invite=", app.base)), "{link}");
    check_qr(&root).await;
    root.click_xpath("Copy link", &button("Copy link")).await;
    root.wait_visible(
        "the Copied status",
        "//*[@role = 'status' and normalize-space(.) = 'Copied']",
    )
    .await;
    root.click_xpath(
        "Close",
        "//dialog[@open]//button[normalize-space(.) = 'Close']",
    )
    .await;

    // Closed: the dialog says nobody can join and points the administrator to the admin page.
    let r = page_call(
        &root,
        "PUT",
        "admin/registration",
        json!({ "mode": "closed" }),
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    root.click_xpath("the Account menu button", &account_menu_button())
        .await;
    root.click_xpath(
        "Invite people in the account menu",
        "//*[@id = 'account-menu']//button[normalize-space(.) = 'Invite people']",
    )
    .await;
    root.wait_visible(
        "the closed registration note",
        "//dialog[@open]//*[contains(normalize-space(.), 'Registration is closed on this server.')]",
    )
    .await;
    root.wait_visible(
        "the admin page link",
        "//dialog[@open]//a[@href = 'admin.html#registration-section']",
    )
    .await;
    assert!(root
        .visible(&labelled("input", "Invite link"))
        .await
        .is_none());
    root.click_xpath(
        "Close",
        "//dialog[@open]//button[normalize-space(.) = 'Close']",
    )
    .await;
    let r = page_call(
        &root,
        "PUT",
        "admin/registration",
        json!({ "mode": "invite" }),
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    root.assert_no_csp_violations("root").await;

    // The welcome stays dismissed after a reload.
    root.reload().await;
    root.wait_chat_ready().await;
    root.wait_js(
        "Invite people in the account menu",
        "const b = document.getElementById('invite-people-open'); return b && !b.hidden;",
        vec![],
    )
    .await;
    assert!(
        root.visible(&dialog_named(WELCOME)).await.is_none(),
        "the welcome was dismissed"
    );

    // The invite link, in a fresh browser, leads with "Create account".
    let guest = driver.browser("guest", 360, 740).await;
    guest.goto(&link).await;
    guest.eval(WATCH_CSP, vec![]).await;
    guest
        .wait_visible(
            "the invitation heading",
            "//h1[normalize-space(.) = 'You’re invited to Hearth']",
        )
        .await;
    let order = guest
        .eval(
            "const b = [...document.querySelectorAll('#signin-form .auth-actions > *')] \
               .filter((e) => e.getClientRects().length).map((e) => e.textContent.trim()); \
             return { order: b, create: document.getElementById('signin-create').className, \
                      signin: document.getElementById('signin-submit').className };",
            vec![],
        )
        .await;
    assert_eq!(
        order["order"],
        json!(["Create account", "Already have an account?", "Sign in"]),
        "{order}"
    );
    assert!(
        order["create"].as_str().unwrap().contains("btn-primary"),
        "{order}"
    );
    assert!(
        order["signin"].as_str().unwrap().contains("btn-secondary"),
        "{order}"
    );
    // Enter in the form creates the account.
    let user = guest
        .wait_visible("the Username field", &username_field())
        .await;
    guest.type_into(&user, "guest").await;
    let pass = guest
        .wait_visible("the Password field", &password_field())
        .await;
    guest.type_into(&pass, PASSWORD).await;
    guest.type_into(&pass, "\u{E007}").await;
    guest.wait_chat_ready().await;
    // Still nothing in #general: the greeting shows, without "Invite people" for a member.
    guest
        .wait_visible("the greeting for the guest", GREETING)
        .await;
    assert!(guest
        .visible("//*[@role = 'log']//button[normalize-space(.) = 'Invite people']")
        .await
        .is_none());
    assert!(guest.visible(&dialog_named(WELCOME)).await.is_none());

    // The first message ends the greeting, for everyone.
    root.wait_visible("the greeting", GREETING).await;
    root.send_with_enter("Hello, everyone!").await;
    root.wait_log_has("the first message", &["Hello, everyone!"])
        .await;
    root.wait_gone("the greeting after the first message", GREETING)
        .await;
    guest
        .wait_log_has("the first message, for the guest", &["Hello, everyone!"])
        .await;
    guest.wait_gone("the guest's greeting", GREETING).await;
    guest.assert_no_csp_violations("guest").await;
    root.assert_no_csp_violations("root").await;
    root.close().await;
    guest.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_invite_people_only_when_the_operator_allows_it() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let driver = Driver::start(&tools).await;
    for allowed in [false, true] {
        let app = App::start_with(move |c| c.registration.member_invites = allowed).await;
        let admin = Auth::Cookie(app.register_admin("root").await);
        app.kit()
            .api_ok(
                Method::PUT,
                "/api/admin/registration",
                &admin,
                Some(&json!({ "mode": "invite" })),
                200,
            )
            .await;
        // The member joins through an invite link, as people do.
        let v = app
            .kit()
            .api_ok(
                Method::POST,
                "/api/admin/invites",
                &admin,
                Some(&json!({})),
                201,
            )
            .await;
        let b = driver.browser("mia", 1280, 800).await;
        b.goto(v["invite"]["url"].as_str().unwrap()).await;
        b.eval(WATCH_CSP, vec![]).await;
        b.submit_sign_in(&app.base, "Create account", "mia", PASSWORD)
            .await;
        b.wait_chat_ready().await;
        b.click_xpath("the Account menu button", &account_menu_button())
            .await;
        b.wait_visible("Settings in the menu", &button("Settings"))
            .await;
        let shown = b
            .eval(
                "const b = document.getElementById('invite-people-open'); \
                 return Boolean(b && b.getClientRects().length);",
                vec![],
            )
            .await;
        // The menu knows only once /api/me answered: wait for that rather than race it.
        if allowed {
            b.wait_visible(
                "Invite people in the menu",
                "//*[@id = 'account-menu']//button[normalize-space(.) = 'Invite people']",
            )
            .await;
            b.click_xpath(
                "Invite people",
                "//*[@id = 'account-menu']//button[normalize-space(.) = 'Invite people']",
            )
            .await;
            b.wait_visible("the Invite people dialog", &dialog_named(INVITE))
                .await;
            let link = create_link(&b).await;
            check_qr(&b).await;
            // The member's link is theirs to list.
            let mine = page_call(&b, "GET", "invites", Value::Null).await;
            assert_eq!(
                mine["body"]["invites"].as_array().map(Vec::len),
                Some(1),
                "{mine}"
            );
            assert!(link.contains("?invite="));
        } else {
            assert_eq!(
                shown,
                json!(false),
                "no Invite people for members by default"
            );
            let me = page_call(&b, "GET", "me", Value::Null).await;
            assert_eq!(me["body"]["can_invite"], false, "{me}");
            assert!(b
                .visible("//*[@role = 'log']//button[normalize-space(.) = 'Invite people']")
                .await
                .is_none());
        }
        b.assert_no_csp_violations("mia").await;
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_and_the_invite_dialog_are_accessible_light_and_dark_on_desktop_and_phone() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let axe = axe_source();
    if axe.is_none() {
        say("onboarding: axe-core not installed (AXE_JS or node_modules/axe-core): layout checks only");
    }
    let app = App::start().await;
    let admin = Auth::Cookie(app.register_admin("root").await);
    app.kit()
        .api_ok(
            Method::PUT,
            "/api/admin/registration",
            &admin,
            Some(&json!({ "mode": "invite" })),
            200,
        )
        .await;
    let driver = Driver::start(&tools).await;
    for dark in [false, true] {
        let theme = if dark { "dark" } else { "light" };
        let flags: &[&str] = if dark { &["--force-dark-mode"] } else { &[] };
        let b = driver.browser_with(theme, 1280, 800, flags).await;
        b.submit_sign_in(&app.base, "Sign in", "root", PASSWORD)
            .await;
        b.wait_chat_ready().await;
        let is_dark = b
            .eval(
                "return matchMedia('(prefers-color-scheme: dark)').matches;",
                vec![],
            )
            .await;
        assert_eq!(is_dark, json!(dark), "{theme} theme");
        // The welcome is shown while the setup registration's mark says so.
        b.eval(
            "localStorage.setItem('hearth.welcome.root', 'pending');",
            vec![],
        )
        .await;
        b.reload().await;
        b.eval(WATCH_CSP, vec![]).await;
        b.wait_chat_ready().await;
        for (width, height) in [(1280, 800), (360, 740)] {
            b.set_viewport(width, height).await;
            let when = format!("{theme}, {width} px");
            b.wait_visible("the welcome", &dialog_named(WELCOME)).await;
            axe_clean(&b, axe.as_deref(), WELCOME, &when).await;
            assert_fits(&b, &when).await;
        }
        b.click_xpath(
            "Invite people in the welcome",
            "//dialog[@open]//button[normalize-space(.) = 'Invite people']",
        )
        .await;
        b.wait_visible("the Invite people dialog", &dialog_named(INVITE))
            .await;
        create_link(&b).await;
        for (width, height) in [(360, 740), (1280, 800)] {
            b.set_viewport(width, height).await;
            let when = format!("{theme}, {width} px");
            check_qr(&b).await;
            axe_clean(&b, axe.as_deref(), INVITE, &when).await;
            assert_fits(&b, &when).await;
        }
        b.assert_no_csp_violations(theme).await;
        if !dark {
            // The admin page's new invite link comes with its QR code too.
            b.goto(&format!("{}admin.html", app.base)).await;
            b.eval(WATCH_CSP, vec![]).await;
            b.click_xpath("Create invite link", &button("Create invite link"))
                .await;
            b.wait_visible("the admin page's QR code", QR).await;
            b.assert_no_csp_violations("admin page").await;
        }
        b.close().await;
    }
}

/// The open dialog fits the window: no horizontal overflow inside it or of the page.
async fn assert_fits(b: &Browser, when: &str) {
    let v = b
        .eval(
            "const d = document.querySelector('dialog[open]'); const r = d.getBoundingClientRect(); \
             return { left: r.left, right: r.right, width: innerWidth, \
                      scroll: d.scrollWidth - d.clientWidth, page: document.documentElement.scrollWidth - innerWidth };",
            vec![],
        )
        .await;
    let n = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    assert!(
        n("left") >= 0.0 && n("right") <= n("width") + 0.5,
        "{when}: {v}"
    );
    assert!(n("scroll") <= 1.0 && n("page") <= 1.0, "{when}: {v}");
}
