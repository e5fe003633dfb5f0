//! Per-entry lifetimes decided by the user.
//!
//! # Implementation details
//!
//! Every entry has one deadline (`Node::expires`) and, in a cache whose reads move deadlines
//! (a time to idle or an [`Expiry`] hook), a cap beside it in the slab: the deadline its time
//! to live fixed when it was written, which no read may pass. A write computes both before the
//! shard's lock is taken, calling [`Expiry::expire_after_write`] with no lock held. A read that
//! hits computes the new deadline under the shard's lock (read or write), where it has the key
//! and value to hand to [`Expiry::expire_after_read`], and stores it into the node's atomic
//! deadline; readers racing on one entry each store a deadline computed from their own `now`,
//! any of which is a valid outcome.

use std::time::Duration;

/// Decides how long entries live, from their keys and values.
///
/// Both methods receive what the cache would do without the hook and return what it should do:
/// the default methods change nothing. `None` means "never expires". An entry's time to live
/// (from [`expire_after_write`](Self::expire_after_write)) is the latest it expires: a read can
/// shorten or extend its life up to that point, never beyond.
///
/// A loader's result can carry its own lifetime this way, for example from an HTTP
/// `Cache-Control` header, and a negative result can be kept for a shorter time:
///
/// ```
/// use std::time::Duration;
/// use bounded_cache::{Cache, Expiry};
///
/// struct NotFoundBriefly;
///
/// impl Expiry<String, Option<String>> for NotFoundBriefly {
///     fn expire_after_write(
///         &self,
///         _key: &String,
///         value: &Option<String>,
///         ttl: Option<Duration>,
///     ) -> Option<Duration> {
///         match value {
///             Some(_) => ttl,                          // the cache's time to live
///             None => Some(Duration::from_secs(5)),    // "not found" is kept 5 s
///         }
///     }
/// }
///
/// let cache: Cache<String, Option<String>> = Cache::builder(1 << 20)
///     .time_to_live(Duration::from_secs(600))
///     .expiry(NotFoundBriefly)
///     .build()?;
/// let user = cache.get_or_insert_with("alice".to_string(), || None);
/// assert_eq!(user, None);
/// # Ok::<(), bounded_cache::ConfigError>(())
/// ```
///
/// # Where it runs
///
/// `expire_after_write` runs with no lock held, on the thread that inserts (or whose loader
/// produced the value). `expire_after_read` runs on the reading thread under the shard's lock,
/// like the value's `Clone`: it must be quick and must not call the cache (a call may deadlock).
/// A panic in either reaches that caller; the cache stays consistent (a write whose hook
/// panicked stores nothing; a read whose hook panicked leaves the deadline as it was).
pub trait Expiry<K, V>: Send + Sync {
    /// The time to live of an entry being written (inserted, replaced or stored by a loader),
    /// counted from now. `ttl` is what the cache would use: the one given to
    /// [`insert_with_ttl`](crate::Cache::insert_with_ttl), else the cache's
    /// [`time_to_live`](crate::CacheBuilder::time_to_live), else `None`.
    fn expire_after_write(&self, key: &K, value: &V, ttl: Option<Duration>) -> Option<Duration> {
        let _ = (key, value);
        ttl
    }

    /// The time the entry has left after a read (a hit through `get` or a loader; `peek`,
    /// `contains` and `iter` are not reads). `remaining` is what the cache would leave: with a
    /// [`time_to_idle`](crate::CacheBuilder::time_to_idle), extended by it. The result is
    /// capped by the time to live the entry was written with.
    fn expire_after_read(&self, key: &K, value: &V, remaining: Option<Duration>) -> Option<Duration> {
        let _ = (key, value);
        remaining
    }

    /// How long after being written the entry is reloaded by the next refreshing read (see
    /// [`CacheBuilder::refresh_after`](crate::CacheBuilder::refresh_after)); `None`: never.
    /// `refresh` is the cache's setting. Consulted only by a cache built with `refresh_after` or
    /// [`stale_while_revalidate`](crate::CacheBuilder::stale_while_revalidate).
    fn refresh_after_write(&self, key: &K, value: &V, refresh: Option<Duration>) -> Option<Duration> {
        let _ = (key, value);
        refresh
    }
}

/// Nanoseconds of an optional duration, the way deadlines store them: 0 for none, at least 1.
pub(crate) fn nanos(duration: Option<Duration>) -> u64 {
    duration.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1))
}

/// The optional duration of stored nanoseconds (0: none).
pub(crate) fn duration(nanos: u64) -> Option<Duration> {
    (nanos != 0).then(|| Duration::from_nanos(nanos))
}

/// `now + span`, capped by `cap` unless that is 0 (no cap).
pub(crate) fn capped(now: u64, span: u64, cap: u64) -> u64 {
    let at = now.saturating_add(span);
    if cap == 0 { at } else { at.min(cap) }
}
