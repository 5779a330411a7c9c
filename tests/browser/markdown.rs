//! Message bodies rendered as Markdown (assets/js/markdown.js): the supported subset becomes
//! the expected elements at desktop and phone widths, and hostile text stays inert, builds
//! only allowed elements and attributes, and renders in linear time.

use std::time::Instant;

use fantoccini::key::Key;
use serde_json::{json, Value};

use crate::harness::{self, browser_tools, button, say, App, Driver, LOG};

/// The prelude of the page scripts below: `body(needle)` is the `.msg-body` of the message
/// whose text contains `needle`.
const FIND_BODY: &str = r#"
const bodies = Array.from(document.querySelectorAll('[role="log"] .msg-body'));
const body = (needle) => bodies.find((b) => b.textContent.includes(needle)) || null;
"#;

/// Check the rendering of every Markdown sample (see `samples` below); returns the problems.
const CHECK_RENDERING: &str = r#"
const problems = [];
const need = (cond, what) => { if (!cond) problems.push(what); };
const tags = (el) => el ? Array.from(el.querySelectorAll('*'), (e) => e.tagName.toLowerCase()).join(' ') : 'missing';

const inline = body('snake_case_word');
need(inline, 'the inline sample is in the log');
if (inline) {
  need(inline.querySelector('strong')?.textContent === 'bold', 'strong: ' + tags(inline));
  need(inline.querySelector('em')?.textContent === 'italic', 'em: ' + tags(inline));
  need(inline.querySelector('del, s')?.textContent === 'gone', 'del: ' + tags(inline));
  need(inline.querySelector('code')?.textContent === 'inline code', 'code: ' + tags(inline));
  need(inline.textContent.includes('snake_case_word'), 'snake_case_word stays as typed');
  need(!Array.from(inline.querySelectorAll('em, strong')).some((e) => /case/.test(e.textContent)),
    'snake_case_word is not emphasised');
  need(!inline.textContent.includes('**') && !inline.textContent.includes('~~'), 'markers are not shown');
}

const block = body('fn main()');
need(block, 'the code block sample is in the log');
if (block) {
  const code = block.querySelector('pre > code');
  need(code, 'pre > code: ' + tags(block));
  if (code) {
    need(code.textContent.includes('**not bold**') && !code.querySelector('*'), 'code is literal: ' + code.innerHTML);
    need(code.textContent.startsWith('fn main() {\n'), 'code keeps its lines: ' + JSON.stringify(code.textContent));
    need(getComputedStyle(code.parentElement).whiteSpace === 'pre', 'code blocks do not wrap');
    need(/mono/i.test(getComputedStyle(code).fontFamily), 'code is monospace: ' + getComputedStyle(code).fontFamily);
  }
  const copy = Array.from(block.querySelectorAll('button')).find((b) => b.textContent.trim() === 'Copy code');
  need(copy && copy.type === 'button', 'a "Copy code" button');
}

const unclosed = body('runs to the end');
need(unclosed && unclosed.querySelector('pre > code')?.textContent === 'runs to the end\n*still code*',
  'an unclosed fence runs to the end: ' + tags(unclosed));

const quote = body('quoted words');
need(quote && quote.querySelector('blockquote em')?.textContent === 'words', 'blockquote: ' + tags(quote));
need(quote && quote.querySelector('blockquote blockquote')?.textContent === 'nested quote', 'nested blockquote: ' + tags(quote));

const lists = body('first item');
if (lists) {
  const items = Array.from(lists.querySelectorAll(':scope > ul > li'));
  need(items.length === 2 && items[0].textContent === 'first item', 'ul > li: ' + tags(lists));
  need(lists.querySelector('ul > li > ul > li')?.textContent === 'nested item', 'nested list: ' + tags(lists));
  const ol = lists.querySelector(':scope > ol');
  need(ol && ol.children.length === 2 && ol.children[1].textContent === 'step two', 'ol > li: ' + tags(lists));
  need(ol && getComputedStyle(ol).listStyleType === 'decimal', 'numbered');
  need(getComputedStyle(lists.querySelector('ul')).listStyleType === 'disc', 'bulleted');
} else {
  problems.push('the list sample is in the log');
}

