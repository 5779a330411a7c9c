//! Full-text search: immediate indexing, ordering and paging, filters, phrases, case and
//! accent folding, hostile query syntax, snippets, and which rooms are searched.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::Value;

use crate::common::*;

fn results(v: &Value) -> Vec<Value> {
    v["results"].as_array().expect("results").clone()
}

#[tokio::test]
async fn a_message_is_searchable_as_soon_as_it_is_delivered() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    for i in 0..20 {
        let m = a1
            .say(
                "general",
                &format!("the quick brown fox number {i}"),
                &format!("q{i}"),
            )
            .await;
        // Searched the moment the frame arrived, from another user's point of view too.
        b1.wait_for("the message", |f| f["nonce"] == format!("q{i}").as_str())
            .await;
        let v = app.search_ok(&bob, &format!("number {i}"), "").await;
        let hits = results(&v);
        assert!(
            hits.iter().any(|h| h["id"] == m["id"]),
            "message {i} not found: {v}"
        );
    }
    let v = app.search_ok(&alice, "fox 7", "").await;
    let hits = results(&v);
    assert_eq!(hits.len(), 1, "{v}");
    let hit = &hits[0];
    assert_eq!(hit["room"], "general");
    assert_eq!(hit["user"], "alice");
    assert_eq!(hit["body"], "the quick brown fox number 7");
    assert_eq!(hit["nonce"], "q7");
    assert!(hit["ts"].as_str().unwrap().ends_with('Z'), "{hit}");
    let snippet = hit["snippet"].as_str().unwrap();
    assert!(snippet.contains("\u{2}fox\u{3}"), "{snippet:?}");
    assert!(snippet.contains("\u{2}7\u{3}"), "{snippet:?}");
    assert!(!snippet.contains("\u{2}quick"), "{snippet:?}");
    assert_eq!(v["next_before"], Value::Null);
    assert_eq!(v["next_offset"], Value::Null);

    // A result is the message as it is, with its reactions (newest first and by relevance).
    let id = hit["id"].as_i64().unwrap();
    b1.send_json(
        &serde_json::json!({"type": "react", "id": id, "emoji": "👍", "on": true, "nonce": "r1"}),
    )
    .await;
    b1.wait_for("the reaction", |f| f["nonce"] == "r1").await;
    for sort in ["", "sort=relevance"] {
        let v = app.search_ok(&alice, "fox 7", sort).await;
        let hits = results(&v);
        assert_eq!(
            hits[0]["reactions"],
            serde_json::json!([{"emoji": "👍", "count": 1, "users": ["bob"]}]),
            "{v}"
        );
    }
}

