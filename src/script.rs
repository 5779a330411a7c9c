//! `hearth post` and `hearth tail`: a running server, used from cron jobs and shell pipelines
//! with a bot token (Settings → Devices and bots, or `POST /api/tokens`).
//!
//! - `post` sends one message over HTTP and prints it as stored (one JSON line).
//! - `tail` follows a room over the WebSocket and prints every message, edit, deletion,
//!   reaction and link preview of it as one JSON line each, in order; when the connection
//!   drops (a restart, a network change) it reconnects and resumes from the last position it
//!   printed, so nothing is skipped and nothing is printed twice.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use crate::config::Config;
use crate::outbound::{BodyLimit, Outbound};

/// Why a script command failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScriptError(pub String);

/// Which server, as whom.
#[derive(Clone)]
pub struct Target {
    /// The server's address (`http://127.0.0.1:12345/`, or its public URL).
    pub base: Url,
    /// A bot token.
    pub token: String,
    /// The client for it: any address and port (the operator names the server), trusting
    /// the public authorities and the `--cacert` certificates.
    client: Outbound,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// How long `post` and `tail` wait for the server.
const TIMEOUT: Duration = Duration::from_secs(30);

impl Target {
    /// `server` when given, else the configuration's `public_url`, else this machine at the
    /// configured port; `token` when given, else `HEARTH_TOKEN`. A server with a certificate
    /// no public authority signed (a private authority, or self-signed) is trusted through
    /// `cacert`, a PEM file of the certificates to trust besides them.
    pub fn new(
        config: &Config,
        server: Option<&str>,
        token: Option<String>,
        cacert: Option<&std::path::Path>,
    ) -> Result<Target, ScriptError> {
        let roots = match cacert {
            Some(path) => trusted(path)?,
            None => Vec::new(),
        };
        let client = Outbound::own_server(TIMEOUT, roots).map_err(|e| {
            let file = cacert.map(|p| p.display().to_string()).unwrap_or_default();
            ScriptError(format!("{file}: {e}"))
        })?;
        let base = match server.or(config.public_url()) {
            Some(s) => s.to_string(),
            None => {
                let tls = config.server.tls.enabled();
                let scheme = if tls { "https" } else { "http" };
                format!("{scheme}://127.0.0.1:{}/", config.server.port)
            }
        };
        let mut base = Url::parse(&base)
            .map_err(|e| ScriptError(format!("the server address {base:?}: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let token = token
            .or_else(|| std::env::var("HEARTH_TOKEN").ok())
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                ScriptError(
                    "give a bot token with --token or HEARTH_TOKEN (Settings → Devices and bots)"
                        .into(),
                )
            })?;
        Ok(Target {
            base,
            token: token.trim().to_string(),
            client,
        })
    }

    fn api(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("api").extend(segments);
        }
        url
    }

    fn client(&self) -> &Outbound {
        &self.client
    }
}

/// The certificates of the PEM file at `path` (`--cacert`), at least one.
fn trusted(
    path: &Path,
) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, ScriptError> {
    crate::server::read_certificates(path).map_err(|e| ScriptError(format!("--cacert: {e}")))
}

/// The sentence of an error answer (`{"error":{"message"}}`), or its status.
fn refusal(status: u16, body: &[u8]) -> ScriptError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v["error"]["message"].as_str() {
        Some(m) => ScriptError(format!(
            "{m} ({status} {})",
            v["error"]["code"].as_str().unwrap_or("")
        )),
        None => ScriptError(format!("the server answered {status}")),
    }
}

/// Post `text` to `room`; the message as stored.
pub async fn post(target: &Target, room: &str, text: &str) -> Result<Value, ScriptError> {
    let url = target.api(&["rooms", room, "messages"]);
    let body = serde_json::to_vec(&json!({ "body": text })).unwrap_or_default();
    let answer = target
        .client()
        .post(
            &url,
            "application/json",
            vec![("authorization", format!("Bearer {}", target.token))],
            body.into(),
        )
        .await
        .map_err(|e| ScriptError(format!("cannot reach {}: {e}", target.base)))?;
    if answer.status.as_u16() != 201 {
        return Err(refusal(answer.status.as_u16(), &answer.body));
    }
    let v: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| ScriptError(format!("an answer that is not JSON: {e}")))?;
    Ok(v["message"].clone())
}

