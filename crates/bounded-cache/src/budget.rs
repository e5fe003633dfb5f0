//! The byte budget, and eviction across shards to stay within it.
//!
//! # Implementation details
//!
//! The budget is global, kept as one atomic count of *reserved* weight (`used`). An insert
//! reserves its entry's weight first, evicting until the reservation fits, and only then stores
//! the entry; an entry's weight is returned after it has left its shard. So `used` is never above
//! the budget (except while a concurrent [`Cache::set_budget`](crate::Cache::set_budget) lowers
//! it, see below) and never below the weight actually stored: when any call returns, the weighed
//! total is within the budget, whatever other threads do.
//!
//! Eviction is per shard, but the budget is not split: a victim is taken from the inserting key's
//! shard while that shard holds at least its fair share (`budget / shards`) or is the heaviest,
//! else from the heaviest shard (by the weights the shards' write guards publish). That keeps the
//! shards balanced like a split budget would, yet lets a single entry as heavy as the whole
//! budget in, evicting from every shard. No thread ever holds two shard locks.
//!
//! A store (`Inner::put`: an insert, a loaded or computed value, a reload) does the same in fewer
//! steps: under its shard's write lock it finds the key's entry, takes only the weight a
//! replacement adds, and evicts its own shard's victim when that is where a victim would come
//! from; so the common store takes one lock, not one to evict and one to store, and replacing a
//! value in a full cache evicts nothing. What it cannot settle under the lock it reserves as
//! above, with the lock released, and then tries again, keeping what it reserved.
//!
//! # Panics and bounded waiting
//!
//! - A [`Reservation`] is a guard: one that is not stored (the key's `Eq` panicked in the shard,
//!   the load was invalidated, the caller's future was dropped) returns its weight when dropped.
//! - Entries that leave return their weight *before* any user code runs for them (the listener,
//!   their `Drop`), all of a batch at once. The listener is called under `catch_unwind`: a panic is
//!   counted in [`Stats::listener_panics`](crate::Stats::listener_panics) and the next
//!   notification goes ahead. So a panic can never leave weight counted that no entry holds.
//! - When nothing is left to evict and the budget is still taken, what holds it are other threads'
//!   reservations: inserts between their reservation and their store, which then become evictable
//!   entries (or are returned) within a few instructions. An insert waits for them, yielding its
//!   thread, for at most `STARVED_ROUNDS` rounds that find nothing to evict, and then gives its
//!   entry back as [`InsertErrorKind::Contended`]. No path spins without bound.
//! - `set_budget` evicts what is stored and returns. A reservation taken under the old budget may
//!   then land above the new one; the insert that stores it sees `used > budget` and evicts
//!   (`shrink_to_budget`) before it returns, so the budget holds again once the inserts that were
//!   in flight when it shrank have returned.

use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crate::cache::Inner;
use crate::error::InsertErrorKind;
use crate::shard::Removed;
use crate::stats::RemovalCause;
use crate::sync::{AtomicU64, STARVED_ROUNDS, yield_now};
use crate::weigh::Weigher;

/// The budget and the weight reserved against it.
pub(crate) struct Budget {
    /// Weight reserved or stored; see the module docs.
    used: AtomicU64,
    limit: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Self { used: AtomicU64::new(0), limit: AtomicU64::new(limit) }
    }

    pub(crate) fn used(&self) -> u64 {
        self.used.load(Acquire)
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit.load(Acquire)
    }

    /// Sets the limit; returns the previous one.
    pub(crate) fn set_limit(&self, limit: u64) -> u64 {
        self.limit.swap(limit, AcqRel)
    }

    /// Returns the weight of entries that left.
    pub(crate) fn give_back(&self, weight: u64) {
        if weight != 0 {
            self.used.fetch_sub(weight, Release);
        }
    }

    /// A reservation of nothing, to [`join`](Reservation::join) others to.
    pub(crate) fn nothing(&self) -> Reservation<'_> {
        Reservation { budget: self, weight: 0 }
    }

    /// Reserves `weight` if it fits under the limit right now.
    pub(crate) fn try_take(&self, weight: u64) -> Option<Reservation<'_>> {
        let limit = self.limit();
        let mut used = self.used.load(Acquire);
        loop {
            let total = used.checked_add(weight).filter(|&total| total <= limit)?;
            match self.used.compare_exchange_weak(used, total, AcqRel, Acquire) {
                Ok(_) => return Some(Reservation { budget: self, weight }),
                Err(now) => used = now,
            }
        }
    }
}

