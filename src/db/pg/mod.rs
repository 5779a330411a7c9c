//! PostgreSQL, the shared store of cluster mode: its schema ([`schema`]), the log every node
//! appends to and follows ([`log`]), the words search indexes ([`words`]), and the copy of a
//! SQLite community into it ([`import`], `hearth migrate-to-postgres`). The embedded SQLite
//! store stays the default; nothing here runs unless an operator asks for PostgreSQL.

pub mod import;
pub mod log;
pub mod schema;
pub mod words;

/// Session settings of a reader: read-only, and never holding a transaction open for long.
pub const READER_SESSION: &str = "SET default_transaction_read_only = on; \
     SET idle_in_transaction_session_timeout = '60s'";

/// Session settings of a writer. A writer holding the log head while its process is paused
/// (SIGSTOP, a frozen machine) would stop every node's writes: after five idle seconds in
/// its transaction PostgreSQL ends its session, which rolls the batch back (its senders are
/// told it failed and retry) and frees the head.
pub const WRITER_SESSION: &str = "SET idle_in_transaction_session_timeout = '5s'; \
     SET synchronous_commit = on";

/// The database at `url` brought up to date (schema migrations, under their advisory lock),
/// and how to open sessions on it; or why not, in words for the operator.
pub fn open(url: &str) -> Result<postgres::Config, String> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    with_defaults(&mut config, url);
    let mut client = config
        .connect(postgres::NoTls)
        .map_err(|e| format!("cannot connect: {}", error_text(&e)))?;
    schema::migrate(&mut client).map_err(|e| e.to_string())?;
    Ok(config)
}

/// What every session to PostgreSQL gets unless the URL `url` (parsed into `config`) says
/// otherwise: the application name `hearth` and, over TCP, a connection whose peer went away
/// without a word (a machine lost, a network that drops everything) failing within about half
/// a minute instead of the kernel's two hours, so a node's writer or log reader does not hang
/// on it.
pub fn with_defaults(config: &mut postgres::Config, url: &str) {
    if config.get_application_name().is_none() {
        config.application_name("hearth");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(std::time::Duration::from_secs(20));
    }
    if !url.contains("keepalives") {
        config
            .keepalives_idle(std::time::Duration::from_secs(10))
            .keepalives_interval(std::time::Duration::from_secs(5))
            .keepalives_retries(3);
    }
}

/// A session on the database `config` names, with `setup` run on it (and again on each
/// reconnection); or why not, in words for the operator.
pub fn session(
    config: &postgres::Config,
    setup: &'static str,
) -> Result<crate::db::sql::PgConn, String> {
    crate::db::sql::PgConn::connect(config.clone(), setup).map_err(|e| match e {
        crate::db::sql::PgError::Db(e) => format!("cannot connect: {}", error_text(&e)),
        e => e.to_string(),
    })
}

/// PostgreSQL's message for `e`, with its detail when it gave one; for an error that never
/// reached the server, what the system said (connection refused, no such socket file).
pub fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => match std::error::Error::source(e) {
            Some(cause) if !e.to_string().contains(&cause.to_string()) => format!("{e}: {cause}"),
            _ => e.to_string(),
        },
    }
}

pub use crate::config::redacted;

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_left_out_of_connection_strings() {
        assert_eq!(
            super::redacted("postgres://hearth:s3cret@db.example:5432/chat?sslmode=disable"),
            "postgres://hearth@db.example:5432/chat?sslmode=disable"
        );
        assert_eq!(
            super::redacted("postgresql://hearth@%2Frun%2Fpg/chat"),
            "postgresql://hearth@%2Frun%2Fpg/chat"
        );
        assert_eq!(
            super::redacted("host=/tmp user=hearth password=s3cret dbname=chat"),
            "host=/tmp user=hearth dbname=chat"
        );
    }
}
