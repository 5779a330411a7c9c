//! Link previews in a real browser (assets/js/uploads.js, log.js, chat.js): alice posts a link
//! to a page on a local web site; both pages show the card (title as a safe link, description,
//! site name, the picture loaded from Hearth); alice's card has "Remove preview", bob's does
//! not; removing it takes the card away on both pages. The site is asked once for the page
//! and once for the picture: the browsers never contact it. No CSP violations.

use std::collections::HashMap;

use serde_json::Value;

use crate::common::{png, Answer, Site};
use crate::harness::{browser_tools, button, App, Driver};

/// The preview card of the newest message, as the page shows it.
const CARD: &str = r#"
const rows = Array.from(document.querySelectorAll('[role="log"] .msg[data-id]'));
const r = rows[rows.length - 1];
const card = r && r.querySelector('.link-preview');
if (!card) return null;
const a = card.querySelector('a.preview-title');
const img = card.querySelector('img.preview-image');
const site = card.querySelector('.preview-site');
const desc = card.querySelector('.preview-description');
return {
  title: a && a.textContent, href: a && a.href, target: a && a.target, rel: a && a.rel,
  site: site && site.textContent, description: desc && desc.textContent,
  picture: !!img && img.complete && img.naturalWidth > 0,
  src: img && img.getAttribute('src'),
  remove: !!card.querySelector('button[aria-label="Remove preview"]'),
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_shows_a_card_that_its_author_can_remove() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let page = "<html><head><meta property=og:title content='Baking &lt;bread&gt;'>\
        <meta property=og:description content='Flour, water, salt and time.'>\
        <meta property=og:site_name content='Kitchen'>\
        <meta property=og:image content='/loaf.png'></head><body></body></html>";
    let mut pages = HashMap::new();
    pages.insert("/bread", Answer::Ok("text/html", page.as_bytes().to_vec()));
    pages.insert("/loaf.png", Answer::Ok("image/png", png(640, 480)));
    let site = Site::start(pages).await;
    let app = App::start_with(|c| {
        c.previews.enabled = true;
        c.outbound.allow_private_networks = true;
    })
    .await;
    let driver = Driver::start(&tools).await;
    let (alice, bob) = tokio::join!(
        driver.member(&app.base, "alice", 1280, 800),
        driver.member(&app.base, "bob", 360, 740)
    );
    let link = site.url("/bread");
    alice.send_with_enter(&format!("try this {link}")).await;

    let mut cards = Vec::new();
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        let card = b
            .wait_for(&format!("{who}'s preview card"), || async {
                let v = b.eval(CARD, vec![]).await;
                (v != Value::Null && v["picture"] == true).then_some(v)
            })
            .await;
        assert_eq!(card["title"], "Baking <bread>", "{who}");
        assert_eq!(card["href"], link.as_str(), "{who}");
        assert_eq!(card["target"], "_blank");
        assert_eq!(card["rel"], "noopener noreferrer");
        assert_eq!(card["site"], "Kitchen");
        assert_eq!(card["description"], "Flour, water, salt and time.");
        let src = card["src"].as_str().unwrap();
        assert!(
            src.starts_with("api/messages/") && src.ends_with("/preview/image"),
            "{src}"
        );
        cards.push(card);
    }
    assert_eq!(cards[0]["remove"], true, "alice may remove her preview");
    assert_eq!(cards[1]["remove"], false, "bob may not");
    assert_eq!(
        (site.hits("/bread"), site.hits("/loaf.png")),
        (1, 1),
        "the browsers never contact the linked site: {:?}",
        site.seen()
    );

    alice
        .click_xpath("Remove preview", &button("Remove preview"))
        .await;
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        b.wait_js(
            &format!("the card to leave {who}'s page"),
            "const rows = document.querySelectorAll('[role=\"log\"] .msg[data-id]'); \
             const r = rows[rows.length - 1]; \
             return r && !r.querySelector('.link-preview') && r.textContent.includes('try this');",
            vec![],
        )
        .await;
    }
    bob.reload().await;
    bob.wait_chat_ready().await;
    bob.wait_log_has("the message after a reload", &["try this"])
        .await;
    assert_eq!(
        bob.eval(CARD, vec![]).await,
        Value::Null,
        "gone after a reload"
    );
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        b.assert_no_csp_violations(who).await;
    }
}
