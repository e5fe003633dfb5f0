//! Errors.

use std::fmt;

/// An entry that weighs more than the whole budget, handed back with its key and value.
#[derive(Clone, PartialEq, Eq)]
pub struct TooHeavy<K, V> {
    /// The key that was not inserted.
    pub key: K,
    /// The value that was not inserted.
    pub value: V,
    /// The entry's weight, in bytes, including the cache's per-entry overhead.
    pub weight: u64,
    /// The budget at the time of the insert.
    pub budget: u64,
}

impl<K, V> TooHeavy<K, V> {
    /// The rejected key and value.
    pub fn into_inner(self) -> (K, V) {
        (self.key, self.value)
    }
}

impl<K, V> fmt::Debug for TooHeavy<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TooHeavy")
            .field("weight", &self.weight)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<K, V> fmt::Display for TooHeavy<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry of {} bytes does not fit in a cache budget of {} bytes", self.weight, self.budget)
    }
}

impl<K, V> std::error::Error for TooHeavy<K, V> {}

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
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroBudget => f.write_str("the cache budget must be at least 1 byte"),
            ConfigError::Shards(n) => {
                write!(f, "shard count {n} is not a power of two from 1 to {}", crate::MAX_SHARDS)
            }
            ConfigError::ZeroTtl => f.write_str("a time to live must be longer than zero"),
        }
    }
}

impl std::error::Error for ConfigError {}