const links = body('Example site');
if (links) {
  const a = Array.from(links.querySelectorAll('a')).find((x) => x.textContent === 'Example site');
  need(a && a.href === 'https://example.com/', 'a markdown link: ' + (a ? a.outerHTML : tags(links)));
  need(a && a.rel === 'noopener noreferrer', 'rel="noopener noreferrer" exactly: ' + (a && a.rel));
  need(a && a.target === '_blank', 'opens in a new tab');
  const bare = Array.from(links.querySelectorAll('a')).find((x) => x.textContent === 'https://example.org/path');
  need(bare && bare.rel.includes('noopener'), 'a bare URL is a link without its trailing dot: ' + links.innerHTML);
  const room = links.querySelector('a.room-ref');
  need(room && room.textContent === '#general' && room.dataset.room === 'general'
    && room.getAttribute('href') === '#general' && !room.target, 'a room link: ' + (room ? room.outerHTML : tags(links)));
  const mark = links.querySelector('mark.mention-me');
  need(mark && mark.textContent === '@reader', 'the mention of the reader: ' + tags(links));
  need(links.textContent.includes('[not a link](javascript:alert(1))') && links.querySelectorAll('a').length === 3,
    'a javascript: link stays text: ' + links.innerHTML);
} else {
  problems.push('the link sample is in the log');
}

const lines = body('Line one');
if (lines) {
  const p = lines.querySelector('p');
  const lh = parseFloat(getComputedStyle(p).lineHeight) || 20;
  need(p.getBoundingClientRect().height > lh * 1.5, 'a single newline is a line break');
  need(lines.textContent === 'Line one\nLine two', 'the lines as typed: ' + JSON.stringify(lines.textContent));
} else {
  problems.push('the line break sample is in the log');
}

const html = body('not italic');
need(html && html.textContent === '<b>not bold</b> & <i>not italic</i>' && !html.querySelector('b, i'),
  'HTML stays literal: ' + (html ? html.innerHTML : 'missing'));

const typed = body('typed bold');
need(typed && typed.querySelector('strong')?.textContent === 'typed bold'
  && typed.querySelector('code')?.textContent === 'typed code', 'typed Markdown: ' + tags(typed));
return problems;
"#;

/// At a phone's width: code blocks scroll inside their bubble and the page does not widen.
const CODE_SCROLLS: &str = r#"
const pre = body('fn main()').querySelector('pre');
const bubble = pre.closest('.msg-bubble').getBoundingClientRect();
const r = pre.getBoundingClientRect();
return {
  scrolls: pre.scrollWidth > pre.clientWidth + 20,
  overflowX: getComputedStyle(pre).overflowX,
  inside: r.left >= bubble.left - 0.5 && r.right <= bubble.right + 0.5 && r.right <= innerWidth,
  pre: [r.left, r.right], bubble: [bubble.left, bubble.right],
};
"#;

/// Where the focus is, when it is inside the log: on a message row (`row`, and whether it is the
/// newest) or inside one (`id`: the message's id; null outside any).
const FOCUS_IN_LOG: &str = r#"
const log = document.querySelector('[role="log"]');
const a = document.activeElement;
if (!a || !log.contains(a) || a === log) return null;
const rows = log.querySelectorAll('.msg[data-id]');
const row = a.closest('.msg');
return {
  tag: a.tagName, text: (a.getAttribute('aria-label') || a.textContent).slice(0, 40),
  row: a === row, newest: row === rows[rows.length - 1],
  id: row ? row.dataset.id || null : null,
};
"#;

/// Press Tab on whatever has the focus.
async fn press_tab(b: &harness::Browser) {
    let el = harness::within(
        harness::WAIT,
        "the focused element",
        b.client.active_element(),
    )
    .await
    .expect("an active element");
    b.type_into(&el, &char::from(Key::Tab).to_string()).await;
}

/// Problems a page script returned, as strings.
fn problems(v: &Value, phase: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{phase}: the page script returned {v}"))
        .iter()
        .map(|p| p.as_str().unwrap_or("?").to_string())
        .collect()
}

async fn check_rendering(browser: &harness::Browser, phase: &str) {
    let v = browser
        .eval(&format!("{FIND_BODY}{CHECK_RENDERING}"), vec![])
        .await;
    let found = problems(&v, phase);
    assert!(
        found.is_empty(),
        "{phase}: Markdown did not render as expected:\n  {}",
        found.join("\n  ")
    );
}

