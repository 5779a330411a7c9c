//! `react`: add or take back one's reaction to a message. The rules are the use case's
//! ([`lifecycle::react`]); the acknowledgement is the `reaction` frame the hub sends once the
//! change is committed.

use super::Context;
use crate::app::error::AppError;
use crate::app::lifecycle;

/// `{"type":"react","id","emoji","on","nonce"?}`.
pub struct React {
    /// Message id.
    pub id: i64,
    /// The emoji.
    pub emoji: String,
    /// Add it or take it back.
    pub on: bool,
    /// Client id, echoed on the frame and on refusals.
    pub nonce: Option<String>,
}

impl React {
    /// The nonce refusals name: the frame's own, even one refused for its length.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Change the reaction; the hub's `reaction` frame is the answer.
    pub async fn apply(self, cx: &mut Context) -> Result<(), AppError> {
        let actor = cx.actor();
        lifecycle::react(&cx.state, actor, self.id, (self.emoji, self.on), self.nonce).await
    }
}
