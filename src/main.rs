//! `hearth`: parse the command line, then serve (the default) or run an operator command.

// warp routes are deeply nested generic types; release builds need more room than the
// default recursion limit to lay out their futures.
#![recursion_limit = "256"]

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hearth::admin::{self, AdminError};
use hearth::config::{Config, LogConfig, LogFormat, Source};
use hearth::db::queries::RegistrationMode;

/// A self-hosted, real-time web chat in one binary.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (a missing file means built-in defaults).
    #[arg(
        long,
        short,
        default_value = DEFAULT_CONFIG,
        value_name = "PATH",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the chat (the default).
    Serve,
    /// Write a fully commented chat.toml.
    Init {
        /// Where to write it.
        #[arg(default_value = "chat.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate the configuration and print every effective value with its source.
    CheckConfig,
    /// Manage accounts (works while the server runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Show or set who may create an account (works while the server runs).
    Registration {
        /// open: anyone; invite: only with an invite link; closed: nobody. Omit to show it.
        #[arg(value_enum)]
        mode: Option<ModeArg>,
    },
    /// Manage invite links (works while the server runs).
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Copy the database to a new file, consistently, even while the server is running.
    Backup {
        /// The new file.
        out: PathBuf,
    },
    /// Write every room and message to stdout.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Copy this community (the SQLite database) into an empty PostgreSQL database for
    /// cluster mode, from one snapshot, and verify every table's row count.
    MigrateToPostgres {
        /// The PostgreSQL database: `postgres://user:password@host/name`, or
        /// `postgres:///name?host=/run/postgresql` for a local socket.
        url: String,
    },
    /// Post a message to a room of a running server with a bot token; prints it as stored.
    Post {
        /// The room (`general`, or a room's name).
        room: String,
        /// The text; `-` or nothing reads it from stdin.
        text: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Follow a room of a running server: each message, edit, deletion, reaction and link
    /// preview as one JSON line, resuming after a lost connection without gap or repeat.
    Tail {
        /// The room.
        room: String,
        /// Start after this position (a message id or a change's `seq`): replay what came
        /// since, then follow. Without it, only what comes next.
        #[arg(long, value_name = "POSITION")]
        since: Option<i64>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Which server `post` and `tail` talk to, and as whom.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// The server's address; default: `server.public_url`, else this machine at the
    /// configured port.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// A bot token (Settings → Devices and bots); default: the HEARTH_TOKEN variable.
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Trust the certificates in this PEM file too: a server whose certificate no public
    /// authority signed (a private authority's, or its own self-signed one).
    #[arg(long, value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
}

impl TargetArgs {
    /// The server and credentials these arguments name, with `config`'s defaults.
    fn resolve(self, config: &Config) -> Result<hearth::script::Target, AdminError> {
        hearth::script::Target::new(
            config,
            self.server.as_deref(),
            self.token,
            self.cacert.as_deref(),
        )
        .map_err(|e| AdminError(e.0))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON document: {"rooms":[...],"messages":[...]}.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Anyone who can reach the server may create an account.
    Open,
    /// New accounts need an invite link.
    Invite,
    /// Nobody may create an account (`hearth user add` still works).
    Closed,
}

#[derive(Debug, Subcommand)]
enum InviteCommand {
    /// Make an invite link; its code is printed only once.
    Create {
        /// How many accounts it may create (1 to 1000).
        #[arg(long, value_name = "N")]
        uses: Option<i64>,
        /// Hours until it expires (1 to 720).
        #[arg(long, value_name = "H")]
        hours: Option<i64>,
    },
    /// List every invite with its state (codes are never stored, so never shown).
    List,
    /// Revoke an invite by id.
    Revoke {
        /// Invite id, from `hearth invite list`.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from the first line of stdin.
    Add {
        /// Username.
        name: String,
    },
    /// Set a new password (first line of stdin) and sign the user's browsers out.
    Passwd {
        /// Username.
        name: String,
    },
    /// Block sign-in and revoke every session of the user.
    Disable {
        /// Username.
        name: String,
    },
    /// Delete every message the user has sent (spam clean-up); the text is erased, as with
    /// any deletion.
    Purge {
        /// Username.
        name: String,
    },
    /// Allow a disabled user to sign in again.
    Enable {
        /// Username.
        name: String,
    },
    /// Make the user an administrator.
    Promote {
        /// Username.
        name: String,
    },
    /// Remove administrator rights.
    Demote {
        /// Username.
        name: String,
    },
    /// List every account.
    List,
}

/// The configuration file read when `--config` is not given (absent: built-in defaults, as
/// for any missing file).
const DEFAULT_CONFIG: &str = "chat.toml";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if !matches!(command, Command::Serve) {
        init_logging(&LogConfig::default());
    }
    match command {
        Command::Serve => serve(&cli.config),
        Command::Init { path, force } => report(admin::init(&path, force).map(|()| {
            format!(
                "wrote {}; edit it, then start Hearth with: hearth --config {}",
                path.display(),
                path.display()
            )
        })),
        // A configuration that cannot serve exits as `serve` would on it: 2.
        Command::CheckConfig => match admin::check_config(&cli.config, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hearth: {e}");
                ExitCode::from(2)
            }
        },
        Command::User(cmd) => with_config(&cli.config, |config| user(config, cmd)),
        Command::Registration { mode } => with_config(&cli.config, |config| {
            let mode = mode.map(|m| match m {
                ModeArg::Open => RegistrationMode::Open,
                ModeArg::Invite => RegistrationMode::Invite,
                ModeArg::Closed => RegistrationMode::Closed,
            });
            admin::registration(config, mode)
        }),
        Command::Invite(cmd) => with_config(&cli.config, |config| match cmd {
            InviteCommand::Create { uses, hours } => admin::invite_create(config, uses, hours),
            InviteCommand::List => {
                admin::invite_list(config, &mut std::io::stdout()).map(|()| String::new())
            }
            InviteCommand::Revoke { id } => admin::invite_revoke(config, id),
        }),
        Command::Backup { out } => with_config(&cli.config, |config| admin::backup(config, &out)),
        Command::MigrateToPostgres { url } => with_config(&cli.config, |config| {
            admin::migrate_to_postgres(config, &url)
        }),
        Command::Export {
            format: Format::Json,
        } => with_config(&cli.config, |config| {
            let mut out = std::io::BufWriter::new(Stdout::default());
            let done = admin::export_json(config, &mut out)
                .and_then(|()| Ok(out.flush()?))
                .map(|()| String::new());
            out.get_ref().unless_gone(done)
        }),
        Command::Post { room, text, target } => with_config(&cli.config, |config| {
            let text = match text.as_deref() {
                None | Some("-") => {
                    let mut all = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut all)?;
                    all
                }
                Some(t) => t.to_string(),
            };
            let target = target.resolve(config)?;
            let msg = client_runtime()?
                .block_on(hearth::script::post(&target, &room, &text))
                .map_err(|e| AdminError(e.0))?;
            Ok(msg.to_string())
        }),
        Command::Tail {
            room,
            since,
            target,
        } => with_config(&cli.config, |config| {
            let target = target.resolve(config)?;
            // A closed pipe ends `tail` quietly (hearth::script::tail).
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            client_runtime()?
                .block_on(hearth::script::tail(
                    &target,
                    &room,
                    since,
                    &mut out,
                    hearth::shutdown::signal(),
                ))
                .map_err(|e| AdminError(e.0))?;
            Ok(String::new())
        }),
    }
}

/// Standard output for `export`: it notes when its reader has gone (`hearth export | head`),
/// and the command then ends quietly with success, as Unix tools do (and as `tail` does),
/// instead of reporting a broken pipe.
struct Stdout {
    out: std::io::StdoutLock<'static>,
    gone: bool,
}

impl Default for Stdout {
    fn default() -> Self {
        Stdout {
            out: std::io::stdout().lock(),
            gone: false,
        }
    }
}

impl Stdout {
    fn note<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe) {
            self.gone = true;
        }
        r
    }

    /// `result`, or quiet success when the reader left.
    fn unless_gone(&self, result: Result<String, AdminError>) -> Result<String, AdminError> {
        if self.gone {
            Ok(String::new())
        } else {
            result
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.out.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.out.flush();
        self.note(r)
    }
}

