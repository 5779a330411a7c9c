//! Web Push over HTTP: the server's public key, and a browser's subscription.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::{json_body, signed_in, signed_in_write, with_state};
use super::SMALL_BODY;
use crate::app::push;
use crate::app::App;
use crate::auth::Identity;

/// `GET /api/push/key`, `POST` and `DELETE /api/push/subscriptions`.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let key = warp::path!("api" / "push" / "key")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(|_: Identity, state: App| async move {
            let key = push::public_key(&state).await?;
            Ok::<_, Rejection>(warp::reply::json(&json!({ "public_key": key })).into_response())
        });
    let subscribe = warp::path!("api" / "push" / "subscriptions")
        .and(warp::post())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(|id: Identity, body: Subscription, state: App| async move {
            push::subscribe(
                &state,
                id.user.id,
                &body.endpoint,
                &body.keys.p256dh,
                &body.keys.auth,
            )
            .await?;
            Ok::<_, Rejection>(
                warp::reply::with_status(warp::reply::json(&json!({})), StatusCode::CREATED)
                    .into_response(),
            )
        });
    let unsubscribe = warp::path!("api" / "push" / "subscriptions")
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s))
        .and_then(|id: Identity, body: Endpoint, state: App| async move {
            push::unsubscribe(&state, id.user.id, &body.endpoint).await?;
            Ok::<_, Rejection>(StatusCode::NO_CONTENT.into_response())
        });
    key.or(subscribe).unify().or(unsubscribe).unify()
}

/// A browser's `PushSubscription` as `JSON.stringify` gives it.
#[derive(Debug, Deserialize)]
pub struct Subscription {
    endpoint: String,
    keys: Keys,
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<serde_json::Value>,
}

/// `keys` of a subscription.
#[derive(Debug, Deserialize)]
pub struct Keys {
    p256dh: String,
    auth: String,
}

/// `{"endpoint"}`
#[derive(Debug, Deserialize)]
pub struct Endpoint {
    endpoint: String,
}
