//! Notify: open findings → routed to offices ([`crate::config::routing`]) → escalated to the
//! recipients of each level on its cadence → one digest per recipient → the outbox
//! (deduplicated by idempotency key) → delivery with retries → recorded as sent.

pub mod attachments;
pub mod digest;
pub mod email;
pub mod escalation;
pub mod outbox;
pub mod spool;
pub mod webhook;

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::NaiveDate;
use minijinja::Environment;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::templates::{
    Changes, Digest, DigestLinks, DigestRow, KindSummary, LevelName, RowDates, Summary,
};
use crate::config::{AttachmentFormat, Person, Settings, routing};
use crate::domain::ack::AckState;
use crate::domain::spanish::{
    days_left, fecha, kind_guide, kind_label, level_label, pesos, step_label,
};
use crate::domain::{Contract, Kind};
use crate::rules::urgency;
use crate::store::{DigestFinding, IdPage, NewOutboxItem, ResolvedCursor, Store};
use attachments::Files;
use digest::Rendered;
use spool::{Entry, Spool};

/// Findings read per query.
const PAGE: u32 = 2_000;

/// What a notify run prepared.
#[derive(Debug, Default, Serialize)]
pub struct NotifyReport {
    pub slot: Option<NaiveDate>,
    /// (recipient, rows) of each digest.
    pub digests: Vec<(String, usize)>,
    /// Items newly written to the outbox.
    pub enqueued: u64,
    /// Digests already in the outbox for this slot (a re-run of the same day).
    pub already_queued: u64,
    /// Findings no route matched (sent to the fallback recipient when there is one).
    pub unrouted: u64,
    /// Recipients whose digest could not be built (logged with the reason; the others go on).
    pub failed: Vec<String>,
}

/// The link to the contract in SECOP II, or to its open-data record when the data has none.
fn link(c: &Contract, contracts_dataset: &str) -> String {
    c.url.clone().unwrap_or_else(|| {
        format!("https://www.datos.gov.co/resource/{contracts_dataset}.json?id_contrato={}", c.id)
    })
}

/// A finding as a row of `slot`'s digest.
fn row(df: &DigestFinding, settings: &Settings, slot: NaiveDate) -> DigestRow {
    let (mut f, c) = (df.stored.finding.clone(), &df.contract);
    f.count_days_from(&settings.calendar, slot);
    let dash = || "—".to_string();
    let pending = c.pending_payment.filter(|p| *p > 0);
    DigestRow {
        finding_id: df.stored.id,
        contract_id: c.id.clone(),
        reference: c.reference.clone().unwrap_or_else(|| c.id.clone()),
        entity: c.entity_name.clone().unwrap_or_else(dash),
        object: c.object.clone().unwrap_or_else(dash),
        supervisor: c.supervisor_name.clone().unwrap_or_else(dash),
        end_date: c.ends_on.map(fecha).unwrap_or_else(dash),
        state: c.state.clone().unwrap_or_else(dash),
        kind: f.kind.as_str().to_string(),
        kind_label: kind_label(f.kind).to_string(),
        stage: f.stage_str().to_string(),
        level_label: level_label(&f.level),
        since: fecha(f.since),
        deadline: fecha(f.deadline),
        business_days_left: f.business_days_left,
        days: days_left(f.business_days_left),
        step: f.step.as_deref().map(step_label),
        missing: f
            .missing
            .iter()
            .map(|k| settings.classifier.label(k).unwrap_or(k).to_string())
            .collect(),
        pending: pending.map(pesos),
        url: link(c, &settings.datasets.contracts),
        dates: RowDates { end: c.ends_on, since: Some(f.since), deadline: Some(f.deadline) },
        pending_centavos: pending,
        level: f.level,
        reasons: f.reasons,
    }
}

