//! A two-tier cache: this process's [`Cache`] (L1) in front of Redis (L2), shared by every
//! instance of a service (feature `redis`).
//!
//! - **Reads**: L1, then L2 (a hit is copied into L1), then the loader (its value is written to
//!   both). Concurrent misses for one key in one instance run one L2 lookup and one loader.
//! - **Writes and invalidations** reach both tiers, and are announced on a Redis pub/sub channel so
//!   that every other instance drops the key from its L1: no instance serves its old copy after a
//!   write. While an instance's subscription is down it may miss announcements, so it clears its
//!   L1 when it subscribes again; L1's time to live bounds staleness in between.
//! - **Degradation**: every Redis call has a timeout; failures and timeouts are counted, never
//!   turned into a failed get (the value comes from the loader instead), and a circuit breaker
//!   stops calling Redis after repeated failures, probing again later.
//! - **Keys** are `<prefix>:v<version>:<key>`; [`KeyBuilder`] makes short stable keys from
//!   structured parts. Values are encoded with a [`Codec`] ([`MsgPack`] by default, [`Json`]
//!   available) and lz4-compressed above a size threshold; a value in Redis that this cache did not
//!   write (or that is damaged) is a counted miss.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bounded_cache::tier::TieredCache;
//!
//! let manager = connpool::redis::RedisManager::new("redis://127.0.0.1:6379")?;
//! let pool = connpool::Pool::builder(manager).build().await?;
//! let cache: TieredCache<String> = TieredCache::builder(pool, "profile", 3).build().await?;
//! let name = cache
//!     .get_or_load("user:42", || async { Ok::<_, std::io::Error>("Ada".to_string()) })
//!     .await?;
//! cache.invalidate("user:42").await; // gone from every instance's L1 and from Redis
//! println!("{}", cache.stats());
//! # Ok(()) }
//! ```

mod breaker;
mod codec;
mod key;
mod stats;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use connpool::Pool;
use connpool::redis::RedisManager;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

pub use breaker::BreakerState;
pub use codec::{Codec, CodecError, Json, MsgPack};
pub use key::KeyBuilder;
pub use stats::TierStats;

use crate::{Cache, ConfigError, LoadError, Policy};
use breaker::Breaker;
use stats::Counters;

/// How a value is written to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Over whatever is there (an insert).
    Always,
    /// Only where nothing is (a loaded value).
    IfAbsent,
}

/// What an L2 lookup that found nothing reports to the L1 flight (never cached, never returned).
#[derive(Debug)]
struct NotInL2;

/// An L1 entry: the value and its weight (the size of its encoding, an estimate of its heap use).
#[derive(Clone)]
struct Weighed<V> {
    value: V,
    weight: usize,
}

type L1<V> = Cache<String, Weighed<V>, fn(&String, &Weighed<V>) -> usize>;

fn weigh<V>(key: &String, entry: &Weighed<V>) -> usize {
    key.capacity() + entry.weight
}

struct Inner<V, C> {
    l1: L1<V>,
    pool: Pool<RedisManager>,
    codec: C,
    namespace: String,
    channel: String,
    l2_ttl: Duration,
    l2_timeout: Duration,
    compress_above: usize,
    max_value: usize,
    breaker: Breaker,
    counters: Counters,
    /// Tells this instance's announcements from the others'.
    instance: u64,
    listener: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl<V, C> Drop for Inner<V, C> {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get_mut().take() {
            task.abort();
        }
    }
}

/// A cache with this process's memory as L1 and Redis as a shared L2. Cloning is cheap and gives
/// another handle to the same cache.
pub struct TieredCache<V, C = MsgPack> {
    inner: Arc<Inner<V, C>>,
}

impl<V, C> Clone for TieredCache<V, C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<V, C> std::fmt::Debug for TieredCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredCache").field("namespace", &self.inner.namespace).finish_non_exhaustive()
    }
}

/// Configures a [`TieredCache`]; from [`TieredCache::builder`].
#[derive(Debug)]
pub struct TieredBuilder<V, C = MsgPack> {
    pool: Pool<RedisManager>,
    prefix: String,
    version: u32,
    l1_budget: u64,
    l1_ttl: Option<Duration>,
    policy: Policy,
    l2_ttl: Duration,
    l2_timeout: Duration,
    compress_above: usize,
    max_value: usize,
    breaker_threshold: u32,
    breaker_open_for: Duration,
    codec: C,
    _value: std::marker::PhantomData<fn() -> V>,
}

