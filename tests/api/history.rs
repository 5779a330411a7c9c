//! `GET /api/rooms/{room}/messages`: pages of history, oldest first.

use crate::common::{assert_error, id_of, Auth, TestApp};

/// A server with one user who posted `n` messages; returns their ids in order.
async fn with_messages(n: usize) -> (TestApp, Auth, Vec<i64>) {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;
    let ids = ws.post_many(n, "h").await;
    (app, auth, ids)
}

fn ids(page: &[serde_json::Value]) -> Vec<i64> {
    page.iter().map(id_of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_without_parameters_is_the_newest_50_oldest_first() {
    let (app, auth, posted) = with_messages(60).await;

    let page = app.history(&auth, "general", "").await;

    assert_eq!(ids(&page), posted[10..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_messages_carry_id_room_user_body_ts_and_nonce() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;
    let mut ws = app.ws_connect(&auth, None).await;
    let ack = ws.send_and_ack("  hello\nworld  ", "n-1").await;
    ws.send_json(&crate::common::send_frame("no nonce", None))
        .await;
    let plain = ws.next_of_type("message").await;

    let page = app.history(&auth, "general", "").await;

    assert_eq!(page.len(), 2);
    let m = &page[0];
    assert_eq!(m["id"], ack["id"]);
    assert_eq!(m["room"], "general");
    assert_eq!(m["user"], "alice");
    assert_eq!(m["body"], "hello\nworld");
    assert_eq!(m["ts"], ack["ts"]);
    assert_eq!(m["nonce"], "n-1");
    assert_eq!(page[1]["id"], plain["id"]);
    assert!(page[1]["nonce"].is_null(), "no nonce given: {}", page[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_an_empty_room_is_an_empty_list() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let page = app.history(&auth, "general", "").await;

    assert!(page.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limit_above_200_is_clamped_to_200() {
    let (app, auth, posted) = with_messages(210).await;

    let page = app.history(&auth, "general", "limit=1000").await;

    assert_eq!(ids(&page), posted[10..].to_vec());
    let page = app.history(&auth, "general", "limit=201").await;
    assert_eq!(page.len(), 200);
    // However large: a number past 64 bits is clamped too, not refused.
    let page = app
        .history(&auth, "general", "limit=100000000000000000000")
        .await;
    assert_eq!(page.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limit_is_honoured_between_1_and_200() {
    let (app, auth, posted) = with_messages(12).await;

    let one = app.history(&auth, "general", "limit=1").await;
    let five = app.history(&auth, "general", "limit=5").await;

    assert_eq!(ids(&one), vec![posted[11]]);
    assert_eq!(ids(&five), posted[7..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limit_below_1_or_not_a_number_is_400_bad_request() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    for q in ["limit=0", "limit=-1", "limit=abc", "limit=", "limit=1.5"] {
        let res = app
            .get_as(&format!("/api/rooms/general/messages?{q}"), &auth)
            .await;

        assert_error(res, 400, "bad_request").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_before_and_after_must_be_whole_numbers() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    for q in [
        "before=abc",
        "after=abc",
        "before=-5",
        "after=1e3",
        "before=1&after=1",
    ] {
        let res = app
            .get_as(&format!("/api/rooms/general/messages?{q}"), &auth)
            .await;

        assert_error(res, 400, "bad_request").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_before_pages_back_without_gaps_or_duplicates() {
    let (app, auth, posted) = with_messages(120).await;

    let mut seen: Vec<i64> = Vec::new();
    let mut page = app.history(&auth, "general", "limit=25").await;
    while !page.is_empty() {
        let page_ids = ids(&page);
        assert!(page_ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
        let oldest = page_ids[0];
        seen.splice(0..0, page_ids);
        page = app
            .history(&auth, "general", &format!("before={oldest}&limit=25"))
            .await;
    }

    assert_eq!(seen, posted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_before_gives_the_newest_n_below_the_id() {
    let (app, auth, posted) = with_messages(30).await;

    let page = app
        .history(&auth, "general", &format!("before={}&limit=10", posted[20]))
        .await;

    assert_eq!(ids(&page), posted[10..20].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_after_gives_the_oldest_n_above_the_id() {
    let (app, auth, posted) = with_messages(30).await;

    let page = app
        .history(&auth, "general", &format!("after={}&limit=10", posted[4]))
        .await;
    let from_start = app.history(&auth, "general", "after=0&limit=3").await;
    let past_the_end = app
        .history(&auth, "general", &format!("after={}", posted[29]))
        .await;

    assert_eq!(ids(&page), posted[5..15].to_vec());
    assert_eq!(ids(&from_start), posted[..3].to_vec());
    assert!(past_the_end.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_an_unknown_room_is_404_unknown_room() {
    let app = TestApp::start().await;
    let auth = app.signup("alice").await;

    let res = app.get_as("/api/rooms/nowhere/messages", &auth).await;

    assert_error(res, 404, "unknown_room").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_without_authentication_is_401() {
    let app = TestApp::start().await;

    let res = app.get("/api/rooms/general/messages").await;

    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_works_with_a_bearer_token() {
    let app = TestApp::start().await;
    let (_, cookie) = app.register("alice", crate::common::PASSWORD).await;
    let bot = Auth::Bearer(app.token(&cookie).await);
    let mut ws = app.ws_connect(&bot, None).await;
    let posted = ws.post_many(3, "b").await;

    let page = app.history(&bot, "general", "").await;

    assert_eq!(ids(&page), posted);
}
