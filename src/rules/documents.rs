//! Rule `missing_documents`: for each stage a contract has reached, the document kinds the
//! configured checklist requires and no published document was classified as. Documents and
//! acts must be published in SECOP II within 3 days of their issuance (Ley 1150 de 2007 art.
//! 3; Decreto 1082 de 2015 art. 2.2.1.1.1.7.1), so the deadline is the stage start plus the
//! configured business days.
//!
//! When a stage starts is read off the data: the precontractual stage is complete when the
//! contract is signed (`fecha_de_firma`), the contractual one starts with execution
//! (`fecha_de_inicio_del_contrato`, or the signing when missing) and the postcontractual one
//! the day after the term ended.

use chrono::NaiveDate;

use super::closable::term_ended;
use super::{AsOf, Dossier, Draft, Rule, RuleContext, StateClass};
use crate::config::Requirement;
use crate::domain::spanish::fecha;
use crate::domain::{Contract, Flag, Kind, Stage};

pub struct MissingDocuments;

/// Whether a checklist entry applies to a contract.
pub fn applies(r: &Requirement, d: &Dossier) -> bool {
    let (modality, kind, c) = (&d.folded_modality, &d.folded_type, d.contract);
    let any = |text: &str, list: &[String]| list.iter().any(|v| text.contains(v.as_str()));
    (r.modalities.is_empty() || any(modality, &r.modalities))
        && !any(modality, &r.except_modalities)
        && (r.types.is_empty() || any(kind, &r.types))
        && !any(kind, &r.except_types)
        && r.liquidation_required.is_none_or(|req| req == (c.requires_liquidation == Flag::Yes))
}

/// The day a stage started, with what in the data shows it; `None` while not reached.
fn stage_start(
    stage: Stage,
    c: &Contract,
    state: StateClass,
    as_of: &AsOf,
) -> Option<(NaiveDate, String)> {
    let signed = c.signed_on?;
    match stage {
        Stage::Precontractual => Some((signed, format!("contrato firmado el {}", fecha(signed)))),
        Stage::Contractual => match c.starts_on.filter(|s| *s >= signed) {
            Some(start) => Some((start, format!("inicio de ejecución el {}", fecha(start)))),
            None => Some((signed, format!("contrato firmado el {}", fecha(signed)))),
        },
        Stage::Postcontractual => term_ended(c, state, as_of)
            .map(|e| (e.since, "terminó el plazo de ejecución".to_string())),
    }
}

impl Rule for MissingDocuments {
    fn kind(&self) -> Kind {
        Kind::MissingDocuments
    }