impl<V> TieredCache<V> {
    /// Starts configuring a tiered cache whose Redis keys are `<prefix>:v<version>:<key>`. Bump the
    /// version when the value type changes shape: old entries are then simply never read.
    pub fn builder(pool: Pool<RedisManager>, prefix: &str, version: u32) -> TieredBuilder<V> {
        TieredBuilder {
            pool,
            prefix: prefix.to_string(),
            version,
            l1_budget: 64 << 20,
            l1_ttl: Some(Duration::from_secs(300)),
            policy: Policy::Lru,
            l2_ttl: Duration::from_secs(3600),
            l2_timeout: Duration::from_millis(100),
            compress_above: 1024,
            max_value: 64 << 20,
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(2),
            codec: MsgPack,
            _value: std::marker::PhantomData,
        }
    }
}

impl<V, C> TieredBuilder<V, C> {
    /// L1's byte budget (default 64 MiB).
    pub fn l1_budget(mut self, bytes: u64) -> Self {
        self.l1_budget = bytes;
        self
    }

    /// L1's time to live (default 5 minutes); `None` for none.
    pub fn l1_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.l1_ttl = ttl;
        self
    }

    /// L1's eviction policy (default LRU).
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

    /// The largest value accepted from Redis, decompressed (default 64 MiB).
    pub fn max_value(mut self, bytes: usize) -> Self {
        self.max_value = bytes;
        self
    }

    /// Failures in a row that open the circuit breaker (at least 1; 0 counts as 1), and how long it
    /// stays open before a probe (default 5 and 2 s).
    pub fn breaker(mut self, threshold: u32, open_for: Duration) -> Self {
        self.breaker_threshold = threshold.max(1);
        self.breaker_open_for = open_for;
        self
    }

    /// The codec for values in Redis.
    pub fn codec<C2>(self, codec: C2) -> TieredBuilder<V, C2> {
        TieredBuilder {
            pool: self.pool,
            prefix: self.prefix,
            version: self.version,
            l1_budget: self.l1_budget,
            l1_ttl: self.l1_ttl,
            policy: self.policy,
            l2_ttl: self.l2_ttl,
            l2_timeout: self.l2_timeout,
            compress_above: self.compress_above,
            max_value: self.max_value,
            breaker_threshold: self.breaker_threshold,
            breaker_open_for: self.breaker_open_for,
            codec,
            _value: std::marker::PhantomData,
        }
    }
}

impl<V, C> TieredBuilder<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// Builds the cache and subscribes to invalidations (waiting up to a second for the
    /// subscription; if Redis is unreachable the cache starts anyway and subscribes when it can).
    /// Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`ConfigError`] for a zero L1 budget or time to live.
    pub async fn build(self) -> Result<TieredCache<V, C>, ConfigError> {
        let mut l1 = Cache::builder(self.l1_budget)
            .policy(self.policy)
            .weigher(weigh::<V> as fn(&String, &Weighed<V>) -> usize);
        if let Some(ttl) = self.l1_ttl {
            l1 = l1.time_to_live(ttl);
        }
        let namespace = format!("{}:v{}", self.prefix, self.version);
        let inner = Arc::new(Inner {
            l1: l1.build()?,
            pool: self.pool,
            codec: self.codec,
            channel: format!("{namespace}:invalidate"),
            namespace,
            l2_ttl: self.l2_ttl,
            l2_timeout: self.l2_timeout,
            compress_above: self.compress_above,
            max_value: self.max_value,
            breaker: Breaker::new(self.breaker_threshold, self.breaker_open_for),
            counters: Counters::default(),
            instance: fastrand::u64(..),
            listener: parking_lot::Mutex::new(None),
        });
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let manager = inner.pool.manager().clone();
        let task = tokio::spawn(listen(
            Arc::downgrade(&inner),
            manager,
            inner.channel.clone(),
            inner.instance,
            subscribed_tx,
        ));
        *inner.listener.lock() = Some(task);
        let _ = timeout(Duration::from_secs(1), subscribed_rx).await;
        Ok(TieredCache { inner })
    }
}

