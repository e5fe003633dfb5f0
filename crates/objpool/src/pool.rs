//! The public face of a pool: a cheap, cloneable handle.

use std::fmt;
use std::time::{Duration, Instant};

use crate::acquire::Acquire;
use crate::builder::Builder;
use crate::error::{AddError, GetError, ResizeError, TryGetError};
use crate::guard::Guard;
use crate::shared::Shared;
use crate::slot::Slot;
use crate::stats::Stats;
use crate::sync::Arc;

use crossbeam_utils::CachePadded;
use std::ptr::NonNull;

/// A pool of reusable objects of type `T`.
///
/// Built with [`Pool::builder`]. The handle is a reference-counted pointer: clone it to share
/// the pool between threads and tasks. Objects are made by the creator up to `max_size`, reset
/// when they come back, and handed out again; never more than `max_size` exist at once.
pub struct Pool<T> {
    shared: Arc<Shared<T>>,
    slots: Slots<T>,
}

/// A direct pointer to the slots of `shared`, one dependent load closer to the objects than
/// going through the `Arc`: each hop saved is a few cycles off a get-and-return that costs one
/// locked instruction (the get's claim) and a few loads.
///
/// # Safety
/// Points into the `Box` of slots owned by the `Shared` that the same `Pool` keeps alive;
/// that box is never moved or replaced.
struct Slots<T>(NonNull<[CachePadded<Slot<T>>]>);

// SAFETY: `Slots` is a shared reference to data of a `Shared<T>`, which is `Send + Sync` for
// `T: Send`.
unsafe impl<T: Send> Send for Slots<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Slots<T> {}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone(), slots: Slots(self.slots.0) }
    }
}

impl<T: Send + 'static> Pool<T> {
    /// A builder for a pool of `T`.
    pub fn builder() -> Builder<T> {
        Builder::new()
    }
}

impl<T> Pool<T> {
    pub(crate) fn from_shared(shared: Shared<T>) -> Self {
        let shared = Arc::new(shared);
        let slots = Slots(NonNull::from(shared.slots()));
        Self { shared, slots }
    }

    #[inline(always)]
    pub(crate) fn shared(&self) -> &Shared<T> {
        &self.shared
    }

    #[inline(always)]
    pub(crate) fn slots(&self) -> &[CachePadded<Slot<T>>] {
        // SAFETY: see `Slots`: `self.shared` keeps the slots alive and in place.
        unsafe { self.slots.0.as_ref() }
    }

    /// Takes an idle object, or creates one if fewer than `max_size` exist, without waiting.
    ///
    /// # Errors
    /// [`TryGetError::Exhausted`] if every object is in use or other callers are waiting
    /// (they are served first); [`TryGetError::Create`] or [`TryGetError::CreatorPanicked`]
    /// if the creator failed; [`TryGetError::Closed`] once the pool is closed.
    ///
    /// With an async creator, a new object is created on this thread, blocking it until the
    /// creation completes: in async code use [`get_async`](Self::get_async).
    #[inline]
    pub fn try_get(&self) -> Result<Guard<'_, T>, TryGetError> {
        let taken = match self.shared.take_fast(self.slots()) {
            Some(taken) => taken,
            None => self.shared.try_take_slow()?,
        };
        let index = self.shared.fill(taken)?;
        // SAFETY: `fill` made the slot ours and put an object in it.
        Ok(unsafe { Guard::new(self, index) })
    }

    /// Takes an object, blocking the current thread until one is free.
    ///
    /// Waiting callers are served in FIFO order. In async code use [`get_async`](Self::get_async).
    /// With an async creator, a new object is created on this thread, blocking it until the
    /// creation completes.
    ///
    /// # Errors
    /// [`GetError::Create`] or [`GetError::CreatorPanicked`] if the creator failed;
    /// [`GetError::Closed`] if the pool is or gets closed.
    pub fn get(&self) -> Result<Guard<'_, T>, GetError> {
        self.get_until(None, None)
    }

    /// Takes an object, blocking the current thread for at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`] if no object came free in time; otherwise as [`get`](Self::get).
    /// A timeout too long to be a point in time (`Duration::MAX`) waits without end.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Guard<'_, T>, GetError> {
        let called = Instant::now();
        self.get_until(called.checked_add(timeout), Some(called))
    }

    /// `called`: when the caller asked, if it read the clock (a timeout's `waited` counts from
    /// there, so it is never less than the timeout).
    fn get_until(
        &self,
        deadline: Option<Instant>,
        called: Option<Instant>,
    ) -> Result<Guard<'_, T>, GetError> {
        let index = self.shared.acquire_blocking(deadline, called)?;
        // SAFETY: `acquire_blocking` made the slot ours and put an object in it.
        Ok(unsafe { Guard::new(self, index) })
    }

    /// Takes an object, waiting asynchronously until one is free.
    ///
    /// The future is cancel-safe and serves waiters in FIFO order; see [`Acquire`].
    ///
    /// # Errors
    /// The future resolves to the errors of [`get`](Self::get); it never times out by itself.
    pub fn get_async(&self) -> Acquire<'_, T> {
        Acquire::new(self)
    }

    /// Puts an existing object into the pool, as if it had been created and returned (no
    /// reset runs). The oldest waiter, if any, gets it.
    ///
    /// # Errors
    /// The object comes back in an [`AddError`] if the pool has no free slot (it holds
    /// `max_size` objects, or is shrinking) or is closed.
    pub fn add(&self, object: T) -> Result<(), AddError<T>> {
        self.shared.add(object)
    }

    /// Changes `max_size`, up to the [`capacity`](Self::capacity) the pool was built with.
    ///
    /// Growing takes effect at once and serves waiters. Shrinking drops idle objects now and
    /// retires the slots of objects in use as they come back, never taking one from its user;
    /// meanwhile every get and return goes through the pool's lock, and more than `max_size`
    /// objects may still be in use.
    ///
    /// # Errors
    /// [`ResizeError`] for a size of zero or above the capacity, or a closed pool.
    pub fn resize(&self, max_size: usize) -> Result<(), ResizeError> {
        self.shared.resize(max_size)
    }

    /// Closes the pool, for every handle: waiting gets and all later ones fail with
    /// [`GetError::Closed`], idle objects are dropped now and objects in use when they come
    /// back. Returns `false` if the pool was already closed.
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// Whether the pool was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Starts a new interval for [`Stats::peak_in_use`]: the peak restarts from the objects in
    /// use now. Returns the peak of the interval that ends, for per-interval sizing.
    pub fn reset_peak(&self) -> usize {
        self.shared.reset_peak()
    }

    /// The most objects that may exist at once: set at build time, changed by
    /// [`resize`](Self::resize).
    pub fn max_size(&self) -> usize {
        self.shared.max_size()
    }

    /// The largest `max_size` the pool can be resized to: its slots are allocated at build
    /// time. See [`Builder::capacity`].
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// A snapshot of the pool's state and counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

impl<T> fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("stats", &self.stats()).finish()
    }
}
