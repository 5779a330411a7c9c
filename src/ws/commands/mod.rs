//! The client frames as commands, one file each. [`Command::from_frame`] turns a parsed
//! [`ClientMsg`] into one and [`Command::apply`] carries it out for its connection. A command
//! writes nothing to the socket: what it changes reaches clients through the hub (a stored
//! message, a moved read marker, a typing notice), and a refusal comes back as an
//! [`AppError`], which the session renders as an `error` frame.
//!
//! - [`send`]: `send`, post a message.
//! - [`edit`]: `edit`, change the body of one's own message.
//! - [`delete`]: `delete`, delete a message.
//! - [`react`]: `react`, add or take back a reaction.
//! - [`read`]: `read`, move the read marker of a room.
//! - [`typing`]: `typing`, tell a room's other members the user is typing.
//!
//! A new frame is a `ClientMsg` variant, a file here with its struct and `apply`, and its arm in
//! [`Command`].

pub mod delete;
pub mod edit;
pub mod react;
pub mod read;
pub mod send;
pub mod typing;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use crate::app::error::AppError;
use crate::app::lifecycle::Actor;
use crate::app::App;
use crate::hub::ConnId;
use crate::model::User;
use crate::protocol::ClientMsg;
use delete::DeleteMessage;
use edit::EditMessage;
use react::React;
use read::MarkRead;
use send::SendMessage;
use typing::Typing;

/// Room name → (id, shared name for the frames): the rooms this connection may post to. Built
/// from the connection's first snapshot and kept in step with the hub's membership notices.
pub type Rooms = HashMap<String, (i64, Arc<str>)>;

/// What a command may see and change of its connection.
pub struct Context {
    /// Shared server state.
    pub state: App,
    /// The authenticated user.
    pub user: User,
    /// The user's name, shared by the frames.
    pub username: Arc<str>,
    /// This connection's id in the hub.
    pub conn: ConnId,
    /// The rooms this connection may post to.
    pub rooms: Rooms,
    /// When this connection last relayed a typing notice.
    pub last_typing: Option<Instant>,
}

impl Context {
    /// The user acting on messages through this connection (the one a repeat answers).
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            user_id: self.user.id,
            username: &self.username,
            origin: Some(self.conn),
        }
    }
}

/// One client frame, ready to be carried out.
pub enum Command {
    /// `send`.
    Send(SendMessage),
    /// `edit`.
    Edit(EditMessage),
    /// `delete`.
    Delete(DeleteMessage),
    /// `react`.
    React(React),
    /// `read`.
    Read(MarkRead),
    /// `typing`.
    Typing(Typing),
}

impl Command {
    /// The command a parsed frame asks for.
    pub fn from_frame(msg: ClientMsg) -> Self {
        match msg {
            ClientMsg::Send {
                room,
                body,
                nonce,
                reply_to,
                attachments,
            } => Command::Send(SendMessage {
                room,
                body,
                nonce,
                reply_to,
                attachments,
            }),
            ClientMsg::Edit { id, body, nonce } => Command::Edit(EditMessage { id, body, nonce }),
            ClientMsg::Delete { id, nonce } => Command::Delete(DeleteMessage { id, nonce }),
            ClientMsg::React {
                id,
                emoji,
                on,
                nonce,
            } => Command::React(React {
                id,
                emoji,
                on,
                nonce,
            }),
            ClientMsg::Read { room, id } => Command::Read(MarkRead { room, id }),
            ClientMsg::Typing { room } => Command::Typing(Typing { room }),
        }
    }

    /// The nonce a refusal of this command names, so the client can match it: the frame's own
    /// (one refused for its length too).
    pub fn nonce(&self) -> Option<&str> {
        match self {
            Command::Send(c) => c.nonce(),
            Command::Edit(c) => c.nonce(),
            Command::Delete(c) => c.nonce(),
            Command::React(c) => c.nonce(),
            Command::Read(_) | Command::Typing(_) => None,
        }
    }

    /// Carry the command out for the connection `cx`.
    pub async fn apply(self, cx: &mut Context) -> Result<(), AppError> {
        match self {
            Command::Send(c) => c.apply(cx).await,
            Command::Edit(c) => c.apply(cx).await,
            Command::Delete(c) => c.apply(cx).await,
            Command::React(c) => c.apply(cx).await,
            Command::Read(c) => c.apply(cx).await,
            Command::Typing(c) => c.apply(cx).await,
        }
    }
}
