//! Every screen through axe-core, at desktop and phone widths, in light and dark: the sign-in
//! page, a conversation with replies, reactions, Markdown and an edited message, the account
//! menu, each dialog (create a room, browse rooms, direct message, room settings, the
//! confirmation, the quick switcher, the emoji picker), search results and the admin page.

use std::time::Instant;

use reqwest::Method;
use serde_json::json;

use crate::common::{urlencode, Auth};
use crate::harness::{
    account_menu_button, assert_axe_clean_in, browser_tools, button, App, Browser, Driver, PASSWORD,
};
use crate::{wait_room_open, WATCH_CSP};

/// Choose the theme the way Settings does (stored, applied before the first paint) and reload.
async fn use_theme(b: &Browser, base: &str, theme: &str) {
    b.eval(
        "window.localStorage.setItem('hearth.theme', arguments[0]);",
        vec![json!(theme)],
    )
    .await;
    b.goto(base).await;
    b.wait_js(
        "the theme to apply",
        "return document.documentElement.dataset.theme === arguments[0];",
        vec![json!(theme)],
    )
    .await;
}

async fn close_dialogs(b: &Browser) {
    b.eval(
        "document.querySelectorAll('dialog[open]').forEach((d) => d.close());",
        vec![],
    )
    .await;
}

/// Press the button named `name` (through the page: on a phone some live in the closed rooms
/// drawer) and check the page once `open` (an XPath) shows.
async fn check_opened(b: &Browser, name: &str, open: &str, phase: &str) {
    let pressed = b
        .eval(
            "const scope = document.activeElement && document.activeElement.closest('.msg')
                 || document;
             const el = Array.from(scope.querySelectorAll('button'))
                 .find((e) => (e.getAttribute('aria-label') || e.textContent.trim()) === arguments[0]);
             if (!el) return false;
             el.click();
             return true;",
            vec![json!(name)],
        )
        .await;
    assert_eq!(pressed, json!(true), "{phase}: a button named {name}");
    b.wait_visible(&format!("{name} to open"), open).await;
    assert_axe_clean_in(b, "html", &format!("{phase}: {name}")).await;
    close_dialogs(b).await;
    b.eval(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));",
        vec![],
    )
    .await;
}

