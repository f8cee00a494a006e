//! Output: what the CLI prints — findings as an aligned table for people or JSON Lines and
//! CSV for scripts, with the summary that follows them; the reports of `run --once`,
//! `notify`, `digest` and `status`; the document classification; sync progress bars.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};

use crate::app::RunReport;
use crate::config::classify::Classifier;
use crate::domain::ack::AckInForce;
use crate::domain::{Dataset, Finding};
use crate::findings::Evaluation;
use crate::notify::Built;
use crate::notify::NotifyReport;
use crate::scheduler::JobStatus;
use crate::store::{EndpointHealth, OutboxCounts};
use crate::sync::SyncCounts;

/// The formats of `cierre evaluate --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

/// Writes findings one at a time in `format`, so a listing of any size streams.
pub enum FindingWriter<'a> {
    Jsonl(&'a mut dyn Write),
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    Table(&'a mut dyn Write),
}

const CSV_HEADER: [&str; 11] = [
    "contract_id",
    "kind",
    "stage",
    "since",
    "deadline",
    "business_days_left",
    "level",
    "step",
    "missing",
    "reasons",
    "acknowledgement",
];

impl<'a> FindingWriter<'a> {
    /// Starts the listing (the header line of `table` and `csv`).
    pub fn new(out: &'a mut dyn Write, format: Format) -> io::Result<FindingWriter<'a>> {
        Ok(match format {
            Format::Jsonl => FindingWriter::Jsonl(out),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_HEADER)?;
                FindingWriter::Csv(Box::new(w))
            }
            Format::Table => {
                writeln!(
                    out,
                    "{:<22} {:<17} {:<9} {:<10} {:<10} {:>5}  reason",
                    "contract_id", "kind", "level", "since", "deadline", "left"
                )?;
                FindingWriter::Table(out)
            }
        })
    }

    /// Writes finding `f` with the office head's answer in force, if any (`acknowledgement`:
    /// its state, and until when for `en_tramite`).
    pub fn write(&mut self, f: &Finding, ack: Option<&AckInForce>) -> io::Result<()> {
        let answered = ack.map(|a| match a.until {
            Some(until) => format!("{} hasta {until}", a.state),
            None => a.state.to_string(),
        });
        match self {
            FindingWriter::Jsonl(out) => {
                let mut v = serde_json::to_value(f)?;
                v["acknowledgement"] = serde_json::to_value(ack)?;
                serde_json::to_writer(&mut **out, &v)?;
                out.write_all(b"\n")
            }
            FindingWriter::Csv(w) => {
                w.write_record([
                    f.contract_id.as_str(),
                    f.kind.as_str(),
                    f.stage_str(),
                    &f.since.to_string(),
                    &f.deadline.to_string(),
                    &f.business_days_left.to_string(),
                    &f.level,
                    f.step.as_deref().unwrap_or(""),
                    &f.missing.join("; "),
                    &f.reasons.join(" | "),
                    answered.as_deref().unwrap_or(""),
                ])?;
                Ok(())
            }
            FindingWriter::Table(out) => {
                // The reason that says what triggered the finding (the second, after the rule).
                let mut reason =
                    f.reasons.get(1).or(f.reasons.first()).cloned().unwrap_or_default();
                if let Some(answered) = answered {
                    reason = format!("[{answered}] {reason}");
                }
                let kind = match &f.step {
                    Some(step) => format!("{}/{step}", f.kind),
                    None => f.kind.to_string(),
                };
                writeln!(
                    out,
                    "{:<22} {:<17} {:<9} {:<10} {:<10} {:>5}  {}",
                    f.contract_id, kind, f.level, f.since, f.deadline, f.business_days_left, reason
                )
            }
        }
    }

    /// Ends the listing (flushes what is buffered).
    pub fn finish(self) -> io::Result<()> {
        match self {
            FindingWriter::Csv(mut w) => w.flush(),
            FindingWriter::Jsonl(out) | FindingWriter::Table(out) => out.flush(),
        }
    }
}

/// Writes the findings in `format`.
pub fn write_findings(out: &mut dyn Write, findings: &[Finding], format: Format) -> io::Result<()> {
    let mut w = FindingWriter::new(out, format)?;
    for f in findings {
        w.write(f, None)?;
    }
    w.finish()
}

