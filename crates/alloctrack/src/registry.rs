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
//! Readers sum all slots (wide and packed counters) with relaxed loads. Each counter is exact
//! once its thread is quiet; a sum taken while other threads allocate is a mix of slightly
//! different instants, and may miss a fold in progress.
//!
//! **Packing.** The hot path adds to one word per operation: a byte count in its high bits and
//! an operation count in its low bits, added with a single add. Bytes in the high bits make the
//! word ordered by bytes, so "time to fold" is one compare of the word against a limit: once the
//! byte part reaches 256 KiB the word is folded into the slot's wide counters (`fold`) and
//! starts again from zero. A sampling allocator lowers the limit of the allocation word to its
//! next sample point (`Slot::alloc_limit`), so the same compare also finds the allocation to
//! sample: sampling adds no instruction to the allocation path but one load from the line it
//! already holds.
//!
//! **Peak.** An exact global peak would need a shared counter written on every allocation.
//! Instead each fold adds the slot's net byte change since the last fold to the shared
//! `live_estimate` and updates `peak` from it. A thread's unfolded change is under 256 KiB of
//! allocations plus 256 KiB of frees, so the estimate is within that per thread of the true
//! live total, and every snapshot also folds the exact live total into `peak`.

use crate::sync::{AtomicBool, AtomicI64, AtomicU64, Ordering};

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
    /// The sum of two sets of counts.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn plus(mut self, other: Counts) -> Counts {
        self.add(other);
        self
    }

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

/// `Slot::sample_at` before the first draw.
pub(crate) const UNDRAWN: u64 = u64::MAX;
/// `Slot::region` before the sampler's region is mapped: a base at the top of the 64-bit
/// address space, where no allocation can be, so the range test needs no second condition
/// (the test subtracts in `u64`, so this holds on 32-bit targets too).
pub(crate) const NO_REGION: u64 = u64::MAX - (1 << 32);

/// Bits of a packed counter that count operations; the bits above hold bytes.
const OPS_BITS: u32 = 20;
const OPS_MASK: u64 = (1 << OPS_BITS) - 1;
/// Allocations of at least this size skip the packed counters.
pub(crate) const SMALL: u64 = 1 << 18;
/// A packed counter is folded into the wide ones once its bytes reach `SMALL` (256 KiB): often
/// enough that neither part can overflow (each operation adds at least one byte and less than
/// `SMALL`, so fewer than 2^18 operations and 2^19 bytes accumulate), rarely enough to cost
/// nothing measurable.
const FOLD_AT: u64 = pack(SMALL);

/// A byte count as the packed word orders it: `bytes` in the high bits, no operations.
pub(crate) const fn pack(bytes: u64) -> u64 {
    bytes << OPS_BITS
}

/// Adds one operation of `size` bytes to a packed counter only this thread writes if `size`
/// is below `SMALL` and the new word is below `limit`; true if it did.
#[inline(always)]
fn try_bump(packed: &AtomicU64, size: u64, limit: u64) -> bool {
    if size >= SMALL {
        return false;
    }
    let new = packed.load(Ordering::Relaxed) + pack(size) + 1;
    if new >= limit {
        return false;
    }
    packed.store(new, Ordering::Relaxed);
    true
}

/// Adds one operation of `size` bytes (less than `SMALL`) to a packed counter only this thread
/// writes, and returns the new word.
#[inline(always)]
fn bump_packed(packed: &AtomicU64, size: u64) -> u64 {
    let new = packed.load(Ordering::Relaxed) + pack(size) + 1;
    packed.store(new, Ordering::Relaxed);
    new
}