impl<V, C> TieredCache<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// The Redis key for `key`: `<prefix>:v<version>:<key>`.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.namespace)
    }

    /// The value for `key` from L1 or L2 (copied into L1), without loading. Concurrent callers for
    /// a key missing from L1 share one L2 lookup; an invalidation that arrives while it runs keeps
    /// its value out of L1.
    pub async fn get(&self, key: &str) -> Option<V> {
        let inner = &self.inner;
        let fill = async {
            match inner.l2_get(key).await {
                Some((value, weight)) => Ok(Weighed { value, weight }),
                None => Err(NotInL2),
            }
        };
        inner.l1.get_or_try_insert_with_ref(key, fill).await.ok().map(|entry| entry.value)
    }

    /// The value for `key`: from L1, else from L2 (copied into L1), else from `load` (written to
    /// both tiers). Concurrent callers for a missing key in this instance share one L2 lookup and
    /// one `load`.
    ///
    /// An invalidation (local, or announced by another instance) that arrives while the value is
    /// read from L2 or loaded keeps that value out of L1; the callers still get it.
    ///
    /// # Errors
    /// [`LoadError::Failed`] with `load`'s error, shared by the callers that waited for it;
    /// [`LoadError::Recursive`] if `load` asks for `key` itself. Redis failures are never errors
    /// here: they are counted, and the value comes from `load`.
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let inner = &self.inner;
        let fill = async {
            if let Some((value, weight)) = inner.l2_get(key).await {
                return Ok(Weighed { value, weight });
            }
            inner.counters.loads.fetch_add(1, Ordering::Relaxed);
            let value = load().await.inspect_err(|_| {
                inner.counters.load_errors.fetch_add(1, Ordering::Relaxed);
            })?;
            // A loaded value only fills an empty slot in Redis: another instance may have written a
            // newer value while this one loaded.
            let weight = inner.write_l2(key, &value, Write::IfAbsent).await;
            Ok(Weighed { value, weight })
        };
        inner.l1.get_or_try_insert_with_ref(key, fill).await.map(|entry| entry.value)
    }

    /// Writes `value` to both tiers and tells the other instances to drop their copy.
    pub async fn insert(&self, key: &str, value: V) {
        let inner = &self.inner;
        let weight = inner.write_l2(key, &value, Write::Always).await;
        let _ = inner.l1.insert(key.to_string(), Weighed { value, weight });
        inner.announce(key).await;
    }

    /// Removes `key` from both tiers and from every other instance's L1.
    pub async fn invalidate(&self, key: &str) {
        let inner = &self.inner;
        inner.l1.remove(key);
        let redis_key = self.redis_key(key);
        inner.l2_call(redis::cmd("DEL").arg(&redis_key), |_: i64| ()).await;
        inner.announce(key).await;
    }

    /// Loads every key of `keys` through [`get_or_load`](Self::get_or_load), at most `concurrency`
    /// at a time (at least 1; 0 counts as 1); returns how many loads failed.
    pub async fn warm<E, F, Fut>(
        &self,
        keys: impl IntoIterator<Item = String>,
        concurrency: usize,
        load: F,
    ) -> usize
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let load = &load;
        futures::stream::iter(keys)
            .map(|key| async move { self.get_or_load(&key, || load(key.clone())).await.is_err() })
            .buffer_unordered(concurrency.max(1))
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await
    }

    /// The in-process tier.
    pub fn l1_len(&self) -> usize {
        self.inner.l1.len()
    }

    /// Whether `key` is in this instance's L1.
    pub fn l1_contains(&self, key: &str) -> bool {
        self.inner.l1.contains(key)
    }

    /// Statistics of both tiers.
    pub fn stats(&self) -> TierStats {
        self.inner.counters.snapshot(self.inner.l1.stats(), self.inner.breaker.state(), &self.inner.breaker)
    }
}

