//! The account's Settings dialog in a real browser: changing the password (errors inline, the
//! other devices signed out, the new password the only one that works), bot tokens made in the
//! page and used against the API, revoking a device, the theme and density (applied at once,
//! kept across a reload, on the administration page too, both ways against the system's
//! preference), accessibility of the dialog at both widths in both palettes, and the online
//! list emptying while the server is unreachable.

use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::Auth;
use crate::harness::{
    account_menu_button, assert_axe_clean_in, browser_tools, button, emulate_scheme, labelled,
    message_box, username_field, within, App, Browser, Driver, PASSWORD, WAIT,
};
use crate::{assert_no_horizontal_scroll, dialog_named, me_status_with_token, WATCH_CSP};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// The page background of each palette (main.css `--bg`).
const LIGHT_BG: &str = "rgb(247, 243, 238)";
const DARK_BG: &str = "rgb(21, 18, 15)";

// ---- helpers -----------------------------------------------------------------------------------

/// Open the account menu and choose Settings; returns the dialog's XPath.
async fn open_settings(b: &Browser) -> String {
    b.click_xpath("the Account menu button", &account_menu_button())
        .await;
    b.click_xpath(
        "Settings in the account menu",
        &format!("//*[@id = 'account-menu']{}", button("Settings")),
    )
    .await;
    let dialog = dialog_named("Settings");
    b.wait_visible("the Settings dialog", &dialog).await;
    dialog
}

/// Clear the field labelled `label` inside `scope` and type `text`.
async fn fill(b: &Browser, scope: &str, label: &str, text: &str) {
    let el = b
        .wait_visible(label, &format!("{scope}{}", labelled("input", label)))
        .await;
    within(WAIT, "clearing a field", el.clear())
        .await
        .expect("the field can be cleared");
    if !text.is_empty() {
        b.type_into(&el, text).await;
    }
}

async fn fill_password_form(b: &Browser, dialog: &str, current: &str, new: &str, confirm: &str) {
    fill(b, dialog, "Current password", current).await;
    fill(b, dialog, "New password", new).await;
    fill(b, dialog, "Confirm new password", confirm).await;
}

/// Wait for `role="alert"` text in `scope` containing `text`.
async fn wait_alert(b: &Browser, scope: &str, text: &str) {
    b.wait_visible(
        &format!("the error {text:?}"),
        &format!("{scope}//*[@role = 'alert' and contains(normalize-space(.), \"{text}\")]"),
    )
    .await;
}

/// `GET /api/me` with a session cookie: the status code.
async fn me_status_with_cookie(app: &App, cookie: &str) -> u16 {
    app.kit()
        .get_as("/api/me", &Auth::Cookie(cookie.to_string()))
        .await
        .status()
        .as_u16()
}

/// `GET /api/me` from inside the page (its own cookie): the status code.
async fn me_status_in_page(b: &Browser) -> Value {
    b.eval(
        "return fetch('api/me', {credentials: 'same-origin', cache: 'no-store'}).then((r) => r.status);",
        vec![],
    )
    .await
}

/// The computed background colour of the body.
async fn body_bg(b: &Browser) -> Value {
    b.eval(
        "return getComputedStyle(document.body).backgroundColor;",
        vec![],
    )
    .await
}

async fn wait_body_bg(b: &Browser, what: &str, want: &str) {
    b.wait_js(
        what,
        "return getComputedStyle(document.body).backgroundColor === arguments[0];",
        vec![json!(want)],
    )
    .await;
}

/// Run axe-core on the open Settings dialog; fail on any violation.
async fn assert_axe_clean(b: &Browser, phase: &str) {
    assert_axe_clean_in(b, "#settings-dialog", phase).await;
}

