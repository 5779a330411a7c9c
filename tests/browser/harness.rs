//! What the browser tests stand on: a real Hearth server in-process on a free port with its own
//! SQLite file, a chromedriver process, headless Chromium sessions with fresh profiles, and
//! small helpers that find elements by the accessible names the contract promises and wait by
//! polling with a hang guard (never a fixed sleep).

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::actions::{
    InputSource, MouseActions, PointerAction, TouchActions, MOUSE_BUTTON_LEFT,
};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{json_body, Auth, TestApp, Ws};
pub use crate::common::{within, PASSWORD};

/// The longest any single wait in a test may take before the test fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starting a browser is slower than anything the page does, especially on a busy machine.
const SESSION_START: Duration = Duration::from_secs(60);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The flags every Chromium gets (headless, no network chatter of its own).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// Write a line straight to the process's stderr, past the test harness's output capture, so
/// that it shows in every `cargo test` run.
pub fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

// ---- finding the browser ------------------------------------------------------------------

/// Where the browser and its driver are installed.
#[derive(Debug, Clone)]
pub struct Tools {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn from_env_or_path(var: &str, names: &[&str]) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)).filter(|p| p.is_file()),
        _ => on_path(names),
    }
}

/// The installed chromedriver and Chromium (`CHROMEDRIVER` / `CHROMIUM` override the `PATH`
/// search). When either is missing: outside CI the test is skipped with a note; under CI
/// (`CI` set) that is a failure, because CI must run these tests for real.
pub fn browser_tools() -> Option<Tools> {
    let chromedriver = from_env_or_path("CHROMEDRIVER", &["chromedriver"]);
    let chromium = from_env_or_path(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    match (chromedriver, chromium) {
        (Some(chromedriver), Some(chromium)) => Some(Tools {
            chromedriver,
            chromium,
        }),
        (driver, browser) => {
            let missing = match (driver.is_none(), browser.is_none()) {
                (true, true) => "chromium and chromedriver were",
                (true, false) => "chromedriver was",
                _ => "chromium was",
            };
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set but {missing} not found on PATH: run scripts/install-browser.sh \
                     before the browser tests"
                );
            }
            say("skipping: chromium/chromedriver not installed (run scripts/install-browser.sh)");
            None
        }
    }
}

// ---- the server -----------------------------------------------------------------------------

/// A running Hearth server (the shared test kit's) as the browsers see it.
pub struct App {
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
    inner: TestApp,
}

impl App {
    /// A server on a free port of 127.0.0.1 with a fresh database and the test configuration.
    pub async fn start() -> App {
        Self::start_with(|_| {}).await
    }

    /// [`App::start`] with the test configuration changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut hearth::config::Config) + 'static) -> App {
        let inner = TestApp::with_config(tweak).await;
        App {
            base: format!("{}/", inner.base),
            inner,
        }
    }

    /// Graceful stop (open pages go offline until [`App::restart`]).
    pub async fn stop(&mut self) {
        self.inner.stop().await;
    }

    /// Graceful stop, then start again on the same database file and the same address.
    pub async fn restart(&mut self) {
        self.inner.restart_on_same_address().await;
    }

    /// The shared test kit's server, for API calls as a user (`api_ok`, `join_room`, ...).
    pub fn kit(&self) -> &TestApp {
        &self.inner
    }

    /// `POST /api/{path}` with a JSON body and no Origin (as a bot or curl would).
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.inner.post_json(&format!("/api/{path}"), body).await
    }

    /// Register `username` with [`PASSWORD`]; returns the session cookie value.
    pub async fn register(&self, username: &str) -> String {
        self.inner.register(username, PASSWORD).await.1
    }

    /// Register `username` with [`PASSWORD`] through the server's setup link, which makes it
    /// the administrator; returns the session cookie value.
    pub async fn register_admin(&self, username: &str) -> String {
        match self.inner.signup_admin(username).await {
            Auth::Cookie(cookie) => cookie,
            Auth::Bearer(_) => unreachable!("signing up gives a cookie"),
        }
    }

    /// The `error.message` the server gives for `POST /api/{path}` with this body.
    pub async fn error_message(&self, path: &str, body: &Value) -> String {
        let res = self.post(path, body).await;
        let status = res.status();
        let v = json_body(res).await;
        assert!(
            status.is_client_error(),
            "{path}: expected an error, got {status} {v}"
        );
        v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no error.message in {v}"))
            .to_string()
    }

    /// A bot-like WebSocket client signed in with `cookie`, past its `ready` frame.
    pub async fn ws(&self, cookie: &str) -> Bot {
        let ws = self
            .inner
            .ws_connect(&Auth::Cookie(cookie.to_string()), None)
            .await;
        Bot { ws, sent: 0 }
    }
}

