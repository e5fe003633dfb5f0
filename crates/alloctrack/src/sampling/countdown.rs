//! Each thread's distance to its next sample.
//!
//! # Implementation notes
//!
//! Sampling "one allocation per N bytes, at a random geometric interval" is done the way
//! tcmalloc and jemalloc do it: each thread counts down the bytes it allocates from a draw of an
//! exponential distribution with mean N, and samples the allocation that takes the count below
//! zero. An allocation of `s` bytes is then sampled with probability `1 - exp(-s/N)` whatever
//! the sizes around it, so the estimate `s / (1 - exp(-s/N))` per sampled block is unbiased
//! for every site, small objects and large alike (pprof's "unsampling" of heap profiles uses
//! the same formula).
//!
//! The countdown costs the fast path nothing of its own. The next sample point is kept as a
//! position in the bytes counted by the thread's packed allocation word (`Slot::sample_at`),
//! and the word's limit (`Slot::alloc_limit`), which the counting already compares against to
//! know when to fold, is lowered to that point: the allocation that reaches it leaves the
//! fast path as a fold would, and `limit_reached` decides, draws the next point and resets
//! the limit. Bytes the word does not count (large blocks, reallocations) are counted out of
//! line by `consume`, and each fold moves the point back by the bytes it folded. The random
//! state and the re-entrancy flag, used only on the
//! slow path, are const-initialised thread-locals without destructors, valid at every point of
//! a thread's life. Threads without a slot of their own (beyond `MAX_THREADS`, or in their
//! tear-down) are not sampled.
//!
//! Capturing a stack may run code that allocates (in principle: the unwinder used does not);
//! the thread is marked busy meanwhile, and a busy thread never samples, so the sampler never
//! re-enters itself.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::store::{MAX_DEPTH, Weight};
use crate::registry::{SMALL, Slot, UNDRAWN};
use crate::thread::REGISTRY;

/// This file, to recognise its frames in sampled stacks.
pub(crate) const SOURCE: &str = file!();

/// The sampling interval unless changed: one sample per 512 KiB allocated, on average
/// (jemalloc's default `lg_prof_sample` of 19).
pub const DEFAULT_INTERVAL: u64 = 512 * 1024;

/// The mean interval in bytes; 0 while sampling is paused.
static INTERVAL: AtomicU64 = AtomicU64::new(DEFAULT_INTERVAL);

/// How far a thread counts down while sampling is paused before it looks again.
const PAUSED_RECHECK: u64 = 1 << 20;

