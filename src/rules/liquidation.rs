//! Rule `liquidation_due`: a contract that requires liquidation, whose term ended and whose
//! liquidation is not evidenced by a published acta, with the step of Ley 1150 de 2007 art.
//! 11 it is in — `bilateral` (the agreed term, else 4 months after the end), `unilateral` (2
//! months more), `late` (the 2 years after that) and `competence_lost`.

use chrono::NaiveDate;

use super::closable::{Ended, term_ended};
use super::{AsOf, Dossier, Draft, Rule, RuleContext};
use crate::calendar::Calendar;
use crate::config::LiquidationSettings;
use crate::config::classify::ACTA_LIQUIDACION;
use crate::domain::spanish::fecha;
use crate::domain::{Contract, Flag, Kind, Stage};

pub struct LiquidationDue;

/// The last day of each liquidation step of a contract whose term ended on `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub bilateral: NaiveDate,
    /// Whether `bilateral` is the term the parties agreed (`fecha_fin_liquidacion`).
    pub agreed: bool,
    pub unilateral: NaiveDate,
    pub late: NaiveDate,
}

impl Terms {
    /// Month and year terms per Ley 4 de 1913 art. 62: calendar terms moved to the next
    /// business day when they end on a non-business day. An agreed date before the end of
    /// the term is a data error and is ignored.
    pub fn of(c: &Contract, end: NaiveDate, s: &LiquidationSettings, cal: &Calendar) -> Terms {
        let agreed = c.liquidation_ends_on.filter(|d| *d >= end);
        let bilateral = match agreed {
            Some(d) => cal.next_business_day_on_or_after(d),
            None => cal.add_months(end, s.bilateral_months),
        };
        let unilateral = cal.add_months(bilateral, s.unilateral_months);
        let late = cal.add_years(unilateral, s.late_years);
        Terms { bilateral, agreed: agreed.is_some(), unilateral, late }
    }

    /// The step `as_of` falls in and the day it ends.
    pub fn step(&self, as_of: &AsOf) -> (&'static str, NaiveDate) {
        if !as_of.passed(self.bilateral) {
            ("bilateral", self.bilateral)
        } else if !as_of.passed(self.unilateral) {
            ("unilateral", self.unilateral)
        } else if !as_of.passed(self.late) {
            ("late", self.late)
        } else {
            ("competence_lost", self.late)
        }
    }
}

impl Rule for LiquidationDue {
    fn kind(&self) -> Kind {
        Kind::LiquidationDue
    }

