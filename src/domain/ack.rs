//! Acknowledgements, as the store keeps them and the CLI, the API and the digests show them:
//! an office head's answer on a finding — in progress until a day, does not apply, or the
//! missing document is published — with who, when and why, and what a finding's history
//! lists.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Kind, Stage, UnknownName};

/// Why an answer ends when its finding is resolved.
pub const RESOLVED: &str = "el hallazgo se resolvió";
/// Why an answer ends when its finding is answered again.
pub const ANSWERED_AGAIN: &str = "se registró una nueva respuesta";

/// What the office head answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckState {
    /// In progress: out of the digests until a day (or until it escalates).
    EnTramite,
    /// Does not apply: out of the digests until its facts change.
    NoAplica,
    /// The missing document is published under a name the classifier did not recognise:
    /// recorded as that document's kind; out of the digests until the next evaluation
    /// resolves the finding (or finds something else still missing).
    DocumentoPublicado,
}

impl AckState {
    pub const ALL: [AckState; 3] =
        [AckState::EnTramite, AckState::NoAplica, AckState::DocumentoPublicado];

    /// The name in the store, JSON and the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            AckState::EnTramite => "en_tramite",
            AckState::NoAplica => "no_aplica",
            AckState::DocumentoPublicado => "documento_publicado",
        }
    }

    /// As office heads read it.
    pub fn label(&self) -> &'static str {
        match self {
            AckState::EnTramite => "en trámite",
            AckState::NoAplica => "no aplica",
            AckState::DocumentoPublicado => "documento publicado",
        }
    }

    /// The event it leaves in the finding's history.
    pub fn event(&self) -> &'static str {
        match self {
            AckState::EnTramite => "acknowledged",
            AckState::NoAplica => "dismissed",
            AckState::DocumentoPublicado => "document_published",
        }
    }
}

impl fmt::Display for AckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AckState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<AckState, UnknownName> {
        AckState::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownName { what: "acknowledgement", value: s.to_string() })
    }
}

/// The answer in force on a finding, as the finding carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckInForce {
    pub id: i64,
    pub state: AckState,
    /// `en_tramite`: the first day the finding is shown again.
    pub until: Option<NaiveDate>,
    /// The finding's level when it was answered.
    pub level: String,
    /// The finding's facts when it was answered (none when they were not known yet).
    #[serde(skip)]
    pub facts: Option<String>,
}

impl AckInForce {
    /// Whether it keeps its finding out of the digest of `day`.
    pub fn hides_on(&self, day: NaiveDate) -> bool {
        match self.state {
            AckState::EnTramite => self.until.is_none_or(|u| day < u),
            AckState::NoAplica | AckState::DocumentoPublicado => true,
        }
    }
}

/// An answer to record, as the command line and the API take it. The finding is the open
/// one of the contract, kind and stage (the stage may be left out when only one is open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAck {
    pub contract_id: String,
    pub kind: Kind,
    #[serde(default)]
    pub stage: Option<Stage>,
    pub state: AckState,
    /// `en_tramite`: the first day it is shown again.
    #[serde(default)]
    pub until: Option<NaiveDate>,
    /// `documento_publicado`: the published document (`id_documento`)…
    #[serde(default)]
    pub document_id: Option<String>,
    /// … and the kind it is (may be left out when one kind is missing).
    #[serde(default)]
    pub document_kind: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub note: Option<String>,
    pub author: String,
}

impl NewAck {
    /// What the finding's history says of it, in Spanish.
    pub fn detail(&self) -> String {
        let mut text = match (self.state, self.until, &self.document_id) {
            (AckState::EnTramite, Some(until), _) => format!("En trámite hasta el {until}"),
            (AckState::DocumentoPublicado, _, Some(doc)) => format!(
                "Documento publicado: {doc}{}",
                self.document_kind.as_ref().map(|k| format!(" ({k})")).unwrap_or_default()
            ),
            (state, _, _) => {
                let label = state.label();
                let mut first = label.chars();
                first.next().map(|c| c.to_uppercase().chain(first).collect()).unwrap_or_default()
            }
        };
        text.push_str(": ");
        text.push_str(self.reason.trim());
        if let Some(note) = self.note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            text.push_str(" — ");
            text.push_str(note);
        }
        text
    }
}

