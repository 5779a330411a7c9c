//! The embedded browser UI: security headers, caching, and no way out of the asset folder.

use reqwest::Method;
use serde_json::Value;

use crate::common::{assert_error, assert_error_shape, raw_get, text, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_html_with_a_strict_content_security_policy_and_nosniff() {
    let app = TestApp::start().await;

    let res = app.get("/").await;

    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    let ct = h["content-type"].to_str().unwrap();
    assert!(ct.starts_with("text/html"), "content type {ct:?}");
    let csp = h
        .get("content-security-policy")
        .expect("a Content-Security-Policy header")
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive:?}: {csp}");
    }
    assert!(!csp.contains("'unsafe-inline'"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let body = text(res).await;
    assert!(body.to_ascii_lowercase().contains("<html"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_responses_and_errors_carry_nosniff_too() {
    let app = TestApp::start().await;

    for path in ["/api/me", "/healthz", "/config.js", "/nope"] {
        let res = app.get(path).await;

        assert_eq!(
            res.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_if_none_match_is_answered_304() {
    let app = TestApp::start().await;
    let first = app.get("/").await;
    let etag = first
        .headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_string();

    let res = app
        .send(app.http.get(app.url("/")).header("if-none-match", &etag))
        .await;

    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
    assert!(text(res).await.is_empty());
    let stale = app
        .send(
            app.http
                .get(app.url("/"))
                .header("if-none-match", "\"stale\""),
        )
        .await;
    assert_eq!(stale.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_referenced_by_the_index_are_served_as_javascript() {
    let app = TestApp::start().await;
    let index = text(app.get("/").await).await;
    let scripts: Vec<&str> = index
        .split("src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|s| s.ends_with(".js"))
        .collect();
    assert!(!scripts.is_empty(), "the index loads scripts: {index}");
    // The service worker is registered from a module (js/offline.js), not the index.
    let scripts: Vec<&str> = scripts.into_iter().chain(["sw.js"]).collect();

    for src in scripts {
        let path = if src.starts_with('/') {
            src.to_string()
        } else {
            format!("/{src}")
        };
        let res = app.get(&path).await;

        assert_eq!(res.status(), 200, "{path}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.contains("javascript"), "{path}: {ct}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_attempts_are_404_with_the_json_error_shape() {
    let app = TestApp::start().await;

    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/Cargo.toml",
        "/%252e%252e/x",
        "/..%5cCargo.toml",
        "/..%2fCargo.toml",
        "/js/../../Cargo.toml",
        "/js/../../../../etc/passwd",
        "/./index.html/..",
        "/js//app.js",
        "/..\\Cargo.toml",
    ] {
        let res = raw_get(app.addr, path).await;

        assert!(
            res.status == 404 || res.status == 400,
            "{path}: status {} body {}",
            res.status,
            res.body
        );
        assert!(!res.body.contains("[package]"), "{path} leaked Cargo.toml");
        if res.status == 404 {
            let body: Value = serde_json::from_str(&res.body)
                .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", res.body));
            assert_error_shape(&body, "not_found");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_traversal_paths_of_the_contract_are_exactly_404() {
    let app = TestApp::start().await;

    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%252e%252e/x",
        "/..%5cCargo.toml",
        "/js/../../Cargo.toml",
    ] {
        let res = raw_get(app.addr, path).await;

        assert_eq!(res.status, 404, "{path}: {}", res.body);
        let body: Value = serde_json::from_str(&res.body).expect("JSON");
        assert_error_shape(&body, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_404_with_the_json_error_shape() {
    let app = TestApp::start().await;

    for path in [
        "/nope",
        "/js/nope.js",
        "/api/nope",
        "/api",
        "/Cargo.toml",
        "/src/lib.rs",
    ] {
        let res = app.get(path).await;

        assert_error(res, 404, "not_found").await;
    }
}

/// A path that is no route and no file of the UI is 404 whatever the method; a known path
/// asked with a method it does not take is 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_404_for_every_method_and_a_known_one_405() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;

    for (method, path) in [
        (Method::DELETE, "/api/nope"),
        (Method::POST, "/nope"),
        (Method::PUT, "/js/nope.js"),
        (Method::DELETE, "/api/messages/abc"),
        (Method::PATCH, "/api/messages/abc"),
        (Method::POST, "/api/rooms/general/nope"),
    ] {
        let res = app
            .send(app.request(method.clone(), path, Some(&alice)))
            .await;
        assert_error(res, 404, "not_found").await;
    }
    for (method, path) in [
        (Method::DELETE, "/"),
        (Method::POST, "/index.html"),
        (Method::PUT, "/api/messages/1"),
        (Method::DELETE, "/api/me"),
        (Method::POST, "/config.js"),
    ] {
        let res = app
            .send(app.request(method.clone(), path, Some(&alice)))
            .await;
        assert_error(res, 405, "method_not_allowed").await;
    }
}

/// The app can be installed: the index links a web app manifest whose icons are served, at
/// the sizes it says, and whose addresses are relative (so they hold under a path prefix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_manifest_and_its_icons_are_served() {
    let app = TestApp::start().await;
    let index = app.get("/").await.text().await.unwrap();
    assert!(index.contains(r#"<link rel="manifest" href="manifest.webmanifest">"#));
    let res = app.get("/manifest.webmanifest").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/manifest+json");
    let manifest: Value = res.json().await.unwrap();
    assert_eq!(manifest["display"], "standalone");
    assert_eq!(manifest["start_url"], "./");
    let icons = manifest["icons"].as_array().unwrap();
    assert!(icons
        .iter()
        .any(|i| i["sizes"] == "512x512" && i["purpose"] == "maskable"));
    for icon in icons {
        let src = icon["src"].as_str().unwrap();
        assert!(!src.starts_with('/'), "relative: {src}");
        let res = app.get(&format!("/{src}")).await;
        assert_eq!(res.status(), 200, "{src}");
        let ty = res.headers()["content-type"].to_str().unwrap().to_string();
        let bytes = res.bytes().await.unwrap();
        if let Some((w, h)) = icon["sizes"].as_str().unwrap().split_once('x') {
            assert_eq!(ty, "image/png", "{src}");
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!(
                (img.width().to_string(), img.height().to_string()),
                (w.to_string(), h.to_string()),
                "{src}"
            );
        }
    }
}

/// Every file of the UI, by its path under `assets/`.
fn ui_files(dir: &std::path::Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("{prefix}{}", path.file_name().unwrap().to_str().unwrap());
        if path.is_dir() {
            ui_files(&path, &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(&path).unwrap()));
        }
    }
}

/// Text files go out gzipped to a client that takes gzip and as written to one that does
/// not; pictures go as they are. Each form of a text file has its own tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_files_come_gzipped_when_accepted_and_as_written_otherwise() {
    use std::io::Read;
    let app = TestApp::start().await;
    let mut files = Vec::new();
    ui_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"),
        "",
        &mut files,
    );
    assert!(files.len() > 20, "{} files", files.len());
    let get = |path: String, accept: Option<&'static str>, tag: Option<String>| {
        let mut rb = app.http.get(app.url(&path));
        if let Some(a) = accept {
            rb = rb.header("accept-encoding", a);
        }
        if let Some(t) = tag {
            rb = rb.header("if-none-match", t);
        }
        app.send(rb)
    };

    for (name, written) in files {
        let text = !name.ends_with(".png");
        let path = format!("/{name}");
        let plain = get(path.clone(), None, None).await;
        assert_eq!(plain.status(), 200, "{path}");
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let plain_tag = plain.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(plain.bytes().await.unwrap(), written, "{path} as written");

        let packed = get(path.clone(), Some("br, gzip;q=0.8"), None).await;
        assert_eq!(packed.status(), 200, "{path}");
        let h = packed.headers().clone();
        let packed_tag = h["etag"].to_str().unwrap().to_string();
        let body = packed.bytes().await.unwrap();
        if text {
            assert_eq!(h["content-encoding"], "gzip", "{path}");
            assert_eq!(h["vary"], "accept-encoding", "{path}");
            assert!(body.len() < written.len(), "{path}: {} bytes", body.len());
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut unpacked)
                .unwrap();
            assert_eq!(unpacked, written, "{path} gzipped");
            assert_ne!(packed_tag, plain_tag, "{path}");
        } else {
            assert!(h.get("content-encoding").is_none(), "{path}");
            assert_eq!(body, written, "{path}");
            assert_eq!(packed_tag, plain_tag, "{path}");
        }

        // Each tag is current for its own form only.
        let again = get(path.clone(), Some("gzip"), Some(packed_tag.clone())).await;
        assert_eq!(again.status(), 304, "{path}");
        let again = get(path.clone(), None, Some(plain_tag.clone())).await;
        assert_eq!(again.status(), 304, "{path}");
        if text {
            let other = get(path.clone(), None, Some(packed_tag)).await;
            assert_eq!(other.status(), 200, "{path}");
            assert_eq!(other.bytes().await.unwrap(), written, "{path}");
        }
    }

    // The stored names are nobody's to ask for.
    assert_error(
        get("/js/chat.js.gz".into(), Some("gzip"), None).await,
        404,
        "not_found",
    )
    .await;
}
