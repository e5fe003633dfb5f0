//! The counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};

use crate::sampling;
use crate::thread::{REGISTRY, claimed_slot, with_slot};

/// This file, to recognise its frames in sampled stacks.
pub(crate) const SOURCE: &str = file!();

/// A global allocator that counts every allocation, then passes it to `A`.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: alloctrack::Tracking = alloctrack::Tracking::system();
/// ```
///
/// The allocation path writes only the calling thread's own counters (no lock, no locked
/// instruction, no shared cache line) and never allocates itself. Allocations are counted as
/// they are requested, so one that fails (and aborts the process) is counted too.
///
/// [`with_sampling`](Self::with_sampling) adds sampled allocation sites (see [`sampling`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tracking<A = System> {
    inner: A,
    sampling: bool,
}

impl Tracking<System> {
    /// Counting over the system allocator.
    pub const fn system() -> Self {
        Self::new(System)
    }
}

#[cfg(feature = "mimalloc")]
impl Tracking<mimalloc::MiMalloc> {
    /// Counting over mimalloc.
    pub const fn mimalloc() -> Self {
        Self::new(mimalloc::MiMalloc)
    }
}

impl<A> Tracking<A> {
    /// Counting over `inner`.
    pub const fn new(inner: A) -> Self {
        Self { inner, sampling: false }
    }

    /// Counting, and recording the stack of about one allocation per
    /// [`sampling::interval`] bytes (512 KiB unless changed) with live and total bytes per
    /// allocation site: see [`sampling`].
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: alloctrack::Tracking = alloctrack::Tracking::system().with_sampling();
    /// ```
    pub const fn with_sampling(mut self) -> Self {
        self.sampling = true;
        self
    }

    /// The allocator underneath.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

/// Records an allocation of `size` bytes for the calling thread; with `sampling`, also counts
/// it towards the thread's next sample and says whether this is the one.
#[inline(always)]
fn record_alloc(size: usize, sampling: bool) -> bool {
    let shared = |_: &_| {
        REGISTRY.record_shared(1, 0, 0, size as u64, 0);
        false
    };
    // One `with_slot` per configuration, each closure small enough to be inlined.
    if sampling {
        with_slot(|own| REGISTRY.record_alloc_limited(own, size as u64) && sampling::limit_reached(own, size), shared)
    } else {
        with_slot(
            |own| {
                REGISTRY.record_alloc(own, size as u64);
                false
            },
            shared,
        )
    }
}

impl<A: GlobalAlloc> Tracking<A> {
    /// `alloc` and `alloc_zeroed` beyond the fast path: a thread without a slot yet, a large
    /// block, a fold or a sample due.
    ///
    /// # Safety
    /// As `GlobalAlloc::alloc`.
    #[inline(never)]
    unsafe fn alloc_slow(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if record_alloc(layout.size(), self.sampling) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { sampling::alloc(&self.inner, layout, zeroed) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { if zeroed { self.inner.alloc_zeroed(layout) } else { self.inner.alloc(layout) } }
    }

    /// `dealloc` beyond the fast path: a thread without a slot, a large block, a fold due, or a
    /// block the sampler may own.
    ///
    /// # Safety
    /// As `GlobalAlloc::dealloc`.
    #[inline(never)]
    unsafe fn dealloc_slow(&self, ptr: *mut u8, layout: Layout) {
        let size = layout.size() as u64;
        // One `with_slot` per configuration, each closure small enough to be inlined.
        if self.sampling {
            let concerns = with_slot(
                |own| sampling::record_dealloc(own, ptr, layout),
                |_| {
                    REGISTRY.record_shared(0, 1, 0, 0, size);
                    sampling::concerns(ptr, layout)
                },
            );
            if concerns && sampling::release(ptr) {
                return;
            }
        } else {
            with_slot(|own| REGISTRY.record_dealloc(own, size), |_| REGISTRY.record_shared(0, 1, 0, 0, size));
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) }
    }
}

// SAFETY: every method passes its arguments unchanged to `A`, which upholds `GlobalAlloc`'s
// contract, and returns its result unchanged, except for the blocks the sampler serves: those
// come from its own mapping (page-aligned slots of a page, for layouts of at most a page) and
// return to it, recognised by address, never reaching `A` (`sampling::store`). The
// bookkeeping neither unwinds nor allocates through this allocator.
//
// Allocations and deallocations are recorded before calling `A`, so that the call to `A` is
// a tail call. The fast path (a thread with its slot, a small block, no fold or sample due)
// makes no other call: everything else goes to `alloc_slow` or `dealloc_slow`, also a tail
// call, so the inlined wrapper needs no stack frame and saves no register, a measurable share
// of the cost over a fast allocator such as mimalloc. An allocation that fails is counted as
// well; Rust's default handler aborts the process right after one.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Tracking<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(slot) = claimed_slot() {
            if slot.try_count_alloc(layout.size() as u64, self.sampling) {
                // SAFETY: forwarded with the caller's guarantees.
                return unsafe { self.inner.alloc(layout) };
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.alloc_slow(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if let Some(slot) = claimed_slot() {
            if slot.try_count_alloc(layout.size() as u64, self.sampling) {
                // SAFETY: forwarded with the caller's guarantees.
                return unsafe { self.inner.alloc_zeroed(layout) };
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.alloc_slow(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(slot) = claimed_slot() {
            if (!self.sampling || sampling::unconcerned(slot, ptr, layout))
                && slot.try_count_dealloc(layout.size() as u64)
            {
                // SAFETY: forwarded with the caller's guarantees.
                return unsafe { self.inner.dealloc(ptr, layout) };
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.dealloc_slow(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = if self.sampling {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { sampling::realloc_sampling(&self.inner, ptr, layout, new_size) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { self.inner.realloc(ptr, layout, new_size) }
        };
        // A failed reallocation leaves the old block in place: count only successes.
        if !new.is_null() {
            let (old, new_size) = (layout.size() as u64, new_size as u64);
            with_slot(
                |own| REGISTRY.record_realloc(own, old, new_size),
                |_| REGISTRY.record_shared(0, 0, 1, new_size, old),
            );
        }
        new
    }
}
