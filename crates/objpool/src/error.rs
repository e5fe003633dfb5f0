//! The pool's errors.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// A creator's error, boxed so that pools of any creator share one error type.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why [`Builder::build`](crate::Builder::build) refused to build a pool.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_size` was zero: the pool could never hand out an object.
    ZeroMaxSize,
    /// More objects were to be pre-created than the pool may hold.
    PreCreateAboveMaxSize {
        /// The requested number of pre-created objects.
        pre_create: usize,
        /// The pool's maximum size.
        max_size: usize,
    },
    /// The creator failed while pre-creating objects; none of them is kept.
    Create {
        /// How many objects had been created before the failure.
        created: usize,
        /// The creator's error.
        source: BoxError,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroMaxSize => f.write_str("invalid pool configuration: max_size is 0"),
            Self::PreCreateAboveMaxSize { pre_create, max_size } => write!(
                f,
                "invalid pool configuration: pre_create ({pre_create}) is above max_size ({max_size})"
            ),
            Self::Create { created, .. } => {
                write!(f, "creating pre-created object {} failed", created + 1)
            }
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Create { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// Why a waiting get ([`Pool::get`](crate::Pool::get) and friends) returned no object.
#[derive(Debug)]
#[non_exhaustive]
pub enum GetError {
    /// Every object stayed in use until the timeout passed.
    Timeout {
        /// How long the caller waited.
        waited: Duration,
    },
    /// A slot was free but creating an object in it failed.
    Create(BoxError),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { waited } => {
                write!(f, "timed out after {waited:?} waiting for a pooled object")
            }
            Self::Create(_) => f.write_str("creating a pooled object failed"),
        }
    }
}

impl Error for GetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Create(source) => Some(&**source),
            Self::Timeout { .. } => None,
        }
    }
}

/// Why [`Pool::try_get`](crate::Pool::try_get) returned no object.
#[derive(Debug)]
#[non_exhaustive]
pub enum TryGetError {
    /// All `max_size` objects are in use (or other callers are already waiting for one).
    Exhausted,
    /// A slot was free but creating an object in it failed.
    Create(BoxError),
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted => f.write_str("every pooled object is in use"),
            Self::Create(_) => f.write_str("creating a pooled object failed"),
        }
    }
}

impl Error for TryGetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Create(source) => Some(&**source),
            Self::Exhausted => None,
        }
    }
}
