//! Calendar: Colombian holidays by law and business-day arithmetic; the rules stage computes every deadline with it.
//!
//! Two legal sources shape every computation here:
//!
//! - **Ley 4 de 1913, art. 62** (Código de Régimen Político y Municipal): terms in *days* skip
//!   holidays and non-working days; terms in *months* and *years* follow the calendar, and when
//!   the last day is not a business day the term extends to the next business day.
//! - **Ley 51 de 1983** ("Ley Emiliani"): the list of national holidays, several of which move to
//!   the following Monday. The list lives in [`HOLIDAY_RULES`] as data, so a new law is one more
//!   line in that table.
//!
//! The calendar works on [`NaiveDate`] only. Colombia (America/Bogota) is a fixed UTC−5 with no
//! daylight saving, so callers convert instants to local dates once and never need a timezone
//! here.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};

/// How a [`HolidayRule`] places its date in a given year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Always on this calendar date, whatever the weekday (e.g. 20 de julio).
    Fixed {
        /// Month, 1–12.
        month: u32,
        /// Day of the month, 1–31.
        day: u32,
    },
    /// On this date if it is a Monday, otherwise on the following Monday (Ley 51 de 1983).
    Emiliani {
        /// Month, 1–12.
        month: u32,
        /// Day of the month, 1–31.
        day: u32,
    },
    /// A fixed number of days from Easter Sunday, never moved (Jueves y Viernes Santo).
    Easter {
        /// Days from Easter Sunday; negative is before Easter.
        offset: i64,
    },
    /// A movable feast `offset` days from Easter Sunday, then moved to the following Monday
    /// unless it already is one (Ascensión, Corpus Christi, Sagrado Corazón).
    EasterEmiliani {
        /// Days from Easter Sunday to the liturgical feast (e.g. 39 for Ascension Thursday).
        offset: i64,
    },
}

/// One national holiday as a law defines it (built in, or added in `daemon.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HolidayRule {
    /// Legal name in Spanish.
    pub name: Cow<'static, str>,
    /// The law that establishes (or moves) the holiday.
    pub law: Cow<'static, str>,
    /// Where the holiday falls each year.
    pub kind: RuleKind,
    /// First year the rule applies; `None` means every year the calendar is asked about.
    pub since: Option<i32>,
    /// Last year the rule applies (for a holiday a later law abolishes); `None` means no end.
    pub until: Option<i32>,
}

impl HolidayRule {
    /// Whether the rule is in force for `year`.
    pub fn applies_in(&self, year: i32) -> bool {
        self.since.is_none_or(|since| year >= since) && self.until.is_none_or(|until| year <= until)
    }

    /// The date this rule yields for `year`, or `None` when the rule is not in force that year
    /// or the date is outside chrono's range.
    ///
    /// The result may fall in another year for a rule close to New Year (an Emiliani move of a
    /// late-December date); [`Calendar::holidays`] accounts for that.
    pub fn date_in(&self, year: i32) -> Option<NaiveDate> {
        if !self.applies_in(year) {
            return None;
        }
        match self.kind {
            RuleKind::Fixed { month, day } => NaiveDate::from_ymd_opt(year, month, day),
            RuleKind::Emiliani { month, day } => {
                NaiveDate::from_ymd_opt(year, month, day).and_then(next_monday_on_or_after)
            }
            RuleKind::Easter { offset } => {
                easter_sunday_opt(year).and_then(|e| shift_opt(e, offset))
            }
            RuleKind::EasterEmiliani { offset } => easter_sunday_opt(year)
                .and_then(|e| shift_opt(e, offset))
                .and_then(next_monday_on_or_after),
        }
    }
}

const LEY_51_1983: &str = "Ley 51 de 1983, art. 1";

/// Shorthand for the rules of Ley 51 de 1983, in force for every year we compute.
///
/// The pre-1984 regime (holidays on their liturgical day, no Monday moves) is deliberately not
/// modelled: no deadline the daemon computes starts before the law.
const fn ley_51(name: &'static str, kind: RuleKind) -> HolidayRule {
    HolidayRule {
        name: Cow::Borrowed(name),
        law: Cow::Borrowed(LEY_51_1983),
        kind,
        since: None,
        until: None,
    }
}

/// National holidays of Colombia, in the order Ley 51 de 1983 art. 1 lists them, then those
/// later laws created.
///
/// To add a holiday created by a new law, append one line, e.g.
/// `HolidayRule { name: Cow::Borrowed("…"), law: Cow::Borrowed("Ley N de 20XX"), kind:
/// RuleKind::Fixed { month: 9, day: 1 }, since: Some(20XX), until: None }`; `since` keeps
/// deadlines computed for earlier years intact. Until a release carries it, administrators
/// add it in `daemon.toml` (`[[calendar.holidays]]`), or end one (`[[calendar.removed_holidays]]`).
pub const HOLIDAY_RULES: &[HolidayRule] = &[
    ley_51("Año Nuevo", RuleKind::Fixed { month: 1, day: 1 }),
    ley_51("Día de los Reyes Magos", RuleKind::Emiliani { month: 1, day: 6 }),
    ley_51("Día de San José", RuleKind::Emiliani { month: 3, day: 19 }),
    ley_51("Jueves Santo", RuleKind::Easter { offset: -3 }),
    ley_51("Viernes Santo", RuleKind::Easter { offset: -2 }),
    ley_51("Día del Trabajo", RuleKind::Fixed { month: 5, day: 1 }),
    // Ascension Thursday is Easter + 39; moved to the next Monday it is always Easter + 43.
    ley_51("Ascensión del Señor", RuleKind::EasterEmiliani { offset: 39 }),
    // Corpus Christi Thursday is Easter + 60 → Monday Easter + 64.
    ley_51("Corpus Christi", RuleKind::EasterEmiliani { offset: 60 }),
    // Sacred Heart Friday is Easter + 68 → Monday Easter + 71.
    ley_51("Sagrado Corazón de Jesús", RuleKind::EasterEmiliani { offset: 68 }),
    ley_51("San Pedro y San Pablo", RuleKind::Emiliani { month: 6, day: 29 }),
    ley_51("Día de la Independencia", RuleKind::Fixed { month: 7, day: 20 }),
    ley_51("Batalla de Boyacá", RuleKind::Fixed { month: 8, day: 7 }),
    ley_51("Asunción de la Virgen", RuleKind::Emiliani { month: 8, day: 15 }),
    ley_51("Día de la Raza", RuleKind::Emiliani { month: 10, day: 12 }),
    ley_51("Todos los Santos", RuleKind::Emiliani { month: 11, day: 1 }),
    ley_51("Independencia de Cartagena", RuleKind::Emiliani { month: 11, day: 11 }),
    ley_51("Inmaculada Concepción", RuleKind::Fixed { month: 12, day: 8 }),
    ley_51("Navidad", RuleKind::Fixed { month: 12, day: 25 }),
    // 9 July, moved to the following Monday as Ley 51 de 1983 moves its holidays.
    HolidayRule {
        name: Cow::Borrowed("Día de Nuestra Señora del Rosario de Chiquinquirá"),
        law: Cow::Borrowed("Ley 2578 de 2026"),
        kind: RuleKind::Emiliani { month: 7, day: 9 },
        since: Some(2026),
        until: None,
    },
];