/// The summary printed after the rows: counts per kind and level, what changed, and the
/// data-quality facts.
pub fn summary(eval: &Evaluation) -> String {
    let mut s = String::new();
    let dq = &eval.data_quality;
    s.push_str(&format!(
        "\nevaluated {} contracts as of {}: {} findings ({} opened, {} escalated, {} resolved)\n",
        dq.contracts,
        eval.as_of.map(|d| d.to_string()).unwrap_or_default(),
        eval.total,
        eval.opened,
        eval.escalated,
        eval.resolved
    ));
    if eval.full {
        s.push_str(&format!("  (full evaluation, {:.2} s)\n", eval.seconds));
    } else {
        s.push_str(&format!(
            "  (incremental: {} contracts changed or due evaluated again, the others as they were; {:.2} s)\n",
            eval.evaluated, eval.seconds
        ));
    }
    for ((kind, level), n) in &eval.counts {
        s.push_str(&format!("  {kind:<18} {level:<10} {n:>6}\n"));
    }
    if eval.muted > 0 {
        s.push_str(&format!("  {} webhook event(s) held back by silences\n", eval.muted));
    }
    if !dq.unknown_states.is_empty() {
        s.push_str("unknown estado_contrato values (not evaluated):\n");
        for (state, n) in &dq.unknown_states {
            s.push_str(&format!("  {state:<28} {n:>6}\n"));
        }
    }
    if eval.unrouted > 0 {
        s.push_str(&format!(
            "unrouted: {} findings match no route (they go to the fallback recipient)\n",
            eval.unrouted
        ));
    }
    s.push_str(&format!(
        "data quality: {} without end date, {} ending before signing, {} with more than {} days added, {} with a pending amount over {} times their value (these values taken as unknown)\n",
        dq.missing_end_date,
        dq.end_before_signing,
        dq.absurd_days_added,
        crate::domain::MAX_DAYS_ADDED,
        dq.absurd_pending_payment,
        crate::domain::MAX_PENDING_TO_VALUE
    ));
    s
}

/// What `cierre run --once` did, stage by stage; `mailer` says where mail went.
pub fn write_run(out: &mut dyn Write, r: &RunReport, mailer: &str) -> io::Result<()> {
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
        mailer,
        r.delivery.retrying,
        r.delivery.dead
    )
}

/// What `cierre notify` prepared: each digest, then the totals.
pub fn write_notify(out: &mut dyn Write, r: &NotifyReport, dry_run: bool) -> io::Result<()> {
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
    for to in &r.failed {
        writeln!(out, "not built, see the log: the digest for {to}")?;
    }
    Ok(())
}

/// The formats of `cierre digest --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DigestFormat {
    Text,
    Html,
    Eml,
    /// The workbook of every row (binary: redirect it to a file).
    Xlsx,
}

/// One digest, as `cierre digest` shows it.
pub fn write_digest(out: &mut dyn Write, built: &Built, format: DigestFormat) -> io::Result<()> {
    let rendered = &built.rendered;
    match format {
        DigestFormat::Text => {
            writeln!(out, "Subject: {}\n", rendered.subject)?;
            write!(out, "{}", rendered.text)
        }
        DigestFormat::Html => write!(out, "{}", rendered.html),
        DigestFormat::Eml => out.write_all(&built.formatted),
        DigestFormat::Xlsx => out.write_all(built.files.xlsx.as_deref().unwrap_or_default()),
    }
}

/// What `cierre status` shows.
pub struct StatusReport {
    pub timezone: chrono_tz::Tz,
    pub jobs: Vec<JobStatus>,
    /// Each dataset with its live rows and all rows (vanished ones included).
    pub rows: Vec<(Dataset, u64, u64)>,
    /// The latest sync run of each dataset.
    pub syncs: Vec<crate::sync::SyncRunSummary>,
    pub outbox: OutboxCounts,
    pub endpoints: Vec<EndpointHealth>,
    /// The last complete evaluation, whether it ran with the settings in force now, and how
    /// many marks wait for the next one (up to [`MARKS_SHOWN`], then "more").
    pub evaluation: Option<(crate::store::EvaluatedState, bool)>,
    pub marks: usize,
    /// For telling a suspension still in force.
    pub now: DateTime<Utc>,
}

/// How many waiting marks `cierre status` counts before saying "more than".
pub const MARKS_SHOWN: usize = 1_000;

