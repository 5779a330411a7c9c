//! The test kit every test binary shares: a real server on a free port with its own SQLite file
//! in a temporary directory (`TestApp::builder().config(|c| …).start()`), one HTTP helper set,
//! one WebSocket client with `next_of_type`/`wait_type`, a raw TCP client, and one seeded
//! random generator. Everything fails the test instead of hanging.

// Each binary uses its own part of the kit.
#![allow(dead_code, unused_imports)]

mod app;
mod http;
mod rng;
mod site;
mod ws;

pub use app::*;
pub use http::*;
pub use rng::*;
pub use site::*;
pub use ws::*;

use std::future::Future;
use std::time::Duration;

/// A password every test account may use.
pub const PASSWORD: &str = "correct horse battery staple";

/// How long to wait for one frame or one response before failing the test.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Await `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}
