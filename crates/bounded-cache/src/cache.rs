//! The public face: [`Cache`], over the shards in `shard.rs`.
//!
//! # Implementation details
//!
//! The budget is global, kept as one atomic count of *reserved* weight (`used`). An insert reserves
//! its entry's weight first, evicting until the reservation fits, and only then stores the entry; an
//! entry's weight is released after it has left its shard. So `used` is never above the budget
//! (except for the moment a concurrent [`Cache::set_budget`] lowers it, which then evicts) and is
//! never below the weight actually stored: when any call returns, the weighed total is within the
//! budget, whatever other threads do.
//!
//! Eviction is per shard, but the budget is not split: a victim is taken from the inserting key's
//! shard while that shard holds at least its fair share (`budget / shards`), else from the heaviest
//! shard. That keeps the shards balanced like a split budget would, yet lets a single entry as heavy
//! as the whole budget in, evicting from every shard. No thread ever holds two shard locks.
//!
//! Lookups take a shard's read lock; see [`Slot`] for how LRU hits are recorded there and replayed
//! under the write lock.

use std::borrow::Borrow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockWriteGuard};

use crate::builder::{CacheBuilder, DefaultHashBuilder};
use crate::error::TooHeavy;
use crate::load::{Flight, Outcome, SharedError};
use crate::policy::Policy;
use crate::shard::{Lookup, Removed, Shard};
use crate::slab::Node;
use crate::stats::{RemovalCause, Stats};
use crate::weigh::{DefaultWeigher, Weigher};

pub(crate) type Listener<K, V> = Box<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// Expired entries checked per insert by the incremental sweep.
const SWEEP_STEPS: usize = 4;

/// A shard, a copy of its weight that other threads read without the lock, the counters and the
/// hit buffer of its read path; on cache lines of its own.
///
/// Lookups take the shard's read lock, so hits on one shard run in parallel. A hit that changes
/// the policy's order (LRU) cannot reorder the queue under a read lock: it is recorded in
/// `reads` and replayed, in order, by the next thread that takes the write lock, before anything
/// else (an insert, an eviction, a removal...), so eviction decisions always see every recorded
/// hit. When the buffer is full, the hit's thread takes the write lock if it is free and replays;
/// if it is not, that hit is dropped, so under contention LRU is approximate (as in Caffeine). On
/// one thread nothing is ever dropped and the order is exact (the fuzz target checks it).
#[repr(align(128))]
struct Slot<K, V> {
    shard: RwLock<Shard<K, V>>,
    weight: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    reads: ReadBuffer,
}

/// Hits recorded under the read lock: `(generation << 32) | index`, 0 for an empty slot.
struct ReadBuffer {
    records: [AtomicU64; READ_BUFFER],
    next: std::sync::atomic::AtomicUsize,
}

/// Attempts to take a write lock before blocking.
const SPIN: usize = 200;

/// Hits recorded per shard before a replay.
const READ_BUFFER: usize = 32;

