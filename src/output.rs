//! Output: how `cierre evaluate` prints findings — an aligned table for people, JSON Lines
//! and CSV for scripts — and the summary that follows them.

use std::io::{self, Write};

use crate::domain::Finding;
use crate::findings::Evaluation;

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

const CSV_HEADER: [&str; 10] = [
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

    pub fn write(&mut self, f: &Finding) -> io::Result<()> {
        match self {
            FindingWriter::Jsonl(out) => {
                serde_json::to_writer(&mut **out, f)?;
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
                ])?;
                Ok(())
            }
            FindingWriter::Table(out) => {
                // The reason that says what triggered the finding (the second, after the rule).
                let reason =
                    f.reasons.get(1).or(f.reasons.first()).map(String::as_str).unwrap_or("");
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
        w.write(f)?;
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
    for ((kind, level), n) in &eval.counts {
        s.push_str(&format!("  {kind:<18} {level:<10} {n:>6}\n"));
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
        "data quality: {} without end date, {} ending before signing\n",
        dq.missing_end_date, dq.end_before_signing
    ));
    s
}
