//! One shard: a hash index over a slab of entries, ordered by the eviction policy, and the loads
//! in flight for its keys.
//!
//! # Implementation details
//!
//! The index is a `hashbrown::HashTable<u32>` of slab indices (4 bytes and one control byte per
//! entry; the key lives once, in the node). All methods run under the shard's lock, held by
//! [`crate::cell::ShardCell`]. The only user code they call is the key's `Eq`, and only in lookups
//! that have changed nothing yet when it runs; a panic there leaves the shard as it was. The
//! key's `Hash` is never called here: each node keeps the low 32 bits of its key's hash, and the
//! index and the S3-FIFO ghost work from [`table_hash`] of those bits, so the index grows and
//! entries are evicted without user code. (A `Hash` that panicked while hashbrown rehashed in
//! place would lose index entries.) Entries that leave are handed back as [`Removed`] or as a
//! whole [`Slab`], so that their drop and the eviction listener run after the lock is released.
//!
//! The shard is chosen from the top bits of the whole hash times an odd constant (`cache.rs`);
//! the table here takes its buckets from the low bits of the low 32 bits times another, so the
//! keys of one shard still spread over its buckets.

use std::borrow::Borrow;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::cell::HitRecord;
use crate::climber::SharedClimber;
use crate::load::Flight;
use crate::policy::{Policy, Queues};
use crate::slab::Slab;
use crate::stats::{Counters, RemovalCause};

/// The hash the shard's index and the ghost use for a key: the low 32 bits of the key's hash,
/// multiplied by an odd constant so that hashbrown's tag (the top 7 bits) depends on all of them.
#[inline]
pub(crate) fn table_hash(low: u32) -> u64 {
    u64::from(low).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// An entry that left a shard.
pub(crate) struct Removed<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) weight: u64,
    pub(crate) cause: RemovalCause,
}

/// A load in flight for a key of this shard.
struct Flying<K, V> {
    hash: u32,
    key: K,
    flight: Arc<Flight<V>>,
}

pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    pub(crate) slab: Slab<K, V>,
    queues: Queues,
    /// Sum of the live entries' weights.
    pub(crate) weight: u64,
    /// Entries with an expiry time; the sweep is skipped while there are none. Not kept in a
    /// shard whose reads move deadlines (its slab keeps caps): a read may give a deadline to an
    /// entry that had none, so there the sweep always runs.
    expiring: usize,
    /// Where the incremental expiry sweep resumes.
    sweep_cursor: u32,
    /// How many times the shard was emptied by `take_all` (its slab replaced): node indices and
    /// versions read before are meaningless after.
    pub(crate) cleared: u64,
    pub(crate) counters: Counters,
    /// Loads in flight for keys of this shard. A load leaves this table when it stores its value,
    /// or earlier when an invalidation detaches it (then it stores nothing).
    flights: HashTable<Flying<K, V>>,
    /// How long an expired entry stays for stale reads (`Layout::grace`).
    grace: u64,
}

/// What a shard keeps beside each entry, chosen once per cache from its settings.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Layout {
    /// A cap per entry: reads move deadlines (a time to idle or an `Expiry` hook).
    pub(crate) caps: bool,
    /// A refresh time per entry: the cache refreshes or serves stale values (`refresh.rs`).
    pub(crate) refresh: bool,
    /// Nanoseconds an expired entry is kept for a refreshing read to serve while it reloads
    /// (stale-while-revalidate); 0 = none. Other reads see the entry as expired at once.
    pub(crate) grace: u64,
}

/// When a new entry expires: at `at` (0: never), and at the latest at `cap` however reads move
/// its deadline (0: no limit). Times are nanoseconds after the cache's epoch, plus one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Deadline {
    pub(crate) at: u64,
    pub(crate) cap: u64,
    /// When a refreshing read reloads the entry (0: never); kept only by a refreshing cache.
    pub(crate) refresh: u64,
}

