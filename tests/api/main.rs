//! End-to-end tests of the public contract (PROTOCOL.md): each test starts a real Hearth server
//! on a free port with its own SQLite file, and talks to it over real HTTP and WebSocket
//! connections.

mod assets;
mod auth;
mod config_js;
mod health;
mod helpers;
mod history;
mod lifecycle;
mod resume;
mod robustness;
mod security;
mod ws_chat;
mod ws_errors;
