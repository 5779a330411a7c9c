//! Files and images: uploading, serving safely, access, attachments on messages, limits,
//! removal, and backup with restore.

use std::io::Cursor;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{assert_error, id_of, json_body, within, Auth, TestApp, PASSWORD};

/// Bytes that look like nothing in particular.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

impl TestApp {
    /// `POST /api/uploads?name=` with `bytes` as `content_type`; the status and JSON body.
    async fn try_upload(
        &self,
        auth: &Auth,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let path = format!("/api/uploads?name={}", crate::common::urlencode(name));
        let rb = self
            .request(Method::POST, &path, Some(auth))
            .header("origin", &self.base)
            .header("content-type", content_type)
            .body(bytes);
        self.send(rb).await
    }

    /// An upload that must succeed: its `upload` object.
    async fn upload(&self, auth: &Auth, name: &str, content_type: &str, bytes: Vec<u8>) -> Value {
        let res = self.try_upload(auth, name, content_type, bytes).await;
        assert_eq!(res.status(), 201, "upload {name}");
        json_body(res).await["upload"].clone()
    }

    /// Post `body` with `attachments` over HTTP; the status and JSON body.
    async fn post_with(
        &self,
        auth: &Auth,
        room: &str,
        body: &str,
        attachments: &[&Value],
    ) -> (u16, Value) {
        let ids: Vec<&Value> = attachments.iter().map(|a| &a["id"]).collect();
        self.api(
            Method::POST,
            &format!("/api/rooms/{room}/messages"),
            auth,
            Some(&json!({ "body": body, "attachments": ids })),
        )
        .await
    }

    /// How many files the uploads folder holds (not counting `tmp/`), and how many are in
    /// `tmp/`.
    fn stored_files(&self) -> (usize, usize) {
        let root = self.config.uploads.folder(&self.config.database.path);
        let mut stored = 0;
        let mut tmp = 0;
        for d in std::fs::read_dir(&root).unwrap().flatten() {
            let n = std::fs::read_dir(d.path()).map(|r| r.count()).unwrap_or(0);
            if d.file_name() == "tmp" {
                tmp += n;
            } else {
                stored += n;
            }
        }
        (stored, tmp)
    }
}