/// One thread's counters.
///
/// The hot path updates one packed word per allocation or deallocation, an operation count and
/// a byte count added with a single add; the wide counters and the live estimate are updated
/// when a packed word is folded (every 256 KiB).
///
/// `repr(C)` keeps the fields the allocation path touches (the packed words, and for a
/// sampling allocator `alloc_limit` and `region`) in the first 64 bytes, checked below.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Slot {
    /// Whether a thread owns the slot. Claimed with an acquire CAS, released with a release
    /// store, so each owner sees the counts its predecessor left.
    owned: AtomicBool,
    /// # Safety (of the relaxed load-then-store updates below)
    /// Every field but `owned` and `region` is written only by the owning thread (or, for the
    /// overflow slot, only with atomic RMWs), so a relaxed load and store cannot lose an update.
    alloc_packed: AtomicU64,
    free_packed: AtomicU64,
    /// The packed allocation word at or past which a sampling allocator leaves its fast path:
    /// `pack` of the nearer of the fold point and the next sample point. 0 until the first
    /// draw. Counting-only allocators compare against the fold point instead.
    pub(crate) alloc_limit: AtomicU64,
    /// Where the next sample falls, in bytes counted by `alloc_packed` since its last fold
    /// (`sampling::countdown`); `UNDRAWN` before the first draw. It stays with the slot when a
    /// thread exits: what is left of a draw is still a valid wait.
    pub(crate) sample_at: AtomicU64,
    /// A copy of the sampler's region base, read by every free of a sampling allocator so that
    /// it needs no other load (`sampling::store`). Written for every slot, once, by the thread
    /// that maps the region.
    pub(crate) region: AtomicU64,
    allocations: AtomicU64,
    deallocations: AtomicU64,
    reallocations: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_freed: AtomicU64,
    /// Net bytes (allocated minus freed, folded counters) last added to `live_estimate`.
    flushed_net: AtomicI64,
}

// The fast path's fields share the slot's first cache line.
#[cfg(not(alloctrack_loom))]
const _: () = assert!(std::mem::offset_of!(Slot, region) + 8 <= 64);

