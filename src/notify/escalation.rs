//! Notify, escalation: who hears about a finding at its level (the head, then
//! chain roles), and whether that level's cadence sends a digest on a given day.

use chrono::{Datelike, Days, NaiveDate, Weekday};

use crate::calendar::Calendar;
use crate::config::{Cadence, Level, Office, Person};

/// Whether a level's digest goes out on `date` (a business day: the notify job runs on no
/// other). A weekly level goes out once in every week (Monday to Sunday) that has a business
/// day: on its weekday, or when that is a holiday the first business day after it in the
/// week, or when there is none, the last one before it, so a holiday Monday never silences
/// a week.
pub fn due_on(level: &Level, date: NaiveDate, calendar: &Calendar) -> bool {
    match level.cadence {
        Cadence::Daily => true,
        Cadence::Weekly(day) => weekly_day(day, date, calendar) == Some(date),
    }
}

/// The business day of `date`'s week on which a level weekly on `day` goes out.
fn weekly_day(day: Weekday, date: NaiveDate, calendar: &Calendar) -> Option<NaiveDate> {
    let monday = date - Days::new(u64::from(date.weekday().num_days_from_monday()));
    let week: Vec<NaiveDate> = (0..7).map(|i| monday + Days::new(i)).collect();
    let at = day.num_days_from_monday() as usize;
    let business = |d: &&NaiveDate| calendar.is_business_day(**d);
    week[at..].iter().find(business).or_else(|| week[..at].iter().rev().find(business)).copied()
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

    fn weekly(day: Weekday) -> Level {
        Level {
            name: "aviso".into(),
            max_business_days_left: 30,
            notify: vec!["head".into()],
            cadence: Cadence::Weekly(day),
        }
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_weekly_level_is_due_on_its_weekday_or_the_next_business_day_of_that_week() {
        let cal = crate::config::Settings::defaults().calendar;
        let monday = weekly(Weekday::Mon);
        assert!(due_on(&monday, date("2026-11-23"), &cal));
        assert!(!due_on(&monday, date("2026-11-24"), &cal));
        // Monday 23 March 2026 is a holiday (San José, moved): Tuesday instead.
        assert!(!due_on(&monday, date("2026-03-23"), &cal));
        assert!(due_on(&monday, date("2026-03-24"), &cal));
        assert!(!due_on(&monday, date("2026-03-25"), &cal));
        // A Friday level whose Friday is a holiday (Good Friday, 3 April 2026) and nothing
        // after it in the week: the Wednesday before.
        let friday = weekly(Weekday::Fri);
        assert!(due_on(&friday, date("2026-04-01"), &cal));
        assert!(!due_on(&friday, date("2026-04-03"), &cal));
    }

    #[test]
    fn every_week_of_2026_to_2028_with_a_business_day_has_exactly_one_weekly_day() {
        let cal = crate::config::Settings::defaults().calendar;
        for day in [Weekday::Mon, Weekday::Wed, Weekday::Fri] {
            let level = weekly(day);
            let mut monday = date("2025-12-29");
            while monday < date("2029-01-01") {
                let week: Vec<NaiveDate> = (0..7).map(|i| monday + Days::new(i)).collect();
                let business = week.iter().filter(|d| cal.is_business_day(**d)).count();
                let due = week
                    .iter()
                    .filter(|d| cal.is_business_day(**d) && due_on(&level, **d, &cal))
                    .count();
                assert_eq!(due, usize::from(business > 0), "{day:?}, week of {monday}");
                monday = monday + Days::new(7);
            }
        }
    }
}
