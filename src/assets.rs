//! The browser UI, compiled into the binary from `assets/`.

use rust_embed::Embed;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

/// The Content-Security-Policy of every HTML page: nothing inline, nothing from elsewhere.
pub fn content_security_policy(ws_origin: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         font-src 'self'; connect-src 'self' {ws_origin}; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'; form-action 'self'"
    )
}

/// Whether a request path could name an embedded file. Anything with `..`, backslashes,
/// control characters, percent-escapes or empty segments is refused before the lookup.
fn acceptable(path: &str) -> bool {
    !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('%')
        && !path.bytes().any(|b| b.is_ascii_control())
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Whether `path` (from the site's root, empty for the index) names a file of the UI.
/// Nothing under `api/` does, whatever the embedded files are called.
pub fn exists(path: &str) -> bool {
    let path = if path.is_empty() { "index.html" } else { path };
    !path.starts_with("api/") && acceptable(path) && Assets::get(path).is_some()
}

/// Serve `path` (relative, "" for the index). `None` when no such asset exists.
pub fn serve(path: &str, if_none_match: Option<&str>, csp: &str) -> Option<Response> {
    let path = if path.is_empty() { "index.html" } else { path };
    if !acceptable(path) {
        return None;
    }
    let file = Assets::get(path)?;
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = match (mime.type_(), mime.subtype().as_str()) {
        (mime_guess::mime::TEXT, _) | (_, "javascript") | (_, "json") | (_, "svg") => {
            format!("{}; charset=utf-8", mime.essence_str())
        }
        _ => mime.essence_str().to_string(),
    };
    let mut res = if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(file.data.into_owned().into())
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Names are not fingerprinted: revalidate every time (cheap with the ETag).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if path.ends_with(".html") {
        if let Ok(v) = HeaderValue::from_str(csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_odd_paths_are_refused() {
        for bad in [
            "../Cargo.toml",
            "js/../../Cargo.toml",
            "%2e%2e/Cargo.toml",
            "%252e%252e/x",
            "..%5cCargo.toml",
            "a\\b",
            "index.html\0",
            "/etc/passwd",
            "js//app.js",
            "./index.html",
        ] {
            assert!(!acceptable(bad), "{bad:?}");
            assert!(serve(bad, None, "").is_none(), "{bad:?}");
        }
        assert!(acceptable("index.html") && acceptable("js/app.js"));
    }

    #[test]
    fn index_is_served_with_csp_and_etag() {
        let res = serve("", None, "default-src 'self'").expect("index exists");
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let again = serve("index.html", Some(&etag), "").unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
}
