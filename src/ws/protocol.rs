//! WebSocket frames: what clients send ([`ClientMsg`]) and what the server sends
//! ([`ServerMsg`]). Pure: parsing and encoding only.

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::db::{Room, StoredMessage, User};

/// A frame from a client.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Store and broadcast a message.
    Send {
        /// Room name.
        room: String,
        /// Message text (trimmed by the server).
        body: String,
        /// Client id for de-duplicating retries (≤ 64 chars).
        #[serde(default)]
        nonce: Option<String>,
    },
    /// Tell the room's other members this user is typing.
    Typing {
        /// Room name.
        room: String,
    },
}

impl ClientMsg {
    /// Parse a text frame; any failure is a `bad_frame`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.trim_start().starts_with('{') {
            return Err("A frame must be one JSON object.".to_string());
        }
        serde_json::from_str(text).map_err(|e| {
            let e = e.to_string();
            if e.contains("unknown variant") {
                "Unknown frame type.".to_string()
            } else {
                format!("Malformed frame: {e}.")
            }
        })
    }
}

/// `{"id","username"}` as in `/api/me`.
#[derive(Debug, Serialize)]
pub struct UserView<'a> {
    /// Row id.
    pub id: i64,
    /// Name.
    pub username: &'a str,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> Self {
        UserView {
            id: u.id,
            username: &u.username,
        }
    }
}

/// A room as clients see it.
#[derive(Debug, Serialize)]
pub struct RoomView<'a> {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: &'a str,
    /// Topic.
    pub topic: &'a str,
}

impl<'a> From<&'a Room> for RoomView<'a> {
    fn from(r: &'a Room) -> Self {
        RoomView {
            id: r.id,
            name: &r.name,
            topic: &r.topic,
        }
    }
}

/// A message as clients see it (HTTP history and the `message` frame).
#[derive(Debug, Serialize)]
pub struct MessageView<'a> {
    /// Global id.
    pub id: i64,
    /// Room name.
    pub room: &'a str,
    /// Author's username.
    pub user: &'a str,
    /// Text.
    pub body: &'a str,
    /// RFC 3339 UTC commit time.
    pub ts: String,
    /// The sender's nonce, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
}

impl<'a> From<&'a StoredMessage> for MessageView<'a> {
    fn from(m: &'a StoredMessage) -> Self {
        MessageView {
            id: m.id,
            room: &m.room,
            user: &m.user,
            body: &m.body,
            ts: rfc3339(m.ts_ms),
            nonce: m.nonce.as_deref(),
        }
    }
}

/// Milliseconds since the epoch as `2026-11-25T22:11:14.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A frame from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<'a> {
    /// First frame on every connection.
    Ready {
        /// Who this connection belongs to.
        user: UserView<'a>,
        /// The user's rooms.
        rooms: Vec<RoomView<'a>>,
        /// Usernames with at least one open connection.
        online: Vec<&'a str>,
        /// Highest committed message id.
        last_id: i64,
    },
    /// A committed message.
    Message(MessageView<'a>),
    /// A user's first connection opened or last one closed.
    Presence {
        /// Username.
        user: &'a str,
        /// Now online?
        online: bool,
    },
    /// Someone is typing.
    Typing {
        /// Room name.
        room: &'a str,
        /// Username.
        user: &'a str,
    },
    /// End of a `?since=` replay.
    Resumed {
        /// False when more than the replay limit was missed.
        complete: bool,
        /// Highest committed id when the replay was read.
        head: i64,
    },
    /// A frame was refused.
    Error {
        /// snake_case code.
        code: &'a str,
        /// Human sentence.
        message: &'a str,
        /// The refused frame's nonce.
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
        /// For `rate_limited`: when to try again.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerMsg<'_> {
    /// Serialize once; the bytes are shared by every recipient.
    pub fn encode(&self) -> Utf8Bytes {
        // Serializing these plain structs cannot fail.
        Utf8Bytes::from(serde_json::to_string(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_frames() {
        assert_eq!(
            ClientMsg::parse(r#"{"type":"send","room":"general","body":"hi","nonce":"n1"}"#),
            Ok(ClientMsg::Send {
                room: "general".into(),
                body: "hi".into(),
                nonce: Some("n1".into())
            })
        );
        assert_eq!(
            ClientMsg::parse(r#"{"type":"typing","room":"general"}"#),
            Ok(ClientMsg::Typing {
                room: "general".into()
            })
        );
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"type":"nope"}"#,
            r#"{"type":"send","room":"general"}"#,
            r#"{"type":"send","room":1,"body":"x"}"#,
            r#"{"room":"general","body":"x"}"#,
            r#"{"type":"send","room":"general","body":"x","nonce":5}"#,
            r#"["send","general","hi"]"#,
        ] {
            assert!(ClientMsg::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_frame_shape() {
        let m = StoredMessage {
            id: 7,
            room_id: 1,
            room: "general".into(),
            user: "alice".into(),
            body: "<b>hi</b>".into(),
            nonce: None,
            ts_ms: 1_764_108_674_123,
        };
        let v: serde_json::Value =
            serde_json::from_str(&ServerMsg::Message((&m).into()).encode()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["id"], 7);
        assert_eq!(v["body"], "<b>hi</b>");
        assert_eq!(v["ts"], "2025-11-25T22:11:14.123Z");
        assert!(v.get("nonce").is_none());
    }
}
