//! Real reverse proxies in front of Hearth, configured from the snippets the documentation
//! ships: `docs/nginx.conf` and `docs/Caddyfile`. Each proxy terminates TLS (a self-signed
//! certificate) on ports of its own and forwards to two Hearth servers: one on a host of its
//! own with no `public_url` (so the `https` URLs come from `X-Forwarded-Proto`) and one under
//! the `/chat/` prefix. A visitor registers, signs in, chats over the WebSocket and reads the
//! history through the proxy; Hearth must see the visitor's own address (`X-Forwarded-For`) and
//! scheme.
//!
//! The proxies run in the foreground as the current user with every file in a temporary
//! directory, so a system nginx or Caddy is never touched. A missing proxy skips its test,
//! except when `CI` is set: then `scripts/install-proxies.sh` was supposed to install it and
//! the test fails.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use hearth::config::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::common::{next_json, send_in, tls_connector, TestApp};

const NGINX_SNIPPET: &str = include_str!("../../docs/nginx.conf");
const CADDY_SNIPPET: &str = include_str!("../../docs/Caddyfile");
/// The upstream address the snippets use.
const DOC_UPSTREAM: &str = "127.0.0.1:12345";

/// Two visitors, told apart by their source address on the loopback network.
const ALICE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const BOB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// The program's path, or `None` (test skipped) when it is not installed and `CI` is unset.
fn find_program(name: &str, required_in_ci: bool) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var_os("CI").is_some() && required_in_ci {
            panic!("{name} is not installed: CI runs scripts/install-proxies.sh to install it");
        }
        eprintln!("skipped: {name} is not installed (bash scripts/install-proxies.sh)");
    }
    found
}

/// Whether apt knows a package (so CI can be expected to have installed it).
fn apt_has(package: &str) -> bool {
    Command::new("apt-cache")
        .args(["show", package])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free TCP port on 127.0.0.1 (free a moment ago: the proxy binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy process, killed when dropped.
struct Proxy {
    child: Child,
    log: PathBuf,
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until every port accepts connections; fail with the proxy's log if it exits.
    async fn wait_ready(&mut self, ports: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(15);
        for &port in ports {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("the proxy exited ({status}):\n{}", self.log());
                }
                if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the proxy did not listen on {port}:\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for `localhost`, written to `dir`; returns (cert PEM, paths).
fn certificate(dir: &Path) -> (String, PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (certified.cert.pem(), cert, key)
}

/// Hearth as deployed behind the proxy: the proxy on this machine is trusted with
/// `X-Forwarded-*`, and one WebSocket per visitor address shows which address Hearth believes.
fn behind_the_proxy(c: &mut Config) {
    c.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    c.limits.connections_per_address = 1;
}

/// Two Hearth servers behind the proxy: `[root, prefixed]`, `root` at
/// `https://localhost:ROOT/` with no `public_url`, `prefixed` at
/// `https://localhost:PREFIXED/chat/`.
async fn upstreams(prefixed_port: u16) -> [TestApp; 2] {
    let root = TestApp::builder().config(behind_the_proxy).start().await;
    let prefixed = TestApp::builder()
        .config(behind_the_proxy)
        .config(move |c| c.server.public_url = format!("https://localhost:{prefixed_port}/chat/"))
        .start()
        .await;
    [root, prefixed]
}

/// One kind of documented line the test replaces: `matches` picks it (trimmed), `replace`
/// gets it with the number of earlier lines this rule replaced (0 for the host's block, 1 for
/// the `/chat/` prefix's).
struct Rule<'a> {
    matches: Box<dyn Fn(&str) -> bool + 'a>,
    replace: Replace<'a>,
}

/// A replacement line from a documented line and the number of earlier lines replaced.
type Replace<'a> = Box<dyn Fn(&str, usize) -> String + 'a>;

fn rule<'a>(
    matches: impl Fn(&str) -> bool + 'a,
    replace: impl Fn(&str, usize) -> String + 'a,
) -> Rule<'a> {
    Rule {
        matches: Box::new(matches),
        replace: Box::new(replace),
    }
}

/// Lines starting with `prefix`.
fn starts(prefix: &'static str) -> impl Fn(&str) -> bool {
    move |line| line.starts_with(prefix)
}

/// Replace whole lines of `text` by the first rule that matches each (a line no rule matches
/// is kept). Returns the text and how many lines each rule replaced, so that a test can tell
/// that the snippet still has the shape it expects.
fn rewrite(text: &str, rules: &[Rule]) -> (String, Vec<usize>) {
    let mut counts = vec![0; rules.len()];
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim();
            match rules.iter().position(|r| (r.matches)(trimmed)) {
                Some(i) => {
                    counts[i] += 1;
                    (rules[i].replace)(trimmed, counts[i] - 1)
                }
                None => line.to_string(),
            }
        })
        .collect();
    (lines.join("\n"), counts)
}

