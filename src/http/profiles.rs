//! The signed-in user's profile: `PATCH /api/me` (display name, status), `PUT` and `DELETE
//! /api/me/avatar`.

use serde::Deserialize;
use serde_json::json;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::{json_body, signed_in_write, with_state};
use super::SMALL_BODY;
use crate::app::profiles;
use crate::app::App;
use crate::auth::Identity;
use crate::db::Profile;
use crate::protocol::ProfileView;

/// `{"display_name"?,"status"?}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// The three routes.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let update = warp::path!("api" / "me")
        .and(warp::patch())
        .and(signed_in_write(s.clone()))
        .and(json_body(SMALL_BODY))
        .and(with_state(s.clone()))
        .and_then(|id: Identity, body: ProfileChange, state: App| async move {
            let p = profiles::update(
                &state,
                id.user.id,
                body.display_name.as_deref(),
                body.status.as_deref(),
            )
            .await?;
            Ok::<_, Rejection>(reply(&p))
        });
    let set_avatar = warp::path!("api" / "me" / "avatar")
        .and(warp::put())
        .and(signed_in_write(s.clone()))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_state(s.clone()))
        .and_then(|id: Identity, length, body, state: App| async move {
            let p = profiles::set_avatar(&state, id.user.id, length, body).await?;
            Ok::<_, Rejection>(reply(&p))
        });
    let clear_avatar = warp::path!("api" / "me" / "avatar")
        .and(warp::delete())
        .and(signed_in_write(s.clone()))
        .and(with_state(s))
        .and_then(|id: Identity, state: App| async move {
            let p = profiles::clear_avatar(&state, id.user.id).await?;
            Ok::<_, Rejection>(reply(&p))
        });
    update.or(set_avatar).unify().or(clear_avatar).unify()
}

fn reply(p: &Profile) -> Response {
    warp::reply::json(&json!({ "user": ProfileView::from(p) })).into_response()
}
