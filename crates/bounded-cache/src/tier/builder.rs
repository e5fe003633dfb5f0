//! Configuring a [`TieredCache`].

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use connpool::Pool;
use connpool::redis::RedisManager;
use tokio::time::timeout;

use super::announce::Pending;
use super::breaker::Breaker;
use super::codec::MacKey;
use super::listener::Heartbeat;
use super::stats::Counters;
use super::{Codec, Epochs, Inner, MsgPack, TieredCache, ValueWeigher, Weighed, weigh};
use crate::{Cache, ConfigError, Policy, Weigh};

/// Configures a [`TieredCache`]; from [`TieredCache::builder`].
pub struct TieredBuilder<V, C = MsgPack> {
    pool: Pool<RedisManager>,
    prefix: String,
    version: u32,
    weigher: ValueWeigher<V>,
    l1_budget: u64,
    l1_ttl: Option<Duration>,
    l1_refresh: Option<Duration>,
    policy: Policy,
    l2_ttl: Duration,
    l2_timeout: Duration,
    compress_above: usize,
    max_value: usize,
    mac: Option<MacKey>,
    breaker_threshold: u32,
    breaker_open_for: Duration,
    heartbeat: Heartbeat,
    codec: C,
}

impl<V, C: std::fmt::Debug> std::fmt::Debug for TieredBuilder<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredBuilder")
            .field("prefix", &self.prefix)
            .field("version", &self.version)
            .field("l1_budget", &self.l1_budget)
            .field("l1_ttl", &self.l1_ttl)
            .field("l1_refresh_after", &self.l1_refresh)
            .field("l2_ttl", &self.l2_ttl)
            .field("codec", &self.codec)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl<V: Weigh + 'static> TieredCache<V> {
    /// Starts configuring a tiered cache whose Redis keys are `<prefix>:v<version>:<key>`, with L1
    /// weighing values by [`Weigh`]. Bump the version when the value type changes shape: old
    /// entries are then simply never read.
    pub fn builder(pool: Pool<RedisManager>, prefix: &str, version: u32) -> TieredBuilder<V> {
        Self::builder_with_weigher(pool, prefix, version, |v: &V| v.heap_bytes())
    }
}

impl<V: 'static> TieredCache<V> {
    /// [`builder`](Self::builder) for a value type without [`Weigh`]: `weigher` gives the heap
    /// bytes a value holds (its size in L1's budget).
    pub fn builder_with_weigher(
        pool: Pool<RedisManager>,
        prefix: &str,
        version: u32,
        weigher: impl Fn(&V) -> usize + Send + Sync + 'static,
    ) -> TieredBuilder<V> {
        TieredBuilder {
            pool,
            prefix: prefix.to_string(),
            version,
            weigher: Arc::new(weigher),
            l1_budget: 64 << 20,
            l1_ttl: Some(Duration::from_secs(300)),
            l1_refresh: None,
            policy: Policy::default(),
            l2_ttl: Duration::from_secs(3600),
            l2_timeout: Duration::from_millis(100),
            compress_above: 1024,
            max_value: 64 << 20,
            mac: None,
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(2),
            heartbeat: Heartbeat { every: Duration::from_secs(1), timeout: Duration::from_secs(1) },
            codec: MsgPack,
        }
    }
}

impl<V, C> TieredBuilder<V, C> {
    /// L1's byte budget (default 64 MiB), against the decoded values' weight.
    pub fn l1_budget(mut self, bytes: u64) -> Self {
        self.l1_budget = bytes;
        self
    }

