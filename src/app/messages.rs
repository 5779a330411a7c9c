//! Posting a message, independent of the transport: check the nonce and the body, resolve the
//! room the author may post to (the [`access`] rule), and queue the message to the writer.
//! Success returns nothing: the acknowledgement is the committed message itself, fanned out to
//! the room (the sender's connection included) once the writer has stored it.
//!
//! This is the hot path, so it costs what the checks need and no more: a room the caller
//! already knows the author belongs to is passed in and not looked up, and a body with nothing
//! to trim is stored as it came, without a copy.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::access::{self, Access};
use crate::app::error::{AppError, Code};
use crate::app::rooms::RoomError;
use crate::app::App;
use tokio::sync::oneshot;

use crate::db::{NewMessage, StoredMessage};
use crate::domain::{mentions_here, parse_body, valid_nonce, BodyProblem};
use crate::events::{Refusal, SendOutcome};
use crate::hub::ConnId;

/// A room the author may post to: its id and its name, shared by the frames.
pub type Postable = (i64, Arc<str>);

/// A message as its author sent it, before any check.
pub struct Draft<'a> {
    /// The author's row id.
    pub user_id: i64,
    /// The author's name, shared by the frames.
    pub username: &'a Arc<str>,
    /// The connection it came from: the writer answers this one (acknowledgement, errors).
    pub origin: ConnId,
    /// The room's name as the author gave it.
    pub room: &'a str,
    /// The room, when the caller already knows the author is a member (its cache of the rooms
    /// it was told about); `None` looks it up.
    pub known: Option<Postable>,
    /// The body as sent; trimmed here.
    pub body: String,
    /// The author's nonce for de-duplicating retries, if any.
    pub nonce: Option<String>,
    /// The message it answers, if any (checked by the writer: same room, not deleted).
    pub reply_to: Option<i64>,
    /// Ids of the author's uploads to send with it (at most [`MAX_ATTACHMENTS`]; checked by
    /// the writer: the author's, never sent).
    pub attachments: Vec<String>,
}

/// Most files one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;