/// Adds `n` to a counter only this thread writes: a plain load and store, no locked RMW.
#[inline(always)]
fn bump_owned(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Splits a packed word into (operations, bytes).
fn unpack(packed: u64) -> (u64, u64) {
    (packed & OPS_MASK, packed >> OPS_BITS)
}

macro_rules! slot_new {
    () => {
        Self {
            owned: AtomicBool::new(false),
            alloc_packed: AtomicU64::new(0),
            free_packed: AtomicU64::new(0),
            alloc_limit: AtomicU64::new(0),
            sample_at: AtomicU64::new(UNDRAWN),
            region: AtomicU64::new(NO_REGION),
            allocations: AtomicU64::new(0),
            deallocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            bytes_freed: AtomicU64::new(0),
            flushed_net: AtomicI64::new(0),
        }
    };
}

impl Slot {
    #[cfg(not(alloctrack_loom))]
    pub(crate) const fn new() -> Self {
        slot_new!()
    }

    #[cfg(alloctrack_loom)]
    pub(crate) fn new() -> Self {
        slot_new!()
    }

    /// Counts an allocation of `size` bytes on this slot, the calling thread's own, if the
    /// packed word alone can take it: `size` is below `SMALL` and the word stays below its
    /// limit (`alloc_limit` for a sampling allocator, the fold point otherwise). False leaves
    /// the slot untouched, for the full path (`Registry::record_alloc` and its kin) to redo.
    #[inline(always)]
    pub(crate) fn try_count_alloc(&self, size: u64, sampling: bool) -> bool {
        let limit = if sampling { self.alloc_limit.load(Ordering::Relaxed) } else { FOLD_AT };
        try_bump(&self.alloc_packed, size, limit)
    }

    /// As `try_count_alloc`, for a deallocation.
    #[inline(always)]
    pub(crate) fn try_count_dealloc(&self, size: u64) -> bool {
        try_bump(&self.free_packed, size, FOLD_AT)
    }

    /// The bytes counted by the allocation word since its last fold.
    pub(crate) fn unfolded_bytes(&self) -> u64 {
        unpack(self.alloc_packed.load(Ordering::Relaxed)).1
    }

    /// Whether the allocation word is due a fold.
    pub(crate) fn fold_due(&self) -> bool {
        self.alloc_packed.load(Ordering::Relaxed) >= FOLD_AT
    }

    /// Sets `alloc_limit` from `sample_at`: the nearer of the fold point and the sample point,
    /// or 0 (every allocation takes the slow path) before the first draw.
    pub(crate) fn update_limit(&self) {
        let at = self.sample_at.load(Ordering::Relaxed);
        let limit = if at == UNDRAWN { 0 } else { pack(at.min(SMALL)) };
        self.alloc_limit.store(limit, Ordering::Relaxed);
    }

    /// Reads the counters, folded and packed together.
    pub(crate) fn counts(&self) -> Counts {
        let (allocs, alloc_bytes) = unpack(self.alloc_packed.load(Ordering::Relaxed));
        let (frees, free_bytes) = unpack(self.free_packed.load(Ordering::Relaxed));
        Counts {
            allocations: self.allocations.load(Ordering::Relaxed).wrapping_add(allocs),
            deallocations: self.deallocations.load(Ordering::Relaxed).wrapping_add(frees),
            reallocations: self.reallocations.load(Ordering::Relaxed),
            bytes_allocated: self.bytes_allocated.load(Ordering::Relaxed).wrapping_add(alloc_bytes),
            bytes_freed: self.bytes_freed.load(Ordering::Relaxed).wrapping_add(free_bytes),
        }
    }
}

/// The slots, the shared overflow slot and the live-bytes estimate.
#[derive(Debug)]
pub(crate) struct Registry<const N: usize> {
    slots: [Slot; N],
    overflow: Slot,
    /// The sum of all folded net changes: live bytes within 256 KiB per thread.
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

    /// Tells every slot where the sampler's region is (`Slot::region`).
    pub(crate) fn set_region(&self, base: u64) {
        for slot in self.slots.iter().chain(std::iter::once(&self.overflow)) {
            slot.region.store(base, Ordering::Relaxed);
        }
    }

    /// Gives a claimed slot back, folding its packed counters first.
    pub(crate) fn release(&self, slot: &Slot) {
        if self.is_overflow(slot) {
            return;
        }
        self.fold(slot);
        slot.owned.store(false, Ordering::Release);
    }

    /// Records an allocation of `size` bytes in the calling thread's own `slot`.
    #[inline(always)]
    pub(crate) fn record_alloc(&self, slot: &Slot, size: u64) {
        Self::record_packed(self, slot, &slot.alloc_packed, size);
    }

    /// Records an allocation of `size` bytes in the calling thread's own `slot` for a sampling
    /// allocator, unless it is large or reaches `Slot::alloc_limit`: true then, and the caller
    /// finishes the work out of line (`sampling::countdown::limit_reached`), recording a
    /// large allocation itself.
    #[inline(always)]
    pub(crate) fn record_alloc_limited(&self, slot: &Slot, size: u64) -> bool {
        size >= SMALL || bump_packed(&slot.alloc_packed, size) >= slot.alloc_limit.load(Ordering::Relaxed)
    }

    /// Records a deallocation of `size` bytes in the calling thread's own `slot`.
    #[inline(always)]
    pub(crate) fn record_dealloc(&self, slot: &Slot, size: u64) {
        Self::record_packed(self, slot, &slot.free_packed, size);
    }

    /// Records a deallocation of `size` bytes, less than `SMALL`, in the calling thread's own
    /// `slot`.
    #[inline(always)]
    pub(crate) fn record_small_dealloc(&self, slot: &Slot, size: u64) {
        debug_assert!(size < SMALL);
        if bump_packed(&slot.free_packed, size) >= FOLD_AT {
            self.fold(slot);
        }
    }

    #[inline(always)]
    fn record_packed(&self, slot: &Slot, packed: &AtomicU64, size: u64) {
        if size >= SMALL {
            return self.record_large(slot, packed, size);
        }
        if bump_packed(packed, size) >= FOLD_AT {
            self.fold(slot);
        }
    }

    /// Records an allocation of `SMALL` bytes or more, which skips the packed word (and folds
    /// it).
    #[cold]
    #[inline(never)]
    pub(crate) fn record_large_alloc(&self, slot: &Slot, size: u64) {
        self.record_large(slot, &slot.alloc_packed, size);
    }

    #[cold]
    #[inline(never)]
    fn record_large(&self, slot: &Slot, packed: &AtomicU64, size: u64) {
        if std::ptr::eq(packed, &slot.alloc_packed) {
            bump_owned(&slot.allocations, 1);
            bump_owned(&slot.bytes_allocated, size);
        } else {
            bump_owned(&slot.deallocations, 1);
            bump_owned(&slot.bytes_freed, size);
        }
        self.fold(slot);
    }

    /// Records a reallocation from `old` to `new` bytes in the calling thread's own `slot`.
    #[inline(always)]
    pub(crate) fn record_realloc(&self, slot: &Slot, old: u64, new: u64) {
        bump_owned(&slot.reallocations, 1);
        bump_owned(&slot.bytes_allocated, new);
        bump_owned(&slot.bytes_freed, old);
        if old.abs_diff(new) >= SMALL {
            self.fold(slot);
        }
    }

    /// Moves a slot's packed counts into its wide counters and adds its net change since the
    /// last fold to the live estimate.
    #[cold]
    #[inline(never)]
    pub(crate) fn fold(&self, slot: &Slot) {
        let (allocs, alloc_bytes) = unpack(slot.alloc_packed.load(Ordering::Relaxed));
        let (frees, free_bytes) = unpack(slot.free_packed.load(Ordering::Relaxed));
        bump_owned(&slot.allocations, allocs);
        bump_owned(&slot.bytes_allocated, alloc_bytes);
        slot.alloc_packed.store(0, Ordering::Relaxed);
        bump_owned(&slot.deallocations, frees);
        bump_owned(&slot.bytes_freed, free_bytes);
        slot.free_packed.store(0, Ordering::Relaxed);
        // The next sample point counts from the word's new zero.
        let at = slot.sample_at.load(Ordering::Relaxed);
        if at != UNDRAWN {
            slot.sample_at.store(at.saturating_sub(alloc_bytes), Ordering::Relaxed);
        }
        slot.update_limit();
        let net = slot
            .bytes_allocated
            .load(Ordering::Relaxed)
            .wrapping_sub(slot.bytes_freed.load(Ordering::Relaxed)) as i64;
        let delta = net.wrapping_sub(slot.flushed_net.load(Ordering::Relaxed));
        slot.flushed_net.store(net, Ordering::Relaxed);
        self.flush(delta);
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

#[cfg(all(test, not(alloctrack_loom)))]
mod tests {
    use super::*;

    #[test]
    fn packed_counts_fold_exactly_across_boundaries() {
        let registry = Registry::<2>::new();
        let slot = registry.claim();
        let mut expected = Counts::default();
        // Sizes that cross many 256 KiB boundaries (dozens even in Miri's shorter run), plus
        // large blocks that skip the packing.
        for i in 0..if cfg!(miri) { 5_000u64 } else { 100_000 } {
            let size = 1 + (i * 7919) % 4096;
            registry.record_alloc(slot, size);
            expected.allocations += 1;
            expected.bytes_allocated += size;
            if i % 3 == 0 {
                registry.record_dealloc(slot, size);
                expected.deallocations += 1;
                expected.bytes_freed += size;
            }
            assert_eq!(slot.counts(), expected, "after operation {i}");
        }
        registry.record_alloc(slot, 10 << 20);
        registry.record_realloc(slot, 100, 300);
        expected.allocations += 1;
        expected.reallocations += 1;
        expected.bytes_allocated += (10 << 20) + 300;
        expected.bytes_freed += 100;
        assert_eq!(slot.counts(), expected);
        registry.release(slot);
        assert_eq!(registry.totals(), expected, "counts survive the release");
        // After the release's fold, the estimate is exact and the peak saw the 10 MiB block.
        let live = expected.bytes_allocated - expected.bytes_freed;
        assert_eq!(registry.live_estimate.load(Ordering::Relaxed), live as i64);
        assert!(registry.observe_peak(0) >= live);
    }
}
