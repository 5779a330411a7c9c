//! The rows the store hands out: plain data, no SQLite types.

/// Whether a new account administers the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewAdmin {
    /// An ordinary member.
    No,
    /// An administrator when it is the first account (`hearth user add`).
    IfFirst,
    /// An administrator when the server has none (registration with the setup link).
    IfNoAdmin,
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Name as chosen at registration.
    pub username: String,
}

/// A room or direct conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Room {
    /// Row id.
    pub id: i64,
    /// Unique name used in URLs and frames.
    pub name: String,
    /// Free-text topic.
    pub topic: String,
    /// A room or a DM.
    pub kind: RoomKind,
    /// Listed in the directory and readable by everyone.
    pub public: bool,
    /// Creator's username (none for `general` and DMs).
    pub created_by: Option<String>,
    /// Number of members.
    pub members: i64,
    /// DMs: every participant's username, sorted ignoring case. Empty for rooms.
    pub users: Vec<String>,
    /// Newest message id in the room (0 when empty).
    pub last_id: i64,
    /// The asking user's membership, when they are a member.
    pub membership: Option<Membership>,
}

/// The facts about a room that decide whether the asking user may read it, without the
/// counts a [`Room`] carries (members, unread messages, mentions): what a history page
/// looks up before it reads; a reaction, an edit or a deletion before it writes; a preview's
/// removal or a download before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKey {
    /// Row id.
    pub id: i64,
    /// Unique name used in URLs and frames.
    pub name: String,
    /// A room or a DM.
    pub kind: RoomKind,
    /// Listed in the directory and readable by everyone.
    pub public: bool,
    /// Creator's username (none for `general` and DMs).
    pub created_by: Option<String>,
    /// Whether the asking user is a member.
    pub member: bool,
}

/// Whether a room is a named room or a direct conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomKind {
    /// A named room, public or private.
    Room,
    /// A direct conversation between 2–8 users.
    Dm,
}

impl RoomKind {
    /// The kind stored in the `kind` column as `value`.
    pub fn parse(value: &str) -> RoomKind {
        if value == "dm" {
            RoomKind::Dm
        } else {
            RoomKind::Room
        }
    }

    /// Value stored in the `kind` column and sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Room => "room",
            RoomKind::Dm => "dm",
        }
    }
}

/// How much a member wants to be notified about a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notify {
    /// Every message.
    All,
    /// Only mentions.
    Mentions,
    /// Nothing.
    Nothing,
}

impl Notify {
    /// Value stored in the `notify` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Notify::All => "all",
            Notify::Mentions => "mentions",
            Notify::Nothing => "nothing",
        }
    }

    pub(crate) fn parse(s: &str) -> Notify {
        match s {
            "mentions" => Notify::Mentions,
            "nothing" => Notify::Nothing,
            _ => Notify::All,
        }
    }
}

/// What one device wants pushed while its user has no open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PushLevel {
    /// Every message of the rooms whose own level is [`Notify::All`], besides mentions and
    /// direct messages.
    All,
    /// Mentions and direct messages (the default).
    #[default]
    Mentions,
    /// Nothing for now (the subscription is kept).
    Nothing,
}

impl PushLevel {
    /// Value stored in the `level` column.
    pub fn as_str(self) -> &'static str {
        match self {
            PushLevel::All => "all",
            PushLevel::Mentions => "mentions",
            PushLevel::Nothing => "nothing",
        }
    }

    pub(crate) fn parse(s: &str) -> PushLevel {
        match s {
            "all" => PushLevel::All,
            "nothing" => PushLevel::Nothing,
            _ => PushLevel::Mentions,
        }
    }
}

/// A device's quiet hours: from `start` to `end`, minutes after its local midnight (across
/// midnight when `end` comes first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// First quiet minute.
    pub start: u16,
    /// First minute that is not quiet any more.
    pub end: u16,
}

impl QuietHours {
    /// Quiet hours from two `HH:MM` times (24-hour clock); `None` when either is not one or
    /// they are the same.
    pub fn parse(start: &str, end: &str) -> Option<QuietHours> {
        let q = QuietHours {
            start: minute_of_day(start)?,
            end: minute_of_day(end)?,
        };
        (q.start != q.end).then_some(q)
    }

