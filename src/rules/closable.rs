//! Rule `closable`: a signed services/support contract whose term has ended and that needs
//! no liquidation must have its electronic file closed (Circular Externa 002 de 2023 of
//! Colombia Compra Eficiente, second directive).

use chrono::{Days, NaiveDate};

use super::{Draft, Rule, RuleContext, StateClass, fecha, pesos};
use crate::domain::{Contract, Flag, fold};

pub struct Closable;

/// Contracts of *prestación de servicios profesionales y de apoyo a la gestión*
/// (Ley 1150 de 2007 art. 2 num. 4 lit. h), by type or by the justification of the modality.
pub fn is_services(c: &Contract) -> bool {
    c.contract_type.as_deref().is_some_and(|t| fold(t).contains("prestacion de servicios"))
        || c.modality_justification
            .as_deref()
            .is_some_and(|j| fold(j).contains("servicios profesionales y apoyo a la gestion"))
}

/// The first day the execution term is over, as of `as_of`, with the reason in Spanish.
/// `None` while the contract is still within its term (or the data cannot tell).
pub fn term_ended(
    c: &Contract,
    state: StateClass,
    as_of: NaiveDate,
) -> Option<(NaiveDate, String)> {
    let reliable_end = c.ends_on.filter(|end| c.signed_on.is_none_or(|s| *end >= s));
    if let Some(end) = reliable_end
        && end < as_of
    {
        let since = end.checked_add_days(Days::new(1)).unwrap_or(end);
        return Some((
            since,
            format!("El plazo de ejecución terminó el {} (fecha de fin del contrato).", fecha(end)),
        ));
    }
    if state == StateClass::Terminated {
        // Terminated before its end date (or with no usable end date): the last update is the
        // best evidence of when; without it, today.
        let since = c.last_update.filter(|d| *d <= as_of).unwrap_or(as_of);
        return Some((since, "SECOP II registra el contrato en estado «terminado».".to_string()));
    }
    None
}

impl Rule for Closable {
    fn kind(&self) -> &'static str {
        "closable"
    }

    fn evaluate(&self, c: &Contract, ctx: &RuleContext) -> Vec<Draft> {
        let state = StateClass::of(c.state.as_deref());
        if !matches!(state, StateClass::Executing | StateClass::Terminated) || !is_services(c) {
            return vec![];
        }
        let Some((since, ended)) = term_ended(c, state, ctx.as_of) else { return vec![] };
        // Services contracts need no liquidation (Decreto-Ley 019 de 2012 art. 217) unless the
        // entity chose it: then the file closes after the liquidation, not under this rule.
        if c.requires_liquidation == Flag::Yes {
            return vec![];
        }
        if c.environmental_obligation == Flag::Yes || c.post_consumption_obligation == Flag::Yes {
            return vec![];
        }
        let settings = &ctx.rules.closable;
        let pending = c.pending_payment.filter(|p| *p > 0);
        if pending.is_some() && settings.pending_payment_blocks {
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

        let mut reasons = vec![
            "Contrato de prestación de servicios profesionales y de apoyo a la gestión (Ley 1150 de 2007 art. 2 num. 4 lit. h).".to_string(),
            ended,
        ];
        if state == StateClass::Executing {
            reasons.push(format!(
                "SECOP II aún muestra el estado «{}»; el expediente sigue abierto.",
                c.state.as_deref().unwrap_or_default()
            ));
        }
        reasons.push(match c.requires_liquidation {
            Flag::No => "No requiere liquidación (campo «liquidación»: No; Decreto-Ley 019 de 2012 art. 217).".to_string(),
            _ => "La liquidación no está definida en SECOP II; los contratos de prestación de servicios no la requieren (Decreto-Ley 019 de 2012 art. 217).".to_string(),
        });
        reasons.push("Sin obligaciones ambientales ni posconsumo señaladas.".to_string());
        if let Some(p) = pending {
            reasons.push(format!(
                "Advertencia: SECOP II muestra un valor pendiente de pago de {}; verifique los pagos antes del cierre.",
                pesos(p)
            ));
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
        reasons.push(
            "Debe cerrarse el expediente electrónico en SECOP II (Circular Externa 002 de 2023 de Colombia Compra Eficiente).".to_string(),
        );
        reasons.push(deadline_reason);
        vec![Draft {
            kind: "closable",
            stage: Some("postcontractual"),
            since,
            deadline,
            step: None,
            reasons,
            missing: vec![],
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::config::RuleSettings;
    use crate::rules::test_support::{date, default_settings};

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

    fn run(c: &Contract, as_of: &str, s: &RuleSettings) -> Vec<Draft> {
        let cal = Calendar::colombia();
        Closable.evaluate(c, &RuleContext { as_of: date(as_of), calendar: &cal, rules: s })
    }

    #[test]
    fn services_contract_ended_without_liquidation_is_closable() {
        let f = run(&services("En ejecución", "2025-06-30"), "2025-07-15", &settings(false, None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].since, date("2025-07-01"));
        // 30 business days from 2025-07-01: July 20 (Sunday) and August 7 and 18 are holidays.
        assert_eq!(f[0].deadline, Calendar::colombia().add_business_days(date("2025-07-01"), 30));
        assert!(f[0].reasons.iter().any(|r| r.contains("30 de junio de 2025")));
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
    fn a_liquidation_or_a_pending_obligation_blocks_the_rule() {
        let mut c = services("terminado", "2025-01-31");
        c.requires_liquidation = Flag::Yes;
        assert!(run(&c, "2025-07-15", &settings(false, None)).is_empty());
        let mut c = services("terminado", "2025-01-31");
        c.environmental_obligation = Flag::Yes;
        assert!(run(&c, "2025-07-15", &settings(false, None)).is_empty());
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
    fn a_pending_payment_warns_unless_configured_to_block() {
        let mut c = services("terminado", "2025-01-31");
        c.pending_payment = Some(3_150_000_000);
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert!(f[0].reasons.iter().any(|r| r.contains("$ 31.500.000")));
        assert!(run(&c, "2025-07-15", &settings(true, None)).is_empty());
    }

    #[test]
    fn terminated_early_uses_the_last_update_as_since() {
        let mut c = services("terminado", "2025-12-31");
        c.last_update = Some(date("2025-05-02"));
        let f = run(&c, "2025-07-15", &settings(false, None));
        assert_eq!(f[0].since, date("2025-05-02"));
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
    fn non_services_contracts_are_left_to_other_rules() {
        let mut c = services("terminado", "2025-01-31");
        c.contract_type = Some("Obra".into());
        assert!(run(&c, "2025-07-15", &settings(false, None)).is_empty());
        c.modality_justification = Some("Servicios profesionales y apoyo a la gestión".into());
        assert_eq!(run(&c, "2025-07-15", &settings(false, None)).len(), 1);
    }
}