/// `person`'s links to the web view in the digest of `slot`, valid `http.link_days` from
/// that day (the same for every build of that digest).
pub fn personal_links(
    settings: &Settings,
    person: &Person,
    slot: NaiveDate,
) -> Option<DigestLinks> {
    use secrecy::ExposeSecret;
    let links = settings.http.links.as_ref()?;
    let expires = slot.and_hms_opt(0, 0, 0)?.and_utc() + links.valid_for;
    let token =
        crate::links::sign(links.secret.expose_secret().as_bytes(), person.email.as_ref(), expires);
    let base = links.public_url.join("mis-hallazgos").ok()?;
    Some(DigestLinks {
        list: format!("{base}?t={token}"),
        finding_prefix: format!("{base}/"),
        query: format!("?t={token}"),
    })
}

/// Whether a finding at `level` of `contract` reaches `email` (lower case): one of the
/// people its routes' offices notify at that level, or the fallback recipient when no route
/// matches. What the web view lets an office head see and answer.
pub fn reaches(settings: &Settings, level: &str, contract: &Contract, email: &str) -> bool {
    let rank = urgency(&settings.levels, level);
    let Some(level) = settings.levels.get(rank) else { return false };
    people(settings, level, contract).0.iter().any(|p| p.email.to_string().to_lowercase() == email)
}

/// One recipient of a digest run, with the counts of their digest.
struct Recipient {
    person: Person,
    previous: Option<NaiveDate>,
    /// Findings per level (by urgency) and kind.
    counts: Vec<[u64; 4]>,
    rows: u64,
    new: u64,
    escalated: u64,
    resolved: u64,
    /// Findings not shown: kept out by a silence, answered en_tramite, dismissed.
    hidden: Hidden,
}

/// A recipient's findings left out of their digest, by why.
#[derive(Debug, Clone, Copy, Default)]
struct Hidden {
    silenced: u64,
    in_progress: u64,
    dismissed: u64,
}

/// The recipients a finding reaches at `level`: the offices' people at that level, or the
/// fallback recipient when no route matches (no office); and the offices.
fn people<'a>(
    settings: &'a Settings,
    level: &crate::config::Level,
    contract: &Contract,
) -> (Vec<&'a Person>, Vec<usize>) {
    let offices = routing::route(&settings.routes, contract);
    let mut people: Vec<&Person> =
        offices.iter().flat_map(|&i| escalation::recipients(level, &settings.offices[i])).collect();
    let unrouted = offices.is_empty();
    if unrouted {
        people.extend(settings.fallback.as_ref());
    }
    let mut seen = HashSet::new();
    people.retain(|p| seen.insert(p.email.to_string().to_lowercase()));
    (people, offices)
}

/// The digests of one slot, built one recipient at a time: [`Digests::collect`] reads the
/// open findings once in pages, routes and escalates each, counts per recipient and spools
/// (recipient, finding) pairs; [`Digests::next`] then reads one recipient's findings back
/// in order, writes their attachments and renders their message.
pub struct Digests {
    slot: NaiveDate,
    recipients: Vec<Recipient>,
    sorted: std::iter::Peekable<spool::Sorted>,
    pub unrouted: u64,
}

/// A digest that could not be built for a reason of its own (a template, its workbook, its
/// message), not the store's: the other recipients' digests still go out.
#[derive(Debug, thiserror::Error)]
#[error("the digest for {to}: {message}")]
pub struct BuildError {
    pub to: String,
    pub message: String,
}

/// One recipient's digest, ready to send.
pub struct Built {
    pub digest: Digest,
    pub rendered: Rendered,
    pub files: Files,
    /// The whole message, as sent.
    pub formatted: Vec<u8>,
}

/// How [`Digests::next`] builds a digest.
#[derive(Debug, Clone, Copy)]
pub struct Build {
    pub attachment: AttachmentFormat,
    /// Keep the message under `email.max_message_bytes` (a preview of the workbook does not).
    pub limit_size: bool,
}

