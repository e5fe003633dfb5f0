//! How long waiting gets waited, in powers-of-two buckets of microseconds.
//!
//! One relaxed add per finished wait, on a path that has already slept: waits are counted, not
//! every get. Bucket `i` holds waits shorter than `2^i` µs and at least `2^(i-1)` µs (bucket 0:
//! under 1 µs); the last bucket is open-ended. That is coarse (a factor of two) but enough to
//! tell "every get waits a little" (a pool too small) from "a few wait long" (a slow holder).

use std::fmt;
use std::time::Duration;

use crate::sync::{AtomicU64, Ordering};

/// The number of buckets: the last one starts at 2^22 µs (about 4.2 s).
pub const WAIT_BUCKETS: usize = 24;

/// The bucket of a wait.
fn bucket(waited: Duration) -> usize {
    let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
    // 0 µs -> 0, 1 µs -> 1, 2..=3 µs -> 2, 4..=7 µs -> 3, ...
    let bucket = (u64::BITS - micros.leading_zeros()) as usize;
    bucket.min(WAIT_BUCKETS - 1)
}

/// The lower bound of bucket `index`.
fn lower_bound(index: usize) -> Duration {
    match index {
        0 => Duration::ZERO,
        index => Duration::from_micros(1 << (index - 1)),
    }
}

/// The counters a pool keeps.
#[derive(Debug)]
pub(crate) struct WaitBuckets([AtomicU64; WAIT_BUCKETS]);

impl Default for WaitBuckets {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitBuckets {
    pub(crate) fn new() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    pub(crate) fn record(&self, waited: Duration) {
        self.0[bucket(waited)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WaitHistogram {
        WaitHistogram(std::array::from_fn(|index| self.0[index].load(Ordering::Relaxed)))
    }
}

/// A histogram of the waits of a pool's gets, in [`Stats::wait_histogram`](crate::Stats).
///
/// Buckets grow by powers of two from 1 µs; quantiles are read as a bucket's upper bound, so
/// they are within a factor of two of the truth (and never below it).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitHistogram([u64; WAIT_BUCKETS]);

impl WaitHistogram {
    /// The number of waits recorded.
    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The non-empty buckets, shortest first: each bucket's range of wait times (the last
    /// bucket's has no end) and how many waits fell in it.
    pub fn buckets(&self) -> impl Iterator<Item = (std::ops::Range<Duration>, u64)> + '_ {
        self.0.iter().enumerate().filter(|(_, count)| **count > 0).map(|(index, count)| {
            let end = if index + 1 == WAIT_BUCKETS { Duration::MAX } else { lower_bound(index + 1) };
            (lower_bound(index)..end, *count)
        })
    }

    /// The wait that a share `q` (0.0 to 1.0) of waits did not exceed, rounded up to a
    /// bucket's bound; `None` with no waits recorded. A quantile in the open-ended last bucket
    /// reads as that bucket's lower bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, bucket) in self.0.iter().enumerate() {
            seen += bucket;
            if seen >= rank {
                let last = index + 1 == WAIT_BUCKETS;
                return Some(if last { lower_bound(index) } else { lower_bound(index + 1) });
            }
        }
        unreachable!("the rank is at most the count")
    }
}

impl fmt::Debug for WaitHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.buckets().map(|(range, count)| (range.start, count))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fall_in_power_of_two_buckets() {
        let buckets = WaitBuckets::new();
        for micros in [0, 1, 3, 4, 1000, 1000, u64::MAX] {
            buckets.record(Duration::from_micros(micros));
        }
        buckets.record(Duration::MAX);
        let histogram = buckets.snapshot();
        assert_eq!(histogram.count(), 8);
        let ranges: Vec<_> =
            histogram.buckets().map(|(range, count)| (range.start.as_micros(), count)).collect();
        assert_eq!(ranges, [(0, 1), (1, 1), (2, 1), (4, 1), (512, 2), (1 << 22, 2)]);
        assert_eq!(histogram.quantile(0.5), Some(Duration::from_micros(8)));
        assert_eq!(histogram.quantile(0.75), Some(Duration::from_micros(1024)));
        assert_eq!(histogram.quantile(1.0), Some(Duration::from_micros(1 << 22)));
        assert_eq!(WaitHistogram::default().quantile(0.5), None);
    }
}
