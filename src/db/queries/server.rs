//! Server-wide settings (registration mode, the sessions epoch's home) and the status totals.

use super::{args, Sql, SqlRow};

/// Who may create an account through `POST /api/register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Anyone who can reach the server.
    #[default]
    Open,
    /// Only people with a valid invite code.
    Invite,
    /// Nobody (operators still add accounts with `hearth user add`).
    Closed,
}

impl RegistrationMode {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Open => "open",
            RegistrationMode::Invite => "invite",
            RegistrationMode::Closed => "closed",
        }
    }

    /// Parse the stored and wire form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(RegistrationMode::Open),
            "invite" => Some(RegistrationMode::Invite),
            "closed" => Some(RegistrationMode::Closed),
            _ => None,
        }
    }
}

/// `settings` key of the registration mode.
const REGISTRATION_KEY: &str = "registration";

/// A value from `settings`.
pub fn setting<C: Sql>(conn: &C, key: &str) -> Result<Option<String>, C::Error> {
    conn.row(
        "SELECT value FROM settings WHERE key = ?1",
        args![key],
        |r| r.get(0),
    )
}

/// Store a value in `settings`.
pub fn set_setting<C: Sql>(conn: &C, key: &str, value: &str) -> Result<(), C::Error> {
    conn.exec(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )?;
    Ok(())
}

/// The registration mode (`open` when never set or unreadable).
pub fn registration_mode<C: Sql>(conn: &C) -> Result<RegistrationMode, C::Error> {
    Ok(setting(conn, REGISTRATION_KEY)?
        .and_then(|v| RegistrationMode::parse(&v))
        .unwrap_or_default())
}

/// Change the registration mode.
pub fn set_registration_mode<C: Sql>(conn: &C, mode: RegistrationMode) -> Result<(), C::Error> {
    set_setting(conn, REGISTRATION_KEY, mode.as_str())
}

/// Figures for the administrators' status panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Accounts.
    pub users: i64,
    /// Rooms and direct conversations.
    pub rooms: i64,
    /// Stored messages.
    pub messages: i64,
}

/// Count accounts, rooms and messages (one read snapshot).
pub fn totals<C: Sql>(conn: &C) -> Result<Totals, C::Error> {
    let totals = conn.row(
        "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM rooms), \
         (SELECT COUNT(*) FROM messages)",
        args![],
        |r| {
            Ok(Totals {
                users: r.get(0)?,
                rooms: r.get(1)?,
                messages: r.get(2)?,
            })
        },
    )?;
    Ok(totals.unwrap_or(Totals {
        users: 0,
        rooms: 0,
        messages: 0,
    }))
}

/// The size of the PostgreSQL database in bytes; `None` on SQLite (whose size is its files').
pub fn database_bytes<C: Sql>(conn: &C) -> Result<Option<i64>, C::Error> {
    if !conn.is_postgres() {
        return Ok(None);
    }
    conn.row(
        "SELECT pg_database_size(current_database())",
        args![],
        |r| r.get(0),
    )
}
