//! The hill climber that sizes W-TinyLFU's window: the share of a shard's weight held by the
//! recency-ordered window in front of the frequency-filtered main space.
//!
//! # Implementation details
//!
//! A small window suits traces where frequency predicts reuse (the main space, guarded by the
//! admission filter, holds the frequent keys); a large one suits traces where recency does (loops,
//! bursts of new keys reused soon after). No fixed share wins both (the LIRS traces in
//! BENCHMARKS.md show S3-FIFO's fixed 15% losing either way), so the share is searched online, as
//! Caffeine does: the shard's hit rate is sampled over periods of 10 accesses per entry; after
//! each period the window moves one step in the direction that last improved the hit rate, or
//! turns back if the rate fell. Steps shrink by 2% each period so the share settles, and a change
//! in hit rate of 5 points or more (the workload changed) restores the full step.
//!
//! Hits on the read path reach the climber in batches, when the next writer adds up the read
//! path's tallies (`cell.rs`); a period may so end a batch late, which moves its end by at most
//! the hits between two writes.
//!
//! All arithmetic is in thousandths of the shard's weight.

/// The window's share of the shard, searched online; see the module docs.
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

    /// Counts `n` hits at once (those of the read path, seen by the next writer).
    pub(crate) fn hits(&mut self, n: u64, entries: usize) {
        self.hits = self.hits.saturating_add(n.min(u64::from(u32::MAX)) as u32);
        self.maybe_climb(entries);
    }

    pub(crate) fn miss(&mut self, entries: usize) {
        self.misses += 1;
        self.maybe_climb(entries);
    }

    #[inline]
    fn maybe_climb(&mut self, entries: usize) {
        let period = (entries.max(64) as u32).saturating_mul(Self::PERIOD_PER_ENTRY);
        if self.hits + self.misses >= period {
            self.climb();
        }
    }

    /// The hits and misses sampled in the current period.
    #[cfg(test)]
    pub(crate) fn sampled(&self) -> (u32, u32) {
        (self.hits, self.misses)
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

    /// Plays `periods` sampling periods of a shard of 100 entries whose hit rate, in
    /// thousandths, is `rate(window)`.
    fn play(climber: &mut Climber, periods: usize, rate: impl Fn(u32) -> u32) {
        for _ in 0..periods {
            let hits = rate(climber.window()) as usize;
            for i in 0..1_000 {
                if i < hits {
                    climber.hits(1, 100);
                } else {
                    climber.miss(100);
                }
            }
        }
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
