//! The pool's state and counters, and the `metrics` crate integration.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::core::Counts;

/// The pool's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Status {
    /// The configured maximum.
    pub max_size: usize,
    /// The configured minimum.
    pub min_size: usize,
    /// Connections open: idle, in use, or being health-checked.
    pub size: usize,
    /// Idle connections.
    pub idle: usize,
    /// Connections checked out.
    pub in_use: usize,
    /// Checkouts waiting for a connection.
    pub waiting: usize,
    /// Connection attempts in flight.
    pub connecting: usize,
    /// Whether the pool was closed.
    pub closed: bool,
}

impl Status {
    pub(crate) fn from_counts(counts: Counts) -> Self {
        Self {
            max_size: counts.max_size,
            min_size: counts.min_size,
            size: counts.open,
            idle: counts.idle,
            in_use: counts.open - counts.idle - counts.validating,
            waiting: counts.waiting,
            connecting: counts.connecting,
            closed: counts.closed,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool: {} open of {} max, {} in use, {} idle, {} waiting, {} connecting{}",
            self.size,
            self.max_size,
            self.in_use,
            self.idle,
            self.waiting,
            self.connecting,
            if self.closed { ", closed" } else { "" }
        )
    }
}

/// Why connections were closed, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Closed {
    /// Idle beyond `min_size` for longer than `idle_timeout`.
    pub idle_timeout: u64,
    /// Older than their (jittered) `max_lifetime`.
    pub lifetime: u64,
    /// Reported broken by `Manager::is_broken` on return, or marked broken by the user.
    pub broken: u64,
    /// Failed a health check or pre-ping.
    pub failed_validation: u64,
    /// Over the size after a resize.
    pub resize: u64,
    /// Closed with the pool.
    pub pool_closed: u64,
    /// Taken out of the pool for good with `Conn::detach`.
    pub detached: u64,
    /// Checked out by a checkout that was cancelled during its pre-ping (a request/response
    /// connection with an unread reply).
    pub cancelled: u64,
    /// A before-checkout or after-return hook failed, timed out or panicked on it.
    pub hook_failed: u64,
}

impl Closed {
    /// All closed connections.
    pub fn total(&self) -> u64 {
        self.idle_timeout
            + self.lifetime
            + self.broken
            + self.failed_validation
            + self.resize
            + self.pool_closed
            + self.detached
            + self.cancelled
            + self.hook_failed
    }
}

/// A snapshot of the pool's state and counters, from [`Pool::metrics`](crate::Pool::metrics).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// The state.
    pub status: Status,
    /// Checkouts served.
    pub checkouts: u64,
    /// Connections opened.
    pub created: u64,
    /// Connections closed, by reason.
    pub closed: Closed,
    /// Connection attempts that failed (each retry counts).
    pub connect_failures: u64,
    /// Checkouts that timed out.
    pub timeouts: u64,
    /// Checkouts that had to wait.
    pub waits: u64,
    /// Wait-time percentiles of the checkouts that waited (p50, p95, p99), within 1/16 (6%).
    pub wait_p50: Duration,
    /// See `wait_p50`.
    pub wait_p95: Duration,
    /// See `wait_p50`.
    pub wait_p99: Duration,
    /// The longest wait.
    pub wait_max: Duration,
    /// Connections reported held past the leak detection threshold.
    pub leaks_reported: u64,
    /// Calls into the manager that panicked (contained: the pool's accounting and maintenance
    /// went on).
    pub manager_panics: u64,
    /// Lifecycle hooks that failed, timed out or panicked, at any stage.
    pub hook_failures: u64,
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; {} checkouts, {} waited (p50 {:?}, p95 {:?}, p99 {:?}, max {:?}), {} timed out; \
             {} connections opened, {} closed, {} connect failures, {} manager panics",
            self.status,
            self.checkouts,
            self.waits,
            self.wait_p50,
            self.wait_p95,
            self.wait_p99,
            self.wait_max,
            self.timeouts,
            self.created,
            self.closed.total(),
            self.connect_failures,
            self.manager_panics,
        )
    }
}

