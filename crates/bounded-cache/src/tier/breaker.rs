//! A circuit breaker for the Redis tier.
//!
//! Closed: calls go through; `threshold` failures in a row open it. Open: calls are skipped until
//! `open_for` has passed; then one call goes through as a probe (half-open). The probe's success
//! closes the breaker, its failure opens it again for another `open_for`.
//!
//! Every call holds a [`Permit`]. A probe whose permit is dropped without an outcome (its
//! caller's future was cancelled mid-call: a client gone, an outer timeout) counts as a failure,
//! so the breaker opens again and probes after another `open_for`, rather than waiting forever
//! for an outcome that will never come.

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

    /// A permit to call Redis now, or `None` while open.
    pub(crate) fn allow(&self) -> Option<Permit<'_>> {
        let mut s = self.state.lock();
        match s.0 {
            BreakerState::Closed => Some(Permit { breaker: self, probe: false, done: false }),
            BreakerState::HalfOpen => None,
            BreakerState::Open if s.2.elapsed() >= self.open_for => {
                s.0 = BreakerState::HalfOpen;
                Some(Permit { breaker: self, probe: true, done: false })
            }
            BreakerState::Open => None,
        }
    }

    fn success(&self) {
        let mut s = self.state.lock();
        s.0 = BreakerState::Closed;
        s.1 = 0;
    }

    fn failure(&self) {
        let mut s = self.state.lock();
        s.1 = s.1.saturating_add(1);
        if s.0 == BreakerState::HalfOpen || (s.0 == BreakerState::Closed && s.1 >= self.threshold) {
            s.0 = BreakerState::Open;
            s.2 = Instant::now();
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One call's permission; report its outcome, or drop it (a dropped probe is a failure).
#[derive(Debug)]
#[must_use = "a dropped probe permit counts as a failure"]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    pub(crate) fn success(mut self) {
        self.done = true;
        self.breaker.success();
    }

    pub(crate) fn failure(mut self) {
        self.done = true;
        self.breaker.failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.failure();
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
            b.allow().expect("closed").failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.allow().expect("closed").failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.allow().is_none());
        tokio::time::advance(Duration::from_millis(1001)).await;
        let probe = b.allow().expect("one probe");
        assert!(b.allow().is_none(), "only one");
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(1001)).await;
        b.allow().expect("a probe").success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.opened.load(Ordering::Relaxed), 2);
        // Closed: a permit dropped without an outcome changes nothing.
        drop(b.allow().expect("closed"));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_unreported_counts_as_a_failure() {
        let b = Breaker::new(1, Duration::from_secs(1));
        b.allow().expect("closed").failure();
        tokio::time::advance(Duration::from_millis(1001)).await;
        // The probe's caller is cancelled: it reports neither success nor failure.
        drop(b.allow().expect("the probe"));
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(b.allow().is_some(), "another probe, one open period later");
    }
}
