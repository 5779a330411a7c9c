//! The wire protocol: what clients send ([`ClientMsg`]), what the server sends ([`ServerMsg`])
//! and the close codes. Pure: parsing and encoding only; it knows the data model, not the store.

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Utf8Bytes;

mod page;

pub use page::history_body_of;

use crate::model::{
    Attachment, ChangeKind, MessageChange, Notify, Profile, Replayed, Room, RoomKind,
    StoredMessage, User,
};

/// Largest message or frame a client may send.
pub const MAX_FRAME: usize = 64 * 1024;
/// Close code for a client that fell behind.
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code when the session was revoked (logout, password change, disabled account).
pub const CLOSE_SESSION_ENDED: u16 = 4001;
/// Close code: the node fell behind the others (cluster mode); reconnect, and resume with
/// `since=`, here or on another node.
pub const CLOSE_RECONNECT: u16 = 1012;

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
        /// The id of the message this one answers (same room, not deleted).
        #[serde(default)]
        reply_to: Option<i64>,
        /// Ids of the sender's uploads to send with it (at most 10).
        #[serde(default)]
        attachments: Vec<String>,
    },
    /// Tell the room's other members this user is typing.
    Typing {
        /// Room name.
        room: String,
    },
    /// Change the body of one's own message.
    Edit {
        /// Message id.
        id: i64,
        /// The new text (trimmed by the server).
        body: String,
        /// Client id, echoed on the `edited` frame and on refusals.
        #[serde(default)]
        nonce: Option<String>,
    },
    /// Delete a message (one's own, or anyone's for an administrator).
    Delete {
        /// Message id.
        id: i64,
        /// Client id, echoed on the `deleted` frame and on refusals.
        #[serde(default)]
        nonce: Option<String>,
    },
    /// Add (`on`) or remove one's reaction to a message.
    React {
        /// Message id.
        id: i64,
        /// The emoji: 1–16 Unicode scalar values, no whitespace or control characters.
        emoji: String,
        /// Add it (`true`) or take it back.
        on: bool,
        /// Client id, echoed on the `reaction` frame and on refusals.
        #[serde(default)]
        nonce: Option<String>,
    },
    /// Move the read marker of a room forward.
    Read {
        /// Room name.
        room: String,
        /// Highest message id read.
        id: i64,
    },
}

impl ClientMsg {
    /// Parse a text frame; any failure is a `bad_frame`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.trim_start().starts_with('{') {
            return Err("A frame must be one JSON object.".to_string());
        }
        if holds_nul(text) {
            return Err(NUL_REFUSED.to_string());
        }
        let mut msg: ClientMsg = serde_json::from_str(text).map_err(|e| {
            let e = e.to_string();
            if e.contains("unknown variant") {
                "Unknown frame type.".to_string()
            } else {
                format!("Malformed frame: {e}.")
            }
        })?;
        // Rooms are named in any case, as in URLs.
        if let ClientMsg::Send { room, .. }
        | ClientMsg::Typing { room }
        | ClientMsg::Read { room, .. } = &mut msg
        {
            room.make_ascii_lowercase();
        }
        Ok(msg)
    }
}

/// Why JSON with a NUL character in it is refused.
pub const NUL_REFUSED: &str = "Text may not contain the NUL character (U+0000).";

/// Whether JSON `text` has a string (or key) with the NUL character in it: PostgreSQL
/// stores no text with it, so it is refused at the door (alike on SQLite). JSON can only hold
/// it escaped, as `\u0000` after an even run of other backslashes (`\\u0000` is a
/// backslash and the text `u0000`); read from the raw text, since a text that fails to parse
/// as a whole (a number out of range in a field the request ignores) may still be read.
pub fn holds_nul(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices("u0000").any(|(at, _)| {
        let slashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        slashes % 2 == 1
    })
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

/// `{"username","display_name","status","avatar_url"}`: how a person presents themselves.
#[derive(Debug, Serialize)]
pub struct ProfileView<'a> {
    /// The username.
    pub username: &'a str,
    /// The name to show (`""`: the username).
    pub display_name: &'a str,
    /// A short status line (`""`: none).
    pub status: &'a str,
    /// Where the avatar is served (`null`: none).
    pub avatar_url: Option<String>,
}

