//! Configuration, phase two: a pure check of the raw configuration that reports every
//! problem at once, with its location, and builds [`Settings`] when there is none.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDate;
use secrecy::ExposeSecret;

use super::classify::{ACTA_LIQUIDACION, Classifier};
use super::raw::{Raw, RawPerson};
use super::routing::{MatchOp, Matcher, Route, Router};
use super::schedule::Schedule;
use super::*;
use crate::calendar::{Calendar, HOLIDAY_RULES, HolidayRule, RuleKind, parse_weekday};
use crate::domain::{ContractField, EVENT_TYPES, Stage, fold};

/// Collects errors with their location so that validation never stops at the first one.
struct Errors<'a, 'l> {
    at: &'a Locator<'l>,
    list: Vec<ConfigError>,
}

impl Errors<'_, '_> {
    fn add(&mut self, key: impl AsRef<str>, message: impl Into<String>) {
        let location = self.at.locate(key.as_ref());
        self.list.push(ConfigError { location, message: message.into() });
    }
}

/// Checks the raw configuration without touching the network or the disk (templates aside,
/// which are read and parsed so that a broken template is caught before a digest run).
pub(crate) fn validate(raw: Raw, at: &Locator) -> Result<Settings, ConfigErrors> {
    let file = at.file();
    let mut e = Errors { at, list: Vec::new() };

    // store
    let store_url = raw.store.url.trim().to_string();
    if !(store_url.starts_with("sqlite:") || store_url.starts_with("postgres://")) {
        e.add("store.url", format!("`{store_url}` is neither sqlite://… nor postgres://…"));
    }
    let mmap_mib = raw.store.sqlite_mmap_mib;
    if !(0..=MAX_MMAP_MIB as i64).contains(&mmap_mib) {
        e.add(
            "store.sqlite_mmap_mib",
            format!("{mmap_mib} is not between 0 (no mapping) and {MAX_MMAP_MIB} MiB"),
        );
    }

    // source
    let kind = match raw.source.kind.as_str() {
        "socrata" => SourceKind::Socrata,
        "file" => SourceKind::File,
        other => {
            e.add("source.kind", format!("`{other}` is not one of: socrata, file"));
            SourceKind::File
        }
    };
    let base_url = parse_url(&mut e, "source.base_url", &raw.source.base_url);
    if !(1..=50_000).contains(&raw.source.page_size) {
        e.add("source.page_size", format!("{} is not between 1 and 50000", raw.source.page_size));
    }
    if !(0.0..=1.0).contains(&raw.source.max_vanished_share) {
        e.add(
            "source.max_vanished_share",
            format!(
                "{} is not a share between 0 and 1 (0.05 = 5 %)",
                raw.source.max_vanished_share
            ),
        );
    }
    let mut entities = Vec::new();
    for (i, nit) in raw.source.entities.iter().enumerate() {
        let nit = nit.trim();
        if nit.is_empty() || !nit.chars().all(|c| c.is_ascii_digit()) {
            e.add(format!("source.entities[{i}]"), format!("`{nit}` is not a NIT (digits only)"));
        } else {
            entities.push(nit.to_string());
        }
    }
    for (key, value, range) in [
        ("source.request_timeout_secs", raw.source.request_timeout_secs, 1..=3600),
        ("source.max_retries", raw.source.max_retries, 0..=100),
        ("source.retry_base_ms", raw.source.retry_base_ms, 1..=600_000),
        ("source.lookback_hours", raw.source.lookback_hours, 0..=2_160),
    ] {
        if !range.contains(&value) {
            e.add(key, format!("{value} is not between {} and {}", range.start(), range.end()));
        }
    }
    if kind == SourceKind::File && raw.source.contracts_path.is_none() {
        e.add("source.contracts_path", "required when source.kind = \"file\"");
    }

    // datasets
    for (key, id) in [
        ("datasets.contracts", &raw.datasets.contracts),
        ("datasets.documents", &raw.datasets.documents),
        ("datasets.guarantees", &raw.datasets.guarantees),
    ] {
        if !is_dataset_id(id) {
            e.add(key, format!("`{id}` is not a Socrata dataset id (like jbjy-vk9h)"));
        }
    }

    // calendar
    let mut working = Vec::new();
    for (i, day) in raw.calendar.working_days.iter().enumerate() {
        match parse_weekday(day) {
            Some(d) if !working.contains(&d) => working.push(d),
            Some(_) => e.add(format!("calendar.working_days[{i}]"), format!("`{day}` is repeated")),
            None => {
                e.add(format!("calendar.working_days[{i}]"), format!("`{day}` is not a weekday"))
            }
        }
    }
    if raw.calendar.working_days.is_empty() {
        e.add("calendar.working_days", "at least one working day is needed");
    }
    let earliest = raw.calendar.earliest_year;
    if !(1900..=2100).contains(&earliest) {
        e.add("calendar.earliest_year", format!("{earliest} is not a year between 1900 and 2100"));
    }
    if !(0..=100).contains(&raw.calendar.years_ahead) {
        e.add(
            "calendar.years_ahead",
            format!("{} is not a number of years between 0 and 100", raw.calendar.years_ahead),
        );
    }
    let holidays = holiday_rules(&mut e, &raw.calendar);
    let date_form = format!("is not a date YYYY-MM-DD from {earliest} on (calendar.earliest_year)");
    let mut non_working = Vec::new();
    for (i, day) in raw.calendar.non_working_days.iter().enumerate() {
        match parse_date(day, earliest) {
            Some(d) => non_working.push(d),
            None => {
                e.add(format!("calendar.non_working_days[{i}]"), format!("`{day}` {date_form}"))
            }
        }
    }

    // rules
    let c = &raw.rules.closable;
    if !(1..=3650).contains(&c.deadline_business_days) {
        e.add(
            "rules.closable.deadline_business_days",
            format!("{} is not between 1 and 3650", c.deadline_business_days),
        );
    }
    let so = &raw.rules.state_outdated;
    if !(1..=365).contains(&so.grace_business_days) {
        e.add(
            "rules.state_outdated.grace_business_days",
            format!("{} is not between 1 and 365", so.grace_business_days),
        );
    }
    let campaign_deadline = c.campaign_deadline.as_deref().and_then(|d| {
        let parsed = parse_date(d, earliest);
        if parsed.is_none() {
            e.add("rules.closable.campaign_deadline", format!("`{d}` {date_form}"));
        }
        parsed
    });

    let ld = &raw.rules.liquidation_due;
    for (key, value, max) in [
        ("bilateral_months", ld.bilateral_months, 120),
        ("unilateral_months", ld.unilateral_months, 120),
        ("late_years", ld.late_years, 20),
    ] {
        if !(0..=max).contains(&value) {
            e.add(
                format!("rules.liquidation_due.{key}"),
                format!("{value} is not between 0 and {max}"),
            );
        }
    }
    let mut guarantee_types = Vec::new();
    for (i, t) in c.guarantee_types.iter().enumerate() {
        let folded = fold(t);
        if folded.is_empty() {
            e.add(
                format!("rules.closable.guarantee_types[{i}]"),
                "an empty type matches every guarantee",
            );
        } else {
            guarantee_types.push(folded);
        }
    }

    // documents: the classifier, then the checklist that names its kinds
    let mut kinds = raw.documents.kinds.clone();
    if !raw.documents.replace_default_kinds {
        kinds.extend(Classifier::defaults());
    }
    let classifier = match Classifier::new(&kinds) {
        Ok(c) => Some(c),
        Err(errors) => {
            for (i, message) in errors {
                let key = if i < raw.documents.kinds.len() {
                    format!("documents.kinds[{i}]")
                } else {
                    "documents.kinds".to_string()
                };
                e.add(key, message);
            }
            None
        }
    };
    if kinds.is_empty() {
        e.add("documents.kinds", "replace_default_kinds = true needs at least one kind");
    }
    // The liquidation rules see a liquidation evidenced by a document of this kind.
    if let Some(c) = &classifier
        && (raw.rules.closable.enabled || raw.rules.liquidation_due.enabled)
        && c.label(ACTA_LIQUIDACION).is_none()
    {
        e.add(
            "documents.kinds",
            format!(
                "no kind `{}`: rules.closable and rules.liquidation_due look for it to see a liquidation evidenced",
                ACTA_LIQUIDACION
            ),
        );
    }
    let md = &raw.rules.missing_documents;
    if !(0..=60).contains(&md.publication_business_days) {
        e.add(
            "rules.missing_documents.publication_business_days",
            format!("{} is not between 0 and 60", md.publication_business_days),
        );
    }
    let signed_since = md.signed_since.as_deref().filter(|d| !d.is_empty()).and_then(|d| {
        let parsed = parse_date(d, earliest);
        if parsed.is_none() {
            e.add("rules.missing_documents.signed_since", format!("`{d}` {date_form}"));
        }
        parsed
    });
    let mut checklist = Vec::new();
    for (i, r) in md.checklist.iter().enumerate() {
        let at = |field: &str| format!("rules.missing_documents.checklist[{i}].{field}");
        let stage = r.stage.parse::<Stage>().ok();
        if stage.is_none() {
            e.add(
                at("stage"),
                format!("`{}` is not precontractual, contractual or postcontractual", r.stage),
            );
        }
        if let Some(c) = &classifier
            && c.label(&r.kind).is_none()
        {
            let known: Vec<&str> = c.kinds().map(|(id, _)| id).collect();
            e.add(
                at("kind"),
                format!("`{}` is not a document kind; known kinds: {}", r.kind, known.join(", ")),
            );
        }
        for (field, list) in [
            ("modalities", &r.modalities),
            ("except_modalities", &r.except_modalities),
            ("types", &r.types),
            ("except_types", &r.except_types),
        ] {
            if list.iter().any(|v| fold(v).is_empty()) {
                e.add(at(field), "an empty value matches every contract");
            }
        }
        let folded = |list: &[String]| list.iter().map(|v| fold(v)).collect::<Vec<_>>();
        if let Some(stage) = stage {
            checklist.push(Requirement {
                stage,
                kind: r.kind.clone(),
                modalities: folded(&r.modalities),
                except_modalities: folded(&r.except_modalities),
                types: folded(&r.types),
                except_types: folded(&r.except_types),
                liquidation_required: r.liquidation_required,
            });
        }
    }

    // offices
    let mut offices = Vec::new();
    let mut ids = HashSet::new();
    let mut roles: BTreeSet<String> = ["head".to_string()].into();
    for (i, o) in raw.offices.iter().enumerate() {
        let at = format!("offices[{i}]");
        if o.id.trim().is_empty() {
            e.add(format!("{at}.id"), "must not be empty");
        } else if !ids.insert(o.id.clone()) {
            e.add(format!("{at}.id"), format!("office `{}` is defined twice", o.id));
        }
        let head = person(&mut e, &format!("{at}.head"), &o.head);
        let mut chain = Vec::new();
        for (j, m) in o.chain.iter().enumerate() {
            let mat = format!("{at}.chain[{j}]");
            if m.role.trim().is_empty() || m.role == "head" {
                e.add(format!("{mat}.role"), "a chain role must be a name other than `head`");
            }
            roles.insert(m.role.clone());
            let p =
                person(&mut e, &mat, &RawPerson { name: m.name.clone(), email: m.email.clone() });
            if let Some(p) = p {
                chain.push(ChainMember { role: m.role.clone(), person: p });
            }
        }
        if let Some(head) = head {
            offices.push(Office { id: o.id.clone(), name: o.name.clone(), head, chain });
        }
    }

    // routes
    let mut routes = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let office = raw.offices.iter().position(|o| o.id == r.office);
        if office.is_none() {
            e.add(format!("{at}.office"), format!("no office has id `{}`", r.office));
        }
        let mut matchers = Vec::new();
        let field = |e: &mut Errors, key: String, name: &str| {
            let f = ContractField::from_api_name(name);
            if f.is_none() {
                e.add(
                    key,
                    format!(
                        "`{name}` is not a contract field routes can match; use one of: {}",
                        ContractField::ALL
                            .iter()
                            .map(|f| f.api_name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            f
        };
        for (name, value) in &r.match_equals {
            if let Some(f) = field(&mut e, format!("{at}.match.{name}"), name) {
                matchers.push(Matcher { field: f, op: MatchOp::Equals(value.clone()) });
            }
        }
        for (name, values) in &r.match_one_of {
            if let Some(f) = field(&mut e, format!("{at}.match_one_of.{name}"), name) {
                matchers.push(Matcher { field: f, op: MatchOp::OneOf(values.clone()) });
            }
        }
        for (name, pattern) in &r.match_regex {
            let key = format!("{at}.match_regex.{name}");
            let f = field(&mut e, key.clone(), name);
            match regex::Regex::new(pattern) {
                Ok(re) => {
                    if let Some(f) = f {
                        matchers.push(Matcher { field: f, op: MatchOp::Regex(re) });
                    }
                }
                Err(err) => e.add(key, format!("bad regular expression: {err}")),
            }
        }
        if let Some(office) = office {
            routes.push(Route { office, matchers, continue_: r.continue_ });
        }
    }
    let fallback =
        raw.routing.fallback.as_ref().and_then(|p| person(&mut e, "routing.fallback", p));

    // escalation
    let mut levels = Vec::new();
    let mut names = HashSet::new();
    let mut thresholds = HashSet::new();
    for (i, l) in raw.escalation.levels.iter().enumerate() {
        let at = format!("escalation.levels[{i}]");
        if l.name.trim().is_empty() || l.name == "info" {
            e.add(format!("{at}.name"), "a level needs a name other than `info` (reserved)");
        } else if !names.insert(l.name.clone()) {
            e.add(format!("{at}.name"), format!("level `{}` is defined twice", l.name));
        }
        if !thresholds.insert(l.max_business_days_left) {
            e.add(
                format!("{at}.max_business_days_left"),
                format!("another level already uses {}", l.max_business_days_left),
            );
        }
        for (j, role) in l.notify.iter().enumerate() {
            if !(roles.contains(role) || raw.offices.is_empty() && is_default_role(role)) {
                e.add(
                    format!("{at}.notify[{j}]"),
                    format!(
                        "no office has a chain member with role `{role}` (known roles: {})",
                        roles.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        let cadence = match (l.every.as_str(), l.weekday.as_deref()) {
            ("daily", None) => Some(Cadence::Daily),
            ("weekly", Some(day)) => match parse_weekday(day) {
                Some(d) => Some(Cadence::Weekly(d)),
                None => {
                    e.add(format!("{at}.weekday"), format!("`{day}` is not a weekday"));
                    None
                }
            },
            ("weekly", None) => {
                e.add(format!("{at}.weekday"), "required when every = \"weekly\"");
                None
            }
            ("daily", Some(_)) => {
                e.add(format!("{at}.weekday"), "only for every = \"weekly\"");
                None
            }
            (other, _) => {
                e.add(format!("{at}.every"), format!("`{other}` is not one of: daily, weekly"));
                None
            }
        };
        if let Some(cadence) = cadence {
            levels.push(Level {
                name: l.name.clone(),
                max_business_days_left: l.max_business_days_left,
                notify: l.notify.clone(),
                cadence,
            });
        }
    }
    // Most urgent first: the first level whose threshold holds is the finding's level.
    levels.sort_by_key(|l| l.max_business_days_left);

    // email
    let from = match lettre::message::Mailbox::from_str(&raw.email.from) {
        Ok(m) => Some(m),
        Err(err) => {
            e.add("email.from", format!("`{}` is not a mailbox: {err}", raw.email.from));
            None
        }
    };
    let d = &raw.delivery;
    for (key, value, range) in [
        ("delivery.max_attempts", d.max_attempts, 1..=100),
        ("delivery.lease_secs", d.lease_secs, 5..=86_400),
        ("delivery.suspend_after_failures", d.suspend_after_failures, 1..=1000),
        ("delivery.suspend_minutes", d.suspend_minutes, 1..=10_080),
        ("delivery.webhook_timeout_secs", d.webhook_timeout_secs, 1..=300),
        ("delivery.concurrency", d.concurrency, 1..=64),
        ("delivery.retry_base_secs", d.retry_base_secs, 1..=86_400),
        ("delivery.retry_max_secs", d.retry_max_secs, d.retry_base_secs.max(1)..=7 * 86_400),
        ("retention.outbox_days", raw.retention.outbox_days, 1..=36_500),
        ("retention.runs_days", raw.retention.runs_days, 1..=36_500),
        ("retention.history_days", raw.retention.history_days, 0..=36_500),
        ("acknowledgements.max_days", raw.acknowledgements.max_days, 1..=3_650),
    ] {
        if !range.contains(&value) {
            e.add(key, format!("{value} is not between {} and {}", range.start(), range.end()));
        }
    }
    let smtp = raw.email.smtp.as_ref().map(|s| {
        let tls = match s.tls.as_deref().unwrap_or("starttls") {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::StartTls,
            "implicit" => SmtpTls::Implicit,
            other => {
                e.add(
                    "email.smtp.tls",
                    format!("`{other}` is not one of: none, starttls, implicit"),
                );
                SmtpTls::None
            }
        };
        if s.host.trim().is_empty() {
            e.add("email.smtp.host", "must not be empty");
        }
        let default_port = match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 587,
            SmtpTls::None => 25,
        };
        let port = s.port.unwrap_or(default_port);
        if !(1..=65535).contains(&port) {
            e.add("email.smtp.port", format!("{port} is not a port number"));
        }
        if s.password.is_some() && s.username.is_none() {
            e.add("email.smtp.username", "required when a password is set");
        }
        let ca_pem = s.ca_file.as_ref().and_then(|path| match std::fs::read(path) {
            Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => Some(pem),
            Ok(_) => {
                e.add("email.smtp.ca_file", format!("{} holds no PEM certificate", path.display()));
                None
            }
            Err(err) => {
                e.add("email.smtp.ca_file", format!("cannot read {}: {err}", path.display()));
                None
            }
        });
        let timeout = s.timeout_secs.unwrap_or(30);
        if !(1..=600).contains(&timeout) {
            e.add("email.smtp.timeout_secs", format!("{timeout} is not between 1 and 600"));
        }
        SmtpSettings {
            host: s.host.trim().to_string(),
            port: port.clamp(1, 65535) as u16,
            tls,
            username: s.username.clone(),
            password: s.password.clone(),
            timeout: Duration::from_secs(timeout.clamp(1, 600) as u64),
            ca_pem,
        }
    });
    let rd = &raw.email.digest;
    for (key, value, range) in [
        ("email.digest.max_rows", rd.max_rows, 1..=1000),
        ("email.max_message_bytes", raw.email.max_message_bytes, 100_000..=1_000_000_000),
    ] {
        if !range.contains(&value) {
            e.add(key, format!("{value} is not between {} and {}", range.start(), range.end()));
        }
    }
    let attachment = match rd.attachment.as_str() {
        "xlsx" => AttachmentFormat { xlsx: true, csv: false },
        "csv" => AttachmentFormat { xlsx: false, csv: true },
        "both" => AttachmentFormat { xlsx: true, csv: true },
        "none" => AttachmentFormat { xlsx: false, csv: false },
        other => {
            e.add(
                "email.digest.attachment",
                format!("`{other}` is not one of: xlsx, csv, both, none"),
            );
            AttachmentFormat { xlsx: true, csv: false }
        }
    };
    let csv_separator = match rd.csv_separator.as_bytes() {
        // Not the quote, which encloses fields.
        [b] if (b.is_ascii_punctuation() && *b != b'"') || *b == b'\t' => *b,
        _ => {
            e.add(
                "email.digest.csv_separator",
                format!(
                    "`{}` is not one ASCII punctuation character (other than `\"`) or a tab",
                    rd.csv_separator
                ),
            );
            b';'
        }
    };
    super::templates::check_templates(&raw.email.templates_dir, &mut |name, msg| {
        e.add(format!("email.templates_dir ({name})"), msg)
    });

    // webhooks
    let mut webhooks = Vec::new();
    for (i, w) in raw.webhooks.iter().enumerate() {
        let at = format!("webhooks[{i}]");
        let url = parse_url(&mut e, &format!("{at}.url"), &w.url);
        if decode_secret(w.secret.expose_secret()).is_none() {
            e.add(
                format!("{at}.secret"),
                "must be `whsec_` followed by base64 (Standard Webhooks)",
            );
        }
        for (j, ev) in w.events.iter().enumerate() {
            if !EVENT_TYPES.contains(&ev.as_str()) {
                e.add(
                    format!("{at}.events[{j}]"),
                    format!("`{ev}` is not one of: {}", EVENT_TYPES.join(", ")),
                );
            }
        }
        if let Some(url) = url {
            webhooks.push(Webhook { url, secret: w.secret.clone(), events: w.events.clone() });
        }
    }

    // http
    let listen = match raw.http.listen.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            e.add(
                "http.listen",
                format!("`{}` is not an address like 127.0.0.1:9464", raw.http.listen),
            );
            None
        }
    };

    let link_days = raw.http.link_days;
    if !(1..=366).contains(&link_days) {
        e.add("http.link_days", format!("{link_days} is not between 1 and 366"));
    }
    let links = match (&raw.http.public_url, &raw.http.link_secret) {
        (None, _) => None,
        (Some(url), secret) => {
            let parsed = url::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if parsed.is_none() {
                e.add("http.public_url", format!("`{url}` is not an http(s) URL"));
            }
            let secret = secret.clone().filter(|s| s.expose_secret().len() >= 32);
            if secret.is_none() {
                e.add(
                    "http.link_secret",
                    "the links of http.public_url need a secret of at least 32 characters \
                     (better: CIERRE__HTTP__LINK_SECRET)",
                );
            }
            match (parsed, secret) {
                (Some(mut public_url), Some(secret)) => {
                    if !public_url.path().ends_with('/') {
                        let path = format!("{}/", public_url.path());
                        public_url.set_path(&path);
                    }
                    Some(LinkSettings {
                        public_url,
                        secret,
                        valid_for: chrono::Duration::days(link_days.clamp(1, 366)),
                    })
                }
                _ => None,
            }
        }
    };

    // schedule
    let timezone = match raw.schedule.timezone.parse::<chrono_tz::Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            e.add(
                "schedule.timezone",
                format!("`{}` is not an IANA time zone", raw.schedule.timezone),
            );
            None
        }
    };
    let mut schedule = |key: &str, expr: &str| match Schedule::parse(expr) {
        Ok(s) => Some(s),
        Err(msg) => {
            e.add(key, format!("`{expr}` is not a cron expression with seconds: {msg}"));
            None
        }
    };
    let sync = schedule("schedule.sync", &raw.schedule.sync);
    let notify = schedule("schedule.notify", &raw.schedule.notify);
    let deliver = schedule("schedule.deliver", &raw.schedule.deliver);
    let resync = schedule("schedule.resync", &raw.schedule.resync);
    let purge = schedule("schedule.purge", &raw.schedule.purge);

    if !(1..=3600).contains(&raw.schedule.shutdown_grace_secs) {
        e.add(
            "schedule.shutdown_grace_secs",
            format!("{} is not between 1 and 3600", raw.schedule.shutdown_grace_secs),
        );
    }
    if !(1..=24 * 365).contains(&raw.http.ready_max_sync_age_hours) {
        e.add(
            "http.ready_max_sync_age_hours",
            format!("{} is not between 1 and 8760", raw.http.ready_max_sync_age_hours),
        );
    }
    let log_format = match raw.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            e.add("log.format", format!("`{other}` is not one of: text, json"));
            LogFormat::Text
        }
    };

    if !e.list.is_empty() {
        return Err(ConfigErrors(e.list));
    }
    // Every Option below is Some: a None always came with an error above.
    let (
        Some(base_url),
        Some(from),
        Some(listen),
        Some(timezone),
        Some(sync),
        Some(notify),
        Some(deliver),
        Some(resync),
        Some(purge),
    ) = (base_url, from, listen, timezone, sync, notify, deliver, resync, purge)
    else {
        unreachable!("a missing value without an error");
    };
    Ok(Settings {
        config_path: file.map(Path::to_path_buf),
        store_url,
        sqlite_mmap_bytes: mmap_mib as u64 * 1024 * 1024,
        source: SourceSettings {
            kind,
            base_url,
            app_token: raw.source.app_token,
            entities,
            where_: raw.source.where_.filter(|w| !w.trim().is_empty()),
            page_size: raw.source.page_size as u32,
            request_timeout: Duration::from_secs(raw.source.request_timeout_secs.max(1) as u64),
            max_retries: raw.source.max_retries.max(0) as u32,
            retry_base_delay: Duration::from_millis(raw.source.retry_base_ms.max(1) as u64),
            max_vanished_share: raw.source.max_vanished_share,
            lookback: chrono::Duration::hours(raw.source.lookback_hours.clamp(0, 2_160)),
            contracts_path: raw.source.contracts_path,
            documents_path: raw.source.documents_path,
            guarantees_path: raw.source.guarantees_path,
        },
        datasets: Datasets {
            contracts: raw.datasets.contracts,
            documents: raw.datasets.documents,
            guarantees: raw.datasets.guarantees,
        },
        calendar: Calendar::new(working, non_working).with_rules(holidays),
        dates: DateWindow { earliest_year: earliest, years_ahead: raw.calendar.years_ahead },
        rules: RuleSettings {
            closable: ClosableSettings {
                enabled: c.enabled,
                deadline_business_days: c.deadline_business_days as u32,
                campaign_deadline,
                pending_payment_blocks: c.pending_payment_blocks,
                report_blocked: c.report_blocked,
                guarantee_types,
            },
            liquidation_due: LiquidationSettings {
                enabled: ld.enabled,
                bilateral_months: ld.bilateral_months as u32,
                unilateral_months: ld.unilateral_months as u32,
                late_years: ld.late_years as u32,
            },
            state_outdated: StateOutdatedSettings {
                enabled: so.enabled,
                grace_business_days: so.grace_business_days as u32,
                add_days_added: so.add_days_added,
            },
            missing_documents: MissingDocumentsSettings {
                enabled: md.enabled,
                publication_business_days: md.publication_business_days as u32,
                signed_since,
                checklist,
            },
        },
        classifier: classifier.expect("no errors means the classifier compiled"),
        offices,
        routes: Router::new(routes),
        fallback,
        levels,
        email: EmailSettings {
            from,
            outbox_dir: raw.email.outbox_dir,
            templates_dir: raw.email.templates_dir,
            max_message_bytes: raw.email.max_message_bytes.max(0) as usize,
            digest: DigestSettings {
                max_rows: rd.max_rows.clamp(1, 1000) as usize,
                attachment,
                csv_separator,
            },
            smtp,
        },
        delivery: DeliverySettings {
            max_attempts: d.max_attempts as u32,
            lease: Duration::from_secs(d.lease_secs as u64),
            suspend_after_failures: d.suspend_after_failures as u32,
            suspend_for: Duration::from_secs(d.suspend_minutes as u64 * 60),
            webhook_timeout: Duration::from_secs(d.webhook_timeout_secs as u64),
            concurrency: d.concurrency.clamp(1, 64) as usize,
            retry_base: Duration::from_secs(d.retry_base_secs as u64),
            retry_max: Duration::from_secs(d.retry_max_secs as u64),
        },
        retention: RetentionSettings {
            outbox_days: raw.retention.outbox_days as u32,
            runs_days: raw.retention.runs_days as u32,
            history_days: (raw.retention.history_days > 0)
                .then_some(raw.retention.history_days as u32),
        },
        acknowledgements: AckSettings {
            reopen_on_escalation: raw.acknowledgements.reopen_on_escalation,
            max_days: raw.acknowledgements.max_days.clamp(1, 3_650) as u32,
        },
        webhooks,
        http: HttpSettings {
            listen,
            token: raw.http.token,
            ready_max_sync_age: Duration::from_secs(
                raw.http.ready_max_sync_age_hours as u64 * 3600,
            ),
            links,
        },
        log_format,
        schedule: ScheduleSettings {
            timezone,
            sync,
            notify,
            deliver,
            resync,
            purge,
            catch_up: raw.schedule.catch_up,
            shutdown_grace: Duration::from_secs(raw.schedule.shutdown_grace_secs as u64),
        },
    })
}

