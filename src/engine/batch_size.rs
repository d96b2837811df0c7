//! How many records a rule's next batch takes, and how long it pauses after one: a fixed
//! `batch_size`, or, by default, as many records as the recent batches say fit in
//! `batch_time`. Pure: told what each batch took, it measures nothing itself.

use crate::config::{BatchSizing, DEFAULT_BATCH_SIZE};
use std::time::Duration;

/// The smallest batch sized by time: below it a batch's fixed costs (round trips, the
/// intent's fsync) outweigh its records, and a slow database is helped more by
/// `batch_pause` than by ever smaller batches.
pub const MIN_TIMED_BATCH: u32 = 100;
/// The largest batch sized by time, the largest `batch_size` too: past it a batch's key
/// list and intent grow unwieldy whatever the database's speed.
pub const MAX_TIMED_BATCH: u32 = crate::config::MAX_BATCH_SIZE;
/// How much a timed batch may grow from one batch to the next: one fast batch (a cache
/// that happened to be warm) must not make the next one hold its locks ten times longer.
const MAX_GROWTH: u32 = 2;

/// Sizes a rule's batches: created once per rule and pass, asked [`BatchSizer::next`]
/// before each batch and told [`BatchSizer::record`] after each committed one.
#[derive(Debug, Clone)]
pub struct BatchSizer {
    sizing: Sizing,
}

#[derive(Debug, Clone)]
enum Sizing {
    Fixed(u32),
    Timed {
        /// How long a batch should hold its locks.
        target: Duration,
        /// The size of the next batch.
        next: u32,
        /// Records per second, smoothed over the recent batches; `None` before the first.
        rate: Option<f64>,
    },
}

impl BatchSizer {
    /// A sizer for a rule's batches; a timed one starts at [`DEFAULT_BATCH_SIZE`].
    pub fn new(sizing: BatchSizing) -> BatchSizer {
        let sizing = match sizing {
            BatchSizing::Fixed(n) => Sizing::Fixed(n),
            BatchSizing::Timed(target) => Sizing::Timed {
                target,
                next: DEFAULT_BATCH_SIZE.clamp(MIN_TIMED_BATCH, MAX_TIMED_BATCH),
                rate: None,
            },
        };
        BatchSizer { sizing }
    }

    /// The most records the next batch may take.
    pub fn next(&self) -> u32 {
        match self.sizing {
            Sizing::Fixed(n) => n,
            Sizing::Timed { next, .. } => next,
        }
    }

    /// A batch of `records` records, which with their child rows made `rows` rows, held its
    /// locks for `elapsed` (from lock to commit). A timed sizer shrinks at once when
    /// batches got slower (the database is busy: give it room now) and grows by at most
    /// [`MAX_GROWTH`]× per batch when they got faster, from records per second averaged
    /// over the recent batches. Time is measured per record (a record's time includes its
    /// children's), but the bound is on rows: a batch whose records each bring children
    /// holds at most about [`MAX_TIMED_BATCH`] rows, in its locks and in its intent.
    pub fn record(&mut self, records: u64, rows: u64, elapsed: Duration) {
        let Sizing::Timed { target, next, rate } = &mut self.sizing else {
            return;
        };
        if records == 0 {
            return;
        }
        // A batch measured as taking no time at all (a coarse clock) counts as very fast:
        // the growth limit keeps that safe.
        let seconds = elapsed.as_secs_f64().max(1e-6);
        let sample = records as f64 / seconds;
        let smoothed = match *rate {
            Some(r) if sample >= r => (r + sample) / 2.0,
            _ => sample,
        };
        *rate = Some(smoothed);
        let fits = smoothed * target.as_secs_f64();
        let most = f64::from(next.saturating_mul(MAX_GROWTH));
        let rows_per_record = (rows as f64 / records as f64).max(1.0);
        let fewest_rows = f64::from(MAX_TIMED_BATCH) / rows_per_record;
        // In range by the clamp, so the cast neither saturates nor truncates a fraction
        // that matters.
        *next = fits
            .min(most)
            .min(fewest_rows)
            .clamp(f64::from(MIN_TIMED_BATCH), f64::from(MAX_TIMED_BATCH)) as u32;
    }

    /// A batch failed with an error worth a retry (a statement or lock timeout, a
    /// deadlock): a timed sizer halves the next batch (never below [`MIN_TIMED_BATCH`]) and
    /// forgets its rate, so that the retry asks the database for less rather than the same
    /// again, and the next committed batch measures afresh. A fixed size stays.
    pub fn shrink(&mut self) {
        if let Sizing::Timed { next, rate, .. } = &mut self.sizing {
            *next = (*next / 2).max(MIN_TIMED_BATCH);
            *rate = None;
        }
    }
}

