//! A snapshot of the process's allocation counters.

use std::fmt;

use crate::thread::{REGISTRY, installed};

/// The process's allocation figures at one moment, from [`snapshot`].
///
/// How exact each figure is:
/// - `allocations`, `deallocations`, `reallocations`, `bytes_allocated`, `bytes_freed`:
///   exact counts of every call through [`Tracking`](crate::Tracking) since the process
///   started, exited threads included. Read while other threads allocate, the figures are
///   summed over per-thread counters read one after another, not at one instant.
/// - `live_bytes`: `bytes_allocated - bytes_freed`, exact when the other threads are quiet.
/// - `peak_live_bytes`: the highest live total seen, tracked to within 256 KiB per thread
///   (each thread reports its net change in steps of that size) and exact as of each snapshot.
/// - `rss_bytes`: the resident set size the kernel reports, which includes memory the
///   allocator holds but the program has freed, code, and stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Snapshot {
    /// Allocations (`alloc` and `alloc_zeroed`).
    pub allocations: u64,
    /// Deallocations.
    pub deallocations: u64,
    /// Reallocations (each counts its new size as allocated and its old size as freed).
    pub reallocations: u64,
    /// Bytes requested in all.
    pub bytes_allocated: u64,
    /// Bytes freed in all.
    pub bytes_freed: u64,
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// The most bytes live at once.
    pub peak_live_bytes: u64,
    /// The process's resident set size, where the system reports it.
    pub rss_bytes: Option<u64>,
    /// Whether a [`Tracking`](crate::Tracking) allocator is installed; if not, the counts are 0.
    pub tracking: bool,
}

/// Reads the process's allocation figures.
pub fn snapshot() -> Snapshot {
    let totals = REGISTRY.totals();
    let live_bytes = totals.bytes_allocated.saturating_sub(totals.bytes_freed);
    Snapshot {
        allocations: totals.allocations,
        deallocations: totals.deallocations,
        reallocations: totals.reallocations,
        bytes_allocated: totals.bytes_allocated,
        bytes_freed: totals.bytes_freed,
        live_bytes,
        peak_live_bytes: REGISTRY.observe_peak(live_bytes),
        rss_bytes: crate::rss::rss_bytes(),
        tracking: installed(),
    }
}

/// Formats a byte count with binary units: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub(crate) struct Bytes(pub(crate) u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.tracking {
            f.write_str("allocation tracking is off (no alloctrack::Tracking global allocator)")?;
        } else {
            write!(
                f,
                "live {} (peak {}); {} allocations, {} deallocations, {} reallocations; {} allocated in all",
                Bytes(self.live_bytes),
                Bytes(self.peak_live_bytes),
                self.allocations,
                self.deallocations,
                self.reallocations,
                Bytes(self.bytes_allocated),
            )?;
        }
        if let Some(rss) = self.rss_bytes {
            write!(f, "; rss {}", Bytes(rss))?;
        }
        Ok(())
    }
}

#[cfg(feature = "metrics")]
impl Snapshot {
    /// Publishes the figures through the `metrics` crate's installed recorder: gauges
    /// `alloctrack_live_bytes`, `alloctrack_peak_live_bytes` and `alloctrack_rss_bytes`, and
    /// counters `alloctrack_allocations_total`, `alloctrack_deallocations_total`,
    /// `alloctrack_reallocations_total`, `alloctrack_allocated_bytes_total` and
    /// `alloctrack_freed_bytes_total`. Call it periodically (a metrics exporter's tick, or a
    /// [`PressureMonitor`](crate::PressureMonitor) callback).
    pub fn publish(&self) {
        metrics::gauge!("alloctrack_live_bytes").set(self.live_bytes as f64);
        metrics::gauge!("alloctrack_peak_live_bytes").set(self.peak_live_bytes as f64);
        if let Some(rss) = self.rss_bytes {
            metrics::gauge!("alloctrack_rss_bytes").set(rss as f64);
        }
        metrics::counter!("alloctrack_allocations_total").absolute(self.allocations);
        metrics::counter!("alloctrack_deallocations_total").absolute(self.deallocations);
        metrics::counter!("alloctrack_reallocations_total").absolute(self.reallocations);
        metrics::counter!("alloctrack_allocated_bytes_total").absolute(self.bytes_allocated);
        metrics::counter!("alloctrack_freed_bytes_total").absolute(self.bytes_freed);
    }
}

#[cfg(test)]
mod tests {
    use super::Bytes;

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(12 * 1024 * 1024).to_string(), "12.0 MiB");
    }
}