/// The Markdown samples of the rendering test, sent by a second user.
fn samples() -> Vec<String> {
    let long_line = "let a_rather_long_identifier = compute(\"a very long line of code that \
                     does not wrap\", 42);";
    vec![
        "**bold** and *italic* and ~~gone~~ and `inline code` and snake_case_word".into(),
        format!("```rust\nfn main() {{\n    {long_line}\n    // **not bold** <b>x</b>\n}}\n```"),
        "```\nruns to the end\n*still code*".into(),
        "> quoted *words*\n> more\n>\n> > nested quote".into(),
        "- first item\n- second\n  - nested item\n\n1. step one\n2. step two".into(),
        "[Example site](https://example.com) and https://example.org/path. See #general, @reader, \
         and [not a link](javascript:alert(1))"
            .into(),
        "Line one\nLine two".into(),
        "<b>not bold</b> & <i>not italic</i>".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_renders_as_elements_at_desktop_and_phone_widths() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let reader = driver.browser("reader", 1280, 800).await;
    reader.create_account(&app.base, "reader").await;
    reader.eval(super::WATCH_CSP, vec![]).await;

    let cookie = app.register("writer").await;
    let mut bot = app.ws(&cookie).await;
    for body in samples() {
        let echo = bot.say(&body).await;
        assert_eq!(echo["body"], json!(body), "stored exactly as sent");
    }
    // Typed into the composer too: the same path as any message.
    reader
        .send_with_enter("**typed bold** and `typed code`")
        .await;
    reader
        .wait_js(
            "every sample to render",
            &format!(
                "{FIND_BODY} return !!body('Line one') && !!body('not italic') \
                 && !!body('typed bold');"
            ),
            vec![],
        )
        .await;

    check_rendering(&reader, "desktop").await;

    // The log is one tab stop: Tab from the log reaches a message (the newest), not the links,
    // "Copy code" buttons and scrolling code blocks of the messages above it; Tab goes through
    // what is inside a message only once that message has the focus.
    let focused = reader
        .eval(
            &format!(
                "{FIND_BODY} {LOG}.focus();
                 return document.activeElement === {LOG};"
            ),
            vec![],
        )
        .await;
    assert_eq!(focused, json!(true), "the log takes the focus");
    let mut visited = Vec::new();
    for _ in 0..12 {
        press_tab(&reader).await;
        let at = reader.eval(FOCUS_IN_LOG, vec![]).await;
        if at.is_null() {
            break;
        }
        visited.push(at);
    }
    assert!(
        visited
            .first()
            .is_some_and(|v| v["row"] == json!(true) && v["newest"] == json!(true)),
        "Tab from the log reaches the newest message first: {visited:?}"
    );
    let newest = visited[0]["id"].clone();
    assert!(
        visited
            .iter()
            .all(|v| v["id"] == newest || v["id"].is_null()),
        "Tab never reaches inside another message: {visited:?}"
    );
    // Inside the message with the links: Tab reaches them (after its toolbar).
    reader
        .eval(
            &format!("{FIND_BODY} body('Example site').closest('.msg').focus();"),
            vec![],
        )
        .await;
    let mut reached = false;
    for _ in 0..10 {
        press_tab(&reader).await;
        let text = reader
            .eval(
                "const a = document.activeElement; return a.tagName === 'A' ? a.textContent : '';",
                vec![],
            )
            .await;
        if text == json!("Example site") {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab from a message reaches its links");

    // The copy button answers (the clipboard, or a selection where it is not allowed).
    reader
        .click_xpath(
            "the Copy code button",
            &format!("//*[contains(@class, 'msg-body')]{}", button("Copy code")),
        )
        .await;
    let answer = reader
        .wait_js(
            "the Copy code button to confirm",
            &format!(
                "{FIND_BODY} const b = body('fn main()').querySelector('button'); \
                 return ['Copied', 'Selected'].includes(b.textContent) ? b.textContent : null;"
            ),
            vec![],
        )
        .await;
    say(&format!("markdown: the Copy code button answered {answer}"));
    // ... and then offers to copy again.
    reader
        .wait_js(
            "the Copy code button to reset",
            &format!(
                "{FIND_BODY} return body('fn main()').querySelector('button').textContent \
                 === 'Copy code';"
            ),
            vec![],
        )
        .await;

    // A phone: the same elements, and a long code line scrolls inside its bubble.
    reader.set_viewport(360, 740).await;
    check_rendering(&reader, "phone").await;
    let v = reader
        .eval(&format!("{FIND_BODY}{CODE_SCROLLS}"), vec![])
        .await;
    assert_eq!(v["scrolls"], json!(true), "the code block scrolls: {v}");
    assert_eq!(v["overflowX"], json!("auto"), "{v}");
    assert_eq!(
        v["inside"],
        json!(true),
        "the code block stays in its bubble: {v}"
    );
    super::assert_no_horizontal_scroll(&reader, "Markdown at 360 px").await;
    reader.set_viewport(1280, 800).await;

    // A #room reference opens that room.
    let created = reader
        .eval(
            "return fetch('api/rooms', { method: 'POST', credentials: 'same-origin', \
             headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, \
             body: JSON.stringify({ name: 'random' }) }).then((r) => r.status);",
            vec![],
        )
        .await;
    assert_eq!(created, json!(201), "the room is created");
    bot.say("Come over to #random").await;
    reader
        .click_xpath(
            "the #random reference",
            "//*[@role = 'log']//a[contains(@class, 'room-ref') and @data-room = 'random']",
        )
        .await;
    super::wait_room_open(&reader, "random", "random").await;

    reader.assert_no_csp_violations("reader").await;

    reader.close().await;
    drop(driver);
    eprintln!(
        "markdown_rendering: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Hostile Markdown: each sets `window.__xss` to its number (the `§`) if it ever runs. Every
/// body is trimmed and at most 4000 characters, so the server stores it exactly.
fn hostile_markdown() -> Vec<String> {
    let templates: Vec<String> = vec![
        "[x](javascript:window.__xss=§)".into(),
        "[x](JaVaScRiPt:window.__xss=§)".into(),
        "[x]( javascript:window.__xss=§)".into(),
        "[x](javascript:window.__xss=§ \"title\")".into(),
        "[x](<javascript:window.__xss=§>)".into(),
        "[x](&#106;avascript:window.__xss=§)".into(),
        "[x](java&#x09;script:window.__xss=§)".into(),
        "[x](vbscript:window.__xss=§)".into(),
        "[x](data:text/html,<script>window.__xss=§</script>)".into(),
        "[x](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9MTwvc2NyaXB0Pg==) §".into(),
        "[**x**](javascript:window.__xss=§) [`y`](javascript:window.__xss=§)".into(),
        "![x](javascript:window.__xss=§) ![y](https://example.com/§.png)".into(),
        "[a](https://example.com/\"onmouseover=\"window.__xss=§) \
         [b](https://example.com/'onclick='window.__xss=§')"
            .into(),
        "<https://example.com/\"onclick=\"window.__xss=§>".into(),
        "https://example.com/*a*_b_~~c~~`d`[e](javascript:window.__xss=§)".into(),
        "[https://example.com](javascript:window.__xss=§)".into(),
        "[[x](https://example.com/§)](javascript:window.__xss=§)".into(),
        "`<img src=x onerror=window.__xss=§>`".into(),
        "`${window.__xss=§}`".into(),
        "```html\n<script>window.__xss=§</script>\n```".into(),
        "```\"><img src=x onerror=window.__xss=§>\n<svg onload=window.__xss=§>".into(),
        "```js onerror=window.__xss=§\nx\n```".into(),
        "***__~~<b>x</b>§~~__***".into(),
        "**<img src=x onerror=window.__xss=§>** _<svg onload=window.__xss=§>_".into(),
        "> <img src=x onerror=window.__xss=§>\n> > *deep* <script>window.__xss=§</script>".into(),
        "- <script>window.__xss=§</script>\n  1. [x](javascript:window.__xss=§)\n  2. `§`".into(),
        "#<img src=x onerror=window.__xss=§> #general\"onclick=\"window.__xss=§\" #a§<b>".into(),
        "@reader<img src=x onerror=window.__xss=§> @reader\"onclick=\"window.__xss=§".into(),
        "\\<script>window.__xss=§\\</script> \\[x\\](javascript:window.__xss=§)".into(),
        "&lt;script&gt;window.__xss=§&lt;/script&gt; &#x3C;b&#x3E; [x](&#x6A;avascript:alert(§))"
            .into(),
    ];
    let mut bodies: Vec<String> = templates
        .iter()
        .enumerate()
        .map(|(i, t)| t.replace('§', &(i + 1).to_string()))
        .collect();
    bodies.extend(pathological(4000).into_iter().map(|(_, b)| b));
    bodies
}

/// The pathological shapes, each at most `len` characters (and trimmed): the inputs a
/// backtracking or quadratic parser chokes on.
fn pathological(len: usize) -> Vec<(&'static str, String)> {
    let times = |unit: &str, extra: usize| unit.repeat((len - extra) / unit.chars().count());
    let shapes: Vec<(&'static str, String)> = vec![
        ("backticks", times("`", 0)),
        ("asterisks", times("*", 0)),
        ("brackets", times("[", len / 2)),
        ("nested quotes", format!("{}x", times(">", len * 3 / 4))),
        ("nested quote markers", format!("{}x", times("> ", 1))),
        ("nested list markers", format!("{}x", times("- ", 1))),
        ("brackets and parens", times("[[[[[(((((", 0)),
        ("alternating * and _", times("*_", 0)),
        ("emphasis openers", times("*a ", 0)),
        ("unclosed links", times("[a](", 0)),
        ("empty links", times("[](", 0)),
        ("backtick runs", times("` ``", 0)),
        ("underscores", times("_a_ ", 0)),
        ("tildes", times("~~a ", 0)),
        (
            "nested emphasis",
            format!("{}x{}", times("*_", len / 2), times("_*", len / 2 + 2)),
        ),
        ("unclosed fence", format!("```\n{}", times("<b>x</b> ", 4))),
        (
            "a long URL",
            format!("https://example.com/{}x", times(".", 21)),
        ),
        ("URL-like", times("http://%", 0)),
        ("many lines", times("a\n", 0)),
    ];
    shapes
        .into_iter()
        .map(|(name, body)| (name, body.trim().to_string()))
        .collect()
}

/// Inspect every rendered body: nothing ran, only allowed elements and attributes, only
/// http(s)/mailto links (and room links), nothing blocked by the CSP. Returns the problems.
const INSPECT_MARKDOWN: &str = r#"
const problems = [];
if (window.__xss !== undefined) problems.push('window.__xss = ' + String(window.__xss));
if (/pwned/.test(document.title)) problems.push('document.title = ' + document.title);
if (window.__csp && window.__csp.length) problems.push('CSP violations: ' + window.__csp.join(' | '));
const allowedTags = new Set(['P', 'BR', 'STRONG', 'EM', 'DEL', 'S', 'CODE', 'PRE', 'BLOCKQUOTE',
  'UL', 'OL', 'LI', 'A', 'SPAN', 'BUTTON', 'DIV', 'MARK']);
const allowedAttrs = new Set(['class', 'href', 'target', 'rel', 'title', 'type', 'start', 'data-room']);
const bodies = document.querySelectorAll('[role="log"] .msg-body');
if (bodies.length < arguments[0]) problems.push('only ' + bodies.length + ' message bodies');
const short = (el) => el.outerHTML.slice(0, 160);
// `dir`: the page sets the direction of a body and of its paragraphs from their text (`auto`),
// and keeps code blocks left to right (`ltr`); nothing else.
const dirOk = (a) => a.name === 'dir' && (a.value === 'auto' || a.value === 'ltr');
for (const b of bodies) {
  for (const a of b.attributes) if (a.name !== 'class' && !dirOk(a)) problems.push('attribute ' + a.name + ' on .msg-body');
  for (const el of b.querySelectorAll('*')) {
    if (!allowedTags.has(el.tagName)) problems.push('element <' + el.tagName.toLowerCase() + '>: ' + short(el));
    for (const a of el.attributes) {
      const n = a.name.toLowerCase();
      if (n.startsWith('on')) problems.push('event handler attribute ' + n + ': ' + short(el));
      // The page takes links, buttons and code blocks of a message out of the Tab order while
      // another message has the focus (tabindex -1): that one value, and no other.
      else if (n === 'tabindex' ? a.value !== '-1' : !allowedAttrs.has(n) && !dirOk(a)) problems.push('attribute ' + n + ': ' + short(el));
    }
    if (el.tagName === 'A') {
      const href = el.getAttribute('href') || '';
      if (el.classList.contains('room-ref')) {
        if (!/^#[a-z0-9][a-z0-9_-]{0,47}$/.test(href) || el.dataset.room !== href.slice(1))
          problems.push('room link ' + short(el));
      } else {
        const u = new URL(href, location.href);
        if (!['http:', 'https:', 'mailto:'].includes(u.protocol) || !/^(https?|mailto):/i.test(href))
          problems.push('link to ' + href);
        const rel = el.rel.split(/\s+/);
        if (el.target !== '_blank' || !rel.includes('noopener') || !rel.includes('noreferrer'))
          problems.push('link without target/rel: ' + short(el));
      }
    }
    if (el.tagName === 'BUTTON' && (el.type !== 'button' || el.textContent !== 'Copy code'))
      problems.push('button ' + short(el));
    if (el.tagName === 'MARK' && !el.classList.contains('mention-me')) problems.push('mark ' + short(el));
  }
}
return problems;
"#;

async fn inspect_markdown(browser: &harness::Browser, phase: &str, expected: usize) {
    let v = browser.eval(INSPECT_MARKDOWN, vec![json!(expected)]).await;
    let found = problems(&v, phase);
    assert!(
        found.is_empty(),
        "{phase}: hostile Markdown was not inert:\n  {}",
        found.join("\n  ")
    );
}

/// A stand-in for a successful injection into a message body, to show that
/// [`INSPECT_MARKDOWN`] would notice one.
const PROBE: &str = r#"
const probe = document.createElement('div');
probe.id = 'markdown-probe';
probe.className = 'msg-body';
const img = document.createElement('img');
img.setAttribute('onclick', 'void 0');
const a = document.createElement('a');
a.setAttribute('href', 'javascript:void 0');
a.setAttribute('data-x', '1');
const room = document.createElement('a');
room.className = 'room-ref';
room.setAttribute('href', '#x" onclick="void 0');
probe.append(img, a, room);
document.querySelector('[role="log"]').append(probe);
"#;

/// Is the message with id `arguments[0]` in the log?
const RENDERED: &str =
    "return !!document.querySelector(`[role=\"log\"] .msg[data-id=\"${arguments[0]}\"] .msg-body`);";

/// Time `renderMarkdown` in the page (the module the app itself loaded): `arguments[0]` is
/// rendered in `arguments[1]` batches of `arguments[2]`; the result is the average of the
/// quickest batch, in milliseconds (the others may include a garbage collection or another
/// process's turn on the CPU).
const TIME_RENDER: &str = r#"
const [text, batches, runs] = arguments;
return import(new URL('js/markdown.js', document.baseURI).href).then(({ renderMarkdown }) => {
  renderMarkdown(text, 'reader');
  let best = Infinity;
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) renderMarkdown(text, 'reader');
    best = Math.min(best, (performance.now() - t0) / runs);
  }
  return best;
});
"#;

/// The average time of one `renderMarkdown` of each body, in milliseconds (one script per
/// body, so that even a slow machine stays within the wait for a script).
async fn render_times(browser: &harness::Browser, set: &[(&'static str, String)]) -> Vec<f64> {
    let mut out = Vec::with_capacity(set.len());
    for (name, body) in set {
        let v = browser
            .eval(TIME_RENDER, vec![json!(body), json!(BATCHES), json!(RUNS)])
            .await;
        out.push(v.as_f64().unwrap_or_else(|| panic!("timing {name}: {v}")));
    }
    out
}

/// The most one render of a 4000-character body may take, in milliseconds: far above what a
/// linear parser needs, far below what a quadratic one does.
const RENDER_BUDGET_MS: f64 = 50.0;
/// Renders per body when timing: this many batches ...
const BATCHES: u32 = 17;
/// ... of this many renders.
const RUNS: u32 = 3;
/// Four times the text may cost at most this many times as much (linear: about 4).
const MAX_GROWTH: f64 = 12.0;
/// Below this, a render is too quick for its growth to be measured reliably.
const GROWTH_FLOOR_MS: f64 = 2.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_markdown_is_inert_and_renders_in_linear_time() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = App::start().await;
    let driver = Driver::start(&tools).await;
    let reader = driver.browser("reader", 1280, 800).await;
    reader.create_account(&app.base, "reader").await;

    // The inspection itself notices an injected element, handler or script link.
    reader.eval(PROBE, vec![]).await;
    let v = reader.eval(INSPECT_MARKDOWN, vec![json!(1)]).await;
    let found = problems(&v, "probe").join("\n");
    for expected in [
        "element <img>",
        "event handler attribute onclick",
        "attribute data-x",
        "link to javascript:",
        "room link",
    ] {
        assert!(
            found.contains(expected),
            "the probe shows {expected:?}:\n{found}"
        );
    }
    reader
        .eval(
            "document.getElementById('markdown-probe').remove();",
            vec![],
        )
        .await;
    // From here on, anything the CSP blocks is a finding.
    reader.eval(super::WATCH_CSP, vec![]).await;

    let cookie = app.register("mallory").await;
    let mut bot = app.ws(&cookie).await;

    // The markup corpus of the XSS test, then the Markdown one.
    let mut bodies = super::hostile_bodies();
    bodies.extend(hostile_markdown());
    for body in &bodies {
        assert!(
            body.trim() == body && body.chars().count() <= 4000,
            "{body:?}"
        );
    }
    let mut last_id = 0;
    for body in &bodies {
        let echo = bot.say(body).await;
        assert_eq!(echo["body"], json!(body), "stored exactly as sent");
        last_id = echo["id"].as_i64().expect("a message id");
    }
    reader
        .wait_js(
            "every hostile body to render",
            RENDERED,
            vec![json!(last_id)],
        )
        .await;

    inspect_markdown(&reader, "live", bodies.len()).await;

    // Rendered again from history (the newest page of it).
    reader.mark_read("general").await;
    reader.reload().await;
    reader.wait_chat_ready().await;
    reader.eval(super::WATCH_CSP, vec![]).await;
    reader
        .wait_js(
            "the newest hostile body to render from history",
            RENDERED,
            vec![json!(last_id)],
        )
        .await;
    inspect_markdown(&reader, "after reload", 40).await;

    // Linear time: each pathological shape at 4000 characters stays far below the budget, and
    // costs about four times what it does at 1000 (a quadratic parser: sixteen times).
    let ordinary = |len: usize| {
        let line =
            "An ordinary message, with **some** _formatting_ and a https://example.com link. ";
        line.repeat(len / line.len()).trim().to_string()
    };
    let shapes = |len: usize| -> Vec<(&'static str, String)> {
        let mut v = pathological(len);
        v.push(("ordinary prose", ordinary(len)));
        v
    };
    let (small, large) = (shapes(1000), shapes(4000));
    let small_ms = render_times(&reader, &small).await;
    let large_ms = render_times(&reader, &large).await;
    let report: Vec<String> = large
        .iter()
        .zip(small_ms.iter().zip(&large_ms))
        .map(|((name, _), (s, l))| format!("{name} {s:.2}/{l:.2}"))
        .collect();
    say(&format!(
        "markdown render ms at 1000/4000 characters: {}",
        report.join(", ")
    ));
    for ((name, text), (s, l)) in large.iter().zip(small_ms.iter().zip(&large_ms)) {
        let chars = text.chars().count();
        assert!(
            *l < RENDER_BUDGET_MS,
            "{name} ({chars} characters) took {l:.1} ms per render"
        );
        // Only renders long enough to measure well are compared.
        assert!(
            *l < GROWTH_FLOOR_MS || *l < s * MAX_GROWTH,
            "{name}: {s:.2} ms at 1000 characters but {l:.2} ms at {chars}"
        );
    }

    reader.assert_no_csp_violations("reader").await;
    let title = reader.eval("return document.title;", vec![]).await;
    assert!(!title.as_str().unwrap_or("").contains("pwned"), "{title}");

    reader.close().await;
    drop(driver);
    say(&format!(
        "markdown: {} hostile bodies rendered, 0 executed",
        bodies.len()
    ));
    eprintln!("hostile_markdown: {:.1} s", started.elapsed().as_secs_f64());
}