/// A log-linear histogram of durations in microseconds: 16 sub-buckets per power of two, so
/// a percentile is reported within 1/16 of its value.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    pub(crate) fn new() -> Self {
        Self { buckets: vec![0; (64 * SUB) as usize], count: 0, max: 0 }
    }

    fn index(micros: u64) -> usize {
        if micros < SUB {
            return micros as usize;
        }
        let power = 63 - micros.leading_zeros();
        let sub = (micros >> (power - SUB_BITS)) & (SUB - 1);
        ((power - SUB_BITS + 1) as u64 * SUB + sub) as usize
    }

    /// The largest value that lands in bucket `index`.
    fn upper(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let power = index / SUB + SUB_BITS as u64 - 1;
        let sub = index % SUB;
        ((SUB + sub + 1) << (power - SUB_BITS as u64)) - 1
    }

    pub(crate) fn record(&mut self, wait: Duration) {
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.buckets[Self::index(micros)] += 1;
        self.count += 1;
        self.max = self.max.max(micros);
    }

    pub(crate) fn percentile(&self, p: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(Self::upper(index).min(self.max));
            }
        }
        Duration::from_micros(self.max)
    }

    pub(crate) fn max(&self) -> Duration {
        Duration::from_micros(self.max)
    }
}

/// The counters behind [`Metrics`].
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) checkouts: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
    pub(crate) closed_lifetime: AtomicU64,
    pub(crate) closed_broken: AtomicU64,
    pub(crate) closed_validation: AtomicU64,
    pub(crate) closed_resize: AtomicU64,
    pub(crate) closed_pool: AtomicU64,
    pub(crate) closed_detached: AtomicU64,
    pub(crate) closed_cancelled: AtomicU64,
    pub(crate) closed_hook: AtomicU64,
    pub(crate) leaks_reported: AtomicU64,
    pub(crate) manager_panics: AtomicU64,
    pub(crate) hook_failures: AtomicU64,
    pub(crate) waits: Mutex<Histogram>,
    /// The pool's name, for metric labels and spans.
    pub(crate) name: std::sync::Arc<str>,
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    IdleTimeout,
    Lifetime,
    Broken,
    Validation,
    Resize,
    PoolClosed,
    Detached,
    Cancelled,
    HookFailed,
}

impl Counters {
    pub(crate) fn new(name: std::sync::Arc<str>) -> Self {
        Self {
            name,
            checkouts: AtomicU64::new(0),
            created: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
            closed_lifetime: AtomicU64::new(0),
            closed_broken: AtomicU64::new(0),
            closed_validation: AtomicU64::new(0),
            closed_resize: AtomicU64::new(0),
            closed_pool: AtomicU64::new(0),
            closed_detached: AtomicU64::new(0),
            closed_cancelled: AtomicU64::new(0),
            closed_hook: AtomicU64::new(0),
            leaks_reported: AtomicU64::new(0),
            manager_panics: AtomicU64::new(0),
            hook_failures: AtomicU64::new(0),
            waits: Mutex::new(Histogram::new()),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, reason: Reason) {
        Self::bump(match reason {
            Reason::IdleTimeout => &self.closed_idle,
            Reason::Lifetime => &self.closed_lifetime,
            Reason::Broken => &self.closed_broken,
            Reason::Validation => &self.closed_validation,
            Reason::Resize => &self.closed_resize,
            Reason::PoolClosed => &self.closed_pool,
            Reason::Detached => &self.closed_detached,
            Reason::Cancelled => &self.closed_cancelled,
            Reason::HookFailed => &self.closed_hook,
        });
    }

    pub(crate) fn record_wait(&self, wait: Duration) {
        self.waits.lock().record(wait);
        #[cfg(feature = "metrics")]
        metrics::histogram!("connpool_wait_seconds", "pool" => self.name.to_string())
            .record(wait.as_secs_f64());
    }

    pub(crate) fn snapshot(&self, status: Status) -> Metrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let waits = self.waits.lock();
        Metrics {
            status,
            checkouts: load(&self.checkouts),
            created: load(&self.created),
            closed: Closed {
                idle_timeout: load(&self.closed_idle),
                lifetime: load(&self.closed_lifetime),
                broken: load(&self.closed_broken),
                failed_validation: load(&self.closed_validation),
                resize: load(&self.closed_resize),
                pool_closed: load(&self.closed_pool),
                detached: load(&self.closed_detached),
                cancelled: load(&self.closed_cancelled),
                hook_failed: load(&self.closed_hook),
            },
            connect_failures: load(&self.connect_failures),
            timeouts: load(&self.timeouts),
            waits: waits.count,
            wait_p50: waits.percentile(0.50),
            wait_p95: waits.percentile(0.95),
            wait_p99: waits.percentile(0.99),
            wait_max: waits.max(),
            leaks_reported: load(&self.leaks_reported),
            manager_panics: load(&self.manager_panics),
            hook_failures: load(&self.hook_failures),
        }
    }
}

