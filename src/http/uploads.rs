//! Files over HTTP: `POST /api/uploads?name=` (the body is the file), `DELETE
//! /api/uploads/{id}` (an upload not sent yet), and the downloads `GET /api/uploads/{id}` and
//! `GET /api/uploads/{id}/thumbnail`.
//!
//! A download carries `Content-Security-Policy: sandbox`, `nosniff` and `Cache-Control:
//! private`; anything but a recognised raster image is `Content-Disposition: attachment`, so
//! an uploaded page or SVG never runs on Hearth's origin. It answers `If-None-Match` (the
//! entity tag is the file's SHA-256) and single byte ranges. Its bytes are not read here: the
//! response carries a [`FileBody`] that the accept loop streams from the file.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::{signed_in, signed_in_or_hidden, signed_in_write, with_state};
use crate::app::error::AppError;
use crate::app::uploads::{self, Download, NewFile};
use crate::app::App;
use crate::auth::Identity;
use crate::protocol::AttachmentView;

/// `POST /api/uploads` and `DELETE /api/uploads/{id}`: part of the JSON API.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let post = warp::path!("api" / "uploads")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_state(s.clone()))
        .and_then(
            |id: Identity, q: HashMap<String, String>, ct: Option<String>, len, body, state| async move {
                create(id, q, ct, len, body, state).await
            },
        );
    let delete = warp::path!("api" / "uploads" / String)
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s))
        .and_then(discard);
    post.or(delete).unify()
}

/// `GET /api/uploads/{id}`, `GET /api/uploads/{id}/thumbnail` and `GET
/// /api/users/{name}/avatar`: served with their own caching headers, outside the JSON API's
/// `no-store`.
pub fn downloads(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let file = warp::path!("api" / "uploads" / String).map(|id| (id, false));
    let thumb = warp::path!("api" / "uploads" / String / "thumbnail").map(|id| (id, true));
    let avatar = warp::path!("api" / "users" / String / "avatar")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state(s.clone()))
        .and_then(
            |name: String, _who: Identity, inm: Option<String>, state: App| async move {
                let d = crate::app::profiles::avatar(&state, &name).await?;
                serve(d, None, inm.as_deref()).await
            },
        );
    let files = file
        .or(thumb)
        .unify()
        .and(warp::get())
        .and(signed_in_or_hidden(s.clone(), uploads::unknown_upload))
        .and(warp::header::optional::<String>("range"))
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state(s.clone()))
        .and_then(
            |(id, thumb): (String, bool),
             who: Identity,
             range: Option<String>,
             inm: Option<String>,
             state: App| async move {
                let d = uploads::download(&state, who.user.id, &id, thumb).await?;
                serve(d, range.as_deref(), inm.as_deref()).await
            },
        );
    let preview = warp::path!("api" / "messages" / i64 / "preview" / "image")
        .and(warp::get())
        .and(signed_in_or_hidden(
            s.clone(),
            crate::app::previews::unknown_message,
        ))
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state(s))
        .and_then(
            |msg: i64, who: Identity, inm: Option<String>, state: App| async move {
                let d = crate::app::previews::image(&state, who.user.id, msg).await?;
                serve(d, None, inm.as_deref()).await
            },
        );
    files.or(avatar).unify().or(preview).unify()
}

async fn create(
    id: Identity,
    q: HashMap<String, String>,
    content_type: Option<String>,
    length: Option<u64>,
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>> + Send,
    state: App,
) -> Result<Response, Rejection> {
    let name = q.get("name").map(String::as_str).unwrap_or("");
    let f = NewFile {
        user_id: id.user.id,
        name,
        declared: content_type.as_deref(),
        length,
    };
    let a = uploads::upload(&state, f, body).await?;
    let reply = warp::reply::json(&json!({ "upload": AttachmentView::from(&a) }));
    Ok(warp::reply::with_status(reply, StatusCode::CREATED).into_response())
}