    fn evaluate(&self, d: &Dossier, ctx: &RuleContext) -> Vec<Draft> {
        let c = d.contract;
        let state = d.state;
        if !state.is_signed_open() || c.requires_liquidation != Flag::Yes {
            return vec![];
        }
        let Some(Ended { end, since, reason: ended }) = term_ended(c, state, ctx.as_of) else {
            return vec![];
        };
        if d.first_of(ACTA_LIQUIDACION).is_some() {
            return vec![];
        }
        let s = &ctx.rules.liquidation_due;
        let terms = Terms::of(c, end, s, ctx.calendar);
        let (step, deadline) = terms.step(ctx.as_of);
        let mut reasons = vec![
            "El contrato requiere liquidación (campo «liquidación»: Sí) y no hay acta de liquidación publicada en SECOP II (Ley 80 de 1993 art. 60).".to_string(),
            ended,
        ];
        let bilateral_basis = if terms.agreed {
            "plazo pactado en «fecha_fin_liquidacion»".to_string()
        } else {
            format!("{} meses después del fin del plazo", s.bilateral_months)
        };
        reasons.push(match step {
            "bilateral" => format!(
                "Etapa bilateral: la liquidación de común acuerdo vence el {} ({bilateral_basis}; Ley 1150 de 2007 art. 11).",
                fecha(terms.bilateral)
            ),
            "unilateral" => format!(
                "Etapa unilateral: el plazo bilateral venció el {} ({bilateral_basis}); la entidad debe liquidar unilateralmente a más tardar el {} ({} meses más; Ley 1150 de 2007 art. 11).",
                fecha(terms.bilateral),
                fecha(terms.unilateral),
                s.unilateral_months
            ),
            "late" => format!(
                "Etapa tardía: vencieron los plazos bilateral ({}) y unilateral ({}); la liquidación aún puede hacerse, de mutuo acuerdo o unilateralmente, hasta el {} ({} años; Ley 1150 de 2007 art. 11).",
                fecha(terms.bilateral),
                fecha(terms.unilateral),
                fecha(terms.late),
                s.late_years
            ),
            _ => format!(
                "Pérdida de competencia: el {} venció el término de {} años siguiente al plazo unilateral ({}); la entidad ya no puede liquidar el contrato (Ley 1150 de 2007 art. 11). Deje constancia en el expediente y ciérrelo.",
                fecha(terms.late),
                s.late_years,
                fecha(terms.unilateral)
            ),
        });
        if step != "competence_lost" {
            reasons.push(format!("Plazo de esta etapa: hasta el {}.", fecha(deadline)));
        }
        vec![Draft {
            kind: Kind::LiquidationDue,
            stage: Some(Stage::Postcontractual),
            since,
            deadline,
            step: Some(step.to_string()),
            reasons,
            missing: vec![],
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::classify::Classifier;
    use crate::rules::DocumentFact;
    use crate::rules::test_support::{date, default_settings, doc};

    fn contract(state: &str, end: &str) -> Contract {
        Contract {
            id: "CO1.PCCNTR.9".into(),
            state: Some(state.into()),
            contract_type: Some("Obra".into()),
            signed_on: Some(date("2024-01-15")),
            ends_on: Some(date(end)),
            requires_liquidation: Flag::Yes,
            ..Default::default()
        }
    }

    fn run(c: &Contract, docs: &[DocumentFact], as_of: &str) -> Vec<Draft> {
        let cal = Calendar::colombia();
        let rules = default_settings();
        let classifier = Classifier::standard();
        LiquidationDue.evaluate(
            &Dossier::new(c, docs, &[]),
            &RuleContext {
                as_of: &crate::rules::AsOf::new(date(as_of)),
                calendar: &cal,
                rules: &rules,
                classifier: &classifier,
            },
        )
    }

    fn step(c: &Contract, as_of: &str) -> (String, NaiveDate) {
        let f = run(c, &[], as_of);
        assert_eq!(f.len(), 1, "{as_of}");
        (f[0].step.clone().unwrap(), f[0].deadline)
    }

    #[test]
    fn the_steps_follow_ley_1150_art_11_as_of_each_date() {
        // Ends Friday 2025-01-31: bilateral until 2025-05-31, a Saturday → Tuesday 2025-06-03
        // (Monday June 2 is the Ascension holiday); unilateral 2 months later, 2025-08-03 is a
        // Sunday → 2025-08-04; late until 2027-08-04 (a Wednesday).
        let c = contract("En ejecución", "2025-01-31");
        let table = [
            ("2025-01-31", None),
            ("2025-02-01", Some(("bilateral", "2025-06-03"))),
            ("2025-06-03", Some(("bilateral", "2025-06-03"))),
            ("2025-06-04", Some(("unilateral", "2025-08-04"))),
            ("2025-08-04", Some(("unilateral", "2025-08-04"))),
            ("2025-08-05", Some(("late", "2027-08-04"))),
            ("2027-08-04", Some(("late", "2027-08-04"))),
            ("2027-08-05", Some(("competence_lost", "2027-08-04"))),
        ];
        for (as_of, expected) in table {
            match expected {
                None => assert!(run(&c, &[], as_of).is_empty(), "{as_of}"),
                Some((s, deadline)) => {
                    assert_eq!(step(&c, as_of), (s.to_string(), date(deadline)), "{as_of}")
                }
            }
        }
    }

    #[test]
    fn month_terms_at_month_end_clamp_to_the_shorter_month() {
        // Ends 2025-10-31: + 4 months = 2026-02-28, a Saturday → Monday 2026-03-02.
        let c = contract("En ejecución", "2025-10-31");
        assert_eq!(step(&c, "2025-11-10"), ("bilateral".into(), date("2026-03-02")));
    }

    #[test]
    fn an_agreed_liquidation_date_replaces_the_four_months() {
        let mut c = contract("terminado", "2025-01-31");
        c.liquidation_ends_on = Some(date("2025-03-14"));
        assert_eq!(step(&c, "2025-02-10"), ("bilateral".into(), date("2025-03-14")));
        // The unilateral term runs from the agreed one.
        assert_eq!(step(&c, "2025-03-17"), ("unilateral".into(), date("2025-05-14")));
        let f = run(&c, &[], "2025-02-10");
        assert!(f[0].reasons.iter().any(|r| r.contains("fecha_fin_liquidacion")));
        // An agreed date before the end is a data error: the law's term applies.
        c.liquidation_ends_on = Some(date("2024-12-01"));
        assert_eq!(step(&c, "2025-02-10"), ("bilateral".into(), date("2025-06-03")));
    }

    #[test]
    fn a_published_acta_de_liquidacion_ends_the_finding() {
        let c = contract("terminado", "2025-01-31");
        assert!(run(&c, &[doc("D", "acta_liquidacion", "2025-03-01")], "2025-07-01").is_empty());
        // Other documents do not count.
        assert_eq!(run(&c, &[doc("D", "informe_final", "2025-03-01")], "2025-07-01").len(), 1);
    }

    #[test]
    fn only_signed_open_contracts_that_require_liquidation_are_due() {
        // A suspended contract's term is on hold.
        for state in ["Cerrado", "Cancelado", "Borrador", "En aprobación", "raro", "Suspendido"] {
            assert!(run(&contract(state, "2025-01-31"), &[], "2025-07-01").is_empty(), "{state}");
        }
        for state in ["En ejecución", "Modificado", "terminado", "Prorrogado"] {
            assert_eq!(run(&contract(state, "2025-01-31"), &[], "2025-07-01").len(), 1, "{state}");
        }
        for flag in [Flag::No, Flag::Unknown] {
            let mut c = contract("terminado", "2025-01-31");
            c.requires_liquidation = flag;
            assert!(run(&c, &[], "2025-07-01").is_empty());
        }
    }

    #[test]
    fn a_contract_without_end_date_is_due_only_once_terminated() {
        let mut c = contract("En ejecución", "2025-01-31");
        c.ends_on = None;
        assert!(run(&c, &[], "2025-07-01").is_empty());
        c.state = Some("terminado".into());
        c.last_update = Some(date("2025-03-03"));
        let f = run(&c, &[], "2025-07-01");
        assert_eq!(f[0].since, date("2025-03-03"));
    }

    #[test]
    fn a_contract_terminated_early_counts_its_terms_from_the_termination_day() {
        let mut c = contract("terminado", "2026-12-31");
        c.last_update = Some(date("2025-03-03"));
        // 2025-03-03 + 4 months = Thursday 2025-07-03.
        assert_eq!(step(&c, "2025-04-01"), ("bilateral".into(), date("2025-07-03")));
        // Without a last update, the day the stored row last changed; never today, which
        // would push the terms back every day.
        c.last_update = None;
        c.changed_on = Some(date("2025-03-10"));
        assert_eq!(step(&c, "2025-04-01"), ("bilateral".into(), date("2025-07-10")));
        assert_eq!(step(&c, "2025-04-02"), ("bilateral".into(), date("2025-07-10")));
    }

    #[test]
    fn reasons_name_the_step_the_date_and_the_law() {
        let c = contract("terminado", "2025-01-31");
        for (as_of, word) in [
            ("2025-02-10", "Etapa bilateral"),
            ("2025-07-01", "Etapa unilateral"),
            ("2026-01-01", "Etapa tardía"),
            ("2028-01-01", "Pérdida de competencia"),
        ] {
            let f = run(&c, &[], as_of);
            assert!(
                f[0].reasons
                    .iter()
                    .any(|r| r.starts_with(word) && r.contains("Ley 1150 de 2007 art. 11")),
                "{as_of}: {:?}",
                f[0].reasons
            );
        }
    }
}
