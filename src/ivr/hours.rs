//! Business hours: a weekly schedule in a time zone, with holidays. Outside them a call starts
//! in the flow's `closed` menu. Time zones come from jiff's bundled database, so checking a
//! time reads no files and gives the same answer on every machine.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::{TimeZone, TimeZoneDatabase};

/// When the contact center answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Hours {
    pub time_zone: TimeZone,
    /// Opening spans per weekday (start inclusive, end exclusive); a missing day is closed.
    pub week: BTreeMap<u8, Vec<(Time, Time)>>,
    pub holidays: Vec<Date>,
    /// The menu a call starts in when closed.
    pub closed: String,
}

/// Weekday names as written in a flow file, Monday first.
pub const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

impl Hours {
    /// Whether the contact center is open at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        let local = now.to_zoned(self.time_zone.clone());
        if self.holidays.contains(&local.date()) {
            return false;
        }
        let day = local.weekday().to_monday_zero_offset() as u8;
        let time = local.time();
        self.week.get(&day).is_some_and(|spans| spans.iter().any(|&(start, end)| start <= time && time < end))
    }
}

/// The zone named `name` (`America/New_York`), from the bundled database.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZoneDatabase::bundled()
        .get(name)
        .map_err(|_| format!("unknown time zone {name:?} (use an IANA name such as America/New_York)"))
}

/// `09:00-17:30` (several spans separated by commas) into opening spans.
pub fn spans(text: &str) -> Result<Vec<(Time, Time)>, String> {
    text.split(',')
        .map(|span| {
            let (start, end) =
                span.trim().split_once('-').ok_or_else(|| format!("{span:?} is not HH:MM-HH:MM"))?;
            let parse = |text: &str| {
                Time::strptime("%H:%M", text.trim()).map_err(|_| format!("{text:?} is not a time (HH:MM)"))
            };
            let (start, end) = (parse(start)?, parse(end)?);
            if start >= end {
                return Err(format!("{span:?} ends before it starts"));
            }
            Ok((start, end))
        })
        .collect()
}

/// `2026-12-25` into a date.
pub fn holiday(text: &str) -> Result<Date, String> {
    text.trim().parse().map_err(|_| format!("holiday {text:?} is not a date (YYYY-MM-DD)"))
}
