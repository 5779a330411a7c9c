//! End-to-end tests of the public contract (PROTOCOL.md): each test starts a real Hearth server
//! on a free port with its own SQLite file, and talks to it over real HTTP and WebSocket
//! connections.

mod around;
mod assets;
mod auth;
mod config_js;
mod dms;
mod hardening;
mod health;
mod helpers;
mod history;
mod lifecycle;
mod mentions;
mod migration;
mod privacy;
mod resume;
mod robustness;
mod rooms;
mod search;
mod security;
mod unread;
mod ws_chat;
mod ws_errors;
