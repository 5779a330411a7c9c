//! The browser UI, compiled into the binary from `assets/`. Its text files are embedded
//! gzipped (build.rs): a browser that accepts gzip gets those bytes as they are, any other
//! client the text unpacked.

use std::io::Read;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

// `struct Assets`, over build.rs' copy of `assets/`.
include!(concat!(env!("OUT_DIR"), "/ui.rs"));

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

/// The embedded file for `path` and whether it is stored gzipped (under `path.gz`, a name
/// no request reaches itself).
fn lookup(path: &str) -> Option<(rust_embed::EmbeddedFile, bool)> {
    if !acceptable(path) || path.ends_with(".gz") {
        return None;
    }
    match Assets::get(path) {
        Some(file) => Some((file, false)),
        None => Assets::get(&format!("{path}.gz")).map(|file| (file, true)),
    }
}

/// Whether `path` (from the site's root, empty for the index) names a file of the UI.
/// Nothing under `api/` does, whatever the embedded files are called.
pub fn exists(path: &str) -> bool {
    let path = if path.is_empty() { "index.html" } else { path };
    !path.starts_with("api/") && lookup(path).is_some()
}

/// Whether an `Accept-Encoding` header admits gzip: `gzip` (or `x-gzip`) listed with a
/// weight above 0, or else `*` with one.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let mut any = false;
    for item in accept_encoding.unwrap_or("").split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weight = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
            })
            .next()
            .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return weight > 0.0;
        }
        if coding == "*" {
            any = weight > 0.0;
        }
    }
    any
}

/// Serve `path` (relative, "" for the index), gzipped when `gzip` (the client accepts it)
/// and the file is text. `None` when no such asset exists.
pub fn serve(path: &str, if_none_match: Option<&str>, gzip: bool, csp: &str) -> Option<Response> {
    let path = if path.is_empty() { "index.html" } else { path };
    let (file, packed) = lookup(path)?;
    let send_packed = packed && gzip;
    let hash: String = file
        .metadata
        .sha256_hash()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    // The two forms of a text file are different representations: each has its own tag.
    let etag = if packed && !send_packed {
        format!("\"{hash}-text\"")
    } else {
        format!("\"{hash}\"")
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = match (mime.type_(), mime.subtype().as_str()) {
        (mime_guess::mime::TEXT, _) | (_, "javascript") | (_, "json") | (_, "svg") => {
            format!("{}; charset=utf-8", mime.essence_str())
        }
        _ => mime.essence_str().to_string(),
    };
    let mut res = if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if packed && !send_packed {
        Response::new(unpack(&file.data)?.into())
    } else {
        Response::new(file.data.into_owned().into())
    };
    let h = res.headers_mut();
    if packed {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if send_packed {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
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

/// A text file as written (build.rs packed it, so this does not fail).
fn unpack(packed: &[u8]) -> Option<Vec<u8>> {
    let mut text = Vec::with_capacity(packed.len() * 4);
    flate2::read::GzDecoder::new(packed)
        .read_to_end(&mut text)
        .ok()?;
    Some(text)
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
            assert!(serve(bad, None, true, "").is_none(), "{bad:?}");
        }
        assert!(acceptable("index.html") && acceptable("js/app.js"));
    }

    #[test]
    fn index_is_served_with_csp_and_etag() {
        let res = serve("", None, false, "default-src 'self'").expect("index exists");
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let again = serve("index.html", Some(&etag), false, "").unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn gzip_is_weighed_as_the_header_says() {
        for yes in [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, GZIP;q=0.5",
            "*",
            "deflate, *;q=0.1",
            "x-gzip",
        ] {
            assert!(accepts_gzip(Some(yes)), "{yes:?}");
        }
        for no in [
            "",
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip; q=0.0, *",
            "*;q=0",
            "gzip;q=x",
        ] {
            assert!(!accepts_gzip(Some(no)), "{no:?}");
        }
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn stored_names_are_not_reachable() {
        assert!(exists("js/chat.js"));
        assert!(!exists("js/chat.js.gz"));
        assert!(serve("js/chat.js.gz", None, true, "").is_none());
    }
}