impl Digests {
    /// Reads the findings due on `slot` (only those reaching `only`, when given).
    pub async fn collect<S: Store>(
        store: &S,
        settings: &Settings,
        slot: NaiveDate,
        only: Option<&str>,
    ) -> anyhow::Result<Digests> {
        let only = only.map(str::to_lowercase);
        let previous: HashMap<String, NaiveDate> = store
            .previous_digests(slot)
            .await
            .context("reading previous digests")?
            .into_iter()
            .collect();
        let stored = store.silences(slot, false, IdPage::ALL).await.context("reading silences")?;
        let silences = crate::findings::silences::in_force(&stored, slot, settings);
        let mut hidden: HashMap<String, Hidden> = HashMap::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut recipients: Vec<Recipient> = Vec::new();
        let mut spool = Spool::default();
        let mut unrouted = 0;
        let mut after = 0;
        loop {
            let page = store
                .digest_page(after, &Default::default(), PAGE)
                .await
                .context("reading open findings")?;
            let Some(last) = page.last() else { break };
            after = last.stored.id;
            for df in &page {
                let mut f = df.stored.finding.clone();
                f.count_days_from(&settings.calendar, slot);
                let rank = urgency(&settings.levels, &f.level);
                let Some(level) = settings.levels.get(rank) else { continue };
                if !escalation::due_on(level, slot, &settings.calendar) {
                    continue;
                }
                let (people, offices) = people(settings, level, &df.contract);
                if offices.is_empty() {
                    unrouted += 1;
                    tracing::debug!(contract = %df.contract.id, entity = ?df.contract.entity_nit, "finding matches no route");
                }
                // Answered, or silenced: counted for its recipients, not shown.
                let answered = df.stored.ack.as_ref().filter(|a| a.hides_on(slot));
                let silenced = answered.is_none()
                    && silences.iter().any(|s| s.matches(&f, &df.contract, &offices));
                if answered.is_some() || silenced {
                    for p in people {
                        let h = hidden.entry(p.email.to_string().to_lowercase()).or_default();
                        match answered.map(|a| a.state) {
                            Some(AckState::EnTramite) => h.in_progress += 1,
                            Some(_) => h.dismissed += 1,
                            None => h.silenced += 1,
                        }
                    }
                    continue;
                }
                let kind = Kind::ALL.iter().position(|k| *k == f.kind).unwrap_or(0);
                let contract = xxhash_rust::xxh3::xxh3_64(df.contract.id.as_bytes());
                for p in people {
                    let key = p.email.to_string().to_lowercase();
                    if only.as_ref().is_some_and(|o| *o != key) {
                        continue;
                    }
                    let i = match index.get(&key) {
                        Some(&i) => i,
                        None => {
                            let i = recipients.len() as u32;
                            index.insert(key.clone(), i);
                            recipients.push(Recipient {
                                person: p.clone(),
                                previous: previous.get(&key).copied(),
                                counts: vec![[0; 4]; settings.levels.len()],
                                rows: 0,
                                new: 0,
                                escalated: 0,
                                resolved: 0,
                                hidden: Hidden::default(),
                            });
                            i
                        }
                    };
                    let r = &mut recipients[i as usize];
                    r.counts[rank][kind] += 1;
                    r.rows += 1;
                    if let Some(prev) = r.previous {
                        r.new += u64::from(df.stored.opened_on > prev);
                        r.escalated += u64::from(
                            df.stored.opened_on <= prev
                                && df.escalated_on.is_some_and(|d| d > prev),
                        );
                    }
                    spool
                        .push(Entry {
                            recipient: i,
                            urgency: rank as u16,
                            days_left: f.business_days_left.clamp(i32::MIN as i64, i32::MAX as i64)
                                as i32,
                            kind: kind as u8,
                            finding: df.stored.id,
                            contract,
                        })
                        .context("spooling a digest row")?;
                }
            }
        }
        for (key, h) in hidden {
            if let Some(&i) = index.get(&key) {
                recipients[i as usize].hidden = h;
            }
        }
        count_resolved(store, settings, slot, &index, &mut recipients).await?;
        let sorted = spool.sorted().context("sorting digest rows")?.peekable();
        Ok(Digests { slot, recipients, sorted, unrouted })
    }