/// A bot-like WebSocket client, for sending many messages fast.
pub struct Bot {
    ws: Ws,
    sent: u64,
}

impl Bot {
    /// Send `body` to `general` and wait for its acknowledgement (the echo with our nonce).
    pub async fn say(&mut self, body: &str) -> Value {
        self.say_in("general", body).await
    }

    /// Send `body` to `room` and wait for its acknowledgement (the echo with our nonce).
    pub async fn say_in(&mut self, room: &str, body: &str) -> Value {
        self.sent += 1;
        let nonce = format!("browser-test-{}", self.sent);
        self.ws.say(room, body, &nonce).await
    }
}

// ---- chromedriver and the browsers ------------------------------------------------------------

/// One chromedriver process; every [`Browser`] it starts has its own Chromium and profile.
/// Dropping it ends the browser sessions it still has and then the process.
pub struct Driver {
    tools: Tools,
    child: Child,
    url: String,
    sessions: Mutex<Vec<String>>,
    dir: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One blocking HTTP/1.1 request to chromedriver (also used from `Drop`, where nothing can
/// await). Returns the response body. chromedriver keeps connections open whatever the request
/// says, so the body is read by its `Content-Length`.
fn raw_http(port: u16, method: &str, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, body_len) = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, len);
        }
    };
    while buf.len() < head_len + body_len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf.len().min(head_len + body_len);
    Some(String::from_utf8_lossy(&buf[head_len..end]).into_owned())
}

