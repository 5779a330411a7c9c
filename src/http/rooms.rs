//! Rooms, direct messages, read markers, notification levels and search.

use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::AppState;

/// Every route for rooms, DMs and search.
pub fn routes(_s: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::any().and_then(|| async { Err::<Response, Rejection>(warp::reject::not_found()) })
}