/// Easter Sunday of `year` (Gregorian calendar), by the anonymous Gregorian computus
/// (Meeus/Jones/Butcher).
///
/// # Panics
///
/// If the date is outside chrono's supported range (years beyond about ±262 000).
pub fn easter_sunday(year: i32) -> NaiveDate {
    easter_sunday_opt(year).expect("year outside chrono's supported range")
}

/// [`easter_sunday`] without the panic: `None` outside chrono's range.
pub fn easter_sunday_opt(year: i32) -> Option<NaiveDate> {
    // Euclidean division keeps every intermediate non-negative, so the formula never panics;
    // the computus is only meaningful for Gregorian years (1583 onwards) anyway.
    let y = i64::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// Parses a weekday name in English or Spanish, short or long, case-insensitively, with or
/// without accents or a trailing dot: `mon`, `Monday`, `lun`, `lunes`, `mié`, `miercoles`,
/// `sáb`, `Sábado`, …
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    // Fold accents by hand (Spanish only needs á and é here) and drop a combining acute accent,
    // so both precomposed (NFC) and decomposed (NFD) spellings of "sábado" are accepted.
    let folded: String = s
        .trim()
        .trim_end_matches('.')
        .to_lowercase()
        .chars()
        .filter(|&c| c != '\u{301}')
        .map(|c| match c {
            'á' => 'a',
            'é' => 'e',
            other => other,
        })
        .collect();
    let weekday = match folded.as_str() {
        "mon" | "monday" | "lun" | "lunes" => Weekday::Mon,
        "tue" | "tues" | "tuesday" | "mar" | "martes" => Weekday::Tue,
        "wed" | "wednesday" | "mie" | "miercoles" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" | "jue" | "jueves" => Weekday::Thu,
        "fri" | "friday" | "vie" | "viernes" => Weekday::Fri,
        "sat" | "saturday" | "sab" | "sabado" => Weekday::Sat,
        "sun" | "sunday" | "dom" | "domingo" => Weekday::Sun,
        _ => return None,
    };
    Some(weekday)
}

/// Why a [`Calendar`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarError {
    /// No working weekday was given: no date could ever be a business day, so every deadline
    /// computation would loop forever.
    NoWorkingDays,
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalendarError::NoWorkingDays => {
                f.write_str("a calendar needs at least one working weekday")
            }
        }
    }
}

impl std::error::Error for CalendarError {}

/// An entity's legal calendar: which weekdays it works, the national holidays, and its own
/// extra non-working dates (e.g. a local holiday or a declared closure).
///
/// Cheap to clone; the national holiday table is computed once per set of rules and shared.
#[derive(Clone)]
pub struct Calendar {
    /// Indexed by `Weekday::num_days_from_monday()`.
    working: [bool; 7],
    /// Number of `true` entries in `working`; always ≥ 1.
    working_per_week: i64,
    extra_non_working: BTreeSet<NaiveDate>,
    national: Arc<National>,
}

impl PartialEq for Calendar {
    fn eq(&self, other: &Calendar) -> bool {
        self.working == other.working
            && self.extra_non_working == other.extra_non_working
            && self.national.rules == other.national.rules
    }
}

impl Eq for Calendar {}

/// The national holiday rules a calendar follows, with their dates computed once per year.
struct National {
    rules: Vec<HolidayRule>,
    cache: OnceLock<Vec<YearHolidays>>,
}

impl National {
    fn new(rules: Vec<HolidayRule>) -> National {
        National { rules, cache: OnceLock::new() }
    }

    /// The built-in rules, shared by every calendar that adds or removes none.
    fn builtin() -> Arc<National> {
        static BUILTIN: OnceLock<Arc<National>> = OnceLock::new();
        BUILTIN.get_or_init(|| Arc::new(National::new(HOLIDAY_RULES.to_vec()))).clone()
    }

    fn cached_year(&self, year: i32) -> Option<&YearHolidays> {
        if !(CACHE_FIRST_YEAR..=CACHE_LAST_YEAR).contains(&year) {
            return None;
        }
        let table = self.cache.get_or_init(|| {
            (CACHE_FIRST_YEAR..=CACHE_LAST_YEAR)
                .map(|y| YearHolidays::new(compute_holidays(&self.rules, y)))
                .collect()
        });
        table.get((year - CACHE_FIRST_YEAR) as usize)
    }

    fn holidays(&self, year: i32) -> Cow<'_, [NaiveDate]> {
        match self.cached_year(year) {
            Some(cached) => Cow::Borrowed(&cached.dates),
            None => Cow::Owned(compute_holidays(&self.rules, year)),
        }
    }

    fn is_holiday(&self, date: NaiveDate) -> bool {
        match self.cached_year(date.year()) {
            Some(cached) => cached.contains(date),
            None => compute_holidays(&self.rules, date.year()).contains(&date),
        }
    }
}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calendar")
            .field("working_days", &self.working_days())
            .field("extra_non_working", &self.extra_non_working)
            .finish()
    }
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar::colombia()
    }
}

const ALL_WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

impl Calendar {
    /// A calendar working on `working_days` (duplicates are harmless) with additional
    /// non-working dates on top of the national holidays.
    ///
    /// # Panics
    ///
    /// If `working_days` is empty; use [`Calendar::try_new`] for configuration input.
    pub fn new(working_days: Vec<Weekday>, extra_non_working: Vec<NaiveDate>) -> Calendar {
        match Calendar::try_new(working_days, extra_non_working) {
            Ok(calendar) => calendar,
            Err(err) => panic!("{err}"),
        }
    }

