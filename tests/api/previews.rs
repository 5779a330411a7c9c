//! Link previews against a small web site on 127.0.0.1 that counts every request it gets:
//! the preview frame and its position, the picture served by Hearth, the cache, removal by
//! the author, the address rule with its default setting, redirect, size and time limits.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::{assert_error, id_of, png, Answer, Site, TestApp};

fn html(title: &str, description: &str, image: Option<&str>) -> Answer {
    let image = image
        .map(|i| format!("<meta property=\"og:image\" content=\"{i}\">"))
        .unwrap_or_default();
    Answer::Ok(
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><html><head><title>ignored</title>\
             <meta property=\"og:title\" content=\"{title}\">\
             <meta property=\"og:description\" content=\"{description}\">\
             <meta property=\"og:site_name\" content=\"Test site\">{image}</head>\
             <body><p>Hello</p></body></html>"
        )
        .into_bytes(),
    )
}

/// Wait until `site` was asked for `path` at least `n` times (within 10 s).
async fn until_hits(site: &Site, path: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while site.hits(path) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} asked for {n} times"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A message's `preview` as history shows it now.
async fn preview_in_history(app: &TestApp, auth: &crate::common::Auth, id: i64) -> Value {
    let v = app
        .api_ok(Method::GET, &format!("/api/messages/{id}"), auth, None, 200)
        .await;
    v["message"]["preview"].clone()
}

#[tokio::test]
async fn a_link_gets_a_preview_whose_picture_comes_from_hearth() {
    let mut pages = HashMap::new();
    pages.insert(
        "/page",
        html("A page &amp; more", "What it is about", Some("/pic.png")),
    );
    pages.insert("/pic.png", Answer::Ok("image/png", png(900, 600)));
    let site = Site::start(pages).await;
    let app = TestApp::builder()
        .config(|c| {
            c.previews.enabled = true;
            c.outbound.allow_private_networks = true;
        })
        .start()
        .await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut aw = app.ws_connect(&alice, None).await;
    let mut bw = app.ws_connect(&bob, None).await;
    let link = site.url("/page");
    let sent = aw
        .say("general", &format!("have a look: {link}."), "p1")
        .await;
    let id = id_of(&sent);
    assert!(
        sent.get("preview").is_none(),
        "delivered before the fetch: {sent}"
    );

    // Everyone in the room gets the preview as a change at its own position.
    let p = bw.wait_type("preview").await;
    assert_eq!(p["id"], id);
    assert_eq!(p["room"], "general");
    assert!(p["seq"].as_i64().unwrap() > id, "{p}");
    let preview = &p["preview"];
    assert_eq!(preview["url"], link.as_str());
    assert_eq!(preview["title"], "A page & more");
    assert_eq!(preview["description"], "What it is about");
    assert_eq!(preview["site_name"], "Test site");
    let image_url = format!("/api/messages/{id}/preview/image");
    assert_eq!(preview["image_url"], image_url.as_str());
    assert_eq!(aw.wait_type("preview").await, p);
    assert_eq!(site.hits("/page"), 1);
    assert_eq!(site.hits("/pic.png"), 1);

    // The picture comes from Hearth, shrunk, to readers of the room only (a visitor without
    // a session is told there is no such message).
    assert_error(app.get(&image_url).await, 404, "unknown_message").await;
    let res = app.get_as(&image_url, &bob).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let ty = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ty == "image/jpeg" || ty == "image/png", "{ty}");
    let bytes = res.bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert!(
        img.width() <= 400 && img.height() <= 400,
        "{}x{}",
        img.width(),
        img.height()
    );
    let stranger = app.signup("carol").await;
    app.api_ok(
        Method::POST,
        "/api/rooms",
        &alice,
        Some(&serde_json::json!({"name": "closed", "public": false})),
        201,
    )
    .await;
    let mut aw2 = app.ws_connect(&alice, None).await;
    let closed = aw2.say("closed", &format!("again {link}"), "p2").await;
    let closed_id = id_of(&closed);
    let p2 = aw2
        .wait_for("the closed room's preview", |f| {
            f["type"] == "preview" && f["id"] == closed_id
        })
        .await;
    // The same link again: from the cache, not fetched again.
    assert_eq!(p2["preview"]["title"], "A page & more");
    assert_eq!(site.hits("/page"), 1);
    assert_eq!(site.hits("/pic.png"), 1);
    let res = app
        .get_as(
            &format!("/api/messages/{closed_id}/preview/image"),
            &stranger,
        )
        .await;
    assert_eq!(res.status(), 404, "someone outside the room");

    // History and a resume both carry it.
    assert_eq!(preview_in_history(&app, &bob, id).await, *preview);
    let page = app.history(&bob, "general", "").await;
    let m = page.iter().find(|m| id_of(m) == id).unwrap();
    assert_eq!(m["preview"], *preview);
    let mut late = app.ws_connect(&bob, Some(id)).await;
    let replayed = late.wait_type("preview").await;
    assert_eq!(replayed, p);

    // Only the author removes it; then it is gone everywhere, for good.
    app.api_err(
        Method::DELETE,
        &format!("/api/messages/{id}/preview"),
        &bob,
        None,
        403,
        "forbidden",
    )
    .await;
    app.api_ok(
        Method::DELETE,
        &format!("/api/messages/{id}/preview"),
        &alice,
        None,
        204,
    )
    .await;
    let gone = bw.wait_type("preview").await;
    assert_eq!(gone["id"], id);
    assert!(gone["preview"].is_null(), "{gone}");
    assert!(gone["seq"].as_i64().unwrap() > p["seq"].as_i64().unwrap());
    assert!(preview_in_history(&app, &bob, id).await.is_null());
    assert_eq!(app.get_as(&image_url, &bob).await.status(), 404);
    // Removing again changes nothing; a message with no such id is unknown.
    app.api_ok(
        Method::DELETE,
        &format!("/api/messages/{id}/preview"),
        &alice,
        None,
        204,
    )
    .await;
    app.api_err(
        Method::DELETE,
        "/api/messages/999999/preview",
        &alice,
        None,
        404,
        "unknown_message",
    )
    .await;
    let mut again = app.ws_connect(&bob, Some(id)).await;
    let frames = again
        .frames_until(|f| f["type"] == "preview" && f["preview"].is_null())
        .await;
    assert!(frames
        .iter()
        .any(|f| f["type"] == "preview" && f["preview"]["title"] == "A page & more"));

    // Deleting a message takes its preview with it, and the link's page from the cache
    // once no message shows it any more (the first one's was removed).
    let cached = || async { app.server().state().db.cached_page(&link).await.unwrap() };
    assert!(cached().await.is_some(), "the page is cached");
    // (Edited first so that its text no longer has the link: the page its preview shows goes
    // all the same.)
    app.api_ok(
        Method::PATCH,
        &format!("/api/messages/{closed_id}"),
        &alice,
        Some(&serde_json::json!({"body": "again, without the link"})),
        200,
    )
    .await;
    app.api_ok(
        Method::DELETE,
        &format!("/api/messages/{closed_id}"),
        &alice,
        None,
        204,
    )
    .await;
    let res = app
        .get_as(&format!("/api/messages/{closed_id}/preview/image"), &alice)
        .await;
    assert_eq!(res.status(), 404);
    assert!(
        cached().await.is_none(),
        "the deleted message's link is not kept"
    );
    assert!(
        site.total() == 2,
        "nothing else was fetched: {:?}",
        site.seen()
    );
}