    /// Whether it is quiet at `now_ms` on a device `utc_offset` minutes east of UTC.
    pub fn contains(self, now_ms: i64, utc_offset: i16) -> bool {
        let local = (now_ms.div_euclid(60_000) + i64::from(utc_offset)).rem_euclid(1440);
        let (start, end) = (i64::from(self.start), i64::from(self.end));
        if start < end {
            (start..end).contains(&local)
        } else {
            local >= start || local < end
        }
    }

    /// `HH:MM` of a minute of the day.
    pub fn clock(minute: u16) -> String {
        format!("{:02}:{:02}", minute / 60, minute % 60)
    }
}

/// `HH:MM` (or `H:MM`) → minutes after midnight.
fn minute_of_day(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let digits = |t: &str, max: u16| -> Option<u16> {
        if t.is_empty() || t.len() > 2 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse::<u16>().ok().filter(|v| *v <= max)
    };
    if m.len() != 2 {
        return None;
    }
    Some(digits(h, 23)? * 60 + digits(m, 59)?)
}

/// The furthest a device's clock may be from UTC, in minutes (UTC−14:00 … UTC+14:00).
pub const MAX_UTC_OFFSET: i16 = 840;

/// One user's state in a room they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Membership {
    /// Highest message id read.
    pub last_read: i64,
    /// Messages by others after `last_read` (counted up to [`UNREAD_CAP`]).
    pub unread: i64,
    /// Of those, the ones that mention the user.
    pub mentions: i64,
    /// Notification level.
    pub notify: Notify,
}

/// Unread counts stop at this number.
pub const UNREAD_CAP: i64 = 1000;

/// A committed message with everything a frame needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredMessage {
    /// Global, increasing id.
    pub id: i64,
    /// Room row id.
    pub room_id: i64,
    /// Room name.
    pub room: String,
    /// Author's username.
    pub user: String,
    /// Trimmed body.
    pub body: String,
    /// The sender's nonce, if it gave one.
    pub nonce: Option<String>,
    /// Commit time, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// When it was last edited, milliseconds since the Unix epoch.
    pub edited_ms: Option<i64>,
    /// Deleted: a tombstone whose body is empty.
    pub deleted: bool,
    /// The message this one answers, when it is a reply.
    pub reply_to: Option<Box<ReplyTo>>,
    /// Reactions, in order of first use (empty for a new message).
    pub reactions: Vec<Reaction>,
    /// Files sent with it, in the order they were given (empty once it is deleted).
    pub attachments: Vec<Attachment>,
    /// The preview of its first link, once fetched (and unless its author removed it).
    pub preview: Option<Box<LinkPreview>>,
}

/// Which page of a room's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest messages older than this id (the newest of all when `None`).
    Before(Option<i64>),
    /// The oldest messages newer than this id.
    After(i64),
    /// Messages on both sides of this id, the id itself included.
    Around(i64),
}

/// A page of one room's messages as the store read them, oldest first, for a history page
/// to be written from (`protocol::history_body_of`). Every row's text lies in one buffer
/// shared by the page instead of a string of its own, as the store gave it: UTF-8 unless the
/// database file was damaged, which the writer of the page checks.
#[derive(Debug, Default)]
pub struct PageRows {
    /// The room's name, as stored.
    pub room: String,
    /// The rows, oldest first.
    pub rows: Vec<PageRow>,
    /// Reactions, files and previews of the messages that have any (never a tombstone's).
    pub extras: std::collections::BTreeMap<i64, Extras>,
    text: Vec<u8>,
}

/// Where a piece of text lies in its page's buffer ([`PageRows::text`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

/// A message's row in a [`PageRows`]: what [`StoredMessage`] has, its text as [`Span`]s.
#[derive(Debug, Clone, Copy)]
pub struct PageRow {
    /// Global id.
    pub id: i64,
    /// Author's username.
    pub user: Span,
    /// Body (empty for a tombstone).
    pub body: Span,
    /// The sender's nonce, if it gave one.
    pub nonce: Option<Span>,
    /// Commit time, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// When it was last edited, milliseconds since the Unix epoch.
    pub edited_ms: Option<i64>,
    /// Deleted: a tombstone.
    pub deleted: bool,
    /// The message it answers, when it is a reply: id, author and excerpt.
    pub reply_to: Option<(i64, Span, Span)>,
}

/// What a message has beside its row: reactions, files and its link's preview.
#[derive(Debug, Default)]
pub struct Extras {
    /// Reactions, in order of first use.
    pub reactions: Vec<Reaction>,
    /// Files, in the order they were given.
    pub attachments: Vec<Attachment>,
    /// The preview of its first link.
    pub preview: Option<LinkPreview>,
}