#[tokio::test]
async fn newest_first_with_disjoint_pages() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut all = Vec::new();
    for i in 0..25 {
        all.push(id_of(
            &a1.say("general", &format!("needle {i}"), &format!("n{i}"))
                .await,
        ));
        a1.say("general", &format!("hay {i}"), &format!("h{i}"))
            .await;
    }
    let v = app.search_ok(&alice, "needle", "").await;
    assert_eq!(results(&v).len(), 20, "default page is 20");

    let mut seen = Vec::new();
    let mut extra = "limit=10".to_string();
    let mut pages = 0;
    loop {
        let v = app.search_ok(&alice, "needle", &extra).await;
        let ids = result_ids(&v);
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
        seen.extend(ids.iter().copied());
        pages += 1;
        assert_eq!(v["next_offset"], Value::Null);
        match v["next_before"].as_i64() {
            Some(b) => {
                assert_eq!(Some(&b), ids.last(), "next_before is the last id");
                extra = format!("limit=10&before={b}");
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let mut expected = all.clone();
    expected.reverse();
    assert_eq!(seen, expected, "every hit once, newest first");
    // Exactly one page's worth: no further page is announced.
    let v = app.search_ok(&alice, "needle", "limit=25").await;
    assert_eq!(results(&v).len(), 25);
    assert_eq!(v["next_before"], Value::Null);
    // limit is clamped to 50.
    let v = app.search_ok(&alice, "needle OR hay", "limit=1000").await;
    assert!(results(&v).len() <= 50);
}

#[tokio::test]
async fn relevance_ranks_by_bm25_and_pages_by_offset() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let best = id_of(&a1.say("general", "apple apple apple", "best").await);
    let long = id_of(
        &a1.say(
            "general",
            "apple and a very long sentence about many other things like pears plums cherries \
             grapes melons lemons and limes that goes on and on",
            "long",
        )
        .await,
    );
    let mid = id_of(&a1.say("general", "apple pie", "mid").await);
    for i in 0..5 {
        a1.say(
            "general",
            &format!("an apple in a rather long message with filler words number {i}"),
            &format!("f{i}"),
        )
        .await;
    }
    let v = app.search_ok(&alice, "apple", "sort=relevance").await;
    let ids = result_ids(&v);
    assert_eq!(ids.len(), 8);
    assert_eq!(ids[0], best, "more occurrences rank first: {v}");
    assert_eq!(ids[1], mid, "then the shortest: {v}");
    assert_eq!(*ids.last().unwrap(), long, "the longest ranks last: {v}");
    assert_eq!(v["next_offset"], Value::Null);
    assert_eq!(v["next_before"], Value::Null);

    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let v = app
            .search_ok(
                &alice,
                "apple",
                &format!("sort=relevance&limit=3&offset={offset}"),
            )
            .await;
        seen.extend(result_ids(&v));
        assert_eq!(v["next_before"], Value::Null);
        match v["next_offset"].as_i64() {
            Some(n) => {
                assert_eq!(n, offset + 3);
                offset = n;
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "offset pages follow the same order, disjoint");
    let v = app.search_ok(&alice, "apple", "sort=newest").await;
    assert_eq!(result_ids(&v).len(), 8);
    let (status, v) = app.search(&alice, "q=apple&sort=best").await;
    assert_eq!(status, 400, "{v}");
    assert_error_shape(&v, "bad_request");
}

#[tokio::test]
async fn room_and_user_filters() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("Bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let mut b1 = app.ws_connect(&bob, None).await;
    app.create_room(&alice, "lobby", true).await;
    app.join_room(&bob, "lobby").await;
    b1.wait_type("room_joined").await;
    let a_gen = id_of(&a1.say("general", "kiwi from alice", "1").await);
    let b_gen = id_of(&b1.say("general", "kiwi from bob", "2").await);
    let a_lob = id_of(&a1.say("lobby", "kiwi in the lobby", "3").await);
    let b_lob = id_of(&b1.say("lobby", "kiwi bob lobby", "4").await);

    let v = app.search_ok(&alice, "kiwi", "").await;
    assert_eq!(result_ids(&v), [b_lob, a_lob, b_gen, a_gen]);
    let v = app.search_ok(&alice, "kiwi", "room=lobby").await;
    assert_eq!(result_ids(&v), [b_lob, a_lob]);
    let v = app.search_ok(&alice, "kiwi", "user=bob").await;
    assert_eq!(
        result_ids(&v),
        [b_lob, b_gen],
        "the author filter ignores case"
    );
    let v = app.search_ok(&alice, "kiwi", "user=BOB&room=general").await;
    assert_eq!(result_ids(&v), [b_gen]);
    let v = app.search_ok(&alice, "kiwi", "user=nobody").await;
    assert_eq!(result_ids(&v), Vec::<i64>::new());
    let v = app.search_ok(&alice, "kiwi", "user=not%20a%20name").await;
    assert_eq!(result_ids(&v), Vec::<i64>::new());
    let (status, v) = app.search(&alice, "q=kiwi&room=nowhere").await;
    assert_eq!(status, 404, "{v}");
    assert_error_shape(&v, "unknown_room");
}

#[tokio::test]
async fn phrases_case_and_accents() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let red_fox = id_of(&a1.say("general", "the red fox jumps", "1").await);
    let fox_red = id_of(&a1.say("general", "a fox, red and quick", "2").await);
    let cafe = id_of(
        &a1.say("general", "Un Café CRÈME, s'il vous plaît", "3")
            .await,
    );
    let naive = id_of(&a1.say("general", "NAÏVE résumé über straße", "4").await);

    let v = app.search_ok(&alice, "\"red fox\"", "").await;
    assert_eq!(result_ids(&v), [red_fox]);
    let v = app.search_ok(&alice, "red fox", "").await;
    assert_eq!(result_ids(&v), [fox_red, red_fox]);
    let v = app.search_ok(&alice, "RED FOX", "").await;
    assert_eq!(result_ids(&v), [fox_red, red_fox]);
    let v = app.search_ok(&alice, "\"red fox\" jumps", "").await;
    assert_eq!(result_ids(&v), [red_fox]);
    let v = app.search_ok(&alice, "red missing", "").await;
    assert_eq!(result_ids(&v), Vec::<i64>::new(), "all words must occur");

    for q in [
        "cafe",
        "CAFE",
        "café",
        "CAFÉ",
        "creme",
        "crème",
        "cafe creme",
        "plait",
    ] {
        let v = app.search_ok(&alice, q, "").await;
        assert_eq!(result_ids(&v), [cafe], "{q}");
    }
    let v = app.search_ok(&alice, "cafe", "").await;
    let snippet = results(&v)[0]["snippet"].as_str().unwrap().to_string();
    assert!(snippet.contains("\u{2}Café\u{3}"), "{snippet:?}");
    for q in ["naive", "resume", "uber", "Über", "naïve résumé"] {
        let v = app.search_ok(&alice, q, "").await;
        assert_eq!(result_ids(&v), [naive], "{q}");
    }
}

#[tokio::test]
async fn search_syntax_in_input_never_breaks_the_server() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    let plain = id_of(&a1.say("general", "alpha beta gamma", "1").await);
    let odd = id_of(
        &a1.say(
            "general",
            "col:umn NEAR(x y) a-b \"quoted\" star* OR AND",
            "2",
        )
        .await,
    );

    let hostile = [
        "\"",
        "\"\"",
        "\"\"\"",
        "\"alpha",
        "alpha\"",
        "a\"b\"c",
        "*",
        "alpha*",
        "*alpha",
        "OR",
        "AND",
        "NOT",
        "alpha OR beta",
        "alpha AND",
        "NOT alpha",
        "alpha NOT beta",
        "NEAR(",
        "NEAR(alpha beta)",
        "NEAR(alpha beta, 2)",
        "-",
        "-alpha",
        "alpha -beta",
        ":",
        "body:alpha",
        "messages_fts:alpha",
        "{body}: alpha",
        "^alpha",
        "(",
        ")",
        "(alpha OR",
        "+alpha",
        "'",
        "alpha'); DROP TABLE messages; --",
        "\\",
        "%",
        "%25",
        "\u{0}",
        "alpha\u{0}beta",
        "\u{2}alpha\u{3}",
        "😀",
        "²",
        "ⅻ",
        "\u{200b}",
        "a\u{301}",
        "rowid:1",
        "bm25(alpha)",
        "snippet",
        "ünïcödé",
        "日本語",
    ];
    for q in hostile {
        let (status, v) = app.search(&alice, &format!("q={}", urlencode(q))).await;
        assert!(
            status == 200 || status == 400,
            "search {q:?} answered {status}: {v}"
        );
        if status == 200 {
            assert!(v["results"].is_array(), "{q:?}: {v}");
        } else {
            assert_error_shape(&v, "bad_request");
        }
        for extra in ["sort=relevance", "room=general", "user=alice"] {
            let (status, v) = app
                .search(&alice, &format!("q={}&{extra}", urlencode(q)))
                .await;
            assert!(
                status == 200 || status == 400,
                "{q:?} {extra}: {status} {v}"
            );
        }
    }
    // Operators are plain words: `OR` does not widen, `-` does not exclude.
    let v = app.search_ok(&alice, "alpha OR nothing", "").await;
    assert_eq!(result_ids(&v), Vec::<i64>::new(), "{v}");
    let v = app.search_ok(&alice, "alpha -beta", "").await;
    assert_eq!(result_ids(&v), [plain], "{v}");
    let v = app.search_ok(&alice, "NEAR(x", "").await;
    assert_eq!(result_ids(&v), [odd], "{v}");
    let v = app.search_ok(&alice, "col:umn", "").await;
    assert_eq!(result_ids(&v), [odd], "{v}");
    let v = app.search_ok(&alice, "star*", "").await;
    assert_eq!(result_ids(&v), [odd], "{v}");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn empty_long_and_malformed_queries_are_refused() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    for query in [
        "",
        "q=",
        "q=%20%20",
        "limit=5",
        "q=x&limit=0",
        "q=x&limit=-1",
        "q=x&limit=abc",
        "q=x&before=-1",
        "q=x&before=abc",
        "q=x&offset=-5",
        "q=x&sort=",
    ] {
        let (status, v) = app.search(&alice, query).await;
        assert_eq!(status, 400, "{query}: {v}");
        assert_error_shape(&v, "bad_request");
    }
    let long = "a".repeat(201);
    let (status, v) = app.search(&alice, &format!("q={long}")).await;
    assert_eq!(status, 400, "{v}");
    assert_error_shape(&v, "bad_request");
    let long = "é".repeat(201);
    let (status, v) = app.search(&alice, &format!("q={}", urlencode(&long))).await;
    assert_eq!(status, 400, "over 200 characters: {v}");
    app.search_ok(&alice, &"é".repeat(200), "").await;
    app.search_ok(&alice, &"word ".repeat(40), "").await;
    let res = app.get("/api/search?q=x").await;
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn public_rooms_are_searched_without_joining_private_ones_are_not() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let mut a1 = app.ws_connect(&alice, None).await;
    app.create_room(&alice, "pubroom", true).await;
    app.create_room(&alice, "privroom", false).await;
    let public = id_of(&a1.say("pubroom", "mango season", "1").await);
    a1.say("privroom", "mango secrets", "2").await;
    let general = id_of(&a1.say("general", "mango for all", "3").await);

    let v = app.search_ok(&bob, "mango", "").await;
    assert_eq!(result_ids(&v), [general, public]);
    let v = app
        .search_ok(&bob, "mango", "sort=relevance&limit=50")
        .await;
    let ids: HashSet<i64> = result_ids(&v).into_iter().collect();
    assert_eq!(ids, HashSet::from([general, public]));
    let v = app.search_ok(&bob, "mango", "room=pubroom").await;
    assert_eq!(result_ids(&v), [public]);
    let (status, v) = app.search(&bob, "q=mango&room=privroom").await;
    assert_eq!(status, 404, "{v}");
    assert_error_shape(&v, "unknown_room");
    let v = app.search_ok(&bob, "secrets", "").await;
    assert_eq!(result_ids(&v), Vec::<i64>::new());
    // alice, a member, finds all three.
    let v = app.search_ok(&alice, "mango", "").await;
    assert_eq!(result_ids(&v).len(), 3);
    // Invited: now bob finds it too, old messages included.
    app.invite(&alice, "privroom", "bob").await;
    let v = app.search_ok(&bob, "mango", "").await;
    assert_eq!(result_ids(&v).len(), 3);
    let (status, _) = app
        .api(Method::POST, "/api/rooms/privroom/leave", &bob, None)
        .await;
    assert_eq!(status, 204);
    let v = app.search_ok(&bob, "mango", "").await;
    assert_eq!(result_ids(&v), [general, public]);
}
