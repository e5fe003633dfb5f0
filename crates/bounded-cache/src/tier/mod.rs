//! A two-tier cache: this process's [`Cache`] (L1) in front of Redis (L2), shared by every
//! instance of a service (feature `redis`), on a Redis server, a Redis Cluster or a master behind
//! Sentinel, over TLS or not (connections from `connpool`'s `RedisManager`).
//!
//! - **Reads**: L1, then L2 (a hit is copied into L1), then the loader (its value is written to
//!   both). Concurrent misses for one key in one instance run one L2 lookup and one loader.
//! - **Writes and invalidations** reach both tiers, and are announced on a Redis pub/sub channel
//!   so that every other instance drops the key from its L1. An invalidation wins over a value
//!   read or loaded meanwhile: it is kept out of L1, and a loaded value is not written to Redis
//!   over it.
//! - **Degradation**: every Redis call has a timeout; failures and timeouts are counted, never
//!   turned into a failed get (the value comes from the loader instead), and a circuit breaker
//!   stops calling Redis after repeated failures, probing again later.
//! - **Keys** are `<prefix>:v<version>:<key>`; [`KeyBuilder`] makes short stable keys from
//!   structured parts. Values are encoded with a [`Codec`] ([`MsgPack`] by default, [`Json`]
//!   available), lz4-compressed above a size threshold and optionally signed with a shared key;
//!   a value in Redis that this cache did not write, that is damaged, too large or wrongly
//!   signed is a counted miss, refused before anything is allocated for it.
//! - **Memory**: L1 weighs the decoded values it holds (through [`Weigh`](crate::Weigh) or a
//!   weigher), never their compressed size in Redis: its budget bounds the process's memory.
//!
//! # How stale can an instance be?
//!
//! Say instance A writes or invalidates a key that instance B holds in L1. B stops serving its
//! copy:
//!
//! - when A's announcement reaches B's subscription (a round trip through Redis), normally;
//! - if B's subscription dies without a word (a half-open connection, a partition, a paused
//!   server), within `heartbeat_every + heartbeat_timeout`: B pings its subscription every
//!   `heartbeat_every` and declares it lost when a ping is unanswered for `heartbeat_timeout`;
//!   it then clears its L1, serves the copies it takes meanwhile for
//!   `heartbeat_every + heartbeat_timeout` at most (so that a Redis outage does not send every
//!   get to the loader), and clears L1 once more when it has subscribed again. (A subscription
//!   that ends outright is noticed at once.)
//! - if A's announcement (or the removal from Redis) failed, when A's retry succeeds: A retries
//!   failed announcements in the background, every 50 ms at first and every 2 s at most, until
//!   they go through, so within 2 s of Redis being reachable from A again; if more than 10,000
//!   announcements wait, A sends one "clear everything" instead.
//!
//! In every case the copy lasts at most `l1_ttl`, the bound that holds even if A can never
//! reach Redis again. Written as a formula, with `d` the delivery time of a message through
//! Redis (well under a millisecond on a LAN) and `r` the time until A reaches Redis again after
//! a failed announcement (0 if it did not fail):
//!
//! ```text
//! staleness <= min(l1_ttl, max(d, heartbeat_every + heartbeat_timeout, r + 2 s))
//! ```
//!
//! With the defaults (`heartbeat(1 s, 1 s)`, `l1_ttl` 5 minutes) that is 2 s while Redis is
//! reachable from both instances, and never more than 5 minutes. The tests check each term
//! (`tests/tiered_faults.rs`, `tests/tiered_deploy.rs`).
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

mod announce;
mod breaker;
mod builder;
mod codec;
mod key;
mod l2;
mod listener;
mod stats;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use connpool::Pool;
use connpool::redis::RedisManager;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use breaker::BreakerState;
pub use builder::TieredBuilder;
pub use codec::{Codec, CodecError, Json, MsgPack};
pub use key::KeyBuilder;
pub use stats::TierStats;

/// The envelope's `seal` and `open`, for the fuzz target (built by cargo-fuzz only).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Seals `payload` as the tier writes it (`key`: the MAC key, if any).
    pub fn seal(codec_id: u8, payload: Vec<u8>, compress_above: usize, key: Option<&[u8]>) -> Vec<u8> {
        let key = key.map(|k| super::codec::MacKey::new(k.to_vec()));
        super::codec::seal(codec_id, payload, compress_above, key.as_ref())
    }

    /// Opens a stored value as the tier reads it; `None` where the tier counts a corrupt miss.
    pub fn open(codec_id: u8, bytes: &[u8], max_value: usize, key: Option<&[u8]>) -> Option<Vec<u8>> {
        let key = key.map(|k| super::codec::MacKey::new(k.to_vec()));
        super::codec::open(codec_id, bytes, max_value, key.as_ref()).ok().map(|b| b.into_owned())
    }
}

