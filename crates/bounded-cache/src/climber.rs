//! The hill climber that sizes W-TinyLFU's window: the share of a shard's weight held by the
//! recency-ordered window in front of the frequency-filtered main space.
//!
//! # Implementation details
//!
//! A small window suits traces where frequency predicts reuse (the main space, guarded by the
//! admission filter, holds the frequent keys); a large one suits traces where recency does (loops,
//! bursts of new keys reused soon after). No fixed share wins both (the LIRS traces in
//! BENCHMARKS.md show S3-FIFO's fixed 15% losing either way), so the share is searched online, as
//! Caffeine does: the hit rate is sampled over periods of 10 accesses per entry; after
//! each period the window moves one step in the direction that last improved the hit rate, or
//! turns back if the rate fell. Steps shrink by 2% each period so the share settles, and a change
//! in hit rate of 5 points or more (the workload changed) restores the full step.
//!
//! One climber serves the whole cache ([`SharedClimber`]), as in Caffeine, and every shard sizes
//! its window by the share it finds. A climber per shard sampled its own shard only: over a
//! period of 10 accesses per entry it saw as many periods as a cache-wide one, but each with a
//! shard's fraction of the samples, so with 8 shards its hit rates were nearly three times as
//! noisy and it more often stepped the wrong way. On the 19 rows of `hitratio`, the shortfall
//! from the best peer summed over the rows (`scripts/hitratio-sum.py`) was 24.0-25.0 points with
//! the shared climber (four sets of three runs) against 24.9-26.2 with a climber per shard (four
//! sets). The share is a hint: a shard reads it with a relaxed load, and any value is a valid
//! share.
//!
//! A shard hands its samples over in batches of [`SharedClimber::BATCH`] accesses, with
//! `try_lock`: if another shard is handing over its own, it keeps them for a later access, so no
//! shard ever waits for another, and the climber's lock is taken once per batch, not per access.
//! Hits on the read path reach the shard in batches too, when the next writer adds up the read
//! path's tallies (`cell.rs`). A period may so end a little late, by at most a batch per shard
//! and the hits between two writes, against a period of at least 640 accesses.
//!
//! Tried on the same rows and not kept (sums of three runs, against 25.3-26.2 for the climber per
//! shard then): periods of 1, 2, 3 and 5 accesses per entry (41.7, 34.3, 35.6, 29.6: the rates
//! grow noisier faster than the climber gains time), steps that grow by half or double while the
//! rate improves (26.6, 26.9), a first step without waiting for a second period (25.8), a full
//! step of 10% (26.1) and starting at a window of 20% (31.7); with the shared climber, against
//! 23.8 and 26.4 in the same sets, periods lengthening from 1 to 10 accesses per entry (26.6-28.6)
//! and periods capped at 2^15 to 2^18 accesses (23.9-26.2, P3 at 160,000 unmoved), and a jump
//! of half the shard tried for one period in every 5 or 10, kept if it paid (36.9, 28.5: the
//! loops lose what the jumps cost, and P3 at 160,000 gained at best 1 point). Fixed windows
//! bound what a better search could gain: the best fixed share of each row, taken row by row,
//! would be about 11 points behind in all. Short traces are where the search falls short: `zigzag` at 1,000 entries
//! lasts five periods, too few to climb from 1% to the large window it wants.
//!
//! All arithmetic is in thousandths of the shard's weight.

use std::sync::atomic::Ordering::Relaxed;

use crate::sync::{AtomicU64, Mutex};

/// The climber of a cache, shared by its shards; see the module docs.
pub(crate) struct SharedClimber {
    /// The window's share, in thousandths, as the climber last set it.
    window: AtomicU64,
    climber: Mutex<Climber>,
    shards: usize,
}

impl SharedClimber {
    /// Accesses a shard counts before it hands them over (one under loom, so that small models
    /// reach the hand-over).
    pub(crate) const BATCH: u32 = crate::sync::CLIMBER_BATCH;

    pub(crate) fn new(shards: usize) -> Self {
        let climber = Climber::new();
        Self { window: AtomicU64::new(climber.window().into()), climber: Mutex::new(climber), shards }
    }

    /// The window's share now, in thousandths of a shard's weight.
    pub(crate) fn window(&self) -> u32 {
        self.window.load(Relaxed) as u32
    }

    /// Adds a shard's samples, from a shard of `entries` entries (the cache is taken to hold as
    /// many in each shard). Returns false, adding nothing, if another shard is adding its own.
    pub(crate) fn try_add(&self, hits: u32, misses: u32, entries: usize) -> bool {
        let Some(mut climber) = self.climber.try_lock() else { return false };
        climber.sample(hits, misses, entries.saturating_mul(self.shards));
        self.window.store(climber.window().into(), Relaxed);
        true
    }

    /// Holds the climber, as a shard handing over its samples does (for tests and the models).
    pub(crate) fn hold(&self) -> crate::sync::MutexGuard<'_, Climber> {
        self.climber.lock()
    }
}

/// The window's share of a shard, searched online; see the module docs.
pub(crate) struct Climber {
    /// The window's share, in thousandths of the shard's weight.
    window: u32,
    /// The next step, in thousandths of the share (signed: its sign is the direction).
    step: i32,
    hits: u32,
    misses: u32,
    /// The hit rate of the last period, in thousandths; `None` before the first.
    previous: Option<u32>,
}

