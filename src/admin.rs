//! Operator commands: `init`, `check-config`, `user …`, `registration`, `invite …`, `backup`,
//! `export`.
//!
//! They run without a server, on a [`FileStore`]: a connection of their own to the database
//! file (WAL, 5 s busy timeout), so they work whether or not a server is running on it and
//! never hold a lock for long. Account changes are the store's [`AccountChange`]s and the
//! invitation rules are [`crate::app::admin`]'s, the same as the admin page's; what is here is
//! how the operator types a command and reads its answer.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::app::admin::{invite_url, mint_invite, InviteLimits, LimitNames};
use crate::app::error::AppError;
use crate::auth::password;
use crate::config::Config;
use crate::db::queries::RegistrationMode;
use crate::db::{self, AccountChange, BackupError, DbError, Exported, FileStore, NewAdmin, Room};
use crate::domain::{check_password, PasswordProblem, Username};
use crate::protocol::{rfc3339, MessageView};

/// The commented default configuration written by `hearth init`.
pub const DEFAULT_CONFIG: &str = include_str!("../chat.toml");

/// A failed operator command; the text is shown to the operator as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AdminError(pub String);

impl From<DbError> for AdminError {
    fn from(e: DbError) -> Self {
        match e {
            // SQLite's own words, as the operator has always seen them.
            DbError::Sqlite(e) => AdminError(format!("database: {e}")),
            e => AdminError(format!("database: {e}")),
        }
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

impl From<AppError> for AdminError {
    fn from(e: AppError) -> Self {
        AdminError(e.message.into_owned())
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
    let (config, _) = Config::load(path).map_err(|e| AdminError(e.to_string()))?;
    let problems = start_up_problems(&config);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AdminError(problems.join("; ")))
    }
}

/// What would stop `config` from serving although it parses: a certificate or key that
/// cannot be read or do not fit, a database folder that does not exist.
fn start_up_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if config.server.tls.enabled() {
        if let Err(e) = crate::server::tls_acceptor(
            Path::new(&config.server.tls.cert),
            Path::new(&config.server.tls.key),
        ) {
            problems.push(e);
        }
    }
    if config.database.url.is_empty() {
        let dir = config
            .database
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir.filter(|d| !d.is_dir()) {
            problems.push(format!(
                "database.path: the folder {} does not exist",
                dir.display()
            ));
        }
    }
    problems
}

