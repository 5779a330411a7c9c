//! The emoji picker (`assets/js/emoji.js`) in a real browser, driven with WebDriver key
//! presses: searching, moving in the grid, picking, Escape, the "Recently used" row, Tab
//! staying inside, a click outside, a 360 px wide screen, and no Content-Security-Policy
//! violations.

use std::time::Instant;

use fantoccini::key::Key;
use serde_json::{json, Value};

use crate::harness::{browser_tools, button, within, App, Browser, Driver, WAIT};
use crate::WATCH_CSP;

/// The picker, by its role and accessible name.
const PICKER: &str = "//*[@role = 'dialog' and @aria-label = 'Emoji picker']";

/// Load the module and add an "Add emoji" button under the composer that opens the picker;
/// every pick is pushed to `window.__picked`.
const SETUP: &str = r#"
return import('/js/emoji.js').then((m) => {
  window.__emoji = m;
  window.__picked = [];
  const b = document.createElement('button');
  b.type = 'button';
  b.id = 'emoji-test-anchor';
  b.className = 'btn btn-secondary btn-sm';
  b.textContent = 'Add emoji';
  b.setAttribute('aria-haspopup', 'dialog');
  b.addEventListener('click', () => m.openEmojiPicker(b, (e) => window.__picked.push(e)));
  document.querySelector('.composer-footer').append(b);
  return true;
});
"#;

/// What the page shows: whether the picker is open, what has focus (its accessible name or
/// id), the first emoji of the grid, the search text, the picks so far and the geometry.
const STATE: &str = r#"
const p = document.querySelector('[role="dialog"][aria-label="Emoji picker"]');
const a = document.activeElement;
const anchor = document.getElementById('emoji-test-anchor');
const shown = (el) => el.getClientRects().length > 0;
const first = p ? [...p.querySelectorAll('[role="group"] button')].find(shown) : null;
const heading = p ? [...p.querySelectorAll('h3')].find(shown) : null;
const r = p ? p.getBoundingClientRect() : null;
const ar = anchor.getBoundingClientRect();
return {
  open: !!p,
  focus: a ? (a.getAttribute('aria-label') || a.id || a.tagName) : null,
  inPicker: !!(p && p.contains(a)),
  first: first ? first.textContent : null,
  firstName: first ? first.getAttribute('aria-label') : null,
  heading: heading ? heading.textContent : null,
  search: p ? p.querySelector('input').value : null,
  picked: window.__picked,
  expanded: anchor.getAttribute('aria-expanded'),
  rect: r ? { left: r.left, right: r.right, top: r.top, bottom: r.bottom } : null,
  anchorTop: ar.top,
  view: { width: innerWidth, height: innerHeight, scroll: document.documentElement.scrollWidth },
  cols: p ? Number(getComputedStyle(p).getPropertyValue('--emoji-cols')) : 0,
};
"#;

/// Open and close the picker three times; how long each opening took, up to a laid-out page.
const TIMING: &str = r#"
const m = window.__emoji;
const b = document.getElementById('emoji-test-anchor');
const times = [];
for (let i = 0; i < 3; i++) {
  const t0 = performance.now();
  const handle = m.openEmojiPicker(b, () => {});
  document.querySelector('[role="dialog"][aria-label="Emoji picker"]').getBoundingClientRect();
  times.push(performance.now() - t0);
  handle.close();
}
return times;
"#;

/// Every emoji the picker offers (opened by script), checked as the server would check a
/// reaction, plus the name lookups.
const CATALOGUE: &str = r#"
const m = window.__emoji;
const handle = m.openEmojiPicker(document.getElementById('emoji-test-anchor'), () => {});
const p = document.querySelector('[role="dialog"][aria-label="Emoji picker"]');
const all = [...p.querySelectorAll('section:not([hidden]) [role="group"] button')].map((b) => ({
  e: b.textContent, name: b.getAttribute('aria-label'), title: b.title,
}));
const headings = [...p.querySelectorAll('section:not([hidden]) h3')].map((h) => h.textContent);
handle.close();
const bad = all.filter((x) => {
  const n = [...x.e].length;
  return n < 1 || n > 16 || /\s/u.test(x.e) || !x.name || x.name !== x.title;
});
return {
  count: all.length,
  unique: new Set(all.map((x) => x.e)).size,
  bad: bad.map((x) => x.e + ' ' + x.name),
  headings,
  quick: m.QUICK_REACTIONS.map((e) => m.emojiName(e)),
  bareHeart: m.emojiName('\u2764'),
  unknown: m.emojiName('x'),
  open: !!document.querySelector('[role="dialog"][aria-label="Emoji picker"]'),
};
"#;

