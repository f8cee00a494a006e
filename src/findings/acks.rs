//! Findings, acknowledgements: when an office head's answer stops holding (the evaluation
//! then shows the finding again, saying why), and recording a new answer — checked against
//! the configuration and the store, queued with its webhook event in one transaction.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use crate::config::{Settings, routing};
use crate::domain::ack::{
    AckInForce, AckState, Acknowledgement, HistoryEntry, NewAck, facts_changed,
};
use crate::domain::spanish::{fecha, level_label};
use crate::domain::{Event, Finding, Kind, StoredFinding};
use crate::error::StoreError;
use crate::rules::urgency;
use crate::store::{IdPage, Store};

/// Why answer `ack` no longer holds for `found`, the finding as concluded on `as_of`, in
/// Spanish; `None` while it holds.
pub fn reopen_reason(
    ack: &AckInForce,
    found: &Finding,
    as_of: NaiveDate,
    settings: &Settings,
) -> Option<String> {
    match ack.state {
        AckState::EnTramite => {
            if let Some(until) = ack.until.filter(|u| *u <= as_of) {
                return Some(format!("terminó el plazo «en trámite» ({})", fecha(until)));
            }
            let (now, then) =
                (urgency(&settings.levels, &found.level), urgency(&settings.levels, &ack.level));
            (settings.acknowledgements.reopen_on_escalation && now < then).then(|| {
                format!(
                    "escaló de «{}» a «{}»",
                    level_label(&ack.level).to_lowercase(),
                    level_label(&found.level).to_lowercase()
                )
            })
        }
        AckState::NoAplica => {
            // Facts unknown when answered (a finding not evaluated since the upgrade that
            // began to record them): the first evaluation's are taken as the answer's.
            let before = ack.facts.as_deref()?;
            let changed = facts_changed(before, &found.facts);
            (!changed.is_empty()).then(|| capitalize(&changed.join("; ")))
        }
        // Still concluded with the document counted: something else is missing.
        AckState::DocumentoPublicado => Some(if found.missing.is_empty() {
            "el hallazgo sigue abierto con el documento publicado".to_string()
        } else {
            format!("aún falta: {}", found.missing.join(", "))
        }),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Why an answer was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// The answer itself is wrong: every problem found.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The contract or its open finding is not there.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AckError {
    /// Whether trying again may succeed (only a store failure may).
    pub fn retryable(&self) -> bool {
        matches!(self, AckError::Store(e) if e.retryable())
    }
}

/// The problems of an answer that need nothing but the configuration, all at once.
pub fn check(ack: &NewAck, settings: &Settings, today: NaiveDate) -> Vec<String> {
    let mut errors = Vec::new();
    if ack.reason.trim().is_empty() {
        errors.push("the reason is empty: say why".to_string());
    }
    if ack.author.trim().is_empty() {
        errors.push("the author is empty".to_string());
    }
    if ack.contract_id.trim().is_empty() {
        errors.push("the contract id is empty".to_string());
    }
    match (ack.state, ack.until) {
        (AckState::EnTramite, None) => {
            errors.push("en_tramite needs until (the day the finding is shown again)".into())
        }
        (AckState::EnTramite, Some(until)) => {
            let max = settings.acknowledgements.max_days;
            if until <= today {
                errors.push(format!("until {until} is not after today ({today})"));
            } else if until > today + chrono::Days::new(max.into()) {
                errors.push(format!(
                    "until {until} is more than acknowledgements.max_days ({max}) days ahead"
                ));
            }
        }
        (state, Some(_)) => errors.push(format!("until is only for en_tramite, not {state}")),
        (_, None) => {}
    }
    match ack.state {
        AckState::DocumentoPublicado => {
            if ack.kind != Kind::MissingDocuments {
                errors.push(format!(
                    "documento_publicado answers a missing_documents finding, not {}",
                    ack.kind.as_str()
                ));
            }
            if ack.document_id.as_deref().is_none_or(|d| d.trim().is_empty()) {
                errors.push("documento_publicado needs the document (its id_documento)".into());
            }
            if let Some(kind) = &ack.document_kind
                && settings.classifier.label(kind).is_none()
            {
                errors.push(format!("`{kind}` is not a document kind of [documents]"));
            }
        }
        state => {
            if ack.document_id.is_some() || ack.document_kind.is_some() {
                errors.push(format!("a document is only for documento_publicado, not {state}"));
            }
        }
    }
    errors
}

/// Records answer `ack` on its finding as of `today`: checked (every problem at once), the
/// finding looked up, its webhook event `finding.acknowledged` queued with it. Two answers
/// on one finding at once are applied one after the other: the later is in force, the
/// earlier ended ("answered again"), both in the history.
pub async fn acknowledge<S: Store>(
    store: &S,
    settings: &Settings,
    ack: &NewAck,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(StoredFinding, Acknowledgement), AckError> {
    let errors = check(ack, settings, today);
    if !errors.is_empty() {
        return Err(AckError::Invalid(errors));
    }
    let contract_id = ack.contract_id.trim();
    let Some(contract) = store.contract(contract_id).await? else {
        return Err(AckError::NotFound(format!("no contract {contract_id} is stored")));
    };
    let open: Vec<StoredFinding> = store
        .open_findings_of(contract_id)
        .await?
        .into_iter()
        .filter(|f| f.finding.kind == ack.kind)
        .filter(|f| ack.stage.is_none() || f.finding.stage == ack.stage)
        .collect();
    let finding = match open.as_slice() {
        [] => {
            let stage = ack.stage.map(|s| format!(" ({})", s.as_str())).unwrap_or_default();
            return Err(AckError::NotFound(format!(
                "contract {contract_id} has no open {} finding{stage}",
                ack.kind.as_str()
            )));
        }
        [one] => one.clone(),
        several => {
            let stages: Vec<&str> = several.iter().map(|f| f.finding.stage_str()).collect();
            return Err(AckError::Invalid(vec![format!(
                "contract {contract_id} has open {} findings of the stages {}: say which",
                ack.kind.as_str(),
                stages.join(", ")
            )]));
        }
    };
    let mut ack = NewAck {
        contract_id: contract_id.to_string(),
        stage: finding.finding.stage,
        reason: ack.reason.trim().to_string(),
        author: ack.author.trim().to_string(),
        ..ack.clone()
    };
    if ack.state == AckState::DocumentoPublicado {
        ack.document_kind = Some(published_kind(store, &contract, &finding, &ack).await?);
    }
    let mut events = Vec::new();
    if !settings.webhooks.is_empty() {
        let mut f = finding.finding.clone();
        f.count_days_from(&settings.calendar, today);
        let data = json!({
            "finding": f,
            "acknowledgement": {
                "state": ack.state,
                "until": ack.until,
                "reason": ack.reason,
                "note": ack.note,
                "author": ack.author,
                "document_id": ack.document_id,
                "document_kind": ack.document_kind,
            },
            "contract": super::contract_json(&contract),
        });
        let identity = format!("{}|{}|{}", finding.id, ack.state, now.timestamp_micros());
        let event = Event::new("finding.acknowledged", &identity, now, data);
        events = super::outbox_items(&event, &settings.webhooks);
    }
    let Some(id) = store.acknowledge(finding.id, &ack, &events, today, now).await? else {
        return Err(AckError::NotFound(format!(
            "the {} finding of contract {contract_id} was resolved meanwhile",
            ack.kind.as_str()
        )));
    };
    let stored = store
        .acknowledgements(Some(finding.id), true, IdPage::ALL)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| StoreError::Corrupt(format!("acknowledgement {id} not found")))?;
    Ok((finding, stored))
}

/// Everything that happened to finding `finding_id`, oldest first: what the rules
/// concluded, the answers and reopenings, and the silences (ended ones too) that match it
/// and were in force after it opened. Empty when there is no such finding.
pub async fn history<S: Store>(
    store: &S,
    settings: &Settings,
    finding_id: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let Some(stored) = store.finding(finding_id).await? else { return Ok(Vec::new()) };
    let mut entries = store.finding_history(finding_id).await?;
    let contract = store.contract(&stored.finding.contract_id).await?.unwrap_or_default();
    let offices = routing::route(&settings.routes, &contract);
    for s in store.silences(stored.opened_on, true, IdPage::ALL).await? {
        let n = &s.silence;
        if n.ends_on <= stored.opened_on
            || !super::silences::Compiled::new(&s, settings).matches(
                &stored.finding,
                &contract,
                &offices,
            )
        {
            continue;
        }
        entries.push(HistoryEntry {
            on_date: n.starts_on.max(stored.opened_on),
            event: "silenced".into(),
            level: stored.finding.level.clone(),
            author: Some(n.author.clone()),
            detail: Some(format!(
                "Silencio {} del {} al {}: {}",
                s.id,
                fecha(n.starts_on),
                fecha(n.ends_on),
                n.comment
            )),
            at: s.created_at,
        });
    }
    entries.sort_by_key(|e| (e.on_date, e.at));
    Ok(entries)
}

/// The kind the published document is: the one given, which must be missing, or the only
/// one missing. The document must be the contract's own, or its process's.
async fn published_kind<S: Store>(
    store: &S,
    contract: &crate::domain::Contract,
    finding: &StoredFinding,
    ack: &NewAck,
) -> Result<String, AckError> {
    let doc = ack.document_id.as_deref().unwrap_or_default().trim();
    let mut errors = Vec::new();
    match store.document_owner(doc).await? {
        None => errors.push(format!("no document {doc} is stored")),
        Some((own, process)) => {
            let ours = own.as_deref() == Some(contract.id.as_str())
                || (own.is_none()
                    && process.is_some()
                    && process.as_deref() == contract.process_id.as_deref());
            if !ours {
                errors.push(format!(
                    "document {doc} is not published on contract {} or its process",
                    contract.id
                ));
            }
        }
    }
    let missing = &finding.finding.missing;
    let kind = match &ack.document_kind {
        Some(kind) if missing.contains(kind) => Some(kind.clone()),
        Some(kind) => {
            errors.push(format!("`{kind}` is not missing (missing: {})", missing.join(", ")));
            None
        }
        None if missing.len() == 1 => Some(missing[0].clone()),
        None => {
            errors.push(format!(
                "several kinds are missing ({}): say which the document is",
                missing.join(", ")
            ));
            None
        }
    };
    match kind {
        Some(kind) if errors.is_empty() => Ok(kind),
        _ => Err(AckError::Invalid(errors)),
    }
}
