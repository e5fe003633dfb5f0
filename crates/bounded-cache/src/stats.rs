//! Statistics: counters kept per shard (those of writes in the shard, under its write lock; hits
//! and misses of the read path in the shard cell's own atomics), a few cache-wide atomics for
//! loads and rejections, all summed into a [`Stats`] snapshot on demand.

use std::fmt;

use crate::sync::AtomicU64;

/// Why an entry left the cache, as told to the eviction listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted to stay within the byte budget.
    Size,
    /// Its time to live ran out.
    Expired,
    /// Removed by the caller: `remove`, `invalidate_if`, `clear`, or an insert of the key whose new
    /// value the cache refused.
    Explicit,
    /// Its value was replaced by an insert of the same key.
    Replaced,
}

/// Counters of one shard; only touched under the shard's write lock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) inserts: u64,
    pub(crate) updates: u64,
    pub(crate) evicted_size: u64,
    pub(crate) evicted_expired: u64,
    pub(crate) removed_explicit: u64,
}

impl Counters {
    pub(crate) fn count_removal(&mut self, cause: RemovalCause) {
        match cause {
            RemovalCause::Size => self.evicted_size += 1,
            RemovalCause::Expired => self.evicted_expired += 1,
            RemovalCause::Explicit => self.removed_explicit += 1,
            RemovalCause::Replaced => {}
        }
    }
}

/// Cache-wide counters, outside any shard.
#[derive(Default)]
pub(crate) struct CacheCounters {
    pub(crate) rejected: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_failures: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) listener_panics: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) stale_served: AtomicU64,
}

/// A snapshot of a cache's statistics, from [`Cache::stats`](crate::Cache::stats).
///
/// The counters are summed shard by shard, each shard read at one instant under its read lock;
/// under concurrent use the snapshot is not one instant of the whole cache, but each counter only
/// grows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing, or an expired entry.
    pub misses: u64,
    /// Entries added for a key that was absent.
    pub inserts: u64,
    /// Inserts that replaced the value of a present key.
    pub updates: u64,
    /// Entries evicted to stay within the budget.
    pub evicted_size: u64,
    /// Entries removed because their time to live ran out.
    pub evicted_expired: u64,
    /// Entries removed by `remove`, `remove_if`, `compute`, `invalidate_if` or `clear`.
    pub removed_explicit: u64,
    /// Inserts (and loaded values) refused: heavier than the budget, or the budget taken by
    /// concurrent inserts (see [`InsertErrorKind`](crate::InsertErrorKind)).
    pub rejected: u64,
    /// Loader calls (`get_or_insert_with`, `get_or_try_insert_with`) actually run.
    pub loads: u64,
    /// Loader calls that failed, panicked or were cancelled.
    pub load_failures: u64,
    /// Callers that waited for another caller's loader (or compute) instead of running their own.
    pub coalesced: u64,
    /// Calls of the eviction listener that panicked (contained: the cache and later notifications
    /// go on).
    pub listener_panics: u64,
    /// Background reloads started by refreshing reads (see
    /// [`CacheBuilder::refresh_after`](crate::CacheBuilder::refresh_after)).
    pub refreshes: u64,
    /// Background reloads that failed, panicked, or were dropped by their executor unrun; the
    /// entry kept its value.
    pub refresh_failures: u64,
    /// Expired values served by refreshing reads while a reload ran (see
    /// [`CacheBuilder::stale_while_revalidate`](crate::CacheBuilder::stale_while_revalidate));
    /// each is counted in `hits` too.
    pub stale_served: u64,
    /// Live entries.
    pub entries: u64,
    /// The weighed size of the live entries, in bytes.
    pub weighed_size: u64,
    /// The byte budget.
    pub budget: u64,
}