impl<'a> From<&'a Profile> for ProfileView<'a> {
    fn from(p: &'a Profile) -> Self {
        ProfileView {
            username: &p.username,
            display_name: &p.display_name,
            status: &p.status,
            avatar_url: p.avatar_url(),
        }
    }
}

/// A room as clients see it. Membership fields appear only for the asking user's rooms.
#[derive(Debug, Serialize)]
pub struct RoomView<'a> {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// `room` or `dm`.
    pub kind: &'static str,
    /// Public room?
    pub public: bool,
    /// Number of members.
    pub members: i64,
    /// DM participants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<&'a [String]>,
    /// Newest message id.
    pub last_id: i64,
    /// Creator's username.
    pub created_by: Option<&'a str>,
    /// The user's read marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read: Option<i64>,
    /// Unread messages by others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<i64>,
    /// Unread mentions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mentions: Option<i64>,
    /// Notification level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// Directory listings: whether the user is a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined: Option<bool>,
}

impl<'a> From<&'a Room> for RoomView<'a> {
    fn from(r: &'a Room) -> Self {
        let m = r.membership.as_ref();
        RoomView {
            id: r.id,
            name: &r.name,
            topic: &r.topic,
            kind: r.kind.as_str(),
            public: r.public,
            members: r.members,
            users: (r.kind == RoomKind::Dm).then_some(r.users.as_slice()),
            last_id: r.last_id,
            created_by: r.created_by.as_deref(),
            last_read: m.map(|m| m.last_read),
            unread: m.map(|m| m.unread),
            mentions: m.map(|m| m.mentions),
            notify: m.map(|m| m.notify),
            joined: None,
        }
    }
}

impl<'a> RoomView<'a> {
    /// The same view without the asking user's membership state (for frames sent to others).
    pub fn shared(r: &'a Room) -> Self {
        RoomView {
            last_read: None,
            unread: None,
            mentions: None,
            notify: None,
            ..RoomView::from(r)
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
    /// RFC 3339 UTC time of the last edit, when edited (and not deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_ts: Option<String>,
    /// `true` for a deleted message (a tombstone with an empty body); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The message this one answers, when it is a reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyView<'a>>,
    /// Reactions in order of first use (empty for a new message; absent from a tombstone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactions: Option<Vec<ReactionView<'a>>>,
    /// Files sent with it (absent from a tombstone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<AttachmentView<'a>>>,
    /// The preview of its first link, once fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewView<'a>>,
}

/// `{"url","title","description","site_name","image_url"}`: a link preview.
#[derive(Debug, Serialize)]
pub struct PreviewView<'a> {
    /// The link.
    pub url: &'a str,
    /// The page's title.
    pub title: &'a str,
    /// Its description (may be empty).
    pub description: &'a str,
    /// The site's name (may be empty).
    pub site_name: &'a str,
    /// The picture, served by Hearth; `null` without one.
    pub image_url: Option<String>,
}

impl<'a> PreviewView<'a> {
    /// The view of message `id`'s preview `p`.
    pub fn of(id: i64, p: &'a crate::model::LinkPreview) -> Self {
        PreviewView {
            url: &p.url,
            title: &p.title,
            description: &p.description,
            site_name: &p.site_name,
            image_url: p.image_url(id),
        }
    }
}

/// `{"id","name","type","size","url","width"?,"height"?,"thumbnail_url"?}`: an upload, as
/// `POST /api/uploads` answers it and as messages carry it.
#[derive(Debug, Serialize)]
pub struct AttachmentView<'a> {
    /// Its id.
    pub id: &'a str,
    /// File name.
    pub name: &'a str,
    /// Media type.
    #[serde(rename = "type")]
    pub mime: &'a str,
    /// Bytes.
    pub size: i64,
    /// Where its bytes are served.
    pub url: String,
    /// An image's width in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// An image's height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Where an image's thumbnail is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

impl<'a> From<&'a Attachment> for AttachmentView<'a> {
    fn from(a: &'a Attachment) -> Self {
        AttachmentView {
            id: &a.id,
            name: &a.name,
            mime: &a.mime,
            size: a.size,
            url: a.url(),
            width: a.dimensions.map(|d| d.0),
            height: a.dimensions.map(|d| d.1),
            thumbnail_url: a.thumbnail_url(),
        }
    }
}

