//! Rule `closable`: a signed contract whose term has ended and whose electronic file must
//! now be closed (Circular Externa 002 de 2023 of Colombia Compra Eficiente): services and
//! support contracts that need no liquidation (second directive), and every other contract
//! once its post-contractual obligations are met — liquidation evidenced or not required, no
//! environmental or post-consumption obligation pending, no quality, stability or
//! maintenance guarantee in force (first directive; Decreto 1082 de 2015 art.
//! 2.2.1.1.2.4.3). A contract only an obligation keeps open is reported with step `blocked`.

use chrono::{Days, NaiveDate};

use super::{AsOf, Dossier, Draft, Rule, RuleContext, StateClass};
use crate::config::classify::ACTA_LIQUIDACION;
use crate::domain::spanish::{fecha, pesos};
use crate::domain::{Contract, Flag, Guarantee, Kind, Stage, fold};

pub struct Closable;

/// Contracts of *prestación de servicios profesionales y de apoyo a la gestión*
/// (Ley 1150 de 2007 art. 2 num. 4 lit. h), by type or by the justification of the modality.
pub fn is_services(c: &Contract) -> bool {
    c.contract_type.as_deref().is_some_and(|t| fold(t).contains("prestacion de servicios"))
        || c.modality_justification
            .as_deref()
            .is_some_and(|j| fold(j).contains("servicios profesionales y apoyo a la gestion"))
}

/// When the execution term ended, as the data shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The last day of the term (the end date, or the day the contract was terminated).
    pub end: NaiveDate,
    /// The first day the term is over: the day after the end date, or the termination day.
    pub since: NaiveDate,
    /// What shows it, in Spanish.
    pub reason: String,
}

/// Whether the execution term is over as of `as_of`; `None` while the contract is within its
/// term, suspended (its term is on hold), or the data cannot tell.
pub fn term_ended(c: &Contract, state: StateClass, as_of: &AsOf) -> Option<Ended> {
    if state == StateClass::Suspended {
        return None;
    }
    let reliable_end = c.ends_on.filter(|end| c.signed_on.is_none_or(|s| *end >= s));
    if let Some(end) = reliable_end
        && as_of.passed(end)
    {
        return Some(Ended {
            end,
            since: end.checked_add_days(Days::new(1)).unwrap_or(end),
            reason: format!(
                "El plazo de ejecución terminó el {} (fecha de fin del contrato).",
                fecha(end)
            ),
        });
    }
    if state == StateClass::Terminated {
        // Terminated before its end date (or with no usable end date): SECOP II's last update
        // is the best evidence of when; else the day the stored row last changed (a stable
        // date, unlike today's, so deadlines do not slide).
        let on = c
            .last_update
            .filter(|d| as_of.reached(*d))
            .or_else(|| c.changed_on.filter(|d| as_of.reached(*d)))
            .unwrap_or_else(|| as_of.as_value());
        return Some(Ended {
            end: on,
            since: on,
            reason: "SECOP II registra el contrato en estado «terminado».".to_string(),
        });
    }
    None
}

/// Whether a guarantee is one of those (quality, stability, maintenance) whose validity keeps
/// the file open (Decreto 1082 de 2015 art. 2.2.1.1.2.4.3). Rejected or annulled policies do
/// not count.
pub fn is_post_contractual_guarantee(g: &Guarantee, types: &[String]) -> bool {
    let status = g.status.as_deref().map(fold).unwrap_or_default();
    if ["rechaz", "anulad", "cancelad", "revocad"].iter().any(|s| status.starts_with(s)) {
        return false;
    }
    let text = format!(
        "{} {}",
        g.policy_type.as_deref().map(fold).unwrap_or_default(),
        g.policy_subtype.as_deref().map(fold).unwrap_or_default()
    );
    types.iter().any(|t| text.contains(t.as_str()))
}