    /// Each recipient's address and rows, in the order [`Digests::next`] builds them.
    pub fn recipients(&self) -> Vec<(String, u64)> {
        self.recipients.iter().map(|r| (r.person.email.to_string(), r.rows)).collect()
    }

    /// The next recipient's digest, or `None` when every one is built.
    pub async fn next<S: Store>(
        &mut self,
        store: &S,
        settings: &Settings,
        env: &Environment<'_>,
        build: Build,
    ) -> anyhow::Result<Option<Built>> {
        let Some(first) = self.sorted.next() else { return Ok(None) };
        let first = first.context("reading digest rows back")?;
        let mut entries = vec![first];
        loop {
            match self.sorted.peek() {
                Some(Ok(e)) if e.recipient == first.recipient => entries.push(*e),
                // A read error: no digest is built from part of its rows.
                Some(Err(_)) => {
                    let err = self.sorted.next().and_then(Result::err).expect("peeked an error");
                    return Err(err).context("reading digest rows back");
                }
                _ => break,
            }
            self.sorted.next();
        }
        let r = &self.recipients[first.recipient as usize];
        match build_one(store, settings, env, self.slot, r, &entries, build).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.chain().any(|c| c.is::<crate::error::StoreError>()) => Err(e),
            Err(e) => {
                Err(BuildError { to: r.person.email.to_string(), message: format!("{e:#}") }.into())
            }
        }
    }
}

/// Counts, for each recipient with a previous digest, the findings resolved since then that
/// would have reached them.
async fn count_resolved<S: Store>(
    store: &S,
    settings: &Settings,
    slot: NaiveDate,
    index: &HashMap<String, u32>,
    recipients: &mut [Recipient],
) -> anyhow::Result<()> {
    let Some(since) = recipients.iter().filter_map(|r| r.previous).min() else { return Ok(()) };
    let mut after = None;
    loop {
        let page =
            store.resolved_page(since, after, PAGE).await.context("reading resolved findings")?;
        let Some(last) = page.last() else { break };
        after = Some(ResolvedCursor {
            resolved_on: last.resolved_on.unwrap_or(since),
            id: last.stored.id,
        });
        for df in &page {
            let Some(resolved_on) = df.resolved_on.filter(|d| *d <= slot) else { continue };
            let rank = urgency(&settings.levels, &df.stored.finding.level);
            let Some(level) = settings.levels.get(rank) else { continue };
            for p in people(settings, level, &df.contract).0 {
                let Some(&i) = index.get(&p.email.to_string().to_lowercase()) else { continue };
                let r = &mut recipients[i as usize];
                if r.previous.is_some_and(|prev| resolved_on > prev) {
                    r.resolved += 1;
                }
            }
        }
    }
    Ok(())
}

/// Rows read back per query while writing attachments.
const CHUNK: usize = 1_000;

/// Reads `entries`' findings back in their order, as rows.
async fn rows_of<S: Store>(
    store: &S,
    settings: &Settings,
    slot: NaiveDate,
    entries: &[Entry],
) -> anyhow::Result<Vec<DigestRow>> {
    let ids: Vec<i64> = entries.iter().map(|e| e.finding).collect();
    let found = store.digest_findings(&ids).await.context("reading digest rows")?;
    let mut by_id: HashMap<i64, DigestFinding> =
        found.into_iter().map(|df| (df.stored.id, df)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).map(|df| row(&df, settings, slot)).collect())
}

