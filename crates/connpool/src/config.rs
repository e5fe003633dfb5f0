//! Pool configuration, the ready-made service profiles, and validation.

use std::time::Duration;

use crate::backoff::RetryPolicy;
use crate::error::ConfigError;

/// A pool's configuration. Start from a profile ([`Config::api`], [`Config::worker`],
/// [`Config::realtime`]) or [`Config::default`] and override any field; [`validate`] runs when
/// the pool is built.
///
/// With the `serde` feature a config deserialises from any serde format (TOML, YAML, JSON...),
/// durations written as `"300s"`, `"5m"` or `"1h 30m"`, an optional `profile` naming the base,
/// and every other field optional:
///
/// ```toml
/// profile = "api"
/// max_size = 80
/// idle_timeout = "2m"
/// retry = { kind = "linear", delay = "500ms", max_retries = 4 }
/// ```
///
/// [`validate`]: Config::validate
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Connections kept open even when idle; made when the pool is built and replaced when
    /// closed.
    pub min_size: usize,
    /// The most connections open at once, idle and in use together.
    pub max_size: usize,
    /// How long a checkout may wait for a connection before it fails with a timeout.
    pub checkout_timeout: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How failed connection attempts are retried.
    pub retry: RetryPolicy,
    /// Connection attempts in flight at once. A burst of checkouts opens connections a few at
    /// a time while returned connections serve the waiters, so the pool does not open far more
    /// connections than the burst needs.
    pub max_connecting: usize,
    /// An idle connection beyond `min_size` is closed after this long unused. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A connection is closed once this old (checked when idle or returned). `None`: never.
    pub max_lifetime: Option<Duration>,
    /// Each connection's lifetime is shortened by a random amount up to this, so that
    /// connections made together do not all expire together.
    pub lifetime_jitter: Duration,
    /// Idle connections are validated in the background this often. `None`: never.
    pub health_check_interval: Option<Duration>,
    /// Validate a connection at checkout, unless it was used or validated within
    /// `pre_ping_skip_within`.
    pub pre_ping: bool,
    /// See `pre_ping`.
    pub pre_ping_skip_within: Duration,
    /// How long one validation may take.
    pub validate_timeout: Duration,
    /// Log (with `tracing`) a connection held longer than this. `None`: never.
    pub leak_detection_threshold: Option<Duration>,
    /// When a connection attempt fails for good (after its retries), fail the oldest waiting
    /// checkout with that error at once rather than letting it wait out its timeout.
    pub fail_fast: bool,
    /// How often the background maintenance (replenishing, eviction, health checks) runs.
    pub maintenance_interval: Duration,
    /// The pool's name: the `pool` label on every metric it publishes, and a field of its
    /// tracing spans, so that two pools in one process stay apart (default `"default"`).
    pub name: Option<String>,
}

impl Default for Config {
    /// A general-purpose pool: min 0, max 16, 30 s timeouts, exponential retry from 100 ms to
    /// 2 s (3 retries), idle timeout 10 min, lifetime 30 min, health check every 60 s. Against
    /// a stock PostgreSQL (`max_connections = 100`), 6 replicas fit at full load.
    fn default() -> Self {
        Self {
            min_size: 0,
            max_size: 16,
            checkout_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            retry: RetryPolicy::Exponential {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(2),
                max_retries: 3,
            },
            max_connecting: 2,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            lifetime_jitter: Duration::from_secs(60),
            health_check_interval: Some(Duration::from_secs(60)),
            pre_ping: false,
            pre_ping_skip_within: Duration::from_millis(500),
            validate_timeout: Duration::from_secs(5),
            leak_detection_threshold: None,
            fail_fast: true,
            maintenance_interval: Duration::from_secs(1),
            name: None,
        }
    }
}

impl Config {
    /// For request-serving APIs: min 5, max 20, idle timeout 300 s, checkout and connect timeout
    /// 5 s, exponential retry from 100 ms to 2 s with 3 retries, health check every 60 s.
    ///
    /// Against a stock PostgreSQL (`max_connections = 100`, 3 of them reserved for superusers),
    /// 4 replicas fit at full load (4 x 20 = 80, leaving room for migrations and consoles) and
    /// 19 while idle.
    pub fn api() -> Self {
        Self {
            min_size: 5,
            max_size: 20,
            idle_timeout: Some(Duration::from_secs(300)),
            checkout_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::Exponential {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(2),
                max_retries: 3,
            },
            health_check_interval: Some(Duration::from_secs(60)),
            ..Self::default()
        }
    }

    /// For background workers: min 2, max 10, idle timeout 600 s, checkout and connect timeout
    /// 10 s, linear retry every 1 s with 5 retries.
    ///
    /// Against a stock PostgreSQL, 9 replicas fit at full load and 48 while idle.
    pub fn worker() -> Self {
        Self {
            min_size: 2,
            max_size: 10,
            idle_timeout: Some(Duration::from_secs(600)),
            checkout_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::Linear { delay: Duration::from_secs(1), max_retries: 5 },
            ..Self::default()
        }
    }

    /// For latency-critical services, which keep more connections warm: min 10, max 30, idle
    /// timeout 60 s, checkout and connect timeout 1 s, no retry, pre-ping on checkout.
    ///
    /// Against a stock PostgreSQL, 3 replicas fit at full load and 9 while idle; raise the
    /// server's `max_connections` (or put PgBouncer in front) for more.
    pub fn realtime() -> Self {
        Self {
            min_size: 10,
            max_size: 30,
            idle_timeout: Some(Duration::from_secs(60)),
            checkout_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            retry: RetryPolicy::None,
            pre_ping: true,
            validate_timeout: Duration::from_millis(500),
            ..Self::default()
        }
    }

