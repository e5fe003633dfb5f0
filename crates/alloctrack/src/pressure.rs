//! Memory-pressure callbacks: sample memory use against a limit, call back on level changes.

use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cgroup::Cgroup;

/// How close memory use is to the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Below the warning threshold.
    Normal,
    /// At or above the warning threshold: shed optional memory (shrink caches and pools).
    Warning,
    /// At or above the critical threshold: shed everything that can be shed.
    Critical,
}

/// What a monitor measures.
#[derive(Clone)]
#[non_exhaustive]
pub enum Source {
    /// Bytes live in the heap, from the [`Tracking`](crate::Tracking) allocator's counters.
    LiveBytes,
    /// The process's resident set size (Linux).
    Rss,
    /// The larger of the two.
    Max,
    /// A cgroup's working set (its usage minus the inactive file cache the kernel reclaims
    /// first), the figure a container's memory limit is enforced against.
    Cgroup(Cgroup),
    /// Any other figure, such as a cache's own weighed size.
    Custom(Arc<dyn Fn() -> u64 + Send + Sync>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LiveBytes => f.write_str("LiveBytes"),
            Self::Rss => f.write_str("Rss"),
            Self::Max => f.write_str("Max"),
            Self::Cgroup(cgroup) => f.debug_tuple("Cgroup").field(&cgroup.dir()).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Source {
    fn sample(&self) -> u64 {
        match self {
            Self::LiveBytes => crate::snapshot().live_bytes,
            Self::Rss => crate::rss_bytes().unwrap_or(0),
            Self::Max => crate::snapshot().live_bytes.max(crate::rss_bytes().unwrap_or(0)),
            Self::Cgroup(cgroup) => cgroup.working_set().unwrap_or(0),
            Self::Custom(sample) => sample(),
        }
    }
}

/// A change of level, passed to the callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PressureEvent {
    /// The new level.
    pub level: Level,
    /// The level before.
    pub previous: Level,
    /// The sampled memory use, in bytes.
    pub used: u64,
    /// The configured limit, in bytes.
    pub limit: u64,
}

/// A bad monitor configuration.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PressureConfigError {
    /// The limit was zero.
    ZeroLimit,
    /// A threshold was not a fraction in (0, 1].
    Threshold {
        /// Which threshold: [`Level::Warning`] or [`Level::Critical`].
        level: Level,
        /// Its value.
        value: f64,
    },
    /// The warning threshold was not below the critical one.
    WarningNotBelowCritical {
        /// The warning threshold.
        warning: f64,
        /// The critical threshold.
        critical: f64,
    },
    /// The hysteresis was negative or not below the warning threshold.
    Hysteresis(f64),
    /// [`PressureMonitor::detect`] found no limit: no cgroup memory limit and no
    /// `/proc/meminfo`.
    NoLimit,
}

impl fmt::Display for PressureConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroLimit => f.write_str("invalid pressure monitor: the limit is 0 bytes"),
            Self::Threshold { level, value } => {
                let name = if *level == Level::Critical { "critical" } else { "warning" };
                write!(f, "invalid pressure monitor: the {name} threshold {value} is not in (0, 1]")
            }
            Self::WarningNotBelowCritical { warning, critical } => write!(
                f,
                "invalid pressure monitor: the warning threshold {warning} is not below the critical threshold {critical}"
            ),
            Self::NoLimit => f.write_str(
                "invalid pressure monitor: no memory limit found (no cgroup limit, no /proc/meminfo); \
                 give one to PressureMonitor::builder",
            ),
            Self::Hysteresis(value) => write!(
                f,
                "invalid pressure monitor: the hysteresis {value} is negative or not below the warning threshold"
            ),
        }
    }
}

impl std::error::Error for PressureConfigError {}

/// Configures a [`PressureMonitor`].
#[derive(Debug, Clone)]
pub struct PressureMonitorBuilder {
    limit: u64,
    warning: f64,
    critical: f64,
    hysteresis: f64,
    source: Source,
}

impl PressureMonitorBuilder {
    /// The share of the limit at which the level becomes [`Level::Warning`]. Default 0.80.
    pub fn warning(mut self, fraction: f64) -> Self {
        self.warning = fraction;
        self
    }

    /// The share of the limit at which the level becomes [`Level::Critical`]. Default 0.95.
    pub fn critical(mut self, fraction: f64) -> Self {
        self.critical = fraction;
        self
    }

    /// How far below a threshold use must fall before the level drops back, as a share of
    /// the limit, so that use hovering at a threshold does not flap. Default 0.05.
    pub fn hysteresis(mut self, fraction: f64) -> Self {
        self.hysteresis = fraction;
        self
    }