async fn build_one<S: Store>(
    store: &S,
    settings: &Settings,
    env: &Environment<'_>,
    slot: NaiveDate,
    r: &Recipient,
    entries: &[Entry],
    build: Build,
) -> anyhow::Result<Built> {
    let mut contracts = HashSet::new();
    let mut overdue = HashSet::new();
    for e in entries {
        contracts.insert(e.contract);
        if e.days_left < 0 {
            overdue.insert(e.contract);
        }
    }
    let shown = &entries[..entries.len().min(settings.email.digest.max_rows)];
    let mut summary = Summary::default();
    let present: Vec<usize> =
        (0..settings.levels.len()).filter(|&l| r.counts[l].iter().any(|n| *n > 0)).collect();
    for &l in &present {
        let name = &settings.levels[l].name;
        summary.levels.push(LevelName { level: name.clone(), level_label: level_label(name) });
        summary.totals.push(r.counts[l].iter().sum());
    }
    for (k, kind) in Kind::ALL.iter().enumerate() {
        let counts: Vec<u64> = present.iter().map(|&l| r.counts[l][k]).collect();
        let total = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let guide = kind_guide(*kind);
        summary.kinds.push(KindSummary {
            kind: kind.as_str().into(),
            kind_label: kind_label(*kind).into(),
            meaning: guide.meaning.into(),
            action: guide.action.into(),
            basis: guide.basis.into(),
            counts,
            total,
        });
    }
    let attachment = build.attachment;
    let mut names = Vec::new();
    if attachment.xlsx {
        names.push(digest::xlsx_name(slot));
    }
    if attachment.csv {
        names.push(digest::csv_name(slot));
    }
    let mut d = Digest {
        to: r.person.clone(),
        slot,
        summary,
        changes: r.previous.map(|prev| Changes {
            previous: fecha(prev),
            new: r.new,
            escalated: r.escalated,
            resolved: r.resolved,
        }),
        rows: rows_of(store, settings, slot, shown).await?,
        total_findings: entries.len() as u64,
        total_contracts: contracts.len() as u64,
        overdue_contracts: overdue.len() as u64,
        attachments: names,
        attached_rows: None,
        silenced: r.hidden.silenced,
        in_progress: r.hidden.in_progress,
        dismissed: r.hidden.dismissed,
        links: personal_links(settings, &r.person, slot),
    };
    let limit = settings.email.max_message_bytes;
    let total = entries.len() as u64;
    let mut rows_limit = (total > attachments::MAX_ROWS).then_some(attachments::MAX_ROWS);
    let with_files = attachment.xlsx || attachment.csv;
    let measure = build.limit_size && with_files;
    // The message without attachments: what every row attached adds to.
    let bare = if measure {
        let rendered = digest::render(env, &d).context("rendering a digest")?;
        digest::message(&settings.email.from, &d, &rendered, &Files::default())
            .context("building a digest")?
            .formatted()
            .len()
    } else {
        0
    };
    // How many rows of `per_row` bytes fit beside the body (with room for the note and the
    // longer body of a cut digest).
    let fit = |per_row: f64| (limit.saturating_sub(bare + 4_096) as f64 / per_row * 0.95) as u64;
    if measure && total > PROBE {
        // A large digest: the size of a row in the attachments, measured on the first
        // PROBE rows, says how many fit, so the whole workbook is never written only to be
        // found too large.
        let rendered = digest::render(env, &d).context("rendering a digest")?;
        let files =
            write_files(store, settings, slot, &d, entries, attachment, Some(PROBE)).await?;
        let probe = digest::message(&settings.email.from, &d, &rendered, &files)
            .context("building a digest")?
            .formatted()
            .len();
        let n = fit((probe.saturating_sub(bare) as f64 / files.rows.max(1) as f64).max(1.0));
        if n < total {
            rows_limit = Some(rows_limit.map_or(n, |r| r.min(n)));
        }
    }
    // Built, measured, and built again with fewer rows in the attachments while the whole
    // message is over the limit (the compressed size of a workbook is known once written);
    // at worst the attachments hold only the note.
    for attempt in 0.. {
        d.attached_rows = rows_limit.filter(|n| *n < total);
        let rendered = digest::render(env, &d).context("rendering a digest")?;
        let files = if with_files {
            write_files(store, settings, slot, &d, entries, attachment, rows_limit).await?
        } else {
            Files::default()
        };
        let message = digest::message(&settings.email.from, &d, &rendered, &files)
            .context("building a digest")?;
        let formatted = message.formatted();
        let size = formatted.len();
        if !measure || size <= limit || files.rows == 0 {
            if size > limit && build.limit_size {
                tracing::warn!(to = %d.to.email, size, limit, "a digest over email.max_message_bytes even without rows attached");
            }
            return Ok(Built { digest: d, rendered, files, formatted });
        }
        let per_row = (size.saturating_sub(bare) as f64 / files.rows as f64).max(1.0);
        let n = if attempt < 5 { fit(per_row).min(files.rows - 1) } else { 0 };
        tracing::info!(to = %d.to.email, size, limit, rows = files.rows, fit = n, "digest over the size limit: fewer rows attached");
        rows_limit = Some(n);
    }
    unreachable!("the loop returns once no row is attached")
}