    /// The longest duration any setting accepts (100 years): longer ones could not be turned
    /// into deadlines. Optional durations take `None` for "never".
    pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

    /// Checks the configuration.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first problem: a zero `max_size` or `max_connecting`,
    /// `min_size` above `max_size`, a zero timeout or interval, a duration above
    /// [`MAX_DURATION`](Self::MAX_DURATION), a bad retry policy.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_size == 0 {
            return Err(ConfigError::ZeroMaxSize);
        }
        if self.min_size > self.max_size {
            return Err(ConfigError::MinAboveMax { min_size: self.min_size, max_size: self.max_size });
        }
        if self.max_connecting == 0 {
            return Err(ConfigError::Zero("max_connecting"));
        }
        let durations = [
            ("checkout_timeout", Some(self.checkout_timeout)),
            ("connect_timeout", Some(self.connect_timeout)),
            ("validate_timeout", Some(self.validate_timeout)),
            ("maintenance_interval", Some(self.maintenance_interval)),
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
            ("health_check_interval", self.health_check_interval),
            ("leak_detection_threshold", self.leak_detection_threshold),
        ];
        for (field, value) in durations {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(ConfigError::Zero(field));
            }
        }
        let unbounded = [
            ("lifetime_jitter", Some(self.lifetime_jitter)),
            ("pre_ping_skip_within", Some(self.pre_ping_skip_within)),
            ("retry", self.retry.longest()),
        ];
        for (field, value) in durations.into_iter().chain(unbounded) {
            if value.is_some_and(|d| d > Self::MAX_DURATION) {
                return Err(ConfigError::TooLong { field, max: Self::MAX_DURATION });
            }
        }
        if self.max_lifetime.is_some_and(|lifetime| self.lifetime_jitter >= lifetime) {
            return Err(ConfigError::JitterNotBelowLifetime);
        }
        self.retry.validate()
    }
}

/// The ready-made profiles, by name, for configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Profile {
    /// [`Config::default`].
    Default,
    /// [`Config::api`].
    Api,
    /// [`Config::worker`].
    Worker,
    /// [`Config::realtime`].
    Realtime,
}

impl Profile {
    /// The profile's configuration.
    pub fn config(self) -> Config {
        match self {
            Self::Default => Config::default(),
            Self::Api => Config::api(),
            Self::Worker => Config::worker(),
            Self::Realtime => Config::realtime(),
        }
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    use super::{Config, Profile};
    use crate::backoff::RetryPolicy;

    /// A config file: a base profile and overrides. Durations use `humantime` ("300s", "5m").
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ConfigFile {
        profile: Option<Profile>,
        min_size: Option<usize>,
        max_size: Option<usize>,
        #[serde(default, with = "humantime_serde")]
        checkout_timeout: Option<Duration>,
        #[serde(default, with = "humantime_serde")]
        connect_timeout: Option<Duration>,
        retry: Option<RetryPolicy>,
        max_connecting: Option<usize>,
        #[serde(default, deserialize_with = "optional_duration")]
        idle_timeout: Option<Option<Duration>>,
        #[serde(default, deserialize_with = "optional_duration")]
        max_lifetime: Option<Option<Duration>>,
        #[serde(default, with = "humantime_serde")]
        lifetime_jitter: Option<Duration>,
        #[serde(default, deserialize_with = "optional_duration")]
        health_check_interval: Option<Option<Duration>>,
        pre_ping: Option<bool>,
        #[serde(default, with = "humantime_serde")]
        pre_ping_skip_within: Option<Duration>,
        #[serde(default, with = "humantime_serde")]
        validate_timeout: Option<Duration>,
        #[serde(default, deserialize_with = "optional_duration")]
        leak_detection_threshold: Option<Option<Duration>>,
        fail_fast: Option<bool>,
        #[serde(default, with = "humantime_serde")]
        maintenance_interval: Option<Duration>,
        name: Option<String>,
    }

    /// A duration that may be switched off: `"5m"`, or `"never"`/`false` for `None`.
    fn optional_duration<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<Duration>>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Value {
            Text(String),
            Flag(bool),
        }
        match Value::deserialize(deserializer)? {
            Value::Flag(false) => Ok(Some(None)),
            Value::Flag(true) => {
                Err(serde::de::Error::custom("expected a duration such as \"5m\", or false"))
            }
            Value::Text(text) if text == "never" || text == "off" => Ok(Some(None)),
            Value::Text(text) => {
                humantime::parse_duration(&text).map(|d| Some(Some(d))).map_err(serde::de::Error::custom)
            }
        }
    }

    impl<'de> Deserialize<'de> for Config {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let file = ConfigFile::deserialize(deserializer)?;
            let mut config = file.profile.unwrap_or(Profile::Default).config();
            macro_rules! apply {
                ($($field:ident),*) => { $( if let Some(value) = file.$field { config.$field = value; } )* };
            }
            apply!(
                min_size,
                max_size,
                checkout_timeout,
                connect_timeout,
                retry,
                max_connecting,
                idle_timeout,
                max_lifetime,
                lifetime_jitter,
                health_check_interval,
                pre_ping,
                pre_ping_skip_within,
                validate_timeout,
                leak_detection_threshold,
                fail_fast,
                maintenance_interval
            );
            if file.name.is_some() {
                config.name = file.name;
            }
            Ok(config)
        }
    }
}