impl Deadline {
    /// No deadline, no cap and no refresh: an entry that never expires.
    pub(crate) const NEVER: Deadline = Deadline { at: 0, cap: 0, refresh: 0 };
}

/// What a lookup found.
pub(crate) enum Lookup<R, K, V> {
    Hit(R),
    Miss,
    /// The entry had expired; it has been removed.
    Expired(Removed<K, V>),
}

impl<K, V> Shard<K, V> {
    /// A shard keeping what `layout` says beside each entry, its window sized by `climber`
    /// (W-TinyLFU).
    pub(crate) fn new(policy: Policy, layout: Layout, climber: Arc<SharedClimber>) -> Self {
        Self {
            table: HashTable::new(),
            slab: Slab::new(layout.caps, layout.refresh),
            queues: Queues::new(policy, climber),
            weight: 0,
            expiring: 0,
            sweep_cursor: 0,
            cleared: 0,
            counters: Counters::default(),
            flights: HashTable::new(),
            grace: layout.grace,
        }
    }

    /// Whether an entry expiring at `expires` may be reclaimed at `now`: expired, and past the
    /// grace in which a refreshing read may still serve it.
    #[inline]
    fn reclaimable(&self, expires: u64, now: u64) -> bool {
        expires != 0 && now >= expires.saturating_add(self.grace)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// The eviction policy.
    pub(crate) fn policy(&self) -> Policy {
        self.queues.policy
    }

    /// Whether `idx` heads LRU's queue: the most recent entry, unless hits recorded under the
    /// read lock and not yet replayed moved another in front (`cell.rs` asks this only when its
    /// slot holds none).
    #[inline]
    pub(crate) fn heads_lru_queue(&self, idx: u32) -> bool {
        self.queues.policy == Policy::Lru && self.queues.q[0].head == idx
    }

    /// Passes the read path's hit count so far to the policy (see `Queues::observe_read_hits`).
    #[inline]
    pub(crate) fn observe_read_hits(&mut self, total: u64) {
        let entries = self.slab.len();
        self.queues.observe_read_hits(total, entries);
    }

    /// The read path's hits the policy has counted (W-TinyLFU only; 0 for the others).
    pub(crate) fn read_hits_seen(&self) -> u64 {
        self.queues.read_hits_seen()
    }

    /// W-TinyLFU's samples not yet handed to the cache's climber.
    pub(crate) fn unsent_samples(&self) -> u64 {
        self.queues.unsent_samples()
    }

    /// The cache's climber, which every shard shares.
    pub(crate) fn climber(&self) -> &SharedClimber {
        self.queues.climber()
    }

    /// Replays an LRU hit recorded under the read lock (see `cell.rs`); a record whose node has
    /// since been freed, or given another entry or value, is skipped.
    ///
    /// Only LRU records hits, so this moves the node to the head without asking the policy.
    #[inline]
    pub(crate) fn replay_hit(&mut self, record: HitRecord) {
        debug_assert!(self.queues.policy.records_hits());
        self.queues.bring_to_head(&mut self.slab, record.idx(), Some(record.version()));
    }

    /// Counts an entry's deadline going from `old` to `new` (0: none) in `expiring`.
    #[inline]
    fn track_expiring(&mut self, old: u64, new: u64) {
        if !self.slab.keeps_caps() {
            self.expiring = self.expiring + usize::from(new != 0) - usize::from(old != 0);
        }
    }

    /// Removes the entry at `idx`, already taken off its queue or not (`unlinked`).
    fn take(&mut self, idx: u32, cause: RemovalCause, unlinked: bool) -> Removed<K, V> {
        if !unlinked {
            self.queues.unlink(&mut self.slab, idx);
        }
        let node = self.slab.node(idx);
        let (hash, weight, expires) = (node.hash, node.weight, node.expires());
        match self.table.find_entry(table_hash(hash), |&i| i == idx) {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => unreachable!("a live entry is always indexed"),
        }
        self.track_expiring(expires, 0);
        let (key, value) = self.slab.remove(idx);
        self.weight -= weight;
        self.counters.count_removal(cause);
        Removed { key, value, weight, cause }
    }

    /// Evicts the policy's victim; `now` is consulted to tell an expired victim from a live one.
    pub(crate) fn evict_one(&mut self, now: impl FnOnce() -> u64) -> Option<Removed<K, V>> {
        let idx = self.queues.pop_victim(&mut self.slab)?;
        let node = self.slab.node(idx);
        let cause = if node.expires() != 0 && node.expired_at(now()) {
            RemovalCause::Expired
        } else {
            RemovalCause::Size
        };
        Some(self.take(idx, cause, true))
    }

    /// Checks the next `N` nodes for expired entries, resuming where the last sweep stopped, and
    /// removes those it finds; `None`, without reading the clock (`now`), if no entry may expire.
    #[inline]
    pub(crate) fn sweep<const N: usize>(
        &mut self,
        now: impl FnOnce() -> u64,
    ) -> Option<[Option<Removed<K, V>>; N]> {
        // The check inline, the sweep out of line: most writes of most caches sweep nothing.
        if (self.expiring == 0 && !self.slab.keeps_caps()) || self.slab.capacity() == 0 {
            return None;
        }
        Some(self.sweep_steps(now()))
    }

    /// The sweep itself: the next `N` nodes at `now`.
    #[inline(never)]
    fn sweep_steps<const N: usize>(&mut self, now: u64) -> [Option<Removed<K, V>>; N] {
        let cap = self.slab.capacity() as u32;
        let mut out = [const { None }; N];
        for slot in &mut out {
            let idx = self.sweep_cursor % cap;
            self.sweep_cursor = (idx + 1) % cap;
            let node = self.slab.node(idx);
            if node.is_occupied() && self.reclaimable(node.expires(), now) {
                *slot = Some(self.take(idx, RemovalCause::Expired, false));
            }
        }
        out
    }

    /// Removes every expired entry (past its grace, if the cache serves stale values) into `out`.
    pub(crate) fn remove_expired(&mut self, now: u64, out: &mut Vec<Removed<K, V>>) {
        let grace = self.grace;
        self.remove_where(
            |expires| (expires != 0 && now >= expires.saturating_add(grace)).then_some(RemovalCause::Expired),
            out,
        );
    }

    /// Removes every entry for which `remove(key, value, expires)` holds, into `out`. For the
    /// cache's own predicates only: user predicates never run under the lock (see
    /// [`Shard::snapshot`]).
    pub(crate) fn remove_where(
        &mut self,
        mut remove: impl FnMut(u64) -> Option<RemovalCause>,
        out: &mut Vec<Removed<K, V>>,
    ) {
        for idx in 0..self.slab.capacity() as u32 {
            let node = self.slab.node(idx);
            if !node.is_occupied() {
                continue;
            }
            if let Some(cause) = remove(node.expires()) {
                out.push(self.take(idx, cause, false));
            }
        }
    }

    /// Copies up to `max` live entries, from slab index `from` on, into `out` with their node's
    /// index and version; returns where the next batch starts, `None` after the last.
    pub(crate) fn snapshot(
        &self,
        from: u32,
        max: usize,
        now: u64,
        out: &mut Vec<(u32, u16, K, V)>,
    ) -> Option<u32>
    where
        K: Clone,
        V: Clone,
    {
        let cap = self.slab.capacity() as u32;
        let mut idx = from;
        while idx < cap {
            if out.len() == max {
                return Some(idx);
            }
            let node = self.slab.node(idx);
            if node.is_occupied() && !node.expired_at(now) {
                out.push((idx, node.version, node.key().clone(), node.value().clone()));
            }
            idx += 1;
        }
        None
    }

    /// Whether the node at `idx` still holds the entry seen there with `version` when the shard
    /// had been cleared `cleared` times.
    pub(crate) fn holds(&self, idx: u32, version: u16, cleared: u64) -> bool {
        // A `clear` since the entry was seen replaced the slab: the index may be past its end,
        // or name another entry with the same version.
        if cleared != self.cleared || idx as usize >= self.slab.capacity() {
            return false;
        }
        let node = self.slab.node(idx);
        node.is_occupied() && node.version == version
    }

    /// Removes the entry at `idx` if it is still the one [`Shard::snapshot`] saw there.
    pub(crate) fn remove_seen(&mut self, idx: u32, version: u16, cleared: u64) -> Option<Removed<K, V>> {
        self.holds(idx, version, cleared).then(|| self.take(idx, RemovalCause::Explicit, false))
    }

    /// Takes every entry out, leaving the shard empty: the caller drops them, or tells the
    /// listener of them, after releasing the lock. Loads in flight are detached.
    pub(crate) fn take_all(&mut self) -> Slab<K, V> {
        self.detach_flights();
        self.counters.removed_explicit += self.slab.len() as u64;
        self.table = HashTable::new();
        self.queues.clear();
        self.weight = 0;
        self.expiring = 0;
        self.sweep_cursor = 0;
        self.cleared += 1;
        self.slab.take()
    }

    /// Keys from the next victim to the most protected (for tests and the fuzz model).
    pub(crate) fn eviction_order(&self) -> Vec<&K> {
        let mut order: Vec<&K> =
            self.queues.lru_order(&self.slab).into_iter().map(|i| self.slab.node(i).key()).collect();
        order.reverse();
        order
    }

    /// Heap bytes held by the shard's structures (not counting what keys and values own).
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.slab.allocated_bytes() + self.table.allocation_size() + self.queues.allocated_bytes()
    }

