//! Notify: open findings → routed to offices ([`crate::config::routing`]) → escalated to the
//! recipients of each level on its cadence → one digest per recipient → the outbox
//! (deduplicated by idempotency key) → delivery with retries → recorded as sent.

pub mod digest;
pub mod email;
pub mod escalation;
pub mod outbox;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use chrono::NaiveDate;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::templates::{Digest, DigestRow};
use crate::config::{Person, Settings, routing};
use crate::domain::spanish::{fecha, kind_label, level_label};
use crate::domain::{Contract, Finding};
use crate::rules::urgency;
use crate::store::{NewOutboxItem, Store};

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
}

/// The link to the contract in SECOP II, or to its open-data record when the data has none.
fn link(c: &Contract, contracts_dataset: &str) -> String {
    c.url.clone().unwrap_or_else(|| {
        format!("https://www.datos.gov.co/resource/{contracts_dataset}.json?id_contrato={}", c.id)
    })
}

fn row(f: &Finding, c: &Contract, settings: &Settings) -> DigestRow {
    let dash = || "—".to_string();
    DigestRow {
        contract_id: c.id.clone(),
        reference: c.reference.clone().unwrap_or_else(|| c.id.clone()),
        entity: c.entity_name.clone().unwrap_or_else(dash),
        object: c.object.clone().unwrap_or_else(dash),
        supervisor: c.supervisor_name.clone().unwrap_or_else(dash),
        end_date: c.ends_on.map(fecha).unwrap_or_else(dash),
        kind: f.kind.as_str().to_string(),
        kind_label: kind_label(f.kind).to_string(),
        level: f.level.clone(),
        level_label: level_label(&f.level),
        since: fecha(f.since),
        deadline: fecha(f.deadline),
        business_days_left: f.business_days_left,
        reasons: f.reasons.clone(),
        url: link(c, &settings.datasets.contracts),
        urgency: urgency(&settings.levels, &f.level),
    }
}

/// Builds the digests due on `slot`: every open finding at a level whose cadence fires that
/// day, routed and escalated, grouped into one digest per recipient.
pub async fn build_digests<S: Store>(
    store: &S,
    settings: &Settings,
    slot: NaiveDate,
) -> anyhow::Result<(Vec<Digest>, u64)> {
    let findings = store.open_findings().await.context("reading open findings")?;
    let mut by_recipient: BTreeMap<String, Digest> = BTreeMap::new();
    let mut contracts: HashMap<String, Option<Contract>> = HashMap::new();
    let mut unrouted = 0;
    for stored in findings {
        let mut f = stored.finding;
        f.count_days_from(&settings.calendar, slot);
        let Some(level) = settings.levels.iter().find(|l| l.name == f.level) else { continue };
        if !escalation::due_on(level, slot, &settings.calendar) {
            continue;
        }
        if !contracts.contains_key(&f.contract_id) {
            let c = store.contract(&f.contract_id).await.context("reading a contract")?;
            contracts.insert(f.contract_id.clone(), c);
        }
        let Some(Some(contract)) = contracts.get(&f.contract_id) else { continue };
        let offices = routing::route(&settings.routes, contract);
        let mut people: Vec<&Person> = offices
            .iter()
            .flat_map(|&i| escalation::recipients(level, &settings.offices[i]))
            .collect();
        if offices.is_empty() {
            unrouted += 1;
            tracing::debug!(contract = %contract.id, entity = ?contract.entity_nit, "finding matches no route");
            people.extend(settings.fallback.as_ref());
        }
        let r = row(&f, contract, settings);
        let mut reached = Vec::new();
        for p in people {
            let key = p.email.to_string().to_lowercase();
            if reached.contains(&key) {
                continue;
            }
            reached.push(key.clone());
            by_recipient
                .entry(key)
                .or_insert_with(|| Digest { to: p.clone(), slot, rows: Vec::new() })
                .rows
                .push(r.clone());
        }
    }
    Ok((by_recipient.into_values().collect(), unrouted))
}

/// Builds the digests of `slot` and writes each to the outbox (unless `dry_run`).
pub async fn notify<S: Store>(
    store: &S,
    settings: &Settings,
    slot: NaiveDate,
    dry_run: bool,
    clock: &dyn Clock,
) -> anyhow::Result<NotifyReport> {
    let env = crate::config::templates::environment(&settings.email.templates_dir)
        .map_err(|(name, msg)| anyhow::anyhow!("template {name}: {msg}"))?;
    let (digests, unrouted) = build_digests(store, settings, slot).await?;
    let mut report = NotifyReport { slot: Some(slot), unrouted, ..Default::default() };
    for d in &digests {
        report.digests.push((d.to.email.to_string(), d.rows.len()));
        if dry_run {
            continue;
        }
        let rendered = digest::render(&env, d).context("rendering a digest")?;
        let message =
            digest::message(&settings.email.from, d, &rendered).context("building a digest")?;
        let item = NewOutboxItem {
            idempotency_key: format!("digest:{slot}:{}", d.to.email.to_string().to_lowercase()),
            channel: "email".into(),
            target: d.to.email.to_string(),
            subject: Some(rendered.subject.clone()),
            message_id: Some(digest::message_id(&settings.email.from, &d.to, slot)),
            payload: String::from_utf8_lossy(&message.formatted()).into_owned(),
        };
        if store.enqueue(&item, clock.now()).await? {
            report.enqueued += 1;
        } else {
            report.already_queued += 1;
        }
    }
    tracing::info!(%slot, digests = digests.len(), enqueued = report.enqueued, unrouted, "digests prepared");
    Ok(report)
}
