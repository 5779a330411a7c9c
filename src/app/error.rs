//! One refusal type for every use case, and the one table of error codes. HTTP renders an
//! [`AppError`] as `{"error":{"code","message"}}` with the code's status; the WebSocket as an
//! `error` frame with the same code and sentence. A cause that is the server's own fault
//! (storage) is logged where it is converted, never sent.

use std::borrow::Cow;
use std::time::Duration;

use crate::app::rooms::RoomError;
use crate::auth::AuthError;
use crate::db::DbError;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $status:literal;)*) => {
        /// Every error code a client can receive, with the HTTP status it is sent with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The snake_case name clients see.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The HTTP status this code is sent with.
            pub const fn http_status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }
        }
    };
}

codes! {
    /// The request or its parameters are malformed.
    BadRequest = "bad_request", 400;
    /// A WebSocket frame is not valid JSON of a known type.
    BadFrame = "bad_frame", 400;
    /// The username is not valid.
    InvalidUsername = "invalid_username", 400;
    /// The password is too short.
    WeakPassword = "weak_password", 400;
    /// The password is too long.
    PasswordTooLong = "password_too_long", 400;
    /// The room name is not valid.
    InvalidRoomName = "invalid_room_name", 400;
    /// The topic is too long.
    TopicTooLong = "topic_too_long", 400;
    InvalidTopic = "invalid_topic", 400;
    /// `general` cannot be left.
    CannotLeave = "cannot_leave", 400;
    /// A DM with too many people.
    TooManyMembers = "too_many_members", 400;
    /// An empty message.
    EmptyMessage = "empty_message", 400;
    /// A message over the length limit.
    MessageTooLong = "message_too_long", 400;
    /// A search that could not finish within its budget.
    SearchTooBroad = "search_too_broad", 400;
    /// A reaction that is not 1–16 characters without whitespace or control characters.
    InvalidEmoji = "invalid_emoji", 400;
    /// A display name or status that is too long or holds control characters.
    InvalidProfile = "invalid_profile", 400;
    /// A picture that is not a PNG, JPEG, GIF or WebP image that decodes.
    BadImage = "bad_image", 400;
    /// Not a web address Hearth may send to (webhooks).
    BadUrl = "bad_url", 400;
    /// Not a push subscription Hearth can send to.
    BadEndpoint = "bad_endpoint", 400;
    /// No valid session cookie or token.
    Unauthorized = "unauthorized", 401;
    /// Wrong username or password.
    InvalidCredentials = "invalid_credentials", 401;
    /// A cookie-authenticated write from another site.
    BadOrigin = "bad_origin", 403;
    /// Allowed only to someone else (an administrator, the creator).
    Forbidden = "forbidden", 403;
    /// A public room the user has not joined.
    NotAMember = "not_a_member", 403;
    /// Registration is closed.
    RegistrationClosed = "registration_closed", 403;
    /// Registration needs an invitation.
    InviteRequired = "invite_required", 403;
    /// The invitation is unknown, used up or expired.
    InvalidInvite = "invalid_invite", 403;
    /// No such route.
    NotFound = "not_found", 404;
    /// No room the user may see has that name.
    UnknownRoom = "unknown_room", 404;
    /// No (enabled) account has that name.
    UnknownUser = "unknown_user", 404;
    /// No such session of this user.
    UnknownSession = "unknown_session", 404;
    /// No such invitation.
    UnknownInvite = "unknown_invite", 404;
    /// No message the user may read has that id.
    UnknownMessage = "unknown_message", 404;
    /// No upload the user may read (or attach) has that id.
    UnknownUpload = "unknown_upload", 404;
    /// No such incoming hook or outgoing webhook (or the wrong secret).
    UnknownHook = "unknown_hook", 404;
    /// No push subscription of this user has that endpoint.
    UnknownSubscription = "unknown_subscription", 404;
    /// The method is not allowed on this route.
    MethodNotAllowed = "method_not_allowed", 405;
    /// The body did not arrive in time.
    RequestTimeout = "request_timeout", 408;
    /// The username is taken.
    UsernameTaken = "username_taken", 409;
    /// A message already carries the most distinct emoji it may.
    TooManyReactions = "too_many_reactions", 409;
    /// Another room has that name.
    RoomExists = "room_exists", 409;
    /// The user holds the most bot tokens allowed.
    TooManyTokens = "too_many_tokens", 409;
    /// A room has as many hooks (or webhooks) as it may.
    TooManyHooks = "too_many_hooks", 409;
    /// A body without `Content-Length`.
    LengthRequired = "length_required", 411;
    /// A body over the size limit.
    PayloadTooLarge = "payload_too_large", 413;
    /// The upload would take the user past their storage quota.
    QuotaExceeded = "quota_exceeded", 413;
    /// An image with more pixels than Hearth decodes.
    ImageTooLarge = "image_too_large", 413;
    /// A body that is not JSON.
    UnsupportedMediaType = "unsupported_media_type", 415;
    /// Too many failed sign-ins.
    TooManyAttempts = "too_many_attempts", 429;
    /// Too many messages, rooms, DMs or invitations in a short time.
    RateLimited = "rate_limited", 429;
    /// The server is saturated (password hashing, searches); retry shortly.
    Busy = "busy", 429;
    /// Too many open connections for the user or the address.
    TooManyConnections = "too_many_connections", 429;
    /// An unexpected failure on the server.
    Internal = "internal", 500;
    /// Storage is unreachable or the server is stopping; retry shortly.
    Unavailable = "unavailable", 503;
}

