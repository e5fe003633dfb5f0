//! The public face: [`Cache`], over the shard cells (`cell.rs`), the budget (`budget.rs`) and the
//! loader hand-off (`load.rs`). The design notes live in those files; this one keeps the API and
//! the short read and write paths that tie them together.
//!
//! User code and the locks: the key's `Eq` runs under a shard's lock, in lookups that change
//! nothing before it returns; `Clone` of keys and values runs under a read lock. Everything else a
//! user supplies (the eviction listener, `invalidate_if`'s predicate, loaders, the weigher, the
//! key's `Hash`, and the drop of entries that leave) runs with no lock held, so it may call the
//! cache again.

use std::borrow::Borrow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, Hash};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::budget::Budget;
use crate::builder::{CacheBuilder, DefaultHashBuilder};
use crate::cell::{HitRecord, ReadGuard, ShardCell};
use crate::climber::SharedClimber;
use crate::clock::TimeSource;
use crate::error::{InsertError, InsertErrorKind, LoadError};
use crate::expiry::{self, Expiry};
use crate::iter::Iter;
use crate::load::{Flight, Lead, Loading, Outcome};
use crate::policy::Policy;
use crate::refresh::Claim;
use crate::shard::{Deadline, Layout, Lookup, Shard};
use crate::slab::{Node, Slab};
use crate::stats::{CacheCounters, RemovalCause, Stats};
use crate::weigh::{DefaultWeigher, Weigher};

/// The error by which an optional loader's `None` travels through the fallible loading path.
#[derive(Debug)]
struct Declined;

pub(crate) type Listener<K, V> = Box<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// Expired entries checked per insert by the incremental sweep.
const SWEEP_STEPS: usize = 4;

/// When a write happened (`None` if nothing needed the clock) and the deadline it gives its entry;
/// see [`Inner::stamp`].
#[derive(Clone, Copy)]
pub(crate) struct Stamp {
    now: Option<u64>,
    deadline: Deadline,
}

/// Entries `invalidate_if` copies out of a shard at a time, to run its predicate on with no lock.
const INVALIDATE_BATCH: usize = 64;

pub(crate) struct Inner<K, V, W, S> {
    pub(crate) cells: Box<[ShardCell<K, V>]>,
    shard_mask: usize,
    pub(crate) budget: Budget,
    hasher: S,
    weigher: W,
    /// Added to each entry's weight (0 under `UnitWeigher`).
    overhead: u64,
    /// Default time to live, in nanoseconds; 0 = none.
    pub(crate) ttl: u64,
    /// Time to idle, in nanoseconds; 0 = none.
    tti: u64,
    expiry: Option<Box<dyn Expiry<K, V>>>,
    /// Whether a read may move an entry's deadline (a time to idle or an `Expiry` hook).
    reads_move_deadlines: bool,
    /// Refresh-ahead and stale-while-revalidate settings (`refresh.rs`).
    pub(crate) refresh: crate::refresh::Settings,
    time: TimeSource,
    pub(crate) listener: Option<Listener<K, V>>,
    policy: Policy,
    pub(crate) counters: CacheCounters,
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
    pub(crate) inner: Arc<Inner<K, V, W, S>>,
}

impl<K, V, W, S> Clone for Cache<K, V, W, S> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<K, V, W, S> fmt::Debug for Cache<K, V, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("budget", &self.inner.budget.limit())
            .field("used", &self.inner.budget.used())
            .field("shards", &self.inner.cells.len())
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + crate::Weigh,
    V: crate::Weigh,
{
    /// A cache of `budget` bytes with the default settings (W-TinyLFU, no TTL, weights from
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
/// heap: the node (key and value inline, weight, expiry, two queue links, hash, version, policy
/// bits), the index slot (4 bytes and a control byte, at hashbrown's worst load factor of 7/16 just
/// after growing), and for S3-FIFO the ghost's 5 bytes and for W-TinyLFU the frequency sketch's 5
/// (their worst cases, see `policy.rs` and `sketch.rs`).
fn entry_overhead<K, V>(policy: Policy, layout: Layout) -> u64 {
    let node = size_of::<Node<K, V>>();
    let index = (5usize * 16).div_ceil(7);
    // The slab's cap and refresh time beside each node (`slab.rs`).
    let cap = if layout.caps { size_of::<u64>() } else { 0 };
    let refresh = if layout.refresh { size_of::<u64>() } else { 0 };
    (node + index + cap + refresh + policy.extra_overhead()) as u64
}

impl<K, V, W, S> Cache<K, V, W, S> {
    pub(crate) fn inner(&self) -> &Inner<K, V, W, S> {
        &self.inner
    }

    /// A weak handle to the cache's state (for reloads queued elsewhere, `refresh.rs`).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner<K, V, W, S>> {
        Arc::downgrade(&self.inner)
    }
}