impl PageRows {
    /// An empty page of room `room`.
    pub fn new(room: String) -> PageRows {
        PageRows {
            room,
            ..PageRows::default()
        }
    }

    /// Keep `text` in the page's buffer; where it lies.
    pub fn keep(&mut self, text: &[u8]) -> Span {
        let start = self.text.len() as u32;
        self.text.extend_from_slice(text);
        Span {
            start,
            len: text.len() as u32,
        }
    }

    /// The text at `span`.
    pub fn text(&self, span: Span) -> &[u8] {
        &self.text[span.start as usize..(span.start + span.len) as usize]
    }

    /// Whether message `id` is on this page and not deleted (those are the ones with extras).
    pub fn has_live(&self, id: i64) -> bool {
        self.rows
            .binary_search_by_key(&id, |r| r.id)
            .is_ok_and(|i| !self.rows[i].deleted)
    }
}

/// What a message's first link leads to, as the server fetched it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkPreview {
    /// The link.
    pub url: String,
    /// The page's title.
    pub title: String,
    /// Its description (may be empty).
    pub description: String,
    /// The site's name (may be empty).
    pub site_name: String,
    /// Whether Hearth keeps a picture for it (served at [`LinkPreview::image_url`]).
    pub has_image: bool,
}

impl LinkPreview {
    /// Where the picture of message `id`'s preview is served, if it has one.
    pub fn image_url(&self, id: i64) -> Option<String> {
        self.has_image
            .then(|| format!("/api/messages/{id}/preview/image"))
    }
}

/// How a person presents themselves: what the conversation shows instead of (or beside) their
/// username.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// The username (what frames, mentions and history use).
    pub username: String,
    /// The name shown (empty: the username).
    pub display_name: String,
    /// A short status line (empty: none).
    pub status: String,
    /// The avatar's file (SHA-256, hex), if one is set.
    pub avatar: Option<String>,
}

impl Profile {
    /// Whether anything is set (only those are sent in `ready`).
    pub fn is_set(&self) -> bool {
        !self.display_name.is_empty() || !self.status.is_empty() || self.avatar.is_some()
    }

    /// Where the avatar is served, versioned by its file so a new one is fetched at once.
    /// (Usernames are `A-Z a-z 0-9 _ . -`: nothing in them needs encoding in a path.)
    pub fn avatar_url(&self) -> Option<String> {
        self.avatar.as_ref().map(|h| {
            let v = &h[..12.min(h.len())];
            format!("/api/users/{}/avatar?v={v}", self.username)
        })
    }
}

/// A stored file: an upload, sent with a message or not yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// Random id, used in its URL.
    pub id: String,
    /// The file name as uploaded (cleaned of path separators and control characters).
    pub name: String,
    /// Its media type: what Hearth recognised for images, else what the uploader said.
    pub mime: String,
    /// Bytes.
    pub size: i64,
    /// An image's width and height in pixels; `None` for other files.
    pub dimensions: Option<(u32, u32)>,
}

impl Attachment {
    /// The path its bytes are served under.
    pub fn url(&self) -> String {
        format!("/api/uploads/{}", self.id)
    }

    /// The path of its thumbnail (images only).
    pub fn thumbnail_url(&self) -> Option<String> {
        self.dimensions
            .map(|_| format!("/api/uploads/{}/thumbnail", self.id))
    }
}

/// The message a reply answers, as the reply shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplyTo {
    /// Its id.
    pub id: i64,
    /// Its author.
    pub user: String,
    /// The first 200 characters of its current body (empty once it is deleted).
    pub excerpt: String,
}

/// One emoji on a message and who added it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// Who reacted with it, in the order they did.
    pub users: Vec<String>,
}

/// One committed edit, deletion or reaction change of a message, at its own position `seq`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageChange {
    /// Its position, from the counter message ids come from.
    pub seq: i64,
    /// The message changed.
    pub id: i64,
    /// Its room's row id.
    pub room_id: i64,
    /// Its room's name.
    pub room: String,
    /// What changed.
    pub kind: ChangeKind,
}

