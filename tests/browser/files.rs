//! Files in a real browser (assets/js/uploads.js, chat.js, log.js): an image pasted into the
//! message box and a file dropped on the conversation upload with a progress bar, go out with
//! one message, and show on the other side as a preview and a file card; the preview opens in
//! a lightbox that Esc closes; the "Attach file" button is there; a cancelled upload leaves the
//! tray; a hostile SVG and an HTML page show as file cards and never run. No
//! Content-Security-Policy violations anywhere.

use fantoccini::key::Key;
use serde_json::{json, Value};

use crate::harness::{browser_tools, button, message_box, App, Browser, Driver};
use crate::WATCH_CSP;

/// Dispatch `arguments[0]` (`paste` on the message box, or `drop` on the conversation) carrying
/// the files `arguments[1]`: `[{name, type, text}]`, or `{name, png: [w, h]}` for a PNG drawn on
/// a canvas.
const GIVE_FILES: &str = r#"
const [how, specs] = arguments;
const done = arguments[arguments.length - 1];
(async () => {
  const dt = new DataTransfer();
  for (const s of specs) {
    if (s.png) {
      const c = document.createElement('canvas');
      c.width = s.png[0];
      c.height = s.png[1];
      const g = c.getContext('2d');
      g.fillStyle = '#c2410c';
      g.fillRect(0, 0, c.width, c.height);
      g.fillStyle = '#ffffff';
      g.fillRect(10, 10, c.width / 2, c.height / 2);
      const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
      dt.items.add(new File([blob], s.name, { type: 'image/png' }));
    } else {
      dt.items.add(new File([s.text], s.name, { type: s.type }));
    }
  }
  if (how === 'paste') {
    const box = document.querySelector('#composer-input');
    box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  } else {
    const zone = document.querySelector('#conversation');
    zone.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }
  done(true);
})();
"#;

/// The tray: each item's name, status and progress.
const TRAY: &str = r#"
const tray = document.querySelector('#upload-tray');
return {
  hidden: tray.hidden,
  items: Array.from(tray.querySelectorAll('.upload-item'), (li) => ({
    name: li.querySelector('.upload-name').textContent,
    status: li.querySelector('.upload-status').textContent,
    value: Number(li.querySelector('progress').value),
    max: Number(li.querySelector('progress').max),
    cancel: li.querySelector('button').getAttribute('aria-label'),
  })),
};
"#;

/// The newest message with files: its image buttons (and whether their thumbnails loaded) and
/// its file cards.
const LAST_FILES: &str = r#"
const rows = Array.from(document.querySelectorAll('[role="log"] .msg[data-id]'))
  .filter((r) => r.querySelector('.msg-files'));
const r = rows[rows.length - 1];
if (!r) return null;
return {
  images: Array.from(r.querySelectorAll('.msg-image'), (b) => ({
    name: b.getAttribute('aria-label'),
    loaded: b.querySelector('img').complete && b.querySelector('img').naturalWidth,
  })),
  cards: Array.from(r.querySelectorAll('a.file-card'), (a) => ({
    name: a.getAttribute('aria-label'),
    download: a.getAttribute('download'),
    href: a.getAttribute('href'),
  })),
  body: (r.querySelector('.msg-body') || {}).textContent || null,
};
"#;

pub(crate) async fn give(b: &Browser, how: &str, specs: Value) {
    within_async(b, GIVE_FILES, vec![json!(how), specs]).await;
}

async fn within_async(b: &Browser, script: &str, args: Vec<Value>) -> Value {
    crate::harness::within(
        crate::harness::WAIT,
        "an async script",
        b.client.execute_async(script, args),
    )
    .await
    .expect("the script runs")
}

async fn tray_ready(b: &Browser, n: usize) -> Value {
    b.wait_for("the uploads to be ready", || async {
        let t = b.eval(TRAY, vec![]).await;
        let items = t["items"].as_array().cloned().unwrap_or_default();
        (items.len() == n && items.iter().all(|i| i["status"] == "Ready")).then_some(t)
    })
    .await
}