    /// Like [`Calendar::new`], but rejects an empty set of working weekdays with an error.
    pub fn try_new(
        working_days: Vec<Weekday>,
        extra_non_working: Vec<NaiveDate>,
    ) -> Result<Calendar, CalendarError> {
        let mut working = [false; 7];
        for day in working_days {
            working[day.num_days_from_monday() as usize] = true;
        }
        let working_per_week = working.iter().filter(|&&w| w).count() as i64;
        if working_per_week == 0 {
            return Err(CalendarError::NoWorkingDays);
        }
        Ok(Calendar {
            working,
            working_per_week,
            extra_non_working: extra_non_working.into_iter().collect(),
            national: National::builtin(),
        })
    }

    /// The same calendar following `rules` as the national holidays instead of the built-in
    /// ones (the built-in rules with those `daemon.toml` adds, and ends, applied).
    pub fn with_rules(mut self, rules: Vec<HolidayRule>) -> Calendar {
        if rules != self.national.rules {
            self.national = Arc::new(National::new(rules));
        }
        self
    }

    /// The national holiday rules this calendar follows.
    pub fn rules(&self) -> &[HolidayRule] {
        &self.national.rules
    }

    /// The national calendar: Monday to Friday, national holidays only.
    pub fn colombia() -> Calendar {
        Calendar::new(ALL_WEEKDAYS[..5].to_vec(), Vec::new())
    }

    /// The working weekdays, Monday first.
    pub fn working_days(&self) -> Vec<Weekday> {
        ALL_WEEKDAYS.into_iter().filter(|&d| self.is_working_weekday(d)).collect()
    }

    /// The entity's extra non-working dates, in order.
    pub fn extra_non_working(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.extra_non_working.iter().copied()
    }

    /// Whether `weekday` is a working weekday for this entity (ignoring holidays).
    pub fn is_working_weekday(&self, weekday: Weekday) -> bool {
        self.working[weekday.num_days_from_monday() as usize]
    }

    /// National holidays by law for `year`, sorted and deduplicated (two rules can land on the
    /// same Monday, e.g. 2025-06-30). Does not include the entity's extra non-working dates.
    pub fn holidays(&self, year: i32) -> Vec<NaiveDate> {
        self.national.holidays(year).into_owned()
    }

    /// The legal name of the national holiday on `date`, if any. When two rules share the date
    /// the first in rule order wins; [`Calendar::holiday_rules_on`] returns all.
    pub fn holiday_name(&self, date: NaiveDate) -> Option<&str> {
        self.holiday_rules_on(date).into_iter().next().map(|r| r.name.as_ref())
    }

    /// The legal names of every national holiday on `date`, in rule order.
    pub fn holiday_names(&self, date: NaiveDate) -> Vec<&str> {
        self.holiday_rules_on(date).into_iter().map(|r| r.name.as_ref()).collect()
    }

    /// Every national holiday rule that falls on `date`, in rule order (built-in first).
    pub fn holiday_rules_on(&self, date: NaiveDate) -> Vec<&HolidayRule> {
        // A rule evaluated for the neighbouring year can land on `date` (see `date_in`).
        let year = date.year();
        self.national
            .rules
            .iter()
            .filter(|rule| {
                [year.checked_sub(1), Some(year), year.checked_add(1)]
                    .into_iter()
                    .flatten()
                    .any(|y| rule.date_in(y) == Some(date))
            })
            .collect()
    }

    /// Whether `date` is a national holiday (extra non-working dates are not holidays).
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.national.is_holiday(date)
    }

    /// Whether `date` is a business day: a working weekday, not a national holiday and not one
    /// of the entity's extra non-working dates.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        self.is_working_weekday(date.weekday())
            && (self.extra_non_working.is_empty() || !self.extra_non_working.contains(&date))
            && !self.national.is_holiday(date)
    }

    /// Number of business days in the half-open range (from, to]: the start never counts, the
    /// end does. Negative when `to < from`, namely -(count in (to, from]); 0 when equal.
    pub fn business_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        use std::cmp::Ordering;
        match from.cmp(&to) {
            Ordering::Equal => 0,
            Ordering::Less => self.count_inclusive(succ(from), to),
            Ordering::Greater => -self.count_inclusive(succ(to), from),
        }
    }

    /// The date `n` business days after `date`: for `n > 0` the n-th business day strictly
    /// after `date` (the start date itself never counts, even when it is a business day); for
    /// `n < 0` the |n|-th business day strictly before it; for `n == 0` `date` itself, even when
    /// it is not a business day.
    ///
    /// Forward, this is the inverse of [`Calendar::business_days_between`]: for `n > 0`,
    /// `business_days_between(d, add_business_days(d, n)) == n`, and the result is the earliest
    /// such date (so it is always a business day).
    ///
    /// Backward is not an exact inverse because the start date never counts:
    /// `add_business_days(add_business_days(d, n), -n)` is the last business day on or before
    /// `d`, and `add_business_days(add_business_days(d, -n), n)` is the first business day on or
    /// after `d`.
    ///
    /// # Panics
    ///
    /// If the result would leave chrono's date range.
    pub fn add_business_days(&self, date: NaiveDate, n: i64) -> NaiveDate {
        if n == 0 {
            return date;
        }
        let forward = n > 0;
        let mut remaining = n.unsigned_abs();
        let per_week = self.working_per_week as u64;
        let mut cur = date;
        // Jump whole weeks while far from the target: a week holds at most `per_week` business
        // days, so jumping `(remaining - 1) / per_week` weeks can never overshoot and leaves at
        // least one business day to find by stepping (which lands exactly on a business day).
        // Holidays and extra dates inside the jump are then subtracted by counting.
        // Invariant: business days in (date, cur] (forward) or [cur, date) (backward) are
        // n.abs() - remaining.
        loop {
            // Capped so `7 * weeks` cannot overflow; the shift panics long before that anyway.
            let weeks = ((remaining - 1) / per_week).min(1 << 40);
            if weeks < 2 {
                break;
            }
            let span = 7 * weeks as i64;
            let got = if forward {
                let next = shift(cur, span);
                let got = self.count_inclusive(succ(cur), next);
                cur = next;
                got
            } else {
                let prev = shift(cur, -span);
                let got = self.count_inclusive(prev, pred(cur));
                cur = prev;
                got
            };
            remaining -= got as u64;
        }
        while remaining > 0 {
            cur = if forward { succ(cur) } else { pred(cur) };
            if self.is_business_day(cur) {
                remaining -= 1;
            }
        }
        cur
    }

    /// `date` itself if it is a business day, otherwise the first business day after it.
    pub fn next_business_day_on_or_after(&self, date: NaiveDate) -> NaiveDate {
        let mut cur = date;
        while !self.is_business_day(cur) {
            cur = succ(cur);
        }
        cur
    }

    /// `date` itself if it is a business day, otherwise the last business day before it.
    pub fn previous_business_day_on_or_before(&self, date: NaiveDate) -> NaiveDate {
        let mut cur = date;
        while !self.is_business_day(cur) {
            cur = pred(cur);
        }
        cur
    }

    /// Month term per Ley 4 de 1913: `date` + `months` calendar months with end-of-month
    /// clamping, then moved to the next business day if it lands on a non-business day.
    /// `months == 0` just moves `date` to the next business day on or after it.
    ///
    /// # Panics
    ///
    /// If the result would leave chrono's date range.
    pub fn add_months(&self, date: NaiveDate, months: u32) -> NaiveDate {
        // chrono clamps to the last day of the target month (Jan 31 + 1 month = Feb 28/29),
        // which is how Colombian practice reads "vence el mismo día del mes" for short months.
        let end = date
            .checked_add_months(Months::new(months))
            .expect("date arithmetic left chrono's supported range");
        self.next_business_day_on_or_after(end)
    }

    /// Year term per Ley 4 de 1913, same rule as [`Calendar::add_months`]: Feb 29 + 1 year is
    /// Feb 28, then moved to the next business day if needed.
    ///
    /// # Panics
    ///
    /// If the result would leave chrono's date range.
    pub fn add_years(&self, date: NaiveDate, years: u32) -> NaiveDate {
        let months = years.checked_mul(12).expect("date arithmetic left chrono's supported range");
        self.add_months(date, months)
    }

    /// Business days in the closed range [a, b]; 0 when a > b.
    ///
    /// Counts working weekdays arithmetically (whole weeks plus a remainder), then subtracts the
    /// holidays and extra dates that fall on working weekdays, so a 20-year range costs about
    /// 20 × 18 holiday checks instead of 7 300 day checks.
    fn count_inclusive(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        if a > b {
            return 0;
        }
        let days = (b - a).num_days() + 1;
        let start = i64::from(a.weekday().num_days_from_monday());
        let mut count = days / 7 * self.working_per_week;
        for i in 0..days % 7 {
            if self.working[((start + i) % 7) as usize] {
                count += 1;
            }
        }
        for year in a.year()..=b.year() {
            for &h in self.national.holidays(year).iter() {
                if h >= a && h <= b && self.is_working_weekday(h.weekday()) {
                    count -= 1;
                }
            }
        }
        // Extra dates that are also holidays were already subtracted above.
        for &e in self.extra_non_working.range(a..=b) {
            if self.is_working_weekday(e.weekday()) && !self.national.is_holiday(e) {
                count -= 1;
            }
        }
        count
    }
}

