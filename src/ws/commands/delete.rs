//! `delete`: delete a message (one's own, or anyone's for an administrator). The rules are the
//! use case's ([`lifecycle::delete`]); the acknowledgement is the `deleted` frame the hub sends
//! once the change is committed.

use super::Context;
use crate::app::error::AppError;
use crate::app::lifecycle;

/// `{"type":"delete","id","nonce"?}`.
pub struct DeleteMessage {
    /// Message id.
    pub id: i64,
    /// Client id, echoed on the frame and on refusals.
    pub nonce: Option<String>,
}

impl DeleteMessage {
    /// The nonce refusals name: the frame's own, even one refused for its length.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Delete the message; the hub's `deleted` frame is the answer.
    pub async fn apply(self, cx: &mut Context) -> Result<(), AppError> {
        let actor = cx.actor();
        lifecycle::delete(&cx.state, actor, self.id, self.nonce).await
    }
}