use crate::{Cache, LoadError};
use announce::Pending;
use breaker::Breaker;
use codec::MacKey;
use stats::Counters;

/// An L1 entry: the value, its weight (from the tier's weigher, set when it entered L1) and,
/// for a copy taken while the subscription was down, when it stops being served.
#[derive(Clone)]
struct Weighed<V> {
    value: V,
    weight: usize,
    unheard_until: Option<Instant>,
}

impl<V> Weighed<V> {
    fn expired(&self) -> bool {
        self.unheard_until.is_some_and(|until| Instant::now() >= until)
    }
}

type L1<V> = Cache<String, Weighed<V>, fn(&String, &Weighed<V>) -> usize>;

fn weigh<V>(key: &String, entry: &Weighed<V>) -> usize {
    key.capacity() + entry.weight
}

/// Weighs a value for L1: its heap bytes.
type ValueWeigher<V> = Arc<dyn Fn(&V) -> usize + Send + Sync>;

/// Invalidation epochs: one counter per hash slot of keys, and one for all. A load notes its
/// key's epochs when it starts and writes Redis only if neither moved (see `l2.rs`).
struct Epochs {
    slots: Box<[AtomicU64]>,
    all: AtomicU64,
}

const EPOCH_SLOTS: usize = 1024;

impl Epochs {
    fn new() -> Self {
        Self { slots: (0..EPOCH_SLOTS).map(|_| AtomicU64::new(0)).collect(), all: AtomicU64::new(0) }
    }

    fn slot(&self, key: &str) -> &AtomicU64 {
        &self.slots[xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize % EPOCH_SLOTS]
    }

    fn note(&self, key: &str) -> (u64, u64) {
        (self.slot(key).load(Ordering::Acquire), self.all.load(Ordering::Acquire))
    }

    fn bump(&self, key: &str) {
        self.slot(key).fetch_add(1, Ordering::AcqRel);
    }

    fn bump_all(&self) {
        self.all.fetch_add(1, Ordering::AcqRel);
    }
}

