//! Time as a cache reads it.
//!
//! A cache reads the time to stamp and check expiry. By default it calls `Instant::now` directly
//! (no virtual call on the read path); [`CacheBuilder::clock`](crate::CacheBuilder::clock) swaps in
//! any [`Clock`], and [`ManualClock`] is one whose time moves only when told, so that a test of
//! time-to-live behaviour is exact however slowly the machine runs it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A source of monotonic time for a cache.
pub trait Clock: Send + Sync + 'static {
    /// The current instant. Must never go backwards.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock (`Instant::now`), the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that stands still until [`advance`](Self::advance)d. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use bounded_cache::{Cache, ManualClock};
///
/// let clock = ManualClock::new();
/// let cache: Cache<u32, u32> = Cache::builder(1 << 20)
///     .time_to_live(Duration::from_secs(60))
///     .clock(clock.clone())
///     .build()?;
/// cache.insert(1, 10).unwrap();
/// clock.advance(Duration::from_secs(59));
/// assert_eq!(cache.get(&1), Some(10));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(cache.get(&1), None);
/// # Ok::<(), bounded_cache::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ManualClock {
    origin: Instant,
    /// Nanoseconds advanced since `origin`.
    offset: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at the instant of its creation.
    pub fn new() -> Self {
        Self { origin: Instant::now(), offset: Arc::new(AtomicU64::new(0)) }
    }

    /// Moves the time forward by `by` (saturating after about 584 years).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed would do for the counter itself; a cache that reads the clock after a caller
        // advanced it must see the new time, which the caller's own happens-before ensures.
        let mut current = self.offset.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(nanos);
            match self.offset.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The time advanced since the clock was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("elapsed", &self.elapsed()).finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let elapsed = self.elapsed();
        // `Instant + Duration` panics on overflow; past what the platform can represent the
        // clock stands at the last representable step.
        self.origin.checked_add(elapsed).unwrap_or_else(|| {
            let mut step = elapsed;
            let mut at = self.origin;
            while step > Duration::from_nanos(1) {
                step /= 2;
                if let Some(next) = at.checked_add(step) {
                    at = next;
                }
            }
            at
        })
    }
}

/// How a cache reads the time: `Instant::now` unless a clock was given.
pub(crate) struct TimeSource {
    clock: Option<Arc<dyn Clock>>,
    epoch: Instant,
}

impl TimeSource {
    pub(crate) fn new(clock: Option<Arc<dyn Clock>>) -> Self {
        let epoch = clock.as_ref().map_or_else(Instant::now, |c| c.now());
        Self { clock, epoch }
    }

    /// Nanoseconds since the cache's epoch, plus one (0 means "never" in expiry times).
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        let at = match &self.clock {
            None => Instant::now(),
            Some(clock) => clock.now(),
        };
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        nanos.min(u64::MAX as u128 - 1) as u64 + 1
    }
}