    fn evaluate(&self, d: &Dossier, ctx: &RuleContext) -> Vec<Draft> {
        let c = d.contract;
        let s = &ctx.rules.missing_documents;
        let state = d.state;
        // Closed files are out of scope: what is missing there is for the archive, not a task.
        if !state.is_signed_open() {
            return vec![];
        }
        match (c.signed_on, s.signed_since) {
            (None, _) => return vec![],
            (Some(signed), Some(from)) if signed < from => return vec![],
            _ => {}
        }
        let mut out = Vec::new();
        for stage in Stage::ALL {
            let Some((start, started)) = stage_start(stage, c, state, ctx.as_of) else {
                continue;
            };
            if !ctx.as_of.reached(start) {
                continue;
            }
            let mut missing: Vec<String> = Vec::new();
            for r in s.checklist.iter().filter(|r| r.stage == stage && applies(r, d)) {
                if d.first_of(&r.kind).is_none() && !missing.contains(&r.kind) {
                    missing.push(r.kind.clone());
                }
            }
            if missing.is_empty() {
                continue;
            }
            let days = s.publication_business_days as i64;
            let deadline = ctx.calendar.add_business_days(start, days);
            let labels: Vec<&str> =
                missing.iter().map(|k| ctx.classifier.label(k).unwrap_or(k)).collect();
            let reasons = vec![
                format!("Etapa {} alcanzada el {} ({started}).", stage.as_str(), fecha(start)),
                format!("No se encontraron publicados en SECOP II: {}.", labels.join("; ")),
                format!(
                    "Se revisaron {} documentos publicados del contrato y su proceso, reconocidos por nombre de archivo y descripción.",
                    d.documents.len()
                ),
                format!(
                    "Los documentos y actos de cada etapa deben publicarse en SECOP II dentro de los 3 días siguientes a su expedición (Ley 1150 de 2007 art. 3; Decreto 1082 de 2015 art. 2.2.1.1.1.7.1): plazo hasta el {} ({days} días hábiles).",
                    fecha(deadline)
                ),
            ];
            out.push(Draft {
                kind: Kind::MissingDocuments,
                stage: Some(stage),
                since: start,
                deadline,
                step: None,
                reasons,
                missing,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::config::RuleSettings;
    use crate::config::classify::Classifier;
    use crate::rules::DocumentFact;
    use crate::rules::test_support::{date, default_settings, doc};

    fn contract(modality: &str, kind: &str) -> Contract {
        Contract {
            id: "CO1.PCCNTR.5".into(),
            state: Some("En ejecución".into()),
            contract_type: Some(kind.into()),
            modality: Some(modality.into()),
            signed_on: Some(date("2025-03-03")),
            starts_on: Some(date("2025-03-10")),
            ends_on: Some(date("2025-09-30")),
            requires_liquidation: Flag::No,
            ..Default::default()
        }
    }

    fn run_with(c: &Contract, docs: &[DocumentFact], as_of: &str, s: &RuleSettings) -> Vec<Draft> {
        let cal = Calendar::colombia();
        let classifier = Classifier::standard();
        MissingDocuments.evaluate(
            &Dossier::new(c, docs, &[]),
            &RuleContext {
                as_of: &crate::rules::AsOf::new(date(as_of)),
                calendar: &cal,
                rules: s,
                classifier: &classifier,
            },
        )
    }

    fn run(c: &Contract, docs: &[DocumentFact], as_of: &str) -> Vec<Draft> {
        run_with(c, docs, as_of, &default_settings())
    }

    fn missing(f: &[Draft], stage: &str) -> Vec<String> {
        f.iter()
            .find(|d| d.stage.as_ref().map(Stage::as_str) == Some(stage))
            .map(|d| d.missing.clone())
            .unwrap_or_default()
    }

    #[test]
    fn the_default_checklist_depends_on_modality_and_type() {
        let services = contract("Contratación directa", "Prestación de servicios");
        let f = run(&services, &[], "2025-04-01");
        assert_eq!(
            missing(&f, "precontractual"),
            ["estudios_previos", "analisis_sector", "cdp", "certificado_idoneidad"]
        );
        let supply = contract("Contratación Directa", "Suministros");
        assert_eq!(
            missing(&run(&supply, &[], "2025-04-01"), "precontractual"),
            ["estudios_previos", "analisis_sector", "cdp", "acto_justificacion"]
        );
        let tender = contract("Licitación pública", "Obra");
        assert_eq!(
            missing(&run(&tender, &[], "2025-04-01"), "precontractual"),
            ["estudios_previos", "analisis_sector", "cdp", "pliego"]
        );
        assert_eq!(missing(&f, "contractual"), ["contrato", "registro_presupuestal"]);
    }

    #[test]
    fn a_stage_counts_once_reached_and_its_deadline_is_three_business_days_later() {
        let c = contract("Contratación directa", "Prestación de servicios");
        // Before signing nothing is due; on the signing day the precontractual stage is.
        let mut early = c.clone();
        early.signed_on = Some(date("2025-05-01"));
        early.starts_on = Some(date("2025-05-05"));
        assert!(run(&early, &[], "2025-04-30").is_empty());
        let f = run(&early, &[], "2025-05-02");
        assert_eq!(f.len(), 1);
        // Signed on May 1 (a holiday): 3 business days are May 2, 5 and 6.
        assert_eq!((f[0].since, f[0].deadline), (date("2025-05-01"), date("2025-05-06")));
        // The contractual stage starts with execution.
        let f = run(&early, &[], "2025-05-05");
        let contractual = f.iter().find(|d| d.stage == Some(Stage::Contractual)).unwrap();
        assert_eq!(
            (contractual.since, contractual.deadline),
            (date("2025-05-05"), date("2025-05-08"))
        );
        // The postcontractual stage the day after the term ended.
        assert!(missing(&run(&c, &[], "2025-09-30"), "postcontractual").is_empty());
        let f = run(&c, &[], "2025-10-01");
        assert_eq!(missing(&f, "postcontractual"), ["informe_final"]);
    }

    #[test]
    fn published_documents_satisfy_their_kind_and_a_complete_stage_is_not_a_finding() {
        let c = contract("Contratación directa", "Prestación de servicios");
        let docs = [
            doc("1", "estudios_previos", "2025-02-20"),
            doc("2", "analisis_sector", "2025-02-20"),
            doc("3", "cdp", "2025-02-21"),
            doc("4", "certificado_idoneidad", "2025-02-25"),
            doc("5", "contrato", "2025-03-03"),
        ];
        let f = run(&c, &docs, "2025-04-01");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].stage, Some(Stage::Contractual));
        assert_eq!(f[0].missing, ["registro_presupuestal"]);
        assert!(f[0].reasons.iter().any(|r| r.contains("Registro presupuestal (RP)")));
        assert!(f[0].reasons.iter().any(|r| r.contains("Decreto 1082 de 2015 art. 2.2.1.1.1.7.1")));
    }

    #[test]
    fn closed_unsigned_and_old_contracts_are_not_checked() {
        for state in ["Cerrado", "Cancelado", "Borrador"] {
            let mut c = contract("Contratación directa", "Obra");
            c.state = Some(state.into());
            assert!(run(&c, &[], "2025-04-01").is_empty(), "{state}");
        }
        let mut c = contract("Contratación directa", "Obra");
        c.signed_on = None;
        assert!(run(&c, &[], "2025-04-01").is_empty());
        let mut c = contract("Contratación directa", "Obra");
        c.signed_on = Some(date("2024-12-31"));
        assert!(run(&c, &[], "2025-04-01").is_empty());
        let mut all = default_settings();
        all.missing_documents.signed_since = None;
        assert!(!run_with(&c, &[], "2025-04-01", &all).is_empty());
    }

    #[test]
    fn a_requirement_may_apply_only_when_liquidation_is_required() {
        let mut s = default_settings();
        s.missing_documents.checklist = vec![Requirement {
            stage: Stage::Postcontractual,
            kind: "acta_liquidacion".into(),
            modalities: vec![],
            except_modalities: vec![],
            types: vec![],
            except_types: vec![],
            liquidation_required: Some(true),
        }];
        let mut c = contract("Licitación pública", "Obra");
        assert!(run_with(&c, &[], "2025-10-15", &s).is_empty());
        c.requires_liquidation = Flag::Yes;
        let f = run_with(&c, &[], "2025-10-15", &s);
        assert_eq!(f[0].missing, ["acta_liquidacion"]);
    }
}
