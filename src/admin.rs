//! Operator commands: `init`, `check-config`, `user …`, `registration`, `invite …`, `backup`,
//! `export`.
//!
//! They open the database file directly with their own connection (WAL, 5 s busy timeout), so
//! they work whether or not a server is running on it, and never hold a lock for long.

use std::io::Write;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::auth::password;
use crate::config::Config;
use crate::db::queries::RegistrationMode;
use crate::db::{self, queries};
use crate::domain::{check_password, PasswordProblem, Username};
use crate::protocol::{rfc3339, MessageView};

/// The commented default configuration written by `hearth init`.
pub const DEFAULT_CONFIG: &str = include_str!("../chat.toml");

/// A failed operator command; the text is shown to the operator as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AdminError(pub String);

impl From<rusqlite::Error> for AdminError {
    fn from(e: rusqlite::Error) -> Self {
        AdminError(format!("database: {e}"))
    }
}

impl From<db::OpenError> for AdminError {
    fn from(e: db::OpenError) -> Self {
        AdminError(e.to_string())
    }
}

impl From<std::io::Error> for AdminError {
    fn from(e: std::io::Error) -> Self {
        AdminError(e.to_string())
    }
}

/// `hearth init [PATH] [--force]`: write the commented default configuration.
pub fn init(path: &Path, force: bool) -> Result<(), AdminError> {
    if path.exists() && !force {
        return Err(AdminError(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )));
    }
    std::fs::write(path, DEFAULT_CONFIG)
        .map_err(|e| AdminError(format!("cannot write {}: {e}", path.display())))
}

/// `hearth check-config`: every effective key, its value and where it came from.
pub fn check_config(path: &Path, out: &mut impl Write) -> Result<(), AdminError> {
    let rows = Config::explain(path).map_err(|e| AdminError(e.to_string()))?;
    let width = rows
        .iter()
        .map(|(k, v, _)| k.len() + v.len())
        .max()
        .unwrap_or(0)
        + 3;
    for (key, value, source) in rows {
        let pair = format!("{key} = {value}");
        writeln!(out, "{pair:<width$} # {source}")?;
    }
    Ok(())
}

fn open(config: &Config) -> Result<Connection, AdminError> {
    Ok(db::open_writable(
        &config.database.path,
        config.database.synchronous,
    )?)
}

fn username(name: &str) -> Result<Username, AdminError> {
    Username::parse(name).map_err(|e| AdminError(format!("{name:?}: {e}")))
}

fn new_hash(config: &Config, pw: &str) -> Result<String, AdminError> {
    match check_password(pw) {
        Ok(()) => Ok(password::hash(pw, config.auth.pbkdf2_iterations)),
        Err(PasswordProblem::TooShort) => {
            Err(AdminError("passwords need at least 8 characters".into()))
        }
        Err(PasswordProblem::TooLong) => Err(AdminError(
            "passwords may be at most 1024 bytes long".into(),
        )),
    }
}

/// `hearth user add NAME` (password from stdin).
pub fn user_add(config: &Config, name: &str, pw: &str) -> Result<String, AdminError> {
    let name = username(name)?;
    let hash = new_hash(config, pw)?;
    let conn = open(config)?;
    match queries::insert_user(
        &conn,
        name.as_str(),
        &name.key(),
        &hash,
        db::NewAdmin::IfFirst,
        db::now_ms(),
    )? {
        Some(u) => Ok(format!("created {} (id {})", u.username, u.id)),
        None => Err(AdminError(format!("{} is taken", name.as_str()))),
    }
}

/// `hearth user passwd NAME` (password from stdin); signs out the user's browsers.
pub fn user_passwd(config: &Config, name: &str, pw: &str) -> Result<String, AdminError> {
    let name = username(name)?;
    let hash = new_hash(config, pw)?;
    let conn = open(config)?;
    if queries::reset_password(&conn, &name.key(), &hash)? {
        Ok(format!(
            "password of {} changed; their sessions were signed out",
            name.as_str()
        ))
    } else {
        Err(AdminError(format!("no user {}", name.as_str())))
    }
}