#[cfg(feature = "metrics")]
impl Metrics {
    /// Publishes the snapshot through the `metrics` crate, every series labelled
    /// `pool = <pool>`: gauges `connpool_size`, `connpool_active`, `connpool_idle`,
    /// `connpool_waiting`, `connpool_connecting`, and counters (absolute) `connpool_checkouts`,
    /// `connpool_created`, `connpool_closed` (also labelled `reason`), `connpool_connect_failures`,
    /// `connpool_timeouts`, `connpool_manager_panics`, `connpool_hook_failures`. Wait times are
    /// recorded as they happen in the histogram `connpool_wait_seconds`. The pool's maintenance
    /// task publishes its own metrics on every tick.
    pub fn publish(&self, pool: &str) {
        let pool = pool.to_string();
        let status = &self.status;
        let gauge = |name: &'static str, value: usize| {
            metrics::gauge!(name, "pool" => pool.clone()).set(value as f64);
        };
        gauge("connpool_size", status.size);
        gauge("connpool_active", status.in_use);
        gauge("connpool_idle", status.idle);
        gauge("connpool_waiting", status.waiting);
        gauge("connpool_connecting", status.connecting);
        let counter = |name: &'static str, value: u64| {
            metrics::counter!(name, "pool" => pool.clone()).absolute(value);
        };
        counter("connpool_checkouts", self.checkouts);
        counter("connpool_created", self.created);
        counter("connpool_connect_failures", self.connect_failures);
        counter("connpool_timeouts", self.timeouts);
        counter("connpool_manager_panics", self.manager_panics);
        counter("connpool_hook_failures", self.hook_failures);
        let closed = &self.closed;
        for (reason, value) in [
            ("idle_timeout", closed.idle_timeout),
            ("lifetime", closed.lifetime),
            ("broken", closed.broken),
            ("failed_validation", closed.failed_validation),
            ("resize", closed.resize),
            ("pool_closed", closed.pool_closed),
            ("detached", closed.detached),
            ("cancelled", closed.cancelled),
            ("hook_failed", closed.hook_failed),
        ] {
            metrics::counter!("connpool_closed", "pool" => pool.clone(), "reason" => reason).absolute(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_within_a_sixteenth() {
        let mut h = Histogram::new();
        for micros in 1..=10_000u64 {
            h.record(Duration::from_micros(micros));
        }
        for (p, exact) in [(0.5, 5_000.0), (0.95, 9_500.0), (0.99, 9_900.0)] {
            let got = h.percentile(p).as_micros() as f64;
            assert!(got >= exact && got <= exact * (1.0 + 1.0 / 16.0), "p{p}: {got} vs {exact}");
        }
        assert_eq!(h.max(), Duration::from_micros(10_000));
        for micros in [0u64, 1, 15, 16, 17, 1000, u64::MAX / 2] {
            assert!(Histogram::upper(Histogram::index(micros)) >= micros, "{micros}");
        }
    }
}
