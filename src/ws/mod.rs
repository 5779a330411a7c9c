//! WebSocket sessions: one task per connection, from the upgraded socket to its close. The
//! handshake (authentication, admission, `101`) is HTTP's: `http::upgrade`.
//!
//! - [`session`]: the per-connection loop.
//! - [`commands`]: one command per client frame, carried out for the session.

pub mod commands;
pub mod session;

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::app::App;
use crate::hub::Registration;
use crate::model::User;
use crate::protocol::MAX_FRAME;
use commands::{Context, Rooms};
use session::Connection;

/// The tungstenite settings for every connection: a small read buffer (512 bytes hold a
/// typical client frame; a larger one grows it as needed; tungstenite's default is 128 KiB
/// per connection, all of it touched) and a bounded write buffer.
pub fn socket_config() -> WebSocketConfig {
    let mut c = WebSocketConfig::default();
    c.read_buffer_size = 512;
    c.write_buffer_size = 16 * 1024;
    c.max_write_buffer_size = 4 * 1024 * 1024;
    c.max_message_size = Some(MAX_FRAME);
    c.max_frame_size = Some(MAX_FRAME);
    c
}

/// A connection the handshake admitted: who it is, where it resumes, and its place in the hub.
pub struct Admitted {
    /// The signed-in user.
    pub user: User,
    /// The session (or bot token) it authenticated with.
    pub token_hash: [u8; 32],
    /// `?since=`: the last message id the client has.
    pub since: Option<i64>,
    /// Its queue in the hub, taken before the first snapshot; its rooms are set after it.
    pub reg: Registration,
    /// Its place in the connection caps over every node (cluster mode), given back when
    /// the session ends.
    pub place: Option<crate::cluster::caps::Place>,
}

/// Run the session of an admitted connection once hyper hands over the upgraded socket.
pub fn spawn(state: App, admitted: Admitted, on_upgrade: OnUpgrade) {
    let guard = state.tracker.track();
    let connection = Connection {
        cx: Context {
            state,
            username: Arc::from(admitted.user.username.as_str()),
            user: admitted.user,
            conn: admitted.reg.id,
            rooms: Rooms::new(),
            last_typing: None,
        },
        since: admitted.since,
        token_hash: admitted.token_hash,
        reg: admitted.reg,
        guard,
        place: admitted.place,
        sent: false,
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let config = Some(socket_config());
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, config).await;
                connection.run(ws).await;
            }
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
    });
}
