//! Profiles in a real browser (assets/js/profiles.js, log.js): alice opens "Edit profile",
//! sets a display name and a picture; bob sees her messages under the display name (her
//! username in the tooltip) with her picture, live and after a reload. No
//! Content-Security-Policy violations.

use fantoccini::key::Key;
use serde_json::Value;

use crate::harness::{browser_tools, button, labelled, message_box, App, Driver, WAIT};

/// Give the picture input a PNG drawn on a canvas, as choosing a file does.
const CHOOSE_PICTURE: &str = r#"
const done = arguments[arguments.length - 1];
const c = document.createElement('canvas');
c.width = 600;
c.height = 400;
const g = c.getContext('2d');
g.fillStyle = '#2f6f4f';
g.fillRect(0, 0, 600, 400);
c.toBlob((blob) => {
  const dt = new DataTransfer();
  dt.items.add(new File([blob], 'me.png', { type: 'image/png' }));
  const input = document.querySelector('#profile-picture-input');
  input.files = dt.files;
  input.dispatchEvent(new Event('change', { bubbles: true }));
  done(true);
}, 'image/png');
"#;

/// alice's newest message as bob's page shows it: the author's text and title, and whether
/// the avatar beside it shows a loaded picture.
const AUTHOR: &str = r#"
const rows = Array.from(document.querySelectorAll('[role="log"] .msg[data-id]'))
  .filter((r) => r.querySelector('.msg-author[data-author="alice"]'));
const r = rows[rows.length - 1];
if (!r) return null;
const a = r.querySelector('.msg-author');
const img = r.querySelector('.avatar img');
return { name: a.textContent, title: a.title,
         picture: !!img && img.complete && img.naturalWidth === 256 };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_name_and_a_picture_show_beside_messages() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let (alice, bob) = tokio::join!(
        driver.member(&app.base, "alice", 1280, 800),
        driver.member(&app.base, "bob", 1280, 800)
    );
    alice.send_with_enter("before the profile").await;
    bob.wait_log_has("alice's first message", &["before the profile"])
        .await;
    let before = bob.wait_js("alice's name", AUTHOR, vec![]).await;
    assert_eq!(before["name"], "alice");

    alice
        .click_xpath("the account menu", &button("Account menu"))
        .await;
    alice
        .click_xpath("Edit profile", &button("Edit profile"))
        .await;
    let name = alice
        .wait_visible("the Display name field", &labelled("input", "Display name"))
        .await;
    alice.type_into(&name, "Alice Liddell").await;
    let status = alice
        .wait_visible("the Status field", &labelled("input", "Status (optional)"))
        .await;
    alice.type_into(&status, "down the rabbit hole").await;
    crate::harness::within(
        WAIT,
        "choosing a picture",
        alice.client.execute_async(CHOOSE_PICTURE, vec![]),
    )
    .await
    .unwrap();
    alice
        .wait_visible("the Remove picture button", &button("Remove picture"))
        .await;
    alice
        .click_xpath("Save profile", &button("Save profile"))
        .await;
    alice
        .wait_js(
            "the dialog to close",
            "return !document.querySelector('#profile-dialog').open;",
            vec![],
        )
        .await;

    // Live: the existing message takes the new name and picture.
    let live = bob
        .wait_for("alice's profile to reach bob", || async {
            let v = bob.eval(AUTHOR, vec![]).await;
            (v["name"] == "Alice Liddell" && v["picture"] == true).then_some(v)
        })
        .await;
    assert_eq!(live["title"], "@alice");

    // After a reload, from `ready`.
    bob.reload().await;
    bob.wait_chat_ready().await;
    let again = bob
        .wait_for("the profile after a reload", || async {
            let v = bob.eval(AUTHOR, vec![]).await;
            (v != Value::Null && v["picture"] == true).then_some(v)
        })
        .await;
    assert_eq!(again["name"], "Alice Liddell");

    // Mentions still use the username.
    let input = bob.wait_visible("the message box", &message_box()).await;
    bob.type_into(&input, "@alice hello").await;
    input.send_keys(&Key::Enter.to_string()).await.unwrap();
    alice.wait_log_has("bob's mention", &["@alice hello"]).await;
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        b.assert_no_csp_violations(who).await;
    }
}
