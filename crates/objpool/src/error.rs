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
    /// `capacity` was set below `max_size`.
    CapacityBelowMaxSize {
        /// The requested capacity.
        capacity: usize,
        /// The pool's maximum size.
        max_size: usize,
    },
    /// More objects were seeded than the pool may hold.
    SeedAboveMaxSize {
        /// The number of seeded objects.
        seeded: usize,
        /// The pool's maximum size.
        max_size: usize,
    },
    /// `pre_create` or `reset_async` was set for a pool without a creator (an object that an
    /// async reset refuses is replaced by a new one, which an unmanaged pool cannot make).
    Unmanaged,
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
            Self::CapacityBelowMaxSize { capacity, max_size } => {
                write!(f, "invalid pool configuration: capacity ({capacity}) is below max_size ({max_size})")
            }
            Self::SeedAboveMaxSize { seeded, max_size } => write!(
                f,
                "invalid pool configuration: {seeded} seeded objects are more than max_size ({max_size})"
            ),
            Self::Unmanaged => f.write_str(
                "invalid pool configuration: pre_create and reset_async need a creator, and the pool has none",
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
    /// A slot was free but the creator panicked; the slot was freed again.
    CreatorPanicked {
        /// The panic's message, if it was a string.
        message: String,
    },
    /// The pool was closed (before or during the wait).
    Closed,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { waited } => {
                write!(f, "timed out after {waited:?} waiting for a pooled object")
            }
            Self::Create(_) => f.write_str("creating a pooled object failed"),
            Self::CreatorPanicked { message } => {
                write!(f, "the creator of a pooled object panicked: {message}")
            }
            Self::Closed => f.write_str("the pool is closed"),
        }
    }
}

impl Error for GetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Create(source) => Some(&**source),
            Self::Timeout { .. } | Self::CreatorPanicked { .. } | Self::Closed => None,
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
    /// A slot was free but the creator panicked; the slot was freed again.
    CreatorPanicked {
        /// The panic's message, if it was a string.
        message: String,
    },
    /// The pool was closed.
    Closed,
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted => f.write_str("every pooled object is in use"),
            Self::Create(_) => f.write_str("creating a pooled object failed"),
            Self::CreatorPanicked { message } => {
                write!(f, "the creator of a pooled object panicked: {message}")
            }
            Self::Closed => f.write_str("the pool is closed"),
        }
    }
}

impl Error for TryGetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Create(source) => Some(&**source),
            Self::Exhausted | Self::CreatorPanicked { .. } | Self::Closed => None,
        }
    }
}

impl From<GetError> for TryGetError {
    /// For the paths a non-waiting get shares with a waiting one (a timeout cannot occur).
    fn from(error: GetError) -> Self {
        match error {
            GetError::Create(source) => Self::Create(source),
            GetError::CreatorPanicked { message } => Self::CreatorPanicked { message },
            GetError::Closed => Self::Closed,
            GetError::Timeout { .. } => Self::Exhausted,
        }
    }
}

/// Why [`Pool::add`](crate::Pool::add) gave an object back instead of pooling it.
pub struct AddError<T> {
    /// The object, returned untouched.
    pub object: T,
    /// Why it was refused.
    pub reason: AddRefused,
}

/// The reason in an [`AddError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddRefused {
    /// Every slot holds an object or is in use: the pool is at its `max_size`.
    Full,
    /// The pool was closed.
    Closed,
}

impl<T> AddError<T> {
    /// The refused object.
    pub fn into_inner(self) -> T {
        self.object
    }
}

impl<T> fmt::Debug for AddError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddError").field("reason", &self.reason).finish_non_exhaustive()
    }
}

impl<T> fmt::Display for AddError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            AddRefused::Full => f.write_str("the pool is full: no free slot for the added object"),
            AddRefused::Closed => f.write_str("the pool is closed: the added object was not kept"),
        }
    }
}

impl<T> Error for AddError<T> {}

/// Why [`Pool::resize`](crate::Pool::resize) refused a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResizeError {
    /// A size of zero: the pool could never hand out an object.
    Zero,
    /// Above the capacity the pool was built with (its slots are allocated at build time).
    AboveCapacity {
        /// The requested size.
        requested: usize,
        /// The pool's capacity.
        capacity: usize,
    },
    /// The pool was closed.
    Closed,
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zero => f.write_str("invalid pool size: 0"),
            Self::AboveCapacity { requested, capacity } => {
                write!(f, "invalid pool size: {requested} is above the pool's capacity ({capacity})")
            }
            Self::Closed => f.write_str("the pool is closed"),
        }
    }
}

impl Error for ResizeError {}