/// Years whose holidays are precomputed once per set of rules; others are computed on demand.
const CACHE_FIRST_YEAR: i32 = 1900;
const CACHE_LAST_YEAR: i32 = 2200;

/// One year's national holidays, as a sorted list and as a bitset by day of the year so the
/// per-day check in tight loops is a shift and a mask.
struct YearHolidays {
    dates: Vec<NaiveDate>,
    bits: [u64; 6],
}

impl YearHolidays {
    fn new(dates: Vec<NaiveDate>) -> YearHolidays {
        let mut bits = [0u64; 6];
        for d in &dates {
            let ord = d.ordinal0() as usize;
            bits[ord / 64] |= 1 << (ord % 64);
        }
        YearHolidays { dates, bits }
    }

    fn contains(&self, date: NaiveDate) -> bool {
        let ord = date.ordinal0() as usize;
        self.bits[ord / 64] & (1 << (ord % 64)) != 0
    }
}

/// The holidays of `rules` falling in `year`, sorted and deduplicated.
fn compute_holidays(rules: &[HolidayRule], year: i32) -> Vec<NaiveDate> {
    // Rules are evaluated for the neighbouring years too, so a rule whose date crosses New Year
    // (none does today) is attributed to the year the date actually falls in.
    let mut dates: Vec<NaiveDate> = [year.checked_sub(1), Some(year), year.checked_add(1)]
        .into_iter()
        .flatten()
        .flat_map(|y| rules.iter().filter_map(move |rule| rule.date_in(y)))
        .filter(|d| d.year() == year)
        .collect();
    dates.sort_unstable();
    dates.dedup();
    dates
}

fn next_monday_on_or_after(date: NaiveDate) -> Option<NaiveDate> {
    let ahead = (7 - i64::from(date.weekday().num_days_from_monday())) % 7;
    shift_opt(date, ahead)
}

fn shift_opt(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    if days >= 0 {
        date.checked_add_days(Days::new(days.unsigned_abs()))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    }
}

fn shift(date: NaiveDate, days: i64) -> NaiveDate {
    shift_opt(date, days).expect("date arithmetic left chrono's supported range")
}

fn succ(date: NaiveDate) -> NaiveDate {
    date.succ_opt().expect("date arithmetic left chrono's supported range")
}

fn pred(date: NaiveDate) -> NaiveDate {
    date.pred_opt().expect("date arithmetic left chrono's supported range")
}