/// Check `draft`, ask `admit` (the caller's rate limit: asked only once every other check has
/// passed, so a refused message costs no token), and queue the message to the writer. The
/// refusals, in the order they are checked: `bad_frame` (nonce), `unknown_room`,
/// `not_a_member`, `unavailable` (room lookup), `empty_message`, `message_too_long`, whatever
/// `admit` says, and `unavailable` (retry in 1 s) when the writer is shutting down.
pub async fn send<F>(state: &App, draft: Draft<'_>, admit: F) -> Result<(), AppError>
where
    F: AsyncFnOnce() -> Result<(), AppError>,
{
    queue(state, draft, admit, None).await
}

/// [`send`] for a caller with no connection to acknowledge on (HTTP): wait until the writer's
/// transaction is over and return the message as stored (or as stored before under the same
/// nonce). Refusals as for [`send`], plus those only the transaction sees: `not_a_member` /
/// `unknown_room` (left meanwhile), `unknown_message` (`reply_to` not in the room, or
/// deleted) and `unavailable` (the write failed).
pub async fn post<F>(state: &App, draft: Draft<'_>, admit: F) -> Result<StoredMessage, AppError>
where
    F: AsyncFnOnce() -> Result<(), AppError>,
{
    let (answer, outcome) = oneshot::channel();
    queue(state, draft, admit, Some(answer)).await?;
    match outcome.await {
        Ok(SendOutcome::Stored(msg)) => {
            state.hub.fanned_out(msg.id).await;
            Ok(msg)
        }
        Ok(SendOutcome::Refused(Refusal::NotMember { public: true })) => {
            Err(RoomError::NotAMember.into())
        }
        Ok(SendOutcome::Refused(Refusal::NotMember { public: false })) => {
            Err(RoomError::UnknownRoom.into())
        }
        Ok(SendOutcome::Refused(Refusal::UnknownReply)) => Err(AppError::new(
            Code::UnknownMessage,
            "The message you replied to is not in this room, or was deleted.",
        )),
        Ok(SendOutcome::Refused(Refusal::UnknownUpload)) => Err(AppError::new(
            Code::UnknownUpload,
            "An attached file is not one of your uploads, or was sent already.",
        )),
        Ok(SendOutcome::Failed) | Err(_) => Err(AppError::new(
            Code::Unavailable,
            "The message could not be stored. It was not sent; try again.",
        )
        .retry_after(Duration::from_secs(1))),
    }
}

async fn queue<F>(
    state: &App,
    draft: Draft<'_>,
    admit: F,
    answer: Option<oneshot::Sender<SendOutcome>>,
) -> Result<(), AppError>
where
    F: AsyncFnOnce() -> Result<(), AppError>,
{
    if draft.nonce.as_deref().is_some_and(|n| !valid_nonce(n)) {
        // A frame's field over the socket; a body's field over HTTP (origin 0).
        let code = if draft.origin == 0 {
            Code::BadRequest
        } else {
            Code::BadFrame
        };
        return Err(AppError::new(
            code,
            "The nonce may be at most 64 characters.",
        ));
    }
    if draft.attachments.len() > MAX_ATTACHMENTS {
        return Err(AppError::new(
            Code::UnknownUpload,
            "A message may carry at most 10 files.",
        ));
    }
    let (room_id, room) = postable_room(state, draft.user_id, draft.room, draft.known).await?;
    let body = if draft.attachments.is_empty() {
        trimmed_body(draft.body)?
    } else {
        trimmed_body(draft.body).or_else(|e| match e.code {
            // A message with files may have no text.
            Code::EmptyMessage => Ok(String::new()),
            _ => Err(e),
        })?
    };
    admit().await?;
    // `@here` reaches the members online now, as the hub sees them at this moment.
    let here = if mentions_here(&body) {
        state.hub.online_in_room(room_id)
    } else {
        Vec::new()
    };
    let msg = NewMessage {
        room_id,
        room,
        user_id: draft.user_id,
        username: draft.username.clone(),
        body,
        nonce: draft.nonce,
        reply_to: draft.reply_to,
        attachments: draft.attachments,
        here,
        origin: draft.origin,
        answer,
        queued_at: Instant::now(),
    };
    state.db.submit(msg).await.map_err(|_| {
        AppError::new(
            Code::Unavailable,
            "The server is shutting down; the message was not stored.",
        )
        .retry_after(Duration::from_secs(1))
    })
}

/// The room `name` if `user_id` may post to it: `known` when the caller has it already,
/// otherwise looked up and checked with the [`access`] rule (`not_a_member` for a public room
/// not joined, `unknown_room` for anything the user may not see).
pub async fn postable_room(
    state: &App,
    user_id: i64,
    name: &str,
    known: Option<Postable>,
) -> Result<Postable, AppError> {
    if let Some(known) = known {
        return Ok(known);
    }
    match state.db.room_key(name, user_id).await {
        Ok(Some(r)) => match access::key_access(&r) {
            // Joined a moment ago; the hub's notice is still on its way to the caller.
            Access::Member => Ok((r.id, Arc::from(r.name.as_str()))),
            Access::Preview => Err(RoomError::NotAMember.into()),
            Access::Hidden => Err(RoomError::UnknownRoom.into()),
        },
        Ok(None) => Err(RoomError::UnknownRoom.into()),
        Err(e) => {
            tracing::error!("room lookup failed: {e}");
            Err(AppError::new(
                Code::Unavailable,
                "The server could not look up the room.",
            ))
        }
    }
}

/// The body to store: trimmed, checked, and the sent string itself when there was nothing to
/// trim (the usual case).
pub(crate) fn trimmed_body(raw: String) -> Result<String, AppError> {
    let changed = match parse_body(&raw) {
        Ok(Cow::Borrowed(b)) if b.len() == raw.len() => None,
        Ok(b) => Some(b.into_owned()),
        Err(BodyProblem::Empty) => {
            return Err(AppError::new(Code::EmptyMessage, "The message is empty."));
        }
        Err(BodyProblem::TooLong) => {
            return Err(AppError::new(
                Code::MessageTooLong,
                "Messages may be at most 4000 characters.",
            ));
        }
    };
    Ok(changed.unwrap_or(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_trimmed_and_checked() {
        assert_eq!(trimmed_body("hi".into()).as_deref(), Ok("hi"));
        assert_eq!(trimmed_body("  hi \n".into()).as_deref(), Ok("hi"));
        assert_eq!(trimmed_body(" \u{2}x\u{3} ".into()).as_deref(), Ok("x"));
        let code = |raw: String| trimmed_body(raw).map_err(|e| e.code.as_str());
        assert_eq!(code(" \n ".into()), Err("empty_message"));
        assert_eq!(code("a".repeat(4001)), Err("message_too_long"));
    }
}
