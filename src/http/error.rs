//! API errors: [`AppError`]s and warp's own rejections rendered in one JSON shape,
//! `{"error":{"code","message"}}`, for every refusal. The code and its status come from the one
//! table in [`crate::app::error`]; internal causes are logged, never sent.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reject::Rejection;
use warp::Reply;

use crate::app::error::{AppError, Code};
use crate::app::rooms::RoomError;
use crate::auth::AuthError;
use crate::db::DbError;

/// A refusal as HTTP sends it: an [`AppError`] with the status of its code. Built only from an
/// `AppError` (the fields are private), so a code always goes out with its status from the
/// table; [`ApiError::with_status`] is the one way around it, for what HTTP itself prescribes.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for `Retry-After` (429, 503).
    retry_after: Option<u64>,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// The same refusal sent with another status than its code's, for the few places where
    /// HTTP itself prescribes one (426 for a WebSocket version we do not speak).
    pub fn with_status(self, status: StatusCode) -> Self {
        ApiError { status, ..self }
    }

    /// Turn into a rejection.
    pub fn reject(self) -> Rejection {
        warp::reject::custom(self)
    }

    /// Render the JSON reply.
    pub fn to_reply(&self) -> warp::reply::Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
        }
        let json = warp::reply::json(&Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        });
        let mut res = warp::reply::with_status(json, self.status).into_response();
        res.headers_mut().insert(
            warp::http::header::CACHE_CONTROL,
            // `private` as well: a refused download is still an answer about one user's file.
            warp::http::HeaderValue::from_static("private, no-store"),
        );
        // A refusal is never a page to run: opened in a tab (a file's URL one may not read,
        // say) it is sandboxed like every file Hearth serves.
        res.headers_mut().insert(
            warp::http::header::CONTENT_SECURITY_POLICY,
            warp::http::HeaderValue::from_static("sandbox"),
        );
        if let Some(secs) = self.retry_after {
            if let Ok(v) = secs.to_string().parse() {
                res.headers_mut().insert("retry-after", v);
            }
        }
        res
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let status =
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            code: e.code.as_str(),
            message: e.message.into_owned(),
            // Whole seconds, rounded up: a client that waits this long will not be refused.
            retry_after: e
                .retry_after
                .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        AppError::from(e).into()
    }
}

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        AppError::from(e).into()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        AppError::from(e).into()
    }
}

// Handlers return `Result<Response, Rejection>` and call use cases that refuse with
// `AppError` (or an error that becomes one): these let `?` render a refusal on the spot.
// (`ApiError` itself is a `Reject`, which warp already turns into a `Rejection`.)

impl From<AppError> for Rejection {
    fn from(e: AppError) -> Self {
        ApiError::from(e).reject()
    }
}

impl From<RoomError> for Rejection {
    fn from(e: RoomError) -> Self {
        ApiError::from(e).reject()
    }
}

impl From<AuthError> for Rejection {
    fn from(e: AuthError) -> Self {
        ApiError::from(e).reject()
    }
}

impl From<DbError> for Rejection {
    fn from(e: DbError) -> Self {
        ApiError::from(e).reject()
    }
}

/// 401 `unauthorized`: no valid session cookie or bearer token.
pub fn unauthorized() -> AppError {
    AppError::new(
        Code::Unauthorized,
        "Sign in first: no valid session cookie or bearer token.",
    )
}

/// 403 `bad_origin`: a write from a page on another site.
pub fn bad_origin() -> AppError {
    AppError::new(
        Code::BadOrigin,
        "This request came from a page on another site and was refused.",
    )
}

/// The root `recover`: every rejection becomes the JSON error shape.
pub async fn handle_rejection(err: Rejection) -> Result<warp::reply::Response, Infallible> {
    let reply = match err.find::<ApiError>() {
        Some(e) => e.to_reply(),
        None => ApiError::from(warp_refusal(&err)).to_reply(),
    };
    Ok(reply)
}

/// One of warp's own rejections as a refusal from the table (each of these codes is sent with
/// the status warp meant, so none needs another).
fn warp_refusal(err: &Rejection) -> AppError {
    if err.is_not_found() {
        AppError::new(Code::NotFound, "Nothing here.")
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        AppError::new(Code::PayloadTooLarge, "The request body is too large.")
    } else if err.find::<warp::reject::LengthRequired>().is_some() {
        AppError::new(
            Code::LengthRequired,
            "Send a Content-Length header with the body.",
        )
    } else if err.find::<warp::reject::UnsupportedMediaType>().is_some() {
        AppError::new(
            Code::UnsupportedMediaType,
            "Send the body as application/json.",
        )
    } else if err.find::<warp::reject::InvalidQuery>().is_some()
        || err.find::<warp::reject::InvalidHeader>().is_some()
        || err.find::<warp::reject::MissingHeader>().is_some()
    {
        // Before MethodNotAllowed: `find` searches every combined rejection, and the GET-only
        // routes always add a MethodNotAllowed to a POST that failed elsewhere.
        AppError::bad_request("The request is malformed.")
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        AppError::new(Code::MethodNotAllowed, "That method is not allowed here.")
    } else {
        tracing::error!("unhandled rejection: {err:?}");
        AppError::new(Code::Internal, "Something went wrong on the server.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_come_from_the_table() {
        for &code in Code::ALL {
            let e = ApiError::from(AppError::new(code, "x"));
            assert_eq!(e.status.as_u16(), code.http_status(), "{}", code.as_str());
            assert_eq!(e.code, code.as_str());
        }
        let e =
            ApiError::from(AppError::bad_request("x")).with_status(StatusCode::UPGRADE_REQUIRED);
        assert_eq!((e.status.as_u16(), e.code), (426, "bad_request"));
    }

    #[test]
    fn retry_hints_round_up_to_whole_seconds() {
        let after = |ms| {
            let e =
                AppError::new(Code::Busy, "x").retry_after(std::time::Duration::from_millis(ms));
            ApiError::from(e).retry_after
        };
        assert_eq!(after(1000), Some(1));
        assert_eq!(after(1001), Some(2));
        assert_eq!(after(0), Some(0));
    }
}
