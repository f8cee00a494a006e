//! The `cierre` binary: parses the command line, loads the configuration, sets up logging
//! and signals, then hands over to the library. Exit codes: 0 ok, 1 runtime failure,
//! 2 invalid usage or configuration.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};

use cierre::app::App;
use cierre::clock::SystemClock;
use cierre::config::{self, Settings};
use cierre::output::{self, Format};
use cierre::store::{Backend, PgStore, SqliteStore, Store};

#[derive(Parser)]
#[command(name = "cierre", version, about = "Keeps SECOP II contract files closed on time")]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, env = "CIERRE_CONFIG", default_value = "daemon.toml")]
    config: PathBuf,
    /// Log format on standard error (default: `log.format` of the configuration).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum RecordDataset {
    Contracts,
    Documents,
    Guarantees,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: with --once, sync → evaluate → notify → deliver, then exit.
    Run {
        #[arg(long)]
        once: bool,
        /// Evaluate as of this date (YYYY-MM-DD) instead of today in Bogotá.
        #[arg(long)]
        as_of: Option<NaiveDate>,
    },
    /// Sync contracts, documents and guarantees from the configured source.
    Sync,
    /// Evaluate the rules and print the current findings.
    Evaluate {
        #[arg(long)]
        as_of: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Build the digests due and put them in the outbox (--dry-run: only print them).
    Notify {
        #[arg(long)]
        as_of: Option<NaiveDate>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Send what is due in the outbox, once.
    Deliver,
    /// Render one recipient's digest.
    Digest {
        #[arg(long)]
        to: String,
        #[arg(long)]
        as_of: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = DigestFormat::Text)]
        format: DigestFormat,
    },
    /// Colombian legal calendar.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// Document kinds: how the classifier reads file names.
    Documents {
        #[command(subcommand)]
        command: DocumentsCommand,
    },
    /// Print a stored record as the source sent it (JSON), by its key.
    Record {
        /// contracts, documents or guarantees.
        #[arg(value_enum)]
        dataset: RecordDataset,
        /// id_contrato, id_documento, or the guarantee key
        /// (id_contrato|numeropoliza|tipopoliza|subtipopoliza).
        key: String,
    },
    /// Validate the configuration and print every error.
    CheckConfig,
    /// Apply database migrations.
    Migrate,
    /// Show the outbox and the stored rows.
    Status,
}

#[derive(Clone, Copy, ValueEnum)]
enum DigestFormat {
    Text,
    Html,
    Eml,
}

#[derive(Subcommand)]
enum DocumentsCommand {
    /// The kind recognised for each document name in FILE (one per line; `-` reads standard
    /// input; a CSV export with a `nombre_archivo` column is read by that column). Prints
    /// `kind<TAB>name`, then how many names got each kind.
    Classify { file: String },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// The national holidays of YEAR, one YYYY-MM-DD per line.
    Holidays { year: i32 },
    /// The number of business days in (FROM, TO].
    BusinessDays { from: NaiveDate, to: NaiveDate },
}

/// mimalloc: evaluation and sync pages are built on one thread and dropped on another, and
/// glibc's allocator serializes those frees on an arena lock.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let explicit = std::env::args_os()
        .any(|a| a == "--config" || a.to_string_lossy().starts_with("--config="))
        || std::env::var_os("CIERRE_CONFIG").is_some();
    let settings = match config::load(&cli.config, explicit) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    let log_format = cli.log_format.unwrap_or(match settings.log_format {
        config::LogFormat::Text => LogFormat::Text,
        config::LogFormat::Json => LogFormat::Json,
    });
    init_tracing(log_format);
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
    if let Command::Run { once: false, .. } = cli.command {
        let path = cli.config.clone();
        return match runtime.block_on(run_daemon(settings, path)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let result = runtime.block_on(async {
        tokio::select! {
            r = execute(cli.command, settings) => r,
            _ = tokio::signal::ctrl_c() => {
                // Every write is a transaction: stopping here leaves the store consistent,
                // and the next run resumes.
                Err(anyhow::anyhow!("interrupted"))
            }
        }
    });
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

/// A progress line per dataset on the terminal (indicatif).
#[derive(Default)]
struct TerminalProgress {
    bars: std::sync::Mutex<std::collections::HashMap<&'static str, indicatif::ProgressBar>>,
}

impl TerminalProgress {
    fn bar(&self, dataset: cierre::source::Dataset) -> indicatif::ProgressBar {
        let mut bars = self.bars.lock().expect("not poisoned");
        bars.entry(dataset.name())
            .or_insert_with(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {prefix:<11} {msg} ({elapsed})",
                    )
                    .expect("valid template"),
                );
                bar.set_prefix(dataset.name());
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                bar
            })
            .clone()
    }
}