std::thread_local! {
    static RANDOM: Cell<u64> = const { Cell::new(0) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn set_interval(bytes: u64) {
    INTERVAL.store(bytes.min(u64::MAX / 8), Ordering::Relaxed);
}

pub(crate) fn interval() -> u64 {
    INTERVAL.load(Ordering::Relaxed)
}

/// The slow path of an allocation of `size` bytes on `slot`, the calling thread's own, that is
/// large or reached `Slot::alloc_limit` (`Registry::record_alloc_limited`): records a large
/// allocation, folds the counters if due, and says whether this allocation is to be sampled.
#[cold]
#[inline(never)]
pub(crate) fn limit_reached(slot: &Slot, size: usize) -> bool {
    let size = size as u64;
    if size >= SMALL {
        REGISTRY.record_large_alloc(slot, size);
        return consume(slot, size);
    }
    let sampled = decide(slot, slot.unfolded_bytes(), size);
    if slot.fold_due() {
        REGISTRY.fold(slot);
    } else {
        slot.update_limit();
    }
    sampled
}

/// Counts `size` bytes that the allocation word does not count (a large allocation, a
/// reallocation) against the next sample of `slot`, the calling thread's own; true if this
/// allocation is to be sampled.
pub(crate) fn consume(slot: &Slot, size: u64) -> bool {
    let at = slot.sample_at.load(Ordering::Relaxed);
    if at != UNDRAWN && slot.unfolded_bytes() + size < at {
        // Short of the point: the common case, without the thread-local lookups of `decide`.
        slot.sample_at.store(at - size, Ordering::Relaxed);
        slot.update_limit();
        return false;
    }
    let sampled = decide(slot, slot.unfolded_bytes() + size, size);
    // Back to the word's coordinates, where these bytes do not appear.
    let at = slot.sample_at.load(Ordering::Relaxed);
    if at != UNDRAWN {
        slot.sample_at.store(at.saturating_sub(size), Ordering::Relaxed);
    }
    slot.update_limit();
    sampled
}

/// Whether an allocation of `size` bytes ending at `end` (in bytes of the allocation word
/// since its last fold) reaches the next sample point; if it does, draws the next one.
fn decide(slot: &Slot, end: u64, size: u64) -> bool {
    if BUSY.try_with(Cell::get).unwrap_or(true) {
        return false;
    }
    let interval = INTERVAL.load(Ordering::Relaxed);
    if interval == 0 {
        slot.sample_at.store(end + PAUSED_RECHECK, Ordering::Relaxed);
        return false;
    }
    // Only the owning thread writes `sample_at`: a relaxed load and store lose nothing.
    let mut at = slot.sample_at.load(Ordering::Relaxed);
    if at == UNDRAWN {
        // A slot's first allocation: start from a draw rather than sampling it.
        at = end - size + next_countdown(interval);
    }
    let sampled = end >= at;
    if sampled {
        at = end + next_countdown(interval);
    }
    slot.sample_at.store(at, Ordering::Relaxed);
    sampled
}

/// A draw from the exponential distribution with mean `interval`.
fn next_countdown(interval: u64) -> u64 {
    // -ln(u) * interval for u uniform in (0, 1]; capped so that a sample point cannot overflow.
    let u = 1.0 - uniform();
    ((-u.ln()) * interval as f64).min((u64::MAX / 4) as f64) as u64
}

/// A uniform draw in [0, 1) from the thread's xorshift state, seeded from its address and a
/// process-wide counter on first use.
fn uniform() -> f64 {
    static SEED: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);
    let mut x = RANDOM.get();
    if x == 0 {
        let addr = RANDOM.with(|cell| cell as *const Cell<u64> as u64);
        x = (SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ addr.rotate_left(32)) | 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    RANDOM.set(x);
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a sampled block of `size` bytes stands for at the current interval.
pub(crate) fn weight(size: usize) -> Weight {
    let interval = interval().max(1) as f64;
    let size = size.max(1) as f64;
    let probability = -(-size / interval).exp_m1();
    let objects = 1.0 / probability;
    Weight { bytes: (size * objects).round() as u64, objects: objects.round().max(1.0) as u64 }
}

/// Runs `f` with sampling suspended on this thread.
pub(crate) fn busy<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = BUSY.try_with(|busy| busy.set(self.0));
        }
    }
    let _reset = Reset(BUSY.try_with(|busy| busy.replace(true)).unwrap_or(true));
    f()
}

/// The return addresses of the calling stack, innermost first; the number recorded.
pub(crate) fn capture(frames: &mut [usize; MAX_DEPTH]) -> usize {
    let mut depth = 0;
    busy(|| {
        #[cfg(unix)]
        // SAFETY: `trace_unsynchronized` must not run concurrently with other backtrace calls
        // only on platforms whose unwinder is not thread-safe (Windows' dbghelp); on Unix it
        // walks the stack with the system unwinder, which is.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                frames[depth] = frame.ip() as usize;
                depth += 1;
                depth < MAX_DEPTH
            });
        }
    });
    depth
}

#[cfg(all(test, not(alloctrack_loom)))]
mod tests {
    use super::*;

    /// One allocation through a sampling allocator's path: true if it is sampled.
    fn alloc(slot: &Slot, size: u64) -> bool {
        REGISTRY.record_alloc_limited(slot, size) && limit_reached(slot, size as usize)
    }

    fn place_sample(slot: &Slot, after: u64) {
        slot.sample_at.store(slot.unfolded_bytes() + after, Ordering::Relaxed);
        slot.update_limit();
    }

    /// The sample falls on the allocation that reaches the sample point, whether the point lies
    /// beyond a fold of the counters or is reached through bytes the packed word does not count
    /// (a large block, a reallocation); the counts stay exact throughout.
    #[test]
    fn the_sample_falls_where_the_bytes_reach_it() {
        let slot = Slot::new();
        // 300,000 bytes away: past the fold at 256 KiB.
        place_sample(&slot, 300_000);
        let sampled: Vec<u64> = (1..=400).filter(|_| alloc(&slot, 1000)).collect();
        assert_eq!(sampled.first(), Some(&300), "samples at allocations {sampled:?}");
        assert_eq!(slot.counts().allocations, 400);
        assert_eq!(slot.counts().bytes_allocated, 400_000);

        place_sample(&slot, 500_000);
        assert!(!alloc(&slot, 400_000), "a large block short of the point is not sampled");
        assert!(!consume(&slot, 99_000), "nor a reallocation short of it");
        assert!(alloc(&slot, 1000), "the next 1000 bytes reach it");
        assert_eq!(slot.counts().allocations, 402);
        assert_eq!(slot.counts().bytes_allocated, 801_000);

        place_sample(&slot, 10_000);
        assert!(alloc(&slot, 400_000), "a large block across the point is sampled");
    }
}
