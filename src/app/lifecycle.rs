//! Editing, deleting and reacting to messages, independent of the transport. Each check runs inside the
//! writer's transaction, next to the row it is about, and a committed change takes a position
//! from the counter message ids come from, so a resuming client replays it in order.
//!
//! Who may do what: the author edits (within `messages.edit_window_minutes`); the author
//! (within the window), an administrator or the room's creator (its moderator, while a
//! member) deletes; any member reacts.
//!
//! Repeating an edit, a deletion or a reaction stores nothing and takes no position: the connection that
//! asked (alone) gets the current state as the frame of the change that made it. For an edit
//! to the body a message was sent with and never edited, that frame's `seq` is the message's
//! own id and its `edited_ts` the message's `ts`.

use crate::app::access;
use crate::app::error::{AppError, Code};
use crate::app::messages::trimmed_body;
use crate::app::rooms::RoomError;
use crate::app::App;
use crate::db::{now_ms, Change, ChangeKind, MessageChange, StoredMessage, Tx};
use crate::domain::{mentions_here, valid_emoji, valid_nonce, MAX_REACTIONS};
use crate::events::Audience;
use crate::hub::{ConnId, Hub};
use crate::model::{RoomKey, RoomKind};

/// Who edits or deletes, and which connection (if any) asked.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Their row id.
    pub user_id: i64,
    /// Their name (the `by` of a deletion).
    pub username: &'a str,
    /// The connection that asked; `None` over HTTP, where a repeat has nobody to echo to.
    pub origin: Option<ConnId>,
}

/// Replace the body of the actor's message `id` and broadcast `edited`; returns the message
/// as it now is. Refusals: `bad_frame` (nonce), `empty_message`, `message_too_long`,
/// `unknown_message` (no such id, not readable, deleted), `forbidden` (not the author).
pub async fn edit(
    state: &App,
    actor: Actor<'_>,
    id: i64,
    body: String,
    nonce: Option<String>,
) -> Result<StoredMessage, AppError> {
    check_nonce(nonce.as_deref())?;
    // As for `send`, a message with files may have no text: checked in the writer, which
    // knows whether it has any.
    let body = match trimmed_body(body) {
        Ok(body) => body,
        Err(e) if e.code == Code::EmptyMessage => String::new(),
        Err(e) => return Err(e),
    };
    let why = "You are editing messages too fast.";
    state.change_rate.spend(actor.user_id, why).await?;
    let (user_id, origin) = (actor.user_id, actor.origin);
    let window = state.config.messages.edit_window_ms();
    let hub = state.hub.clone();
    let (msg, mentioned) = state
        .db
        .transact_then(
            move |tx| edit_in(tx, (user_id, origin, window), &hub, id, body, nonce),
            origin.is_none(),
        )
        .await?;
    // Committed: the people the edit mentions for the first time are pushed it.
    crate::app::push::mentioned_by_edit(state, &msg, &mentioned);
    Ok(msg)
}

/// Delete message `id` (the author's own, or anyone's for an administrator) and broadcast
/// `deleted`. Refusals: `bad_frame` (nonce), `unknown_message`, `forbidden`.
pub async fn delete(
    state: &App,
    actor: Actor<'_>,
    id: i64,
    nonce: Option<String>,
) -> Result<(), AppError> {
    check_nonce(nonce.as_deref())?;
    let why = "You are deleting messages too fast.";
    state.change_rate.spend(actor.user_id, why).await?;
    let (user_id, origin) = (actor.user_id, actor.origin);
    let username = actor.username.to_string();
    let window = state.config.messages.edit_window_ms();
    let result = state
        .db
        .transact_then(
            move |tx| delete_in(tx, (user_id, &username, origin, window), id, nonce),
            origin.is_none(),
        )
        .await;
    if result.is_ok() {
        // Its files go once nothing else uses them.
        crate::app::uploads::collect_soon(state);
    }
    result
}

/// Message `id` in its current state if `user_id` may read it.
pub async fn get(state: &App, user_id: i64, id: i64) -> Result<StoredMessage, AppError> {
    let found = state
        .db
        .read_tx(move |tx| readable_message(tx, user_id, id))
        .await;
    found.map(|(m, _, _)| m)
}

