//! Tests of Hearth as it is deployed: the real `hearth` binary run as a child process (its
//! start-up line, configuration errors, signals, and crashes in the middle of traffic), and
//! Hearth behind real nginx and Caddy reverse proxies configured from the documented snippets.
//!
//! These are slower than the in-process tests and need more of the machine (a built binary,
//! and nginx/Caddy for the proxy tests), so they live in a binary of their own:
//! `cargo test --test system`.

#[path = "../common/mod.rs"]
mod common;

mod engines;
mod process;

mod churn;
mod cli;
mod cluster;
mod durability;
mod durability_changes;
mod ephemeral;
mod nodes;
mod pgqueries;
mod postgres;
mod postgres_suite;

mod reverse_proxy;
mod scripting;
mod uploads_crash;
mod webhooks_crash;
