//! Refresh-ahead and stale-while-revalidate: reads that reload an entry in the background
//! ([`Cache::try_get_or_refresh_with`], and `Cache::get_or_try_refresh_with` with the `tokio`
//! feature).
//!
//! # Implementation details
//!
//! A refreshing cache keeps a "refresh at" time beside each entry (a page beside each slab page,
//! `slab.rs`), set when the entry is written: `refresh_after` later, or as the [`Expiry`] hook
//! says. A refreshing read that finds the time passed *claims* the refresh under the shard's
//! read lock by moving the time one period on with a compare-and-swap: of the readers that see
//! the same due entry, exactly one wins, and the others return the value without touching any
//! lock beyond the read lock. The period is `refresh_after` (or the grace, in a cache that only
//! serves stale values): a reload that fails or is lost leaves the entry due again one period
//! later, never sooner, so a failing backend sees one reload per key per period.
//!
//! The winner then takes the write lock and registers a flight for the key (`load.rs`), if the
//! entry it saw is still there (same node, version and clear count) and no load or compute of the
//! key is in flight. From there a reload is an ordinary load whose leader runs elsewhere:
//!
//! - readers do not wait for it (they serve the entry); callers that miss (the entry evicted or
//!   expired meanwhile) join the flight as they would join any load;
//! - it stores its value only if the flight is still registered, so a write or invalidation of
//!   the key while it runs wins (`load.rs`);
//! - if it fails, panics, or is dropped unrun by the executor, the flight ends without storing
//!   and the entry keeps serving until it expires; the failure is counted in
//!   [`Stats::refresh_failures`](crate::Stats::refresh_failures).
//!
//! **Stale-while-revalidate.** With a grace, an expired entry is not reclaimed (by a sweep, a
//! read or `purge_expired`) until the grace has passed too. Until then a refreshing read serves
//! it and claims a reload as above (a stale entry is always due); every other read sees it as
//! expired. A plain read that finds it leaves it in place for the refreshing reads.

use std::borrow::Borrow;
use std::fmt;
#[cfg(feature = "tokio")]
use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, Hash};
#[cfg(feature = "tokio")]
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::cache::{Cache, Inner, Shared};
use crate::error::LoadError;
use crate::expiry::{self, Expiry};
use crate::load::{Flight, Lead, Loading};
use crate::weigh::Weigher;

/// Where synchronous reloads run (`CacheBuilder::refresh_executor`).
pub(crate) type Executor = Arc<dyn Fn(Refresh) + Send + Sync>;

/// The builder's refresh settings.
#[derive(Default, Clone)]
pub(crate) struct Config {
    pub(crate) after: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) executor: Option<Executor>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresh")
            .field("after", &self.after)
            .field("grace", &self.grace)
            .field("executor", &self.executor.is_some())
            .finish()
    }
}

/// A cache's refresh settings, in the units the shards use.
pub(crate) struct Settings {
    /// Nanoseconds after a write at which the entry is due (0: never, unless the hook says).
    after: u64,
    /// Nanoseconds an expired entry is served stale (0: none).
    pub(crate) grace: u64,
    executor: Option<Executor>,
}

impl Settings {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            after: expiry::nanos(config.after),
            grace: expiry::nanos(config.grace),
            executor: config.executor,
        }
    }

    /// Whether entries keep a refresh time.
    pub(crate) fn enabled(&self) -> bool {
        self.after != 0 || self.grace != 0
    }

    /// How far a claim moves an entry's refresh time: the next reload of it cannot start sooner.
    #[inline]
    pub(crate) fn period(&self) -> u64 {
        if self.after != 0 { self.after } else { self.grace }
    }

    /// When an entry written at `now` is due for a refresh (0: never).
    pub(crate) fn refresh_at<K, V>(
        &self,
        key: &K,
        value: &V,
        hook: Option<&dyn Expiry<K, V>>,
        now: u64,
    ) -> u64 {
        if !self.enabled() {
            return 0;
        }
        let after = match hook {
            None => self.after,
            Some(hook) => expiry::nanos(hook.refresh_after_write(key, value, expiry::duration(self.after))),
        };
        if after == 0 { 0 } else { now.saturating_add(after) }
    }

    fn execute(&self, job: Refresh) {
        match &self.executor {
            Some(executor) => executor(job),
            None => {
                // A thread that cannot be spawned drops the job: counted as a failed refresh.
                let _ =
                    std::thread::Builder::new().name("bounded-cache-refresh".into()).spawn(move || job.run());
            }
        }
    }
}