/// A use case's refusal: a code from the table, the sentence shown to people, and when to try
/// again where that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// The code.
    pub code: Code,
    /// A sentence for people.
    pub message: Cow<'static, str>,
    /// When a retry may succeed (`Retry-After`, `retry_after_ms`).
    pub retry_after: Option<Duration>,
}

impl AppError {
    /// A refusal with no retry hint, but `unavailable`, which is always worth trying again
    /// and says when: in a second (unless [`AppError::retry_after`] says otherwise).
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        let retry_after = matches!(code, Code::Unavailable).then_some(Duration::from_secs(1));
        AppError {
            code,
            message: message.into(),
            retry_after,
        }
    }

    /// The same refusal, with a retry hint.
    pub fn retry_after(self, after: Duration) -> Self {
        AppError {
            retry_after: Some(after),
            ..self
        }
    }

    /// `bad_request` with this sentence.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// `unavailable` for a storage failure; the cause is logged here and not sent.
    pub fn storage(e: &DbError) -> Self {
        tracing::error!("storage error: {e}");
        Self::new(
            Code::Unavailable,
            "The server cannot reach its database right now. Try again shortly.",
        )
        .retry_after(Duration::from_secs(1))
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for AppError {}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::storage(&e)
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        let code = match &e {
            AuthError::InvalidUsername(_) => Code::InvalidUsername,
            AuthError::WeakPassword => Code::WeakPassword,
            AuthError::PasswordTooLong => Code::PasswordTooLong,
            AuthError::UsernameTaken => Code::UsernameTaken,
            AuthError::InvalidCredentials => Code::InvalidCredentials,
            AuthError::TooManyAttempts(secs) => {
                let after = Duration::from_secs(*secs);
                return AppError::new(Code::TooManyAttempts, e.to_string()).retry_after(after);
            }
            AuthError::TooManyTokens(_) => Code::TooManyTokens,
            AuthError::Busy => {
                let after = Duration::from_secs(1);
                return AppError::new(Code::Busy, e.to_string()).retry_after(after);
            }
            AuthError::RegistrationClosed => Code::RegistrationClosed,
            AuthError::InviteRequired => Code::InviteRequired,
            AuthError::InvalidInvite => Code::InvalidInvite,
            AuthError::Storage(db) => return AppError::storage(db),
        };
        AppError::new(code, e.to_string())
    }
}

impl From<RoomError> for AppError {
    fn from(e: RoomError) -> Self {
        let code = match &e {
            RoomError::UnknownRoom => Code::UnknownRoom,
            RoomError::NotAMember => Code::NotAMember,
            RoomError::UnknownUser(_) => Code::UnknownUser,
            RoomError::InvalidName(_) => Code::InvalidRoomName,
            RoomError::TopicTooLong => Code::TopicTooLong,
            RoomError::InvalidTopic => Code::InvalidTopic,
            RoomError::RoomExists => Code::RoomExists,
            RoomError::CannotLeave => Code::CannotLeave,
            RoomError::Forbidden(_) => Code::Forbidden,
            RoomError::BadRequest(_) => Code::BadRequest,
            RoomError::TooManyMembers => Code::TooManyMembers,
            RoomError::Quota(why, secs) => {
                let after = Duration::from_secs(*secs);
                return AppError::new(Code::RateLimited, *why).retry_after(after);
            }
            RoomError::Db(db) => return AppError::storage(db),
        };
        AppError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_snake_case_with_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!((400..600).contains(&code.http_status()), "{s}");
        }
    }

    #[test]
    fn refusals_keep_their_sentence_and_retry_hint() {
        let e = AppError::from(RoomError::Quota("Too many rooms.", 30));
        assert_eq!(e.code, Code::RateLimited);
        assert_eq!(e.message, "Too many rooms.");
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        let e = AppError::from(AuthError::UsernameTaken);
        assert_eq!(
            (e.code.as_str(), e.code.http_status()),
            ("username_taken", 409)
        );
    }
}
