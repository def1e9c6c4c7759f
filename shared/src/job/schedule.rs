//! When scheduled retraining runs: a cron expression (five fields — minute, hour, day of month,
//! month, day of week — in UTC) or a fixed interval. Pure: the time is passed in.

use std::fmt;

/// Longest interval between two checks.
pub const MAX_INTERVAL_SECONDS: u64 = 366 * 24 * 3600;
/// A cron expression that does not fire within this many days of any time never fires.
const SEARCH_DAYS: i64 = 366 * 8 + 2;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {message}")]
pub struct ScheduleError {
    pub text: String,
    pub message: String,
}

/// A firing rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    Cron(Cron),
    /// Every this many seconds after the previous firing (or the start).
    Every(u64),
}

impl Schedule {
    /// The first firing strictly after `after` (seconds since the Unix epoch).
    pub fn next_after(&self, after: u64) -> u64 {
        match self {
            Schedule::Cron(cron) => cron.next_after(after),
            Schedule::Every(seconds) => after.saturating_add(*seconds),
        }
    }

    /// `30s`, `15m`, `6h`, `1d` (one unit), from one second to a year.
    pub fn parse_interval(text: &str) -> Result<Schedule, ScheduleError> {
        let fail = |message: &str| ScheduleError {
            text: text.to_string(),
            message: message.to_string(),
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| fail("needs a unit: s, m, h or d (e.g. 6h)"))?;
        let (number, unit) = trimmed.split_at(split);
        let count: u64 = number
            .parse()
            .map_err(|_| fail("expected a whole number and a unit, e.g. 30s or 6h"))?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(fail("the unit must be s, m, h or d")),
        };
        let seconds = count
            .checked_mul(unit_seconds)
            .filter(|s| (1..=MAX_INTERVAL_SECONDS).contains(s))
            .ok_or_else(|| fail("must be between 1s and 366d"))?;
        Ok(Schedule::Every(seconds))
    }

    /// A five-field cron expression in UTC: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`,
    /// lists `a,b`, and three-letter month and weekday names. When both the day of month and
    /// the day of week are restricted, a day matching either fires (as cron does).
    pub fn parse_cron(text: &str) -> Result<Schedule, ScheduleError> {
        Cron::parse(text).map(Schedule::Cron)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron(cron) => write!(f, "cron `{}` (UTC)", cron.text),
            Schedule::Every(seconds) => write!(f, "every {seconds} s"),
        }
    }
}

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    fn parse(text: &str) -> Result<Cron, ScheduleError> {
        let fail = |message: String| ScheduleError {
            text: text.to_string(),
            message,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(fail(format!(
                "a cron expression has five fields (minute hour day-of-month month day-of-week), this one has {}",
                fields.len()
            )));
        }
        let field = |index: usize, name: &str, min: u32, max: u32, names: &[&str]| {
            parse_field(fields[index], min, max, names)
                .map_err(|message| fail(format!("{name} field `{}`: {message}", fields[index])))
        };
        let minutes = field(0, "minute", 0, 59, &[])?;
        let hours = field(1, "hour", 0, 23, &[])?;
        let days = field(2, "day-of-month", 1, 31, &[])?;
        let months = field(3, "month", 1, 12, &MONTHS)?;
        let mut weekdays = field(4, "day-of-week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        let cron = Cron {
            text: fields.join(" "),
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted: fields[2] != "*",
            weekdays_restricted: fields[4] != "*",
        };
        if cron.search(0).is_none() {
            return Err(fail("it never fires (no such date)".into()));
        }
        Ok(cron)
    }

    fn day_matches(&self, days: i64) -> bool {
        let (_, month, day) = civil_from_days(days);
        if self.months & (1 << month) == 0 {
            return false;
        }
        let weekday = (days + 4).rem_euclid(7);
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => by_day || by_weekday,
            (true, false) => by_day,
            (false, true) => by_weekday,
            (false, false) => true,
        }
    }

    /// The first matching minute at or after `minute` (minutes since the epoch).
    fn search(&self, minute: u64) -> Option<u64> {
        let first_day = (minute / 1440) as i64;
        for day in first_day..first_day + SEARCH_DAYS {
            if !self.day_matches(day) {
                continue;
            }
            let start = if day == first_day { minute % 1440 } else { 0 };
            for of_day in start..1440 {
                let (hour, min) = (of_day / 60, of_day % 60);
                if self.hours & (1 << hour) != 0 && self.minutes & (1 << min) != 0 {
                    return Some(day as u64 * 1440 + of_day);
                }
            }
        }
        None
    }

    fn next_after(&self, after: u64) -> u64 {
        let minute = after / 60 + 1;
        // Parsing checked that the expression fires; a firing date recurs within the search.
        self.search(minute).map_or(u64::MAX, |m| m * 60)
    }
}