/// A background reload, handed to the executor set with
/// [`CacheBuilder::refresh_executor`](crate::CacheBuilder::refresh_executor).
///
/// Run it on any thread, or drop it: a refresh dropped unrun counts as failed, and the entry
/// keeps its value.
pub struct Refresh {
    job: Box<dyn FnOnce() + Send>,
}

impl Refresh {
    /// Runs the reload (the loader, then the store) on this thread.
    pub fn run(self) {
        (self.job)();
    }
}

impl fmt::Debug for Refresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresh").finish_non_exhaustive()
    }
}

/// A refresh a read claimed: the entry it saw, to start the reload on if it is still there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    pub(crate) idx: u32,
    pub(crate) version: u16,
    pub(crate) cleared: u64,
}

/// A registered reload not yet run: running it leads the flight; dropping it ends the flight
/// without a value (counted as a failed refresh).
///
/// It holds the cache weakly: a reload queued on an executor does not keep a dropped cache alive
/// (nor, through the executor the cache owns, itself: a queue of reloads inside the executor
/// would otherwise be a reference cycle). A reload whose cache is gone does nothing.
struct Reload<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    cache: Weak<Inner<K, V, W, S>>,
    hash: u64,
    pending: Option<(K, Arc<Flight<V>>)>,
}

impl<K, V, W, S> Reload<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    fn new(cache: &Cache<K, V, W, S>, hash: u64, key: K, flight: Arc<Flight<V>>) -> Self {
        Self { cache: cache.downgrade(), hash, pending: Some((key, flight)) }
    }

    fn run<E: Send + Sync + 'static>(mut self, load: impl FnOnce() -> Result<V, E>) {
        let Some(inner) = self.cache.upgrade() else { return };
        let (key, flight) = self.pending.take().expect("a reload runs once");
        let lead = Lead::refresh(&inner, self.hash, flight);
        let result = {
            let _loading = Loading::enter(lead.flight());
            load()
        };
        // The outcome is the waiters' (callers that missed meanwhile); failures are counted.
        let _ = lead.finish(key, result);
    }

    #[cfg(feature = "tokio")]
    async fn run_async<E: Send + Sync + 'static>(mut self, load: impl Future<Output = Result<V, E>>) {
        let Some(inner) = self.cache.upgrade() else { return };
        let (key, flight) = self.pending.take().expect("a reload runs once");
        let lead = Lead::refresh(&inner, self.hash, flight);
        let mut load = pin!(load);
        let result = poll_fn(|cx| {
            let _loading = Loading::enter(lead.flight());
            load.as_mut().poll(cx)
        })
        .await;
        let _ = lead.finish(key, result);
    }
}

impl<K, V, W, S> Drop for Reload<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    fn drop(&mut self) {
        if let (Some((_, flight)), Some(inner)) = (self.pending.take(), self.cache.upgrade()) {
            // The lead's drop ends the flight as abandoned and counts the failure.
            drop(Lead::refresh(&inner, self.hash, flight));
        }
    }
}

impl<K, V, W, S> Inner<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// Registers the reload `claim` won, if the entry it saw is still there and nothing is in
    /// flight for the key.
    fn start_refresh<Q>(&self, hash: u64, key: &Q, claim: Claim) -> Option<Arc<Flight<V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
    {
        let mut shard = self.cell(hash).write();
        if !shard.holds(claim.idx, claim.version, claim.cleared) || shard.flight(hash, key).is_some() {
            return None;
        }
        let flight = Arc::new(Flight::new());
        shard.register_flight(hash, key.to_owned(), Arc::clone(&flight));
        self.counters.refreshes.fetch_add(1, Relaxed);
        Some(flight)
    }
}

