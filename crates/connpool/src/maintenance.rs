//! The background task: replenishing `min_size`, closing idle and expired connections,
//! health checks, leak detection and metrics.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use tokio::time::Instant;

use parking_lot::Mutex;

use crate::manager::Manager;
use crate::metrics::Reason;
use crate::pool::Inner;

/// Checkout times of connections in use, kept only when leak detection is on.
#[derive(Debug)]
pub(crate) struct LeakRegistry {
    held: Option<Mutex<HashMap<u64, (Instant, bool)>>>,
}

impl LeakRegistry {
    pub(crate) fn new(enabled: bool) -> Self {
        Self { held: enabled.then(|| Mutex::new(HashMap::new())) }
    }

    /// Records a checkout; returns its time if leak detection is on.
    pub(crate) fn checked_out(&self, id: u64) -> Option<Instant> {
        let held = self.held.as_ref()?;
        let now = Instant::now();
        held.lock().insert(id, (now, false));
        Some(now)
    }

    pub(crate) fn returned(&self, id: u64, since: Option<Instant>) {
        if let (Some(held), Some(since)) = (&self.held, since) {
            if let Some((_, reported)) = held.lock().remove(&id) {
                if reported {
                    tracing::info!(id, held_for = ?since.elapsed(), "a connection reported as leaked came back");
                }
            }
        }
    }

    /// Logs each connection held longer than `threshold`, once. Returns how many it logged.
    pub(crate) fn report(&self, threshold: Duration) -> usize {
        let Some(held) = &self.held else { return 0 };
        let mut reported = 0;
        for (id, (since, logged)) in held.lock().iter_mut() {
            if !*logged && since.elapsed() >= threshold {
                *logged = true;
                reported += 1;
                tracing::warn!(id, held_for = ?since.elapsed(), ?threshold, "connection held longer than the leak detection threshold; possible leak");
            }
        }
        reported
    }
}

/// Runs until the pool is dropped or closed.
pub(crate) async fn run<M: Manager>(pool: Weak<Inner<M>>) {
    let interval = match pool.upgrade() {
        Some(inner) => inner.config.maintenance_interval,
        None => return,
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = pool.upgrade() else { return };
        if inner.core.counts().closed {
            return;
        }
        tick(&inner).await;
    }
}

/// One round of maintenance.
pub(crate) async fn tick<M: Manager>(inner: &std::sync::Arc<Inner<M>>) {
    let config = &inner.config;
    let stale = inner.core.take_stale(Instant::now(), config.idle_timeout, config.health_check_interval);
    for pooled in stale.expired {
        inner.close(pooled, Reason::Lifetime);
    }
    for pooled in stale.idle_timeout {
        inner.close(pooled, Reason::IdleTimeout);
    }
    for mut pooled in stale.check {
        let healthy = inner.validate(&mut pooled).await;
        let (close, more) = if healthy {
            inner.core.checked(Some(pooled))
        } else {
            inner.close(pooled, Reason::Validation);
            inner.core.checked(None)
        };
        if let Some(pooled) = close {
            inner.close(pooled, Reason::PoolClosed);
        }
        inner.spawn_connects(more);
    }
    let more = inner.core.replenish();
    inner.spawn_connects(more);
    if let Some(threshold) = config.leak_detection_threshold {
        let reported = inner.leaks.report(threshold) as u64;
        inner.counters.leaks_reported.fetch_add(reported, std::sync::atomic::Ordering::Relaxed);
    }
    #[cfg(feature = "metrics")]
    crate::metrics::Status::from_counts(inner.core.counts()).publish();
}
