//! Rule `state_outdated`: a contract SECOP II still shows as executing (En ejecución,
//! Modificado, cedido, Prorrogado) more than N business days after its term ended — the
//! entity has not published the acts that ended it.

use chrono::{Days, NaiveDate};

use super::{Dossier, Draft, Rule, RuleContext, StateClass};
use crate::domain::spanish::fecha;
use crate::domain::{Contract, Kind, Stage};

pub struct StateOutdated;

/// The end of the term the data shows: `fecha_de_fin_del_contrato`, plus `dias_adicionados`
/// when configured (SECOP II does not always move the end date when days are added, so by
/// default the later date is trusted). `None` when the end date is missing or unreliable
/// (before the signing date).
pub fn effective_end(c: &Contract, add_days: bool) -> Option<NaiveDate> {
    let end = c.ends_on.filter(|end| c.signed_on.is_none_or(|s| *end >= s))?;
    // Absurd days added (beyond ten years) are unknown: the published end date stands.
    let extra = if add_days { c.plausible_days_added().unwrap_or(0) as u64 } else { 0 };
    end.checked_add_days(Days::new(extra))
}

impl Rule for StateOutdated {
    fn kind(&self) -> Kind {
        Kind::StateOutdated
    }

    fn evaluate(&self, d: &Dossier, ctx: &RuleContext) -> Vec<Draft> {
        let c = d.contract;
        let settings = &ctx.rules.state_outdated;
        if d.state != StateClass::Executing {
            return vec![];
        }
        let Some(end) = effective_end(c, settings.add_days_added) else { return vec![] };
        let grace = settings.grace_business_days as i64;
        // The first business day that is more than `grace` business days after the end.
        let since = ctx.calendar.add_business_days(end, grace + 1);
        if !ctx.as_of.reached(since) {
            return vec![];
        }
        let deadline = ctx.calendar.add_business_days(since, grace);
        let mut reasons = vec![format!(
            "SECOP II aún muestra el estado «{}», pero el plazo de ejecución terminó el {}.",
            c.state.as_deref().unwrap_or_default(),
            fecha(end)
        )];
        if let (true, Some(days)) =
            (settings.add_days_added, c.plausible_days_added().filter(|d| *d > 0))
        {
            reasons.push(format!(
                "Se tuvieron en cuenta {days} días adicionados a la fecha de fin publicada ({}).",
                c.ends_on.map(fecha).unwrap_or_default()
            ));
        }
        reasons.push(format!(
            "Han pasado más de {grace} días hábiles: deben publicarse en SECOP II los documentos y actos que reflejen el estado real del contrato (Ley 1150 de 2007 art. 3; Decreto 1082 de 2015 art. 2.2.1.1.1.7.1)."
        ));
        reasons.push(format!("Plazo para actualizar el estado: hasta el {}.", fecha(deadline)));
        vec![Draft {
            kind: Kind::StateOutdated,
            stage: Some(Stage::Contractual),
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
    use crate::config::classify::Classifier;
    use crate::rules::test_support::{date, default_settings};

    fn settings(add_days: bool) -> RuleSettings {
        let mut s = default_settings();
        s.state_outdated.add_days_added = add_days;
        s
    }

    fn contract(state: &str, end: &str, days_added: Option<i64>) -> Contract {
        Contract {
            id: "CO1.PCCNTR.1".into(),
            state: Some(state.into()),
            signed_on: Some(date("2025-01-10")),
            ends_on: Some(date(end)),
            days_added,
            ..Default::default()
        }
    }

    fn run(c: &Contract, as_of: &str, add_days: bool) -> Vec<Draft> {
        let cal = Calendar::colombia();
        let s = settings(add_days);
        StateOutdated.evaluate(
            &Dossier::bare(c),
            &RuleContext {
                as_of: &crate::rules::AsOf::new(date(as_of)),
                calendar: &cal,
                rules: &s,
                classifier: &Classifier::standard(),
            },
        )
    }

    #[test]
    fn an_executing_state_more_than_ten_business_days_after_the_end_is_outdated() {
        // Ended Friday 2025-06-27; June 30 is a holiday, so the tenth business day after is
        // Monday 2025-07-14 and the finding holds from the eleventh, Tuesday the 15th.
        let c = contract("En ejecución", "2025-06-27", None);
        assert!(run(&c, "2025-07-14", false).is_empty());
        let f = run(&c, "2025-07-15", false);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].since, date("2025-07-15"));
        assert_eq!(f[0].deadline, Calendar::colombia().add_business_days(date("2025-07-15"), 10));
        assert!(f[0].reasons[0].contains("27 de junio de 2025"));
    }

    #[test]
    fn only_executing_states_are_outdated() {
        for state in ["Modificado", "cedido", "Prorrogado"] {
            assert_eq!(
                run(&contract(state, "2025-01-31", None), "2025-07-15", false).len(),
                1,
                "{state}"
            );
        }
        for state in ["terminado", "Suspendido", "Cerrado", "Borrador", "Otro estado"] {
            assert!(
                run(&contract(state, "2025-01-31", None), "2025-07-15", false).is_empty(),
                "{state}"
            );
        }
    }

    #[test]
    fn added_days_push_the_end_when_configured() {
        let c = contract("Prorrogado", "2025-06-27", Some(30));
        assert_eq!(run(&c, "2025-07-15", false).len(), 1);
        assert!(run(&c, "2025-07-15", true).is_empty(), "the term now ends on 2025-07-27");
        let f = run(&c, "2025-09-01", true);
        assert!(f[0].reasons.iter().any(|r| r.contains("30 días adicionados")));
    }

    #[test]
    fn absurd_days_added_are_unknown_and_do_not_exempt_the_contract() {
        let c = contract("En ejecución", "2025-06-27", Some(999_999_999_999));
        let f = run(&c, "2025-07-15", true);
        assert_eq!(f.len(), 1, "the published end date stands");
        assert!(!f[0].reasons.iter().any(|r| r.contains("días adicionados")));
        // Ten years is still an extension.
        let c = contract("En ejecución", "2025-06-27", Some(3_650));
        assert!(run(&c, "2025-07-15", true).is_empty());
    }

    #[test]
    fn an_end_date_before_signing_or_missing_is_not_evidence() {
        let mut c = contract("En ejecución", "2024-12-31", None);
        assert!(run(&c, "2025-07-15", false).is_empty(), "ends before it was signed");
        c.ends_on = None;
        assert!(run(&c, "2025-07-15", false).is_empty());
    }
}