/// What a finding's days left are counted with.
impl crate::domain::BusinessDays for Calendar {
    fn business_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        Calendar::business_days_between(self, from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn list(year: i32, month_days: &[(u32, u32)]) -> Vec<NaiveDate> {
        month_days.iter().map(|&(m, day)| d(year, m, day)).collect()
    }

    fn mon_to_sat() -> Calendar {
        use Weekday::*;
        Calendar::new(vec![Mon, Tue, Wed, Thu, Fri, Sat], Vec::new())
    }

    // Published lists (festivos oficiales de Colombia), written independently of the rules.

    #[test]
    fn holidays_2023_match_the_published_list() {
        let published = list(
            2023,
            &[
                (1, 1),
                (1, 9),
                (3, 20),
                (4, 6),
                (4, 7),
                (5, 1),
                (5, 22),
                (6, 12),
                (6, 19),
                (7, 3),
                (7, 20),
                (8, 7),
                (8, 21),
                (10, 16),
                (11, 6),
                (11, 13),
                (12, 8),
                (12, 25),
            ],
        );
        assert_eq!(Calendar::colombia().holidays(2023), published);
    }

    #[test]
    fn holidays_2024_match_the_published_list() {
        let published = list(
            2024,
            &[
                (1, 1),
                (1, 8),
                (3, 25),
                (3, 28),
                (3, 29),
                (5, 1),
                (5, 13),
                (6, 3),
                (6, 10),
                (7, 1),
                (7, 20),
                (8, 7),
                (8, 19),
                (10, 14),
                (11, 4),
                (11, 11),
                (12, 8),
                (12, 25),
            ],
        );
        assert_eq!(Calendar::colombia().holidays(2024), published);
    }

    #[test]
    fn holidays_2025_match_the_published_list_with_june_30_counted_once() {
        // Sagrado Corazón and San Pedro y San Pablo both fall on Monday 30 June 2025.
        let published = list(
            2025,
            &[
                (1, 1),
                (1, 6),
                (3, 24),
                (4, 17),
                (4, 18),
                (5, 1),
                (6, 2),
                (6, 23),
                (6, 30),
                (7, 20),
                (8, 7),
                (8, 18),
                (10, 13),
                (11, 3),
                (11, 17),
                (12, 8),
                (12, 25),
            ],
        );
        assert_eq!(Calendar::colombia().holidays(2025), published);
    }

    #[test]
    fn holidays_2026_match_the_published_list() {
        let published = list(
            2026,
            &[
                (1, 1),
                (1, 12),
                (3, 23),
                (4, 2),
                (4, 3),
                (5, 1),
                (5, 18),
                (6, 8),
                (6, 15),
                (6, 29),
                // Ley 2578 de 2026: 9 July, a Thursday, moved to Monday.
                (7, 13),
                (7, 20),
                (8, 7),
                (8, 17),
                (10, 12),
                (11, 2),
                (11, 16),
                (12, 8),
                (12, 25),
            ],
        );
        assert_eq!(Calendar::colombia().holidays(2026), published);
    }

    #[test]
    fn holidays_2027_match_the_published_list() {
        let published = list(
            2027,
            &[
                (1, 1),
                (1, 11),
                (3, 22),
                (3, 25),
                (3, 26),
                (5, 1),
                (5, 10),
                (5, 31),
                (6, 7),
                (7, 5),
                // Ley 2578 de 2026: 9 July, a Friday, moved to Monday.
                (7, 12),
                (7, 20),
                (8, 7),
                (8, 16),
                (10, 18),
                (11, 1),
                (11, 15),
                (12, 8),
                (12, 25),
            ],
        );
        assert_eq!(Calendar::colombia().holidays(2027), published);
    }

    #[test]
    fn good_friday_2024_is_a_holiday() {
        let cal = Calendar::colombia();
        assert!(cal.is_holiday(d(2024, 3, 29)));
        assert_eq!(cal.holiday_name(d(2024, 3, 29)), Some("Viernes Santo"));
        assert!(!cal.is_business_day(d(2024, 3, 29)));
    }

    #[test]
    fn a_shared_monday_reports_both_holiday_names() {
        let cal = Calendar::colombia();
        assert_eq!(
            cal.holiday_names(d(2025, 6, 30)),
            vec!["Sagrado Corazón de Jesús", "San Pedro y San Pablo"]
        );
        assert_eq!(cal.holiday_name(d(2025, 6, 30)), Some("Sagrado Corazón de Jesús"));
        assert_eq!(cal.holiday_name(d(2025, 7, 1)), None);
    }

    #[test]
    fn a_weekday_holiday_moved_by_emiliani_is_not_a_holiday_on_its_original_date() {
        let cal = Calendar::colombia();
        // 6 January 2026 is a Tuesday: the holiday is Monday 12 January.
        assert!(!cal.is_holiday(d(2026, 1, 6)));
        assert!(cal.is_business_day(d(2026, 1, 6)));
        assert_eq!(cal.holiday_name(d(2026, 1, 12)), Some("Día de los Reyes Magos"));
    }

    #[test]
    fn easter_based_mondays_are_easter_plus_43_64_and_71() {
        let cal = Calendar::colombia();
        for year in 1990..=2100 {
            let easter = easter_sunday(year);
            for (offset, name) in [
                (43, "Ascensión del Señor"),
                (64, "Corpus Christi"),
                (71, "Sagrado Corazón de Jesús"),
            ] {
                let date = shift(easter, offset);
                assert_eq!(date.weekday(), Weekday::Mon);
                assert!(cal.holiday_names(date).contains(&name), "{year}: {name} on {date}");
            }
        }
    }

    #[test]
    fn every_year_has_one_holiday_per_rule_in_force_and_moved_holidays_fall_on_monday() {
        let cal = Calendar::colombia();
        for year in 1984..=2100 {
            let holidays = cal.holidays(year);
            let names: usize = holidays.iter().map(|&h| cal.holiday_names(h).len()).sum();
            let in_force = HOLIDAY_RULES.iter().filter(|r| r.applies_in(year)).count();
            // Eighteen under Ley 51 de 1983; nineteen from 2026 (Ley 2578 de 2026).
            assert_eq!(names, if year >= 2026 { 19 } else { 18 }, "{year}");
            assert_eq!(names, in_force, "{year}");
            assert!(holidays.windows(2).all(|w| w[0] < w[1]), "{year} sorted and deduplicated");
            for rule in HOLIDAY_RULES.iter().filter(|r| r.applies_in(year)) {
                if matches!(rule.kind, RuleKind::Emiliani { .. } | RuleKind::EasterEmiliani { .. })
                {
                    assert_eq!(rule.date_in(year).unwrap().weekday(), Weekday::Mon);
                }
            }
        }
    }

    #[test]
    fn holidays_added_and_ended_by_configuration_change_the_business_days() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let mut rules = HOLIDAY_RULES.to_vec();
        // A new holiday from 2027 on (Tuesday 1 September 2027), and Día de la Raza ended
        // after 2027.
        rules.push(HolidayRule {
            name: "Día nuevo".into(),
            law: "Ley 9999 de 2027".into(),
            kind: RuleKind::Fixed { month: 9, day: 1 },
            since: Some(2027),
            until: None,
        });
        let raza = rules.iter_mut().find(|r| r.name == "Día de la Raza").unwrap();
        raza.until = Some(2027);
        let national = Calendar::colombia();
        let cal = Calendar::colombia().with_rules(rules);
        assert!(cal.is_holiday(d(2027, 9, 1)) && !national.is_holiday(d(2027, 9, 1)));
        assert!(!cal.is_holiday(d(2026, 9, 1)), "not before its first year");
        assert_eq!(cal.holiday_rules_on(d(2027, 9, 1))[0].law, "Ley 9999 de 2027");
        let sept = |c: &Calendar| c.business_days_between(d(2027, 8, 31), d(2027, 9, 30));
        assert_eq!(sept(&cal), sept(&national) - 1);
        // Día de la Raza: Monday 18 October 2027 still, Monday 16 October 2028 no more.
        assert!(cal.is_holiday(d(2027, 10, 18)));
        assert!(national.is_holiday(d(2028, 10, 16)) && !cal.is_holiday(d(2028, 10, 16)));
        // 2028: one holiday more (Friday 1 September), one fewer (Día de la Raza).
        assert_eq!(cal.holidays(2028).len(), national.holidays(2028).len());
        assert!(cal.holidays(2028).contains(&d(2028, 9, 1)));
        assert_ne!(cal, national);
        assert_eq!(Calendar::colombia().with_rules(HOLIDAY_RULES.to_vec()), national);
    }