async fn bytes_of(res: reqwest::Response) -> Vec<u8> {
    res.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_comes_back_byte_for_byte_with_safe_headers() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let data = noise(300_000, 7);
    let up = app
        .upload(&alice, "Résumé final.pdf", "application/pdf", data.clone())
        .await;
    assert_eq!(up["name"], "Résumé final.pdf");
    assert_eq!(up["type"], "application/pdf");
    assert_eq!(up["size"], 300_000);
    assert!(up.get("width").is_none() && up.get("thumbnail_url").is_none());
    let url = up["url"].as_str().unwrap();
    assert!(url.starts_with("/api/uploads/"), "{url}");

    let res = app.get_as(url, &alice).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "sandbox");
    assert!(h["cache-control"].to_str().unwrap().starts_with("private"));
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"R_sum_ final.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20final.pdf"
    );
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(bytes_of(res).await, data, "byte-identical");
    // Refused (not sent yet, so the uploader's alone): the same safety headers.
    let bob = app.signup("bob").await;
    let res = app.get_as(url, &bob).await;
    assert_eq!(res.status(), 404);
    let refused = res.headers();
    assert_eq!(refused["x-content-type-options"], "nosniff");
    assert_eq!(refused["content-security-policy"], "sandbox");
    assert_eq!(refused["cache-control"], "private, no-store");

    // What a page could run or apply from a tag (a script, a style, an SVG, a page) is served
    // as bytes, whatever was declared: nothing loads it as code, on this site or another.
    for (name, declared) in [
        ("x.js", "text/javascript"),
        ("x.css", "text/css; charset=utf-8"),
        ("x.svg", "image/svg+xml"),
        ("x.html", "text/html"),
        ("x.wasm", "application/wasm"),
    ] {
        let up = app.upload(&alice, name, declared, b"1".to_vec()).await;
        let res = app.get_as(up["url"].as_str().unwrap(), &alice).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"],
            "application/octet-stream",
            "{name}"
        );
        let shown = declared.split(';').next().unwrap();
        assert_eq!(up["type"], shown, "the upload says what was declared");
    }

    // Entity tag and ranges.
    let etag = h["etag"].to_str().unwrap().to_string();
    let get_with = |name: &'static str, value: String| {
        app.send(
            app.request(Method::GET, url, Some(&alice))
                .header(name, value),
        )
    };
    assert_eq!(get_with("if-none-match", etag).await.status(), 304);
    let res = get_with("range", "bytes=1000-1999".into()).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 1000-1999/300000");
    assert_eq!(bytes_of(res).await, &data[1000..2000]);
    let res = get_with("range", "bytes=-10".into()).await;
    assert_eq!(bytes_of(res).await, &data[299_990..]);
    let res = get_with("range", "bytes=300000-".into()).await;
    assert_eq!(res.status(), 416);
    assert_eq!(res.headers()["content-range"], "bytes */300000");

    // Without a session, or with one that ended: 404, as for anyone who may not see it
    // (the thumbnail likewise); an id nobody has: 404.
    assert_error(app.get(url).await, 404, "unknown_upload").await;
    assert_error(
        app.get(&format!("{url}/thumbnail")).await,
        404,
        "unknown_upload",
    )
    .await;
    let res = app
        .send(
            app.request(reqwest::Method::GET, url, None)
                .header("cookie", "hearth_session=not-a-session"),
        )
        .await;
    assert_error(res, 404, "unknown_upload").await;
    let res = app
        .get_as("/api/uploads/AAAAAAAAAAAAAAAAAAAAAA", &alice)
        .await;
    assert_error(res, 404, "unknown_upload").await;
    let res = app.get_as("/api/uploads/..%2F..%2Fchat.db", &alice).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_measured_and_get_thumbnails() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    // Declared as anything: the bytes say what it is.
    let big = app
        .upload(
            &alice,
            "wide.png",
            "application/octet-stream",
            png(1000, 500),
        )
        .await;
    assert_eq!(big["type"], "image/png");
    assert_eq!(
        (big["width"].as_i64(), big["height"].as_i64()),
        (Some(1000), Some(500))
    );
    let thumb_url = big["thumbnail_url"].as_str().unwrap();
    let res = app.get_as(thumb_url, &alice).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-security-policy"], "sandbox");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    let thumb = image::load_from_memory(&bytes_of(res).await).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (400, 200));
    let res = app.get_as(big["url"].as_str().unwrap(), &alice).await;
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    assert_eq!(bytes_of(res).await, png(1000, 500));

    // A small image is its own thumbnail.
    let small = app
        .upload(&alice, "dot.png", "image/png", png(40, 30))
        .await;
    let res = app
        .get_as(small["thumbnail_url"].as_str().unwrap(), &alice)
        .await;
    assert_eq!(bytes_of(res).await, png(40, 30));

    // A header claiming 400 megapixels is refused before anything is decoded.
    let bomb = hearth::files::image::huge_png_header(20000, 20000);
    let res = app.try_upload(&alice, "bomb.png", "image/png", bomb).await;
    assert_error(res, 413, "image_too_large").await;
    // Something that only starts like a PNG is kept as a plain file.
    let fake = app
        .upload(
            &alice,
            "fake.png",
            "image/png",
            b"\x89PNG\r\n\x1a\nnothing".to_vec(),
        )
        .await;
    assert!(fake.get("width").is_none());
    let res = app.get_as(fake["url"].as_str().unwrap(), &alice).await;
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_svg_are_never_served_as_documents() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    for (name, ty, body) in [
        (
            "x.svg",
            "image/svg+xml",
            &b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"[..],
        ),
        (
            "x.html",
            "text/html",
            &b"<html><script>alert(document.cookie)</script></html>"[..],
        ),
    ] {
        let up = app.upload(&alice, name, ty, body.to_vec()).await;
        assert_eq!(up["type"], ty);
        assert!(up.get("thumbnail_url").is_none());
        let res = app.get_as(up["url"].as_str().unwrap(), &alice).await;
        let h = res.headers();
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment;"),
            "{name}"
        );
        assert_eq!(h["content-security-policy"], "sandbox");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_uploader_then_the_rooms_readers_may_download() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    app.create_room(&alice, "secret", false).await;
    app.invite(&alice, "secret", "bob").await;

    let public = app
        .upload(&alice, "a.txt", "text/plain", b"for everyone".to_vec())
        .await;
    let private = app
        .upload(&alice, "b.txt", "text/plain", b"for the room".to_vec())
        .await;
    let url = |u: &Value| u["url"].as_str().unwrap().to_string();
    // Before it is sent: the uploader only.
    assert_eq!(app.get_as(&url(&public), &alice).await.status(), 200);
    let refused = app.get_as(&url(&public), &bob).await;
    for (name, value) in [
        ("content-security-policy", "sandbox"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(refused.headers()[name], value, "a refusal's {name}");
    }
    assert_error(refused, 404, "unknown_upload").await;

    let (s, _) = app.post_with(&alice, "general", "", &[&public]).await;
    assert_eq!(s, 201);
    let (s, posted) = app.post_with(&alice, "secret", "see", &[&private]).await;
    assert_eq!(s, 201);
    for who in [&alice, &bob, &carol] {
        assert_eq!(app.get_as(&url(&public), who).await.status(), 200);
    }
    assert_eq!(
        bytes_of(app.get_as(&url(&private), &bob).await).await,
        b"for the room"
    );
    assert_error(
        app.get_as(&url(&private), &carol).await,
        404,
        "unknown_upload",
    )
    .await;

    // Sending it again, or someone else's, is refused.
    let (s, v) = app.post_with(&bob, "general", "mine?", &[&public]).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("unknown_upload")),
        "{v}"
    );

    // Deleting the message removes the file for everyone, and from the disk.
    assert_eq!(app.stored_files().0, 2);
    let id = id_of(&posted["message"]);
    app.api_ok(
        Method::DELETE,
        &format!("/api/messages/{id}"),
        &alice,
        None,
        204,
    )
    .await;
    for who in [&alice, &bob] {
        assert_error(app.get_as(&url(&private), who).await, 404, "unknown_upload").await;
    }
    within(Duration::from_secs(10), "the file's removal", async {
        while app.stored_files().0 != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let msg = app
        .api_ok(
            Method::GET,
            &format!("/api/messages/{id}"),
            &alice,
            None,
            200,
        )
        .await;
    assert!(msg["message"].get("attachments").is_none(), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_their_attachments_live_in_history_and_on_resume() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut watcher = app.ws_connect(&bob, None).await;
    let since = watcher.ready["last_id"].as_i64().unwrap_or(0);
    let a = app
        .upload(&alice, "one.png", "image/png", png(20, 10))
        .await;
    let b = app
        .upload(&alice, "two.txt", "text/plain", b"two".to_vec())
        .await;

    let mut ws = app.ws_connect(&alice, None).await;
    ws.send_json(
        &json!({"type": "send", "room": "general", "body": "", "nonce": "n1",
        "attachments": [b["id"], a["id"]]}),
    )
    .await;
    let ack = ws.wait_for("the ack", |f| f["nonce"] == "n1").await;
    assert_eq!(ack["type"], "message", "{ack}");
    assert_eq!(ack["body"], "");
    assert_eq!(ack["attachments"], json!([b, a]), "in the order given");
    let live = watcher
        .wait_for("the message", |f| f["type"] == "message")
        .await;
    assert_eq!(live["attachments"], ack["attachments"]);

    // Refusals over the WebSocket.
    ws.send_json(
        &json!({"type": "send", "room": "general", "body": "again", "nonce": "n2",
        "attachments": [a["id"]]}),
    )
    .await;
    let err = ws.wait_for("the refusal", |f| f["nonce"] == "n2").await;
    assert_eq!(err["code"], "unknown_upload", "{err}");
    let many: Vec<String> = (0..11).map(|i| format!("{i:022}")).collect();
    ws.send_json(
        &json!({"type": "send", "room": "general", "body": "x", "nonce": "n3",
        "attachments": many}),
    )
    .await;
    let err = ws.wait_for("the refusal", |f| f["nonce"] == "n3").await;
    assert_eq!(err["code"], "unknown_upload", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("10 files"),
        "{err}"
    );
    ws.send_json(&json!({"type": "send", "room": "general", "body": " ", "nonce": "n4"}))
        .await;
    let err = ws.wait_for("the refusal", |f| f["nonce"] == "n4").await;
    assert_eq!(
        err["code"], "empty_message",
        "a message without files still needs text"
    );

    let history = app.history(&bob, "general", "").await;
    assert_eq!(history.last().unwrap()["attachments"], ack["attachments"]);
    let mut again = app.ws_connect(&bob, Some(since)).await;
    let replayed = again
        .wait_for("the replay", |f| f["type"] == "message")
        .await;
    assert_eq!(replayed["attachments"], ack["attachments"]);
    // A retry with the same nonce answers with the stored message, files and all.
    ws.send_json(
        &json!({"type": "send", "room": "general", "body": "", "nonce": "n1",
        "attachments": [b["id"], a["id"]]}),
    )
    .await;
    let dup = ws
        .wait_for("the duplicate ack", |f| f["nonce"] == "n1")
        .await;
    assert_eq!(dup["id"], ack["id"]);
    assert_eq!(dup["attachments"], ack["attachments"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limit_and_quota_are_enforced() {
    let app = TestApp::with_config(|c| {
        c.uploads.max_bytes = 1000;
        c.uploads.user_quota_bytes = 2500;
    })
    .await;
    let alice = app.signup("alice").await;
    let res = app
        .try_upload(&alice, "big", "text/plain", noise(1001, 1))
        .await;
    assert_error(res, 413, "payload_too_large").await;
    // Without a Content-Length, found while reading.
    let Auth::Cookie(cookie) = &alice else {
        unreachable!("signup gives a cookie")
    };
    let mut req = format!(
        "POST /api/uploads?name=streamed HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\n\
         Cookie: hearth_session={cookie}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n",
        app.addr, app.base
    )
    .into_bytes();
    for i in 0..5 {
        req.extend_from_slice(format!("{:x}\r\n", 300).as_bytes());
        req.extend_from_slice(&noise(300, i));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let res = crate::common::raw_http(app.addr, &req).await;
    assert_eq!(res.status, 413, "{}", res.body);
    assert!(res.body.contains("payload_too_large"), "{}", res.body);

    app.upload(&alice, "a", "text/plain", noise(1000, 2)).await;
    app.upload(&alice, "b", "text/plain", noise(1000, 3)).await;
    let res = app
        .try_upload(&alice, "c", "text/plain", noise(1000, 4))
        .await;
    assert_error(res, 413, "quota_exceeded").await;
    // A cancelled upload frees its space.
    let small = app.upload(&alice, "d", "text/plain", noise(400, 5)).await;
    let path = format!("/api/uploads/{}", small["id"].as_str().unwrap());
    app.api_ok(Method::DELETE, &path, &alice, None, 204).await;
    app.api_err(Method::DELETE, &path, &alice, None, 404, "unknown_upload")
        .await;
    app.upload(&alice, "e", "text/plain", noise(500, 6)).await;
    assert_eq!(
        app.stored_files(),
        (3, 0),
        "nothing refused is left on disk"
    );

    // A cookie upload from another site is refused.
    let rb = app
        .request(Method::POST, "/api/uploads?name=x", Some(&alice))
        .header("origin", "http://evil.example")
        .body("x");
    assert_error(app.send(rb).await, 403, "bad_origin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_are_stored_once_and_kept_while_used() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let data = noise(5000, 9);
    let a = app
        .upload(&alice, "same.bin", "application/octet-stream", data.clone())
        .await;
    let b = app
        .upload(&bob, "copy.bin", "application/octet-stream", data.clone())
        .await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(app.stored_files().0, 1);
    let (_, m) = app.post_with(&alice, "general", "a", &[&a]).await;
    app.post_with(&bob, "general", "b", &[&b]).await;
    let id = id_of(&m["message"]);
    app.api_ok(
        Method::DELETE,
        &format!("/api/messages/{id}"),
        &alice,
        None,
        204,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.stored_files().0,
        1,
        "bob's message still uses the bytes"
    );
    assert_eq!(
        bytes_of(app.get_as(b["url"].as_str().unwrap(), &alice).await).await,
        data
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_uploads_and_orphans_are_swept() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let kept = app
        .upload(&alice, "kept", "text/plain", b"kept".to_vec())
        .await;
    app.post_with(&alice, "general", "", &[&kept]).await;
    let unsent = app
        .upload(&alice, "unsent", "text/plain", b"unsent".to_vec())
        .await;
    // A file no row names, as a crash between moving it into place and the commit leaves.
    let root = app.config.uploads.folder(&app.config.database.path);
    let orphan = "c".repeat(64);
    std::fs::create_dir_all(root.join("cc")).unwrap();
    std::fs::write(root.join("cc").join(&orphan), b"orphan").unwrap();
    assert_eq!(app.stored_files().0, 3);

    let state = app.server().state().clone();
    // "Older than the cut-off" is strict: an upload from this very millisecond is not.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let swept = state
        .db
        .sweep_uploads(state.files.clone(), 0)
        .await
        .unwrap();
    assert_eq!(swept, 1, "the unsent upload older than the cut-off");
    let orphans = state
        .db
        .remove_orphan_files(state.files.clone())
        .await
        .unwrap();
    assert_eq!(orphans, 1);
    assert_eq!(app.stored_files().0, 1);
    assert_error(
        app.get_as(unsent["url"].as_str().unwrap(), &alice).await,
        404,
        "unknown_upload",
    )
    .await;
    assert_eq!(
        bytes_of(app.get_as(kept["url"].as_str().unwrap(), &alice).await).await,
        b"kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_serves_every_file() {
    if crate::common::sqlite_only("hearth backup (PostgreSQL has its own)") {
        return;
    }
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let pic = app
        .upload(&alice, "pic.png", "image/png", png(900, 900))
        .await;
    let doc = app
        .upload(&alice, "doc.txt", "text/plain", b"the document".to_vec())
        .await;
    app.post_with(&alice, "general", "files", &[&pic, &doc])
        .await;

    let backups = tempfile::tempdir().unwrap();
    let out = backups.path().join("copy.db");
    let (c, o) = (app.config.clone(), out.clone());
    let report = tokio::task::spawn_blocking(move || hearth::admin::backup(&c, &o))
        .await
        .unwrap()
        .expect("backup");
    assert!(report.contains("3 files"), "{report}");
    // `hearth export` lists each message's files.
    let mut exported = Vec::new();
    hearth::admin::export_json(&app.config, &mut exported).expect("export");
    let exported: Value = serde_json::from_slice(&exported).unwrap();
    let files = &exported["messages"][0]["attachments"];
    assert_eq!(files[0]["name"], "pic.png");
    assert_eq!(files[1]["name"], "doc.txt");
    assert_eq!(files[1]["url"], doc["url"]);

    // Restore: the copy and its folder in a new place, a new server on them.
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&out, restored_dir.path().join("chat.db")).unwrap();
    copy_dir(
        &backups.path().join("copy.db-files"),
        &restored_dir.path().join("chat.db-files"),
    );
    let restored = TestApp::builder().in_dir(restored_dir).start().await;
    let (_, cookie) = restored.login("alice", PASSWORD).await;
    let alice = Auth::Cookie(cookie);
    let history = restored.history(&alice, "general", "").await;
    assert_eq!(history[0]["attachments"].as_array().unwrap().len(), 2);
    let res = restored.get_as(doc["url"].as_str().unwrap(), &alice).await;
    assert_eq!(bytes_of(res).await, b"the document");
    let res = restored.get_as(pic["url"].as_str().unwrap(), &alice).await;
    assert_eq!(bytes_of(res).await, png(900, 900));
    let res = restored
        .get_as(pic["thumbnail_url"].as_str().unwrap(), &alice)
        .await;
    assert_eq!(res.status(), 200);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// As a message with files may be sent without text, its text may be edited away; a message
/// without files may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caption_may_be_edited_away_but_not_a_messages_only_text() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let file = app
        .upload(&alice, "notes.txt", "text/plain", b"notes".to_vec())
        .await;
    let (s, posted) = app
        .post_with(&alice, "general", "a caption", &[&file])
        .await;
    assert_eq!(s, 201, "{posted}");
    let with_file = posted["message"]["id"].as_i64().unwrap();
    let (s, posted) = app.post_with(&alice, "general", "just text", &[]).await;
    assert_eq!(s, 201, "{posted}");
    let text_only = posted["message"]["id"].as_i64().unwrap();

    let empty = json!({ "body": "  " });
    let edited = app
        .api_ok(
            Method::PATCH,
            &format!("/api/messages/{with_file}"),
            &alice,
            Some(&empty),
            200,
        )
        .await;
    assert_eq!(edited["message"]["body"], "");
    assert_eq!(edited["message"]["attachments"][0]["id"], file["id"]);
    app.api_err(
        Method::PATCH,
        &format!("/api/messages/{text_only}"),
        &alice,
        Some(&empty),
        400,
        "empty_message",
    )
    .await;
}