/// Press `keys` (WebDriver key codes allowed) on whatever has focus.
async fn press(b: &Browser, keys: &str) {
    let el = within(WAIT, "the focused element", b.client.active_element())
        .await
        .expect("an active element");
    b.type_into(&el, keys).await;
}

fn k(key: Key) -> String {
    char::from(key).to_string()
}

async fn state(b: &Browser) -> Value {
    b.eval(STATE, vec![]).await
}

/// Wait until the page state satisfies `check`, and return it.
async fn wait_state(b: &Browser, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    b.wait_for(what, || async {
        let s = state(b).await;
        check(&s).then_some(s)
    })
    .await
}

/// Wait until focus is on the element named `name`.
async fn wait_focus(b: &Browser, name: &str) -> Value {
    wait_state(b, &format!("focus on {name:?}"), |s| {
        s["focus"] == json!(name)
    })
    .await
}

async fn open_by_click(b: &Browser) -> Value {
    b.click_xpath("the Add emoji button", &button("Add emoji"))
        .await;
    b.wait_visible("the emoji picker", PICKER).await;
    wait_focus(b, "Search emoji").await
}

fn assert_inside_viewport(s: &Value, phase: &str) {
    let r = &s["rect"];
    let v = &s["view"];
    let num = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    assert!(
        num(&r["left"]) >= 0.0
            && num(&r["top"]) >= 0.0
            && num(&r["right"]) <= num(&v["width"])
            && num(&r["bottom"]) <= num(&v["height"]),
        "{phase}: the picker is not inside the viewport: {s}"
    );
    assert!(
        num(&v["scroll"]) <= num(&v["width"]),
        "{phase}: the page scrolls sideways: {s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emoji_picker_searches_moves_picks_and_fits_a_phone() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.browser("emoji", 1280, 800).await;
    b.create_account(&app.base, "smiley").await;
    b.eval(WATCH_CSP, vec![]).await;
    assert_eq!(b.eval(SETUP, vec![]).await, json!(true), "the module loads");

    // The catalogue: a few hundred emoji, each one the server would accept, all named.
    let c = b.eval(CATALOGUE, vec![]).await;
    let count = c["count"].as_u64().unwrap_or(0);
    assert!((400..=700).contains(&count), "emoji offered: {c}");
    assert_eq!(c["unique"], c["count"], "no emoji twice: {c}");
    assert_eq!(c["bad"], json!([]), "emoji the server would refuse: {c}");
    assert_eq!(c["open"], json!(false), "the handle closes the picker");
    assert_eq!(c["headings"][0], json!("Smileys & emotion"), "{c}");
    assert_eq!(
        c["quick"],
        json!([
            "thumbs up",
            "red heart",
            "face with tears of joy",
            "party popper",
            "face with open mouth",
            "crying face"
        ])
    );
    assert_eq!(c["bareHeart"], json!("red heart"), "U+FE0F is optional");
    assert_eq!(c["unknown"], json!(""));

    // Opening is quick, however slow this machine.
    let times = b.eval(TIMING, vec![]).await;
    let best = times
        .as_array()
        .and_then(|t| t.iter().filter_map(Value::as_f64).reduce(f64::min))
        .unwrap_or(f64::MAX);
    eprintln!("emoji picker: opening took {times} ms (best {best:.1} ms)");
    assert!(best < 100.0, "opening the picker took {times} ms");

    // Open with a click: focus is in the search box; the anchor says it is expanded.
    let s = open_by_click(&b).await;
    assert_eq!(s["expanded"], json!("true"), "{s}");
    assert_eq!(
        s["heading"],
        json!("Smileys & emotion"),
        "nothing used yet: {s}"
    );
    assert_inside_viewport(&s, "desktop");
    assert!(
        s["rect"]["bottom"].as_f64() <= s["anchorTop"].as_f64(),
        "no room below the composer: the picker opens above its button: {s}"
    );

    // Search, then move with the arrow keys and pick with Enter.
    press(&b, "thumbs").await;
    let s = wait_state(&b, "thumbs up first in the results", |s| {
        s["first"] == json!("👍")
    })
    .await;
    assert_eq!(s["heading"], json!("Search results"), "{s}");
    press(&b, &k(Key::Down)).await;
    wait_focus(&b, "thumbs up").await;
    press(&b, &k(Key::Right)).await;
    wait_focus(&b, "thumbs down").await;
    press(&b, &k(Key::Left)).await;
    wait_focus(&b, "thumbs up").await;
    press(&b, &k(Key::Enter)).await;
    let s = wait_state(&b, "the pick to close the picker", |s| {
        s["open"] == json!(false)
    })
    .await;
    assert_eq!(s["picked"], json!(["👍"]), "{s}");
    assert_eq!(s["focus"], json!("emoji-test-anchor"), "focus is back: {s}");
    assert_eq!(s["expanded"], Value::Null, "{s}");

    // Reopen from the keyboard: "Recently used" comes first, with the thumbs up.
    press(&b, &k(Key::Enter)).await;
    b.wait_visible("the emoji picker again", PICKER).await;
    let s = wait_focus(&b, "Search emoji").await;
    assert_eq!(s["heading"], json!("Recently used"), "{s}");
    assert_eq!(s["first"], json!("👍"), "{s}");
    assert_eq!(s["search"], json!(""), "a fresh search box: {s}");

    // Two-dimensional movement: down from the one-emoji recent row into the smileys keeps
    // the column; down again moves by a whole row.
    press(&b, &k(Key::Down)).await;
    wait_focus(&b, "thumbs up").await;
    press(&b, &k(Key::Down)).await;
    wait_focus(&b, "grinning face").await;
    press(&b, &k(Key::Right)).await;
    let s = wait_focus(&b, "grinning face with big eyes").await;
    let cols = s["cols"].as_u64().unwrap_or(0);
    assert!(cols >= 6, "columns: {s}");
    let below = b
        .eval(
            "const g = [...document.querySelectorAll('[aria-label=\"Emoji picker\"] section')] \
               .find((s) => s.querySelector('h3').textContent === 'Smileys & emotion') \
               .querySelector('[role=\"group\"]'); \
             return g.children[arguments[0]].getAttribute('aria-label');",
            vec![json!(cols + 1)],
        )
        .await;
    press(&b, &k(Key::Down)).await;
    wait_focus(&b, below.as_str().expect("a name")).await;
    press(&b, &k(Key::Up)).await;
    wait_focus(&b, "grinning face with big eyes").await;
    press(&b, &k(Key::Up)).await;
    wait_focus(&b, "thumbs up").await;
    press(&b, &k(Key::End)).await;
    wait_focus(&b, "flag: South Africa").await;
    press(&b, &k(Key::Home)).await;
    wait_focus(&b, "thumbs up").await;

    // Typing while in the grid goes to the search box.
    press(&b, "c").await;
    let s = wait_focus(&b, "Search emoji").await;
    assert_eq!(s["search"], json!("c"), "{s}");

    // Escape closes without picking and gives focus back.
    press(&b, &k(Key::Escape)).await;
    let s = wait_state(&b, "Escape to close the picker", |s| {
        s["open"] == json!(false)
    })
    .await;
    assert_eq!(s["focus"], json!("emoji-test-anchor"), "{s}");
    assert_eq!(s["picked"], json!(["👍"]), "Escape picks nothing: {s}");

    // Tab and Shift+Tab go round the search box, the categories and the grid.
    press(&b, &k(Key::Enter)).await;
    b.wait_visible("the emoji picker again", PICKER).await;
    wait_focus(&b, "Search emoji").await;
    press(&b, &k(Key::Tab)).await;
    let s = wait_focus(&b, "Recently used").await;
    assert_eq!(s["inPicker"], json!(true), "{s}");
    press(&b, &k(Key::Tab)).await;
    wait_focus(&b, "thumbs up").await;
    press(&b, &k(Key::Tab)).await;
    wait_focus(&b, "Search emoji").await;
    press(&b, &format!("{}{}", k(Key::Shift), k(Key::Tab))).await;
    let s = wait_focus(&b, "thumbs up").await;
    assert_eq!(s["inPicker"], json!(true), "{s}");

    // A click elsewhere closes it.
    b.click_xpath("the room name", "//*[@id = 'room-name']")
        .await;
    b.wait_gone("a click outside to close the picker", PICKER)
        .await;

    // A phone: the picker fits the screen, and a tap on an emoji picks it.
    b.set_viewport(360, 740).await;
    let s = open_by_click(&b).await;
    assert_inside_viewport(&s, "360 px wide");
    press(&b, "heart").await;
    wait_state(&b, "red heart in the results", |s| {
        s["firstName"] == json!("red heart")
    })
    .await;
    let s = state(&b).await;
    assert_inside_viewport(&s, "360 px wide, searching");
    b.click_xpath(
        "the red heart",
        &format!("{PICKER}//button[@aria-label = 'red heart']"),
    )
    .await;
    let s = wait_state(&b, "the tap to pick and close", |s| {
        s["open"] == json!(false)
    })
    .await;
    assert_eq!(s["picked"], json!(["👍", "❤️"]), "{s}");

    b.assert_no_csp_violations("the emoji picker").await;

    b.close().await;
    drop(driver);
    eprintln!("emoji_picker: {:.1} s", started.elapsed().as_secs_f64());
}
