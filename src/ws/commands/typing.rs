//! `typing`: relay a typing notice to the room's other members, at most one per
//! [`TYPING_EVERY`] per connection (a client repeats it while the user types).

use std::time::Duration;

use tokio::time::Instant;

use super::Context;
use crate::app::error::AppError;
use crate::app::messages;

/// Typing notices relayed per connection, at most one per this interval.
pub const TYPING_EVERY: Duration = Duration::from_millis(1000);

/// `{"type":"typing","room"}`.
pub struct Typing {
    /// Room name.
    pub room: String,
}

impl Typing {
    /// Relay the notice, unless this connection relayed one less than [`TYPING_EVERY`] ago;
    /// only a room the user may post to takes one.
    pub async fn apply(self, cx: &mut Context) -> Result<(), AppError> {
        let known = cx.rooms.get(&self.room).cloned();
        let (room_id, _) =
            messages::postable_room(&cx.state, cx.user.id, &self.room, known).await?;
        let now = Instant::now();
        if cx
            .last_typing
            .is_none_or(|t| now.duration_since(t) >= TYPING_EVERY)
        {
            cx.last_typing = Some(now);
            cx.state
                .hub
                .typing(room_id, &self.room, cx.user.id, &cx.user.username);
        }
        Ok(())
    }
}
