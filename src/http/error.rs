//! API errors: [`AppError`]s and warp's own rejections rendered in one JSON shape, `{"error":{"code","message"}}`, for every refusal, including
//! warp's own rejections. Internal causes are logged, never sent.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reject::Rejection;
use warp::Reply;

use crate::app::error::AppError;
use crate::app::rooms::RoomError;
use crate::auth::AuthError;
use crate::db::DbError;

/// A refusal with its HTTP status, code and human message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// snake_case code.
    pub code: &'static str,
    /// Human sentence.
    pub message: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// Build an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Sign in first: no valid session cookie or bearer token.",
        )
    }

    /// 403 `bad_origin`.
    pub fn bad_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "bad_origin",
            "This request came from a page on another site and was refused.",
        )
    }

    /// 503 `unavailable` for storage failures; the cause is logged.
    pub fn storage(e: &DbError) -> Self {
        AppError::storage(e).into()
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
            warp::http::HeaderValue::from_static("no-store"),
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

/// The root `recover`: every rejection becomes the JSON error shape.
pub async fn handle_rejection(err: Rejection) -> Result<warp::reply::Response, Infallible> {
    let api = if let Some(e) = err.find::<ApiError>() {
        return Ok(e.to_reply());
    } else if err.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "Nothing here.")
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large.",
        )
    } else if err.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "Send a Content-Length header with the body.",
        )
    } else if err.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as application/json.",
        )
    } else if err.find::<warp::reject::InvalidQuery>().is_some()
        || err.find::<warp::reject::InvalidHeader>().is_some()
        || err.find::<warp::reject::MissingHeader>().is_some()
    {
        // Before MethodNotAllowed: `find` searches every combined rejection, and the GET-only
        // routes always add a MethodNotAllowed to a POST that failed elsewhere.
        ApiError::bad_request("The request is malformed.")
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "That method is not allowed here.",
        )
    } else {
        tracing::error!("unhandled rejection: {err:?}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on the server.",
        )
    };
    Ok(api.to_reply())
}