/// A documented `proxy_pass` or `reverse_proxy` line, indented by `indent`, forwarding to
/// `upstream` instead of the documentation's example address.
fn point_at(upstream: SocketAddr, indent: &str, line: &str) -> String {
    format!(
        "{indent}{}",
        line.replace(DOC_UPSTREAM, &upstream.to_string())
    )
}

/// What a proxy configuration is written from: a temporary directory for the proxy's own
/// files, its two HTTPS ports (the host's, then the `/chat/` prefix's), the Hearth server
/// behind each, and the self-signed certificate and its key.
struct Setup<'a> {
    tmp: &'a Path,
    ports: [u16; 2],
    upstreams: [SocketAddr; 2],
    cert: &'a Path,
    key: &'a Path,
}

/// `docs/nginx.conf` with the test's ports, certificate and upstreams; every other directive
/// is kept as documented.
fn nginx_conf(setup: &Setup) -> String {
    let (servers, n) = rewrite(
        NGINX_SNIPPET,
        &[
            rule(starts("listen [::]"), |_, _| String::new()),
            rule(starts("listen "), |_, i| {
                format!("    listen 127.0.0.1:{} ssl;", setup.ports[i])
            }),
            rule(starts("server_name "), |_, _| {
                "    server_name localhost;".into()
            }),
            rule(starts("ssl_certificate "), |_, _| {
                format!("    ssl_certificate {};", setup.cert.display())
            }),
            rule(starts("ssl_certificate_key "), |_, _| {
                format!("    ssl_certificate_key {};", setup.key.display())
            }),
            rule(starts("proxy_pass "), |line, i| {
                point_at(setup.upstreams[i], "        ", line)
            }),
        ],
    );
    // listen, proxy_pass, ssl_certificate, ssl_certificate_key.
    assert_eq!(
        (n[1], n[5], n[3], n[4]),
        (2, 2, 2, 2),
        "docs/nginx.conf: expected two server blocks (host, then /chat/ prefix) with one \
         `listen 443 ssl`, ssl_certificate, ssl_certificate_key and proxy_pass each"
    );
    assert!(servers.contains("X-Forwarded-Proto $scheme"));
    let t = setup.tmp.display();
    format!(
        "master_process off;\n\
         worker_processes 1;\n\
         pid {t}/nginx.pid;\n\
         error_log {t}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         access_log {t}/access.log;\n\
         client_body_temp_path {t}/client_body;\n\
         proxy_temp_path {t}/proxy;\n\
         fastcgi_temp_path {t}/fastcgi;\n\
         uwsgi_temp_path {t}/uwsgi;\n\
         scgi_temp_path {t}/scgi;\n\
         {servers}\n\
         }}\n"
    )
}

/// `docs/Caddyfile` with the test's ports, certificate and upstreams, and global options that
/// keep Caddy to its temporary directory (no admin endpoint, no port 80, no trust store).
fn caddyfile(setup: &Setup) -> String {
    let site =
        |line: &str| line.ends_with('{') && !line.starts_with('{') && line.contains("example.org");
    let (body, n) = rewrite(
        CADDY_SNIPPET,
        &[
            rule(site, |_, i| {
                format!(
                    "https://localhost:{} {{\n\ttls {} {}",
                    setup.ports[i],
                    setup.cert.display(),
                    setup.key.display()
                )
            }),
            rule(starts("reverse_proxy "), |line, i| {
                point_at(setup.upstreams[i], "\t", line)
            }),
        ],
    );
    // Sites, reverse_proxy.
    assert_eq!(
        (n[0], n[1]),
        (2, 2),
        "docs/Caddyfile: expected two sites (host, then /chat/ prefix) with one reverse_proxy each"
    );
    let t = setup.tmp.display();
    format!(
        "{{\n\
         \tadmin off\n\
         \tauto_https off\n\
         \tskip_install_trust\n\
         \tstorage file_system {t}/storage\n\
         \tlog {{\n\t\toutput file {t}/caddy.log\n\t}}\n\
         }}\n\
         {body}\n"
    )
}

/// An HTTPS client for the proxy that can choose its source address.
struct Visitor {
    tls: TlsConnector,
}

/// An HTTP response, read to the end.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// `hearth_session=...` from the Set-Cookie header.
    fn cookie(&self) -> String {
        let line = self.header("set-cookie").expect("a session cookie");
        line.split(';').next().unwrap().to_string()
    }
}

/// Undo `Transfer-Encoding: chunked`.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&raw[..eol]).unwrap_or("0");
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || raw.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
}

impl Visitor {
    fn new(cert_pem: &str) -> Self {
        Self {
            tls: tls_connector(cert_pem),
        }
    }

