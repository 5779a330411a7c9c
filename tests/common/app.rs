//! The server under test: a real Hearth on a free port with its own SQLite file in a temporary
//! directory, started from one test configuration, plus the HTTP calls most tests make.

use std::net::SocketAddr;
use std::time::Duration;

use hearth::config::Config;
use hearth::{Server, StartupError};
use reqwest::header::{HeaderName, HeaderValue, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::{
    assert_error_shape, encode_room, id_of, json_body, session_cookie, text, urlencode, within,
    PASSWORD,
};

/// The longest a server start may take before the test fails (a hang guard).
const START_GUARD: Duration = Duration::from_secs(30);

/// How a client proves who it is.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The value of the `hearth_session` cookie.
    Cookie(String),
    /// A bot token sent as `Authorization: Bearer`.
    Bearer(String),
}

impl Auth {
    pub(super) fn header(&self) -> (HeaderName, HeaderValue) {
        match self {
            Auth::Cookie(c) => (
                COOKIE,
                HeaderValue::from_str(&format!("hearth_session={c}")).expect("cookie header"),
            ),
            Auth::Bearer(t) => (
                reqwest::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}")).expect("bearer header"),
            ),
        }
    }
}

/// A running server plus the directory holding its database.
pub struct TestApp {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`: the base URL, and the same-origin `Origin` value.
    pub base: String,
    /// Holds `chat.db`; removed when the test ends.
    pub dir: TempDir,
    /// The server; `None` after [`TestApp::stop`].
    pub server: Option<Server>,
    /// The configuration the server was started with (reused by [`TestApp::restart`]).
    pub config: Config,
    /// A plain HTTP client: no cookie store, no proxy, no redirects.
    pub http: reqwest::Client,
}

/// The configuration every test server starts from: loopback, port 0, the database in `dir`,
/// cheap password hashing (the release default stays 600,000 iterations) and the message and
/// registration limits off (tests that exercise a limit switch it on themselves), and link
/// previews off.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.database.path = dir.join("chat.db");
    config.auth.pbkdf2_iterations = 1000;
    config.limits.messages_per_second = 0.0;
    config.limits.changes_per_second = 0.0;
    config.limits.registrations_per_hour = 0;
    // Link previews fetch what messages link to; tests post links to example.com and must
    // never reach it. The preview tests switch them on, pointed at servers on 127.0.0.1.
    config.previews.enabled = false;
    if std::env::var_os("HEARTH_TEST_LOG").is_some() {
        // The server's log on the test's output, for a failing test run by hand.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("HEARTH_TEST_LOG"))
            .with_test_writer()
            .try_init();
    }
    if let Some(server) = std::env::var_os("HEARTH_TEST_POSTGRES") {
        config.database.url = fresh_postgres_database(&server.to_string_lossy());
    }
    config
}

/// With `HEARTH_TEST_POSTGRES` set to the URL of a PostgreSQL server's `postgres` database
/// (as a superuser), every test server stores its community in a new database there instead
/// of a SQLite file: the same suite then checks the PostgreSQL store. Its URL.
fn fresh_postgres_database(server: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("hearth_test_{}_{n}", std::process::id());
    // The driver blocks on a runtime of its own: not on one of the test's threads.
    let create = format!("CREATE DATABASE {name}");
    let server_url = server.to_string();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&server_url, postgres::NoTls)
            .expect("the PostgreSQL server answers");
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| drop_orphans(&mut client));
        client.batch_execute(&create).expect("a new database")
    })
    .join()
    .expect("the database is created");
    let (base, query) = server.split_once('?').unwrap_or((server, ""));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        "" => format!("{base}/{name}"),
        q => format!("{base}/{name}?{q}"),
    }
}

/// Drop the test databases of earlier runs: those named after a process that is gone (a run
/// leaves its own behind, as its servers may still hold them when it ends; the next run on
/// the same server sweeps them, so they never pile up).
fn drop_orphans(client: &mut postgres::Client) {
    let names: Vec<String> = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'hearth\\_test\\_%'",
            &[],
        )
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    for name in names {
        let pid = name
            .strip_prefix("hearth_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let gone = pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        if gone {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Run an operator command (`hearth::admin::…`) on `config`'s database, off the test's
/// runtime: PostgreSQL's driver blocks on a runtime of its own.
pub async fn operator<T: Send + 'static>(
    config: &Config,
    command: impl FnOnce(&Config) -> T + Send + 'static,
) -> T {
    let config = config.clone();
    tokio::task::spawn_blocking(move || command(&config))
        .await
        .expect("the command ran")
}

/// Whether the test servers store their community in PostgreSQL (`HEARTH_TEST_POSTGRES`).
pub fn on_postgres() -> bool {
    std::env::var_os("HEARTH_TEST_POSTGRES").is_some()
}

/// For a test of what only the SQLite store has (its file, its search index, backups,
/// upgrades of old files): whether it does not apply to this run, which says so.
pub fn sqlite_only(what: &str) -> bool {
    if on_postgres() {
        eprintln!("not applicable on PostgreSQL: {what}");
    }
    on_postgres()
}

/// A plain HTTP client: no cookie store, no proxy, no redirects, a 10 s timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// One adjustment of the test configuration.
type Tweak = Box<dyn FnOnce(&mut Config)>;

/// How a test server is started: `TestApp::builder().config(|c| …).start().await`.
#[must_use]
pub struct Builder {
    dir: Option<TempDir>,
    tweaks: Vec<Tweak>,
}

impl Builder {
    /// Adjust the test configuration (applied in the order given).
    pub fn config(mut self, tweak: impl FnOnce(&mut Config) + 'static) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// Let outbound requests (previews, pushes, webhooks) reach the test's own servers on
    /// 127.0.0.1, which the default configuration refuses.
    pub fn reaching_loopback(self) -> Self {
        self.config(|c| c.outbound.allow_private_networks = true)
    }

    /// Use `dir` (and a `chat.db` prepared in it beforehand) instead of a fresh directory.
    pub fn in_dir(mut self, dir: TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The configuration this builder would start with, and the directory it lives in.
    pub fn into_config(self) -> (Config, TempDir) {
        let dir = match self.dir {
            Some(dir) => dir,
            None => tempfile::tempdir().expect("temporary directory"),
        };
        let mut config = test_config(dir.path());
        for tweak in self.tweaks {
            tweak(&mut config);
        }
        (config, dir)
    }

    /// Start the server; fails the test if it does not start within 10 s.
    pub async fn start(self) -> TestApp {
        match self.try_start().await {
            Ok(app) => app,
            Err(e) => panic!("the server starts: {e}"),
        }
    }

    /// Start the server, returning the start-up error (for tests of bad configurations).
    pub async fn try_start(self) -> Result<TestApp, StartupError> {
        let (config, dir) = self.into_config();
        // A hang guard, not a timing check: on a shared, loaded machine a start (a fresh
        // database, its migrations, the writer thread) can take seconds.
        let server = within(
            START_GUARD,
            "the server to start",
            hearth::run(config.clone()),
        )
        .await?;
        let addr = server.local_addr();
        Ok(TestApp {
            addr,
            base: format!("http://{addr}"),
            dir,
            server: Some(server),
            config,
            http: http_client(),
        })
    }
}

impl TestApp {
    /// How to start a server with anything but the test defaults.
    pub fn builder() -> Builder {
        Builder {
            dir: None,
            tweaks: Vec::new(),
        }
    }

    /// A server with the test defaults.
    pub async fn start() -> TestApp {
        Self::builder().start().await
    }

    /// A server with the test defaults adjusted by `tweak` (a shortcut for the builder).
    pub async fn with_config(tweak: impl FnOnce(&mut Config) + 'static) -> TestApp {
        Self::builder().config(tweak).start().await
    }

    /// The running server (fails the test after [`TestApp::stop`]).
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("the server is running")
    }
    /// Absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Path of the SQLite file.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("chat.db")
    }

    /// Graceful stop (sockets closed with 1001, everything committed).
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            within(
                Duration::from_secs(30),
                "the server to shut down",
                server.shutdown(),
            )
            .await;
        }
    }

    /// Stop (if running) and start again on the same database file. The port changes.
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = within(
            START_GUARD,
            "the server to start again",
            hearth::run(self.config.clone()),
        )
        .await
        .expect("the server starts again");
        self.addr = server.local_addr();
        self.base = format!("http://{}", self.addr);
        self.server = Some(server);
    }

    /// Stop (if running) and start again on the same database file and the same address, for
    /// clients (browsers) that must find the server where it was. The old port can take a
    /// moment to be free again, so binding is retried for up to 10 s.
    pub async fn restart_on_same_address(&mut self) {
        self.stop().await;
        let mut config = self.config.clone();
        config.server.port = self.addr.port();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let server = loop {
            match hearth::run(config.clone()).await {
                Ok(server) => break server,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("restart: {e}; trying again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the server did not start again on {}: {e}", self.addr),
            }
        };
        assert_eq!(
            server.local_addr(),
            self.addr,
            "restarted on the same address"
        );
        self.server = Some(server);
    }

    /// A request builder for `path` with optional authentication.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Auth>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(a) = auth {
            let (k, v) = a.header();
            rb = rb.header(k, v);
        }
        rb
    }

    /// Send a request, failing the test on transport errors.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> reqwest::Response {
        within(Duration::from_secs(15), "an HTTP response", rb.send())
            .await
            .expect("the HTTP request completes")
    }

    /// `GET path` without credentials.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.request(Method::GET, path, None)).await
    }

    /// `GET path` with credentials.
    pub async fn get_as(&self, path: &str, auth: &Auth) -> reqwest::Response {
        self.send(self.request(Method::GET, path, Some(auth))).await
    }

    /// `POST path` with a JSON body, no credentials and no Origin.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(self.request(Method::POST, path, None).json(body))
            .await
    }

    /// `POST /api/register` (no Origin), returning the raw response.
    pub async fn try_register(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/register",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// `POST /api/login` (no Origin), returning the raw response.
    pub async fn try_login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/login",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Register; returns the `user` object and the session cookie value.
    pub async fn register(&self, username: &str, password: &str) -> (Value, String) {
        let res = self.try_register(username, password).await;
        signed_in(res, StatusCode::CREATED, &format!("register {username}")).await
    }

    /// Log in; returns the `user` object and the new session cookie value.
    pub async fn login(&self, username: &str, password: &str) -> (Value, String) {
        let res = self.try_login(username, password).await;
        signed_in(res, StatusCode::OK, &format!("login {username}")).await
    }

    /// Register `username` with [`PASSWORD`] and return its cookie credentials.
    pub async fn signup(&self, username: &str) -> Auth {
        Auth::Cookie(self.register(username, PASSWORD).await.1)
    }

    /// Register `username` with [`PASSWORD`] through the server's setup link, which makes the
    /// account the administrator; returns its cookie credentials.
    pub async fn signup_admin(&self, username: &str) -> Auth {
        let code = self
            .server
            .as_ref()
            .and_then(|s| s.setup_code())
            .expect("a server without an administrator has a setup code")
            .to_string();
        let res = self
            .post_json(
                "/api/register",
                &json!({ "username": username, "password": PASSWORD, "setup": code }),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "register {username} with the setup link"
        );
        Auth::Cookie(session_cookie(&res).expect("a session cookie"))
    }

    /// Create a bot token for the user behind `cookie` (same-origin request).
    pub async fn token(&self, cookie: &str) -> String {
        let res = self
            .send(
                self.request(
                    Method::POST,
                    "/api/tokens",
                    Some(&Auth::Cookie(cookie.to_string())),
                )
                .header("origin", &self.base)
                .json(&json!({ "name": "test bot" })),
            )
            .await;
        let status = res.status();
        let body = json_body(res).await;
        assert_eq!(status, StatusCode::CREATED, "create token: {body}");
        body["token"]
            .as_str()
            .expect("the token is a string")
            .to_string()
    }

    /// `GET /api/rooms/{room}/messages?{query}`, asserting 200; returns the messages.
    pub async fn history(&self, auth: &Auth, room: &str, query: &str) -> Vec<Value> {
        let path = if query.is_empty() {
            format!("/api/rooms/{room}/messages")
        } else {
            format!("/api/rooms/{room}/messages?{query}")
        };
        let res = self.get_as(&path, auth).await;
        let status = res.status();
        let body = json_body(res).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no messages array in {body}"))
            .clone()
    }

    /// Every message id in `general` above `after`, paging forward with `after=`.
    pub async fn ids_after(&self, auth: &Auth, after: i64) -> Vec<i64> {
        self.messages_after(auth, after)
            .await
            .iter()
            .map(id_of)
            .collect()
    }

    /// Every message in `general` above `after` (authors, nonces and bodies included), paging
    /// forward with `after=`.
    pub async fn messages_after(&self, auth: &Auth, after: i64) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        let mut cursor = after;
        loop {
            let page = self
                .history(auth, "general", &format!("after={cursor}&limit=200"))
                .await;
            let Some(last) = page.last() else {
                return out;
            };
            cursor = id_of(last);
            out.extend(page);
        }
    }

    /// A same-origin API call with an optional JSON body; returns the status and the JSON body
    /// (`Null` when the body is empty).
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut rb = self.request(method, path, Some(auth));
        rb = rb.header("origin", &self.base);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let res = self.send(rb).await;
        let status = res.status().as_u16();
        let body = text(res).await;
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {body:?}"))
        };
        (status, v)
    }

    /// `admin` applies `action` (`disable`, `enable`, `promote`, `demote`) to account
    /// `target`, which must succeed.
    pub async fn admin_act(&self, admin: &Auth, target: &str, action: &str) {
        self.api_ok(
            Method::POST,
            &format!("/api/admin/users/{target}"),
            admin,
            Some(&serde_json::json!({ "action": action })),
            200,
        )
        .await;
    }

    /// An API call that must answer `status`; returns the body.
    pub async fn api_ok(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let (got, v) = self.api(method.clone(), path, auth, body).await;
        assert_eq!(got, status, "{method} {path}: {v}");
        v
    }

    /// An API call that must fail with `status` and error `code`.
    pub async fn api_err(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<&Value>,
        status: u16,
        code: &str,
    ) -> Value {
        let (got, v) = self.api(method.clone(), path, auth, body).await;
        assert_eq!(got, status, "{method} {path} (expected {code}): {v}");
        assert_error_shape(&v, code);
        v
    }

    /// `POST /api/rooms`, asserting 201; returns the room object.
    pub async fn create_room(&self, auth: &Auth, name: &str, public: bool) -> Value {
        self.api_ok(
            Method::POST,
            "/api/rooms",
            auth,
            Some(&json!({ "name": name, "public": public })),
            201,
        )
        .await["room"]
            .clone()
    }

    /// `POST /api/rooms/{room}/join`, asserting 200; returns the room object.
    pub async fn join_room(&self, auth: &Auth, room: &str) -> Value {
        self.api_ok(
            Method::POST,
            &format!("/api/rooms/{}/join", encode_room(room)),
            auth,
            None,
            200,
        )
        .await["room"]
            .clone()
    }

    /// `POST /api/rooms/{room}/members`, asserting 200; returns the room object.
    pub async fn invite(&self, auth: &Auth, room: &str, username: &str) -> Value {
        self.api_ok(
            Method::POST,
            &format!("/api/rooms/{}/members", encode_room(room)),
            auth,
            Some(&json!({ "username": username })),
            200,
        )
        .await["room"]
            .clone()
    }

    /// `POST /api/dms`; returns the status and the room object.
    pub async fn open_dm(&self, auth: &Auth, users: &[&str]) -> (u16, Value) {
        let (status, v) = self
            .api(
                Method::POST,
                "/api/dms",
                auth,
                Some(&json!({ "users": users })),
            )
            .await;
        assert!(
            status == 200 || status == 201,
            "POST /api/dms: {status} {v}"
        );
        (status, v["room"].clone())
    }

    /// The caller's rooms (`GET /api/rooms`).
    pub async fn my_rooms(&self, auth: &Auth) -> Vec<Value> {
        let v = self
            .api_ok(Method::GET, "/api/rooms", auth, None, 200)
            .await;
        v["rooms"].as_array().expect("a rooms array").clone()
    }

    /// The caller's room called `name` from `GET /api/rooms`, if they belong to it.
    pub async fn my_room(&self, auth: &Auth, name: &str) -> Option<Value> {
        self.my_rooms(auth)
            .await
            .into_iter()
            .find(|r| r["name"] == name)
    }

    /// `GET /api/search?{query}` (the query already encoded); returns status and body.
    pub async fn search(&self, auth: &Auth, query: &str) -> (u16, Value) {
        self.api(Method::GET, &format!("/api/search?{query}"), auth, None)
            .await
    }

    /// Search for `q` (encoded here) plus `extra` parameters, asserting 200; returns the body.
    pub async fn search_ok(&self, auth: &Auth, q: &str, extra: &str) -> Value {
        let mut query = format!("q={}", urlencode(q));
        if !extra.is_empty() {
            query.push('&');
            query.push_str(extra);
        }
        let (status, v) = self.search(auth, &query).await;
        assert_eq!(status, 200, "search {query}: {v}");
        assert!(v["results"].is_array(), "search {query}: {v}");
        v
    }
}

/// The `user` object and session cookie of a sign-in that must answer `expected`.
async fn signed_in(res: reqwest::Response, expected: StatusCode, what: &str) -> (Value, String) {
    let status = res.status();
    let cookie = session_cookie(&res);
    let body = text(res).await;
    assert_eq!(status, expected, "{what}: {body}");
    let cookie = cookie.unwrap_or_else(|| panic!("{what}: no session cookie"));
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON"));
    (v["user"].clone(), cookie)
}

/// The nonces of every message in the SQLite file at `path`, read with the server stopped.
pub fn stored_nonces(path: &std::path::Path) -> Vec<String> {
    use hearth::db::{DbError, Exported, FileStore};
    let mut stored = Vec::new();
    FileStore::open_read_only(path)
        .expect("the database opens")
        .export(|part| {
            if let Exported::Message(m) = part {
                stored.extend(m.nonce);
            }
            Ok::<_, DbError>(())
        })
        .expect("the database reads");
    stored
}
