//! Every synchronisation primitive of the cache, from one place.
//!
//! The shard cells (`cell.rs`: the shard lock, its thread slots, the published weights),
//! the budget (`budget.rs`), the loader hand-off (`load.rs`) and the node counters import their
//! locks, atomics, condition variable, thread-local and spin/yield hints from here and from
//! nowhere else. Under the `bounded_cache_loom` cfg they are [loom]'s model-checked versions, so
//! the models in `tests/loom.rs` run the real protocols; the constants that bound spinning and
//! buffering shrink there too, so that a model stays small enough to explore completely.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(bounded_cache_loom))]
mod imp {
    pub(crate) use std::hint::spin_loop;
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};
    pub(crate) use std::thread::yield_now;
    pub(crate) use std::thread_local;

    /// A mutex whose `lock` cannot fail (no poisoning).
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    /// A reader-writer lock whose methods cannot fail (no poisoning).
    pub(crate) type RwLock<T> = parking_lot::RwLock<T>;
    pub(crate) type RwLockReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
    pub(crate) type RwLockWriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;

    /// A condition variable for [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// Attempts at a busy shard lock before blocking.
    pub(crate) const SPIN: usize = 200;
    /// LRU hits recorded per thread slot of a shard between two write locks (14 fill the slot's
    /// two cache lines with its state word and cursor).
    pub(crate) const READ_BUFFER: usize = 14;
    pub(crate) const CLIMBER_BATCH: u32 = 32;
    /// Thread slots per shard at most (`cell.rs`); more threads share them.
    pub(crate) const MAX_SLOTS: usize = 32;

    /// A cell whose accesses are tracked under loom; here, `std`'s with loom's pointer API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        pub(crate) fn get(&self) -> ConstPtr<T> {
            ConstPtr(self.0.get())
        }

        pub(crate) fn get_mut(&self) -> MutPtr<T> {
            MutPtr(self.0.get())
        }
    }

    /// A shared access to an [`UnsafeCell`]'s value, for as long as it lives.
    #[derive(Debug)]
    pub(crate) struct ConstPtr<T>(*const T);

    impl<T> ConstPtr<T> {
        /// # Safety
        /// No exclusive access to the value may overlap this one.
        pub(crate) unsafe fn deref(&self) -> &T {
            // SAFETY: the pointer comes from a live `UnsafeCell` (the caller's guard borrows it)
            // and the caller rules out an overlapping exclusive access.
            unsafe { &*self.0 }
        }
    }

    /// An exclusive access to an [`UnsafeCell`]'s value, for as long as it lives.
    #[derive(Debug)]
    pub(crate) struct MutPtr<T>(*mut T);

    impl<T> MutPtr<T> {
        /// # Safety
        /// No other access to the value may overlap the returned borrow.
        #[allow(clippy::mut_from_ref)]
        pub(crate) unsafe fn deref(&self) -> &mut T {
            // SAFETY: as for `ConstPtr::deref`; the caller rules out any overlapping access.
            unsafe { &mut *self.0 }
        }
    }

    /// This thread's index among the threads that have asked, in order of first asking: spreads
    /// threads over the per-thread slots of the shard cells.
    ///
    /// The index lives in a constant-initialised thread local with no destructor, so reading it
    /// is one load from the thread's TLS block (a lazily initialised one would also check and
    /// register its state on every read, on the path of every cache hit).
    #[inline]
    pub(crate) fn thread_index() -> usize {
        thread_local! {
            static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
        }
        let index = INDEX.get();
        if index != usize::MAX { index } else { first_thread_index(&INDEX) }
    }

    #[cold]
    fn first_thread_index(key: &'static std::thread::LocalKey<std::cell::Cell<usize>>) -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // Wraps only after `usize::MAX` threads; the index is used modulo the slot count.
        let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & (usize::MAX >> 1);
        key.set(index);
        index
    }
    /// Nodes per slab page.
    pub(crate) const PAGE: usize = 128;
    /// Rounds an insert waits for other threads' reservations before giving up.
    pub(crate) const STARVED_ROUNDS: u32 = 1000;
}

#[cfg(bounded_cache_loom)]
mod imp {
    pub(crate) use loom::hint::spin_loop;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};
    pub(crate) use loom::thread::yield_now;
    pub(crate) use loom::thread_local;

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
    pub(crate) type RwLockReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    pub(crate) type RwLockWriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    /// loom's mutex behind `parking_lot`'s infallible `lock`.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    /// loom's reader-writer lock behind `parking_lot`'s infallible methods.
    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap()
        }

        pub(crate) fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
            self.0.try_read().ok()
        }

        pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap()
        }

        pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
            self.0.try_write().ok()
        }
    }

    /// loom's condition variable behind an infallible `wait`.
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap()
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    // Small enough for loom to explore every interleaving, and small enough that the models
    // reach the overflow and starvation paths with two or three entries.
    pub(crate) const SPIN: usize = 1;
    pub(crate) const READ_BUFFER: usize = 1;
    pub(crate) const CLIMBER_BATCH: u32 = 1;
    pub(crate) const MAX_SLOTS: usize = 2;

    pub(crate) use loom::cell::{ConstPtr, MutPtr, UnsafeCell};

    /// As in the `std` build, from a per-execution counter so that every execution of a model
    /// hands out the same indices.
    pub(crate) fn thread_index() -> usize {
        loom::lazy_static! {
            static ref NEXT: AtomicUsize = AtomicUsize::new(0);
        }
        loom::thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
        }
        INDEX.with(|i| *i)
    }
    pub(crate) const PAGE: usize = 4;
    pub(crate) const STARVED_ROUNDS: u32 = 2;
}

pub(crate) use imp::*;