/// A bit set of the values a field allows; `names[i]` stands for `min + i` (months from 1,
/// weekdays from 0 = Sunday).
fn parse_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let value = |text: &str| -> Result<u32, String> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(min + i as u32);
        }
        let number: u32 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a number"))?;
        if !(min..=max).contains(&number) {
            return Err(format!("{number} is outside {min}–{max}"));
        }
        Ok(number)
    };
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| format!("step `{step}` must be a whole number ≥ 1"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("range {a}-{b} runs backwards"));
            }
            (a, b)
        } else {
            let a = value(range)?;
            (a, if part.contains('/') { max } else { a })
        };
        for v in (low..=high).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

/// `YYYYMMDDTHHMMSS` (UTC) of a time in seconds since the epoch, for names.
pub fn utc_stamp(unix_seconds: u64) -> String {
    let (year, month, day) = civil_from_days((unix_seconds / 86_400) as i64);
    let of_day = unix_seconds % 86_400;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since the epoch of a UTC date and time (days counted from a year's start).
    fn at(year: i64, month: u32, day: u32, hour: u64, minute: u64) -> u64 {
        let mut days = (year - 1970) * 365 + (year - 1969) / 4 - 1;
        while civil_from_days(days).0 < year {
            days += 1;
        }
        while civil_from_days(days) != (year, month, day) {
            days += 1;
            assert_eq!(civil_from_days(days).0, year, "no such date");
        }
        days as u64 * 86_400 + hour * 3600 + minute * 60
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_stamp(at(2026, 11, 30, 1, 9) + 7), "20261130T010907");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
    }

    #[test]
    fn cron_fires_at_the_next_matching_minute() {
        let nightly = Schedule::parse_cron("0 2 * * *").unwrap();
        let now = at(2026, 11, 30, 1, 9);
        assert_eq!(nightly.next_after(now), at(2026, 11, 30, 2, 0));
        assert_eq!(
            nightly.next_after(at(2026, 11, 30, 2, 0)),
            at(2026, 12, 1, 2, 0)
        );
        let quarter = Schedule::parse_cron("*/15 * * * *").unwrap();
        assert_eq!(quarter.next_after(now), at(2026, 11, 30, 1, 15));
        // 2026-12-01 is a Tuesday.
        let weekdays = Schedule::parse_cron("30 8 * * mon-fri").unwrap();
        assert_eq!(
            weekdays.next_after(at(2026, 12, 5, 9, 0)),
            at(2026, 12, 7, 8, 30)
        );
        let leap = Schedule::parse_cron("0 0 29 feb *").unwrap();
        assert_eq!(leap.next_after(now), at(2028, 2, 29, 0, 0));
        // Day of month and day of week both restricted: either fires.
        let either = Schedule::parse_cron("0 12 1 * sun").unwrap();
        assert_eq!(
            either.next_after(at(2026, 11, 30, 13, 0)),
            at(2026, 12, 1, 12, 0)
        );
        let sunday = at(2026, 12, 6, 0, 0);
        for text in ["0 0 * * 7", "0 0 * * 0", "0 0 * * sun"] {
            assert_eq!(
                Schedule::parse_cron(text).unwrap().next_after(now),
                sunday,
                "{text}"
            );
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (text, needle) in [
            ("0 2 * *", "five fields"),
            ("61 * * * *", "minute field `61`"),
            ("0 24 * * *", "hour"),
            ("* * 0 * *", "day-of-month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day-of-week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("0 0 31 feb *", "never fires"),
            ("x * * * *", "not a number"),
        ] {
            let err = Schedule::parse_cron(text).unwrap_err().to_string();
            assert!(
                err.contains(needle) && err.contains(text.split(' ').next().unwrap()),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn intervals_have_a_unit_and_a_range() {
        assert_eq!(
            Schedule::parse_interval("30s").unwrap(),
            Schedule::Every(30)
        );
        assert_eq!(
            Schedule::parse_interval("6h").unwrap(),
            Schedule::Every(21_600)
        );
        assert_eq!(
            Schedule::parse_interval("6h").unwrap().next_after(100),
            21_700
        );
        for bad in ["", "6", "0s", "400d", "1w", "h", "99999999999999999999d"] {
            assert!(Schedule::parse_interval(bad).is_err(), "{bad}");
        }
    }
}