async fn walk(b: &Browser, base: &str, who: &str, phase: &str) {
    let mine = format!("Mine to delete, says {who}");
    b.wait_chat_ready().await;
    wait_room_open(b, "general", "general").await;
    b.wait_log_has("the conversation", &["Shall we bake"]).await;
    b.eval(WATCH_CSP, vec![]).await;
    assert_axe_clean_in(b, "html", &format!("{phase}: the conversation")).await;

    b.click_xpath("the Account menu", &account_menu_button())
        .await;
    b.wait_visible("the account menu", "//*[@id = 'account-menu']")
        .await;
    assert_axe_clean_in(b, "html", &format!("{phase}: the account menu")).await;
    b.click_xpath("the Account menu", &account_menu_button())
        .await;

    let dialog = "//dialog[@open]";
    for name in [
        "Create a room",
        "Browse public rooms",
        "Start a direct message",
        "Room settings",
    ] {
        check_opened(b, name, dialog, phase).await;
    }
    // The message toolbar's dialogs: the emoji picker and the delete confirmation.
    b.eval(
        "const msg = Array.from(document.querySelectorAll('[role=\"log\"] .msg'))
             .find((m) => m.textContent.includes(arguments[0]));
         msg.focus();",
        vec![json!(mine)],
    )
    .await;
    check_opened(
        b,
        "Add reaction",
        "//*[@role = 'dialog' and @aria-label = 'Choose a reaction']",
        phase,
    )
    .await;
    b.eval(
        "const msg = Array.from(document.querySelectorAll('[role=\"log\"] .msg'))
             .find((m) => m.textContent.includes(arguments[0]));
         msg.focus();",
        vec![json!(mine)],
    )
    .await;
    check_opened(b, "Delete", dialog, phase).await;

    // The quick switcher (Ctrl+K).
    b.eval(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'k', ctrlKey: true, bubbles: true}));",
        vec![],
    )
    .await;
    b.wait_visible("the quick switcher", "//dialog[@open and @id = 'switcher']")
        .await;
    assert_axe_clean_in(b, "html", &format!("{phase}: the quick switcher")).await;
    close_dialogs(b).await;

    // Search results.
    let input = b
        .wait_visible("the search box", "//input[@id = 'search-input']")
        .await;
    b.type_into(&input, "bake\n").await;
    b.wait_visible("search results", "//*[@id = 'search-panel']//li")
        .await;
    assert_axe_clean_in(b, "html", &format!("{phase}: search results")).await;

    // The administration page.
    b.goto(&format!("{base}admin.html")).await;
    b.wait_visible(
        "the admin page (its users, or why not)",
        "//table//td | //a[normalize-space(.) = 'Back to chat']",
    )
    .await;
    assert_axe_clean_in(b, "html", &format!("{phase}: the admin page")).await;
    b.goto(base).await;
    b.assert_no_csp_violations(phase).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_screen_passes_axe_at_both_widths_in_light_and_dark() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let desk = driver.browser("desk", 1280, 800).await;
    let phone = driver.browser("phone", 360, 740).await;

    // The sign-in page first, in both themes and widths.
    for (b, width) in [(&desk, "desktop"), (&phone, "360 px")] {
        b.goto(&app.base).await;
        for theme in ["light", "dark"] {
            use_theme(b, &app.base, theme).await;
            b.wait_visible("the sign-in page", &button("Sign in")).await;
            assert_axe_clean_in(b, "html", &format!("{width}, {theme}: sign-in page")).await;
        }
    }

    app.register_admin("ada").await;
    desk.submit_sign_in(&app.base, "Sign in", "ada", PASSWORD)
        .await;
    desk.wait_chat_ready().await;
    phone.create_account(&app.base, "pip").await;
    let bob = Auth::Cookie(app.register("bob").await);
    let Auth::Cookie(cookie) = &bob else {
        unreachable!()
    };
    let mut bob_ws = app.ws(cookie).await;
    let first = bob_ws
        .say("Shall we **bake** on Saturday?\n\n```\noven: 180 C\n```")
        .await;
    let id = first["id"].as_i64().expect("an id");
    let kit = app.kit();
    kit.api_ok(
        Method::POST,
        "/api/rooms/general/messages",
        &bob,
        Some(&json!({
            "body": "> quoted\n\nYes, *with* [a recipe](https://example.org/cake)",
            "reply_to": id,
        })),
        201,
    )
    .await;
    kit.api_ok(
        Method::PUT,
        &format!("/api/messages/{id}/reactions/{}", urlencode("👍")),
        &bob,
        None,
        204,
    )
    .await;
    for (b, who) in [(&desk, "ada"), (&phone, "pip")] {
        let mine = format!("Mine to delete, says {who}");
        b.send_with_enter(&mine).await;
        b.wait_log_has("my message", &[&mine]).await;
        // A reply of one's own: its quote sits on the reader's own (accent) bubble.
        let status = b
            .eval(
                "return fetch('api/rooms/general/messages', {
                     method: 'POST',
                     credentials: 'same-origin',
                     headers: {'Content-Type': 'application/json'},
                     body: JSON.stringify({body: 'Count me in, ' + arguments[1], reply_to: arguments[0]}),
                 }).then((r) => r.status);",
                vec![json!(id), json!(who)],
            )
            .await;
        assert_eq!(status, json!(201), "{who}: a reply of their own");
    }

    for (b, who, width) in [(&desk, "ada", "desktop"), (&phone, "pip", "360 px")] {
        for theme in ["light", "dark"] {
            use_theme(b, &app.base, theme).await;
            walk(b, &app.base, who, &format!("{width}, {theme}")).await;
        }
    }
    desk.close().await;
    phone.close().await;
    drop(driver);
    eprintln!("a11y_walk: {:.1} s", started.elapsed().as_secs_f64());
}
