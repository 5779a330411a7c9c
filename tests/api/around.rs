//! `GET /api/rooms/{room}/messages?around=ID`: a message with its neighbours in its room.

use reqwest::Method;

use crate::common::*;

fn ids(page: &[serde_json::Value]) -> Vec<i64> {
    page.iter().map(id_of).collect()
}

#[tokio::test]
async fn around_returns_the_message_and_its_neighbours_in_that_room() {
    let app = TestApp::start().await;
    let alice = app.signup("alice").await;
    let mut ws = app.ws_connect(&alice, None).await;
    app.create_room(&alice, "side", true).await;
    let mut g = Vec::new();
    let mut s = Vec::new();
    for i in 0..10 {
        g.push(id_of(
            &ws.say("general", &format!("g{i}"), &format!("g{i}")).await,
        ));
        s.push(id_of(
            &ws.say("side", &format!("s{i}"), &format!("s{i}")).await,
        ));
    }
    let around = |id: i64, limit: u32| format!("around={id}&limit={limit}");

    // Odd limit: as many before as after.
    let page = app.history(&alice, "general", &around(g[5], 5)).await;
    assert_eq!(ids(&page), g[3..8].to_vec());
    assert!(page.iter().all(|m| m["room"] == "general"));
    // Even limit: ⌊(N−1)/2⌋ before, the rest after.
    let page = app.history(&alice, "general", &around(g[5], 4)).await;
    assert_eq!(ids(&page), g[4..8].to_vec());
    let page = app.history(&alice, "general", &around(g[5], 1)).await;
    assert_eq!(ids(&page), [g[5]]);
    let page = app.history(&alice, "general", &around(g[5], 2)).await;
    assert_eq!(ids(&page), [g[5], g[6]]);
    // Default limit (50) covers the whole room.
    let page = app
        .history(&alice, "general", &format!("around={}", g[5]))
        .await;
    assert_eq!(ids(&page), g);
    // At the edges: fewer on the short side.
    let page = app.history(&alice, "general", &around(g[0], 5)).await;
    assert_eq!(ids(&page)[0], g[0]);
    assert!(ids(&page).iter().all(|id| g[..5].contains(id)), "{page:?}");
    let page = app.history(&alice, "general", &around(g[9], 5)).await;
    assert_eq!(ids(&page), g[7..10].to_vec());
    // In the other room.
    let page = app.history(&alice, "side", &around(s[2], 3)).await;
    assert_eq!(ids(&page), s[1..4].to_vec());

    // An id from another room: the neighbours in this room, split around it.
    let page = app.history(&alice, "general", &around(s[5], 5)).await;
    let got = ids(&page);
    assert!(!got.contains(&s[5]));
    assert_eq!(got, g[4..9].to_vec());
    // Beyond the newest and before the oldest.
    let page = app
        .history(&alice, "general", &around(i64::from(i32::MAX), 3))
        .await;
    assert_eq!(ids(&page), [g[9]]);
    let page = app.history(&alice, "general", &around(0, 3)).await;
    assert_eq!(ids(&page), g[0..3].to_vec());

    for query in [
        format!("around={}&before={}", g[5], g[6]),
        format!("around={}&after=1", g[5]),
        "around=abc".to_string(),
        "around=-1".to_string(),
        format!("around={}&limit=0", g[5]),
    ] {
        app.api_err(
            Method::GET,
            &format!("/api/rooms/general/messages?{query}"),
            &alice,
            None,
            400,
            "bad_request",
        )
        .await;
    }
    app.api_err(
        Method::GET,
        &format!("/api/rooms/nowhere/messages?around={}", g[1]),
        &alice,
        None,
        404,
        "unknown_room",
    )
    .await;
}