/// An answer as stored: never deleted; it ends when its finding reopens, is resolved, or
/// is answered again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledgement {
    pub id: i64,
    pub finding_id: i64,
    pub contract_id: String,
    pub kind: Kind,
    pub stage: Option<Stage>,
    pub state: AckState,
    pub until: Option<NaiveDate>,
    pub level: String,
    pub document_id: Option<String>,
    pub document_kind: Option<String>,
    pub author: String,
    pub reason: String,
    pub note: Option<String>,
    pub on_date: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub ended_on: Option<NaiveDate>,
    /// Why it ended, in Spanish.
    pub ended_reason: Option<String>,
}

/// An entry of a finding's history: what the rules concluded (`opened`, `escalated`,
/// `deescalated`, `resolved`), what office heads answered (`acknowledged`, `dismissed`,
/// `document_published`) and `reopened`, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub on_date: NaiveDate,
    pub event: String,
    pub level: String,
    pub author: Option<String>,
    /// Why, in Spanish (the answer's reason and note, or why it reopened).
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// A document an office head classified by hand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManualClassification {
    pub document_id: String,
    pub kind: String,
    pub author: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// The fingerprint of the facts a finding is concluded from: the contract row as the source
/// last sent it (its content hash), the documents counted for it with their kinds, and the
/// step — three parts, so that a reopening can say which changed.
pub fn facts<'a>(
    contract_hash: Option<&str>,
    documents: impl IntoIterator<Item = (&'a str, &'a str)>,
    step: Option<&str>,
) -> String {
    use xxhash_rust::xxh3::xxh3_64;
    let mut docs: Vec<(&str, &str)> = documents.into_iter().collect();
    docs.sort_unstable();
    let mut text = String::new();
    for (id, kind) in docs {
        text.push_str(id);
        text.push('\t');
        text.push_str(kind);
        text.push('\n');
    }
    format!(
        "{:016x}{:016x}{:016x}",
        xxh3_64(contract_hash.unwrap_or("").as_bytes()),
        xxh3_64(text.as_bytes()),
        xxh3_64(step.unwrap_or("").as_bytes())
    )
}

/// What changed between two fingerprints of [`facts`], in Spanish (empty: nothing).
pub fn facts_changed(before: &str, after: &str) -> Vec<&'static str> {
    const PARTS: [&str; 3] = [
        "cambiaron los datos del contrato en SECOP II",
        "cambiaron los documentos publicados",
        "cambió el paso de la liquidación",
    ];
    if before.len() != 48 || after.len() != 48 {
        return if before == after { Vec::new() } else { vec![PARTS[0]] };
    }
    (0..3)
        .filter(|i| before[i * 16..(i + 1) * 16] != after[i * 16..(i + 1) * 16])
        .map(|i| PARTS[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_say_which_part_changed_and_ignore_document_order() {
        let a = facts(Some("h1"), [("D1", "acta"), ("D2", "cdp")], None);
        assert_eq!(a, facts(Some("h1"), [("D2", "cdp"), ("D1", "acta")], None));
        assert!(facts_changed(&a, &a).is_empty());
        let b = facts(Some("h2"), [("D1", "acta"), ("D2", "cdp")], None);
        assert_eq!(facts_changed(&a, &b), vec!["cambiaron los datos del contrato en SECOP II"]);
        let c = facts(Some("h1"), [("D1", "acta")], Some("liquidacion_unilateral"));
        assert_eq!(
            facts_changed(&a, &c),
            vec!["cambiaron los documentos publicados", "cambió el paso de la liquidación"]
        );
    }

    #[test]
    fn en_tramite_hides_until_its_day_and_the_others_while_in_force() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let mut ack = AckInForce {
            id: 1,
            state: AckState::EnTramite,
            until: Some(day(10)),
            level: "aviso".into(),
            facts: None,
        };
        assert!(ack.hides_on(day(9)));
        assert!(!ack.hides_on(day(10)));
        ack.state = AckState::NoAplica;
        assert!(ack.hides_on(day(30)));
        assert_eq!("no_aplica".parse::<AckState>().unwrap(), AckState::NoAplica);
        assert!("ignorar".parse::<AckState>().is_err());
    }
}