impl<K, V, W, S> Cache<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    pub(crate) fn from_builder(b: CacheBuilder<K, V, W, S>) -> Self {
        let reads_move_deadlines = b.tti.is_some() || b.expiry.is_some();
        let refresh = crate::refresh::Settings::new(b.refresh);
        let layout = Layout { caps: reads_move_deadlines, refresh: refresh.enabled(), grace: refresh.grace };
        let overhead = if b.weigher.counts_overhead() { entry_overhead::<K, V>(b.policy, layout) } else { 0 };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = b.shards.unwrap_or_else(|| {
            // Let each shard hold a few dozen entries of at least 64 heap bytes at least.
            let min_shard = 64 * if overhead == 0 { 1 } else { overhead + 64 };
            let by_size = (b.budget / min_shard).max(1) as usize;
            let by_size = if by_size.is_power_of_two() { by_size } else { by_size.next_power_of_two() / 2 };
            (cpus * 4).next_power_of_two().min(64).min(by_size)
        });
        let slots = ShardCell::<K, V>::slots_for(cpus);
        let climber = Arc::new(SharedClimber::new(shards));
        let cells =
            (0..shards).map(|_| ShardCell::new(b.policy, layout, slots, Arc::clone(&climber))).collect();
        Self {
            inner: Arc::new(Inner {
                cells,
                shard_mask: shards - 1,
                budget: Budget::new(b.budget),
                hasher: b.hasher,
                weigher: b.weigher,
                overhead,
                ttl: expiry::nanos(b.ttl),
                tti: expiry::nanos(b.tti),
                expiry: b.expiry,
                reads_move_deadlines,
                refresh,
                time: TimeSource::new(b.clock),
                listener: b.listener,
                policy: b.policy,
                counters: CacheCounters::default(),
            }),
        }
    }

    // ----- reads -----

    /// A clone of the value for `key`, if present and not expired. Counts a hit or a miss and
    /// refreshes the entry for the eviction policy.
    ///
    /// The clone is made under the shard's read lock: for large values, store an `Arc<T>` so that
    /// it is a reference count.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(key);
        match inner.lookup_shared::<Q, false, true>(hash, key).0 {
            Shared::Hit(value) => Some(value),
            Shared::Miss => None,
            Shared::Expired => self.get_expired(hash, key),
        }
    }

    /// The end of a [`get`](Self::get) that found its entry expired, out of the hit path's way.
    #[cold]
    #[inline(never)]
    fn get_expired<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let inner = &*self.inner;
        // Expired: remove it under the write lock (unless someone did meanwhile).
        let now = inner.now();
        let lookup =
            inner.cell(hash).write().get(hash, key, || now, |slab, idx| inner.read_hit(slab, idx, now));
        match lookup {
            Lookup::Hit(value) => Some(value),
            Lookup::Miss => None,
            Lookup::Expired(removed) => {
                inner.release(removed);
                None
            }
        }
    }

    /// The values of `keys`, in order: each looked up as by [`get`](Self::get) (counted, a use for
    /// the policy), `None` for a key missing or expired. Each lookup sees the cache at its own
    /// moment: under concurrent writes the results are not one snapshot.
    ///
    /// ```
    /// let cache: bounded_cache::Cache<u32, u32> = bounded_cache::Cache::new(1 << 20);
    /// cache.insert_many([(1, 10), (3, 30)]);
    /// assert_eq!(cache.get_many(&[1, 2, 3]), [Some(10), None, Some(30)]);
    /// ```
    pub fn get_many<'q, Q>(&self, keys: impl IntoIterator<Item = &'q Q>) -> Vec<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized + 'q,
        V: Clone,
    {
        keys.into_iter().map(|key| self.get(key)).collect()
    }

    /// A clone of the value for `key`, if present and not expired, with no side effect: not
    /// counted in the statistics, not a use for the eviction policy, and the entry's deadline
    /// is left where it is (a time to idle or an [`Expiry`] hook does not see it).
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(key);
        let shard = inner.cell(hash).read();
        let node = shard.slab.node(shard.find(hash, key)?);
        let now = if node.expires() != 0 { inner.now() } else { 0 };
        (!node.expired_at(now)).then(|| node.value().clone())
    }

    /// Whether a live entry for `key` exists; not counted, and not a use for the policy.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        self.inner.cell(hash).read().contains(hash, key, || self.inner.now())
    }

    // ----- writes -----

    /// Inserts or replaces the value for `key`, with the cache's default time to live. A load of
    /// `key` in flight will not store its value over this one.
    ///
    /// # Errors
    /// [`InsertError`], holding the key and value, if the entry alone weighs more than the budget
    /// ([`InsertErrorKind::TooHeavy`]), or, rarely, if the budget
    /// is held by other threads' inserts ([`Contended`](crate::InsertErrorKind::Contended)). The
    /// key's previous entry is removed then (as by [`remove`](Self::remove)): the cache never
    /// keeps a value older than the last one written.
    pub fn insert(&self, key: K, value: V) -> Result<(), InsertError<K, V>> {
        self.insert_expiring(key, value, self.inner.ttl)
    }

    /// Inserts or replaces the value for `key`, expiring after `ttl` (`Duration::MAX`: never).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), InsertError<K, V>> {
        let ttl = if ttl == Duration::MAX { 0 } else { ttl.as_nanos().clamp(1, u64::MAX as u128) as u64 };
        self.insert_expiring(key, value, ttl)
    }

    /// Inserts every entry of `entries` in order (cache warming), each as
    /// [`insert`](Self::insert) would. Entries the cache refuses come back, in order.
    pub fn insert_many(&self, entries: impl IntoIterator<Item = (K, V)>) -> Vec<InsertError<K, V>> {
        entries.into_iter().filter_map(|(k, v)| self.insert(k, v).err()).collect()
    }

    fn insert_expiring(&self, key: K, value: V, ttl: u64) -> Result<(), InsertError<K, V>> {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(&key);
        let weight = inner.weigh(&key, &value);
        let stamp = inner.stamp(&key, &value, ttl);
        match inner.put(hash, key, value, weight, stamp, None) {
            Ok(_) => Ok(()),
            Err((key, value, kind)) => {
                inner.counters.rejected.fetch_add(1, Relaxed);
                // The value the caller wrote is not kept, and neither may an older one be: the
                // key's entry goes, and so does a load of it in flight.
                self.remove(&key);
                Err(InsertError::new(key, value, weight, inner.budget.limit(), kind))
            }
        }
    }

    /// Removes `key`'s entry and returns its value (expired or not). A load of `key` in flight
    /// will not store its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(key);
        let removed = {
            let mut shard = inner.cell(hash).write();
            shard.detach_flight(hash, key);
            shard.remove(hash, key)
        }?;
        inner.budget.give_back(removed.weight);
        inner.notify(&removed.key, &removed.value, removed.cause);
        Some(removed.value)
    }

    /// Removes every entry for which `predicate(key, value)` holds (for example a key prefix), and
    /// returns how many. Loads in flight when it starts will not store their values, even if the
    /// predicate panics.
    ///
    /// The predicate runs with no lock held, on clones of the entries copied out a few dozen at a
    /// time, so it may call the cache; an entry is removed only if it is still the one the
    /// predicate saw (not replaced meanwhile). Shards are visited one at a time: entries inserted
    /// during the call may stay. If the predicate panics, every entry it condemned before is
    /// removed and the panic goes on to the caller.
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) -> usize
    where
        K: Clone,
        V: Clone,
    {
        let inner = &*self.inner;
        let mut count = 0;
        let mut seen = Vec::with_capacity(INVALIDATE_BATCH);
        // Loads in flight may have read what is being invalidated. Every shard's are detached
        // before the predicate first runs: once it panics, later shards are never visited.
        for cell in inner.cells.iter() {
            cell.write().detach_flights();
        }
        for cell in inner.cells.iter() {
            let mut from = Some(0);
            while let Some(start) = from {
                let cleared = {
                    let shard = cell.read();
                    from = shard.snapshot(start, INVALIDATE_BATCH, inner.now(), &mut seen);
                    shard.cleared
                };
                // Removes what the predicate condemned when dropped: after the batch, or while
                // the predicate's panic unwinds.
                let mut doomed = Doomed { inner, cell, entries: Vec::new(), cleared, count: &mut count };
                for (idx, version, key, value) in seen.drain(..) {
                    if predicate(&key, &value) {
                        doomed.entries.push((idx, version));
                    }
                }
            }
        }
        count
    }

    /// Removes every expired entry now (they are otherwise reclaimed as the cache is used) and
    /// returns how many.
    pub fn purge_expired(&self) -> usize {
        let inner = &*self.inner;
        let now = inner.now();
        let mut count = 0;
        for cell in inner.cells.iter() {
            let mut removed = Vec::new();
            cell.write().remove_expired(now, &mut removed);
            count += removed.len();
            inner.release_all(removed);
        }
        count
    }

    /// Removes every entry. Loads in flight will not store their values. The entries are dropped,
    /// and the listener told of them, after each shard's lock is released.
    pub fn clear(&self) {
        let inner = &*self.inner;
        for cell in inner.cells.iter() {
            let (entries, weight) = {
                let mut shard = cell.write();
                let weight = shard.weight;
                (shard.take_all(), weight)
            };
            inner.budget.give_back(weight);
            if inner.listener.is_some() {
                for (key, value, _) in entries.into_entries() {
                    inner.notify(&key, &value, RemovalCause::Explicit);
                }
            }
        }
    }

    /// Changes the budget. A smaller budget evicts at once, before this returns, and loads in
    /// flight will not store their values. (Inserts that reserved their weight under the old
    /// budget and store it after this returns evict on their own; see `budget.rs`.)
    ///
    /// # Panics
    /// If `budget` is 0.
    pub fn set_budget(&self, budget: u64) {
        assert!(budget > 0, "a cache budget must be at least 1 byte");
        let inner = &*self.inner;
        if budget < inner.budget.set_limit(budget) {
            for cell in inner.cells.iter() {
                cell.write().detach_flights();
            }
        }
        inner.shrink_to_budget();
    }

    // ----- loading -----

    /// The value for `key`, running `init` to produce and insert it if it is missing. Concurrent
    /// callers for the same missing key run one `init` and share its value.
    ///
    /// The value is returned but not cached if it is heavier than the budget (counted as
    /// rejected), or if the key was invalidated while `init` ran. If `init` panics, one of the
    /// waiting callers runs its own `init` instead.
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
            Err(LoadError::Recursive) => panic!("bounded-cache: a loader asked for the key it is loading"),
            Err(LoadError::Failed(e)) => match *e {},
        }
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) with an `init` that may find nothing:
    /// `None` is returned to this caller and to those waiting for the same key, and nothing is
    /// cached (the load counts in [`Stats::load_failures`]). To keep a "not found" for a while
    /// instead, make it a value (an `Option<T>` value type) and give it a short lifetime with
    /// an [`Expiry`] hook.
    ///
    /// ```
    /// use bounded_cache::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::new(1 << 20);
    /// assert_eq!(cache.optionally_get_or_insert_with(1, || None), None);
    /// assert!(!cache.contains(&1), "nothing was cached");
    /// assert_eq!(cache.optionally_get_or_insert_with(1, || Some("one".into())).as_deref(), Some("one"));
    /// assert_eq!(cache.get(&1).as_deref(), Some("one"));
    /// ```
    ///
    /// # Panics
    /// As [`get_or_insert_with`](Self::get_or_insert_with).
    pub fn optionally_get_or_insert_with(&self, key: K, init: impl FnOnce() -> Option<V>) -> Option<V>
    where
        K: Clone,
        V: Clone,
    {
        match self.try_get_or_insert_with(key, || init().ok_or(Declined)) {
            Ok(v) => Some(v),
            Err(LoadError::Failed(_)) => None,
            Err(LoadError::Recursive) => panic!("bounded-cache: a loader asked for the key it is loading"),
        }
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) with a fallible `init`.
    ///
    /// # Errors
    /// [`LoadError::Failed`] with the error of the `init` that ran (this caller's or the one it
    /// waited for), shared; errors are not cached. [`LoadError::Recursive`] if this call comes
    /// from the `init` of a load of the same key.
    ///
    /// # Panics
    /// If `init` panics.
    pub fn try_get_or_insert_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, LoadError<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(&key);
        if let Shared::Hit(v) = inner.get_shared(hash, &key) {
            return Ok(v);
        }
        loop {
            match inner.join_or_lead(hash, &key) {
                Role::Found(v) => return Ok(v),
                Role::Wait(flight) => {
                    if Loading::is_active(&flight) {
                        return Err(LoadError::Recursive);
                    }
                    if let Some(result) = outcome(flight.wait()) {
                        return result;
                    }
                }
                Role::Lead(flight) => {
                    let lead = Lead::new(inner, hash, flight);
                    let result = {
                        let _loading = Loading::enter(lead.flight());
                        init()
                    };
                    return lead.finish(key, result);
                }
            }
        }
    }

    /// The value for `key`, awaiting `init` to produce and insert it if it is missing. Concurrent
    /// callers for the same missing key await one `init` and share its result; the other callers'
    /// `init` futures are dropped unpolled.
    ///
    /// Dropping the leading caller's future, or a panic in `init`, hands the load to a waiting
    /// caller. A waiting caller's future may be dropped at any time. An `init` that asks for its
    /// own key gets [`LoadError::Recursive`] at once, unless it asks from another task (a spawned
    /// task it awaits), which would wait forever.
    ///
    /// # Errors
    /// As [`try_get_or_insert_with`](Self::try_get_or_insert_with).
    pub async fn get_or_try_insert_with<E, F>(&self, key: K, init: F) -> Result<V, LoadError<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        self.get_or_try_insert_with_ref(&key, init).await
    }

    /// The async [`optionally_get_or_insert_with`](Self::optionally_get_or_insert_with): `None`
    /// from `init` reaches this caller and its waiters and is not cached. Cancellation and
    /// panics hand over as for [`get_or_try_insert_with`](Self::get_or_try_insert_with).
    ///
    /// # Panics
    /// If `init` asks for the same key from this task, or panics.
    pub async fn get_or_optionally_insert_with<F>(&self, key: K, init: F) -> Option<V>
    where
        K: Clone,
        V: Clone,
        F: Future<Output = Option<V>>,
    {
        match self.get_or_try_insert_with_ref(&key, async { init.await.ok_or(Declined) }).await {
            Ok(v) => Some(v),
            Err(LoadError::Failed(_)) => None,
            Err(LoadError::Recursive) => panic!("bounded-cache: a loader asked for the key it is loading"),
        }
    }

    /// [`get_or_try_insert_with`](Self::get_or_try_insert_with) with a borrowed key (a `&str` for a
    /// `String` key): the key is only copied when the value is missing.
    ///
    /// # Errors
    /// As [`try_get_or_insert_with`](Self::try_get_or_insert_with).
    pub async fn get_or_try_insert_with_ref<Q, E, F>(&self, key: &Q, init: F) -> Result<V, LoadError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(key);
        if let Shared::Hit(v) = inner.get_shared(hash, key) {
            return Ok(v);
        }
        loop {
            match inner.join_or_lead(hash, key) {
                Role::Found(v) => return Ok(v),
                Role::Wait(flight) => {
                    if Loading::is_active(&flight) {
                        return Err(LoadError::Recursive);
                    }
                    if let Some(result) = outcome(flight.wait_async().await) {
                        return result;
                    }
                }
                Role::Lead(flight) => {
                    let lead = Lead::new(inner, hash, flight);
                    let mut init = pin!(init);
                    let result = poll_fn(|cx| {
                        let _loading = Loading::enter(lead.flight());
                        init.as_mut().poll(cx)
                    })
                    .await;
                    return lead.finish(key.to_owned(), result);
                }
            }
        }
    }

    // ----- inspection -----

    /// Number of entries (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.inner.cells.iter().map(|cell| cell.read().len()).sum()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weighed size of the cache in bytes (entries plus those being inserted right now); never
    /// above [`budget`](Self::budget) when no budget change is in progress.
    pub fn weighed_size(&self) -> u64 {
        self.inner.budget.used()
    }

    /// The budget, in bytes (or entries, for [`CacheBuilder::max_entries`]).
    pub fn budget(&self) -> u64 {
        self.inner.budget.limit()
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
        self.inner.cells.len()
    }

    /// Weighs an entry as the cache does: its heap bytes plus the per-entry overhead.
    pub fn weigh(&self, key: &K, value: &V) -> u64 {
        self.inner.weigh(key, value)
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let mut stats = Stats::default();
        for cell in inner.cells.iter() {
            let shard = cell.read();
            stats.add(&shard.counters);
            let (hits, misses) = cell.tallies();
            stats.hits += hits;
            stats.misses += misses;
            stats.entries += shard.len() as u64;
            stats.weighed_size += shard.weight;
        }
        let counters = &inner.counters;
        stats.rejected = counters.rejected.load(Relaxed);
        stats.loads = counters.loads.load(Relaxed);
        stats.load_failures = counters.load_failures.load(Relaxed);
        stats.coalesced = counters.coalesced.load(Relaxed);
        stats.listener_panics = counters.listener_panics.load(Relaxed);
        stats.refreshes = counters.refreshes.load(Relaxed);
        stats.refresh_failures = counters.refresh_failures.load(Relaxed);
        stats.stale_served = counters.stale_served.load(Relaxed);
        stats.budget = self.budget();
        stats
    }

    /// Clones of the live entries; see [`Iter`] for what it sees under concurrent changes.
    pub fn iter(&self) -> Iter<'_, K, V, W, S>
    where
        K: Clone,
        V: Clone,
    {
        Iter::new(self)
    }

    /// Bytes the cache's own structures hold on the heap (slab pages, index, ghost), not counting
    /// what keys and values own. For measuring the overhead per entry.
    pub fn allocated_bytes(&self) -> usize {
        self.inner.cells.iter().map(|cell| cell.read().allocated_bytes()).sum::<usize>()
            + self.inner.cells.len() * size_of::<ShardCell<K, V>>()
    }

    /// The read path's hits that shard `shard`'s policy has counted, once a writer has added
    /// them up (this call is one): W-TinyLFU's, 0 with the other policies. For the loom models.
    #[doc(hidden)]
    pub fn read_hits_seen_by_policy(&self, shard: usize) -> u64 {
        self.inner.cells[shard].write().read_hits_seen()
    }

    /// W-TinyLFU's accesses (hits and misses) in the climber's current period, and those its
    /// shards have counted but not yet handed over to it. For the loom models.
    #[doc(hidden)]
    pub fn climber_samples(&self) -> (u64, u64) {
        let (hits, misses) = self.inner.cells[0].write().climber().hold().sampled();
        let kept = self.inner.cells.iter().map(|cell| cell.write().unsent_samples()).sum();
        (u64::from(hits) + u64::from(misses), kept)
    }

    /// Keys of shard `shard`, from the next victim to the most protected; for tests and the fuzz
    /// model.
    #[doc(hidden)]
    pub fn eviction_order_of_shard(&self, shard: usize) -> Vec<K>
    where
        K: Clone,
    {
        self.inner.cells[shard].write().eviction_order().into_iter().cloned().collect()
    }
}