/// A small runtime for the commands that talk to a running server.
fn client_runtime() -> Result<tokio::runtime::Runtime, AdminError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AdminError(format!("cannot start the async runtime: {e}")))
}

/// The password on the first line of stdin; typed at a terminal, asked for and not shown.
fn read_password() -> Result<String, AdminError> {
    let mut line = String::new();
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
    // The terminal's own setting hides what is typed (where `stty` is there to ask).
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    let hidden = if terminal {
        eprint!("Password: ");
        stty("-echo")
    } else {
        false
    };
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        stty("echo");
    }
    if terminal {
        eprintln!();
    }
    read?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(AdminError(
            "give the password on the first line of stdin".into(),
        ));
    }
    Ok(pw)
}

fn user(config: &Config, cmd: UserCommand) -> Result<String, AdminError> {
    match cmd {
        UserCommand::Add { name } => admin::user_add(config, &name, &read_password()?),
        UserCommand::Passwd { name } => admin::user_passwd(config, &name, &read_password()?),
        UserCommand::Disable { name } => admin::user_set_disabled(config, &name, true),
        UserCommand::Enable { name } => admin::user_set_disabled(config, &name, false),
        UserCommand::Purge { name } => admin::user_purge(config, &name),
        UserCommand::Promote { name } => admin::user_set_admin(config, &name, true),
        UserCommand::Demote { name } => admin::user_set_admin(config, &name, false),
        UserCommand::List => {
            admin::user_list(config, &mut std::io::stdout()).map(|()| String::new())
        }
    }
}

