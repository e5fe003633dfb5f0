//! One shard: a hash index over a slab of entries, ordered by the eviction policy.
//!
//! # Implementation details
//!
//! The index is a `hashbrown::HashTable<u32>` of slab indices (4 bytes and one control byte per
//! entry; the key lives once, in the node). All methods run under the shard's lock, held by
//! [`crate::Cache`], and never call user code except `Eq`/`Hash` of the key: entries that leave are
//! handed back as [`Removed`] so that their drop and the eviction listener run after the lock is
//! released.

use std::borrow::Borrow;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::load::Flight;
use crate::policy::{Policy, Queues};
use crate::slab::Slab;
use crate::stats::{Counters, RemovalCause};

/// An entry that left a shard.
pub(crate) struct Removed<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) weight: u64,
    pub(crate) cause: RemovalCause,
}

pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    pub(crate) slab: Slab<K, V>,
    queues: Queues,
    /// Sum of the live entries' weights.
    pub(crate) weight: u64,
    /// Entries with an expiry time; the sweep is skipped while there are none.
    expiring: usize,
    /// Where the incremental expiry sweep resumes.
    sweep_cursor: u32,
    pub(crate) counters: Counters,
    /// Loads in flight for keys of this shard.
    pub(crate) flights: HashTable<(K, Arc<Flight<V>>)>,
}

/// What a lookup found.
pub(crate) enum Lookup<R, K, V> {
    Hit(R),
    Miss,
    /// The entry had expired; it has been removed.
    Expired(Removed<K, V>),
}

impl<K: Eq, V> Shard<K, V> {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            table: HashTable::new(),
            slab: Slab::new(),
            queues: Queues::new(policy),
            weight: 0,
            expiring: 0,
            sweep_cursor: 0,
            counters: Counters::default(),
            flights: HashTable::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// The eviction policy.
    pub(crate) fn policy(&self) -> Policy {
        self.queues.policy
    }

    /// Whether `idx` is already the most recent entry of its queue (an LRU hit on it changes nothing).
    #[inline]
    pub(crate) fn is_most_recent(&self, idx: u32) -> bool {
        self.queues.q[0].head == idx
    }