/// Entries of one shard that `invalidate_if`'s predicate condemned, by node and version; removed
/// when dropped.
struct Doomed<'a, K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    inner: &'a Inner<K, V, W, S>,
    cell: &'a ShardCell<K, V>,
    entries: Vec<(u32, u16)>,
    /// The shard's `cleared` count when the entries were seen.
    cleared: u64,
    count: &'a mut usize,
}

impl<K, V, W, S> Drop for Doomed<'_, K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        let removed: Vec<_> = {
            let mut shard = self.cell.write();
            self.entries
                .drain(..)
                .filter_map(|(idx, version)| shard.remove_seen(idx, version, self.cleared))
                .collect()
        };
        *self.count += removed.len();
        self.inner.release_all(removed);
    }
}

/// What [`Inner::get_shared`] found.
pub(crate) enum Shared<V> {
    Hit(V),
    Miss,
    Expired,
}

/// What [`Inner::join_or_lead`] decided.
/// A compute's flight, and the value it computes on.
pub(crate) type ComputeLead<V> = (Arc<Flight<V>>, Option<V>);

enum Role<V> {
    Found(V),
    Wait(Arc<Flight<V>>),
    Lead(Arc<Flight<V>>),
}

/// What a waiter returns for a flight's outcome; `None` to start over.
fn outcome<V, E: Send + Sync + 'static>(outcome: Outcome<V>) -> Option<Result<V, LoadError<E>>> {
    match outcome {
        Outcome::Value(v) => Some(Ok(v)),
        // A loader with another error type: this caller runs its own.
        Outcome::Failed(e) => e.downcast::<E>().ok().map(|e| Err(LoadError::Failed(e))),
        Outcome::Abandoned => None,
    }
}

