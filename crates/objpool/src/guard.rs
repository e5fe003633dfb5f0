//! Guards: a checked-out object that goes back to its pool when dropped.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use crate::pool::Pool;
use crate::slot::Slot;
use std::ptr::NonNull;

/// An object checked out of a [`Pool`], borrowed from the pool handle. Dereferences to the
/// object; dropping it resets the object and returns it to the pool.
///
/// Use [`into_owned`](Guard::into_owned) for a guard that can move to another task or thread.
#[must_use = "dropping the guard returns the object to the pool at once"]
pub struct Guard<'a, T> {
    pool: &'a Pool<T>,
    /// # Safety
    /// Slot `index` of `pool`, which this guard owns, holding an object.
    slot: NonNull<Slot<T>>,
    index: usize,
    /// Makes the guard `Send` and `Sync` exactly when `&mut T` is.
    _object: PhantomData<&'a mut T>,
}

// SAFETY: the slot pointer is owned access to one `T` in a pool shared between threads: the
// guard may move to another thread when `T: Send`, and be shared when `T: Sync` too.
unsafe impl<T: Send> Send for Guard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Guard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for OwnedGuard<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for OwnedGuard<T> {}

/// An object checked out of a [`Pool`] that owns a handle to the pool: `'static` and `Send`
/// (for `T: Send`), for use across tasks and threads. Otherwise the same as [`Guard`].
#[must_use = "dropping the guard returns the object to the pool at once"]
pub struct OwnedGuard<T> {
    pool: Pool<T>,
    /// # Safety
    /// Slot `index` of `pool`, which this guard owns, holding an object.
    slot: NonNull<Slot<T>>,
    index: usize,
    /// Makes the guard `Send` and `Sync` exactly when `T` is.
    _object: PhantomData<T>,
}

impl<'a, T> Guard<'a, T> {
    /// # Safety
    /// The caller owns slot `index` of `pool` and it holds an object.
    pub(crate) unsafe fn new(pool: &'a Pool<T>, index: usize) -> Self {
        let slot = NonNull::from(&*pool.slots()[index]);
        Self { pool, slot, index, _object: PhantomData }
    }

    /// Turns this guard into one that owns a handle to the pool.
    pub fn into_owned(self) -> OwnedGuard<T> {
        let this = ManuallyDrop::new(self);
        OwnedGuard { pool: this.pool.clone(), slot: this.slot, index: this.index, _object: PhantomData }
    }
}

impl<T> OwnedGuard<T> {
    /// The pool the object belongs to.
    pub fn pool(&self) -> &Pool<T> {
        &self.pool
    }
}

macro_rules! guard_common {
    ($guard:ident $(<$lt:lifetime>)?) => {
        impl<$($lt,)? T> $guard<$($lt,)? T> {
            /// Takes the object out of the pool for good. Its slot is freed, so the pool may
            /// create a new object in its place.
            pub fn detach(self) -> T {
                let this = ManuallyDrop::new(self);
                // SAFETY: `this` is never used or dropped again, so the pool handle is moved
                // out exactly once (and dropped at the end of this call).
                let pool = unsafe { std::ptr::read(&this.pool) };
                pool.shared().detach(this.index)
            }

            /// Drops the object instead of returning it (for an object found broken). Its slot
            /// is freed, so the pool may create a new object in its place.
            pub fn discard(self) {
                let this = ManuallyDrop::new(self);
                // SAFETY: as in `detach`.
                let pool = unsafe { std::ptr::read(&this.pool) };
                pool.shared().discard(this.index);
            }
        }

        impl<$($lt,)? T> Deref for $guard<$($lt,)? T> {
            type Target = T;

            #[inline]
            fn deref(&self) -> &T {
                // SAFETY: the guard owns its slot, which holds an object, until it is dropped.
                unsafe { &*self.slot.as_ref().get() }
            }
        }

        impl<$($lt,)? T> DerefMut for $guard<$($lt,)? T> {
            #[inline]
            fn deref_mut(&mut self) -> &mut T {
                // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
                unsafe { &mut *self.slot.as_ref().get() }
            }
        }

        impl<$($lt,)? T> Drop for $guard<$($lt,)? T> {
            #[inline(always)]
            fn drop(&mut self) {
                // SAFETY: the pool, kept alive by the guard, keeps the slot alive.
                let slot = unsafe { self.slot.as_ref() };
                self.pool.shared().release(slot, self.index);
            }
        }

        impl<$($lt,)? T: fmt::Debug> fmt::Debug for $guard<$($lt,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard))
                    .field("slot", &self.index)
                    .field("object", &**self)
                    .finish()
            }
        }
    };
}

guard_common!(Guard<'a>);
guard_common!(OwnedGuard);