pub(crate) struct Inner<V, C> {
    l1: L1<V>,
    weigher: ValueWeigher<V>,
    pool: Pool<RedisManager>,
    codec: C,
    namespace: String,
    channel: String,
    l2_ttl: Duration,
    l2_timeout: Duration,
    compress_above: usize,
    max_value: usize,
    mac: Option<MacKey>,
    l1_ttl: Option<Duration>,
    breaker: Breaker,
    counters: Counters,
    epochs: Epochs,
    /// Whether the invalidation subscription is up: while it is not, L1 copies are kept for
    /// `unheard_for` at most.
    subscribed: AtomicBool,
    /// `heartbeat_every + heartbeat_timeout`: the staleness bound of a lost subscription.
    unheard_for: Duration,
    pending: Pending,
    /// Tells this instance's announcements from the others'.
    instance: u64,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl<V, C> Drop for Inner<V, C> {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().drain(..) {
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

/// What an L2 lookup that found nothing reports to the L1 flight (never cached, never returned).
#[derive(Debug)]
struct NotInL2;

impl<V, C> TieredCache<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// The Redis key for `key`: `<prefix>:v<version>:<key>`.
    pub fn redis_key(&self, key: &str) -> String {
        self.inner.redis_key(key)
    }

    /// The value for `key` from L1 or L2 (copied into L1), without loading. Concurrent callers for
    /// a key missing from L1 share one L2 lookup; an invalidation that arrives while it runs keeps
    /// its value out of L1.
    pub async fn get(&self, key: &str) -> Option<V> {
        let inner = &self.inner;
        for attempt in 0..2 {
            let entry = match inner.l1.hit_or_refresh(key, || self.reload(key)) {
                Some(entry) => entry,
                None => inner.l1.get_or_try_insert_with_ref(key, self.reload(key)).await.ok()?,
            };
            if attempt == 1 || !inner.drop_if_expired(key, &entry) {
                return Some(entry.value);
            }
        }
        unreachable!("the second attempt returns")
    }

    /// The value for `key`: from L1, else from L2 (copied into L1), else from `load` (written to
    /// both tiers). Concurrent callers for a missing key in this instance share one L2 lookup and
    /// one `load`.
    ///
    /// An invalidation (local, or announced by another instance) that arrives while the value is
    /// read from L2 or loaded keeps that value out of L1, and a loaded value out of Redis; the
    /// callers still get it.
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
        let mut load = Some(load);
        for attempt in 0..2 {
            let load = &mut load;
            let fill = async move {
                if let Some(value) = inner.l2_get(key).await {
                    return Ok(inner.weighed(value));
                }
                let epochs = inner.epochs.note(key);
                inner.counters.loads.fetch_add(1, Ordering::Relaxed);
                let load = load.take().expect("a fill that loads ends the loop");
                let value = load().await.inspect_err(|_| {
                    inner.counters.load_errors.fetch_add(1, Ordering::Relaxed);
                })?;
                inner.write_loaded(key, &value, epochs).await;
                Ok(inner.weighed(value))
            };
            let entry = match inner.l1.hit_or_refresh(key, || self.reload(key)) {
                Some(entry) => entry,
                None => inner.l1.get_or_try_insert_with_ref(key, fill).await?,
            };
            if attempt == 1 || !inner.drop_if_expired(key, &entry) {
                return Ok(entry.value);
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Reads `key` from Redis into an L1 entry: an L1 fill, or a background refresh of a copy.
    fn reload(&self, key: &str) -> impl Future<Output = Result<Weighed<V>, NotInL2>> + Send + 'static {
        let (inner, key) = (Arc::clone(&self.inner), key.to_string());
        async move {
            match inner.l2_get(&key).await {
                Some(value) => Ok(inner.weighed(value)),
                None => Err(NotInL2),
            }
        }
    }

    /// Writes `value` to both tiers and tells the other instances to drop their copy. If Redis
    /// cannot take it, the key is removed from Redis and announced as soon as it can be.
    pub async fn insert(&self, key: &str, value: V) {
        let inner = &self.inner;
        inner.epochs.bump(key);
        let written = inner.write_l2(key, &value).await;
        let _ = inner.l1.insert(key.to_string(), inner.weighed(value));
        inner.announce(key, !written).await;
    }

    /// Removes `key` from both tiers and from every other instance's L1 (retried in the
    /// background if Redis cannot be reached now).
    pub async fn invalidate(&self, key: &str) {
        let inner = &self.inner;
        inner.epochs.bump(key);
        inner.l1.remove(key);
        let deleted = inner.l2_del(key).await;
        inner.announce(key, !deleted).await;
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

    /// Entries in the in-process tier.
    pub fn l1_len(&self) -> usize {
        self.inner.l1.len()
    }

    /// Whether `key` is in this instance's L1.
    pub fn l1_contains(&self, key: &str) -> bool {
        self.inner.l1.contains(key)
    }

    /// Whether the invalidation subscription is up (while it is not, L1 keeps its copies for
    /// `heartbeat_every + heartbeat_timeout` at most).
    pub fn subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::Acquire)
    }

    /// Statistics of both tiers.
    pub fn stats(&self) -> TierStats {
        let inner = &self.inner;
        inner.counters.snapshot(inner.l1.stats(), inner.breaker.state(), &inner.breaker, inner.pending.len())
    }
}

impl<V, C> Inner<V, C> {
    fn redis_key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// An L1 entry for `value`. While the subscription is down, an invalidation could go
    /// unheard: the copy is served for `unheard_for` at most, the bound a heartbeat gives.
    fn weighed(&self, value: V) -> Weighed<V> {
        let weight = (self.weigher)(&value);
        let unheard_until =
            (!self.subscribed.load(Ordering::Acquire)).then(|| Instant::now() + self.unheard_for);
        Weighed { value, weight, unheard_until }
    }

    /// Drops `key`'s L1 copy if `entry` (just read from it) is past its unheard deadline; true
    /// if it was. (Only a copy taken while the subscription was down has one; a copy filled
    /// by this very call never is past it.)
    fn drop_if_expired(&self, key: &str, entry: &Weighed<V>) -> bool
    where
        V: Clone,
    {
        let expired = entry.expired();
        if expired {
            self.l1.remove(key);
        }
        expired
    }

    /// Everything in L1 may be stale: cleared, and loads in flight must not write Redis.
    fn forget_everything(&self)
    where
        V: Clone,
    {
        self.epochs.bump_all();
        self.l1.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_move_for_their_key_and_for_all() {
        let epochs = Epochs::new();
        let before = epochs.note("a");
        epochs.bump("b");
        // Another key's slot (most likely): unchanged for "a" unless they share a slot.
        if !std::ptr::eq(epochs.slot("a"), epochs.slot("b")) {
            assert_eq!(epochs.note("a"), before);
        }
        epochs.bump("a");
        assert_ne!(epochs.note("a"), before);
        let before = epochs.note("a");
        epochs.bump_all();
        assert_ne!(epochs.note("a"), before);
    }
}
