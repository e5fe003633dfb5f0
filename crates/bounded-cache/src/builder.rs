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

    /// The eviction policy (default [`Policy::Lru`]).
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

    fn with_weigher<W2>(self, weigher: W2) -> CacheBuilder<K, V, W2, S> {
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
        if let Some(n) = self.shards.filter(|&n| n == 0 || !n.is_power_of_two() || n > MAX_SHARDS) {
            return Err(ConfigError::Shards(n));
        }
        Ok(Cache::from_builder(self))
    }
}