/// `hearth user disable|enable NAME`.
pub fn user_set_disabled(
    config: &Config,
    name: &str,
    disabled: bool,
) -> Result<String, AdminError> {
    let name = username(name)?;
    let conn = open(config)?;
    if queries::set_disabled(&conn, &name.key(), disabled)? {
        Ok(if disabled {
            format!("{} disabled and signed out everywhere", name.as_str())
        } else {
            format!("{} enabled", name.as_str())
        })
    } else {
        Err(AdminError(format!("no user {}", name.as_str())))
    }
}

/// `hearth user promote|demote NAME`.
pub fn user_set_admin(config: &Config, name: &str, admin: bool) -> Result<String, AdminError> {
    let name = username(name)?;
    let conn = open(config)?;
    if queries::set_admin(&conn, &name.key(), admin)? {
        Ok(format!(
            "{} is {} an administrator",
            name.as_str(),
            if admin { "now" } else { "no longer" }
        ))
    } else {
        Err(AdminError(format!("no user {}", name.as_str())))
    }
}

/// `hearth user list`.
pub fn user_list(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let conn = open(config)?;
    writeln!(
        out,
        "{:>6}  {:<32}  {:<8}  {:<24}  last seen",
        "id", "username", "role", "created"
    )?;
    for u in queries::list_users(&conn)? {
        let role = match (u.is_admin, u.disabled) {
            (_, true) => "disabled",
            (true, false) => "admin",
            (false, false) => "member",
        };
        writeln!(
            out,
            "{:>6}  {:<32}  {:<8}  {:<24}  {}",
            u.id,
            u.username,
            role,
            rfc3339(u.created_at),
            u.last_seen.map(rfc3339).unwrap_or_else(|| "never".into())
        )?;
    }
    Ok(())
}

/// `hearth registration [open|invite|closed]`: change who may create an account, or show it.
pub fn registration(config: &Config, mode: Option<RegistrationMode>) -> Result<String, AdminError> {
    let conn = open(config)?;
    let describe = |m: RegistrationMode| match m {
        RegistrationMode::Open => "open: anyone who can reach the server may create an account",
        RegistrationMode::Invite => "invite: new accounts need an invite link",
        RegistrationMode::Closed => {
            "closed: nobody may create an account (hearth user add still works)"
        }
    };
    match mode {
        None => Ok(format!(
            "registration is {}",
            describe(queries::registration_mode(&conn)?)
        )),
        Some(m) => {
            queries::set_registration_mode(&conn, m)?;
            tracing::info!(
                mode = m.as_str(),
                "registration mode changed from the command line"
            );
            Ok(format!("registration is now {}", describe(m)))
        }
    }
}

/// `hearth invite create [--uses N] [--hours H]`: a new invite code, printed once with its link.
pub fn invite_create(
    config: &Config,
    uses: Option<i64>,
    hours: Option<i64>,
) -> Result<String, AdminError> {
    let (max_uses, hours) = crate::http::admin::invite_limits(uses, hours).map_err(|m| {
        AdminError(
            m.replace("`max_uses`", "--uses")
                .replace("`expires_in_hours`", "--hours"),
        )
    })?;
    let conn = open(config)?;
    let (code, code_hash) = crate::auth::token::generate();
    let now = db::now_ms();
    let expires_at = now + hours * 3_600_000;
    let id = queries::insert_invite(&conn, &code_hash, None, now, expires_at, max_uses)?;
    tracing::info!(
        invite = id,
        max_uses,
        expires_in_hours = hours,
        "invite created from the command line"
    );
    let link = match config.public_url() {
        Some(base) => crate::http::admin::invite_url(base, &code),
        None => format!(
            "{} (HOST: the address people reach Hearth at; set server.public_url to print it)",
            crate::http::admin::invite_url("http://HOST", &code)
        ),
    };
    let mode = queries::registration_mode(&conn)?;
    let note = match mode {
        RegistrationMode::Invite => "",
        RegistrationMode::Open => {
            "\nnote: registration is open, so nobody needs an invite yet; \
             `hearth registration invite` makes invites required"
        }
        RegistrationMode::Closed => {
            "\nnote: registration is closed, so the invite works only after \
             `hearth registration invite`"
        }
    };
    Ok(format!(
        "invite {id}: {max_uses} use{}, expires {}\ncode: {code}\nlink: {link}\n\
         The code is shown only this once.{note}",
        if max_uses == 1 { "" } else { "s" },
        rfc3339(expires_at)
    ))
}

