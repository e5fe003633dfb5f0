//! Per-thread counter slots, summed on read.
//!
//! # Implementation details
//!
//! The registry is a fixed array of slots, each on its own cache line. A thread claims a free
//! slot (a CAS on `owned`) the first time it allocates and releases it when it exits; while it
//! owns the slot it is the slot's only writer, so it updates the counters with a relaxed load
//! and store, which compile to plain moves: the allocation path takes no lock, executes no
//! locked instruction and writes no cache line that another thread writes.
//!
//! Counters are cumulative and never reset. A released slot keeps its counts and the next
//! thread to claim it adds to them, so the counts of a thread that exits stay in the totals
//! with no merge step. The release store and the claiming CAS (release/acquire) hand the slot
//! over: the next owner starts from the last owner's final values.
//!
//! Threads that find no free slot, and threads allocating during their own tear-down (after
//! their slot is released), share the `overflow` slot and update it with atomic RMWs: correct,
//! but contended.
//!
//! Readers sum all slots with relaxed loads. Each counter is exact; a sum taken while other
//! threads allocate is a mix of slightly different instants.
//!
//! **Peak.** An exact global peak would need a shared counter written on every allocation.
//! Instead each slot accumulates its owner's net byte change in `pending`, and flushes it into
//! the shared `live_estimate` (updating `peak`) whenever it passes ±`FLUSH_BYTES`. The estimate
//! is within `FLUSH_BYTES` per thread of the true live total, and every snapshot also folds the
//! exact live total into `peak`.

use crate::sync::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// How far a thread's net allocation may drift before it updates the shared live estimate.
pub(crate) const FLUSH_BYTES: i64 = 256 * 1024;

/// The counters of one slot, or a sum of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) allocations: u64,
    pub(crate) deallocations: u64,
    pub(crate) reallocations: u64,
    pub(crate) bytes_allocated: u64,
    pub(crate) bytes_freed: u64,
}

impl Counts {
    pub(crate) fn since(self, earlier: Counts) -> Counts {
        Counts {
            allocations: self.allocations.wrapping_sub(earlier.allocations),
            deallocations: self.deallocations.wrapping_sub(earlier.deallocations),
            reallocations: self.reallocations.wrapping_sub(earlier.reallocations),
            bytes_allocated: self.bytes_allocated.wrapping_sub(earlier.bytes_allocated),
            bytes_freed: self.bytes_freed.wrapping_sub(earlier.bytes_freed),
        }
    }

    fn add(&mut self, other: Counts) {
        self.allocations = self.allocations.wrapping_add(other.allocations);
        self.deallocations = self.deallocations.wrapping_add(other.deallocations);
        self.reallocations = self.reallocations.wrapping_add(other.reallocations);
        self.bytes_allocated = self.bytes_allocated.wrapping_add(other.bytes_allocated);
        self.bytes_freed = self.bytes_freed.wrapping_add(other.bytes_freed);
    }
}

/// One thread's counters.
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct Slot {
    /// Whether a thread owns the slot. Claimed with an acquire CAS, released with a release
    /// store, so each owner sees the counts its predecessor left.
    owned: AtomicBool,
    /// # Safety (of the relaxed read-modify-write sequences below)
    /// Written only by the owning thread, or by atomic RMWs for the overflow slot.
    allocations: AtomicU64,
    deallocations: AtomicU64,
    reallocations: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_freed: AtomicU64,
    /// Net bytes allocated by the owner since its last flush into `live_estimate`.
    pending: AtomicI64,
}

/// Adds `n` to a counter only this thread writes: a plain load and store, no locked RMW.
#[inline(always)]
fn bump_owned(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Slot {
    #[cfg(not(alloctrack_loom))]
    pub(crate) const fn new() -> Self {
        Self {
            owned: AtomicBool::new(false),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            bytes_freed: AtomicU64::new(0),
            pending: AtomicI64::new(0),
        }
    }

    #[cfg(alloctrack_loom)]
    pub(crate) fn new() -> Self {
        Self {
            owned: AtomicBool::new(false),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            bytes_freed: AtomicU64::new(0),
            pending: AtomicI64::new(0),
        }
    }

    /// Reads the counters.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            allocations: self.allocations.load(Ordering::Relaxed),
            deallocations: self.deallocations.load(Ordering::Relaxed),
            reallocations: self.reallocations.load(Ordering::Relaxed),
            bytes_allocated: self.bytes_allocated.load(Ordering::Relaxed),
            bytes_freed: self.bytes_freed.load(Ordering::Relaxed),
        }
    }
}

/// The slots, the shared overflow slot and the live-bytes estimate.
#[derive(Debug)]
pub(crate) struct Registry<const N: usize> {
    slots: [Slot; N],
    overflow: Slot,
    /// The sum of all flushed `pending` values: live bytes within `FLUSH_BYTES` per thread.
    live_estimate: AtomicI64,
    /// The highest live total seen (by a flush or a snapshot).
    peak: AtomicU64,
}