    #[test]
    fn july_2026_has_one_business_day_fewer_under_ley_2578() {
        let cal = Calendar::colombia();
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        assert_eq!(
            cal.holiday_name(d(7, 13)),
            Some("Día de Nuestra Señora del Rosario de Chiquinquirá")
        );
        // (1 July, 31 July]: 22 weekdays, less 13 and 20 July (21 before the law).
        assert_eq!(cal.business_days_between(d(7, 1), d(7, 31)), 20);
        assert!(cal.holidays(2025).iter().all(|h| h.month() != 7 || h.day() == 20));
    }

    #[test]
    fn cached_and_computed_holidays_agree() {
        let national = National::builtin();
        for year in [CACHE_FIRST_YEAR, 2000, 2024, CACHE_LAST_YEAR] {
            assert_eq!(
                national.cached_year(year).unwrap().dates,
                compute_holidays(HOLIDAY_RULES, year)
            );
        }
        // Outside the cache the calendar still answers, by computing.
        let cal = Calendar::colombia();
        assert!(cal.is_holiday(d(2300, 7, 20)));
        assert_eq!(cal.holidays(2300).len(), compute_holidays(HOLIDAY_RULES, 2300).len());
    }

    #[test]
    fn holidays_do_not_include_extra_non_working_dates() {
        let cal = Calendar::new(vec![Weekday::Mon], vec![d(2024, 9, 2)]);
        assert!(!cal.holidays(2024).contains(&d(2024, 9, 2)));
        assert!(!cal.is_holiday(d(2024, 9, 2)));
        assert!(!cal.is_business_day(d(2024, 9, 2)));
    }

    #[test]
    fn easter_sundays_match_known_dates() {
        assert_eq!(easter_sunday(2000), d(2000, 4, 23));
        assert_eq!(easter_sunday(2019), d(2019, 4, 21));
        assert_eq!(easter_sunday(2023), d(2023, 4, 9));
        assert_eq!(easter_sunday(2024), d(2024, 3, 31));
        assert_eq!(easter_sunday(2025), d(2025, 4, 20));
        assert_eq!(easter_sunday(2026), d(2026, 4, 5));
        assert_eq!(easter_sunday(2027), d(2027, 3, 28));
        assert_eq!(easter_sunday(2038), d(2038, 4, 25)); // latest possible date
        assert_eq!(easter_sunday(2285), d(2285, 3, 22)); // earliest possible date
    }

    #[test]
    fn business_days_between_is_half_open() {
        let cal = Calendar::colombia();
        // (Mon 2024-02-05, Fri 2024-02-09]: Tue..Fri = 4; the start never counts, the end does.
        assert_eq!(cal.business_days_between(d(2024, 2, 5), d(2024, 2, 9)), 4);
        assert_eq!(cal.business_days_between(d(2024, 2, 5), d(2024, 2, 6)), 1);
        // Ending on a Saturday adds nothing.
        assert_eq!(cal.business_days_between(d(2024, 2, 9), d(2024, 2, 10)), 0);
    }

    #[test]
    fn business_days_between_skips_holy_week() {
        let cal = Calendar::colombia();
        // (Fri 22 Mar, Fri 5 Apr 2024]: San José (25), Jueves and Viernes Santo (28, 29) are
        // holidays; Tue 26, Wed 27 and Mon 1 – Fri 5 April remain.
        assert_eq!(cal.business_days_between(d(2024, 3, 22), d(2024, 4, 5)), 7);
    }

    #[test]
    fn business_days_between_equal_dates_is_zero_even_on_a_holiday() {
        let cal = Calendar::colombia();
        assert_eq!(cal.business_days_between(d(2024, 3, 28), d(2024, 3, 28)), 0);
        assert_eq!(cal.business_days_between(d(2024, 3, 27), d(2024, 3, 27)), 0);
    }

    #[test]
    fn business_days_between_a_reversed_range_is_negative() {
        let cal = Calendar::colombia();
        assert_eq!(cal.business_days_between(d(2024, 4, 5), d(2024, 3, 22)), -7);
        // -(count in (to, from]): (Tue 6 Feb, Wed 7 Feb] = 1.
        assert_eq!(cal.business_days_between(d(2024, 2, 7), d(2024, 2, 6)), -1);
    }

    #[test]
    fn saturday_counts_when_the_entity_works_saturdays() {
        // (Fri 1 Mar, Mon 4 Mar 2024]
        assert_eq!(Calendar::colombia().business_days_between(d(2024, 3, 1), d(2024, 3, 4)), 1);
        assert_eq!(mon_to_sat().business_days_between(d(2024, 3, 1), d(2024, 3, 4)), 2);
        assert!(mon_to_sat().is_business_day(d(2024, 3, 2)));
        assert!(!mon_to_sat().is_business_day(d(2024, 3, 3)));
    }

    #[test]
    fn a_holiday_on_a_working_saturday_is_not_a_business_day() {
        // Batalla de Boyacá, Saturday 7 August 2027, is fixed and does not move.
        let cal = mon_to_sat();
        assert!(!cal.is_business_day(d(2027, 8, 7)));
        // (Thu 5, Mon 9 Aug 2027]: Fri 6 and Mon 9; Sat 7 is a holiday.
        assert_eq!(cal.business_days_between(d(2027, 8, 5), d(2027, 8, 9)), 2);
    }

