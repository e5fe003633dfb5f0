//! Errors.
//!
//! As everywhere in this workspace, `Display` states this layer's message only and `source()`
//! returns the cause, so that reporters walking the chain print each cause once.

use std::fmt;
use std::sync::Arc;

/// An entry the cache did not take, handed back with its key and value.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InsertError<K, V> {
    /// The key that was not inserted.
    pub key: K,
    /// The value that was not inserted.
    pub value: V,
    /// The entry's weight, in bytes, including the cache's per-entry overhead.
    pub weight: u64,
    /// The budget at the time of the insert.
    pub budget: u64,
    /// Why the entry was refused.
    pub kind: InsertErrorKind,
}

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InsertErrorKind {
    /// The entry alone weighs more than the whole budget.
    TooHeavy,
    /// Everything stored was evicted and the budget is still taken by entries other threads are
    /// inserting at this moment (a budget barely larger than a few concurrent entries). Trying
    /// again later may succeed.
    Contended,
}

impl<K, V> InsertError<K, V> {
    pub(crate) fn new(key: K, value: V, weight: u64, budget: u64, kind: InsertErrorKind) -> Self {
        Self { key, value, weight, budget, kind }
    }

    /// The rejected key and value.
    pub fn into_inner(self) -> (K, V) {
        (self.key, self.value)
    }
}

impl<K, V> fmt::Debug for InsertError<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertError")
            .field("kind", &self.kind)
            .field("weight", &self.weight)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<K, V> fmt::Display for InsertError<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            InsertErrorKind::TooHeavy => write!(
                f,
                "entry of {} bytes does not fit in a cache budget of {} bytes",
                self.weight, self.budget
            ),
            InsertErrorKind::Contended => write!(
                f,
                "entry of {} bytes found the cache budget of {} bytes taken by concurrent inserts",
                self.weight, self.budget
            ),
        }
    }
}

impl<K, V> std::error::Error for InsertError<K, V> {}

/// A loader call that produced no value; from the cache's loading methods.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader failed: this caller's, or the one it waited for (the error is shared by every
    /// caller of that load, and not cached).
    Failed(Arc<E>),
    /// A loader asked the cache for the key it is loading (directly, or through loads it runs in
    /// turn): waiting would never end.
    Recursive,
}

impl<E> LoadError<E> {
    /// The loader's error, if a loader failed.
    pub fn failed(&self) -> Option<&Arc<E>> {
        match self {
            LoadError::Failed(e) => Some(e),
            LoadError::Recursive => None,
        }
    }
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            LoadError::Failed(e) => LoadError::Failed(Arc::clone(e)),
            LoadError::Recursive => LoadError::Recursive,
        }
    }
}

impl<E: PartialEq> PartialEq for LoadError<E> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (LoadError::Failed(a), LoadError::Failed(b)) => a == b,
            (LoadError::Recursive, LoadError::Recursive) => true,
            _ => false,
        }
    }
}

impl<E> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Failed(_) => f.write_str("the loader failed"),
            LoadError::Recursive => f.write_str("a loader asked for the key it is loading"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Failed(e) => Some(&**e),
            LoadError::Recursive => None,
        }
    }
}

/// An invalid cache configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The budget is 0 bytes.
    ZeroBudget,
    /// The shard count is not a power of two from 1 to [`MAX_SHARDS`](crate::MAX_SHARDS).
    Shards(usize),
    /// A time to live of zero would expire every entry on insert.
    ZeroTtl,
    /// A time to idle of zero would expire every entry on insert.
    ZeroTti,
    /// A Redis tier's heartbeat interval or timeout of zero.
    ZeroHeartbeat,
    /// A refresh period or stale-while-revalidate grace of zero.
    ZeroRefresh,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroBudget => f.write_str("the cache budget must be at least 1 byte"),
            ConfigError::Shards(n) => {
                write!(f, "shard count {n} is not a power of two from 1 to {}", crate::MAX_SHARDS)
            }
            ConfigError::ZeroTtl => f.write_str("a time to live must be longer than zero"),
            ConfigError::ZeroTti => f.write_str("a time to idle must be longer than zero"),
            ConfigError::ZeroRefresh => {
                f.write_str("a refresh period and a stale-while-revalidate grace must be longer than zero")
            }
            ConfigError::ZeroHeartbeat => {
                f.write_str("a heartbeat interval and timeout must be longer than zero")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// A policy name that is not one of [`Policy`](crate::Policy)'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPolicy(pub(crate) String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown eviction policy {:?} (expected \"lru\", \"s3-fifo\" or \"w-tinylfu\")", self.0)
    }
}

impl std::error::Error for UnknownPolicy {}