    /// A TLS connection to the proxy on `port`, from the loopback address `from`.
    async fn connect(&self, from: IpAddr, port: u16) -> TlsStream<TcpStream> {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let tcp = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            self.tls.connect("localhost".try_into().unwrap(), tcp),
        )
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake with the proxy")
    }

    /// One request on its own connection (`Connection: close`), with the browser's Origin.
    async fn request(
        &self,
        from: IpAddr,
        port: u16,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut s = self.connect(from, port).await;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: https://localhost:{port}\r\n\
             Connection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        if let Some(c) = cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break, // a peer may close without close_notify
                Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
                Err(_) => panic!("no complete answer to {method} {path} in time"),
            }
        }
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}"));
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let rest = &raw[split + 4..];
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut reply = Reply {
            status,
            head,
            body: String::new(),
        };
        let chunked = reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        reply.body = String::from_utf8_lossy(&body).to_string();
        reply
    }

    /// Open the WebSocket at `path` through the proxy: `Ok` after `ready`, or the HTTP status.
    async fn websocket(
        &self,
        from: IpAddr,
        port: u16,
        path: &str,
        cookie: &str,
        spoofed_for: Option<&str>,
    ) -> Result<WebSocketStream<TlsStream<TcpStream>>, u16> {
        let stream = self.connect(from, port).await;
        let mut req = format!("wss://localhost:{port}{path}")
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        h.insert("cookie", cookie.parse().unwrap());
        h.insert(
            "origin",
            format!("https://localhost:{port}").parse().unwrap(),
        );
        if let Some(xff) = spoofed_for {
            h.insert("x-forwarded-for", xff.parse().unwrap());
        }
        match tokio_tungstenite::client_async(req, stream).await {
            Ok((mut ws, _)) => {
                let ready = next_json(&mut ws).await;
                assert_eq!(ready["type"], "ready", "{ready}");
                Ok(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("WebSocket at {path}: {e}"),
        }
    }
}

/// register → login → WebSocket chat → history, through the proxy on `port`, with every path
/// under `prefix` ("" or "/chat").
async fn chat_through(v: &Visitor, proxy: &str, port: u16, prefix: &str) {
    let cookie = sign_in(v, proxy, port, prefix).await;

    // The WebSocket through the proxy: send, and get the message back as its acknowledgement.
    let ws_path = format!("{prefix}/ws");
    let mut ws = v
        .websocket(ALICE, port, &ws_path, &cookie, None)
        .await
        .unwrap_or_else(|s| panic!("{proxy}: WebSocket refused with {s}"));
    let text = format!("hello through {proxy}");
    ws.send(Message::Text(
        send_in("general", &text, "n1").to_string().into(),
    ))
    .await
    .unwrap();
    let echo = next_json(&mut ws).await;
    assert_eq!(echo["type"], "message", "{proxy}: {echo}");
    assert_eq!(echo["body"], text.as_str());

    // Hearth sees each visitor's own address, not the proxy's: with one WebSocket allowed per
    // address, Bob still gets one while Alice's is open, and Alice's second is refused even
    // when she claims another address in her own X-Forwarded-For.
    let bob = v.websocket(BOB, port, &ws_path, &cookie, None).await;
    assert!(bob.is_ok(), "{proxy}: another visitor is another address");
    assert_eq!(
        v.websocket(ALICE, port, &ws_path, &cookie, Some("198.51.100.7"))
            .await
            .err(),
        Some(429),
        "{proxy}: Hearth counts Alice's real address, whatever she claims"
    );

    let history = v
        .request(
            ALICE,
            port,
            "GET",
            &format!("{prefix}/api/rooms/general/messages"),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(history.status, 200, "{proxy}: {history:?}");
    let messages = history.json()["messages"].clone();
    assert_eq!(messages[0]["body"], text.as_str(), "{proxy}: {messages}");
    assert_eq!(messages[0]["id"], echo["id"]);
    drop(ws);
}

/// Register and sign in as Alice through the proxy; the session cookie must be scoped to
/// `prefix` and `Secure` (Hearth learnt that the visitor came over HTTPS). Returns the cookie.
async fn sign_in(v: &Visitor, proxy: &str, port: u16, prefix: &str) -> String {
    let user = format!("alice{}", prefix.replace('/', "_"));
    let creds = json!({"username": user, "password": "password123"});
    let res = v
        .request(
            ALICE,
            port,
            "POST",
            &format!("{prefix}/api/register"),
            None,
            Some(creds.clone()),
        )
        .await;
    assert_eq!(res.status, 201, "{proxy}: register: {res:?}");
    let line = res.header("set-cookie").unwrap_or_default().to_string();
    assert!(
        line.contains(&format!("Path={prefix}/;")),
        "{proxy}: {line}"
    );
    assert!(
        line.contains("; Secure"),
        "{proxy}: HTTPS reached Hearth: {line}"
    );

    let res = v
        .request(
            ALICE,
            port,
            "POST",
            &format!("{prefix}/api/login"),
            None,
            Some(creds),
        )
        .await;
    assert_eq!(res.status, 200, "{proxy}: login: {res:?}");
    let cookie = res.cookie();
    let me = v
        .request(
            ALICE,
            port,
            "GET",
            &format!("{prefix}/api/me"),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(me.json()["user"]["username"], user.as_str(), "{proxy}");
    cookie
}

/// Everything a browser does against both deployments behind `proxy`.
async fn exercise(proxy: &str, v: &Visitor, root_port: u16, prefixed_port: u16) {
    // A host of its own, no public_url: X-Forwarded-Proto and Host make the URLs.
    let js = v
        .request(ALICE, root_port, "GET", "/config.js", None, None)
        .await;
    assert_eq!(js.status, 200, "{proxy}: {js:?}");
    assert_eq!(
        js.body.trim_end(),
        format!(
            r#"window.HEARTH = {{"url":"https://localhost:{root_port}","ws":"wss://localhost:{root_port}/ws"}};"#
        ),
        "{proxy}"
    );
    chat_through(v, proxy, root_port, "").await;

    // Under /chat/.
    let bare = v
        .request(ALICE, prefixed_port, "GET", "/chat", None, None)
        .await;
    assert!(
        matches!(bare.status, 301 | 308)
            && bare
                .header("location")
                .is_some_and(|l| l.ends_with("/chat/")),
        "{proxy}: /chat redirects to /chat/: {bare:?}"
    );
    let page = v
        .request(ALICE, prefixed_port, "GET", "/chat/", None, None)
        .await;
    assert_eq!(page.status, 200, "{proxy}: {page:?}");
    assert!(page.body.contains("<html"), "{proxy}");
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains(&format!("wss://localhost:{prefixed_port}")),
        "{proxy}: {csp}"
    );
    for asset in ["/chat/main.css", "/chat/js/app.js"] {
        let res = v
            .request(ALICE, prefixed_port, "GET", asset, None, None)
            .await;
        assert_eq!(res.status, 200, "{proxy}: {asset}");
    }
    let js = v
        .request(ALICE, prefixed_port, "GET", "/chat/config.js", None, None)
        .await;
    assert_eq!(
        js.body.trim_end(),
        format!(
            r#"window.HEARTH = {{"url":"https://localhost:{prefixed_port}/chat","ws":"wss://localhost:{prefixed_port}/chat/ws"}};"#
        ),
        "{proxy}"
    );
    chat_through(v, proxy, prefixed_port, "/chat").await;
}

/// Write a configuration with `configure` for two Hearth servers behind a proxy (on two
/// free ports, with a self-signed certificate), start the proxy with `spawn`, and run
/// everything a browser does through it.
async fn behind_proxy(
    proxy: &str,
    conf_file: &str,
    configure: fn(&Setup) -> String,
    spawn: impl FnOnce(&Path, &Path) -> Proxy,
) {
    let tmp = tempfile::tempdir().unwrap();
    let (cert_pem, cert, key) = certificate(tmp.path());
    let ports = [free_port(), free_port()];
    let [mut root, mut prefixed] = upstreams(ports[1]).await;
    let conf = configure(&Setup {
        tmp: tmp.path(),
        ports,
        upstreams: [root.addr, prefixed.addr],
        cert: &cert,
        key: &key,
    });
    let conf_path = tmp.path().join(conf_file);
    std::fs::write(&conf_path, &conf).unwrap();
    let mut running = spawn(tmp.path(), &conf_path);
    running.wait_ready(&ports).await;

    exercise(proxy, &Visitor::new(&cert_pem), ports[0], ports[1]).await;

    drop(running);
    root.stop().await;
    prefixed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_from_the_documented_snippet() {
    let Some(nginx) = find_program("nginx", true) else {
        return;
    };
    behind_proxy("nginx", "nginx.conf", nginx_conf, |tmp, conf| {
        let log = tmp.join("error.log");
        let child = Command::new(nginx)
            .arg("-e")
            .arg(&log)
            .arg("-p")
            .arg(tmp)
            .arg("-c")
            .arg(conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        Proxy { child, log }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_from_the_documented_snippet() {
    let Some(caddy) = find_program("caddy", apt_has("caddy")) else {
        return;
    };
    behind_proxy("caddy", "Caddyfile", caddyfile, |tmp, conf| {
        let log = tmp.join("caddy.out");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(caddy)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(conf)
            .env("HOME", tmp)
            .env("XDG_CONFIG_HOME", tmp.join("config"))
            .env("XDG_DATA_HOME", tmp.join("data"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("caddy starts");
        Proxy { child, log }
    })
    .await;
}
