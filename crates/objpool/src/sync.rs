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
    pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

    /// Flips the `flip` bits of `atomic`, which only this thread writes now (the owner of a
    /// `BUSY` slot), with a release store, then runs the light barrier: the returner's half of
    /// the Dekker pattern in `shared.rs`, ordering the store before this thread's later loads
    /// against another thread's [`heavy_barrier`]. No locked instruction.
    #[inline(always)]
    pub(crate) fn release_light(atomic: &AtomicU64, flip: u64) {
        let current = atomic.load(Ordering::Relaxed);
        atomic.store(current ^ flip, Ordering::Release);
        light_barrier();
    }

    pub(crate) use super::barrier::{heavy_barrier, init_barriers, light_barrier};

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

    /// The models check the Dekker pattern with `SeqCst` fences on both sides (loom models
    /// fences exactly); the real build's light barrier is only a compiler fence, made sound by
    /// `membarrier(2)` in the heavy one, which loom cannot model.
    pub(crate) fn release_light(atomic: &AtomicU64, flip: u64) {
        atomic.fetch_xor(flip, Ordering::Release);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn heavy_barrier() {
        fence(Ordering::SeqCst);
    }

    pub(crate) fn init_barriers() {}

    pub(crate) fn scan_hint() -> usize {
        0
    }

    pub(crate) fn set_scan_hint(_index: usize) {}
}

pub(crate) use imp::*;

/// The asymmetric barrier pair of the Dekker pattern in `shared.rs`: a light one for the hot
/// side (returns) and a heavy one for the rare side (the first waiter, a close, a shrink).
///
/// With `membarrier(2)`'s private expedited command (Linux 4.14 and later), the heavy barrier
/// makes every running thread of the process execute a full memory barrier before it returns,
/// so the light one need only keep the compiler from reordering. Elsewhere both are `SeqCst`
/// fences, as they are when the environment sets `OBJPOOL_MEMBARRIER=0`. The choice is made once
/// per process, by the first pool built ([`init_barriers`]), before any pool exists to use the
/// barriers: every thread that uses a pool reads the mode after that (the pool reaches it
/// through a synchronising hand-off), and the mode never changes again, so the two sides never
/// disagree.
#[cfg(not(objpool_loom))]
mod barrier {
    use std::sync::atomic::{AtomicU8, Ordering, compiler_fence, fence};

    const UNSET: u8 = 0;
    const MEMBARRIER: u8 = 1;
    const FENCES: u8 = 2;

    static MODE: AtomicU8 = AtomicU8::new(UNSET);

    /// Chooses the barriers, once per process. `OBJPOOL_MEMBARRIER=0` in the environment keeps
    /// `SeqCst` fences on both sides: for processes whose other threads must not be interrupted
    /// (`membarrier` interrupts every CPU running one of them), and to compare the two.
    pub(crate) fn init_barriers() {
        if MODE.load(Ordering::Relaxed) == UNSET {
            let allowed = std::env::var_os("OBJPOOL_MEMBARRIER").is_none_or(|v| v != "0");
            let mode = if allowed && membarrier::register() { MEMBARRIER } else { FENCES };
            // Racing first builds: the first choice stands (registering twice is harmless).
            let _ = MODE.compare_exchange(UNSET, mode, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The hot side: a compiler fence under `membarrier`, else a `SeqCst` fence (also before
    /// the mode is chosen, which is always sound).
    #[inline(always)]
    pub(crate) fn light_barrier() {
        if MODE.load(Ordering::Relaxed) == MEMBARRIER {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The rare side.
    #[cold]
    pub(crate) fn heavy_barrier() {
        if MODE.load(Ordering::Relaxed) == MEMBARRIER {
            membarrier::private_expedited();
        } else {
            fence(Ordering::SeqCst);
        }
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    mod membarrier {
        const QUERY: libc::c_int = 0;
        const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

        fn call(cmd: libc::c_int) -> libc::c_long {
            // SAFETY: membarrier(2) takes a command and flags, reads and writes no memory of
            // ours, and reports failure (unknown command, not registered) in its result.
            unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint, 0 as libc::c_int) }
        }

        /// Registers the process for the private expedited command; false if the kernel lacks it.
        pub(super) fn register() -> bool {
            let supported = call(QUERY);
            supported >= 0
                && supported & libc::c_long::from(PRIVATE_EXPEDITED) != 0
                && call(REGISTER_PRIVATE_EXPEDITED) == 0
        }

        pub(super) fn private_expedited() {
            // Registered (the mode says so), the command cannot fail; if it ever did, light
            // barriers would be unsound, so fail loudly.
            let result = call(PRIVATE_EXPEDITED);
            assert_eq!(result, 0, "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed");
        }
    }

    #[cfg(not(all(target_os = "linux", not(miri))))]
    mod membarrier {
        pub(super) fn register() -> bool {
            false
        }

        pub(super) fn private_expedited() {
            unreachable!("membarrier is never chosen here")
        }
    }
}