// The 12 bits `Inner::shard_index` keeps cover every shard count the builder accepts. (At module
// level: an associated const in a generic impl is never evaluated unless used.)
const _: () = assert!(crate::builder::MAX_SHARDS <= 1 << 12);

impl<K, V, W, S> Inner<K, V, W, S> {
    /// The shard of a key's hash: the top bits of the hash times an odd constant, so that the
    /// choice depends on every bit of the hash. The default hasher mixes some of its bits poorly
    /// for small integer keys under some seeds; taking bits 32 and up as they came once left half
    /// the shards empty. (The shard's table uses the low 32 bits, by another multiplier.)
    #[inline]
    pub(crate) fn shard_index(&self, hash: u64) -> usize {
        (hash.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 52) as usize & self.shard_mask
    }

    #[inline]
    pub(crate) fn cell(&self, hash: u64) -> &ShardCell<K, V> {
        &self.cells[self.shard_index(hash)]
    }

    /// Nanoseconds since the cache's epoch, plus one (0 means "never" in expiry times).
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.time.now()
    }
}

impl<K, V, W, S> Inner<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    pub(crate) fn weigh(&self, key: &K, value: &V) -> u64 {
        (self.weigher.weigh(key, value) as u64).saturating_add(self.overhead).max(1)
    }

    /// The lookup under the shard's read lock. Counts a hit (and records it for the policy) but not
    /// a miss, so that a caller going on to the write lock counts its miss there once.
    #[inline]
    fn get_shared<Q>(&self, hash: u64, key: &Q) -> Shared<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        self.lookup_shared::<Q, false, false>(hash, key).0
    }

    /// [`get_shared`](Self::get_shared), counting a miss too if `MISS` (a caller that will not
    /// go on to the write lock); and for a refreshing read (`REFRESH`) in a refreshing cache, the
    /// refresh it claimed, if the entry was due, and a stale value served within the grace (see
    /// `refresh.rs`).
    #[inline]
    pub(crate) fn lookup_shared<Q, const REFRESH: bool, const MISS: bool>(
        &self,
        hash: u64,
        key: &Q,
    ) -> (Shared<V>, Option<Claim>)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        let cell = self.cell(hash);
        // The guard is dropped where it lives, at the end of this block (moving it into a call
        // would copy it on every hit), before an overflowing hit takes the write lock.
        let (shared, claim, overflow) = {
            let mut shard = cell.read();
            self.look::<Q, REFRESH, MISS>(&mut shard, hash, key)
        };
        if let Some(record) = overflow {
            cell.replay_overflow(record);
        }
        (shared, claim)
    }

    /// The body of [`lookup_shared`](Self::lookup_shared), under its read guard; also returns a
    /// hit record that overflowed its slot's buffer, to replay once the guard is gone.
    #[inline(always)]
    fn look<Q, const REFRESH: bool, const MISS: bool>(
        &self,
        shard: &mut ReadGuard<'_, K, V>,
        hash: u64,
        key: &Q,
    ) -> (Shared<V>, Option<Claim>, Option<HitRecord>)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        V: Clone,
    {
        let Some(idx) = shard.find(hash, key) else {
            if MISS {
                shard.count_miss();
            }
            return (Shared::Miss, None, None);
        };
        let node = shard.slab.node(idx);
        let refreshing = REFRESH && shard.slab.keeps_refresh();
        // The deadline is read once (an atomic load the compiler would not merge), and the clock
        // only when something depends on it.
        let expires = node.expires();
        let now = if refreshing || expires != 0 || self.reads_move_deadlines { self.now() } else { 0 };
        let mut claim = None;
        let value = if expires == 0 || now < expires {
            if refreshing {
                claim = self.claim_refresh(shard, idx, now, false);
            }
            self.hit_value(&shard.slab, idx, node, now)
        } else if refreshing && now < expires.saturating_add(self.refresh.grace) {
            claim = self.claim_refresh(shard, idx, now, true);
            self.counters.stale_served.fetch_add(1, Relaxed);
            node.value().clone()
        } else {
            return (Shared::Expired, None, None);
        };
        let overflow = if shard.policy().records_hits() {
            shard.record_hit(idx)
        } else {
            crate::policy::hit_shared(node);
            None
        };
        shard.count_hit();
        (Shared::Hit(value), claim, overflow)
    }

    /// Claims the refresh of the entry at `idx` if it is due at `now` (a `stale` entry always
    /// is), moving its refresh time one period on; `None` if it is not due or another reader
    /// claimed it first.
    #[cold]
    fn claim_refresh(&self, shard: &Shard<K, V>, idx: u32, now: u64, stale: bool) -> Option<Claim> {
        let seen = shard.slab.refresh_at(idx);
        let due = if stale { seen <= now } else { seen != 0 && seen <= now };
        let next = now.saturating_add(self.refresh.period());
        (due && shard.slab.claim_refresh(idx, seen, next)).then(|| Claim {
            idx,
            version: shard.slab.node(idx).version,
            cleared: shard.cleared,
        })
    }

    /// Stores an entry of `weight`, reserving it in the budget; usually under a single write lock
    /// of the key's shard (reserving first, then storing, would take two when it evicts). A
    /// plain insert (`flight` is `None`) detaches a load of the key in flight; a loaded value
    /// (`Some`) is stored only if its flight is still registered, i.e. was not detached by an
    /// invalidation, and takes the flight out of the table as it is stored. Returns whether it
    /// was stored (a detached value is dropped with no lock held).
    ///
    /// Under the lock it finds what the key holds, so a replacement reserves only the weight it
    /// adds (and gives back what it sheds): replacing a value evicts nothing while the new one
    /// is no heavier. A new entry that does not fit evicts the shard's own victim under the same
    /// lock when `reserve` would evict from this shard (`evicts_at_home`).
    /// When that is not enough (a replacement that grows, a heavy entry, a shard below its
    /// share), it releases the lock, reserves the rest as `reserve` does (from the heaviest
    /// shard, waiting for other inserts' reservations) and tries again, keeping what it reserved.
    /// It stores within at most three rounds: a round after a reservation fails only if the
    /// key's entry left meanwhile, and the next one reserves the entry's whole weight.
    ///
    /// The budget is kept as on the general path: weight is taken (`try_take`) only where it
    /// fits, a victim's weight is returned after it has left its shard, and every weight is
    /// returned before the listener hears of what left. On `Err` nothing was stored and the
    /// reservation is returned; the flight, if any, stays registered.
    pub(crate) fn put(
        &self,
        hash: u64,
        key: K,
        value: V,
        weight: u64,
        stamp: Stamp,
        flight: Option<&Arc<Flight<V>>>,
    ) -> Result<bool, (K, V, InsertErrorKind)> {
        let home = self.shard_index(hash);
        let now = || self.stamp_now(stamp);
        let mut reserved = self.budget.nothing();
        loop {
            if weight > self.budget.limit() {
                return Err((key, value, InsertErrorKind::TooHeavy));
            }
            let mut shard = self.cells[home].write();
            // User code (the key's `Eq`) runs first, before anything changes.
            match flight {
                None => shard.detach_flight(hash, &key),
                Some(flight) if !shard.has_flight(hash, flight) => {
                    drop(shard);
                    return Ok(false);
                }
                Some(_) => {}
            }
            let found = shard.find(hash, &key);
            let need = weight.saturating_sub(found.map_or(0, |idx| shard.slab.node(idx).weight));
            if reserved.weight() < need {
                reserved.join(self.budget.try_take(need - reserved.weight()));
            }
            let mut evicted = None;
            if reserved.weight() < need && found.is_none() && self.evicts_at_home(home, shard.weight) {
                evicted = shard.evict_one(now);
                if let Some(victim) = &evicted {
                    self.budget.give_back(victim.weight);
                    reserved.join(self.budget.try_take(need - reserved.weight()));
                }
            }
            if reserved.weight() < need {
                drop(shard);
                if let Some(victim) = evicted {
                    self.notify(&victim.key, &victim.value, victim.cause);
                }
                match self.reserve(need - reserved.weight(), hash) {
                    Ok(more) => reserved.join(Some(more)),
                    Err(kind) => return Err((key, value, kind)),
                }
                continue;
            }
            reserved.keep(need);
            if let Some(flight) = flight {
                shard.take_flight(hash, flight);
            }
            let replaced = match found {
                Some(idx) => Some(shard.replace(idx, key, value, weight, stamp.deadline)),
                None => {
                    shard.insert_new(hash, key, value, weight, stamp.deadline);
                    None
                }
            };
            reserved.commit();
            let swept = shard.sweep::<SWEEP_STEPS>(now);
            drop(shard);
            // The replaced entry's weight went to the new one, up to the new one's.
            let shed = replaced.as_ref().map_or(0, |r| r.weight.saturating_sub(weight));
            let swept = swept.iter().flatten().flatten();
            self.budget.give_back(shed + swept.clone().map(|r| r.weight).sum::<u64>());
            for r in evicted.iter().chain(replaced.iter()).chain(swept) {
                self.notify(&r.key, &r.value, r.cause);
            }
            if self.budget.used() > self.budget.limit() {
                self.shrink_to_budget();
            }
            return Ok(true);
        }
    }

    /// The hash of a key, as the cache's hasher makes it.
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Starts a compute of `key`: registers a flight and returns it with a clone of the live
    /// value, in one critical section; or returns the flight already in progress for the key
    /// (a load or another compute), to wait on, counted as coalesced. An expired entry is
    /// removed and reads as absent.
    pub(crate) fn lead_compute(&self, hash: u64, key: &K) -> Result<ComputeLead<V>, Arc<Flight<V>>>
    where
        K: Clone,
        V: Clone,
    {
        let (lead, expired) = {
            let mut shard = self.cell(hash).write();
            if let Some(flight) = shard.flight(hash, key) {
                self.counters.coalesced.fetch_add(1, Relaxed);
                return Err(Arc::clone(flight));
            }
            let (current, expired) = match shard.find_live(hash, key, self.now()) {
                Ok(Some(idx)) => (Some(shard.slab.node(idx).value().clone()), None),
                Ok(None) => (None, None),
                Err(removed) => (None, Some(removed)),
            };
            let flight = Arc::new(Flight::new());
            shard.register_flight(hash, key.clone(), Arc::clone(&flight));
            ((flight, current), expired)
        };
        if let Some(removed) = expired {
            self.release(removed);
        }
        Ok(lead)
    }

    /// The time and deadline of a write of `key` and `value` with time to live `ttl`
    /// (nanoseconds, 0 = none), taken once before the write's locks (the `Expiry` hook runs
    /// here). The clock is read only when the entry may get a deadline: a time to live, a time
    /// to idle, the hook or refresh-ahead; else the deadline is "never", and a sweep reads the
    /// clock itself if its shard holds entries that expire.
    pub(crate) fn stamp(&self, key: &K, value: &V, ttl: u64) -> Stamp {
        let timed = ttl != 0 || self.tti != 0 || self.expiry.is_some() || self.refresh.enabled();
        if !timed {
            return Stamp { now: None, deadline: Deadline::NEVER };
        }
        let now = self.now();
        Stamp { now: Some(now), deadline: self.deadline(key, value, ttl, now) }
    }

    /// The time of a write's `stamp`, or the clock's if the stamp did not read it.
    fn stamp_now(&self, stamp: Stamp) -> u64 {
        stamp.now.unwrap_or_else(|| self.now())
    }

    /// When an entry written now with time to live `ttl` (nanoseconds, 0 = none) expires: the
    /// `Expiry` hook, if any, decides the time to live (it runs here, with no lock held); a
    /// time to idle expires it earlier unless read.
    fn deadline(&self, key: &K, value: &V, ttl: u64, now: u64) -> Deadline {
        let ttl = match &self.expiry {
            None => ttl,
            Some(hook) => expiry::nanos(hook.expire_after_write(key, value, expiry::duration(ttl))),
        };
        let cap = if ttl == 0 { 0 } else { now.saturating_add(ttl) };
        let at = if self.tti == 0 { cap } else { expiry::capped(now, self.tti, cap) };
        let refresh = self.refresh.refresh_at(key, value, self.expiry.as_deref(), now);
        Deadline { at, cap, refresh }
    }

    /// A clone of the value at `idx`, a live entry just hit at `now`, after moving its deadline
    /// as the time to idle and the `Expiry` hook say (see `expiry.rs`). Runs under the shard's
    /// lock, read or write.
    #[inline]
    fn read_hit(&self, slab: &Slab<K, V>, idx: u32, now: u64) -> V
    where
        V: Clone,
    {
        self.hit_value(slab, idx, slab.node(idx), now)
    }

    /// [`read_hit`](Self::read_hit) of the entry's `node`, already at hand.
    #[inline]
    fn hit_value(&self, slab: &Slab<K, V>, idx: u32, node: &Node<K, V>, now: u64) -> V
    where
        V: Clone,
    {
        let value = node.value().clone();
        if self.reads_move_deadlines {
            self.move_deadline(slab, idx, now);
        }
        value
    }

    #[cold]
    fn move_deadline(&self, slab: &Slab<K, V>, idx: u32, now: u64) {
        let node = slab.node(idx);
        let cap = slab.cap(idx);
        let current = node.expires();
        let mut at = if self.tti == 0 { current } else { expiry::capped(now, self.tti, cap) };
        if let Some(hook) = &self.expiry {
            let remaining = (at != 0).then(|| std::time::Duration::from_nanos(at.saturating_sub(now)));
            at = match hook.expire_after_read(node.key(), node.value(), remaining) {
                None => cap,
                Some(left) => expiry::capped(now, expiry::nanos(Some(left)), cap),
            };
        }
        if at != current {
            node.set_expires(at);
        }
    }

    /// Looks `key` up; on a miss, joins its flight or starts one, in one critical section.
    fn join_or_lead<Q>(&self, hash: u64, key: &Q) -> Role<V>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
    {
        let (role, expired) = {
            let mut shard = self.cell(hash).write();
            let now = self.now();
            let expired = match shard.get(hash, key, || now, |slab, idx| self.read_hit(slab, idx, now)) {
                Lookup::Hit(v) => return Role::Found(v),
                Lookup::Miss => None,
                Lookup::Expired(removed) => Some(removed),
            };
            let role = if let Some(flight) = shard.flight(hash, key) {
                self.counters.coalesced.fetch_add(1, Relaxed);
                Role::Wait(Arc::clone(flight))
            } else {
                let flight = Arc::new(Flight::new());
                shard.register_flight(hash, key.to_owned(), Arc::clone(&flight));
                self.counters.loads.fetch_add(1, Relaxed);
                Role::Lead(flight)
            };
            (role, expired)
        };
        if let Some(removed) = expired {
            self.release(removed);
        }
        role
    }
}