impl Driver {
    /// Start chromedriver on a free port and wait until it answers.
    pub async fn start(tools: &Tools) -> Driver {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut last_error = String::new();
        // The free port is released before chromedriver binds it; another process could take
        // it in between, so try a few.
        for _ in 0..3 {
            let port = free_port();
            let log = dir.path().join("chromedriver.log");
            let mut child = Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
            let deadline = Instant::now() + WAIT;
            loop {
                if let Some(status) = child.try_wait().expect("chromedriver's status") {
                    last_error = format!("chromedriver exited with {status}");
                    break;
                }
                let answer = tokio::task::spawn_blocking(move || raw_http(port, "GET", "/status"))
                    .await
                    .expect("the status probe runs");
                if answer.is_some_and(|a| a.contains("\"ready\":true")) {
                    return Driver {
                        tools: tools.clone(),
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                        sessions: Mutex::new(Vec::new()),
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    last_error = "chromedriver did not answer within 10 s".into();
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }
        panic!("could not start chromedriver: {last_error}");
    }

    /// chromedriver's base URL (for vendor endpoints such as Chromium's DevTools commands).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new headless Chromium with a fresh profile, at `width`×`height` CSS pixels of viewport.
    pub async fn browser(&self, name: &str, width: u32, height: u32) -> Browser {
        self.browser_with(name, width, height, &[]).await
    }

    /// A browser in which `username` has just created an account (with [`PASSWORD`]) and
    /// sees the chat, watching for Content-Security-Policy violations from then on.
    pub async fn member(&self, base: &str, username: &str, width: u32, height: u32) -> Browser {
        let b = self.browser(username, width, height).await;
        b.create_account(base, username).await;
        b.eval(crate::WATCH_CSP, vec![]).await;
        b
    }

    /// [`Driver::browser`] with extra Chromium flags (`--force-dark-mode` for the dark theme).
    pub async fn browser_with(
        &self,
        name: &str,
        width: u32,
        height: u32,
        extra: &[&str],
    ) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("profile-")
            .tempdir_in(self.dir.path())
            .expect("a profile directory");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": self.tools.chromium, "args": args }),
        );
        // An alert() from a message would be a finding: keep it open so the next command
        // reports it instead of letting it be dismissed silently.
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = within(
            SESSION_START,
            "a browser session",
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&self.url),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: cannot start a browser session: {e}"));
        if let Ok(Some(id)) = client.session_id().await {
            self.sessions.lock().expect("sessions").push(id);
        }
        let browser = Browser {
            client,
            name: name.to_string(),
            _profile: profile,
        };
        browser.set_viewport(width, height).await;
        browser
    }

    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- chromedriver log (last lines) ---\n{}", self.log_tail());
        }
        // Quit the browsers through chromedriver (it knows their processes), then chromedriver.
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        for id in self.sessions.lock().map(|s| s.clone()).unwrap_or_default() {
            let _ = raw_http(port, "DELETE", &format!("/session/{id}"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// XPath for the form control whose `<label>` (or `aria-label`) is `label`.
pub fn labelled(tag: &str, label: &str) -> String {
    format!(
        "//{tag}[@id = //label[normalize-space(.) = '{label}']/@for \
         or @aria-label = '{label}' \
         or ancestor::label[normalize-space(.) = '{label}']]"
    )
}

/// XPath for a button (or link acting as one) whose accessible name is `name`.
pub fn button(name: &str) -> String {
    format!(
        "//*[(self::button or self::a or @role = 'button') \
         and (normalize-space(.) = '{name}' or @aria-label = '{name}')]"
    )
}

/// The text box labelled "Username".
pub fn username_field() -> String {
    labelled("input", "Username")
}
/// The text box labelled "Password".
pub fn password_field() -> String {
    labelled("input", "Password")
}
/// The message box labelled "Message".
pub fn message_box() -> String {
    labelled("textarea", "Message")
}
/// The "Sign out" control (in the account menu; the confirmation's button has the name too).
pub fn sign_out_button() -> String {
    button("Sign out")
}
/// The account button (the reader's avatar), which opens the menu with "Sign out".
pub fn account_menu_button() -> String {
    button("Account menu")
}

/// The JavaScript expression for the message list (`role="log"`).
pub const LOG: &str = "document.querySelector('[role=\"log\"]')";

/// One headless Chromium session.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    name: String,
    _profile: TempDir,
}

impl Browser {
    /// Assert that the page reported no Content-Security-Policy violation since `WATCH_CSP`
    /// was run in it; `who` names the page in the failure.
    pub async fn assert_no_csp_violations(&self, who: &str) {
        let csp = self.eval("return window.__csp || [];", vec![]).await;
        assert_eq!(csp, serde_json::json!([]), "{who}: no CSP violations");
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        within(
            WAIT,
            "a script in the page",
            self.client.execute(script, args),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{script}", self.name))
    }

    /// Make the layout viewport exactly `width`×`height` (the window has no chrome when
    /// headless, but check rather than assume).
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let mut outer = (width, height);
        for _ in 0..5 {
            within(
                WAIT,
                "resizing the window",
                self.client.set_window_size(outer.0, outer.1),
            )
            .await
            .expect("the window can be resized");
            // On a busy machine the page may still report the old size for a moment: read
            // until two readings agree (or the size is right) before correcting for chrome.
            let mut last = (-1, -1);
            let (w, h) = loop {
                let v = self
                    .eval("return [window.innerWidth, window.innerHeight];", vec![])
                    .await;
                let now = (
                    v[0].as_u64().unwrap_or(0) as i64,
                    v[1].as_u64().unwrap_or(0) as i64,
                );
                if now == (width as i64, height as i64) || now == last {
                    break now;
                }
                last = now;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            };
            if w == width as i64 && h == height as i64 {
                return;
            }
            outer = (
                (outer.0 as i64 + width as i64 - w).max(1) as u32,
                (outer.1 as i64 + height as i64 - h).max(1) as u32,
            );
        }
        let v = self
            .eval("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        panic!(
            "{}: could not set the viewport to {width}x{height}: {v}",
            self.name
        );
    }

    /// Navigate and wait for the page to load.
    pub async fn goto(&self, url: &str) {
        within(WAIT, "a page load", self.client.goto(url))
            .await
            .unwrap_or_else(|e| panic!("{}: cannot open {url}: {e}", self.name));
    }

    /// Reload the page.
    pub async fn reload(&self) {
        within(WAIT, "a page reload", self.client.refresh())
            .await
            .unwrap_or_else(|e| panic!("{}: reload failed: {e}", self.name));
    }

    /// The first displayed element matching `xpath`, if any, right now.
    pub async fn visible(&self, xpath: &str) -> Option<Element> {
        let found = within(
            WAIT,
            "finding elements",
            self.client.find_all(Locator::XPath(xpath)),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: bad lookup {xpath}: {e}", self.name));
        for el in found {
            // An element can go stale between the lookup and the question.
            if let Ok(true) = el.is_displayed().await {
                return Some(el);
            }
        }
        None
    }

    /// Poll until `check` gives `Some`, for at most [`WAIT`].
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.max(POLL), check()).await {
                Ok(Some(v)) => return v,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                _ => {
                    let state = tokio::time::timeout(
                        Duration::from_secs(2),
                        self.client.execute(
                            "return document.body ? document.body.innerText.slice(0, 2000) : ''",
                            vec![],
                        ),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok);
                    panic!(
                        "{}: timed out after {WAIT:?} waiting for {what}; the page shows:\n{}",
                        self.name,
                        state.as_ref().and_then(Value::as_str).unwrap_or("?")
                    );
                }
            }
        }
    }

    /// Wait until an element matching `xpath` is displayed.
    pub async fn wait_visible(&self, what: &str, xpath: &str) -> Element {
        self.wait_for(what, || self.visible(xpath)).await
    }

    /// Wait until nothing matching `xpath` is displayed.
    pub async fn wait_gone(&self, what: &str, xpath: &str) {
        self.wait_for(what, || async {
            self.visible(xpath).await.is_none().then_some(())
        })
        .await
    }

    /// Wait until `script` returns something truthy, and return it.
    pub async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.wait_for(what, || async {
            let v = self.eval(script, args.clone()).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            truthy.then_some(v)
        })
        .await
    }

