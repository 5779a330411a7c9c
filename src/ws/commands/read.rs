//! `read`: move the user's read marker of a room forward ([`rooms::mark_read`]); every
//! connection of the user hears of it from the hub.

use std::time::Duration;

use super::Context;
use crate::app::error::{AppError, Code};
use crate::app::rooms::{self, RoomError};

/// `{"type":"read","room","id"}`.
pub struct MarkRead {
    /// Room name.
    pub room: String,
    /// Highest message id read.
    pub id: i64,
}

impl MarkRead {
    /// Store the marker.
    pub async fn apply(self, cx: &mut Context) -> Result<(), AppError> {
        if self.id < 0 {
            return Err(AppError::new(
                Code::BadFrame,
                "`id` must be a message id (≥ 0).",
            ));
        }
        // Awaited here, so a client flooding `read` frames waits for its own commits.
        match rooms::mark_read(&cx.state, cx.user.id, (&self.room, self.id), true).await {
            Ok(_) => Ok(()),
            Err(RoomError::Db(e)) => {
                tracing::error!("read marker not stored: {e}");
                Err(AppError::new(
                    Code::Unavailable,
                    "The read marker could not be stored; try again.",
                )
                .retry_after(Duration::from_secs(1)))
            }
            Err(e) => Err(e.into()),
        }
    }
}
