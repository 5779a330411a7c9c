//! `send`: post a message. The checks and the hand-off to the writer are the use case's
//! ([`messages::send`]); the connection adds what it knows (its rooms) and its per-user rate
//! limit.

use super::Context;
use crate::app::error::AppError;
use crate::app::messages::{self, Draft};

/// `{"type":"send","room","body","nonce"?,"reply_to"?,"attachments"?}`.
pub struct SendMessage {
    /// Room name.
    pub room: String,
    /// Message text, as sent.
    pub body: String,
    /// Client id for de-duplicating retries.
    pub nonce: Option<String>,
    /// The message it answers.
    pub reply_to: Option<i64>,
    /// Upload ids sent with it.
    pub attachments: Vec<String>,
}

impl SendMessage {
    /// The nonce refusals name: the frame's own, even one refused for its length.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Queue the message to the writer; the sender's acknowledgement is the `message` frame
    /// the hub sends once it is committed.
    pub async fn apply(self, cx: &mut Context) -> Result<(), AppError> {
        let cx = &*cx;
        let draft = Draft {
            user_id: cx.user.id,
            username: &cx.username,
            origin: cx.conn,
            room: &self.room,
            known: cx.rooms.get(&self.room).cloned(),
            body: self.body,
            nonce: self.nonce,
            reply_to: self.reply_to,
            attachments: self.attachments,
        };
        messages::send(&cx.state, draft, async || {
            let why = "You are sending messages too fast.";
            cx.state.message_rate.spend(cx.user.id, why).await
        })
        .await
    }
}