impl ReadBuffer {
    fn new() -> Self {
        Self {
            records: std::array::from_fn(|_| AtomicU64::new(0)),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Records a hit; false if the buffer is full.
    #[inline]
    fn push(&self, record: u64) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i < READ_BUFFER {
            self.records[i].store(record, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

impl<K: Eq, V> Slot<K, V> {
    fn new(policy: Policy) -> Self {
        Self {
            shard: RwLock::new(Shard::new(policy)),
            weight: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            reads: ReadBuffer::new(),
        }
    }

    /// The shard's write lock, with the recorded hits replayed first.
    #[inline]
    fn write(&self) -> RwLockWriteGuard<'_, Shard<K, V>> {
        let mut shard = self.lock_exclusive();
        self.replay(&mut shard);
        shard
    }

    /// The write lock. Locks are held for tens of nanoseconds (a replay of recorded hits at most a
    /// few microseconds), so spinning a little beats parking, which costs system calls.
    fn lock_exclusive(&self) -> RwLockWriteGuard<'_, Shard<K, V>> {
        for _ in 0..SPIN {
            if let Some(shard) = self.shard.try_write() {
                return shard;
            }
            std::hint::spin_loop();
        }
        self.shard.write()
    }

    /// The read lock, spinning a little before blocking, as [`Slot::lock_exclusive`] does.
    #[inline]
    fn lock_shared(&self) -> parking_lot::RwLockReadGuard<'_, Shard<K, V>> {
        if let Some(shard) = self.shard.try_read() {
            return shard;
        }
        for _ in 0..SPIN {
            std::hint::spin_loop();
            if let Some(shard) = self.shard.try_read() {
                return shard;
            }
        }
        self.shard.read()
    }

    fn replay(&self, shard: &mut Shard<K, V>) {
        // The records were stored under the read lock, released before this write lock was taken,
        // so they are all visible here.
        let n = self.reads.next.load(Ordering::Relaxed).min(READ_BUFFER);
        for record in &self.reads.records[..n] {
            let record = record.swap(0, Ordering::Relaxed);
            if record != 0 {
                shard.replay_hit(record);
            }
        }
        self.reads.next.store(0, Ordering::Relaxed);
    }
}

struct Inner<K, V, W, S> {
    slots: Box<[Slot<K, V>]>,
    shard_mask: usize,
    /// Weight reserved or stored; see the module docs.
    used: AtomicU64,
    budget: AtomicU64,
    hasher: S,
    weigher: W,
    /// Added to each entry's weight (0 under `UnitWeigher`).
    overhead: u64,
    /// Default time to live, in nanoseconds; 0 = none.
    ttl: u64,
    epoch: Instant,
    listener: Option<Listener<K, V>>,
    policy: Policy,
    rejected: AtomicU64,
    loads: AtomicU64,
    load_failures: AtomicU64,
    coalesced: AtomicU64,
}

/// A concurrent cache with a hard byte budget.
///
/// Cloning a `Cache` is cheap and gives another handle to the same cache.
///
/// ```
/// use bounded_cache::Cache;
///
/// let cache: Cache<String, String> = Cache::new(1 << 20); // 1 MiB
/// cache.insert("greeting".to_string(), "hello".to_string()).unwrap();
/// assert_eq!(cache.get("greeting").as_deref(), Some("hello"));
/// assert!(cache.weighed_size() <= cache.budget());
/// ```
pub struct Cache<K, V, W = DefaultWeigher, S = DefaultHashBuilder> {
    inner: Arc<Inner<K, V, W, S>>,
}

impl<K, V, W, S> Clone for Cache<K, V, W, S> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<K, V, W, S> fmt::Debug for Cache<K, V, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("budget", &self.inner.budget.load(Ordering::Relaxed))
            .field("used", &self.inner.used.load(Ordering::Relaxed))
            .field("shards", &self.inner.slots.len())
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + crate::Weigh,
    V: crate::Weigh,
{
    /// A cache of `budget` bytes with the default settings (LRU, no TTL, weights from
    /// [`Weigh`](crate::Weigh)).
    ///
    /// # Panics
    /// If `budget` is 0.
    pub fn new(budget: u64) -> Self {
        Self::builder(budget).build().expect("a cache budget must be at least 1 byte")
    }
}

impl<K, V> Cache<K, V> {
    /// Starts configuring a cache of `budget` bytes.
    pub fn builder(budget: u64) -> CacheBuilder<K, V> {
        CacheBuilder::new(budget)
    }
}

/// The bytes a cache of `K` and `V` spends on each entry beyond what the key and value own on the
/// heap: the node (key and value inline, weight, expiry, two queue links, policy bits), the index
/// slot (4 bytes and a control byte, at hashbrown's worst load factor of 7/16 just after growing),
/// and for S3-FIFO the ghost's 8 bytes.
fn entry_overhead<K, V>(policy: Policy) -> u64 {
    let node = size_of::<Node<K, V>>();
    let index = (5usize * 16).div_ceil(7);
    (node + index + policy.extra_overhead()) as u64
}

impl<K, V, W, S> Cache<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    pub(crate) fn from_builder(b: CacheBuilder<K, V, W, S>) -> Self {
        let overhead = if b.weigher.counts_overhead() { entry_overhead::<K, V>(b.policy) } else { 0 };
        let shards = b.shards.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            // Let each shard hold a few dozen entries of at least 64 heap bytes at least.
            let min_shard = 64 * if overhead == 0 { 1 } else { overhead + 64 };
            let by_size = (b.budget / min_shard).max(1) as usize;
            let by_size = if by_size.is_power_of_two() { by_size } else { by_size.next_power_of_two() / 2 };
            (cpus * 4).next_power_of_two().min(64).min(by_size)
        });
        let slots = (0..shards).map(|_| Slot::new(b.policy)).collect();
        Self {
            inner: Arc::new(Inner {
                slots,
                shard_mask: shards - 1,
                used: AtomicU64::new(0),
                budget: AtomicU64::new(b.budget),
                hasher: b.hasher,
                weigher: b.weigher,
                overhead,
                ttl: b.ttl.map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64),
                epoch: Instant::now(),
                listener: b.listener,
                policy: b.policy,
                rejected: AtomicU64::new(0),
                loads: AtomicU64::new(0),
                load_failures: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
            }),
        }
    }

    // ----- reads -----

    /// A clone of the value for `key`, if present and not expired. Counts a hit or a miss and
    /// refreshes the entry for the eviction policy.
    ///
    /// For large values, store an `Arc<T>` so that the clone is a reference count.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get_with(key, V::clone)
    }

    /// Calls `read` on the value for `key`, if present and not expired, and returns its result. The
    /// shard is locked while `read` runs: keep it short and do not call the cache from it.
    #[inline]
    pub fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        let slot = self.slot(hash);
        let read = match self.get_shared(hash, key, read) {
            Shared::Hit(value) => return Some(value),
            Shared::Miss(_) => {
                slot.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Shared::Expired(read) => read,
        };
        // Expired: remove it under the write lock (unless someone did meanwhile).
        let mut shard = slot.write();
        match shard.get(hash, key, || self.now(), read) {
            Lookup::Hit(r) => Some(r),
            Lookup::Miss => None,
            Lookup::Expired(removed) => {
                slot.weight.store(shard.weight, Ordering::Relaxed);
                drop(shard);
                self.release(removed);
                None
            }
        }
    }

    /// The lookup under the shard's read lock. Counts a hit (and records it for the policy) but not
    /// a miss, so that a caller going on to the write lock counts its miss there once.
    #[inline]
    fn get_shared<Q, R, F>(&self, hash: u64, key: &Q, read: F) -> Shared<R, F>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        F: FnOnce(&V) -> R,
    {
        let slot = self.slot(hash);
        let shard = slot.lock_shared();
        let Some(idx) = shard.find(hash, key) else { return Shared::Miss(read) };
        let node = shard.slab.node(idx);
        if node.expires != 0 && self.now() >= node.expires {
            return Shared::Expired(read);
        }
        let value = read(node.value());
        let overflow = match shard.policy() {
            Policy::Lru => {
                let record = u64::from(node.generation) << 32 | u64::from(idx);
                (!shard.is_most_recent(idx) && !slot.reads.push(record)).then_some(record)
            }
            Policy::S3Fifo => {
                crate::policy::hit_shared(node);
                None
            }
        };
        slot.hits.fetch_add(1, Ordering::Relaxed);
        drop(shard);
        if let Some(record) = overflow
            && let Some(mut shard) = slot.shard.try_write()
        {
            slot.replay(&mut shard);
            shard.replay_hit(record);
        }
        Shared::Hit(value)
    }

    /// Whether a live entry for `key` exists; not counted, and not a use for the policy.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        self.slot(hash).shard.read().contains(hash, key, || self.now())
    }

    // ----- writes -----

    /// Inserts or replaces the value for `key`, with the cache's default time to live.
    ///
    /// # Errors
    /// [`TooHeavy`], holding the key and value, if the entry alone weighs more than the budget.
    pub fn insert(&self, key: K, value: V) -> Result<(), TooHeavy<K, V>> {
        self.insert_expiring(key, value, self.inner.ttl)
    }

    /// Inserts or replaces the value for `key`, expiring after `ttl`.
    ///
    /// # Errors
    /// [`TooHeavy`], holding the key and value, if the entry alone weighs more than the budget.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), TooHeavy<K, V>> {
        self.insert_expiring(key, value, ttl.as_nanos().clamp(1, u64::MAX as u128) as u64)
    }

    /// Inserts every entry of `entries` (cache warming). Entries heavier than the budget come back.
    pub fn insert_all(&self, entries: impl IntoIterator<Item = (K, V)>) -> Vec<TooHeavy<K, V>> {
        entries.into_iter().filter_map(|(k, v)| self.insert(k, v).err()).collect()
    }

    fn insert_expiring(&self, key: K, value: V, ttl: u64) -> Result<(), TooHeavy<K, V>> {
        let hash = self.inner.hasher.hash_one(&key);
        let weight = self.weigh(&key, &value);
        if let Err(budget) = self.reserve(weight, hash) {
            self.inner.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(TooHeavy { key, value, weight, budget });
        }
        self.store(hash, key, value, weight, ttl, None);
        Ok(())
    }

    /// Stores an entry whose weight is reserved; if `flight` is given, removes it in the same
    /// critical section.
    fn store(&self, hash: u64, key: K, value: V, weight: u64, ttl: u64, flight: Option<&Arc<Flight<V>>>) {
        let expires = if ttl == 0 { 0 } else { self.now().saturating_add(ttl) };
        let slot = self.slot(hash);
        let (replaced, swept) = {
            let mut shard = slot.write();
            let replaced = shard.insert(hash, key, value, weight, expires, |k| self.inner.hasher.hash_one(k));
            if let Some(flight) = flight {
                remove_flight(&mut shard, hash, flight);
            }
            let swept = shard.sweep::<SWEEP_STEPS>(self.now(), |k| self.inner.hasher.hash_one(k));
            slot.weight.store(shard.weight, Ordering::Relaxed);
            (replaced, swept)
        };
        if let Some(r) = replaced {
            self.release(r);
        }
        for r in swept.into_iter().flatten() {
            self.release(r);
        }
    }

    /// Removes `key`'s entry and returns its value (expired or not).
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        let slot = self.slot(hash);
        let removed = {
            let mut shard = slot.write();
            let removed = shard.remove(hash, key)?;
            slot.weight.store(shard.weight, Ordering::Relaxed);
            removed
        };
        self.inner.used.fetch_sub(removed.weight, Ordering::Release);
        if let Some(listener) = &self.inner.listener {
            listener(&removed.key, &removed.value, removed.cause);
        }
        Some(removed.value)
    }

    /// Removes every entry for which `predicate(key, value)` holds (for example a key prefix), and
    /// returns how many. Shards are visited one at a time; entries inserted meanwhile into a shard
    /// already visited stay.
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) -> usize {
        self.remove_where(|k, v, _| predicate(k, v).then_some(RemovalCause::Explicit))
    }

    /// Removes every expired entry now (they are otherwise reclaimed as the cache is used) and
    /// returns how many.
    pub fn purge_expired(&self) -> usize {
        let now = self.now();
        self.remove_where(|_, _, expires| (expires != 0 && now >= expires).then_some(RemovalCause::Expired))
    }

    fn remove_where(&self, mut cause: impl FnMut(&K, &V, u64) -> Option<RemovalCause>) -> usize {
        let mut out = Vec::new();
        let mut count = 0;
        for slot in self.inner.slots.iter() {
            {
                let mut shard = slot.write();
                shard.remove_where(&mut cause, |k| self.inner.hasher.hash_one(k), &mut out);
                slot.weight.store(shard.weight, Ordering::Relaxed);
            }
            count += out.len();
            for removed in out.drain(..) {
                self.release(removed);
            }
        }
        count
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let mut out = Vec::new();
        for slot in self.inner.slots.iter() {
            let freed = {
                let mut shard = slot.write();
                let freed = shard.weight;
                shard.clear(self.inner.listener.as_ref().map(|_| &mut out));
                slot.weight.store(0, Ordering::Relaxed);
                freed
            };
            self.inner.used.fetch_sub(freed, Ordering::Release);
            if let Some(listener) = &self.inner.listener {
                for r in out.drain(..) {
                    listener(&r.key, &r.value, r.cause);
                }
            }
        }
    }

    /// Changes the budget. A smaller budget evicts at once, before this returns.
    ///
    /// # Panics
    /// If `budget` is 0.
    pub fn set_budget(&self, budget: u64) {
        assert!(budget > 0, "a cache budget must be at least 1 byte");
        self.inner.budget.store(budget, Ordering::Release);
        while self.inner.used.load(Ordering::Acquire) > self.inner.budget.load(Ordering::Acquire) {
            if !self.evict_one(0) {
                std::thread::yield_now();
            }
        }
    }

    // ----- loading -----

    /// The value for `key`, running `init` to produce and insert it if it is missing. Concurrent
    /// callers for the same missing key run one `init` and share its value.
    ///
    /// If the value is heavier than the budget it is returned but not cached (and counted as
    /// rejected). If `init` panics, one of the waiting callers runs its own `init` instead.
    ///
    /// # Panics
    /// If `init` itself asks for the same key (which would otherwise deadlock), or panics.
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V
    where
        K: Clone,
        V: Clone,
    {
        match self.try_get_or_insert_with(key, || Ok::<V, std::convert::Infallible>(init())) {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) with a fallible `init`.
    ///
    /// # Errors
    /// The error of the `init` that ran (this caller's or the one it waited for), shared; errors are
    /// not cached.
    ///
    /// # Panics
    /// If `init` itself asks for the same key, or panics.
    pub fn try_get_or_insert_with<E>(&self, key: K, init: impl FnOnce() -> Result<V, E>) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        let hash = self.inner.hasher.hash_one(&key);
        if let Shared::Hit(v) = self.get_shared(hash, &key, V::clone) {
            return Ok(v);
        }
        loop {
            match self.join_or_lead(hash, &key) {
                Role::Found(v) => return Ok(v),
                Role::Wait(flight) => {
                    if let Some(result) = self.outcome(flight.wait()) {
                        return result;
                    }
                }
                Role::Lead(flight) => {
                    let lead = Lead { cache: self, hash, flight, done: false };
                    return lead.finish(key, init());
                }
            }
        }
    }

    /// The value for `key`, awaiting `init` to produce and insert it if it is missing. Concurrent
    /// callers for the same missing key await one `init` and share its result; the other callers'
    /// `init` futures are dropped unpolled.
    ///
    /// Dropping the leading caller's future, or a panic in `init`, hands the load to a waiting caller.
    ///
    /// # Errors
    /// The error of the `init` that ran, shared with every caller that waited for it; errors are not
    /// cached.
    pub async fn get_or_try_insert_with<E, F>(&self, key: K, init: F) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        self.get_or_try_insert_with_ref(&key, init).await
    }

    /// [`get_or_try_insert_with`](Self::get_or_try_insert_with) with a borrowed key (a `&str` for a
    /// `String` key): the key is only copied when the value is missing.
    ///
    /// # Errors
    /// As [`get_or_try_insert_with`](Self::get_or_try_insert_with).
    pub async fn get_or_try_insert_with_ref<Q, E, F>(&self, key: &Q, init: F) -> Result<V, Arc<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        let hash = self.inner.hasher.hash_one(key);
        if let Shared::Hit(v) = self.get_shared(hash, key, V::clone) {
            return Ok(v);
        }
        loop {
            match self.join_or_lead(hash, key) {
                Role::Found(v) => return Ok(v),
                Role::Wait(flight) => {
                    let outcome = poll_fn(|cx| flight.poll_wait(cx)).await;
                    if let Some(result) = self.outcome(outcome) {
                        return result;
                    }
                }
                Role::Lead(flight) => {
                    let lead = Lead { cache: self, hash, flight, done: false };
                    let result = init.await;
                    return lead.finish(key.to_owned(), result);
                }
            }
        }
    }

    /// Looks `key` up; on a miss, joins its flight or starts one, in one critical section.
    fn join_or_lead<Q>(&self, hash: u64, key: &Q) -> Role<V>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
    {
        let slot = self.slot(hash);
        let mut shard = slot.write();
        let expired = match shard.get(hash, key, || self.now(), V::clone) {
            Lookup::Hit(v) => return Role::Found(v),
            Lookup::Miss => None,
            Lookup::Expired(removed) => {
                slot.weight.store(shard.weight, Ordering::Relaxed);
                Some(removed)
            }
        };
        let role = if let Some((_, flight)) = shard.flights.find(hash, |(k, _)| k.borrow() == key) {
            self.inner.coalesced.fetch_add(1, Ordering::Relaxed);
            Role::Wait(Arc::clone(flight))
        } else {
            let flight = Arc::new(Flight::new());
            shard.flights.insert_unique(hash, (key.to_owned(), Arc::clone(&flight)), |(k, _)| {
                self.inner.hasher.hash_one(k)
            });
            self.inner.loads.fetch_add(1, Ordering::Relaxed);
            Role::Lead(flight)
        };
        drop(shard);
        if let Some(removed) = expired {
            self.release(removed);
        }
        role
    }

    /// What a waiter returns for a flight's outcome; `None` to start over.
    fn outcome<E: Send + Sync + 'static>(&self, outcome: Outcome<V>) -> Option<Result<V, Arc<E>>> {
        match outcome {
            Outcome::Value(v) => Some(Ok(v)),
            // A loader with another error type: this caller runs its own.
            Outcome::Failed(e) => e.downcast::<E>().ok().map(Err),
            Outcome::Abandoned => None,
        }
    }

    // ----- inspection -----

    /// Number of entries (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.inner.slots.iter().map(|s| s.shard.read().len()).sum()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weighed size of the cache in bytes (entries plus those being inserted right now); never
    /// above [`budget`](Self::budget) when no budget change is in progress.
    pub fn weighed_size(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    /// The budget, in bytes (or entries, for [`CacheBuilder::max_entries`]).
    pub fn budget(&self) -> u64 {
        self.inner.budget.load(Ordering::Acquire)
    }

    /// The weight the cache adds to each entry for its own bookkeeping, in bytes (0 when the budget
    /// counts entries). See the crate docs for the formula.
    pub fn entry_overhead(&self) -> u64 {
        self.inner.overhead
    }

    /// The eviction policy.
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inner.slots.len()
    }

    /// Weighs an entry as the cache does: its heap bytes plus the per-entry overhead.
    pub fn weigh(&self, key: &K, value: &V) -> u64 {
        (self.inner.weigher.weigh(key, value) as u64).saturating_add(self.inner.overhead).max(1)
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for slot in self.inner.slots.iter() {
            let shard = slot.shard.read();
            stats.add(&shard.counters);
            stats.hits += slot.hits.load(Ordering::Relaxed);
            stats.misses += slot.misses.load(Ordering::Relaxed);
            stats.entries += shard.len() as u64;
            stats.weighed_size += shard.weight;
        }
        stats.rejected = self.inner.rejected.load(Ordering::Relaxed);
        stats.loads = self.inner.loads.load(Ordering::Relaxed);
        stats.load_failures = self.inner.load_failures.load(Ordering::Relaxed);
        stats.coalesced = self.inner.coalesced.load(Ordering::Relaxed);
        stats.budget = self.budget();
        stats
    }

    /// Clones of the live entries, read one shard at a time (a shard's entries are copied under its
    /// lock, then yielded).
    pub fn iter(&self) -> Iter<'_, K, V, W, S>
    where
        K: Clone,
        V: Clone,
    {
        Iter { cache: self, next_shard: 0, buffer: Vec::new().into_iter() }
    }

    /// Bytes the cache's own structures hold on the heap (slab pages, index, ghost), not counting
    /// what keys and values own. For measuring the overhead per entry.
    pub fn allocated_bytes(&self) -> usize {
        self.inner.slots.iter().map(|s| s.shard.read().allocated_bytes()).sum::<usize>()
            + self.inner.slots.len() * size_of::<Slot<K, V>>()
    }

    /// Keys of the shard holding `key`, from the next victim to the most protected; for tests and the
    /// fuzz model.
    #[doc(hidden)]
    pub fn eviction_order_of_shard(&self, shard: usize) -> Vec<K>
    where
        K: Clone,
    {
        self.inner.slots[shard].write().eviction_order().into_iter().cloned().collect()
    }

    // ----- internals -----

    #[inline]
    fn slot(&self, hash: u64) -> &Slot<K, V> {
        &self.inner.slots[(hash >> 32) as usize & self.inner.shard_mask]
    }

    #[inline]
    fn now(&self) -> u64 {
        self.inner.epoch.elapsed().as_nanos().min(u64::MAX as u128 - 1) as u64 + 1
    }

    /// Reserves `weight` in the budget, evicting as needed; `Err(budget)` if it can never fit.
    fn reserve(&self, weight: u64, hash: u64) -> Result<(), u64> {
        let home = (hash >> 32) as usize & self.inner.shard_mask;
        loop {
            let budget = self.inner.budget.load(Ordering::Acquire);
            if weight > budget {
                return Err(budget);
            }
            let used = self.inner.used.load(Ordering::Acquire);
            if used + weight <= budget {
                if self
                    .inner
                    .used
                    .compare_exchange_weak(used, used + weight, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if !self.evict_one(home) {
                // Everything stored is gone; what remains are other threads' reservations, about to
                // be stored (and then evictable) or released.
                std::thread::yield_now();
            }
        }
    }

    /// Evicts one entry, from `home` if it holds its fair share, else from the heaviest shard.
    /// Returns false if every shard was empty.
    fn evict_one(&self, home: usize) -> bool {
        let slots = &self.inner.slots;
        let fair = self.inner.budget.load(Ordering::Relaxed) / slots.len() as u64;
        let home_weight = slots[home].weight.load(Ordering::Relaxed);
        let victim = if home_weight > 0 && home_weight >= fair {
            home
        } else {
            let (i, w) = slots
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.weight.load(Ordering::Relaxed)))
                .max_by_key(|&(_, w)| w)
                .expect("at least one shard");
            if w == 0 {
                return false;
            }
            i
        };
        let slot = &slots[victim];
        let removed = {
            let mut shard = slot.write();
            let removed = shard.evict_one(|| self.now(), |k| self.inner.hasher.hash_one(k));
            slot.weight.store(shard.weight, Ordering::Relaxed);
            removed
        };
        if let Some(r) = removed {
            self.release(r);
        }
        true
    }

    /// Returns a removed entry's weight to the budget, tells the listener, and drops the entry (all
    /// with no lock held).
    fn release(&self, removed: Removed<K, V>) {
        self.inner.used.fetch_sub(removed.weight, Ordering::Release);
        if let Some(listener) = &self.inner.listener {
            listener(&removed.key, &removed.value, removed.cause);
        }
    }
}

