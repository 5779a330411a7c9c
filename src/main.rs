//! `hearth`: load the configuration, serve until SIGINT/SIGTERM, stop cleanly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hearth::config::{Config, Source};

/// A self-hosted, real-time web chat in one binary.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (a missing file means built-in defaults).
    #[arg(long, short, default_value = "chat.toml", value_name = "PATH")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hyper=warn,warp=warn".into()),
        )
        .init();
    let (config, source) = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hearth: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hearth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config, source))
}

async fn serve(config: Config, source: Source) -> ExitCode {
    match &source {
        Source::File(p) => tracing::info!("configuration from {}", p.display()),
        Source::Defaults(p) => tracing::info!(
            "no {} found: using built-in defaults (see README for every key)",
            p.display()
        ),
    }
    let db_path = config.database.path.clone();
    let server = match hearth::run(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hearth: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    println!("listening on http://{addr}");
    tracing::info!("database: {}", db_path.display());
    if addr.ip().is_unspecified() {
        tracing::info!("open http://127.0.0.1:{} in a browser", addr.port());
    }
    hearth::shutdown::signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