/// Rows written to measure a large digest's attachments before writing them whole.
const PROBE: u64 = 2_000;

/// Streams a digest's rows into its attachments.
async fn write_files<S: Store>(
    store: &S,
    settings: &Settings,
    slot: NaiveDate,
    d: &Digest,
    entries: &[Entry],
    format: AttachmentFormat,
    limit: Option<u64>,
) -> anyhow::Result<Files> {
    let total = entries.len() as u64;
    let n = limit.unwrap_or(total).min(total) as usize;
    let note = format!(
        "Este archivo incluye los {n} hallazgos más urgentes de {total}, por el tamaño máximo \
         del correo. Para obtenerlos todos: cierre digest --to {} --as-of {slot} --format xlsx",
        d.to.email
    );
    let mut w = attachments::Writer::start(attachments::Plan {
        format,
        separator: settings.email.digest.csv_separator,
        total,
        limit,
        note,
    });
    for chunk in entries[..n].chunks(CHUNK) {
        w.write(rows_of(store, settings, slot, chunk).await?).await?;
    }
    w.finish().await
}

/// Builds the digests of `slot` and writes each to the outbox (unless `dry_run`), one
/// recipient at a time.
pub async fn notify<S: Store>(
    store: &S,
    settings: &Settings,
    slot: NaiveDate,
    dry_run: bool,
    clock: &dyn Clock,
) -> anyhow::Result<NotifyReport> {
    let env = crate::config::templates::environment(&settings.email.templates_dir)
        .map_err(|(name, msg)| anyhow::anyhow!("template {name}: {msg}"))?;
    let mut digests = Digests::collect(store, settings, slot, None).await?;
    let mut report =
        NotifyReport { slot: Some(slot), unrouted: digests.unrouted, ..Default::default() };
    report.digests = digests.recipients().into_iter().map(|(to, n)| (to, n as usize)).collect();
    if !dry_run {
        let build = Build { attachment: settings.email.digest.attachment, limit_size: true };
        loop {
            let b = match digests.next(store, settings, &env, build).await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                // The store or the spool failing fails the run; one recipient's digest that
                // cannot be built does not keep the others from going out.
                Err(e) if e.downcast_ref::<BuildError>().is_some() => {
                    tracing::error!(error = format!("{e:#}"), "a digest could not be built");
                    report.failed.push(
                        e.downcast_ref::<BuildError>().map(|b| b.to.clone()).unwrap_or_default(),
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Only the message is queued: the attachments are in it.
            drop(b.files);
            let key = b.digest.to.email.to_string().to_lowercase();
            let item = NewOutboxItem {
                idempotency_key: format!("digest:{slot}:{key}"),
                channel: "email".into(),
                target: b.digest.to.email.to_string(),
                subject: Some(b.rendered.subject.clone()),
                message_id: Some(digest::message_id(&settings.email.from, &b.digest.to, slot)),
                // Base64 and quoted-printable parts: the message is ASCII, taken without a copy.
                payload: String::from_utf8(b.formatted)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            };
            if store.enqueue(&item, clock.now()).await? {
                report.enqueued += 1;
            } else {
                report.already_queued += 1;
            }
            store.record_digest(&key, slot, b.digest.total_findings, clock.now()).await?;
        }
    }
    tracing::info!(%slot, digests = report.digests.len(), enqueued = report.enqueued, unrouted = report.unrouted, "digests prepared");
    Ok(report)
}