fn remove_flight<K, V>(shard: &mut Shard<K, V>, hash: u64, flight: &Arc<Flight<V>>) {
    if let Ok(entry) = shard.flights.find_entry(hash, |(_, f)| Arc::ptr_eq(f, flight)) {
        entry.remove();
    }
}

/// What [`Cache::get_shared`] found; the reader comes back when it was not used.
enum Shared<R, F> {
    Hit(R),
    Miss(F),
    Expired(F),
}

enum Role<V> {
    Found(V),
    Wait(Arc<Flight<V>>),
    Lead(Arc<Flight<V>>),
}

/// The leader of a load; abandons the flight if dropped before [`Lead::finish`].
struct Lead<'a, K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    cache: &'a Cache<K, V, W, S>,
    hash: u64,
    flight: Arc<Flight<V>>,
    done: bool,
}

impl<K, V, W, S> Lead<'_, K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    fn finish<E: Send + Sync + 'static>(mut self, key: K, result: Result<V, E>) -> Result<V, Arc<E>> {
        let cache = self.cache;
        match result {
            Ok(value) => {
                let weight = cache.weigh(&key, &value);
                if cache.reserve(weight, self.hash).is_ok() {
                    cache.store(self.hash, key, value.clone(), weight, cache.inner.ttl, Some(&self.flight));
                } else {
                    cache.inner.rejected.fetch_add(1, Ordering::Relaxed);
                    self.unregister();
                }
                self.flight.finish(Outcome::Value(value.clone()));
                self.done = true;
                Ok(value)
            }
            Err(e) => {
                cache.inner.load_failures.fetch_add(1, Ordering::Relaxed);
                let e = Arc::new(e);
                self.unregister();
                self.flight.finish(Outcome::Failed(Arc::clone(&e) as SharedError));
                self.done = true;
                Err(e)
            }
        }
    }

    fn unregister(&self) {
        let slot = self.cache.slot(self.hash);
        remove_flight(&mut slot.write(), self.hash, &self.flight);
    }
}

impl<K, V, W, S> Drop for Lead<'_, K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    fn drop(&mut self) {
        // After a panic between storing the value and publishing it, this publishes `Abandoned`;
        // waiters then find the stored value.
        if !self.done {
            self.cache.inner.load_failures.fetch_add(1, Ordering::Relaxed);
            self.unregister();
            self.flight.finish(Outcome::Abandoned);
        }
    }
}

/// Iterator over clones of a cache's live entries; from [`Cache::iter`].
pub struct Iter<'a, K, V, W, S> {
    cache: &'a Cache<K, V, W, S>,
    next_shard: usize,
    buffer: std::vec::IntoIter<(K, V)>,
}

impl<K, V, W, S> fmt::Debug for Iter<'_, K, V, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("next_shard", &self.next_shard).finish_non_exhaustive()
    }
}

impl<K, V, W, S> Iterator for Iter<'_, K, V, W, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(item) = self.buffer.next() {
                return Some(item);
            }
            let slot = self.cache.inner.slots.get(self.next_shard)?;
            self.next_shard += 1;
            let mut entries = Vec::new();
            slot.shard.read().for_each(self.cache.now(), |k, v| entries.push((k.clone(), v.clone())));
            self.buffer = entries.into_iter();
        }
    }
}
