//! Configuring a cache.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Cache, Listener};
use crate::clock::Clock;
use crate::error::ConfigError;
use crate::expiry::Expiry;
use crate::policy::Policy;
use crate::refresh::{self, Refresh};
use crate::stats::RemovalCause;
use crate::weigh::{DefaultWeigher, UnitWeigher, Weigher};

/// The most shards a cache can have.
pub const MAX_SHARDS: usize = 4096;

/// The hasher a cache uses unless told otherwise (foldhash: fast, and seeded per cache).
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// Builds a [`Cache`]; from [`Cache::builder`].
///
/// ```
/// use std::time::Duration;
/// use bounded_cache::{Cache, Policy};
///
/// let cache: Cache<String, Vec<u8>> = Cache::builder(64 << 20) // 64 MiB
///     .policy(Policy::S3Fifo)
///     .time_to_live(Duration::from_secs(300))
///     .build()?;
/// # Ok::<(), bounded_cache::ConfigError>(())
/// ```
pub struct CacheBuilder<K, V, W = DefaultWeigher, S = DefaultHashBuilder> {
    pub(crate) budget: u64,
    pub(crate) shards: Option<usize>,
    pub(crate) policy: Policy,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tti: Option<Duration>,
    pub(crate) expiry: Option<Box<dyn Expiry<K, V>>>,
    pub(crate) weigher: W,
    pub(crate) hasher: S,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) refresh: refresh::Config,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V, W, S> fmt::Debug for CacheBuilder<K, V, W, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("budget", &self.budget)
            .field("shards", &self.shards)
            .field("policy", &self.policy)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .field("expiry", &self.expiry.is_some())
            .field("listener", &self.listener.is_some())
            .field("clock", &self.clock.is_some())
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl<K, V> CacheBuilder<K, V> {
    pub(crate) fn new(budget: u64) -> Self {
        Self {
            budget,
            shards: None,
            policy: Policy::default(),
            ttl: None,
            tti: None,
            expiry: None,
            weigher: DefaultWeigher,
            hasher: DefaultHashBuilder::default(),
            listener: None,
            clock: None,
            refresh: refresh::Config::default(),
            _types: PhantomData,
        }
    }
}

impl<K, V, W, S> CacheBuilder<K, V, W, S> {
    /// The budget in bytes (or in entries, after [`max_entries`](Self::max_entries)).
    pub fn budget(mut self, budget: u64) -> Self {
        self.budget = budget;
        self
    }

    /// The number of shards, a power of two. By default four per CPU, fewer for small budgets (each
    /// shard evicts on its own, so a shard should hold at least a few dozen entries).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The eviction policy (default [`Policy::TinyLfu`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The time to live of entries inserted without one of their own (default: none).
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Expires entries not read (through `get` or a loader) or written for `tti`. With a time to
    /// live as well, an entry expires at whichever comes first. Costs 8 bytes per entry (counted
    /// in [`Cache::entry_overhead`]).
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Lets `expiry` decide each entry's lifetime from its key and value, when it is written and
    /// when it is read (see [`Expiry`]). Costs 8 bytes per entry, as
    /// [`time_to_idle`](Self::time_to_idle) does.
    pub fn expiry(mut self, expiry: impl Expiry<K, V> + 'static) -> Self {
        self.expiry = Some(Box::new(expiry));
        self
    }

    /// Reloads an entry in the background once it is `refresh` old: the first refreshing read
    /// after that ([`Cache::try_get_or_refresh_with`], or `Cache::get_or_try_refresh_with` in
    /// async code, feature `tokio`) starts one reload and, like every read while it runs, returns
    /// the current value at once. The reload replaces the value unless the key is written or
    /// invalidated meanwhile; a failed reload keeps the value (until it expires) and the next one
    /// starts `refresh` later. Make it shorter than the time to live, so that a key read often
    /// never expires; an [`Expiry`] hook can set it per entry ([`Expiry::refresh_after_write`]).
    /// Costs 8 bytes per entry.
    ///
    /// Plain reads (`get`, the `get_or_insert_with` family) never refresh: only the refreshing
    /// reads carry a loader that may run later, on another thread.
    pub fn refresh_after(mut self, refresh: Duration) -> Self {
        self.refresh.after = Some(refresh);
        self
    }

