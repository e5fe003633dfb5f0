//! Building a pool: its size, capacity, first objects, creator and reset.

use std::fmt;
use std::future::Future;

use crate::create::Create;
use crate::error::{BoxError, BuildError, GetError};
use crate::pool::Pool;
use crate::reset::{AsyncReset, ResetFuture};
use crate::shared::{Config, Recycle, Shared};

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
    capacity: Option<usize>,
    pre_create: usize,
    seed: Vec<T>,
    exact_peak: bool,
    recycle: Option<Recycle<T>>,
    reset_async: Option<AsyncReset<T>>,
}

impl<T: Send + 'static> Builder<T> {
    pub(crate) fn new() -> Self {
        Self {
            max_size: DEFAULT_MAX_SIZE,
            capacity: None,
            pre_create: 0,
            seed: Vec::new(),
            exact_peak: false,
            recycle: None,
            reset_async: None,
        }
    }

    /// The most objects that may exist at once, idle and in use together. Default
    /// [`DEFAULT_MAX_SIZE`]; must be at least 1. Each slot takes one cache line plus `T`.
    /// [`Pool::resize`] changes it later, up to the [`capacity`](Self::capacity).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// The largest `max_size` the pool may be [resized](Pool::resize) to. Slots are allocated
    /// for all of it at build time (one cache line each), so that gets never follow a pointer
    /// that a resize could move. Default: `max_size` (the pool can shrink and grow back).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// How many objects to have ready when the pool is built (seeded ones count), so that the
    /// first gets find them. Default 0; at most `max_size`. The rest are created when needed.
    pub fn pre_create(mut self, pre_create: usize) -> Self {
        self.pre_create = pre_create;
        self
    }

    /// Existing objects to start the pool with (connections opened elsewhere, buffers
    /// recovered from a previous pool). They count toward `pre_create` and `max_size`.
    pub fn seed(mut self, objects: impl IntoIterator<Item = T>) -> Self {
        self.seed.extend(objects);
        self
    }

    /// Whether [`Stats::peak_in_use`](crate::Stats::peak_in_use) is exact. Default `false`:
    /// the fast path writes nothing shared, and the peak is exact only when reached by creating
    /// an object or by making a caller wait, a lower bound otherwise (sampled by `stats()`).
    /// `true` counts every checkout in one counter shared by all threads, which costs a get
    /// and return about 1.4x the time on one thread and 4x on two (`objpool-steady`, `ours`
    /// against `ours-exact-peak` in BENCHMARKS.md): turn it on to size a pool by its peak.
    pub fn exact_peak(mut self, exact_peak: bool) -> Self {
        self.exact_peak = exact_peak;
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

    /// An async reset, for a reset that needs I/O (`ROLLBACK`, `DISCARD ALL`): it resolves to
    /// whether the object is fit for reuse. `Drop` cannot await, so a returned object is only
    /// marked, and the next caller to get it runs the reset first: `get_async` in its own task,
    /// a blocking get on its thread. No lock is held meanwhile and nobody else can get the
    /// object. An object the reset refuses, or whose reset panics or is cancelled, is dropped,
    /// and the caller gets a new one created in its place. Runs after the synchronous
    /// [`reset`](Self::reset), if both are set. Not available for an unmanaged pool.
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let pool = objpool::Pool::builder()
    ///     .reset_async(|session: &mut Vec<String>| {
    ///         Box::pin(async move {
    ///             session.clear(); // e.g. `session.execute("ROLLBACK").await.is_ok()`
    ///             true
    ///         })
    ///     })
    ///     .build(Vec::new)?;
    /// pool.get_async().await?.push("BEGIN".into());
    /// assert!(pool.get_async().await?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn reset_async(
        mut self,
        reset: impl for<'a> Fn(&'a mut T) -> ResetFuture<'a> + Send + Sync + 'static,
    ) -> Self {
        self.reset_async = Some(Box::new(reset));
        self
    }

    /// Builds the pool with an infallible creator, pre-creating objects. A creator that
    /// panics frees its slot and reaches the caller as [`GetError::CreatorPanicked`].
    ///
    /// # Errors
    /// [`BuildError`] for a bad configuration, or if the creator panics while pre-creating.
    pub fn build(self, create: impl Fn() -> T + Send + Sync + 'static) -> Result<Pool<T>, BuildError> {
        self.try_build(move || Ok::<T, BoxError>(create()))
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
        let (shared, mut filled) =
            self.start(Create::Sync(Box::new(move || create().map_err(Into::into))))?;
        while let Some(index) = filled.next_to_create() {
            let value = shared.create_raw().map_err(|error| filled.failed(error))?;
            shared.pre_fill(index, value, true);
        }
        Ok(Pool::from_shared(shared))
    }

    /// Builds the pool with an async creator, awaiting the pre-created objects one by one.
    ///
    /// `get_async` polls a creation in the caller's own task, so a slow creator holds up only
    /// the caller that needs the new object, never a runtime thread or another caller. The
    /// blocking gets drive a creation to completion on their own thread (the future must then
    /// not need the caller's runtime thread: a current-thread runtime would not run it).
    ///
    /// # Errors
    /// As [`try_build`](Self::try_build).
    pub async fn build_async<F, E>(
        self,
        create: impl Fn() -> F + Send + Sync + 'static,
    ) -> Result<Pool<T>, BuildError>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let create = Create::Async(Box::new(move || {
            let creating = create();
            Box::pin(async move { creating.await.map_err(Into::into) })
        }));
        let (shared, mut filled) = self.start(create)?;
        while let Some(index) = filled.next_to_create() {
            let mut creating = shared.create_raw_async().map_err(|error| filled.failed(error))?;
            let value = std::future::poll_fn(|cx| creating.poll(cx))
                .await
                .map_err(|failure| filled.failed(failure.into()))?;
            shared.pre_fill(index, value, true);
        }
        Ok(Pool::from_shared(shared))
    }

    /// Builds a pool without a creator, holding only the [seeded](Self::seed) objects and
    /// those given to [`Pool::add`] later (deadpool's unmanaged pool). A get waits while every
    /// object is in use, even if fewer than `max_size` exist.
    ///
    /// # Errors
    /// [`BuildError`] for a bad configuration; `pre_create` and `reset_async` must be unset.
    pub fn build_unmanaged(self) -> Result<Pool<T>, BuildError> {
        if self.pre_create > 0 || self.reset_async.is_some() {
            return Err(BuildError::Unmanaged);
        }
        let (shared, _) = self.start(Create::Unmanaged)?;
        Ok(Pool::from_shared(shared))
    }

    /// Checks the configuration, makes the pool and puts the seeded objects in.
    fn start(self, create: Create<T>) -> Result<(Shared<T>, PreFill), BuildError> {
        let Self { max_size, capacity, pre_create, seed, exact_peak, recycle, reset_async } = self;
        let capacity = capacity.unwrap_or(max_size);
        if max_size == 0 {
            return Err(BuildError::ZeroMaxSize);
        }
        if capacity < max_size {
            return Err(BuildError::CapacityBelowMaxSize { capacity, max_size });
        }
        if pre_create > max_size {
            return Err(BuildError::PreCreateAboveMaxSize { pre_create, max_size });
        }
        if seed.len() > max_size {
            return Err(BuildError::SeedAboveMaxSize { seeded: seed.len(), max_size });
        }
        let shared = Shared::new(Config { capacity, max_size, recycle, reset_async, exact_peak }, create);
        let seeded = seed.len();
        for (index, value) in seed.into_iter().enumerate() {
            shared.pre_fill(index, value, false);
        }
        Ok((shared, PreFill { next: seeded, until: pre_create.max(seeded), seeded }))
    }
}

/// The slots still to pre-create into.
struct PreFill {
    next: usize,
    until: usize,
    seeded: usize,
}

impl PreFill {
    fn next_to_create(&mut self) -> Option<usize> {
        (self.next < self.until).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// The build error of a failed pre-creation.
    fn failed(&self, error: GetError) -> BuildError {
        let created = self.next - 1 - self.seeded;
        let source = match error {
            GetError::Create(source) => source,
            other => Box::new(other),
        };
        BuildError::Create { created, source }
    }
}

impl<T> fmt::Debug for Builder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("max_size", &self.max_size)
            .field("capacity", &self.capacity)
            .field("pre_create", &self.pre_create)
            .field("seeded", &self.seed.len())
            .field("exact_peak", &self.exact_peak)
            .field("reset", &self.recycle.is_some())
            .field("reset_async", &self.reset_async.is_some())
            .finish()
    }
}