/// `{"id","user","excerpt"}`: the message a reply answers.
#[derive(Debug, Serialize)]
pub struct ReplyView<'a> {
    /// Its id.
    pub id: i64,
    /// Its author.
    pub user: &'a str,
    /// The first 200 characters of its current body (`""` once deleted).
    pub excerpt: &'a str,
}

/// `{"emoji","count","users"}`: one emoji on a message.
#[derive(Debug, Serialize)]
pub struct ReactionView<'a> {
    /// The emoji.
    pub emoji: &'a str,
    /// How many reacted with it.
    pub count: usize,
    /// Who, in the order they did.
    pub users: &'a [String],
}

impl<'a> From<&'a StoredMessage> for MessageView<'a> {
    fn from(m: &'a StoredMessage) -> Self {
        // A tombstone shows only where the message was and who wrote it.
        MessageView {
            id: m.id,
            room: &m.room,
            user: &m.user,
            body: if m.deleted { "" } else { &m.body },
            ts: rfc3339(m.ts_ms),
            nonce: m.nonce.as_deref().filter(|_| !m.deleted),
            edited_ts: m.edited_ms.filter(|_| !m.deleted).map(rfc3339),
            deleted: m.deleted,
            reply_to: m
                .reply_to
                .as_ref()
                .filter(|_| !m.deleted)
                .map(|r| ReplyView {
                    id: r.id,
                    user: &r.user,
                    excerpt: &r.excerpt,
                }),
            reactions: (!m.deleted).then(|| {
                m.reactions
                    .iter()
                    .map(|r| ReactionView {
                        emoji: &r.emoji,
                        count: r.users.len(),
                        users: &r.users,
                    })
                    .collect()
            }),
            attachments: (!m.deleted).then(|| m.attachments.iter().map(Into::into).collect()),
            preview: m
                .preview
                .as_deref()
                .filter(|_| !m.deleted)
                .map(|p| PreviewView::of(m.id, p)),
        }
    }
}

/// The JSON object of a message as a history page lists it.
pub fn message_json(m: &StoredMessage) -> bytes::Bytes {
    // Serializing these plain structs cannot fail.
    bytes::Bytes::from(serde_json::to_vec(&MessageView::from(m)).unwrap_or_default())
}

/// The body of a history page, `{"messages":[...]}`, around message objects that are already
/// JSON ([`message_json`], or kept from the frames).
pub fn history_body(items: &[bytes::Bytes]) -> Vec<u8> {
    let len = items.iter().map(|b| b.len() + 1).sum::<usize>() + 16;
    page_body(len, items, |body, item| body.extend_from_slice(item))
}

/// `{"messages":[...]}` in a buffer of `capacity`, each of `items` written by `write`.
fn page_body<T>(capacity: usize, items: &[T], write: impl Fn(&mut Vec<u8>, &T)) -> Vec<u8> {
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(b"{\"messages\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write(&mut body, item);
    }
    body.extend_from_slice(b"]}");
    body
}

/// How every `message` frame starts; the rest is the message's object.
const MESSAGE_FRAME_START: &str = "{\"type\":\"message\",";

/// The history object of a message from the `message` frame it was delivered in (the same
/// fields without `type`), so a message is serialized once for both.
pub fn message_json_from_frame(frame: &Utf8Bytes) -> Option<bytes::Bytes> {
    let rest = frame.as_str().strip_prefix(MESSAGE_FRAME_START)?;
    let mut out = Vec::with_capacity(rest.len() + 1);
    out.push(b'{');
    out.extend_from_slice(rest.as_bytes());
    Some(out.into())
}

