//! The synchronisation primitives the loader coalescing is built on.
//!
//! [`crate::load`] imports its lock, condition variable and `Arc` from here, so that the
//! `bounded_cache_loom` cfg swaps them for [loom]'s model-checked versions. The shards themselves
//! are plain `parking_lot` mutexes held for short, non-blocking sections and need no model.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(bounded_cache_loom))]
mod imp {
    pub(crate) use std::thread::{ThreadId, current as current_thread};

    /// A mutex whose `lock` cannot fail (no poisoning).
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

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
}

#[cfg(bounded_cache_loom)]
mod imp {
    pub(crate) use loom::thread::{ThreadId, current as current_thread};
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    /// loom's mutex behind `parking_lot`'s infallible `lock`.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
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
}

pub(crate) use imp::*;