/// The default escalation levels name these roles; with no office configured yet they are
/// not an error (there is nobody to notify anyway).
fn is_default_role(role: &str) -> bool {
    matches!(role, "head" | "director" | "control_interno")
}

fn person(e: &mut Errors, at: &str, p: &RawPerson) -> Option<Person> {
    if p.name.trim().is_empty() {
        e.add(format!("{at}.name"), "must not be empty");
    }
    match lettre::Address::from_str(p.email.trim()) {
        Ok(email) => Some(Person { name: p.name.trim().to_string(), email }),
        Err(err) => {
            e.add(format!("{at}.email"), format!("`{}` is not an email address: {err}", p.email));
            None
        }
    }
}

fn parse_url(e: &mut Errors, key: &str, value: &str) -> Option<url::Url> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(_) => {
            e.add(key, format!("`{value}` is not an http(s) URL"));
            None
        }
        Err(err) => {
            e.add(key, format!("`{value}` is not a URL: {err}"));
            None
        }
    }
}

/// The national holiday rules: the built-in ones, with those `[[calendar.holidays]]` adds
/// and `[[calendar.removed_holidays]]` ends applied.
fn holiday_rules(e: &mut Errors<'_, '_>, raw: &super::raw::RawCalendar) -> Vec<HolidayRule> {
    use std::borrow::Cow;
    let mut rules = HOLIDAY_RULES.to_vec();
    let years = 1984..=2200;
    for (i, h) in raw.holidays.iter().enumerate() {
        let at = format!("calendar.holidays[{i}]");
        if h.name.trim().is_empty() {
            e.add(format!("{at}.name"), "must not be empty");
        }
        if h.law.trim().is_empty() {
            e.add(
                format!("{at}.law"),
                "must name the law that creates it (e.g. \"Ley 2578 de 2026\")",
            );
        }
        let mut date = || match (h.month, h.day) {
            (Some(m), Some(d))
                if u32::try_from(m).ok().zip(u32::try_from(d).ok()).is_some_and(|(m, d)| {
                    // A leap year: 29 February is a date some years have.
                    NaiveDate::from_ymd_opt(2024, m, d).is_some()
                }) =>
            {
                Some((m as u32, d as u32))
            }
            (Some(m), Some(d)) => {
                e.add(format!("{at}.day"), format!("month {m}, day {d} is not a date"));
                None
            }
            _ => {
                e.add(format!("{at}.month"), format!("rule `{}` needs month and day", h.rule));
                None
            }
        };
        let kind = match h.rule.as_str() {
            "fixed" => date().map(|(month, day)| RuleKind::Fixed { month, day }),
            "emiliani" => date().map(|(month, day)| RuleKind::Emiliani { month, day }),
            "easter" | "easter_emiliani" => match h.offset {
                Some(offset) if (-100..=200).contains(&offset) => Some(if h.rule == "easter" {
                    RuleKind::Easter { offset }
                } else {
                    RuleKind::EasterEmiliani { offset }
                }),
                Some(offset) => {
                    e.add(
                        format!("{at}.offset"),
                        format!("{offset} is not between -100 and 200 days from Easter"),
                    );
                    None
                }
                None => {
                    e.add(
                        format!("{at}.offset"),
                        format!("rule `{}` needs an offset in days from Easter Sunday", h.rule),
                    );
                    None
                }
            },
            other => {
                e.add(
                    format!("{at}.rule"),
                    format!("`{other}` is not one of: fixed, emiliani, easter, easter_emiliani"),
                );
                None
            }
        };
        if !years.contains(&h.since) {
            e.add(
                format!("{at}.since"),
                format!("{} is not a year between 1984 and 2200", h.since),
            );
        }
        if let Some(until) = h.until
            && until < h.since
        {
            e.add(format!("{at}.until"), format!("{until} is before since ({})", h.since));
        }
        if let Some(same) = rules.iter().find(|r| fold(&r.name) == fold(&h.name)) {
            e.add(
                format!("{at}.name"),
                format!(
                    "`{}` is already the national holiday {} ({})",
                    h.name.trim(),
                    same.name,
                    same.law
                ),
            );
        }
        if let Some(kind) = kind {
            rules.push(HolidayRule {
                name: Cow::Owned(h.name.trim().to_string()),
                law: Cow::Owned(h.law.trim().to_string()),
                kind,
                since: Some(h.since.clamp(1984, 2200) as i32),
                until: h.until.map(|u| u.clamp(1984, 2200) as i32),
            });
        }
    }
    for (i, r) in raw.removed_holidays.iter().enumerate() {
        let at = format!("calendar.removed_holidays[{i}]");
        if r.law.trim().is_empty() {
            e.add(format!("{at}.law"), "must name the law that ends it");
        }
        if !years.contains(&r.from) {
            e.add(format!("{at}.from"), format!("{} is not a year between 1984 and 2200", r.from));
            continue;
        }
        match rules.iter_mut().find(|rule| fold(&rule.name) == fold(&r.name)) {
            Some(rule) => {
                let last = r.from as i32 - 1;
                rule.until = Some(rule.until.map_or(last, |u| u.min(last)));
            }
            None => {
                let names: Vec<&str> = rules.iter().map(|r| r.name.as_ref()).collect();
                e.add(
                    format!("{at}.name"),
                    format!(
                        "`{}` is not a national holiday (they are: {})",
                        r.name,
                        names.join(", ")
                    ),
                );
            }
        }
    }
    rules
}

/// A date of the configuration: exactly `YYYY-MM-DD`, from the earliest year on.
fn parse_date(s: &str, earliest_year: i32) -> Option<NaiveDate> {
    use chrono::Datelike;
    crate::domain::parse_iso_date(s).ok().filter(|d| d.year() >= earliest_year)
}

fn is_dataset_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 9
        && b[4] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_lowercase() || c.is_ascii_digit())
}