    /// Calls `f` on each live entry.
    pub(crate) fn for_each(&self, now: u64, mut f: impl FnMut(&K, &V)) {
        for idx in 0..self.slab.capacity() as u32 {
            let node = self.slab.node(idx);
            if node.is_occupied() && !node.expired_at(now) {
                f(node.key(), node.value());
            }
        }
    }

    // ----- loads in flight -----

    /// Detaches every load in flight: none of them will store its value.
    pub(crate) fn detach_flights(&mut self) {
        for flying in self.flights.drain() {
            flying.flight.detach();
        }
    }

    /// Whether `flight` is still in the table (no invalidation detached it).
    pub(crate) fn has_flight(&self, hash: u64, flight: &Arc<Flight<V>>) -> bool {
        self.flights.find(table_hash(hash as u32), |f| Arc::ptr_eq(&f.flight, flight)).is_some()
    }

    /// Removes `flight` from the table; false if an invalidation detached it already.
    pub(crate) fn take_flight(&mut self, hash: u64, flight: &Arc<Flight<V>>) -> bool {
        match self.flights.find_entry(table_hash(hash as u32), |f| Arc::ptr_eq(&f.flight, flight)) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }
}

impl<K: Eq, V> Shard<K, V> {
    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slab = &self.slab;
        self.table.find(table_hash(hash as u32), |&i| slab.node(i).key().borrow() == key).copied()
    }

    /// Looks `key` up, counting a hit or a miss and telling the policy of a hit; `read` is given
    /// the slab and the index of the entry hit.
    #[inline]
    pub(crate) fn get<Q, R>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        read: impl FnOnce(&Slab<K, V>, u32) -> R,
    ) -> Lookup<R, K, V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(idx) = self.find(hash, key) else {
            self.counters.misses += 1;
            return Lookup::Miss;
        };
        let expires = self.slab.node(idx).expires();
        if expires != 0 {
            let now = now();
            if now >= expires {
                self.counters.misses += 1;
                if !self.reclaimable(expires, now) {
                    // Kept for a refreshing read to serve while it reloads.
                    return Lookup::Miss;
                }
                return Lookup::Expired(self.take(idx, RemovalCause::Expired, false));
            }
        }
        self.counters.hits += 1;
        self.queues.on_hit(&mut self.slab, idx);
        Lookup::Hit(read(&self.slab, idx))
    }

    /// The index of `key`'s live entry, without counting or touching the policy; an expired entry
    /// is removed and handed back.
    pub(crate) fn find_live<Q>(&mut self, hash: u64, key: &Q, now: u64) -> Result<Option<u32>, Removed<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match self.find(hash, key) {
            Some(idx) if self.slab.node(idx).expired_at(now) => {
                Err(self.take(idx, RemovalCause::Expired, false))
            }
            found => Ok(found),
        }
    }

    /// Whether a live entry for `key` exists, without counting or touching the policy.
    pub(crate) fn contains<Q>(&self, hash: u64, key: &Q, now: impl FnOnce() -> u64) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find(hash, key).is_some_and(|idx| {
            let node = self.slab.node(idx);
            node.expires() == 0 || !node.expired_at(now())
        })
    }

    /// Replaces the value of the entry at `idx`, which holds `key`, and returns the old one (with
    /// the new, unused key). The caller has reserved what `weight` adds to the entry's weight in
    /// the cache's budget, and found `idx` by the key (its `Eq` runs there, before anything
    /// changes: nothing here calls user code). The entry expires at `deadline.at`, which reads
    /// may move up to `deadline.cap`.
    pub(crate) fn replace(
        &mut self,
        idx: u32,
        key: K,
        value: V,
        weight: u64,
        deadline: Deadline,
    ) -> Removed<K, V> {
        self.counters.updates += 1;
        let node = self.slab.node_mut(idx);
        let old_weight = node.weight;
        let old_expires = node.expires();
        let old_value = std::mem::replace(node.value_mut(), value);
        node.set_expires(deadline.at);
        node.bump_version();
        self.slab.set_cap(idx, deadline.cap);
        self.slab.set_refresh_at(idx, deadline.refresh);
        self.track_expiring(old_expires, deadline.at);
        self.queues.reweigh(&mut self.slab, idx, weight);
        self.queues.on_hit(&mut self.slab, idx);
        self.weight = self.weight - old_weight + weight;
        Removed { key, value: old_value, weight: old_weight, cause: RemovalCause::Replaced }
    }

    /// Stores a new entry for `key`, which has none (as [`replace`](Self::replace), the caller
    /// has reserved `weight`).
    pub(crate) fn insert_new(&mut self, hash: u64, key: K, value: V, weight: u64, deadline: Deadline) {
        self.counters.inserts += 1;
        let low = hash as u32;
        let idx = self.slab.insert(key, value, weight, deadline.at, low);
        self.slab.set_cap(idx, deadline.cap);
        self.slab.set_refresh_at(idx, deadline.refresh);
        let slab = &self.slab;
        self.table.insert_unique(table_hash(low), idx, |&i| table_hash(slab.node(i).hash));
        self.queues.on_insert(&mut self.slab, idx, table_hash(low));
        self.weight += weight;
        self.track_expiring(0, deadline.at);
    }

    /// Removes `key`'s entry, if present (expired or not).
    pub(crate) fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<Removed<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let idx = self.find(hash, key)?;
        Some(self.take(idx, RemovalCause::Explicit, false))
    }

    /// The load in flight for `key`, if any.
    pub(crate) fn flight<Q>(&self, hash: u64, key: &Q) -> Option<&Arc<Flight<V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.flights.find(table_hash(hash as u32), |f| f.key.borrow() == key).map(|f| &f.flight)
    }

    /// Registers a load for `key`, which has none in flight.
    pub(crate) fn register_flight(&mut self, hash: u64, key: K, flight: Arc<Flight<V>>) {
        let low = hash as u32;
        self.flights
            .insert_unique(table_hash(low), Flying { hash: low, key, flight }, |f| table_hash(f.hash));
    }

    /// Detaches the load in flight for `key`, if any: it will not store its value.
    pub(crate) fn detach_flight<Q>(&mut self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.flights.is_empty() {
            return;
        }
        if let Ok(entry) = self.flights.find_entry(table_hash(hash as u32), |f| f.key.borrow() == key) {
            entry.remove().0.flight.detach();
        }
    }
}