/// What a [`MessageChange`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChangeKind {
    /// The body became `body` (empty once the message was deleted later).
    Edited {
        /// The new body.
        body: String,
        /// When, milliseconds since the Unix epoch.
        edited_ms: i64,
    },
    /// The message was deleted by `by` (a username).
    Deleted {
        /// Who deleted it.
        by: String,
    },
    /// `user` added (`on`) or removed a reaction.
    Reaction {
        /// Who reacted.
        user: String,
        /// With what.
        emoji: String,
        /// Added (`true`) or removed.
        on: bool,
    },
    /// The link preview arrived (`Some`) or its author removed it (`None`).
    Preview {
        /// The preview.
        preview: Option<Box<LinkPreview>>,
    },
}

/// One item of a `?since=` replay or of `/api/events`, in position order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// A message, in its current state.
    Message(StoredMessage),
    /// An edit or a deletion.
    Change(MessageChange),
}

impl Replayed {
    /// Its position: a message's id, a change's seq.
    pub fn position(&self) -> i64 {
        match self {
            Replayed::Message(m) => m.id,
            Replayed::Change(c) => c.seq,
        }
    }
}

/// A search hit: the message and a snippet with matches between U+0002 and U+0003.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The message.
    pub msg: StoredMessage,
    /// Part of the body around the match.
    pub snippet: String,
}

/// How a session token was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Browser session cookie.
    Cookie,
    /// Bearer token for bots.
    Bot,
}

impl SessionKind {
    /// Value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Cookie => "cookie",
            SessionKind::Bot => "bot",
        }
    }

    /// The kind stored as `s` in the `kind` column (`cookie` unless it says `bot`).
    pub fn parse(s: &str) -> Self {
        if s == "bot" {
            SessionKind::Bot
        } else {
            SessionKind::Cookie
        }
    }
}

/// A live session, as looked up by token.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Owner.
    pub user: User,
    /// Cookie or bot.
    pub kind: SessionKind,
    /// Last recorded activity (ms).
    pub last_seen_at: i64,
    /// Whether the owner is an administrator.
    pub is_admin: bool,
    /// When it ends whatever its use (ms; bot tokens may have none).
    pub expires_at: Option<i64>,
}

/// A session row to insert.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Owner.
    pub user_id: i64,
    /// Cookie or bot.
    pub kind: SessionKind,
    /// Bot token name.
    pub name: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Absolute expiry (ms), none for bot tokens.
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod push_tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn quiet_hours_parse_clock_times_only() {
        assert_eq!(
            QuietHours::parse("22:00", "07:30"),
            Some(QuietHours {
                start: 1320,
                end: 450
            })
        );
        assert_eq!(
            QuietHours::parse("7:05", "23:59").map(|q| q.start),
            Some(425)
        );
        for (a, b) in [
            ("24:00", "07:00"),
            ("22:60", "07:00"),
            ("22", "07:00"),
            ("22:0", "07:00"),
            ("-1:00", "07:00"),
            ("+1:00", "07:00"),
            ("22:00", "22:00"),
            ("", "07:00"),
            ("１２:00", "07:00"),
        ] {
            assert_eq!(QuietHours::parse(a, b), None, "{a}–{b}");
        }
        assert_eq!(QuietHours::clock(450), "07:30");
    }

    #[test]
    fn quiet_hours_follow_the_device_clock_across_midnight() {
        let night = QuietHours::parse("22:00", "07:00").unwrap();
        // Midnight UTC: a whole number of days after the epoch.
        let midnight_utc = 20_425 * 24 * HOUR;
        assert!(night.contains(midnight_utc, 0));
        assert!(night.contains(midnight_utc + 6 * HOUR + 59 * 60_000, 0));
        assert!(!night.contains(midnight_utc + 7 * HOUR, 0));
        assert!(!night.contains(midnight_utc + 21 * HOUR + 59 * 60_000, 0));
        assert!(night.contains(midnight_utc + 22 * HOUR, 0));
        // Noon UTC is 23:00 at UTC+11 and 01:00 at UTC−11.
        assert!(night.contains(midnight_utc + 12 * HOUR, 660));
        assert!(night.contains(midnight_utc + 12 * HOUR, -660));
        assert!(!night.contains(midnight_utc + 12 * HOUR, 60));
        // Before the epoch and at the extremes the arithmetic still holds.
        assert!(night.contains(-HOUR, 0));
        let lunch = QuietHours::parse("12:00", "13:00").unwrap();
        assert!(lunch.contains(midnight_utc + 12 * HOUR + 30 * 60_000, 0));
        assert!(!lunch.contains(midnight_utc + 13 * HOUR, 0));
        assert!(lunch.contains(midnight_utc - 2 * HOUR, MAX_UTC_OFFSET));
    }
}