#[tokio::test]
async fn a_message_deleted_or_edited_while_its_link_is_fetched_gets_no_preview_nor_cache() {
    let mut pages = HashMap::new();
    let Answer::Ok(ty, page) = html("Slow page", "Still coming", Some("/pic.png")) else {
        unreachable!()
    };
    pages.insert(
        "/slow",
        Answer::Late(Duration::from_millis(1500), ty, page.clone()),
    );
    pages.insert(
        "/slow2",
        Answer::Late(Duration::from_millis(1500), ty, page),
    );
    pages.insert("/pic.png", Answer::Ok("image/png", png(64, 64)));
    let site = Site::start(pages).await;
    let app = TestApp::builder()
        .config(|c| {
            c.previews.enabled = true;
            c.outbound.allow_private_networks = true;
        })
        .start()
        .await;
    let alice = app.signup("alice").await;
    let mut aw = app.ws_connect(&alice, None).await;
    let link = site.url("/slow");
    let id = id_of(&aw.say("general", &format!("see {link}"), "s1").await);
    until_hits(&site, "/slow", 1).await;
    // Deleted while the page is on its way.
    app.api_ok(
        Method::DELETE,
        &format!("/api/messages/{id}"),
        &alice,
        None,
        204,
    )
    .await;
    until_hits(&site, "/pic.png", 1).await;
    // The page and its picture arrive after the deletion: nothing is kept of them, and no
    // preview goes out.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let db = &app.server().state().db;
    assert!(db.cached_page(&link).await.unwrap().is_none(), "not cached");
    let frames = aw.frames_until(|f| f["type"] == "deleted").await;
    assert!(frames.iter().all(|f| f["type"] != "preview"), "{frames:?}");
    aw.send_json(
        &serde_json::json!({"type": "send", "room": "general", "body": "after", "nonce": "s2"}),
    )
    .await;
    let frames = aw.frames_until_nonce("s2").await;
    assert!(frames.iter().all(|f| f["type"] != "preview"), "{frames:?}");

    // Edited while the page is on its way, so that the link is gone from the text: the
    // preview of a link the message no longer has never comes, and the page is not kept.
    let link = site.url("/slow2");
    let id = id_of(&aw.say("general", &format!("see {link}"), "s3").await);
    until_hits(&site, "/slow2", 1).await;
    app.api_ok(
        Method::PATCH,
        &format!("/api/messages/{id}"),
        &alice,
        Some(&serde_json::json!({"body": "never mind"})),
        200,
    )
    .await;
    until_hits(&site, "/pic.png", 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(db.cached_page(&link).await.unwrap().is_none(), "not cached");
    assert!(preview_in_history(&app, &alice, id).await.is_null());
    aw.send_json(
        &serde_json::json!({"type": "send", "room": "general", "body": "after", "nonce": "s4"}),
    )
    .await;
    let frames = aw.frames_until_nonce("s4").await;
    assert!(frames.iter().all(|f| f["type"] != "preview"), "{frames:?}");
}

#[tokio::test]
async fn one_author_posting_slow_links_takes_half_the_workers_and_the_others_get_theirs() {
    let mut pages = HashMap::new();
    let Answer::Ok(ty, page) = html("Slow", "Slow page", None) else {
        unreachable!()
    };
    for path in ["/s1", "/s2", "/s3", "/s4"] {
        let late = Answer::Late(Duration::from_millis(3000), ty, page.clone());
        pages.insert(path, late);
    }
    pages.insert("/quick", html("Quick", "A quick page", None));
    let site = Site::start(pages).await;
    let app = TestApp::builder()
        .config(|c| {
            c.previews.enabled = true;
            c.previews.workers = 4;
            c.outbound.allow_private_networks = true;
        })
        .start()
        .await;
    let mallory = app.signup("mallory").await;
    let bob = app.signup("bob").await;
    let mut mw = app.ws_connect(&mallory, None).await;
    let mut bw = app.ws_connect(&bob, None).await;
    for i in 1..=4 {
        let body = format!("look {}", site.url(&format!("/s{i}")));
        mw.say("general", &body, &format!("m{i}")).await;
    }
    let sent = bw
        .say("general", &format!("mine {}", site.url("/quick")), "b1")
        .await;
    let p = bw
        .wait_for("bob's preview", |f| {
            f["type"] == "preview" && f["id"] == sent["id"]
        })
        .await;
    assert_eq!(p["preview"]["title"], "Quick");
    // Bob's came while mallory's first two were still being fetched, the other two waiting.
    let fetched: Vec<usize> = (1..=4).map(|i| site.hits(&format!("/s{i}"))).collect();
    assert_eq!(fetched, [1, 1, 0, 0], "two of mallory's links at a time");
    // Mallory's all get theirs in the end.
    let mut previews = 0;
    while previews < 4 {
        mw.wait_for("mallory's previews", |f| {
            f["type"] == "preview" && f["preview"]["title"] == "Slow"
        })
        .await;
        previews += 1;
    }
}

#[tokio::test]
async fn with_the_default_setting_loopback_is_never_contacted() {
    let mut pages = HashMap::new();
    pages.insert("/page", html("Secret", "Internal", None));
    let site = Site::start(pages).await;
    let app = TestApp::builder()
        .config(|c| c.previews.enabled = true)
        .start()
        .await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let port = site.addr.port();
    let links = [
        format!("http://127.0.0.1:{port}/page"),
        format!("http://localhost:{port}/page"),
        format!("http://[::ffff:127.0.0.1]:{port}/page"),
        format!("http://2130706433:{port}/page"),
        format!("http://0x7f.1:{port}/page"),
        format!("http://127.1:{port}/page"),
    ];
    for (i, link) in links.iter().enumerate() {
        ws.say("general", &format!("see {link}"), &format!("n{i}"))
            .await;
    }
    // A message sent after them: by the time its own answer is back, the workers have had
    // every link above; give them a moment more to (not) connect.
    ws.say("general", "and nothing else", "last").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(site.total(), 0, "the site was contacted");
    let history = app.history(&alice, "general", "").await;
    assert!(
        history.iter().all(|m| m.get("preview").is_none()),
        "{history:?}"
    );
}

#[tokio::test]
async fn redirects_sizes_and_slow_sites_have_limits() {
    let mut pages = HashMap::new();
    pages.insert("/hang", Answer::Hang);
    // Four redirects: one too many.
    pages.insert("/s1", Answer::Redirect("/s2".into()));
    pages.insert("/s2", Answer::Redirect("/s3".into()));
    pages.insert("/s3", Answer::Redirect("/s4".into()));
    pages.insert("/s4", Answer::Redirect("/s5".into()));
    pages.insert("/s5", html("Too far", "", None));
    // A title only after the first 256 KiB.
    let mut big = b"<html><head><!--".to_vec();
    big.extend(std::iter::repeat_n(b'x', 300 * 1024));
    big.extend_from_slice(b"--><title>Late title</title></head></html>");
    pages.insert("/big", Answer::Ok("text/html", big));
    // A picture over 1 MiB: a preview without it.
    pages.insert("/bigpic", html("Big picture", "", Some("/huge.bin")));
    let mut huge = png(8, 8);
    huge.resize(1024 * 1024 + 10, 0);
    pages.insert("/huge.bin", Answer::Ok("image/png", huge));
    // Not a page at all.
    pages.insert("/file.zip", Answer::Ok("application/zip", vec![0; 100]));
    // Three redirects are fine.
    pages.insert("/r1", Answer::Redirect("/r2".into()));
    pages.insert("/r2", Answer::Redirect("/r3".into()));
    pages.insert("/r3", Answer::Redirect("/final".into()));
    pages.insert("/final", html("After redirects", "Arrived", None));
    // A domain never fetched, reached through a redirect or named as a page's picture.
    let mut kept_away = HashMap::new();
    kept_away.insert("/page", html("Secret", "", None));
    kept_away.insert("/pic.png", Answer::Ok("image/png", png(8, 8)));
    let never = Site::start(kept_away).await;
    let away = format!("http://localhost:{}", never.addr.port());
    pages.insert("/to-never", Answer::Redirect(format!("{away}/page")));
    let pic = format!("{away}/pic.png");
    pages.insert("/never-pic", html("Public page", "", Some(&pic)));
    let site = Site::start(pages).await;
    let app = TestApp::builder()
        .config(|c| {
            c.previews.enabled = true;
            c.previews.workers = 1;
            c.previews.never_fetch = vec!["localhost".into()];
            c.outbound.allow_private_networks = true;
            c.outbound.timeout_seconds = 1;
        })
        .start()
        .await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    let port = site.addr.port();
    let mut ids = Vec::new();
    for (i, link) in [
        format!("http://localhost:{port}/page"),
        site.url("/hang"),
        site.url("/s1"),
        site.url("/big"),
        site.url("/file.zip"),
        site.url("/bigpic"),
        site.url("/to-never"),
        site.url("/never-pic"),
    ]
    .iter()
    .enumerate()
    {
        let m = ws
            .say("general", &format!("link {link}"), &format!("l{i}"))
            .await;
        ids.push(id_of(&m));
    }
    // One worker takes the links in order: the picture-less preview of /bigpic, then /r1's,
    // can only come once the hanging site timed out and let the worker go.
    let big_picture = ws.wait_type("preview").await;
    assert_eq!(big_picture["id"], ids[5]);
    assert_eq!(big_picture["preview"]["title"], "Big picture");
    assert!(
        big_picture["preview"]["image_url"].is_null()
            && big_picture["preview"].get("image_url").is_some(),
        "{big_picture}"
    );
    let never_pic = ws.wait_type("preview").await;
    assert_eq!(never_pic["id"], ids[7]);
    assert!(
        never_pic["preview"]["image_url"].is_null()
            && never_pic["preview"].get("image_url").is_some(),
        "{never_pic}"
    );
    let last = ws
        .say("general", &format!("finally {}", site.url("/r1")), "r")
        .await;
    let p = ws.wait_type("preview").await;
    assert_eq!(p["id"], id_of(&last));
    assert_eq!(p["preview"]["title"], "After redirects");
    assert_eq!(
        p["preview"]["url"],
        site.url("/r1").as_str(),
        "the link as posted"
    );

    for id in ids[..5].iter().chain(&ids[6..7]) {
        assert!(
            preview_in_history(&app, &alice, *id).await.is_null(),
            "message {id}"
        );
    }
    assert_eq!(site.hits("/hang"), 1);
    assert_eq!(
        (site.hits("/s4"), site.hits("/s5")),
        (1, 0),
        "at most 3 redirects"
    );
    assert_eq!(site.hits("/huge.bin"), 1);
    assert_eq!(site.hits("/final"), 1);
    let hosts: Vec<String> = site.seen().into_iter().map(|(_, h)| h).collect();
    assert!(
        hosts.iter().all(|h| !h.starts_with("localhost")),
        "a domain never fetched was: {hosts:?}"
    );
    assert_eq!(never.seen(), [], "nothing reached the domain never fetched");
}
