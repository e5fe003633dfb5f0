//! The pool's errors.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::hooks::HookError;
use crate::metrics::Status;

/// Why a checkout failed. `E` is the manager's error type.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError<E> {
    /// No connection came free or could be made within the checkout timeout.
    Timeout {
        /// How long the checkout waited.
        waited: Duration,
        /// The pool's state when it gave up.
        status: Status,
        /// The last connection error, if connecting was failing.
        last_error: Option<Arc<ConnectError<E>>>,
    },
    /// Connecting to the backend failed (after the retry policy's retries).
    Connect(Arc<ConnectError<E>>),
    /// The pool was closed.
    Closed,
    /// The before-checkout hook failed on the connection this checkout got (which was closed).
    Hook(HookError),
}

/// This layer's message only: the cause (the last connection error, the hook's error) is the
/// [`source`](Error::source), for a reporter to print once.
impl<E: Error> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { waited, status, .. } => {
                write!(f, "timed out after {waited:?} waiting for a connection ({status})")
            }
            Self::Connect(_) => f.write_str("connecting to the backend failed"),
            Self::Closed => f.write_str("the pool is closed"),
            Self::Hook(_) => f.write_str("preparing the connection for checkout failed"),
        }
    }
}

impl<E: Error + 'static> Error for PoolError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Timeout { last_error: Some(error), .. } | Self::Connect(error) => Some(&**error),
            Self::Hook(error) => Some(error),
            _ => None,
        }
    }
}

/// Why one connection attempt failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError<E> {
    /// The manager's `connect` failed.
    Backend(E),
    /// `connect` did not finish within the connect timeout.
    Timeout(Duration),
    /// The manager's `connect` panicked (with this message); the pool contained it.
    Panicked(String),
    /// The connection was made, but the after-connect hook failed on it.
    Hook(HookError),
}

/// `Backend` and `Hook` are transparent: they print the backend's or the hook's message and
/// return its cause from [`source`](Error::source) (client libraries often say "error
/// connecting" and keep "connection refused" in their source), so a reporter walking the chain
/// prints each layer once. Match on the variant to reach the backend's error itself.
impl<E: Error> fmt::Display for ConnectError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backend(error) => write!(f, "{error}"),
            Self::Timeout(after) => write!(f, "connecting timed out after {after:?}"),
            Self::Panicked(message) => write!(f, "the manager panicked while connecting: {message}"),
            Self::Hook(error) => write!(f, "{error}"),
        }
    }
}

impl<E: Error + 'static> Error for ConnectError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Backend(error) => error.source(),
            Self::Hook(error) => error.source(),
            Self::Timeout(_) | Self::Panicked(_) => None,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_size` was zero.
    ZeroMaxSize,
    /// `min_size` was above `max_size`.
    MinAboveMax {
        /// The minimum.
        min_size: usize,
        /// The maximum.
        max_size: usize,
    },
    /// A field that must be non-zero was zero.
    Zero(&'static str),
    /// A duration longer than the pool can represent as a deadline: use `None` (where the field
    /// is optional) for "never".
    TooLong {
        /// The field.
        field: &'static str,
        /// The longest accepted, [`Config::MAX_DURATION`](crate::Config::MAX_DURATION).
        max: Duration,
    },
    /// `lifetime_jitter` was not below `max_lifetime`.
    JitterNotBelowLifetime,
    /// An exponential retry policy whose `initial` delay is zero or above its `max`.
    RetryDelays,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid pool configuration: ")?;
        match self {
            Self::ZeroMaxSize => f.write_str("max_size is 0"),
            Self::MinAboveMax { min_size, max_size } => {
                write!(f, "min_size ({min_size}) is above max_size ({max_size})")
            }
            Self::Zero(field) => write!(f, "{field} is 0"),
            Self::TooLong { field, max } => write!(f, "{field} is longer than {max:?}"),
            Self::JitterNotBelowLifetime => f.write_str("lifetime_jitter must be below max_lifetime"),
            Self::RetryDelays => f.write_str("retry: exponential backoff needs 0 < initial <= max"),
        }
    }
}

impl Error for ConfigError {}

/// What [`Pool::close`](crate::Pool::close) left behind when its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseError {
    /// Connections still open: checked out and not yet returned (or being health-checked).
    pub open: usize,
    /// Connection attempts that had not ended.
    pub connecting: usize,
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the pool closed with {} connections still checked out and {} connection attempts in flight",
            self.open, self.connecting
        )
    }
}

impl Error for CloseError {}

/// Why building a pool failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError<E> {
    /// The configuration is invalid.
    Config(ConfigError),
    /// Opening the `min_size` connections failed (after retries).
    Connect(Arc<ConnectError<E>>),
}

/// `Config` is transparent (the configuration error has no cause of its own); `Connect` says
/// this layer's message and gives the connection error as its [`source`](Error::source).
impl<E: Error> fmt::Display for BuildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(error) => error.fmt(f),
            Self::Connect(_) => f.write_str("opening the pool's first connections failed"),
        }
    }
}

impl<E: Error + 'static> Error for BuildError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Config(error) => error.source(),
            Self::Connect(error) => Some(&**error),
        }
    }
}

impl<E> From<ConfigError> for BuildError<E> {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}