    /// Type into the element (WebDriver key events, as a person would).
    pub async fn type_into(&self, el: &Element, text: &str) {
        within(WAIT, "typing", el.send_keys(text))
            .await
            .unwrap_or_else(|e| panic!("{}: cannot type {text:?}: {e}", self.name));
    }

    /// Find the displayed element at `xpath` and click it, looking again when the page
    /// replaced the element in between (a re-rendered list).
    pub async fn click_xpath(&self, what: &str, xpath: &str) {
        self.wait_for(what, || async {
            let el = self.visible(xpath).await?;
            within(WAIT, "a click", el.click()).await.ok()
        })
        .await
    }

    /// Move the mouse over the middle of the element (a hover).
    pub async fn hover(&self, el: &Element) {
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
            element: el.clone(),
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        within(WAIT, "a hover", self.client.perform_actions(mouse))
            .await
            .unwrap_or_else(|e| panic!("{}: hover failed: {e}", self.name));
    }

    /// Tap the middle of the element with a finger (touch pointer events, then the click).
    pub async fn tap(&self, el: &Element) {
        let finger = TouchActions::new("finger".into())
            .then(PointerAction::MoveToElement {
                element: el.clone(),
                duration: None,
                x: 0.0,
                y: 0.0,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        within(WAIT, "a tap", self.client.perform_actions(finger))
            .await
            .unwrap_or_else(|e| panic!("{}: tap failed: {e}", self.name));
        let _ = within(WAIT, "releasing the finger", self.client.release_actions()).await;
    }

    /// Click the element.
    pub async fn click(&self, el: &Element) {
        within(WAIT, "a click", el.click())
            .await
            .unwrap_or_else(|e| panic!("{}: click failed: {e}", self.name));
    }

    /// Open `base`, fill in the sign-in form and press `action` ("Create account" or "Sign
    /// in"), without waiting for the outcome.
    pub async fn submit_sign_in(&self, base: &str, action: &str, username: &str, password: &str) {
        if !self
            .eval("return location.href;", vec![])
            .await
            .as_str()
            .is_some_and(|u| u.starts_with(base))
        {
            self.goto(base).await;
        }
        let user = self
            .wait_visible("the Username field", &username_field())
            .await;
        within(WAIT, "clearing a field", user.clear())
            .await
            .expect("clear Username");
        self.type_into(&user, username).await;
        let pass = self
            .wait_visible("the Password field", &password_field())
            .await;
        within(WAIT, "clearing a field", pass.clear())
            .await
            .expect("clear Password");
        self.type_into(&pass, password).await;
        let btn = self
            .wait_visible(&format!("the {action} button"), &button(action))
            .await;
        self.click(&btn).await;
    }

    /// Sign up through the UI and wait for the chat page to be live.
    pub async fn create_account(&self, base: &str, username: &str) {
        self.submit_sign_in(base, "Create account", username, PASSWORD)
            .await;
        self.wait_chat_ready().await;
    }

    /// Wait for the chat page: message box, log, "Sign out" (or the account menu that holds
    /// it), and a live connection.
    pub async fn wait_chat_ready(&self) {
        self.wait_visible("the Message box", &message_box()).await;
        self.wait_visible(
            "the Sign out control or the Account menu",
            &format!("{} | {}", sign_out_button(), account_menu_button()),
        )
        .await;
        self.wait_visible("the message log", "//*[@role = 'log']")
            .await;
        self.wait_visible(
            "the connection to be live",
            "//*[@role = 'status' and normalize-space(.) = 'Connected']",
        )
        .await;
    }

    /// Move this user's read marker in `room` to its newest message, as reading to the bottom
    /// would (the page marks read a moment after messages were on screen; a test that reloads
    /// at once must not leave them unread, or the room opens at the first unread message).
    pub async fn mark_read(&self, room: &str) {
        let status = self
            .eval(
                "return fetch('api/rooms', { credentials: 'same-origin' })
                   .then((r) => r.json())
                   .then((d) => {
                     const room = d.rooms.find((r) => r.name === arguments[0]);
                     return fetch('api/rooms/' + encodeURIComponent(arguments[0]) + '/read', {
                       method: 'POST',
                       credentials: 'same-origin',
                       headers: { 'Content-Type': 'application/json' },
                       body: JSON.stringify({ id: room.last_id }),
                     });
                   })
                   .then((r) => r.status);",
                vec![json!(room)],
            )
            .await;
        assert_eq!(status, json!(200), "{}: marking {room} read", self.name);
    }

    /// Open the account menu and choose "Sign out" (without confirming).
    pub async fn choose_sign_out(&self) {
        self.click_xpath("the Account menu button", &account_menu_button())
            .await;
        self.click_xpath(
            "Sign out in the account menu",
            &format!("//*[@id = 'account-menu']{}", sign_out_button()),
        )
        .await;
    }

    /// Sign out: "Sign out" in the account menu, then "Sign out" in the confirmation.
    pub async fn sign_out(&self) {
        self.choose_sign_out().await;
        self.click_xpath(
            "Sign out in the confirmation",
            &format!("//dialog[@open]{}", sign_out_button()),
        )
        .await;
    }

    /// Type `text` into the Message box and press Enter.
    pub async fn send_with_enter(&self, text: &str) {
        let input = self.wait_visible("the Message box", &message_box()).await;
        self.type_into(&input, text).await;
        self.type_into(&input, &char::from(Key::Enter).to_string())
            .await;
        // Enter sends and empties the box.
        self.wait_js(
            "the Message box to empty after Enter",
            "return arguments[0].value === '';",
            vec![serde_json::to_value(&input).expect("an element reference")],
        )
        .await;
    }

    /// The log's text.
    pub async fn log_text(&self) -> String {
        let v = self
            .eval(
                &format!("const l = {LOG}; return l ? l.textContent : null;"),
                vec![],
            )
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("{}: no role=log element", self.name))
            .to_string()
    }

    /// Wait until every one of `texts` is in the log, in this order, and return the log text.
    pub async fn wait_log_has(&self, what: &str, texts: &[&str]) -> String {
        self.wait_for(what, || async {
            let log = self.log_text().await;
            let mut from = 0;
            for t in texts {
                from += log[from..].find(t)? + t.len();
            }
            Some(log)
        })
        .await
    }

    /// Close the session (the browser quits).
    pub async fn close(self) {
        let _ = within(WAIT, "closing the browser", self.client.close()).await;
    }
}

// ---- accessibility ---------------------------------------------------------------------------

/// axe-core's script: from `AXE_JS`, else where `scripts/install-axe.sh` puts it
/// (`target/axe/`), else a `node_modules/` of the repository. Under `CI` it must be there.
pub fn axe_source() -> Option<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let candidates = [
        std::env::var("AXE_JS").ok(),
        Some(format!(
            "{root}/target/axe/node_modules/axe-core/axe.min.js"
        )),
        Some(format!("{root}/node_modules/axe-core/axe.min.js")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find_map(|p| std::fs::read_to_string(p).ok());
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("CI is set but axe-core was not found: run scripts/install-axe.sh first");
    }
    found
}

/// Run axe-core on the element `selector` (`html`: the whole page) and fail on any violation.
/// Without axe-core (a test tool, not part of the build) the check says so and is skipped,
/// except under `CI`.
pub async fn assert_axe_clean_in(b: &Browser, selector: &str, phase: &str) {
    let Some(source) = axe_source() else {
        say(&format!(
            "axe-core not found (run scripts/install-axe.sh or set AXE_JS): {phase} not checked"
        ));
        return;
    };
    // Buttons fade between colours (0.15 s): measure after a change has settled.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let loaded = b
        .eval("return typeof window.axe !== 'undefined';", vec![])
        .await;
    if loaded != json!(true) {
        // Evaluated by the test runner, not by the page: the CSP does not apply.
        b.eval(&format!("{source}\nreturn true;"), vec![]).await;
    }
    let found = within(
        WAIT * 3,
        "axe-core",
        b.client.execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document.querySelector(arguments[0]), { resultTypes: ['violations'] })
               .then((r) => done(r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', '))))
               .catch((e) => done(['axe failed: ' + e]));",
            vec![json!(selector)],
        ),
    )
    .await
    .expect("axe-core runs");
    assert_eq!(found, json!([]), "{}: {phase}: axe-core violations", b.name);
}

// ---- DevTools ------------------------------------------------------------------------------

/// Chromium's DevTools command `method` with `params`, through chromedriver: its answer.
pub async fn cdp(driver: &Driver, b: &Browser, method: &str, params: Value) -> Value {
    let id = within(WAIT, "the session id", b.client.session_id())
        .await
        .ok()
        .flatten()
        .expect("a WebDriver session id");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("an HTTP client");
    let res = http
        .post(format!("{}/session/{id}/goog/cdp/execute", driver.url()))
        .json(&json!({ "cmd": method, "params": params }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    assert!(res.status().is_success(), "{method}: {}", res.status());
    let v: Value = res.json().await.expect("a JSON answer");
    v["value"].clone()
}

/// Make the page's `prefers-color-scheme` be `scheme` ("light" or "dark").
pub async fn emulate_scheme(driver: &Driver, b: &Browser, scheme: &str) {
    cdp(
        driver,
        b,
        "Emulation.setEmulatedMedia",
        json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
    )
    .await;
    let now = b
        .eval(
            "return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';",
            vec![],
        )
        .await;
    assert_eq!(now, json!(scheme), "the emulated colour scheme");
}
