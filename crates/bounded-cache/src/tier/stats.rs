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
    pub(crate) subscription_losses: AtomicU64,
    pub(crate) invalid_messages: AtomicU64,
    pub(crate) announce_retries: AtomicU64,
    pub(crate) clears_sent: AtomicU64,
    pub(crate) clears_received: AtomicU64,
    pub(crate) stale_writes_skipped: AtomicU64,
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

    pub(crate) fn snapshot(
        &self,
        l1: Stats,
        breaker: BreakerState,
        b: &Breaker,
        announce_pending: usize,
    ) -> TierStats {
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
            subscription_losses: get(&self.subscription_losses),
            invalid_messages: get(&self.invalid_messages),
            announce_retries: get(&self.announce_retries),
            announce_pending,
            clears_sent: get(&self.clears_sent),
            clears_received: get(&self.clears_received),
            stale_writes_skipped: get(&self.stale_writes_skipped),
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
    /// Subscriptions to the invalidation channel established after the cache started serving
    /// (a first one that came late, or one after a loss); each clears L1.
    pub resubscriptions: u64,
    /// Subscriptions found dead (the connection ended, or its heartbeat went unanswered); each
    /// clears L1.
    pub subscription_losses: u64,
    /// Messages on the invalidation channel that did not parse (ignored).
    pub invalid_messages: u64,
    /// Announcements that failed and were sent again.
    pub announce_retries: u64,
    /// Announcements waiting to be sent again now.
    pub announce_pending: usize,
    /// "Clear everything" announcements sent (when too many announcements were pending to keep).
    pub clears_sent: u64,
    /// "Clear everything" announcements received.
    pub clears_received: u64,
    /// Loaded values not written to Redis because the key was invalidated while they loaded.
    pub stale_writes_skipped: u64,
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
             loads {} ({} failed); invalidations {} sent, {} received, {} pending, {} retried; \
             subscription {} lost, {} re-established; {} invalid messages",
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
            self.invalidations_received,
            self.announce_pending,
            self.announce_retries,
            self.subscription_losses,
            self.resubscriptions,
            self.invalid_messages
        )
    }
}
