//! PostgreSQL, the shared store of cluster mode: its schema ([`schema`]), the log every node
//! appends to and follows ([`log`]), and the copy of a SQLite community into it ([`import`],
//! `hearth migrate-to-postgres`). The embedded SQLite
//! store stays the default; nothing here runs unless an operator asks for PostgreSQL.

pub mod import;
pub mod log;
pub mod schema;
