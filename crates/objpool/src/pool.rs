//! The public face of a pool: a cheap, cloneable handle.

use std::fmt;
use std::time::{Duration, Instant};

use crate::acquire::Acquire;
use crate::builder::Builder;
use crate::error::{GetError, TryGetError};
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
/// going through the `Arc`. After a return's locked instruction the next get waits for every
/// load on its path, so each hop saved is a few cycles off a get-and-return of ~20.
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
    /// (they are served first); [`TryGetError::Create`] if the creator failed.
    #[inline]
    pub fn try_get(&self) -> Result<Guard<'_, T>, TryGetError> {
        let taken = self.shared.take_fast(self.slots()).ok_or(TryGetError::Exhausted)?;
        let index = self.shared.fill(taken).map_err(TryGetError::Create)?;
        // SAFETY: `fill` made the slot ours and put an object in it.
        Ok(unsafe { Guard::new(self, index) })
    }

    /// Takes an object, blocking the current thread until one is free.
    ///
    /// Waiting callers are served in FIFO order. In async code use [`get_async`](Self::get_async).
    ///
    /// # Errors
    /// [`GetError::Create`] if the creator failed.
    pub fn get(&self) -> Result<Guard<'_, T>, GetError> {
        self.get_until(None)
    }

    /// Takes an object, blocking the current thread for at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`] if no object came free in time; [`GetError::Create`] if the
    /// creator failed.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Guard<'_, T>, GetError> {
        self.get_until(Some(Instant::now() + timeout))
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<Guard<'_, T>, GetError> {
        let index = self.shared.acquire_blocking(deadline)?;
        // SAFETY: `acquire_blocking` made the slot ours and put an object in it.
        Ok(unsafe { Guard::new(self, index) })
    }

    /// Takes an object, waiting asynchronously until one is free.
    ///
    /// The future is cancel-safe and serves waiters in FIFO order; see [`Acquire`].
    ///
    /// # Errors
    /// The future resolves to [`GetError::Create`] if the creator failed; it never times out
    /// by itself.
    pub fn get_async(&self) -> Acquire<'_, T> {
        Acquire::new(self)
    }

    /// The most objects that may exist at once.
    pub fn max_size(&self) -> usize {
        self.shared.max_size()
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
