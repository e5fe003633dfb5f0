//! The background task: replenishing `min_size`, closing idle and expired connections, health
//! checks, leak detection and metrics.
//!
//! Health checks are spread out rather than done in rounds that stall checkouts: each
//! connection's next check is due at its own jittered time (`engine.rs`), a tick takes at most a
//! quarter of the idle connections that are due (and none while checkouts wait, see
//! `Core::take_stale`), and it validates them concurrently, so a tick costs one validation's time
//! and leaves most of the idle set to checkouts. A check whose task is stopped (the pool shut
//! down) or whose manager panics still hands its connection back to the accounting, through the
//! [`Checking`] guard.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::core::Pooled;
use crate::engine::Inner;
use crate::manager::Manager;
use crate::metrics::Reason;

/// Runs until the pool shuts down (closed, or its last handle dropped).
pub(crate) async fn run<M: Manager>(inner: Arc<Inner<M>>) {
    let interval = inner.config.maintenance_interval;
    let shutdown = inner.shutdown.wait();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            () = tick(&inner) => {}
        }
    }
}

/// One round of maintenance.
pub(crate) async fn tick<M: Manager>(inner: &Arc<Inner<M>>) {
    let config = &inner.config;
    let stale = inner.core.take_stale(Instant::now(), config.idle_timeout);
    for pooled in stale.expired {
        inner.close(pooled, Reason::Lifetime);
    }
    for pooled in stale.idle_timeout {
        inner.close(pooled, Reason::IdleTimeout);
    }
    join_all(stale.check.into_iter().map(|pooled| health_check(inner, pooled))).await;
    let more = inner.core.replenish();
    inner.spawn_connects(more);
    if let Some(threshold) = config.leak_detection_threshold {
        let reported = inner.leaks.report(threshold) as u64;
        inner.counters.leaks_reported.fetch_add(reported, Ordering::Relaxed);
    }
    #[cfg(feature = "metrics")]
    inner
        .counters
        .snapshot(crate::metrics::Status::from_counts(inner.core.counts()))
        .publish(&inner.counters.name);
}

async fn health_check<M: Manager>(inner: &Arc<Inner<M>>, pooled: Pooled<M::Connection>) {
    let mut check = Checking { inner, pooled: Some(pooled) };
    let healthy = inner.validate(check.pooled.as_mut().expect("present until finished")).await;
    let pooled = check.pooled.take().expect("present until finished");
    if healthy {
        let followup = inner.core.checked(Some(pooled));
        inner.follow(followup, Reason::PoolClosed);
    } else {
        // Out of the count first, then closed: closing signals a waiting `close`.
        let followup = inner.core.checked(None);
        inner.close(pooled, Reason::Validation);
        inner.follow(followup, Reason::Validation);
    }
}

/// A connection taken out of the idle set for a health check. Dropped unfinished (the check was
/// stopped at shutdown), it closes the connection and returns it to the accounting.
struct Checking<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    pooled: Option<Pooled<M::Connection>>,
}

impl<M: Manager> Drop for Checking<'_, M> {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            let followup = self.inner.core.checked(None);
            self.inner.close(pooled, Reason::PoolClosed);
            self.inner.follow(followup, Reason::PoolClosed);
        }
    }
}