/// Add (`on`) or take back the actor's reaction `emoji` to message `id` and broadcast
/// `reaction`. Refusals: `bad_frame` (nonce), `invalid_emoji`, `unknown_message` (no such id,
/// not readable, deleted), `not_a_member` (a public room not joined), `too_many_reactions`.
pub async fn react(
    state: &App,
    actor: Actor<'_>,
    id: i64,
    (emoji, on): (String, bool),
    nonce: Option<String>,
) -> Result<(), AppError> {
    check_nonce(nonce.as_deref())?;
    if !valid_emoji(&emoji) {
        return Err(AppError::new(
            Code::InvalidEmoji,
            "A reaction is 1 to 16 characters, without spaces.",
        ));
    }
    let why = "You are reacting too fast.";
    state.change_rate.spend(actor.user_id, why).await?;
    let (user_id, origin) = (actor.user_id, actor.origin);
    let username = actor.username.to_string();
    let result = state
        .db
        .transact_then(
            move |tx| {
                react_in(tx, (user_id, &username, origin), id, (&emoji, on), nonce).map(|c| ((), c))
            },
            origin.is_none(),
        )
        .await;
    result
}

/// Who reacts: the user, their name and the asking connection.
type Reactor<'a> = (i64, &'a str, Option<ConnId>);

fn react_in(
    tx: &Tx<'_>,
    (user_id, username, origin): Reactor<'_>,
    id: i64,
    (emoji, on): (&str, bool),
    nonce: Option<String>,
) -> Result<Vec<Change>, AppError> {
    let (msg, _, room) = readable_message(tx, user_id, id)?;
    if msg.deleted {
        return Err(unknown_message());
    }
    if !room.member {
        return Err(RoomError::NotAMember.into());
    }
    if tx.has_reaction(id, user_id, emoji)? == on {
        // Already so: the change that made it, or (never reacted) the message's own position.
        let change = tx
            .last_reaction_change(id, user_id, emoji)?
            .unwrap_or_else(|| MessageChange {
                seq: msg.id,
                id: msg.id,
                room_id: msg.room_id,
                room: msg.room.clone(),
                kind: ChangeKind::Reaction {
                    user: username.to_string(),
                    emoji: emoji.to_string(),
                    on,
                },
            });
        return Ok(echo(change, nonce, origin));
    }
    if on {
        let (distinct, present) = tx.emoji_on_message(id, emoji)?;
        if !present && distinct >= MAX_REACTIONS {
            return Err(AppError::new(
                Code::TooManyReactions,
                format!("A message can carry at most {MAX_REACTIONS} different reactions."),
            ));
        }
    }
    let change = tx.set_reaction(&msg, (user_id, username), emoji, on, now_ms())?;
    Ok(room_change(change, nonce))
}

/// Who edits: the user, the asking connection, and the edit window (`None` = unlimited).
type Editor = (i64, Option<ConnId>, Option<i64>);

/// An edit stored: the message as it now is and the users it mentions for the first time,
/// with the changes the room is told of.
type Edited = ((StoredMessage, Vec<i64>), Vec<Change>);

fn edit_in(
    tx: &Tx<'_>,
    (user_id, origin, window): Editor,
    hub: &Hub,
    id: i64,
    body: String,
    nonce: Option<String>,
) -> Result<Edited, AppError> {
    let (mut msg, author, _) = readable_message(tx, user_id, id)?;
    if msg.deleted {
        return Err(unknown_message());
    }
    if author != user_id {
        return Err(AppError::new(
            Code::Forbidden,
            "Only the author may edit a message.",
        ));
    }
    if body.is_empty() && msg.attachments.is_empty() {
        return Err(AppError::new(Code::EmptyMessage, "The message is empty."));
    }
    if msg.body == body {
        let change = match tx.last_change(id, "edit")? {
            Some(c) => c,
            None => never_edited(&msg),
        };
        return Ok(((msg, Vec::new()), echo(change, nonce, origin)));
    }
    let now = now_ms();
    check_window(&msg, window, now, "edited")?;
    let change = tx.edit_message(&msg, &body, user_id, now)?;
    let seq = change.seq;
    // An edit that adds `@here` reaches the members online now; one that keeps it pings
    // nobody new for it (and takes the mention from nobody).
    let here = if mentions_here(&body) && !mentions_here(&msg.body) {
        hub.online_in_room(msg.room_id)
    } else {
        Vec::new()
    };
    let newly_mentioned = tx.update_mentions(&msg, user_id, &body, &here)?;
    msg.body = body;
    msg.edited_ms = Some(now);
    let mut changes = room_change(change, nonce);
    if !newly_mentioned.is_empty() {
        changes.push(Change::Mentioned {
            room_id: msg.room_id,
            room: msg.room.clone(),
            id: msg.id,
            seq,
            author: msg.user.clone(),
            users: newly_mentioned.clone(),
        });
    }
    Ok(((msg, newly_mentioned), changes))
}

