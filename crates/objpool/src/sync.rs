//! The synchronisation primitives the pool is built on.
//!
//! Every other module imports atomics, locks, cells and thread parking from here, so that the
//! `objpool_loom` cfg can swap them all for [loom]'s model-checked versions at once.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(objpool_loom))]
mod imp {
    use std::time::Instant;

    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use std::thread::Thread;

    /// A mutex whose `lock` cannot fail (no poisoning).
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

    /// `std::cell::UnsafeCell` behind loom's closure-based API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    pub(crate) fn current_thread() -> Thread {
        std::thread::current()
    }

    /// Parks the current thread until unparked, or until `deadline` if there is one.
    pub(crate) fn park(deadline: Option<Instant>) {
        match deadline {
            None => std::thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if deadline > now {
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }

    /// Flips the `flip` bits of `atomic`, then orders that write before every later load of
    /// this thread against the `SeqCst` fence of another thread (the returner's half of the
    /// Dekker pattern in `shared.rs`). A `SeqCst` RMW does both in one locked instruction on
    /// x86-64, where a write followed by `fence(SeqCst)` costs an extra `mfence`.
    #[inline(always)]
    pub(crate) fn release_seq_cst(atomic: &AtomicU64, flip: u64) {
        atomic.fetch_xor(flip, Ordering::SeqCst);
    }

    std::thread_local! {
        static SCAN_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Where this thread last found an object: its next scan starts there, so threads that
    /// keep taking and returning objects settle on distinct slots and share no cache line.
    #[inline(always)]
    pub(crate) fn scan_hint() -> usize {
        SCAN_HINT.with(|hint| hint.get())
    }

    #[inline(always)]
    pub(crate) fn set_scan_hint(index: usize) {
        SCAN_HINT.with(|hint| hint.set(index));
    }
}

#[cfg(objpool_loom)]
mod imp {
    use std::time::Instant;

    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use loom::thread::Thread;

    /// loom's mutex with the poison-free `lock` of parking_lot.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    pub(crate) fn current_thread() -> Thread {
        loom::thread::current()
    }

    /// Models have no clock: a deadline is never reached, so the thread parks until unparked.
    pub(crate) fn park(_deadline: Option<Instant>) {
        loom::thread::park();
    }

    /// loom treats `SeqCst` accesses as `AcqRel` but models `SeqCst` fences exactly, so the
    /// model uses the fence form, which the C++20 memory model makes equivalent to the
    /// `SeqCst` RMW of the real build.
    pub(crate) fn release_seq_cst(atomic: &AtomicU64, flip: u64) {
        atomic.fetch_xor(flip, Ordering::Release);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn scan_hint() -> usize {
        0
    }

    pub(crate) fn set_scan_hint(_index: usize) {}
}

pub(crate) use imp::*;