/// How a guarantee is named in reasons: `garantía «Calidad del servicio» (póliza 123)`.
fn guarantee_name(g: &Guarantee) -> String {
    let kind = g.policy_subtype.as_deref().or(g.policy_type.as_deref()).unwrap_or("sin tipo");
    match &g.policy_number {
        Some(n) => format!("la garantía «{kind}» (póliza {n})"),
        None => format!("la garantía «{kind}»"),
    }
}

impl Rule for Closable {
    fn kind(&self) -> Kind {
        Kind::Closable
    }

    fn evaluate(&self, d: &Dossier, ctx: &RuleContext) -> Vec<Draft> {
        let c = d.contract;
        let state = d.state;
        if !matches!(state, StateClass::Executing | StateClass::Terminated) {
            return vec![];
        }
        let Some(Ended { since: ended_since, reason: ended, .. }) = term_ended(c, state, ctx.as_of)
        else {
            return vec![];
        };
        let settings = &ctx.rules.closable;
        let services = d.services;
        let mut since = ended_since;
        let mut reasons = Vec::new();
        // What keeps the file open although the term ended: each is a reason in Spanish.
        let mut blocks = Vec::new();

        // Directive (a) of the circular: services contracts need no liquidation unless the
        // entity chose it; directive (b): every other contract, once its post-contractual
        // obligations are met.
        let directive_a = services && c.requires_liquidation != Flag::Yes;
        reasons.push(if directive_a {
            "Contrato de prestación de servicios profesionales y de apoyo a la gestión (Ley 1150 de 2007 art. 2 num. 4 lit. h).".to_string()
        } else {
            format!(
                "Contrato de tipo «{}»: su expediente se cierra cuando cumple sus obligaciones poscontractuales.",
                c.contract_type.as_deref().unwrap_or("sin tipo")
            )
        });
        reasons.push(ended);
        if state == StateClass::Executing {
            reasons.push(format!(
                "SECOP II aún muestra el estado «{}»; el expediente sigue abierto.",
                c.state.as_deref().unwrap_or_default()
            ));
        }

        // Liquidation: not required, or evidenced by a published acta.
        let acta = d.first_of(ACTA_LIQUIDACION);
        match (c.requires_liquidation, acta) {
            (_, Some(doc)) => {
                let on = doc.uploaded_on.unwrap_or(since);
                since = since.max(on);
                reasons.push(format!(
                    "La liquidación consta en el documento publicado «{}» ({}; Ley 80 de 1993 art. 60).",
                    doc.name.as_deref().unwrap_or(&doc.id),
                    doc.uploaded_on.map(fecha).unwrap_or_else(|| "sin fecha de carga".into())
                ));
            }
            // Not liquidated yet: `liquidation_due` follows it, not this rule.
            (Flag::Yes, None) => return vec![],
            (Flag::No, None) => reasons.push(
                "No requiere liquidación (campo «liquidación»: No; Ley 80 de 1993 art. 60, modificado por el Decreto-Ley 019 de 2012 art. 217).".to_string(),
            ),
            (Flag::Unknown, None) if services => reasons.push(
                "La liquidación no está definida en SECOP II; los contratos de prestación de servicios no la requieren (Decreto-Ley 019 de 2012 art. 217).".to_string(),
            ),
            (Flag::Unknown, None) => reasons.push(
                "Advertencia: SECOP II no indica si el contrato requiere liquidación («No Definido») y no hay acta de liquidación publicada; verifique si debía liquidarse (Ley 80 de 1993 art. 60) antes del cierre.".to_string(),
            ),
        }

        // Environmental and post-consumption obligations: the data says whether the contract
        // carries them, never whether they were met, so a person has to verify.
        for (flag, name) in [
            (c.environmental_obligation, "ambientales"),
            (c.post_consumption_obligation, "posconsumo"),
        ] {
            if flag == Flag::Yes {
                blocks.push(format!(
                    "Bloqueado: el contrato tiene obligaciones {name} (campo en SECOP II: Sí); el expediente se cierra cuando se verifique su cumplimiento (Decreto 1082 de 2015 art. 2.2.1.1.2.4.3)."
                ));
            }
        }

        // Quality, stability and maintenance guarantees: the file stays open while one is in
        // force, and the closing is due once the last one expired.
        let mut post_guarantees = 0;
        for g in d
            .guarantees
            .iter()
            .filter(|g| is_post_contractual_guarantee(g, &settings.guarantee_types))
        {
            post_guarantees += 1;
            match g.ends_on {
                // Still in force: not closable yet, and the day it will be is known.
                Some(end) if !ctx.as_of.passed(end) => return vec![],
                Some(end) => {
                    since = since.max(end.checked_add_days(Days::new(1)).unwrap_or(end));
                    reasons.push(format!(
                        "{} venció el {} (Decreto 1082 de 2015 art. 2.2.1.1.2.4.3).",
                        capitalize(&guarantee_name(g)),
                        fecha(end)
                    ));
                }
                None => reasons.push(format!(
                    "Advertencia: {} no tiene fecha de fin en SECOP II; verifique que ya no esté vigente.",
                    guarantee_name(g)
                )),
            }
        }
        if blocks.is_empty() && post_guarantees == 0 {
            reasons.push(
                "Sin obligaciones ambientales ni posconsumo señaladas, ni garantías de calidad, estabilidad o mantenimiento vigentes.".to_string(),
            );
        }

        let pending = c.plausible_pending_payment().filter(|p| *p > 0);
        if let Some(p) = pending {
            if settings.pending_payment_blocks {
                blocks.push(format!(
                    "Bloqueado: SECOP II muestra un valor pendiente de pago de {}; el cierre espera el pago (regla configurada).",
                    pesos(p)
                ));
            } else {
                reasons.push(format!(
                    "Advertencia: SECOP II muestra un valor pendiente de pago de {}; verifique los pagos antes del cierre.",
                    pesos(p)
                ));
            }
        }
        if let (Some(end), Some(signed)) = (c.ends_on, c.signed_on)
            && end < signed
        {
            reasons.push(format!(
                "Dato inconsistente: la fecha de fin ({}) es anterior a la de firma ({}).",
                fecha(end),
                fecha(signed)
            ));
        }
        if !blocks.is_empty() && !settings.report_blocked {
            return vec![];
        }

        let mut deadline =
            ctx.calendar.add_business_days(since, settings.deadline_business_days as i64);
        let mut deadline_reason = format!(
            "Plazo para el cierre: {} días hábiles desde el {}, hasta el {}.",
            settings.deadline_business_days,
            fecha(since),
            fecha(deadline)
        );
        if let Some(campaign) = settings.campaign_deadline
            && since <= campaign
            && campaign < deadline
        {
            deadline = campaign;
            deadline_reason =
                format!("Plazo de la campaña de cierre configurada: {}.", fecha(campaign));
        }
        let blocked = !blocks.is_empty();
        reasons.extend(blocks);
        reasons.push(if directive_a {
            "Debe cerrarse el expediente electrónico en SECOP II (Circular Externa 002 de 2023 de Colombia Compra Eficiente, contratos de prestación de servicios).".to_string()
        } else if blocked {
            "Cuando se cumpla lo anterior debe cerrarse el expediente electrónico en SECOP II (Circular Externa 002 de 2023 de Colombia Compra Eficiente; Decreto 1082 de 2015 art. 2.2.1.1.2.4.3).".to_string()
        } else {
            "Debe cerrarse el expediente electrónico en SECOP II: cumplió sus obligaciones poscontractuales (Circular Externa 002 de 2023 de Colombia Compra Eficiente; Decreto 1082 de 2015 art. 2.2.1.1.2.4.3).".to_string()
        });
        reasons.push(deadline_reason);
        vec![Draft {
            kind: Kind::Closable,
            stage: Some(Stage::Postcontractual),
            since,
            deadline,
            step: blocked.then(|| "blocked".to_string()),
            reasons,
            missing: vec![],
        }]
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
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

    fn settings(pending_blocks: bool, campaign: Option<&str>) -> RuleSettings {
        let mut s = default_settings();
        s.closable.campaign_deadline = campaign.map(date);
        s.closable.pending_payment_blocks = pending_blocks;
        s
    }

    fn services(state: &str, end: &str) -> Contract {
        Contract {
            id: "CO1.PCCNTR.1".into(),
            state: Some(state.into()),
            contract_type: Some("Prestación de servicios".into()),
            signed_on: Some(date("2025-01-10")),
            ends_on: Some(date(end)),
            requires_liquidation: Flag::No,
            environmental_obligation: Flag::No,
            post_consumption_obligation: Flag::No,
            ..Default::default()
        }
    }

    fn works(state: &str, end: &str, liquidation: Flag) -> Contract {
        Contract {
            contract_type: Some("Obra".into()),
            requires_liquidation: liquidation,
            ..services(state, end)
        }
    }

    fn guarantee(kind: &str, end: Option<&str>) -> Guarantee {
        Guarantee {
            key: format!("CO1.PCCNTR.1|7|{kind}"),
            contract_id: Some("CO1.PCCNTR.1".into()),
            policy_number: Some("7".into()),
            policy_type: Some("Cumplimiento".into()),
            policy_subtype: Some(kind.into()),
            ends_on: end.map(date),
            status: Some("Aceptada".into()),
            ..Default::default()
        }
    }

    fn run(c: &Contract, as_of: &str, s: &RuleSettings) -> Vec<Draft> {
        run_with(c, &[], &[], as_of, s)
    }

    fn run_with(
        c: &Contract,
        docs: &[DocumentFact],
        guarantees: &[Guarantee],
        as_of: &str,
        s: &RuleSettings,
    ) -> Vec<Draft> {
        let cal = Calendar::colombia();
        let classifier = Classifier::standard();
        Closable.evaluate(
            &Dossier::new(c, docs, guarantees),
            &RuleContext {
                as_of: &crate::rules::AsOf::new(date(as_of)),
                calendar: &cal,
                rules: s,
                classifier: &classifier,
            },
        )
    }

    #[test]
    fn services_contract_ended_without_liquidation_is_closable() {
        let f = run(&services("En ejecución", "2025-06-30"), "2025-07-15", &settings(false, None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].since, date("2025-07-01"));
        assert_eq!(f[0].step, None);
        // 30 business days from 2025-07-01: July 20 (Sunday) and August 7 and 18 are holidays.
        assert_eq!(f[0].deadline, Calendar::colombia().add_business_days(date("2025-07-01"), 30));
        assert!(f[0].reasons.iter().any(|r| r.contains("30 de junio de 2025")));
        assert!(f[0].reasons.iter().any(|r| r.contains("Ley 1150 de 2007 art. 2 num. 4 lit. h")));
    }

    #[test]
    fn a_contract_whose_end_date_is_today_is_not_yet_closable() {
        assert!(
            run(&services("En ejecución", "2025-07-15"), "2025-07-15", &settings(false, None))
                .is_empty()
        );
        assert_eq!(
            run(&services("En ejecución", "2025-07-15"), "2025-07-16", &settings(false, None))
                .len(),
            1
        );
    }

    #[test]
    fn closed_cancelled_draft_and_suspended_contracts_are_not_closable() {
        for state in ["Cerrado", "Cancelado", "Borrador", "Suspendido", "Estado raro"] {
            assert!(
                run(&services(state, "2025-01-31"), "2025-07-15", &settings(false, None))
                    .is_empty(),
                "{state}"
            );
        }
    }

    #[test]
    fn a_liquidation_not_yet_evidenced_leaves_the_contract_to_liquidation_due() {
        let mut c = services("terminado", "2025-01-31");
        c.requires_liquidation = Flag::Yes;
        assert!(run(&c, "2025-07-15", &settings(false, None)).is_empty());
        let c = works("terminado", "2025-01-31", Flag::Yes);
        assert!(run(&c, "2025-07-15", &settings(false, None)).is_empty());
    }

    #[test]
    fn a_published_acta_de_liquidacion_makes_the_contract_closable_from_its_upload() {
        let c = works("terminado", "2025-01-31", Flag::Yes);
        let docs = [doc("D1", "acta_liquidacion", "2025-04-10")];
        let f = run_with(&c, &docs, &[], "2025-07-15", &settings(false, None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].since, date("2025-04-10"));
        assert!(f[0].reasons.iter().any(|r| r.contains("Ley 80 de 1993 art. 60")));
        assert!(f[0].reasons.iter().any(|r| r.contains("2.2.1.1.2.4.3")));
        // An acta uploaded before the term ended: the term's end decides.
        let docs = [doc("D1", "acta_liquidacion", "2025-01-02")];
        let f = run_with(&c, &docs, &[], "2025-07-15", &settings(false, None));
        assert_eq!(f[0].since, date("2025-02-01"));
    }

    #[test]
    fn an_environmental_or_post_consumption_obligation_reports_the_contract_as_blocked() {
        for (env, post) in [(Flag::Yes, Flag::No), (Flag::No, Flag::Yes), (Flag::Yes, Flag::Yes)] {
            let mut c = works("terminado", "2025-01-31", Flag::No);
            c.environmental_obligation = env;
            c.post_consumption_obligation = post;
            let f = run(&c, "2025-07-15", &settings(false, None));
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].step.as_deref(), Some("blocked"));
            let blocks = f[0].reasons.iter().filter(|r| r.starts_with("Bloqueado")).count();
            assert_eq!(blocks, [env, post].iter().filter(|f| **f == Flag::Yes).count());
            let mut quiet = settings(false, None);
            quiet.closable.report_blocked = false;
            assert!(run(&c, "2025-07-15", &quiet).is_empty());
        }
    }

    #[test]
    fn no_definido_obligations_do_not_block() {
        let mut c = works("terminado", "2025-01-31", Flag::No);
        c.environmental_obligation = Flag::Unknown;
        c.post_consumption_obligation = Flag::Unknown;
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert_eq!(f[0].step, None);
    }

    #[test]
    fn a_quality_guarantee_in_force_keeps_the_file_open_until_it_expires() {
        let c = works("terminado", "2025-01-31", Flag::No);
        let g = [guarantee("Estabilidad y calidad de la obra", Some("2025-09-30"))];
        assert!(run_with(&c, &[], &g, "2025-07-15", &settings(false, None)).is_empty());
        // The day it expires it is still in force; the next day the file must be closed.
        assert!(run_with(&c, &[], &g, "2025-09-30", &settings(false, None)).is_empty());
        let f = run_with(&c, &[], &g, "2025-10-01", &settings(false, None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].since, date("2025-10-01"));
        assert!(f[0].reasons.iter().any(|r| r.contains("30 de septiembre de 2025")));
    }

    #[test]
    fn the_last_guarantee_to_expire_sets_since_and_other_guarantees_are_ignored() {
        let c = works("terminado", "2025-01-31", Flag::No);
        let g = [
            guarantee("Calidad del servicio", Some("2025-03-31")),
            guarantee("Mantenimiento", Some("2025-05-15")),
            // Cumplimiento alone and seriedad de la oferta do not keep the file open.
            Guarantee {
                policy_subtype: Some("Cumplimiento".into()),
                ..guarantee("x", Some("2026-12-31"))
            },
            Guarantee {
                status: Some("Rechazada".into()),
                ..guarantee("Calidad de los bienes", Some("2026-12-31"))
            },
        ];
        let f = run_with(&c, &[], &g, "2025-07-15", &settings(false, None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].since, date("2025-05-16"));
    }

    #[test]
    fn a_guarantee_without_end_date_is_a_warning() {
        let c = works("terminado", "2025-01-31", Flag::No);
        let g = [guarantee("Calidad del servicio", None)];
        let f = run_with(&c, &[], &g, "2025-07-15", &settings(false, None));
        assert!(
            f[0].reasons.iter().any(|r| r.starts_with("Advertencia") && r.contains("fecha de fin"))
        );
    }

    #[test]
    fn no_definido_liquidation_is_not_a_block_for_services() {
        let mut c = services("terminado", "2025-01-31");
        c.requires_liquidation = Flag::Unknown;
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert_eq!(f.len(), 1);
        assert!(f[0].reasons.iter().any(|r| r.contains("no está definida")));
    }

    #[test]
    fn no_definido_liquidation_is_a_warning_for_other_contracts() {
        let c = works("terminado", "2025-01-31", Flag::Unknown);
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert_eq!(f.len(), 1);
        assert!(
            f[0].reasons.iter().any(|r| r.starts_with("Advertencia") && r.contains("No Definido"))
        );
    }

    #[test]
    fn a_pending_payment_warns_unless_configured_to_block() {
        let mut c = services("terminado", "2025-01-31");
        c.pending_payment = Some(3_150_000_000);
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert!(f[0].reasons.iter().any(|r| r.contains("$ 31.500.000")));
        assert_eq!(f[0].step, None);
        let f = run(&c, "2025-07-15", &settings(true, None));
        assert_eq!(f[0].step.as_deref(), Some("blocked"));
        // An amount orders of magnitude beyond the contract's value is unknown, not a debt.
        let mut absurd = c.clone();
        absurd.value = Some(100_000_000);
        absurd.pending_payment = Some(100_000_000 * 1_000);
        assert!(absurd.absurd_pending_payment());
        let f = run(&absurd, "2025-07-15", &settings(true, None));
        assert_eq!(f[0].step, None, "it does not block");
        assert!(
            !f[0].reasons.iter().any(|r| r.contains("pendiente de pago")),
            "{:?}",
            f[0].reasons
        );
        // A negative pending amount (dirty data) is neither.
        c.pending_payment = Some(-100);
        let f = run(&c, "2025-07-15", &settings(true, None));
        assert_eq!(f[0].step, None);
    }

    #[test]
    fn terminated_early_uses_the_last_update_as_since() {
        let mut c = services("terminado", "2025-12-31");
        c.last_update = Some(date("2025-05-02"));
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert_eq!(f[0].since, date("2025-05-02"));
    }

    #[test]
    fn an_end_date_before_signing_is_not_trusted_and_is_reported() {
        let mut c = services("terminado", "2024-12-31");
        c.last_update = Some(date("2025-03-03"));
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert_eq!(f[0].since, date("2025-03-03"));
        assert!(f[0].reasons.iter().any(|r| r.starts_with("Dato inconsistente")));
    }

    #[test]
    fn an_earlier_campaign_deadline_wins_for_contracts_ended_before_it() {
        let c = services("terminado", "2023-06-30");
        let f = run(&c, "2023-07-10", &settings(false, Some("2023-07-31")));
        assert_eq!(f[0].deadline, date("2023-07-31"));
        let late = services("terminado", "2023-09-30");
        let f = run(&late, "2023-10-10", &settings(false, Some("2023-07-31")));
        assert_ne!(f[0].deadline, date("2023-07-31"));
    }

    #[test]
    fn a_contract_ending_on_a_holiday_counts_its_deadline_in_business_days() {
        // 2025-12-08 is a holiday (Inmaculada Concepción): the term ended that day.
        let f = run(&services("En ejecución", "2025-12-08"), "2025-12-10", &settings(false, None));
        assert_eq!(f[0].since, date("2025-12-09"));
        let cal = Calendar::colombia();
        assert_eq!(cal.business_days_between(f[0].since, f[0].deadline), 30);
        assert!(cal.is_business_day(f[0].deadline));
    }

    #[test]
    fn directive_b_covers_contracts_that_are_not_services() {
        let c = works("terminado", "2025-01-31", Flag::No);
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert_eq!(f.len(), 1);
        assert!(f[0].reasons[0].contains("«Obra»"));
        assert!(
            f[0].reasons.iter().any(|r| r.contains("cumplió sus obligaciones poscontractuales"))
        );
    }
}