/// Weight reserved for an entry not stored yet; returned to the budget if dropped unstored.
#[must_use = "a reservation is returned when dropped"]
pub(crate) struct Reservation<'a> {
    budget: &'a Budget,
    weight: u64,
}

impl Reservation<'_> {
    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// Adds `more` (if any) to this reservation.
    pub(crate) fn join(&mut self, more: Option<Self>) {
        if let Some(more) = more {
            self.weight += more.weight;
            std::mem::forget(more);
        }
    }

    /// Returns what this reservation holds beyond `weight` (at most what it holds).
    pub(crate) fn keep(&mut self, weight: u64) {
        let excess = self.weight.saturating_sub(weight);
        self.budget.give_back(excess);
        self.weight -= excess;
    }

    /// The entry is stored: its weight now belongs to it, and is returned when it leaves.
    pub(crate) fn commit(self) {
        std::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.weight);
    }
}

impl<K, V, W, S> Inner<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// Reserves `weight` in the budget for a key hashing to `hash`, evicting as needed.
    ///
    /// # Errors
    /// [`InsertErrorKind::TooHeavy`] if the entry alone weighs more than the budget;
    /// [`InsertErrorKind::Contended`] if other threads' reservations keep the budget taken with
    /// nothing left to evict (see the module docs).
    pub(crate) fn reserve(&self, weight: u64, hash: u64) -> Result<Reservation<'_>, InsertErrorKind> {
        let home = self.shard_index(hash);
        let mut starved = 0;
        loop {
            if weight > self.budget.limit() {
                return Err(InsertErrorKind::TooHeavy);
            }
            if let Some(reservation) = self.budget.try_take(weight) {
                return Ok(reservation);
            }
            if self.evict_one(home) {
                starved = 0;
                continue;
            }
            starved += 1;
            if starved > STARVED_ROUNDS {
                return Err(InsertErrorKind::Contended);
            }
            yield_now();
        }
    }

    /// Evicts while more is stored than the budget allows and there is something to evict.
    pub(crate) fn shrink_to_budget(&self) {
        while self.budget.used() > self.budget.limit() {
            if !self.evict_one(0) {
                return;
            }
        }
    }

    /// Whether an insert into shard `home`, which weighs `home_weight`, evicts from it: if it
    /// holds its fair share of the budget, or no shard weighs more.
    pub(crate) fn evicts_at_home(&self, home: usize, home_weight: u64) -> bool {
        let fair = self.budget.limit() / self.cells.len() as u64;
        home_weight > 0
            && (home_weight >= fair
                || self.cells.iter().enumerate().all(|(i, cell)| i == home || cell.weight() <= home_weight))
    }

    /// Evicts one entry, from `home` if it holds its fair share, else from the heaviest shard.
    /// Returns false if every shard was empty.
    fn evict_one(&self, home: usize) -> bool {
        let cells = &self.cells;
        let home_weight = cells[home].weight();
        let victim = if self.evicts_at_home(home, home_weight) {
            home
        } else {
            let (i, w) = cells
                .iter()
                .enumerate()
                .map(|(i, cell)| (i, cell.weight()))
                .max_by_key(|&(_, w)| w)
                .expect("at least one shard");
            if w == 0 {
                return false;
            }
            i
        };
        // The guard publishes the shard's new weight, so a shard found empty here reads 0 next
        // time and is not chosen again.
        let removed = cells[victim].write().evict_one(|| self.now());
        if let Some(removed) = removed {
            self.release(removed);
        }
        true
    }

    /// Returns a removed entry's weight to the budget, then tells the listener and drops the
    /// entry; with no lock held.
    pub(crate) fn release(&self, removed: Removed<K, V>) {
        self.budget.give_back(removed.weight);
        self.notify(&removed.key, &removed.value, removed.cause);
    }

    /// [`release`](Self::release) for a batch: every weight is returned before the first
    /// notification.
    pub(crate) fn release_all(&self, removed: Vec<Removed<K, V>>) {
        self.budget.give_back(removed.iter().map(|r| r.weight).sum());
        for r in removed {
            self.notify(&r.key, &r.value, r.cause);
        }
    }

    /// Tells the eviction listener, if the cache has one, that an entry left.
    #[inline]
    pub(crate) fn notify(&self, key: &K, value: &V, cause: RemovalCause) {
        // The check inline, the call out of line: most caches have no listener.
        if self.listener.is_some() {
            self.call_listener(key, value, cause);
        }
    }

    /// Calls the eviction listener, containing a panic.
    #[inline(never)]
    fn call_listener(&self, key: &K, value: &V, cause: RemovalCause) {
        let Some(listener) = &self.listener else { return };
        if catch_unwind(AssertUnwindSafe(|| listener(key, value, cause))).is_err() {
            self.counters.listener_panics.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Which shard gives up a victim: these check the rule of the module docs on both paths, the
    //! store's eviction under its own lock and the reservation's with the lock released.

    use crate::{Cache, Policy, Weigher};

    /// Weighs an entry by its value, with no overhead added, so that the test sets the weights.
    struct ValueIsWeight;

    impl Weigher<u64, u64> for ValueIsWeight {
        fn weigh(&self, _: &u64, value: &u64) -> usize {
            *value as usize
        }

        fn counts_overhead(&self) -> bool {
            false
        }
    }

    type TwoShards = Cache<u64, u64, ValueIsWeight>;

    /// An LRU cache of two shards and the given budget, with keys for each shard (ascending).
    fn two_shards(budget: u64) -> (TwoShards, [Vec<u64>; 2]) {
        let cache =
            Cache::builder(budget).with_weigher(ValueIsWeight).policy(Policy::Lru).shards(2).build().unwrap();
        let mut keys = [Vec::new(), Vec::new()];
        for key in 0.. {
            keys[cache.inner.shard_index(cache.inner.hash(&key))].push(key);
            if keys.iter().all(|k| k.len() >= 4) {
                break;
            }
        }
        (cache, keys)
    }

    fn shard_weights(cache: &TwoShards) -> [u64; 2] {
        [cache.inner.cells[0].weight(), cache.inner.cells[1].weight()]
    }

    /// Stores `entries` (key, weight) in order, then `store`; checks that `store` holds and that
    /// of the others `gone` alone has left.
    fn store_after(cache: &TwoShards, entries: &[(u64, u64)], store: (u64, u64), gone: u64) {
        for &(key, weight) in entries {
            cache.insert(key, weight).unwrap();
        }
        cache.insert(store.0, store.1).unwrap();
        assert_eq!(cache.get(&store.0), Some(store.1));
        for &(key, _) in entries {
            assert_eq!(cache.contains(&key), key != gone, "key {key}: {gone} alone leaves");
        }
    }

    #[test]
    fn a_new_entry_evicts_from_its_own_shard_while_that_holds_its_fair_share() {
        let (cache, [a, b]) = two_shards(4);
        // Its own shard's least recent entry leaves.
        store_after(&cache, &[(a[0], 1), (a[1], 1), (b[0], 1), (b[1], 1)], (a[2], 1), a[0]);
        assert_eq!(shard_weights(&cache), [2, 2]);
    }

    #[test]
    fn a_new_entry_in_a_shard_below_its_share_evicts_from_the_heaviest() {
        let (cache, [a, b]) = two_shards(4);
        // The heavier shard's least recent entry leaves.
        store_after(&cache, &[(a[0], 1), (b[0], 1), (b[1], 1), (b[2], 1)], (a[1], 1), b[0]);
        assert_eq!(shard_weights(&cache), [2, 2]);
    }

    #[test]
    fn a_replacement_that_grows_in_a_shard_below_its_share_evicts_from_the_heaviest() {
        let (cache, [a, b]) = two_shards(8);
        store_after(&cache, &[(a[0], 2), (b[0], 3), (b[1], 3)], (a[0], 4), b[0]);
        assert_eq!(shard_weights(&cache), [4, 3]);
    }

    #[test]
    fn a_replacement_that_grows_in_a_shard_at_its_share_evicts_from_its_own_shard() {
        let (cache, [a, b]) = two_shards(8);
        store_after(&cache, &[(a[0], 2), (a[1], 2), (b[0], 4)], (a[1], 3), a[0]);
        assert_eq!(shard_weights(&cache), [3, 4]);
    }
}
