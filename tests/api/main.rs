//! End-to-end tests of the public contract (PROTOCOL.md): each test starts a real Hearth server
//! on a free port with its own SQLite file, and talks to it over real HTTP and WebSocket
//! connections. The operator commands, TLS, proxies and path prefixes are tested here too.

#[path = "../common/mod.rs"]
mod common;

mod account;
mod admin_api;
mod around;
mod assets;
mod auth;
mod config_js;
mod degraded;
mod dms;
mod hardening;
mod health;
mod history;
mod history_tail;
mod hooks;
mod invites;
mod lifecycle;
mod lifecycle_edits;
mod lifecycle_reactions;
mod mentions;
mod metrics;
mod migration;
mod operator;
mod prefix;
mod previews;
mod privacy;
mod profiles;
mod proxy;
mod push;
mod resume;
mod robustness;
mod rooms;
mod search;
mod search_ingest;
mod security;
mod session_cache;
mod tls;
mod unread;
mod upgrade;
mod uploads;
mod users;
mod ws_chat;
mod ws_errors;