    #[test]
    fn extra_non_working_dates_are_skipped() {
        let cal = Calendar::new(
            ALL_WEEKDAYS[..5].to_vec(),
            // A weekday, a holiday and a Sunday: only the weekday changes the count.
            vec![d(2024, 3, 27), d(2024, 3, 28), d(2024, 3, 31)],
        );
        assert!(!cal.is_business_day(d(2024, 3, 27)));
        assert_eq!(cal.business_days_between(d(2024, 3, 22), d(2024, 4, 5)), 6);
        assert_eq!(cal.add_business_days(d(2024, 3, 26), 1), d(2024, 4, 1));
    }

    #[test]
    fn business_days_between_over_twenty_years_matches_day_by_day_counting() {
        let cal = mon_to_sat();
        let (from, to) = (d(2010, 5, 17), d(2031, 2, 3));
        let mut expected = 0;
        let mut cur = succ(from);
        while cur <= to {
            expected += i64::from(cal.is_business_day(cur));
            cur = succ(cur);
        }
        assert_eq!(cal.business_days_between(from, to), expected);
        assert_eq!(cal.business_days_between(to, from), -expected);
    }

    #[test]
    fn add_business_days_skips_weekends_and_holidays() {
        let cal = Calendar::colombia();
        // Wed 27 Mar 2024 + 1 → Thu and Fri are holidays, then the weekend: Mon 1 April.
        assert_eq!(cal.add_business_days(d(2024, 3, 27), 1), d(2024, 4, 1));
        // Ten business days from Fri 22 Mar 2024.
        assert_eq!(cal.add_business_days(d(2024, 3, 22), 10), d(2024, 4, 10));
    }

    #[test]
    fn add_business_days_from_a_holiday_or_weekend_counts_from_the_next_business_day() {
        let cal = Calendar::colombia();
        assert_eq!(cal.add_business_days(d(2024, 3, 28), 1), d(2024, 4, 1)); // Jueves Santo
        assert_eq!(cal.add_business_days(d(2024, 3, 30), 1), d(2024, 4, 1)); // Saturday
        // Sunday 24 March: Monday 25 is San José, so the first business day is Tuesday.
        assert_eq!(cal.add_business_days(d(2024, 3, 24), 1), d(2024, 3, 26));
        assert_eq!(cal.add_business_days(d(2024, 3, 24), 2), d(2024, 3, 27));
    }

    #[test]
    fn add_business_days_backwards_counts_strictly_before_the_date() {
        let cal = Calendar::colombia();
        assert_eq!(cal.add_business_days(d(2024, 4, 1), -1), d(2024, 3, 27));
        assert_eq!(cal.add_business_days(d(2024, 3, 31), -1), d(2024, 3, 27)); // from Easter Sunday
        assert_eq!(cal.add_business_days(d(2024, 4, 2), -3), d(2024, 3, 26));
    }

    #[test]
    fn add_zero_business_days_returns_the_date_itself() {
        let cal = Calendar::colombia();
        assert_eq!(cal.add_business_days(d(2024, 3, 29), 0), d(2024, 3, 29));
        assert_eq!(cal.add_business_days(d(2024, 3, 27), 0), d(2024, 3, 27));
    }

    #[test]
    fn add_business_days_over_long_spans_matches_stepping() {
        let cal = mon_to_sat();
        let start = d(2019, 12, 31);
        let mut cur = start;
        for n in 1..=3000 {
            cur = succ(cur);
            while !cal.is_business_day(cur) {
                cur = succ(cur);
            }
            if n % 97 == 0 || n == 3000 {
                assert_eq!(cal.add_business_days(start, n), cur, "n = {n}");
            }
        }
    }

    #[test]
    fn next_and_previous_business_day_skip_holidays_and_weekends() {
        let cal = Calendar::colombia();
        assert_eq!(cal.next_business_day_on_or_after(d(2024, 3, 28)), d(2024, 4, 1));
        assert_eq!(cal.next_business_day_on_or_after(d(2024, 4, 1)), d(2024, 4, 1));
        assert_eq!(cal.previous_business_day_on_or_before(d(2024, 3, 31)), d(2024, 3, 27));
    }

    #[test]
    fn january_31_plus_one_month_clamps_to_the_end_of_february() {
        let cal = Calendar::colombia();
        assert_eq!(cal.add_months(d(2024, 1, 31), 1), d(2024, 2, 29)); // leap year, Thursday
        assert_eq!(cal.add_months(d(2023, 1, 31), 1), d(2023, 2, 28)); // Tuesday
        // 2026-02-28 is a Saturday: the term extends to Monday 2 March.
        assert_eq!(cal.add_months(d(2026, 1, 31), 1), d(2026, 3, 2));
    }

    #[test]
    fn a_month_term_ending_on_a_sunday_or_holiday_moves_to_the_next_business_day() {
        let cal = Calendar::colombia();
        assert_eq!(cal.add_months(d(2024, 1, 3), 2), d(2024, 3, 4)); // Sun 3 Mar → Mon 4
        assert_eq!(cal.add_months(d(2024, 2, 25), 1), d(2024, 3, 26)); // San José → Tue
        // Jueves Santo, Viernes Santo, the weekend: Monday 1 April.
        assert_eq!(cal.add_months(d(2024, 2, 28), 1), d(2024, 4, 1));
        assert_eq!(cal.add_months(d(2024, 2, 28), 0), d(2024, 2, 28));
        assert_eq!(cal.add_months(d(2024, 3, 28), 0), d(2024, 4, 1));
    }

    #[test]
    fn february_29_plus_a_year_is_february_28_then_moved() {
        let cal = Calendar::colombia();
        assert_eq!(cal.add_years(d(2024, 2, 29), 1), d(2025, 2, 28)); // Friday
        assert_eq!(cal.add_years(d(2024, 2, 29), 2), d(2026, 3, 2)); // Sat 28 Feb → Mon 2 Mar
        assert_eq!(cal.add_years(d(2024, 2, 29), 4), d(2028, 2, 29)); // Tuesday
        assert_eq!(cal.add_years(d(2023, 7, 20), 1), d(2024, 7, 22)); // holiday Sat → Mon
    }

