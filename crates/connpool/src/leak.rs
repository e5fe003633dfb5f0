//! Leak detection: checkout times of connections in use, kept only when it is on, reported by
//! maintenance once per connection held past the threshold.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

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