impl Stats {
    /// Hits over lookups, from 0 to 1; 0 before the first lookup.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 { 0.0 } else { self.hits as f64 / lookups as f64 }
    }

    /// All entries that left the cache for any reason but replacement.
    pub fn removals(&self) -> u64 {
        self.evicted_size + self.evicted_expired + self.removed_explicit
    }

    pub(crate) fn add(&mut self, c: &Counters) {
        self.hits += c.hits;
        self.misses += c.misses;
        self.inserts += c.inserts;
        self.updates += c.updates;
        self.evicted_size += c.evicted_size;
        self.evicted_expired += c.evicted_expired;
        self.removed_explicit += c.removed_explicit;
    }
}

#[cfg(feature = "metrics")]
impl Stats {
    /// Publishes the statistics through the `metrics` crate's installed recorder, every series
    /// labelled `cache = <cache>`: gauges `bounded_cache_entries`, `bounded_cache_weighed_bytes`
    /// and `bounded_cache_budget_bytes`, and counters (absolute) `bounded_cache_hits`,
    /// `bounded_cache_misses`, `bounded_cache_inserts`, `bounded_cache_updates`,
    /// `bounded_cache_evictions` (also labelled `cause`: `size`, `expired`, `explicit`),
    /// `bounded_cache_rejected`, `bounded_cache_loads`, `bounded_cache_load_failures`,
    /// `bounded_cache_coalesced`, `bounded_cache_listener_panics`, `bounded_cache_refreshes`,
    /// `bounded_cache_refresh_failures` and `bounded_cache_stale_served`. Call it periodically (a
    /// metrics exporter's tick); two caches publish apart under their names.
    ///
    /// ```
    /// let cache: bounded_cache::Cache<u32, u32> = bounded_cache::Cache::new(1 << 20);
    /// cache.stats().publish("sessions");
    /// ```
    pub fn publish(&self, cache: &str) {
        let cache = cache.to_string();
        let gauge = |name: &'static str, value: u64| {
            metrics::gauge!(name, "cache" => cache.clone()).set(value as f64);
        };
        gauge("bounded_cache_entries", self.entries);
        gauge("bounded_cache_weighed_bytes", self.weighed_size);
        gauge("bounded_cache_budget_bytes", self.budget);
        let counter = |name: &'static str, value: u64| {
            metrics::counter!(name, "cache" => cache.clone()).absolute(value);
        };
        counter("bounded_cache_hits", self.hits);
        counter("bounded_cache_misses", self.misses);
        counter("bounded_cache_inserts", self.inserts);
        counter("bounded_cache_updates", self.updates);
        counter("bounded_cache_rejected", self.rejected);
        counter("bounded_cache_loads", self.loads);
        counter("bounded_cache_load_failures", self.load_failures);
        counter("bounded_cache_coalesced", self.coalesced);
        counter("bounded_cache_listener_panics", self.listener_panics);
        counter("bounded_cache_refreshes", self.refreshes);
        counter("bounded_cache_refresh_failures", self.refresh_failures);
        counter("bounded_cache_stale_served", self.stale_served);
        for (cause, value) in [
            ("size", self.evicted_size),
            ("expired", self.evicted_expired),
            ("explicit", self.removed_explicit),
        ] {
            metrics::counter!("bounded_cache_evictions", "cache" => cache.clone(), "cause" => cause)
                .absolute(value);
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} entries, {} of {} bytes; hit rate {:.1}% ({} hits, {} misses); {} inserts, {} updates; \
             evicted {} for size, {} expired, {} removed; {} rejected; {} loads ({} failed, {} coalesced); \
             {} listener panics; {} refreshes ({} failed), {} stale served",
            self.entries,
            self.weighed_size,
            self.budget,
            self.hit_rate() * 100.0,
            self.hits,
            self.misses,
            self.inserts,
            self.updates,
            self.evicted_size,
            self.evicted_expired,
            self.removed_explicit,
            self.rejected,
            self.loads,
            self.load_failures,
            self.coalesced,
            self.listener_panics,
            self.refreshes,
            self.refresh_failures,
            self.stale_served
        )
    }
}