impl<const N: usize> Registry<N> {
    #[cfg(not(alloctrack_loom))]
    pub(crate) const fn new() -> Self {
        Self {
            slots: [const { Slot::new() }; N],
            overflow: Slot::new(),
            live_estimate: AtomicI64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    #[cfg(alloctrack_loom)]
    pub(crate) fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot::new()),
            overflow: Slot::new(),
            live_estimate: AtomicI64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// Claims a free slot for the calling thread, or returns the overflow slot.
    pub(crate) fn claim(&self) -> &Slot {
        self.slots
            .iter()
            .find(|slot| {
                !slot.owned.load(Ordering::Relaxed)
                    && slot.owned.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
            })
            .unwrap_or(&self.overflow)
    }

    /// The slot shared by threads that own none.
    pub(crate) fn overflow(&self) -> &Slot {
        &self.overflow
    }

    pub(crate) fn is_overflow(&self, slot: &Slot) -> bool {
        std::ptr::eq(slot, &self.overflow)
    }

    /// Gives a claimed slot back, flushing its pending bytes first.
    pub(crate) fn release(&self, slot: &Slot) {
        if self.is_overflow(slot) {
            return;
        }
        let pending = slot.pending.load(Ordering::Relaxed);
        if pending != 0 {
            slot.pending.store(0, Ordering::Relaxed);
            self.flush(pending);
        }
        slot.owned.store(false, Ordering::Release);
    }

    /// Records an allocation of `size` bytes in the calling thread's own `slot`.
    #[inline(always)]
    pub(crate) fn record_alloc(&self, slot: &Slot, size: u64) {
        bump_owned(&slot.allocations, 1);
        bump_owned(&slot.bytes_allocated, size);
        self.add_pending(slot, size as i64);
    }

    /// Records a deallocation of `size` bytes in the calling thread's own `slot`.
    #[inline(always)]
    pub(crate) fn record_dealloc(&self, slot: &Slot, size: u64) {
        bump_owned(&slot.deallocations, 1);
        bump_owned(&slot.bytes_freed, size);
        self.add_pending(slot, -(size as i64));
    }

    /// Records a reallocation from `old` to `new` bytes in the calling thread's own `slot`.
    #[inline(always)]
    pub(crate) fn record_realloc(&self, slot: &Slot, old: u64, new: u64) {
        bump_owned(&slot.reallocations, 1);
        bump_owned(&slot.bytes_allocated, new);
        bump_owned(&slot.bytes_freed, old);
        self.add_pending(slot, new as i64 - old as i64);
    }

    #[inline(always)]
    fn add_pending(&self, slot: &Slot, delta: i64) {
        let pending = slot.pending.load(Ordering::Relaxed) + delta;
        if (-FLUSH_BYTES..=FLUSH_BYTES).contains(&pending) {
            slot.pending.store(pending, Ordering::Relaxed);
        } else {
            slot.pending.store(0, Ordering::Relaxed);
            self.flush(pending);
        }
    }

    /// Records in the shared overflow slot, with atomic adds.
    #[cold]
    pub(crate) fn record_shared(
        &self,
        allocs: u64,
        deallocs: u64,
        reallocs: u64,
        allocated: u64,
        freed: u64,
    ) {
        let slot = &self.overflow;
        slot.allocations.fetch_add(allocs, Ordering::Relaxed);
        slot.deallocations.fetch_add(deallocs, Ordering::Relaxed);
        slot.reallocations.fetch_add(reallocs, Ordering::Relaxed);
        slot.bytes_allocated.fetch_add(allocated, Ordering::Relaxed);
        slot.bytes_freed.fetch_add(freed, Ordering::Relaxed);
        self.flush(allocated as i64 - freed as i64);
    }

    #[cold]
    #[inline(never)]
    fn flush(&self, delta: i64) {
        let live = self.live_estimate.fetch_add(delta, Ordering::Relaxed) + delta;
        if live > 0 {
            self.peak.fetch_max(live as u64, Ordering::Relaxed);
        }
    }

    /// The counters summed over every slot.
    pub(crate) fn totals(&self) -> Counts {
        let mut sum = self.overflow.counts();
        for slot in &self.slots {
            sum.add(slot.counts());
        }
        sum
    }

    /// Folds an exact live total into the peak and returns the peak.
    pub(crate) fn observe_peak(&self, live: u64) -> u64 {
        self.peak.fetch_max(live, Ordering::Relaxed).max(live)
    }
}

#[cfg(all(test, alloctrack_loom))]
mod loom_models {
    //! The slot hand-off between threads: `scripts/loom.sh`.

    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two threads with one slot between them: one gets it, the other overflows or gets it
    /// after the first released it; either way nothing counted is lost.
    #[test]
    fn counts_survive_slot_hand_off() {
        loom::model(|| {
            let registry = Arc::new(Registry::<1>::new());
            let threads: Vec<_> = (0..2)
                .map(|i| {
                    let registry = registry.clone();
                    thread::spawn(move || {
                        let slot = registry.claim();
                        registry.record_alloc(slot, 10 + i);
                        registry.record_dealloc(slot, 1);
                        registry.release(slot);
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            let totals = registry.totals();
            assert_eq!(totals.allocations, 2);
            assert_eq!(totals.deallocations, 2);
            assert_eq!(totals.bytes_allocated, 21);
            assert_eq!(totals.bytes_freed, 2);
        });
    }

    /// A reader summing while a thread counts and exits never sees a count go backwards.
    #[test]
    fn concurrent_reads_are_monotonic() {
        loom::model(|| {
            let registry = Arc::new(Registry::<1>::new());
            let writer = {
                let registry = registry.clone();
                thread::spawn(move || {
                    let slot = registry.claim();
                    registry.record_alloc(slot, 8);
                    registry.release(slot);
                    let slot = registry.claim();
                    registry.record_alloc(slot, 8);
                    registry.release(slot);
                })
            };
            let first = registry.totals().allocations;
            let second = registry.totals().allocations;
            assert!(first <= second && second <= 2);
            writer.join().unwrap();
            assert_eq!(registry.totals().allocations, 2);
        });
    }
}