    /// Lets refreshing reads serve an entry for up to `grace` after it expired, while one of them
    /// reloads it in the background (stale-while-revalidate). Other reads (`get`, `peek`,
    /// `contains`, iteration, the `get_or_insert_with` family) see it as expired, and it is
    /// reclaimed once the grace is over. Costs 8 bytes per entry (shared with
    /// [`refresh_after`](Self::refresh_after)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bounded_cache::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder(1 << 20)
    ///     .time_to_live(Duration::from_secs(60))
    ///     .stale_while_revalidate(Duration::from_secs(10))
    ///     .refresh_executor(drop) // never reload, for this example
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert(1, 100).unwrap();
    /// clock.advance(Duration::from_secs(65));
    /// assert_eq!(cache.get(&1), None, "expired for plain reads");
    /// assert_eq!(cache.try_get_or_refresh_with(1, || Ok::<_, ()>(101)), Ok(100), "served stale");
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(cache.try_get_or_refresh_with(1, || Ok::<_, ()>(102)), Ok(102), "grace over: loaded");
    /// # Ok::<(), bounded_cache::ConfigError>(())
    /// ```
    pub fn stale_while_revalidate(mut self, grace: Duration) -> Self {
        self.refresh.grace = Some(grace);
        self
    }

    /// Where synchronous background reloads run: `executor` is handed each [`Refresh`] and must
    /// run it (on a thread pool, say) or drop it (counted as a failed refresh; the entry keeps
    /// its value). By default each reload runs on a new thread. Async reloads are spawned on
    /// the caller's Tokio runtime instead.
    pub fn refresh_executor(mut self, executor: impl Fn(Refresh) + Send + Sync + 'static) -> Self {
        self.refresh.executor = Some(Arc::new(executor));
        self
    }

    /// Weighs entries with a closure returning the heap bytes of a key and its value together,
    /// instead of [`Weigh`](crate::Weigh). The cache adds its per-entry overhead.
    pub fn weigher<F>(self, weigher: F) -> CacheBuilder<K, V, F, S>
    where
        F: Fn(&K, &V) -> usize + Send + Sync,
    {
        self.with_weigher(weigher)
    }

    /// Counts entries instead of bytes: every entry weighs 1, and the budget is `entries`.
    pub fn max_entries(self, entries: u64) -> CacheBuilder<K, V, UnitWeigher, S> {
        self.with_weigher(UnitWeigher).budget(entries)
    }

    pub(crate) fn with_weigher<W2>(self, weigher: W2) -> CacheBuilder<K, V, W2, S> {
        CacheBuilder {
            budget: self.budget,
            shards: self.shards,
            policy: self.policy,
            ttl: self.ttl,
            tti: self.tti,
            expiry: self.expiry,
            weigher,
            hasher: self.hasher,
            listener: self.listener,
            clock: self.clock,
            refresh: self.refresh,
            _types: PhantomData,
        }
    }

    /// The hasher for keys (default: foldhash, seeded per cache).
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> CacheBuilder<K, V, W, S2> {
        CacheBuilder {
            budget: self.budget,
            shards: self.shards,
            policy: self.policy,
            ttl: self.ttl,
            tti: self.tti,
            expiry: self.expiry,
            weigher: self.weigher,
            hasher,
            listener: self.listener,
            clock: self.clock,
            refresh: self.refresh,
            _types: PhantomData,
        }
    }

    /// The clock the cache reads to stamp and check expiry (default: [`SystemClock`](crate::SystemClock), read as
    /// `Instant::now` with no virtual call). A [`ManualClock`](crate::ManualClock) makes tests of
    /// time-to-live behaviour exact.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Called with each entry that leaves the cache and why, after the shard's lock is released,
    /// on the thread whose call made it leave.
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }
}

impl<K, V, W, S> CacheBuilder<K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
{
    /// Builds the cache.
    ///
    /// # Errors
    /// [`ConfigError`] for a zero budget, a zero time to live or time to idle, or a shard count that is not a power
    /// of two from 1 to [`MAX_SHARDS`].
    pub fn build(self) -> Result<Cache<K, V, W, S>, ConfigError> {
        if self.budget == 0 {
            return Err(ConfigError::ZeroBudget);
        }
        if self.ttl == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroTtl);
        }
        if self.tti == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroTti);
        }
        if self.refresh.after == Some(Duration::ZERO) || self.refresh.grace == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroRefresh);
        }
        if let Some(n) = self.shards.filter(|&n| n == 0 || !n.is_power_of_two() || n > MAX_SHARDS) {
            return Err(ConfigError::Shards(n));
        }
        Ok(Cache::from_builder(self))
    }
}