/// The frames `tail` prints: those about a room's messages.
const ROOM_FRAMES: &[&str] = &["message", "edited", "deleted", "reaction", "preview"];

/// Follow `room` from position `since` (only what comes next when `None`), writing each
/// frame about it to `out` as one line, until `stop` resolves or the session ends.
pub async fn tail(
    target: &Target,
    room: &str,
    since: Option<i64>,
    out: &mut impl Write,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ScriptError> {
    // The room must be readable: a typo should fail at once, not wait forever.
    let check = target.api(&["rooms", room]);
    let auth = format!("Bearer {}", target.token);
    let answer = target
        .client()
        .get_with(
            &check,
            vec![("authorization", auth.clone())],
            BodyLimit::Prefix(64 * 1024),
        )
        .await
        .map_err(|e| ScriptError(format!("cannot reach {}: {e}", target.base)))?;
    if answer.status.as_u16() != 200 {
        return Err(refusal(answer.status.as_u16(), &answer.body));
    }
    let room_name: String = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["room"]["name"].as_str().map(str::to_string))
        .unwrap_or_else(|| room.to_string());
    let mut position = since;
    tokio::pin!(stop);
    let mut pause = Duration::from_millis(250);
    loop {
        let session = follow(target, &room_name, &mut position, out);
        tokio::select! {
            _ = &mut stop => return Ok(()),
            ended = session => match ended {
                Ended::Revoked(why) if why.is_empty() => return Ok(()),
                Ended::Revoked(why) => return Err(ScriptError(why)),
                Ended::Dropped(why) => {
                    tracing::info!("connection lost ({why}); resuming");
                }
                Ended::Connected => pause = Duration::from_millis(250),
            },
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// How one connection of `tail` ended.
enum Ended {
    /// The session is over (revoked, disabled): stop.
    Revoked(String),
    /// Could not connect, or the connection broke: try again.
    Dropped(String),
    /// It was up and then closed: try again at once.
    Connected,
}

async fn follow(
    target: &Target,
    room: &str,
    position: &mut Option<i64>,
    out: &mut impl Write,
) -> Ended {
    let mut url = target.base.clone();
    let _ = url.set_scheme(if url.scheme() == "https" { "wss" } else { "ws" });
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push("ws");
    }
    if let Some(p) = *position {
        url.query_pairs_mut().append_pair("since", &p.to_string());
    }
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return Ended::Revoked(format!("bad server address: {e}")),
    };
    if let Ok(v) = format!("Bearer {}", target.token).parse() {
        request.headers_mut().insert("authorization", v);
    }
    // Opened by the script's own client: its roots (`--cacert`) and its rules hold for the
    // WebSocket too.
    let stream = match target.client().open(&url).await {
        Ok(s) => s,
        Err(e) => return Ended::Dropped(e.to_string()),
    };
    let connected = tokio_tungstenite::client_async(request, stream).await;
    let mut ws = match connected {
        Ok((ws, _)) => ws,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401 => {
            return Ended::Revoked("the token was refused (revoked or mistyped)".into())
        }
        Err(e) => return Ended::Dropped(e.to_string()),
    };
    while let Some(frame) = ws.next().await {
        let text = match frame {
            Ok(Message::Text(t)) => t,
            Ok(Message::Ping(p)) => {
                let _ = ws.send(Message::Pong(p)).await;
                continue;
            }
            Ok(Message::Close(Some(c))) if c.code == CloseCode::Library(4001) => {
                return Ended::Revoked(
                    "the session ended (token revoked or account disabled)".into(),
                )
            }
            Ok(Message::Close(_)) => return Ended::Connected,
            Ok(_) => continue,
            Err(e) => return Ended::Dropped(e.to_string()),
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let kind = v["type"].as_str().unwrap_or("");
        if !ROOM_FRAMES.contains(&kind) || v["room"] != room {
            continue;
        }
        let at = if kind == "message" {
            &v["id"]
        } else {
            &v["seq"]
        };
        if let Some(at) = at.as_i64() {
            if position.is_some_and(|p| at <= p) {
                continue;
            }
            *position = Some(at);
        }
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            // Nobody reads any more (a closed pipe): stop quietly.
            return Ended::Revoked(String::new());
        }
    }
    Ended::Connected
}
