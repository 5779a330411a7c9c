//! `delete`: delete a message (one's own, or anyone's for an administrator). The rules are the
//! use case's ([`lifecycle::delete`]); the acknowledgement is the `deleted` frame the hub sends
//! once the change is committed.

use super::Context;
use crate::app::error::AppError;
use crate::app::lifecycle;
use crate::domain::valid_nonce;

/// `{"type":"delete","id","nonce"?}`.
pub struct DeleteMessage {
    /// Message id.
    pub id: i64,
    /// Client id, echoed on the frame and on refusals.
    pub nonce: Option<String>,
}

impl DeleteMessage {
    /// The nonce refusals name: none when the nonce itself is what is refused.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref().filter(|n| valid_nonce(n))
    }

    /// Delete the message; the hub's `deleted` frame is the answer.
    pub async fn apply(self, cx: &mut Context) -> Result<(), AppError> {
        let actor = cx.actor();
        lifecycle::delete(&cx.state, actor, self.id, self.nonce).await
    }
}