// ---- password -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_checks_it_and_signs_out_the_other_devices() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.member(&app.base, "erin", 1280, 800).await;

    // Another device of erin's, signed in over HTTP, and a bot token of hers.
    let (_, other) = app.kit().login("erin", PASSWORD).await;
    let token = app.kit().token(&other).await;
    assert_eq!(me_status_with_cookie(&app, &other).await, 200);

    let dialog = open_settings(&b).await;
    b.wait_visible(
        "the Password heading",
        &format!("{dialog}//h3[normalize-space(.) = 'Password']"),
    )
    .await;
    let change = format!("{dialog}{}", button("Change password"));

    // Checked in the page first: too short, then two different new passwords.
    fill_password_form(&b, &dialog, PASSWORD, "short", "short").await;
    b.click_xpath("Change password", &change).await;
    wait_alert(&b, &dialog, "too short").await;
    fill_password_form(
        &b,
        &dialog,
        PASSWORD,
        NEW_PASSWORD,
        "something else entirely",
    )
    .await;
    b.click_xpath("Change password", &change).await;
    wait_alert(&b, &dialog, "do not match").await;

    // A wrong current password: the server's answer, inline, on the right field.
    fill_password_form(&b, &dialog, "not my password", NEW_PASSWORD, NEW_PASSWORD).await;
    b.click_xpath("Change password", &change).await;
    wait_alert(&b, &dialog, "current password is not right").await;
    let invalid = b
        .eval(
            "return document.activeElement.getAttribute('aria-invalid') === 'true'
                 && document.activeElement.labels[0].textContent.trim();",
            vec![],
        )
        .await;
    assert_eq!(
        invalid,
        json!("Current password"),
        "focus on the current password"
    );
    assert_eq!(
        me_status_with_cookie(&app, &other).await,
        200,
        "nothing changed"
    );

    // The right one, with "Sign out my other devices" (on by default).
    let others = b
        .eval(
            "return document.querySelector('#password-others').checked;",
            vec![],
        )
        .await;
    assert_eq!(
        others,
        json!(true),
        "Sign out my other devices starts checked"
    );
    b.wait_visible(
        "the Sign out my other devices checkbox",
        &format!("{dialog}{}", labelled("input", "Sign out my other devices")),
    )
    .await;
    fill_password_form(&b, &dialog, PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    b.click_xpath("Change password", &change).await;
    b.wait_visible(
        "the success message",
        &format!(
            "{dialog}//*[@role = 'status' and contains(normalize-space(.), 'Your password was changed.')]"
        ),
    )
    .await;
    let errors = b
        .eval(
            "return document.querySelector('#password-error').textContent;",
            vec![],
        )
        .await;
    assert_eq!(errors, json!(""), "no error left after success");

    // The server: the other session and the bot token are gone, this page stays signed in.
    assert_eq!(
        me_status_with_cookie(&app, &other).await,
        401,
        "the other device is signed out"
    );
    assert_eq!(
        me_status_with_token(&app.base, &token).await,
        401,
        "bot tokens are revoked"
    );
    assert_eq!(
        me_status_in_page(&b).await,
        json!(200),
        "this page stays signed in"
    );
    b.wait_visible(
        "the chat, still connected",
        "//*[@role = 'status' and normalize-space(.) = 'Connected']",
    )
    .await;

    // Closing the dialog forgets what was typed.
    b.click_xpath("Done", &format!("{dialog}{}", button("Done")))
        .await;
    b.wait_gone("the dialog to close", &dialog).await;
    // The dialog's `close` event, which forgets them, is dispatched as a task of its own.
    b.wait_js(
        "no password to stay in the closed dialog",
        "return ['#password-current', '#password-new', '#password-confirm']
             .every((s) => document.querySelector(s).value === '');",
        vec![],
    )
    .await;
    b.assert_no_csp_violations("erin").await;

    // Sign out; the old password no longer works, the new one does.
    b.sign_out().await;
    b.submit_sign_in(&app.base, "Sign in", "erin", PASSWORD)
        .await;
    b.wait_js(
        "the sign-in error",
        "return document.querySelector('#signin-error').textContent;",
        vec![],
    )
    .await;
    b.wait_visible("still on the sign-in page", &username_field())
        .await;
    assert!(
        b.visible(&message_box()).await.is_none(),
        "the old password is refused"
    );
    b.submit_sign_in(&app.base, "Sign in", "erin", NEW_PASSWORD)
        .await;
    b.wait_chat_ready().await;
    assert_eq!(
        app.kit()
            .try_login("erin", PASSWORD)
            .await
            .status()
            .as_u16(),
        401,
        "the old password over HTTP"
    );

    // Throttled: after enough wrong attempts the page says how long to wait.
    let bot = Auth::Bearer(
        app.kit()
            .token(&app.kit().login("erin", NEW_PASSWORD).await.1)
            .await,
    );
    let mut throttled = false;
    for _ in 0..12 {
        let (status, _) = app
            .kit()
            .api(
                Method::POST,
                "/api/password",
                &bot,
                Some(&json!({"current_password": "wrong guess", "new_password": NEW_PASSWORD})),
            )
            .await;
        if status == 429 {
            throttled = true;
            break;
        }
        assert_eq!(status, 401, "a wrong current password");
    }
    assert!(throttled, "wrong current passwords are throttled");
    let dialog = open_settings(&b).await;
    fill_password_form(&b, &dialog, "wrong again", NEW_PASSWORD, NEW_PASSWORD).await;
    b.click_xpath(
        "Change password",
        &format!("{dialog}{}", button("Change password")),
    )
    .await;
    wait_alert(&b, &dialog, "Too many attempts. Please wait").await;
    let said = b
        .eval(
            "return document.querySelector('#password-error').textContent;",
            vec![],
        )
        .await;
    assert!(
        said.as_str()
            .is_some_and(|s| s.contains("minute") || s.contains("second")),
        "the wait from Retry-After: {said}"
    );

    b.close().await;
    drop(driver);
    eprintln!(
        "settings_password: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- devices and bots -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_token_made_in_settings_works_and_devices_can_be_revoked() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.member(&app.base, "fay", 1280, 800).await;
    let (_, other) = app.kit().login("fay", PASSWORD).await;

    let dialog = open_settings(&b).await;
    let browser_row = format!(
        "{dialog}//li[normalize-space(.//*[contains(@class, 'device-name')]) = 'Browser session']"
    );
    b.wait_visible("the other browser session in the list", &browser_row)
        .await;

    // An empty name is refused in the page.
    b.click_xpath(
        "Create token",
        &format!("{dialog}{}", button("Create token")),
    )
    .await;
    wait_alert(&b, &dialog, "Give the token a name").await;

    // Create a token: shown once, with a warning and "Copy token".
    fill(&b, &dialog, "Token name", "deploy bot").await;
    b.click_xpath(
        "Create token",
        &format!("{dialog}{}", button("Create token")),
    )
    .await;
    let reveal =
        format!("{dialog}//*[@role = 'region' and contains(normalize-space(.), 'deploy bot')]");
    b.wait_visible("the new token", &reveal).await;
    b.wait_visible(
        "the shown-once warning",
        &format!("{reveal}//*[contains(normalize-space(.), 'shown only this once')]"),
    )
    .await;
    b.click_xpath("Copy token", &format!("{reveal}{}", button("Copy token")))
        .await;
    b.wait_visible(
        "the copy to be confirmed",
        &format!("{reveal}//*[@role = 'status' and contains(normalize-space(.), 'Token')]"),
    )
    .await;
    let token = b
        .eval(
            "return document.querySelector('#token-value').value;",
            vec![],
        )
        .await;
    let token = token.as_str().unwrap_or_default().to_string();
    assert_eq!(token.len(), 43, "a 43-character token: {token:?}");
    assert_eq!(
        me_status_with_token(&app.base, &token).await,
        200,
        "the token works as a bot's Bearer credential"
    );
    let bot_row = format!("{dialog}//li[contains(normalize-space(.), 'Bot token: deploy bot')]");
    b.wait_visible("the token in the list", &bot_row).await;

    // Revoke the other browser session: the server signs it out.
    // (Named with its sign-in time: this page is a browser session too.)
    b.click_xpath(
        "Revoke Browser session",
        &format!("{browser_row}//button[starts-with(@aria-label, 'Revoke Browser session')]"),
    )
    .await;
    b.wait_gone("the other browser session to leave the list", &browser_row)
        .await;
    assert_eq!(
        me_status_with_cookie(&app, &other).await,
        401,
        "the revoked device is signed out"
    );

    // Revoke the token too.
    b.click_xpath(
        "Revoke Bot token: deploy bot",
        &format!("{dialog}{}", button("Revoke Bot token: deploy bot")),
    )
    .await;
    b.wait_gone("the token to leave the list", &bot_row).await;
    assert_eq!(me_status_with_token(&app.base, &token).await, 401);

    // Closing the dialog hides the token for good.
    b.click_xpath("Done", &format!("{dialog}{}", button("Done")))
        .await;
    b.wait_gone("the dialog to close", &dialog).await;
    // The dialog's `close` event (which forgets the token) is dispatched as a task of its own,
    // after the dialog is already shown as closed: wait for it, not just for the dialog.
    b.wait_js(
        "the token to be forgotten by the page",
        "return document.querySelector('#token-value').value === '';",
        vec![],
    )
    .await;
    b.assert_no_csp_violations("fay").await;

    b.close().await;
    drop(driver);
    eprintln!("settings_tokens: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- appearance -----------------------------------------------------------------------------

/// The top margin of the first message that starts a group (not a continuation).
const MSG_GAP: &str = r#"
const m = document.querySelector('[role="log"] .msg[data-id]:not(.cont)');
return m ? parseFloat(getComputedStyle(m).marginTop) : null;
"#;

async fn choose(b: &Browser, dialog: &str, label: &str) {
    b.click_xpath(label, &format!("{dialog}{}", labelled("input", label)))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theme_and_density_apply_at_once_persist_and_beat_the_system_preference() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("gus", 1280, 800).await;
    emulate_scheme(&driver, &b, "light").await;
    b.create_account(&app.base, "gus").await;
    b.eval(WATCH_CSP, vec![]).await;
    b.send_with_enter("Spacing check").await;
    b.wait_log_has("the message", &["Spacing check"]).await;
    assert_eq!(
        body_bg(&b).await,
        json!(LIGHT_BG),
        "light by default on a light system"
    );

    let dialog = open_settings(&b).await;
    let system = b
        .eval(
            "return document.querySelector('input[name=\"theme\"]:checked').value;",
            vec![],
        )
        .await;
    assert_eq!(system, json!("system"), "System is the default");
    b.wait_visible(
        "the Theme radio group",
        &format!("{dialog}//fieldset[legend[normalize-space(.) = 'Theme']]"),
    )
    .await;
    assert_axe_clean(&b, "Settings, desktop, light").await;

    // Dark on a light system, at once.
    choose(&b, &dialog, "Dark").await;
    wait_body_bg(&b, "the dark palette", DARK_BG).await;
    let meta = b
        .eval(
            "return [...document.querySelectorAll('meta[name=\"theme-color\"]')].map((m) => m.content);",
            vec![],
        )
        .await;
    assert_eq!(
        meta,
        json!(["#15120f", "#15120f"]),
        "the browser bar follows"
    );
    assert_axe_clean(&b, "Settings, desktop, dark").await;

    // Compact density: tighter spacing between messages.
    let before = b.eval(MSG_GAP, vec![]).await.as_f64().expect("a message");
    choose(&b, &dialog, "Compact density").await;
    let after = b.eval(MSG_GAP, vec![]).await.as_f64().expect("a message");
    assert!(
        after < before - 4.0,
        "compact spacing: {before} px → {after} px"
    );

    // Phone width, both palettes.
    b.set_viewport(360, 740).await;
    assert_no_horizontal_scroll(&b, "Settings at 360px, dark").await;
    assert_axe_clean(&b, "Settings, 360px, dark").await;
    choose(&b, &dialog, "Light").await;
    wait_body_bg(&b, "the light palette", LIGHT_BG).await;
    assert_no_horizontal_scroll(&b, "Settings at 360px, light").await;
    assert_axe_clean(&b, "Settings, 360px, light").await;
    b.set_viewport(1280, 800).await;

    // Kept across a reload, applied before the app's modules run (the attribute is there as
    // soon as the page has parsed its head).
    choose(&b, &dialog, "Dark").await;
    b.reload().await;
    b.wait_chat_ready().await;
    b.eval(WATCH_CSP, vec![]).await;
    assert_eq!(body_bg(&b).await, json!(DARK_BG), "dark after a reload");
    let root = b
        .eval(
            "return [document.documentElement.dataset.theme, document.documentElement.classList.contains('density-compact')];",
            vec![],
        )
        .await;
    assert_eq!(
        root,
        json!(["dark", true]),
        "theme and density after a reload"
    );
    let after_reload = b.eval(MSG_GAP, vec![]).await.as_f64();
    assert_eq!(after_reload, Some(after), "compact after a reload");

    // The whole chat page in the forced dark palette on a light system.
    assert_axe_clean_in(&b, "html", "the chat page, Dark on a light system").await;

    // The administration page follows the same choice.
    b.goto(&format!("{}admin.html", app.base)).await;
    wait_body_bg(&b, "the admin page in dark", DARK_BG).await;
    assert_axe_clean_in(&b, "html", "the admin page, Dark on a light system").await;
    b.goto(&app.base).await;
    b.wait_chat_ready().await;
    b.eval(WATCH_CSP, vec![]).await;

    // A dark system: Light still gives light, System follows the system.
    emulate_scheme(&driver, &b, "dark").await;
    let dialog = open_settings(&b).await;
    choose(&b, &dialog, "Light").await;
    wait_body_bg(&b, "light on a dark system", LIGHT_BG).await;
    choose(&b, &dialog, "System").await;
    wait_body_bg(&b, "System on a dark system", DARK_BG).await;
    assert_axe_clean(&b, "Settings, desktop, system dark").await;
    choose(&b, &dialog, "Compact density").await;
    let relaxed = b.eval(MSG_GAP, vec![]).await.as_f64();
    assert_eq!(relaxed, Some(before), "compact density off again");
    b.assert_no_csp_violations("gus").await;

    b.close().await;
    drop(driver);
    eprintln!(
        "settings_appearance: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- presence while offline -------------------------------------------------------------------

/// Who the page shows as online: the list, both counts and any note in the list.
const ONLINE: &str = r#"
const online = () => ({
  count: document.getElementById('online-count').textContent.trim(),
  menu: document.getElementById('online-toggle-count').textContent.trim(),
  names: [...document.querySelectorAll('#online-list .person-name')].map((e) => e.textContent),
  note: document.getElementById('online-list').textContent,
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_online_empties_while_offline_and_refills_on_reconnect() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let mut app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("hal", 1280, 800).await;
    b.create_account(&app.base, "hal").await;
    let ivy = app.register("ivy").await;
    let bot = app.ws(&ivy).await;
    b.wait_js(
        "ivy and hal online",
        &format!("{ONLINE} return online().names.length === 2;"),
        vec![],
    )
    .await;

    app.stop().await;
    drop(bot);
    let gone = b
        .wait_js(
            "the online list to empty",
            &format!(
                "{ONLINE} const v = online(); return v.names.length === 0 && v.note.includes('Offline') ? v : null;"
            ),
            vec![],
        )
        .await;
    assert_eq!(gone["count"], json!("0"), "the count clears: {gone}");
    assert_eq!(gone["menu"], json!("0"), "the menu's count clears: {gone}");

    app.restart().await;
    b.wait_visible(
        "the connection to come back",
        "//*[@role = 'status' and normalize-space(.) = 'Connected']",
    )
    .await;
    let _bot = app.ws(&ivy).await;
    let back = b
        .wait_js(
            "the list to refill",
            &format!("{ONLINE} const v = online(); return v.names.length === 2 ? v : null;"),
            vec![],
        )
        .await;
    assert_eq!(back["count"], json!("2"), "{back}");
    assert!(
        !back["note"].as_str().unwrap_or("").contains("Offline"),
        "no offline note once connected: {back}"
    );

    b.close().await;
    drop(driver);
    eprintln!(
        "settings_presence: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- from the administration page ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_of_your_own_password_leads_to_settings_password() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("olga", 1280, 800).await;
    app.register_admin("olga").await;
    b.submit_sign_in(&app.base, "Sign in", "olga", PASSWORD)
        .await;
    b.wait_chat_ready().await;

    b.goto(&format!("{}admin.html", app.base)).await;
    b.eval(WATCH_CSP, vec![]).await;
    b.click_xpath(
        "Reset password for olga",
        &button("Reset password for olga"),
    )
    .await;
    b.click_xpath(
        "Reset password in the confirmation",
        &format!("//dialog[@open]{}", button("Reset password")),
    )
    .await;
    let notice = "//*[@id = 'temp-password']";
    b.wait_visible(
        "the notice pointing to Settings → Password",
        &format!("{notice}//*[contains(normalize-space(.), 'Settings → Password')]"),
    )
    .await;
    let temporary = b
        .wait_js(
            "the temporary password",
            "return document.querySelector('#temp-password-value').value;",
            vec![],
        )
        .await;
    let temporary = temporary.as_str().unwrap_or_default().to_string();
    b.assert_no_csp_violations("the admin page").await;
    b.click_xpath(
        "Change password in the notice",
        &format!("{notice}{}", button("Change password")),
    )
    .await;

    // Signed out by the reset: sign in with the temporary password, and Settings opens at
    // Password, ready to type it.
    b.submit_sign_in(&app.base, "Sign in", "olga", &temporary)
        .await;
    b.wait_chat_ready().await;
    let dialog = dialog_named("Settings");
    b.wait_visible("Settings, opened by the link", &dialog)
        .await;
    let focus = b
        .wait_js(
            "focus in Current password",
            "return document.activeElement && document.activeElement.id === 'password-current' && location.search === '';",
            vec![],
        )
        .await;
    assert_eq!(focus, json!(true), "the link's ?settings= is used once");
    fill_password_form(&b, &dialog, &temporary, NEW_PASSWORD, NEW_PASSWORD).await;
    b.click_xpath(
        "Change password",
        &format!("{dialog}{}", button("Change password")),
    )
    .await;
    b.wait_visible(
        "the success message",
        &format!(
            "{dialog}//*[@role = 'status' and contains(normalize-space(.), 'Your password was changed.')]"
        ),
    )
    .await;
    assert_eq!(
        app.kit()
            .try_login("olga", NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        200,
        "the new password works"
    );

    b.close().await;
    drop(driver);
    eprintln!(
        "settings_admin_link: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Settings → Notifications → "Push notifications on this device": on localhost (a secure
/// context) the box is offered; here Chromium has no push service (a closed network), so
/// turning it on ends with the box off and a sentence saying why, never a stuck box or a
/// script error. The server side of pushes is tested against a local endpoint
/// (tests/api/push.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_notifications_say_why_when_the_browser_cannot_subscribe() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.member(&app.base, "alice", 1280, 900).await;
    let dialog = open_settings(&b).await;
    let boxed = format!(
        "{dialog}{}",
        labelled(
            "input",
            "Push notifications on this device — mentions and direct messages while Hearth is closed"
        )
    );
    let push = b.wait_visible("the push notifications box", &boxed).await;
    assert_eq!(
        push.prop("disabled").await.unwrap().as_deref(),
        Some("false")
    );
    b.click(&push).await;
    let outcome = b
        .wait_js(
            "the outcome of turning push on",
            "const box = document.getElementById('notify-push');
             const text = document.getElementById('notify-status').textContent;
             return !box.disabled && text ? { on: box.checked, text } : null;",
            vec![],
        )
        .await;
    if outcome["on"] == true {
        assert_eq!(
            outcome["text"],
            "Push notifications are on for this device."
        );
    } else {
        let text = outcome["text"].as_str().unwrap();
        assert!(
            text.contains("push service") || text.contains("blocked") || text.contains("cannot"),
            "{text}"
        );
    }
    b.assert_no_csp_violations("the page").await;
}

/// Settings → Notifications → "Devices that receive pushes": a phone subscribed elsewhere (to
/// an endpoint on 127.0.0.1) is listed and managed from this page: what it gets, its quiet
/// hours (saved on its own clock, which this page leaves alone) and stopping it. The server
/// keeps each change; the dialog stays accessible with the device's controls in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_receive_pushes_are_managed_from_the_settings() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let receiver = crate::common::Receiver::start(201).await;
    let app = App::start_with(|c| c.outbound.allow_private_networks = true).await;
    let driver = Driver::start(&tools).await;
    let b = driver.member(&app.base, "alice", 1280, 900).await;

    // Alice's phone subscribed from its own sign-in, on a clock an hour ahead of UTC.
    let (_, cookie) = app.kit().login("alice", PASSWORD).await;
    let phone = Auth::Cookie(cookie);
    let rng = ring::rand::SystemRandom::new();
    let key =
        ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng).unwrap();
    let public = key.compute_public_key().unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let endpoint = receiver.url("/phone");
    app.kit()
        .api_ok(
            Method::POST,
            "/api/push/subscriptions",
            &phone,
            Some(&json!({
                "endpoint": endpoint,
                "keys": {"p256dh": b64.encode(public.as_ref()), "auth": b64.encode([7u8; 16])},
                "utc_offset": 60,
            })),
            201,
        )
        .await;
    let device = || async {
        let all = app
            .kit()
            .api_ok(Method::GET, "/api/push/subscriptions", &phone, None, 200)
            .await;
        all["subscriptions"][0].clone()
    };

    let dialog = open_settings(&b).await;
    let name = "127.0.0.1";
    let level = format!("{dialog}//select[@aria-label = 'Push to {name}']");
    b.wait_visible("the phone's push choice", &level).await;
    b.wait_visible(
        "the list's heading",
        &format!("{dialog}//h4[normalize-space() = 'Devices that receive pushes']"),
    )
    .await;
    b.click_xpath("Every message", &format!("{level}/option[@value = 'all']"))
        .await;
    b.wait_js(
        "the choice saved",
        "return document.getElementById('notify-status').textContent.includes('gets every message') || null;",
        vec![],
    )
    .await;
    assert_eq!(device().await["level"], "all");

    let quiet = format!("{dialog}//input[@aria-label = 'Quiet hours on {name}']");
    b.click_xpath("Quiet hours", &quiet).await;
    let from = b
        .wait_visible(
            "Quiet from",
            &format!("{dialog}//input[@aria-label = 'Quiet from on {name}']"),
        )
        .await;
    assert_eq!(from.prop("value").await.unwrap().as_deref(), Some("22:00"));
    b.wait_js(
        "quiet hours saved",
        "return document.getElementById('notify-status').textContent.includes('nothing is pushed from 22:00 until 07:00') || null;",
        vec![],
    )
    .await;
    let saved = device().await;
    assert_eq!(saved["quiet"], json!({"start": "22:00", "end": "07:00"}));
    assert_eq!(
        saved["utc_offset"], 60,
        "the phone's clock, not this page's"
    );
    assert_axe_clean(&b, "Settings with a device that receives pushes").await;

    b.click_xpath(
        "Stop pushes",
        &format!("{dialog}{}", button(&format!("Stop pushes to {name}"))),
    )
    .await;
    b.wait_js(
        "the list emptied",
        "return document.getElementById('push-devices').hidden || null;",
        vec![],
    )
    .await;
    let all = app
        .kit()
        .api_ok(Method::GET, "/api/push/subscriptions", &phone, None, 200)
        .await;
    assert_eq!(all["subscriptions"], json!([]));
    assert!(receiver.received().is_empty(), "nothing was pushed");
    b.assert_no_csp_violations("alice").await;
}
