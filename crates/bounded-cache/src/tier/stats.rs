//! Statistics of a tiered cache.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::breaker::{Breaker, BreakerState};
use crate::Stats;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) encode_errors: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) announced: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) resubscribed: AtomicU64,
    calls: AtomicU64,
    latency_ns: AtomicU64,
    max_latency_ns: AtomicU64,
}

impl Counters {
    pub(crate) fn latency(&self, d: Duration) {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.latency_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_latency_ns.fetch_max(ns, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, l1: Stats, breaker: BreakerState, b: &Breaker) -> TierStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let calls = get(&self.calls);
        TierStats {
            l1,
            l2_hits: get(&self.hits),
            l2_misses: get(&self.misses),
            l2_corrupt: get(&self.corrupt),
            l2_errors: get(&self.errors),
            l2_timeouts: get(&self.timeouts),
            l2_skipped: get(&self.skipped),
            l2_writes: get(&self.writes),
            encode_errors: get(&self.encode_errors),
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            invalidations_sent: get(&self.announced),
            invalidations_received: get(&self.received),
            resubscriptions: get(&self.resubscribed),
            l2_calls: calls,
            l2_mean_latency: Duration::from_nanos(get(&self.latency_ns).checked_div(calls).unwrap_or(0)),
            l2_max_latency: Duration::from_nanos(get(&self.max_latency_ns)),
            breaker,
            breaker_opened: b.opened.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a [`TieredCache`](super::TieredCache)'s statistics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TierStats {
    /// The in-process tier.
    pub l1: Stats,
    /// Redis lookups that found a value.
    pub l2_hits: u64,
    /// Redis lookups that found nothing usable (absent, or corrupt).
    pub l2_misses: u64,
    /// Values in Redis that could not be decoded (foreign, damaged, another codec or version).
    pub l2_corrupt: u64,
    /// Redis calls that failed.
    pub l2_errors: u64,
    /// Redis calls that took longer than the L2 timeout.
    pub l2_timeouts: u64,
    /// Redis calls skipped because the circuit breaker was open.
    pub l2_skipped: u64,
    /// Values written to Redis.
    pub l2_writes: u64,
    /// Values that could not be encoded (kept in L1 only).
    pub encode_errors: u64,
    /// Loader runs.
    pub loads: u64,
    /// Loader runs that failed.
    pub load_errors: u64,
    /// Invalidations announced to the other instances.
    pub invalidations_sent: u64,
    /// Invalidations received from the other instances.
    pub invalidations_received: u64,
    /// Times the invalidation subscription was re-established (each clears L1).
    pub resubscriptions: u64,
    /// Redis calls made (not skipped).
    pub l2_calls: u64,
    /// Mean time of a Redis call.
    pub l2_mean_latency: Duration,
    /// Longest Redis call.
    pub l2_max_latency: Duration,
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// Times the breaker opened.
    pub breaker_opened: u64,
}

impl fmt::Display for TierStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "L1: {}\nL2: {} hits, {} misses ({} corrupt), {} errors, {} timeouts, {} skipped, {} writes; \
             {} calls, mean {:?}, max {:?}; breaker {:?} (opened {} times)\n\
             loads {} ({} failed); invalidations {} sent, {} received",
            self.l1,
            self.l2_hits,
            self.l2_misses,
            self.l2_corrupt,
            self.l2_errors,
            self.l2_timeouts,
            self.l2_skipped,
            self.l2_writes,
            self.l2_calls,
            self.l2_mean_latency,
            self.l2_max_latency,
            self.breaker,
            self.breaker_opened,
            self.loads,
            self.load_errors,
            self.invalidations_sent,
            self.invalidations_received
        )
    }
}
