//! `edit`: change the body of one's own message. The rules are the use case's
//! ([`lifecycle::edit`]); the acknowledgement is the `edited` frame the hub sends once the
//! change is committed.

use super::Context;
use crate::app::error::AppError;
use crate::app::lifecycle;

/// `{"type":"edit","id","body","nonce"?}`.
pub struct EditMessage {
    /// Message id.
    pub id: i64,
    /// The new text, as sent.
    pub body: String,
    /// Client id, echoed on the frame and on refusals.
    pub nonce: Option<String>,
}

impl EditMessage {
    /// The nonce refusals name: the frame's own, even one refused for its length.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Edit the message; the hub's `edited` frame is the answer.
    pub async fn apply(self, cx: &mut Context) -> Result<(), AppError> {
        let actor = cx.actor();
        lifecycle::edit(&cx.state, actor, self.id, self.body, self.nonce)
            .await
            .map(|_| ())
    }
}