impl Climber {
    /// The window's share at the start, in thousandths.
    const INITIAL_WINDOW: u32 = 10;
    /// The largest share the window may take; the main space keeps the rest.
    const MAX_WINDOW: u32 = 800;
    /// The full step, in thousandths of the shard.
    const STEP: i32 = 62;
    /// A change of hit rate (in thousandths) that restores the full step.
    const RESTART: u32 = 50;
    /// Accesses per entry in a sampling period.
    const PERIOD_PER_ENTRY: u32 = 10;

    pub(crate) const fn new() -> Self {
        Self { window: Self::INITIAL_WINDOW, step: Self::STEP, hits: 0, misses: 0, previous: None }
    }

    /// The window's share now, in thousandths of the shard's weight.
    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// The hits and misses sampled in the current period.
    pub(crate) fn sampled(&self) -> (u32, u32) {
        (self.hits, self.misses)
    }

    /// Counts hits and misses of a cache of `entries` entries, and climbs if a period ended.
    fn sample(&mut self, hits: u32, misses: u32, entries: usize) {
        self.hits = self.hits.saturating_add(hits);
        self.misses = self.misses.saturating_add(misses);
        let period = (entries.max(64).min(u32::MAX as usize) as u32).saturating_mul(Self::PERIOD_PER_ENTRY);
        if self.hits.saturating_add(self.misses) >= period {
            self.climb();
        }
    }

    /// Ends a sampling period: moves the window one step up or down hill.
    fn climb(&mut self) {
        let samples = u64::from(self.hits) + u64::from(self.misses);
        let rate = (u64::from(self.hits) * 1000 / samples) as u32;
        self.hits = 0;
        self.misses = 0;
        let Some(previous) = self.previous.replace(rate) else { return };
        // Keep going while the rate holds or improves; turn back when it falls.
        let amount = if rate >= previous { self.step } else { -self.step };
        self.step = if rate.abs_diff(previous) >= Self::RESTART {
            Self::STEP * amount.signum()
        } else {
            // Decays by 2%, but never below one thousandth.
            let next = amount * 49 / 50;
            if next == 0 { amount.signum() } else { next }
        };
        self.window = self.window.saturating_add_signed(amount).min(Self::MAX_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays `periods` sampling periods of a cache of 100 entries whose hit rate, in
    /// thousandths, is `rate(window)`.
    fn play(climber: &mut Climber, periods: usize, rate: impl Fn(u32) -> u32) {
        for _ in 0..periods {
            let hits = rate(climber.window());
            for i in 0..1_000 {
                climber.sample(u32::from(i < hits), u32::from(i >= hits), 100);
            }
        }
    }

    #[test]
    fn the_samples_of_every_shard_make_one_period_of_the_whole_cache() {
        // Four shards of 25 entries: a cache of 100, whose period is 1,000 accesses (a shard's
        // own would be 640, for the 64 entries a period counts at least).
        let shared = SharedClimber::new(4);
        let start = shared.window();
        let hand_over = |hits: u32, misses: u32| assert!(shared.try_add(hits, misses, 25));
        // The first period, at a hit rate of 50%, sets the rate to beat; the second improves
        // on it, so the window grows by a step, but only when the second period is complete.
        for _ in 0..1_000 / 20 {
            hand_over(10, 10);
        }
        for _ in 0..999 / 9 {
            hand_over(9, 0);
        }
        assert_eq!(shared.window(), start, "999 accesses of the second period");
        hand_over(1, 0);
        assert_eq!(shared.window(), start + Climber::STEP as u32);
    }

    #[test]
    fn a_busy_climber_takes_nothing() {
        let shared = SharedClimber::new(1);
        let held = shared.hold();
        assert!(!shared.try_add(1_000, 0, 100), "another shard holds the climber");
        drop(held);
        assert_eq!(shared.hold().sampled(), (0, 0));
        assert!(shared.try_add(10, 5, 100));
        assert_eq!(shared.hold().sampled(), (10, 5));
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "safe arithmetic on one thread, nothing for Miri to find; 200,000 accesses take a minute there"
    )]
    fn climbs_to_the_best_window_and_stays_near_it() {
        // The hit rate peaks with a window of 40% of the shard.
        let rate = |window: u32| 600 - window.abs_diff(400) / 2;
        let mut climber = Climber::new();
        play(&mut climber, 200, rate);
        assert!(climber.window().abs_diff(400) <= 60, "window {}", climber.window());
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "safe arithmetic on one thread, nothing for Miri to find; 200,000 accesses take a minute there"
    )]
    fn stays_small_when_frequency_wins() {
        let rate = |window: u32| 500 - window / 4;
        let mut climber = Climber::new();
        play(&mut climber, 200, rate);
        assert!(climber.window() <= 60, "window {}", climber.window());
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "safe arithmetic on one thread, nothing for Miri to find; 200,000 accesses take a minute there"
    )]
    fn follows_a_change_of_workload() {
        let mut climber = Climber::new();
        play(&mut climber, 200, |window| 500 - window / 4);
        // Now recency wins: the larger the window, the better.
        play(&mut climber, 200, |window| 300 + window / 4);
        assert!(climber.window() >= 700, "window {}", climber.window());
    }
}
