//! Building a pool: its size, pre-created objects, creator and reset.

use std::fmt;

use crate::error::{BoxError, BuildError};
use crate::pool::Pool;
use crate::shared::{Create, Recycle, Shared};

/// The default [`Builder::max_size`].
pub const DEFAULT_MAX_SIZE: usize = 32;

/// Configures and builds a [`Pool`]. Made by [`Pool::builder`].
///
/// ```
/// let pool = objpool::Pool::builder()
///     .max_size(100)
///     .pre_create(20)
///     .reset(|parser: &mut Vec<String>| parser.clear())
///     .build(Vec::new)?;
/// assert_eq!(pool.stats().idle, 20);
/// # Ok::<(), objpool::BuildError>(())
/// ```
pub struct Builder<T> {
    max_size: usize,
    pre_create: usize,
    recycle: Option<Recycle<T>>,
}

impl<T: Send + 'static> Builder<T> {
    pub(crate) fn new() -> Self {
        Self { max_size: DEFAULT_MAX_SIZE, pre_create: 0, recycle: None }
    }

    /// The most objects that may exist at once, idle and in use together. Default
    /// [`DEFAULT_MAX_SIZE`]; must be at least 1. Each slot takes one cache line plus `T`.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// How many objects to create while building, so that the first gets find them ready.
    /// Default 0; at most `max_size`. The rest are created lazily when needed.
    pub fn pre_create(mut self, pre_create: usize) -> Self {
        self.pre_create = pre_create;
        self
    }

    /// A reset run on every object that comes back, before anyone else can get it, to clear
    /// what the last user left in it. A reset that panics discards the object.
    pub fn reset(self, reset: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.recycle(move |value| {
            reset(value);
            true
        })
    }

    /// Like [`reset`](Self::reset), but the closure also decides whether the object is fit
    /// for reuse: `false` drops it and frees its slot (for a broken or oversized object).
    pub fn recycle(mut self, recycle: impl Fn(&mut T) -> bool + Send + Sync + 'static) -> Self {
        self.recycle = Some(Box::new(recycle));
        self
    }

    /// Builds the pool with an infallible creator, pre-creating objects.
    ///
    /// # Errors
    /// [`BuildError::ZeroMaxSize`] and [`BuildError::PreCreateAboveMaxSize`] for a bad
    /// configuration.
    pub fn build(self, create: impl Fn() -> T + Send + Sync + 'static) -> Result<Pool<T>, BuildError> {
        self.build_boxed(Box::new(move || Ok(create())))
    }

    /// Builds the pool with a fallible creator, pre-creating objects. The creator's errors
    /// reach the callers of the get methods.
    ///
    /// # Errors
    /// As [`build`](Self::build), and [`BuildError::Create`] if the creator fails while
    /// pre-creating objects.
    pub fn try_build<E: Into<BoxError>>(
        self,
        create: impl Fn() -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Pool<T>, BuildError> {
        self.build_boxed(Box::new(move || create().map_err(Into::into)))
    }

    fn build_boxed(self, create: Create<T>) -> Result<Pool<T>, BuildError> {
        let Self { max_size, pre_create, recycle } = self;
        if max_size == 0 {
            return Err(BuildError::ZeroMaxSize);
        }
        if pre_create > max_size {
            return Err(BuildError::PreCreateAboveMaxSize { pre_create, max_size });
        }
        let shared = Shared::new(max_size, create, recycle);
        for created in 0..pre_create {
            let value = shared.create_raw().map_err(|source| BuildError::Create { created, source })?;
            shared.pre_fill(created, value);
        }
        Ok(Pool::from_shared(shared))
    }
}

impl<T> fmt::Debug for Builder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("max_size", &self.max_size)
            .field("pre_create", &self.pre_create)
            .field("reset", &self.recycle.is_some())
            .finish()
    }
}