impl<V, C> Inner<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    fn encode(&self, value: &V) -> Option<Vec<u8>> {
        match self.codec.encode(value) {
            Ok(payload) => Some(codec::seal(C::ID, payload, self.compress_above)),
            Err(_) => {
                self.counters.encode_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// One Redis call under the breaker and the timeout; `None` if skipped or failed (counted).
    async fn l2_call<T: redis::FromRedisValue, R>(
        &self,
        cmd: &redis::Cmd,
        then: impl FnOnce(T) -> R,
    ) -> Option<R> {
        if !self.breaker.allow() {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let start = Instant::now();
        let result = timeout(self.l2_timeout, async {
            let mut conn = self.pool.get_timeout(self.l2_timeout).await.map_err(|e| e.to_string())?;
            cmd.query_async::<T>(&mut *conn).await.map_err(|e| e.to_string())
        })
        .await;
        self.counters.latency(start.elapsed());
        match result {
            Ok(Ok(value)) => {
                self.breaker.success();
                Some(then(value))
            }
            Ok(Err(_)) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure();
                None
            }
            Err(_) => {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure();
                None
            }
        }
    }

    /// The value for `key` in Redis, decoded, with its encoded size.
    async fn l2_get(&self, key: &str) -> Option<(V, usize)> {
        let redis_key = format!("{}:{key}", self.namespace);
        let bytes = self.l2_call(redis::cmd("GET").arg(&redis_key), |b: Option<Vec<u8>>| b).await?;
        let Some(bytes) = bytes else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let decoded =
            codec::open(C::ID, &bytes, self.max_value).and_then(|payload| self.codec.decode(&payload));
        match decoded {
            Ok(value) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Some((value, bytes.len()))
            }
            Err(_) => {
                self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Encodes `value` and writes it to Redis; returns its encoded size (its L1 weight), 0 if it
    /// cannot be encoded (then it lives in L1 only, counted as an encode error).
    async fn write_l2(&self, key: &str, value: &V, how: Write) -> usize {
        let Some(bytes) = self.encode(value) else { return 0 };
        let weight = bytes.len();
        self.l2_set(key, bytes, how).await;
        weight
    }

    async fn l2_set(&self, key: &str, bytes: Vec<u8>, how: Write) {
        let redis_key = format!("{}:{key}", self.namespace);
        let ttl_ms = self.l2_ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&redis_key).arg(bytes).arg("PX").arg(ttl_ms);
        if how == Write::IfAbsent {
            cmd.arg("NX");
        }
        // `SET ... NX` answers nil when the key exists: not a failure.
        let written = self.l2_call(&cmd, |reply: Option<String>| reply.is_some()).await;
        if written == Some(true) {
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tells the other instances that `key` changed.
    async fn announce(&self, key: &str) {
        let message = format!("{:016x}:{key}", self.instance);
        if self.l2_call(redis::cmd("PUBLISH").arg(&self.channel).arg(message), |_: i64| ()).await.is_some() {
            self.counters.announced.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Keeps a subscription to the invalidation channel, reconnecting with backoff, and drops
/// announced keys from L1. Ends when the cache is dropped.
async fn listen<V, C>(
    cache: Weak<Inner<V, C>>,
    manager: RedisManager,
    channel: String,
    instance: u64,
    subscribed: tokio::sync::oneshot::Sender<()>,
) where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    let backoff = connpool::RetryPolicy::Exponential {
        initial: Duration::from_millis(50),
        max: Duration::from_secs(2),
        max_retries: u32::MAX,
    };
    let own_prefix = format!("{instance:016x}:");
    let mut subscribed = Some(subscribed);
    let mut attempt = 0u32;
    loop {
        if let Ok(mut pubsub) = manager.pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            attempt = 0;
            match subscribed.take() {
                Some(tx) => {
                    let _ = tx.send(());
                }
                None => {
                    // Announcements may have been missed while unsubscribed.
                    let Some(inner) = cache.upgrade() else { return };
                    inner.l1.clear();
                    inner.counters.resubscribed.fetch_add(1, Ordering::Relaxed);
                }
            }
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Some(inner) = cache.upgrade() else { return };
                let payload = message.get_payload_bytes();
                let Ok(text) = std::str::from_utf8(payload) else { continue };
                if text.starts_with(&own_prefix) {
                    continue;
                }
                if let Some((_, key)) = text.split_once(':') {
                    inner.l1.remove(key);
                    inner.counters.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if cache.strong_count() == 0 {
            return;
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(backoff.delay(attempt.min(30)).unwrap_or(Duration::from_secs(2))).await;
    }
}
