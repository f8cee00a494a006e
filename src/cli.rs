//! The command line: what `cierre` accepts (clap), and the dispatch of each command — those
//! that need no store run on the settings alone; every other one runs in [`execute`], generic
//! over the store backend picked once from `store.url`. The reports are printed by
//! [`crate::output`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::Dataset;
use crate::domain::ack::{AckState, NewAck};
use crate::domain::silence::{FieldMatcher, NewSilence, SilenceMatchers};
use crate::findings::acks::AckError;
use crate::output::{self, DigestFormat, Format, StatusReport, TerminalProgress};
use crate::scheduler::Daemon;
use crate::store::{Backend, PgStore, SqliteStore, Store};

#[derive(Parser)]
#[command(name = "cierre", version, about = "Keeps SECOP II contract files closed on time")]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, env = "CIERRE_CONFIG", default_value = "daemon.toml")]
    pub config: PathBuf,
    /// Log format on standard error (default: `log.format` of the configuration).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RecordDataset {
    Contracts,
    Documents,
    Guarantees,
}

impl From<RecordDataset> for Dataset {
    fn from(d: RecordDataset) -> Dataset {
        match d {
            RecordDataset::Contracts => Dataset::Contracts,
            RecordDataset::Documents => Dataset::Documents,
            RecordDataset::Guarantees => Dataset::Guarantees,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the pipeline: with --once, sync → evaluate → notify → deliver, then exit.
    Run {
        #[arg(long)]
        once: bool,
        /// Evaluate as of this date (YYYY-MM-DD) instead of today in Bogotá.
        #[arg(long, value_parser = date_arg)]
        as_of: Option<NaiveDate>,
    },
    /// Sync contracts, documents and guarantees from the configured source.
    Sync {
        /// Confirm that a drop the guards held is real: rows missing from the source are
        /// marked vanished even if more than source.max_vanished_share of the scope, or all
        /// of it, is missing.
        #[arg(long)]
        accept_vanishing: bool,
        /// Read documents and guarantees whole, as the weekly resync does, instead of only
        /// what changed since the last complete pass (and mark what is gone vanished).
        #[arg(long)]
        full: bool,
    },
    /// Evaluate the rules and print the current findings.
    Evaluate {
        #[arg(long, value_parser = date_arg)]
        as_of: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Evaluate every contract, even those whose data did not change and whose next
        /// date has not come (the findings are the same either way).
        #[arg(long)]
        full: bool,
    },
    /// Build the digests due and put them in the outbox (--dry-run: only print them).
    Notify {
        #[arg(long, value_parser = date_arg)]
        as_of: Option<NaiveDate>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Send what is due in the outbox, once.
    Deliver,
    /// Remove finished work past its retention ([retention]): sent and dead outbox items
    /// (kept in the delivery history without their payload), old history and runs.
    Purge,
    /// Render one recipient's digest.
    Digest {
        #[arg(long)]
        to: String,
        #[arg(long, value_parser = date_arg)]
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
    /// Act on the notification outbox.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Answer a finding: in progress (en_tramite) until a day (--until), or its missing
    /// document is published under another name (--document). Prints the answer's id.
    #[command(group(clap::ArgGroup::new("answer").required(true).args(["until", "document"])))]
    Ack {
        /// The contract (id_contrato).
        contract: String,
        /// The finding kind (closable, liquidation_due, state_outdated, missing_documents).
        kind: String,
        /// The finding's stage, when the contract has open findings of the kind in several.
        #[arg(long)]
        stage: Option<String>,
        /// en_tramite: the day the finding is shown again (it comes back earlier if it
        /// escalates).
        #[arg(long, value_parser = date_arg)]
        until: Option<NaiveDate>,
        /// documento_publicado: the published document (id_documento) that is the missing kind.
        #[arg(long)]
        document: Option<String>,
        /// The kind that document is, when several are missing.
        #[arg(long, requires = "document")]
        document_kind: Option<String>,
        #[command(flatten)]
        why: Why,
    },
    /// Answer a finding "does not apply" (no_aplica): out of the digests until its facts
    /// change (the contract row, its documents or the liquidation step). Prints the answer's id.
    Dismiss {
        contract: String,
        kind: String,
        #[arg(long)]
        stage: Option<String>,
        #[command(flatten)]
        why: Why,
    },
    /// The answers in force (--all: ended ones too), newest first, tab-separated: id,
    /// finding, contract, kind, stage, state, until, level, author, day, ended, reason.
    Acks {
        #[arg(long)]
        all: bool,
        /// Only the answers of this contract.
        #[arg(long)]
        contract: Option<String>,
    },
    /// A finding's history, oldest first, tab-separated: day, event, level, author, detail.
    History { finding: i64 },
    /// Silences (Alertmanager's model): keep the findings they match out of digests.
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
}

/// Who answers and why.
#[derive(clap::Args)]
pub struct Why {
    /// Why (kept in the finding's history; required).
    #[arg(long)]
    pub reason: String,
    /// More detail (optional).
    #[arg(long)]
    pub note: Option<String>,
    #[arg(long, env = "USER", default_value = "operator")]
    pub author: String,
}

#[derive(Subcommand)]
pub enum SilenceCommand {
    /// Add a silence; every matcher given must hold. Prints its id.
    Add {
        /// A finding kind (closable, liquidation_due, state_outdated, missing_documents).
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// An escalation level (aviso, urgente, vencido…).
        #[arg(long = "level")]
        levels: Vec<String>,
        /// An office id: findings routed to it.
        #[arg(long = "office")]
        offices: Vec<String>,
        /// FIELD=VALUE: the contract field (SODA name) equals VALUE, ignoring case and accents.
        #[arg(long = "match")]
        matches: Vec<String>,
        /// FIELD=REGEX: a regular expression finds a match in the contract field.
        #[arg(long = "match-regex")]
        regexes: Vec<String>,
        /// The first day in force (default: today).
        #[arg(long, value_parser = date_arg)]
        from: Option<NaiveDate>,
        /// The first day no longer in force.
        #[arg(long, value_parser = date_arg)]
        until: NaiveDate,
        /// Also hold back the findings' webhook events.
        #[arg(long)]
        webhooks: bool,
        #[arg(long, env = "USER", default_value = "operator")]
        author: String,
        /// Why (kept with the silence).
        #[arg(long)]
        comment: String,
    },
    /// The silences in force or to come (--all: ended ones too), tab-separated: id, from,
    /// until, state, author, matchers, comment.
    List {
        #[arg(long)]
        all: bool,
    },
    /// End a silence today (it is kept, with when it was expired).
    Expire { id: i64 },
}

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Queue dead items again (attempts reset), recorded in the outbox audit. With no
    /// filter, every dead item.
    Requeue {
        /// Only items of this channel (email, webhook).
        #[arg(long)]
        channel: Option<String>,
        /// Only items to this recipient or endpoint URL.
        #[arg(long)]
        target: Option<String>,
        /// Only the item with this id.
        #[arg(long)]
        id: Option<i64>,
        /// Who asks (recorded in the audit; default: $USER).
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
    /// The delivery history (items purged from the outbox), newest first, tab-separated:
    /// id, finished, status, channel, target, Message-ID or webhook-id, subject.
    History {
        /// Only items to this recipient or endpoint URL.
        #[arg(long)]
        target: Option<String>,
        /// Only `sent` or `dead` items.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
pub enum DocumentsCommand {
    /// The kind recognised for each document name in FILE (one per line; `-` reads standard
    /// input; a CSV export with a `nombre_archivo` column is read by that column, and by its
    /// `id_documento` column when it has one). Prints `kind<TAB>name` (`<TAB>manual` after a
    /// document an office head classified by hand), then how many names got each kind, then
    /// every manual classification.
    Classify { file: String },
}

#[derive(Subcommand)]
pub enum CalendarCommand {
    /// The national holidays of YEAR, one YYYY-MM-DD per line (--explain: with the name and
    /// the law of each, tab-separated, one line per holiday).
    Holidays {
        year: i32,
        #[arg(long)]
        explain: bool,
    },
    /// The number of business days in (FROM, TO].
    BusinessDays {
        #[arg(value_parser = date_arg)]
        from: NaiveDate,
        #[arg(value_parser = date_arg)]
        to: NaiveDate,
    },
}

/// A date on the command line: exactly `YYYY-MM-DD` (clap exits with 2 otherwise).
fn date_arg(s: &str) -> Result<NaiveDate, String> {
    crate::domain::parse_iso_date(s)
}

/// Refuses an `--as-of` outside the configured window ([`crate::config::DateWindow`]): a
/// usage error, checked before anything runs.
pub fn check_dates(command: &Command, settings: &Settings, today: NaiveDate) -> Result<(), String> {
    let as_of = match command {
        Command::Run { as_of, .. }
        | Command::Evaluate { as_of, .. }
        | Command::Notify { as_of, .. }
        | Command::Digest { as_of, .. } => *as_of,
        _ => None,
    };
    match as_of {
        Some(d) => settings.dates.check(d, today).map(|_| ()).map_err(|e| format!("--as-of: {e}")),
        None => Ok(()),
    }
}

/// Runs a one-shot command (not `run` without `--once`, not `check-config`), printing to
/// standard output.
pub async fn dispatch(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    // Buffered: `evaluate` may print a million lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let code = dispatch_to(command, settings, &mut out).await;
    out.flush()?;
    code
}

async fn dispatch_to(
    command: Command,
    settings: Settings,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Calendar { command: CalendarCommand::Holidays { year, explain: false } } => {
            output::write_days(out, &settings.calendar.holidays(year))?;
        }
        Command::Calendar { command: CalendarCommand::Holidays { year, explain: true } } => {
            output::write_holidays(out, &settings.calendar, year)?;
        }
        Command::Calendar { command: CalendarCommand::BusinessDays { from, to } } => {
            writeln!(out, "{}", settings.calendar.business_days_between(from, to))?;
        }
        Command::CheckConfig | Command::Run { once: false, .. } => {
            anyhow::bail!("not a one-shot command")
        }
        command => {
            let clock = Arc::new(SystemClock);
            return match Backend::of(&settings.store_url) {
                Backend::Sqlite => {
                    execute(&App::<SqliteStore>::open(settings, clock).await?, command, out).await
                }
                Backend::Postgres => {
                    execute(&App::<PgStore>::open(settings, clock).await?, command, out).await
                }
            };
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a command that needs the store, on any backend.
pub async fn execute<S: Store>(
    app: &App<S>,
    command: Command,
    mut out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { once: true, as_of } => {
            let r = app.run_once(as_of).await?;
            let mailer = crate::notify::email::Mailer::from_settings(&app.settings.email)?;
            output::write_run(out, &r, &mailer.describe())?;
        }
        Command::Sync { accept_vanishing, full } => {
            use std::io::IsTerminal;
            let options =
                crate::sync::SyncOptions { accept_vanishing, fresh: full, ..app.sync_options() };
            let r = if std::io::stderr().is_terminal() {
                app.sync_with(&TerminalProgress::default(), options).await?
            } else {
                app.sync_with(&crate::sync::LogProgress::default(), options).await?
            };
            write!(out, "{}", r.render())?;
        }
        Command::Evaluate { as_of, format, full } => {
            let as_of = app.as_of(as_of);
            let eval = app.evaluate_with(Some(as_of), full).await?;
            let mut w = output::FindingWriter::new(&mut out, format)?;
            let calendar = &app.settings.calendar;
            crate::findings::for_each_open(&app.store, calendar, as_of, |f| {
                Ok(w.write(&f.finding, f.ack.as_ref())?)
            })
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
            output::write_notify(out, &r, dry_run)?;
        }
        Command::Deliver => {
            let r = app.deliver().await?;
            writeln!(out, "sent {}, retrying {}, dead {}", r.sent, r.retrying, r.dead)?;
        }
        Command::Digest { to, as_of, format } => {
            // The workbook asked for on its own holds every row, whatever the size limit.
            let whole = (format == DigestFormat::Xlsx)
                .then_some(crate::config::AttachmentFormat { xlsx: true, csv: false });
            let Some(built) = app.digest(&to, as_of, whole).await? else {
                eprintln!("no findings for {to} in the digest of {}", app.as_of(as_of));
                return Ok(ExitCode::from(1));
            };
            output::write_digest(out, &built, format)?;
        }
        Command::Migrate => {
            writeln!(out, "migrations applied to {}", app.settings.store_url)?;
        }
        Command::Record { dataset, key } => {
            let dataset = Dataset::from(dataset);
            match app.store.raw_record(dataset, &key).await? {
                Some(frame) => {
                    let text = crate::source::raw::decompress(&frame)
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
            let daemon = Daemon::new(app.settings.clone(), app.store.clone(), app.clock.clone());
            let mut rows = Vec::new();
            for d in Dataset::ALL {
                let live = app.store.count_rows(d, false).await?;
                let all = app.store.count_rows(d, true).await?;
                rows.push((d, live, all));
            }
            let report = StatusReport {
                timezone: app.settings.schedule.timezone,
                jobs: daemon.job_status().await?,
                rows,
                syncs: app.store.last_sync_runs().await?,
                outbox: app.store.outbox_counts().await.context("reading the outbox")?,
                endpoints: app.store.endpoints().await?,
                evaluation: app.store.evaluated_state().await?.map(|last| {
                    let current =
                        last.fingerprint == crate::findings::settings_fingerprint(&app.settings);
                    (last, current)
                }),
                marks: app.store.evaluation_marks(output::MARKS_SHOWN as u32 + 1).await?.len(),
                now: chrono::Utc::now(),
            };
            output::write_status(out, &report)?;
        }
        Command::Outbox { command: OutboxCommand::Requeue { channel, target, id, by } } => {
            let filter = crate::store::RequeueFilter { channel, target, id };
            let n = app.store.requeue_dead(&filter, &by, app.clock.now()).await?;
            writeln!(out, "requeued {n} dead item(s)")?;
        }
        Command::Outbox { command: OutboxCommand::History { target, status, limit } } => {
            let page = crate::store::OutboxPage { target, status, limit, ..Default::default() };
            for d in app.store.deliveries(&page).await? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.finished_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    d.status,
                    d.channel,
                    d.target,
                    d.message_id.as_deref().unwrap_or("-"),
                    d.subject.as_deref().unwrap_or("-"),
                )?;
            }
        }
        Command::Silence { command } => {
            let today = app.clock.today(app.settings.schedule.timezone);
            match command {
                SilenceCommand::Add {
                    kinds,
                    levels,
                    offices,
                    matches,
                    regexes,
                    from,
                    until,
                    webhooks,
                    author,
                    comment,
                } => {
                    let mut errors = Vec::new();
                    let kinds = kinds
                        .iter()
                        .filter_map(|k| k.parse().map_err(|e| errors.push(format!("{e}"))).ok())
                        .collect();
                    let mut fields = Vec::new();
                    for (arg, regex) in
                        matches.iter().map(|m| (m, false)).chain(regexes.iter().map(|m| (m, true)))
                    {
                        match arg.split_once('=') {
                            Some((field, value)) => fields.push(FieldMatcher {
                                field: field.trim().to_string(),
                                value: value.to_string(),
                                regex,
                            }),
                            None => errors.push(format!("`{arg}` is not FIELD=VALUE")),
                        }
                    }
                    let new = NewSilence {
                        matchers: SilenceMatchers { kinds, levels, offices, fields },
                        starts_on: from.unwrap_or(today),
                        ends_on: until,
                        webhooks,
                        author,
                        comment,
                    };
                    if let Err(more) = crate::findings::silences::check(&new, &app.settings, today)
                    {
                        errors.extend(more);
                    }
                    if !errors.is_empty() {
                        for e in errors {
                            eprintln!("error: {e}");
                        }
                        return Ok(ExitCode::from(2));
                    }
                    let id = app.store.add_silence(&new, app.clock.now()).await?;
                    writeln!(out, "{id}")?;
                }
                SilenceCommand::List { all } => {
                    for s in app.store.silences(today, all, crate::store::IdPage::ALL).await? {
                        let state = match (s.expired_at, s.active_on(today)) {
                            (_, true) => "active",
                            (Some(_), false) => "expired",
                            (None, false) if s.silence.starts_on > today => "pending",
                            (None, false) => "ended",
                        };
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{state}\t{}\t{}\t{}",
                            s.id,
                            s.silence.starts_on,
                            s.silence.ends_on,
                            s.silence.author,
                            serde_json::to_string(&s.silence.matchers).unwrap_or_default(),
                            s.silence.comment
                        )?;
                    }
                }
                SilenceCommand::Expire { id } => {
                    if !app.store.expire_silence(id, today, app.clock.now()).await? {
                        eprintln!("error: no silence {id} in force or to come");
                        return Ok(ExitCode::from(2));
                    }
                    writeln!(out, "silence {id} expired")?;
                }
            }
        }
        Command::Ack { contract, kind, stage, until, document, document_kind, why } => {
            let state =
                if until.is_some() { AckState::EnTramite } else { AckState::DocumentoPublicado };
            let answer = (contract, kind, stage, state, until, document, document_kind, why);
            return answer_finding(app, answer, out).await;
        }
        Command::Dismiss { contract, kind, stage, why } => {
            let answer = (contract, kind, stage, AckState::NoAplica, None, None, None, why);
            return answer_finding(app, answer, out).await;
        }
        Command::Acks { all, contract } => {
            for a in app.store.acknowledgements(None, all, crate::store::IdPage::ALL).await? {
                if contract.as_ref().is_some_and(|c| *c != a.contract_id) {
                    continue;
                }
                let day = |d: Option<NaiveDate>| d.map_or("-".to_string(), |d| d.to_string());
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    a.id,
                    a.finding_id,
                    a.contract_id,
                    a.kind.as_str(),
                    a.stage.map_or("-", |s| s.as_str()),
                    a.state,
                    day(a.until),
                    a.level,
                    a.author,
                    a.on_date,
                    a.ended_reason
                        .as_deref()
                        .map_or("-".to_string(), |r| format!("{} ({r})", day(a.ended_on))),
                    a.reason
                )?;
            }
        }
        Command::History { finding } => {
            let entries =
                crate::findings::acks::history(&app.store, &app.settings, finding).await?;
            if entries.is_empty() {
                eprintln!("error: no finding {finding}");
                return Ok(ExitCode::from(1));
            }
            for e in entries {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    e.on_date,
                    e.event,
                    e.level,
                    e.author.as_deref().unwrap_or("-"),
                    e.detail.as_deref().unwrap_or("-")
                )?;
            }
        }
        Command::Purge => {
            let p = app.purge().await?;
            writeln!(
                out,
                "purged {} outbox item(s) to the delivery history, {} history row(s), {} run(s), \
                 {} digest slot(s)",
                p.outbox, p.history, p.runs, p.digests
            )?;
        }
        Command::Documents { command: DocumentsCommand::Classify { file } } => {
            // The documents office heads classified by hand count before the patterns.
            let manual = app.store.manual_classifications().await?;
            let names = read_document_names(&file)?;
            output::write_classification(out, &app.settings.classifier, &names, &manual)?;
        }
        Command::Calendar { .. } | Command::CheckConfig => {
            anyhow::bail!("a command that needs no store")
        }
        Command::Run { once: false, .. } => anyhow::bail!("the daemon is not a one-shot command"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What `cierre ack` and `cierre dismiss` were given: contract, kind, stage, state, until,
/// document, document kind, who and why.
type Answer = (
    String,
    String,
    Option<String>,
    AckState,
    Option<NaiveDate>,
    Option<String>,
    Option<String>,
    Why,
);

/// Records an answer; exit 2 with every problem when it is wrong, 1 when the contract or
/// its open finding is not there.
async fn answer_finding<S: Store>(
    app: &App<S>,
    answer: Answer,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let (contract_id, kind, stage, state, until, document_id, document_kind, why) = answer;
    let mut errors = Vec::new();
    let kind = kind.parse().map_err(|e| errors.push(format!("{e}"))).ok();
    let stage = stage.and_then(|s| s.parse().map_err(|e| errors.push(format!("{e}"))).ok());
    let (Some(kind), true) = (kind, errors.is_empty()) else {
        for e in errors {
            eprintln!("error: {e}");
        }
        return Ok(ExitCode::from(2));
    };
    let ack = NewAck {
        contract_id,
        kind,
        stage,
        state,
        until,
        document_id,
        document_kind,
        reason: why.reason,
        note: why.note,
        author: why.author,
    };
    let today = app.clock.today(app.settings.schedule.timezone);
    match crate::findings::acks::acknowledge(
        &app.store,
        &app.settings,
        &ack,
        today,
        app.clock.now(),
    )
    .await
    {
        Ok((_, a)) => {
            writeln!(out, "{}", a.id)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(AckError::Invalid(errors)) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            Ok(ExitCode::from(2))
        }
        Err(AckError::NotFound(e)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(AckError::Store(e)) => Err(e.into()),
    }
}

/// The documents of `cierre documents classify FILE`, as (`id_documento`, name): one name
/// per line, or the `nombre_archivo` (and `id_documento`) columns of a CSV export; `-`
/// reads standard input.
fn read_document_names(file: &str) -> anyhow::Result<Vec<(Option<String>, String)>> {
    use std::io::Read;
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    }
    let mut names = Vec::new();
    let header = text.lines().next().unwrap_or("");
    if header.split(',').any(|h| h.trim() == "nombre_archivo") {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers()?.clone();
        let at = |name: &str| headers.iter().position(|h| h.trim() == name);
        let (column, id) = (at("nombre_archivo").unwrap_or(0), at("id_documento"));
        for record in reader.records() {
            let record = record?;
            let id = id.and_then(|i| record.get(i)).map(str::to_string);
            names.push((id, record.get(column).unwrap_or("").to_string()));
        }
    } else {
        names.extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| (None, l.to_string())));
    }
    Ok(names)
}
