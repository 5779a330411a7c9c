//! Profiles: display names, status lines and avatars, told to every connection.

use std::io::Cursor;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{assert_error, json_body, Auth, TestApp};

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([(x % 256) as u8, 40, 200]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

impl TestApp {
    /// `PUT /api/me/avatar` with `bytes`.
    async fn put_avatar(&self, auth: &Auth, bytes: Vec<u8>) -> reqwest::Response {
        let rb = self
            .request(Method::PUT, "/api/me/avatar", Some(auth))
            .header("origin", &self.base)
            .header("content-type", "image/png")
            .body(bytes);
        self.send(rb).await
    }

    /// How many files the uploads folder holds (outside `tmp/`).
    fn file_count(&self) -> usize {
        let root = self.config.uploads.folder(&self.config.database.path);
        std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .filter(|d| d.file_name() != "tmp")
            .map(|d| std::fs::read_dir(d.path()).map(|r| r.count()).unwrap_or(0))
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_names_and_statuses_are_kept_checked_and_announced() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut watcher = app.ws_connect(&bob, None).await;
    assert_eq!(
        watcher.ready["profiles"],
        json!([]),
        "nobody has a profile yet"
    );

    let v = app
        .api_ok(
            Method::PATCH,
            "/api/me",
            &alice,
            Some(&json!({"display_name": "  Alice Liddell ", "status": "down the rabbit hole"})),
            200,
        )
        .await;
    let want = json!({"username": "alice", "display_name": "Alice Liddell",
        "status": "down the rabbit hole", "avatar_url": null});
    assert_eq!(v["user"], want);
    let frame = watcher.wait_type("profile").await;
    assert_eq!(frame["user"], want);
    let me = app.api_ok(Method::GET, "/api/me", &alice, None, 200).await;
    assert_eq!(me["profile"], want);
    assert_eq!(
        me["user"]["username"], "alice",
        "the user object is unchanged"
    );
    let other = app
        .api_ok(Method::GET, "/api/users/ALICE", &bob, None, 200)
        .await;
    assert_eq!(other["user"], want);
    let fresh = app.ws_connect(&bob, None).await;
    assert_eq!(fresh.ready["profiles"], json!([want]));

    // Only what is given changes; empty clears.
    let v = app
        .api_ok(
            Method::PATCH,
            "/api/me",
            &alice,
            Some(&json!({"status": ""})),
            200,
        )
        .await;
    assert_eq!(v["user"]["display_name"], "Alice Liddell");
    assert_eq!(v["user"]["status"], "");

    // Refusals.
    let long = "x".repeat(65);
    for (body, code) in [
        (json!({"display_name": long}), "invalid_profile"),
        (json!({"display_name": "two\nlines"}), "invalid_profile"),
        (json!({"display_name": "\u{200b}"}), "invalid_profile"),
        (
            json!({"display_name": "\u{115f}\u{3164}"}),
            "invalid_profile",
        ),
        (json!({"status": "\u{feff}away"}), "invalid_profile"),
        (json!({"status": "y".repeat(141)}), "invalid_profile"),
        (json!({"colour": "red"}), "bad_request"),
    ] {
        app.api_err(Method::PATCH, "/api/me", &alice, Some(&body), 400, code)
            .await;
    }
    let res = app
        .send(
            app.request(Method::PATCH, "/api/me", Some(&alice))
                .header("origin", "http://evil.example")
                .json(&json!({"display_name": "Mallory"})),
        )
        .await;
    assert_error(res, 403, "bad_origin").await;
    app.api_err(
        Method::GET,
        "/api/users/nobody",
        &alice,
        None,
        404,
        "unknown_user",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avatar_is_a_square_served_safely_and_replaced_cleanly() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut watcher = app.ws_connect(&bob, None).await;

    let res = app.put_avatar(&alice, png(900, 300)).await;
    assert_eq!(res.status(), 200);
    let v = json_body(res).await;
    let url = v["user"]["avatar_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("/api/users/alice/avatar?v="), "{url}");
    let frame = watcher.wait_type("profile").await;
    assert_eq!(frame["user"]["avatar_url"], json!(url));

    let res = app.get_as(&url, &bob).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["content-security-policy"], "sandbox");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (256, 256));
    assert_eq!(app.get(&url).await.status(), 401, "signed-in people only");
    assert_eq!(app.file_count(), 1);

    // A new picture replaces the old one, whose file goes.
    let res = app.put_avatar(&alice, png(300, 300)).await;
    let v = json_body(res).await;
    let second = v["user"]["avatar_url"].as_str().unwrap().to_string();
    assert_ne!(second, url);
    assert_eq!(app.file_count(), 1);
    // The sweep keeps it: an avatar is a file in use.
    let state = app.server().state().clone();
    let removed = state
        .db
        .remove_orphan_files(state.files.clone())
        .await
        .unwrap();
    assert_eq!(removed, 0);
    assert_eq!(app.get_as(&second, &bob).await.status(), 200);

    // Refusals: not an image, too many pixels, too large.
    let res = app.put_avatar(&alice, b"<svg/>".to_vec()).await;
    assert_error(res, 400, "bad_image").await;
    let res = app
        .put_avatar(&alice, hearth::files::image::huge_png_header(20000, 20000))
        .await;
    assert_error(res, 413, "image_too_large").await;

    // Taking it away.
    let v = app
        .api_ok(Method::DELETE, "/api/me/avatar", &alice, None, 200)
        .await;
    assert_eq!(v["user"]["avatar_url"], Value::Null);
    let res = app.get_as("/api/users/alice/avatar", &bob).await;
    assert_error(res, 404, "unknown_user").await;
    crate::common::within(Duration::from_secs(5), "the old file's removal", async {
        while app.file_count() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