/// The frame of one replayed item, exactly as it was sent live (without the actor's nonce on
/// a change, which is not stored).
pub fn replayed_frame(item: &Replayed) -> Utf8Bytes {
    match item {
        Replayed::Message(m) => ServerMsg::Message(m.into()).encode(),
        Replayed::Change(c) => change_frame(c, None),
    }
}

/// The frame of a change (`edited`, `deleted`, `reaction`), with the actor's nonce if any.
pub fn change_frame(c: &MessageChange, nonce: Option<&str>) -> Utf8Bytes {
    match &c.kind {
        ChangeKind::Edited { body, edited_ms } => ServerMsg::Edited {
            seq: c.seq,
            id: c.id,
            room: &c.room,
            body,
            edited_ts: rfc3339(*edited_ms),
            nonce,
        },
        ChangeKind::Deleted { by } => ServerMsg::Deleted {
            seq: c.seq,
            id: c.id,
            room: &c.room,
            by,
            nonce,
        },
        ChangeKind::Reaction { user, emoji, on } => ServerMsg::Reaction {
            seq: c.seq,
            id: c.id,
            room: &c.room,
            user,
            emoji,
            on: *on,
            nonce,
        },
        ChangeKind::Preview { preview } => ServerMsg::Preview {
            seq: c.seq,
            id: c.id,
            room: &c.room,
            preview: preview.as_deref().map(|p| PreviewView::of(c.id, p)),
            nonce,
        },
    }
    .encode()
}

/// The last millisecond RFC 3339 can write with a four-digit year (9999-12-31T23:59:59.999Z).
const LAST_MS: i64 = 253_402_300_799_999;

