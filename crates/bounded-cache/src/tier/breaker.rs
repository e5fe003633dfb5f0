//! A circuit breaker for the Redis tier.
//!
//! Closed: calls go through; `threshold` failures in a row open it. Open: calls are skipped until
//! `open_for` has passed; then one call goes through as a probe (half-open). The probe's success
//! closes the breaker, its failure opens it again for another `open_for`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go to Redis.
    Closed,
    /// Calls are skipped.
    Open,
    /// One probe call is in flight.
    HalfOpen,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<(BreakerState, u32, Instant)>,
    pub(crate) opened: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold,
            open_for,
            state: Mutex::new((BreakerState::Closed, 0, Instant::now())),
            opened: AtomicU64::new(0),
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state.lock().0
    }

    /// Whether a call may go to Redis now.
    pub(crate) fn allow(&self) -> bool {
        let mut s = self.state.lock();
        match s.0 {
            BreakerState::Closed => true,
            BreakerState::HalfOpen => false,
            BreakerState::Open if s.2.elapsed() >= self.open_for => {
                s.0 = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open => false,
        }
    }

    pub(crate) fn success(&self) {
        let mut s = self.state.lock();
        s.0 = BreakerState::Closed;
        s.1 = 0;
    }

    pub(crate) fn failure(&self) {
        let mut s = self.state.lock();
        s.1 = s.1.saturating_add(1);
        if s.0 == BreakerState::HalfOpen || (s.0 == BreakerState::Closed && s.1 >= self.threshold) {
            s.0 = BreakerState::Open;
            s.2 = Instant::now();
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_probes_later() {
        let b = Breaker::new(3, Duration::from_secs(1));
        for _ in 0..2 {
            assert!(b.allow());
            b.failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one");
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.opened.load(Ordering::Relaxed), 2);
    }
}