fn with_config(path: &Path, f: impl FnOnce(&Config) -> Result<String, AdminError>) -> ExitCode {
    match Config::load(path) {
        Ok((config, _)) => report(f(&config)),
        Err(e) => {
            eprintln!("hearth: {e}");
            ExitCode::from(2)
        }
    }
}

fn report(result: Result<String, AdminError>) -> ExitCode {
    match result {
        Ok(msg) => {
            if !msg.is_empty() {
                println!("{msg}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hearth: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A one-line hint when `public_url` cannot reach the bind address as configured (none when
/// a reverse proxy is configured, `server.trusted_proxies`: listening on loopback is then the
/// point).
fn reachability_hint(config: &Config) -> Option<String> {
    if !config.server.trusted_proxies.is_empty() {
        return None;
    }
    let url = config.public_url()?;
    let origin = hearth::config::parse_origin(url).ok()?;
    let host = origin.split("://").nth(1)?;
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let url_is_local = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    let bind = config.bind_addr().ok()?;
    (bind.ip().is_loopback() && !url_is_local).then(|| {
        format!(
            "public_url is {url} but Hearth listens on {bind} only: people can reach it only \
             through a reverse proxy on this machine (set server.host = \"0.0.0.0\" otherwise)"
        )
    })
}

/// Logs go to stderr, as text or JSON; `RUST_LOG` overrides the configured level.
fn init_logging(log: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},hyper=warn,warp=warn", log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal (not a file or the journal), and never with NO_COLOR set.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(filter);
    match log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(path: &Path) -> ExitCode {
    let (config, source) = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hearth: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hearth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, source))
}

async fn run(config: Config, source: Source) -> ExitCode {
    match &source {
        Source::File(p) => tracing::info!("configuration from {}", p.display()),
        // Named on the command line and missing: likely a typo, which would start a new,
        // empty community; said loudly.
        Source::Defaults(p) if p != Path::new(DEFAULT_CONFIG) => tracing::warn!(
            "{} does not exist: using built-in defaults (check the --config path, or write \
             one with `hearth init {}`)",
            p.display(),
            p.display()
        ),
        Source::Defaults(p) => tracing::info!(
            "no {} found: using built-in defaults (write one with `hearth init`)",
            p.display()
        ),
    }
    let database = if config.database.url.is_empty() {
        config.database.path.display().to_string()
    } else {
        hearth::config::redacted(&config.database.url)
    };
    if let Some(hint) = reachability_hint(&config) {
        tracing::warn!("{hint}");
    }
    let scheme = if config.server.tls.enabled() {
        "https"
    } else {
        "http"
    };
    let server = match hearth::run(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hearth: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    println!("listening on {scheme}://{addr}");
    tracing::info!("database: {database}");
    if addr.ip().is_unspecified() {
        tracing::info!("open http://127.0.0.1:{} in a browser", addr.port());
    }
    hearth::shutdown::signal().await;
    tracing::info!("shutting down");
    tokio::select! {
        () = server.shutdown() => {}
        () = tokio::time::sleep(STOP_LIMIT) => {
            // A database that hangs (PostgreSQL stopped, a network that drops everything)
            // must not keep the process alive: what was acknowledged is committed already.
            tracing::error!(
                "not stopped within {} s (the database or Redis may hang): exiting now",
                STOP_LIMIT.as_secs()
            );
            std::process::exit(1);
        }
        () = hearth::shutdown::signal() => {
            tracing::warn!("a second signal: exiting now");
            std::process::exit(1);
        }
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Longest a shutdown may take before the process exits anyway: below systemd's
/// `TimeoutStopSec=30` in docs/hearth.service, after which it would be killed.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(25);