/// `cierre status`: the jobs, the stored rows, the outbox and the failing endpoints.
pub fn write_status(out: &mut dyn Write, s: &StatusReport) -> io::Result<()> {
    writeln!(out, "{:<8} {:<22} {:<26} last run", "job", "schedule", "next run")?;
    for j in &s.jobs {
        let next = j.next_run.map(|t| t.with_timezone(&s.timezone).to_rfc3339());
        let last = j
            .last_run
            .as_ref()
            .map(|r| {
                format!("{} {} ({})", r.scheduled_for, r.outcome, r.error.as_deref().unwrap_or(""))
            })
            .unwrap_or_else(|| "never".into());
        writeln!(out, "{:<8} {:<22} {:<26} {last}", j.job, j.schedule, next.unwrap_or_default())?;
    }
    for (d, live, all) in &s.rows {
        writeln!(out, "{:<11} {live} stored ({} vanished)", d.name(), all - live)?;
    }
    for r in &s.syncs {
        let state = if r.status == "held" { "HELD".to_string() } else { r.status.clone() };
        let error = r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        writeln!(out, "last sync   {} {state} at {}{error}", r.dataset, r.started_at)?;
    }
    let marks = if s.marks > MARKS_SHOWN {
        format!("more than {MARKS_SHOWN} changes")
    } else {
        format!("{} change(s)", s.marks)
    };
    match &s.evaluation {
        Some((last, true)) => writeln!(
            out,
            "evaluation  last complete as of {}; {marks} since, for the next one to look at",
            last.as_of
        )?,
        Some((last, false)) => writeln!(
            out,
            "evaluation  last complete as of {}; the settings, calendar or program changed since: the next one evaluates every contract",
            last.as_of
        )?,
        None => writeln!(
            out,
            "evaluation  none complete yet: the next one evaluates every contract ({marks} waiting)"
        )?,
    }
    let c = &s.outbox;
    writeln!(
        out,
        "outbox      pending {}, retrying {}, sending {}, sent {}, dead {}",
        c.pending, c.retrying, c.sending, c.sent, c.dead
    )?;
    for e in &s.endpoints {
        let state = match e.suspended_until {
            Some(until) if until > s.now => format!("SUSPENDED until {until}"),
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
    Ok(())
}

/// `cierre documents classify`: the kind of each name, then the counts per kind.
pub fn write_classification(
    out: &mut dyn Write,
    classifier: &Classifier,
    names: &[(Option<String>, String)],
    manual: &[crate::domain::ack::ManualClassification],
) -> io::Result<()> {
    let by_id: std::collections::HashMap<&str, &str> =
        manual.iter().map(|m| (m.document_id.as_str(), m.kind.as_str())).collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (id, name) in names {
        match id.as_deref().and_then(|id| by_id.get(id)) {
            Some(kind) => {
                *counts.entry(kind.to_string()).or_default() += 1;
                writeln!(out, "{kind}\t{name}\tmanual")?;
            }
            None => {
                let kind = classifier.classify(Some(name), None);
                *counts.entry(kind.to_string()).or_default() += 1;
                writeln!(out, "{kind}\t{name}")?;
            }
        }
    }
    writeln!(out)?;
    for (kind, n) in &counts {
        writeln!(out, "{n:>6}  {kind} ({})", classifier.label(kind).unwrap_or(""))?;
    }
    if !manual.is_empty() {
        // Beside the patterns: what office heads said (cierre ack --document).
        writeln!(out)?;
        writeln!(out, "classified by hand (id_documento, kind, author, when, reason):")?;
        for m in manual {
            writeln!(
                out,
                "manual\t{}\t{}\t{}\t{}\t{}",
                m.document_id,
                m.kind,
                m.author,
                m.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                m.reason
            )?;
        }
    }
    Ok(())
}

/// Dates, one `YYYY-MM-DD` per line.
pub fn write_days(out: &mut dyn Write, days: &[NaiveDate]) -> io::Result<()> {
    for d in days {
        writeln!(out, "{d}")?;
    }
    Ok(())
}

/// The national holidays of `year` with the name and law of each: `date\tname\tlaw`, one
/// line per holiday (two holidays on one Monday make two lines).
pub fn write_holidays(
    out: &mut dyn Write,
    calendar: &crate::calendar::Calendar,
    year: i32,
) -> io::Result<()> {
    for d in calendar.holidays(year) {
        for rule in calendar.holiday_rules_on(d) {
            writeln!(out, "{d}\t{}\t{}", rule.name, rule.law)?;
        }
    }
    Ok(())
}

/// A progress line per dataset on the terminal (indicatif).
#[derive(Default)]
pub struct TerminalProgress {
    bars: Mutex<HashMap<&'static str, indicatif::ProgressBar>>,
}

impl TerminalProgress {
    fn bar(&self, dataset: Dataset) -> indicatif::ProgressBar {
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

impl crate::sync::Progress for TerminalProgress {
    fn page(&self, dataset: Dataset, c: &SyncCounts) {
        self.bar(dataset).set_message(format!(
            "{} read, {} new, {} changed, {} rejected, {} pages, {} retries",
            c.read, c.new, c.changed, c.rejected, c.pages, c.retries
        ));
    }

    fn finished(&self, dataset: Dataset, c: &SyncCounts) {
        self.bar(dataset)
            .finish_with_message(format!("{} read, {} vanished: done", c.read, c.vanished));
    }
}