/// The database the configuration names: the PostgreSQL one when `database.url` is set,
/// else the SQLite file.
fn open(config: &Config) -> Result<FileStore, AdminError> {
    if !config.database.url.is_empty() {
        return Ok(FileStore::open_postgres(&config.database.url)?);
    }
    Ok(FileStore::open(
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

/// Apply `change` to the account called `name`: "no user NAME" when there is none.
fn change_account(
    config: &Config,
    name: &Username,
    change: AccountChange,
) -> Result<(), AdminError> {
    match open(config)?.change_account(&name.key(), &change)? {
        Some(_) => Ok(()),
        None => Err(AdminError(format!("no user {}", name.as_str()))),
    }
}

/// `hearth user add NAME` (password from stdin).
pub fn user_add(config: &Config, name: &str, pw: &str) -> Result<String, AdminError> {
    let name = username(name)?;
    let hash = new_hash(config, pw)?;
    let store = open(config)?;
    match store.create_user(
        name.as_str(),
        &name.key(),
        &hash,
        NewAdmin::IfFirst,
        db::now_ms(),
    )? {
        Some(u) => {
            tracing::info!(user = %u.username, "account created from the command line");
            Ok(format!("created {} (id {})", u.username, u.id))
        }
        None => Err(AdminError(format!("{} is taken", name.as_str()))),
    }
}

/// `hearth user passwd NAME` (password from stdin); revokes every session and bot token of
/// the user.
pub fn user_passwd(config: &Config, name: &str, pw: &str) -> Result<String, AdminError> {
    let name = username(name)?;
    let hash = new_hash(config, pw)?;
    change_account(config, &name, AccountChange::ResetPassword(hash))?;
    tracing::info!(
        user = name.as_str(),
        "password changed from the command line"
    );
    Ok(format!(
        "password of {} changed; their sessions were signed out",
        name.as_str()
    ))
}

/// `hearth user disable|enable NAME`.
pub fn user_set_disabled(
    config: &Config,
    name: &str,
    disabled: bool,
) -> Result<String, AdminError> {
    let name = username(name)?;
    if disabled {
        change_account(config, &name, AccountChange::Disable)?;
        tracing::info!(
            user = name.as_str(),
            "account disabled from the command line"
        );
        Ok(format!(
            "{} disabled and signed out everywhere{}",
            name.as_str(),
            if_no_admin_left(config)?
        ))
    } else {
        change_account(config, &name, AccountChange::Enable)?;
        tracing::info!(
            user = name.as_str(),
            "account enabled from the command line"
        );
        Ok(format!("{} enabled", name.as_str()))
    }
}

/// A warning to add when no enabled account administers the server any more, else nothing.
fn if_no_admin_left(config: &Config) -> Result<&'static str, AdminError> {
    let left = open(config)?
        .list_users()?
        .iter()
        .any(|u| u.is_admin && !u.disabled);
    Ok(if left {
        ""
    } else {
        "\nwarning: no enabled account administers the server now; the next start prints a \
         setup link (or promote someone: hearth user promote NAME)"
    })
}

/// `hearth user purge NAME`.
pub fn user_purge(config: &Config, name: &str) -> Result<String, AdminError> {
    let name = username(name)?;
    match open(config)?.purge_messages(&name.key())? {
        Some((user, n)) => Ok({
            tracing::info!(user = %user.username, messages = n, "messages purged from the command line");
            format!(
                "deleted {n} message{} of {}",
                if n == 1 { "" } else { "s" },
                user.username
            )
        }),
        None => Err(AdminError(format!("no user {}", name.as_str()))),
    }
}

/// `hearth user promote|demote NAME`.
pub fn user_set_admin(config: &Config, name: &str, admin: bool) -> Result<String, AdminError> {
    let name = username(name)?;
    let change = if admin {
        AccountChange::Promote
    } else {
        AccountChange::Demote
    };
    change_account(config, &name, change)?;
    tracing::info!(
        user = name.as_str(),
        admin,
        "administrator rights changed from the command line"
    );
    let warning = if admin { "" } else { if_no_admin_left(config)? };
    Ok(format!(
        "{} is {} an administrator{warning}",
        name.as_str(),
        if admin { "now" } else { "no longer" }
    ))
}

/// `hearth user list`.
pub fn user_list(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let store = open(config)?;
    writeln!(
        out,
        "{:>6}  {:<32}  {:<15}  {:<24}  last seen",
        "id", "username", "role", "created"
    )?;
    for u in store.list_users()? {
        let role = match (u.is_admin, u.disabled) {
            (true, true) => "admin, disabled",
            (false, true) => "disabled",
            (true, false) => "admin",
            (false, false) => "member",
        };
        writeln!(
            out,
            "{:>6}  {:<32}  {:<15}  {:<24}  {}",
            u.id,
            u.username,
            role,
            rfc3339(u.created_at),
            u.last_seen.map(rfc3339).unwrap_or_else(|| "never".into())
        )?;
    }
    Ok(())
}

/// What a registration mode means, in the operator's words.
fn describe(mode: RegistrationMode) -> &'static str {
    match mode {
        RegistrationMode::Open => "open: anyone who can reach the server may create an account",
        RegistrationMode::Invite => "invite: new accounts need an invite link",
        RegistrationMode::Closed => {
            "closed: nobody may create an account (hearth user add still works)"
        }
    }
}

/// `hearth registration [open|invite|closed]`: change who may create an account, or show it.
pub fn registration(config: &Config, mode: Option<RegistrationMode>) -> Result<String, AdminError> {
    let store = open(config)?;
    match mode {
        None => Ok(format!(
            "registration is {}",
            describe(store.registration_mode()?)
        )),
        Some(m) => {
            store.set_registration_mode(m)?;
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
    let limits = InviteLimits::check(uses, hours, LimitNames::FLAGS)?;
    let store = open(config)?;
    let (code, invite) = mint_invite(limits, None);
    let row = store.create_invite(&invite)?;
    tracing::info!(
        invite = row.id,
        max_uses = limits.max_uses,
        expires_in_hours = limits.hours,
        "invite created from the command line"
    );
    let link = match config.public_url() {
        Some(base) => invite_url(base, &code),
        None => format!(
            "{} (HOST: the address people reach Hearth at; set server.public_url to print it)",
            invite_url("http://HOST", &code)
        ),
    };
    let note = invite_note(store.registration_mode()?);
    Ok(format!(
        "invite {}: {} use{}, expires {}\ncode: {code}\nlink: {link}\n\
         The code is shown only this once.{note}",
        row.id,
        limits.max_uses,
        if limits.max_uses == 1 { "" } else { "s" },
        rfc3339(row.expires_at)
    ))
}

/// What the operator should know about a new invite under this registration mode.
fn invite_note(mode: RegistrationMode) -> &'static str {
    match mode {
        RegistrationMode::Invite => "",
        RegistrationMode::Open => {
            "\nnote: registration is open, so nobody needs an invite yet; \
             `hearth registration invite` makes invites required"
        }
        RegistrationMode::Closed => {
            "\nnote: registration is closed, so the invite works only after \
             `hearth registration invite`"
        }
    }
}

/// `hearth invite list`.
pub fn invite_list(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let store = open(config)?;
    let now = db::now_ms();
    writeln!(
        out,
        "{:>6}  {:<8}  {:>9}  {:<24}  {:<24}  created by",
        "id", "state", "uses", "created", "expires"
    )?;
    for i in store.list_invites()? {
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
    if open(config)?.revoke_invite(id)? {
        tracing::info!(invite = id, "invite revoked from the command line");
        Ok(format!("invite {id} revoked"))
    } else {
        Err(AdminError(format!("no invite {id}")))
    }
}

/// `hearth backup OUT.db`: a consistent copy through SQLite's online backup API, safe while
/// the server is writing (the copy is one snapshot), integrity-checked before it is moved to
/// `out`.
pub fn backup(config: &Config, out: &Path) -> Result<String, AdminError> {
    if !config.database.url.is_empty() {
        return Err(AdminError(format!(
            "the community is in PostgreSQL (database.url): back it up with PostgreSQL's own \
             tools (pg_dump, or continuous archiving), and copy the stored files in {} with it",
            config.uploads.folder(&config.database.path).display()
        )));
    }
    for taken in [out.to_path_buf(), files_beside(out)] {
        if taken.exists() {
            return Err(AdminError(format!(
                "{} already exists; choose a new file name",
                taken.display()
            )));
        }
    }
    if !config.database.path.exists() {
        return Err(AdminError(format!(
            "no database at {}",
            config.database.path.display()
        )));
    }
    let messages = FileStore::open_read_only(&config.database.path)?
        .backup(out)
        .map_err(|e| match e {
            BackupError::Db(e) => AdminError::from(e),
            e => AdminError(e.to_string()),
        })?;
    let (copied, missing) = backup_files(config, out)?;
    let mut report = format!(
        "backed up {messages} messages and {copied} files to {} and {}",
        out.display(),
        files_beside(out).display()
    );
    if missing > 0 {
        report.push_str(&format!(
            "; {missing} files were deleted while the backup ran (their messages were deleted \
             meanwhile too)"
        ));
    }
    Ok(report)
}

/// `hearth migrate-to-postgres URL`: copy the community into the empty PostgreSQL database at
/// `url` (see [`crate::db::pg::import`]); the tables and row counts copied.
pub fn migrate_to_postgres(config: &Config, url: &str) -> Result<String, AdminError> {
    use crate::db::pg::import;
    if crate::db::serving_elsewhere(&config.database.path) {
        return Err(AdminError(format!(
            "a Hearth server is serving {} now: stop it first, or messages sent after the copy \
             would be left behind",
            config.database.path.display()
        )));
    }
    let mut client = import::connect(url).map_err(|e| AdminError(e.to_string()))?;
    let report = import::copy(&config.database.path, &mut client)
        .map_err(|e| AdminError(format!("nothing was copied: {e}")))?;
    let mut out = format!(
        "copied {} into PostgreSQL and verified every table:",
        config.database.path.display()
    );
    for (table, rows) in &report.tables {
        out.push_str(&format!("\n  {table:<20} {rows:>10} rows"));
    }
    if !report.nuls.is_empty() {
        let list: Vec<String> = report
            .nuls
            .iter()
            .map(|(column, n)| format!("{column} ({n} value{})", if *n == 1 { "" } else { "s" }))
            .collect();
        out.push_str(&format!(
            "\nNUL characters (which PostgreSQL text cannot hold) were left out of: {}.",
            list.join(", ")
        ));
    }
    out.push_str(&format!(
        "\nnext position: {}. Uploaded files stay in {}: every node needs them at that path.",
        report.head + 1,
        config.uploads.folder(&config.database.path).display()
    ));
    Ok(out)
}

/// Where the files of the database copy `db` go: beside it, named after it with `-files`,
/// which is where a server started on that copy (with `uploads.dir` empty) looks for them.
pub fn files_beside(db: &Path) -> std::path::PathBuf {
    crate::config::UploadsConfig::default().folder(db)
}

/// Copy every file the database copy `out` uses into its files folder; how many were copied
/// and how many had been removed since the copy's snapshot.
fn backup_files(config: &Config, out: &Path) -> Result<(usize, usize), AdminError> {
    let in_use = FileStore::open_read_only(out)?.files_in_use()?;
    let src = crate::files::Files::at(&config.uploads.folder(&config.database.path));
    let dst =
        crate::files::Files::open(&files_beside(out)).map_err(|e| AdminError(e.to_string()))?;
    let (mut copied, mut missing) = (0, 0);
    for hash in in_use.iter().filter(|h| crate::files::is_hash(h)) {
        let to = dst.path_of(hash);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| AdminError(e.to_string()))?;
        }
        match std::fs::copy(src.path_of(hash), &to) {
            Ok(_) => copied += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing += 1,
            Err(e) => return Err(AdminError(format!("copying file {hash}: {e}"))),
        }
    }
    Ok((copied, missing))
}

/// `hearth export --format json`: every room and message as one JSON document, streamed.
pub fn export_json(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let store = if config.database.url.is_empty() {
        FileStore::open_read_only(&config.database.path)?
    } else {
        open(config)?
    };
    let mut first = true;
    store.export(|part| match part {
        Exported::Rooms(rooms) => {
            write!(out, "{{\"rooms\":")?;
            write_json(out, &rooms_out(rooms))?;
            Ok(write!(out, ",\"messages\":[")?)
        }
        Exported::Message(m) => {
            if !first {
                out.write_all(b",\n")?;
            }
            first = false;
            write_json(out, &MessageView::from(&m))
        }
    })?;
    writeln!(out, "]}}")?;
    Ok(())
}

/// A room as the export shows it.
#[derive(Serialize)]
struct RoomOut<'a> {
    id: i64,
    name: &'a str,
    topic: &'a str,
}

fn rooms_out(rooms: &[Room]) -> Vec<RoomOut<'_>> {
    rooms
        .iter()
        .map(|r| RoomOut {
            id: r.id,
            name: &r.name,
            topic: &r.topic,
        })
        .collect()
}

fn write_json(out: &mut impl Write, value: &impl Serialize) -> Result<(), AdminError> {
    serde_json::to_writer(out, value).map_err(|e| AdminError(e.to_string()))
}
