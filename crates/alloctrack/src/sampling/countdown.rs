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
//! The fast path is one subtract, compare and store on the thread's counter slot, which the
//! allocation path has already loaded (`Slot::countdown`, beside the packed counters): no
//! thread-local access of its own. The random state and the re-entrancy flag, used only on the
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
use crate::registry::{Slot, UNDRAWN};

/// This file, to recognise its frames in sampled stacks.
pub(crate) const SOURCE: &str = file!();

/// The sampling interval unless changed: one sample per 512 KiB allocated, on average
/// (jemalloc's default `lg_prof_sample` of 19).
pub const DEFAULT_INTERVAL: u64 = 512 * 1024;

/// The mean interval in bytes; 0 while sampling is paused.
static INTERVAL: AtomicU64 = AtomicU64::new(DEFAULT_INTERVAL);

/// How far a thread counts down while sampling is paused before it looks again.
const PAUSED_RECHECK: i64 = 1 << 20;

std::thread_local! {
    static RANDOM: Cell<u64> = const { Cell::new(0) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn set_interval(bytes: u64) {
    INTERVAL.store(bytes.min(i64::MAX as u64 / 2), Ordering::Relaxed);
}

pub(crate) fn interval() -> u64 {
    INTERVAL.load(Ordering::Relaxed)
}

/// Counts an allocation of `size` bytes against the countdown of `slot`, the calling thread's
/// own; true if it is to be sampled.
#[inline(always)]
pub(crate) fn due(slot: &Slot, size: usize) -> bool {
    // Only the owning thread writes `countdown`: a relaxed load and store lose nothing.
    let left = slot.countdown.load(Ordering::Relaxed).wrapping_sub(size as i64);
    if left >= 0 {
        slot.countdown.store(left, Ordering::Relaxed);
        return false;
    }
    draw(slot, size)
}

/// The slow path of `due`: the countdown ran out (or was never drawn).
#[cold]
#[inline(never)]
fn draw(slot: &Slot, size: usize) -> bool {
    if BUSY.try_with(Cell::get).unwrap_or(true) {
        return false;
    }
    let interval = INTERVAL.load(Ordering::Relaxed);
    if interval == 0 {
        slot.countdown.store(PAUSED_RECHECK, Ordering::Relaxed);
        return false;
    }
    if slot.countdown.load(Ordering::Relaxed) == UNDRAWN {
        // A slot's first allocation: start from a draw rather than sampling it.
        let left = next_countdown(interval).wrapping_sub(size as i64);
        if left >= 0 {
            slot.countdown.store(left, Ordering::Relaxed);
            return false;
        }
    }
    slot.countdown.store(next_countdown(interval), Ordering::Relaxed);
    true
}

/// A draw from the exponential distribution with mean `interval`.
fn next_countdown(interval: u64) -> i64 {
    // -ln(u) * interval for u uniform in (0, 1]; capped so that a countdown cannot overflow.
    let u = 1.0 - uniform();
    ((-u.ln()) * interval as f64).min((i64::MAX / 4) as f64) as i64
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
