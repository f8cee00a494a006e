//! Clock: the one source of "now" for every stage, injected so that runs are reproducible
//! (`--as-of`) and tests never sleep.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// Tells the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// Today's date in `tz` (SECOP II deadlines are Bogotá dates).
    fn today(&self, tz: Tz) -> NaiveDate {
        self.now().with_timezone(&tz).date_naive()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock stopped at one instant, for `--as-of` runs and tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl FixedClock {
    /// Noon in Bogotá (17:00 UTC) of `date`: safely inside that day in any nearby zone.
    pub fn at_date(date: NaiveDate) -> FixedClock {
        FixedClock(date.and_hms_opt(17, 0, 0).expect("valid time").and_utc())
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}
