//! What one block of code allocates on the current thread, and test assertions built on it.

use std::fmt;
use std::marker::PhantomData;

use crate::registry::Counts;
use crate::snapshot::Bytes;
use crate::thread::{installed, own_counts};

/// Measures what the current thread allocates between [`Scope::start`] and
/// [`Scope::stats`]. Other threads' allocations are not counted, so scopes work in tests that
/// run in parallel threads.
///
/// ```no_run
/// # // no_run: doc tests do not install the tracking allocator.
/// let scope = alloctrack::Scope::start();
/// let v = vec![1u8; 100];
/// assert_eq!(scope.stats().allocations, 1);
/// # drop(v);
/// ```
#[derive(Debug)]
pub struct Scope {
    start: Counts,
    /// A scope reads the counters of the thread that started it.
    _thread_bound: PhantomData<*const ()>,
}

/// What a [`Scope`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ScopeStats {
    /// Allocations made.
    pub allocations: u64,
    /// Deallocations made (of memory allocated anywhere).
    pub deallocations: u64,
    /// Reallocations made.
    pub reallocations: u64,
    /// Bytes allocated, reallocations' new sizes included.
    pub bytes_allocated: u64,
    /// Bytes freed, reallocations' old sizes included.
    pub bytes_freed: u64,
}

impl ScopeStats {
    /// Net bytes: allocated minus freed (negative if the scope freed more than it allocated).
    pub fn net_bytes(&self) -> i64 {
        self.bytes_allocated as i64 - self.bytes_freed as i64
    }
}

impl fmt::Display for ScopeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} allocations ({}), {} reallocations, {} deallocations ({})",
            self.allocations,
            Bytes(self.bytes_allocated),
            self.reallocations,
            self.deallocations,
            Bytes(self.bytes_freed),
        )
    }
}

pub(crate) fn counts() -> Counts {
    assert!(
        installed(),
        "alloctrack: no allocation has gone through alloctrack::Tracking; install it with \
         #[global_allocator] static GLOBAL: alloctrack::Tracking = alloctrack::Tracking::system();"
    );
    own_counts().unwrap_or_else(|| {
        panic!(
            "alloctrack: this thread has no counter slot of its own (more than {} threads), so \
             its allocations cannot be told from other threads'",
            crate::MAX_THREADS
        )
    })
}

impl Scope {
    /// Starts measuring the current thread.
    ///
    /// # Panics
    /// If [`Tracking`](crate::Tracking) is not the global allocator (the scope would measure
    /// nothing), or if more than [`MAX_THREADS`](crate::MAX_THREADS) threads are alive.
    pub fn start() -> Self {
        Self { start: counts(), _thread_bound: PhantomData }
    }

    /// What the current thread allocated since [`start`](Self::start).
    pub fn stats(&self) -> ScopeStats {
        counts().since(self.start).into()
    }
}

impl From<Counts> for ScopeStats {
    fn from(d: Counts) -> Self {
        ScopeStats {
            allocations: d.allocations,
            deallocations: d.deallocations,
            reallocations: d.reallocations,
            bytes_allocated: d.bytes_allocated,
            bytes_freed: d.bytes_freed,
        }
    }
}

impl ScopeStats {
    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: ScopeStats) {
        self.allocations += other.allocations;
        self.deallocations += other.deallocations;
        self.reallocations += other.reallocations;
        self.bytes_allocated += other.bytes_allocated;
        self.bytes_freed += other.bytes_freed;
    }
}

/// Runs `f` and returns its result with what it allocated on the current thread.
///
/// # Panics
/// As [`Scope::start`].
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, ScopeStats) {
    let scope = Scope::start();
    let result = f();
    (result, scope.stats())
}

/// Runs `f` and panics if it allocated or reallocated on the current thread.
///
/// # Panics
/// If `f` allocated, with the counts in the message; and as [`Scope::start`].
#[track_caller]
pub fn assert_no_alloc<R>(f: impl FnOnce() -> R) -> R {
    assert_max_allocs(0, f)
}

/// Runs `f` and panics if it made more than `max` allocations and reallocations together on
/// the current thread.
///
/// # Panics
/// If `f` allocated too often, with the counts in the message; and as [`Scope::start`].
#[track_caller]
pub fn assert_max_allocs<R>(max: u64, f: impl FnOnce() -> R) -> R {
    let (result, stats) = measure(f);
    let made = stats.allocations + stats.reallocations;
    if made > max {
        panic!("expected at most {max} allocations, but the closure made {stats}");
    }
    result
}
