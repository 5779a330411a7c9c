//! The "Webhooks" section of a room's details in a real browser (assets/js/hooks.js): alice adds
//! an incoming hook and gets its URL once; a script posts through it and the message shows
//! under the hook's name; she adds an outgoing webhook to a receiver that fails, sees why it
//! fails, and removes it. The administration page lists every room's hooks and webhooks and
//! removes them. No CSP violations.

use reqwest::Method;
use serde_json::json;

use crate::common::{http_client, Receiver};
use crate::harness::{assert_axe_clean_in, browser_tools, button, labelled, App, Driver, PASSWORD};

/// Post `text` through an incoming hook's URL as a script would; the status.
async fn post_through(url: &str, text: &str) -> u16 {
    let res = http_client()
        .post(url)
        .json(&json!({ "text": text }))
        .send()
        .await
        .expect("the hook's URL answers");
    res.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_are_added_used_watched_and_removed_from_the_room_details() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let receiver = Receiver::start(500).await;
    let app = App::start_with(|c| c.outbound.allow_private_networks = true).await;
    let driver = Driver::start(&tools).await;
    let alice = driver.member(&app.base, "alice", 1280, 900).await;

    alice
        .click_xpath("Room settings", &button("Room settings"))
        .await;
    let name = alice
        .wait_visible("the Hook name field", &labelled("input", "Hook name"))
        .await;
    alice.type_into(&name, "ci-bot").await;
    alice
        .click_xpath("Add incoming hook", &button("Add incoming hook"))
        .await;
    let url = alice
        .wait_js(
            "the hook's URL",
            "const v = document.querySelector('#hook-secret-value'); \
             return v && !document.querySelector('#hook-secret').hidden && v.value ? v.value : null;",
            vec![],
        )
        .await;
    let url = url.as_str().unwrap().to_string();
    assert!(url.contains("/api/hooks/"), "{url}");
    alice
        .wait_js(
            "the hook in the list",
            "return document.querySelector('#hook-list').textContent.includes('ci-bot') || null;",
            vec![],
        )
        .await;

    // A script posts through it.
    assert_eq!(post_through(&url, "build 42 passed").await, 201);
    alice
        .wait_log_has("the hook's message", &["build 42 passed"])
        .await;
    let author = alice
        .eval(
            "const a = document.querySelectorAll('[role=\"log\"] .msg-author'); \
             return a.length ? a[a.length - 1].dataset.author : null;",
            vec![],
        )
        .await;
    assert_eq!(author, "ci-bot");

    // An outgoing webhook to a receiver that fails: the section says so.
    let field = alice
        .wait_visible("the Webhook URL field", &labelled("input", "Webhook URL"))
        .await;
    alice.type_into(&field, &receiver.url("/in")).await;
    alice
        .click_xpath("Add webhook", &button("Add webhook"))
        .await;
    alice
        .wait_js(
            "the signing secret",
            "return document.querySelector('#hook-secret-label').textContent === 'Signing secret' \
             && document.querySelector('#hook-secret-value').value.length > 20 || null;",
            vec![],
        )
        .await;
    assert_eq!(post_through(&url, "build 43 failed").await, 201);
    receiver
        .wait_until(std::time::Duration::from_secs(10), "an attempt", |r| {
            !r.is_empty()
        })
        .await;
    alice
        .wait_for("the failure to show", || async {
            let v = alice
                .eval(
                    "const e = document.querySelector('#webhook-list .hook-error'); \
                     return e ? e.textContent : null;",
                    vec![],
                )
                .await;
            v.as_str().filter(|t| t.contains("500")).map(str::to_string)
        })
        .await;
    let remove = format!("Remove webhook {}", receiver.url("/in"));
    alice.click_xpath(&remove, &button(&remove)).await;
    alice
        .wait_js(
            "the webhook to leave the list",
            "return document.querySelectorAll('#webhook-list li').length === 0 || null;",
            vec![],
        )
        .await;
    alice.assert_no_csp_violations("alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_see_and_remove_every_hook() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let receiver = Receiver::start(500).await;
    let app = App::start_with(|c| c.outbound.allow_private_networks = true).await;
    app.register_admin("boss").await;
    let alice = app.kit().signup("alice").await;
    let made = app
        .kit()
        .api_ok(
            Method::POST,
            "/api/rooms/general/hooks",
            &alice,
            Some(&json!({"name": "ci-bot"})),
            201,
        )
        .await;
    let hook_url = made["hook"]["url"].as_str().unwrap().to_string();
    let target = receiver.url("/in");
    app.kit()
        .api_ok(
            Method::POST,
            "/api/rooms/general/webhooks",
            &alice,
            Some(&json!({"url": target})),
            201,
        )
        .await;
    // The receiver fails: the admin page says so.
    assert_eq!(post_through(&hook_url, "deploy started").await, 201);
    receiver
        .wait_until(std::time::Duration::from_secs(10), "an attempt", |r| {
            !r.is_empty()
        })
        .await;

    let driver = Driver::start(&tools).await;
    let boss = driver.browser("boss", 1280, 900).await;
    boss.submit_sign_in(&app.base, "Sign in", "boss", PASSWORD)
        .await;
    boss.wait_chat_ready().await;
    boss.goto(&format!("{}admin.html", app.base)).await;
    boss.eval(crate::WATCH_CSP, vec![]).await;
    let section = "//section[.//h2[normalize-space() = 'Hooks and webhooks']]";
    boss.wait_visible(
        "the hook in its table",
        &format!("{section}//table[caption = 'Incoming hooks']//td[normalize-space() = 'ci-bot']"),
    )
    .await;
    let state = boss
        .wait_js(
            "the webhook's failure",
            "const rows = document.querySelectorAll('#out-hooks-body tr'); \
             const t = rows.length === 1 ? rows[0].textContent : ''; \
             return t.includes('Failing') && t.includes('500') ? t : null;",
            vec![],
        )
        .await;
    assert!(state.as_str().unwrap().contains(&target), "{state}");
    assert_axe_clean_in(&boss, "#hooks-section", "the admin page's hooks").await;

    let remove = "Remove hook ci-bot of #general";
    boss.click_xpath(remove, &button(remove)).await;
    boss.click_xpath(
        "the confirmation",
        "//dialog[@open]//button[normalize-space() = 'Remove hook']",
    )
    .await;
    boss.wait_js(
        "the hook gone",
        "return document.getElementById('in-hooks-wrap').hidden || null;",
        vec![],
    )
    .await;
    let remove = format!("Remove webhook {target} of #general");
    boss.click_xpath(&remove, &button(&remove)).await;
    boss.click_xpath(
        "the confirmation",
        "//dialog[@open]//button[normalize-space() = 'Remove webhook']",
    )
    .await;
    boss.wait_js(
        "nothing left",
        "return !document.getElementById('hooks-empty').hidden || null;",
        vec![],
    )
    .await;

    // Gone for the room too: the hook's URL no longer posts.
    let listed = app
        .kit()
        .api_ok(
            Method::GET,
            "/api/rooms/general/webhooks",
            &alice,
            None,
            200,
        )
        .await;
    assert_eq!(listed["webhooks"], json!([]));
    assert_eq!(post_through(&hook_url, "still here?").await, 404);
    boss.assert_no_csp_violations("the admin page").await;
}
