//! Announcements on the invalidation channel, and the retries of those that failed.
//!
//! Messages are `i:<instance>:<key>` (drop `key` from L1) and `c:<instance>` (clear L1), the
//! instance as 16 lowercase hex digits; see `listener.rs` for how they are parsed.
//!
//! An invalidation whose announcement (or whose removal from Redis) failed is queued, once per
//! key, and a background task sends it again: 50 ms after the failure, then backing off to every
//! 2 s, until it goes through, or until `l1_ttl` has passed (every copy has expired by then). If
//! more than [`MAX_PENDING`] wait, the queue is dropped for one "clear everything" announcement,
//! retried the same way.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Codec, Inner};

/// Announcements kept for a retry, at most.
pub(crate) const MAX_PENDING: usize = 10_000;
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// The message that invalidates `key`.
pub(crate) fn invalidate_message(instance: u64, key: &str) -> String {
    format!("i:{instance:016x}:{key}")
}

/// The message that clears every L1.
pub(crate) fn clear_message(instance: u64) -> String {
    format!("c:{instance:016x}")
}

struct Queued {
    key: String,
    /// The key must still be removed from Redis.
    delete: bool,
    since: Instant,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    keys: HashSet<String>,
    /// Too many waited: one "clear everything" goes out instead.
    clear_all: bool,
}

/// Announcements waiting to be sent again.
#[derive(Default)]
pub(crate) struct Pending {
    state: parking_lot::Mutex<State>,
    /// Shared with the retry task, which waits on it without holding the cache.
    wake: Arc<Notify>,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        let state = self.state.lock();
        state.queue.len() + usize::from(state.clear_all)
    }

    fn push(&self, key: &str, delete: bool) {
        let mut state = self.state.lock();
        if state.clear_all {
            return;
        }
        if state.keys.contains(key) {
            // A delete joins the queued announcement of the key (a set needs nothing more).
            if delete {
                if let Some(queued) = state.queue.iter_mut().find(|q| q.key == key) {
                    queued.delete = true;
                }
            }
            return;
        }
        if state.queue.len() >= MAX_PENDING {
            state.queue.clear();
            state.keys.clear();
            state.clear_all = true;
        } else {
            state.keys.insert(key.to_string());
            state.queue.push_back(Queued { key: key.to_string(), delete, since: Instant::now() });
        }
        drop(state);
        self.wake.notify_one();
    }
}

impl<V, C> Inner<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// Tells the other instances that `key` changed; `delete` if the key must still be removed
    /// from Redis (the write or removal that preceded failed). Queued for a retry if it fails.
    pub(super) async fn announce(&self, key: &str, delete: bool) {
        if self.try_announce(key, delete).await {
            self.counters.announced.fetch_add(1, Ordering::Relaxed);
        } else {
            self.pending.push(key, delete);
        }
    }

    async fn try_announce(&self, key: &str, delete: bool) -> bool {
        (!delete || self.l2_del(key).await) && self.publish(&invalidate_message(self.instance, key)).await
    }

    /// One round of retries: true if nothing waits any more.
    async fn retry_pending(&self) -> bool {
        let clear_all = self.pending.state.lock().clear_all;
        if clear_all {
            if !self.publish(&clear_message(self.instance)).await {
                return false;
            }
            self.counters.clears_sent.fetch_add(1, Ordering::Relaxed);
            self.pending.state.lock().clear_all = false;
        }
        loop {
            let next = {
                let mut state = self.pending.state.lock();
                let expired = |q: &Queued| self.l1_ttl.is_some_and(|ttl| q.since.elapsed() >= ttl);
                while state.queue.front().is_some_and(expired) {
                    let gone = state.queue.pop_front().expect("checked");
                    state.keys.remove(&gone.key);
                }
                state.queue.front().map(|q| (q.key.clone(), q.delete))
            };
            let Some((key, delete)) = next else { return true };
            self.counters.announce_retries.fetch_add(1, Ordering::Relaxed);
            if !self.try_announce(&key, delete).await {
                return false;
            }
            self.counters.announced.fetch_add(1, Ordering::Relaxed);
            let mut state = self.pending.state.lock();
            if state.queue.front().is_some_and(|q| q.key == key) {
                state.queue.pop_front();
                state.keys.remove(&key);
            }
        }
    }
}

/// Sends the pending announcements again, backing off while they fail. Ends with the cache.
pub(crate) async fn run<V, C>(cache: Weak<Inner<V, C>>)
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    let mut delay = FIRST_RETRY;
    loop {
        let Some(inner) = cache.upgrade() else { return };
        if inner.pending.len() == 0 {
            let wake = Arc::clone(&inner.pending.wake);
            drop(inner);
            wake.notified().await;
            delay = FIRST_RETRY;
            // A failure just happened: give Redis a moment before the first retry.
            tokio::time::sleep(delay).await;
            continue;
        }
        let done = inner.retry_pending().await;
        drop(inner);
        if done {
            delay = FIRST_RETRY;
        } else {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(LAST_RETRY);
        }
    }
}