impl cierre::sync::Progress for TerminalProgress {
    fn page(&self, dataset: cierre::source::Dataset, c: &cierre::sync::SyncCounts) {
        self.bar(dataset).set_message(format!(
            "{} read, {} new, {} changed, {} rejected, {} pages, {} retries",
            c.read, c.new, c.changed, c.rejected, c.pages, c.retries
        ));
    }

    fn finished(&self, dataset: cierre::source::Dataset, c: &cierre::sync::SyncCounts) {
        self.bar(dataset)
            .finish_with_message(format!("{} read, {} vanished: done", c.read, c.vanished));
    }
}

/// `cierre documents classify`: the kind of each name, then the counts per kind.
fn classify_documents(
    file: &str,
    classifier: &cierre::rules::classify::Classifier,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use std::io::Read;
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    }
    let mut names: Vec<String> = Vec::new();
    let header = text.lines().next().unwrap_or("");
    if header.split(',').any(|h| h.trim() == "nombre_archivo") {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let column =
            reader.headers()?.iter().position(|h| h.trim() == "nombre_archivo").unwrap_or(0);
        for record in reader.records() {
            names.push(record?.get(column).unwrap_or("").to_string());
        }
    } else {
        names.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for name in &names {
        let kind = classifier.classify(Some(name), None);
        *counts.entry(kind.to_string()).or_default() += 1;
        writeln!(out, "{kind}\t{name}")?;
    }
    writeln!(out)?;
    for (kind, n) in &counts {
        writeln!(out, "{n:>6}  {kind} ({})", classifier.label(kind).unwrap_or(""))?;
    }
    Ok(())
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

async fn execute(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    // Buffered: `evaluate` may print a million lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let code = execute_to(command, settings, &mut out).await;
    out.flush()?;
    code
}

async fn execute_to(
    command: Command,
    settings: Settings,
    mut out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    if let Command::Documents { command: DocumentsCommand::Classify { file } } = &command {
        classify_documents(file, &settings.classifier, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Calendar { command } = &command {
        let cal = &settings.calendar;
        match command {
            CalendarCommand::Holidays { year } => {
                for d in cal.holidays(*year) {
                    writeln!(out, "{d}")?;
                }
            }
            CalendarCommand::BusinessDays { from, to } => {
                writeln!(out, "{}", cal.business_days_between(*from, *to))?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let clock = Arc::new(SystemClock);
    match Backend::of(&settings.store_url) {
        Backend::Sqlite => {
            let app = App::<SqliteStore>::open(settings, clock).await?;
            execute_on(&app, command, out).await
        }
        Backend::Postgres => {
            let app = App::<PgStore>::open(settings, clock).await?;
            execute_on(&app, command, out).await
        }
    }
}

/// The commands that need the store, on the backend picked at start-up.
async fn execute_on<S: Store>(
    app: &App<S>,
    command: Command,
    mut out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { once: true, as_of } => {
            let r = app.run_once(as_of).await?;
            writeln!(out, "{}", r.sync.render().trim_end())?;
            writeln!(
                out,
                "findings as of {}: {} ({} opened, {} escalated, {} resolved)",
                r.as_of, r.findings, r.opened, r.escalated, r.resolved
            )?;
            writeln!(
                out,
                "digests: {} prepared, {} queued, {} unrouted findings; delivered {} ({}), {} retrying, {} dead",
                r.notify.digests.len(),
                r.notify.enqueued,
                r.notify.unrouted,
                r.delivery.sent,
                cierre::notify::email::Mailer::from_settings(&app.settings.email)?.describe(),
                r.delivery.retrying,
                r.delivery.dead
            )?;
        }
        Command::Run { once: false, .. } => unreachable!("the daemon is started above"),
        Command::Sync => {
            use std::io::IsTerminal;
            let r = if std::io::stderr().is_terminal() {
                app.sync_with(&TerminalProgress::default()).await?
            } else {
                app.sync().await?
            };
            write!(out, "{}", r.render())?;
        }
        Command::Evaluate { as_of, format } => {
            let as_of = app.as_of(as_of);
            let eval = app.evaluate(Some(as_of)).await?;
            let mut w = output::FindingWriter::new(&mut out, format)?;
            let calendar = &app.settings.calendar;
            cierre::findings::for_each_open(&app.store, calendar, as_of, |f| Ok(w.write(f)?))
                .await?;
            w.finish()?;
            let summary = output::summary(&eval);
            if format == Format::Table {
                write!(out, "{summary}")?;
            } else {
                eprint!("{summary}");
            }
        }
        Command::Notify { as_of, dry_run } => {
            let r = app.notify(as_of, dry_run).await?;
            for (to, rows) in &r.digests {
                writeln!(out, "{to}\t{rows} finding(s)")?;
            }
            writeln!(
                out,
                "{} digest(s){}; {} newly queued, {} already queued; {} unrouted finding(s)",
                r.digests.len(),
                if dry_run { " (dry run: nothing queued)" } else { "" },
                r.enqueued,
                r.already_queued,
                r.unrouted
            )?;
        }
        Command::Deliver => {
            let r = app.deliver().await?;
            writeln!(out, "sent {}, retrying {}, dead {}", r.sent, r.retrying, r.dead)?;
        }
        Command::Digest { to, as_of, format } => {
            let Some((_, rendered, message)) = app.digest(&to, as_of).await? else {
                eprintln!("no findings for {to} in the digest of {}", app.as_of(as_of));
                return Ok(ExitCode::from(1));
            };
            match format {
                DigestFormat::Text => {
                    writeln!(out, "Subject: {}\n", rendered.subject)?;
                    write!(out, "{}", rendered.text)?;
                }
                DigestFormat::Html => write!(out, "{}", rendered.html)?,
                DigestFormat::Eml => out.write_all(&message.formatted())?,
            }
        }
        Command::Migrate => {
            writeln!(out, "migrations applied to {}", app.settings.store_url)?;
        }
        Command::Record { dataset, key } => {
            use cierre::source::Dataset;
            let dataset = match dataset {
                RecordDataset::Contracts => Dataset::Contracts,
                RecordDataset::Documents => Dataset::Documents,
                RecordDataset::Guarantees => Dataset::Guarantees,
            };
            match app.store.raw_record(dataset, &key).await? {
                Some(frame) => {
                    let text = cierre::source::raw::decompress(&frame)
                        .map_err(|e| anyhow::anyhow!("{} {key}: {e}", dataset.name()))?;
                    writeln!(out, "{text}")?;
                }
                None => {
                    eprintln!("no {} record with key {key}", dataset.name());
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::Status => {
            use cierre::source::Dataset;
            let daemon = cierre::scheduler::Daemon::new(
                app.settings.clone(),
                app.store.clone(),
                app.clock.clone(),
            );
            writeln!(out, "{:<8} {:<22} {:<26} last run", "job", "schedule", "next run")?;
            for j in daemon.job_status().await? {
                let next = j
                    .next_run
                    .map(|t| t.with_timezone(&app.settings.schedule.timezone).to_rfc3339());
                let last = j
                    .last_run
                    .map(|r| {
                        format!(
                            "{} {} ({})",
                            r.scheduled_for,
                            r.outcome,
                            r.error.unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| "never".into());
                writeln!(
                    out,
                    "{:<8} {:<22} {:<26} {last}",
                    j.job,
                    j.schedule,
                    next.unwrap_or_default()
                )?;
            }
            for d in [Dataset::Contracts, Dataset::Documents, Dataset::Guarantees] {
                let live = app.store.count_rows(d, false).await?;
                let all = app.store.count_rows(d, true).await?;
                writeln!(out, "{:<11} {live} stored ({} vanished)", d.name(), all - live)?;
            }
            let c = app.store.outbox_counts().await.context("reading the outbox")?;
            writeln!(
                out,
                "outbox      pending {}, retrying {}, sending {}, sent {}, dead {}",
                c.pending, c.retrying, c.sending, c.sent, c.dead
            )?;
            let now = chrono::Utc::now();
            for e in app.store.endpoints().await? {
                let state = match e.suspended_until {
                    Some(until) if until > now => format!("SUSPENDED until {until}"),
                    _ if e.consecutive_failures > 0 => "failing".to_string(),
                    _ => continue,
                };
                writeln!(
                    out,
                    "endpoint    {} {state}: {} consecutive failure(s), last: {}",
                    e.target,
                    e.consecutive_failures,
                    e.last_error.as_deref().unwrap_or("")
                )?;
            }
        }
        Command::Calendar { .. } | Command::Documents { .. } | Command::CheckConfig => {
            unreachable!("handled above")
        }
    }
    Ok(ExitCode::SUCCESS)
}
