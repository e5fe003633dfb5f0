//! Settings read from a configuration file (feature `serde`): [`CacheConfig`].

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::builder::CacheBuilder;
use crate::policy::Policy;

/// A cache's settings as a configuration file states them; [`CacheConfig::builder`] starts a
/// [`CacheBuilder`] from them, and [`CacheBuilder::config`] applies them to one (with a weigher
/// or listener of its own). `build` checks them as it checks settings made in code.
///
/// The budget is a number of bytes or a size with its unit (`"64 MiB"`, `"1.5 GB"`: binary units
/// are powers of 1024, decimal ones of 1000); durations are written as `"30s"`, `"5m"`,
/// `"1h 30m"`; the policy by name (`"lru"`, `"s3-fifo"`, `"w-tinylfu"`). Unknown fields are an error, so a typo
/// does not silently leave a setting at its default.
///
/// ```
/// use bounded_cache::{Cache, CacheConfig, Policy};
///
/// let config: CacheConfig = serde_json::from_str(
///     r#"{ "budget": "64 MiB", "policy": "s3-fifo", "time_to_live": "5m", "refresh_after": "4m" }"#,
/// )?;
/// assert_eq!(config.budget, 64 << 20);
/// let cache: Cache<String, String> = config.builder().build()?;
/// assert_eq!(cache.policy(), Policy::S3Fifo);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// The budget in bytes.
    #[serde(with = "byte_size")]
    pub budget: u64,
    /// The eviction policy (default W-TinyLFU).
    #[serde(default)]
    pub policy: Policy,
    /// The number of shards (default: chosen from the CPUs and the budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<usize>,
    /// See [`CacheBuilder::time_to_live`].
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<Duration>,
    /// See [`CacheBuilder::time_to_idle`].
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub time_to_idle: Option<Duration>,
    /// See [`CacheBuilder::refresh_after`].
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub refresh_after: Option<Duration>,
    /// See [`CacheBuilder::stale_while_revalidate`].
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub stale_while_revalidate: Option<Duration>,
}

impl CacheConfig {
    /// Settings with this budget and every other setting at its default.
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            policy: Policy::default(),
            shards: None,
            time_to_live: None,
            time_to_idle: None,
            refresh_after: None,
            stale_while_revalidate: None,
        }
    }

    /// A builder with these settings.
    pub fn builder<K, V>(&self) -> CacheBuilder<K, V> {
        CacheBuilder::new(self.budget).config(self)
    }
}

impl<K, V, W, S> CacheBuilder<K, V, W, S> {
    /// Applies `config`: its budget and policy, and each optional setting it states (those it
    /// leaves out keep what the builder has).
    pub fn config(mut self, config: &CacheConfig) -> Self {
        self = self.budget(config.budget).policy(config.policy);
        if let Some(shards) = config.shards {
            self = self.shards(shards);
        }
        if let Some(ttl) = config.time_to_live {
            self = self.time_to_live(ttl);
        }
        if let Some(tti) = config.time_to_idle {
            self = self.time_to_idle(tti);
        }
        if let Some(refresh) = config.refresh_after {
            self = self.refresh_after(refresh);
        }
        if let Some(grace) = config.stale_while_revalidate {
            self = self.stale_while_revalidate(grace);
        }
        self
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(de::Error::custom)
    }
}

/// A byte count as a number or a size with a unit.
mod byte_size {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        struct Bytes;

        impl Visitor<'_> for Bytes {
            type Value = u64;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes, or a size such as \"64 MiB\"")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
                Ok(bytes)
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<u64, E> {
                u64::try_from(bytes).map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))
            }

            fn visit_str<E: de::Error>(self, size: &str) -> Result<u64, E> {
                size.trim()
                    .parse::<bytesize::ByteSize>()
                    .map(|size| size.as_u64())
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(size), &self))
            }
        }

        deserializer.deserialize_any(Bytes)
    }
}