/// The pause after a batch that held its locks for `held`: the rule's fixed `batch_pause`
/// plus `factor` times `held` (`batch_pause_factor`, as pt-archiver's `--sleep-coef`), so
/// that a database that slows down is left more room by itself. Never longer than an hour,
/// the longest `batch_pause`, whatever a stalled batch measured.
pub fn pause_after(fixed: Duration, factor: f64, held: Duration) -> Duration {
    const MOST: Duration = Duration::from_secs(3600);
    let extra = Duration::try_from_secs_f64(held.as_secs_f64() * factor).unwrap_or(MOST);
    fixed.saturating_add(extra).min(MOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(ms: u64) -> BatchSizer {
        BatchSizer::new(BatchSizing::Timed(Duration::from_millis(ms)))
    }

    #[test]
    fn a_fixed_batch_size_is_kept_whatever_the_batches_take() {
        let mut s = BatchSizer::new(BatchSizing::Fixed(7));
        assert_eq!(s.next(), 7);
        s.record(7, 7, Duration::from_secs(30));
        assert_eq!(s.next(), 7);
        s.record(7, 7, Duration::from_micros(1));
        assert_eq!(s.next(), 7);
    }

    #[test]
    fn a_timed_sizer_starts_at_the_old_default() {
        assert_eq!(timed(100).next(), 1000);
    }

    #[test]
    fn fast_batches_grow_at_most_twofold_per_batch() {
        let mut s = timed(100);
        s.record(1000, 1000, Duration::from_millis(1));
        assert_eq!(s.next(), 2000);
        s.record(2000, 2000, Duration::from_millis(2));
        assert_eq!(s.next(), 4000);
        s.record(4000, 4000, Duration::from_millis(4));
        assert_eq!(s.next(), 8000);
    }

    #[test]
    fn batches_grow_to_what_fits_the_batch_time_and_no_further() {
        let mut s = timed(100);
        // 1000 records in 80 ms: 12,500 a second, 1250 in 100 ms.
        s.record(1000, 1000, Duration::from_millis(80));
        assert_eq!(s.next(), 1250);
    }

    #[test]
    fn slow_batches_shrink_at_once() {
        let mut s = timed(100);
        s.record(1000, 1000, Duration::from_millis(1));
        assert_eq!(s.next(), 2000);
        // Now 2000 records take 800 ms: 2500 a second, 250 in 100 ms, not an average
        // with the fast batch before.
        s.record(2000, 2000, Duration::from_millis(800));
        assert_eq!(s.next(), 250);
    }

    #[test]
    fn recovery_after_a_slow_batch_is_smoothed() {
        let mut s = timed(100);
        s.record(1000, 1000, Duration::from_millis(400)); // 2500/s → 250
        assert_eq!(s.next(), 250);
        s.record(250, 250, Duration::from_millis(10)); // 25,000/s, averaged with 2500 → 13,750/s
        assert_eq!(s.next(), 500, "at most twice the batch before");
        s.record(500, 500, Duration::from_millis(20)); // 25,000/s, averaged → 19,375/s → 1937
        assert_eq!(s.next(), 1000);
    }

    #[test]
    fn timed_batches_stay_between_100_and_100000() {
        let mut s = timed(100);
        s.record(1000, 1000, Duration::from_secs(60));
        assert_eq!(s.next(), MIN_TIMED_BATCH);
        let mut s = timed(10_000);
        for _ in 0..20 {
            let n = u64::from(s.next());
            s.record(n, n, Duration::from_micros(1));
        }
        assert_eq!(s.next(), MAX_TIMED_BATCH);
    }

    #[test]
    fn an_empty_or_instant_batch_does_not_break_the_sizer() {
        let mut s = timed(100);
        s.record(0, 0, Duration::from_secs(5));
        assert_eq!(s.next(), 1000, "nothing to learn from no records");
        s.record(1000, 1000, Duration::ZERO);
        assert_eq!(s.next(), 2000);
    }

    #[test]
    fn a_transient_failure_halves_a_timed_batch_down_to_its_minimum() {
        let mut s = timed(100);
        s.shrink();
        assert_eq!(s.next(), 500);
        s.record(500, 500, Duration::from_millis(1));
        assert_eq!(s.next(), 1000, "the rate is measured afresh");
        for _ in 0..10 {
            s.shrink();
        }
        assert_eq!(s.next(), MIN_TIMED_BATCH);
        let mut fixed = BatchSizer::new(BatchSizing::Fixed(40_000));
        fixed.shrink();
        assert_eq!(fixed.next(), 40_000, "a fixed batch_size is the operator's");
    }

    #[test]
    fn records_with_children_grow_only_until_the_batch_holds_the_most_rows() {
        let mut s = timed(10_000);
        for _ in 0..20 {
            let n = u64::from(s.next());
            // Each record brings 4 child rows.
            s.record(n, 5 * n, Duration::from_micros(1));
        }
        assert_eq!(s.next(), MAX_TIMED_BATCH / 5);
    }

    #[test]
    fn the_pause_is_the_fixed_pause_plus_factor_times_the_batch() {
        let ms = Duration::from_millis;
        assert_eq!(pause_after(ms(0), 0.0, ms(80)), ms(0));
        assert_eq!(pause_after(ms(50), 0.0, ms(80)), ms(50));
        assert_eq!(pause_after(ms(0), 1.5, ms(500)), ms(750));
        assert_eq!(pause_after(ms(50), 2.0, ms(250)), ms(550));
        assert_eq!(
            pause_after(ms(0), 100.0, Duration::from_secs(3600)),
            Duration::from_secs(3600)
        );
    }
}
