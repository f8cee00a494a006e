//! The `cierre` binary: parses the command line, loads the configuration, sets up logging
//! and signals, then hands over to the library ([`cierre::cli`], [`cierre::daemon`]). Exit
//! codes: 0 ok, 1 runtime failure, 2 invalid usage or configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use cierre::cli::{Cli, Command, LogFormat};
use cierre::clock::SystemClock;
use cierre::config::{self, Settings};
use cierre::store::{Backend, PgStore, SqliteStore};

/// mimalloc: evaluation and sync pages are built on one thread and dropped on another, and
/// glibc's allocator serializes those frees on an arena lock.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    // A file asked for by name must exist; the default one may be absent.
    let explicit = matches!(
        matches.value_source("config"),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let settings = match config::load(&cli.config, explicit) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    init_tracing(cli.log_format.unwrap_or(match settings.log_format {
        config::LogFormat::Text => LogFormat::Text,
        config::LogFormat::Json => LogFormat::Json,
    }));
    let today = cierre::clock::Clock::today(&SystemClock, settings.schedule.timezone);
    if let Err(e) = cierre::cli::check_dates(&cli.command, &settings, today) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Command::CheckConfig = cli.command {
        println!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Run { once: false, .. } => {
            runtime.block_on(run_daemon(settings, cli.config)).map(|()| ExitCode::SUCCESS)
        }
        command => runtime.block_on(async {
            tokio::select! {
                r = cierre::cli::dispatch(command, settings) => r,
                _ = tokio::signal::ctrl_c() => {
                    // Every write is a transaction: stopping here leaves the store consistent,
                    // and the next run resumes.
                    Err(anyhow::anyhow!("interrupted"))
                }
            }
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The daemon, with SIGTERM/SIGINT as its shutdown and SIGHUP as its reload signal.
async fn run_daemon(settings: Settings, config_path: PathBuf) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            if reload_tx.send(()).await.is_err() {
                break;
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    };
    let clock = Arc::new(SystemClock);
    match Backend::of(&settings.store_url) {
        Backend::Sqlite => {
            cierre::daemon::run::<SqliteStore>(settings, config_path, clock, shutdown, reload_rx)
                .await
        }
        Backend::Postgres => {
            cierre::daemon::run::<PgStore>(settings, config_path, clock, shutdown, reload_rx).await
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CIERRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cierre=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