/// Who deletes: the user, their name, the asking connection, and the edit window.
type Deleter<'a> = (i64, &'a str, Option<ConnId>, Option<i64>);

fn delete_in(
    tx: &Tx<'_>,
    (user_id, username, origin, window): Deleter<'_>,
    id: i64,
    nonce: Option<String>,
) -> Result<((), Vec<Change>), AppError> {
    let (msg, author, room) = readable_message(tx, user_id, id)?;
    // Administrators and the room's moderator may delete anything at any time; authors
    // their own, within the window.
    let admin = window.is_some() || author != user_id;
    let admin = admin && (moderates(&room, username) || tx.user_is_admin(user_id)?);
    if author != user_id && !admin {
        return Err(AppError::new(
            Code::Forbidden,
            "Only the author, the room's creator or an administrator may delete a message.",
        ));
    }
    if !msg.deleted && !admin {
        check_window(&msg, window, now_ms(), "deleted")?;
    }
    if msg.deleted {
        let changes = match tx.last_change(id, "delete")? {
            Some(change) => echo(change, nonce, origin),
            None => Vec::new(),
        };
        return Ok(((), changes));
    }
    let change = tx.delete_message(&msg, user_id, username, now_ms())?;
    Ok(((), room_change(change, nonce)))
}

/// Whether `username` moderates `room`: a named room they created and still belong to.
fn moderates(room: &RoomKey, username: &str) -> bool {
    room.kind == RoomKind::Room && room.member && room.created_by.as_deref() == Some(username)
}

/// The message, its author's id and its room (as `user_id` sees it), when `user_id` may read
/// the room; otherwise `unknown_message`, whether or not it exists, so ids of private
/// messages reveal nothing.
fn readable_message(
    tx: &Tx<'_>,
    user_id: i64,
    id: i64,
) -> Result<(StoredMessage, i64, RoomKey), AppError> {
    let Some((msg, author)) = tx.message_by_id(id)? else {
        return Err(unknown_message());
    };
    match tx.room_key_by_id(msg.room_id, user_id)? {
        Some(room) if access::key_readable(&room) => Ok((msg, author, room)),
        _ => Err(unknown_message()),
    }
}

/// The state of a message never edited, as the frame of the change that made it: its sending.
fn never_edited(msg: &StoredMessage) -> MessageChange {
    MessageChange {
        seq: msg.id,
        id: msg.id,
        room_id: msg.room_id,
        room: msg.room.clone(),
        kind: ChangeKind::Edited {
            body: msg.body.clone(),
            edited_ms: msg.ts_ms,
        },
    }
}

/// A repeat: only the asking connection hears of it (nobody over HTTP).
fn echo(change: MessageChange, nonce: Option<String>, origin: Option<ConnId>) -> Vec<Change> {
    origin
        .map(|conn| Change::Message {
            change,
            nonce,
            audience: Audience::Only(conn),
        })
        .into_iter()
        .collect()
}

fn room_change(change: MessageChange, nonce: Option<String>) -> Vec<Change> {
    vec![Change::Message {
        change,
        nonce,
        audience: Audience::Room,
    }]
}

/// Refuse an author's change to a message older than the edit window.
fn check_window(
    msg: &StoredMessage,
    window: Option<i64>,
    now: i64,
    what: &str,
) -> Result<(), AppError> {
    match window {
        Some(ms) if now - msg.ts_ms > ms => Err(AppError::new(
            Code::Forbidden,
            format!(
                "Messages can be {what} only within {} minutes of sending.",
                ms / 60_000
            ),
        )),
        _ => Ok(()),
    }
}

fn check_nonce(nonce: Option<&str>) -> Result<(), AppError> {
    match nonce {
        Some(n) if !valid_nonce(n) => Err(AppError::new(
            Code::BadFrame,
            "The nonce may be at most 64 characters.",
        )),
        _ => Ok(()),
    }
}

fn unknown_message() -> AppError {
    AppError::new(Code::UnknownMessage, "There is no message with that id.")
}
