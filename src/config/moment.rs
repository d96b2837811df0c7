//! Moments as people write them, everywhere one is accepted (`plan --at`, `audit export
//! --since/--until`, `report --date`, a hold's `until`): RFC 3339, or a calendar date that
//! means its midnight in a given timezone. One parser, so every place reads them alike.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// A parsed moment: an instant, and whether it was written as a bare date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// The instant (for a date: its midnight in the timezone it was read in).
    pub at: DateTime<Utc>,
    /// The calendar date, when it was written as `YYYY-MM-DD`.
    pub date: Option<NaiveDate>,
}

impl Moment {
    /// Parses RFC 3339 (`2026-12-31T23:00:00Z`) or a date (`2026-12-31`, midnight in `tz`).
    pub fn parse(s: &str, tz: Tz) -> Result<Moment, String> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Moment {
                at: t.with_timezone(&Utc),
                date: None,
            });
        }
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            format!(
                "'{s}' is not a moment: write RFC 3339 (2026-12-31T23:00:00Z) or a date (2026-12-31)"
            )
        })?;
        Ok(Moment {
            at: midnight(date, tz).ok_or_else(|| format!("'{s}' has no midnight in {tz}"))?,
            date: Some(date),
        })
    }

    /// Parses a date alone (`YYYY-MM-DD`), for flags that take a day, not a moment.
    pub fn parse_date(s: &str, tz: Tz) -> Result<Moment, String> {
        match Moment::parse(s, tz)? {
            m @ Moment { date: Some(_), .. } => Ok(m),
            _ => Err(format!("'{s}' is not a date; write YYYY-MM-DD")),
        }
    }
}

/// The first instant of `date` in `tz` (the earliest, where a clock change repeats it; the
/// first that exists, where a clock change skips midnight).
fn midnight(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let start = date.and_hms_opt(0, 0, 0)?;
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&(start + chrono::Duration::hours(h)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_midnight_in_the_timezone_and_rfc3339_is_exact() {
        let tz: Tz = "Europe/Brussels".parse().unwrap();
        let m = Moment::parse("2026-07-01", tz).unwrap();
        assert_eq!(m.at.to_rfc3339(), "2026-06-30T22:00:00+00:00");
        assert!(m.date.is_some());
        let m = Moment::parse("2026-07-01T10:00:00+02:00", tz).unwrap();
        assert_eq!(m.at.to_rfc3339(), "2026-07-01T08:00:00+00:00");
        assert_eq!(m.date, None);
    }

    #[test]
    fn nonsense_is_refused_with_the_forms_that_work() {
        let e = Moment::parse("next tuesday", chrono_tz::UTC).unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("2026-12-31"), "{e}");
        let e = Moment::parse_date("2026-07-01T10:00:00Z", chrono_tz::UTC).unwrap_err();
        assert!(e.contains("YYYY-MM-DD"), "{e}");
    }

    #[test]
    fn a_midnight_skipped_by_a_clock_change_is_the_first_hour_that_exists() {
        // America/Santiago skipped 2022-09-11 00:00 (clocks went to 01:00).
        let tz: Tz = "America/Santiago".parse().unwrap();
        let m = Moment::parse("2022-09-11", tz).unwrap();
        assert_eq!(m.at.to_rfc3339(), "2022-09-11T04:00:00+00:00");
    }
}