impl<K, V, W, S> Cache<K, V, W, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    W: Weigher<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// The value for `key`, loading it with `load` on this thread if it is missing (as
    /// [`try_get_or_insert_with`](Self::try_get_or_insert_with)), and reloading it in the
    /// background if it is due for a refresh
    /// ([`refresh_after`](crate::CacheBuilder::refresh_after)) or served stale
    /// ([`stale_while_revalidate`](crate::CacheBuilder::stale_while_revalidate)): then this call
    /// returns the current value at once and hands `load` to the cache's
    /// [refresh executor](crate::CacheBuilder::refresh_executor). One reload runs per key at a
    /// time, and at most one starts per refresh period.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bounded_cache::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder(1 << 20)
    ///     .time_to_live(Duration::from_secs(60))
    ///     .refresh_after(Duration::from_secs(45))
    ///     .refresh_executor(|refresh| refresh.run()) // run reloads on the reading thread
    ///     .clock(clock.clone())
    ///     .build()?;
    /// assert_eq!(cache.try_get_or_refresh_with(7, || Ok::<_, ()>(1)), Ok(1));
    /// clock.advance(Duration::from_secs(50));
    /// // Due: this read returns the current value and starts the reload (here, inline).
    /// assert_eq!(cache.try_get_or_refresh_with(7, || Ok::<_, ()>(2)), Ok(1));
    /// assert_eq!(cache.get(&7), Some(2));
    /// # Ok::<(), bounded_cache::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`try_get_or_insert_with`](Self::try_get_or_insert_with), for a load on this thread.
    /// A background reload's error reaches no reader: it is counted in
    /// [`Stats::refresh_failures`](crate::Stats::refresh_failures).
    pub fn try_get_or_refresh_with<E, F>(&self, key: K, load: F) -> Result<V, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> Result<V, E> + Send + 'static,
    {
        let inner = self.inner();
        let hash = inner.hash(&key);
        if let (Shared::Hit(value), claim) = inner.lookup_shared::<K, true, false>(hash, &key) {
            if let Some(flight) = claim.and_then(|claim| inner.start_refresh(hash, &key, claim)) {
                let reload = Reload::new(self, hash, key, flight);
                inner.refresh.execute(Refresh { job: Box::new(move || reload.run(load)) });
            }
            return Ok(value);
        }
        self.try_get_or_insert_with(key, load)
    }

    /// The async [`try_get_or_refresh_with`](Self::try_get_or_refresh_with): a missing value is
    /// loaded by awaiting `load()`, as in [`get_or_try_insert_with`](Self::get_or_try_insert_with);
    /// a due or stale one is returned at once while `load()` is spawned as a task on the current
    /// Tokio runtime. Called outside a runtime, no reload starts (counted as a failed refresh).
    ///
    /// # Errors
    /// As [`get_or_try_insert_with`](Self::get_or_try_insert_with), for a load in this task.
    #[cfg(feature = "tokio")]
    pub async fn get_or_try_refresh_with<E, F, Fut>(&self, key: K, load: F) -> Result<V, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let mut load = Some(load);
        // `load` is taken by a reload only on a hit, and by the load below only on a miss.
        if let Some(value) = self.hit_or_refresh(&key, || load.take().expect("unused")()) {
            return Ok(value);
        }
        self.get_or_try_insert_with(key, load.take().expect("not taken on a miss")()).await
    }

    /// The hit path of [`get_or_try_refresh_with`](Self::get_or_try_refresh_with): the live (or
    /// stale, within the grace) value of `key`, spawning `reload()` if it is due; `None` on a miss.
    /// For the Redis tier's L1, whose misses go through its own fill.
    #[cfg(feature = "tokio")]
    pub(crate) fn hit_or_refresh<Q, E, Fut>(&self, key: &Q, reload: impl FnOnce() -> Fut) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let inner = self.inner();
        let hash = inner.hash(key);
        let (Shared::Hit(value), claim) = inner.lookup_shared::<Q, true, false>(hash, key) else {
            return None;
        };
        if let Some(flight) = claim.and_then(|claim| inner.start_refresh(hash, key, claim)) {
            let job = Reload::new(self, hash, key.to_owned(), flight);
            // Outside a runtime the job is dropped: counted as a failed refresh.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(job.run_async(reload()));
            }
        }
        Some(value)
    }
}