    /// What to measure. Default [`Source::LiveBytes`].
    pub fn source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// Builds the monitor, at level [`Level::Normal`] until its first check.
    ///
    /// # Errors
    /// A [`PressureConfigError`] for a zero limit or thresholds out of order.
    pub fn build(self) -> Result<PressureMonitor, PressureConfigError> {
        let Self { limit, warning, critical, hysteresis, source } = self;
        if limit == 0 {
            return Err(PressureConfigError::ZeroLimit);
        }
        for (level, value) in [(Level::Warning, warning), (Level::Critical, critical)] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(PressureConfigError::Threshold { level, value });
            }
        }
        if warning >= critical {
            return Err(PressureConfigError::WarningNotBelowCritical { warning, critical });
        }
        if !(0.0..warning).contains(&hysteresis) {
            return Err(PressureConfigError::Hysteresis(hysteresis));
        }
        let thresholds = Thresholds { warning, critical, hysteresis };
        Ok(PressureMonitor {
            shared: Arc::new(Shared {
                limit,
                thresholds,
                source,
                level: Mutex::new(Level::Normal),
                delivery: Mutex::new(()),
                callbacks: RwLock::new(Vec::new()),
                panics: AtomicU64::new(0),
            }),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Thresholds {
    warning: f64,
    critical: f64,
    hysteresis: f64,
}

impl Thresholds {
    /// The level after `current` for a use of `ratio` of the limit: up as soon as a threshold
    /// is reached, down only once use is `hysteresis` below it.
    fn next(&self, current: Level, ratio: f64) -> Level {
        let up = if ratio >= self.critical {
            Level::Critical
        } else if ratio >= self.warning {
            Level::Warning
        } else {
            Level::Normal
        };
        if up >= current {
            return up;
        }
        let down = if ratio < self.warning - self.hysteresis {
            Level::Normal
        } else if ratio < self.critical - self.hysteresis {
            Level::Warning
        } else {
            Level::Critical
        };
        down.min(current)
    }
}

type Callback = Arc<dyn Fn(&PressureEvent) + Send + Sync>;

struct Shared {
    limit: u64,
    thresholds: Thresholds,
    source: Source,
    level: Mutex<Level>,
    /// Held by a check from its sample to the end of its delivery, so that events reach the
    /// callbacks in the order of the changes.
    delivery: Mutex<()>,
    callbacks: RwLock<Vec<Callback>>,
    /// Callback calls that panicked (contained).
    panics: AtomicU64,
}

std::thread_local! {
    /// Set while this thread delivers an event: a check from inside a callback must not wait
    /// for its own delivery to end.
    static DELIVERING: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as delivering while it lives.
struct Delivering;

impl Delivering {
    fn enter() -> Self {
        DELIVERING.with(|d| d.set(true));
        Delivering
    }

    fn active() -> bool {
        DELIVERING.with(Cell::get)
    }
}

impl Drop for Delivering {
    fn drop(&mut self) {
        DELIVERING.with(|d| d.set(false));
    }
}

/// Samples memory use against a limit and calls registered callbacks when the level changes
/// (normal, warning, critical), with hysteresis so that they do not flap. Cloning gives
/// another handle to the same monitor.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use alloctrack::{Level, PressureMonitor, Source};
///
/// let used = Arc::new(AtomicU64::new(0));
/// let sample = used.clone();
/// let monitor = PressureMonitor::builder(1000)
///     .source(Source::Custom(Arc::new(move || sample.load(Ordering::Relaxed))))
///     .build()?;
/// monitor.on_pressure(|event| println!("memory pressure: {:?} ({} bytes)", event.level, event.used));
/// used.store(900, Ordering::Relaxed);
/// assert_eq!(monitor.check(), Level::Warning);
/// # Ok::<(), alloctrack::PressureConfigError>(())
/// ```
#[derive(Clone)]
pub struct PressureMonitor {
    shared: Arc<Shared>,
}

impl fmt::Debug for PressureMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PressureMonitor")
            .field("limit", &self.shared.limit)
            .field("source", &self.shared.source)
            .field("level", &self.level())
            .finish_non_exhaustive()
    }
}

impl PressureMonitor {
    /// A builder for where the process runs: inside a cgroup with a memory limit (a container,
    /// a systemd unit with `MemoryMax`), that limit against the cgroup's working set
    /// ([`Source::Cgroup`]); elsewhere the machine's memory against the process's RSS
    /// ([`Source::Rss`]). Thresholds and the rest can still be set on the builder.
    ///
    /// # Errors
    /// [`PressureConfigError::NoLimit`] where neither can be read (other systems than Linux).
    pub fn detect() -> Result<PressureMonitorBuilder, PressureConfigError> {
        if let Some(cgroup) = Cgroup::detect() {
            if let Ok(Some(limit)) = cgroup.limit() {
                return Ok(Self::builder(limit).source(Source::Cgroup(cgroup)));
            }
        }
        let total = crate::rss::total_memory().ok_or(PressureConfigError::NoLimit)?;
        Ok(Self::builder(total).source(Source::Rss))
    }

    /// The limit the monitor measures against, in bytes.
    pub fn limit(&self) -> u64 {
        self.shared.limit
    }

    /// What the monitor measures.
    pub fn source(&self) -> &Source {
        &self.shared.source
    }

    /// A builder for a monitor with a limit of `limit` bytes.
    pub fn builder(limit: u64) -> PressureMonitorBuilder {
        PressureMonitorBuilder { limit, warning: 0.80, critical: 0.95, hysteresis: 0.05, source: Source::LiveBytes }
    }

    /// Registers a callback, called on the checking thread at every change of level, in the
    /// order of the changes (a check waits for an earlier check's delivery to end). A panic in
    /// a callback is caught and counted ([`callback_panics`](Self::callback_panics)); the other
    /// callbacks, and the monitor's thread, go on. A [`check`](Self::check) from inside a
    /// callback returns the current level without sampling.
    pub fn on_pressure(&self, callback: impl Fn(&PressureEvent) + Send + Sync + 'static) {
        self.shared.callbacks.write().unwrap_or_else(|e| e.into_inner()).push(Arc::new(callback));
    }

    /// The level as of the last check.
    pub fn level(&self) -> Level {
        *self.shared.level.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Callback calls that panicked since the monitor was built.
    pub fn callback_panics(&self) -> u64 {
        self.shared.panics.load(Ordering::Relaxed)
    }

    /// Samples memory use now, moves to the new level and calls the callbacks if it changed.
    pub fn check(&self) -> Level {
        if Delivering::active() {
            return self.level();
        }
        let shared = &*self.shared;
        let _delivery = shared.delivery.lock().unwrap_or_else(|e| e.into_inner());
        let used = shared.source.sample();
        let ratio = used as f64 / shared.limit as f64;
        let event = {
            let mut level = shared.level.lock().unwrap_or_else(|e| e.into_inner());
            let previous = *level;
            *level = shared.thresholds.next(previous, ratio);
            if *level == previous {
                return previous;
            }
            PressureEvent { level: *level, previous, used, limit: shared.limit }
        };
        let callbacks = shared.callbacks.read().unwrap_or_else(|e| e.into_inner()).clone();
        let _delivering = Delivering::enter();
        for callback in callbacks {
            if catch_unwind(AssertUnwindSafe(|| callback(&event))).is_err() {
                shared.panics.fetch_add(1, Ordering::Relaxed);
            }
        }
        event.level
    }

    /// Checks every `interval` on a background thread until the returned handle is dropped.
    ///
    /// # Panics
    /// If the thread cannot be spawned.
    pub fn spawn(&self, interval: Duration) -> MonitorThread {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (monitor, signal) = (self.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("alloctrack-pressure".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                loop {
                    monitor.check();
                    let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
                    if *guard {
                        break;
                    }
                    let (guard, _) = wake.wait_timeout(guard, interval).unwrap_or_else(|e| e.into_inner());
                    if *guard {
                        break;
                    }
                }
            })
            .expect("spawning the pressure monitor thread");
        MonitorThread { stop, thread: Some(thread) }
    }
}

/// The background thread of [`PressureMonitor::spawn`]; dropping it stops the thread.
#[derive(Debug)]
pub struct MonitorThread {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MonitorThread {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds { warning: 0.8, critical: 0.95, hysteresis: 0.05 };

    #[test]
    fn levels_rise_at_thresholds_and_fall_with_hysteresis() {
        assert_eq!(T.next(Level::Normal, 0.79), Level::Normal);
        assert_eq!(T.next(Level::Normal, 0.80), Level::Warning);
        assert_eq!(T.next(Level::Normal, 0.97), Level::Critical);
        assert_eq!(T.next(Level::Warning, 0.96), Level::Critical);
        // Falling: stays until 5 points below the threshold.
        assert_eq!(T.next(Level::Warning, 0.78), Level::Warning);
        assert_eq!(T.next(Level::Warning, 0.7499), Level::Normal);
        assert_eq!(T.next(Level::Critical, 0.91), Level::Critical);
        assert_eq!(T.next(Level::Critical, 0.89), Level::Warning);
        assert_eq!(T.next(Level::Critical, 0.10), Level::Normal);
    }
}
