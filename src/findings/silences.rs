//! Findings, silences: the silences in force on a day, compiled against the configuration
//! (office ids to offices, regular expressions), and whether one matches a finding — for
//! the evaluation's webhook events and for the digests.

use crate::config::Settings;
use crate::domain::silence::Silence;
use crate::domain::{Contract, ContractField, Finding, Kind, fold};

/// A silence ready to match findings.
#[derive(Debug)]
pub struct Compiled {
    pub id: i64,
    pub webhooks: bool,
    kinds: Vec<Kind>,
    levels: Vec<String>,
    /// Offices by index; `None` for an office the configuration no longer has (nothing
    /// routed to it matches).
    offices: Vec<Option<usize>>,
    fields: Vec<(Option<ContractField>, Field)>,
}

#[derive(Debug)]
enum Field {
    Equals(String),
    Regex(Option<regex::Regex>),
}

impl Compiled {
    pub fn new(s: &Silence, settings: &Settings) -> Compiled {
        let m = &s.silence.matchers;
        Compiled {
            id: s.id,
            webhooks: s.silence.webhooks,
            kinds: m.kinds.clone(),
            levels: m.levels.clone(),
            offices: m
                .offices
                .iter()
                .map(|id| settings.offices.iter().position(|o| &o.id == id))
                .collect(),
            fields: m
                .fields
                .iter()
                .map(|f| {
                    let op = if f.regex {
                        // Checked when the silence was added; one that no longer compiles
                        // matches nothing.
                        Field::Regex(regex::Regex::new(&f.value).ok())
                    } else {
                        Field::Equals(fold(&f.value))
                    };
                    (ContractField::from_api_name(&f.field), op)
                })
                .collect(),
        }
    }

    /// Whether the silence matches finding `f` of contract `c`, routed to `offices`.
    pub fn matches(&self, f: &Finding, c: &Contract, offices: &[usize]) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&f.kind))
            && (self.levels.is_empty() || self.levels.contains(&f.level))
            && (self.offices.is_empty()
                || self.offices.iter().flatten().any(|o| offices.contains(o)))
            && self.fields.iter().all(|(field, op)| {
                let Some(value) = field.and_then(|f| f.get(c)) else { return false };
                match op {
                    Field::Equals(v) => fold(value) == *v,
                    Field::Regex(re) => re.as_ref().is_some_and(|re| re.is_match(value)),
                }
            })
    }
}

/// The silences of `all` in force on `day`, compiled.
pub fn in_force(all: &[Silence], day: chrono::NaiveDate, settings: &Settings) -> Vec<Compiled> {
    all.iter().filter(|s| s.active_on(day)).map(|s| Compiled::new(s, settings)).collect()
}

/// Every reason `s` cannot be added on `today`, in Spanish-free English for the operator:
/// no matcher, an unknown kind, level, office or field, a regular expression that does not
/// compile, an empty author or comment, an end not after its start or already past.
pub fn check(
    s: &crate::domain::silence::NewSilence,
    settings: &Settings,
    today: chrono::NaiveDate,
) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let m = &s.matchers;
    if m.is_empty() {
        errors.push("a silence needs at least one matcher (kind, level, office or field)".into());
    }
    for level in &m.levels {
        if !settings.levels.iter().any(|l| &l.name == level) {
            let names: Vec<&str> = settings.levels.iter().map(|l| l.name.as_str()).collect();
            errors.push(format!("level `{level}` is not one of: {}", names.join(", ")));
        }
    }
    for office in &m.offices {
        if !settings.offices.iter().any(|o| &o.id == office) {
            errors.push(format!("office `{office}` is not configured"));
        }
    }
    for f in &m.fields {
        if ContractField::from_api_name(&f.field).is_none() {
            errors.push(format!("`{}` is not a contract field a silence can match", f.field));
        }
        if f.regex
            && let Err(e) = regex::Regex::new(&f.value)
        {
            errors.push(format!("`{}` is not a regular expression: {e}", f.value));
        }
        if !f.regex && f.value.trim().is_empty() {
            errors.push(format!("the value for `{}` is empty", f.field));
        }
    }
    if s.author.trim().is_empty() {
        errors.push("the author is empty".into());
    }
    if s.comment.trim().is_empty() {
        errors.push("the comment is empty: say why the findings are silenced".into());
    }
    if s.ends_on <= s.starts_on {
        errors.push(format!("the end ({}) is not after the start ({})", s.ends_on, s.starts_on));
    }
    if s.ends_on <= today {
        errors.push(format!("the end ({}) is not after today ({today})", s.ends_on));
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}