    /// L1's time to live (default 5 minutes); `None` for none. It also bounds how long an
    /// instance can serve a copy replaced elsewhere when announcements cannot get through (see
    /// the module docs).
    pub fn l1_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.l1_ttl = ttl;
        self
    }

    /// Refreshes L1 copies from Redis in the background once they are `refresh` old (default:
    /// never), as [`CacheBuilder::refresh_after`](crate::CacheBuilder::refresh_after) does: the
    /// first read of a due copy returns it at once and spawns one read of the key from Redis,
    /// whose value replaces the copy unless the key is written or invalidated meanwhile. Make it
    /// shorter than [`l1_ttl`](Self::l1_ttl), so that a key read often is always served from L1.
    /// A key gone from Redis (or Redis unreachable) leaves the copy to expire, counted in the L1
    /// statistics' `refresh_failures`.
    pub fn l1_refresh_after(mut self, refresh: Duration) -> Self {
        self.l1_refresh = Some(refresh);
        self
    }

    /// L1's eviction policy (default W-TinyLFU, as [`Cache`]'s).
    pub fn l1_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The time to live of values written to Redis (default 1 hour).
    pub fn l2_ttl(mut self, ttl: Duration) -> Self {
        self.l2_ttl = ttl;
        self
    }

    /// How long one Redis call may take before it counts as failed (default 100 ms).
    pub fn l2_timeout(mut self, timeout: Duration) -> Self {
        self.l2_timeout = timeout;
        self
    }

    /// Encoded values larger than this are lz4-compressed (default 1 KiB).
    pub fn compress_above(mut self, bytes: usize) -> Self {
        self.compress_above = bytes;
        self
    }

    /// The largest value accepted from Redis, decompressed (default 64 MiB); larger ones are
    /// refused without being read past this size.
    pub fn max_value(mut self, bytes: usize) -> Self {
        self.max_value = bytes;
        self
    }

    /// Signs every value written with HMAC-SHA256 under `key`, and refuses values read that are
    /// not signed with it: an instance without the key cannot poison the others' L1. Every
    /// instance of the namespace needs the same key.
    pub fn mac_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.mac = Some(MacKey::new(key.into()));
        self
    }

    /// Failures in a row that open the circuit breaker (at least 1; 0 counts as 1), and how long it
    /// stays open before a probe (default 5 and 2 s).
    pub fn breaker(mut self, threshold: u32, open_for: Duration) -> Self {
        self.breaker_threshold = threshold.max(1);
        self.breaker_open_for = open_for;
        self
    }

    /// How the invalidation subscription is proven alive: pinged every `every`, lost when a
    /// ping is unanswered for `timeout` (default 1 s and 1 s). Their sum bounds how long a dead
    /// subscription goes unnoticed (see the module docs).
    pub fn heartbeat(mut self, every: Duration, timeout: Duration) -> Self {
        self.heartbeat = Heartbeat { every, timeout };
        self
    }

    /// The codec for values in Redis.
    pub fn codec<C2>(self, codec: C2) -> TieredBuilder<V, C2> {
        TieredBuilder {
            pool: self.pool,
            prefix: self.prefix,
            version: self.version,
            weigher: self.weigher,
            l1_budget: self.l1_budget,
            l1_ttl: self.l1_ttl,
            l1_refresh: self.l1_refresh,
            policy: self.policy,
            l2_ttl: self.l2_ttl,
            l2_timeout: self.l2_timeout,
            compress_above: self.compress_above,
            max_value: self.max_value,
            mac: self.mac,
            breaker_threshold: self.breaker_threshold,
            breaker_open_for: self.breaker_open_for,
            heartbeat: self.heartbeat,
            codec,
        }
    }
}

impl<V, C> TieredBuilder<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// Builds the cache and subscribes to invalidations (waiting up to a second for the
    /// subscription; if Redis is unreachable the cache starts anyway, keeps L1 copies for
    /// `heartbeat_every + heartbeat_timeout` at most until it has subscribed, and subscribes when
    /// it can). Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`ConfigError`] for a zero L1 budget, L1 time to live or heartbeat.
    pub async fn build(self) -> Result<TieredCache<V, C>, ConfigError> {
        if self.heartbeat.every.is_zero() || self.heartbeat.timeout.is_zero() {
            return Err(ConfigError::ZeroHeartbeat);
        }
        let mut l1 = Cache::builder(self.l1_budget)
            .policy(self.policy)
            .weigher(weigh::<V> as fn(&String, &Weighed<V>) -> usize);
        if let Some(ttl) = self.l1_ttl {
            l1 = l1.time_to_live(ttl);
        }
        if let Some(refresh) = self.l1_refresh {
            l1 = l1.refresh_after(refresh);
        }
        let namespace = format!("{}:v{}", self.prefix, self.version);
        let inner = Arc::new(Inner {
            l1: l1.build()?,
            weigher: self.weigher,
            pool: self.pool,
            codec: self.codec,
            channel: format!("{namespace}:invalidate"),
            namespace,
            l2_ttl: self.l2_ttl,
            l2_timeout: self.l2_timeout,
            compress_above: self.compress_above,
            max_value: self.max_value,
            mac: self.mac,
            l1_ttl: self.l1_ttl,
            breaker: Breaker::new(self.breaker_threshold, self.breaker_open_for),
            counters: Counters::default(),
            epochs: Epochs::new(),
            subscribed: AtomicBool::new(false),
            unheard_for: self.heartbeat.every.saturating_add(self.heartbeat.timeout),
            pending: Pending::default(),
            instance: fastrand::u64(..),
            tasks: parking_lot::Mutex::new(Vec::new()),
        });
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(super::listener::run(
            Arc::downgrade(&inner),
            inner.pool.manager().clone(),
            inner.channel.clone(),
            self.heartbeat,
            subscribed_tx,
        ));
        let announcer = tokio::spawn(super::announce::run(Arc::downgrade(&inner)));
        inner.tasks.lock().extend([listener, announcer]);
        let _ = timeout(Duration::from_secs(1), subscribed_rx).await;
        Ok(TieredCache { inner })
    }
}