/// Milliseconds since the epoch as `2026-11-25T22:11:14.123Z` (before 1970 is 1970, after
/// the year 9999 is its last millisecond).
pub fn rfc3339(ms: i64) -> String {
    let ms = ms.clamp(0, LAST_MS);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
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
        /// Every profile with something set (others show their username).
        profiles: Vec<ProfileView<'a>>,
        /// Highest committed message id.
        last_id: i64,
    },
    /// A committed message.
    Message(MessageView<'a>),
    /// A message's body changed.
    Edited {
        /// The change's position.
        seq: i64,
        /// Message id.
        id: i64,
        /// Room name.
        room: &'a str,
        /// The new body (`""` in a replay once the message was deleted).
        body: &'a str,
        /// RFC 3339 UTC time of the edit.
        edited_ts: String,
        /// The editor's nonce, when it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
    },
    /// A message's link preview arrived, or its author removed it (`preview: null`).
    Preview {
        /// The change's position.
        seq: i64,
        /// Message id.
        id: i64,
        /// Room name.
        room: &'a str,
        /// The preview, `null` once removed.
        preview: Option<PreviewView<'a>>,
        /// The remover's nonce, when it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
    },
    /// A message was deleted.
    Deleted {
        /// The change's position.
        seq: i64,
        /// Message id.
        id: i64,
        /// Room name.
        room: &'a str,
        /// Who deleted it.
        by: &'a str,
        /// The deleter's nonce, when it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
    },
    /// A reaction was added or removed.
    Reaction {
        /// The change's position.
        seq: i64,
        /// Message id.
        id: i64,
        /// Room name.
        room: &'a str,
        /// Who reacted.
        user: &'a str,
        /// The emoji.
        emoji: &'a str,
        /// Added (`true`) or removed.
        on: bool,
        /// The reactor's nonce, when it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
    },
    /// Someone changed their display name, status or avatar.
    Profile {
        /// The profile as it now is.
        user: ProfileView<'a>,
    },
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
    /// The user is now a member of a room (created, joined, invited, DM).
    RoomJoined {
        /// The room with the user's state.
        room: RoomView<'a>,
    },
    /// The user left a room.
    RoomLeft {
        /// Room name.
        room: &'a str,
    },
    /// A public room was created.
    RoomCreated {
        /// The room.
        room: RoomView<'a>,
    },
    /// A room's name or topic changed.
    RoomUpdated {
        /// The room as it is now.
        room: RoomView<'a>,
        /// The previous name, when it was renamed.
        #[serde(skip_serializing_if = "Option::is_none")]
        old_name: Option<&'a str>,
    },
    /// Someone joined a room.
    MemberJoined {
        /// Room name.
        room: &'a str,
        /// Username.
        user: &'a str,
    },
    /// Someone left a room.
    MemberLeft {
        /// Room name.
        room: &'a str,
        /// Username.
        user: &'a str,
    },
    /// The user's read marker of a room moved.
    Read {
        /// Room name.
        room: &'a str,
        /// The new marker.
        id: i64,
        /// Unread messages after it.
        unread: i64,
        /// Unread mentions after it.
        mentions: i64,
    },
    /// The user was mentioned.
    Mention {
        /// Room name.
        room: &'a str,
        /// Message id.
        id: i64,
        /// Author.
        user: &'a str,
        /// The position of the edit that made the mention (none for a new message's).
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<i64>,
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
    fn nul_is_found_in_any_string_or_key_and_only_there() {
        for held in [
            r#"{"body":"a\u0000b"}"#,
            r#"{"x":["ok",{"deep":"\u0000"}]}"#,
            r#"{"k\u0000":1}"#,
            r#"{"body":"x\u0000","pad":1e999}"#,
            r#"{"body":"three slashes \\\u0000"}"#,
        ] {
            assert!(holds_nul(held), "{held}");
        }
        for clean in [
            r#"{"body":"an escaped backslash: \\u0000"}"#,
            r#"{"body":"u0000"}"#,
            r#"{"body":"plain"}"#,
        ] {
            assert!(!holds_nul(clean), "{clean}");
        }
        assert!(
            ClientMsg::parse(r#"{"type":"send","room":"r","body":"\u0000"}"#)
                .is_err_and(|e| e == NUL_REFUSED)
        );
    }

    #[test]
    fn the_history_object_is_the_frame_without_its_type() {
        let m = StoredMessage {
            id: 7,
            room_id: 1,
            room: "general".into(),
            user: "ann".into(),
            body: "hi \"there\"".into(),
            nonce: Some("n".into()),
            ts_ms: 1_700_000_000_000,
            edited_ms: None,
            deleted: false,
            reply_to: None,
            reactions: Vec::new(),
            attachments: Vec::new(),
            preview: None,
        };
        let frame = ServerMsg::Message((&m).into()).encode();
        let from_frame = message_json_from_frame(&frame).unwrap();
        assert_eq!(from_frame, message_json(&m));
        let mut v: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        v.as_object_mut().unwrap().remove("type");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&from_frame).unwrap(),
            v
        );
        assert!(message_json_from_frame(&"{\"type\":\"edited\"}".into()).is_none());
    }

    #[test]
    fn rooms_in_client_frames_are_named_in_any_case() {
        let room = |text: &str| match ClientMsg::parse(text) {
            Ok(
                ClientMsg::Send { room, .. }
                | ClientMsg::Typing { room }
                | ClientMsg::Read { room, .. },
            ) => room,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            room(r#"{"type":"send","room":"General","body":"hi"}"#),
            "general"
        );
        assert_eq!(
            room(r#"{"type":"typing","room":"DM:Ann,Bob"}"#),
            "dm:ann,bob"
        );
        assert_eq!(room(r#"{"type":"read","room":"TEAM-2","id":3}"#), "team-2");
    }

    #[test]
    fn parses_client_frames() {
        assert_eq!(
            ClientMsg::parse(r#"{"type":"send","room":"general","body":"hi","nonce":"n1"}"#),
            Ok(ClientMsg::Send {
                room: "general".into(),
                body: "hi".into(),
                nonce: Some("n1".into()),
                reply_to: None,
                attachments: Vec::new(),
            })
        );
        assert_eq!(
            ClientMsg::parse(r#"{"type":"react","id":7,"emoji":"👍","on":true}"#),
            Ok(ClientMsg::React {
                id: 7,
                emoji: "👍".into(),
                on: true,
                nonce: None,
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
            edited_ms: None,
            deleted: false,
            reply_to: None,
            reactions: Vec::new(),
            attachments: Vec::new(),
            preview: None,
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