async fn last_files(b: &Browser, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    b.wait_for(what, || async {
        let v = b.eval(LAST_FILES, vec![]).await;
        check(&v).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_image_and_a_dropped_file_go_out_together_and_the_image_opens() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let (alice, bob) = tokio::join!(
        driver.member(&app.base, "alice", 1280, 800),
        driver.member(&app.base, "bob", 1280, 800)
    );
    alice
        .wait_visible("the Attach file button", &button("Attach file"))
        .await;

    give(
        &alice,
        "paste",
        json!([{ "name": "shot.png", "png": [800, 600] }]),
    )
    .await;
    give(
        &alice,
        "drop",
        json!([{ "name": "notes.txt", "type": "text/plain", "text": "hello world" }]),
    )
    .await;
    let tray = tray_ready(&alice, 2).await;
    let items = tray["items"].as_array().unwrap();
    assert_eq!(items[0]["name"], "shot.png");
    assert_eq!(items[1]["name"], "notes.txt");
    for i in items {
        assert_eq!(i["value"], i["max"], "the progress bar is full: {i}");
        assert!(i["cancel"].as_str().unwrap().starts_with("Remove "), "{i}");
    }
    let input = alice.wait_visible("the message box", &message_box()).await;
    alice.type_into(&input, "two files").await;
    input.send_keys(&Key::Enter.to_string()).await.unwrap();
    alice
        .wait_for("the tray to empty", || async {
            let t = alice.eval(TRAY, vec![]).await;
            (t["hidden"] == true).then_some(())
        })
        .await;

    let seen = last_files(&bob, "the files to reach bob", |v| {
        v["images"]
            .as_array()
            .is_some_and(|i| i.len() == 1 && i[0]["loaded"] == 400)
            && v["cards"].as_array().is_some_and(|c| c.len() == 1)
    })
    .await;
    assert_eq!(seen["images"][0]["name"], "Open image shot.png");
    assert_eq!(seen["cards"][0]["name"], "Download notes.txt, 11 bytes");
    assert_eq!(seen["cards"][0]["download"], "notes.txt");
    assert_eq!(seen["body"], "two files");
    // The card's link gives the very bytes.
    let href = seen["cards"][0]["href"].as_str().unwrap().to_string();
    let text = within_async(
        &bob,
        "fetch(arguments[0]).then((r) => r.text()).then(arguments[arguments.length - 1]);",
        vec![json!(href)],
    )
    .await;
    assert_eq!(text, "hello world");

    // The preview opens the lightbox at full size; Esc closes it and gives the focus back.
    bob.click_xpath("the image preview", &button("Open image shot.png"))
        .await;
    let shown = bob
        .wait_js(
            "the full image in the lightbox",
            "const d = document.querySelector('#lightbox'); const i = d.querySelector('img'); \
             return d.open && i.complete && i.naturalWidth === 800 ? d.getAttribute('aria-label') : null;",
            vec![],
        )
        .await;
    assert_eq!(shown, "Image shot.png");
    bob.client
        .active_element()
        .await
        .unwrap()
        .send_keys(&Key::Escape.to_string())
        .await
        .unwrap();
    let focus = bob
        .wait_js(
            "the lightbox to close",
            "return document.querySelector('#lightbox').open ? null : \
             (document.activeElement.getAttribute('aria-label') || '');",
            vec![],
        )
        .await;
    assert_eq!(focus, "Open image shot.png");

    // A cancelled upload leaves the tray (and the server).
    give(
        &alice,
        "drop",
        json!([{ "name": "oops.txt", "type": "text/plain", "text": "never mind" }]),
    )
    .await;
    tray_ready(&alice, 1).await;
    alice
        .click_xpath("the remove button", &button("Remove oops.txt"))
        .await;
    let t = alice.eval(TRAY, vec![]).await;
    assert_eq!(t["hidden"], true, "{t}");

    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        b.assert_no_csp_violations(who).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_svg_and_an_html_page_never_run() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let (alice, bob) = tokio::join!(
        driver.browser("alice", 1280, 800),
        driver.browser("bob", 360, 740)
    );
    tokio::join!(
        alice.create_account(&app.base, "alice"),
        bob.create_account(&app.base, "bob")
    );
    bob.eval(WATCH_CSP, vec![]).await;
    let svg = "<svg xmlns='http://www.w3.org/2000/svg' onload='top.__pwned=1;parent.postMessage(\"pwned\",\"*\")'>\
               <script>top.__pwned=1;parent.postMessage('pwned','*')</script><circle r='9'/></svg>";
    let html = "<html><body><script>top.__pwned=1;parent.postMessage('pwned','*');document.title='pwned'</script></body></html>";
    give(
        &alice,
        "drop",
        json!([
            { "name": "evil.svg", "type": "image/svg+xml", "text": svg },
            { "name": "evil.html", "type": "text/html", "text": html },
        ]),
    )
    .await;
    tray_ready(&alice, 2).await;
    let input = alice.wait_visible("the message box", &message_box()).await;
    input.send_keys(&Key::Enter.to_string()).await.unwrap();

    let seen = last_files(&bob, "the files to reach bob", |v| {
        v["cards"].as_array().is_some_and(|c| c.len() == 2)
    })
    .await;
    assert_eq!(seen["images"], json!([]), "an SVG is never previewed");
    crate::assert_no_horizontal_scroll(&bob, "file cards on a phone").await;
    assert_eq!(
        seen["body"],
        Value::Null,
        "a message of files alone has no text"
    );

    // Load both where a page would run them: an iframe, an image, a fetch of the headers.
    let urls: Vec<Value> = seen["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["href"].clone())
        .collect();
    let heads = within_async(
        &bob,
        r#"
        const [urls] = arguments;
        const done = arguments[arguments.length - 1];
        window.__messages = [];
        window.addEventListener('message', (e) => window.__messages.push(String(e.data)));
        for (const u of urls) {
          const f = document.createElement('iframe');
          f.src = u;
          document.body.append(f);
          const i = document.createElement('img');
          i.src = u;
          document.body.append(i);
        }
        Promise.all(urls.map((u) => fetch(u).then((r) => r.headers.get('content-disposition')
          + ' | ' + r.headers.get('content-security-policy'))))
          .then((h) => setTimeout(() => done(h), 1500));
        "#,
        vec![json!(urls)],
    )
    .await;
    for h in heads.as_array().unwrap() {
        let h = h.as_str().unwrap();
        assert!(
            h.starts_with("attachment;") && h.ends_with("| sandbox"),
            "{h}"
        );
    }
    let pwned = bob
        .eval(
            "return [window.__pwned || 0, window.__messages, document.title];",
            vec![],
        )
        .await;
    assert_eq!(pwned[0], 0, "no uploaded script ran: {pwned}");
    assert_eq!(pwned[1], json!([]), "{pwned}");
    assert_ne!(pwned[2], "pwned");
}

/// Files attached in one conversation stay with it, as its draft does: switching to another
/// and sending there sends none of them; back in the first, they are still in the tray.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_attached_in_one_conversation_never_go_to_another() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let b = driver.member(&app.base, "ann", 1280, 800).await;
    let bob = crate::common::Auth::Cookie(app.register("bob").await);
    app.kit().create_room(&bob, "side", false).await;
    app.kit().invite(&bob, "side", "ann").await;
    give(
        &b,
        "paste",
        json!([{"name": "private.txt", "type": "text/plain", "text": "for general only"}]),
    )
    .await;
    tray_ready(&b, 1).await;

    b.click_xpath("side in the sidebar", &crate::room_link("side"))
        .await;
    crate::wait_room_open(&b, "side", "side").await;
    let tray = b.eval(TRAY, vec![]).await;
    assert_eq!(tray["items"], json!([]), "another room's tray: {tray}");
    assert_eq!(tray["hidden"], true);
    b.send_with_enter("said in side").await;
    b.wait_log_has("the message in side", &["said in side"])
        .await;
    // The log shows a message before the server acknowledges it: read side's history once
    // it is stored (within 10 s).
    let mut side = Vec::new();
    for _ in 0..100 {
        let page = app
            .kit()
            .get_as("/api/rooms/side/messages", &bob)
            .await
            .json::<Value>()
            .await
            .expect("side's history");
        side = page["messages"].as_array().cloned().unwrap_or_default();
        if !side.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(side.len(), 1, "{side:?}");
    assert!(
        side[0].get("attachments").is_none() || side[0]["attachments"] == json!([]),
        "no file went to side: {:?}",
        side[0]
    );

    b.click_xpath("general in the sidebar", &crate::room_link("general"))
        .await;
    crate::wait_room_open(&b, "general", "general").await;
    let tray = tray_ready(&b, 1).await;
    assert_eq!(tray["items"][0]["name"], "private.txt");
    b.send_with_enter("with the file").await;
    last_files(&b, "the file in general", |v| {
        v["body"] == "with the file" && v["cards"].as_array().is_some_and(|c| c.len() == 1)
    })
    .await;
    let tray = b.eval(TRAY, vec![]).await;
    assert_eq!(tray["items"], json!([]), "sent: {tray}");
    b.assert_no_csp_violations("the page").await;
}
