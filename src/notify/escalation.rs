//! Notify, escalation: who hears about a finding at its level (the head, then
//! chain roles), and whether that level's cadence sends a digest on a given day.

use chrono::{Datelike, NaiveDate};

use crate::config::{Cadence, Level, Office, Person};

/// Whether a level's digest goes out on `date`.
pub fn due_on(level: &Level, date: NaiveDate) -> bool {
    match level.cadence {
        Cadence::Daily => true,
        Cadence::Weekly(day) => date.weekday() == day,
    }
}

/// The people of `office` a finding at `level` reaches, in the order of the level's roles.
pub fn recipients<'a>(level: &Level, office: &'a Office) -> Vec<&'a Person> {
    let mut people: Vec<&Person> = Vec::new();
    for role in &level.notify {
        for p in office.holders(role) {
            if !people.iter().any(|q| q.email == p.email) {
                people.push(p);
            }
        }
    }
    people
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChainMember;

    fn person(email: &str) -> Person {
        Person { name: email.into(), email: email.parse().unwrap() }
    }

    #[test]
    fn urgent_reaches_the_head_and_the_director_but_not_control_interno() {
        let office = Office {
            id: "o".into(),
            name: "Oficina".into(),
            head: person("jefe@example.gov.co"),
            chain: vec![
                ChainMember { role: "director".into(), person: person("dir@example.gov.co") },
                ChainMember { role: "control_interno".into(), person: person("ci@example.gov.co") },
            ],
        };
        let level = Level {
            name: "urgente".into(),
            max_business_days_left: 10,
            notify: vec!["head".into(), "director".into()],
            cadence: Cadence::Daily,
        };
        let to: Vec<String> =
            recipients(&level, &office).iter().map(|p| p.email.to_string()).collect();
        assert_eq!(to, ["jefe@example.gov.co", "dir@example.gov.co"]);
    }

    #[test]
    fn a_weekly_level_is_due_only_on_its_weekday() {
        let level = Level {
            name: "aviso".into(),
            max_business_days_left: 30,
            notify: vec!["head".into()],
            cadence: Cadence::Weekly(chrono::Weekday::Mon),
        };
        assert!(due_on(&level, NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()));
        assert!(!due_on(&level, NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()));
    }
}
