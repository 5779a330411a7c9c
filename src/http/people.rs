//! People: `GET /api/users?q=PREFIX&limit=N`, finding members by the start of their name, and
//! `GET /api/users/{name}`, one person's profile.

use std::collections::HashMap;

use serde_json::json;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::{signed_in, with_state};
use crate::app::people::{self, MAX_PEOPLE};
use crate::app::App;
use crate::auth::Identity;
use crate::protocol::ProfileView;

/// `GET /api/users` and `GET /api/users/{name}`.
pub fn routes(s: App) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let find = warp::path!("api" / "users")
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(s.clone()))
        .and_then(find);
    let one = warp::path!("api" / "users" / String)
        .and(warp::get())
        .and(signed_in(s.clone()))
        .and(with_state(s))
        .and_then(|name: String, _id: Identity, state: App| async move {
            let p = crate::app::profiles::get(&state, &name).await?;
            Ok::<_, Rejection>(
                warp::reply::json(&json!({ "user": ProfileView::from(&p) })).into_response(),
            )
        });
    find.or(one).unify()
}

/// GET /api/users?q=&limit=
async fn find(
    _id: Identity,
    q: HashMap<String, String>,
    state: App,
) -> Result<Response, Rejection> {
    let prefix = q.get("q").map(String::as_str).unwrap_or("");
    let limit = super::query::limit(&q).unwrap_or(MAX_PEOPLE);
    let found = people::find(&state, prefix, limit).await?;
    let users: Vec<_> = found
        .iter()
        .map(|p| json!({ "username": p.username, "online": p.online }))
        .collect();
    Ok(warp::reply::json(&json!({ "users": users })).into_response())
}
