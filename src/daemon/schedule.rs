//! When the next pass is due. Cron ticks are wall-clock times in the configured timezone,
//! and every wall-clock tick runs exactly once: a tick in the hour skipped in spring runs
//! when the clock jumps (not zero times), a tick in the hour repeated in autumn runs at its
//! first occurrence only (not twice). The `cron` crate's own `upcoming(tz)` does neither,
//! so ticks are walked in naive local time and mapped here.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How far before `after` (in wall-clock time) the walk starts, to cover a repeated hour.
const LOOKBACK_HOURS: i64 = 3;
/// An upper bound on ticks examined for one answer (a per-second schedule over the lookback).
const MAX_TICKS: usize = 20_000;

/// The instant a wall-clock time happens: its first occurrence if repeated, the moment the
/// clock jumps if skipped.
fn instant_of(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        // The first wall-clock minute after the gap is the moment the clock jumped.
        LocalResult::None => (1..=24 * 60).find_map(|m| {
            tz.from_local_datetime(&(naive + Duration::minutes(m)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        }),
    }
}

/// The first tick of `schedule` strictly after `after`.
pub fn next_tick(schedule: &cron::Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let start = after.with_timezone(&tz).naive_local() - Duration::hours(LOOKBACK_HOURS);
    schedule
        .after(&start.and_utc())
        .take(MAX_TICKS)
        .filter_map(|naive| instant_of(naive.naive_utc(), tz))
        .find(|t| *t > after)
}

/// Whether a tick of `schedule` fell after `last` and at or before `now`: a pass was due
/// while the daemon was down.
pub fn missed(schedule: &cron::Schedule, tz: Tz, last: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    next_tick(schedule, tz, last).is_some_and(|t| t <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn brussels() -> Tz {
        "Europe/Brussels".parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn ticks(expr: &str, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let s = cron::Schedule::from_str(expr).unwrap();
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = next_tick(&s, brussels(), t).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn a_normal_night_runs_at_0230_local() {
        assert_eq!(
            ticks("0 30 2 * * *", "2026-11-23T12:00:00Z", 1),
            vec![utc("2026-11-24T01:30:00Z")]
        );
    }

    #[test]
    fn the_spring_night_without_0230_still_runs_once_when_the_clock_jumps() {
        // 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        let got = ticks("0 30 2 * * *", "2026-03-28T12:00:00Z", 3);
        assert_eq!(
            got,
            vec![
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-30T00:30:00Z"),
                utc("2026-03-31T00:30:00Z")
            ]
        );
    }

    #[test]
    fn the_autumn_night_with_0230_twice_runs_once() {
        // 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let got = ticks("0 30 2 * * *", "2026-10-24T12:00:00Z", 2);
        assert_eq!(
            got,
            vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
        );
    }

    #[test]
    fn a_missed_tick_is_detected_once() {
        let s = cron::Schedule::from_str("0 30 2 * * *").unwrap();
        let tz = brussels();
        assert!(missed(
            &s,
            tz,
            utc("2026-11-20T01:30:00Z"),
            utc("2026-11-23T08:00:00Z")
        ));
        assert!(!missed(
            &s,
            tz,
            utc("2026-11-23T01:30:00Z"),
            utc("2026-11-23T08:00:00Z")
        ));
    }

    #[test]
    fn per_second_schedules_advance() {
        let got = ticks("*/2 * * * * *", "2026-11-23T12:00:00Z", 3);
        assert_eq!(
            got,
            vec![
                utc("2026-11-23T12:00:02Z"),
                utc("2026-11-23T12:00:04Z"),
                utc("2026-11-23T12:00:06Z")
            ]
        );
    }
}