    #[test]
    fn weekday_names_parse_in_english_and_spanish() {
        for (text, day) in [
            ("mon", Weekday::Mon),
            ("Monday", Weekday::Mon),
            ("LUNES", Weekday::Mon),
            ("lun.", Weekday::Mon),
            ("tue", Weekday::Tue),
            ("martes", Weekday::Tue),
            ("mié", Weekday::Wed),
            ("Miércoles", Weekday::Wed),
            ("miercoles", Weekday::Wed),
            ("thursday", Weekday::Thu),
            ("jue", Weekday::Thu),
            ("Fri", Weekday::Fri),
            ("viernes", Weekday::Fri),
            ("sáb", Weekday::Sat),
            ("SÁBADO", Weekday::Sat),
            ("sabado", Weekday::Sat),
            ("sa\u{301}bado", Weekday::Sat), // decomposed accent
            ("sat", Weekday::Sat),
            (" sunday ", Weekday::Sun),
            ("Domingo", Weekday::Sun),
        ] {
            assert_eq!(parse_weekday(text), Some(day), "{text:?}");
        }
        assert_eq!(parse_weekday("funday"), None);
        assert_eq!(parse_weekday(""), None);
    }

    #[test]
    fn a_calendar_without_working_days_is_rejected() {
        assert_eq!(Calendar::try_new(Vec::new(), Vec::new()), Err(CalendarError::NoWorkingDays));
        assert!(std::panic::catch_unwind(|| Calendar::new(Vec::new(), Vec::new())).is_err());
    }

    #[test]
    fn the_default_calendar_is_colombia_monday_to_friday() {
        let cal = Calendar::default();
        assert_eq!(cal, Calendar::colombia());
        assert_eq!(cal.working_days(), ALL_WEEKDAYS[..5].to_vec());
        assert_eq!(cal.extra_non_working().count(), 0);
        let debug = format!("{cal:?}");
        assert!(debug.contains("Mon") && !debug.contains("Sat"), "{debug}");
    }

    #[test]
    fn calendar_is_send_sync_clone_and_debug() {
        fn assert_traits<T: Send + Sync + Clone + fmt::Debug>() {}
        assert_traits::<Calendar>();
    }

    // Dates 2000-01-01 ..= 2040-12-31.
    const FIRST: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    const SPAN_DAYS: i64 = 14_975;

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (0..SPAN_DAYS).prop_map(|offset| shift(FIRST, offset))
    }

    /// A random entity: any non-empty set of working weekdays and a few extra dates.
    fn any_calendar() -> impl Strategy<Value = Calendar> {
        (1u8..128, proptest::collection::vec(any_date(), 0..40)).prop_map(|(mask, extras)| {
            let days =
                ALL_WEEKDAYS.into_iter().filter(|d| mask & (1 << d.num_days_from_monday()) != 0);
            Calendar::new(days.collect(), extras)
        })
    }

    proptest! {
        #[test]
        fn adding_business_days_lands_on_a_business_day_and_inverts_between(
            date in any_date(),
            n in 1i64..200,
        ) {
            let cal = Calendar::colombia();
            let end = cal.add_business_days(date, n);
            prop_assert!(cal.is_business_day(end));
            prop_assert!(end > date);
            prop_assert_eq!(cal.business_days_between(date, end), n);
            // `end` is the first date reaching n: the day before is one short.
            prop_assert_eq!(cal.business_days_between(date, pred(end)), n - 1);
            // Going back n lands on `date` when it is a business day, otherwise on the last
            // business day before it (the start date never counts, so it cannot be recovered).
            prop_assert_eq!(
                cal.add_business_days(end, -n),
                cal.previous_business_day_on_or_before(date)
            );
        }

        #[test]
        fn subtracting_business_days_lands_on_a_business_day_and_round_trips_forward(
            date in any_date(),
            n in 1i64..200,
        ) {
            let cal = Calendar::colombia();
            let start = cal.add_business_days(date, -n);
            prop_assert!(cal.is_business_day(start));
            prop_assert!(start < date);
            // n business days in [start, date): counting (start, date] misses `start` and adds
            // `date` when `date` is itself a business day.
            let expected = n - 1 + i64::from(cal.is_business_day(date));
            prop_assert_eq!(cal.business_days_between(start, date), expected);
            prop_assert_eq!(
                cal.add_business_days(start, n),
                cal.next_business_day_on_or_after(date)
            );
        }

        #[test]
        fn any_entity_calendar_agrees_with_day_by_day_counting(
            cal in any_calendar(),
            from in any_date(),
            len in 0i64..1200,
        ) {
            let to = shift(from, len);
            let mut naive = 0;
            let mut cur = from;
            while cur < to {
                cur = succ(cur);
                naive += i64::from(cal.is_business_day(cur));
            }
            prop_assert_eq!(cal.business_days_between(from, to), naive);
            prop_assert_eq!(cal.business_days_between(to, from), -naive);
        }

        #[test]
        fn any_entity_calendar_adds_business_days_exactly(
            cal in any_calendar(),
            date in any_date(),
            n in -400i64..400,
        ) {
            let end = cal.add_business_days(date, n);
            if n == 0 {
                prop_assert_eq!(end, date);
            } else {
                prop_assert!(cal.is_business_day(end));
            }
            if n > 0 {
                prop_assert_eq!(cal.business_days_between(date, end), n);
                prop_assert_eq!(cal.business_days_between(date, pred(end)), n - 1);
            } else if n < 0 {
                // |n| business days in [end, date), and `end` is one of them.
                prop_assert_eq!(cal.business_days_between(end, pred(date)), -n - 1);
                prop_assert_eq!(cal.business_days_between(pred(end), pred(date)), -n);
            }
        }

        #[test]
        fn business_days_between_is_additive(
            a in any_date(),
            b in any_date(),
            c in any_date(),
        ) {
            let cal = mon_to_sat();
            prop_assert_eq!(
                cal.business_days_between(a, b) + cal.business_days_between(b, c),
                cal.business_days_between(a, c)
            );
        }

        #[test]
        fn a_month_term_ends_on_the_first_business_day_on_or_after_the_clamped_date(
            date in any_date(),
            months in 0u32..60,
        ) {
            let cal = Calendar::colombia();
            let clamped = date.checked_add_months(Months::new(months)).unwrap();
            let end = cal.add_months(date, months);
            prop_assert!(cal.is_business_day(end));
            prop_assert!(end >= clamped);
            // Nothing between the calendar date and the result was a business day.
            prop_assert_eq!(cal.business_days_between(clamped, end), i64::from(end > clamped));
        }
    }
}