/// `hearth invite list`.
pub fn invite_list(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let conn = open(config)?;
    let now = db::now_ms();
    writeln!(
        out,
        "{:>6}  {:<8}  {:>9}  {:<24}  {:<24}  created by",
        "id", "state", "uses", "created", "expires"
    )?;
    for i in queries::list_invites(&conn)? {
        writeln!(
            out,
            "{:>6}  {:<8}  {:>9}  {:<24}  {:<24}  {}",
            i.id,
            i.state(now),
            format!("{}/{}", i.uses, i.max_uses),
            rfc3339(i.created_at),
            rfc3339(i.expires_at),
            i.created_by.as_deref().unwrap_or("(command line)")
        )?;
    }
    Ok(())
}

/// `hearth invite revoke ID`.
pub fn invite_revoke(config: &Config, id: i64) -> Result<String, AdminError> {
    let conn = open(config)?;
    if queries::revoke_invite(&conn, id)? {
        tracing::info!(invite = id, "invite revoked from the command line");
        Ok(format!("invite {id} revoked"))
    } else {
        Err(AdminError(format!("no invite {id}")))
    }
}

/// `hearth backup OUT.db`: a consistent copy through SQLite's online backup API, safe while
/// the server is writing (the copy is one snapshot).
pub fn backup(config: &Config, out: &Path) -> Result<String, AdminError> {
    if out.exists() {
        return Err(AdminError(format!(
            "{} already exists; choose a new file name",
            out.display()
        )));
    }
    if !config.database.path.exists() {
        return Err(AdminError(format!(
            "no database at {}",
            config.database.path.display()
        )));
    }
    let src = Connection::open_with_flags(
        &config.database.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(std::time::Duration::from_secs(5))?;
    let tmp = out.with_extension("partial");
    let mut dst = Connection::open(&tmp)?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let b = Backup::new(&src, &mut dst)?;
        // All pages in one step (-1): the copy is a single read snapshot.
        let mut tries = 0;
        loop {
            match b.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return Err(AdminError(format!("backup stalled: {other:?}"))),
            }
        }
    }
    let check: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    let messages: i64 = dst.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
    drop(dst);
    if check != "ok" {
        let _ = std::fs::remove_file(&tmp);
        return Err(AdminError(format!(
            "the copy failed its integrity check: {check}"
        )));
    }
    std::fs::rename(&tmp, out)?;
    Ok(format!(
        "backed up {messages} messages to {}",
        out.display()
    ))
}

/// `hearth export --format json`: every room and message as one JSON document, streamed.
pub fn export_json(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    #[derive(Serialize)]
    struct RoomOut<'a> {
        id: i64,
        name: &'a str,
        topic: &'a str,
    }
    let conn = Connection::open_with_flags(
        &config.database.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let tx = conn.unchecked_transaction()?;
    let rooms = queries::all_rooms(&tx)?;
    let rooms: Vec<RoomOut> = rooms
        .iter()
        .map(|r| RoomOut {
            id: r.id,
            name: &r.name,
            topic: &r.topic,
        })
        .collect();
    write!(out, "{{\"rooms\":")?;
    serde_json::to_writer(&mut *out, &rooms).map_err(|e| AdminError(e.to_string()))?;
    write!(out, ",\"messages\":[")?;
    let mut first = true;
    queries::for_each_message(&tx, |m| {
        if !first {
            out.write_all(b",\n")?;
        }
        first = false;
        serde_json::to_writer(&mut *out, &MessageView::from(&m)).map_err(std::io::Error::other)
    })??;
    writeln!(out, "]}}")?;
    Ok(())
}
