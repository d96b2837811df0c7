//! Retention periods (`7 years`, `30 days`) and the moment a record's retention ends.
//! Periods are calendar periods in the configured timezone: "7 years" is seven calendar
//! years, not 7 × 365 days.

use chrono::{DateTime, Days, LocalResult, Months, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;

/// A retention period as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// `N days`.
    Days(u32),
    /// `N weeks`.
    Weeks(u32),
    /// `N months`.
    Months(u32),
    /// `N years`.
    Years(u32),
}

impl Period {
    /// Parses `N days|weeks|months|years` (singular too).
    pub fn parse(s: &str) -> Result<Period, String> {
        let hint = "write it as 'N days', 'N weeks', 'N months' or 'N years', e.g. \"7 years\"";
        let mut parts = s.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("'{s}' is not a duration: {hint}"));
        };
        let n: u32 = n
            .parse()
            .map_err(|_| format!("'{n}' in '{s}' is not a whole number ≥ 0: {hint}"))?;
        let limit_years: u32 = 1000;
        let p = match unit.to_ascii_lowercase().as_str() {
            "day" | "days" => Period::Days(n),
            "week" | "weeks" => Period::Weeks(n),
            "month" | "months" => Period::Months(n),
            "year" | "years" => Period::Years(n),
            _ => return Err(format!("unknown unit '{unit}' in '{s}': {hint}")),
        };
        if p.approx_days() > u64::from(limit_years) * 366 {
            return Err(format!("'{s}' is longer than {limit_years} years"));
        }
        Ok(p)
    }

    /// The period in days, rounded up (31-day months, 366-day years): for comparing
    /// retentions, never for computing a cutoff.
    pub fn approx_days(self) -> u64 {
        match self {
            Period::Days(n) => n.into(),
            Period::Weeks(n) => u64::from(n) * 7,
            Period::Months(n) => u64::from(n) * 31,
            Period::Years(n) => u64::from(n) * 366,
        }
    }

    /// The day this period after `date` (31 January + 1 month = 28/29 February): the last
    /// day a record whose retention started on `date` is kept.
    pub fn after_date(self, date: chrono::NaiveDate) -> Option<chrono::NaiveDate> {
        match self {
            Period::Days(n) => date.checked_add_days(Days::new(n.into())),
            Period::Weeks(n) => date.checked_add_days(Days::new(u64::from(n) * 7)),
            Period::Months(n) => date.checked_add_months(Months::new(n)),
            Period::Years(n) => date.checked_add_months(Months::new(n.checked_mul(12)?)),
        }
    }

    /// Subtracts this period from a local wall-clock time, in calendar terms. Month ends
    /// clamp (31 March − 1 month = 28/29 February), which only ever makes a cutoff earlier,
    /// i.e. keeps a record longer, never shorter.
    fn before(self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Period::Days(n) => t.checked_sub_days(Days::new(n.into())),
            Period::Weeks(n) => t.checked_sub_days(Days::new(u64::from(n) * 7)),
            Period::Months(n) => t.checked_sub_months(Months::new(n)),
            Period::Years(n) => t.checked_sub_months(Months::new(n.checked_mul(12)?)),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match self {
            Period::Days(n) => (n, "day"),
            Period::Weeks(n) => (n, "week"),
            Period::Months(n) => (n, "month"),
            Period::Years(n) => (n, "year"),
        };
        write!(f, "{n} {unit}{}", if *n == 1 { "" } else { "s" })
    }
}

/// The latest `since` value that has expired at a given moment, in both forms a
/// database may need: an instant (for zoned columns) and local wall-clock time in the
/// configured timezone (for `DATE`/`DATETIME`/`timestamp` columns, which carry no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// The cutoff as an instant.
    pub utc: DateTime<Utc>,
    /// The cutoff as local wall-clock time.
    pub local: NaiveDateTime,
}

impl Cutoff {
    /// A record has expired at `at` when `since + period <= at`, computed as
    /// `since <= at − period` in the local calendar of `tz`.
    pub fn at(at: DateTime<Utc>, period: Period, tz: Tz) -> Option<Cutoff> {
        let local = period.before(at.with_timezone(&tz).naive_local())?;
        let utc = match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t,
            // A repeated hour (autumn): the earlier instant keeps records longer.
            LocalResult::Ambiguous(early, _) => early,
            // A skipped hour (spring): take the wall time an hour earlier, again the
            // conservative side.
            LocalResult::None => tz
                .from_local_datetime(&(local - chrono::Duration::hours(1)))
                .earliest()?,
        };
        Some(Cutoff {
            utc: utc.with_timezone(&Utc),
            local,
        })
    }
}

/// Parses a pause between batches: `N ms`, `N s` (or `milliseconds`, `seconds`).
pub fn parse_pause(s: &str) -> Result<std::time::Duration, String> {
    let hint = "write it as e.g. \"200 ms\" or \"1 s\"";
    let mut parts = s.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("'{s}' is not a pause: {hint}"));
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{n}' is not a whole number: {hint}"))?;
    let d = match unit {
        "ms" | "millisecond" | "milliseconds" => std::time::Duration::from_millis(n),
        "s" | "second" | "seconds" => std::time::Duration::from_secs(n),
        _ => return Err(format!("unknown unit '{unit}': {hint}")),
    };
    if d > std::time::Duration::from_secs(3600) {
        return Err(format!("'{s}' is longer than an hour between batches"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn durations_parse_with_singular_and_plural_units() {
        assert_eq!(Period::parse("0 days"), Ok(Period::Days(0)));
        assert_eq!(Period::parse("1 year"), Ok(Period::Years(1)));
        assert_eq!(Period::parse(" 7  years "), Ok(Period::Years(7)));
        assert_eq!(Period::parse("2 Weeks"), Ok(Period::Weeks(2)));
        for bad in [
            "7",
            "years",
            "7 yrs",
            "-1 days",
            "1.5 years",
            "7 years ago",
            "99999 years",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn seven_years_are_calendar_years() {
        let tz: Tz = "Europe/Brussels".parse().unwrap();
        let c = Cutoff::at(utc("2026-11-23T12:00:00Z"), Period::Years(7), tz).unwrap();
        assert_eq!(
            c.local,
            NaiveDate::from_ymd_opt(2019, 11, 23)
                .unwrap()
                .and_hms_opt(13, 0, 0)
                .unwrap()
        );
        assert_eq!(c.utc, utc("2019-11-23T12:00:00Z"));
    }

    #[test]
    fn a_leap_day_is_kept_until_the_first_of_march() {
        let tz: Tz = "UTC".parse().unwrap();
        let c = Cutoff::at(utc("2023-02-28T00:00:00Z"), Period::Years(7), tz).unwrap();
        // 2016-02-29 is after the cutoff (2016-02-28): not yet expired.
        assert!(
            c.local
                < NaiveDate::from_ymd_opt(2016, 2, 29)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
        );
    }

    #[test]
    fn pauses_parse() {
        assert_eq!(
            parse_pause("200 ms"),
            Ok(std::time::Duration::from_millis(200))
        );
        assert_eq!(parse_pause("2 s"), Ok(std::time::Duration::from_secs(2)));
        assert!(parse_pause("2").is_err());
        assert!(parse_pause("2 h").is_err());
    }
}
