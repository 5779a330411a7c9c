//! Web Push over HTTP: the server's public key, a browser's subscription and what that
//! device wants pushed.

use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::{json_body, signed_in, signed_in_write, with_state};
use super::SMALL_BODY;
use crate::app::push::{self, SettingsRequest};
use crate::app::App;
use crate::auth::Identity;
use crate::db::queries::PushSubscription;
use crate::model::{PushLevel, QuietHours};

/// `GET /api/push/key`; `GET`, `POST`, `PATCH` and `DELETE /api/push/subscriptions`.
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
            let stored = push::subscribe(
                &state,
                (id.user.id, id.token_hash),
                &body.endpoint,
                (&body.keys.p256dh, &body.keys.auth),
                body.settings.into(),
            )
            .await?;
            Ok::<_, Rejection>(
                warp::reply::with_status(warp::reply::json(&device(&stored)), StatusCode::CREATED)
                    .into_response(),
            )
        });
    let list = warp::path!("api" / "push" / "subscriptions")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s.clone()))
        .and_then(|id: Identity, state: App| async move {
            let all = push::devices(&state, id.user.id).await?;
            let all: Vec<Value> = all.iter().map(device).collect();
            Ok::<_, Rejection>(warp::reply::json(&json!({ "subscriptions": all })).into_response())
        });
    let update = warp::path!("api" / "push" / "subscriptions")
        .and(warp::patch())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(|id: Identity, body: Change, state: App| async move {
            let stored =
                push::update(&state, id.user.id, &body.endpoint, body.settings.into()).await?;
            Ok::<_, Rejection>(warp::reply::json(&device(&stored)).into_response())
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
    key.or(subscribe)
        .unify()
        .or(list)
        .unify()
        .or(update)
        .unify()
        .or(unsubscribe)
        .unify()
}

/// A subscription as its owner sees it.
fn device(s: &PushSubscription) -> Value {
    json!({
        "endpoint": s.endpoint,
        "level": s.level,
        "quiet": s.quiet.map(|q| json!({
            "start": QuietHours::clock(q.start),
            "end": QuietHours::clock(q.end),
        })),
        "utc_offset": s.utc_offset,
        "created_at": s.created_at,
        "last_ok_at": s.last_ok_at,
    })
}

/// A browser's `PushSubscription` as `JSON.stringify` gives it, with what the device wants.
#[derive(Debug, Deserialize)]
pub struct Subscription {
    endpoint: String,
    keys: Keys,
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<serde_json::Value>,
    #[serde(flatten)]
    settings: Settings,
}

/// `{"endpoint", "level"?, "quiet"?, "utc_offset"?}`
#[derive(Debug, Deserialize)]
pub struct Change {
    endpoint: String,
    #[serde(flatten)]
    settings: Settings,
}

/// What a device wants pushed; each is optional.
#[derive(Debug, Default, Deserialize)]
pub struct Settings {
    #[serde(default)]
    level: Option<PushLevel>,
    /// `{"start","end"}`, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    quiet: Option<Option<Quiet>>,
    #[serde(default)]
    utc_offset: Option<i64>,
}

/// Quiet hours as two `HH:MM` times.
#[derive(Debug, Deserialize)]
pub struct Quiet {
    start: String,
    end: String,
}

impl From<Settings> for SettingsRequest {
    fn from(s: Settings) -> SettingsRequest {
        SettingsRequest {
            level: s.level,
            quiet: s.quiet.map(|q| q.map(|q| (q.start, q.end))),
            utc_offset: s.utc_offset,
        }
    }
}

/// A field that is there (`Some`, even when `null`) rather than left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
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
