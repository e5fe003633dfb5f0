//! A snapshot of a pool's counters.

use std::fmt;
use std::time::Duration;

use crate::histogram::WaitHistogram;

/// A snapshot of a pool's state and counters, from [`Pool::stats`](crate::Pool::stats).
///
/// Counters are read one by one without stopping the pool, so under load the figures of one
/// snapshot can be a few operations apart; `idle` and `in_use` come from one pass over the
/// slots, so their sum never exceeds the slots in service (briefly more than `max_size` while a
/// shrink waits for objects in use to come back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The most objects that may exist at once.
    pub max_size: usize,
    /// Objects in the pool, ready to be handed out.
    pub idle: usize,
    /// Objects handed out (or being created, or in transit to a waiter).
    pub in_use: usize,
    /// Callers waiting for an object.
    pub waiting: usize,
    /// Whether the pool was closed.
    pub closed: bool,
    /// Objects created, pre-created ones included.
    pub created: u64,
    /// Existing objects put into the pool: seeded at build time or given to
    /// [`Pool::add`](crate::Pool::add).
    pub added: u64,
    /// Gets served by an object that had been handed out before. Every get is served by a
    /// reuse, a newly created object, or a pre-created object's first use.
    pub reused: u64,
    /// Objects dropped by the pool: on return (the reset refused or panicked, or the guard
    /// discarded them), or because the pool closed or shrank.
    pub discarded: u64,
    /// Objects taken out of the pool for good with [`Guard::detach`](crate::Guard::detach).
    pub detached: u64,
    /// Failed calls of the creator after the pool was built.
    pub create_errors: u64,
    /// Resets that panicked (their objects were discarded).
    pub reset_panics: u64,
    /// The most objects in use at once since the pool was built or
    /// [`Pool::reset_peak`](crate::Pool::reset_peak) was last called. Exact with
    /// [`Builder::exact_peak`](crate::Builder::exact_peak); otherwise (the default) the fast
    /// path keeps no shared count and this is exact when the peak was reached by creating an
    /// object or by making a caller wait (how a pool reaches its limits), and a lower bound
    /// sampled at each `stats()` call when not.
    pub peak_in_use: usize,
    /// Gets that had to wait for an object, timeouts excluded.
    pub waits: u64,
    /// The time those waits took, added up.
    pub total_wait: Duration,
    /// How long those waits took, in buckets: many short waits mean a pool too small, a few
    /// long ones a slow holder.
    pub wait_histogram: WaitHistogram,
    /// Gets that gave up at their timeout.
    pub timeouts: u64,
}

impl Stats {
    /// Objects that exist: idle plus in use.
    pub fn size(&self) -> usize {
        self.idle + self.in_use
    }

    /// The share of `max_size` in use, from 0.0 to 1.0.
    pub fn utilisation(&self) -> f64 {
        self.in_use as f64 / self.max_size.max(1) as f64
    }

    /// The mean time a waiting get waited.
    pub fn mean_wait(&self) -> Duration {
        match u32::try_from(self.waits) {
            Ok(0) => Duration::ZERO,
            Ok(waits) => self.total_wait / waits,
            Err(_) => Duration::from_secs_f64(self.total_wait.as_secs_f64() / self.waits as f64),
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in use {}/{} (peak {}), idle {}, waiting {}; created {}, reused {}, discarded {}, \
             detached {}, create errors {}; waits {} (mean {:?}, p99 {:?}), timeouts {}{}",
            self.in_use,
            self.max_size,
            self.peak_in_use,
            self.idle,
            self.waiting,
            self.created,
            self.reused,
            self.discarded,
            self.detached,
            self.create_errors,
            self.waits,
            self.mean_wait(),
            self.wait_histogram.quantile(0.99).unwrap_or_default(),
            self.timeouts,
            if self.closed { "; closed" } else { "" },
        )
    }
}