    /// Replays LRU hits recorded under the read lock (see `cache.rs`), in the order they happened;
    /// a record whose node has since been freed or reused is skipped.
    pub(crate) fn replay_hit(&mut self, record: u64) {
        let (idx, generation) = (record as u32, (record >> 32) as u32);
        if (idx as usize) < self.slab.capacity() {
            let node = self.slab.node(idx);
            if node.is_occupied() && node.generation == generation {
                self.queues.on_hit(&mut self.slab, idx);
            }
        }
    }

    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slab = &self.slab;
        self.table.find(hash, |&i| slab.node(i).key().borrow() == key).copied()
    }

    /// Looks `key` up, counting a hit or a miss and telling the policy of a hit.
    #[inline]
    pub(crate) fn get<Q, R>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        read: impl FnOnce(&V) -> R,
    ) -> Lookup<R, K, V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(idx) = self.find(hash, key) else {
            self.counters.misses += 1;
            return Lookup::Miss;
        };
        let expires = self.slab.node(idx).expires;
        if expires != 0 && now() >= expires {
            self.counters.misses += 1;
            return Lookup::Expired(self.remove_at(hash, idx, RemovalCause::Expired));
        }
        self.counters.hits += 1;
        self.queues.on_hit(&mut self.slab, idx);
        Lookup::Hit(read(self.slab.node(idx).value()))
    }

    /// Whether a live entry for `key` exists, without counting or touching the policy.
    pub(crate) fn contains<Q>(&self, hash: u64, key: &Q, now: impl FnOnce() -> u64) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find(hash, key).is_some_and(|idx| {
            let expires = self.slab.node(idx).expires;
            expires == 0 || now() < expires
        })
    }

    /// Inserts or replaces. The caller has already reserved `weight` in the cache's budget. Returns
    /// the replaced entry (with the new, unused key), if any.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u64,
        expires: u64,
        hash_of: impl Fn(&K) -> u64,
    ) -> Option<Removed<K, V>> {
        if let Some(idx) = self.find(hash, &key) {
            self.counters.updates += 1;
            let node = self.slab.node_mut(idx);
            let old_weight = node.weight;
            let old_expires = node.expires;
            let old_value = std::mem::replace(node.value_mut(), value);
            node.expires = expires;
            self.expiring = self.expiring + usize::from(expires != 0) - usize::from(old_expires != 0);
            self.queues.reweigh(&mut self.slab, idx, weight);
            self.queues.on_hit(&mut self.slab, idx);
            self.weight = self.weight - old_weight + weight;
            return Some(Removed {
                key,
                value: old_value,
                weight: old_weight,
                cause: RemovalCause::Replaced,
            });
        }
        self.counters.inserts += 1;
        let idx = self.slab.insert(key, value, weight, expires);
        let slab = &self.slab;
        self.table.insert_unique(hash, idx, |&i| hash_of(slab.node(i).key()));
        self.queues.on_insert(&mut self.slab, idx, hash);
        self.weight += weight;
        self.expiring += usize::from(expires != 0);
        None
    }

    /// Removes the entry at `idx`, already taken off its queue or not (`unlinked`).
    fn take(&mut self, hash: u64, idx: u32, cause: RemovalCause, unlinked: bool) -> Removed<K, V> {
        if !unlinked {
            self.queues.unlink(&mut self.slab, idx);
        }
        match self.table.find_entry(hash, |&i| i == idx) {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => unreachable!("a live entry is always indexed"),
        }
        let node = self.slab.node(idx);
        let weight = node.weight;
        self.expiring -= usize::from(node.expires != 0);
        let (key, value) = self.slab.remove(idx);
        self.weight -= weight;
        self.counters.count_removal(cause);
        Removed { key, value, weight, cause }
    }

    fn remove_at(&mut self, hash: u64, idx: u32, cause: RemovalCause) -> Removed<K, V> {
        self.take(hash, idx, cause, false)
    }

    /// Removes `key`'s entry, if present (expired or not).
    pub(crate) fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<Removed<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let idx = self.find(hash, key)?;
        Some(self.remove_at(hash, idx, RemovalCause::Explicit))
    }

    /// Evicts the policy's victim; `now` is consulted to tell an expired victim from a live one.
    pub(crate) fn evict_one(
        &mut self,
        now: impl FnOnce() -> u64,
        hash_of: impl Fn(&K) -> u64,
    ) -> Option<Removed<K, V>> {
        let idx = self.queues.pop_victim(&mut self.slab, &hash_of)?;
        let node = self.slab.node(idx);
        let expires = node.expires;
        let hash = hash_of(node.key());
        let cause = if expires != 0 && now() >= expires { RemovalCause::Expired } else { RemovalCause::Size };
        Some(self.take(hash, idx, cause, true))
    }

    /// Checks the next `N` nodes for expired entries, resuming where the last sweep stopped, and
    /// removes those it finds.
    pub(crate) fn sweep<const N: usize>(
        &mut self,
        now: u64,
        hash_of: impl Fn(&K) -> u64,
    ) -> [Option<Removed<K, V>>; N] {
        let mut out = [const { None }; N];
        let cap = self.slab.capacity() as u32;
        if self.expiring == 0 || cap == 0 {
            return out;
        }
        for slot in &mut out {
            let idx = self.sweep_cursor % cap;
            self.sweep_cursor = (idx + 1) % cap;
            let node = self.slab.node(idx);
            if node.is_occupied() && node.expires != 0 && now >= node.expires {
                let hash = hash_of(node.key());
                *slot = Some(self.remove_at(hash, idx, RemovalCause::Expired));
            }
        }
        out
    }

    /// Removes every entry for which `remove(key, value)` holds, into `out`.
    pub(crate) fn remove_where(
        &mut self,
        mut remove: impl FnMut(&K, &V, u64) -> Option<RemovalCause>,
        hash_of: impl Fn(&K) -> u64,
        out: &mut Vec<Removed<K, V>>,
    ) {
        for idx in 0..self.slab.capacity() as u32 {
            let node = self.slab.node(idx);
            if !node.is_occupied() {
                continue;
            }
            if let Some(cause) = remove(node.key(), node.value(), node.expires) {
                let hash = hash_of(node.key());
                out.push(self.remove_at(hash, idx, cause));
            }
        }
    }

    /// Removes everything and frees the storage; the entries are handed to `out` if given, else
    /// dropped here.
    pub(crate) fn clear(&mut self, out: Option<&mut Vec<Removed<K, V>>>) {
        self.counters.removed_explicit += self.slab.len() as u64;
        if let Some(out) = out {
            for idx in 0..self.slab.capacity() as u32 {
                let weight = self.slab.node(idx).weight;
                if weight != 0 {
                    let (key, value) = self.slab.remove(idx);
                    out.push(Removed { key, value, weight, cause: RemovalCause::Explicit });
                }
            }
        }
        self.table = HashTable::new();
        self.slab.clear();
        self.queues.clear();
        self.weight = 0;
        self.expiring = 0;
        self.sweep_cursor = 0;
    }

    /// Calls `f` on each live entry.
    pub(crate) fn for_each(&self, now: u64, mut f: impl FnMut(&K, &V)) {
        for idx in 0..self.slab.capacity() as u32 {
            let node = self.slab.node(idx);
            if node.is_occupied() && (node.expires == 0 || now < node.expires) {
                f(node.key(), node.value());
            }
        }
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
}
