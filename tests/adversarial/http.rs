//! HTTP through reqwest: well-formed requests carrying malformed JSON, queries, room names,
//! credentials, origins and methods, plus mutated bodies.

use futures_util::StreamExt;
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder};
use serde_json::json;

use crate::common::{Rng, PASSWORD};
use crate::judge::{judge, Expect, Reply};
use crate::mutate::mutate;
use crate::{Phase, MUTANTS};

use Expect::*;

/// A WebSocket key that is valid in form.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub async fn phase(p: Phase<'_>, seed: u64) {
    json_bodies(p).await;
    contract_examples(p).await;
    history_queries(p).await;
    room_names(p).await;
    false_credentials(p).await;
    foreign_origins(p).await;
    websocket_as_http(p).await;
    mutated_bodies(p, seed).await;
    methods(p).await;
}

/// Send and read the whole answer; `Err` describes a transport failure (a hang included).
async fn send(rb: RequestBuilder) -> Result<Reply, String> {
    let res = rb.send().await.map_err(|e| format!("{e}"))?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = res.bytes().await.map_err(|e| format!("{e}"))?.to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Count, send and judge one request.
async fn check(p: Phase<'_>, label: &str, rb: RequestBuilder, expect: Expect) {
    p.tally.http(1);
    judge(p.tally, label, send(rb).await, expect);
}

/// A request from the phase's account; `same_origin` adds the server's own Origin, which
/// state-changing requests need.
fn as_user(p: Phase<'_>, method: Method, path: &str, same_origin: bool) -> RequestBuilder {
    let rb = p.app.request(method, path, Some(&p.auth()));
    if same_origin {
        rb.header("origin", &p.app.base)
    } else {
        rb
    }
}

/// `POST path` with a JSON content type and `body`, as the phase's account when `authed`.
fn post_json(p: Phase<'_>, path: &str, authed: bool, body: Vec<u8>) -> RequestBuilder {
    let rb = if authed {
        as_user(p, Method::POST, path, true)
    } else {
        p.app.request(Method::POST, path, None)
    };
    rb.header("content-type", "application/json").body(body)
}

// ---------------------------------------------------------------------------------------------
// JSON bodies

/// Every route that reads a JSON body, whether it needs an account, and the codes any of
/// [`malformed_bodies`] and [`odd_values`] may get there (`"ok"`: a success is fine).
const BODY_ROUTES: [(&str, bool, &[&str]); 3] = [
    (
        "/api/register",
        false,
        &[
            "ok",
            "bad_request",
            "invalid_username",
            "weak_password",
            "password_too_long",
            "username_taken",
            "busy",
            "length_required",
        ],
    ),
    (
        "/api/login",
        false,
        &[
            // serde accepts a JSON array for a struct: `["name","password"]` signs in.
            "ok",
            "bad_request",
            "invalid_credentials",
            "too_many_attempts",
            "password_too_long",
            "busy",
            "length_required",
        ],
    ),
    (
        "/api/tokens",
        true,
        &["ok", "bad_request", "length_required"],
    ),
];

/// Bodies that are not JSON, or not the JSON a route expects.
fn malformed_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", b"".to_vec()),
        ("space", b"  ".to_vec()),
        ("truncated", br#"{"username":"a","pass"#.to_vec()),
        ("open brace", b"{".to_vec()),
        ("null", b"null".to_vec()),
        ("array", br#"["username","password"]"#.to_vec()),
        ("string", br#""username""#.to_vec()),
        ("number", b"12".to_vec()),
        ("wrong types", br#"{"username":1,"password":true}"#.to_vec()),
        (
            "nested types",
            br#"{"username":{"a":1},"password":["x"]}"#.to_vec(),
        ),
        (
            "null fields",
            br#"{"username":null,"password":null}"#.to_vec(),
        ),
        ("missing password", br#"{"username":"abc"}"#.to_vec()),
        ("missing both", b"{}".to_vec()),
        (
            "trailing garbage",
            br#"{"username":"tg","password":"correct horse"} x"#.to_vec(),
        ),
        ("two objects", br#"{"name":"a"}{"name":"b"}"#.to_vec()),
        ("comment", b"/* hi */ {\"name\":\"x\"}".to_vec()),
        ("single quotes", b"{'name':'x'}".to_vec()),
        ("deep array 16k", "[".repeat(16_000).into_bytes()),
        ("deep object", "{\"a\":".repeat(3000).into_bytes()),
    ]
}

/// JSON of the right shape with values at or past the edges.
fn odd_values() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "huge number",
            br#"{"username":1e999999,"password":"x"}"#.to_vec(),
        ),
        (
            "big integer",
            br#"{"name":123456789012345678901234567890}"#.to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"username":"\ud800","password":"correct horse"}"#.to_vec(),
        ),
        (
            "NUL escape",
            br#"{"username":"a\u0000b","password":"correct horse"}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"username\":\"\xff\xfe\",\"password\":\"\xc3\x28abcdefgh\"}".to_vec(),
        ),
        (
            "BOM",
            b"\xef\xbb\xbf{\"username\":\"bom\",\"password\":\"correct horse\"}".to_vec(),
        ),
        (
            "duplicate key",
            br#"{"username":"a","username":"b","password":"correct horse"}"#.to_vec(),
        ),
        (
            "long password",
            format!(
                r#"{{"username":"pwlong","password":"{}"}}"#,
                "p".repeat(1025)
            )
            .into_bytes(),
        ),
        (
            "empty strings",
            br#"{"username":"","password":"","name":""}"#.to_vec(),
        ),
        (
            "unicode name",
            "{\"username\":\"émile\",\"password\":\"correct horse\",\"name\":\"ü\"}"
                .as_bytes()
                .to_vec(),
        ),
        (
            "65-char name",
            format!(r#"{{"name":"{}"}}"#, "n".repeat(65)).into_bytes(),
        ),
        ("whitespace name", br#"{"name":"   "}"#.to_vec()),
    ]
}

/// Hand-written JSON bodies, on every route that reads one.
async fn json_bodies(p: Phase<'_>) {
    let mut bodies = malformed_bodies();
    bodies.extend(odd_values());
    for (path, authed, codes) in BODY_ROUTES {
        for (label, body) in &bodies {
            let rb = post_json(p, path, authed, body.clone());
            check(p, &format!("POST {path} {label}"), rb, OneOf(codes)).await;
        }
    }
}

/// The contract's own examples, with their exact answers.
async fn contract_examples(p: Phase<'_>) {
    for (label, body, expect) in [
        ("deep 16k", "[".repeat(16_000), Error(400, "bad_request")),
        (
            "wrong type",
            r#"{"username":1,"password":"x"}"#.to_string(),
            Error(400, "bad_request"),
        ),
        (
            "truncated",
            r#"{"username":"#.to_string(),
            Error(400, "bad_request"),
        ),
        (
            "too long",
            format!(r#"{{"username":"a","password":"{}"}}"#, "p".repeat(1025)),
            Error(400, "password_too_long"),
        ),
        (
            "bad name",
            r#"{"username":"a b","password":"correct horse"}"#.to_string(),
            Error(400, "invalid_username"),
        ),
        (
            "weak",
            r#"{"username":"weakling","password":"short"}"#.to_string(),
            Error(400, "weak_password"),
        ),
    ] {
        let rb = post_json(p, "/api/register", false, body.into_bytes());
        check(p, &format!("register {label}"), rb, expect).await;
    }
    let rb = post_json(p, "/api/register", false, vec![b'x'; 16 * 1024 + 1]);
    let expect = Error(413, "payload_too_large");
    check(p, "register 16 KiB + 1", rb, expect).await;
}

// ---------------------------------------------------------------------------------------------
// Query strings and paths

/// Query strings on history: answered or refused as a bad request.
async fn history_queries(p: Phase<'_>) {
    let queries = [
        "limit=abc",
        "limit=0",
        "limit=-1",
        "limit=",
        "limit=1.5",
        "limit=99999999999999999999",
        "limit=%ff",
        "limit=1e3",
        "before=-1",
        "before=abc",
        "after=x",
        "after=1e3",
        "before=1&after=2",
        "after=99999999999999999999",
        "since=1",
        "limit=5&limit=6",
        "before=%00",
        "after=%2B1",
        "limit=+5",
        "after= 1",
        "%ff=%fe",
        "&&&",
        "a[b]=c",
        "before=9223372036854775807",
        "after=9223372036854775807",
        "limit=201",
        "limit=1",
    ];
    let cases = queries.map(|q| {
        let path = format!("/api/rooms/general/messages?{q}");
        (format!("history ?{q}"), path)
    });
    get_each(p, cases, OneOf(&["ok", "bad_request"])).await;
}

/// Room names that name no room.
async fn room_names(p: Phase<'_>) {
    let long_room = "r".repeat(8000);
    let rooms = [
        "nope",
        "NOPE",
        "general%20",
        "%2e%2e",
        "..",
        "%ff%fe",
        "%F0%9F%92%AC",
        "%27%3B%20DROP%20TABLE%20messages%3B--",
        long_room.as_str(),
        "general%2fmessages",
    ];
    let cases = rooms.map(|room| {
        let path = format!("/api/rooms/{room}/messages");
        (format!("room {room:.40}"), path)
    });
    get_each(p, cases, OneOf(&["unknown_room", "not_found"])).await;
    // No name holds NUL (PostgreSQL stores and compares no text with it).
    let nul = [(
        "room general%00".to_string(),
        "/api/rooms/general%00/messages".to_string(),
    )];
    get_each(p, nul, OneOf(&["bad_request"])).await;
}

/// `GET` each (label, path) as the phase's account, expecting `expect` of every one.
async fn get_each(p: Phase<'_>, cases: impl IntoIterator<Item = (String, String)>, expect: Expect) {
    for (label, path) in cases {
        let rb = as_user(p, Method::GET, &path, false);
        check(p, &label, rb, expect).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials and origins

/// Credentials that are not: every one is `unauthorized`.
async fn false_credentials(p: Phase<'_>) {
    let long_token = "A".repeat(10_000);
    for (label, header, value) in [
        ("empty cookie", "cookie", "hearth_session=".to_string()),
        (
            "garbage cookie",
            "cookie",
            "hearth_session=!!!; x".to_string(),
        ),
        (
            "quoted cookie",
            "cookie",
            "hearth_session=\"abc\"".to_string(),
        ),
        (
            "two cookies",
            "cookie",
            "hearth_session=a; hearth_session=b".to_string(),
        ),
        (
            "long cookie",
            "cookie",
            format!("hearth_session={long_token}"),
        ),
        ("empty bearer", "authorization", "Bearer ".to_string()),
        ("bare bearer", "authorization", "Bearer".to_string()),
        (
            "basic",
            "authorization",
            "Basic YWxpY2U6cGFzc3dvcmQ=".to_string(),
        ),
        (
            "long bearer",
            "authorization",
            format!("Bearer {long_token}"),
        ),
        (
            "bearer spaces",
            "authorization",
            "Bearer    a b c".to_string(),
        ),
    ] {
        for path in ["/api/me", "/api/rooms", "/api/rooms/general/messages"] {
            let rb = p
                .app
                .request(Method::GET, path, None)
                .header(header, &value);
            check(
                p,
                &format!("{label} on {path}"),
                rb,
                Error(401, "unauthorized"),
            )
            .await;
        }
    }
}

/// Origins that do not match, on a signed-in and on an anonymous state-changing request.
async fn foreign_origins(p: Phase<'_>) {
    for origin in [
        "null",
        "http://evil.example",
        "http://x",
        "garbage",
        "http://127.0.0.1",
        "file://",
        "http://127.0.0.1:1",
    ] {
        let rb = as_user(p, Method::POST, "/api/tokens", false)
            .header("origin", origin)
            .json(&json!({"name": "x"}));
        check(
            p,
            &format!("tokens from {origin}"),
            rb,
            Error(403, "bad_origin"),
        )
        .await;
        let rb = p
            .app
            .request(Method::POST, "/api/register", None)
            .header("origin", origin)
            .json(&json!({"username": "fromorigin", "password": PASSWORD}));
        check(
            p,
            &format!("register from {origin}"),
            rb,
            Error(403, "bad_origin"),
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// The WebSocket endpoint

/// Groups of request headers, sent one group after another.
type HeaderSets<'a> = &'a [&'a [(&'a str, &'a str)]];

/// The WebSocket endpoint spoken to as plain HTTP: each missing or wrong part of the upgrade
/// has its own answer.
async fn websocket_as_http(p: Phase<'_>) {
    let upgrade = [
        ("upgrade", "websocket"),
        ("connection", "upgrade"),
        ("sec-websocket-version", "13"),
    ];
    let with_key = [
        ("upgrade", "websocket"),
        ("connection", "upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", KEY),
    ];
    let version_12 = [
        ("upgrade", "websocket"),
        ("connection", "upgrade"),
        ("sec-websocket-version", "12"),
        ("sec-websocket-key", KEY),
    ];
    let evil = [("origin", "http://evil.example")];
    let cases: [(&str, bool, HeaderSets, Expect); 5] = [
        ("no upgrade", true, &[], Error(400, "bad_request")),
        ("no key", true, &[&upgrade], Error(400, "bad_request")),
        (
            "version 12",
            true,
            &[&version_12],
            Error(426, "bad_request"),
        ),
        ("no auth", false, &[&with_key], Error(401, "unauthorized")),
        (
            "bad origin",
            true,
            &[&evil, &with_key],
            Error(403, "bad_origin"),
        ),
    ];
    for (label, authed, header_sets, expect) in cases {
        let mut rb = if authed {
            as_user(p, Method::GET, "/ws", false)
        } else {
            p.app.request(Method::GET, "/ws", None)
        };
        for (k, v) in header_sets.iter().copied().flatten() {
            rb = rb.header(*k, *v);
        }
        check(p, &format!("/ws {label}"), rb, expect).await;
    }
    for since in ["abc", "-1", "1e3", "99999999999999999999", "", "%ff", "1.0"] {
        let mut rb = as_user(p, Method::GET, &format!("/ws?since={since}"), false);
        for (k, v) in with_key {
            rb = rb.header(k, v);
        }
        check(
            p,
            &format!("/ws?since={since}"),
            rb,
            Error(400, "bad_request"),
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Generated bodies and methods

/// Every code a mutated body may get (`"ok"`: a success is fine).
const MUTANT_CODES: &[&str] = &[
    "ok",
    "bad_request",
    "invalid_username",
    "weak_password",
    "password_too_long",
    "username_taken",
    "invalid_credentials",
    "too_many_attempts",
    "busy",
    "unsupported_media_type",
    "length_required",
    // Valid token requests past `limits.tokens_per_user`.
    "too_many_tokens",
];

/// Mutated bodies under assorted content types, a few in flight at once.
async fn mutated_bodies(p: Phase<'_>, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x5eed_0002);
    let creds = br#"{"username":"mutant","password":"correct horse battery staple"}"#;
    let bases: [(&str, bool, &[u8]); 3] = [
        ("/api/register", false, creds),
        ("/api/login", false, creds),
        ("/api/tokens", true, br#"{"name":"mutant bot"}"#),
    ];
    let content_types = [
        "application/json",
        "application/json",
        "application/json",
        "text/plain",
        "application/json; charset=\u{7f}",
    ];
    let jobs: Vec<_> = (0..MUTANTS * 2)
        .map(|i| {
            let (path, authed, base) = *rng.pick(&bases);
            let body = mutate(&mut rng, base);
            (i, path, authed, body, *rng.pick(&content_types))
        })
        .collect();
    futures_util::stream::iter(jobs)
        .for_each_concurrent(4, |(i, path, authed, body, ct)| async move {
            let label = format!(
                "mutant #{i} POST {path} {:?}",
                String::from_utf8_lossy(&body)
            );
            let mut rb = if authed {
                as_user(p, Method::POST, path, true)
            } else {
                p.app.request(Method::POST, path, None)
            };
            rb = rb.body(body);
            if let Ok(v) = HeaderValue::from_str(ct) {
                rb = rb.header("content-type", v);
            }
            check(p, &label, rb, OneOf(MUTANT_CODES)).await;
        })
        .await;
}

/// Methods through the client, including ones the server has never heard of.
async fn methods(p: Phase<'_>) {
    for method in [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECTX", "X-CUSTOM",
    ] {
        let method = Method::from_bytes(method.as_bytes()).expect("a valid method token");
        for path in [
            "/api/register",
            "/api/login",
            "/api/logout",
            "/api/me",
            "/api/tokens",
            "/api/rooms",
            "/api/rooms/general/messages",
            "/nope",
            "/api/nope",
            "/api/",
        ] {
            let rb = p
                .app
                .request(method.clone(), path, None)
                .header("origin", &p.app.base)
                .header("cookie", "hearth_session=invalid");
            // A HEAD answer has no body to carry the error shape.
            let expect = if method == Method::HEAD {
                Bodiless
            } else {
                Documented
            };
            check(p, &format!("{method} {path}"), rb, expect).await;
        }
    }
}