async fn discard(upload: String, id: Identity, state: App) -> Result<Response, Rejection> {
    uploads::discard(&state, id.user.id, &upload).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What the accept loop streams as a response's body: `len` bytes of `path` from `start`.
#[derive(Debug, Clone)]
pub struct FileBody {
    /// The file.
    pub path: PathBuf,
    /// First byte.
    pub start: u64,
    /// How many bytes.
    pub len: u64,
}

/// The response for `d`: 200, 206 (a range), 304 (the tag matches) or 416.
async fn serve(d: Download, range: Option<&str>, inm: Option<&str>) -> Result<Response, Rejection> {
    let size = tokio::fs::metadata(&d.path)
        .await
        .map_err(|e| {
            tracing::error!("stored file {} is missing: {e}", d.sha256);
            Rejection::from(AppError::new(
                crate::app::error::Code::UnknownUpload,
                "The file is missing from the server.",
            ))
        })?
        .len();
    let etag = format!("\"{}\"", d.sha256);
    let mut res = Response::new(Default::default());
    let h = res.headers_mut();
    h.insert(header::ETAG, value(&etag));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if inm.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(res);
    }
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, value(served_type(&d.mime, d.inline)));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_DISPOSITION,
        value(&content_disposition(&d.name, d.inline)),
    );
    let (start, len) = match range.map(|r| parse_range(r, size)) {
        None | Some(Range::Ignored) => (0, size),
        Some(Range::Unsatisfiable) => {
            *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            res.headers_mut()
                .insert(header::CONTENT_RANGE, value(&format!("bytes */{size}")));
            return Ok(res);
        }
        Some(Range::Bytes(start, end)) => {
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            res.headers_mut().insert(
                header::CONTENT_RANGE,
                value(&format!("bytes {start}-{end}/{size}")),
            );
            (start, end - start + 1)
        }
    };
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    res.extensions_mut().insert(FileBody {
        path: d.path,
        start,
        len,
    });
    Ok(res)
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The type a download is served with. A picture shown inline keeps its own; anything else
/// keeps the type its uploader declared only when no page would run or apply it from a tag
/// (documents, archives, sound, video, plain text). Scripts, styles, markup and the rest are
/// served as `application/octet-stream`, which `nosniff` keeps any page, this site's included,
/// from loading as code. (The upload object still says what was declared.)
fn served_type(declared: &str, inline: bool) -> &str {
    let (kind, sub) = declared.split_once('/').unwrap_or((declared, ""));
    let harmless = match kind {
        "audio" | "video" => true,
        "image" => !sub.contains("svg"),
        "text" => matches!(
            sub,
            "plain" | "csv" | "tab-separated-values" | "markdown" | "calendar" | "vcard"
        ),
        "application" => {
            matches!(
                sub,
                "pdf"
                    | "zip"
                    | "gzip"
                    | "x-gzip"
                    | "x-tar"
                    | "x-bzip2"
                    | "x-xz"
                    | "x-7z-compressed"
                    | "vnd.rar"
                    | "x-rar-compressed"
                    | "zstd"
                    | "epub+zip"
                    | "msword"
                    | "rtf"
                    | "octet-stream"
            ) || sub.starts_with("vnd.openxmlformats-officedocument.")
                || sub.starts_with("vnd.oasis.opendocument.")
                || sub.starts_with("vnd.ms-")
        }
        _ => false,
    };
    if inline || harmless {
        declared
    } else {
        "application/octet-stream"
    }
}

/// `inline` or `attachment`, with the name as an ASCII fallback and as UTF-8 (RFC 6266,
/// RFC 8187).
pub fn content_disposition(name: &str, inline: bool) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A `Range` header, as this server answers it.
#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// One range, first and last byte included.
    Bytes(u64, u64),
    /// Not one satisfiable byte range: answered with 416.
    Unsatisfiable,
    /// Malformed, or several ranges: the whole file is sent.
    Ignored,
}

/// Parse `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `size` bytes.
pub fn parse_range(header: &str, size: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Ignored;
    };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Ignored;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), num(a), num(b)) {
        (true, _, Some(n)) if n > 0 && size > 0 => Range::Bytes(size.saturating_sub(n), size - 1),
        (true, _, _) => Range::Unsatisfiable,
        (false, Some(start), _) if start >= size => Range::Unsatisfiable,
        (false, Some(start), None) if b.trim().is_empty() => Range::Bytes(start, size - 1),
        (false, Some(start), Some(end)) if end >= start => Range::Bytes(start, end.min(size - 1)),
        _ => Range::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Range::Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), Range::Bytes(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Range::Bytes(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=9-3", 100), Range::Ignored);
        assert_eq!(parse_range("items=0-1", 100), Range::Ignored);
    }

    #[test]
    fn dispositions_encode_any_name() {
        assert_eq!(
            content_disposition("a b.png", true),
            "inline; filename=\"a b.png\"; filename*=UTF-8''a%20b.png"
        );
        assert_eq!(
            content_disposition("résumé \"x\".html", false),
            "attachment; filename=\"r_sum_ _x_.html\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.html"
        );
    }
}
